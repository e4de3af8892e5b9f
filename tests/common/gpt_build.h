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
#include <stdio.h>
#include <stdlib.h>

#include "paging/paging.h"
#include "vmmu/vmmu.h"

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

/* The usual builder: one VM's guest memory through vmmu_read_guest/vmmu_write_guest (a failure
 * aborts the test with a message), table pages handed out upwards from @next_table (zeroed:
 * fresh guest memory). */
struct gpt_vm {
	struct vmmu_vm *vm;
	gpa_t next_table;
};

static inline uint64_t gpt_vm_rd(void *ctx, gpa_t a)
{
	uint64_t x = 0;

	if (vmmu_read_guest(((struct gpt_vm *)ctx)->vm, a, &x, 8)) {
		fprintf(stderr, "gpt_vm_rd: vmmu_read_guest(%#llx) failed\n", (unsigned long long)a);
		abort();
	}
	return x;
}

static inline void gpt_vm_wr(void *ctx, gpa_t a, uint64_t x)
{
	if (vmmu_write_guest(((struct gpt_vm *)ctx)->vm, a, &x, 8)) {
		fprintf(stderr, "gpt_vm_wr: vmmu_write_guest(%#llx) failed\n", (unsigned long long)a);
		abort();
	}
}

static inline gpa_t gpt_vm_new_table(void *ctx)
{
	struct gpt_vm *v = ctx;

	v->next_table += 4096;
	return v->next_table - 4096;
}

static inline struct gpt_builder gpt_vm_builder(struct gpt_vm *v)
{
	return (struct gpt_builder){ v, gpt_vm_rd, gpt_vm_wr, gpt_vm_new_table };
}

#endif
