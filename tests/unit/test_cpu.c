/* SPDX-License-Identifier: MIT */
/*
 * The hardware model in native mode, through the public API: accesses end to end, #PF delivery,
 * the TLB rules (Dirty re-walk, global pages, PCID and the CR3 no-flush bit, INVLPG, the four
 * INVPCID types, CR4.PGE/PCIDE transitions), exact 1-D walk reference counts, MMIO, accesses
 * that cross pages, control-register checks, the cost model, and the #PF exit rule truth table;
 * and the host pointers that TLB entries keep for the hit path: every event that empties the
 * guest-page cache (a memslot moved or deleted, read-only, dirty logging turned on, a host unmap)
 * reaches a translation the TLB still holds, and the access after it sees the new state.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cpu/cost.h"
#include "cpu/exit.h"
#include "paging/paging.h"
#include "vm/vm.h"
#include "vmmu/vmmu.h"

#define MEM (64ULL << 20)
#define PRWU (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK)

struct g {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v;
	gpa_t next_table;     /* bump allocator for table pages */
	gpa_t root;
};

static uint64_t rd(struct g *g, gpa_t a) { uint64_t x = 0; assert_int_equal(vmmu_read_guest(g->vm, a, &x, 8), 0); return x; }
static void wr(struct g *g, gpa_t a, uint64_t x) { assert_int_equal(vmmu_write_guest(g->vm, a, &x, 8), 0); }

static gpa_t new_table(struct g *g)
{
	gpa_t t = g->next_table;
	g->next_table += 4096;
	return t;
}

/* Map gva -> gpa in the 4- or 5-level tables at g->root with a leaf at @level (1 = 4K, 2 = 2M,
 * 3 = 1G) and leaf flags @f (PS added for large leaves). Returns the leaf's gpa. */
static gpa_t map(struct g *g, int levels, gva_t gva, gpa_t gpa, int level, uint64_t f)
{
	gpa_t table = g->root;
	for (int l = levels; l > level; l--) {
		gpa_t e = table + ((gva >> (12 + 9 * (l - 1))) & 511) * 8;
		uint64_t v = rd(g, e);
		if (!(v & PT_PRESENT_MASK)) {
			v = new_table(g) | PRWU;
			wr(g, e, v);
		}
		table = v & rsvd_bits(12, 51);
	}
	gpa_t e = table + ((gva >> (12 + 9 * (level - 1))) & 511) * 8;
	wr(g, e, gpa | f | (level > 1 ? PT_PAGE_SIZE_MASK : 0));
	return e;
}

static void regs64(struct g *g, uint64_t cr4_extra, uint64_t cr3)
{
	struct vmmu_regs r = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP,
		.cr3 = cr3,
		.cr4 = X86_CR4_PAE | cr4_extra,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), 0);
}

static int g_init_mmu(struct g *g, enum vmmu_mmu mmu)
{
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30, .mmu = mmu,
				      .host = mmu == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX };
	uint64_t hva;
	memset(g, 0, sizeof(*g));
	if (vmmu_vm_create(&cfg, &g->vm) || vmmu_vm_mmap(g->vm, MEM, false, &hva))
		return -1;
	struct vmmu_userspace_memory_region r = { .slot = 0, .memory_size = MEM, .userspace_addr = hva };
	if (vmmu_set_user_memory_region(g->vm, &r) || vmmu_vcpu_create(g->vm, 0, &g->v))
		return -1;
	g->next_table = 0x100000;
	g->root = new_table(g);
	return 0;
}

static int g_init(struct g *g)
{
	return g_init_mmu(g, VMMU_MMU_NATIVE);
}

static int setup(void **state)
{
	static struct g g;
	if (g_init(&g))
		return -1;
	*state = &g;
	return 0;
}

static int teardown(void **state)
{
	struct g *g = *state;
	vmmu_vm_destroy(g->vm);
	return 0;
}

static struct vmmu_stats stats(struct g *g)
{
	struct vmmu_stats s;
	assert_int_equal(vmmu_vcpu_get_stats(g->v, &s), 0);
	return s;
}

static struct vmmu_access_result acc(struct g *g, gva_t gva, uint32_t len, unsigned kind, void *buf)
{
	struct vmmu_access_result res;
	assert_int_equal(vmmu_vcpu_access(g->v, gva, len, kind, buf, &res), 0);
	return res;
}

static void test_access_and_fault(void **state)
{
	struct g *g = *state;
	uint64_t x = 0x1122334455667788ULL, y = 0;
	regs64(g, 0, g->root);
	gpa_t pte = map(g, 4, 0x400000, 0x800000, 1, PRWU);
	struct vmmu_access_result r = acc(g, 0x400010, 8, VMMU_ACC_WRITE, &x);
	assert_int_equal(r.status, VMMU_ACCESS_DONE);
	assert_int_equal(rd(g, 0x800010), x);
	assert_true(rd(g, pte) & PT_DIRTY_MASK);
	r = acc(g, 0x400010, 8, VMMU_ACC_READ, &y);
	assert_int_equal(y, x);
	/* An unmapped address: a #PF delivered, with the address and the error code. */
	r = acc(g, 0x500000, 4, VMMU_ACC_WRITE, &x);
	assert_int_equal(r.status, VMMU_ACCESS_PF);
	assert_int_equal(r.pf_addr, 0x500000);
	assert_int_equal(r.pf_ec, PFERR_WRITE);
	/* KVM's pf_guest counts the #PFs a hypervisor injects: natively there is none. */
	assert_int_equal(stats(g).pf_guest, 0);
	/* Non-canonical: #GP. */
	r = acc(g, 0x0000800000000000ULL, 4, VMMU_ACC_READ, &y);
	assert_int_equal(r.status, VMMU_ACCESS_GP);
	/* From canonical into non-canonical space, the first page unmapped: still #GP, the canonical
	 * check preceding paging (it gave the first page's #PF). */
	r = acc(g, 0x00007ffffffffffcULL, 8, VMMU_ACC_READ, &y);
	assert_int_equal(r.status, VMMU_ACCESS_GP);
	/* Bad arguments. */
	struct vmmu_access_result res;
	assert_int_equal(vmmu_vcpu_access(g->v, 0x400000, 0, 0, &x, &res), -EINVAL);
	assert_int_equal(vmmu_vcpu_access(g->v, 0x400000, 9, 0, &x, &res), -EINVAL);
	assert_int_equal(vmmu_vcpu_access(g->v, 0x400008, 4096, 0, &x, &res), -EINVAL);
	assert_int_equal(vmmu_vcpu_access(g->v, 0x400000, 4, VMMU_ACC_WRITE | VMMU_ACC_FETCH, &x, &res), -EINVAL);
}

static void test_walk_refs_1d(void **state)
{
	struct g *g = *state;
	uint64_t x;
	regs64(g, 0, g->root);
	map(g, 4, 0x40000000, 0x800000, 1, PRWU);           /* 4K */
	map(g, 4, 0x80000000, 0x1000000, 2, PRWU);          /* 2M */
	map(g, 4, 0x8000000000ULL, 0, 3, PRWU);             /* 1G */
	uint64_t before = stats(g).walk_refs;
	acc(g, 0x40000000, 8, 0, &x);
	assert_int_equal(stats(g).walk_refs - before, 4);
	acc(g, 0x80000000, 8, 0, &x);
	assert_int_equal(stats(g).walk_refs - before, 4 + 3);
	acc(g, 0x8000000000ULL, 8, 0, &x);
	assert_int_equal(stats(g).walk_refs - before, 4 + 3 + 2);
	/* Hits cost no reference. */
	acc(g, 0x40000008, 8, 0, &x);
	acc(g, 0x80000008, 8, 0, &x);
	acc(g, 0x8000000008ULL, 8, 0, &x);
	assert_int_equal(stats(g).walk_refs - before, 9);
	assert_int_equal(stats(g).tlb_hits, 3);
}

