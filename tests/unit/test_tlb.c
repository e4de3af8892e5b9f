/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the modelled TLB (src/cpu/tlb.c): each page size, PCID and global tagging, every
 * invalidation of tlb.h, LRU order and the STLB, geometry validation, the LRU clock wrap, and a
 * randomized run against a reference model (an unbounded list of what was filled and not yet
 * invalidated): every hit must be a translation the reference still holds; and a randomized run
 * against a plain set-associative LRU model, which every lookup's outcome must match exactly.
 * Each test builds its own TLB; tlb_check() runs after every step that changes one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cpu/tlb.h"
#include "paging/paging.h"

#define SZ_4K (1ULL << 12)
#define SZ_2M (1ULL << 21)
#define SZ_1G (1ULL << 30)

static struct tlb *mk(const struct vmmu_tlb_geometry *g)
{
	struct tlb *t = NULL;
	assert_int_equal(tlb_create(g, &t), 0);
	assert_non_null(t);
	return t;
}

static struct tlb_entry_info ent(uint64_t frame, unsigned shift, uint16_t pcid, bool global)
{
	return (struct tlb_entry_info){
		.frame = frame, .page_shift = (uint8_t)shift, .access = ACC_WRITE | ACC_USER,
		.pkey = 5, .dirty = true, .global = global, .pcid = pcid,
	};
}

static void fill(struct tlb *t, gva_t va, uint64_t frame, unsigned shift, uint16_t pcid, bool global)
{
	struct tlb_entry_info e = ent(frame, shift, pcid, global);
	tlb_fill(t, va, &e);
	assert_int_equal(tlb_check(t), 0);
}

/* Look @va up; on a hit return the frame through @frame. */
static enum tlb_hit look(struct tlb *t, gva_t va, uint16_t pcid, uint64_t *frame)
{
	struct tlb_entry_info o;
	memset(&o, 0xa5, sizeof(o));
	enum tlb_hit h = tlb_lookup(t, va, pcid, &o);
	assert_int_equal(tlb_check(t), 0);
	if (h != TLB_MISS && frame)
		*frame = o.frame;
	return h;
}

static void expect_frame(struct tlb *t, gva_t va, uint16_t pcid, uint64_t frame)
{
	uint64_t f = 0;
	assert_int_not_equal(look(t, va, pcid, &f), TLB_MISS);
	assert_int_equal(f, frame);
}

static void expect_miss(struct tlb *t, gva_t va, uint16_t pcid)
{
	assert_int_equal(look(t, va, pcid, NULL), TLB_MISS);
}

/* ---- basic translation ---- */

static void test_fill_lookup_each_size(void **state)
{
	static const struct { unsigned shift; gva_t va; uint64_t frame; } c[] = {
		{ 12, 0x00007f1234567abcULL, 0x000000abcdef1000ULL },
		{ 21, 0x00007f1234767abcULL, 0x0000001234600000ULL },
		{ 30, 0xffff88807654321fULL, 0x0000004f40000000ULL },
	};
	for (unsigned i = 0; i < 3; i++) {
		struct tlb *t = mk(NULL);
		struct tlb_entry_info in = {
			.frame = c[i].frame, .page_shift = (uint8_t)c[i].shift, .access = ACC_EXEC | ACC_USER,
			.pkey = 11, .dirty = false, .global = false, .pcid = 42,
		}, o;
		uint64_t size = 1ULL << c[i].shift;
		gva_t base = c[i].va & ~(size - 1);

		tlb_fill(t, c[i].va, &in);
		assert_int_equal(tlb_check(t), 0);
		/* Any byte of the page hits, with every field of the fill. */
		const gva_t probes[] = { base, c[i].va, base + size - 1, base + size / 2 + 8 };
		for (unsigned p = 0; p < 4; p++) {
			memset(&o, 0, sizeof(o));
			assert_int_equal(tlb_lookup(t, probes[p], 42, &o), TLB_HIT_L1);
			assert_int_equal(o.frame, c[i].frame);
			assert_int_equal(o.page_shift, c[i].shift);
			assert_int_equal(o.access, ACC_EXEC | ACC_USER);
			assert_int_equal(o.pkey, 11);
			assert_false(o.dirty);
			assert_false(o.global);
			assert_int_equal(o.pcid, 42);
			assert_int_equal(tlb_entry_pa(&o, probes[p]), c[i].frame | (probes[p] & (size - 1)));
		}
		/* The neighbouring pages do not. */
		expect_miss(t, base - 1, 42);
		expect_miss(t, base + size, 42);
		tlb_destroy(t);
	}
}

static void test_dirty_and_attrs_roundtrip(void **state)
{
	struct tlb *t = mk(NULL);
	struct tlb_entry_info in = ent(0xfffffffff000ULL, 12, 4095, true), o;
	in.access = ACC_ALL;
	in.pkey = 15;
	in.dirty = true;
	tlb_fill(t, 0x5000, &in);
	assert_int_equal(tlb_lookup(t, 0x5123, 0, &o), TLB_HIT_L1);
	assert_int_equal(o.frame, 0xfffffffff000ULL);
	assert_int_equal(o.access, ACC_ALL);
	assert_int_equal(o.pkey, 15);
	assert_true(o.dirty);
	assert_true(o.global);
	assert_int_equal(o.pcid, 4095);
	tlb_destroy(t);
}

/* The owner's host fields start empty in a filled entry, whatever the caller's entry held (they
 * belong to the translation the owner had before), and in a second-level entry's first-level
 * copy; every other field is the caller's. */
