/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of nested paging: host memory accesses (cpu/hostmem), the EPT/NPT formats and their
 * 1-D walk (paging/tdp), and the 2-D walk (cpu/nested). Guest tables live in "guest physical"
 * memory [0, 1 GiB), backed by one 1 GiB host block and mapped by EPT/NPT tables that the tests
 * build in the same host arena with tdp_map(). Every test starts from a fresh arena and checks in
 * its teardown that every table frame came back. The reference counts asserted here are the table
 * in docs/walk-references.md.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "paging/hostmem.h"
#include "cpu/nested.h"
#include "host/host.h"
#include "paging/paging.h"
#include "paging/tdp.h"
#include "../common/tdp_build.h"

#define ARENA_BYTES (4ULL << 30)    /* NORESERVE: only touched frames cost memory */

static struct {
	struct host_arena *a;
	hpa_t gbase;                /* hpa of gpa 0: guest memory is [gbase, gbase + 1G) */
	uint64_t frames_base;       /* frames in use once guest memory is allocated */
	struct tdp_ctx tdp;
	struct paging_ctx g;
} fx;

#define PRWU (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK)

/* The guest address every test walks: index 1 at each level, offset 0x123. */
#define GVA ((1ULL << 39) | (1ULL << 30) | (1ULL << 21) | (1ULL << 12) | 0x123)

/* Where the guest tables live (gpa); PML5 only for 5-level guests. */
#define G_PML4 0x1000ULL
#define G_PDPT 0x2000ULL
#define G_PD   0x3000ULL
#define G_PT   0x4000ULL
#define G_DATA 0x5000ULL
#define G_PML5 0x6000ULL
#define G_BIG  0x201000ULL          /* the 4K page a 2M or 1G guest leaf leads GVA to */

/* ---- fixture ---- */

static void guest_ctx4(void)
{
	memset(&fx.g, 0, sizeof(fx.g));
	assert_int_equal(cpu_model_fixed(&fx.g.cpu, "intel"), 0);
	fx.g.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP;
	fx.g.cr4 = X86_CR4_PAE;
	fx.g.efer = EFER_LME | EFER_LMA | EFER_NXE;
	fx.g.cr3 = G_PML4;
	fx.g.cpl = 3;
}

static int setup(void **state)
{
	pfn_t pfn;

	(void)state;
	memset(&fx, 0, sizeof(fx));
	if (host_arena_create(ARENA_BYTES, &fx.a))
		return -1;
	if (host_frame_alloc(fx.a, HOST_ORDER_1G, &pfn))
		return -1;
	fx.gbase = pfn << HOST_PAGE_SHIFT;
	fx.frames_base = host_arena_frames_used(fx.a);
	return 0;
}

static int teardown(void **state)
{
	bool leak;

	(void)state;
	tdp_free_tables(&fx.tdp);
	/* Leak check: every table tdp_map() allocated is back. */
	leak = host_arena_frames_used(fx.a) != fx.frames_base;
	host_arena_destroy(fx.a);
	return leak ? -1 : 0;
}

/* A fresh, empty set of nested tables. */
static void use_tdp(enum tdp_format fmt, int levels, bool ad)
{
	tdp_free_tables(&fx.tdp);
	memset(&fx.tdp, 0, sizeof(fx.tdp));
	fx.tdp.fmt = fmt;
	fx.tdp.levels = levels;
	fx.tdp.ad = ad;
	fx.tdp.has_1g = true;
	fx.tdp.maxphyaddr = fmt == TDP_EPT ? 46 : 48;
	fx.tdp.arena = fx.a;
	assert_int_equal(tdp_alloc_root(&fx.tdp), 0);
}

static uint64_t *gptr(gpa_t gpa)
{
	uint8_t *page = host_pfn_to_ptr(fx.a, (fx.gbase + gpa) >> HOST_PAGE_SHIFT);
	return (uint64_t *)(page + (gpa & 0xfff));
}

static void gput(gpa_t gpa, uint64_t v)
{
	*gptr(gpa) = v;
}

static uint64_t gget(gpa_t gpa)
{
	return *gptr(gpa);
}

/* Map the nested page of size 2^shift holding @gpa, to the matching host page. */
static void nmap(gpa_t gpa, unsigned shift, unsigned rights)
{
	gpa_t base = gpa & ~((1ULL << shift) - 1);
	assert_int_equal(tdp_map(&fx.tdp, base, fx.gbase + base, shift, rights), 0);
}

/* Every page the guest walk of GVA touches, with nested pages of 2^shift. */
static void nmap_all(unsigned shift)
{
	const gpa_t pages[] = { G_PML4, G_PDPT, G_PD, G_PT, G_DATA, G_PML5, G_BIG };
	for (unsigned i = 0; i < sizeof(pages) / sizeof(pages[0]); i++)
		nmap(pages[i], shift, TDP_RWX);
}

/* A 4-level guest mapping of GVA with a leaf of 2^gshift; returns the gpa of GVA. */
static gpa_t guest_build(unsigned gshift)
{
	memset(gptr(G_PML4), 0, 0x6000);
	gput(G_PML4 + 8, G_PDPT | PRWU);
	if (gshift == 30) {
		gput(G_PDPT + 8, 0 | PRWU | PT_PAGE_SIZE_MASK);
		return 0x201123;
	}
	gput(G_PDPT + 8, G_PD | PRWU);
	if (gshift == 21) {
		gput(G_PD + 8, 0x200000 | PRWU | PT_PAGE_SIZE_MASK);
		return 0x201123;
	}
	gput(G_PD + 8, G_PT | PRWU);
	gput(G_PT + 8, G_DATA | PRWU);
	return G_DATA + 0x123;
}

static struct nested_result nwalk(gva_t gva, unsigned access, struct nested_tlb *t)
{
	struct nested_result r;
	assert_int_equal(nested_walk(&fx.g, &fx.tdp, t, NULL, gva, access, &r), 0);
	return r;
}

/* The nested entry at @level mapping @gpa. */
static uint64_t nent(gpa_t gpa, int level)
{
	hpa_t h = 0;
	uint64_t e;
	assert_int_equal(tdp_entry_hpa(&fx.tdp, gpa, level, &h), 0);
	assert_int_equal(hostmem_load(fx.a, h, 8, &e), 0);
	return e;
}

