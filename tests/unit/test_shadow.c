/* SPDX-License-Identifier: MIT */
/*
 * The soft MMU (src/mmu/shadow*.c) through the public API. Every test builds the same guest twice,
 * once native and once under --mmu shadow, runs the same operations on both and requires the
 * same outcome of each (values read, #PF address and error code, MMIO exits), the same guest
 * memory (A/D bits included) at checkpoints, and a clean vmmu_vm_audit() after every step.
 * Each test runs on a VMX host and on an SVM host.
 *
 * Guests are built by hand: initial tables with vmmu_write_guest(); every later change of a table
 * is a guest store through a supervisor "window" that maps guest physical memory at WIN + gpa, so
 * the soft MMU's write tracking sees it, as it would see a guest kernel's.
 *
 * Internals used on purpose (test_changes_counted only): vm/vm.h and mmu/shadow.h, to read the
 * audit's change count and take a vCPU's MMU part down alone.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mmu/shadow.h"
#include "paging/paging.h"
#include "../common/gpt_build.h"
#include "vm/vm.h"
#include "vmmu/vmmu.h"

#define MEM      (8ULL << 20)                /* slot 0: gpa [0, 8 MiB) */
#define TABLES   0x100000ULL                 /* table pages are allocated from here */
#define DATA     0x400000ULL                 /* data frames from here */
#define WIN      0xffff800000000000ULL       /* supervisor window: gva WIN + gpa -> gpa */
#define MMIO_GPA 0x40000000ULL               /* in no slot */
#define PRW      (PT_PRESENT_MASK | PT_WRITABLE_MASK)
#define PRWU     (PRW | PT_USER_MASK)
#define AD       (PT_ACCESSED_MASK | PT_DIRTY_MASK)
#define CR0_BASE (X86_CR0_PG | X86_CR0_PE)
#define EFER_64  (EFER_LME | EFER_LMA | EFER_NXE)

/* One machine. */
struct gm {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v;
	uint64_t hva;
	uint64_t mem;
};

/* The same guest twice: [0] native, [1] shadow. */
struct pair {
	struct gm g[2];
	enum vmmu_host host;
	gpa_t next_table, next_data;
	int levels;
	gva_t win;                 /* the window's base (WIN; lower in a 32-bit address space) */
	uint64_t steps;
};

static enum vmmu_host hosts[] = { VMMU_HOST_VMX, VMMU_HOST_SVM };

/* The optimization sets each test runs with (cfg.opts_off of the shadow VM): all on, all off,
 * and each one alone (the others off). notrap is dropped on SVM hosts by vm/. */
static const uint32_t opt_sets[] = {
	0,
	VMMU_OPT_NOTRAP | VMMU_OPT_UNSYNC | VMMU_OPT_PREFETCH | VMMU_OPT_FASTPF,
	VMMU_OPT_UNSYNC | VMMU_OPT_PREFETCH | VMMU_OPT_FASTPF,      /* notrap alone */
	VMMU_OPT_NOTRAP | VMMU_OPT_PREFETCH | VMMU_OPT_FASTPF,     /* unsync alone */
	VMMU_OPT_NOTRAP | VMMU_OPT_UNSYNC | VMMU_OPT_FASTPF,       /* prefetch alone */
	VMMU_OPT_NOTRAP | VMMU_OPT_UNSYNC | VMMU_OPT_PREFETCH,     /* fastpf alone */
};
static uint32_t cur_opts_off;    /* the set in use */
static enum vmmu_hugetlb cur_hugetlb;   /* the host pages behind guest memory (test_large_sptes) */
static enum vmmu_mmu_lock cur_lock;     /* the shadow VM's --mmu-lock (0: fine) */
static enum vmmu_mmu_evict cur_evict;   /* the shadow VM's eviction order */
/* With unsync on, a store to a last-level table may run natively (the table unsync) instead of
 * being emulated: counts of emulated writes hold only with it off. */
#define EMULATES_PTE_WRITES (cur_opts_off & VMMU_OPT_UNSYNC)

/* ---- machines ---- */

static void gm_init(struct gm *g, enum vmmu_mmu mode, enum vmmu_host host, uint64_t mem)
{
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30, .mmu = mode, .host = host,
				      .opts_off = cur_opts_off, .mmu_evict = cur_evict,
				      .hugetlb = cur_hugetlb, .mmu_lock = cur_lock };
	struct vmmu_userspace_memory_region r = { .slot = 0, .memory_size = mem };

	memset(g, 0, sizeof(*g));
	assert_int_equal(vmmu_vm_create(&cfg, &g->vm), 0);
	assert_int_equal(vmmu_vm_mmap(g->vm, mem, false, &g->hva), 0);
	r.userspace_addr = g->hva;
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &r), 0);
	assert_int_equal(vmmu_vcpu_create(g->vm, 0, &g->v), 0);
	g->mem = mem;
}

static void pair_init(struct pair *p, enum vmmu_host host)
{
	memset(p, 0, sizeof(*p));
	p->host = host;
	gm_init(&p->g[0], VMMU_MMU_NATIVE, host, MEM);
	gm_init(&p->g[1], VMMU_MMU_SHADOW, host, MEM);
	p->next_table = TABLES;
	p->next_data = DATA;
	p->levels = 4;
	p->win = WIN;
}

static void pair_fini(struct pair *p)
{
	for (int i = 0; i < 2; i++)
		vmmu_vm_destroy(p->g[i].vm);
}

static struct vmmu_stats gstats(struct gm *g)
{
	struct vmmu_stats s;
	assert_int_equal(vmmu_vm_get_stats(g->vm, &s), 0);
	return s;
}

#define SH(p) gstats(&(p)->g[1])

static uint64_t most_2m;           /* the most 2M sptes the shadow VM had at an audit */

static void audit(struct pair *p)
{
	char why[512];
	int rc = vmmu_vm_audit(p->g[1].vm, why, sizeof(why));
	if (rc)
		fail_msg("audit after step %" PRIu64 ": %d: %s", p->steps, rc, why);
	uint64_t n = gstats(&p->g[1]).pages_2m;
	most_2m = n > most_2m ? n : most_2m;
}

/* ---- initial state (before the guests run) ---- */

static void wr(struct pair *p, gpa_t a, uint64_t x)
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_write_guest(p->g[i].vm, a, &x, 8), 0);
}

static uint64_t rd(struct gm *g, gpa_t a)
{
	uint64_t x = 0;
	assert_int_equal(vmmu_read_guest(g->vm, a, &x, 8), 0);
	return x;
}

static gpa_t new_table(struct pair *p)
{
	gpa_t t = p->next_table;
	p->next_table += 4096;
	assert_true(p->next_table <= DATA);
	return t;
}

static gpa_t new_data(struct pair *p)
{
	gpa_t d = p->next_data;
	p->next_data += 4096;
	assert_true(p->next_data <= MEM);
	return d;
}

static uint64_t pair_rd(void *ctx, gpa_t a) { return rd(&((struct pair *)ctx)->g[0], a); }
static void pair_wr(void *ctx, gpa_t a, uint64_t x) { wr(ctx, a, x); }
static gpa_t pair_new_table(void *ctx) { return new_table(ctx); }

/* Map @gva -> @gpa under @root (both guests) with a leaf at @level, leaf flags @f. Returns the
 * leaf entry's gpa. */
static gpa_t map(struct pair *p, gpa_t root, gva_t gva, gpa_t gpa, int level, uint64_t f)
{
	const struct gpt_builder b = { p, pair_rd, pair_wr, pair_new_table };
	return gpt_map(&b, root, p->levels, gva, gpa, level, f);
}

/* The window: gva WIN + gpa -> gpa for slot 0, supervisor read/write, 2M pages. */
static void window(struct pair *p, gpa_t root)
{
	for (gpa_t g = 0; g < MEM; g += 0x200000)
		map(p, root, WIN + g, g, 2, PRW | AD);
}

static gpa_t new_root(struct pair *p)
{
	gpa_t root = new_table(p);
	window(p, root);
	return root;
}

static void regs(struct pair *p, uint64_t cr0, uint64_t cr4, uint64_t efer, uint64_t cr3)
{
	struct vmmu_regs r = { .cr0 = cr0, .cr3 = cr3, .cr4 = cr4, .efer = efer };
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vcpu_set_regs(p->g[i].v, &r), 0);
}

static void regs64(struct pair *p, uint64_t cr3)
{
	regs(p, CR0_BASE | X86_CR0_WP, X86_CR4_PAE, EFER_64, cr3);
}

/* ---- running ---- */

struct out {
	int rc;
	struct vmmu_access_result r;
	uint64_t val;
};

static struct out one(struct gm *g, gva_t gva, uint32_t len, unsigned kind, uint64_t val)
{
	struct out o = { .val = val };
	o.rc = vmmu_vcpu_access(g->v, gva, len, kind, &o.val, &o.r);
	if (!(kind & VMMU_ACC_WRITE) && o.r.status != VMMU_ACCESS_DONE)
		o.val = 0;
	return o;
}

static bool same(const struct out *a, const struct out *b, unsigned kind)
{
	if (a->rc != b->rc || a->r.status != b->r.status || a->r.done != b->r.done)
		return false;
	switch (a->r.status) {
	case VMMU_ACCESS_DONE:
		return (kind & VMMU_ACC_WRITE) || a->val == b->val;
	case VMMU_ACCESS_PF:
		return a->r.pf_ec == b->r.pf_ec && a->r.pf_addr == b->r.pf_addr;
	case VMMU_ACCESS_MMIO:
		return a->r.mmio_gpa == b->r.mmio_gpa && a->r.mmio_len == b->r.mmio_len &&
		       a->r.mmio_write == b->r.mmio_write &&
		       (!a->r.mmio_write || a->r.mmio_data == b->r.mmio_data);
	case VMMU_ACCESS_GP:
		return true;
	}
	return false;
}

static void show(char *buf, size_t n, const struct out *o)
{
	snprintf(buf, n, "rc %d status %d done %u ec %#x addr %#" PRIx64 " mmio %#" PRIx64 "/%u val %#"
		 PRIx64, o->rc, o->r.status, o->r.done, o->r.pf_ec, o->r.pf_addr, o->r.mmio_gpa,
		 o->r.mmio_len, o->val);
}

/* The same access on both; the outcomes must match. Returns the shadow's. */
static struct out acc(struct pair *p, gva_t gva, uint32_t len, unsigned kind, uint64_t val)
{
	struct out a = one(&p->g[0], gva, len, kind, val), b = one(&p->g[1], gva, len, kind, val);
	p->steps++;
	if (!same(&a, &b, kind)) {
		char sa[200], sb[200];
		show(sa, sizeof(sa), &a);
		show(sb, sizeof(sb), &b);
		fail_msg("step %" PRIu64 " (host %d, opts off %#x): access %#" PRIx64 " len %u kind %u:"
			 "\n  native %s\n  shadow %s", p->steps, p->host, cur_opts_off, gva, len, kind,
			 sa, sb);
	}
	audit(p);
	return b;
}

static uint64_t rd_ok(struct pair *p, gva_t gva)
{
	struct out o = acc(p, gva, 8, VMMU_ACC_READ, 0);
	assert_int_equal(o.r.status, VMMU_ACCESS_DONE);
	return o.val;
}

static void wr_ok(struct pair *p, gva_t gva, uint64_t v)
{
	struct out o = acc(p, gva, 8, VMMU_ACC_WRITE, v);
	assert_int_equal(o.r.status, VMMU_ACCESS_DONE);
}

static void cpl(struct pair *p, unsigned c, bool ac)
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vcpu_set_cpl(p->g[i].v, c, ac), 0);
}

/* A guest store of @len bytes into guest physical memory at @gpa, through the window, at CPL 0
 * (as the guest kernel edits its tables). */
static void gstore(struct pair *p, gpa_t gpa, uint64_t v, uint32_t len)
{
	struct vmmu_regs r;
	assert_int_equal(vmmu_vcpu_get_regs(p->g[0].v, &r), 0);
	cpl(p, 0, false);
	struct out o = acc(p, p->win + gpa, len, VMMU_ACC_WRITE, v);
	assert_int_equal(o.r.status, VMMU_ACCESS_DONE);
	cpl(p, r.cpl, r.ac);
}

/* map() for a guest already running: every table entry written by a guest store, as a guest
 * kernel would, so write tracking sees it (test_vmm_write covers the VMM's writes). */
static void map_live(struct pair *p, gpa_t root, gva_t gva, gpa_t gpa, uint64_t f)
{
	gpa_t table = root;
	for (int l = p->levels; l > 1; l--) {
		gpa_t e = table + ((gva >> (12 + 9 * (l - 1))) & 511) * 8;
		uint64_t v = rd(&p->g[0], e);
		if (!(v & PT_PRESENT_MASK)) {
			v = new_table(p) | PRWU;
			gstore(p, e, v, 8);
		}
		table = v & rsvd_bits(12, 51);
	}
	gstore(p, table + ((gva >> 12) & 511) * 8, gpa | f, 8);
}

static void invlpg(struct pair *p, gva_t gva)
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vcpu_invlpg(p->g[i].v, gva), 0);
	p->steps++;
	audit(p);
}

static void mov_cr(struct pair *p, int cr, uint64_t v)
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vcpu_mov_cr(p->g[i].v, cr, v), 0);
	p->steps++;
	audit(p);
}

/* Guest memory of both machines, byte for byte (A/D bits included). */
static void same_memory(struct pair *p, gpa_t start, uint64_t len)
{
	static uint8_t a[1 << 16], b[1 << 16];
	for (uint64_t off = 0; off < len; off += sizeof(a)) {
		uint64_t n = len - off < sizeof(a) ? len - off : sizeof(a);
		int ra = vmmu_read_guest(p->g[0].vm, start + off, a, n);
		int rb = vmmu_read_guest(p->g[1].vm, start + off, b, n);
		assert_int_equal(ra, rb);
		if (ra)
			continue;
		for (uint64_t i = 0; i < n; i += 8) {
			if (memcmp(a + i, b + i, 8)) {
				uint64_t x, y;
				memcpy(&x, a + i, 8);
				memcpy(&y, b + i, 8);
				fail_msg("gpa %#" PRIx64 ": native %#" PRIx64 ", shadow %#" PRIx64,
					 start + off + i, x, y);
			}
		}
	}
}

static void same_all(struct pair *p)
{
	same_memory(p, 0, MEM);
	audit(p);
}

/* Both hosts. */
#define BOTH_HOSTS(fn)                                                                            \
	static void fn(void **state)                                                             \
	{                                                                                        \
		for (unsigned o = 0; o < sizeof(opt_sets) / sizeof(opt_sets[0]); o++) {          \
			cur_opts_off = opt_sets[o];                                              \
			for (unsigned h = 0; h < 2; h++) {                                       \
				struct pair p;                                                   \
				pair_init(&p, hosts[h]);                                         \
				fn##_body(&p);                                                   \
				pair_fini(&p);                                                   \
			}                                                                        \
		}                                                                                \
		cur_opts_off = 0;                                                                \
	}

/* ---- tests ---- */

/* Reads, writes and fetches over pages with every combination of rights, at CPL 0 and 3:
 * the same values and the same #PFs as native; A/D bits identical afterwards. */
