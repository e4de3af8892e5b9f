/* SPDX-License-Identifier: MIT */
/*
 * Walker benchmark: 4-level guest walks per second over 1 GiB of 4K-mapped guest memory (262,144
 * distinct PTEs in 512 page tables), through the memslots as the MMU will use it.
 *   noad     translate only (WALK_NO_AD): the baseline every other figure is a ratio of
 *   ad-set   ordinary walks whose A/D bits are already set (checks, no writes)
 *   ad-new   writes to pages whose A/D bits are clear: one compare-and-swap per walk (the leaf)
 * Usage: bench_walk [-n ROUNDS] [-s SECONDS]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "paging/paging.h"
#include "vm/vm.h"
#include "vmmu/vmmu.h"

#define NPT     512              /* page tables */
#define NPAGES  (NPT * 512)      /* 4K pages mapped */
#define GVA0    0x8000000000ULL
#define PML4    0x1000ULL
#define PDPT    0x2000ULL
#define PD      0x3000ULL
#define PT0     0x4000ULL        /* PTs at 0x4000 .. 0x204000 */
#define DATA0   0x400000ULL

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void put(struct vmmu_vm *vm, gpa_t gpa, uint64_t v)
{
	if (vmmu_write_guest(vm, gpa, &v, 8)) {
		fprintf(stderr, "bench_walk: guest write failed\n");
		exit(1);
	}
}

static void build(struct vmmu_vm *vm)
{
	const uint64_t f = PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK;
	put(vm, PML4 + 8, PDPT | f);
	put(vm, PDPT, PD | f);
	for (uint64_t t = 0; t < NPT; t++) {
		put(vm, PD + t * 8, (PT0 + t * 4096) | f);
		for (uint64_t i = 0; i < 512; i++)
			put(vm, PT0 + t * 4096 + i * 8, (DATA0 + (t * 512 + i) * 4096) | f);
	}
}

static void clear_ad(struct vmmu_vm *vm)
{
	for (uint64_t p = 0; p < NPAGES; p++) {
		uint64_t v;
		vmmu_read_guest(vm, PT0 + p * 8, &v, 8);
		put(vm, PT0 + p * 8, v & ~(PT_ACCESSED_MASK | PT_DIRTY_MASK));
	}
}

/* Walk every page once in a scattered order; returns walks per second. */
static double run(struct vmmu_vm *vm, const struct paging_ctx *ctx, unsigned access)
{
	struct walk_result r;
	uint64_t sink = 0;
	double t0 = now();
	for (uint64_t i = 0; i < NPAGES; i++) {
		uint64_t p = (i * 7919) % NPAGES;   /* a prime stride: no two walks share a PTE line */
		if (paging_walk(ctx, &slots_gmem_ops, vm->slots, GVA0 + p * 4096, access, &r) != WALK_OK) {
			fprintf(stderr, "bench_walk: walk failed\n");
			exit(1);
		}
		sink += r.gpa;
	}
	double dt = now() - t0;
	if (sink == 1)
		printf("-");
	return NPAGES / dt;
}

int main(int argc, char **argv)
{
	int rounds = 5, opt;
	struct vmmu_vm *vm;
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30 };
	uint64_t hva;

	while ((opt = getopt(argc, argv, "n:")) != -1) {
		if (opt == 'n' && atoi(optarg) > 0) {
			rounds = atoi(optarg);
		} else {
			fprintf(stderr, "usage: bench_walk [-n ROUNDS]\n");
			return 2;
		}
	}
	if (vmmu_vm_create(&cfg, &vm) || vmmu_vm_mmap(vm, 4ULL << 20, false, &hva)) {
		fprintf(stderr, "bench_walk: cannot create the VM\n");
		return 1;
	}
	struct vmmu_userspace_memory_region r = { .slot = 0, .memory_size = 4ULL << 20, .userspace_addr = hva };
	if (vmmu_set_user_memory_region(vm, &r)) {
		fprintf(stderr, "bench_walk: memslot failed\n");
		return 1;
	}
	build(vm);

	struct paging_ctx ctx;
	memset(&ctx, 0, sizeof(ctx));
	cpu_model_fixed(&ctx.cpu, "intel");
	ctx.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP;
	ctx.cr4 = X86_CR4_PAE;
	ctx.efer = EFER_LME | EFER_LMA | EFER_NXE;
	ctx.cr3 = PML4;

	double best_noad = 0, best_set = 0, best_new = 0;
	run(vm, &ctx, PFERR_WRITE);   /* warm up: fault in the host pages, set A/D */
	for (int i = 0; i < rounds; i++) {
		double a = run(vm, &ctx, WALK_NO_AD);
		double b = run(vm, &ctx, PFERR_WRITE);
		clear_ad(vm);
		double c = run(vm, &ctx, PFERR_WRITE);
		if (a > best_noad) best_noad = a;
		if (b > best_set) best_set = b;
		if (c > best_new) best_new = c;
	}
	printf("bench_walk: 4-level walks over %d distinct 4K pages, best of %d rounds\n", NPAGES, rounds);
	printf("  noad    %10.2f M walks/s  (baseline)\n", best_noad / 1e6);
	printf("  ad-set  %10.2f M walks/s  ratio %.2f\n", best_set / 1e6, best_set / best_noad);
	printf("  ad-new  %10.2f M walks/s  ratio %.2f\n", best_new / 1e6, best_new / best_noad);
	vmmu_vm_destroy(vm);
	return 0;
}