static void nent_set(gpa_t gpa, int level, uint64_t e)
{
	hpa_t h = 0;
	assert_int_equal(tdp_entry_hpa(&fx.tdp, gpa, level, &h), 0);
	assert_int_equal(hostmem_store(fx.a, h, 8, e), 0);
}

/* A standard 4K guest on 4K nested pages, everything mapped RWX. */
static void std_setup(enum tdp_format fmt, bool ad)
{
	guest_ctx4();
	use_tdp(fmt, 4, ad);
	guest_build(12);
	nmap_all(12);
}

/* ---- host memory ---- */

static void test_hostmem(void **st)
{
	pfn_t pfn;
	uint64_t v = 0;
	uint32_t v32 = 0;
	(void)st;

	assert_int_equal(host_frame_alloc(fx.a, 0, &pfn), 0);
	hpa_t h = pfn << HOST_PAGE_SHIFT;
	assert_int_equal(hostmem_store(fx.a, h + 8, 8, 0x1122334455667788ULL), 0);
	assert_int_equal(hostmem_load(fx.a, h + 8, 8, &v), 0);
	assert_int_equal(v, 0x1122334455667788ULL);
	assert_int_equal(hostmem_load(fx.a, h + 12, 4, &v), 0);
	assert_int_equal(v, 0x11223344);
	assert_int_equal(host_mem_ops.read(fx.a, h + 8, &v32, 4), 0);
	assert_int_equal(v32, 0x55667788);

	/* cmpxchg: a mismatch writes nothing. */
	assert_int_equal(hostmem_cmpxchg(fx.a, h + 8, 1, 2, 8), -EAGAIN);
	assert_int_equal(host_mem_ops.cmpxchg(fx.a, h + 8, 0x1122334455667788ULL, 5, 8), 0);
	assert_int_equal(hostmem_load(fx.a, h + 8, 8, &v), 0);
	assert_int_equal(v, 5);
	assert_int_equal(hostmem_cmpxchg(fx.a, h + 8, 5, 0xffffffff, 4), 0);
	assert_int_equal(hostmem_load(fx.a, h + 8, 8, &v), 0);
	assert_int_equal(v, 0xffffffffULL);

	/* Bad sizes and alignment. */
	assert_int_equal(hostmem_load(fx.a, h + 4, 8, &v), -EINVAL);
	assert_int_equal(hostmem_load(fx.a, h, 2, &v), -EINVAL);
	assert_int_equal(hostmem_store(fx.a, h + 1, 4, 0), -EINVAL);

	/* Not allocated, outside the arena, absurd: -ENOENT, nothing touched. */
	assert_int_equal(hostmem_load(fx.a, h + HOST_PAGE_SIZE, 8, &v), -ENOENT);
	assert_int_equal(hostmem_store(fx.a, h + HOST_PAGE_SIZE, 8, 1), -ENOENT);
	assert_int_equal(hostmem_load(fx.a, ARENA_BYTES, 8, &v), -ENOENT);
	assert_int_equal(hostmem_load(fx.a, 1ULL << 51, 8, &v), -ENOENT);
	assert_int_equal(hostmem_cmpxchg(fx.a, ~7ULL, 0, 1, 8), -ENOENT);
	assert_int_equal(host_mem_ops.read(fx.a, ARENA_BYTES + 8, &v, 8), -ENOENT);

	/* A freed frame is gone too. */
	host_frame_put(fx.a, pfn, 0);
	assert_int_equal(hostmem_load(fx.a, h, 8, &v), -ENOENT);
}

/* ---- 1-D walks ---- */

static void test_tdp_1d_refs(void **st)
{
	static const struct { unsigned shift; unsigned refs; } cases[] = {
		{ 12, 4 }, { 21, 3 }, { 30, 2 },
	};
	struct tdp_result r;
	(void)st;

	for (int fmt = TDP_EPT; fmt <= TDP_NPT; fmt++) {
		for (unsigned i = 0; i < 3; i++) {
			use_tdp((enum tdp_format)fmt, 4, true);
			nmap(G_DATA, cases[i].shift, TDP_RWX);
			assert_int_equal(tdp_walk(&fx.tdp, G_DATA + 0x123, 0, &r), 0);
			assert_int_equal(r.status, TDP_OK);
			assert_int_equal(r.hpa, fx.gbase + G_DATA + 0x123);
			assert_int_equal(r.page_shift, cases[i].shift);
			assert_int_equal(r.refs, cases[i].refs);
			assert_int_equal(r.rights, TDP_RWX);
			assert_int_equal(r.level, (int)(cases[i].shift - 12) / 9 + 1);
		}
		/* 5 levels, 4K: one more. */
		use_tdp((enum tdp_format)fmt, 5, true);
		nmap(G_DATA, 12, TDP_R | TDP_W);
		assert_int_equal(tdp_walk(&fx.tdp, G_DATA, PFERR_WRITE, &r), 0);
		assert_int_equal(r.status, TDP_OK);
		assert_int_equal(r.refs, 5);
		assert_int_equal(r.rights, TDP_R | TDP_W);
	}

	/* The native walker over x86-format tables in host memory (the NPT format): 4, 3, 2, 5. */
	for (unsigned i = 0; i < 3; i++) {
		struct walk_result w;
		guest_ctx4();
		use_tdp(TDP_NPT, 4, true);
		fx.g.cr3 = fx.tdp.root;
		nmap(G_DATA, cases[i].shift, TDP_RWX);
		assert_int_equal(paging_walk(&fx.g, &host_mem_ops, fx.a, G_DATA, 0, &w), WALK_OK);
		assert_int_equal(w.refs, cases[i].refs);
	}
	{
		struct walk_result w;
		guest_ctx4();
		fx.g.cr4 |= X86_CR4_LA57;
		use_tdp(TDP_NPT, 5, true);
		fx.g.cr3 = fx.tdp.root;
		nmap(G_DATA, 12, TDP_RWX);
		assert_int_equal(paging_walk(&fx.g, &host_mem_ops, fx.a, G_DATA, 0, &w), WALK_OK);
		assert_int_equal(w.refs, 5);
	}
}