static void test_basic_body(struct pair *p)
{
	gpa_t root = new_root(p);
	static const uint64_t flags[] = {
		PRWU, PT_PRESENT_MASK | PT_USER_MASK, PRW, PT_PRESENT_MASK,
		PRWU | PT64_NX_MASK, PRW | PT64_NX_MASK, 0, PRWU | PT_ACCESSED_MASK,
	};
	const unsigned n = sizeof(flags) / sizeof(flags[0]);
	for (unsigned i = 0; i < n; i++)
		map(p, root, 0x400000 + i * 0x1000, new_data(p), 1, flags[i]);
	regs64(p, root);
	for (unsigned c = 0; c < 2; c++) {
		cpl(p, c ? 3 : 0, false);
		for (unsigned i = 0; i < n; i++) {
			gva_t va = 0x400000 + i * 0x1000 + 8 * c;
			acc(p, va, 8, VMMU_ACC_READ, 0);
			acc(p, va, 8, VMMU_ACC_WRITE, 0x1111 * (i + 1));
			acc(p, va, 4, VMMU_ACC_FETCH, 0);
			acc(p, va, 8, VMMU_ACC_READ, 0);
			acc(p, va + 0xffc, 8, VMMU_ACC_WRITE, 0xabcdef);   /* crosses into the next page */
		}
	}
	acc(p, 0x900000, 8, VMMU_ACC_READ, 0);       /* nothing mapped there */
	acc(p, 0x0000800000000000ULL, 8, VMMU_ACC_READ, 0);   /* not canonical */
	same_all(p);
	struct vmmu_stats s = SH(p);
	assert_true(s.pf_taken > 0 && s.pf_fixed > 0 && s.shadow_pages >= 4);
	assert_true(s.exits_by_reason[VMMU_EXIT_PF] == s.pf_taken);
}
BOTH_HOSTS(test_basic)

/* A guest changes a PTE with a store through its own mapping of the table page: the store is
 * emulated (the page is write-tracked), INVLPG makes the new mapping visible; before the INVLPG
 * the architecture allows either. */
static void test_pte_store_invlpg_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t a = new_data(p), b = new_data(p);
	gpa_t pte = map(p, root, 0x400000, a, 1, PRWU);
	wr(p, a, 0xaaaa);
	wr(p, b, 0xbbbb);
	regs64(p, root);
	assert_int_equal(rd_ok(p, 0x400000), 0xaaaa);
	struct vmmu_stats s0 = SH(p);
	gstore(p, pte, b | PRWU, 8);
	struct vmmu_stats s1 = SH(p);
	if (EMULATES_PTE_WRITES) {
		assert_true(s1.pf_emulate > s0.pf_emulate);
		assert_true(s1.mmu_pte_write > s0.mmu_pte_write);
	} else {
		assert_true(s1.mmu_unsync > s0.mmu_unsync || s1.pf_emulate > s0.pf_emulate);
	}
	/* Without INVLPG: the old translation or the new one. */
	uint64_t v = one(&p->g[1], 0x400000, 8, VMMU_ACC_READ, 0).val;
	assert_true(v == 0xaaaa || v == 0xbbbb);
	v = one(&p->g[0], 0x400000, 8, VMMU_ACC_READ, 0).val;
	assert_true(v == 0xaaaa || v == 0xbbbb);
	invlpg(p, 0x400000);
	assert_int_equal(rd_ok(p, 0x400000), 0xbbbb);
	/* Not present now: a #PF after the flush. */
	gstore(p, pte, 0, 8);
	invlpg(p, 0x400000);
	assert_int_equal(acc(p, 0x400000, 8, VMMU_ACC_READ, 0).r.status, VMMU_ACCESS_PF);
	/* Read-only, then write: a #PF with P|W. */
	gstore(p, pte, a | PT_PRESENT_MASK | PT_USER_MASK, 8);
	invlpg(p, 0x400000);
	assert_int_equal(rd_ok(p, 0x400000), 0xaaaa);
	struct out o = acc(p, 0x400000, 8, VMMU_ACC_WRITE, 1);
	assert_int_equal(o.r.status, VMMU_ACCESS_PF);
	assert_int_equal(o.r.pf_ec, PFERR_PRESENT | PFERR_WRITE);
	same_all(p);
}
BOTH_HOSTS(test_pte_store_invlpg)

/* The instruction emulator's accesses (vmmu_vcpu_emulate_access), as KVM's emulator and a PVM
 * host's ring 0 make them: a page-table store is tracked (mmu_pte_write, the leaf's spte
 * dropped) with no exit, no fault and no unsync; a fault it finds is injected (pf_guest); bad
 * arguments and MMIO are refused. */
static void emu(struct pair *p, gva_t gva, unsigned kind, uint64_t *v, enum vmmu_access_status st)
{
	for (int i = 0; i < 2; i++) {
		struct vmmu_access_result r;
		uint64_t x = *v;

		assert_int_equal(vmmu_vcpu_emulate_access(p->g[i].v, gva, 8, kind, &x, &r), 0);
		assert_int_equal(r.status, st);
		if (i == 1)
			*v = x;
	}
	p->steps++;
	audit(p);
}

static void test_emulated_access_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t a = new_data(p), b = new_data(p);
	gpa_t pte = map(p, root, 0x400000, a, 1, PRWU);
	struct vmmu_access_result r;
	uint64_t v;

	wr(p, a, 0xaaaa);
	wr(p, b, 0xbbbb);
	regs64(p, root);
	assert_int_equal(rd_ok(p, 0x400000), 0xaaaa);
	cpl(p, 0, false);
	struct vmmu_stats s0 = SH(p);
	v = b | PRWU | AD;
	emu(p, p->win + pte, VMMU_ACC_WRITE, &v, VMMU_ACCESS_DONE);
	struct vmmu_stats s1 = SH(p);
	assert_int_equal(s1.mmu_pte_write, s0.mmu_pte_write + 1);
	assert_int_equal(s1.exits, s0.exits);
	assert_int_equal(s1.pf_emulate, s0.pf_emulate);
	assert_int_equal(s1.mmu_unsync, s0.mmu_unsync);
	assert_int_equal(s1.pages_4k + 1, s0.pages_4k);   /* the leaf's spte went */
	/* The store is in memory, read back by the emulator as by the guest after its flush. */
	v = 0;
	emu(p, p->win + pte, VMMU_ACC_READ, &v, VMMU_ACCESS_DONE);
	assert_int_equal(v, b | PRWU | AD);
	invlpg(p, 0x400000);
	cpl(p, 3, false);
	assert_int_equal(rd_ok(p, 0x400000), 0xbbbb);
	/* A fault the emulator finds is the guest's: injected and counted. */
	s0 = SH(p);
	v = 0;
	emu(p, 0x800000, VMMU_ACC_READ, &v, VMMU_ACCESS_PF);
	s1 = SH(p);
	assert_int_equal(s1.pf_guest, s0.pf_guest + 1);
	assert_int_equal(s1.exits, s0.exits);
	/* One page at most, 1..8 bytes; no slot behind the address: refused, not emulated. */
	assert_int_equal(vmmu_vcpu_emulate_access(p->g[1].v, 0x400ffc, 8, VMMU_ACC_READ, &v, &r),
			 -EINVAL);
	assert_int_equal(vmmu_vcpu_emulate_access(p->g[1].v, 0x400000, 0, VMMU_ACC_READ, &v, &r),
			 -EINVAL);
	map(p, root, 0x600000, MEM + 0x1000, 1, PRWU | AD);
	invlpg(p, 0x600000);
	for (int i = 0; i < 2; i++)   /* the walk sets A on both machines before the refusal */
		assert_int_equal(vmmu_vcpu_emulate_access(p->g[i].v, 0x600000, 8, VMMU_ACC_READ,
							  &v, &r), -EFAULT);
	same_all(p);
}
BOTH_HOSTS(test_emulated_access)

/* An spte is writable only once the guest Dirty bit is set: a read maps the page read-only, the
 * first write faults in the MMU and sets D, and the guest entry ends as natively. */
static void test_dirty_bit_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t pte = map(p, root, 0x400000, new_data(p), 1, PRWU);
	regs64(p, root);
	rd_ok(p, 0x400000);
	assert_int_equal(rd(&p->g[1], pte) & AD, PT_ACCESSED_MASK);
	struct vmmu_stats s0 = SH(p);
	wr_ok(p, 0x400008, 7);
	struct vmmu_stats s1 = SH(p);
	assert_int_equal(s1.pf_fixed - s0.pf_fixed, 1);      /* the D-bit fault */
	assert_int_equal(s1.pf_taken - s0.pf_taken, 1);
	assert_int_equal(rd(&p->g[1], pte) & AD, AD);
	wr_ok(p, 0x400010, 8);                               /* now writable: no exit */
	assert_int_equal(SH(p).pf_taken, s1.pf_taken);
	same_all(p);
}
BOTH_HOSTS(test_dirty_bit)

/* CR0.WP=0: a supervisor write to a read-only page succeeds, a user write faults; with SMEP a
 * supervisor fetch of the (user) page still faults; with SMAP the write is emulated, and refused
 * without EFLAGS.AC. */
static void test_cr0_wp_body(struct pair *p)
{
	gpa_t root = new_root(p);
	map(p, root, 0x400000, new_data(p), 1, PT_PRESENT_MASK | PT_USER_MASK);   /* user RO */
	map(p, root, 0x401000, new_data(p), 1, PT_PRESENT_MASK);                  /* kernel RO */
	regs(p, CR0_BASE, X86_CR4_PAE, EFER_64, root);
	for (int round = 0; round < 2; round++) {
		cpl(p, 0, false);
		wr_ok(p, 0x400000, 1);
		wr_ok(p, 0x401000, 2);
		rd_ok(p, 0x400000);
		cpl(p, 3, false);
		rd_ok(p, 0x400000);                  /* the user may still read it */
		struct out o = acc(p, 0x400000, 8, VMMU_ACC_WRITE, 3);
		assert_int_equal(o.r.status, VMMU_ACCESS_PF);
		assert_int_equal(o.r.pf_ec, PFERR_PRESENT | PFERR_WRITE | PFERR_USER);
		acc(p, 0x401000, 8, VMMU_ACC_READ, 0);
		cpl(p, 0, false);
		wr_ok(p, 0x400008, 4);                  /* supervisor again after the user read */
		acc(p, 0x400000, 4, VMMU_ACC_FETCH, 0);
	}
	/* SMEP: the supervisor may not fetch from the user page it may write. */
	mov_cr(p, 4, X86_CR4_PAE | X86_CR4_SMEP);
	wr_ok(p, 0x400000, 5);
	struct out o = acc(p, 0x400000, 4, VMMU_ACC_FETCH, 0);
	assert_int_equal(o.r.status, VMMU_ACCESS_PF);
	/* SMAP: with AC the write happens (emulated), without it SMAP refuses it. */
	mov_cr(p, 4, X86_CR4_PAE | X86_CR4_SMEP | X86_CR4_SMAP);
	struct vmmu_stats s0 = SH(p);
	cpl(p, 0, true);
	wr_ok(p, 0x400010, 6);
	assert_true(SH(p).pf_emulate > s0.pf_emulate);
	rd_ok(p, 0x400010);
	cpl(p, 0, false);
	o = acc(p, 0x400010, 8, VMMU_ACC_WRITE, 7);
	assert_int_equal(o.r.status, VMMU_ACCESS_PF);
	acc(p, 0x400010, 8, VMMU_ACC_READ, 0);
	wr_ok(p, 0x401000, 8);
	/* Back to WP=1: the read-only pages are read-only to everyone. */
	mov_cr(p, 0, CR0_BASE | X86_CR0_WP);
	acc(p, 0x401000, 8, VMMU_ACC_WRITE, 9);
	cpl(p, 0, true);
	acc(p, 0x400000, 8, VMMU_ACC_WRITE, 9);
	same_all(p);
}
BOTH_HOSTS(test_cr0_wp)

/* CR0.WP=0 and a page table: a supervisor store through a read-only mapping of it is allowed,
 * so it must be emulated (the table is write-tracked), never let through by a cached read-only
 * translation; and the dirty log must see it. */
static void test_cr0_wp_table_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t a = new_data(p), b = new_data(p);
	gpa_t pte = map(p, root, 0x400000, a, 1, PRWU);
	map(p, root, 0x800000, pte & ~0xfffULL, 1, PT_PRESENT_MASK | AD);   /* RO alias of the PT */
	wr(p, b, 0xb0b);
	regs(p, CR0_BASE, X86_CR4_PAE, EFER_64, root);
	rd_ok(p, 0x400000);
	rd_ok(p, 0x800000);                        /* the alias is cached, read-only */
	struct vmmu_stats s0 = SH(p);
	wr_ok(p, 0x800000 + (pte & 0xfff), b | PRWU);
	assert_true(SH(p).pf_emulate > s0.pf_emulate || !EMULATES_PTE_WRITES);
	invlpg(p, 0x400000);
	assert_int_equal(rd_ok(p, 0x400000), 0xb0b);
	wr_ok(p, 0x800000 + (pte & 0xfff), a | PT_PRESENT_MASK);
	wr_ok(p, 0x800000 + (pte & 0xfff) + 8, 0);
	invlpg(p, 0x400000);
	cpl(p, 3, false);
	acc(p, 0x400000, 8, VMMU_ACC_READ, 0);
	same_all(p);
}
BOTH_HOSTS(test_cr0_wp_table)

/* Protection keys: AD and WD in PKRU, user and supervisor, CR0.WP on and off (with WP=0 a
 * supervisor write ignores WD, which the WP=1 hardware does not: emulated). */
static void test_pkeys_body(struct pair *p)
{
	gpa_t root = new_root(p);
	for (unsigned k = 0; k < 4; k++)
		map(p, root, 0x400000 + k * 0x1000, new_data(p), 1, PRWU | ((uint64_t)k << 59));
	map(p, root, 0x404000, new_data(p), 1, PRW | (1ULL << 59));       /* supervisor: no keys */
	regs(p, CR0_BASE | X86_CR0_WP, X86_CR4_PAE | X86_CR4_PKE, EFER_64, root);
	/* Key 1: access disabled; key 2: write disabled; key 3: both. */
	const uint32_t pkru = (1u << 2) | (2u << 4) | (3u << 6);
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vcpu_set_pkru(p->g[i].v, pkru), 0);
	for (int wp = 1; wp >= 0; wp--) {
		if (!wp)
			mov_cr(p, 0, CR0_BASE);
		for (unsigned c = 0; c < 2; c++) {
			cpl(p, c ? 3 : 0, true);
			for (unsigned k = 0; k < 5; k++) {
				acc(p, 0x400000 + k * 0x1000, 8, VMMU_ACC_READ, 0);
				acc(p, 0x400000 + k * 0x1000, 8, VMMU_ACC_WRITE, k + 1);
				acc(p, 0x400000 + k * 0x1000, 4, VMMU_ACC_FETCH, 0);
			}
		}
	}
	same_all(p);
}
BOTH_HOSTS(test_pkeys)