static void test_fill_host_fields(void **state)
{
	struct tlb *t = mk(NULL);
	static uint8_t page[4096];
	struct tlb_entry_info in = ent(0x7000, 12, 9, false), o;
	uint32_t *stamp;

	in.host = page;
	in.host_writable = true;
	tlb_fill(t, 0x40000, &in);
	assert_int_equal(tlb_lookup(t, 0x40008, 9, &o), TLB_HIT_L1);
	assert_null(o.host);
	assert_false(o.host_writable);
	assert_int_equal(o.frame, 0x7000);
	assert_int_equal(o.page_shift, 12);
	assert_int_equal(o.access, ACC_WRITE | ACC_USER);
	assert_int_equal(o.pkey, 5);
	assert_true(o.dirty);
	assert_false(o.global);
	assert_int_equal(o.pcid, 9);
	/* The owner keeps a pointer in the first-level entry; four more pages of its L1 set push
	 * it out to the STLB, whose copy never had one, and a hit there copies it back empty. */
	struct tlb_entry_info *e = tlb_find_l1(t, 0x40000, 9, &stamp);
	assert_non_null(e);
	e->host = page;
	e->host_writable = true;
	for (unsigned i = 1; i <= 4; i++)
		fill(t, 0x40000 + i * 16 * SZ_4K, (uint64_t)i << 30, 12, 9, false);
	assert_null(tlb_find_l1(t, 0x40000, 9, &stamp));
	assert_int_equal(tlb_lookup(t, 0x40008, 9, &o), TLB_HIT_L2);
	assert_null(o.host);
	assert_false(o.host_writable);
	assert_int_equal(o.frame, 0x7000);
	assert_int_equal(o.pkey, 5);
	assert_int_equal(o.pcid, 9);
	/* A global 2M entry answers any PCID with its own page size and frame. */
	in = ent(0x40200000, 21, 9, true);
	tlb_fill(t, 0x80000000, &in);
	assert_int_equal(tlb_lookup(t, 0x80012345, 3, &o), TLB_HIT_L1);
	assert_int_equal(o.frame, 0x40200000);
	assert_int_equal(o.page_shift, 21);
	assert_true(o.global);
	tlb_destroy(t);
}

static void test_refill_replaces(void **state)
{
	struct tlb *t = mk(NULL);
	fill(t, 0x7000, 0x111000, 12, 1, false);
	assert_int_equal(tlb_count(t), 2);                 /* L1 and STLB */
	fill(t, 0x7000, 0x222000, 12, 1, false);
	assert_int_equal(tlb_count(t), 2);                 /* replaced in both levels */
	expect_frame(t, 0x7000, 1, 0x222000);
	/* A global fill of the page drops the non-global one it would shadow. */
	fill(t, 0x7000, 0x333000, 12, 2, true);
	assert_int_equal(tlb_count(t), 2);
	expect_frame(t, 0x7000, 1, 0x333000);
	expect_frame(t, 0x7000, 9, 0x333000);
	tlb_destroy(t);
}

/* ---- tags ---- */

static void test_pcid_isolation(void **state)
{
	struct tlb *t = mk(NULL);
	const gva_t va = 0x400000;
	fill(t, va, 0xa000, 12, 1, false);
	fill(t, va, 0xb000, 12, 2, false);
	expect_frame(t, va, 1, 0xa000);
	expect_frame(t, va, 2, 0xb000);
	expect_miss(t, va, 0);
	expect_miss(t, va, 3);
	/* The same holds for large pages. */
	fill(t, 0x40000000, 0x80000000, 30, 1, false);
	fill(t, 0x40000000, 0xc0000000, 30, 2, false);
	expect_frame(t, 0x40001000, 1, 0x80000000);
	expect_frame(t, 0x40001000, 2, 0xc0000000);
	expect_miss(t, 0x40001000, 7);
	tlb_destroy(t);
}

static void test_global_any_pcid(void **state)
{
	struct tlb *t = mk(NULL);
	fill(t, 0xffffffff81000000ULL, 0x1000000, 21, 3, true);
	const uint16_t pcids[] = { 0, 1, 3, 77, 4095 };
	for (unsigned i = 0; i < 5; i++)
		expect_frame(t, 0xffffffff81012345ULL, pcids[i], 0x1000000);
	tlb_destroy(t);
}

/* ---- invalidation ---- */

static void test_invlpg(void **state)
{
	struct tlb *t = mk(NULL);
	const gva_t va = 0x12345000, other = 0x22345000;
	fill(t, va, 0x1000, 12, 1, false);         /* current PCID: goes */
	fill(t, va, 0x2000, 12, 2, false);         /* another PCID: stays */
	fill(t, va + 0x1000, 0x3000, 12, 4, true); /* global, other page: stays */
	fill(t, other, 0x4000, 12, 1, false);      /* current PCID, other page: stays */
	tlb_invlpg(t, va, 1);
	assert_int_equal(tlb_check(t), 0);
	expect_miss(t, va, 1);
	expect_frame(t, va, 2, 0x2000);
	expect_frame(t, va + 0x1000, 1, 0x3000);
	expect_frame(t, other, 1, 0x4000);

	/* A global entry for the address goes whatever its tag and the current PCID. */
	fill(t, va + 0x1000, 0x5000, 12, 9, true);
	tlb_invlpg(t, va + 0x1fff, 1);
	expect_miss(t, va + 0x1000, 1);
	expect_miss(t, va + 0x1000, 9);
	/* No copy survived in the second level. */
	assert_int_equal(tlb_get_stats(t)->hits_l2, 0);
	tlb_destroy(t);
}

static void test_invlpg_large_pages(void **state)
{
	struct tlb *t = mk(NULL);
	fill(t, 0x40000000, 0x200000, 21, 1, false);
	fill(t, 0x80000000, 0x40000000, 30, 1, false);
	fill(t, 0xc0000000, 0x80000000, 30, 1, true);
	fill(t, 0x40200000, 0x400000, 21, 1, false);        /* the next 2M page: stays */
	tlb_invlpg(t, 0x40123456, 1);                        /* inside the first 2M page */
	tlb_invlpg(t, 0x9abcd000, 1);                        /* inside the 1G page */
	tlb_invlpg(t, 0xfffff000, 1);                        /* last 4K of the global 1G page */
	assert_int_equal(tlb_check(t), 0);
	expect_miss(t, 0x40000000, 1);
	expect_miss(t, 0x80000000, 1);
	expect_miss(t, 0xc0000000, 5);
	expect_frame(t, 0x40200000, 1, 0x400000);
	assert_int_equal(tlb_count(t), 2);
	tlb_destroy(t);
}

