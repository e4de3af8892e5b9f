/* SPDX-License-Identifier: MIT */
/*
 * The hard MMU (src/mmu/tdp_mmu*.c) through the public API, EPT and NPT each: guests built by
 * hand (4-level tables written with vmmu_write_guest) run against native mode as the oracle
 * (values read, #PFs, MMIO exits and final memory identical); walk references per TLB miss; THP
 * host memory mapped 2M; MMIO sptes with their generation; read-only slots; dirty logging against
 * a reference that records every guest write (write-protect and D-bit modes, 2M pages, several
 * harvests); memslot delete/move zapping exactly their range; host munmap under a running guest;
 * aging; a randomized run audited after every step; every table frame returned; a vCPU's MMU
 * counters folded into the VM's when it goes; two vCPU threads faulting the same and different
 * pages (suite "threads", for TSan).
 *
 * Internals used on purpose: vm/vm.h (the VM's mm and MMU, to age, remap and tear the MMU down
 * alone, and a vCPU's MMU part with it), mmu/tdp_mmu.h (the D-bit mode and its sync, which no
 * hook reaches yet).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/host.h"
#include "mmu/tdp_mmu.h"
#include "paging/paging.h"
#include "../common/gpt_build.h"
#include "../common/test_assert.h"
#include "vm/vm.h"
#include "vmmu/vmmu.h"

#define MiB (1ULL << 20)
#define PRWU (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK)


static enum vmmu_mmu mode_native = VMMU_MMU_NATIVE, mode_ept = VMMU_MMU_EPT,
		     mode_npt = VMMU_MMU_NPT;

static const char *mode_name(enum vmmu_mmu m)
{
	return m == VMMU_MMU_EPT ? "ept" : m == VMMU_MMU_NPT ? "npt" : m == VMMU_MMU_SHADOW ? "shadow" : "native";
}

/* ---- building guests ---- */

struct g {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v;
	enum vmmu_mmu mode;
	uint64_t hva;          /* backing of slot 0 */
	uint64_t mem;          /* size of slot 0, at gpa 0 */
	gpa_t next_table;      /* bump allocator for guest table pages (in slot 0) */
	gpa_t root;
};

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic per seed, the same sequence in every mode. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static uint64_t rd(struct g *g, gpa_t a)
{
	uint64_t x = 0;
	assert_int_equal(vmmu_read_guest(g->vm, a, &x, 8), 0);
	return x;
}

static void wr(struct g *g, gpa_t a, uint64_t x)
{
	assert_int_equal(vmmu_write_guest(g->vm, a, &x, 8), 0);
}

static void set_slot(struct g *g, uint32_t id, uint32_t flags, gpa_t gpa, uint64_t size, uint64_t hva)
{
	struct vmmu_userspace_memory_region r = {
		.slot = id, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = hva,
	};
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &r), 0);
}

static gpa_t new_table(struct g *g)
{
	gpa_t t = g->next_table;
	g->next_table += 4096;
	return t;
}

static uint64_t g_rd(void *ctx, gpa_t a) { return rd(ctx, a); }
static void g_wr(void *ctx, gpa_t a, uint64_t x) { wr(ctx, a, x); }
static gpa_t g_new_table(void *ctx) { return new_table(ctx); }

/* Map @gva -> @gpa with a leaf at @level (1 = 4K, 2 = 2M) and flags @f. Returns the leaf's gpa. */
static gpa_t map(struct g *g, gva_t gva, gpa_t gpa, int level, uint64_t f)
{
	const struct gpt_builder b = { g, g_rd, g_wr, g_new_table };
	return gpt_map(&b, g->root, 4, gva, gpa, level, f);
}

static void regs64(struct g *g)
{
	struct vmmu_regs r = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = g->root, .cr4 = X86_CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), 0);
}

/* A VM in @mode with slot 0 = [0, @mem) over a fresh mapping, one vCPU in 4-level paging. */
static void g_init_cfg(struct g *g, enum vmmu_mmu mode, struct vmmu_vm_config cfg, uint64_t mem,
		       bool hugepage)
{
	memset(g, 0, sizeof(*g));
	cfg.mmu = mode;
	cfg.host = mode == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX;
	if (!cfg.host_mem_bytes)
		cfg.host_mem_bytes = 4ULL << 30;
	g->mode = mode;
	g->mem = mem;
	assert_int_equal(vmmu_vm_create(&cfg, &g->vm), 0);
	assert_int_equal(vmmu_vm_mmap(g->vm, mem, hugepage, &g->hva), 0);
	set_slot(g, 0, 0, 0, mem, g->hva);
	assert_int_equal(vmmu_vcpu_create(g->vm, 0, &g->v), 0);
	g->next_table = 0x100000;
	g->root = new_table(g);
	regs64(g);
}

static void g_init(struct g *g, enum vmmu_mmu mode, uint64_t mem)
{
	g_init_cfg(g, mode, (struct vmmu_vm_config){ 0 }, mem, false);
}

static struct vmmu_stats stats(struct g *g)
{
	struct vmmu_stats s;
	assert_int_equal(vmmu_vm_get_stats(g->vm, &s), 0);
	return s;
}

static void audit_ok(struct g *g)
{
	char why[256] = "";
	int rc = vmmu_vm_audit(g->vm, why, sizeof(why));
	TEST_ASSERT(rc == 0, "%s audit: %d %s", mode_name(g->mode), rc, why);
}

static struct vmmu_access_result acc(struct g *g, gva_t gva, uint32_t len, unsigned kind, void *buf)
{
	struct vmmu_access_result res;
	int rc = vmmu_vcpu_access(g->v, gva, len, kind, buf, &res);
	TEST_ASSERT(rc == 0, "%s access %#" PRIx64 ": %d", mode_name(g->mode), gva, rc);
	return res;
}

/* An access that must fail with @err (vmmu_vcpu_access's return). */
static void acc_fails(struct g *g, gva_t gva, unsigned kind, int err)
{
	struct vmmu_access_result res;
	uint64_t x = 0;
	int rc = vmmu_vcpu_access(g->v, gva, 8, kind, &x, &res);
	TEST_ASSERT(rc == err, "%s access %#" PRIx64 ": %d, not %d", mode_name(g->mode), gva, rc, err);
}

static uint64_t rd8(struct g *g, gva_t gva)
{
	uint64_t x = 0;
	struct vmmu_access_result r = acc(g, gva, 8, VMMU_ACC_READ, &x);
	TEST_ASSERT(r.status == VMMU_ACCESS_DONE, "read %#" PRIx64 ": status %d", gva, r.status);
	return x;
}

static void wr8(struct g *g, gva_t gva, uint64_t x)
{
	struct vmmu_access_result r = acc(g, gva, 8, VMMU_ACC_WRITE, &x);
	TEST_ASSERT(r.status == VMMU_ACCESS_DONE, "write %#" PRIx64 ": status %d", gva, r.status);
}

/* Drop the vCPU's TLB (a MOV CR3 to the same root, no PCIDs, no global pages). */
static void flush_tlb(struct g *g)
{
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, g->root), 0);
}

/* ---- transparency: the same guest in native mode and under the hard MMU ---- */

struct rec {
	int status;
	uint64_t val;
	uint32_t pf_ec;
	uint64_t pf_addr;
	uint64_t mmio_gpa;
	uint32_t mmio_len;
	bool mmio_write;
	uint32_t done;
};

#define SCRIPT_OPS 3000
#define T_MEM (32 * MiB)
#define T_RO_GPA 0x4000000ULL      /* a read-only slot, 1 MiB */
#define T_MMIO_GPA 0x10000000ULL   /* in no slot */