/* SMEP, SMAP (with and without AC, implicit accesses) and NX over every page kind and access. */
static void test_smep_smap_nx_body(struct pair *p)
{
	gpa_t root = new_root(p);
	static const uint64_t flags[] = {
		PRWU, PRW, PRWU | PT64_NX_MASK, PRW | PT64_NX_MASK,
		PT_PRESENT_MASK | PT_USER_MASK, PT_PRESENT_MASK,
	};
	const unsigned n = sizeof(flags) / sizeof(flags[0]);
	for (unsigned i = 0; i < n; i++)
		map(p, root, 0x400000 + i * 0x1000, new_data(p), 1, flags[i]);
	regs(p, CR0_BASE | X86_CR0_WP, X86_CR4_PAE | X86_CR4_SMEP | X86_CR4_SMAP, EFER_64, root);
	static const unsigned kinds[] = {
		VMMU_ACC_READ, VMMU_ACC_WRITE, VMMU_ACC_FETCH, VMMU_ACC_READ | VMMU_ACC_IMPLICIT,
		VMMU_ACC_WRITE | VMMU_ACC_IMPLICIT,
	};
	for (unsigned c = 0; c < 4; c++) {
		cpl(p, (c & 1) ? 3 : 0, c & 2);
		for (unsigned i = 0; i < n; i++)
			for (unsigned k = 0; k < 5; k++)
				acc(p, 0x400000 + i * 0x1000, 4, kinds[k], 0x55);
	}
	/* The same without SMEP/SMAP, then without NXE's effect (NX pages executable). */
	mov_cr(p, 4, X86_CR4_PAE);
	for (unsigned c = 0; c < 2; c++) {
		cpl(p, c ? 3 : 0, false);
		for (unsigned i = 0; i < n; i++)
			for (unsigned k = 0; k < 5; k++)
				acc(p, 0x400000 + i * 0x1000, 4, kinds[k], 0x66);
	}
	same_all(p);
}
BOTH_HOSTS(test_smep_smap_nx)

/* A gpa in no memslot: the first access creates an MMIO spte, later ones exit straight to MMIO;
 * the guest's rights still apply; a new memslot makes the spte stale. */
static void test_mmio_body(struct pair *p)
{
	gpa_t root = new_root(p);
	map(p, root, 0x400000, MMIO_GPA, 1, PRW);      /* supervisor only */
	regs64(p, root);
	struct out o = acc(p, 0x400010, 4, VMMU_ACC_READ, 0);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(o.r.mmio_gpa, MMIO_GPA + 0x10);
	struct vmmu_stats s0 = SH(p);
	assert_int_equal(s0.pf_mmio_spte_created, 1);
	o = acc(p, 0x400020, 8, VMMU_ACC_WRITE, 0x77);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	assert_true(o.r.mmio_write);
	struct vmmu_stats s1 = SH(p);
	assert_int_equal(s1.pf_mmio_spte_created, 1);  /* served by the cached spte */
	/* KVM's fast MMIO path: neither a pf_taken nor a pf_emulate; the first access was both. */
	assert_int_equal(s1.pf_taken - s0.pf_taken, 0);
	assert_int_equal(s1.pf_emulate - s0.pf_emulate, 0);
	assert_true(s0.pf_emulate >= 1);
	cpl(p, 3, false);
	o = acc(p, 0x400000, 4, VMMU_ACC_READ, 0);      /* the user may not */
	assert_int_equal(o.r.status, VMMU_ACCESS_PF);
	cpl(p, 0, false);
	/* A split access: RAM then MMIO. */
	map_live(p, root, 0x3ff000, new_data(p), PRW);
	o = acc(p, 0x3ffffc, 8, VMMU_ACC_WRITE, 0x1122334455667788ULL);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(o.r.done, 4);
	assert_int_equal(o.r.mmio_gpa, MMIO_GPA);
	assert_int_equal(o.r.mmio_len, 4);
	assert_int_equal(o.r.mmio_data, 0x11223344);
	o = acc(p, 0x3ffffc, 8, VMMU_ACC_READ, 0);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	/* MMIO then RAM. */
	map_live(p, root, 0x401000, new_data(p), PRW);
	o = acc(p, 0x400ffc, 8, VMMU_ACC_WRITE, 0x1122334455667788ULL);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(o.r.done, 0);

	/* Memory appears at the gpa: the cached spte is stale. */
	uint64_t hva[2];
	for (int i = 0; i < 2; i++) {
		struct vmmu_userspace_memory_region r = { .slot = 1, .guest_phys_addr = MMIO_GPA,
							  .memory_size = 0x10000 };
		assert_int_equal(vmmu_vm_mmap(p->g[i].vm, 0x10000, false, &hva[i]), 0);
		r.userspace_addr = hva[i];
		assert_int_equal(vmmu_set_user_memory_region(p->g[i].vm, &r), 0);
	}
	audit(p);
	wr_ok(p, 0x400020, 0x99);
	assert_int_equal(rd_ok(p, 0x400020), 0x99);
	same_memory(p, MMIO_GPA, 0x10000);
	same_all(p);
}
BOTH_HOSTS(test_mmio)

static void set_slot(struct pair *p, uint32_t slot, uint32_t flags, gpa_t gpa, uint64_t size,
		     const uint64_t hva[2])
{
	for (int i = 0; i < 2; i++) {
		struct vmmu_userspace_memory_region r = { .slot = slot, .flags = flags,
							  .guest_phys_addr = gpa, .memory_size = size,
							  .userspace_addr = hva ? hva[i] : 0 };
		assert_int_equal(vmmu_set_user_memory_region(p->g[i].vm, &r), 0);
	}
	p->steps++;
	audit(p);
}

static void new_hva(struct pair *p, uint64_t size, uint64_t hva[2])
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vm_mmap(p->g[i].vm, size, false, &hva[i]), 0);
}

#define SLOT1_GPA 0x2000000ULL
#define SLOT1_SIZE 0x40000ULL     /* 64 pages */

/* Memslot delete, move and flag changes zap what they must; a munmap under the guest too. */
static void test_memslots_body(struct pair *p)
{
	uint64_t hva[2];
	gpa_t root = new_root(p);
	new_hva(p, SLOT1_SIZE, hva);
	set_slot(p, 1, 0, SLOT1_GPA, SLOT1_SIZE, hva);
	for (unsigned i = 0; i < 16; i++)
		map(p, root, 0x400000 + i * 0x1000, SLOT1_GPA + i * 0x1000, 1, PRWU);
	/* The page table of 0x600000 lives in slot 1 too. */
	gpa_t pt = SLOT1_GPA + 0x20000;
	gpa_t pdpt = rd(&p->g[0], root) & rsvd_bits(12, 51);
	gpa_t pd = rd(&p->g[0], pdpt) & rsvd_bits(12, 51);
	wr(p, pd + 3 * 8, pt | PRWU);
	wr(p, pt, (SLOT1_GPA + 0x1000) | PRWU);
	regs64(p, root);
	for (unsigned i = 0; i < 16; i++)
		wr_ok(p, 0x400000 + i * 0x1000, i + 1);
	assert_int_equal(rd_ok(p, 0x600000), 2);
	struct vmmu_stats s0 = SH(p);

	/* Dirty logging on: writes are logged (write-protected first). */
	set_slot(p, 1, VMMU_MEM_LOG_DIRTY_PAGES, SLOT1_GPA, SLOT1_SIZE, hva);
	wr_ok(p, 0x403000, 0x33);
	rd_ok(p, 0x404000);
	uint64_t bm[2][1];
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_get_dirty_log(p->g[i].vm, 1, bm[i]), 0);
	assert_int_equal(bm[0][0], bm[1][0]);
	assert_true(bm[0][0] & (1ULL << 3));
	wr_ok(p, 0x403000, 0x34);               /* logged again after the harvest */
	wr_ok(p, 0x405000, 0x35);
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_get_dirty_log(p->g[i].vm, 1, bm[i]), 0);
	assert_int_equal(bm[0][0], bm[1][0]);
	assert_int_equal(bm[0][0] & ((1ULL << 3) | (1ULL << 5)), (1ULL << 3) | (1ULL << 5));
	set_slot(p, 1, 0, SLOT1_GPA, SLOT1_SIZE, hva);

	/* Move: the old gpas are MMIO; moved back, the contents are there again. */
	set_slot(p, 1, 0, SLOT1_GPA + 0x1000000, SLOT1_SIZE, hva);
	assert_true(SH(p).mmu_shadow_zapped > s0.mmu_shadow_zapped);
	assert_int_equal(acc(p, 0x401000, 8, VMMU_ACC_READ, 0).r.status, VMMU_ACCESS_MMIO);
	invlpg(p, 0x600000);
	acc(p, 0x600000, 8, VMMU_ACC_READ, 0);          /* its table is gone: #PF */
	set_slot(p, 1, 0, SLOT1_GPA, SLOT1_SIZE, hva);
	assert_int_equal(rd_ok(p, 0x401000), 2);
	assert_int_equal(rd_ok(p, 0x600000), 2);

	/* munmap part of the backing: those pages have no memory (MMIO exits). */
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vm_munmap(p->g[i].vm, hva[i] + 0x2000, 0x2000), 0);
	audit(p);
	acc(p, 0x402000, 8, VMMU_ACC_READ, 0);
	acc(p, 0x403000, 8, VMMU_ACC_WRITE, 1);
	assert_int_equal(rd_ok(p, 0x404000), 5);

	/* Delete: every mapping of it goes. */
	set_slot(p, 1, 0, SLOT1_GPA, 0, hva);
	for (unsigned i = 0; i < 16; i += 5)
		assert_int_equal(acc(p, 0x400000 + i * 0x1000, 8, VMMU_ACC_READ, 0).r.status,
				 VMMU_ACCESS_MMIO);
	invlpg(p, 0x600000);
	acc(p, 0x600000, 8, VMMU_ACC_READ, 0);
	same_all(p);
}
BOTH_HOSTS(test_memslots)

/*
 * The per-gfn state (the soft MMU's radix tree by gfn), through the audit after every step, which
 * checks each rmap's shape (an entry inline, more out of line, none twice), each chunk's counts
 * of used and tracked gfns, and that no empty chunk is kept: one frame mapped at nine addresses
 * (its rmap grows out of line past its first vector and comes back inline as the aliases go, one
 * guest store at a time, in an order that moves entries); then a slot at 1 TiB (another
 * directory of the tree) holding pages and a page table, deleted with everything in it.
 */
#define FAR_GPA 0x10000000000ULL

static void test_gfn_state_body(struct pair *p)
{
	static const unsigned drop_order[] = { 1, 3, 5, 7, 8, 6, 4, 2 };
	uint64_t hva[2];
	gpa_t root = new_root(p), d = new_data(p), pte[9];

	for (unsigned i = 0; i < 9; i++)
		pte[i] = map(p, root, 0x400000 + i * 0x1000, d, 1, PRWU | AD);
	regs64(p, root);
	wr_ok(p, 0x400000, 0x77);
	for (unsigned i = 1; i < 9; i++)
		assert_int_equal(rd_ok(p, 0x400000 + i * 0x1000), 0x77);
	for (unsigned k = 0; k < 8; k++) {
		gva_t va = 0x400000 + drop_order[k] * 0x1000;
		gstore(p, pte[drop_order[k]], 0, 8);
		invlpg(p, va);
		assert_int_equal(acc(p, va, 8, VMMU_ACC_READ, 0).r.status, VMMU_ACCESS_PF);
		wr_ok(p, 0x400000, 0x78 + k);
	}
	assert_int_equal(rd_ok(p, 0x400000), 0x7f);

	new_hva(p, SLOT1_SIZE, hva);
	set_slot(p, 1, 0, FAR_GPA, SLOT1_SIZE, hva);
	static const gpa_t far[] = { 0, 0x1000, 0x20000, 0x3f000 };
	for (unsigned i = 0; i < 4; i++) {
		map_live(p, root, 0x800000 + i * 0x1000, FAR_GPA + far[i], PRWU | AD);
		wr_ok(p, 0x800000 + i * 0x1000, 0x100 + i);
	}
	/* A page table in the far slot (written before it is linked, then linked by a guest
	 * store): shadowing it write-tracks a gfn there. */
	gpa_t pt = FAR_GPA + 0x30000;
	wr(p, pt, (FAR_GPA + 0x1000) | PRWU | AD);
	gpa_t pdpt = rd(&p->g[0], root) & rsvd_bits(12, 51);
	gpa_t pd = rd(&p->g[0], pdpt) & rsvd_bits(12, 51);
	gstore(p, pd + 5 * 8, pt | PRWU, 8);
	assert_int_equal(rd_ok(p, 0xa00000), 0x101);
	assert_true(SH(p).shadow_pages >= 5);

	/* Deleted: its leaves and its table's sp go, and with them the far chunks. */
	set_slot(p, 1, 0, FAR_GPA, 0, hva);
	assert_int_equal(acc(p, 0x800000, 8, VMMU_ACC_READ, 0).r.status, VMMU_ACCESS_MMIO);
	invlpg(p, 0xa00000);
	acc(p, 0xa00000, 8, VMMU_ACC_READ, 0);
	assert_int_equal(rd_ok(p, 0x400000), 0x7f);
	same_all(p);
}
BOTH_HOSTS(test_gfn_state)

/* A read-only slot: reads work, writes are MMIO exits, as natively. */
static void test_readonly_slot_body(struct pair *p)
{
	uint64_t hva[2];
	gpa_t root = new_root(p);
	new_hva(p, SLOT1_SIZE, hva);
	set_slot(p, 1, VMMU_MEM_READONLY, SLOT1_GPA, SLOT1_SIZE, hva);
	map(p, root, 0x400000, SLOT1_GPA, 1, PRWU | AD);
	map(p, root, 0x401000, SLOT1_GPA + 0x1000, 1, PRWU);
	regs64(p, root);
	rd_ok(p, 0x400000);
	struct out o = acc(p, 0x400000, 8, VMMU_ACC_WRITE, 1);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	o = acc(p, 0x401008, 8, VMMU_ACC_WRITE, 1);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	rd_ok(p, 0x401000);
	same_all(p);
}
BOTH_HOSTS(test_readonly_slot)

/* CR3 switches between two address spaces: the second switch back finds the root in the
 * prev-root cache (no new shadow page); the translations are each space's own. */
static void test_cr3_switch_body(struct pair *p)
{
	gpa_t ra = new_root(p), rb = new_root(p);
	gpa_t da = new_data(p), db = new_data(p);
	map(p, ra, 0x400000, da, 1, PRWU);
	map(p, rb, 0x400000, db, 1, PRWU);
	wr(p, da, 0xa);
	wr(p, db, 0xb);
	regs64(p, ra);
	assert_int_equal(rd_ok(p, 0x400000), 0xa);
	mov_cr(p, 3, rb);
	assert_int_equal(rd_ok(p, 0x400000), 0xb);
	mov_cr(p, 3, ra);
	assert_int_equal(rd_ok(p, 0x400000), 0xa);
	struct vmmu_stats s0 = SH(p);
	for (int i = 0; i < 10; i++) {
		mov_cr(p, 3, rb);
		assert_int_equal(rd_ok(p, 0x400000), 0xb);
		mov_cr(p, 3, ra);
		assert_int_equal(rd_ok(p, 0x400000), 0xa);
	}
	struct vmmu_stats s1 = SH(p);
	assert_int_equal(s1.mmu_cache_miss, s0.mmu_cache_miss);
	assert_int_equal(s1.shadow_pages, s0.shadow_pages);
	assert_int_equal(s1.exits_by_reason[VMMU_EXIT_CR3] - s0.exits_by_reason[VMMU_EXIT_CR3], 20);
	/* The same CR3 again: no new root, the TLB flushed as the architecture says. */
	mov_cr(p, 3, ra);
	assert_int_equal(rd_ok(p, 0x400000), 0xa);
	/* PCIDs: CR3 loads with the no-flush bit, INVPCID of each type. */
	mov_cr(p, 4, X86_CR4_PAE | X86_CR4_PCIDE);
	mov_cr(p, 3, rb | 2);
	assert_int_equal(rd_ok(p, 0x400000), 0xb);
	mov_cr(p, 3, ra | 1 | (1ULL << 63));
	assert_int_equal(rd_ok(p, 0x400000), 0xa);
	for (unsigned t = 0; t < 4; t++) {
		for (int i = 0; i < 2; i++)
			assert_int_equal(vmmu_vcpu_invpcid(p->g[i].v, t, 1, 0x400000), 0);
		assert_int_equal(rd_ok(p, 0x400000), 0xa);
	}
	same_all(p);
}
BOTH_HOSTS(test_cr3_switch)