static void test_invlpg_all_sizes_at_once(void **state)
{
	/* A stale 4K entry and a 2M entry both cover the address: INVLPG takes both. */
	struct tlb *t = mk(NULL);
	fill(t, 0x600000, 0x9000, 12, 0, false);
	fill(t, 0x600000, 0xe00000, 21, 0, false);
	expect_frame(t, 0x600000, 0, 0x9000);   /* the smaller page is returned first */
	expect_frame(t, 0x601000, 0, 0xe00000);
	tlb_invlpg(t, 0x600000, 0);
	expect_miss(t, 0x600000, 0);
	expect_miss(t, 0x601000, 0);
	assert_int_equal(tlb_count(t), 0);
	tlb_destroy(t);
}

/*
 * An invalidation right after a miss at every level (a #PF's) skips its search: it must still
 * find what was inserted since, for that page at any size, and what another PCID's miss left.
 */
static void test_after_miss(void **state)
{
	struct tlb *t = mk(NULL);
	const gva_t va = 0x40123000;
	uint64_t inv = tlb_get_stats(t)->invalidations;

	expect_miss(t, va, 1);
	tlb_invlpg(t, va, 1);                        /* nothing to find */
	assert_int_equal(tlb_get_stats(t)->invalidations, inv + 1);
	expect_miss(t, va, 1);
	fill(t, 0x40000000, 0x200000, 21, 1, false); /* a 2M page over it, inserted after the miss */
	tlb_invlpg(t, va, 1);
	expect_miss(t, va, 1);
	fill(t, va, 0x5000, 12, 2, true);            /* a global entry, after PCID 1's miss */
	expect_frame(t, va, 1, 0x5000);
	tlb_invlpg(t, va, 1);
	expect_miss(t, va, 3);
	expect_miss(t, va, 2);                       /* a miss under PCID 2 */
	fill(t, va, 0x6000, 12, 1, false);           /* PCID 1's entry goes in after it */
	tlb_flush_addr_pcid(t, va, 2);               /* PCID 2's invalidation: it stays */
	expect_frame(t, va, 1, 0x6000);
	expect_miss(t, va, 2);
	tlb_invlpg(t, va, 1);                        /* the last miss was PCID 2's: a search */
	expect_miss(t, va, 1);
	assert_int_equal(tlb_count(t), 0);
	assert_int_equal(tlb_get_stats(t)->invalidations, inv + 5);

	/* A global entry filled right after a miss replaces another PCID's entry of the page
	 * (fill() runs tlb_check). */
	fill(t, va, 0x7000, 12, 2, false);
	expect_miss(t, va, 1);
	fill(t, va, 0x8000, 12, 1, true);
	expect_frame(t, va, 2, 0x8000);
	assert_int_equal(tlb_count(t), 2);          /* one copy in each level */

	/* A fill after a miss skips the search for the entries it replaces only when it is the
	 * missed page and tag, and not global: here another PCID's entry of the page is replaced. */
	tlb_flush_all(t, true);
	fill(t, va, 0x7000, 12, 2, false);
	expect_miss(t, va, 1);
	fill(t, va, 0x9000, 12, 2, false);
	expect_frame(t, va, 2, 0x9000);
	expect_miss(t, va, 1);
	fill(t, va, 0xa000, 12, 1, false);          /* the missed page and tag */
	expect_frame(t, va, 1, 0xa000);
	assert_int_equal(tlb_count(t), 4);
	tlb_destroy(t);
}

static void test_invpcid_addr(void **state)
{
	struct tlb *t = mk(NULL);
	const gva_t va = 0x7000000;
	fill(t, va, 0x1000, 12, 3, false);
	fill(t, va + 0x1000, 0x2000, 12, 3, true);
	fill(t, va, 0x3000, 12, 4, false);
	fill(t, 0x40000000, 0x40000000, 30, 3, false);
	tlb_flush_addr_pcid(t, va, 3);
	tlb_flush_addr_pcid(t, va + 0x1000, 3);      /* global: untouched */
	tlb_flush_addr_pcid(t, 0x7fffffff, 3);      /* inside the 1G page */
	assert_int_equal(tlb_check(t), 0);
	expect_miss(t, va, 3);
	expect_frame(t, va + 0x1000, 3, 0x2000);
	expect_frame(t, va, 4, 0x3000);
	expect_miss(t, 0x40000000, 3);
	assert_int_equal(tlb_get_stats(t)->invalidations, 3);
	tlb_destroy(t);
}

static void populate_tags(struct tlb *t)
{
	fill(t, 0x1000, 0x10000, 12, 1, false);
	fill(t, 0x2000, 0x20000, 12, 1, false);
	fill(t, 0x200000, 0x200000, 21, 1, false);
	fill(t, 0x3000, 0x30000, 12, 2, false);
	fill(t, 0x4000, 0x40000, 12, 1, true);
	fill(t, 0x40000000, 0x40000000, 30, 2, true);
}

static void test_flush_pcid(void **state)
{
	struct tlb *t = mk(NULL);
	populate_tags(t);
	tlb_flush_pcid(t, 1, false);
	assert_int_equal(tlb_check(t), 0);
	expect_miss(t, 0x1000, 1);
	expect_miss(t, 0x2000, 1);
	expect_miss(t, 0x200000, 1);
	expect_frame(t, 0x3000, 2, 0x30000);
	expect_frame(t, 0x4000, 1, 0x40000);          /* global, tagged 1: stays */
	expect_frame(t, 0x40000000, 1, 0x40000000);
	assert_int_equal(tlb_count(t), 6);

	tlb_destroy(t);
	t = mk(NULL);
	populate_tags(t);
	tlb_flush_pcid(t, 1, true);
	expect_miss(t, 0x1000, 1);
	expect_miss(t, 0x4000, 1);
	expect_miss(t, 0x40000000, 2);                 /* every global entry goes */
	expect_frame(t, 0x3000, 2, 0x30000);
	assert_int_equal(tlb_count(t), 2);
	assert_int_equal(tlb_get_stats(t)->flushes, 1);
	tlb_destroy(t);
}

