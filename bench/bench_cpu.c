/*
 * Hardware-model benchmark, native mode: simulated guest accesses per second through
 * vmmu_vcpu_access(), by access pattern:
 *   hits     8-byte reads cycling over 32 pages (every access a first-level TLB hit: the hit
 *            path, the figure the hardware model's speed is judged by)
 *   hits-2M  the same over 32 2M pages (first-level 2M hits)
 *   stlb     8-byte reads cycling over 1024 pages (first-level misses, second-level hits)
 *   random   8-byte reads at random pages of 1 GiB (262,144 pages: nearly every access misses
 *            the TLB and walks 4 levels)
 * Baseline, measured in the same run: the same sequence of 8-byte loads straight from host
 * memory, so the ratio says how many times slower a simulated access is than a real one.
 * Each pattern runs in rounds, each a baseline round then a simulated one; the figures are the
 * best round of each (the machine is shared: a slow round is another process, not the model),
 * with the median round beside.
 * Usage: bench_cpu [-n MILLION_ACCESSES] [-r MILLION_RANDOM] [-R ROUNDS] [-p PATTERN]
 *   (-n: hits, over all rounds, 50 by default; hits-2M and stlb take a fifth of it; -r: random,
 *   -n / 10 by default, 0 skips it; -R: rounds, 5 by default; -p: only this one of the first
 *   three patterns)
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paging/paging.h"
#include "vmmu/vmmu.h"

#define GMEM   (1ULL << 30)
#define NPAGES (GMEM >> 12)
#define TABLES 0x40000000ULL     /* page tables at 1 GiB, in their own slot */
#define HUGE   0x80000000ULL     /* gva of the 2M-page view of guest memory */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noreturn)) static void die(const char *what)
{
	fprintf(stderr, "bench_cpu: %s failed\n", what);
	exit(1);
}

static void put(struct vmmu_vm *vm, uint64_t gpa, uint64_t v)
{
	if (vmmu_write_guest(vm, gpa, &v, 8))
		die("guest write");
}

/* Identity-map gva [0, 1 GiB) with 4K pages, and gva [2 GiB, 3 GiB) onto the same gpas with 2M
 * pages; tables in a separate slot above. */
static void build(struct vmmu_vm *vm)
{
	const uint64_t f = PT_PRESENT_MASK | PT_WRITABLE_MASK;
	uint64_t pml4 = TABLES, pdpt = TABLES + 0x1000, pd = TABLES + 0x2000, pd2 = TABLES + 0x3000;
	uint64_t pt0 = TABLES + 0x4000;
	put(vm, pml4, pdpt | f);
	put(vm, pdpt, pd | f);
	put(vm, pdpt + (HUGE >> 30) * 8, pd2 | f);
	for (uint64_t t = 0; t < 512; t++) {
		put(vm, pd + t * 8, (pt0 + t * 4096) | f);
		put(vm, pd2 + t * 8, (t << 21) | f | PT_PAGE_SIZE_MASK);
		for (uint64_t i = 0; i < 512; i++)
			put(vm, pt0 + t * 4096 + i * 8, ((t * 512 + i) << 12) | f);
	}
}

/* The access patterns: the gva of access @i, whose bytes are at gpa (gva & (GMEM - 1)). */
enum pattern { HITS, HITS_2M, STLB };
static const char *const pattern_name[] = { "hits", "hits-2M", "stlb" };