/*
 * --opt unsync: unsync children are tracked up to the roots, so a guest flush syncs what the
 * flushed root reaches and nothing else; a table reached again syncs and is tracked again; INVLPG
 * takes the address's entry from the guest table. The outcomes match native with every option
 * set; the counts are checked where unsync is on.
 */
static void test_unsync_roots_body(struct pair *p)
{
	const bool unsync = !(cur_opts_off & VMMU_OPT_UNSYNC);
	gpa_t ra = new_root(p), rb = new_root(p);
	gpa_t da = new_data(p), da2 = new_data(p), da3 = new_data(p), db = new_data(p);
	gpa_t ea = map(p, ra, 0x400000, da, 1, PRWU);
	struct vmmu_stats s0, s1;

	map(p, rb, 0x400000, db, 1, PRWU);
	wr(p, da, 0xa);
	wr(p, da2, 0xa2);
	wr(p, da3, 0xa3);
	wr(p, db, 0xb);
	regs64(p, ra);
	assert_int_equal(rd_ok(p, 0x400000), 0xa);
	mov_cr(p, 3, rb);
	assert_int_equal(rd_ok(p, 0x400000), 0xb);
	mov_cr(p, 3, ra);

	/* A new entry in A's last-level table needs no flush: the table goes unsync. */
	s0 = SH(p);
	gstore(p, ea + 8, da2 | PRWU, 8);
	assert_int_equal(rd_ok(p, 0x401000), 0xa2);
	s1 = SH(p);
	if (unsync)
		assert_int_equal(s1.mmu_unsync - s0.mmu_unsync, 1);

	/* In B, A's table is out of reach: loading B's CR3 leaves it unsync, so B's kernel edits it
	 * with no exit and no new unsync (a flush that synced everything would have tracked it
	 * again). The edit needs A's flush: A's entry 0 moves to another page. */
	mov_cr(p, 3, rb);
	assert_int_equal(rd_ok(p, 0x400000), 0xb);
	s0 = SH(p);
	gstore(p, ea, da3 | PRWU, 8);
	s1 = SH(p);
	if (unsync) {
		assert_int_equal(s1.mmu_unsync - s0.mmu_unsync, 0);
		assert_int_equal(s1.pf_emulate - s0.pf_emulate, 0);
	}

	/* Back in A, a flush: the table syncs, the moved entry is seen as natively... */
	mov_cr(p, 3, ra);
	assert_int_equal(rd_ok(p, 0x400000), 0xa3);
	assert_int_equal(rd_ok(p, 0x401000), 0xa2);
	/* ...and the table is tracked again: the next edit exits and unsyncs it once more. */
	s0 = SH(p);
	gstore(p, ea + 16, da | PRWU, 8);
	s1 = SH(p);
	if (unsync)
		assert_int_equal(s1.mmu_unsync - s0.mmu_unsync, 1);
	assert_int_equal(rd_ok(p, 0x402000), 0xa);

	/* INVLPG: the entry of the address comes from the guest table as it is now. */
	gstore(p, ea, da | PRWU, 8);
	invlpg(p, 0x400000);
	assert_int_equal(rd_ok(p, 0x400000), 0xa);
	/* Toggling CR4.PGE flushes everything (every root of the vCPU syncs; the root stays). */
	gstore(p, ea + 8, db | PRWU, 8);
	mov_cr(p, 4, X86_CR4_PAE | X86_CR4_PGE);
	mov_cr(p, 4, X86_CR4_PAE);
	assert_int_equal(rd_ok(p, 0x401000), 0xb);
	mov_cr(p, 3, rb);
	assert_int_equal(rd_ok(p, 0x400000), 0xb);
	same_all(p);
}
BOTH_HOSTS(test_unsync_roots)

/*
 * User space (the VMM) writes a live guest table with vmmu_write_guest, which no write tracking
 * sees: an entry it makes present must be seen at once, as natively (a not-present entry is never
 * cached), even where no-trap had made its spte truly non-present.
 */
static void test_vmm_write_body(struct pair *p)
{
	gpa_t root = new_root(p), d0 = new_data(p), d1 = new_data(p);
	gpa_t e0 = map(p, root, 0x400000, d0, 1, PRWU);

	wr(p, d0, 0x1);
	wr(p, d1, 0x2);
	regs64(p, root);
	assert_int_equal(rd_ok(p, 0x400000), 0x1);
	/* Not present: the guest's #PF (with notrap, the spte is now truly non-present). */
	struct out o = acc(p, 0x401000, 8, VMMU_ACC_READ, 0);
	assert_int_equal(o.r.status, VMMU_ACCESS_PF);
	wr(p, e0 + 8, d1 | PRWU);
	assert_int_equal(rd_ok(p, 0x401000), 0x2);
	same_all(p);
}
BOTH_HOSTS(test_vmm_write)

/*
 * No-trap's install. A #PF on an entry the guest left not present, in a table the MMU tracks,
 * makes its spte truly non-present: the same fault again goes to the guest with no exit. In an
 * unsync table (the guest writes its entries with no exit) the entry keeps trapping, and that
 * fault exits each time. VMX only: no-trap needs PFEC_MASK/MATCH.
 */
static void test_notrap_install(void **state)
{
	(void)state;
	for (int unsync = 0; unsync < 2; unsync++) {
		struct pair p;
		cur_opts_off = VMMU_OPT_PREFETCH | VMMU_OPT_FASTPF | (unsync ? 0 : VMMU_OPT_UNSYNC);
		pair_init(&p, VMMU_HOST_VMX);
		gpa_t root = new_root(&p), d0 = new_data(&p), d1 = new_data(&p);
		gpa_t e0 = map(&p, root, 0x400000, d0, 1, PRWU);

		wr(&p, d0, 0x1);
		regs64(&p, root);
		/* The table is shadowed: the sptes of the entries the guest left not present are
		 * truly non-present (no-trap). The guest's INVLPG, its flush, makes one trap again
		 * (the VMM may have written the entry behind its back). */
		assert_int_equal(rd_ok(&p, 0x400000), 0x1);
		invlpg(&p, 0x401000);
		if (unsync) {
			struct vmmu_stats s0 = SH(&p);
			gstore(&p, e0 + 16, d1 | PRWU, 8);
			assert_int_equal(SH(&p).mmu_unsync - s0.mmu_unsync, 1);
		}
		for (int k = 0; k < 2; k++) {
			struct vmmu_stats s0 = SH(&p);
			struct out o = acc(&p, 0x401000, 8, VMMU_ACC_READ, 0);
			assert_int_equal(o.r.status, VMMU_ACCESS_PF);
			struct vmmu_stats s1 = SH(&p);
			assert_int_equal(s1.pf_guest - s0.pf_guest, k == 0 || unsync ? 1 : 0);
			assert_int_equal(s1.exits_by_reason[VMMU_EXIT_PF] -
						 s0.exits_by_reason[VMMU_EXIT_PF],
					 k == 0 || unsync ? 1 : 0);
		}
		same_all(&p);
		pair_fini(&p);
	}
	cur_opts_off = 0;
}

/* More page tables than the shadow page limit (64 for this small guest): the least recently used
 * shadow pages are recycled; the results do not change. */
static void test_recycle_body(struct pair *p)
{
	gpa_t root = new_root(p);
	const unsigned n = 160;      /* one page table each */
	for (unsigned i = 0; i < n; i++)
		map(p, root, 0x40000000ULL + i * 0x200000ULL, new_data(p), 1, PRWU);
	regs64(p, root);
	for (int round = 0; round < 2; round++)
		for (unsigned i = 0; i < n; i++)
			acc(p, 0x40000000ULL + i * 0x200000ULL + 8 * round, 8, VMMU_ACC_WRITE, i);
	for (unsigned i = 0; i < n; i++)
		assert_int_equal(rd_ok(p, 0x40000000ULL + i * 0x200000ULL + 8), i);
	struct vmmu_stats s = SH(p);
	assert_true(s.mmu_recycled > 0);
	assert_true(s.shadow_pages <= 64 + 4);
	same_all(p);
}
BOTH_HOSTS(test_recycle)

/*
 * Which shadow pages make room. Four hot pages, each behind its own page table, are walked every
 * round (an INVLPG first, so the hardware walks through their links and sets Accessed there);
 * 20 cold pages, each behind a page table of its own, fault in per round, 120 in turn: with a
 * 64-page limit, sps must go every round. LRU (the clock on the links' Accessed bits) keeps the
 * hot tables: after the first round their pages never fault again. FIFO (KVM's order) recycles
 * them as they age, and they fault again. Every value read is native's either way.
 */
static uint64_t evict_hot_faults(struct pair *p)
{
	const gva_t base = 0x40000000ULL;
	const unsigned hot = 4, cold = 120;
	gpa_t root = new_root(p);
	uint64_t faults = 0;

	for (unsigned i = 0; i < hot + cold; i++)
		map(p, root, base + i * 0x200000ULL, new_data(p), 1, PRWU);
	regs64(p, root);
	for (unsigned round = 0, next = 0; round < 12; round++) {
		for (unsigned i = 0; i < hot; i++) {
			uint64_t before = SH(p).pf_taken;

			invlpg(p, base + i * 0x200000ULL);
			acc(p, base + i * 0x200000ULL, 8, VMMU_ACC_READ, 0);
			if (round)
				faults += SH(p).pf_taken - before;
		}
		for (unsigned k = 0; k < 20; k++, next = (next + 1) % cold)
			acc(p, base + (hot + next) * 0x200000ULL, 8, VMMU_ACC_READ, 0);
		audit(p);
	}
	assert_true(SH(p).mmu_recycled > 0);
	same_all(p);
	return faults;
}

static void test_evict_order(void **state)
{
	(void)state;
	for (unsigned h = 0; h < 2; h++) {
		uint64_t faults[2];

		for (cur_evict = VMMU_EVICT_LRU; cur_evict <= VMMU_EVICT_FIFO; cur_evict++) {
			struct pair p;

			pair_init(&p, hosts[h]);
			faults[cur_evict] = evict_hot_faults(&p);
			pair_fini(&p);
		}
		cur_evict = VMMU_EVICT_LRU;
		if (faults[VMMU_EVICT_LRU] != 0 || faults[VMMU_EVICT_FIFO] < 4)
			fail_msg("host %u: hot pages faulted again %" PRIu64 " times with lru, %" PRIu64
				 " with fifo", h, faults[VMMU_EVICT_LRU], faults[VMMU_EVICT_FIFO]);
	}
}

/* A page table the guest stopped using, then wrote as data: after a few emulated writes with no
 * fault through it, its shadow page is zapped (flooded) and the writes stop exiting. */
static void test_flood_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t pte = map(p, root, 0x400000, new_data(p), 1, PRWU);
	gpa_t pt = pte & ~0xfffULL;
	gpa_t pd = rd(&p->g[0], rd(&p->g[0], root) & rsvd_bits(12, 51)) & rsvd_bits(12, 51);
	map(p, root, 0x800000, pt, 1, PRW);          /* the table, as a data page */
	regs64(p, root);
	rd_ok(p, 0x400000);
	/* The guest unhooks the table, then reuses its page. */
	gstore(p, pd + 2 * 8, 0, 8);
	invlpg(p, 0x400000);
	struct vmmu_stats s0 = SH(p);
	for (unsigned i = 0; i < 8; i++)
		wr_ok(p, 0x800000 + 8 * i, 0x1000 + i);
	struct vmmu_stats s1 = SH(p);
	assert_true(s1.mmu_flooded > s0.mmu_flooded || !EMULATES_PTE_WRITES);
	assert_true(s1.pf_emulate - s0.pf_emulate <= 3);
	for (unsigned i = 0; i < 8; i++)
		wr_ok(p, 0x800100 + 8 * i, i);
	assert_int_equal(SH(p).pf_emulate, s1.pf_emulate);
	acc(p, 0x400000, 8, VMMU_ACC_READ, 0);
	same_all(p);
}
BOTH_HOSTS(test_flood)

/* Partial and misaligned stores to PTEs: a byte, a half, an 8-byte store straddling two entries,
 * a store crossing from one table page into the next. Every spte they touch is updated. */
static void test_misaligned_pte_writes_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t d[4];
	for (int i = 0; i < 4; i++) {
		d[i] = new_data(p);
		wr(p, d[i], 0x100 + i);
	}
	gpa_t e0 = map(p, root, 0x400000, d[0], 1, PRWU);
	gpa_t e1 = map(p, root, 0x401000, d[1], 1, PRWU);
	gpa_t e511 = map(p, root, 0x5ff000, d[2], 1, PRWU);
	/* The next table page in gpa order maps the next 2M. */
	gpa_t e0b = map(p, root, 0x600000, d[3], 1, PRWU);
	assert_int_equal(e0b, (e511 & ~0xfffULL) + 0x1000);
	regs64(p, root);
	assert_int_equal(rd_ok(p, 0x400000), 0x100);
	assert_int_equal(rd_ok(p, 0x401000), 0x101);
	assert_int_equal(rd_ok(p, 0x5ff000), 0x102);
	assert_int_equal(rd_ok(p, 0x600000), 0x103);
	/* One byte: clear W of entry 0. */
	gstore(p, e0, PT_PRESENT_MASK | PT_USER_MASK | PT_ACCESSED_MASK, 1);
	invlpg(p, 0x400000);
	assert_int_equal(acc(p, 0x400000, 8, VMMU_ACC_WRITE, 1).r.status, VMMU_ACCESS_PF);
	/* Eight bytes at e0 + 4: entry 0's high half (NX) and entry 1's low half (frame d[3]). */
	uint64_t v = (PT64_NX_MASK >> 32) | ((uint64_t)(uint32_t)(d[3] | PRWU) << 32);
	gstore(p, e0 + 4, v, 8);
	assert_int_equal(rd(&p->g[1], e1), d[3] | PRWU);
	invlpg(p, 0x400000);
	invlpg(p, 0x401000);
	acc(p, 0x400000, 4, VMMU_ACC_FETCH, 0);
	assert_int_equal(rd_ok(p, 0x401000), 0x103);
	/* Across the table page boundary: entry 511 of one table, entry 0 of the next. */
	gstore(p, e511 + 4, ((uint64_t)(uint32_t)(d[0] | PRWU) << 32), 8);
	invlpg(p, 0x5ff000);
	invlpg(p, 0x600000);
	acc(p, 0x5ff000, 8, VMMU_ACC_READ, 0);
	assert_int_equal(rd_ok(p, 0x600000), 0x100);
	/* Two bytes. */
	gstore(p, e1, (d[1] | PRWU) & 0xffff, 2);
	invlpg(p, 0x401000);
	acc(p, 0x401000, 8, VMMU_ACC_READ, 0);
	same_all(p);
}
BOTH_HOSTS(test_misaligned_pte_writes)