static void test_walk_refs_5level_32bit_pae(void **state)
{
	struct g *g = *state;
	uint64_t x;
	/* 5-level: 5 references. */
	regs64(g, X86_CR4_LA57, g->root);
	map(g, 5, 0x40000000, 0x800000, 1, PRWU);
	uint64_t before = stats(g).walk_refs;
	acc(g, 0x40000000, 8, 0, &x);
	assert_int_equal(stats(g).walk_refs - before, 5);

	/* 32-bit paging: 2 references. */
	gpa_t pd = new_table(g), pt = new_table(g);
	uint32_t pde = (uint32_t)pt | PRWU, pte = 0x800000 | PRWU;
	vmmu_write_guest(g->vm, pd + 1 * 4, &pde, 4);
	vmmu_write_guest(g->vm, pt, &pte, 4);
	struct vmmu_regs r = { .cr0 = X86_CR0_PG | X86_CR0_PE, .cr3 = pd };
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), 0);
	before = stats(g).walk_refs;
	acc(g, 0x400000, 4, 0, &x);
	assert_int_equal(stats(g).walk_refs - before, 2);

	/* PAE: the PDPTEs are registers, so 2 references. */
	gpa_t pdpt = new_table(g), pd2 = new_table(g), pt2 = new_table(g);
	wr(g, pdpt, pd2 | PT_PRESENT_MASK);
	wr(g, pd2 + 2 * 8, pt2 | PRWU);
	wr(g, pt2, 0x800000 | PRWU);
	r.cr4 = X86_CR4_PAE;
	r.cr3 = pdpt;
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), 0);
	before = stats(g).walk_refs;
	acc(g, 0x400000, 4, 0, &x);
	assert_int_equal(stats(g).walk_refs - before, 2);
	/* A PDPTE with a reserved bit: the CR3 load is refused (#GP). */
	wr(g, pdpt + 8, pd2 | PT_PRESENT_MASK | PT_WRITABLE_MASK);
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, pdpt), -EINVAL);
}

static void test_cpl_switch_keeps_tlb(void **state)
{
	struct g *g = *state;
	uint64_t x;
	regs64(g, 0, g->root);
	map(g, 4, 0x400000, 0x800000, 1, PT_PRESENT_MASK | PT_WRITABLE_MASK);   /* supervisor page */
	acc(g, 0x400000, 8, 0, &x);
	uint64_t m = stats(g).tlb_misses;
	/* User mode: the cached supervisor translation refuses it; the re-walk faults with U set. */
	assert_int_equal(vmmu_vcpu_set_cpl(g->v, 3, false), 0);
	struct vmmu_access_result r = acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(r.status, VMMU_ACCESS_PF);
	assert_int_equal(r.pf_ec, PFERR_PRESENT | PFERR_USER);
	/* Back to the kernel: no flush happened on the privilege changes (the #PF dropped the entry,
	 * so one more miss). */
	assert_int_equal(vmmu_vcpu_set_cpl(g->v, 0, false), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 2);
	acc(g, 0x400008, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 2);
	assert_int_equal(vmmu_vcpu_set_cpl(g->v, 4, false), -EINVAL);
	/* PKRU: a user page with key 3, access-disabled by WRPKRU. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 4, X86_CR4_PAE | X86_CR4_PKE), 0);
	map(g, 4, 0x600000, 0x900000, 1, PRWU | (3ULL << PT64_PKEY_SHIFT));
	assert_int_equal(vmmu_vcpu_set_cpl(g->v, 3, false), 0);
	assert_int_equal(acc(g, 0x600000, 8, 0, &x).status, VMMU_ACCESS_DONE);
	assert_int_equal(vmmu_vcpu_set_pkru(g->v, 1u << 6), 0);
	r = acc(g, 0x600000, 8, 0, &x);   /* a TLB hit still obeys PKRU */
	assert_int_equal(r.status, VMMU_ACCESS_PF);
	assert_int_equal(r.pf_ec, PFERR_PRESENT | PFERR_USER | PFERR_PK);
}

static void test_dirty_rewalk(void **state)
{
	struct g *g = *state;
	uint64_t x = 0;
	regs64(g, 0, g->root);
	gpa_t pte = map(g, 4, 0x400000, 0x800000, 1, PRWU);
	acc(g, 0x400000, 8, VMMU_ACC_READ, &x);
	assert_false(rd(g, pte) & PT_DIRTY_MASK);
	uint64_t misses = stats(g).tlb_misses;
	/* The cached entry is clean: the write walks again, and the walk sets D. */
	acc(g, 0x400000, 8, VMMU_ACC_WRITE, &x);
	assert_int_equal(stats(g).tlb_misses, misses + 1);
	assert_true(rd(g, pte) & PT_DIRTY_MASK);
	/* Now dirty in the TLB: further writes hit. */
	acc(g, 0x400008, 8, VMMU_ACC_WRITE, &x);
	assert_int_equal(stats(g).tlb_misses, misses + 1);
}

static void test_stale_tlb_until_invlpg(void **state)
{
	struct g *g = *state;
	uint64_t a = 0xaaaa, b = 0xbbbb, x = 0;
	regs64(g, 0, g->root);
	wr(g, 0x800000, a);
	wr(g, 0x900000, b);
	gpa_t pte = map(g, 4, 0x400000, 0x800000, 1, PRWU);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, a);
	/* The guest retargets the PTE without flushing: the TLB still holds the old translation
	 * (the architecture allows it; hardware does it). */
	wr(g, pte, 0x900000 | PRWU);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, a);
	assert_int_equal(vmmu_vcpu_invlpg(g->v, 0x400000), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, b);
	/* A PTE made not present and flushed faults. */
	wr(g, pte, 0);
	vmmu_vcpu_invlpg(g->v, 0x400000);
	assert_int_equal(acc(g, 0x400000, 8, 0, &x).status, VMMU_ACCESS_PF);
	/* INVLPG of a non-canonical address is a no-op, not an error. */
	assert_int_equal(vmmu_vcpu_invlpg(g->v, 0x0000900000000000ULL), 0);
}

static void test_global_and_cr3(void **state)
{
	struct g *g = *state;
	uint64_t x;
	regs64(g, X86_CR4_PGE, g->root);
	map(g, 4, 0x400000, 0x800000, 1, PRWU | PT_GLOBAL_MASK);
	map(g, 4, 0x600000, 0x900000, 1, PRWU);
	acc(g, 0x400000, 8, 0, &x);
	acc(g, 0x600000, 8, 0, &x);
	uint64_t m = stats(g).tlb_misses;
	/* MOV CR3 drops non-global entries only. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, g->root), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m);
	acc(g, 0x600000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 1);
	/* Toggling CR4.PGE drops the global ones too. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 4, X86_CR4_PAE), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 2);
	/* Without CR4.PGE the G bit makes nothing global. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, g->root), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 3);
}

static void test_pcid(void **state)
{
	struct g *g = *state;
	uint64_t x;
	gpa_t root2 = new_table(g);
	regs64(g, 0, g->root);
	map(g, 4, 0x400000, 0x800000, 1, PRWU);
	gpa_t save = g->root;
	g->root = root2;
	map(g, 4, 0x400000, 0x900000, 1, PRWU);
	g->root = save;
	wr(g, 0x800000, 1);
	wr(g, 0x900000, 2);
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 4, X86_CR4_PAE | X86_CR4_PCIDE), 0);
	/* PCIDE can only be set with CR3[11:0] = 0. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, g->root | 1), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, 1);
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, root2 | 2), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, 2);
	uint64_t m = stats(g).tlb_misses;
	/* Back to PCID 1 with the no-flush bit: its entry is still there. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, g->root | 1 | (1ULL << 63)), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, 1);
	assert_int_equal(stats(g).tlb_misses, m);
	/* Without the no-flush bit, PCID 1's entries go. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, g->root | 1), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 1);
	/* ... but PCID 2's stay. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, root2 | 2 | (1ULL << 63)), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, 2);
	assert_int_equal(stats(g).tlb_misses, m + 1);

	/* INVPCID: type 0 (one address of one PCID), 1 (one PCID), 2 (all + global), 3 (all). */
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 0, 1, 0x400000), 0);
	acc(g, 0x400000, 8, 0, &x);                   /* PCID 2 unaffected */
	assert_int_equal(stats(g).tlb_misses, m + 1);
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 1, 2, 0), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 2);
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 3, 0, 0), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 3);
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 2, 0, 0), 0);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(stats(g).tlb_misses, m + 4);
	/* #GP cases. */
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 4, 0, 0), -EINVAL);
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 0, 0x1000, 0), -EINVAL);
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 0, 1, 0x0000800000000000ULL), -EINVAL);
	/* Clearing PCIDE flushes everything. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, root2), 0);
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 4, X86_CR4_PAE), 0);
	assert_int_equal(vmmu_vcpu_invpcid(g->v, 1, 1, 0), -EINVAL);   /* PCID != 0 without PCIDE */
}

