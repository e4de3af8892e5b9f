/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the guest page walker (src/paging): every format, page size, permission rule,
 * reserved-bit rule, the error code, A/D updates and hostile tables. Guest memory here is a flat
 * 64 MiB buffer behind struct guest_mem_ops; gpas past it are "not memory".
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "paging/paging.h"

#define MEM_SIZE (64ULL << 20)

struct flatmem {
	uint8_t *mem;
	int cmpxchg_fail_once;     /* make the next cmpxchg lose a race: change the entry first */
	unsigned cmpxchgs;
	gpa_t readonly_below;      /* gpas below this refuse writes (a ROM) */
};

static int fm_read(void *o, gpa_t gpa, void *buf, unsigned len)
{
	struct flatmem *m = o;
	if (gpa >= MEM_SIZE || gpa + len > MEM_SIZE)
		return -ENOENT;
	memcpy(buf, m->mem + gpa, len);
	return 0;
}

static int fm_cmpxchg(void *o, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	struct flatmem *m = o;
	if (gpa >= MEM_SIZE || gpa + len > MEM_SIZE)
		return -ENOENT;
	if (gpa < m->readonly_below)
		return -EACCES;
	m->cmpxchgs++;
	if (m->cmpxchg_fail_once) {
		m->cmpxchg_fail_once = 0;
		/* Another vCPU sets the A bit first: the swap fails, the walk must start over. */
		if (len == 8)
			*(uint64_t *)(m->mem + gpa) |= PT_ACCESSED_MASK;
		else
			*(uint32_t *)(m->mem + gpa) |= PT_ACCESSED_MASK;
		return -EAGAIN;
	}
	if (len == 8) {
		uint64_t *p = (uint64_t *)(m->mem + gpa);
		return __atomic_compare_exchange_n(p, &old, val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ? 0 : -EAGAIN;
	}
	uint32_t *p = (uint32_t *)(m->mem + gpa), o32 = (uint32_t)old;
	return __atomic_compare_exchange_n(p, &o32, (uint32_t)val, false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ? 0 : -EAGAIN;
}

static const struct guest_mem_ops fm_ops = { fm_read, fm_cmpxchg };

static struct flatmem fm;

static int setup(void **state)
{
	fm.mem = calloc(1, MEM_SIZE);
	fm.cmpxchg_fail_once = 0;
	fm.cmpxchgs = 0;
	fm.readonly_below = 0;
	*state = &fm;
	return fm.mem ? 0 : -1;
}

static int teardown(void **state)
{
	free(fm.mem);
	return 0;
}

static void put64(gpa_t gpa, uint64_t v) { memcpy(fm.mem + gpa, &v, 8); }
static uint64_t get64(gpa_t gpa) { uint64_t v; memcpy(&v, fm.mem + gpa, 8); return v; }
static void put32(gpa_t gpa, uint32_t v) { memcpy(fm.mem + gpa, &v, 4); }
static uint32_t get32(gpa_t gpa) { uint32_t v; memcpy(&v, fm.mem + gpa, 4); return v; }

#define PRW (PT_PRESENT_MASK | PT_WRITABLE_MASK)
#define PRWU (PRW | PT_USER_MASK)

static struct paging_ctx ctx4(const char *cpu)
{
	struct paging_ctx c;
	memset(&c, 0, sizeof(c));
	assert_int_equal(cpu_model_fixed(&c.cpu, cpu), 0);
	c.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP;
	c.cr4 = X86_CR4_PAE;
	c.efer = EFER_LME | EFER_LMA | EFER_NXE;
	c.cr3 = 0x1000;
	return c;
}

/* A 4-level chain for gva 0x8000000000 + off: PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 ->
 * PT 0x4000 -> frame 0x100000. */
#define GVA 0x8000000000ULL
static void chain4(uint64_t f4, uint64_t f3, uint64_t f2, uint64_t f1)
{
	memset(fm.mem, 0, 0x200000);
	put64(0x1000 + 1 * 8, 0x2000 | f4);
	put64(0x2000, 0x3000 | f3);
	put64(0x3000, 0x4000 | f2);
	put64(0x4000, 0x100000 | f1);
}

static struct walk_result walk(const struct paging_ctx *c, gva_t a, unsigned acc)
{
	struct walk_result r;
	memset(&r, 0, sizeof(r));
	paging_walk(c, &fm_ops, &fm, a, acc, &r);
	return r;
}

static void test_4level_ok_sets_accessed(void **st)
{
	struct paging_ctx c = ctx4("intel");
	chain4(PRWU, PRWU, PRWU, PRWU);
	struct walk_result r = walk(&c, GVA + 0x123, 0);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x100123);
	assert_int_equal(r.page_shift, 12);
	assert_int_equal(r.refs, 4);
	assert_int_equal(r.access, ACC_ALL);
	assert_true(get64(0x1008) & PT_ACCESSED_MASK);
	assert_true(get64(0x2000) & PT_ACCESSED_MASK);
	assert_true(get64(0x3000) & PT_ACCESSED_MASK);
	assert_true(get64(0x4000) & PT_ACCESSED_MASK);
	assert_false(get64(0x4000) & PT_DIRTY_MASK);
	/* A write sets Dirty on the leaf only. */
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_true(get64(0x4000) & PT_DIRTY_MASK);
	assert_false(get64(0x3000) & PT_DIRTY_MASK);
}

static void test_not_present_each_level(void **st)
{
	struct paging_ctx c = ctx4("intel");
	for (int lvl = 0; lvl < 4; lvl++) {
		uint64_t f[4] = { PRWU, PRWU, PRWU, PRWU };
		f[lvl] = PT_WRITABLE_MASK | PT_USER_MASK;
		chain4(f[0], f[1], f[2], f[3]);
		struct walk_result r = walk(&c, GVA + 8, PFERR_WRITE);
		assert_int_equal(r.status, WALK_PF);
		assert_int_equal(r.ec, PFERR_WRITE);
		assert_int_equal(r.addr, GVA + 8);
		assert_int_equal(r.level, 4 - lvl);
		/* A faulting walk sets no Accessed bit anywhere. */
		assert_false(get64(0x1008) & PT_ACCESSED_MASK);
		assert_false(get64(0x2000) & PT_ACCESSED_MASK);
	}
}

static void test_user_supervisor(void **st)
{
	struct paging_ctx c = ctx4("intel");
	chain4(PRWU, PRWU, PRW, PRWU);   /* the PDE says supervisor */
	c.cpl = 3;
	struct walk_result r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_PF);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_USER);
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_USER | PFERR_WRITE);
	c.cpl = 0;
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.access, ACC_EXEC | ACC_WRITE);
	/* An implicit supervisor access at CPL 3 is a supervisor access. */
	c.cpl = 3;
	r = walk(&c, GVA, WALK_IMPLICIT);
	assert_int_equal(r.status, WALK_OK);
}