/* Rights AND over levels; EPT A/D set only with A/D enabled; -EINVAL on a bad context. */
static void test_tdp_1d_rules(void **st)
{
	struct tdp_result r;
	struct tdp_ctx bad;
	(void)st;

	use_tdp(TDP_EPT, 4, false);
	nmap(G_DATA, 12, TDP_RWX);
	/* Take X away at level 3: the AND loses it. */
	nent_set(G_DATA, 3, nent(G_DATA, 3) & ~EPT_EXECUTABLE_MASK);
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, PFERR_FETCH, &r), 0);
	assert_int_equal(r.status, TDP_VIOLATION);
	assert_int_equal(r.rights, TDP_R | TDP_W);
	assert_int_equal(r.qual, EPT_QUAL_FETCH | EPT_QUAL_READABLE | EPT_QUAL_WRITABLE);
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, PFERR_WRITE, &r), 0);
	assert_int_equal(r.status, TDP_OK);
	for (int l = 1; l <= 4; l++)
		assert_false(nent(G_DATA, l) & (EPT_ACCESSED_MASK | EPT_DIRTY_MASK));

	/* The cached-translation check gives the same answer. */
	assert_false(tdp_check_access(&fx.tdp, TDP_R, PFERR_WRITE, &r));
	assert_int_equal(r.qual, EPT_QUAL_WRITE | EPT_QUAL_READABLE);
	assert_true(tdp_check_access(&fx.tdp, TDP_R, 0, &r));

	/* Execute-only: a misconfiguration unless supported. */
	nmap(G_DATA, 12, TDP_X);
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, PFERR_FETCH, &r), 0);
	assert_int_equal(r.status, TDP_MISCONFIG);
	fx.tdp.exec_only = true;
	nent_set(G_DATA, 3, nent(G_DATA, 3) | EPT_EXECUTABLE_MASK);
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, PFERR_FETCH, &r), 0);
	assert_int_equal(r.status, TDP_OK);
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
	assert_int_equal(r.status, TDP_VIOLATION);
	assert_int_equal(r.qual, EPT_QUAL_READ | EPT_QUAL_EXECUTABLE);

	/* Beyond the tables' reach: not present, no reference. */
	assert_int_equal(tdp_walk(&fx.tdp, 1ULL << 48, 0, &r), 0);
	assert_int_equal(r.status, TDP_VIOLATION);
	assert_int_equal(r.refs, 0);
	assert_int_equal(r.qual, EPT_QUAL_READ);

	bad = fx.tdp;
	bad.levels = 3;
	assert_int_equal(tdp_walk(&bad, 0, 0, &r), -EINVAL);
	bad = fx.tdp;
	bad.arena = NULL;
	assert_int_equal(tdp_walk(&bad, 0, 0, &r), -EINVAL);
}

static void test_ept_misconfig_1d(void **st)
{
	struct tdp_result r;
	const uint64_t leaf_ok = (fx.gbase + G_DATA) | EPT_RWX_MASK | (EPT_MT_WB << EPT_MT_SHIFT);
	(void)st;

	use_tdp(TDP_EPT, 4, true);
	nmap(G_DATA, 12, TDP_RWX);
	struct { uint64_t e; int level; enum tdp_status want; } cases[] = {
		{ (leaf_ok & ~EPT_RWX_MASK) | EPT_WRITABLE_MASK, 1, TDP_MISCONFIG },     /* W only */
		{ (leaf_ok & ~EPT_READABLE_MASK), 1, TDP_MISCONFIG },                    /* WX */
		{ (leaf_ok & ~EPT_MT_MASK) | (2ULL << EPT_MT_SHIFT), 1, TDP_MISCONFIG },  /* MT 2 */
		{ (leaf_ok & ~EPT_MT_MASK) | (3ULL << EPT_MT_SHIFT), 1, TDP_MISCONFIG },  /* MT 3 */
		{ (leaf_ok & ~EPT_MT_MASK) | (7ULL << EPT_MT_SHIFT), 1, TDP_MISCONFIG },  /* MT 7 */
		{ leaf_ok | (1ULL << 46), 1, TDP_MISCONFIG },            /* above MAXPHYADDR */
		{ leaf_ok | (1ULL << 51), 1, TDP_MISCONFIG },
		{ leaf_ok | EPT_PAGE_SIZE_MASK | (1ULL << 52) | (1ULL << 63), 1, TDP_OK }, /* ignored */
		{ (leaf_ok & ~EPT_MT_MASK) | (EPT_MT_UC << EPT_MT_SHIFT) | EPT_IPAT_MASK, 1, TDP_OK },
		{ 0, 1, TDP_VIOLATION },
		{ ~0ULL, 1, TDP_MISCONFIG },                             /* every bit */
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		nent_set(G_DATA, cases[i].level, cases[i].e);
		assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
		assert_int_equal(r.status, cases[i].want);
		assert_int_equal(r.refs, 4);
	}
	nent_set(G_DATA, 1, leaf_ok);

	/* Reserved bits of table entries: 7:3 in a PML4E, 6:3 in a PDPTE/PDE. */
	uint64_t e4 = nent(G_DATA, 4), e3 = nent(G_DATA, 3), e2 = nent(G_DATA, 2);
	for (int b = 3; b <= 7; b++) {
		nent_set(G_DATA, 4, e4 | (1ULL << b));
		assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
		assert_int_equal(r.status, TDP_MISCONFIG);
		assert_int_equal(r.refs, 1);
		assert_int_equal(r.level, 4);
	}
	nent_set(G_DATA, 4, e4);
	for (int b = 3; b <= 6; b++) {
		nent_set(G_DATA, 2, e2 | (1ULL << b));
		assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
		assert_int_equal(r.status, TDP_MISCONFIG);
		assert_int_equal(r.refs, 3);
	}
	nent_set(G_DATA, 2, e2);
	/* Table entries ignore 11:8 (A is 8): fine. */
	nent_set(G_DATA, 3, e3 | (7ULL << 9));
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
	assert_int_equal(r.status, TDP_OK);
	nent_set(G_DATA, 3, e3);

	/* Large leaves: address bits below the page size are reserved; 1G needs support. */
	use_tdp(TDP_EPT, 4, true);
	nmap(0, 30, TDP_RWX);
	uint64_t big = nent(0, 3);
	nent_set(0, 3, big | (1ULL << 12));
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
	assert_int_equal(r.status, TDP_MISCONFIG);
	nent_set(0, 3, big);
	fx.tdp.has_1g = false;
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
	assert_int_equal(r.status, TDP_MISCONFIG);
	fx.tdp.has_1g = true;
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
	assert_int_equal(r.status, TDP_OK);
	assert_int_equal(r.page_shift, 30);

	use_tdp(TDP_EPT, 4, true);
	nmap(0, 21, TDP_RWX);
	nent_set(0, 2, nent(0, 2) | (1ULL << 20));
	assert_int_equal(tdp_walk(&fx.tdp, G_DATA, 0, &r), 0);
	assert_int_equal(r.status, TDP_MISCONFIG);
}