static void test_mmio_and_split(void **state)
{
	struct g *g = *state;
	uint64_t x = 0x0807060504030201ULL, y = 0;
	regs64(g, 0, g->root);
	map(g, 4, 0x400000, 0x800000, 1, PRWU);
	map(g, 4, 0x401000, 0x801000, 1, PRWU);
	map(g, 4, 0x500000, 0xfee00000, 1, PRWU);   /* no memslot there: MMIO */
	struct vmmu_access_result r = acc(g, 0x500010, 4, VMMU_ACC_WRITE, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(r.mmio_gpa, 0xfee00010);
	assert_int_equal(r.mmio_len, 4);
	assert_true(r.mmio_write);
	assert_int_equal(r.mmio_data, 0x04030201);
	r = acc(g, 0x500010, 8, VMMU_ACC_READ, &y);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	r.mmio_data = 0xdead;
	assert_int_equal(vmmu_vcpu_complete_mmio(g->v, &r, &y), 0);
	assert_int_equal(y, 0xdead);
	/* An access crossing two mapped pages. */
	r = acc(g, 0x400ffc, 8, VMMU_ACC_WRITE, &x);
	assert_int_equal(r.status, VMMU_ACCESS_DONE);
	assert_int_equal(rd(g, 0x800ff8) >> 32, 0x04030201);
	assert_int_equal(rd(g, 0x801000) & 0xffffffff, 0x08070605);
	/* Crossing into an unmapped page faults on the second page and writes nothing. */
	wr(g, 0x801ff8, 0);
	r = acc(g, 0x401ffc, 8, VMMU_ACC_WRITE, &x);
	assert_int_equal(r.status, VMMU_ACCESS_PF);
	assert_int_equal(r.pf_addr, 0x402000);
	assert_int_equal(rd(g, 0x801ff8), 0);
	/* A page copy. */
	static uint8_t page[4096];
	memset(page, 0x5a, sizeof(page));
	assert_int_equal(acc(g, 0x401000, 4096, VMMU_ACC_WRITE, page).status, VMMU_ACCESS_DONE);
	assert_int_equal(rd(g, 0x801800), 0x5a5a5a5a5a5a5a5aULL);
}

static void test_memory_map_changes_reach_the_vcpu(void **state)
{
	struct g *g = *state;
	uint64_t x = 0, v = 42;
	regs64(g, 0, g->root);
	map(g, 4, 0x400000, 0x800000, 1, PRWU);
	acc(g, 0x400000, 8, VMMU_ACC_WRITE, &v);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, 42);
	/* The slot moves its backing: a new hva range at the same gpas (delete + create). The vCPU
	 * must read the new backing, not a cached pointer to the old one. */
	uint64_t hva2;
	assert_int_equal(vmmu_vm_mmap(g->vm, MEM, false, &hva2), 0);
	struct vmmu_userspace_memory_region del = { .slot = 0, .memory_size = 0 };
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &del), 0);
	struct vmmu_userspace_memory_region r = { .slot = 0, .memory_size = MEM, .userspace_addr = hva2 };
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &r), 0);
	/* The new backing is zero: the tables are gone too, so re-create them and write a marker. */
	g->next_table = 0x100000;
	g->root = new_table(g);
	regs64(g, 0, g->root);
	map(g, 4, 0x400000, 0x800000, 1, PRWU);
	wr(g, 0x800000, 7);
	acc(g, 0x400000, 8, 0, &x);
	assert_int_equal(x, 7);
	/* Host munmap of the backing: the slot has no memory behind it, the access fails (KVM_RUN's
	 * -EFAULT), never reads the old backing. */
	assert_int_equal(vmmu_vm_munmap(g->vm, hva2, MEM), 0);
	struct vmmu_access_result res;
	assert_int_equal(vmmu_vcpu_access(g->v, 0x400000, 8, 0, &x, &res), -EFAULT);
}

static void test_regs_checks(void **state)
{
	struct g *g = *state;
	struct vmmu_regs r = { .cr0 = X86_CR0_PG };   /* PG without PE */
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), -EINVAL);
	r = (struct vmmu_regs){ .cr0 = X86_CR0_PG | X86_CR0_PE, .efer = EFER_LME | EFER_LMA };   /* long mode without PAE */
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), -EINVAL);
	r = (struct vmmu_regs){ .cr0 = X86_CR0_PE, .efer = EFER_LMA };   /* LMA without paging */
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), -EINVAL);
	r = (struct vmmu_regs){ .cr0 = X86_CR0_PE, .cr4 = 1ULL << 23 };   /* an unknown CR4 bit */
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), -EINVAL);
	r = (struct vmmu_regs){ .cr0 = X86_CR0_PE, .cpl = 4 };
	assert_int_equal(vmmu_vcpu_set_regs(g->v, &r), -EINVAL);
	regs64(g, 0, g->root);
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 3, 1ULL << 50), -EINVAL);   /* above MAXPHYADDR */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 4, X86_CR4_PAE | X86_CR4_LA57), -EINVAL);   /* LA57 in long mode */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 4, 0), -EINVAL);             /* PAE off in long mode */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 2, 0), -EINVAL);
	struct vmmu_regs got;
	vmmu_vcpu_get_regs(g->v, &got);
	assert_int_equal(got.cr3, g->root);
	/* Leaving paging and entering it again flushes, and turns long mode off and on. */
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 0, X86_CR0_PE), 0);
	vmmu_vcpu_get_regs(g->v, &got);
	assert_false(got.efer & EFER_LMA);
	assert_int_equal(vmmu_vcpu_mov_cr(g->v, 0, X86_CR0_PE | X86_CR0_PG), 0);
	vmmu_vcpu_get_regs(g->v, &got);
	assert_true(got.efer & EFER_LMA);
}

static void test_cost_model(void **state)
{
	struct g *g = *state;
	uint64_t x;
	struct vmmu_cost c = { 0 };
	cost_fill_defaults(&c);
	regs64(g, 0, g->root);
	map(g, 4, 0x400000, 0x800000, 1, PRWU);
	uint64_t c0 = stats(g).sim_cycles;
	acc(g, 0x400000, 8, 0, &x);            /* miss: 4 refs */
	acc(g, 0x400008, 8, 0, &x);            /* hit */
	/* #PF: the unmapped address shares PML4E 0 and PDPTE 0 with the mapped one; its PDE is
	 * empty, so the walk reads 3 entries. */
	acc(g, 0x700000, 8, 0, &x);
	uint64_t want = 3ULL * c.tlb_hit + 4ULL * c.walk_ref + 3ULL * c.walk_ref + c.pf_deliver;
	assert_int_equal(stats(g).sim_cycles - c0, want);
	/* KEY=VALUE overrides. */
	assert_int_equal(cost_set(&c, "walk_ref=7"), 0);
	assert_int_equal(c.walk_ref, 7);
	assert_int_equal(cost_set(&c, "walkref=7"), -EINVAL);
	assert_int_equal(cost_set(&c, "walk_ref=-1"), -EINVAL);
	assert_int_equal(cost_set(&c, "walk_ref="), -EINVAL);
}

