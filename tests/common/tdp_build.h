/* SPDX-License-Identifier: MIT */
/*
 * For the hardware tests: build EPT or NPT tables by hand in the host frame arena, entries the
 * hard MMU never makes included (W-only, execute-only, rights narrower than a table's), so the
 * nested walks can be checked against every entry the architecture defines. The library's only
 * builder is the hard MMU's (mmu/tdp_mmu.c); this one is not part of it.
 *
 * Tables on the way are made with every right, so the leaf decides. Not for concurrent use: the
 * walker under test may run meanwhile (stores are atomic), another builder may not.
 */
#ifndef VMMU_TESTS_TDP_BUILD_H
#define VMMU_TESTS_TDP_BUILD_H

#include <errno.h>
#include <stdint.h>

#include "paging/hostmem.h"
#include "paging/tdp.h"

static inline unsigned tdpb_index(gpa_t gpa, int level)
{
	return (unsigned)(gpa >> (12 + 9 * (level - 1))) & 511u;
}

static inline uint64_t tdpb_leaf(const struct tdp_ctx *c, hpa_t hpa, int level, unsigned rights)
{
	uint64_t e = hpa | (level > 1 ? PT_PAGE_SIZE_MASK : 0);

	if (!rights)
		return 0;
	if (c->fmt == TDP_EPT)
		return e | rights | ((uint64_t)EPT_MT_WB << EPT_MT_SHIFT);
	e |= PT_PRESENT_MASK | PT_USER_MASK;
	if (rights & TDP_W)
		e |= PT_WRITABLE_MASK;
	if (!(rights & TDP_X))
		e |= PT64_NX_MASK;
	return e;
}

/*
 * Map [@gpa, @gpa + 2^@page_shift) to @hpa with @rights (TDP_R/W/X; 0 makes the leaf not present),
 * allocating missing tables from the arena. EPT leaves get memory type WB; @rights are written as
 * given, so W-only makes a misconfigured entry. NPT leaves are user pages, writable with TDP_W, NX
 * without TDP_X (any non-zero @rights maps the page readable). 0, -EINVAL (size, alignment,
 * range), -EEXIST (a leaf is in the way of a table or a table in the way of a leaf), -ENOMEM.
 */
static inline int tdp_map(const struct tdp_ctx *c, gpa_t gpa, hpa_t hpa, unsigned page_shift,
			  unsigned rights)
{
	const uint64_t size = 1ULL << page_shift;
	int leaf_level, level, err;
	hpa_t table, eh;
	uint64_t e;

	if (!c || !c->arena || (page_shift != 12 && page_shift != 21 && page_shift != 30))
		return -EINVAL;
	if (((gpa | hpa) & (size - 1)) || (gpa >> (12 + 9 * c->levels)) || (hpa & ~TDP_ADDR_MASK) ||
	    (rights & ~TDP_RWX))
		return -EINVAL;
	leaf_level = (int)(page_shift - 12) / 9 + 1;
	table = c->root & TDP_ADDR_MASK;
	for (level = c->levels; level > leaf_level; level--) {
		eh = table + tdpb_index(gpa, level) * sizeof(uint64_t);
		err = hostmem_load(c->arena, eh, sizeof(e), &e);
		if (err)
			return err;
		if (!tdp_is_present(c, e)) {
			pfn_t pfn;

			err = host_frame_alloc(c->arena, HOST_ORDER_4K, &pfn);
			if (err)
				return err;
			e = (pfn << HOST_PAGE_SHIFT) | (c->fmt == TDP_EPT ? EPT_RWX_MASK :
				PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK);
			err = hostmem_store(c->arena, eh, sizeof(e), e);
			if (err)
				return err;
		} else if (tdp_is_leaf(e, level)) {
			return -EEXIST;
		}
		table = tdp_entry_addr(e);
	}
	eh = table + tdpb_index(gpa, leaf_level) * sizeof(uint64_t);
	err = hostmem_load(c->arena, eh, sizeof(e), &e);
	if (err)
		return err;
	if (tdp_is_present(c, e) && !tdp_is_leaf(e, leaf_level))
		return -EEXIST;     /* replacing a table by a leaf would leak it */
	return hostmem_store(c->arena, eh, sizeof(e), tdpb_leaf(c, hpa, leaf_level, rights));
}

/* The hpa of the entry at @level that maps @gpa, following present non-leaf entries from the
 * root. 0, -EINVAL, or -ENOENT when the walk does not reach @level. */
static inline int tdp_entry_hpa(const struct tdp_ctx *c, gpa_t gpa, int level, hpa_t *out)
{
	hpa_t table;

	if (!c || level < 1 || level > c->levels)
		return -EINVAL;
	table = c->root & TDP_ADDR_MASK;
	for (int l = c->levels;; l--) {
		hpa_t eh = table + tdpb_index(gpa, l) * sizeof(uint64_t);
		uint64_t e;

		if (l == level) {
			*out = eh;
			return 0;
		}
		if (hostmem_load(c->arena, eh, sizeof(e), &e) || !tdp_is_present(c, e) ||
		    tdp_is_leaf(e, l))
			return -ENOENT;
		table = tdp_entry_addr(e);
	}
}

static inline void tdpb_free(const struct tdp_ctx *c, hpa_t table, int level)
{
	if (!host_pfn_valid(c->arena, table >> HOST_PAGE_SHIFT))
		return;
	for (unsigned i = 0; level > 1 && i < 512; i++) {
		uint64_t e;

		if (hostmem_load(c->arena, table + i * sizeof(e), sizeof(e), &e))
			continue;
		if (tdp_is_present(c, e) && !tdp_is_leaf(e, level))
			tdpb_free(c, tdp_entry_addr(e), level - 1);
	}
	host_frame_put(c->arena, table >> HOST_PAGE_SHIFT, HOST_ORDER_4K);
}

/* Free the root and every table below it (not the pages they map); c->root = 0. Each table must
 * be referenced once (a table reached twice would be freed twice). */
static inline void tdp_free_tables(struct tdp_ctx *c)
{
	if (!c || !c->arena || !c->root)
		return;
	tdpb_free(c, c->root & TDP_ADDR_MASK, c->levels);
	c->root = 0;
}

#endif