/* Guest 2M and 1G pages: mapped 4K by 4K from a direct shadow page; the 2M page's Dirty bit. */
static void test_large_pages_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t pde = map(p, root, 0x40000000ULL, 0x200000, 2, PRWU);
	map(p, root, 0x80000000ULL, 0, 3, PRW);
	regs64(p, root);
	rd_ok(p, 0x40000000ULL + 0x1234 * 8);
	assert_int_equal(rd(&p->g[1], pde) & AD, PT_ACCESSED_MASK);
	wr_ok(p, 0x40000000ULL + 0x10000, 0x42);
	assert_int_equal(rd(&p->g[1], pde) & AD, AD);
	wr_ok(p, 0x40000000ULL + 0x1ff000, 0x43);
	assert_int_equal(rd_ok(p, 0x80000000ULL + 0x200000 + 0x10000), 0x42);
	wr_ok(p, 0x80000000ULL + 0x300000, 0x44);
	cpl(p, 3, false);
	acc(p, 0x80000000ULL, 8, VMMU_ACC_READ, 0);
	acc(p, 0x40000000ULL, 8, VMMU_ACC_FETCH, 0);
	cpl(p, 0, false);
	/* Make the 2M page read-only with a guest store: every 4K spte under it goes. */
	gstore(p, pde, 0x200000 | PT_PRESENT_MASK | PT_USER_MASK | PT_PAGE_SIZE_MASK | AD, 8);
	invlpg(p, 0x40000000ULL);
	acc(p, 0x40000000ULL + 0x10000, 8, VMMU_ACC_WRITE, 1);
	cpl(p, 3, false);
	acc(p, 0x40000000ULL + 0x1ff000, 8, VMMU_ACC_WRITE, 1);
	same_all(p);
}
BOTH_HOSTS(test_large_pages)

/*
 * Large sptes (2M host pages behind slot 0): a guest 2M page over data gets one 2M spte, those
 * over the guest tables' 2 MiB get 4K ones (tables inside are write-tracked); a table shadowed
 * inside a mapped 2M page takes W from its 2M spte and the next write there splits it (the store
 * to the table itself is emulated); dirty logging write-protects 2M sptes and writes split them,
 * each page logged; once logging ends those pages map large again, and a new mapping of the same
 * 2 MiB large too; munmap of the host page drops both 2M sptes. Native's outcomes and memory throughout, audited each step.
 */
static uint64_t pages_2m(struct pair *p) { return SH(p).pages_2m; }

static void test_large_sptes_body(struct pair *p)
{
	gpa_t root = new_root(p);
	const gva_t va = 0x40000000ULL, vb = 0x60000000ULL;
	map(p, root, va, 0x400000, 2, PRWU);      /* data only: one 2M spte */
	map(p, root, vb, 0x600000, 2, PRWU);
	map(p, root, 0x80000000ULL, 0, 2, PRWU);  /* the tables' first 2 MiB */
	regs64(p, root);
	rd_ok(p, 0x80000000ULL + 0x10000);
	assert_int_equal(pages_2m(p), 0);          /* TABLES lie in it: 4K sptes */
	rd_ok(p, va + 0x1234 * 8);
	assert_int_equal(pages_2m(p), 1);
	wr_ok(p, va + 0x10000, 0x42);
	assert_int_equal(pages_2m(p), 1);
	assert_int_equal(rd_ok(p, va + 0x10000), 0x42);

	/* A page table inside the 2M page at va: its PTE written by the VMM before the guest links
	 * it (the guest's store of the PDE is emulated), then walked. */
	const gpa_t inner = 0x5ff000;
	const gva_t vt = 0x50000000ULL;
	wr(p, inner, (0x400000 + 0x3000) | PRWU);
	gpa_t pd = rd(&p->g[0], root + ((vt >> 39) & 511) * 8) & rsvd_bits(12, 51);
	pd = rd(&p->g[0], pd + ((vt >> 30) & 511) * 8) & rsvd_bits(12, 51);
	gstore(p, pd + ((vt >> 21) & 511) * 8, inner | PRWU, 8);
	rd_ok(p, vt);
	/* Tracked now: the 2M spte stays, read-only (the audit checks no writable spte covers a
	 * tracked gfn); the next write in its range splits it. */
	assert_int_equal(pages_2m(p), 1);
	uint64_t emu = SH(p).pf_emulate;
	wr_ok(p, va + 0x20000, 0x43);
	assert_int_equal(pages_2m(p), 0);
	assert_int_equal(rd_ok(p, va + 0x10000), 0x42);
	/* The store to the table itself, through the large page: emulated (an unused entry). */
	wr_ok(p, va + 0x1ff000 + 8 * 100, 0);
	if (EMULATES_PTE_WRITES)
		assert_true(SH(p).pf_emulate > emu);
	assert_int_equal(rd_ok(p, vt), 0);

	/* Dirty logging on slot 0: the next 2M page maps 4K by 4K, each write logged. */
	rd_ok(p, vb);
	assert_int_equal(pages_2m(p), 1);
	uint64_t hva[2] = { p->g[0].hva, p->g[1].hva };
	set_slot(p, 0, VMMU_MEM_LOG_DIRTY_PAGES, 0, MEM, hva);
	uint64_t bm[2][MEM / 4096 / 64];
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_get_dirty_log(p->g[i].vm, 0, bm[i]), 0);
	wr_ok(p, vb + 0x5000, 0x44);
	wr_ok(p, vb + 0x7000, 0x45);
	assert_int_equal(pages_2m(p), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_get_dirty_log(p->g[i].vm, 0, bm[i]), 0);
	assert_memory_equal(bm[0], bm[1], sizeof(bm[0]));
	const uint64_t g5 = 0x605, g7 = 0x607;
	assert_true(bm[1][g5 / 64] & (1ULL << (g5 % 64)));
	assert_true(bm[1][g7 / 64] & (1ULL << (g7 % 64)));
	set_slot(p, 0, 0, 0, MEM, hva);
	/* Logging over: the 4K-mapped 2M page is mapped large again at its next access (its direct
	 * sp went with the end of logging), and so is a 2M page not mapped yet. */
	assert_int_equal(rd_ok(p, vb + 0x5000), 0x44);
	assert_int_equal(pages_2m(p), 1);
	const gva_t vc = 0x70000000ULL;
	map_live(p, root, vc, 0x600000, PRWU);       /* a 4K mapping to make the tables... */
	gpa_t pde_c = rd(&p->g[0], root + ((vc >> 39) & 511) * 8) & rsvd_bits(12, 51);
	pde_c = (rd(&p->g[0], pde_c + ((vc >> 30) & 511) * 8) & rsvd_bits(12, 51)) +
		((vc >> 21) & 511) * 8;
	gstore(p, pde_c, 0x600000 | PRWU | PT_PAGE_SIZE_MASK, 8);   /* ...replaced by a 2M one */
	invlpg(p, vc);
	assert_int_equal(rd_ok(p, vc + 0x7000), 0x45);
	assert_int_equal(pages_2m(p), 2);

	/* The host page goes: its 2M spte with it; the guest finds no memory, as native does. */
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_vm_munmap(p->g[i].vm, p->g[i].hva + 0x600000, 0x200000), 0);
	assert_int_equal(pages_2m(p), 0);
	acc(p, vc + 0x7000, 8, VMMU_ACC_READ, 0);
	same_memory(p, 0, 0x600000);
	audit(p);
}

/* A page directory inside the 2M page it maps: the first fault there shadows the directory on its
 * way down, so the 2M page must map 4K (no writable spte over a tracked table: the audit), and a
 * store to the directory through it is emulated, as native's outcome and memory show. */
static void test_large_sptes_own_table_body(struct pair *p)
{
	gpa_t root = new_root(p), pdpt = new_table(p);
	const gpa_t pd = 0x5ff000;
	wr(p, root, pdpt | PRWU);
	wr(p, pdpt + 8, pd | PRWU);                               /* gva 0x40000000 */
	wr(p, pd, 0x400000 | PRWU | PT_PAGE_SIZE_MASK);
	regs64(p, root);
	wr_ok(p, 0x40000000ULL + 0x1000, 0x42);
	assert_int_equal(pages_2m(p), 0);
	assert_int_equal(rd_ok(p, 0x40000000ULL + 0x1ff000), 0x400000 | PRWU | PT_PAGE_SIZE_MASK | AD);
	wr_ok(p, 0x40000000ULL + 0x1ff000 + 8 * 5, 0x600000 | PRWU | PT_PAGE_SIZE_MASK);
	invlpg(p, 0x40000000ULL + 5 * 0x200000);
	wr_ok(p, 0x40000000ULL + 5 * 0x200000 + 0x10, 0x43);      /* through the new entry */
	same_all(p);
}

static void test_large_sptes(void **state)
{
	cur_hugetlb = VMMU_HUGETLB_2M;
	for (unsigned o = 0; o < sizeof(opt_sets) / sizeof(opt_sets[0]); o++) {
		cur_opts_off = opt_sets[o];
		for (unsigned h = 0; h < 2; h++) {
			struct pair p;
			pair_init(&p, hosts[h]);
			test_large_sptes_body(&p);
			pair_fini(&p);
			/* Under big every fault is exclusive (under fine only its rerun). */
			for (unsigned l = 0; l < 2; l++) {
				cur_lock = l ? VMMU_MMU_LOCK_BIG : VMMU_MMU_LOCK_FINE;
				pair_init(&p, hosts[h]);
				test_large_sptes_own_table_body(&p);
				pair_fini(&p);
			}
			cur_lock = VMMU_MMU_LOCK_FINE;
		}
	}
	cur_opts_off = 0;
	cur_hugetlb = VMMU_HUGETLB_NONE;
}

/* 5-level paging: a 5-level shadow. */
static void test_la57_body(struct pair *p)
{
	p->levels = 5;
	gpa_t root = new_root(p);
	map(p, root, 0x0080000000000000ULL, new_data(p), 1, PRWU);
	map(p, root, 0x400000, new_data(p), 1, PRWU);
	regs(p, CR0_BASE | X86_CR0_WP, X86_CR4_PAE | X86_CR4_LA57, EFER_64, root);
	/* KVM_SET_SREGS does not reach the MMU (no hook yet, see docs/soft-mmu.md): until an exit
	 * the hardware runs on the reset root, 4-level, and would refuse 57-bit addresses. A MOV CR3
	 * loads the 5-level root. */
	mov_cr(p, 3, root);
	wr_ok(p, 0x0080000000000000ULL, 1);
	wr_ok(p, 0x400000, 2);
	acc(p, 0x0080000000001000ULL, 8, VMMU_ACC_READ, 0);
	acc(p, 0x0200000000000000ULL, 8, VMMU_ACC_READ, 0);    /* not canonical with 5 levels */
	same_all(p);
}
BOTH_HOSTS(test_la57)

/* PAE paging: the four PDPTEs are registers loaded at MOV CR3, so a PDPT changed in memory takes
 * effect only at the next load, in both modes; PD and PT pages are write-tracked as usual. */
#define PAE_WIN 0xc0000000ULL
static gpa_t pae_map(struct pair *p, gpa_t pdpt, gva_t gva, gpa_t gpa, int level, uint64_t f)
{
	gpa_t e = pdpt + ((gva >> 30) & 3) * 8;
	uint64_t v = rd(&p->g[0], e);
	if (!(v & PT_PRESENT_MASK)) {
		v = new_table(p) | PT_PRESENT_MASK;
		wr(p, e, v);
	}
	gpa_t table = v & rsvd_bits(12, 51);
	for (int l = 2; l > level; l--) {
		e = table + ((gva >> (12 + 9 * (l - 1))) & 511) * 8;
		v = rd(&p->g[0], e);
		if (!(v & PT_PRESENT_MASK)) {
			v = new_table(p) | PRWU;
			wr(p, e, v);
		}
		table = v & rsvd_bits(12, 51);
	}
	e = table + ((gva >> (12 + 9 * (level - 1))) & 511) * 8;
	wr(p, e, gpa | f | (level > 1 ? PT_PAGE_SIZE_MASK : 0));
	return e;
}

static void test_pae_body(struct pair *p)
{
	gpa_t pdpt = new_table(p);
	p->win = PAE_WIN;
	for (gpa_t g = 0; g < MEM; g += 0x200000)
		pae_map(p, pdpt, PAE_WIN + g, g, 2, PRW | AD);
	static const uint64_t flags[] = { PRWU, PT_PRESENT_MASK | PT_USER_MASK, PRW,
					  PRWU | PT64_NX_MASK, 0 };
	gpa_t pte[5];
	for (unsigned i = 0; i < 5; i++)
		pte[i] = pae_map(p, pdpt, 0x400000 + i * 0x1000, new_data(p), 1, flags[i]);
	gpa_t big = pae_map(p, pdpt, 0x40000000, 0x200000, 2, PRWU);
	regs(p, CR0_BASE | X86_CR0_WP, X86_CR4_PAE, EFER_NXE, pdpt);
	for (unsigned c = 0; c < 2; c++) {
		cpl(p, c ? 3 : 0, false);
		for (unsigned i = 0; i < 5; i++) {
			acc(p, 0x400000 + i * 0x1000, 8, VMMU_ACC_READ, 0);
			acc(p, 0x400000 + i * 0x1000, 8, VMMU_ACC_WRITE, i);
			acc(p, 0x400000 + i * 0x1000, 4, VMMU_ACC_FETCH, 0);
		}
		acc(p, 0x40000000 + 0x12345, 8, VMMU_ACC_WRITE, 7);
		acc(p, 0x80000000, 8, VMMU_ACC_READ, 0);          /* PDPTE 2 not present */
	}
	cpl(p, 0, false);
	/* A PTE store, emulated; then the large page made read-only. */
	gpa_t d = new_data(p);
	wr(p, d, 0xd0d0);
	gstore(p, pte[0], d | PRWU, 8);
	gstore(p, big, 0x200000 | PT_PRESENT_MASK | PT_PAGE_SIZE_MASK | AD, 8);
	invlpg(p, 0x400000);
	invlpg(p, 0x40000000);
	assert_int_equal(rd_ok(p, 0x400000), 0xd0d0);
	acc(p, 0x40000000, 8, VMMU_ACC_WRITE, 1);
	assert_true(SH(p).pf_emulate >= 2 || !EMULATES_PTE_WRITES);
	/* PDPTE 1 written in memory: not in the registers until MOV CR3. */
	gpa_t pd1 = new_table(p), pt1 = new_table(p), d1 = new_data(p);
	wr(p, d1, 0xd1d1);
	gstore(p, pt1, d1 | PRWU, 8);
	gstore(p, pd1, pt1 | PRWU, 8);
	gstore(p, pdpt + 8, pd1 | PT_PRESENT_MASK, 8);
	struct out o = acc(p, 0x40000000, 8, VMMU_ACC_READ, 0);   /* still the old PDPTE 1 */
	assert_int_equal(o.r.status, VMMU_ACCESS_DONE);
	mov_cr(p, 3, pdpt);
	assert_int_equal(rd_ok(p, 0x40000000), 0xd1d1);
	/* CR4 and CR0 changes reload them too; 4-level and back through paging off. */
	mov_cr(p, 4, X86_CR4_PAE | X86_CR4_SMEP);
	assert_int_equal(rd_ok(p, 0x400000), 0xd0d0);
	mov_cr(p, 0, CR0_BASE);
	acc(p, 0x404000, 8, VMMU_ACC_WRITE, 9);
	same_all(p);
}
BOTH_HOSTS(test_pae)