static void test_paging_structure_caches(void **state)
{
	struct g g2 = { 0 };
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30, .tlb = { .pwc = true } };
	uint64_t hva, x = 0, y;
	assert_int_equal(vmmu_vm_create(&cfg, &g2.vm), 0);
	assert_int_equal(vmmu_vm_mmap(g2.vm, MEM, false, &hva), 0);
	struct vmmu_userspace_memory_region r = { .slot = 0, .memory_size = MEM, .userspace_addr = hva };
	assert_int_equal(vmmu_set_user_memory_region(g2.vm, &r), 0);
	assert_int_equal(vmmu_vcpu_create(g2.vm, 0, &g2.v), 0);
	g2.next_table = 0x100000;
	g2.root = new_table(&g2);
	regs64(&g2, 0, g2.root);
	for (int i = 0; i < 4; i++)
		map(&g2, 4, 0x400000 + i * 0x1000, 0x800000 + i * 0x1000, 1, PRWU);
	map(&g2, 4, 0x40000000, 0x900000, 1, PRWU);           /* another PDPTE */
	uint64_t before = stats(&g2).walk_refs;
	acc(&g2, 0x400000, 8, 0, &x);
	assert_int_equal(stats(&g2).walk_refs - before, 4);  /* cold */
	acc(&g2, 0x401000, 8, 0, &x);
	assert_int_equal(stats(&g2).walk_refs - before, 5);  /* PDE cached: the PTE only */
	acc(&g2, 0x40000000, 8, 0, &x);
	assert_int_equal(stats(&g2).walk_refs - before, 8);  /* PML4E cached: PDPTE, PDE, PTE */
	/* The walk resumed below the cache still sets A/D in what it reads. */
	acc(&g2, 0x402000, 8, VMMU_ACC_WRITE, &x);
	assert_int_equal(stats(&g2).walk_refs - before, 9);
	/* Values are the walk's, not the cache's: data written is where the PTE says. */
	acc(&g2, 0x402000, 8, 0, &y);
	assert_int_equal(rd(&g2, 0x802000), x);
	/* INVLPG drops the caches too: the next miss walks from the root. */
	vmmu_vcpu_invlpg(g2.v, 0x400000);
	acc(&g2, 0x403000, 8, 0, &x);
	assert_int_equal(stats(&g2).walk_refs - before, 13);
	/* A PDE made not present and flushed: the cached PDE must not be used. Tables were made in
	 * order: the root, then PDPT 0x101000, PD 0x102000; 0x400000 is PDE 2. */
	acc(&g2, 0x400000, 8, 0, &x);
	wr(&g2, 0x102000 + 2 * 8, 0);
	vmmu_vcpu_invlpg(g2.v, 0x400000);
	struct vmmu_access_result res = acc(&g2, 0x400000, 8, 0, &x);
	assert_int_equal(res.status, VMMU_ACCESS_PF);
	assert_int_equal(res.pf_ec, 0);
	vmmu_vm_destroy(g2.vm);
}

static void test_pf_exit_rules(void **state)
{
	/* VMX: with bit 14 set, exit iff (ec & mask) == match; clear: iff they differ. */
	struct exit_controls c = { .host = VMMU_HOST_VMX };
	for (unsigned bit = 0; bit < 2; bit++) {
		c.exception_bitmap = bit ? 1u << 14 : 0;
		for (uint32_t mask = 0; mask < 4; mask++) {
			for (uint32_t match = 0; match < 4; match++) {
				for (uint32_t ec = 0; ec < 4; ec++) {
					c.pfec_mask = mask;
					c.pfec_match = match;
					bool eq = (ec & mask) == match;
					assert_int_equal(exit_pf_intercepted(&c, ec), bit ? eq : !eq);
				}
			}
		}
	}
	/* The no-trap setting: mask = match = P: only faults with P=1 exit. */
	c.exception_bitmap = 1u << 14;
	c.pfec_mask = c.pfec_match = PFERR_PRESENT;
	assert_false(exit_pf_intercepted(&c, PFERR_WRITE));
	assert_true(exit_pf_intercepted(&c, PFERR_PRESENT | PFERR_WRITE));
	/* The usual shadow setting: all #PF exit. */
	c.pfec_mask = c.pfec_match = 0;
	assert_true(exit_pf_intercepted(&c, PFERR_WRITE));
	/* SVM: the intercept bit alone. */
	struct exit_controls s = { .host = VMMU_HOST_SVM, .pfec_mask = 1, .pfec_match = 1 };
	assert_false(exit_pf_intercepted(&s, PFERR_PRESENT));
	s.exception_bitmap = 1u << 14;
	assert_true(exit_pf_intercepted(&s, 0));
}

static void test_vm_config(void **state)
{
	struct vmmu_vm *vm;
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30, .mmu = VMMU_MMU_EPT, .host = VMMU_HOST_SVM };
	assert_int_equal(vmmu_vm_create(&cfg, &vm), -EINVAL);   /* EPT needs a VMX host */
	cfg.mmu = VMMU_MMU_NPT;
	cfg.host = VMMU_HOST_VMX;
	assert_int_equal(vmmu_vm_create(&cfg, &vm), -EINVAL);
	cfg.mmu = VMMU_MMU_NATIVE;
	cfg.tlb.l1_4k.sets = 3;                                   /* not a power of two */
	assert_int_equal(vmmu_vm_create(&cfg, &vm), -EINVAL);
	cfg.tlb.l1_4k.sets = 0;
	cfg.cpu = "sparc";
	assert_int_equal(vmmu_vm_create(&cfg, &vm), -EINVAL);
	cfg.cpu = "amd";
	assert_int_equal(vmmu_vm_create(&cfg, &vm), 0);
	struct vmmu_vcpu *a, *b;
	assert_int_equal(vmmu_vcpu_create(vm, 1, &a), 0);
	assert_int_equal(vmmu_vcpu_create(vm, 1, &b), -EEXIST);
	/* Ids as KVM's: up to 4095; vCPUs: at most 64 a VM. */
	assert_int_equal(vmmu_vcpu_create(vm, VMMU_MAX_VCPU_ID + 1, &b), -EINVAL);
	assert_int_equal(vmmu_vcpu_create(vm, VMMU_MAX_VCPU_ID, &b), 0);
	for (unsigned id = 2; id < VMMU_MAX_VCPUS; id++)
		assert_int_equal(vmmu_vcpu_create(vm, 100 + id, &b), 0);
	assert_int_equal(vmmu_vcpu_create(vm, 99, &b), -EINVAL);     /* the 65th */
	/* A NULL argument is a fault, as KVM's copy_from_user/copy_to_user give. */
	assert_int_equal(vmmu_set_user_memory_region(vm, NULL), -EFAULT);
	assert_int_equal(vmmu_get_dirty_log(vm, 0, NULL), -EFAULT);
	vmmu_vm_destroy(vm);
	/* Host memory smaller than the arena can work with is refused, not rounded silently. */
	struct vmmu_vm_config tiny = { .host_mem_bytes = 1 };
	assert_int_equal(vmmu_vm_create(&tiny, &vm), -EINVAL);
	tiny.host_mem_bytes = VMMU_HOST_MEM_MIN;
	assert_int_equal(vmmu_vm_create(&tiny, &vm), 0);
	vmmu_vm_destroy(vm);
}

/* ---- the host pointers kept in TLB entries (cpu.h) ---- */

#define HP_GPA   0x10000000ULL   /* slot 1: a data slot apart from the tables' slot 0 */
#define HP_SIZE  (2ULL << 20)
#define HP_GVA   0x600000ULL

/* The first-level 4K entry that holds @gva, read without a lookup (a lookup would count and
 * touch the LRU state), or NULL. */
static const struct tlb_entry_info *l1_entry(struct g *g, gva_t gva)
{
	const struct tlb_array *a = &g->v->cpu.tlb->arr[TLB_ARR_L1_4K];
	uint64_t key = gva >> 12;
	for (size_t i = (key & a->set_mask) * a->ways, w = 0; w < a->ways; w++, i++)
		if (a->ent[i].key == key)
			return &a->ent[i].info;
	return NULL;
}