static void test_eptp(void **st)
{
	struct tdp_ctx c;
	(void)st;

	memset(&c, 0, sizeof(c));
	c.maxphyaddr = 46;
	c.root = 0x12345000;
	c.levels = 4;
	c.ad = true;
	uint64_t eptp = tdp_eptp(&c);
	assert_int_equal(eptp, 0x12345000ULL | 6 | (3 << 3) | (1 << 6));
	memset(&c, 0, sizeof(c));
	c.maxphyaddr = 46;
	assert_int_equal(tdp_set_eptp(&c, eptp), 0);
	assert_int_equal(c.fmt, TDP_EPT);
	assert_int_equal(c.root, 0x12345000);
	assert_int_equal(c.levels, 4);
	assert_true(c.ad);
	assert_int_equal(tdp_set_eptp(&c, 0x1000 | 0 | (4 << 3)), 0);   /* UC, 5 levels, no A/D */
	assert_int_equal(c.levels, 5);
	assert_false(c.ad);
	assert_int_equal(tdp_set_eptp(&c, 0x1000 | 1 | (3 << 3)), -EINVAL);   /* WC */
	assert_int_equal(tdp_set_eptp(&c, 0x1000 | 6 | (2 << 3)), -EINVAL);   /* 3 levels */
	assert_int_equal(tdp_set_eptp(&c, 0x1000 | 6 | (3 << 3) | (1 << 7)), -EINVAL);
	assert_int_equal(tdp_set_eptp(&c, (1ULL << 46) | 6 | (3 << 3)), -EINVAL);
}

static void test_tdp_map_errors(void **st)
{
	hpa_t h;
	(void)st;

	use_tdp(TDP_EPT, 4, true);
	assert_int_equal(tdp_map(&fx.tdp, 0x1000, fx.gbase, 21, TDP_RWX), -EINVAL);
	assert_int_equal(tdp_map(&fx.tdp, 0, fx.gbase + 0x1000, 21, TDP_RWX), -EINVAL);
	assert_int_equal(tdp_map(&fx.tdp, 0, fx.gbase, 13, TDP_RWX), -EINVAL);
	assert_int_equal(tdp_map(&fx.tdp, 1ULL << 48, fx.gbase, 12, TDP_RWX), -EINVAL);
	assert_int_equal(tdp_map(&fx.tdp, 0, fx.gbase, 12, 8), -EINVAL);
	nmap(0x200000, 21, TDP_RWX);
	/* A leaf in the way of a table, a table in the way of a leaf. */
	assert_int_equal(tdp_map(&fx.tdp, 0x201000, fx.gbase, 12, TDP_RWX), -EEXIST);
	nmap(0x400000, 12, TDP_RWX);
	assert_int_equal(tdp_map(&fx.tdp, 0x400000, fx.gbase, 21, TDP_RWX), -EEXIST);
	assert_int_equal(tdp_entry_hpa(&fx.tdp, 0x201000, 1, &h), -ENOENT);
	assert_int_equal(tdp_entry_hpa(&fx.tdp, 0x201000, 2, &h), 0);
	assert_int_equal(tdp_entry_hpa(&fx.tdp, 0x201000, 5, &h), -EINVAL);
	/* Table frames: root + PDPT + PD + one PT. Freed by teardown (leak check). */
	assert_int_equal(host_arena_frames_used(fx.a) - fx.frames_base, 4);
}

/* ---- 2-D walks: exact references ---- */

static unsigned levels_of(unsigned shift)
{
	return 4 - (shift - 12) / 9;        /* 4-level tables: 4K 4, 2M 3, 1G 2 */
}

static void refs_matrix(enum tdp_format fmt, bool ad)
{
	static const unsigned shifts[] = { 12, 21, 30 };

	for (unsigned gi = 0; gi < 3; gi++) {
		for (unsigned ni = 0; ni < 3; ni++) {
			const unsigned gs = shifts[gi], ns = shifts[ni];
			const unsigned G = levels_of(gs), N = levels_of(ns);
			struct nested_result r;
			gpa_t gpa;

			guest_ctx4();
			use_tdp(fmt, 4, ad);
			gpa = guest_build(gs);
			nmap_all(ns);
			/* Cold (A/D updates in both dimensions), warm, and a write (D). */
			for (unsigned k = 0; k < 3; k++) {
				r = nwalk(GVA, k == 2 ? PFERR_WRITE : 0, NULL);
				assert_int_equal(r.status, NESTED_OK);
				assert_int_equal(r.gpa, gpa);
				assert_int_equal(r.hpa, fx.gbase + gpa);
				assert_int_equal(r.page_shift, gs < ns ? gs : ns);
				assert_int_equal(r.guest_refs, G);
				assert_int_equal(r.nested_refs, G * N + N);
				assert_int_equal(r.refs, G * (N + 1) + N);
				assert_int_equal(r.access, ACC_ALL);
				assert_int_equal(r.tdp_rights, TDP_RWX);
			}
		}
	}
}

static void test_refs_ept(void **st)
{
	(void)st;
	refs_matrix(TDP_EPT, true);
	refs_matrix(TDP_EPT, false);
}

static void test_refs_npt(void **st)
{
	(void)st;
	refs_matrix(TDP_NPT, true);
}

/* The documented headline numbers, spelled out. */
static void test_refs_table(void **st)
{
	static const struct { unsigned gs, ns, refs; } t[] = {
		{ 12, 12, 24 }, { 21, 12, 19 }, { 30, 12, 14 },
		{ 12, 21, 19 }, { 21, 21, 15 }, { 30, 21, 11 },
		{ 12, 30, 14 }, { 21, 30, 11 }, { 30, 30, 8 },
	};
	(void)st;
	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		guest_ctx4();
		use_tdp(TDP_EPT, 4, true);
		guest_build(t[i].gs);
		nmap_all(t[i].ns);
		assert_int_equal(nwalk(GVA, 0, NULL).refs, t[i].refs);
	}
}

