/* SPDX-License-Identifier: MIT */
/*
 * Soft-MMU benchmark (shadow paging, VMX or SVM host), host time, through the public API.
 *
 *   fault     first touch (one 8-byte write) of N pages, then the same writes again with a cold
 *             TLB, under the soft MMU and, as the baseline measured in the same run, natively.
 *             First touch minus the warm pass leaves, natively, the guest A/D updates and, under
 *             the soft MMU, the #PF exit, its handler (guest walk, shadow pages for new tables,
 *             the leaf) and the re-walk: that difference divided by the faults handled is the
 *             host ns per handled shadow page fault. A second variant reads every page before
 *             writing it (two faults a page: the D-bit rule).
 *   patterns  exits per 1,000 guest accesses (natively always 0): a first sequential pass, a
 *             second one, random reads over a warm set, a kernel remapping pages (a PTE store,
 *             INVLPG, an access: mmap/munmap churn), and address-space switches (MOV CR3).
 *   workloads every workload of the guest model (vmmu_run) natively and under the soft MMU:
 *             host seconds, exits per 1,000 accesses, faults fixed and writes emulated, the
 *             extra host ns per exit, and whether guest.digest matches.
 * The VMM writes the data pages before the guest runs, so host page faults stay out of "fault".
 * Each figure is the best of R rounds on fresh VMs. "first round" is the handled #PF of the
 * variant's first round; in the first row that is the process's first, where the MMU's own
 * metadata (shadow pages, per-gfn state) is memory new to the process, as in a VM's first run.
 * Usage: bench_shadow [-h vmx|svm] [-n PAGES] [-r ROUNDS] [-t LACKEY_TRACE] [-q] [-f]
 *   -q  quick: smaller workloads (for a smoke run)
 *   -f  the fault figures only (-q and -t then do nothing)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paging/paging.h"
#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

#define TABLES 0x100000ULL       /* guest page tables: slot 0 */
#define DATA   0x40000000ULL     /* guest data: slot 1 at 1 GiB, identity-mapped gva = gpa */
#define WIN    0xffff800000000000ULL   /* supervisor window onto the tables (gva WIN + gpa) */
#define F      (PT_PRESENT_MASK | PT_WRITABLE_MASK)

static enum vmmu_host host = VMMU_HOST_VMX;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noreturn)) static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_shadow: %s failed (%d)\n", what, rc);
	exit(1);
}

#define CHECK(e, what)                                                                            \
	do {                                                                                      \
		int rc_ = (e);                                                                    \
		if (rc_)                                                                          \
			die(what, rc_);                                                           \
	} while (0)

struct machine {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v;
	uint64_t pages;
	gpa_t roots[8];
	unsigned nroots;
};

static void put(struct machine *m, gpa_t gpa, uint64_t v)
{
	CHECK(vmmu_write_guest(m->vm, gpa, &v, 8), "guest write");
}

/* Identity-map [DATA, DATA + pages * 4K) and the window onto the tables in @nroots address spaces
 * (sharing every table below the root); data pages are written first (host faults out). */
static void machine_make(struct machine *m, enum vmmu_mmu mode, uint64_t pages, unsigned nroots)
{
	struct vmmu_vm_config cfg = { .mmu = mode, .host = host, .host_mem_bytes = 4ULL << 30 };
	uint64_t npt = (pages + 511) / 512, npd = (npt + 511) / 512;
	uint64_t tables_size = (16 + npd + npt) * 4096ULL;
	uint64_t hva;

	memset(m, 0, sizeof(*m));
	m->pages = pages;
	m->nroots = nroots;
	CHECK(vmmu_vm_create(&cfg, &m->vm), "vm create");
	tables_size = (tables_size + TABLES + 0x1fffff) & ~0x1fffffULL;
	CHECK(vmmu_vm_mmap(m->vm, tables_size, false, &hva), "mmap");
	struct vmmu_userspace_memory_region r0 = { .slot = 0, .memory_size = tables_size,
						   .userspace_addr = hva };
	CHECK(vmmu_set_user_memory_region(m->vm, &r0), "slot 0");
	CHECK(vmmu_vm_mmap(m->vm, pages * 4096, false, &hva), "mmap");
	struct vmmu_userspace_memory_region r1 = { .slot = 1, .guest_phys_addr = DATA,
						   .memory_size = pages * 4096,
						   .userspace_addr = hva };
	CHECK(vmmu_set_user_memory_region(m->vm, &r1), "slot 1");
	for (uint64_t i = 0; i < pages; i++)
		put(m, DATA + i * 4096, i);
	CHECK(vmmu_vcpu_create(m->vm, 0, &m->v), "vcpu");

	gpa_t t = TABLES;
	gpa_t pdpt = t, wpdpt = t + 0x1000, wpd = t + 0x2000;
	t += 0x3000;
	for (unsigned k = 0; k < nroots; k++) {
		m->roots[k] = t;
		put(m, t, pdpt | F);
		put(m, t + 8 * 256, wpdpt | F);
		t += 0x1000;
	}
	put(m, wpdpt, wpd | F);
	for (uint64_t g = 0; g < tables_size; g += 0x200000)
		put(m, wpd + (g >> 21) * 8, g | F | PT_PAGE_SIZE_MASK | PT_ACCESSED_MASK | PT_DIRTY_MASK);
	gpa_t pds = t;
	t += npd * 4096;
	for (uint64_t d = 0; d < npd; d++)
		put(m, pdpt + ((DATA >> 30) + d) * 8, (pds + d * 4096) | F);
	for (uint64_t p = 0; p < npt; p++) {
		put(m, pds + p * 8, (t + p * 4096) | F);
		for (uint64_t i = 0; i < 512 && p * 512 + i < pages; i++)
			put(m, t + p * 4096 + i * 8, (DATA + (p * 512 + i) * 4096) | F);
	}
	struct vmmu_regs regs = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = m->roots[0], .cr4 = X86_CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	CHECK(vmmu_vcpu_set_regs(m->v, &regs), "set_regs");
}