static bool host_kept(struct g *g, gva_t gva, bool writable)
{
	const struct tlb_entry_info *e = l1_entry(g, gva);
	return e && e->host && (!writable || e->host_writable);
}

/* After a host-side change: the vCPU's TLB entry kept no pointer into the old memory, or the vCPU
 * has the request to drop it, which it takes before it uses the entry again (request.c). */
static bool host_dropped(struct g *g, gva_t gva)
{
	return !host_kept(g, gva, false) ||
	       (__atomic_load_n(&g->v->requests, __ATOMIC_RELAXED) & VCPU_REQ_PCACHE_FLUSH);
}

static void set_slot1(struct g *g, uint64_t hva, uint32_t flags)
{
	struct vmmu_userspace_memory_region r = { .slot = 1, .flags = flags, .guest_phys_addr = HP_GPA,
						  .memory_size = HP_SIZE, .userspace_addr = hva };
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &r), 0);
}

static void del_slot1(struct g *g)
{
	struct vmmu_userspace_memory_region r = { .slot = 1, .guest_phys_addr = HP_GPA };
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &r), 0);
}

/* Slot 1 on fresh host memory, HP_GVA mapped to its first page, and @kind accesses until the TLB
 * entry keeps the host pointer (a miss fills the entry and gives it the pointer, for writes too
 * once the guest-page cache serves writes; else the first hit does). Returns the slot's hva. */
static uint64_t hp_setup(struct g *g, unsigned kind)
{
	uint64_t hva, v = 0x1111;
	assert_int_equal(vmmu_vm_mmap(g->vm, HP_SIZE, false, &hva), 0);
	set_slot1(g, hva, 0);
	regs64(g, 0, g->root);
	map(g, 4, HP_GVA, HP_GPA, 1, PRWU);
	acc(g, HP_GVA, 8, VMMU_ACC_WRITE, &v);   /* sets D, so writes can hit */
	for (int i = 0; i < 2; i++)
		assert_int_equal(acc(g, HP_GVA, 8, kind, &v).status, VMMU_ACCESS_DONE);
	assert_true(host_kept(g, HP_GVA, kind & VMMU_ACC_WRITE));
	return hva;
}

/* Run @kind at HP_GVA and check it was a TLB hit (the translation is still cached: only the
 * host side changed, which the guest's TLB knows nothing of). */
static struct vmmu_access_result hit(struct g *g, unsigned kind, uint64_t *buf)
{
	struct vmmu_stats s0 = stats(g);
	struct vmmu_access_result r = acc(g, HP_GVA, 8, kind, buf);
	struct vmmu_stats s1 = stats(g);
	assert_int_equal(s1.tlb_hits - s0.tlb_hits, 1);
	assert_int_equal(s1.tlb_misses, s0.tlb_misses);
	return r;
}

/* Slot 1 moves to other host memory (delete + create at the same gpa); a read at HP_GVA, a TLB
 * hit, sees @val written there, not the old memory. */
static void move_slot1_and_read(struct g *g, uint64_t val)
{
	uint64_t hva2, x = 0;

	assert_int_equal(vmmu_vm_mmap(g->vm, HP_SIZE, false, &hva2), 0);
	del_slot1(g);
	set_slot1(g, hva2, 0);
	assert_true(host_dropped(g, HP_GVA));
	wr(g, HP_GPA, val);
	assert_int_equal(hit(g, VMMU_ACC_READ, &x).status, VMMU_ACCESS_DONE);
	assert_int_equal(x, val);
}

static void test_host_ptr_memslot_move(void **state)
{
	struct g *g = *state;
	uint64_t v = 0x2222;
	hp_setup(g, VMMU_ACC_READ);
	assert_true(host_kept(g, HP_GVA, false));
	move_slot1_and_read(g, 0x7777);
	/* Writes go to the new memory too, the kept pointer or not. */
	assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_DONE);
	assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_DONE);
	assert_true(host_kept(g, HP_GVA, true));
	assert_int_equal(rd(g, HP_GPA), 0x2222);
}

static void test_host_ptr_memslot_delete(void **state)
{
	struct g *g = *state;
	uint64_t x = 0;
	hp_setup(g, VMMU_ACC_READ);
	del_slot1(g);
	/* No memory there any more: an MMIO access, not a read of the old backing. */
	struct vmmu_access_result r = hit(g, VMMU_ACC_READ, &x);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(r.mmio_gpa, HP_GPA);
}

static void test_host_ptr_host_unmap(void **state)
{
	struct g *g = *state;
	uint64_t x = 0, v = 0x3333;
	uint64_t hva = hp_setup(g, VMMU_ACC_WRITE);
	/* The VMM unmaps the page under the slot (an MMU-notifier invalidation): the frame is freed,
	 * and the access finds no memory behind the slot. */
	assert_int_equal(vmmu_vm_munmap(g->vm, hva, 4096), 0);
	assert_true(host_dropped(g, HP_GVA));
	struct vmmu_access_result r;
	assert_int_equal(vmmu_vcpu_access(g->v, HP_GVA, 8, VMMU_ACC_WRITE, &v, &r), -EFAULT);
	assert_int_equal(vmmu_vcpu_access(g->v, HP_GVA, 8, VMMU_ACC_READ, &x, &r), -EFAULT);
}

static void test_host_ptr_dirty_logging(void **state)
{
	struct g *g = *state;
	uint64_t v = 0x4444, bitmap[HP_SIZE / 4096 / 64];
	uint64_t hva = hp_setup(g, VMMU_ACC_WRITE);
	/* Dirty logging turns on (a flags-only change): every write from now on must be logged,
	 * so no kept pointer may serve writes, even after the log is read and cleared. */
	set_slot1(g, hva, VMMU_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(vmmu_get_dirty_log(g->vm, 1, bitmap), 0);
	assert_int_equal(bitmap[0], 0);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_DONE);
		assert_false(host_kept(g, HP_GVA, true));
		assert_int_equal(vmmu_get_dirty_log(g->vm, 1, bitmap), 0);
		assert_int_equal(bitmap[0], 1);
	}
	/* Reads may keep the pointer; they log nothing. */
	uint64_t x = 0;
	hit(g, VMMU_ACC_READ, &x);
	hit(g, VMMU_ACC_READ, &x);
	assert_true(host_kept(g, HP_GVA, false));
	assert_int_equal(x, 0x4444);
	assert_int_equal(vmmu_get_dirty_log(g->vm, 1, bitmap), 0);
	assert_int_equal(bitmap[0], 0);
	/* And a write after those reads is still logged. */
	assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_DONE);
	assert_int_equal(vmmu_get_dirty_log(g->vm, 1, bitmap), 0);
	assert_int_equal(bitmap[0], 1);
	/* Logging off again: writes may keep the pointer once more. */
	set_slot1(g, hva, 0);
	hit(g, VMMU_ACC_WRITE, &v);
	hit(g, VMMU_ACC_WRITE, &v);
	assert_true(host_kept(g, HP_GVA, true));
}

static void test_host_ptr_readonly(void **state)
{
	struct g *g = *state;
	uint64_t x = 0, v = 0x5555;
	uint64_t hva = hp_setup(g, VMMU_ACC_WRITE);
	assert_int_equal(rd(g, HP_GPA), 0x1111);
	/* The same memory again, read-only: a write is an MMIO exit and changes nothing; reads
	 * still see the memory. */
	del_slot1(g);
	set_slot1(g, hva, VMMU_MEM_READONLY);
	struct vmmu_access_result r = hit(g, VMMU_ACC_WRITE, &v);
	assert_int_equal(r.status, VMMU_ACCESS_MMIO);
	assert_true(r.mmio_write);
	assert_int_equal(rd(g, HP_GPA), 0x1111);
	hit(g, VMMU_ACC_READ, &x);
	hit(g, VMMU_ACC_READ, &x);
	assert_int_equal(x, 0x1111);
	assert_true(host_kept(g, HP_GVA, false));
	assert_false(host_kept(g, HP_GVA, true));
	assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_MMIO);
	assert_int_equal(rd(g, HP_GPA), 0x1111);
}