static void test_refs_other_modes(void **st)
{
	struct nested_result r;
	(void)st;

	/* 5-level guest on 5-level EPT: 5 x 6 + 5 = 35; mixed: 29. */
	for (int gl = 4; gl <= 5; gl++) {
		for (int nl = 4; nl <= 5; nl++) {
			guest_ctx4();
			use_tdp(TDP_EPT, nl, true);
			guest_build(12);
			nmap_all(12);
			if (gl == 5) {
				fx.g.cr4 |= X86_CR4_LA57;
				fx.g.cr3 = G_PML5;
				gput(G_PML5, G_PML4 | PRWU);
			}
			r = nwalk(GVA, 0, NULL);
			assert_int_equal(r.status, NESTED_OK);
			assert_int_equal(r.refs, (unsigned)(gl * (nl + 1) + nl));
		}
	}

	/* PAE guest, PDPTEs read from memory: 3 x 5 + 4 = 19; from the PDPTE registers: 14. */
	guest_ctx4();
	use_tdp(TDP_EPT, 4, true);
	nmap_all(12);
	memset(gptr(G_PML4), 0, 0x5000);
	fx.g.efer = 0;
	fx.g.cr3 = G_PML4;
	gput(G_PML4 + 8, G_PD | PT_PRESENT_MASK);
	gput(G_PD + 8, G_PT | PRWU);
	gput(G_PT + 8, G_DATA | PRWU);
	r = nwalk(0x40201123, 0, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_int_equal(r.gpa, G_DATA + 0x123);
	assert_int_equal(r.refs, 19);
	fx.g.pdptrs_valid = true;
	fx.g.pdptrs[1] = G_PD | PT_PRESENT_MASK;
	assert_int_equal(nwalk(0x40201123, 0, NULL).refs, 14);

	/* 32-bit guest (4-byte entries): 2 x 5 + 4 = 14. */
	guest_ctx4();
	memset(gptr(G_PML4), 0, 0x5000);
	fx.g.cr4 = 0;
	fx.g.efer = 0;
	*(uint32_t *)gptr(G_PML4 + 4) = (uint32_t)(G_PT | PRWU);
	*(uint32_t *)gptr(G_PT + 4) = (uint32_t)(G_DATA | PRWU);
	r = nwalk(0x00401123, PFERR_WRITE, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_int_equal(r.gpa, G_DATA + 0x123);
	assert_int_equal(r.refs, 14);
	assert_true(*(uint32_t *)gptr(G_PT + 4) & PT_DIRTY_MASK);

	/* Paging off: the nested walk alone; a violation still has a valid, translated gva. */
	guest_ctx4();
	fx.g.cr0 = X86_CR0_PE;
	r = nwalk(G_DATA + 0x10, 0, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_int_equal(r.refs, 4);
	assert_int_equal(r.hpa, fx.gbase + G_DATA + 0x10);
	r = nwalk(0x300000, 0, NULL);
	assert_int_equal(r.status, NESTED_EPT_VIOLATION);
	assert_int_equal(r.exit_qual, EPT_QUAL_READ | EPT_QUAL_GVA_VALID | EPT_QUAL_GVA_TRANSLATED);
}

/* ---- EPT violations and misconfigurations in the 2-D walk ---- */

static void test_ept_violation_final(void **st)
{
	struct nested_result r;
	(void)st;

	/* Not present. */
	std_setup(TDP_EPT, true);
	nmap(G_DATA, 12, 0);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_EPT_VIOLATION);
	assert_int_equal(r.exit_qual, EPT_QUAL_READ | EPT_QUAL_GVA_VALID | EPT_QUAL_GVA_TRANSLATED);
	assert_int_equal(r.gpa, G_DATA + 0x123);
	assert_int_equal(r.gva, GVA);
	assert_false(r.table_fault);
	assert_int_equal(r.refs, 24);
	/* The guest walk finished first: its A bits are set. */
	assert_true(gget(G_PT + 8) & PT_ACCESSED_MASK);

	/* A write to a read-only page: bit 1, readable, not writable, bits 7 and 8. */
	nmap(G_DATA, 12, TDP_R);
	r = nwalk(GVA, PFERR_WRITE, NULL);
	assert_int_equal(r.status, NESTED_EPT_VIOLATION);
	assert_int_equal(r.exit_qual, EPT_QUAL_WRITE | EPT_QUAL_READABLE | EPT_QUAL_GVA_VALID |
				      EPT_QUAL_GVA_TRANSLATED);
	assert_int_equal(r.exit_qual, 0x18a);
	assert_int_equal(nwalk(GVA, 0, NULL).status, NESTED_OK);

	/* A fetch from a non-executable page: bit 2. */
	nmap(G_DATA, 12, TDP_R | TDP_W);
	r = nwalk(GVA, PFERR_FETCH, NULL);
	assert_int_equal(r.status, NESTED_EPT_VIOLATION);
	assert_int_equal(r.exit_qual, 0x19c);
	assert_int_equal(r.tdp.rights, TDP_R | TDP_W);
}

static void test_ept_violation_table(void **st)
{
	struct nested_result r;
	(void)st;

	for (int ad = 1; ad >= 0; ad--) {
		/* The guest PT page is not mapped: bit 7, not bit 8; read and write with A/D. */
		std_setup(TDP_EPT, ad);
		nmap(G_PT, 12, 0);
		r = nwalk(GVA, 0, NULL);
		assert_int_equal(r.status, NESTED_EPT_VIOLATION);
		assert_int_equal(r.exit_qual, (ad ? EPT_QUAL_WRITE : 0) | EPT_QUAL_READ |
					      EPT_QUAL_GVA_VALID);
		assert_int_equal(r.gpa, G_PT + 8);
		assert_int_equal(r.gva, GVA);
		assert_true(r.table_fault);
		assert_int_equal(r.guest_refs, 3);
		assert_int_equal(r.refs, 3 * 5 + 4);
		/* A write to the page does not change what a table access is. */
		r = nwalk(GVA, PFERR_WRITE, NULL);
		assert_int_equal(r.exit_qual, (ad ? EPT_QUAL_WRITE : 0) | EPT_QUAL_READ |
					      EPT_QUAL_GVA_VALID);

		/* The PDPT page: found after one guest read. */
		nmap(G_PT, 12, TDP_RWX);
		nmap(G_PDPT, 12, 0);
		r = nwalk(GVA, 0, NULL);
		assert_int_equal(r.gpa, G_PDPT + 8);
		assert_int_equal(r.refs, 5 + 4);
	}
}

/* A guest table page mapped read-only: without EPT A/D the read is a read and only the guest
 * A-bit update (a write) faults; with A/D every table access is a write. */
static void test_ept_table_readonly(void **st)
{
	struct nested_result r;
	(void)st;

	std_setup(TDP_EPT, false);
	nmap(G_PT, 12, TDP_R);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_EPT_VIOLATION);
	assert_int_equal(r.exit_qual, EPT_QUAL_WRITE | EPT_QUAL_READABLE | EPT_QUAL_GVA_VALID);
	assert_int_equal(r.gpa, G_PT + 8);
	assert_true(r.table_fault);
	/* All four entries read, no final walk, no extra walk for the swap: 4 x 5. */
	assert_int_equal(r.refs, 20);
	/* The upper levels got their A bit before the swap at level 1 faulted. */
	assert_true(gget(G_PD + 8) & PT_ACCESSED_MASK);
	assert_false(gget(G_PT + 8) & PT_ACCESSED_MASK);
	/* Once A is set there is nothing to write: the walk goes through. */
	gput(G_PT + 8, gget(G_PT + 8) | PT_ACCESSED_MASK);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_int_equal(r.refs, 24);
	/* A write needs D on the guest leaf: a write to the table page again. */
	r = nwalk(GVA, PFERR_WRITE, NULL);
	assert_int_equal(r.status, NESTED_EPT_VIOLATION);
	assert_int_equal(r.gpa, G_PT + 8);

	std_setup(TDP_EPT, true);
	nmap(G_PT, 12, TDP_R);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_EPT_VIOLATION);
	assert_int_equal(r.exit_qual, EPT_QUAL_READ | EPT_QUAL_WRITE | EPT_QUAL_READABLE |
				      EPT_QUAL_GVA_VALID);
	assert_int_equal(r.refs, 19);
}