/* ---- 32-bit paging (CR4.PAE=0): 4-byte entries, 1024-entry tables, 4 MiB pages ---- */

#define WIN32B   0xc0000000ULL              /* a 32-bit guest's window: gva WIN32B + gpa -> gpa */
#define HI_GPA   0x100000000ULL             /* a 4 MiB slot above 4 GiB: PSE-36 frames */
#define HI_SIZE  0x400000ULL
#define P32      PT_PRESENT_MASK
#define U32      PT_USER_MASK

static void wr32(struct pair *p, gpa_t a, uint32_t x)
{
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_write_guest(p->g[i].vm, a, &x, 4), 0);
}

static uint32_t rd32(struct gm *g, gpa_t a)
{
	uint32_t x = 0;
	assert_int_equal(vmmu_read_guest(g->vm, a, &x, 4), 0);
	return x;
}

/* A 32-bit 4 MiB PDE for frame @gpa (4 MiB aligned; bits 39:32 in PDE bits 20:13, PSE-36). */
static uint32_t pde4m(gpa_t gpa, uint32_t f)
{
	return (uint32_t)(gpa & 0xffc00000ULL) | (uint32_t)(((gpa >> 32) & 0xff) << 13) | f |
	       (uint32_t)PT_PAGE_SIZE_MASK;
}

/* Map @gva -> @gpa under page directory @pd: a 4 KiB page (the page table on the way PRWU,
 * written with the VMM's stores) or a 4 MiB one. Returns the entry's gpa. */
static gpa_t map32(struct pair *p, gpa_t pd, uint32_t gva, gpa_t gpa, bool large, uint32_t f)
{
	gpa_t e = pd + (gva >> 22) * 4;
	if (large) {
		wr32(p, e, pde4m(gpa, f));
		return e;
	}
	uint32_t v = rd32(&p->g[0], e);
	if (!(v & P32)) {
		v = (uint32_t)new_table(p) | (uint32_t)PRWU;
		wr32(p, e, v);
	}
	e = (v & 0xfffff000u) + ((gva >> 12) & 1023) * 4;
	wr32(p, e, (uint32_t)gpa | f);
	return e;
}

/* A page directory with the window (4 KiB pages, so it works with CR4.PSE off too). */
static gpa_t new_pd32(struct pair *p)
{
	gpa_t pd = new_table(p);
	p->win = WIN32B;
	for (gpa_t g = 0; g < MEM; g += 0x1000)
		map32(p, pd, (uint32_t)(WIN32B + g), g, false, (uint32_t)(PRW | AD));
	return pd;
}

static void regs32(struct pair *p, uint64_t cr0, uint64_t cr4, uint64_t efer, gpa_t pd)
{
	regs(p, cr0, cr4, efer, pd);
	/* The root for the new state (as test_la57: the registers alone do not reach the MMU
	 * before the first exit). */
	mov_cr(p, 3, pd);
}

/* 32-bit paging: rights of every page kind at CPL 0 and 3 (no NX, even with EFER.NXE), pages
 * in both halves of a page table (its two level-1 sps) and in every quadrant of the page
 * directory, 4 MiB pages (PSE) with their Dirty bit and global bit, a PSE-36 frame above 4 GiB,
 * a 4 MiB PDE with a reserved bit; then CR4.PSE off: PS is ignored and the same PDEs point to
 * page tables (a different shadow), and on again. */
static void test_paging32_body(struct pair *p)
{
	uint64_t hva[2];
	gpa_t pd = new_pd32(p);
	static const uint32_t flags[] = {
		(uint32_t)PRWU, P32 | U32, (uint32_t)PRW, P32, 0, (uint32_t)(PRWU | PT_ACCESSED_MASK),
	};
	const unsigned n = sizeof(flags) / sizeof(flags[0]);
	for (unsigned i = 0; i < n; i++)
		map32(p, pd, 0x400000 + i * 0x1000, new_data(p), false, flags[i]);
	map32(p, pd, 0x600000, new_data(p), false, (uint32_t)PRWU);     /* the table's upper half */
	map32(p, pd, 0x7ff000, new_data(p), false, (uint32_t)PRWU);     /* its last entry */
	map32(p, pd, 0x3fc00000, new_data(p), false, (uint32_t)PRWU);   /* PDE 255, quadrant 0 */
	/* 4 MiB pages: user in quadrant 1, supervisor global in quadrant 2 (an odd PDE), a
	 * PSE-36 frame above 4 GiB, and one with reserved bit 21. Frame 0x400000 holds the data
	 * pages: the accesses below stay above them. */
	gpa_t big = map32(p, pd, 0x40000000, 0x400000, true, (uint32_t)PRWU);
	gpa_t big2 = map32(p, pd, 0x80c00000, 0x400000, true, (uint32_t)(PRW | PT_GLOBAL_MASK));
	new_hva(p, HI_SIZE, hva);
	set_slot(p, 1, 0, HI_GPA, HI_SIZE, hva);
	gpa_t hi = map32(p, pd, 0x41000000, HI_GPA, true, (uint32_t)PRWU);
	wr32(p, pd + (0x41400000 >> 22) * 4, pde4m(HI_GPA, (uint32_t)PRWU) | (1u << 21));
	regs32(p, CR0_BASE | X86_CR0_WP, X86_CR4_PSE, EFER_NXE, pd);
	for (unsigned c = 0; c < 2; c++) {
		cpl(p, c ? 3 : 0, false);
		for (unsigned i = 0; i < n; i++) {
			gva_t va = 0x400000 + i * 0x1000 + 8 * c;
			acc(p, va, 8, VMMU_ACC_READ, 0);
			acc(p, va, 8, VMMU_ACC_WRITE, 0x1111 * (i + 1));
			acc(p, va, 4, VMMU_ACC_FETCH, 0);
			acc(p, va + 0xffc, 8, VMMU_ACC_WRITE, 0xabcdef);   /* crosses pages */
		}
		wr_ok(p, 0x600008 + 8 * c, 0x600 + c);
		wr_ok(p, 0x7ff000 + 8 * c, 0x7ff + c);
		acc(p, 0x7ffffc, 8, VMMU_ACC_READ, 0);             /* crosses into PDE 2: none */
		wr_ok(p, 0x3fc00000 + 8 * c, 0x3fc + c);
		acc(p, 0x40300000 + 0x10 * c, 8, VMMU_ACC_READ, 0);
		acc(p, 0x40300000 + 0x10 * c, 8, VMMU_ACC_WRITE, 0x4030 + c);
		acc(p, 0x40000000 + 0x3ff000, 8, VMMU_ACC_WRITE, 0x7ff);  /* the upper 2 MiB */
		acc(p, 0x401ffffc, 8, VMMU_ACC_WRITE, 0x1234);     /* across the two halves */
		acc(p, 0x40300000, 4, VMMU_ACC_FETCH, 0);
		acc(p, 0x80f80000, 8, VMMU_ACC_WRITE, 0x80f);
		acc(p, 0x80f80000, 4, VMMU_ACC_FETCH, 0);
		acc(p, 0x41000000 + 0x123450, 8, VMMU_ACC_WRITE, 0x4100 + c);
		assert_int_equal(acc(p, 0x41000000 + 0x123450, 8, VMMU_ACC_READ, 0).val, 0x4100 + c);
		acc(p, 0x413ff000, 8, VMMU_ACC_READ, 0);
		struct out o = acc(p, 0x41400000, 8, VMMU_ACC_READ, 0);     /* reserved bit */
		assert_int_equal(o.r.status, VMMU_ACCESS_PF);
		assert_true(o.r.pf_ec & PFERR_RSVD);
		acc(p, 0x00900000, 8, VMMU_ACC_READ, 0);           /* PDE 2: not present */
		acc(p, 0xfffffffc, 8, VMMU_ACC_READ, 0);           /* wraps at 4 GiB */
	}
	assert_int_equal(rd32(&p->g[1], big) & AD, AD);
	assert_int_equal(rd32(&p->g[1], big2) & AD, AD);
	assert_int_equal(rd32(&p->g[1], hi) & AD, AD);
	same_memory(p, HI_GPA, HI_SIZE);
	same_all(p);
	/* CR4.PSE off: a PS PDE points to a page table (here a data frame's bytes). */
	cpl(p, 0, false);
	mov_cr(p, 4, 0);
	for (unsigned k = 0; k < 8; k++) {
		acc(p, 0x40000000 + k * 0x1000, 8, VMMU_ACC_READ, 0);
		acc(p, 0x80c00000 + k * 0x1000, 8, VMMU_ACC_READ, 0);
		acc(p, 0x41400000 + k * 0x1000, 8, VMMU_ACC_READ, 0);
	}
	rd_ok(p, 0x400000);
	mov_cr(p, 4, X86_CR4_PSE);
	assert_int_equal(rd_ok(p, 0x40300000), 0x4030);
	acc(p, 0x41400000, 8, VMMU_ACC_READ, 0);
	same_memory(p, HI_GPA, HI_SIZE);
	same_all(p);
	struct vmmu_stats s = SH(p);
	assert_true(s.pf_fixed > 0 && s.shadow_pages >= 8);
}
BOTH_HOSTS(test_paging32)

/* 32-bit paging: guest stores into page tables and the page directory through the window: a
 * whole 4-byte PTE, a byte, two bytes, 8 bytes over two entries (aligned and not), a store over
 * entries 511 and 512 of a page table (its two level-1 sps), one over PDEs 255 and 256 (two
 * quadrants of the directory, each PDE two sptes), one crossing from one table page into the
 * next; a 4 MiB PDE made read-only and moved; the Dirty bit of 4 KiB and 4 MiB pages; INVLPG. */
static void test_paging32_pte_store_body(struct pair *p)
{
	gpa_t pd = new_pd32(p);
	gpa_t d[6];
	for (int i = 0; i < 6; i++) {
		d[i] = new_data(p);
		wr(p, d[i], 0x100 + (uint64_t)i);
	}
	gpa_t e0 = map32(p, pd, 0x400000, d[0], false, (uint32_t)PRWU);
	map32(p, pd, 0x401000, d[1], false, (uint32_t)PRWU);
	gpa_t e511 = map32(p, pd, 0x5ff000, d[2], false, (uint32_t)PRWU);
	gpa_t e512 = map32(p, pd, 0x600000, d[3], false, (uint32_t)PRWU);
	gpa_t e1023 = map32(p, pd, 0x7ff000, d[4], false, (uint32_t)PRWU);
	gpa_t f0 = map32(p, pd, 0x800000, d[5], false, (uint32_t)PRWU);   /* the next table */
	assert_int_equal(e512, e511 + 4);
	assert_int_equal(f0, e1023 + 4);
	gpa_t p255 = map32(p, pd, 0x3fc00000, 0x400000, true, (uint32_t)PRWU);
	gpa_t p256 = map32(p, pd, 0x40000000, 0x400000, true, (uint32_t)(PRWU | AD));
	regs32(p, CR0_BASE | X86_CR0_WP, X86_CR4_PSE, 0, pd);
	assert_int_equal(rd_ok(p, 0x400000), 0x100);
	assert_int_equal(rd_ok(p, 0x401000), 0x101);
	assert_int_equal(rd_ok(p, 0x5ff000), 0x102);
	assert_int_equal(rd_ok(p, 0x600000), 0x103);
	assert_int_equal(rd_ok(p, 0x7ff000), 0x104);
	assert_int_equal(rd_ok(p, 0x800000), 0x105);
	/* The Dirty bit: a read maps read-only, the first write sets D. */
	assert_int_equal(rd32(&p->g[1], e0) & AD, PT_ACCESSED_MASK);
	wr_ok(p, 0x400008, 0x100);
	assert_int_equal(rd32(&p->g[1], e0) & AD, AD);
	rd_ok(p, 0x3fc00000 + 0x300000);
	assert_int_equal(rd32(&p->g[1], p255) & AD, PT_ACCESSED_MASK);
	wr_ok(p, 0x3fc00000 + 0x300008, 0x255);
	assert_int_equal(rd32(&p->g[1], p255) & AD, AD);
	rd_ok(p, 0x40000000 + 0x300008);

	/* A whole PTE: the next frame. */
	struct vmmu_stats s0 = SH(p);
	gstore(p, e0, (uint32_t)(d[5] | PRWU), 4);
	if (EMULATES_PTE_WRITES)
		assert_true(SH(p).mmu_pte_write > s0.mmu_pte_write);
	else    /* the page table's two level-1 sps go unsync together */
		assert_int_equal(SH(p).mmu_unsync - s0.mmu_unsync, 2);
	invlpg(p, 0x400000);
	assert_int_equal(rd_ok(p, 0x400000), 0x105);
	/* One byte: W cleared. */
	gstore(p, e0, P32 | U32 | PT_ACCESSED_MASK, 1);
	invlpg(p, 0x400000);
	assert_int_equal(acc(p, 0x400000, 8, VMMU_ACC_WRITE, 1).r.status, VMMU_ACCESS_PF);
	/* Two bytes: W back. */
	gstore(p, e0, (uint32_t)PRWU | PT_ACCESSED_MASK, 2);
	invlpg(p, 0x400000);
	wr_ok(p, 0x400000, 0x55);
	/* Eight bytes, aligned: entries 0 and 1 swap frames. */
	gstore(p, e0, (uint32_t)(d[1] | PRWU) | ((uint64_t)(uint32_t)(d[0] | PRWU) << 32), 8);
	invlpg(p, 0x400000);
	invlpg(p, 0x401000);
	assert_int_equal(rd_ok(p, 0x400000), 0x101);
	assert_int_equal(rd_ok(p, 0x401000), 0x55);
	/* Eight bytes at e0 + 2: entry 0's high half and entry 1 whole but its top bytes. */
	gstore(p, e0 + 2, (uint64_t)(d[3] >> 16) | ((uint64_t)(uint32_t)(P32 | U32) << 16), 8);
	invlpg(p, 0x400000);
	invlpg(p, 0x401000);
	acc(p, 0x400000, 8, VMMU_ACC_READ, 0);
	acc(p, 0x401000, 8, VMMU_ACC_WRITE, 3);
	/* Entries 511 and 512: both level-1 sps of the table. */
	gstore(p, e511, (uint32_t)(d[3] | PRWU) | ((uint64_t)(uint32_t)(d[2] | PRWU) << 32), 8);
	invlpg(p, 0x5ff000);
	invlpg(p, 0x600000);
	assert_int_equal(rd_ok(p, 0x5ff000), 0x103);
	assert_int_equal(rd_ok(p, 0x600000), 0x102);
	/* Entry 1023 of one table and entry 0 of the next page. */
	gstore(p, e1023, (uint32_t)(d[5] | PRWU) | ((uint64_t)(uint32_t)(d[4] | PRWU) << 32), 8);
	invlpg(p, 0x7ff000);
	invlpg(p, 0x800000);
	assert_int_equal(rd_ok(p, 0x7ff000), 0x105);
	assert_int_equal(rd_ok(p, 0x800000), 0x104);
	/* PDEs 255 and 256 (quadrants 0 and 1): 255 read-only, 256 not present. */
	s0 = SH(p);
	gstore(p, p255, pde4m(0x400000, P32 | U32 | (uint32_t)AD), 8);
	assert_true(SH(p).mmu_pde_zapped > s0.mmu_pde_zapped);
	/* The hardware model caches a 4 MiB page as two 2 MiB entries and INVLPG drops the one
	 * of the address it names (src/cpu/cpu.c): both halves are named. */
	invlpg(p, 0x3fc00000);
	invlpg(p, 0x3fe00000);
	invlpg(p, 0x40000000);
	invlpg(p, 0x40200000);
	struct out o = acc(p, 0x3fc00000 + 0x300008, 8, VMMU_ACC_WRITE, 1);
	assert_int_equal(o.r.status, VMMU_ACCESS_PF);
	assert_int_equal(acc(p, 0x3fc00000 + 0x300008, 8, VMMU_ACC_READ, 0).val, 0x255);
	assert_int_equal(acc(p, 0x40000000 + 0x300008, 8, VMMU_ACC_READ, 0).r.status,
			 VMMU_ACCESS_PF);
	/* PDE 256 back, half by half (two-byte stores), pointing at the high half of DATA. */
	uint32_t v = pde4m(0x400000, (uint32_t)PRWU);
	gstore(p, p256, v & 0xffff, 2);
	gstore(p, p256 + 2, v >> 16, 2);
	invlpg(p, 0x40000000);
	assert_int_equal(rd_ok(p, 0x40000000 + 0x300008), 0x255);
	wr_ok(p, 0x40000000 + 0x3ff000, 0x256);
	/* A PTE turned into a 4 KiB page table entry of another kind: not present. */
	gstore(p, e512, 0, 4);
	invlpg(p, 0x600000);
	assert_int_equal(acc(p, 0x600000, 8, VMMU_ACC_READ, 0).r.status, VMMU_ACCESS_PF);
	same_all(p);
}
BOTH_HOSTS(test_paging32_pte_store)