/* A read that misses the TLB after @kind hit: the walk's new entry keeps the host pointer at
 * once, writable exactly when @writable (the guest-page cache serves writes). */
static void read_miss_keeps(struct g *g, bool writable)
{
	uint64_t x = 0;
	assert_int_equal(vmmu_vcpu_invlpg(g->v, HP_GVA), 0);
	struct vmmu_stats s0 = stats(g);
	assert_int_equal(acc(g, HP_GVA, 8, VMMU_ACC_READ, &x).status, VMMU_ACCESS_DONE);
	assert_int_equal(stats(g).tlb_misses - s0.tlb_misses, 1);
	assert_true(host_kept(g, HP_GVA, false));
	assert_true(host_kept(g, HP_GVA, true) == writable);
}

/* The read of a read-modify-write that misses leaves the entry ready for its write (the write then
 * takes the hit path's first step), but never where a write must reach the memslots: a dirty-
 * logging slot (logged) or a read-only one (an MMIO exit). */
static void test_host_ptr_after_walk(void **state)
{
	struct g *g = *state;
	uint64_t v = 0x6666, bitmap[HP_SIZE / 4096 / 64];
	uint64_t hva = hp_setup(g, VMMU_ACC_WRITE);
	read_miss_keeps(g, true);
	assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_DONE);
	assert_int_equal(rd(g, HP_GPA), 0x6666);
	set_slot1(g, hva, VMMU_MEM_LOG_DIRTY_PAGES);
	assert_int_equal(vmmu_get_dirty_log(g->vm, 1, bitmap), 0);
	read_miss_keeps(g, false);
	v = 0x7777;
	assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_DONE);
	assert_int_equal(vmmu_get_dirty_log(g->vm, 1, bitmap), 0);
	assert_int_equal(bitmap[0], 1);
	del_slot1(g);
	set_slot1(g, hva, VMMU_MEM_READONLY);
	read_miss_keeps(g, false);
	v = 0x8888;
	assert_int_equal(hit(g, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_MMIO);
	assert_int_equal(rd(g, HP_GPA), 0x7777);
}

/* A translation the guest changes (PTE + INVLPG) and one that drops out of the first level and
 * comes back from the STLB start without a host pointer; the first after a memslot move too. */
static void test_host_ptr_new_translations(void **state)
{
	struct g *g = *state;
	uint64_t x = 0;
	hp_setup(g, VMMU_ACC_READ);
	wr(g, HP_GPA, 0xa);
	wr(g, HP_GPA + 4096, 0xb);
	/* The guest remaps the page and flushes it. */
	map(g, 4, HP_GVA, HP_GPA + 4096, 1, PRWU);
	assert_int_equal(vmmu_vcpu_invlpg(g->v, HP_GVA), 0);
	acc(g, HP_GVA, 8, VMMU_ACC_READ, &x);
	assert_int_equal(x, 0xb);
	hit(g, VMMU_ACC_READ, &x);
	assert_int_equal(x, 0xb);
	assert_true(host_kept(g, HP_GVA, false));
	/* Evict it from the first level (four other pages of its 4-way set), keeping the STLB
	 * copy, move the slot, and come back through the STLB. */
	for (unsigned i = 1; i <= 4; i++) {
		gva_t va = HP_GVA + i * 16 * 4096ULL;
		map(g, 4, va, HP_GPA + 8192, 1, PRWU);
		acc(g, va, 8, VMMU_ACC_READ, &x);
	}
	assert_null(l1_entry(g, HP_GVA));
	uint64_t hva2;
	assert_int_equal(vmmu_vm_mmap(g->vm, HP_SIZE, false, &hva2), 0);
	del_slot1(g);
	set_slot1(g, hva2, 0);
	wr(g, HP_GPA + 4096, 0xc);
	assert_int_equal(hit(g, VMMU_ACC_READ, &x).status, VMMU_ACCESS_DONE);
	assert_int_equal(x, 0xc);
}

/* ---- the host pointers kept in 2M entries: one 4K page's, tagged (cpu.h) ---- */

#define HP2_GVA 0x40000000ULL   /* 2M-mapped onto slot 1 */

/* The first-level 2M entry that holds @gva, read without a lookup, or NULL. */
static const struct tlb_entry_info *l1_entry_2m(struct g *g, gva_t gva)
{
	const struct tlb_array *a = &g->v->cpu.tlb->arr[TLB_ARR_L1_2M];
	uint64_t key = tlb_key(gva, TLB_2M);
	for (size_t i = (key & a->set_mask) * a->ways, w = 0; w < a->ways; w++, i++)
		if (a->ent[i].key == key)
			return &a->ent[i].info;
	return NULL;
}

/* Which 4K page of its 2M page the entry holding @gva keeps a host pointer for, or -1. */
static int kept_subpage(struct g *g, gva_t gva)
{
	const struct tlb_entry_info *e = l1_entry_2m(g, gva);
	return e && e->host ? (int)((uintptr_t)e->host & 0xfff) : -1;
}

/*
 * A 2M entry keeps the host pointer of the last 4K page of it that an access used: every access
 * of another 4K page reads and writes that page's bytes, never the kept one's, hit after hit, at
 * either end of the 2M page; and a memslot move drops the pointer.
 */
static void test_host_ptr_2m_subpages(void **state)
{
	struct g *g = *state;
	static const unsigned sub[] = { 3, 3, 4, 3, 511, 0, 511, 4, 4 };
	uint64_t hva, x, v;

	assert_int_equal(vmmu_vm_mmap(g->vm, HP_SIZE, false, &hva), 0);
	set_slot1(g, hva, 0);
	regs64(g, 0, g->root);
	map(g, 4, HP2_GVA, HP_GPA, 2, PRWU | PT_DIRTY_MASK | PT_ACCESSED_MASK);
	for (unsigned k = 0; k < 512; k++)
		wr(g, HP_GPA + k * 4096ULL + 8, 0x1000 + k);
	acc(g, HP2_GVA, 8, VMMU_ACC_READ, &x);   /* the miss */
	for (unsigned i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		gva_t va = HP2_GVA + sub[i] * 4096ULL + 8;
		for (int twice = 0; twice < 2; twice++) {
			x = 0;
			struct vmmu_stats s0 = stats(g);
			assert_int_equal(acc(g, va, 8, VMMU_ACC_READ, &x).status, VMMU_ACCESS_DONE);
			assert_int_equal(stats(g).tlb_hits - s0.tlb_hits, 1);
			assert_int_equal(x, 0x1000 + sub[i]);
			assert_int_equal(kept_subpage(g, va), (int)sub[i]);
		}
		v = 0x5000 + i;
		assert_int_equal(acc(g, va, 8, VMMU_ACC_WRITE, &v).status, VMMU_ACCESS_DONE);
		assert_int_equal(rd(g, HP_GPA + sub[i] * 4096ULL + 8), v);
		wr(g, HP_GPA + sub[i] * 4096ULL + 8, 0x1000 + sub[i]);
		/* Its neighbours kept their bytes. */
		assert_int_equal(rd(g, HP_GPA + ((sub[i] + 1) & 511) * 4096ULL + 8), 0x1000 + ((sub[i] + 1) & 511));
		assert_int_equal(rd(g, HP_GPA + ((sub[i] - 1) & 511) * 4096ULL + 8), 0x1000 + ((sub[i] - 1) & 511));
	}
	/* The slot moves: the next hit reads the new memory. */
	uint64_t hva2;
	assert_int_equal(vmmu_vm_mmap(g->vm, HP_SIZE, false, &hva2), 0);
	del_slot1(g);
	set_slot1(g, hva2, 0);
	assert_true(kept_subpage(g, HP2_GVA) < 0 ||
		    (__atomic_load_n(&g->v->requests, __ATOMIC_RELAXED) & VCPU_REQ_PCACHE_FLUSH));
	wr(g, HP_GPA + 4 * 4096 + 8, 0xabc);
	struct vmmu_stats s0 = stats(g);
	assert_int_equal(acc(g, HP2_GVA + 4 * 4096 + 8, 8, VMMU_ACC_READ, &x).status, VMMU_ACCESS_DONE);
	assert_int_equal(stats(g).tlb_hits - s0.tlb_hits, 1);
	assert_int_equal(x, 0xabc);
}

