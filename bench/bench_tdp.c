/* SPDX-License-Identifier: MIT */
/*
 * Hard-MMU benchmark (EPT or NPT), host time, through the public API only.
 *
 *   fault    first touch (one 8-byte write) of N pages, then the same writes again with a cold
 *            TLB, under the hard MMU and, as the baseline measured in the same run, in native
 *            mode. First touch minus the warm pass removes the walks (24 references against 4)
 *            and leaves the host page fault (both modes) plus, under the hard MMU, the exit, its
 *            handler and the re-walk: the difference of the two, divided by the exits taken, is
 *            the host ns per EPT violation / NPF handled. Walk references per TLB miss of the
 *            first touch are printed for both (4K host pages, and THP with -t).
 *   dirty    a slot of S MiB logging dirty pages, every page written, then KVM_GET_DIRTY_LOG
 *            (harvest + write-protect again + remote flush): pages/s, against the same harvest in
 *            native mode (the bitmap alone, nothing to protect) as the baseline; and the re-dirty
 *            pass (every write a fast page fault) in ns per page against native's logged writes.
 * The VMM writes the data pages before the guest runs, so host page faults (the arena's real
 * kernel page faults dominate them) stay out of the figures; -H leaves them in. Each figure is
 * the best of R rounds on a fresh VM; the cost per exit is the median of the rounds' own figures.
 * Usage: bench_tdp [-m ept|npt] [-n PAGES] [-s DIRTY_MIB] [-r ROUNDS] [-t] [-H]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paging/paging.h"
#include "vmmu/vmmu.h"

#define TABLES 0x100000ULL       /* guest page tables: slot 0, [1 MiB, 1 MiB + tables) */
#define DATA   0x40000000ULL     /* guest data: slot 1 at 1 GiB, identity-mapped gva = gpa */
#define F      (PT_PRESENT_MASK | PT_WRITABLE_MASK)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noreturn)) static void die(const char *what)
{
	fprintf(stderr, "bench_tdp: %s failed\n", what);
	exit(1);
}

struct vmx {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v;
	uint64_t pages;
	uint64_t data_hva;
};

/* A VM in @mode with @pages of data at DATA (slot 1, @flags), identity-mapped by the guest with
 * 4K pages (or 2M pages with @guest_2m), tables in slot 0. */