static void access(struct machine *m, gva_t gva, unsigned kind, uint64_t *v)
{
	struct vmmu_access_result res;
	CHECK(vmmu_vcpu_access(m->v, gva, 8, kind, v, &res), "access");
	if (res.status != VMMU_ACCESS_DONE)
		die("access outcome", (int)res.status);
}

static struct vmmu_stats stats(struct machine *m)
{
	struct vmmu_stats s;
	CHECK(vmmu_vm_get_stats(m->vm, &s), "stats");
	return s;
}

/* The gpa of the PTE that maps data page @i. */
static gpa_t pte_of(const struct machine *m, uint64_t i)
{
	uint64_t npt = (m->pages + 511) / 512, npd = (npt + 511) / 512;
	gpa_t pts = TABLES + 0x3000 + m->nroots * 0x1000ULL + npd * 4096;
	return pts + i * 8;
}

/* ---- fault ---- */

struct fault_fig {
	double first, warm;     /* seconds */
	uint64_t faults;        /* shadow: #PF exits handled */
};

static struct fault_fig fault_round(enum vmmu_mmu mode, uint64_t pages, bool read_first)
{
	struct machine m;
	struct fault_fig f = { 0 };
	uint64_t v = 1;

	machine_make(&m, mode, pages, 1);
	struct vmmu_stats s0 = stats(&m);
	double t0 = now();
	for (uint64_t i = 0; i < pages; i++) {
		if (read_first)
			access(&m, DATA + i * 4096, VMMU_ACC_READ, &v);
		access(&m, DATA + i * 4096, VMMU_ACC_WRITE, &v);
	}
	f.first = now() - t0;
	f.faults = stats(&m).pf_taken - s0.pf_taken;
	CHECK(vmmu_vcpu_invpcid(m.v, 2, 0, 0), "invpcid");
	t0 = now();
	for (uint64_t i = 0; i < pages; i++) {
		if (read_first)
			access(&m, DATA + i * 4096, VMMU_ACC_READ, &v);
		access(&m, DATA + i * 4096, VMMU_ACC_WRITE, &v);
	}
	f.warm = now() - t0;
	vmmu_vm_destroy(m.vm);
	return f;
}

static struct fault_fig fault_best(enum vmmu_mmu mode, uint64_t pages, bool read_first,
				   unsigned rounds, struct fault_fig *first)
{
	struct fault_fig best = fault_round(mode, pages, read_first);
	if (first)
		*first = best;
	for (unsigned r = 1; r < rounds; r++) {
		struct fault_fig f = fault_round(mode, pages, read_first);
		if (f.first - f.warm < best.first - best.warm)
			best = f;
	}
	return best;
}

static void bench_fault(uint64_t pages, unsigned rounds)
{
	printf("fault: first touch of %" PRIu64 " pages (%" PRIu64 " MiB), best of %u\n", pages,
	       pages >> 8, rounds);
	printf("  %-26s %12s %12s %12s %12s %14s %14s\n", "", "native ns/pg", "shadow ns/pg",
	       "ratio", "faults/pg", "ns/shadow #PF", "first round");
	for (int rf = 0; rf < 2; rf++) {
		/* Shadow first: in the first row its first round is the process's first, and meets the
		 * memory for the MMU's metadata new, as a VM's first run does (a native round before it
		 * would leave freed heap memory for it to reuse). */
		struct fault_fig s1;
		struct fault_fig s = fault_best(VMMU_MMU_SHADOW, pages, rf, rounds, &s1);
		struct fault_fig n = fault_best(VMMU_MMU_NATIVE, pages, rf, rounds, NULL);
		double per_fault = ((s.first - s.warm) - (n.first - n.warm)) * 1e9 /
				   (double)(s.faults ? s.faults : 1);
		/* Later rounds reuse the metadata memory the earlier ones freed. */
		double first_round = ((s1.first - s1.warm) - (n.first - n.warm)) * 1e9 /
				     (double)(s1.faults ? s1.faults : 1);
		printf("  %-26s %12.0f %12.0f %12.2f %12.2f %14.0f %14.0f\n",
		       rf ? "read, then write, a page" : "write a page", n.first * 1e9 / pages,
		       s.first * 1e9 / pages, s.first / n.first, (double)s.faults / pages, per_fault,
		       first_round);
	}
}