static void test_ept_misconfig_2d(void **st)
{
	struct nested_result r;
	(void)st;

	/* W without R on the data page. */
	std_setup(TDP_EPT, true);
	nmap(G_DATA, 12, TDP_W);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_EPT_MISCONFIG);
	assert_int_equal(r.gpa, G_DATA + 0x123);
	assert_int_equal(r.exit_qual, 0);
	assert_false(r.table_fault);

	/* Memory type 2 on the data page. */
	nmap(G_DATA, 12, TDP_RWX);
	nent_set(G_DATA, 1, (nent(G_DATA, 1) & ~EPT_MT_MASK) | (2ULL << EPT_MT_SHIFT));
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_EPT_MISCONFIG);
	assert_int_equal(r.gpa, G_DATA + 0x123);

	/* A reserved bit in the EPT PDE that maps every guest table: the first table access. */
	nmap(G_DATA, 12, TDP_RWX);
	nent_set(G_PML4, 2, nent(G_PML4, 2) | (1ULL << 46));
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_EPT_MISCONFIG);
	assert_int_equal(r.gpa, G_PML4 + 8);
	assert_true(r.table_fault);
	assert_int_equal(r.refs, 3);
	assert_int_equal(r.tdp.level, 2);
	nent_set(G_PML4, 2, nent(G_PML4, 2) & ~(1ULL << 46));
}

/* ---- NPT ---- */

static void test_npf(void **st)
{
	struct nested_result r;
	(void)st;

	std_setup(TDP_NPT, true);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_int_equal(r.refs, 24);

	/* Final gpa not present: bit 32, U (every nested access is a user access), no P. */
	nmap(G_DATA, 12, 0);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_NPF);
	assert_int_equal(r.exit_qual, NPF_INFO_FINAL | PFERR_USER);
	assert_int_equal(r.gpa, G_DATA + 0x123);
	assert_false(r.table_fault);

	/* Final write to a read-only page, fetch from an NX page. */
	nmap(G_DATA, 12, TDP_R);
	r = nwalk(GVA, PFERR_WRITE, NULL);
	assert_int_equal(r.exit_qual, NPF_INFO_FINAL | PFERR_PRESENT | PFERR_WRITE | PFERR_USER);
	nmap(G_DATA, 12, TDP_R | TDP_W);
	r = nwalk(GVA, PFERR_FETCH, NULL);
	assert_int_equal(r.exit_qual, NPF_INFO_FINAL | PFERR_PRESENT | PFERR_USER | PFERR_FETCH);

	/* A reserved bit (above MAXPHYADDR 48) in the data page's leaf. */
	nmap(G_DATA, 12, TDP_RWX);
	nent_set(G_DATA, 1, nent(G_DATA, 1) | (1ULL << 50));
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.exit_qual, NPF_INFO_FINAL | PFERR_PRESENT | PFERR_RSVD | PFERR_USER);
	nmap(G_DATA, 12, TDP_RWX);

	/* A supervisor nested page: a user access cannot use it. */
	nent_set(G_DATA, 1, nent(G_DATA, 1) & ~PT_USER_MASK);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.exit_qual, NPF_INFO_FINAL | PFERR_PRESENT | PFERR_USER);
	nmap(G_DATA, 12, TDP_RWX);

	/* Guest table page not present: bit 33, and a table access is a user write. */
	nmap(G_PT, 12, 0);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_NPF);
	assert_int_equal(r.exit_qual, NPF_INFO_TABLE | PFERR_WRITE | PFERR_USER);
	assert_int_equal(r.gpa, G_PT + 8);
	assert_true(r.table_fault);
	assert_int_equal(r.refs, 19);

	/* Read-only guest table page: KVM's PFERR_NESTED_GUEST_PAGE (| U). */
	nmap(G_PT, 12, TDP_R);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.exit_qual, NPF_INFO_TABLE | PFERR_PRESENT | PFERR_WRITE | PFERR_USER);

	/* RSVD in the table walk. */
	nmap(G_PT, 12, TDP_RWX);
	nent_set(G_PT, 2, nent(G_PT, 2) | (1ULL << 51));
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.exit_qual, NPF_INFO_TABLE | PFERR_PRESENT | PFERR_RSVD | PFERR_WRITE |
				      PFERR_USER);
	assert_int_equal(r.gpa, G_PML4 + 8);
	nent_set(G_PT, 2, nent(G_PT, 2) & ~(1ULL << 51));
}

/* ---- A/D bits ---- */