static void vm_make(struct vmx *x, enum vmmu_mmu mode, int thp, uint64_t pages, uint32_t flags,
		    bool guest_2m)
{
	struct vmmu_vm_config cfg = { .mmu = mode, .thp = thp,
		.host = mode == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX };
	const uint64_t npt = guest_2m ? 0 : (pages + 511) / 512;     /* 4K page tables */
	const uint64_t npd = (pages + 512 * 512 - 1) / (512 * 512);  /* page directories */
	const uint64_t tables = (3 + npd + npt) * 4096;
	const uint64_t slot0 = (TABLES + tables + (2 << 20) - 1) & ~((2ULL << 20) - 1);
	uint64_t hva0, e[512];

	x->pages = pages;
	if (vmmu_vm_create(&cfg, &x->vm))
		die("vm create");
	if (vmmu_vm_mmap(x->vm, slot0, thp == 2, &hva0) ||
	    vmmu_vm_mmap(x->vm, pages * 4096, thp == 2, &x->data_hva))
		die("mmap");
	struct vmmu_userspace_memory_region r0 = { .slot = 0, .memory_size = slot0,
						    .userspace_addr = hva0 };
	struct vmmu_userspace_memory_region r1 = { .slot = 1, .flags = flags,
		.guest_phys_addr = DATA, .memory_size = pages * 4096, .userspace_addr = x->data_hva };
	if (vmmu_set_user_memory_region(x->vm, &r0) || vmmu_set_user_memory_region(x->vm, &r1))
		die("memslot");

	/* PML4 at TABLES, PDPT next, then the PDs, then the PTs; whole table pages at a time. */
	const uint64_t pml4 = TABLES, pdpt = TABLES + 4096, pd0 = TABLES + 8192,
		       pt0 = pd0 + npd * 4096;
	memset(e, 0, sizeof(e));
	e[0] = pdpt | F;
	if (vmmu_write_guest(x->vm, pml4, e, 4096))
		die("guest write");
	memset(e, 0, sizeof(e));
	for (uint64_t d = 0; d < npd; d++)
		e[(DATA >> 30) + d] = (pd0 + d * 4096) | F;
	if (vmmu_write_guest(x->vm, pdpt, e, 4096))
		die("guest write");
	for (uint64_t d = 0; d < npd; d++) {
		memset(e, 0, sizeof(e));
		for (uint64_t i = 0; i < 512 && (d * 512 + i) * 512 < pages; i++) {
			uint64_t n = d * 512 + i;
			e[i] = guest_2m ? (DATA + n * (2ULL << 20)) | F | PT_PAGE_SIZE_MASK
					: (pt0 + n * 4096) | F;
		}
		if (vmmu_write_guest(x->vm, pd0 + d * 4096, e, 4096))
			die("guest write");
	}
	for (uint64_t t = 0; t < npt; t++) {
		memset(e, 0, sizeof(e));
		for (uint64_t i = 0; i < 512 && t * 512 + i < pages; i++)
			e[i] = (DATA + (t * 512 + i) * 4096) | F;
		if (vmmu_write_guest(x->vm, pt0 + t * 4096, e, 4096))
			die("guest write");
	}
	if (vmmu_vcpu_create(x->vm, 0, &x->v))
		die("vcpu create");
	struct vmmu_regs regs = { .cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = TABLES,
				  .cr4 = X86_CR4_PAE, .efer = EFER_LME | EFER_LMA | EFER_NXE };
	if (vmmu_vcpu_set_regs(x->v, &regs))
		die("set regs");
}

static void write_all(struct vmx *x, uint64_t val)
{
	struct vmmu_access_result r;

	for (uint64_t i = 0; i < x->pages; i++) {
		uint64_t v = val + i;
		if (vmmu_vcpu_access(x->v, DATA + i * 4096, 8, VMMU_ACC_WRITE, &v, &r) ||
		    r.status != VMMU_ACCESS_DONE)
			die("guest access");
	}
}

static struct vmmu_stats stats(struct vmx *x)
{
	struct vmmu_stats s;
	if (vmmu_vm_get_stats(x->vm, &s))
		die("stats");
	return s;
}

struct fault_fig {
	double first_ns;        /* per page, first touch */
	double again_ns;        /* per page, the same writes again with a cold TLB */
	double refs_per_miss;   /* over the first touch */
	uint64_t violations, pages_2m;
};

static struct fault_fig fault_run(enum vmmu_mmu mode, int thp, uint64_t pages, bool host_faults)
{
	static const uint8_t zero[4096];
	struct fault_fig f;
	struct vmx x;
	double t0, t1;

	vm_make(&x, mode, thp, pages, 0, false);
	/* The VMM touches the memory first (host pages faulted in), unless asked not to. */
	for (uint64_t i = 0; !host_faults && i < pages; i++)
		if (vmmu_write_guest(x.vm, DATA + i * 4096, zero, sizeof(zero)))
			die("guest write");
	struct vmmu_stats s0 = stats(&x);
	t0 = now();
	write_all(&x, 1);
	t1 = now();
	f.first_ns = (t1 - t0) * 1e9 / (double)pages;
	struct vmmu_stats s1 = stats(&x);
	f.refs_per_miss = (double)(s1.walk_refs - s0.walk_refs) /
			  (double)(s1.tlb_misses - s0.tlb_misses);
	f.violations = s1.exits_by_reason[VMMU_EXIT_EPT_VIOLATION] +
		       s1.exits_by_reason[VMMU_EXIT_NPF] -
		       s0.exits_by_reason[VMMU_EXIT_EPT_VIOLATION] - s0.exits_by_reason[VMMU_EXIT_NPF];
	f.pages_2m = s1.pages_2m;
	/* The same walks again on tables already filled: no exit, no host fault. */
	if (vmmu_vcpu_mov_cr(x.v, 3, TABLES))
		die("mov cr3");
	t0 = now();
	write_all(&x, 2);
	f.again_ns = (now() - t0) * 1e9 / (double)pages;
	vmmu_vm_destroy(x.vm);
	return f;
}