/* ---- patterns ---- */

struct pattern_fig {
	uint64_t accesses, exits;
	double seconds;
};

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* One pattern on a fresh machine; @warm: the pages were touched once before (not counted). */
static struct pattern_fig pattern_run(enum vmmu_mmu mode, const char *name, uint64_t pages)
{
	struct machine m;
	struct pattern_fig f = { 0 };
	uint64_t v = 0, seed = 88172645463325252ULL, acc = 0;
	const bool remap = !strcmp(name, "remap"), cr3 = !strcmp(name, "cr3-switch");

	machine_make(&m, mode, pages, cr3 ? 4 : 1);
	if (strcmp(name, "seq-first"))
		for (uint64_t i = 0; i < pages; i++)
			access(&m, DATA + i * 4096, VMMU_ACC_WRITE, &v);
	struct vmmu_stats s0 = stats(&m);
	double t0 = now();
	if (!strcmp(name, "seq-first") || !strcmp(name, "seq-warm")) {
		/* Every 8-byte word of every page: 512 accesses a page. */
		for (uint64_t i = 0; i < pages; i++)
			for (uint64_t w = 0; w < 512; w++, acc++)
				access(&m, DATA + i * 4096 + w * 8, VMMU_ACC_READ, &v);
	} else if (!strcmp(name, "random")) {
		for (uint64_t k = 0; k < 4 * pages * 16; k++, acc++)
			access(&m, DATA + (xs(&seed) % pages) * 4096 + (k & 511) * 8, VMMU_ACC_READ, &v);
	} else if (remap) {
		/* A kernel remapping page i to frame j, flushing, and using it 64 times. */
		for (uint64_t k = 0; k < pages; k++) {
			uint64_t i = xs(&seed) % pages, j = xs(&seed) % pages;
			uint64_t pte = (DATA + j * 4096) | F;
			access(&m, WIN + pte_of(&m, i), VMMU_ACC_WRITE, &pte);
			CHECK(vmmu_vcpu_invlpg(m.v, DATA + i * 4096), "invlpg");
			acc++;
			for (unsigned u = 0; u < 64; u++, acc++)
				access(&m, DATA + i * 4096 + u * 8, VMMU_ACC_WRITE, &v);
		}
	} else if (cr3) {
		/* Four processes sharing the data, switched every 256 accesses. */
		for (uint64_t k = 0; k < 4 * pages * 16; k++, acc++) {
			if ((k & 255) == 0)
				CHECK(vmmu_vcpu_mov_cr(m.v, 3, m.roots[(k >> 8) & 3]), "mov cr3");
			access(&m, DATA + (xs(&seed) % pages) * 4096, VMMU_ACC_READ, &v);
		}
	}
	f.seconds = now() - t0;
	f.accesses = acc;
	f.exits = stats(&m).exits - s0.exits;
	vmmu_vm_destroy(m.vm);
	return f;
}

static void bench_patterns(uint64_t pages)
{
	static const char *const names[] = { "seq-first", "seq-warm", "random", "remap",
					     "cr3-switch" };
	printf("patterns: exits per 1,000 guest accesses over %" PRIu64 " pages\n", pages);
	printf("  %-12s %12s %12s %12s %14s %14s\n", "", "accesses", "native", "shadow",
	       "native ns/acc", "shadow ns/acc");
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		struct pattern_fig n = pattern_run(VMMU_MMU_NATIVE, names[i], pages);
		struct pattern_fig s = pattern_run(VMMU_MMU_SHADOW, names[i], pages);
		printf("  %-12s %12" PRIu64 " %12.2f %12.2f %14.1f %14.1f\n", names[i], s.accesses,
		       1000.0 * (double)n.exits / (double)n.accesses,
		       1000.0 * (double)s.exits / (double)s.accesses,
		       n.seconds * 1e9 / (double)n.accesses, s.seconds * 1e9 / (double)s.accesses);
	}
}

/* ---- workloads ---- */