static const gva_t t_gvas[] = {
	0x400000, 0x401000, 0x402000, 0x43f000, 0x600000, 0x601000, 0x602000, 0x603000,
	0x40000000, 0x40001000, 0x401ff000, 0x700000, 0x701000, 0x702000, 0x20000000, 0x703000,
	0x6ff000,
};

/* Build the guest of the transparency test: RAM pages, a read-only, a not-present, a supervisor
 * and an NX page, a 2M page, pages over MMIO and over a read-only slot, a page table in MMIO. */
static void t_build(struct g *g)
{
	uint64_t ro_hva, pat[8];

	/* The read-only slot: filled while writable, then re-created read-only over the same hva. */
	assert_int_equal(vmmu_vm_mmap(g->vm, MiB, false, &ro_hva), 0);
	set_slot(g, 1, 0, T_RO_GPA, MiB, ro_hva);
	for (unsigned i = 0; i < 8; i++)
		pat[i] = 0xabcd000000000000ULL | i;
	for (gpa_t a = 0; a < MiB; a += 4096)
		assert_int_equal(vmmu_write_guest(g->vm, T_RO_GPA + a, pat, sizeof(pat)), 0);
	set_slot(g, 1, 0, T_RO_GPA, 0, ro_hva);
	set_slot(g, 1, VMMU_MEM_READONLY, T_RO_GPA, MiB, ro_hva);

	for (unsigned i = 0; i < 64; i++)
		map(g, 0x400000 + i * 4096ULL, 0x800000 + i * 4096ULL, 1, PRWU);
	map(g, 0x600000, 0x900000, 1, PT_PRESENT_MASK | PT_USER_MASK);
	map(g, 0x602000, 0x901000, 1, PT_PRESENT_MASK | PT_WRITABLE_MASK);
	map(g, 0x603000, 0x902000, 1, PRWU | PT64_NX_MASK);
	map(g, 0x6ff000, 0x903000, 1, PRWU);
	map(g, 0x40000000, 0x1000000, 2, PRWU);
	map(g, 0x700000, T_MMIO_GPA, 1, PRWU);
	map(g, 0x701000, T_RO_GPA, 1, PRWU);
	map(g, 0x702000, T_RO_GPA + 0x1000, 1, PRWU);
	map(g, 0x703000, 0x900000, 1, PRWU);
	/* gva 0x20000000: its PD entry points to a page table in no slot, in the very page that
	 * gva 0x700000 reads as MMIO (so the table access meets an MMIO spte: EPT says nothing
	 * about which access misconfigured, the MMU must find out). */
	gpa_t pde = map(g, 0x20000000, 0x800000, 2, PRWU);
	wr(g, pde, T_MMIO_GPA | PRWU);
	for (gpa_t a = 0x800000; a < 0x2000000; a += 4096)
		wr(g, a, a * 7 + 1);
}

static void t_run(struct g *g, struct rec *out)
{
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (unsigned i = 0; i < SCRIPT_OPS; i++) {
		struct vmmu_access_result r;
		uint64_t x = rnd(), buf = x;
		uint64_t pick = rnd();
		gva_t gva = t_gvas[pick % (sizeof(t_gvas) / sizeof(t_gvas[0]))];
		static const uint32_t lens[] = { 1, 2, 4, 8 };
		uint32_t len = lens[(pick >> 8) & 3];
		unsigned kind = (pick >> 16) % 10 < 5 ? VMMU_ACC_READ
				: (pick >> 16) % 10 < 9 ? VMMU_ACC_WRITE : VMMU_ACC_FETCH;
		int rc;

		if ((pick >> 24) % 16 == 0)
			gva += 4096 - 4;            /* crosses into the next page */
		else
			gva += ((pick >> 32) % (4096 / 8)) * 8;
		if (i % 200 == 100)
			assert_int_equal(vmmu_vcpu_set_cpl(g->v, (i / 200) % 2 ? 3 : 0, false), 0);
		if (i % 500 == 250) {
			/* The guest remaps a page, then flushes it as the architecture asks. */
			unsigned j = (unsigned)(i / 500) % 64;
			map(g, 0x400000 + j * 4096ULL, 0x840000 + j * 4096ULL, 1, PRWU);
			assert_int_equal(vmmu_vcpu_invlpg(g->v, 0x400000 + j * 4096ULL), 0);
		}
		rc = vmmu_vcpu_access(g->v, gva, len, kind, &buf, &r);
		TEST_ASSERT(rc == 0, "%s op %u gva %#" PRIx64 ": %d", mode_name(g->mode), i, gva, rc);
		memset(&out[i], 0, sizeof(out[i]));
		out[i].status = r.status;
		out[i].done = r.done;
		if (r.status == VMMU_ACCESS_PF) {
			out[i].pf_ec = r.pf_ec;
			out[i].pf_addr = r.pf_addr;
		} else if (r.status == VMMU_ACCESS_MMIO) {
			out[i].mmio_gpa = r.mmio_gpa;
			out[i].mmio_len = r.mmio_len;
			out[i].mmio_write = r.mmio_write;
			if (!r.mmio_write) {
				r.mmio_data = r.mmio_gpa * 31;
				assert_int_equal(vmmu_vcpu_complete_mmio(g->v, &r, &buf), 0);
			} else {
				out[i].val = r.mmio_data;
			}
		}
		if (kind != VMMU_ACC_WRITE)
			out[i].val = buf;
	}
}

static void compare_with_native(enum vmmu_mmu mode)
{
	struct rec *want = calloc(SCRIPT_OPS, sizeof(*want)), *got = calloc(SCRIPT_OPS, sizeof(*got));
	uint8_t *mem_want = malloc(T_MEM), *mem_got = malloc(T_MEM);
	struct g n, h;

	assert_non_null(want && got && mem_want && mem_got);
	g_init(&n, VMMU_MMU_NATIVE, T_MEM);
	t_build(&n);
	t_run(&n, want);
	assert_int_equal(vmmu_read_guest(n.vm, 0, mem_want, T_MEM), 0);
	vmmu_vm_destroy(n.vm);

	g_init(&h, mode, T_MEM);
	t_build(&h);
	t_run(&h, got);
	assert_int_equal(vmmu_read_guest(h.vm, 0, mem_got, T_MEM), 0);
	audit_ok(&h);
	for (unsigned i = 0; i < SCRIPT_OPS; i++)
		TEST_ASSERT(!memcmp(&want[i], &got[i], sizeof(want[i])),
			    "%s op %u: status %d/%d val %#" PRIx64 "/%#" PRIx64 " ec %#x/%#x addr %#"
			    PRIx64 "/%#" PRIx64 " mmio %#" PRIx64 "/%#" PRIx64 " len %u/%u done %u/%u",
			    mode_name(mode), i, want[i].status, got[i].status, want[i].val, got[i].val,
			    want[i].pf_ec, got[i].pf_ec, want[i].pf_addr, got[i].pf_addr,
			    want[i].mmio_gpa, got[i].mmio_gpa, want[i].mmio_len, got[i].mmio_len,
			    want[i].done, got[i].done);
	TEST_ASSERT(!memcmp(mem_want, mem_got, T_MEM), "%s: final guest memory differs",
		    mode_name(mode));
	/* Every kind of outcome happened. */
	unsigned kinds[4] = { 0 };
	for (unsigned i = 0; i < SCRIPT_OPS; i++)
		kinds[got[i].status]++;
	assert_true(kinds[VMMU_ACCESS_DONE] && kinds[VMMU_ACCESS_PF] && kinds[VMMU_ACCESS_MMIO]);
	struct vmmu_stats s = stats(&h);
	assert_true(s.pf_taken > 0 && s.pf_fixed > 0);
	assert_true(s.exits_by_reason[mode == VMMU_MMU_EPT ? VMMU_EXIT_EPT_VIOLATION : VMMU_EXIT_NPF] > 0);
	assert_int_equal(s.exits_by_reason[VMMU_EXIT_PF], 0);   /* #PF goes straight to the guest */
	vmmu_vm_destroy(h.vm);
	free(want);
	free(got);
	free(mem_want);
	free(mem_got);
}