struct dirty_fig {
	double harvest_s;       /* one KVM_GET_DIRTY_LOG of a fully dirty slot */
	double redirty_ns;      /* per page, writing every page again after a harvest */
	uint64_t reported;
};

static struct dirty_fig dirty_run(enum vmmu_mmu mode, uint64_t pages)
{
	uint64_t *bm = calloc((pages + 63) / 64, sizeof(*bm));
	struct dirty_fig d = { 1e30, 1e30, 0 };
	struct vmx x;

	if (!bm)
		die("malloc");
	vm_make(&x, mode, 0, pages, VMMU_MEM_LOG_DIRTY_PAGES, true);
	write_all(&x, 0);                               /* mappings made, every page dirty */
	for (int round = 0; round < 3; round++) {
		double t0 = now();
		if (vmmu_get_dirty_log(x.vm, 1, bm))
			die("get dirty log");
		double t1 = now();
		if (t1 - t0 < d.harvest_s)
			d.harvest_s = t1 - t0;
		d.reported = 0;
		for (uint64_t w = 0; w < (pages + 63) / 64; w++)
			d.reported += (uint64_t)__builtin_popcountll(bm[w]);
		t0 = now();
		write_all(&x, (uint64_t)round << 32);   /* each write re-dirties a protected page */
		t1 = now();
		if ((t1 - t0) * 1e9 / (double)pages < d.redirty_ns)
			d.redirty_ns = (t1 - t0) * 1e9 / (double)pages;
	}
	vmmu_vm_destroy(x.vm);
	free(bm);
	return d;
}