static void test_write_protect(void **st)
{
	struct paging_ctx c = ctx4("intel");
	chain4(PRWU, PT_PRESENT_MASK | PT_USER_MASK, PRWU, PRWU);  /* RW clear in the PDPTE */
	struct walk_result r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_PF);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_WRITE);
	c.cr0 &= ~X86_CR0_WP;
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_true(get64(0x4000) & PT_DIRTY_MASK);
	/* WP=0 does not let a user write through. */
	c.cpl = 3;
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_WRITE | PFERR_USER);
}

static void test_nx(void **st)
{
	struct paging_ctx c = ctx4("intel");
	chain4(PRWU, PRWU, PRWU | PT64_NX_MASK, PRWU);
	struct walk_result r = walk(&c, GVA, PFERR_FETCH);
	assert_int_equal(r.status, WALK_PF);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_FETCH);
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.access, ACC_WRITE | ACC_USER);
	/* Without EFER.NXE, bit 63 is reserved. */
	c.efer &= ~EFER_NXE;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	assert_int_equal(r.level, 2);
	/* ... and a fetch fault has no I/D bit without NXE or SMEP. */
	chain4(PRWU, PRWU, PRWU, PRWU & ~PT_PRESENT_MASK);
	r = walk(&c, GVA, PFERR_FETCH);
	assert_int_equal(r.ec, 0);
	c.cr4 |= X86_CR4_SMEP;
	r = walk(&c, GVA, PFERR_FETCH);
	assert_int_equal(r.ec, PFERR_FETCH);
}