static void test_same_as_native(void **state)
{
	compare_with_native(*(enum vmmu_mmu *)*state);
}

/* ---- walk references per TLB miss ---- */

/* Touch @n pages at gva 0x400000.. (4K guest pages), then measure one cold TLB miss on EPT/NPT
 * tables already filled: refs for that miss, and refs per miss over the whole first-touch run. */
static void refs_run(struct g *g, unsigned n, unsigned *cold, double *per_miss)
{
	for (unsigned i = 0; i < n; i++)
		map(g, 0x400000 + i * 4096ULL, 0x800000 + i * 4096ULL, 1, PRWU);
	flush_tlb(g);
	struct vmmu_stats s0 = stats(g);
	for (unsigned i = 0; i < n; i++)
		wr8(g, 0x400000 + i * 4096ULL, i);
	struct vmmu_stats s1 = stats(g);
	*per_miss = (double)(s1.walk_refs - s0.walk_refs) / (double)(s1.tlb_misses - s0.tlb_misses);
	flush_tlb(g);
	s0 = stats(g);
	assert_int_equal(rd8(g, 0x400000 + 7 * 4096ULL), 7);
	s1 = stats(g);
	assert_int_equal(s1.tlb_misses - s0.tlb_misses, 1);
	assert_int_equal(s1.exits - s0.exits, 0);
	*cold = (unsigned)(s1.walk_refs - s0.walk_refs);
}

static void test_walk_refs(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	struct g g;
	unsigned cold;
	double per_miss;

	g_init(&g, mode, 32 * MiB);
	refs_run(&g, 256, &cold, &per_miss);
	assert_int_equal(cold, 24);   /* 4 x (4 + 1) + 4: 4K guest on 4K nested leaves */
	print_message("%s 4K: %u refs per cold miss, %.2f per miss over a first touch of 256 pages\n",
		      mode_name(mode), cold, per_miss);
	assert_int_equal(stats(&g).pages_2m, 0);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);

	/* THP host memory: 2M nested leaves, 3 nested references instead of 4. */
	g_init_cfg(&g, mode, (struct vmmu_vm_config){ .thp = 2 }, 32 * MiB, true);
	assert_int_equal(g.hva & (2 * MiB - 1), 0);
	refs_run(&g, 256, &cold, &per_miss);
	assert_int_equal(cold, 19);   /* 4 x (3 + 1) + 3 */
	print_message("%s 2M: %u refs per cold miss, %.2f per miss over a first touch of 256 pages\n",
		      mode_name(mode), cold, per_miss);
	struct vmmu_stats s = stats(&g);
	assert_true(s.pages_2m > 0);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);

	/* hugetlb 1G host memory under a 1G slot: one 1G nested leaf, 2 nested references. */
	g_init_cfg(&g, mode, (struct vmmu_vm_config){ .hugetlb = VMMU_HUGETLB_1G }, 1ULL << 30,
		   false);
	refs_run(&g, 256, &cold, &per_miss);
	assert_int_equal(cold, 14);   /* 4 x (2 + 1) + 2 */
	print_message("%s 1G: %u refs per cold miss, %.2f per miss over a first touch of 256 pages\n",
		      mode_name(mode), cold, per_miss);
	s = stats(&g);
	assert_int_equal(s.pages_1g, 1);
	assert_int_equal(s.pages_2m + s.pages_4k, 0);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

/* ---- MMIO ---- */