int main(int argc, char **argv)
{
	enum vmmu_mmu mode = VMMU_MMU_EPT;
	long pages = 65536, dirty_mib = 1024, rounds = 3;
	bool thp = false, host_faults = false;
	int opt;

	while ((opt = getopt(argc, argv, "m:n:s:r:tH")) != -1) {
		if (opt == 'm' && (!strcmp(optarg, "ept") || !strcmp(optarg, "npt")))
			mode = !strcmp(optarg, "ept") ? VMMU_MMU_EPT : VMMU_MMU_NPT;
		else if (opt == 'n' && atol(optarg) > 0)
			pages = atol(optarg);
		else if (opt == 's' && atol(optarg) >= 0)
			dirty_mib = atol(optarg);
		else if (opt == 'r' && atol(optarg) > 0)
			rounds = atol(optarg);
		else if (opt == 't')
			thp = true;
		else if (opt == 'H')
			host_faults = true;
		else {
			fprintf(stderr, "usage: bench_tdp [-m ept|npt] [-n PAGES] [-s DIRTY_MIB] "
				"[-r ROUNDS] [-t] [-H]\n");
			return 2;
		}
	}
	const char *mname = mode == VMMU_MMU_EPT ? "ept" : "npt";

	printf("fault: first touch of %ld pages, host %s pages %s, best of %ld\n", pages,
	       thp ? "THP (2M)" : "4K", host_faults ? "faulted in by the touch" : "faulted in before",
	       rounds);
	struct fault_fig fb = { 1e30, 1e30, 0, 0, 0 }, fm = fb;
	double *per_exit = calloc((size_t)rounds, sizeof(*per_exit));
	if (!per_exit)
		die("malloc");
	for (long r = 0; r < rounds; r++) {
		struct fault_fig a = fault_run(VMMU_MMU_NATIVE, thp ? 2 : 0, (uint64_t)pages, host_faults);
		struct fault_fig b = fault_run(mode, thp ? 2 : 0, (uint64_t)pages, host_faults);
		/* First touch minus the warm pass leaves the host page fault (both modes) and the
		 * exit with its handler and re-walk (hard MMU only): the difference of the two, per
		 * exit, paired within the round. */
		double extra = (b.first_ns - b.again_ns) - (a.first_ns - a.again_ns);
		per_exit[r] = b.violations ? extra * (double)pages / (double)b.violations : 0.0;
		for (long i = r; i > 0 && per_exit[i] < per_exit[i - 1]; i--) {
			double tmp = per_exit[i];
			per_exit[i] = per_exit[i - 1];
			per_exit[i - 1] = tmp;
		}
		if (a.first_ns < fb.first_ns)
			fb.first_ns = a.first_ns;
		if (b.first_ns < fm.first_ns)
			fm.first_ns = b.first_ns;
		if (a.again_ns < fb.again_ns)
			fb.again_ns = a.again_ns;
		if (b.again_ns < fm.again_ns)
			fm.again_ns = b.again_ns;
		fb.refs_per_miss = a.refs_per_miss;
		fm.refs_per_miss = b.refs_per_miss;
		fm.violations = b.violations;
		fm.pages_2m = b.pages_2m;
	}
	printf("  %-8s first %7.0f ns/page  again %7.0f ns/page  %6.2f refs/miss\n", "native",
	       fb.first_ns, fb.again_ns, fb.refs_per_miss);
	printf("  %-8s first %7.0f ns/page  again %7.0f ns/page  %6.2f refs/miss  %llu exits  "
	       "%llu 2M leaves\n", mname, fm.first_ns, fm.again_ns, fm.refs_per_miss,
	       (unsigned long long)fm.violations, (unsigned long long)fm.pages_2m);
	printf("  ratio %s/native first touch %.2f; %.0f host ns per %s handled (exit, handler, "
	       "re-walk; median of %ld, range %.0f-%.0f)\n", mname, fm.first_ns / fb.first_ns,
	       per_exit[rounds / 2], mode == VMMU_MMU_EPT ? "EPT violation" : "NPF", rounds,
	       per_exit[0], per_exit[rounds - 1]);
	free(per_exit);

	if (!dirty_mib)
		return 0;
	const uint64_t dpages = (uint64_t)dirty_mib << 8;
	printf("dirty: a %ld MiB slot (%llu pages), all dirty, guest 2M pages, best of %ld\n",
	       dirty_mib, (unsigned long long)dpages, rounds);
	struct dirty_fig db = { 1e30, 1e30, 0 }, dm = { 1e30, 1e30, 0 };
	for (long r = 0; r < rounds; r++) {
		struct dirty_fig a = dirty_run(VMMU_MMU_NATIVE, dpages);
		struct dirty_fig b = dirty_run(mode, dpages);
		if (a.harvest_s < db.harvest_s)
			db = a;
		if (b.harvest_s < dm.harvest_s)
			dm = b;
		if (a.reported != dpages || b.reported != dpages)
			die("a harvest missed pages");
	}
	printf("  %-8s harvest %8.2f ms  %8.1f M pages/s   re-dirty %6.0f ns/page\n", "native",
	       db.harvest_s * 1e3, (double)dpages / db.harvest_s / 1e6, db.redirty_ns);
	printf("  %-8s harvest %8.2f ms  %8.1f M pages/s   re-dirty %6.0f ns/page (fast page faults)\n",
	       mname, dm.harvest_s * 1e3, (double)dpages / dm.harvest_s / 1e6, dm.redirty_ns);
	printf("  ratio %s/native: harvest time %.2f, re-dirty %.2f\n", mname,
	       dm.harvest_s / db.harvest_s, dm.redirty_ns / db.redirty_ns);
	return 0;
}