/*
 * The hit path's first step finds 2M entries through a hint, but the lookup order is 4K first: a
 * 4K entry the guest left in the TLB when it remapped its region with a 2M page (no INVLPG, which
 * the architecture lets either translation answer) still answers for its page, hit after hit, as
 * it does in the lookup, even when the 4K hint of its page names another page's slot. (test_tlb's
 * test_hint_2m_order checks the hint's own guard; here the 2M entry's host pointer, kept for
 * another 4K page, would also send the access to the lookup.)
 */
static void test_hint_2m_after_4k(void **state)
{
	struct g *g = *state;
	const gva_t g4 = HP2_GVA + 0x5000, g3 = g4 + (2ULL << 20), g2 = HP2_GVA + 0x9000;
	uint64_t hva, x = 0;

	assert_int_equal(vmmu_vm_mmap(g->vm, HP_SIZE, false, &hva), 0);
	set_slot1(g, hva, 0);
	regs64(g, 0, g->root);
	wr(g, 0x800000, 0x44);                      /* g4's 4K page */
	wr(g, 0x801000, 0x33);                      /* g3's */
	wr(g, HP_GPA + 0x5000, 0x22);               /* g4 through the 2M page */
	wr(g, HP_GPA + 0x9000, 0x29);               /* g2 through the 2M page */
	map(g, 4, g4, 0x800000, 1, PRWU);
	acc(g, g4, 8, VMMU_ACC_READ, &x);
	assert_int_equal(x, 0x44);
	map(g, 4, HP2_GVA, HP_GPA, 2, PRWU);        /* over the table that mapped g4 */
	assert_int_equal(vmmu_vcpu_invlpg(g->v, g2), 0);   /* the paging-structure caches */
	acc(g, g2, 8, VMMU_ACC_READ, &x);           /* a 2M entry, and its hint */
	assert_int_equal(x, 0x29);
	assert_non_null(l1_entry_2m(g, g4));
	assert_non_null(l1_entry(g, g4));
	/* g3's page has g4's 4K hint (a 2M region apart: 512 pages, the hints are 256). */
	map(g, 4, g3, 0x801000, 1, PRWU);
	acc(g, g3, 8, VMMU_ACC_READ, &x);
	assert_int_equal(x, 0x33);
	for (int i = 0; i < 3; i++) {
		struct vmmu_stats s0 = stats(g);
		assert_int_equal(acc(g, g2, 8, VMMU_ACC_READ, &x).status, VMMU_ACCESS_DONE);
		assert_int_equal(x, 0x29);
		assert_int_equal(acc(g, g4, 8, VMMU_ACC_READ, &x).status, VMMU_ACCESS_DONE);
		assert_int_equal(x, 0x44);                  /* the 4K entry's */
		assert_int_equal(stats(g).tlb_hits - s0.tlb_hits, 2);
	}
	/* Once the guest flushes it, the 2M page answers. */
	assert_int_equal(vmmu_vcpu_invlpg(g->v, g4), 0);
	acc(g, g4, 8, VMMU_ACC_READ, &x);
	assert_int_equal(x, 0x22);
}

/* The batch test's guest: 16 pages at 0x400000, the 6th not present, the 8th read-only, the
 * 10th on a gpa outside every memslot (MMIO). */
static void batch_guest(struct g *g)
{
	regs64(g, 0, g->root);
	for (int i = 0; i < 16; i++) {
		if (i == 5)
			continue;
		map(g, 4, 0x400000 + i * 4096, i == 9 ? MEM + 0x10000 : 0x800000 + (gpa_t)i * 4096, 1,
		    i == 7 ? (PT_PRESENT_MASK | PT_USER_MASK) : PRWU);
	}
}

/* vmmu_vcpu_access_batch is vmmu_vcpu_access op by op: two guests built alike, one accessed op
 * by op, the other in batches of every size, resumed after each stop, give the same results,
 * the same stops (#PF with its address and error code, MMIO), the same memory and the same
 * statistics. */
static void test_access_batch(void **state)
{
	enum { N = 600 };
	struct g *a = *state, b;
	static struct vmmu_access_op ops[N];
	static struct { struct vmmu_access_result r; uint64_t val; } ref[N];
	uint64_t seed = 42;
	unsigned done, stops = 0, i;

	assert_int_equal(g_init(&b), 0);
	batch_guest(a);
	batch_guest(&b);
	for (i = 0; i < N; i++) {
		uint64_t x = seed += 0x9e3779b97f4a7c15ULL;
		x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ULL;
		ops[i] = (struct vmmu_access_op){
			.gva = 0x400000 + x % (16 * 4096), .len = 1 + (unsigned)(x >> 20) % 8,
			.kind = (x >> 24) % 3 == 0 ? VMMU_ACC_READ : (x >> 24) % 3 == 1 ? VMMU_ACC_WRITE :
				VMMU_ACC_FETCH,
			.val = x * 31,
		};
		ref[i].val = ops[i].kind == VMMU_ACC_WRITE ? ops[i].val : 0;
		assert_int_equal(vmmu_vcpu_access(a->v, ops[i].gva, ops[i].len, ops[i].kind, &ref[i].val,
						  &ref[i].r), 0);
	}
	for (i = 0; i < N;) {
		unsigned n = N - i < 1 + i % 37 ? N - i : 1 + i % 37;
		struct vmmu_access_result res;

		assert_int_equal(vmmu_vcpu_access_batch(b.v, ops + i, n, &done, &res), 0);
		assert_in_range(done, 0, n);
		for (unsigned k = 0; k < done; k++) {
			assert_int_equal(ref[i + k].r.status, VMMU_ACCESS_DONE);
			assert_int_equal(ops[i + k].val, ref[i + k].val);
		}
		if (done < n) {
			const struct vmmu_access_result *r = &ref[i + done].r;
			assert_int_not_equal(r->status, VMMU_ACCESS_DONE);
			assert_int_equal(res.status, r->status);
			assert_int_equal(res.pf_addr, r->pf_addr);
			assert_int_equal(res.pf_ec, r->pf_ec);
			assert_int_equal(res.mmio_gpa, r->mmio_gpa);
			assert_int_equal(res.done, r->done);
			stops++;
			i += done + 1;
		} else {
			i += n;
		}
	}
	assert_true(stops > 50);   /* the pattern meets the #PF and MMIO pages often */
	for (gpa_t p = 0x800000; p < 0x800000 + 16 * 4096; p += 8)
		assert_int_equal(rd(a, p), rd(&b, p));
	struct vmmu_stats sa = stats(a), sb = stats(&b);
	assert_memory_equal(&sa, &sb, sizeof(sa));
	/* Arguments: a bad op stops the batch before it; nothing is no batch. */
	ops[1].len = 0;
	assert_int_equal(vmmu_vcpu_access_batch(b.v, ops, 3, &done, &ref[0].r), -EINVAL);
	assert_int_equal(done, 1);
	ops[1].len = 9;
	assert_int_equal(vmmu_vcpu_access_batch(b.v, ops + 1, 1, &done, &ref[0].r), -EINVAL);
	assert_int_equal(done, 0);
	ops[1].len = 4;
	ops[1].kind = VMMU_ACC_WRITE | VMMU_ACC_FETCH;
	assert_int_equal(vmmu_vcpu_access_batch(b.v, ops + 1, 1, &done, &ref[0].r), -EINVAL);
	assert_int_equal(vmmu_vcpu_access_batch(b.v, ops, 1, NULL, &ref[0].r), -EINVAL);
	done = 7;
	assert_int_equal(vmmu_vcpu_access_batch(b.v, NULL, 1, &done, &ref[0].r), -EINVAL);
	assert_int_equal(done, 0);
	assert_int_equal(vmmu_vcpu_access_batch(b.v, NULL, 0, &done, &ref[0].r), 0);
	assert_int_equal(done, 0);
	vmmu_vm_destroy(b.vm);
}

