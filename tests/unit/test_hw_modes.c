/* SPDX-License-Identifier: MIT */
/*
 * The hardware model's shadow and nested modes at the cpu/ layer (the MMU that builds their
 * tables arrives in phase 3): hand-built shadow tables and EPT/NPT tables in a host arena, and
 * the outcomes the hardware returns: translations, exact references through the vCPU, exits by
 * reason with their fields, #PF delivered without an exit, the PFEC mask/match no-trap setting,
 * and combined rights cached in the TLB. And one native-mode contract: a write to a dirty-logging
 * page is marked after its bytes land.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cpu/cost.h"
#include "cpu/cpu.h"
#include "host/host.h"
#include "paging/hostmem.h"
#include "paging/tdp.h"
#include "../common/tdp_build.h"

#define PRWU (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK)

struct env {
	struct host_arena *arena;
	struct cpu cpu;
	struct tdp_ctx tdp;
	hpa_t gmem_hpa;          /* guest RAM [0, 4 MiB) lives at this hpa, contiguous */
};

static hpa_t frame(struct env *e)
{
	pfn_t pfn;
	assert_int_equal(host_frame_alloc(e->arena, 0, &pfn), 0);
	return pfn << 12;
}

static void hput(struct env *e, hpa_t a, uint64_t v)
{
	assert_int_equal(hostmem_store(e->arena, a, 8, v), 0);
}

static uint64_t hget(struct env *e, hpa_t a)
{
	uint64_t v;
	assert_int_equal(hostmem_load(e->arena, a, 8, &v), 0);
	return v;
}

static void regs64(struct env *e)
{
	struct vmmu_regs r = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = 0x1000, .cr4 = X86_CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	assert_int_equal(cpu_set_regs(&e->cpu, &r), 0);
}

/* Guest physical memory (for PDPTE loads) is not used by these modes' walks. */
static int no_page(void *o, gfn_t gfn, bool w, uint8_t **h, bool *c) { return -ENOENT; }
static const struct phys_ops no_phys = { .page = no_page };

static void init(struct env *e, enum vmmu_mmu mode, bool ntlb)
{
	struct cpu_model m;
	struct vmmu_tlb_geometry g = { .nested_tlb = ntlb };
	memset(e, 0, sizeof(*e));
	assert_int_equal(host_arena_create(1ULL << 30, &e->arena), 0);
	cpu_model_fixed(&m, "intel");
	assert_int_equal(cpu_init(&e->cpu, mode, &m, &g, NULL, &no_phys, NULL, e->arena), 0);
	pfn_t pfn;
	assert_int_equal(host_frame_alloc(e->arena, 10, &pfn), 0);    /* 4 MiB of guest RAM */
	e->gmem_hpa = pfn << 12;
}

static void fini(struct env *e)
{
	cpu_destroy(&e->cpu);
	host_arena_destroy(e->arena);
}

/* Guest page tables in guest RAM [0, 4 MiB): PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT
 * 0x4000; gva 0x400000 + i*4K -> gpa 0x100000 + i*4K. */
static void guest_tables(struct env *e, uint64_t leaf_flags)
{
	hput(e, e->gmem_hpa + 0x1000, 0x2000 | PRWU);
	hput(e, e->gmem_hpa + 0x2000, 0x3000 | PRWU);
	hput(e, e->gmem_hpa + 0x3000 + 2 * 8, 0x4000 | PRWU);
	for (int i = 0; i < 8; i++)
		hput(e, e->gmem_hpa + 0x4000 + i * 8, (0x100000 + i * 0x1000) | leaf_flags);
}