static void test_mmio(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	const unsigned misconfig = mode == VMMU_MMU_EPT ? VMMU_EXIT_EPT_MISCONFIG : VMMU_EXIT_NPF;
	struct vmmu_access_result r;
	struct vmmu_stats s0, s1;
	uint64_t x = 0, hva2;
	struct g g;

	g_init(&g, mode, 8 * MiB);
	map(&g, 0x400000, 0x10000000, 1, PRWU);     /* gpa 256 MiB: no slot */
	r = acc(&g, 0x400010, 4, VMMU_ACC_READ, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(r.mmio_gpa, 0x10000010);
	assert_int_equal(r.mmio_len, 4);
	assert_false(r.mmio_write);
	s0 = stats(&g);
	assert_int_equal(s0.pf_mmio_spte_created, 1);
	audit_ok(&g);

	/* Again, and as a write: the MMIO spte's fast path, no new spte. */
	x = 0x55;
	r = acc(&g, 0x400020, 1, VMMU_ACC_WRITE, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(r.mmio_gpa, 0x10000020);
	assert_true(r.mmio_write);
	assert_int_equal(r.mmio_data & 0xff, 0x55);
	r = acc(&g, 0x400028, 8, VMMU_ACC_READ, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	s1 = stats(&g);
	assert_int_equal(s1.pf_mmio_spte_created, 1);
	assert_int_equal(s1.exits_by_reason[misconfig] - s0.exits_by_reason[misconfig], 2);
	assert_int_equal(s1.pf_taken, s0.pf_taken);   /* the fast MMIO path takes no page fault */

	/* A memslot over the gpa makes the spte stale: the access now reads RAM. */
	assert_int_equal(vmmu_vm_mmap(g.vm, 2 * MiB, false, &hva2), 0);
	set_slot(&g, 1, 0, 0x10000000, 2 * MiB, hva2);
	wr(&g, 0x10000028, 0x1234567890abcdefULL);
	flush_tlb(&g);
	assert_int_equal(rd8(&g, 0x400028), 0x1234567890abcdefULL);
	audit_ok(&g);

	/* Deleted again: MMIO again, with a new spte. */
	set_slot(&g, 1, 0, 0x10000000, 0, hva2);
	flush_tlb(&g);
	r = acc(&g, 0x400028, 8, VMMU_ACC_READ, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(stats(&g).pf_mmio_spte_created, 2);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

/* ---- read-only slots ---- */

static void test_readonly_slot(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	struct vmmu_access_result r;
	uint64_t hva, x = 0x77;
	struct g g;

	g_init(&g, mode, 8 * MiB);
	assert_int_equal(vmmu_vm_mmap(g.vm, 2 * MiB, false, &hva), 0);
	set_slot(&g, 1, 0, 0x20000000, 2 * MiB, hva);
	wr(&g, 0x20001008, 0xfeed);
	set_slot(&g, 1, 0, 0x20000000, 0, hva);
	set_slot(&g, 1, VMMU_MEM_READONLY, 0x20000000, 2 * MiB, hva);
	map(&g, 0x400000, 0x20001000, 1, PRWU);
	assert_int_equal(rd8(&g, 0x400008), 0xfeed);
	r = acc(&g, 0x400008, 8, VMMU_ACC_WRITE, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(r.mmio_gpa, 0x20001008);
	assert_true(r.mmio_write);
	assert_int_equal(rd(&g, 0x20001008), 0xfeed);    /* the write did not land */
	assert_int_equal(stats(&g).pf_mmio_spte_created, 0);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

/* ---- dirty logging against a reference ---- */

#define D_SLOT 1
#define D_GPA 0x40000000ULL        /* 1 GiB; mapped by the guest at the same gva, 2M pages */
#define D_SIZE (32 * MiB)
#define D_PAGES (D_SIZE / 4096)

static void harvest(struct g *g, uint64_t *bm, bool dbit)
{
	if (dbit) {
		vmmu_rcu_read_lock();
		tdp_mmu_sync_dirty_log(g->vm->mmu, memslots_id_to_slot(g->vm->slots, D_SLOT));
		vmmu_rcu_read_unlock();
	}
	assert_int_equal(vmmu_get_dirty_log(g->vm, D_SLOT, bm), 0);
}

static void dirty_log_run(enum vmmu_mmu mode, bool dbit, bool fastpf)
{
	uint64_t bm[D_PAGES / 64], hva, ref[D_PAGES / 64];
	struct vmmu_stats s;
	struct g g;

	g_init_cfg(&g, mode, (struct vmmu_vm_config){ .thp = 2, .opts_off = fastpf ? 0 : VMMU_OPT_FASTPF },
		   2 * MiB, true);
	if (dbit)
		tdp_mmu_set_dirty_mode(g.vm->mmu, TDP_DIRTY_DBIT);
	assert_int_equal(vmmu_vm_mmap(g.vm, D_SIZE, true, &hva), 0);
	set_slot(&g, D_SLOT, 0, D_GPA, D_SIZE, hva);
	for (gpa_t a = 0; a < D_SIZE; a += 2 * MiB)
		map(&g, D_GPA + a, D_GPA + a, 2, PRWU);
	for (gpa_t a = 0; a < D_SIZE; a += 4096)
		rd8(&g, D_GPA + a);
	s = stats(&g);
	assert_int_equal(s.pages_2m, D_SIZE / (2 * MiB) + 1);   /* and slot 0's 2M */
	audit_ok(&g);

	set_slot(&g, D_SLOT, VMMU_MEM_LOG_DIRTY_PAGES, D_GPA, D_SIZE, hva);
	s = stats(&g);
	assert_int_equal(s.pages_2m, 1);                         /* the data slot's split */
	assert_true(s.pages_4k >= D_PAGES);
	audit_ok(&g);
	harvest(&g, bm, dbit);
	for (unsigned w = 0; w < D_PAGES / 64; w++)
		assert_int_equal(bm[w], 0);                       /* nothing written yet */

	rng_state = 12345;
	for (unsigned round = 0; round < 6; round++) {
		memset(ref, 0, sizeof(ref));
		unsigned n = round == 5 ? D_PAGES : 1 + (unsigned)(rnd() % 3000);
		for (unsigned i = 0; i < n; i++) {
			uint64_t p = round == 5 ? i : rnd() % D_PAGES, k = rnd();
			gva_t gva = D_GPA + p * 4096;
			if (k % 4 == 0) {
				rd8(&g, gva + (k >> 8) % 512 * 8);       /* reads dirty nothing */
				continue;
			}
			if (k % 4 == 1 && p + 1 < D_PAGES) {
				/* Crosses into the next page: both are written. */
				uint64_t v = k;
				struct vmmu_access_result r = acc(&g, gva + 4092, 8, VMMU_ACC_WRITE, &v);
				assert_int_equal(r.status, VMMU_ACCESS_DONE);
				ref[(p + 1) / 64] |= 1ULL << ((p + 1) % 64);
			} else if (k % 4 == 2) {
				uint8_t page[4096];
				memset(page, (int)k, sizeof(page));
				struct vmmu_access_result r = acc(&g, gva, 4096, VMMU_ACC_WRITE, page);
				assert_int_equal(r.status, VMMU_ACCESS_DONE);
			} else {
				wr8(&g, gva + (k >> 8) % 512 * 8, k);
			}
			ref[p / 64] |= 1ULL << (p % 64);
		}
		audit_ok(&g);
		harvest(&g, bm, dbit);
		for (unsigned w = 0; w < D_PAGES / 64; w++)
			TEST_ASSERT(bm[w] == ref[w], "%s%s round %u word %u: logged %#" PRIx64
				    " written %#" PRIx64, mode_name(mode), dbit ? " dbit" : "", round, w,
				    bm[w], ref[w]);
		audit_ok(&g);
	}
	s = stats(&g);
	if (!dbit && fastpf)
		assert_true(s.pf_fast > 0);
	if (!fastpf)
		assert_int_equal(s.pf_fast, 0);
	/* One vCPU: each flush is its own serviced request, none interrupts another vCPU. */
	assert_true(s.tlb_flush > 0);
	assert_int_equal(s.remote_tlb_flush, 0);

	/* Logging off: huge mappings come back on the next touch. */
	set_slot(&g, D_SLOT, 0, D_GPA, D_SIZE, hva);
	audit_ok(&g);
	for (gpa_t a = 0; a < D_SIZE; a += 4096)
		rd8(&g, D_GPA + a);
	s = stats(&g);
	assert_int_equal(s.pages_2m, D_SIZE / (2 * MiB) + 1);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

static void test_dirty_log(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	dirty_log_run(mode, false, true);
	dirty_log_run(mode, false, false);
	dirty_log_run(mode, true, true);
}

/* ---- memslot delete and move zap exactly their range ---- */

/* A guest with slot 1 (2 MiB at 1 GiB, on new host memory at *@hva) whose first two pages it
 * maps 1:1 and has written 1 and 2 to. */
static void g_two_pages(struct g *g, enum vmmu_mmu mode, uint64_t *hva)
{
	g_init(g, mode, 2 * MiB);
	assert_int_equal(vmmu_vm_mmap(g->vm, 2 * MiB, false, hva), 0);
	set_slot(g, 1, 0, 0x40000000, 2 * MiB, *hva);
	map(g, 0x40000000, 0x40000000, 1, PRWU);
	map(g, 0x40001000, 0x40001000, 1, PRWU);
	wr8(g, 0x40000000, 1);
	wr8(g, 0x40001000, 2);
}

static void test_slot_delete_move(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	const unsigned violation = mode == VMMU_MMU_EPT ? VMMU_EXIT_EPT_VIOLATION : VMMU_EXIT_NPF;
	uint64_t hva_a, hva_b, x = 0;
	struct vmmu_stats s0, s1;
	struct g g;

	g_init(&g, mode, 4 * MiB);
	assert_int_equal(vmmu_vm_mmap(g.vm, 2 * MiB, false, &hva_a), 0);
	assert_int_equal(vmmu_vm_mmap(g.vm, 2 * MiB, false, &hva_b), 0);
	set_slot(&g, 1, 0, 0x40000000, 2 * MiB, hva_a);
	set_slot(&g, 2, 0, 0x40200000, 2 * MiB, hva_b);
	for (unsigned i = 0; i < 100; i++) {
		map(&g, 0x40000000 + i * 4096ULL, 0x40000000 + i * 4096ULL, 1, PRWU);
		map(&g, 0x40200000 + i * 4096ULL, 0x40200000 + i * 4096ULL, 1, PRWU);
	}
	for (unsigned i = 0; i < 100; i++) {
		wr8(&g, 0x40000000 + i * 4096ULL, i);
		wr8(&g, 0x40200000 + i * 4096ULL, i + 1000);
	}
	audit_ok(&g);
	s0 = stats(&g);

	/* Delete B: exactly its 100 leaves go, and its level-1 table (wholly inside B). */
	set_slot(&g, 2, 0, 0x40200000, 0, hva_b);
	s1 = stats(&g);
	assert_int_equal(s0.pages_4k - s1.pages_4k, 100);
	assert_int_equal(s0.tdp_pages - s1.tdp_pages, 1);
	assert_true(s1.tlb_flush > s0.tlb_flush);
	audit_ok(&g);
	/* A's mappings stayed: a cold TLB refills them without one exit. */
	flush_tlb(&g);
	s0 = stats(&g);
	for (unsigned i = 0; i < 100; i++)
		assert_int_equal(rd8(&g, 0x40000000 + i * 4096ULL), i);
	s1 = stats(&g);
	assert_int_equal(s1.exits_by_reason[violation], s0.exits_by_reason[violation]);
	/* B's gvas are MMIO now. */
	struct vmmu_access_result r = acc(&g, 0x40200000, 8, VMMU_ACC_READ, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);

	/* Move A to 0x40200000: its old range goes; the guest's old gpas are MMIO, the new one RAM. */
	s0 = stats(&g);
	set_slot(&g, 1, 0, 0x40200000, 2 * MiB, hva_a);
	s1 = stats(&g);
	assert_int_equal(s0.pages_4k - s1.pages_4k, 100);
	audit_ok(&g);
	r = acc(&g, 0x40000000, 8, VMMU_ACC_READ, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(rd8(&g, 0x40200000 + 5 * 4096), 5);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

/*
 * The slot that holds the guest's tables is replaced by other host memory holding other tables at
 * the same gpas: the next walk reads the new tables. The vCPU's walk cache translated the old
 * table pages; the zap of the slot's range must end its trust in them.
 */
static void test_tables_slot_replaced(void **state)
{
	uint64_t hva_d, hva_tables;
	struct g g;

	g_two_pages(&g, *(enum vmmu_mmu *)*state, &hva_d);
	flush_tlb(&g);
	assert_int_equal(rd8(&g, 0x40000000), 1);

	/* Slot 0 again on new memory, with tables at the same gpas (the root too: CR3 stays) that
	 * map gva 0x40000000 to the second page. */
	assert_int_equal(vmmu_vm_mmap(g.vm, 2 * MiB, false, &hva_tables), 0);
	set_slot(&g, 0, 0, 0, 0, g.hva);
	set_slot(&g, 0, 0, 0, 2 * MiB, hva_tables);
	g.hva = hva_tables;
	g.next_table = 0x100000;
	g.root = new_table(&g);
	map(&g, 0x40000000, 0x40001000, 1, PRWU);
	flush_tlb(&g);
	assert_int_equal(rd8(&g, 0x40000000), 2);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

/* ---- host munmap under a running guest ---- */

static void test_munmap(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	uint64_t hva, again;
	struct vmmu_stats s0, s1;
	struct g g;

	for (int thp = 0; thp <= 2; thp += 2) {
		g_init_cfg(&g, mode, (struct vmmu_vm_config){ .thp = thp }, 2 * MiB, thp != 0);
		assert_int_equal(vmmu_vm_mmap(g.vm, 4 * MiB, thp != 0, &hva), 0);
		set_slot(&g, 1, 0, 0x40000000, 4 * MiB, hva);
		for (unsigned i = 0; i < 1024; i++)
			map(&g, 0x40000000 + i * 4096ULL, 0x40000000 + i * 4096ULL, 1, PRWU);
		for (unsigned i = 0; i < 1024; i++)
			wr8(&g, 0x40000000 + i * 4096ULL, 0xdead0000 + i);
		s0 = stats(&g);
		if (thp)
			assert_int_equal(s0.pages_2m, 3);   /* slot 0's and the two of slot 1 */
		audit_ok(&g);

		/* The guest reads page 5 (its TLB holds it), then the host unmaps it. */
		assert_int_equal(rd8(&g, 0x40005000), 0xdead0005);
		assert_int_equal(vmmu_vm_munmap(g.vm, hva + 5 * 4096, 4096), 0);
		s1 = stats(&g);
		assert_true(s1.tlb_flush > s0.tlb_flush);
		audit_ok(&g);
		/* No host memory behind the slot's hva now: the access fails as KVM_RUN does
		 * (-EFAULT), as in native mode; never the old data. */
		acc_fails(&g, 0x40005000, VMMU_ACC_READ, -EFAULT);
		acc_fails(&g, 0x40005000, VMMU_ACC_WRITE, -EFAULT);
		/* Its neighbours keep their data (a split 2M host page: now mapped 4K). */
		assert_int_equal(rd8(&g, 0x40004000), 0xdead0004);
		assert_int_equal(rd8(&g, 0x40006000), 0xdead0006);
		assert_int_equal(rd8(&g, 0x40200000), 0xdead0200);
		if (thp)
			assert_int_equal(stats(&g).pages_2m, 2);
		audit_ok(&g);

		/* New memory at the same hva: a fresh zero page, not the old pfn. */
		hva_t out;
		assert_int_equal(host_mmap(g.vm->mm, hva + 5 * 4096, 4096, 0, &out), 0);
		again = rd8(&g, 0x40005000);
		assert_int_equal(again, 0);
		wr8(&g, 0x40005000, 42);
		assert_int_equal(rd(&g, 0x40005000), 42);
		audit_ok(&g);

		/* The whole slot's memory goes: every access fails, the audit stays clean. */
		assert_int_equal(vmmu_vm_munmap(g.vm, hva, 4 * MiB), 0);
		audit_ok(&g);
		for (unsigned i = 0; i < 1024; i += 97)
			acc_fails(&g, 0x40000000 + i * 4096ULL, VMMU_ACC_READ, -EFAULT);
		assert_int_equal(stats(&g).pages_4k + stats(&g).pages_2m * 512 <= 512 + 8, true);
		vmmu_vm_destroy(g.vm);
	}
}

/* ---- 1G host pages (hugetlbfs backing) ---- */

#define G1_GPA 0x40000000ULL

/* A 1G slot over a 1G hugetlb page is mapped with one 1G leaf; dirty logging splits it down to
 * 4K and its end brings the 1G leaf back; a host munmap of one 4K page splits the host page, and
 * the leaf over it goes, its neighbours keep their data, the audit stays clean at every step. */
static void test_hugetlb_1g(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	const gva_t far = G1_GPA + 512 * MiB;
	struct vmmu_stats st;
	uint64_t hva;
	struct g g;

	struct vmmu_vm *bad = NULL;

	assert_int_equal(vmmu_vm_create(&(struct vmmu_vm_config){ .hugetlb = VMMU_HUGETLB_1G + 1 },
					&bad), -EINVAL);
	assert_null(bad);
	g_init_cfg(&g, mode, (struct vmmu_vm_config){ .hugetlb = VMMU_HUGETLB_1G }, 2 * MiB, false);
	assert_int_equal(vmmu_vm_mmap(g.vm, 1ULL << 30, false, &hva), 0);
	assert_int_equal(hva & ((1ULL << 30) - 1), 0);
	set_slot(&g, 1, 0, G1_GPA, 1ULL << 30, hva);
	for (unsigned i = 0; i < 16; i++) {
		map(&g, G1_GPA + i * 4096ULL, G1_GPA + i * 4096ULL, 1, PRWU);
		wr8(&g, G1_GPA + i * 4096ULL, 0xbeef0000 + i);
	}
	map(&g, far, far, 1, PRWU);
	wr8(&g, far, 0xfa);
	st = stats(&g);
	assert_int_equal(st.pages_1g, 1);
	audit_ok(&g);

	/* Dirty logging: 4K leaves only while it is on; the 1G leaf comes back after. */
	set_slot(&g, 1, VMMU_MEM_LOG_DIRTY_PAGES, G1_GPA, 1ULL << 30, hva);
	assert_int_equal(stats(&g).pages_1g, 0);
	wr8(&g, G1_GPA + 3 * 4096, 0xbeef0003);
	audit_ok(&g);
	set_slot(&g, 1, 0, G1_GPA, 1ULL << 30, hva);
	flush_tlb(&g);
	assert_int_equal(rd8(&g, far), 0xfa);
	st = stats(&g);
	assert_int_equal(st.pages_1g, 1);
	assert_int_equal(rd8(&g, G1_GPA + 3 * 4096), 0xbeef0003);
	audit_ok(&g);

	/* The host unmaps one 4K page of its 1G page. */
	assert_int_equal(vmmu_vm_munmap(g.vm, hva + 5 * 4096, 4096), 0);
	audit_ok(&g);
	acc_fails(&g, G1_GPA + 5 * 4096, VMMU_ACC_READ, -EFAULT);
	for (unsigned i = 0; i < 16; i++)
		if (i != 5)
			assert_int_equal(rd8(&g, G1_GPA + i * 4096ULL), 0xbeef0000 + i);
	assert_int_equal(rd8(&g, far), 0xfa);
	st = stats(&g);
	assert_int_equal(st.pages_1g, 0);
	assert_true(st.pages_4k >= 15);
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

/* ---- aging ---- */

static void test_young(void **state)
{
	uint64_t hva;
	struct g g;

	g_two_pages(&g, *(enum vmmu_mmu *)*state, &hva);
	assert_true(host_mm_test_young(g.vm->mm, hva, hva + 4096));
	assert_true(host_mm_clear_young(g.vm->mm, hva, hva + 2 * 4096));
	assert_false(host_mm_test_young(g.vm->mm, hva, hva + 2 * 4096));
	/* The guest touches page 0 again (a cold TLB: the hardware walks and sets A). */
	flush_tlb(&g);
	assert_int_equal(rd8(&g, 0x40000000), 1);
	assert_true(host_mm_test_young(g.vm->mm, hva, hva + 4096));
	assert_false(host_mm_test_young(g.vm->mm, hva + 4096, hva + 2 * 4096));
	/* The walk reads the guest's tables through the nested tables, so it sets A again in the
	 * leaves mapping the table pages: the vCPU's walk cache (cpu/nested.h), which made those
	 * translations before, must not serve them once aging cleared A. */
	const uint64_t tables = g.hva + 0x100000;    /* the guest's four table pages */
	assert_true(host_mm_clear_young(g.vm->mm, tables, tables + 4 * 4096));
	assert_false(host_mm_test_young(g.vm->mm, tables, tables + 4 * 4096));
	flush_tlb(&g);
	assert_int_equal(rd8(&g, 0x40001000), 2);
	for (int i = 0; i < 4; i++)
		assert_true(host_mm_test_young(g.vm->mm, tables + i * 4096ULL, tables + (i + 1) * 4096ULL));
	/* Aging changes no mapping. */
	assert_int_equal(stats(&g).pages_4k, 2 + 4);   /* + the guest's 4 table pages */
	audit_ok(&g);
	vmmu_vm_destroy(g.vm);
}

/* ---- a randomized run, audited after every step ---- */

#define R_PAGES 1024                /* slot 1: 4 MiB at 1 GiB, the guest maps it 1:1 with 4K */
#define R_GPA 0x40000000ULL
#define R_ALT 0x80000000ULL         /* where slot 2 moves to and from */

static void test_random_audit(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	uint64_t *expect = calloc(R_PAGES, sizeof(*expect)), bm[R_PAGES / 64];
	bool *gone = calloc(R_PAGES, sizeof(*gone)), logging = false, s2_alt = false, s2_on = true;
	uint64_t hva, hva2;
	struct g g;

	assert_non_null(expect && gone);
	g_init_cfg(&g, mode, (struct vmmu_vm_config){ .thp = 2 }, 4 * MiB, false);
	assert_int_equal(vmmu_vm_mmap(g.vm, R_PAGES * 4096ULL, true, &hva), 0);
	assert_int_equal(vmmu_vm_mmap(g.vm, 2 * MiB, true, &hva2), 0);
	set_slot(&g, 1, 0, R_GPA, R_PAGES * 4096ULL, hva);
	set_slot(&g, 2, 0, R_GPA + 8 * MiB, 2 * MiB, hva2);
	for (unsigned i = 0; i < R_PAGES; i++)
		map(&g, R_GPA + i * 4096ULL, R_GPA + i * 4096ULL, 1, PRWU);
	for (unsigned i = 0; i < 512; i++) {
		map(&g, R_GPA + 8 * MiB + i * 4096ULL, R_GPA + 8 * MiB + i * 4096ULL, 1, PRWU);
		map(&g, R_ALT + i * 4096ULL, R_ALT + i * 4096ULL, 1, PRWU);
	}
	rng_state = 777;
	for (unsigned step = 0; step < 3000; step++) {
		uint64_t k = rnd(), p = rnd() % R_PAGES, x;
		unsigned op = (unsigned)(k % 100);
		struct vmmu_access_result r;

		if (op < 60) {
			gva_t gva = R_GPA + p * 4096;
			if (k & (1ULL << 40)) {
				x = rnd();
				if (!gone[p]) {
					r = acc(&g, gva, 8, VMMU_ACC_WRITE, &x);
					assert_int_equal(r.status, VMMU_ACCESS_DONE);
					expect[p] = x;
				} else {
					acc_fails(&g, gva, VMMU_ACC_WRITE, -EFAULT);
				}
			} else {
				x = 0;
				if (gone[p]) {
					acc_fails(&g, gva, VMMU_ACC_READ, -EFAULT);
				} else {
					r = acc(&g, gva, 8, VMMU_ACC_READ, &x);
					assert_int_equal(r.status, VMMU_ACCESS_DONE);
					TEST_ASSERT(x == expect[p], "step %u page %" PRIu64 ": %#" PRIx64
						    " != %#" PRIx64, step, p, x, expect[p]);
				}
			}
		} else if (op < 70) {
			/* Slot 2: touch it at wherever the guest finds it. */
			gva_t gva = (s2_alt ? R_ALT : R_GPA + 8 * MiB) + (k >> 20) % 512 * 4096;
			r = acc(&g, gva, 8, VMMU_ACC_WRITE, &k);
			assert_int_equal(r.status, s2_on ? VMMU_ACCESS_DONE : VMMU_ACCESS_MMIO);
		} else if (op < 76) {
			logging = !logging;
			set_slot(&g, 1, logging ? VMMU_MEM_LOG_DIRTY_PAGES : 0, R_GPA, R_PAGES * 4096ULL,
				 hva);
		} else if (op < 84) {
			if (logging)
				assert_int_equal(vmmu_get_dirty_log(g.vm, 1, bm), 0);
		} else if (op < 88) {
			/* The host unmaps a page and maps a fresh one there. */
			hva_t out;
			assert_int_equal(vmmu_vm_munmap(g.vm, hva + p * 4096, 4096), 0);
			gone[p] = true;
			if (k & (1ULL << 41)) {
				assert_int_equal(host_mmap(g.vm->mm, hva + p * 4096, 4096, 0, &out), 0);
				gone[p] = false;
				expect[p] = 0;
			}
		} else if (op < 93) {
			/* Move slot 2 between its two gpas, or delete and re-create it. */
			if (s2_on && (k & 1)) {
				s2_alt = !s2_alt;
				set_slot(&g, 2, 0, s2_alt ? R_ALT : R_GPA + 8 * MiB, 2 * MiB, hva2);
			} else {
				s2_on = !s2_on;
				set_slot(&g, 2, 0, s2_alt ? R_ALT : R_GPA + 8 * MiB, s2_on ? 2 * MiB : 0,
					 hva2);
			}
		} else {
			flush_tlb(&g);
		}
		audit_ok(&g);
	}
	vmmu_vm_destroy(g.vm);
	free(expect);
	free(gone);
}

/* Paging off, an address with bits 63:32 set outside every memslot: the hardware cuts it to 32
 * bits, and every mode gives native's MMIO exit at the cut address (the MMUs looped to -ELOOP). */
static void test_paging_off_high_gva_mmio(void **state)
{
	enum vmmu_mmu modes[] = { VMMU_MMU_NATIVE, *(enum vmmu_mmu *)*state, VMMU_MMU_SHADOW };
	struct vmmu_regs off = { .cr0 = X86_CR0_PE | (1ULL << 4) };

	for (int i = 0; i < 3; i++) {
		struct vmmu_access_result r;
		uint32_t v = 0;
		struct g g;

		g_init(&g, modes[i], 4 * MiB);
		assert_int_equal(vmmu_vcpu_set_regs(g.v, &off), 0);
		assert_int_equal(vmmu_vcpu_access(g.v, 0x104000000ULL, 4, VMMU_ACC_READ, &v, &r), 0);
		assert_int_equal(r.status, VMMU_ACCESS_MMIO);
		assert_int_equal(r.mmio_gpa, 0x4000000ULL);
		vmmu_vm_destroy(g.vm);
	}
}

/* The host unmaps memory behind a slot (vmmu_vm_munmap): a data access there, a guest table
 * walk through it and a crossing write into it all fail with -EFAULT (KVM_RUN's), in every mode
 * alike, and the crossing write's first page stays untouched. (KVM's own modes disagree on the
 * table: its shadow walker injects a #PF, EPT hardware fails the run; the hardware's answer is
 * the model's.) */
static void test_munmap_efault_every_mode(void **state)
{
	enum vmmu_mmu modes[] = { VMMU_MMU_NATIVE, *(enum vmmu_mmu *)*state, VMMU_MMU_SHADOW };

	for (int i = 0; i < 3; i++) {
		const gpa_t s1 = 0x40000000;
		uint64_t hva, x;
		struct g g;

		g_init(&g, modes[i], 4 * MiB);
		assert_int_equal(vmmu_vm_mmap(g.vm, 4 * MiB, false, &hva), 0);
		set_slot(&g, 1, 0, s1, 4 * MiB, hva);
		/* Data pages 1 and 2 of slot 1, and a region whose tables live in slot 1. */
		map(&g, s1 + 0x1000, s1 + 0x1000, 1, PRWU);
		map(&g, s1 + 0x2000, s1 + 0x2000, 1, PRWU);
		g.next_table = s1 + 0x100000;
		map(&g, 0x7f0000000000ULL, s1 + 0x3000, 1, PRWU);
		wr8(&g, s1 + 0x1ff8, 0x1111);
		wr8(&g, s1 + 0x2000, 0x2222);
		wr8(&g, 0x7f0000000000ULL, 0x3333);
		audit_ok(&g);

		/* Page 2's backing goes: a read, a write, and a write crossing from page 1. */
		assert_int_equal(vmmu_vm_munmap(g.vm, hva + 0x2000, 4096), 0);
		acc_fails(&g, s1 + 0x2000, VMMU_ACC_READ, -EFAULT);
		acc_fails(&g, s1 + 0x2000, VMMU_ACC_WRITE, -EFAULT);
		struct vmmu_access_result r;
		x = 0xffffffffffffffffULL;
		assert_int_equal(vmmu_vcpu_access(g.v, s1 + 0x1ffc, 8, VMMU_ACC_WRITE, &x, &r), -EFAULT);
		assert_int_equal(rd(&g, s1 + 0x1ff8), 0x1111);
		assert_int_equal(rd8(&g, s1 + 0x1ff8), 0x1111);
		audit_ok(&g);

		/* The tables of 0x7f0000000000 go, and the guest flushes its TLB entry (natively the
		 * entry would still translate): the walk cannot read them. */
		assert_int_equal(vmmu_vm_munmap(g.vm, hva + 0x100000, 0x4000), 0);
		assert_int_equal(vmmu_vcpu_invlpg(g.v, 0x7f0000000000ULL), 0);
		acc_fails(&g, 0x7f0000000000ULL, VMMU_ACC_READ, -EFAULT);
		acc_fails(&g, 0x7f0000000000ULL, VMMU_ACC_WRITE, -EFAULT);
		audit_ok(&g);
		/* What is still backed works as before. */
		assert_int_equal(rd8(&g, s1 + 0x1ff8), 0x1111);
		vmmu_vm_destroy(g.vm);
	}
}

/* ---- every table frame comes back ---- */

static void test_destroy_frees_tables(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	uint64_t hva, used, rss;
	struct vmmu_stats s;
	struct g g;

	g_init(&g, mode, 4 * MiB);
	assert_int_equal(vmmu_vm_mmap(g.vm, 8 * MiB, false, &hva), 0);
	set_slot(&g, 1, 0, 0x40000000, 8 * MiB, hva);
	set_slot(&g, 2, 0, 0x7fe00000000ULL, 4 * MiB, hva);    /* an alias far away: more tables */
	for (unsigned i = 0; i < 2048; i += 3)
		map(&g, 0x40000000 + i * 4096ULL, 0x40000000 + i * 4096ULL, 1, PRWU);
	for (unsigned i = 0; i < 1024; i += 5)
		map(&g, 0x7fe00000000ULL + i * 4096ULL, 0x7fe00000000ULL + i * 4096ULL, 1, PRWU);
	for (unsigned i = 0; i < 2048; i += 3)
		wr8(&g, 0x40000000 + i * 4096ULL, i);
	for (unsigned i = 0; i < 1024; i += 5)
		rd8(&g, 0x7fe00000000ULL + i * 4096ULL);
	s = stats(&g);
	used = host_arena_frames_used(g.vm->arena);
	rss = host_mm_rss_pages(g.vm->mm);
	/* Every frame is guest memory or an MMU table. */
	assert_int_equal(used, rss + s.tdp_pages);
	assert_true(s.tdp_pages > 6);

	/* Deleting the far slot frees its tables (after the grace period). */
	set_slot(&g, 2, 0, 0x7fe00000000ULL, 0, hva);
	s = stats(&g);
	assert_int_equal(host_arena_frames_used(g.vm->arena), rss + s.tdp_pages);
	audit_ok(&g);

	/* Tear the MMU down alone: what remains is exactly the guest's memory. */
	struct vmmu_vm *vm = g.vm;
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		mmu_vcpu_destroy(&vm->vcpus[i]->mmu);
	mmu_destroy(vm->mmu);
	vm->mmu = NULL;
	assert_int_equal(host_arena_frames_used(vm->arena), host_mm_rss_pages(vm->mm));
	vmmu_vm_destroy(vm);
}

/* A vCPU's MMU counters are kept apart from the VM's while it lives (mmu_vcpu.st) and folded
 * into the VM's when it goes (mmu_vcpu_destroy): the VM's sums neither lose nor count twice what
 * a vCPU that left had counted, and the vCPUs that stay go on counting. */
static void test_vcpu_counts_folded(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	struct vmmu_vcpu *v0, *v1;
	struct vmmu_stats s1, s2, s3;
	struct g g;

	g_init(&g, mode, 4 * MiB);
	for (unsigned i = 0; i < 32; i++)
		map(&g, 0x200000 + i * 4096ULL, 0x200000 + i * 4096ULL, 1, PRWU);
	v0 = g.v;
	assert_int_equal(vmmu_vcpu_create(g.vm, 1, &v1), 0);
	g.v = v1;
	regs64(&g);
	for (unsigned i = 0; i < 16; i++)
		wr8(&g, 0x200000 + i * 4096ULL, i);
	const struct mmu_stats *mine = &g.vm->vcpus[1]->mmu.st;
	assert_true(mine->pf_taken >= 16 && mine->pf_fixed >= 16);   /* vCPU 1's own, not folded */
	g.v = v0;
	for (unsigned i = 16; i < 24; i++)
		wr8(&g, 0x200000 + i * 4096ULL, i);

	s1 = stats(&g);
	mmu_vcpu_destroy(&g.vm->vcpus[1]->mmu);
	s2 = stats(&g);
	assert_int_equal(s2.pf_taken, s1.pf_taken);
	assert_int_equal(s2.pf_fixed, s1.pf_fixed);
	assert_int_equal(s2.tdp_pages, s1.tdp_pages);
	assert_int_equal(s2.pages_4k, s1.pages_4k);

	/* vCPU 0 counts on: each new page one more fault, once. */
	for (unsigned i = 24; i < 32; i++)
		wr8(&g, 0x200000 + i * 4096ULL, i);
	s3 = stats(&g);
	assert_int_equal(s3.pf_taken - s2.pf_taken, 8);
	assert_int_equal(s3.pf_fixed - s2.pf_fixed, 8);
	/* vmmu_vm_destroy tears vCPU 1's MMU part down again: nothing left to do. */
	vmmu_vm_destroy(g.vm);
}

/* ---- two vCPU threads ---- */

#define TH_PAGES 256      /* slot 1: pages 0..63 shared, the rest split between the threads */
#define TH_GPA 0x40000000ULL

struct th {
	struct g *g;
	struct vmmu_vcpu *v;
	pthread_barrier_t *start;
	unsigned id;
	unsigned round;
	int err;
};

static int th_access(struct th *t, uint64_t p)
{
	/* Each thread owns one word of every page: shared pages are faulted by both. */
	const gva_t gva = TH_GPA + p * 4096 + t->id * 8;
	const uint64_t want = (uint64_t)t->round << 32 | p << 8 | t->id;
	struct vmmu_access_result r;
	uint64_t x = want;
	int rc = vmmu_vcpu_access(t->v, gva, 8, VMMU_ACC_WRITE, &x, &r);

	if (rc || r.status != VMMU_ACCESS_DONE)
		return rc ? rc : -EIO;
	x = 0;
	rc = vmmu_vcpu_access(t->v, gva, 8, VMMU_ACC_READ, &x, &r);
	if (rc || r.status != VMMU_ACCESS_DONE || x != want)
		return rc ? rc : -EIO;
	return 0;
}

static void *th_run(void *arg)
{
	struct th *t = arg;
	uint64_t rs = 0x1234567ULL * (t->id + 1) + t->round;

	pthread_barrier_wait(t->start);
	/* Both sweep the shared pages in the same order at once: they fault the same gfns. */
	for (uint64_t p = 0; p < 64 && !t->err; p++)
		t->err = th_access(t, p);
	for (unsigned i = 0; i < 4000 && !t->err; i++) {
		uint64_t p;

		rs ^= rs >> 12;
		rs ^= rs << 25;
		rs ^= rs >> 27;
		p = (rs * 2685821657736338717ULL) % TH_PAGES;
		if (p >= 64 && (p % 2) != t->id)
			p = (p + 1) % TH_PAGES;       /* private pages: even for 0, odd for 1 */
		t->err = th_access(t, p);
	}
	return NULL;
}

static void test_threads(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	struct vmmu_vcpu *v1;
	uint64_t hva, bm[TH_PAGES / 64];
	pthread_barrier_t start;
	struct th th[2];
	pthread_t tid[2];
	struct g g;

	g_init(&g, mode, 2 * MiB);
	assert_int_equal(vmmu_vm_mmap(g.vm, TH_PAGES * 4096ULL, false, &hva), 0);
	set_slot(&g, 1, 0, TH_GPA, TH_PAGES * 4096ULL, hva);
	for (unsigned i = 0; i < TH_PAGES; i++)
		map(&g, TH_GPA + i * 4096ULL, TH_GPA + i * 4096ULL, 1, PRWU);
	assert_int_equal(vmmu_vcpu_create(g.vm, 1, &v1), 0);
	struct vmmu_regs r;
	assert_int_equal(vmmu_vcpu_get_regs(g.v, &r), 0);
	assert_int_equal(vmmu_vcpu_set_regs(v1, &r), 0);
	assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);

	/* Round 0: first touches (the slow path under the shared lock, racing cmpxchgs on the
	 * same entries); round 1: dirty logging write-protected everything; round 2: a harvest
	 * write-protected it again (the fast path, racing on the shared pages). */
	for (unsigned round = 0; round < 3; round++) {
		if (round == 1)
			set_slot(&g, 1, VMMU_MEM_LOG_DIRTY_PAGES, TH_GPA, TH_PAGES * 4096ULL, hva);
		if (round == 2)
			assert_int_equal(vmmu_get_dirty_log(g.vm, 1, bm), 0);
		for (unsigned i = 0; i < 2; i++) {
			th[i] = (struct th){ .g = &g, .v = i ? v1 : g.v, .start = &start, .id = i,
					     .round = round };
			assert_int_equal(pthread_create(&tid[i], NULL, th_run, &th[i]), 0);
		}
		for (unsigned i = 0; i < 2; i++) {
			pthread_join(tid[i], NULL);
			assert_int_equal(th[i].err, 0);
		}
		audit_ok(&g);
	}
	pthread_barrier_destroy(&start);
	struct vmmu_stats s = stats(&g);
	assert_int_equal(s.pages_4k, TH_PAGES + 4);   /* + the guest's 4 table pages in slot 0 */
	assert_true(s.pf_fast > 0);
	/* Two vCPUs: write-protecting for the log had to interrupt the other one. */
	assert_true(s.remote_tlb_flush > 0);
	assert_int_equal(vmmu_get_dirty_log(g.vm, 1, bm), 0);
	for (unsigned p = 0; p < TH_PAGES; p++)
		assert_true((bm[p / 64] >> (p % 64)) & 1);   /* every page was written in round 2 */
	for (unsigned p = 0; p < TH_PAGES; p++)
		for (unsigned id = 0; id < 2; id++)
			if (p < 64 || p % 2 == id)
				assert_int_equal(rd(&g, TH_GPA + p * 4096 + id * 8) >> 32, 2);
	print_message("%s threads: pf_taken %" PRIu64 ", pf_fixed %" PRIu64 ", pf_fast %" PRIu64
		      ", pf_spurious %" PRIu64 "\n", mode_name(mode), s.pf_taken, s.pf_fixed,
		      s.pf_fast, s.pf_spurious);
	vmmu_vm_destroy(g.vm);
}

/* ---- configuration ---- */

static void test_exit_controls(void **state)
{
	enum vmmu_mmu mode = *(enum vmmu_mmu *)*state;
	struct vmmu_access_result r;
	uint64_t x;
	struct g g;

	g_init(&g, mode, 2 * MiB);
	/* #PF, CR3 loads and INVLPG are not intercepted: none of them exits. */
	r = acc(&g, 0x400000, 8, VMMU_ACC_READ, &x);
	assert_int_equal(r.status, VMMU_ACCESS_PF);
	flush_tlb(&g);
	assert_int_equal(vmmu_vcpu_invlpg(g.v, 0x400000), 0);
	struct vmmu_stats s = stats(&g);
	assert_int_equal(s.exits_by_reason[VMMU_EXIT_PF], 0);
	assert_int_equal(s.exits_by_reason[VMMU_EXIT_CR3], 0);
	assert_int_equal(s.exits_by_reason[VMMU_EXIT_INVLPG], 0);
	/* The hardware delivered the #PF: KVM never sees it, so it counts neither pf_guest, nor a
	 * flush, nor an invlpg. */
	assert_int_equal(s.pf_guest, 0);
	assert_int_equal(s.tlb_flush, 0);
	assert_int_equal(s.invlpg, 0);
	vmmu_vm_destroy(g.vm);
}

int main(void)
{
	(void)mode_native;
#define BOTH(f) cmocka_unit_test_prestate(f, &mode_ept), cmocka_unit_test_prestate(f, &mode_npt)
	const struct CMUnitTest tests[] = {
		BOTH(test_exit_controls),
		BOTH(test_same_as_native),
		BOTH(test_walk_refs),
		BOTH(test_mmio),
		BOTH(test_readonly_slot),
		BOTH(test_dirty_log),
		BOTH(test_slot_delete_move),
		BOTH(test_tables_slot_replaced),
		BOTH(test_munmap),
		BOTH(test_hugetlb_1g),
		BOTH(test_young),
		BOTH(test_random_audit),
		BOTH(test_destroy_frees_tables),
		BOTH(test_vcpu_counts_folded),
		BOTH(test_paging_off_high_gva_mmio), BOTH(test_munmap_efault_every_mode),
		BOTH(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