static void test_flush_all(void **state)
{
	struct tlb *t = mk(NULL);
	populate_tags(t);
	tlb_flush_all(t, false);
	assert_int_equal(tlb_check(t), 0);
	expect_miss(t, 0x1000, 1);
	expect_miss(t, 0x200000, 1);
	expect_miss(t, 0x3000, 2);
	expect_frame(t, 0x4000, 0, 0x40000);
	expect_frame(t, 0x40000000, 0, 0x40000000);
	assert_int_equal(tlb_count(t), 4);
	tlb_flush_all(t, true);
	assert_int_equal(tlb_count(t), 0);
	expect_miss(t, 0x4000, 0);
	tlb_destroy(t);
}

/* ---- replacement and the second level ---- */

/* Page @i of L1 4K set 0 with the default 16 sets. */
static gva_t set0(unsigned i)
{
	return (gva_t)i * 16 * SZ_4K;
}

static void test_lru_l1(void **state)
{
	struct tlb *t = mk(NULL);
	/* A, B, C, D fill set 0; touching A makes B the least recently used. */
	for (unsigned i = 0; i < 4; i++)
		fill(t, set0(i), 0x100000 + i * SZ_4K, 12, 0, false);
	assert_int_equal(look(t, set0(0), 0, NULL), TLB_HIT_L1);
	fill(t, set0(4), 0x200000, 12, 0, false);        /* E evicts B from L1 */
	assert_int_equal(look(t, set0(2), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(3), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(4), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(0), 0, NULL), TLB_HIT_L1);
	/* B is still in the STLB; bringing it back evicts C, now the oldest. */
	assert_int_equal(look(t, set0(1), 0, NULL), TLB_HIT_L2);
	assert_int_equal(look(t, set0(1), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(2), 0, NULL), TLB_HIT_L2);
	tlb_destroy(t);
}

static void test_lru_large_pages(void **state)
{
	/* The same order in the L1 2M array (8 sets: stride 16 MiB) and the L1 1G array (one set). */
	static const struct { unsigned shift; uint64_t stride; } c[] = { { 21, 8 * SZ_2M }, { 30, SZ_1G } };
	for (unsigned k = 0; k < 2; k++) {
		struct tlb *t = mk(NULL);
		gva_t p[5];
		for (unsigned i = 0; i < 5; i++)
			p[i] = (1ULL << 44) + i * c[k].stride;
		for (unsigned i = 0; i < 4; i++)
			fill(t, p[i], (uint64_t)(i + 1) << 30, c[k].shift, 0, false);
		assert_int_equal(look(t, p[0] + 0x1000, 0, NULL), TLB_HIT_L1);   /* B is now the oldest */
		fill(t, p[4], 5ULL << 30, c[k].shift, 0, false);
		assert_int_equal(look(t, p[0], 0, NULL), TLB_HIT_L1);
		assert_int_equal(look(t, p[2], 0, NULL), TLB_HIT_L1);
		assert_int_equal(look(t, p[3], 0, NULL), TLB_HIT_L1);
		assert_int_equal(look(t, p[4], 0, NULL), TLB_HIT_L1);
		assert_int_equal(look(t, p[1], 0, NULL), TLB_HIT_L2);
		tlb_destroy(t);
	}
}

static void test_stlb_single_entry(void **state)
{
	/* One-way L1 arrays; after the INVLPG each second-level array holds exactly one entry, which
	 * must still be found (an array is skipped only when empty). */
	struct vmmu_tlb_geometry g = { .l1_4k = { 1, 1 }, .l1_1g = { 1, 1 } };
	struct tlb *t = mk(&g);
	uint64_t f;
	fill(t, 0x1000, 0xa000, 12, 0, false);
	fill(t, 0x2000, 0xb000, 12, 0, false);
	fill(t, 1ULL << 30, 1ULL << 30, 30, 0, false);
	fill(t, 2ULL << 30, 2ULL << 30, 30, 0, false);
	tlb_invlpg(t, 0x2000, 0);
	tlb_invlpg(t, 2ULL << 30, 0);
	assert_int_equal(tlb_count(t), 2);
	assert_int_equal(look(t, 0x1000, 0, &f), TLB_HIT_L2);
	assert_int_equal(f, 0xa000);
	assert_int_equal(look(t, (1ULL << 30) + 5, 0, &f), TLB_HIT_L2);
	assert_int_equal(f, 1ULL << 30);
	tlb_destroy(t);
}

static void test_lru_l2_capacity(void **state)
{
	/* One-entry L1, a 2-way single-set STLB: capacity 2, then the LRU goes for good. */
	struct vmmu_tlb_geometry g = { .l1_4k = { 1, 1 }, .l2 = { 1, 2 } };
	struct tlb *t = mk(&g);
	uint64_t f;
	fill(t, 0xa000, 0xa000, 12, 0, false);
	fill(t, 0xb000, 0xb000, 12, 0, false);
	assert_int_equal(look(t, 0xa000, 0, &f), TLB_HIT_L2);   /* A refreshed in the STLB */
	fill(t, 0xc000, 0xc000, 12, 0, false);                 /* evicts B, the STLB's LRU */
	expect_miss(t, 0xb000, 0);
	assert_int_equal(look(t, 0xa000, 0, &f), TLB_HIT_L2);
	assert_int_equal(f, 0xa000);
	assert_int_equal(look(t, 0xc000, 0, &f), TLB_HIT_L2);
	assert_int_equal(tlb_count(t), 3);                       /* 1 in L1, 2 in the STLB */
	/* A fill of the full set never grows it. */
	for (unsigned i = 0; i < 100; i++)
		fill(t, 0x100000 + i * SZ_4K, 0x1000, 12, 0, false);
	assert_int_equal(tlb_count(t), 3);
	tlb_destroy(t);
}