static void nested_env(struct env *e, enum tdp_format fmt, bool ntlb)
{
	init(e, fmt == TDP_EPT ? VMMU_MMU_EPT : VMMU_MMU_NPT, ntlb);
	e->tdp = (struct tdp_ctx){ .fmt = fmt, .levels = 4, .ad = true, .has_1g = true,
				   .maxphyaddr = 52, .arena = e->arena };
	assert_int_equal(tdp_alloc_root(&e->tdp), 0);
	/* EPT: guest RAM [0, 2 MiB) mapped 4K by 4K, read/write/exec; [2, 4) MiB left unmapped. */
	for (gpa_t g = 0; g < 0x200000; g += 4096)
		assert_int_equal(tdp_map(&e->tdp, g, e->gmem_hpa + g, 12, TDP_RWX), 0);
	cpu_set_tdp(&e->cpu, &e->tdp);
	regs64(e);
	guest_tables(e, PRWU);
}

static int access(struct env *e, gva_t gva, unsigned kind, uint64_t *v, struct hw_outcome *o)
{
	return cpu_access(&e->cpu, gva, 8, kind, v, o);
}

static void test_ept_translation_and_refs(void **st)
{
	struct env e;
	struct hw_outcome o;
	uint64_t v = 0x1234;
	nested_env(&e, TDP_EPT, false);
	assert_int_equal(access(&e, 0x400008, VMMU_ACC_WRITE, &v, &o), 0);
	assert_int_equal(o.status, HW_DONE);
	assert_int_equal(hget(&e, e.gmem_hpa + 0x100008), 0x1234);
	/* A cold 4-level guest on 4-level EPT: 24 references. */
	assert_int_equal(e.cpu.st.walk_refs, 24);
	v = 0;
	assert_int_equal(access(&e, 0x400008, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(v, 0x1234);
	assert_int_equal(e.cpu.st.walk_refs, 24);     /* a TLB hit */
	assert_int_equal(e.cpu.st.tlb_hits, 1);
	/* A neighbour page: the guest walk's upper levels are not cached (no PWC), so 24 again. */
	assert_int_equal(access(&e, 0x401000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(e.cpu.st.walk_refs, 48);
	fini(&e);
}

static void test_nested_tlb_cuts_refs(void **st)
{
	struct env e;
	struct hw_outcome o;
	uint64_t v;
	nested_env(&e, TDP_EPT, true);
	assert_int_equal(access(&e, 0x400000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(e.cpu.st.walk_refs, 24);
	/* The neighbour shares every guest table page: only the guest reads and one nested walk
	 * for its new data page remain. */
	assert_int_equal(access(&e, 0x401000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(e.cpu.st.walk_refs, 24 + 4 + 4);
	fini(&e);
}

static void test_ept_violation_exit(void **st)
{
	struct env e;
	struct hw_outcome o;
	uint64_t v;
	nested_env(&e, TDP_EPT, false);
	/* The guest maps gva 0x407000 to gpa 0x300000, which EPT does not map. */
	hput(&e, e.gmem_hpa + 0x4000 + 7 * 8, 0x300000 | PRWU);
	uint64_t cyc = e.cpu.st.sim_cycles;
	assert_int_equal(access(&e, 0x407010, VMMU_ACC_WRITE, &v, &o), 0);
	assert_int_equal(o.status, HW_EXIT);
	assert_int_equal(o.exit.reason, VMMU_EXIT_EPT_VIOLATION);
	assert_int_equal(o.exit.gpa, 0x300010);
	assert_int_equal(o.exit.gva, 0x407010);
	assert_true(o.exit.qual & EPT_QUAL_WRITE);
	assert_true(o.exit.qual & EPT_QUAL_GVA_VALID);
	assert_true(o.exit.qual & EPT_QUAL_GVA_TRANSLATED);
	assert_int_equal(e.cpu.st.exits_by_reason[VMMU_EXIT_EPT_VIOLATION], 1);
	assert_true(e.cpu.st.sim_cycles - cyc >= e.cpu.cost.vm_exit);
	/* A guest not-present fault goes to the guest, with no exit. */
	hput(&e, e.gmem_hpa + 0x4000 + 6 * 8, 0);
	assert_int_equal(access(&e, 0x406000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.status, HW_PF);
	assert_int_equal(o.pf_ec, 0);
	assert_int_equal(e.cpu.st.exits, 1);
	fini(&e);
}

static void test_combined_rights_in_tlb(void **st)
{
	struct env e;
	struct hw_outcome o;
	uint64_t v = 1;
	init(&e, VMMU_MMU_EPT, false);
	e.tdp = (struct tdp_ctx){ .fmt = TDP_EPT, .levels = 4, .ad = true, .has_1g = true,
				  .maxphyaddr = 52, .arena = e.arena };
	assert_int_equal(tdp_alloc_root(&e.tdp), 0);
	for (gpa_t g = 0; g < 0x100000; g += 4096)
		assert_int_equal(tdp_map(&e.tdp, g, e.gmem_hpa + g, 12, TDP_RWX), 0);
	/* The data page is read-only in EPT (as for dirty logging or a KSM page). */
	assert_int_equal(tdp_map(&e.tdp, 0x100000, e.gmem_hpa + 0x100000, 12, TDP_R | TDP_X), 0);
	cpu_set_tdp(&e.cpu, &e.tdp);
	regs64(&e);
	guest_tables(&e, PRWU | PT_ACCESSED_MASK | PT_DIRTY_MASK);
	assert_int_equal(access(&e, 0x400000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.status, HW_DONE);
	/* The guest allows the write; the TLB entry must not: the write walks and exits. */
	assert_int_equal(access(&e, 0x400000, VMMU_ACC_WRITE, &v, &o), 0);
	assert_int_equal(o.status, HW_EXIT);
	assert_int_equal(o.exit.reason, VMMU_EXIT_EPT_VIOLATION);
	assert_true(o.exit.qual & EPT_QUAL_READABLE);
	assert_false(o.exit.qual & EPT_QUAL_WRITABLE);
	fini(&e);
}

static void test_npt_exit(void **st)
{
	struct env e;
	struct hw_outcome o;
	uint64_t v;
	nested_env(&e, TDP_NPT, false);
	hput(&e, e.gmem_hpa + 0x4000 + 7 * 8, 0x300000 | PRWU);
	assert_int_equal(access(&e, 0x407000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.status, HW_EXIT);
	assert_int_equal(o.exit.reason, VMMU_EXIT_NPF);
	assert_true(o.exit.qual & NPF_INFO_FINAL);
	assert_true(o.exit.qual & PFERR_USER);
	assert_int_equal(o.exit.gpa, 0x300000);
	/* A guest page table the NPT does not map: NPF on the table walk. */
	hput(&e, e.gmem_hpa + 0x3000 + 3 * 8, 0x380000 | PRWU);
	assert_int_equal(access(&e, 0x600000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.exit.reason, VMMU_EXIT_NPF);
	assert_true(o.exit.qual & NPF_INFO_TABLE);
	assert_int_equal(o.exit.gpa, 0x380000);
	assert_int_equal(e.cpu.st.exits_by_reason[VMMU_EXIT_NPF], 2);
	fini(&e);
}

/* Shadow tables for gva 0x400000 -> a host frame, built by hand as the soft MMU will. */
static hpa_t shadow_env(struct env *e, uint64_t spte_flags, hpa_t *data)
{
	init(e, VMMU_MMU_SHADOW, false);
	hpa_t l4 = frame(e), l3 = frame(e), l2 = frame(e), l1 = frame(e);
	*data = frame(e);
	hput(e, l4, l3 | PRWU);
	hput(e, l3, l2 | PRWU);
	hput(e, l2 + 2 * 8, l1 | PRWU);
	hput(e, l1, *data | spte_flags);
	cpu_set_shadow_root(&e->cpu, l4, 4);
	regs64(e);
	return l1;
}

static void test_shadow_walk_and_pf_exits(void **st)
{
	struct env e;
	struct hw_outcome o;
	hpa_t data;
	uint64_t v = 77;
	hpa_t l1 = shadow_env(&e, PRWU, &data);
	struct exit_controls ctl = { .host = VMMU_HOST_VMX, .exception_bitmap = 1u << 14 };
	cpu_set_exit_controls(&e.cpu, &ctl);
	assert_int_equal(access(&e, 0x400010, VMMU_ACC_WRITE, &v, &o), 0);
	assert_int_equal(o.status, HW_DONE);
	assert_int_equal(hget(&e, data + 0x10), 77);
	assert_int_equal(e.cpu.st.walk_refs, 4);
	assert_true(hget(&e, l1) & PT_DIRTY_MASK);          /* hardware A/D in the spte */
	/* All #PF intercepted: a miss exits with reason pf. */
	assert_int_equal(access(&e, 0x401000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.status, HW_EXIT);
	assert_int_equal(o.exit.reason, VMMU_EXIT_PF);
	assert_int_equal(o.exit.gva, 0x401000);
	assert_int_equal(o.exit.ec, 0);
	/* No-trap (PFEC_MASK = PFEC_MATCH = P): a not-present fault reaches the guest directly... */
	ctl.pfec_mask = ctl.pfec_match = PFERR_PRESENT;
	cpu_set_exit_controls(&e.cpu, &ctl);
	assert_int_equal(access(&e, 0x401000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.status, HW_PF);
	/* ...while a present one (a reserved-bit spte: "not yet shadowed") still exits. */
	hput(&e, l1 + 8, PT_PRESENT_MASK | (1ULL << 51));
	assert_int_equal(access(&e, 0x401000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.status, HW_EXIT);
	assert_int_equal(o.exit.ec, PFERR_PRESENT | PFERR_RSVD);
	assert_int_equal(e.cpu.st.exits_by_reason[VMMU_EXIT_PF], 2);
	fini(&e);
}

static void test_shadow_write_protected_spte(void **st)
{
	struct env e;
	struct hw_outcome o;
	hpa_t data;
	uint64_t v = 1;
	shadow_env(&e, PT_PRESENT_MASK | PT_USER_MASK, &data);   /* read-only spte */
	struct exit_controls ctl = { .host = VMMU_HOST_SVM, .exception_bitmap = 1u << 14 };
	cpu_set_exit_controls(&e.cpu, &ctl);
	assert_int_equal(access(&e, 0x400000, VMMU_ACC_READ, &v, &o), 0);
	assert_int_equal(o.status, HW_DONE);
	/* A write through the read-only spte exits even though the TLB holds the page. */
	assert_int_equal(access(&e, 0x400000, VMMU_ACC_WRITE, &v, &o), 0);
	assert_int_equal(o.status, HW_EXIT);
	assert_int_equal(o.exit.ec, PFERR_PRESENT | PFERR_WRITE);
	fini(&e);
}

/* ---- the shadow walk against the template walker ---- */

/* cpu_shadow_walk, the hardware's own walk of the shadow tables, against the reference: the
 * template's 64-bit walk (paging_walk_from) under the context the hardware runs a shadowed guest
 * with, on hostile random tables. Every field a caller reads, and the entries' A/D afterwards,
 * must agree; the outcome classes each must occur, so that the tables cannot drift into
 * testing only one. */
#define SW_TABLES 6
#define SW_SLOTS 4
static const unsigned sw_slot_index[SW_SLOTS] = { 0, 1, 2, 511 };

struct sw_env {
	struct env e;
	hpa_t table[SW_TABLES], data[2], freed;
	uint64_t rng;
	int maxphy;
};

static uint64_t sw_rand(struct sw_env *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 7;
	w->rng ^= w->rng << 17;
	return w->rng;
}

static bool sw_chance(struct sw_env *w, unsigned percent)
{
	return sw_rand(w) % 100 < percent;
}

/* A hostile entry: mostly a present table pointer with random rights, sometimes anything. */
static uint64_t sw_entry(struct sw_env *w)
{
	uint64_t e = 0, r = sw_rand(w) % 100;

	if (r < 75)
		e = w->table[sw_rand(w) % SW_TABLES];
	else if (r < 85)
		e = w->data[sw_rand(w) % 2];
	else if (r < 90)
		e = w->freed;
	else if (r < 95)
		e = (sw_rand(w) & rsvd_bits(30, 51));       /* out of the arena, or reserved */
	else
		e = sw_rand(w) & rsvd_bits(12, 51);
	e |= sw_chance(w, 92) ? PT_PRESENT_MASK : 0;
	e |= sw_chance(w, 75) ? PT_WRITABLE_MASK : 0;
	e |= sw_chance(w, 75) ? PT_USER_MASK : 0;
	e |= sw_chance(w, 50) ? PT_ACCESSED_MASK : 0;
	e |= sw_chance(w, 50) ? PT_DIRTY_MASK : 0;
	e |= sw_chance(w, 12) ? PT_PAGE_SIZE_MASK : 0;
	e |= sw_chance(w, 10) ? PT_GLOBAL_MASK : 0;
	e |= sw_chance(w, 15) ? PT64_NX_MASK : 0;
	e |= sw_chance(w, 30) ? (sw_rand(w) & PT64_PKEY_MASK) : 0;
	e |= sw_chance(w, 4) ? 1ULL << (w->maxphy + sw_rand(w) % (52 - w->maxphy + 1)) : 0;
	e |= sw_chance(w, 6) ? 1ULL << (13 + sw_rand(w) % 17) : 0;
	e |= sw_rand(w) & (7ULL << 9);                     /* ignored bits */
	e &= ~(sw_chance(w, 90) ? (1ULL << 52) : 0);
	return e;
}

static void sw_fill_tables(struct sw_env *w)
{
	for (int t = 0; t < SW_TABLES; t++)
		for (int i = 0; i < SW_SLOTS; i++)
			hput(&w->e, w->table[t] + sw_slot_index[i] * 8, sw_entry(w));
}

static void sw_save(struct sw_env *w, uint64_t *v)
{
	for (int t = 0; t < SW_TABLES; t++)
		for (int i = 0; i < SW_SLOTS; i++)
			v[t * SW_SLOTS + i] = hget(&w->e, w->table[t] + sw_slot_index[i] * 8);
}

static void sw_restore(struct sw_env *w, const uint64_t *v)
{
	for (int t = 0; t < SW_TABLES; t++)
		for (int i = 0; i < SW_SLOTS; i++)
			hput(&w->e, w->table[t] + sw_slot_index[i] * 8, v[t * SW_SLOTS + i]);
}

/* The guest state the hardware walk depends on, at random. */
static void sw_state(struct sw_env *w, int levels)
{
	struct cpu *c = &w->e.cpu;
	struct vmmu_regs r = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | (sw_chance(w, 50) ? X86_CR0_WP : 0), .cr3 = 0x1000,
		.cr4 = X86_CR4_PAE | (sw_chance(w, 40) ? X86_CR4_SMEP : 0) |
		       (sw_chance(w, 40) ? X86_CR4_SMAP : 0) | (sw_chance(w, 40) ? X86_CR4_PKE : 0),
		.efer = EFER_LME | EFER_LMA | (sw_chance(w, 50) ? EFER_NXE : 0),
	};
	assert_int_equal(cpu_set_regs(c, &r), 0);
	assert_int_equal(cpu_set_cpl(c, (unsigned)(sw_rand(w) % 4), sw_chance(w, 50)), 0);
	cpu_set_pkru(c, (uint32_t)sw_rand(w));
	/* The root's bits below 12 and from MAXPHYADDR up are not its address. */
	cpu_set_shadow_root(c, w->table[sw_rand(w) % SW_TABLES] | (sw_rand(w) & 0xfff) |
			       (sw_chance(w, 30) ? sw_rand(w) & rsvd_bits(w->maxphy, 63) : 0), levels);
}

static gva_t sw_gva(struct sw_env *w, int levels)
{
	gva_t va = sw_rand(w) & 0xfff;

	for (int l = 1; l <= levels; l++)
		va |= (gva_t)sw_slot_index[sw_rand(w) % SW_SLOTS] << (3 + 9 * l);
	va |= sw_chance(w, 20) ? sw_rand(w) & 0x1ff000 : 0;   /* inside a large page */
	const int bits = levels == 5 ? 57 : 48;
	va = (gva_t)((int64_t)(va << (64 - bits)) >> (64 - bits));
	if (sw_chance(w, 2))
		va ^= 1ULL << 60;                                  /* not canonical */
	return va;
}

static void sw_compare(const struct walk_result *a, const struct walk_result *b)
{
	assert_int_equal(a->status, b->status);
	assert_int_equal(a->addr, b->addr);
	assert_int_equal(a->refs, b->refs);
	if (a->status == WALK_ABORT)
		assert_int_equal(a->abort_err, b->abort_err);
	if (a->status == WALK_GP)
		return;
	assert_int_equal(a->level, b->level);
	assert_int_equal(a->root_level, b->root_level);
	assert_int_equal(a->top_level, b->top_level);
	for (int l = a->top_level; l >= a->level; l--) {
		assert_int_equal(a->gpte[l], b->gpte[l]);
		assert_int_equal(a->pte_gpa[l], b->pte_gpa[l]);
	}
	if (a->status == WALK_PF) {
		assert_int_equal(a->ec, b->ec);
		return;
	}
	assert_int_equal(a->gpa, b->gpa);
	assert_int_equal(a->page_shift, b->page_shift);
	assert_int_equal(a->access, b->access);
	assert_int_equal(a->pkey, b->pkey);
}

static void shadow_walk_vs_template(const char *vendor, int maxphy, int levels, uint64_t seed)
{
	static const unsigned access_bits[] = { PFERR_WRITE, PFERR_FETCH, WALK_IMPLICIT, WALK_NO_AD };
	struct sw_env w = { .rng = seed, .maxphy = maxphy };
	struct env *e = &w.e;
	struct cpu_model m;
	unsigned seen[7] = { 0 };   /* OK, OK setting A/D, #GP, #PF: not present, RSVD, rights, PK */

	memset(e, 0, sizeof(*e));
	assert_int_equal(host_arena_create(1ULL << 30, &e->arena), 0);
	assert_int_equal(cpu_model_fixed(&m, vendor), 0);
	m.maxphyaddr = maxphy;
	assert_int_equal(cpu_init(&e->cpu, VMMU_MMU_SHADOW, &m, NULL, NULL, &no_phys, NULL, e->arena), 0);
	for (int t = 0; t < SW_TABLES - 1; t++)
		w.table[t] = frame(e);
	/* The last table inside a block, not its head: allocated, found by the frame check's slow
	 * path. */
	pfn_t block;
	assert_int_equal(host_frame_alloc(e->arena, 1, &block), 0);
	w.table[SW_TABLES - 1] = (block + 1) << 12;
	w.data[0] = frame(e);
	w.data[1] = frame(e);
	/* A frame freed with entries left in it, the last allocation (nothing takes it again): the
	 * walk must refuse to read them (the frame check), not find them zero. */
	w.freed = frame(e);
	host_frame_put(e->arena, w.freed >> 12, 0);
	for (int i = 0; i < SW_SLOTS; i++)
		((uint64_t *)host_pfn_to_ptr(e->arena, w.freed >> 12))[sw_slot_index[i]] =
			w.table[i] | PRWU | PT_ACCESSED_MASK;

	for (int round = 0; round < 20000; round++) {
		uint64_t before[SW_TABLES * SW_SLOTS], after[SW_TABLES * SW_SLOTS],
			 ref[SW_TABLES * SW_SLOTS];
		struct walk_result ra, rb;
		struct walk_start start, *sp = NULL;

		if (round % 32 == 0)
			sw_fill_tables(&w);
		if (round % 8 == 0)
			sw_state(&w, levels);
		if (sw_chance(&w, 15)) {
			/* Any level, the root's and out-of-range ones included (both ignore those). */
			start = (struct walk_start){ .level = (int)(sw_rand(&w) % 7) - 1,
						     .table = w.table[sw_rand(&w) % SW_TABLES],
						     .access = (unsigned)(sw_rand(&w) & ACC_ALL) };
			sp = &start;
		}
		const gva_t gva = sw_gva(&w, levels);
		unsigned access = 0;
		for (unsigned k = 0; k < sizeof(access_bits) / sizeof(*access_bits); k++)
			access |= sw_chance(&w, 35) ? access_bits[k] : 0;
		const struct cpu *c = &e->cpu;
		/* The reference: the template's walk under the context the hardware runs a
		 * shadowed guest with. */
		struct paging_ctx hw;
		cpu_shadow_hw_ctx(c, &hw);

		sw_save(&w, before);
		cpu_shadow_walk(c, gva, access, sp, &ra);
		sw_save(&w, after);
		sw_restore(&w, before);
		paging_walk_from(&hw, &host_mem_ops, e->arena, gva, access, sp, &rb);
		sw_compare(&ra, &rb);
		sw_save(&w, ref);
		assert_memory_equal(ref, after, sizeof(ref));   /* the same A and D bits set */

		if (ra.status == WALK_OK)
			seen[memcmp(before, after, sizeof(before)) ? 1 : 0]++;
		if (ra.status == WALK_GP)
			seen[2]++;
		if (ra.status == WALK_PF)
			seen[(ra.ec & PFERR_RSVD) ? 4 : (ra.ec & PFERR_PK) ? 6 :
			     (ra.ec & PFERR_PRESENT) ? 5 : 3]++;
	}
	for (int k = 0; k < 7; k++)
		assert_true(seen[k] > 100);
	cpu_destroy(&e->cpu);
	host_arena_destroy(e->arena);
}

static void test_shadow_walk_matches_template(void **st)
{
	shadow_walk_vs_template("intel", 46, 4, 0x9e3779b97f4a7c15ULL);
	shadow_walk_vs_template("intel", 52, 5, 0x2545f4914f6cdd1dULL);
	shadow_walk_vs_template("amd", 48, 4, 0x5851f42d4c957f2dULL);
	shadow_walk_vs_template("amd", 36, 4, 0x14057b7ef767814fULL);
}

/* ---- native mode: a dirty-logged write is marked after its bytes land ---- */

/* Guest RAM for native mode, served by the test as a VMM's memslots would be: every write answer
 * uncacheable (a dirty-logging slot), and written() checks that the write it is told of is in
 * memory already. */
struct logged_ram {
	uint8_t mem[8 * 4096];
	gfn_t marked[16];
	unsigned nmarked;
	gpa_t expect_gpa;          /* the data write's address, its value below */
	uint64_t expect_val;
	bool data_seen;            /* written() saw the data page with the value in place */
	bool tables_seen;          /* written() saw each table page's entry 0 Accessed already */
};

static int logged_page(void *o, gfn_t gfn, bool w, uint8_t **h, bool *c)
{
	struct logged_ram *r = o;

	if (gfn >= sizeof(r->mem) / 4096)
		return -ENOENT;
	*h = r->mem + gfn * 4096;
	*c = !w;
	return 0;
}

static void logged_written(void *o, gfn_t gfn)
{
	struct logged_ram *r = o;
	uint64_t v;

	assert_true(r->nmarked < 16);
	r->marked[r->nmarked++] = gfn;
	if (gfn >= 1 && gfn <= 4) {
		memcpy(&v, r->mem + gfn * 4096, 8);
		r->tables_seen &= (v & PT_ACCESSED_MASK) && (gfn < 4 || (v & PT_DIRTY_MASK));
	}
	if (gfn == r->expect_gpa >> 12) {
		memcpy(&v, r->mem + r->expect_gpa, 8);
		r->data_seen = v == r->expect_val;
	}
}

static const struct phys_ops logged_phys = { .page = logged_page, .written = logged_written };

static void test_native_write_logged_after_store(void **state)
{
	static struct logged_ram r;
	struct host_arena *arena;
	struct cpu_model m;
	struct vmmu_tlb_geometry g = { 0 };
	struct cpu c;
	struct hw_outcome o;
	uint64_t val = 0x1122334455667788ULL, e[] = { 0x2000 | PRWU, 0x3000 | PRWU, 0x4000 | PRWU,
						      0x5000 | PRWU };

	(void)state;
	memset(&r, 0, sizeof(r));
	/* PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000: gva 0 -> gpa 0x5000; gva 0x1000
	 * not present. */
	for (unsigned i = 0; i < 4; i++)
		memcpy(r.mem + 0x1000 * (i + 1), &e[i], 8);
	assert_int_equal(host_arena_create(1ULL << 30, &arena), 0);
	cpu_model_fixed(&m, "intel");
	assert_int_equal(cpu_init(&c, VMMU_MMU_NATIVE, &m, &g, NULL, &logged_phys, &r, arena), 0);
	struct vmmu_regs regs = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = 0x1000, .cr4 = X86_CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	assert_int_equal(cpu_set_regs(&c, &regs), 0);

	/* The write: each table page marked after its A bit (the leaf's D too) is set, the data
	 * page after its bytes are in place. */
	r.expect_gpa = 0x5010;
	r.expect_val = val;
	r.tables_seen = true;
	assert_int_equal(cpu_access(&c, 0x10, 8, VMMU_ACC_WRITE, &val, &o), 0);
	assert_int_equal(o.status, HW_DONE);
	assert_true(r.data_seen);
	assert_true(r.tables_seen);
	assert_int_equal(r.nmarked, 5);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t pte;
		memcpy(&pte, r.mem + 0x1000 * (i + 1), 8);
		assert_int_equal(r.marked[i], i + 1);
		assert_true(pte & PT_ACCESSED_MASK);
	}
	assert_int_equal(r.marked[4], 5);

	/* A write across into the page that is not mapped: the #PF comes before any byte moves, and
	 * nothing is marked. */
	r.nmarked = 0;
	r.data_seen = false;
	r.expect_gpa = 0x5ffc;
	val = 0x99;
	assert_int_equal(cpu_access(&c, 0xffc, 8, VMMU_ACC_WRITE, &val, &o), 0);
	assert_int_equal(o.status, HW_PF);
	assert_int_equal(r.nmarked, 0);
	assert_true(r.mem[0x5ffc] == 0);

	/* A read marks nothing. */
	assert_int_equal(cpu_access(&c, 0x10, 8, 0, &val, &o), 0);
	assert_int_equal(o.status, HW_DONE);
	assert_int_equal(val, 0x1122334455667788ULL);
	assert_int_equal(r.nmarked, 0);
	cpu_destroy(&c);
	host_arena_destroy(arena);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ept_translation_and_refs),
		cmocka_unit_test(test_native_write_logged_after_store),
		cmocka_unit_test(test_nested_tlb_cuts_refs),
		cmocka_unit_test(test_ept_violation_exit),
		cmocka_unit_test(test_combined_rights_in_tlb),
		cmocka_unit_test(test_npt_exit),
		cmocka_unit_test(test_shadow_walk_and_pf_exits),
		cmocka_unit_test(test_shadow_write_protected_spte),
		cmocka_unit_test(test_shadow_walk_matches_template),
	};
	return cmocka_run_group_tests_name("hw_modes", tests, NULL, NULL);
}