static inline uint64_t pattern_gva(enum pattern p, uint64_t i)
{
	switch (p) {
	case HITS:     /* 32 pages, a new one each access, each read at 512 offsets in turn */
		return ((i & 31) << 12) | ((i >> 5 & 511) << 3);
	case HITS_2M:  /* 32 2M pages, each at a 4K page of its own (k * 2M + k * 4K) */
		return HUGE | ((i & 31) << 21) | ((i & 31) << 12) | ((i >> 5 & 511) << 3);
	case STLB:     /* 1024 pages, a new one each access */
		return ((i & 1023) << 12) | ((i >> 10 & 511) << 3);
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of @n rates (sorts them). */
static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t xs(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

int main(int argc, char **argv)
{
	long n = 50, nr = -1;
	int opt, rounds = 5, only = -1;
	while ((opt = getopt(argc, argv, "n:r:R:p:")) != -1) {
		if (opt == 'n' && atol(optarg) > 0) {
			n = atol(optarg);
		} else if (opt == 'r' && atol(optarg) >= 0) {
			nr = atol(optarg);
		} else if (opt == 'R' && atoi(optarg) > 0 && atoi(optarg) <= 100) {
			rounds = atoi(optarg);
		} else if (opt == 'p' && only < 0) {
			for (int p = HITS; p <= STLB; p++)
				if (!strcmp(optarg, pattern_name[p]))
					only = p;
			if (only < 0)
				goto usage;
		} else {
usage:
			fprintf(stderr, "usage: bench_cpu [-n MILLION_ACCESSES] [-r MILLION_RANDOM] [-R ROUNDS] [-p hits|hits-2M|stlb]\n");
			return 2;
		}
	}
	const long N = n * 1000000L;
	const long NR = nr < 0 ? N / 10 : nr * 1000000L;
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v;
	struct vmmu_vm_config cfg = { .host_mem_bytes = 2ULL << 30 };
	uint64_t hva, hva2;
	if (vmmu_vm_create(&cfg, &vm) || vmmu_vm_mmap(vm, GMEM, false, &hva) ||
	    vmmu_vm_mmap(vm, 4ULL << 20, false, &hva2))
		die("VM creation");
	struct vmmu_userspace_memory_region r0 = { .slot = 0, .memory_size = GMEM, .userspace_addr = hva };
	struct vmmu_userspace_memory_region r1 = { .slot = 1, .guest_phys_addr = TABLES, .memory_size = 4ULL << 20, .userspace_addr = hva2 };
	if (vmmu_set_user_memory_region(vm, &r1) || vmmu_vcpu_create(vm, 0, &v))
		die("memslot");
	build(vm);
	if (vmmu_set_user_memory_region(vm, &r0))
		die("memslot");
	struct vmmu_regs regs = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = TABLES, .cr4 = X86_CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	if (vmmu_vcpu_set_regs(v, &regs))
		die("set_regs");

	/* Touch every page once so host page faults are not measured. */
	struct vmmu_access_result res;
	uint64_t x = 0, sink = 0;
	for (uint64_t p = 0; p < NPAGES; p++)
		if (vmmu_vcpu_access(v, p << 12, 8, VMMU_ACC_WRITE, &x, &res) || res.status != VMMU_ACCESS_DONE)
			die("warm-up access");

	uint64_t *host = malloc(GMEM);
	if (!host)
		die("malloc");
	memset(host, 1, GMEM);

	struct vmmu_stats st0, st1, st2;
	double t0;
	printf("bench_cpu: native mode, %d rounds a pattern (best round; median beside)\n", rounds);
	for (enum pattern p = HITS; p <= STLB; p++) {
		if (only >= 0 && p != (enum pattern)only)
			continue;
		const long n_round = (p == HITS ? N : N / 5) / rounds;
		double base_r[100], sim_r[100];
		vmmu_vcpu_get_stats(v, &st0);
		for (int r = 0; r < rounds; r++) {
			t0 = now();
			for (long i = 0; i < n_round; i++)
				sink += host[(pattern_gva(p, (uint64_t)i) & (GMEM - 1)) >> 3];
			base_r[r] = n_round / (now() - t0);
			t0 = now();
			for (long i = 0; i < n_round; i++) {
				vmmu_vcpu_access(v, pattern_gva(p, (uint64_t)i), 8, VMMU_ACC_READ, &x, &res);
				sink += x;
			}
			sim_r[r] = n_round / (now() - t0);
		}
		vmmu_vcpu_get_stats(v, &st1);
		double base = base_r[0], sim = sim_r[0];
		for (int r = 1; r < rounds; r++) {
			base = base_r[r] > base ? base_r[r] : base;
			sim = sim_r[r] > sim ? sim_r[r] : sim;
		}
		double total = (double)n_round * rounds;
		printf("  %-8s %8.1f M accesses/s  (median %.1f; TLB hits %.4f, misses %.4f)  host loads %6.1f M/s  ratio %.1fx slower\n",
		       pattern_name[p], sim / 1e6, median(sim_r, rounds) / 1e6,
		       (double)(st1.tlb_hits - st0.tlb_hits) / total, (double)(st1.tlb_misses - st0.tlb_misses) / total,
		       base / 1e6, base / sim);
	}
	fflush(stdout);

	vmmu_vcpu_get_stats(v, &st1);
	uint64_t s = 88172645463325252ULL;
	t0 = now();
	for (long i = 0; i < NR; i++)
		sink += host[(xs(&s) % NPAGES) << 9];
	double base_rand = NR ? NR / (now() - t0) : 0;

	s = 88172645463325252ULL;
	t0 = now();
	for (long i = 0; i < NR; i++) {
		vmmu_vcpu_access(v, (xs(&s) % NPAGES) << 12, 8, VMMU_ACC_READ, &x, &res);
		sink += x;
	}
	double rnd = NR ? NR / (now() - t0) : 0;
	vmmu_vcpu_get_stats(v, &st2);

	if (NR)
		printf("  random   %8.2f M accesses/s  (tlb miss rate %.4f, %.2f walk refs/access)  host loads %6.1f M/s  ratio %.1fx slower\n",
	       rnd / 1e6, (double)(st2.tlb_misses - st1.tlb_misses) / (double)NR,
		       (double)(st2.walk_refs - st1.walk_refs) / (double)NR, base_rand / 1e6, base_rand / rnd);
	if (sink == 42)
		printf(" ");
	free(host);
	vmmu_vm_destroy(vm);
	return 0;
}