static void test_smep_smap(void **st)
{
	struct paging_ctx c = ctx4("intel");
	chain4(PRWU, PRWU, PRWU, PRWU);
	c.cr4 |= X86_CR4_SMEP;
	struct walk_result r = walk(&c, GVA, PFERR_FETCH);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_FETCH);
	r = walk(&c, GVA, 0);  /* SMEP does not stop data accesses */
	assert_int_equal(r.status, WALK_OK);
	c.cr4 = X86_CR4_PAE | X86_CR4_SMAP;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT);
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_WRITE);
	r = walk(&c, GVA, PFERR_FETCH);   /* SMAP does not stop fetches */
	assert_int_equal(r.status, WALK_OK);
	c.ac = true;
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	/* AC does not lift SMAP for implicit accesses, even at CPL 3. */
	c.cpl = 3;
	r = walk(&c, GVA, WALK_IMPLICIT);
	assert_int_equal(r.ec, PFERR_PRESENT);
	/* A user access is not a supervisor one: SMAP does not apply. */
	c.ac = false;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
	/* Supervisor pages are fine under SMAP. */
	chain4(PRWU, PRWU, PRW, PRWU);
	c.cpl = 0;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
}

static void test_pku(void **st)
{
	struct paging_ctx c = ctx4("intel");
	chain4(PRWU, PRWU, PRWU, PRWU | (5ULL << PT64_PKEY_SHIFT));
	c.cr4 |= X86_CR4_PKE;
	c.cpl = 3;
	c.pkru = 1u << (2 * 5);          /* AD for key 5 */
	struct walk_result r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_USER | PFERR_PK);
	r = walk(&c, GVA, PFERR_FETCH);  /* keys never stop fetches */
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.pkey, 5);
	c.pkru = 2u << (2 * 5);          /* WD */
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_USER | PFERR_WRITE | PFERR_PK);
	c.cpl = 0;                       /* supervisor write: WD applies under WP only */
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_WRITE | PFERR_PK);
	c.cr0 &= ~X86_CR0_WP;
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	/* Keys apply to user pages only. */
	c.cr0 |= X86_CR0_WP;
	c.pkru = 3u << (2 * 5);
	chain4(PRWU, PRWU, PRWU, PRW | (5ULL << PT64_PKEY_SHIFT));
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	/* Without CR4.PKE the key bits are ignored. */
	c.cr4 &= ~X86_CR4_PKE;
	chain4(PRWU, PRWU, PRWU, PRWU | (5ULL << PT64_PKEY_SHIFT));
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
}

static void test_large_pages(void **st)
{
	struct paging_ctx c = ctx4("intel");
	/* 2 MiB: PDE with PS maps 0x400000. */
	chain4(PRWU, PRWU, 0, 0);
	put64(0x3000, 0x400000 | PRWU | PT_PAGE_SIZE_MASK);
	struct walk_result r = walk(&c, GVA + 0x12345, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x412345);
	assert_int_equal(r.page_shift, 21);
	assert_int_equal(r.refs, 3);
	assert_true(get64(0x3000) & PT_DIRTY_MASK);
	/* PAT (bit 12) is not an address bit of a large page; bit 13 is reserved. */
	put64(0x3000, 0x400000 | PRWU | PT_PAGE_SIZE_MASK | (1ULL << 12));
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x400000);
	put64(0x3000, 0x400000 | PRWU | PT_PAGE_SIZE_MASK | (1ULL << 13));
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	/* 1 GiB on a CPU that has it... */
	put64(0x2000, 0x40000000 | PRWU | PT_PAGE_SIZE_MASK);
	r = walk(&c, GVA + 0x1234567, 0);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x41234567);
	assert_int_equal(r.page_shift, 30);
	/* ...is reserved on one that lacks it. */
	c.cpu.features &= ~CPU_FEAT_1G;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	assert_int_equal(r.level, 3);
	/* PS in a PML4E is always reserved. */
	c.cpu.features |= CPU_FEAT_1G;
	put64(0x1008, 0x2000 | PRWU | PT_PAGE_SIZE_MASK);
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	assert_int_equal(r.level, 4);
}

static void test_reserved_bits(void **st)
{
	struct paging_ctx c = ctx4("intel");  /* MAXPHYADDR 46 */
	chain4(PRWU, PRWU, PRWU, PRWU | (1ULL << 46));
	struct walk_result r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD | PFERR_WRITE);
	chain4(PRWU, PRWU, PRWU, PRWU | (1ULL << 45));
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
	/* Bits 62:52 are ignored in 4-level paging. */
	chain4(PRWU | (1ULL << 52) | (1ULL << 58), PRWU, PRWU, PRWU);
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
	/* Bit 8 of a PML4E: ignored on Intel, reserved on AMD. */
	chain4(PRWU | PT_GLOBAL_MASK, PRWU, PRWU, PRWU);
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_OK);
	c = ctx4("amd");
	chain4(PRWU | PT_GLOBAL_MASK, PRWU, PRWU, PRWU);
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	/* The reserved check wins over a user-mode permission failure lower down... */
	chain4(PRWU, PRWU | (1ULL << 50), PRW, PRWU);
	c.cpl = 3;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD | PFERR_USER);
	/* ...but not over a non-present entry above it. */
	chain4(PRWU & ~PT_PRESENT_MASK, PRWU | (1ULL << 50), PRW, PRWU);
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_USER);
	/* A reserved bit in a non-present entry is not looked at. */
	chain4(PRWU, PRWU, PRWU, (PRWU & ~PT_PRESENT_MASK) | (1ULL << 51));
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_USER);
}

