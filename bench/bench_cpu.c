/* SPDX-License-Identifier: MIT */
/*
 * Hardware-model benchmark, native mode: simulated guest accesses per second through
 * vmmu_vcpu_access().
 *   hits    8-byte reads cycling over 32 pages (every access a first-level TLB hit)
 *   random  8-byte reads at random pages of 1 GiB (262,144 pages: nearly every access misses
 *           the TLB and walks 4 levels)
 * Baseline, measured in the same run: the same sequence of 8-byte loads straight from host
 * memory, so the ratio says how many times slower a simulated access is than a real one.
 * Usage: bench_cpu [-n MILLION_ACCESSES] [-r MILLION_RANDOM] (-r 0 skips the random phase)
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

/* Identity-map gva [0, 1 GiB) with 4K pages; tables in a separate slot above. */
static void build(struct vmmu_vm *vm)
{
	const uint64_t f = PT_PRESENT_MASK | PT_WRITABLE_MASK;
	uint64_t pml4 = TABLES, pdpt = TABLES + 0x1000, pd = TABLES + 0x2000, pt0 = TABLES + 0x3000;
	put(vm, pml4, pdpt | f);
	put(vm, pdpt, pd | f);
	for (uint64_t t = 0; t < 512; t++) {
		put(vm, pd + t * 8, (pt0 + t * 4096) | f);
		for (uint64_t i = 0; i < 512; i++)
			put(vm, pt0 + t * 4096 + i * 8, ((t * 512 + i) << 12) | f);
	}
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
	int opt;
	while ((opt = getopt(argc, argv, "n:r:")) != -1) {
		if (opt == 'n' && atol(optarg) > 0) {
			n = atol(optarg);
		} else if (opt == 'r' && atol(optarg) >= 0) {
			nr = atol(optarg);
		} else {
			fprintf(stderr, "usage: bench_cpu [-n MILLION_ACCESSES] [-r MILLION_RANDOM]\n");
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

	/* Baseline: the same loads from host memory. */
	uint64_t *host = malloc(GMEM);
	if (!host)
		die("malloc");
	memset(host, 1, GMEM);
	double t0 = now();
	for (long i = 0; i < N; i++)
		sink += host[((uint64_t)(i & 31) << 9) + ((uint64_t)i >> 5 & 511)];
	double base_hits = N / (now() - t0);
	uint64_t s = 88172645463325252ULL;
	t0 = now();
	for (long i = 0; i < NR; i++)
		sink += host[(xs(&s) % NPAGES) << 9];
	double base_rand = NR ? NR / (now() - t0) : 0;

	struct vmmu_stats st0, st1;
	vmmu_vcpu_get_stats(v, &st0);
	t0 = now();
	for (long i = 0; i < N; i++) {
		uint64_t gva = ((uint64_t)(i & 31) << 12) | (((uint64_t)i >> 5 & 511) << 3);
		vmmu_vcpu_access(v, gva, 8, VMMU_ACC_READ, &x, &res);
		sink += x;
	}
	double hits = N / (now() - t0);
	vmmu_vcpu_get_stats(v, &st1);
	uint64_t h = st1.tlb_hits - st0.tlb_hits;

	s = 88172645463325252ULL;
	t0 = now();
	for (long i = 0; i < NR; i++) {
		vmmu_vcpu_access(v, (xs(&s) % NPAGES) << 12, 8, VMMU_ACC_READ, &x, &res);
		sink += x;
	}
	double rnd = NR ? NR / (now() - t0) : 0;
	struct vmmu_stats st2;
	vmmu_vcpu_get_stats(v, &st2);

	printf("bench_cpu: native mode, %ld M hit accesses, %ld M random accesses\n", n, NR / 1000000L);
	printf("  hits    %8.1f M accesses/s  (tlb hit rate %.4f)  host loads %8.1f M/s  ratio %.1fx slower\n",
	       hits / 1e6, (double)h / (double)N, base_hits / 1e6, base_hits / hits);
	if (NR)
		printf("  random  %8.2f M accesses/s  (tlb miss rate %.4f, %.2f walk refs/access)  host loads %6.1f M/s  ratio %.1fx slower\n",
	       rnd / 1e6, (double)(st2.tlb_misses - st1.tlb_misses) / (double)NR,
		       (double)(st2.walk_refs - st1.walk_refs) / (double)NR, base_rand / 1e6, base_rand / rnd);
	if (sink == 42)
		printf(" ");
	free(host);
	vmmu_vm_destroy(vm);
	return 0;
}