static void test_stlb_hit_promotes(void **state)
{
	struct tlb *t = mk(NULL);
	struct tlb_entry_info o;
	/* Five pages of each size into one L1 set (4 ways): the first falls to the second level. */
	static const struct { unsigned shift; uint64_t stride; } c[] = {
		{ 12, 16 * SZ_4K }, { 21, 8 * SZ_2M }, { 30, SZ_1G },
	};
	for (unsigned s = 0; s < 3; s++) {
		gva_t base = (gva_t)(s + 1) << 40;
		for (unsigned i = 0; i < 5; i++)
			fill(t, base + i * c[s].stride, (uint64_t)(i + 1) << 30, c[s].shift, 6, false);
		uint64_t hits_l2 = tlb_get_stats(t)->hits_l2;
		assert_int_equal(tlb_lookup(t, base + 0x123, 6, &o), TLB_HIT_L2);
		assert_int_equal(o.frame, 1ULL << 30);
		assert_int_equal(o.page_shift, c[s].shift);
		assert_int_equal(o.pcid, 6);
		assert_int_equal(tlb_get_stats(t)->hits_l2, hits_l2 + 1);
		assert_int_equal(look(t, base + 0x123, 6, NULL), TLB_HIT_L1);
		/* Promotion evicted the second page (now the oldest) from L1. */
		assert_int_equal(look(t, base + c[s].stride, 6, NULL), TLB_HIT_L2);
	}
	tlb_destroy(t);
}

static void test_clock_wrap_keeps_order(void **state)
{
	struct tlb *t = mk(NULL);
	for (unsigned i = 0; i < 4; i++)
		fill(t, set0(i), 0x100000 + i * SZ_4K, 12, 0, false);
	assert_int_equal(look(t, set0(0), 0, NULL), TLB_HIT_L1);   /* L1 order: B C D A */
	tlb_test_set_clock(t, UINT32_MAX - 1);
	fill(t, set0(4), 0x200000, 12, 0, false);   /* evicts B; the clock wraps in here */
	fill(t, set0(5), 0x300000, 12, 0, false);   /* must evict C: the order survived */
	assert_int_equal(look(t, set0(3), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(0), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(4), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(5), 0, NULL), TLB_HIT_L1);
	assert_int_equal(look(t, set0(1), 0, NULL), TLB_HIT_L2);
	assert_int_equal(look(t, set0(2), 0, NULL), TLB_HIT_L2);
	tlb_destroy(t);

	/* Fills alone across the wrap (fill() runs tlb_check: stamps stay distinct). */
	t = mk(NULL);
	for (unsigned i = 0; i < 4; i++)
		fill(t, set0(i), 0x100000 + i * SZ_4K, 12, 0, false);
	tlb_test_set_clock(t, UINT32_MAX - 1);
	for (unsigned i = 4; i < 7; i++)
		fill(t, set0(i), 0x100000 + i * SZ_4K, 12, 0, false);   /* evict A, B, C in order */
	for (unsigned i = 3; i < 7; i++)
		assert_int_equal(look(t, set0(i), 0, NULL), TLB_HIT_L1);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(look(t, set0(i), 0, NULL), TLB_HIT_L2);
	tlb_destroy(t);
}

/* ---- geometry, counters ---- */

static void test_geometry(void **state)
{
	struct vmmu_tlb_geometry d, g;
	struct tlb *t = NULL;

	tlb_default_geometry(&d);
	assert_int_equal(d.l1_4k.sets * d.l1_4k.ways, 64);
	assert_int_equal(d.l1_4k.ways, 4);
	assert_int_equal(d.l1_2m.sets * d.l1_2m.ways, 32);
	assert_int_equal(d.l1_1g.sets, 1);
	assert_int_equal(d.l1_1g.ways, 4);
	assert_int_equal(d.l2.sets * d.l2.ways, 1536);
	assert_int_equal(d.l2.ways, 12);
	assert_int_equal(d.l2_1g.sets * d.l2_1g.ways, 16);

	/* NULL and all zeros take the defaults: 64+32+4+1536+16 slots. */
	t = mk(NULL);
	for (unsigned i = 0; i < 3000; i++)
		fill(t, (gva_t)i << 12, 0, 12, 0, false);
	assert_int_equal(tlb_count(t), 64 + 1536);
	tlb_destroy(t);
	memset(&g, 0, sizeof(g));
	t = mk(&g);
	tlb_destroy(t);

	static const struct vmmu_tlb_array bad[] = {
		{ 3, 4 }, { 12, 4 }, { 0, 4 }, { 4, 0 }, { 4, 33 }, { 1u << 17, 1 }, { 0x80000001u, 2 },
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (unsigned which = 0; which < 5; which++) {
			memset(&g, 0, sizeof(g));
			struct vmmu_tlb_array *a[] = { &g.l1_4k, &g.l1_2m, &g.l1_1g, &g.l2, &g.l2_1g };
			*a[which] = bad[i];
			t = (struct tlb *)0x1;
			assert_int_equal(tlb_create(&g, &t), -EINVAL);
			assert_ptr_equal(t, (struct tlb *)0x1);    /* untouched on failure */
		}
	}
	/* The limits themselves are accepted. */
	g = (struct vmmu_tlb_geometry){ .l1_4k = { 1, 32 }, .l2 = { 1u << 16, 1 }, .l2_1g = { 1, 1 } };
	t = mk(&g);
	tlb_destroy(t);
	tlb_destroy(NULL);
}

static void test_count_and_stats(void **state)
{
	struct tlb *t = mk(NULL);
	const struct tlb_stats *s = tlb_get_stats(t);
	assert_int_equal(tlb_count(t), 0);
	fill(t, 0x1000, 0x1000, 12, 0, false);
	fill(t, 0x200000, 0x200000, 21, 0, false);
	fill(t, 0x40000000, 0x40000000, 30, 0, false);
	assert_int_equal(tlb_count(t), 6);
	expect_frame(t, 0x1000, 0, 0x1000);
	expect_frame(t, 0x200000, 0, 0x200000);
	expect_miss(t, 0x3000, 0);
	tlb_invlpg(t, 0x1000, 0);
	assert_int_equal(tlb_count(t), 4);
	tlb_flush_all(t, false);
	assert_int_equal(tlb_count(t), 0);
	assert_int_equal(s->fills, 3);
	assert_int_equal(s->hits_l1, 2);
	assert_int_equal(s->hits_l2, 0);
	assert_int_equal(s->misses, 1);
	assert_int_equal(s->invalidations, 1);
	assert_int_equal(s->flushes, 1);
	tlb_destroy(t);
}

/* ---- randomized, against a reference ---- */

struct ref_ent {
	uint64_t vpn;       /* va >> shift */
	unsigned shift;
	uint16_t pcid;
	bool global;
	uint64_t frame;
	uint8_t access, pkey;
	bool dirty;
};