static void test_five_level_and_canonical(void **st)
{
	struct paging_ctx c = ctx4("intel");
	c.cr4 |= X86_CR4_LA57;
	memset(fm.mem, 0, 0x200000);
	/* gva 1 << 48 (PML5 index 1) */
	put64(0x1000 + 8, 0x5000 | PRWU);
	put64(0x5000, 0x2000 | PRWU);
	put64(0x2000, 0x3000 | PRWU);
	put64(0x3000, 0x4000 | PRWU);
	put64(0x4000, 0x100000 | PRWU);
	struct walk_result r = walk(&c, 1ULL << 48, 0);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.refs, 5);
	assert_int_equal(r.root_level, 5);
	assert_true(get64(0x1008) & PT_ACCESSED_MASK);
	r = walk(&c, 1ULL << 57, 0);
	assert_int_equal(r.status, WALK_GP);
	c.cr4 &= ~X86_CR4_LA57;
	r = walk(&c, 1ULL << 48, 0);
	assert_int_equal(r.status, WALK_GP);
	r = walk(&c, 0xffff800000000000ULL, 0);
	assert_int_not_equal(r.status, WALK_GP);
}

static void test_pae(void **st)
{
	struct paging_ctx c = ctx4("intel");
	c.efer = EFER_NXE;  /* PAE, not long mode */
	c.cr3 = 0x1020;     /* PDPT 32-byte aligned */
	memset(fm.mem, 0, 0x200000);
	put64(0x1020 + 2 * 8, 0x3000 | PT_PRESENT_MASK);   /* gva 0x80000000: PDPTE 2 */
	put64(0x3000, 0x4000 | PRWU);
	put64(0x4000, 0x100000 | PRWU | PT64_NX_MASK);
	struct walk_result r = walk(&c, 0x80000123, 0);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x100123);
	assert_int_equal(r.root_level, 3);
	assert_int_equal(r.access, ACC_WRITE | ACC_USER);   /* the PDPTE adds no rights */
	assert_false(get64(0x1030) & PT_ACCESSED_MASK);     /* and gets no A bit */
	assert_true(get64(0x3000) & PT_ACCESSED_MASK);
	/* PDPTE bit 1 (RW) is reserved under PAE. */
	put64(0x1030, 0x3000 | PT_PRESENT_MASK | PT_WRITABLE_MASK);
	r = walk(&c, 0x80000000, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	/* Loaded PDPTE registers win over memory. */
	c.pdptrs_valid = true;
	c.pdptrs[2] = 0x3000 | PT_PRESENT_MASK;
	r = walk(&c, 0x80000000, 0);
	assert_int_equal(r.status, WALK_OK);
	/* Bits 62:52 are reserved under PAE. */
	put64(0x4000, 0x100000 | PRWU | (1ULL << 55));
	r = walk(&c, 0x80000000, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	/* 2 MiB page in PAE. */
	put64(0x3000, 0x200000 | PRWU | PT_PAGE_SIZE_MASK);
	r = walk(&c, 0x80012345, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x212345);
	assert_int_equal(r.page_shift, 21);
}

static void test_32bit(void **st)
{
	struct paging_ctx c = ctx4("intel");
	c.cr4 = 0;
	c.efer = 0;
	c.cr3 = 0x1000;
	memset(fm.mem, 0, 0x200000);
	/* gva 0x00401234: PDE 1, PTE 1 */
	put32(0x1000 + 4, 0x2000 | PRWU);
	put32(0x2000 + 4, 0x100000 | PRWU);
	struct walk_result r = walk(&c, 0x401234, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x100234);
	assert_int_equal(r.root_level, 2);
	assert_int_equal(r.refs, 2);
	assert_true(get32(0x2004) & PT_DIRTY_MASK);
	assert_true(get32(0x1004) & PT_ACCESSED_MASK);
	/* PS without CR4.PSE is ignored: still a 4K walk. */
	put32(0x1004, 0x2000 | PRWU | PT_PAGE_SIZE_MASK);
	r = walk(&c, 0x401234, 0);
	assert_int_equal(r.page_shift, 12);
	/* With CR4.PSE: a 4 MiB page, PSE-36 high bits from 20:13. */
	c.cr4 = X86_CR4_PSE;
	put32(0x1004, 0x800000 | PRWU | PT_PAGE_SIZE_MASK | (0x3u << 13));
	r = walk(&c, 0x401234, 0);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.page_shift, 22);
	assert_int_equal(r.gpa, 0x300801234ULL);
	/* Bit 21 is always reserved in a 4 MiB PDE. */
	put32(0x1004, 0x800000 | PRWU | PT_PAGE_SIZE_MASK | (1u << 21));
	r = walk(&c, 0x401234, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	/* No NX in 32-bit paging, and no I/D bit without SMEP even if EFER.NXE. */
	c.efer = EFER_NXE;
	put32(0x1004, 0);
	r = walk(&c, 0x401234, PFERR_FETCH);
	assert_int_equal(r.ec, 0);
}

static void test_hostile_tables(void **st)
{
	struct paging_ctx c = ctx4("intel");
	memset(fm.mem, 0, 0x200000);
	/* Every level points back at the PML4 itself. */
	put64(0x1008, 0x1000 | PRWU);
	struct walk_result r = walk(&c, GVA | (1ULL << 30) | (1ULL << 21) | (1ULL << 12), 0);
	assert_int_equal(r.status, WALK_OK);
	/* The A update of the PML4E changes the entry every lower level read too: the later swaps
	 * fail and the walk runs once more, then finds A already set. */
	assert_int_equal(r.refs, 8);
	assert_int_equal(r.gpa, 0x1000);
	assert_true(get64(0x1008) & PT_ACCESSED_MASK);
	/* A table outside guest memory: a not-present fault, no crash. */
	put64(0x1008, (MEM_SIZE + 0x1000) | PRWU);
	r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_PF);
	assert_int_equal(r.ec, PFERR_WRITE);
	/* Every bit set in every entry: a reserved-bit fault at the root. */
	memset(fm.mem + 0x1000, 0xff, 0x1000);
	r = walk(&c, GVA, 0);
	assert_int_equal(r.ec, PFERR_PRESENT | PFERR_RSVD);
	/* A CR3 past memory. */
	c.cr3 = 1ULL << 40;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_PF);
}