static int run_workload(const char *name, const char *const *kv, unsigned nkv, enum vmmu_mmu mode,
			struct vmmu_guest_result *res)
{
	struct vmmu_workload_args a;
	struct vmmu_guest_config cfg = { .vm = { .mmu = mode, .host = host }, .seed = 1 };
	char err[256];
	int rc = vmmu_workload_args(name, kv, nkv, &a, err, sizeof(err));

	if (!rc)
		rc = vmmu_run(&cfg, &a, res, err, sizeof(err));
	if (rc)
		fprintf(stderr, "bench_shadow: %s: %s\n", name, err);
	return rc;
}

static void bench_workloads(const char *trace, bool quick)
{
	struct wl {
		const char *name;
		const char *kv[2];
		const char *quick_kv[2];
	};
	const struct wl wls[] = {
		{ "touch", { NULL }, { "size=16M" } },
		{ "gups", { NULL }, { "updates=200000" } },
		{ "fork", { NULL }, { "iters=20" } },
		{ "ctxsw", { NULL }, { "rounds=2000" } },
		{ "mmap", { NULL }, { "iters=200" } },
		{ "clone-vms", { NULL }, { "size=8M" } },
		{ "trace", { NULL }, { NULL } },
	};
	printf("workloads (default parameters%s, seed 1): native against shadow\n",
	       quick ? ", smaller with -q" : "");
	printf("  %-10s %9s %8s %8s %10s %7s %7s %7s %9s %9s %8s %7s\n", "", "accesses", "native s",
	       "shadow s", "exits/1000", "#PF", "CR3", "INVLPG", "pf_fixed", "emulated", "ns/exit",
	       "digest");
	for (unsigned i = 0; i < sizeof(wls) / sizeof(wls[0]); i++) {
		const char *kv[2] = { 0 };
		unsigned n = 0;
		char file[1100];
		const char *const *src = quick ? wls[i].quick_kv : wls[i].kv;
		if (!strcmp(wls[i].name, "trace")) {
			if (!trace)
				continue;
			snprintf(file, sizeof(file), "file=%s", trace);
			kv[n++] = file;
		}
		for (unsigned k = 0; k < 2 && src[k]; k++)
			kv[n++] = src[k];
		struct vmmu_guest_result nr, sr;
		if (run_workload(wls[i].name, kv, n, VMMU_MMU_NATIVE, &nr) ||
		    run_workload(wls[i].name, kv, n, VMMU_MMU_SHADOW, &sr))
			continue;
		uint64_t ex = sr.stats.exits;
		double per = 1000.0 / (double)(sr.accesses ? sr.accesses : 1);
		printf("  %-10s %9" PRIu64 " %8.3f %8.3f %10.2f %7.1f %7.1f %7.1f %9" PRIu64 " %9" PRIu64
		       " %8.0f %7s\n", wls[i].name, sr.accesses, nr.seconds, sr.seconds,
		       per * (double)ex, per * (double)sr.stats.exits_by_reason[VMMU_EXIT_PF],
		       per * (double)sr.stats.exits_by_reason[VMMU_EXIT_CR3],
		       per * (double)sr.stats.exits_by_reason[VMMU_EXIT_INVLPG],
		       sr.stats.pf_fixed, sr.stats.pf_emulate,
		       ex ? (sr.seconds - nr.seconds) * 1e9 / (double)ex : 0.0,
		       nr.digest == sr.digest ? "same" : "DIFFERS");
	}
}

int main(int argc, char **argv)
{
	uint64_t pages = 65536;
	unsigned rounds = 3;
	const char *trace = NULL;
	bool quick = false, fault_only = false;
	int opt;

	while ((opt = getopt(argc, argv, "h:n:r:t:qf")) != -1) {
		switch (opt) {
		case 'h':
			if (!strcmp(optarg, "vmx"))
				host = VMMU_HOST_VMX;
			else if (!strcmp(optarg, "svm"))
				host = VMMU_HOST_SVM;
			else
				goto usage;
			break;
		case 'n': pages = strtoull(optarg, NULL, 0); break;
		case 'r': rounds = (unsigned)strtoul(optarg, NULL, 0); break;
		case 't': trace = optarg; break;
		case 'q': quick = true; break;
		case 'f': fault_only = true; break;
		default:
			goto usage;
		}
	}
	if (!pages || !rounds || pages > (1ULL << 20))
		goto usage;
	printf("bench_shadow: %s host\n", host == VMMU_HOST_VMX ? "VMX" : "SVM");
	bench_fault(pages, rounds);
	if (fault_only)
		return 0;
	bench_patterns(quick ? pages / 16 : pages / 4);
	bench_workloads(trace, quick);
	return 0;
usage:
	fprintf(stderr, "usage: bench_shadow [-h vmx|svm] [-n PAGES] [-r ROUNDS] [-t LACKEY_TRACE] "
		"[-q] [-f]\n");
	return 2;
}