struct ref {
	struct ref_ent *e;
	size_t n, cap;
};

static struct ref_ent *ref_find(struct ref *r, uint64_t vpn, unsigned shift, uint16_t pcid, bool global)
{
	for (size_t i = 0; i < r->n; i++)
		if (r->e[i].vpn == vpn && r->e[i].shift == shift && r->e[i].pcid == pcid &&
		    r->e[i].global == global)
			return &r->e[i];
	return NULL;
}

static void ref_fill(struct ref *r, gva_t va, const struct tlb_entry_info *in)
{
	struct ref_ent *x = ref_find(r, va >> in->page_shift, in->page_shift, in->pcid, in->global);
	if (!x) {
		if (r->n == r->cap) {
			r->cap = r->cap ? 2 * r->cap : 256;
			r->e = realloc(r->e, r->cap * sizeof(*r->e));
			assert_non_null(r->e);
		}
		x = &r->e[r->n++];
	}
	*x = (struct ref_ent){ va >> in->page_shift, in->page_shift, in->pcid, in->global, in->frame,
			       in->access, in->pkey, in->dirty };
}

enum ref_kill { K_INVLPG, K_ADDR_PCID, K_PCID, K_PCID_G, K_ALL, K_ALL_G };

static bool ref_doomed(const struct ref_ent *x, enum ref_kill k, gva_t va, uint16_t pcid)
{
	bool covers = (va >> x->shift) == x->vpn;
	switch (k) {
	case K_INVLPG: return covers && (x->global || x->pcid == pcid);
	case K_ADDR_PCID: return covers && !x->global && x->pcid == pcid;
	case K_PCID: return !x->global && x->pcid == pcid;
	case K_PCID_G: return x->global || x->pcid == pcid;
	case K_ALL: return !x->global;
	default: return true;
	}
}

static void ref_kill(struct ref *r, enum ref_kill k, gva_t va, uint16_t pcid)
{
	size_t j = 0;
	for (size_t i = 0; i < r->n; i++)
		if (!ref_doomed(&r->e[i], k, va, pcid))
			r->e[j++] = r->e[i];
	r->n = j;
}