static void test_ad_ept(void **st)
{
	struct nested_result r;
	const gpa_t tables[] = { G_PML4, G_PDPT, G_PD, G_PT };
	(void)st;

	std_setup(TDP_EPT, true);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_OK);
	/* Guest: A everywhere, no D (a read). */
	for (unsigned i = 0; i < 4; i++)
		assert_true(gget(tables[i] + 8) & PT_ACCESSED_MASK);
	assert_false(gget(G_PT + 8) & PT_DIRTY_MASK);
	/* EPT: A on every level; the guest table pages' leaves dirty (table accesses are writes);
	 * the data page's leaf only accessed. */
	for (int l = 2; l <= 4; l++)
		assert_true(nent(G_DATA, l) & EPT_ACCESSED_MASK);
	for (unsigned i = 0; i < 4; i++)
		assert_int_equal(nent(tables[i], 1) & (EPT_ACCESSED_MASK | EPT_DIRTY_MASK),
				 EPT_ACCESSED_MASK | EPT_DIRTY_MASK);
	assert_int_equal(nent(G_DATA, 1) & (EPT_ACCESSED_MASK | EPT_DIRTY_MASK), EPT_ACCESSED_MASK);
	/* A write: D in the guest leaf and the data page's EPT leaf; none in table levels. */
	r = nwalk(GVA, PFERR_WRITE, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_true(gget(G_PT + 8) & PT_DIRTY_MASK);
	assert_false(gget(G_PD + 8) & PT_DIRTY_MASK);
	assert_true(nent(G_DATA, 1) & EPT_DIRTY_MASK);
	assert_false(nent(G_DATA, 2) & EPT_DIRTY_MASK);

	/* Without A/D in the EPTP the EPT entries stay as they were; the guest's still change. */
	std_setup(TDP_EPT, false);
	r = nwalk(GVA, PFERR_WRITE, NULL);
	assert_int_equal(r.status, NESTED_OK);
	for (int l = 1; l <= 4; l++) {
		assert_false(nent(G_DATA, l) & (EPT_ACCESSED_MASK | EPT_DIRTY_MASK));
		assert_false(nent(G_PT, l) & (EPT_ACCESSED_MASK | EPT_DIRTY_MASK));
	}
	assert_true(gget(G_PT + 8) & PT_DIRTY_MASK);

	/* A probe (WALK_NO_AD) sets nothing anywhere. */
	std_setup(TDP_EPT, true);
	r = nwalk(GVA, PFERR_WRITE | WALK_NO_AD, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_int_equal(r.refs, 24);
	assert_false(gget(G_PML4 + 8) & PT_ACCESSED_MASK);
	assert_false(nent(G_DATA, 4) & EPT_ACCESSED_MASK);
	assert_false(nent(G_PT, 1) & EPT_ACCESSED_MASK);
}

static void test_ad_npt(void **st)
{
	struct nested_result r;
	(void)st;

	std_setup(TDP_NPT, true);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_true(gget(G_PML4 + 8) & PT_ACCESSED_MASK);
	for (int l = 2; l <= 4; l++)
		assert_true(nent(G_DATA, l) & PT_ACCESSED_MASK);
	/* Guest table pages: user writes, so dirty; the data page: accessed only. */
	assert_int_equal(nent(G_PT, 1) & (PT_ACCESSED_MASK | PT_DIRTY_MASK),
			 PT_ACCESSED_MASK | PT_DIRTY_MASK);
	assert_int_equal(nent(G_DATA, 1) & (PT_ACCESSED_MASK | PT_DIRTY_MASK), PT_ACCESSED_MASK);
	r = nwalk(GVA, PFERR_WRITE, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_true(nent(G_DATA, 1) & PT_DIRTY_MASK);
	assert_true(gget(G_PT + 8) & PT_DIRTY_MASK);
}

/* ---- guest faults stay the guest's ---- */

static void test_guest_pf(void **st)
{
	struct nested_result r;
	(void)st;

	for (int fmt = TDP_EPT; fmt <= TDP_NPT; fmt++) {
		std_setup((enum tdp_format)fmt, true);
		gput(G_PT + 8, 0);
		r = nwalk(GVA, 0, NULL);
		assert_int_equal(r.status, NESTED_GUEST_PF);
		assert_int_equal(r.pf_ec, PFERR_USER);
		assert_int_equal(r.guest.addr, GVA);
		assert_int_equal(r.exit_qual, 0);
		assert_int_equal(r.refs, 20);     /* 4 guest reads, each translated; no final walk */

		gput(G_PT + 8, G_DATA | PT_PRESENT_MASK | PT_USER_MASK);
		r = nwalk(GVA, PFERR_WRITE, NULL);
		assert_int_equal(r.status, NESTED_GUEST_PF);
		assert_int_equal(r.pf_ec, PFERR_PRESENT | PFERR_WRITE | PFERR_USER);

		gput(G_PT + 8, G_DATA | PRWU | (1ULL << 50));
		r = nwalk(GVA, 0, NULL);
		assert_int_equal(r.status, NESTED_GUEST_PF);
		assert_int_equal(r.pf_ec, PFERR_PRESENT | PFERR_RSVD | PFERR_USER);

		r = nwalk(0x0000800000000000ULL, 0, NULL);
		assert_int_equal(r.status, NESTED_GUEST_GP);
		assert_int_equal(r.refs, 0);
	}
}

/* ---- the nested TLB ---- */

static void test_nested_tlb(void **st)
{
	struct nested_tlb t;
	struct nested_result r;
	(void)st;

	for (int fmt = TDP_EPT; fmt <= TDP_NPT; fmt++) {
		memset(&t, 0, sizeof(t));
		std_setup((enum tdp_format)fmt, true);
		/* Off: always 24. On: 24 cold, then only the guest's 4 reads. */
		assert_int_equal(nwalk(GVA, 0, NULL).refs, 24);
		assert_int_equal(nwalk(GVA, 0, NULL).refs, 24);
		r = nwalk(GVA, 0, &t);
		assert_int_equal(r.refs, 24);
		assert_int_equal(t.hits, 0);
		r = nwalk(GVA, 0, &t);
		assert_int_equal(r.status, NESTED_OK);
		assert_int_equal(r.refs, 4);
		assert_int_equal(r.nested_refs, 0);
		assert_int_equal(r.hpa, fx.gbase + G_DATA + 0x123);
		assert_int_equal(t.hits, 5);
		/* A write through a clean cached page walks it (and sets D), once. */
		r = nwalk(GVA, PFERR_WRITE, &t);
		assert_int_equal(r.refs, 4 + 4);
		assert_true(nent(G_DATA, 1) & (fmt == TDP_EPT ? EPT_DIRTY_MASK : PT_DIRTY_MASK));
		assert_int_equal(nwalk(GVA, PFERR_WRITE, &t).refs, 4);
		/* Like a TLB, it keeps a translation until flushed. */
		nmap(G_DATA, 12, 0);
		assert_int_equal(nwalk(GVA, 0, &t).status, NESTED_OK);
		nested_tlb_flush(&t);
		r = nwalk(GVA, 0, &t);
		assert_int_equal(r.status, fmt == TDP_EPT ? NESTED_EPT_VIOLATION : NESTED_NPF);
		assert_int_equal(r.refs, 24);
		/* A refused access walks for the precise fault. */
		nmap(G_DATA, 12, TDP_R);
		nested_tlb_flush(&t);
		assert_int_equal(nwalk(GVA, 0, &t).status, NESTED_OK);
		r = nwalk(GVA, PFERR_WRITE, &t);
		assert_int_equal(r.status, fmt == TDP_EPT ? NESTED_EPT_VIOLATION : NESTED_NPF);
		assert_int_equal(r.refs, 4 + 4);
	}
}

/* ---- hostile nested tables ---- */

static void test_hostile(void **st)
{
	struct tdp_result tr;
	struct nested_result r;
	hpa_t root;
	uint64_t v;
	(void)st;

	/* A self-referencing EPT root: gpa 0 translates to the root page itself, in 4 reads. */
	use_tdp(TDP_EPT, 4, true);
	root = fx.tdp.root;
	assert_int_equal(hostmem_store(fx.a, root, 8, root | EPT_RWX_MASK), 0);
	assert_int_equal(tdp_walk(&fx.tdp, 0x123, PFERR_WRITE, &tr), 0);
	assert_int_equal(tr.status, TDP_OK);
	assert_int_equal(tr.hpa, root + 0x123);
	/* The four levels are one entry: the second A-bit swap finds the first one's change and the
	 * walk starts over once, as the guest walker does. */
	assert_int_equal(tr.refs, 8);
	assert_int_equal(tdp_walk(&fx.tdp, 0x123, PFERR_WRITE, &tr), 0);
	assert_int_equal(tr.refs, 4);
	/* ... and a guest whose tables are that page: some defined outcome, bounded work. */
	guest_ctx4();
	fx.g.cr3 = 0;
	for (gva_t gva = 0; gva < 0x4000; gva += 0x1000) {
		r = nwalk(gva, 0, NULL);
		assert_true(r.status == NESTED_OK || r.status == NESTED_GUEST_PF ||
			    r.status == NESTED_EPT_VIOLATION || r.status == NESTED_EPT_MISCONFIG);
		assert_true(r.refs <= 24);
	}
	assert_int_equal(hostmem_store(fx.a, root, 8, 0), 0);

	/* A table entry pointing outside the arena, or at a frame not allocated: not present. */
	assert_int_equal(hostmem_store(fx.a, root, 8, (1ULL << 40) | EPT_RWX_MASK), 0);
	assert_int_equal(tdp_walk(&fx.tdp, 0, 0, &tr), 0);
	assert_int_equal(tr.status, TDP_VIOLATION);
	assert_int_equal(tr.rights, 0);
	assert_int_equal(tr.refs, 2);
	assert_int_equal(hostmem_store(fx.a, root, 8, (ARENA_BYTES - 0x1000) | EPT_RWX_MASK), 0);
	assert_int_equal(tdp_walk(&fx.tdp, 0, 0, &tr), 0);
	assert_int_equal(tr.status, TDP_VIOLATION);
	/* Every bit set: a misconfiguration at the root. */
	assert_int_equal(hostmem_store(fx.a, root, 8, ~0ULL), 0);
	assert_int_equal(tdp_walk(&fx.tdp, 0, 0, &tr), 0);
	assert_int_equal(tr.status, TDP_MISCONFIG);
	assert_int_equal(hostmem_store(fx.a, root, 8, 0), 0);

	/* A leaf mapping host memory that does not exist: the translation is what the table says,
	 * and the memory behind it is unreachable. A guest table there reads as "not memory". */
	std_setup(TDP_EPT, true);
	assert_int_equal(tdp_map(&fx.tdp, G_DATA, 1ULL << 40, 12, TDP_RWX), 0);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_OK);
	assert_int_equal(r.hpa, (1ULL << 40) + 0x123);
	assert_int_equal(hostmem_load(fx.a, r.hpa & ~7ULL, 8, &v), -ENOENT);
	assert_int_equal(tdp_map(&fx.tdp, G_PT, 1ULL << 40, 12, TDP_RWX), 0);
	r = nwalk(GVA, 0, NULL);
	assert_int_equal(r.status, NESTED_GUEST_PF);
	assert_int_equal(r.pf_ec, PFERR_USER);

	/* NPT: a self-reference and an entry outside the arena. */
	use_tdp(TDP_NPT, 4, true);
	root = fx.tdp.root;
	assert_int_equal(hostmem_store(fx.a, root, 8, root | PRWU), 0);
	assert_int_equal(tdp_walk(&fx.tdp, 0x123, PFERR_WRITE, &tr), 0);
	assert_int_equal(tr.status, TDP_OK);
	assert_int_equal(tr.hpa, root + 0x123);
	assert_true(tr.refs <= 8);
	assert_int_equal(hostmem_store(fx.a, root, 8, (1ULL << 40) | PRWU), 0);
	assert_int_equal(tdp_walk(&fx.tdp, 0, 0, &tr), 0);
	assert_int_equal(tr.status, TDP_VIOLATION);
	assert_int_equal(tr.qual, PFERR_USER);
	assert_int_equal(hostmem_store(fx.a, root, 8, 0), 0);
	/* Beyond the tables' reach. */
	assert_int_equal(tdp_walk(&fx.tdp, 1ULL << 48, PFERR_WRITE, &tr), 0);
	assert_int_equal(tr.status, TDP_VIOLATION);
	assert_int_equal(tr.qual, PFERR_USER | PFERR_WRITE);
	assert_int_equal(tr.refs, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hostmem, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tdp_1d_refs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tdp_1d_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ept_misconfig_1d, setup, teardown),
		cmocka_unit_test_setup_teardown(test_eptp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tdp_map_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs_ept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs_npt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refs_other_modes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ept_violation_final, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ept_violation_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ept_table_readonly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ept_misconfig_2d, setup, teardown),
		cmocka_unit_test_setup_teardown(test_npf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ad_ept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ad_npt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_guest_pf, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nested_tlb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
