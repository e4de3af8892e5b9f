/* SPDX-License-Identifier: MIT */
/*
 * The hostile-guest campaign: a random sequence of guest operations runs on four VMs side by side:
 * native (the reference), shadow (VMX or SVM host, a random set of optimizations), EPT and NPT.
 * Every observable must match native's (each access's outcome and value, #PF address and error
 * code, MMIO exits, dirty logs, and all guest memory with its A/D bits at checkpoints), and
 * vmmu_vm_audit() must pass on every MMU after every step. One source, two drivers: `hostile`, a
 * seeded random run (below), and `fuzz_hostile`, a libFuzzer target whose input is the operation
 * sequence (built with -DHOSTILE_FUZZ; LLVMFuzzerTestOneInput at the end).
 *
 * Operations: loads, stores and fetches at CPL 0 and 3 (AC on and off, implicit accesses); guest
 * stores into its page tables through a supervisor window (gva WIN + gpa), of every width and
 * alignment, page-crossing ones included, writing hostile entries (not present, any rights,
 * A/D/G/NX, other tables, the table itself, data pages that later get written as data, large
 * pages aligned or not, MMIO, reserved bits); data stores that land in page tables; CR3 switches
 * between two address spaces; CR0.WP, CR4.SMEP/SMAP changes; INVLPG, INVPCID; memslot delete,
 * re-create, move and dirty-log changes and harvests; munmap of the data slot's backing. Each VM
 * may sit on a host running ksmd (off, on with checksums, or on with use_mmu_dirty, per run):
 * every 16th step runs a pass on each host, merging what the guest made equal, so the guest
 * writes merged pages (COW breaks) and, with use_mmu_dirty, ksmd harvests the MMU's second dirty
 * log beside the user's; the KSM audit (which then also checks each checksum ksmd would reuse)
 * runs with the MMU audits. The host may back guest memory with THPs (per run): the guest's 2M
 * entries over the data slot then get 2M leaves in every MMU (where write tracking, dirty logging
 * and the host page allow), which its stores into those entries, its tables' moves, munmap
 * (a split) and KSM merges (a split) take apart again, and a khugepaged pass every 16th step
 * puts together.
 *
 * The comparison is exact, so every store is followed by a full TLB invalidation (INVPCID
 * all-context, INVLPG of every address used, or a CR3 reload, in turn): the architecture lets a
 * TLB keep a translation the guest changed without invalidating it, and an MMU flushes at other
 * moments than native hardware (it may drop a translation earlier, never keep one later).
 *
 * Usage: hostile [-n STEPS] [-s SEED] [-r RUNS] [-o OPTS_OFF] [-k KSM] [-e EVICT] [-t THP] [-X] [-v]
 *   -n  steps per run (default 2500); -s  first seed (default 1); -r  runs (default 4: the
 *   shadow VM on VMX and SVM hosts in turn, seeds SEED, SEED+1, ...); -o  the optimizations
 *   switched off in the shadow VM (VMMU_OPT_* mask, 0-15; default: a random set per run, drawn
 *   from its seed); -k  ksmd: 0 off, 1 checksums, 2 use_mmu_dirty (default: drawn per run from
 *   its seed); -e  the shadow VM's eviction order at its page limit: 0 lru, 1 fifo (default:
 *   drawn per run from its seed); -t  host THP: 0 never, 1 always (default: drawn per run from
 *   its seed); -X  no access crosses a page (one in 16 does by default);
 *   -v  print each
 *   run's operation and outcome mix. A step is one operation on all four VMs.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paging/paging.h"
#include "vmmu/vmmu.h"

/* A failure ends the process: libFuzzer reports an abort as a crash with its input. */
#ifdef HOSTILE_FUZZ
#define FAIL_EXIT() abort()
#else
#define FAIL_EXIT() exit(1)
#endif