/* 32-bit paging: CR3 switches between two directories; CR0.WP=0 (supervisor writes to read-only
 * pages, with SMEP, with SMAP: emulated); SMEP/SMAP over every page kind and access kind. */
static void test_paging32_modes_body(struct pair *p)
{
	gpa_t pa = new_pd32(p), pb = new_pd32(p);
	gpa_t da = new_data(p), db = new_data(p);
	map32(p, pa, 0x10000000, da, false, (uint32_t)PRWU);
	map32(p, pb, 0x10000000, db, false, (uint32_t)PRWU);
	wr(p, da, 0xa);
	wr(p, db, 0xb);
	static const uint32_t flags[] = {
		(uint32_t)PRWU, (uint32_t)PRW, P32 | U32, P32,
	};
	const unsigned n = sizeof(flags) / sizeof(flags[0]);
	for (unsigned i = 0; i < n; i++)
		map32(p, pa, 0x400000 + i * 0x1000, new_data(p), false, flags[i]);
	map32(p, pa, 0x800000, 0x400000, true, P32 | U32);       /* a user read-only 4 MiB page */
	regs32(p, CR0_BASE | X86_CR0_WP, X86_CR4_PSE, 0, pa);
	assert_int_equal(rd_ok(p, 0x10000000), 0xa);
	for (int i = 0; i < 4; i++) {
		mov_cr(p, 3, pb);
		assert_int_equal(rd_ok(p, 0x10000000), 0xb);
		wr_ok(p, 0x10000008, (uint64_t)i);
		mov_cr(p, 3, pa);
		assert_int_equal(rd_ok(p, 0x10000000), 0xa);
	}
	/* CR0.WP=0. */
	mov_cr(p, 0, CR0_BASE);
	for (unsigned c = 0; c < 2; c++) {
		cpl(p, c ? 3 : 0, false);
		for (unsigned i = 0; i < n; i++) {
			acc(p, 0x400000 + i * 0x1000, 8, VMMU_ACC_WRITE, 0x10 + i);
			acc(p, 0x400000 + i * 0x1000, 8, VMMU_ACC_READ, 0);
		}
		acc(p, 0x800000 + 0x300000, 8, VMMU_ACC_WRITE, 0x800);
		acc(p, 0x800000 + 0x300000, 8, VMMU_ACC_READ, 0);
	}
	cpl(p, 0, false);
	mov_cr(p, 4, X86_CR4_PSE | X86_CR4_SMEP);
	wr_ok(p, 0x402000, 5);
	assert_int_equal(acc(p, 0x402000, 4, VMMU_ACC_FETCH, 0).r.status, VMMU_ACCESS_PF);
	mov_cr(p, 4, X86_CR4_PSE | X86_CR4_SMEP | X86_CR4_SMAP);
	struct vmmu_stats s0 = SH(p);
	cpl(p, 0, true);
	wr_ok(p, 0x402010, 6);
	assert_true(SH(p).pf_emulate > s0.pf_emulate);
	cpl(p, 0, false);
	assert_int_equal(acc(p, 0x402010, 8, VMMU_ACC_WRITE, 7).r.status, VMMU_ACCESS_PF);
	wr_ok(p, 0x403000, 8);
	mov_cr(p, 0, CR0_BASE | X86_CR0_WP);
	/* SMEP/SMAP with WP on, every kind of access. */
	static const unsigned kinds[] = {
		VMMU_ACC_READ, VMMU_ACC_WRITE, VMMU_ACC_FETCH, VMMU_ACC_READ | VMMU_ACC_IMPLICIT,
		VMMU_ACC_WRITE | VMMU_ACC_IMPLICIT,
	};
	for (unsigned c = 0; c < 4; c++) {
		cpl(p, (c & 1) ? 3 : 0, c & 2);
		for (unsigned i = 0; i < n; i++)
			for (unsigned k = 0; k < 5; k++)
				acc(p, 0x400000 + i * 0x1000, 4, kinds[k], 0x55);
		for (unsigned k = 0; k < 5; k++)
			acc(p, 0x800000 + 0x300000, 4, kinds[k], 0x56);
	}
	cpl(p, 0, false);
	mov_cr(p, 4, X86_CR4_PSE);
	mov_cr(p, 3, pb);
	assert_int_equal(rd_ok(p, 0x10000000), 0xb);
	/* To PAE paging and back to 32-bit, through the same vCPU root pages. */
	gpa_t pdpt = new_table(p);
	pae_map(p, pdpt, 0x10000000, db, 1, PRWU);
	for (gpa_t g = 0; g < MEM; g += 0x200000)
		pae_map(p, pdpt, PAE_WIN + g, g, 2, PRW | AD);
	regs32(p, CR0_BASE | X86_CR0_WP, X86_CR4_PSE | X86_CR4_PAE, 0, pdpt);
	assert_int_equal(rd_ok(p, 0x10000000), 0xb);
	regs32(p, CR0_BASE | X86_CR0_WP, X86_CR4_PSE, 0, pa);
	assert_int_equal(rd_ok(p, 0x10000000), 0xa);
	same_all(p);
}
BOTH_HOSTS(test_paging32_modes)

/* The PAE and 32-bit tests again over 2M host pages: their guests' 2M and 4 MiB pages (a 4 MiB
 * one as two 2M sptes) map large where no table lies inside, against native's outcomes and
 * memory, audited each step (the audit checks each large spte's guest entry, half and frame). */
static void test_large_sptes_legacy(void **state)
{
	void (*const bodies[])(struct pair *) = { test_pae_body, test_paging32_body,
						  test_paging32_modes_body };
	const char *const names[] = { "pae", "paging32", "paging32_modes" };

	cur_hugetlb = VMMU_HUGETLB_2M;
	for (unsigned k = 0; k < sizeof(bodies) / sizeof(bodies[0]); k++) {
		most_2m = 0;
		for (unsigned o = 0; o < 2; o++) {
			cur_opts_off = opt_sets[o];
			for (unsigned h = 0; h < 2; h++) {
				struct pair p;
				pair_init(&p, hosts[h]);
				bodies[k](&p);
				pair_fini(&p);
			}
		}
		print_message("%s over 2M host pages: up to %" PRIu64 " 2M sptes\n", names[k], most_2m);
		assert_true(most_2m > 0);
	}
	cur_opts_off = 0;
	cur_hugetlb = VMMU_HUGETLB_NONE;
}

/*
 * 32-bit paging, randomized (a seeded sequence, the same on both machines): guest stores of 1, 2,
 * 4 and 8 bytes at any alignment into two page directories and a pool of page tables (entries
 * to page tables, to data frames, to the tables themselves, to MMIO, 4 MiB pages in RAM and
 * above 4 GiB, reserved bits, CR4.PSE's PS both ways), accesses of every kind at CPL 0 and 3
 * with and without AC, CR3 switches, CR0.WP/SMEP/SMAP/PSE toggles, INVLPG. The TLB is flushed
 * (MOV CR3) after every store, so the native and the shadow TLBs hold the same translations
 * (the architecture lets them differ only until a flush). Every outcome compared, the audit
 * after every step, memory compared at the end.
 */
static uint64_t rnd_state;
static uint32_t rnd(uint32_t n)
{
	rnd_state = rnd_state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)((rnd_state >> 33) % n);
}

#define HI_VA 0xc0800000ULL     /* PDE 770, after the window */
static void test_paging32_random_body(struct pair *p)
{
	static const unsigned pdes[] = { 0, 1, 2, 255, 256, 257, 511, 512, 767 };
	static const unsigned ptes[] = { 0, 1, 2, 7, 8, 511, 512, 513, 1023 };
	const unsigned npde = sizeof(pdes) / sizeof(pdes[0]), npte = sizeof(ptes) / sizeof(ptes[0]);
	gpa_t pd[2], pt[6], data[12];
	uint64_t hva[2];
	uint32_t cr0 = (uint32_t)(CR0_BASE | X86_CR0_WP), cr4 = X86_CR4_PSE;
	unsigned cur = 0;
	bool logging = false;

	rnd_state = 0x32b17 + cur_opts_off * 7 + p->host;
	pd[0] = new_pd32(p);
	pd[1] = new_pd32(p);
	for (int i = 0; i < 6; i++)
		pt[i] = new_table(p);
	for (int i = 0; i < 12; i++) {
		data[i] = new_data(p);
		wr(p, data[i], 0x1000 + (uint64_t)i);
	}
	new_hva(p, HI_SIZE, hva);
	set_slot(p, 1, 0, HI_GPA, HI_SIZE, hva);
	for (int i = 0; i < 2; i++)
		map32(p, pd[i], HI_VA, HI_GPA, true, (uint32_t)(PRWU | AD));
	regs32(p, cr0, cr4, 0, pd[0]);

	for (unsigned step = 0; step < 1500; step++) {
		unsigned op = rnd(16);
		if (op < 5) {
			/* A store into a table: an entry the guest might write, any width. */
			uint32_t f = rnd(0x80) | (rnd(4) ? P32 : 0), v;
			unsigned k = rnd(10);
			bool in_pd = rnd(3) == 0;
			if (in_pd && k < 4)
				v = (uint32_t)pt[rnd(6)] | f;
			else if (in_pd && k < 7)
				v = pde4m(rnd(2) ? 0x400000 : HI_GPA, f) | (rnd(8) ? 0 : 1u << 21);
			else if (k < 6)
				v = (uint32_t)data[rnd(12)] | f;
			else if (k < 8)   /* a table: a PD only read-only (the window must stay) */
				v = rnd(2) ? (uint32_t)pt[rnd(6)] | f :
					     (uint32_t)pd[rnd(2)] | (f & ~(uint32_t)PT_WRITABLE_MASK);
			else if (k < 9)
				v = (uint32_t)MMIO_GPA | f;
			else
				v = rnd(0xffffffffu) & ~(uint32_t)PT_WRITABLE_MASK;
			unsigned len = 1u << rnd(4);
			gpa_t e = in_pd ? pd[rnd(2)] + pdes[rnd(npde)] * 4 : pt[rnd(6)] + ptes[rnd(npte)] * 4;
			e += rnd(4);
			/* Not past the page, nor into the directory's window entries (768, 769). */
			gpa_t end = in_pd ? (e & ~0xfffULL) + 768 * 4 : (e & ~0xfffULL) + 0x1000;
			if (e + len > end)
				e = end - len;
			uint64_t val = v | ((uint64_t)(rnd(2) ? v : 0) << 32);
			gstore(p, e, val >> (8 * (e & 3)), len);
			mov_cr(p, 3, pd[cur]);
		} else if (op < 12) {
			static const unsigned kinds[] = {
				VMMU_ACC_READ, VMMU_ACC_WRITE, VMMU_ACC_FETCH,
				VMMU_ACC_READ | VMMU_ACC_IMPLICIT, VMMU_ACC_WRITE | VMMU_ACC_IMPLICIT,
			};
			unsigned kind = kinds[rnd(5)];
			uint32_t len = kind == VMMU_ACC_FETCH ? 4 : 1u << rnd(4);
			gva_t va = ((gva_t)pdes[rnd(npde)] << 22) + ((gva_t)ptes[rnd(npte)] << 12) +
				   rnd(0x1000 - len + 1);
			if (!rnd(4))   /* the fixed 4 MiB page above 4 GiB */
				va = HI_VA + ((gva_t)rnd(16) << 12) + rnd(0x1000 - len + 1);
			unsigned c = rnd(2) ? 3 : 0;
			/* With CR0.WP=0 the supervisor writes read-only pages: the tables' read-only
			 * aliases would let it break the window. */
			if ((kind & VMMU_ACC_WRITE) && !(cr0 & X86_CR0_WP)) {
				kind = VMMU_ACC_WRITE;
				c = 3;
			}
			cpl(p, c, rnd(2));
			acc(p, va, len, kind, rnd(0xffffffffu));
			if (kind & VMMU_ACC_WRITE)
				mov_cr(p, 3, pd[cur]);
		} else if (op < 13) {
			cur = rnd(2);
			mov_cr(p, 3, pd[cur]);
		} else if (op < 14) {
			static const uint32_t bits[] = { X86_CR4_SMEP, X86_CR4_SMAP, X86_CR4_PSE };
			cr4 ^= bits[rnd(3)];
			mov_cr(p, 4, cr4);
		} else if (op < 15) {
			cr0 ^= (uint32_t)X86_CR0_WP;
			mov_cr(p, 0, cr0);
		} else if (rnd(2)) {
			invlpg(p, ((gva_t)pdes[rnd(npde)] << 22) + ((gva_t)ptes[rnd(npte)] << 12));
		} else if (!logging) {
			/* Dirty logging of the slot above 4 GiB (the fast page fault's case). */
			set_slot(p, 1, VMMU_MEM_LOG_DIRTY_PAGES, HI_GPA, HI_SIZE, hva);
			logging = true;
		} else {
			uint64_t bm[2][HI_SIZE / 4096 / 64];
			for (int i = 0; i < 2; i++)
				assert_int_equal(vmmu_get_dirty_log(p->g[i].vm, 1, bm[i]), 0);
			assert_memory_equal(bm[0], bm[1], sizeof(bm[0]));
		}
	}
	cpl(p, 0, false);
	same_memory(p, HI_GPA, HI_SIZE);
	same_all(p);
}
BOTH_HOSTS(test_paging32_random)