static void test_cmpxchg_race_restarts(void **st)
{
	struct paging_ctx c = ctx4("intel");
	chain4(PRWU, PRWU, PRWU, PRWU);
	fm.cmpxchg_fail_once = 1;
	struct walk_result r = walk(&c, GVA, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.refs, 8);   /* walked twice */
	assert_true(get64(0x4000) & PT_DIRTY_MASK);
	/* Translate-only walks write nothing. */
	chain4(PRWU, PRWU, PRWU, PRWU);
	fm.cmpxchgs = 0;
	r = walk(&c, GVA, PFERR_WRITE | WALK_NO_AD);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(fm.cmpxchgs, 0);
	/* Tables in read-only memory: the A update fails, which ends as a not-present fault. */
	fm.readonly_below = 0x10000;
	r = walk(&c, GVA, 0);
	assert_int_equal(r.status, WALK_PF);
	assert_int_equal(r.ec, 0);
	fm.readonly_below = 0;
}

static void test_paging_off(void **st)
{
	struct paging_ctx c;
	memset(&c, 0, sizeof(c));
	cpu_model_fixed(&c.cpu, "amd");
	struct walk_result r = walk(&c, 0x123456789ULL, PFERR_WRITE);
	assert_int_equal(r.status, WALK_OK);
	assert_int_equal(r.gpa, 0x23456789ULL);
	assert_int_equal(r.refs, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_4level_ok_sets_accessed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_present_each_level, setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_supervisor, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_protect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_smep_smap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pku, setup, teardown),
		cmocka_unit_test_setup_teardown(test_large_pages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reserved_bits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_five_level_and_canonical, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pae, setup, teardown),
		cmocka_unit_test_setup_teardown(test_32bit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hostile_tables, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cmpxchg_race_restarts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_paging_off, setup, teardown),
	};
	return cmocka_run_group_tests_name("walker", tests, NULL, NULL);
}