#define TEST_ASSERT(e, ...)                                                                       \
	do {                                                                                      \
		if (!(e)) {                                                                       \
			fprintf(stderr, "hostile: seed %" PRIu64 " step %" PRIu64 ": %s: ",  \
				cur_seed, cur_step, #e);                                          \
			fprintf(stderr, __VA_ARGS__);                                             \
			fprintf(stderr, "\n");                                                    \
			FAIL_EXIT();                                                              \
		}                                                                                 \
	} while (0)

/* Guest physical layout. */
#define MEM0       (4ULL << 20)              /* slot 0: tables */
#define ROOT_A     0x1000ULL
#define ROOT_B     0x2000ULL
#define WIN_PDPT   0x3000ULL
#define WIN_PD     0x4000ULL
#define POOL       0x10000ULL                /* playground tables */
#define POOL_PAGES 64
#define DATA_GPA   0x1000000ULL              /* slot 1: data, 2 MiB, may move */
#define DATA_ALT   0x3000000ULL
#define DATA_SIZE  (2ULL << 20)
#define DATA_PAGES (DATA_SIZE >> 12)
#define MMIO_BASE  0x8000000ULL              /* in no slot */
#define WIN        0xffff800000000000ULL     /* supervisor window onto slot 0 */
#define PLAY       0x8000000000ULL           /* playground: PML4 entries 1 and 2 */
#define NGVA       256                       /* playground pages used */

#define PRW  (PT_PRESENT_MASK | PT_WRITABLE_MASK)
#define PRWU (PRW | PT_USER_MASK)
#define AD   (PT_ACCESSED_MASK | PT_DIRTY_MASK)

static uint64_t cur_seed, cur_step;
static uint32_t cur_opts_off;    /* VMMU_OPT_* off in the shadow VM of this run */
static unsigned cur_ksm;         /* ksmd this run: 0 off, 1 checksums, 2 use_mmu_dirty */
static enum vmmu_mmu_evict cur_evict;   /* the shadow VM's eviction order this run */
static unsigned cur_thp;         /* host THP this run: 0 never, 1 always */
static bool cross_pages = true;
#ifndef HOSTILE_FUZZ
static bool verbose;
#endif

struct gm {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v;
	uint64_t data_hva;
};

/* The machines every operation runs on: native first, the reference. */
enum { M_NATIVE, M_SHADOW, M_EPT, M_NPT, NM };
static const char *const mname[NM] = { "native", "shadow", "ept", "npt" };

struct world {
	struct gm g[NM];
	uint64_t rng;
	gpa_t data_gpa;             /* where slot 1 is (0: deleted) */
	bool logging;
	uint64_t cr0, cr4, cr3;     /* cr3: root | PCID (1 for ROOT_A, 2 for ROOT_B with PCIDE) */
	bool pcid;                  /* CR4.PCIDE this run: CR3 switches may keep the TLB */
	unsigned flush_kind;
	gva_t gva[NGVA];
	uint64_t ops[16];
	uint64_t outcomes[5];       /* accesses by VMMU_ACCESS_*; [4]: failed, -EFAULT (munmapped) */
	gpa_t path_gpa[NGVA][4];    /* the initial tree's entries translating gva[i], for repairs */
	uint64_t path_val[NGVA][4];
};

/* The fuzzer's input, once the world is built: every decision is read from it (8 bytes a value,
 * 2 a choice), so a mutation changes operations, not a seed; the run ends where it ends. */
static const uint8_t *in_data;
static size_t in_len, in_pos;
static bool from_input, in_done;

static uint64_t take(unsigned n)
{
	uint64_t v = 0;

	if (in_pos + n > in_len) {
		in_done = true;
		return 0;
	}
	memcpy(&v, in_data + in_pos, n);
	in_pos += n;
	return v;
}

static uint64_t rnd(struct world *w)
{
	if (from_input)
		return take(8);
	/* splitmix64 */
	uint64_t z = (w->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static unsigned below(struct world *w, unsigned n)
{
	return (unsigned)((from_input ? take(2) : rnd(w)) % n);
}

static void audit(struct world *w)
{
	char why[512];

	for (int i = M_SHADOW; i < NM; i++) {
		int rc = vmmu_vm_audit(w->g[i].vm, why, sizeof(why));
		TEST_ASSERT(rc == 0, "%s audit %d: %s", mname[i], rc, why);
	}
	for (int i = 0; i < NM && cur_ksm; i++) {
		int rc = vmmu_ksm_audit(vmmu_vm_machine(w->g[i].vm), why, sizeof(why));
		TEST_ASSERT(rc == 0, "%s KSM audit %d: %s", mname[i], rc, why);
	}
}

/* Each VM's own host (vmmu_vm_create made one per VM) runs ksmd: merged pages differ from VM to
 * VM, which the guests must never see. No random draw: a seed's operations stay its own. */
static void ksm_init(struct world *w)
{
	for (int i = 0; i < NM && cur_ksm; i++) {
		struct vmmu_machine *m = vmmu_vm_machine(w->g[i].vm);

		TEST_ASSERT(vmmu_vm_set_mergeable(w->g[i].vm, true) == 0, "mergeable");
		TEST_ASSERT(vmmu_ksm_set_params(m, "pages_to_scan=300,sleep_millisecs=0",
						NULL, 0) == 0, "ksm params");
		TEST_ASSERT(vmmu_ksm_set_param(m, "use_zero_pages", cur_seed & 1) == 0, "zero pages");
		TEST_ASSERT(vmmu_ksm_set_param(m, "use_mmu_dirty", cur_ksm == 2) == 0, "mmu dirty");
	}
}

static void ksm_pass(struct world *w)
{
	for (int i = 0; i < NM && cur_ksm; i++)
		TEST_ASSERT(vmmu_ksm_run(vmmu_vm_machine(w->g[i].vm), 0, NULL) >= 0, "ksmd pass");
}

/* With host THP, khugepaged too: what munmap and KSM split, it collapses again (every range at
 * each pass), so large leaves come and go all run long. */
static void khugepaged_init(struct world *w)
{
	for (int i = 0; i < NM && cur_thp; i++)
		TEST_ASSERT(vmmu_khugepaged_set_params(vmmu_vm_machine(w->g[i].vm),
						       "pages_to_scan=4096,scan_sleep_millisecs=0",
						       NULL, 0) == 0, "khugepaged params");
}

static void khugepaged_pass(struct world *w)
{
	for (int i = 0; i < NM && cur_thp; i++)
		TEST_ASSERT(vmmu_khugepaged_run(vmmu_vm_machine(w->g[i].vm), cur_step, NULL) >= 0,
			    "khugepaged pass");
}

/* ---- setup ---- */

static void put(struct world *w, gpa_t gpa, uint64_t v)
{
	for (int i = 0; i < NM; i++)
		TEST_ASSERT(vmmu_write_guest(w->g[i].vm, gpa, &v, 8) == 0, "initial write %#" PRIx64, gpa);
}

static void slot1(struct world *w, gpa_t gpa, uint32_t flags, bool fresh)
{
	for (int i = 0; i < NM; i++) {
		struct gm *g = &w->g[i];
		if (fresh)
			TEST_ASSERT(vmmu_vm_mmap(g->vm, DATA_SIZE, false, &g->data_hva) == 0, "mmap");
		struct vmmu_userspace_memory_region r = { .slot = 1, .flags = flags,
							  .guest_phys_addr = gpa,
							  .memory_size = gpa ? DATA_SIZE : 0,
							  .userspace_addr = g->data_hva };
		int rc = vmmu_set_user_memory_region(g->vm, &r);
		TEST_ASSERT(rc == 0, "slot 1 -> %#" PRIx64 " flags %u: %d", gpa, flags, rc);
	}
	w->data_gpa = gpa;
	w->logging = gpa && (flags & VMMU_MEM_LOG_DIRTY_PAGES);
}

static void gm_init(struct gm *g, enum vmmu_mmu mode, enum vmmu_host host)
{
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30, .mmu = mode, .host = host,
				      .opts_off = cur_opts_off, .mmu_evict = cur_evict,
				      .thp = cur_thp ? 2 : 0 };
	uint64_t hva;

	TEST_ASSERT(vmmu_vm_create(&cfg, &g->vm) == 0, "vm create");
	TEST_ASSERT(vmmu_vm_mmap(g->vm, MEM0, false, &hva) == 0, "mmap");
	struct vmmu_userspace_memory_region r = { .slot = 0, .memory_size = MEM0,
						  .userspace_addr = hva };
	TEST_ASSERT(vmmu_set_user_memory_region(g->vm, &r) == 0, "slot 0");
	TEST_ASSERT(vmmu_vcpu_create(g->vm, 0, &g->v) == 0, "vcpu");
}

static gpa_t data_page(struct world *w, unsigned i)
{
	return (w->data_gpa ? w->data_gpa : DATA_GPA) + ((gpa_t)(i % DATA_PAGES) << 12);
}

/*
 * Both roots map the window (PML4[256]) and the playground (PML4[1], PML4[2]), through a tree of
 * pool tables: PML4[k] -> PDPT, PDPT[0..3] -> PD, PD[0..3] -> PT, PT[0..7] -> data pages.
 * Root B shares root A's second subtree, so one table change shows in both spaces.
 */
static void build(struct world *w)
{
	unsigned next = 0;

	put(w, WIN_PDPT, WIN_PD | PRW | AD);
	for (unsigned i = 0; i < NM; i++)
		put(w, WIN_PD + 8 * i, ((gpa_t)i << 21) | PRW | AD | PT_PAGE_SIZE_MASK);
	put(w, ROOT_A + 8 * 256, WIN_PDPT | PRW | AD);
	put(w, ROOT_B + 8 * 256, WIN_PDPT | PRW | AD);
	for (unsigned k = 0; k < 3; k++) {
		gpa_t pdpt = POOL + ((gpa_t)next++ << 12);
		for (unsigned a = 0; a < 4; a++) {
			gpa_t pd = POOL + ((gpa_t)next++ << 12);
			put(w, pdpt + 8 * a, pd | PRWU);
			for (unsigned b = 0; b < 4; b++) {
				gpa_t pt = POOL + ((gpa_t)next++ << 12);
				put(w, pd + 8 * b, pt | PRWU);
				for (unsigned c = 0; c < 8; c++)
					put(w, pt + 8 * c, data_page(w, below(w, DATA_PAGES)) | PRWU);
			}
		}
		if (k == 0)
			put(w, ROOT_A + 8, pdpt | PRWU);
		else if (k == 1)
			put(w, ROOT_B + 8, pdpt | PRWU);
		else {
			put(w, ROOT_A + 16, pdpt | PRWU);
			put(w, ROOT_B + 16, pdpt | PRWU);
		}
	}
	for (unsigned i = 0; i < NGVA; i++) {
		unsigned k = 1 + (i >> 7), a = (i >> 5) & 3, b = (i >> 3) & 3, c = i & 7;
		w->gva[i] = ((gva_t)k << 39) | ((gva_t)a << 30) | ((gva_t)b << 21) | ((gva_t)c << 12);
		/* Its path in root A, as built. */
		gpa_t t = ROOT_A;
		const unsigned idx[4] = { k, a, b, c };
		for (unsigned l = 0; l < 4; l++) {
			gpa_t e = t + 8 * idx[l];
			uint64_t v;
			TEST_ASSERT(vmmu_read_guest(w->g[0].vm, e, &v, 8) == 0, "read tree");
			w->path_gpa[i][l] = e;
			w->path_val[i][l] = v;
			t = v & rsvd_bits(12, 51);
		}
	}
}

static void world_init(struct world *w, enum vmmu_host host, uint64_t seed)
{
	memset(w, 0, sizeof(*w));
	w->rng = seed;
	gm_init(&w->g[M_NATIVE], VMMU_MMU_NATIVE, host);
	gm_init(&w->g[M_SHADOW], VMMU_MMU_SHADOW, host);
	gm_init(&w->g[M_EPT], VMMU_MMU_EPT, VMMU_HOST_VMX);
	gm_init(&w->g[M_NPT], VMMU_MMU_NPT, VMMU_HOST_SVM);
	slot1(w, DATA_GPA, 0, true);
	build(w);
	w->cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP;
	/* Half the runs with PCIDs, drawn from the seed. */
	w->pcid = rnd(w) & 1;
	w->cr4 = X86_CR4_PAE | (w->pcid ? X86_CR4_PCIDE : 0);
	w->cr3 = ROOT_A | (w->pcid ? 1 : 0);
	struct vmmu_regs r = { .cr0 = w->cr0, .cr3 = w->cr3, .cr4 = w->cr4,
			       .efer = EFER_LME | EFER_LMA | EFER_NXE };
	for (int i = 0; i < NM; i++)
		TEST_ASSERT(vmmu_vcpu_set_regs(w->g[i].v, &r) == 0, "set_regs");
	ksm_init(w);
	khugepaged_init(w);
}

static void world_fini(struct world *w)
{
	for (int i = 0; i < NM; i++)
		vmmu_vm_destroy(w->g[i].vm);
}

/* ---- operations ---- */

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
	if (!(kind & VMMU_ACC_WRITE) && len < 8)
		o.val &= (1ULL << (8 * len)) - 1;
	return o;
}

static void same(const struct out *a, const struct out *b, int m, const char *what, gva_t gva,
		 uint32_t len, unsigned kind)
{
	bool ok = a->rc == b->rc && a->r.status == b->r.status && a->r.done == b->r.done;
	if (ok) {
		switch (a->r.status) {
		case VMMU_ACCESS_DONE:
			ok = (kind & VMMU_ACC_WRITE) || a->val == b->val;
			break;
		case VMMU_ACCESS_PF:
			ok = a->r.pf_ec == b->r.pf_ec && a->r.pf_addr == b->r.pf_addr;
			break;
		case VMMU_ACCESS_MMIO:
			ok = a->r.mmio_gpa == b->r.mmio_gpa && a->r.mmio_len == b->r.mmio_len &&
			     a->r.mmio_write == b->r.mmio_write &&
			     (!a->r.mmio_write || a->r.mmio_data == b->r.mmio_data);
			break;
		case VMMU_ACCESS_GP:
			break;
		}
	}
	TEST_ASSERT(ok, "%s %#" PRIx64 " len %u kind %u: native rc %d st %d ec %#x addr %#" PRIx64
		    " mmio %#" PRIx64 " val %#" PRIx64 " / %s rc %d st %d ec %#x addr %#" PRIx64
		    " mmio %#" PRIx64 " val %#" PRIx64, what, gva, len, kind, a->rc, a->r.status,
		    a->r.pf_ec, a->r.pf_addr, a->r.mmio_gpa, a->val, mname[m], b->rc, b->r.status, b->r.pf_ec,
		    b->r.pf_addr, b->r.mmio_gpa, b->val);
}

/* The access on every machine, each outcome the native one; returns the shadow's. */
static struct out both(struct world *w, const char *what, gva_t gva, uint32_t len, unsigned kind,
		       uint64_t val)
{
	struct out a = one(&w->g[M_NATIVE], gva, len, kind, val), sh = a;

	for (int m = M_SHADOW; m < NM; m++) {
		struct out b = one(&w->g[m], gva, len, kind, val);

		if (m == M_SHADOW)
			sh = b;
		same(&a, &b, m, what, gva, len, kind);
	}
	return sh;
}

static void set_cpl(struct world *w, unsigned cpl, bool ac)
{
	for (int i = 0; i < NM; i++)
		TEST_ASSERT(vmmu_vcpu_set_cpl(w->g[i].v, cpl, ac) == 0, "set_cpl");
}

static void mov_cr(struct world *w, int cr, uint64_t v)
{
	for (int i = 0; i < NM; i++) {
		int rc = vmmu_vcpu_mov_cr(w->g[i].v, cr, v);
		TEST_ASSERT(rc == 0, "mov cr%d, %#" PRIx64 ": %d", cr, v, rc);
	}
}

/* The PCID the other address space runs with (PCIDE). */
static uint16_t other_pcid(const struct world *w)
{
	return (w->cr3 & 0xfff) == 1 ? 2 : 1;
}

/* Every translation the guest may have changed goes, in one of three architectural ways (with
 * PCIDs, INVLPG and a CR3 load reach the current PCID only: the other one is invalidated too). */
static void full_flush(struct world *w)
{
	switch (w->flush_kind++ % 3) {
	case 0:
		for (int i = 0; i < NM; i++)
			TEST_ASSERT(vmmu_vcpu_invpcid(w->g[i].v, 2, 0, 0) == 0, "invpcid");
		break;
	case 1:
		for (unsigned k = 0; k < NGVA; k++)
			for (int i = 0; i < NM; i++) {
				TEST_ASSERT(vmmu_vcpu_invlpg(w->g[i].v, w->gva[k]) == 0, "invlpg");
				TEST_ASSERT(!w->pcid || vmmu_vcpu_invpcid(w->g[i].v, 0, other_pcid(w),
									  w->gva[k]) == 0,
					    "invpcid 0");
			}
		break;
	case 2:
		mov_cr(w, 3, w->cr3);
		for (int i = 0; w->pcid && i < NM; i++)
			TEST_ASSERT(vmmu_vcpu_invpcid(w->g[i].v, 1, other_pcid(w), 0) == 0, "invpcid 1");
		break;
	}
}

/* A value for a table entry: anything a hostile or buggy guest may write. */
static uint64_t gen_entry(struct world *w)
{
	uint64_t flags = (rnd(w) & (PT_WRITABLE_MASK | PT_USER_MASK | PT_PWT_MASK | PT_PCD_MASK |
				    PT_ACCESSED_MASK | PT_DIRTY_MASK | PT_GLOBAL_MASK));
	if (below(w, 10))
		flags |= PT_PRESENT_MASK;
	if (!below(w, 4))
		flags |= PT64_NX_MASK;
	if (below(w, 3))
		flags |= PT_USER_MASK | PT_WRITABLE_MASK;     /* mostly usable */
	switch (below(w, 20)) {
	case 0:
		return 0;
	case 1:
		return rnd(w);
	case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9: case 10:
		return (POOL + ((gpa_t)below(w, POOL_PAGES) << 12)) | flags;
	case 11: case 12: case 13:
		return data_page(w, below(w, DATA_PAGES)) | flags;
	case 14:
		/* A 2M page over the data slot (aligned), or misaligned (reserved bits). */
		return (below(w, 2) ? DATA_GPA : data_page(w, below(w, DATA_PAGES))) |
		       flags | PT_PAGE_SIZE_MASK;
	case 15:
		/* A 1G page over everything below 1 GiB, read-only: tables seen as data. */
		return (flags & ~PT_WRITABLE_MASK) | PT_PAGE_SIZE_MASK;
	case 16:
		return (MMIO_BASE + ((gpa_t)below(w, 16) << 12)) | flags;
	case 17:
	{
		gpa_t t = POOL + ((gpa_t)below(w, POOL_PAGES) << 12);
		return t | flags | (1ULL << (46 + below(w, 6)));
	}
	case 18:
		return ROOT_A | flags;                           /* a root as a lower table */
	default:
		return (POOL + ((gpa_t)below(w, POOL_PAGES) << 12)) | flags | PT_PAGE_SIZE_MASK;
	}
}

/* A well-formed entry for pool page @idx at the level it has in the initial tree (a kernel
 * remapping, changing rights, aging, making a page table of a data page). */
static uint64_t sane_entry(struct world *w, unsigned idx)
{
	unsigned pos = idx % 21;     /* 0: PDPT, then PD, PT x4 (see build) */
	uint64_t f = PT_PRESENT_MASK | (rnd(w) & (PT_WRITABLE_MASK | PT_USER_MASK | AD));
	if (below(w, 4))
		f |= PT_WRITABLE_MASK | PT_USER_MASK;
	if (!below(w, 6))
		f |= PT64_NX_MASK;
	if (idx >= 63 || !below(w, 12))
		return below(w, 2) ? 0 : data_page(w, below(w, DATA_PAGES)) | f;
	/* One call per statement: the order of two calls inside an expression is unspecified, and
	 * the sequence must not depend on the compiler. */
	if (pos == 0) {           /* PDPT: a PD of the pool */
		unsigned a = below(w, 4);
		unsigned k = below(w, 3);
		return (POOL + ((gpa_t)(1 + 5 * a + 21 * k) << 12)) | f;
	}
	if ((pos - 1) % 5 == 0) { /* PD: a PT of the pool, a 2M page, or a data page as PT */
		switch (below(w, 8)) {
		case 0: return DATA_GPA | f | PT_PAGE_SIZE_MASK;
		case 1: return data_page(w, below(w, DATA_PAGES)) | f;
		default: {
			unsigned a = below(w, 4);
			unsigned b = below(w, 4);
			unsigned k = below(w, 3);
			return (POOL + ((gpa_t)(2 + 5 * a + b + 21 * k) << 12)) | f;
		}
		}
	}
	return data_page(w, below(w, DATA_PAGES)) | f;   /* PT: a data page */
}

/* A guest store into a table: a pool page anywhere, or a root's playground entries. */
static void op_table_store(struct world *w)
{
	gpa_t page, gpa;
	uint32_t len;
	uint64_t v = gen_entry(w);

	if (below(w, 8)) {
		unsigned idx = below(w, POOL_PAGES);
		page = POOL + ((gpa_t)idx << 12);
		gpa = page + 8 * below(w, 8);        /* the entries the playground uses */
		if (!below(w, 8))
			gpa = page + 8 * below(w, 512);
		if (below(w, 3))
			v = sane_entry(w, idx);
	} else {
		page = below(w, 2) ? ROOT_A : ROOT_B;
		gpa = page + 8 * (1 + below(w, 2));
	}
	switch (below(w, 8)) {
	case 0:
		len = 4;
		gpa += 4 * below(w, 2);
		v = below(w, 2) ? (v & 0xffffffff) : (v >> 32);
		break;
	case 1:
		len = 1;
		gpa += below(w, 8);
		v &= 0xff;
		break;
	case 2:
		len = 8;
		gpa += 1 + below(w, 7);      /* straddles two entries (or the page end) */
		break;
	case 3:
		len = 2;
		gpa += 2 * below(w, 4);
		break;
	default:
		len = 8;
		break;
	}
	if (page == ROOT_A || page == ROOT_B) {
		/* Stay inside the playground entries of a root. */
		gpa = page + 8 * (1 + below(w, 2));
		len = 8;
	}
	set_cpl(w, 0, false);
	both(w, "table store", WIN + gpa, len, VMMU_ACC_WRITE, v);
	full_flush(w);
}

/* The guest kernel puts back entries of its initial tree (so the playground keeps working
 * translations among the hostile ones). */
static void op_repair(struct world *w)
{
	set_cpl(w, 0, false);
	for (unsigned i = 0; i < 8; i++) {
		unsigned k = below(w, NGVA);
		for (unsigned l = 0; l < 4; l++)
			both(w, "repair", WIN + w->path_gpa[k][l], 8, VMMU_ACC_WRITE, w->path_val[k][l]);
	}
	full_flush(w);
}

static void op_access(struct world *w)
{
	static const uint32_t lens[] = { 1, 2, 4, 8 };
	static const unsigned kinds[] = { VMMU_ACC_READ, VMMU_ACC_READ, VMMU_ACC_WRITE,
					  VMMU_ACC_WRITE, VMMU_ACC_FETCH };
	uint32_t len = lens[below(w, 4)];
	unsigned kind = kinds[below(w, 5)];
	gva_t gva = w->gva[below(w, NGVA)];
	uint32_t off = cross_pages && !below(w, 16) ? 4096 - below(w, len) - 1 :
		       below(w, 4096 - len + 1);
	uint64_t v = rnd(w);

	if (!below(w, 10) && kind != VMMU_ACC_FETCH)
		kind |= VMMU_ACC_IMPLICIT;
	if (!below(w, 4))   /* a value that reads as a table entry where this page is a table */
		v = gen_entry(w);
	unsigned cpl = below(w, 2) ? 3 : 0;
	bool ac = below(w, 2);
	set_cpl(w, cpl, ac);
	struct out o = both(w, "access", gva + off, len, kind, v);
	w->outcomes[o.rc == -EFAULT ? 4 : o.r.status & 3]++;
	if (kind & VMMU_ACC_WRITE)
		full_flush(w);
}

static void op_cr3(struct world *w)
{
	bool to_b = (w->cr3 & ~0xfffULL) == ROOT_A;

	w->cr3 = (to_b ? ROOT_B : ROOT_A) | (w->pcid ? (to_b ? 2 : 1) : 0);
	/* With PCIDs, half the switches keep the TLB (the no-flush bit): every entry cached is
	 * still right, since every change of a table was followed by a full flush. */
	mov_cr(w, 3, w->cr3 | (w->pcid && below(w, 2) ? 1ULL << 63 : 0));
}

static void op_cr0_cr4(struct world *w)
{
	if (below(w, 2)) {
		w->cr0 ^= X86_CR0_WP;
		mov_cr(w, 0, w->cr0);
	} else {
		w->cr4 ^= below(w, 2) ? X86_CR4_SMEP : X86_CR4_SMAP;
		mov_cr(w, 4, w->cr4);
	}
}

static void op_invalidate(struct world *w)
{
	gva_t gva = w->gva[below(w, NGVA)];
	gva += below(w, 4096);
	for (int i = 0; i < NM; i++) {
		if (below(w, 2))
			TEST_ASSERT(vmmu_vcpu_invlpg(w->g[i].v, gva) == 0, "invlpg");
		else
			TEST_ASSERT(vmmu_vcpu_invpcid(w->g[i].v, 0, 0, gva) == 0, "invpcid 0");
	}
}

/*
 * Every page native logged must be in each MMU's log (a page missing is a migration that loses
 * data). Shadow logs exactly what native does. EPT with A/D bits may log more: the hardware
 * treats its reads of guest paging structures as writes for EPT A/D (SDM 29.3.5), so a page the
 * hostile guest uses as a table is logged when walked, as on real KVM with PML; counted.
 */
static uint64_t extra_dirty;

static void compare_dirty_logs(struct world *w)
{
	uint64_t bm[NM][DATA_PAGES / 64];
	for (int i = 0; i < NM; i++)
		TEST_ASSERT(vmmu_get_dirty_log(w->g[i].vm, 1, bm[i]) == 0, "dirty log");
	for (int m = M_SHADOW; m < NM; m++)
		for (unsigned k = 0; k < DATA_PAGES / 64; k++) {
			TEST_ASSERT((bm[0][k] & ~bm[m][k]) == 0 && (m != M_SHADOW || bm[0][k] == bm[m][k]),
				    "dirty log word %u: native %#" PRIx64 " %s %#" PRIx64, k, bm[0][k],
				    mname[m], bm[m][k]);
			extra_dirty += (uint64_t)__builtin_popcountll(bm[m][k] & ~bm[0][k]);
		}
}

static void op_memslot(struct world *w)
{
	unsigned what = below(w, 6);

	if (!w->data_gpa) {
		slot1(w, DATA_GPA, 0, true);         /* re-created: new, zeroed memory */
		return;
	}
	switch (what) {
	case 0:
		slot1(w, 0, 0, false);               /* delete */
		break;
	case 1:
		slot1(w, w->data_gpa == DATA_GPA ? DATA_ALT : DATA_GPA,
		      w->logging ? VMMU_MEM_LOG_DIRTY_PAGES : 0, false);   /* move */
		break;
	case 2:
	case 3:
		slot1(w, w->data_gpa, w->logging ? 0 : VMMU_MEM_LOG_DIRTY_PAGES, false);
		break;
	default:
		if (w->logging)
			compare_dirty_logs(w);
		break;
	}
}

static void op_munmap(struct world *w)
{
	uint64_t off = (uint64_t)below(w, DATA_PAGES / 4) << 14;
	for (int i = 0; i < NM; i++)
		TEST_ASSERT(vmmu_vm_munmap(w->g[i].vm, w->g[i].data_hva + off, 0x4000) == 0, "munmap");
}

static void compare_memory(struct world *w)
{
	static uint8_t a[MEM0], b[MEM0];
	const gpa_t start[2] = { 0, w->data_gpa };
	const uint64_t len[2] = { MEM0, w->data_gpa ? DATA_SIZE : 0 };

	for (int s = 0; s < 2; s++) {
		if (!len[s])
			continue;
		int ra = vmmu_read_guest(w->g[0].vm, start[s], a, len[s]);
		for (int m = M_SHADOW; m < NM; m++) {
			int rb = vmmu_read_guest(w->g[m].vm, start[s], b, len[s]);
			TEST_ASSERT(ra == rb, "read_guest native %d / %s %d", ra, mname[m], rb);
			if (ra)
				continue;    /* munmapped pages: every machine fails */
			for (uint64_t i = 0; i < len[s]; i += 8)
				TEST_ASSERT(!memcmp(a + i, b + i, 8), "memory at gpa %#" PRIx64
					    " differs: native / %s", start[s] + i, mname[m]);
		}
	}
}

static void step(struct world *w)
{
	unsigned r = below(w, 1000);
	unsigned op;

	if (r < 600)
		op = 0;
	else if (r < 780)
		op = 1;
	else if (r < 830)
		op = 2;
	else if (r < 860)
		op = 3;
	else if (r < 910)
		op = 4;
	else if (r < 935)
		op = 5;
	else if (r < 942)
		op = 6;
	else if (r < 950)
		op = 7;
	else
		op = 8;
	w->ops[op]++;
	switch (op) {
	case 0: op_access(w); break;
	case 1: op_table_store(w); break;
	case 2: op_cr3(w); break;
	case 3: op_cr0_cr4(w); break;
	case 4: op_invalidate(w); break;
	case 5: op_memslot(w); break;
	case 6: if (w->data_gpa) op_munmap(w); break;
	case 7: compare_memory(w); break;
	default: op_repair(w); break;
	}
	if (cur_step % 16 == 0)
		ksm_pass(w);
	if (cur_step % 16 == 8)
		khugepaged_pass(w);
	audit(w);
}

#ifndef HOSTILE_FUZZ
static uint64_t total_steps;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	uint64_t steps = 2500, seed = 1, runs = 4;
	int64_t opts_off = -1, ksm = -1, evict = -1, thp = -1;
	int opt;

	while ((opt = getopt(argc, argv, "n:s:r:o:k:e:t:Xv")) != -1) {
		switch (opt) {
		case 'o': opts_off = (int64_t)(strtoull(optarg, NULL, 0) & 15); break;
		case 'k': ksm = (int64_t)(strtoull(optarg, NULL, 0) % 3); break;
		case 'e': evict = (int64_t)(strtoull(optarg, NULL, 0) & 1); break;
		case 't': thp = (int64_t)(strtoull(optarg, NULL, 0) & 1); break;
		case 'n': steps = strtoull(optarg, NULL, 0); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'r': runs = strtoull(optarg, NULL, 0); break;
		case 'X': cross_pages = false; break;
		case 'v': verbose = true; break;
		default:
			fprintf(stderr, "usage: hostile [-n STEPS] [-s SEED] [-r RUNS] [-o OPTS_OFF] "
				"[-k KSM] [-e EVICT] [-t THP] [-X] [-v]\n");
			return 2;
		}
	}
	for (uint64_t run = 0; run < runs; run++) {
		struct world w;
		enum vmmu_host host = run % 2 ? VMMU_HOST_SVM : VMMU_HOST_VMX;
		double t0 = now();

		cur_seed = seed + run;
		cur_step = 0;
		/* A random option set per run (the seed's), unless -o fixed one. */
		cur_opts_off = opts_off >= 0 ? (uint32_t)opts_off
					     : (uint32_t)((cur_seed * 0x9e3779b97f4a7c15ULL) >> 60);
		cur_ksm = ksm >= 0 ? (unsigned)ksm
				   : (unsigned)(((cur_seed * 0xd1b54a32d192ed03ULL) >> 32) % 3);
		cur_evict = evict >= 0 ? (enum vmmu_mmu_evict)evict
				       : (enum vmmu_mmu_evict)((cur_seed * 0xbf58476d1ce4e5b9ULL) >> 63);
		cur_thp = thp >= 0 ? (unsigned)thp : (unsigned)((cur_seed * 0x94d049bb133111ebULL) >> 63);
		world_init(&w, host, cur_seed);
		uint64_t max_2m = 0;
		for (cur_step = 1; cur_step <= steps; cur_step++) {
			step(&w);
			struct vmmu_stats st;
			vmmu_vm_get_stats(w.g[M_SHADOW].vm, &st);
			max_2m = st.pages_2m > max_2m ? st.pages_2m : max_2m;
		}
		total_steps += cur_step - 1;
		compare_memory(&w);
		struct vmmu_stats s;
		vmmu_vm_get_stats(w.g[1].vm, &s);
		printf("hostile: seed %" PRIu64 " %s opts_off %#x ksm %u %s thp %u: %" PRIu64 " steps in %.2f s: "
		       "pf_taken %" PRIu64
		       " pf_fixed %" PRIu64 " pf_emulate %" PRIu64 " pf_guest %" PRIu64
		       " mmio_sptes %" PRIu64 " pte_write %" PRIu64 " pde_zapped %" PRIu64
		       " flooded %" PRIu64 " recycled %" PRIu64 " zapped %" PRIu64 " unsync %" PRIu64
		       " pf_fast %" PRIu64 " ksm_merges %" PRIu64 " cow_breaks %" PRIu64
		       " mmu_harvests %" PRIu64 " 2M leaves (most) %" PRIu64 " THPs %" PRIu64 "+%" PRIu64
		       " (faults+collapses)\n",
		       cur_seed, host == VMMU_HOST_VMX ? "vmx" : "svm", cur_opts_off, cur_ksm,
		       cur_evict == VMMU_EVICT_FIFO ? "fifo" : "lru", cur_thp, steps,
		       now() - t0,
		       s.pf_taken,
		       s.pf_fixed, s.pf_emulate, s.pf_guest, s.pf_mmio_spte_created, s.mmu_pte_write,
		       s.mmu_pde_zapped, s.mmu_flooded, s.mmu_recycled, s.mmu_shadow_zapped,
		       s.mmu_unsync, s.pf_fast, s.ksm_merges, s.ksm_cow_breaks, s.ksm_mmu_harvests,
		       max_2m, s.thp_fault_alloc, s.thp_collapse_alloc);
		if (verbose)
			printf("  ops: access %" PRIu64 " table %" PRIu64 " cr3 %" PRIu64 " cr0/4 %" PRIu64
			       " inv %" PRIu64 " memslot %" PRIu64 " munmap %" PRIu64 " compare %" PRIu64
			       " repair %" PRIu64 "\n", w.ops[0], w.ops[1], w.ops[2], w.ops[3], w.ops[4],
			       w.ops[5], w.ops[6], w.ops[7], w.ops[8]);
		if (verbose)
			printf("  accesses: done %" PRIu64 " pf %" PRIu64 " mmio %" PRIu64 " gp %" PRIu64
			       " efault %" PRIu64 "\n", w.outcomes[0], w.outcomes[1], w.outcomes[2],
			       w.outcomes[3], w.outcomes[4]);
		world_fini(&w);
	}
	printf("hostile: %" PRIu64 " runs, %" PRIu64 " steps on 4 VMs (native, shadow, ept, npt): 0 "
	       "disagreements, 0 audit failures; %" PRIu64
	       " pages logged dirty beyond native's (EPT/NPT walks of guest tables)\n", runs,
	       total_steps, extra_dirty);
	return 0;
}
#else

/* The libFuzzer target: byte 0 picks the shadow VM's host (bit 0), its optimizations off
 * (bits 1-4) and ksmd (bits 5-7, mod 3; host THP when the quotient is odd), byte 1 the seed of
 * the initial tables (bits 0-6) and the eviction order (bit 7); the rest is the operations. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct world w;

	if (size < 2)
		return 0;
	cur_opts_off = (data[0] >> 1) & 15;
	cur_ksm = (unsigned)(data[0] >> 5) % 3;
	cur_thp = (unsigned)(data[0] >> 5) / 3 % 2;
	cur_evict = (enum vmmu_mmu_evict)(data[1] >> 7);
	cur_seed = data[1] & 0x7f;
	cur_step = 0;
	from_input = false;
	world_init(&w, data[0] & 1 ? VMMU_HOST_SVM : VMMU_HOST_VMX, cur_seed);
	in_data = data + 2;
	in_len = size - 2;
	in_pos = 0;
	in_done = false;
	from_input = true;
	for (cur_step = 1; cur_step <= 4000 && !in_done; cur_step++)
		step(&w);
	from_input = false;
	compare_memory(&w);
	world_fini(&w);
	return 0;
}
#endif