/* Paging off (a direct root), then on with MOV CR0: the root changes with the mode. */
static void test_paging_off_body(struct pair *p)
{
	gpa_t root = new_root(p);
	map(p, root, 0x400000, DATA, 1, PRWU);
	regs(p, X86_CR0_PE, X86_CR4_PAE, EFER_LME, root);
	wr_ok(p, DATA, 0x5a);
	assert_int_equal(rd_ok(p, DATA), 0x5a);
	acc(p, DATA, 4, VMMU_ACC_FETCH, 0);
	cpl(p, 3, false);
	wr_ok(p, DATA + 8, 0x5b);
	cpl(p, 0, false);
	struct out o = acc(p, MMIO_GPA + 8, 8, VMMU_ACC_READ, 0);
	assert_int_equal(o.r.status, VMMU_ACCESS_MMIO);
	assert_int_equal(o.r.mmio_gpa, MMIO_GPA + 8);
	mov_cr(p, 0, CR0_BASE | X86_CR0_WP);
	assert_int_equal(rd_ok(p, 0x400000), 0x5a);
	same_all(p);
}
BOTH_HOSTS(test_paging_off)

/* A write that crosses from a write-tracked page table into a data page, and one from a page
 * table into another: both parts happen, the tables' sptes follow. */
static void test_split_tracked_write_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t d0 = new_data(p);
	gpa_t pte = map(p, root, 0x400000, d0, 1, PRWU);
	gpa_t pt = pte & ~0xfffULL;
	/* An unused page right after the table in gpa order; the page directory right before. */
	assert_int_equal(p->next_table, pt + 0x1000);
	gpa_t pd = pt - 0x1000;
	regs64(p, root);
	rd_ok(p, 0x400000);
	gstore(p, pt + 0xffc, 0x1122334455667788ULL, 8);     /* table -> data */
	gstore(p, pd + 0xffc, (uint64_t)(uint32_t)(d0 | PRWU | AD) << 32, 8);   /* table -> table */
	invlpg(p, 0x400000);
	rd_ok(p, 0x400000);
	same_all(p);
}
BOTH_HOSTS(test_split_tracked_write)

/* Self-referencing tables (a PML4 entry pointing to the PML4, as a recursive mapping). */
static void test_recursive_body(struct pair *p)
{
	gpa_t root = new_root(p);
	gpa_t pte = map(p, root, 0x400000, new_data(p), 1, PRWU);
	wr(p, root + 8 * 0x1ff, root | PRW);               /* PML4[511] -> PML4 */
	regs64(p, root);
	wr_ok(p, 0x400000, 0x99);
	/* The recursive mapping reads the PTE of 0x400000 at gva 0xffffff8000000000 + ... */
	gva_t self = 0xffffff8000000000ULL | ((0x400000ULL >> 12) << 3);
	uint64_t v = rd_ok(p, self);
	assert_int_equal(v & rsvd_bits(12, 51), rd(&p->g[0], pte) & rsvd_bits(12, 51));
	/* Writing the PTE through the recursive mapping. */
	acc(p, self, 8, VMMU_ACC_WRITE, 0);
	invlpg(p, 0x400000);
	acc(p, 0x400000, 8, VMMU_ACC_READ, 0);
	same_all(p);
}
BOTH_HOSTS(test_recursive)

/*
 * Each optimization lowers the count it targets, with the guest seeing exactly what it sees
 * natively (every access compared, memory and audit at the end). One scenario, run on a VMX host
 * with the option off and on (the others off):
 *  - 32 pages mapped present and Accessed, read once each: prefetch maps the 7 neighbours of
 *    each fault in an aligned group of 8 (pf_fixed 32 -> 4);
 *  - 32 pages mapped not present, touched once each (the guest's demand faults) after a page of
 *    the same table was used: with notrap that fault shadowed their table with truly
 *    non-present sptes for the 32 entries, and the 32 faults reach the guest with no exit;
 *    then the guest maps each by a store into its table (emulated, converting the spte to
 *    trapping) and the access works;
 *  - unsync: the 32 PTE stores above need one exit (the table goes unsync), not 32;
 *  - a dirty-logging slot: pages read, then written (a write to a leaf read-only only for dirty
 *    logging), then, after a harvest, written again: the fast page fault fixes those writes
 *    (pf_fast), the dirty logs equal native's.
 */
static void opt_scenario(struct pair *p)
{
	gpa_t root = new_root(p);
	uint64_t hva[2];
	/* Resident host pages (the VMM wrote them): a prefetch takes only those, as KVM's. */
	for (unsigned i = 0; i < 32; i++) {
		gpa_t d = new_data(p);
		wr(p, d, 0);
		map(p, root, 0x400000 + i * 0x1000, d, 1, PRW | PT_ACCESSED_MASK);
	}
	gpa_t pte0 = 0;
	for (unsigned i = 0; i < 32; i++) {
		gpa_t e = map(p, root, 0x600000 + i * 0x1000, 0, 1, 0);
		if (!i)
			pte0 = e;
	}
	map(p, root, 0x600000 + 32 * 0x1000, new_data(p), 1, PRW);   /* a neighbour in use */
	new_hva(p, SLOT1_SIZE, hva);
	set_slot(p, 1, VMMU_MEM_LOG_DIRTY_PAGES, SLOT1_GPA, SLOT1_SIZE, hva);
	for (unsigned i = 0; i < 16; i++)
		map(p, root, 0x800000 + i * 0x1000, SLOT1_GPA + i * 0x1000, 1, PRW | AD);
	regs64(p, root);

	for (unsigned i = 0; i < 32; i++)
		rd_ok(p, 0x400000 + i * 0x1000);
	rd_ok(p, 0x600000 + 32 * 0x1000);   /* the table's sp, its entries known; the PDE Accessed */
	for (unsigned i = 0; i < 32; i++)
		assert_int_equal(acc(p, 0x600000 + i * 0x1000, 8, VMMU_ACC_READ, 0).r.status,
				 VMMU_ACCESS_PF);
	for (unsigned i = 0; i < 32; i++) {
		gstore(p, pte0 + i * 8, new_data(p) | PRW, 8);
		wr_ok(p, 0x600000 + i * 0x1000, i);
	}
	for (unsigned i = 0; i < 16; i++)
		rd_ok(p, 0x800000 + i * 0x1000);
	for (unsigned i = 0; i < 16; i++)
		wr_ok(p, 0x800000 + i * 0x1000, i + 1);
	uint64_t bm[2][1];
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_get_dirty_log(p->g[i].vm, 1, bm[i]), 0);
	assert_int_equal(bm[0][0], bm[1][0]);
	for (unsigned i = 0; i < 16; i += 2)
		wr_ok(p, 0x800000 + i * 0x1000, i + 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(vmmu_get_dirty_log(p->g[i].vm, 1, bm[i]), 0);
	assert_int_equal(bm[0][0], bm[1][0]);
	assert_int_equal(bm[0][0], 0x5555);
	same_all(p);
}

/*
 * The prefetch's rules (KVM's FNAME(prefetch_gpte)), which its second phase applies to the guest
 * entries it reads under mmu_lock: in the aligned group of 8 around the faulting entry, in
 * order, a neighbour already mapped is skipped and the first one not worth mapping (not
 * Accessed, not present) stops it. Eight pages of one group, entry 3 not Accessed and entry 6 not
 * present, read in order: the read of page 0 maps 1 and 2 (3 stops it); 3 faults (its walk sets
 * A) and maps 4 and 5 (6 stops it); 6 is the guest's fault; 7 faults. Three fixes, where each
 * page alone would be seven, and one less or more if either rule broke. The guest sees what it
 * sees natively.
 */
static void test_prefetch_rules(void **state)
{
	(void)state;
	struct pair p;
	cur_opts_off = VMMU_OPT_NOTRAP | VMMU_OPT_UNSYNC | VMMU_OPT_FASTPF;
	for (int pre = 0; pre < 2; pre++) {
		if (pre)
			cur_opts_off |= VMMU_OPT_PREFETCH;     /* the second round: prefetch off */
		pair_init(&p, VMMU_HOST_VMX);
		gpa_t root = new_root(&p);
		for (unsigned i = 0; i < 8; i++) {
			gpa_t d = new_data(&p);
			wr(&p, d, i);
			uint64_t f = i == 6 ? 0 : i == 3 ? PRW : PRW | PT_ACCESSED_MASK;
			map(&p, root, 0x400000 + i * 0x1000, d, 1, f);
		}
		regs64(&p, root);
		rd_ok(&p, WIN);                  /* the tables' sps, so the count below is leaves */
		uint64_t fixed0 = SH(&p).pf_fixed;
		for (unsigned i = 0; i < 8; i++) {
			if (i == 6)
				assert_int_equal(acc(&p, 0x400000 + i * 0x1000, 8, VMMU_ACC_READ, 0).r.status,
						 VMMU_ACCESS_PF);
			else
				assert_int_equal(rd_ok(&p, 0x400000 + i * 0x1000), i);
		}
		uint64_t fixed = SH(&p).pf_fixed - fixed0;
		print_message("prefetch %s: pf_fixed %" PRIu64 " for 7 pages\n", pre ? "off" : "on",
			      fixed);
		assert_int_equal(fixed, pre ? 7 : 3);
		same_all(&p);
		pair_fini(&p);
	}
	cur_opts_off = 0;
}

/*
 * The audit's change count (shadow_changes: the audit's check that nothing moved under its
 * unlocked phase) is kept in the vCPU while a thread handles its exit (mmu_vcpu.changes, no
 * locked add on the fault path) and folded into the VM's when the vCPU goes: the sum grows with
 * every fault that changes the tables and never goes back.
 */
static void test_changes_counted(void **state)
{
	(void)state;
	struct pair p;
	pair_init(&p, VMMU_HOST_VMX);
	gpa_t root = new_root(&p);
	for (unsigned i = 0; i < 4; i++) {
		gpa_t d = new_data(&p);
		wr(&p, d, i);
		map(&p, root, 0x400000 + i * 0x1000, d, 1, PRW | PT_ACCESSED_MASK);
	}
	regs64(&p, root);
	struct vmmu_vm *vm = p.g[1].vm;
	struct shadow_mmu *sm = to_shadow(vm->mmu);
	uint64_t c0 = shadow_changes(sm), v0 = vm->vcpus[0]->mmu.changes;
	assert_int_equal(rd_ok(&p, 0x400000), 0);      /* a fault: a leaf (and the tables' sps) */
	uint64_t c1 = shadow_changes(sm);
	assert_true(c1 > c0);
	assert_int_equal(vm->vcpus[0]->mmu.changes - v0, c1 - c0);   /* all the vCPU's own */
	assert_int_equal(rd_ok(&p, 0x400000), 0);      /* a TLB hit: no change */
	assert_int_equal(shadow_changes(sm), c1);
	mmu_vcpu_destroy(&vm->vcpus[0]->mmu);
	assert_int_equal(shadow_changes(sm), c1);       /* folded, not lost */
	pair_fini(&p);
}

static struct vmmu_stats opt_run(uint32_t opts_off)
{
	struct pair p;
	cur_opts_off = opts_off;
	pair_init(&p, VMMU_HOST_VMX);
	opt_scenario(&p);
	struct vmmu_stats s = SH(&p);
	pair_fini(&p);
	cur_opts_off = 0;
	return s;
}

static void test_opt_effects(void **state)
{
	const uint32_t all = VMMU_OPT_NOTRAP | VMMU_OPT_UNSYNC | VMMU_OPT_PREFETCH | VMMU_OPT_FASTPF;
	struct vmmu_stats off = opt_run(all);
	struct vmmu_stats pre = opt_run(all & ~VMMU_OPT_PREFETCH);
	struct vmmu_stats nt = opt_run(all & ~VMMU_OPT_NOTRAP);
	struct vmmu_stats fast = opt_run(all & ~VMMU_OPT_FASTPF);
	struct vmmu_stats un = opt_run(all & ~VMMU_OPT_UNSYNC);
	struct vmmu_stats on = opt_run(0);

	print_message("opts off/prefetch/notrap/fastpf/all: pf_fixed %" PRIu64 "/%" PRIu64 "/%" PRIu64
		      "/%" PRIu64 "/%" PRIu64 ", #PF exits %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
		      "/%" PRIu64 ", pf_fast %" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64
		      "\n", off.pf_fixed, pre.pf_fixed, nt.pf_fixed, fast.pf_fixed, on.pf_fixed,
		      off.exits_by_reason[VMMU_EXIT_PF], pre.exits_by_reason[VMMU_EXIT_PF],
		      nt.exits_by_reason[VMMU_EXIT_PF], fast.exits_by_reason[VMMU_EXIT_PF],
		      on.exits_by_reason[VMMU_EXIT_PF], off.pf_fast, pre.pf_fast, nt.pf_fast,
		      fast.pf_fast, on.pf_fast);
	/* prefetch: the 32 present pages fault 4 times instead of 32 (the others as before). */
	assert_true(pre.pf_fixed + 28 <= off.pf_fixed);
	/* notrap: the 32 demand faults reach the guest with no exit. */
	assert_true(nt.exits_by_reason[VMMU_EXIT_PF] + 32 <= off.exits_by_reason[VMMU_EXIT_PF]);
	/* fastpf: the writes to logged pages are fixed by the fast path, and only there. */
	assert_int_equal(off.pf_fast, 0);
	assert_true(fast.pf_fast >= 16 + 8);
	/* As KVM, a fast fix counts as pf_fixed too: the slow path's share drops. */
	assert_true(fast.pf_fixed - fast.pf_fast + 16 <= off.pf_fixed);
	/* unsync: the table goes unsync at the first of the 32 PTE stores, the others need no
	 * exit (none emulated). */
	print_message("unsync: mmu_unsync %" PRIu64 ", pf_emulate %" PRIu64 " (off %" PRIu64 ")\n",
		      un.mmu_unsync, un.pf_emulate, off.pf_emulate);
	assert_true(un.mmu_unsync >= 1 && off.mmu_unsync == 0);
	assert_true(un.pf_emulate + 31 <= off.pf_emulate);
	/* All together: fewer exits than none. */
	assert_true(on.exits + 28 + 32 <= off.exits);
	assert_true(on.pf_fast >= 16 + 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_prefetch_rules),
		cmocka_unit_test(test_changes_counted),
		cmocka_unit_test(test_pte_store_invlpg),
		cmocka_unit_test(test_emulated_access),
		cmocka_unit_test(test_dirty_bit),
		cmocka_unit_test(test_cr0_wp),
		cmocka_unit_test(test_cr0_wp_table),
		cmocka_unit_test(test_pkeys),
		cmocka_unit_test(test_smep_smap_nx),
		cmocka_unit_test(test_mmio),
		cmocka_unit_test(test_memslots),
		cmocka_unit_test(test_gfn_state),
		cmocka_unit_test(test_readonly_slot),
		cmocka_unit_test(test_cr3_switch),
		cmocka_unit_test(test_unsync_roots),
		cmocka_unit_test(test_vmm_write),
		cmocka_unit_test(test_notrap_install),
		cmocka_unit_test(test_recycle),
		cmocka_unit_test(test_evict_order),
		cmocka_unit_test(test_flood),
		cmocka_unit_test(test_misaligned_pte_writes),
		cmocka_unit_test(test_large_pages),
		cmocka_unit_test(test_large_sptes),
		cmocka_unit_test(test_la57),
		cmocka_unit_test(test_pae),
		cmocka_unit_test(test_paging32),
		cmocka_unit_test(test_paging32_pte_store),
		cmocka_unit_test(test_paging32_modes),
		cmocka_unit_test(test_paging32_random),
		cmocka_unit_test(test_paging_off),
		cmocka_unit_test(test_large_sptes_legacy),
		cmocka_unit_test(test_split_tracked_write),
		cmocka_unit_test(test_recursive),
		cmocka_unit_test(test_opt_effects),
	};
	return cmocka_run_group_tests_name("shadow", tests, NULL, NULL);
}
