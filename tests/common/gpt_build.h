/* SPDX-License-Identifier: MIT */
/*
 * For tests: build 64-bit guest page tables (4- or 5-level) from outside the guest, the way the
 * unit tests set a guest up before it runs. The test says how a guest-physical qword is read and
 * written (one VM, or a native and a shadow VM in step) and where a new, zeroed table page comes
 * from. Tables on the way are present, writable and user, so the leaf alone sets the rights.
 */
#ifndef VMMU_TESTS_GPT_BUILD_H
#define VMMU_TESTS_GPT_BUILD_H

#include <stdint.h>

#include "paging/paging.h"

struct gpt_builder {
	void *ctx;
	uint64_t (*rd)(void *ctx, gpa_t gpa);
	void (*wr)(void *ctx, gpa_t gpa, uint64_t val);
	gpa_t (*new_table)(void *ctx);
};

/* Map @gva -> @gpa under the @levels-level tables at @root with a leaf at @level (1 4K, 2 2M,
 * 3 1G) and leaf flags @f (PS added above level 1). Returns the leaf entry's gpa. */
static inline gpa_t gpt_map(const struct gpt_builder *b, gpa_t root, int levels, gva_t gva,
			    gpa_t gpa, int level, uint64_t f)
{
	gpa_t table = root;

	for (int l = levels; l > level; l--) {
		gpa_t e = table + ((gva >> (12 + 9 * (l - 1))) & 511) * 8;
		uint64_t v = b->rd(b->ctx, e);
		if (!(v & PT_PRESENT_MASK)) {
			v = b->new_table(b->ctx) | PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK;
			b->wr(b->ctx, e, v);
		}
		table = v & rsvd_bits(12, 51);
	}
	gpa_t e = table + ((gva >> (12 + 9 * (level - 1))) & 511) * 8;
	b->wr(b->ctx, e, gpa | f | (level > 1 ? PT_PAGE_SIZE_MASK : 0));
	return e;
}

#endif