static uint64_t rng(uint64_t *s)
{
	/* xorshift64* */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

/* Few 1G, 2M and 4K pages and few PCIDs, so sizes overlap and tags collide often. */
static gva_t rand_va(uint64_t *s)
{
	uint64_t x = rng(s);
	return ((x & 3) << 30) | (((x >> 2) & 3) << 21) | (((x >> 4) & 7) << 12) | ((x >> 7) & 0xfff) |
	       (x >> 63 ? 0xffff800000000000ULL : 0);
}

static void check_hit(struct ref *r, gva_t va, uint16_t pcid, enum tlb_hit h,
		      const struct tlb_entry_info *o)
{
	if (h == TLB_MISS)
		return;
	assert_true(o->global || o->pcid == pcid);
	struct ref_ent *x = ref_find(r, va >> o->page_shift, o->page_shift, o->pcid, o->global);
	if (!x)
		fail_msg("TLB hit va %#llx pcid %u shift %u tag %u%s not in the reference",
			 (unsigned long long)va, pcid, o->page_shift, o->pcid, o->global ? " global" : "");
	assert_int_equal(o->frame, x->frame);
	assert_int_equal(o->access, x->access);
	assert_int_equal(o->pkey, x->pkey);
	assert_int_equal(o->dirty, x->dirty);
}

/* The hit path's hinted probes (tlb.h) answer a lookup only as the first level's full probe does
 * (4K first), with the same entry and stamp. Returns whether the 2M hint answered. */
static bool check_hinted(struct tlb *t, gva_t va, uint16_t pcid)
{
	uint32_t *s_hint, *s_l1;
	struct tlb_entry_info *h = tlb_find_hinted(t, va, pcid, &s_hint);
	bool by_2m = false;

	if (!h && (h = tlb_find_hinted_2m(t, va, pcid, &s_hint)))
		by_2m = true;
	struct tlb_entry_info *want = tlb_find_l1(t, va, pcid, &s_l1);
	if (h && (h != want || s_hint != s_l1))
		fail_msg("hinted probe of va %#llx pcid %u: entry %p, the first level's %p%s",
			 (unsigned long long)va, pcid, (void *)h, (void *)want, by_2m ? " (2M hint)" : "");
	return by_2m;
}

static unsigned random_run(const struct vmmu_tlb_geometry *g, uint64_t seed, unsigned steps)
{
	unsigned by_2m = 0;

	struct tlb *t = mk(g);
	struct ref r = { 0 };
	struct tlb_entry_info o;
	uint64_t s = seed;

	for (unsigned step = 0; step < steps; step++) {
		gva_t va = rand_va(&s);
		uint16_t pcid = (uint16_t)(rng(&s) % 4);
		unsigned op = (unsigned)(rng(&s) % 100);
		enum tlb_hit h;

		if (op < 40) {
			static const unsigned shifts[] = { 12, 21, 30 };
			unsigned shift = shifts[rng(&s) % 3];
			uint64_t x = rng(&s);
			struct tlb_entry_info in = {
				.frame = (x & 0xfffffffffULL) << 12 & ~((1ULL << shift) - 1),
				.page_shift = (uint8_t)shift, .access = (uint8_t)(x >> 40 & 7),
				.pkey = (uint8_t)(x >> 43 & 15), .dirty = x >> 47 & 1,
				.global = (x >> 48) % 5 == 0, .pcid = pcid,
			};
			tlb_fill(t, va, &in);
			ref_fill(&r, va, &in);
			/* Just filled: the address hits, though perhaps through another entry. */
			h = tlb_lookup(t, va, pcid, &o);
			assert_int_not_equal(h, TLB_MISS);
			check_hit(&r, va, pcid, h, &o);
		} else if (op < 80) {
			by_2m += check_hinted(t, va, pcid);
			h = tlb_lookup(t, va, pcid, &o);
			check_hit(&r, va, pcid, h, &o);
		} else {
			static const enum ref_kill kinds[] = { K_INVLPG, K_INVLPG, K_INVLPG, K_ADDR_PCID,
							       K_ADDR_PCID, K_ADDR_PCID, K_PCID, K_PCID_G,
							       K_ALL, K_ALL_G };
			enum ref_kill k = kinds[rng(&s) % 10];
			switch (k) {
			case K_INVLPG: tlb_invlpg(t, va, pcid); break;
			case K_ADDR_PCID: tlb_flush_addr_pcid(t, va, pcid); break;
			case K_PCID: tlb_flush_pcid(t, pcid, false); break;
			case K_PCID_G: tlb_flush_pcid(t, pcid, true); break;
			case K_ALL: tlb_flush_all(t, false); break;
			case K_ALL_G: tlb_flush_all(t, true); break;
			}
			ref_kill(&r, k, va, pcid);
		}
		if (tlb_check(t))
			fail_msg("tlb_check failed at step %u (seed %llu)", step, (unsigned long long)seed);
		/* Now and then, sweep every page and PCID: no hit may be stale. */
		if (step % 997 == 0) {
			for (uint64_t p = 0; p < 4 * 4 * 8 * 2; p++) {
				gva_t a = ((p & 3) << 30) | (((p >> 2) & 3) << 21) | (((p >> 4) & 7) << 12) |
					  (p >> 7 ? 0xffff800000000000ULL : 0);
				for (uint16_t q = 0; q < 5; q++) {
					h = tlb_lookup(t, a, q, &o);
					check_hit(&r, a, q, h, &o);
				}
			}
		}
	}
	free(r.e);
	tlb_destroy(t);
	return by_2m;
}

/*
 * The 2M hint answers only where no L1 4K entry could (the lookup order is 4K first): a 4K entry
 * and a 2M entry both cover A (a guest that remapped A's region with a 2M page and did not flush
 * A), and A's 4K hint names B's slot (B a 2M region on: 512 pages, the hints are 256).
 */
static void test_hint_2m_order(void **state)
{
	struct tlb *t = mk(NULL);
	const gva_t a = 0x40005000, b = a + (2ULL << 20), c = 0x80600000;   /* c: another 2M hint and region bucket */
	struct tlb_entry_info a4 = ent(0x100000, 12, 0, false), a2 = ent(0x200000, 21, 0, false);
	struct tlb_entry_info b4 = ent(0x101000, 12, 0, false), c2 = ent(0x400000, 21, 0, false);
	uint32_t *st, *st2;

	tlb_fill(t, a, &a4);
	tlb_fill(t, a, &a2);
	tlb_fill(t, c, &c2);
	tlb_fill(t, b, &b4);
	assert_int_equal(tlb_check(t), 0);
	assert_null(tlb_find_hinted(t, a, 0, &st));
	assert_null(tlb_find_hinted_2m(t, a, 0, &st));
	assert_null(tlb_find_hinted_2m(t, a + 0x10000, 0, &st));   /* the region's other pages too */
	struct tlb_entry_info *e = tlb_find_l1(t, a, 0, &st);
	assert_non_null(e);
	assert_int_equal(e->frame, 0x100000);
	/* A region no L1 4K entry lies in: the 2M hint answers, as the full probe does. */
	e = tlb_find_hinted_2m(t, c + 0x3000, 0, &st);
	assert_non_null(e);
	assert_int_equal(e->frame, 0x400000);
	assert_ptr_equal(tlb_find_l1(t, c + 0x3000, 0, &st2), e);
	assert_ptr_equal(st, st2);
	assert_null(tlb_find_hinted_2m(t, c, 1, &st));               /* another PCID's */
	/* A flushed: its region's 2M entry goes too (INVLPG removes every size). Filled again as
	 * 2M only, it answers through the hint. */
	tlb_invlpg(t, a, 0);
	tlb_fill(t, a, &a2);
	e = tlb_find_hinted_2m(t, a, 0, &st);
	assert_non_null(e);
	assert_int_equal(e->frame, 0x200000);
	assert_int_equal(tlb_check(t), 0);
	tlb_destroy(t);
}

static void test_random_vs_reference(void **state)
{
	/* Defaults (few evictions) and a tiny TLB (evictions everywhere, one-set arrays). */
	const struct vmmu_tlb_geometry tiny = {
		.l1_4k = { 2, 2 }, .l1_2m = { 1, 2 }, .l1_1g = { 1, 1 }, .l2 = { 4, 3 }, .l2_1g = { 1, 2 },
	};
	unsigned by_2m = 0;
	for (uint64_t seed = 1; seed <= 4; seed++) {
		by_2m += random_run(NULL, seed * 0x9e3779b97f4a7c15ULL, 20000);
		by_2m += random_run(&tiny, seed * 0x9e3779b97f4a7c15ULL + 1, 20000);
	}
	assert_true(by_2m > 100);   /* the 2M hint was tried, and answered (549 times) */
}

/* ---- exact replacement, against a set-associative reference ---- */

/*
 * A plain model of the first-level 4K array and the STLB for one PCID: each set's ways scanned
 * one by one, the victim the first way with the smallest stamp (a free way's is 0), one clock for
 * both arrays, ticked at every insertion and hit. (The TLB keeps the STLB's recency as an order
 * where it has at most 16 ways, and stamps where it has more: both must choose as this does.)
 */
struct lru_ref {
	unsigned sets[2], ways[2];
	uint64_t *vpn[2];      /* ~0: free */
	uint32_t *stamp[2];
	uint32_t clock;
};

static int lru_ref_find(const struct lru_ref *r, unsigned a, uint64_t vpn)
{
	size_t base = (size_t)(vpn % r->sets[a]) * r->ways[a];
	for (unsigned w = 0; w < r->ways[a]; w++)
		if (r->vpn[a][base + w] == vpn)
			return (int)(base + w);
	return -1;
}

static void lru_ref_insert(struct lru_ref *r, unsigned a, uint64_t vpn)
{
	size_t base = (size_t)(vpn % r->sets[a]) * r->ways[a], victim = base;
	int old = lru_ref_find(r, a, vpn);
	if (old >= 0) {
		r->vpn[a][old] = ~0ULL;
		r->stamp[a][old] = 0;
	}
	for (unsigned w = 1; w < r->ways[a]; w++)
		if (r->stamp[a][base + w] < r->stamp[a][victim])
			victim = base + w;
	r->vpn[a][victim] = vpn;
	r->stamp[a][victim] = ++r->clock;
}

/* INVLPG of @vpn (@vpn ~0: every page): its ways are free again, the lowest to be taken first. */
static void lru_ref_drop(struct lru_ref *r, uint64_t vpn)
{
	for (unsigned a = 0; a < 2; a++)
		for (size_t i = 0; i < (size_t)r->sets[a] * r->ways[a]; i++)
			if (vpn == ~0ULL || r->vpn[a][i] == vpn) {
				r->vpn[a][i] = ~0ULL;
				r->stamp[a][i] = 0;
			}
}

static enum tlb_hit lru_ref_lookup(struct lru_ref *r, uint64_t vpn)
{
	int i = lru_ref_find(r, 0, vpn);
	if (i >= 0) {
		r->stamp[0][i] = ++r->clock;
		return TLB_HIT_L1;
	}
	i = lru_ref_find(r, 1, vpn);
	if (i < 0)
		return TLB_MISS;
	r->stamp[1][i] = ++r->clock;
	lru_ref_insert(r, 0, vpn);
	return TLB_HIT_L2;
}

static void lru_run(const struct vmmu_tlb_geometry *g, uint64_t seed, unsigned steps)
{
	struct tlb *t = mk(g);
	struct lru_ref r = { .sets = { g->l1_4k.sets, g->l2.sets }, .ways = { g->l1_4k.ways, g->l2.ways } };
	/* Pages over four times the capacity of the two arrays: every set keeps evicting. */
	const uint64_t pages = 4ULL * (g->l1_4k.sets * g->l1_4k.ways + g->l2.sets * g->l2.ways);
	uint64_t s = seed;

	for (unsigned a = 0; a < 2; a++) {
		r.vpn[a] = malloc(sizeof(uint64_t) * r.sets[a] * r.ways[a]);
		r.stamp[a] = calloc((size_t)r.sets[a] * r.ways[a], sizeof(uint32_t));
		assert_non_null(r.vpn[a]);
		assert_non_null(r.stamp[a]);
		memset(r.vpn[a], 0xff, sizeof(uint64_t) * r.sets[a] * r.ways[a]);
	}
	/* Stamps from below 2^31 to above it: an unsigned order, which a signed compare gets wrong. */
	tlb_test_set_clock(t, (1u << 31) - steps);
	for (unsigned step = 0; step < steps; step++) {
		uint64_t vpn = rng(&s) % pages, op = rng(&s) % 4000;
		struct tlb_entry_info o;

		/* Now and then a page or everything dropped: free ways amid used ones. */
		if (op < 200) {
			tlb_invlpg(t, vpn << 12, 0);
			lru_ref_drop(&r, vpn);
			continue;
		}
		if (op == 200) {
			tlb_flush_all(t, true);
			lru_ref_drop(&r, ~0ULL);
			continue;
		}
		enum tlb_hit want = lru_ref_lookup(&r, vpn), got = tlb_lookup(t, vpn << 12, 0, &o);
		if (got != want)
			fail_msg("step %u, vpn %#llx: the TLB says %d, the reference %d (ways %u/%u)", step,
				 (unsigned long long)vpn, got, want, r.ways[0], r.ways[1]);
		if (got == TLB_MISS) {
			struct tlb_entry_info e = ent(vpn << 12, 12, 0, false);
			tlb_fill(t, vpn << 12, &e);
			lru_ref_insert(&r, 0, vpn);
			lru_ref_insert(&r, 1, vpn);
		} else if (o.frame != vpn << 12) {
			fail_msg("step %u, vpn %#llx: frame %#llx", step, (unsigned long long)vpn,
				 (unsigned long long)o.frame);
		}
		if (step % 1000 == 0 && tlb_check(t))
			fail_msg("tlb_check failed at step %u", step);
	}
	for (unsigned a = 0; a < 2; a++) {
		free(r.vpn[a]);
		free(r.stamp[a]);
	}
	tlb_destroy(t);
}

static void test_lru_exact_vs_reference(void **state)
{
	/* The defaults, then way counts from 1 to the limit of 32, odd and even, one set and many. */
	static const struct { struct vmmu_tlb_array l1, l2; } geo[] = {
		{ { 16, 4 }, { 128, 12 } }, { { 4, 3 }, { 8, 5 } }, { { 2, 8 }, { 4, 16 } },
		{ { 2, 5 }, { 2, 17 } }, { { 1, 32 }, { 1, 32 } }, { { 1, 1 }, { 2, 20 } },
	};
	for (unsigned i = 0; i < sizeof(geo) / sizeof(geo[0]); i++) {
		struct vmmu_tlb_geometry g = { .l1_4k = geo[i].l1, .l2 = geo[i].l2 };
		lru_run(&g, 0x9e3779b97f4a7c15ULL * (i + 1), 30000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fill_lookup_each_size),
		cmocka_unit_test(test_dirty_and_attrs_roundtrip), cmocka_unit_test(test_fill_host_fields),
		cmocka_unit_test(test_refill_replaces),
		cmocka_unit_test(test_pcid_isolation),
		cmocka_unit_test(test_global_any_pcid),
		cmocka_unit_test(test_invlpg),
		cmocka_unit_test(test_invlpg_large_pages),
		cmocka_unit_test(test_invlpg_all_sizes_at_once),
		cmocka_unit_test(test_after_miss),
		cmocka_unit_test(test_invpcid_addr),
		cmocka_unit_test(test_flush_pcid),
		cmocka_unit_test(test_flush_all),
		cmocka_unit_test(test_lru_l1),
		cmocka_unit_test(test_lru_large_pages),
		cmocka_unit_test(test_stlb_single_entry),
		cmocka_unit_test(test_lru_l2_capacity),
		cmocka_unit_test(test_stlb_hit_promotes),
		cmocka_unit_test(test_clock_wrap_keeps_order),
		cmocka_unit_test(test_geometry),
		cmocka_unit_test(test_count_and_stats),
		cmocka_unit_test(test_hint_2m_order), cmocka_unit_test(test_random_vs_reference),
		cmocka_unit_test(test_lru_exact_vs_reference),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