/* The guest-page cache's generations run out (once in 8M flushes): the array is emptied then, so
 * an entry of the first generation does not come back to life when the count starts again. The
 * slot moves to other memory exactly at the wrap, and the access after it must see the new
 * memory, not the old one through an entry tagged with the restarted generation. */
static void test_pcache_generation_wrap(void **state)
{
	struct g *g = *state;
	struct cpu *c = &g->v->cpu;
	const uint64_t last = (uint64_t)(PCACHE_GEN_MAX - 1) << PCACHE_GEN_SHIFT;
	uint64_t x = 0;

	hp_setup(g, VMMU_ACC_READ);
	c->pcache_gen = last;
	cpu_flush_pcache(c);
	assert_int_equal(c->pcache_gen, 1ULL << PCACHE_GEN_SHIFT);   /* wrapped */
	assert_null(cpu_pcache_peek(c, HP_GPA >> 12, false));
	hit(g, VMMU_ACC_READ, &x);    /* cached again, under the first generation */
	assert_non_null(cpu_pcache_peek(c, HP_GPA >> 12, false));
	c->pcache_gen = last;
	move_slot1_and_read(g, 0x5151);
	assert_int_equal(c->pcache_gen, 1ULL << PCACHE_GEN_SHIFT);
}

/* vmmu_vcpu_prefetch changes nothing the model shows: two guests built alike run the same
 * accesses, one of them with prefetches of every kind of address between them (the next access,
 * pages never mapped, MMIO, a #PF page, non-canonical and kernel addresses, a page whose slot is
 * gone), and end with the same results, memory and statistics. The hints are made by full
 * translations and tagged by page; a bad argument is refused. */
static void prefetch_compare(struct g *a, struct g *b);
static void native_prefetch_hints(struct g *g);

static void test_prefetch(void **state)
{
	/* Under a hypervisor a hint also prefetches the frame's arena metadata. */
	static const enum vmmu_mmu mmus[] = { VMMU_MMU_SHADOW, VMMU_MMU_EPT, VMMU_MMU_NPT };
	for (unsigned m = 0; m < 3; m++) {
		struct g a, b;
		assert_int_equal(g_init_mmu(&a, mmus[m]), 0);
		assert_int_equal(g_init_mmu(&b, mmus[m]), 0);
		prefetch_compare(&a, &b);
		vmmu_vm_destroy(a.vm);
		vmmu_vm_destroy(b.vm);
	}
	struct g b;
	assert_int_equal(g_init(&b), 0);
	prefetch_compare(*state, &b);
	native_prefetch_hints(&b);
	vmmu_vm_destroy(b.vm);
}

/* Two guests built alike, the same accesses, prefetches before each access of @b's. */
static void prefetch_compare(struct g *a, struct g *b)
{
	enum { N = 800 };
	uint64_t seed = 7;

	batch_guest(a);
	batch_guest(b);
	static const uint64_t odd[] = { 0, 0x400000 + 5 * 4096, 0x400000 + 9 * 4096, 0x400000 + 7 * 4096,
					0x0000800000000000ULL, 0xffff800000000000ULL, ~0ULL, 0x7ffffffff000ULL };
	for (unsigned i = 0; i < N; i++) {
		uint64_t x = seed += 0x9e3779b97f4a7c15ULL, va = 0, vb = 0;
		x = (x ^ (x >> 31)) * 0xbf58476d1ce4e5b9ULL;
		gva_t gva = 0x400000 + x % (16 * 4096);
		uint32_t len = 1 + (unsigned)(x >> 20) % 8;
		unsigned kind = (x >> 24) % 3 == 0 ? VMMU_ACC_READ : (x >> 24) % 3 == 1 ? VMMU_ACC_WRITE :
				VMMU_ACC_FETCH;
		struct vmmu_access_result ra, rb;

		va = vb = x * 31;
		memset(&ra, 0, sizeof(ra));   /* the fields a status leaves alone compare equal */
		memset(&rb, 0, sizeof(rb));
		assert_int_equal(vmmu_vcpu_prefetch(b->v, gva, kind), 0);
		assert_int_equal(vmmu_vcpu_prefetch(b->v, odd[i % 8], (i & 1) ? VMMU_ACC_WRITE : 0), 0);
		assert_int_equal(vmmu_vcpu_prefetch(b->v, 0x400000 + (x >> 7) % (16 * 4096), VMMU_ACC_WRITE), 0);
		assert_int_equal(vmmu_vcpu_access(a->v, gva, len, kind, &va, &ra), 0);
		assert_int_equal(vmmu_vcpu_access(b->v, gva, len, kind, &vb, &rb), 0);
		assert_memory_equal(&ra, &rb, sizeof(ra));
		assert_int_equal(va, vb);
	}
	for (gpa_t p = 0x800000; p < 0x800000 + 16 * 4096; p += 8)
		assert_int_equal(rd(a, p), rd(b, p));
	struct vmmu_stats sa = stats(a), sb = stats(b);
	assert_memory_equal(&sa, &sb, sizeof(sa));

}

/* The hints themselves, natively: made by full translations, tagged by page, harmless once
 * stale; and a bad argument is refused. */
static void native_prefetch_hints(struct g *g)
{
	/* A full translation made the hint of its page, tagged so that another page with the same
	 * slot does not use it. */
	const struct cpu *c = &g->v->cpu;
	uint64_t vpn = (0x400000 >> 12) + 3;
	uintptr_t h = c->pf_hint[vpn % CPU_PF_HINTS];
	assert_true(h & ~(uintptr_t)0xfff);
	assert_int_equal(h & 0xfff, CPU_PF_HINT_TAG(vpn));
	assert_int_not_equal(CPU_PF_HINT_TAG(vpn + CPU_PF_HINTS), CPU_PF_HINT_TAG(vpn));
	/* A page whose memory is gone keeps its (stale) hint: prefetching it is still harmless. */
	struct vmmu_userspace_memory_region r0 = { .slot = 0 };
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &r0), 0);
	for (uint64_t p = 0x400000; p < 0x400000 + 16 * 4096; p += 512)
		assert_int_equal(vmmu_vcpu_prefetch(g->v, p, VMMU_ACC_WRITE), 0);

	assert_int_equal(vmmu_vcpu_prefetch(NULL, 0x400000, 0), -EINVAL);
	assert_int_equal(vmmu_vcpu_prefetch(g->v, 0x400000, VMMU_ACC_WRITE | VMMU_ACC_FETCH), -EINVAL);
	assert_int_equal(vmmu_vcpu_prefetch(g->v, 0x400000, 1u << 9), -EINVAL);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_access_and_fault), T(test_walk_refs_1d), T(test_walk_refs_5level_32bit_pae),
		T(test_cpl_switch_keeps_tlb), T(test_dirty_rewalk), T(test_stale_tlb_until_invlpg), T(test_global_and_cr3),
		T(test_pcid), T(test_mmio_and_split), T(test_memory_map_changes_reach_the_vcpu), T(test_regs_checks), T(test_cost_model), T(test_paging_structure_caches),
		T(test_host_ptr_memslot_move), T(test_host_ptr_memslot_delete), T(test_host_ptr_host_unmap),
		T(test_host_ptr_dirty_logging), T(test_host_ptr_readonly), T(test_host_ptr_new_translations),
		T(test_host_ptr_2m_subpages), T(test_hint_2m_after_4k),
		T(test_host_ptr_after_walk),
		T(test_access_batch), T(test_pcache_generation_wrap), T(test_prefetch),
		cmocka_unit_test(test_pf_exit_rules), cmocka_unit_test(test_vm_config),
	};
	return cmocka_run_group_tests_name("cpu", tests, NULL, NULL);
}
