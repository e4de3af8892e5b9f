/* SPDX-License-Identifier: MIT */
/*
 * Reading the dirty log, as live migration does: a memslot with VMMU_MEM_LOG_DIRTY_PAGES, the
 * guest writes some of its pages, vmmu_get_dirty_log() (KVM_GET_DIRTY_LOG) returns a bitmap of
 * the pages written since the last harvest and re-protects them, so the next round reports only
 * the pages written again.
 *   cc dirty_log.c $(pkg-config --cflags --libs vmmu) -o dirty_log && ./dirty_log [MODE]
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <vmmu/vmmu.h>

#include "example.h"

#define MEM      (4ULL << 20)
#define TABLES   0x100000ULL
#define LOG_GPA  (8ULL << 20)          /* the logged slot: 64 pages at 8 MiB */
#define LOG_SIZE (64ULL << 12)
#define LOG_GVA  0x400000ULL

static int write_page(struct vmmu_vcpu *vcpu, unsigned page, uint64_t v)
{
	struct vmmu_access_result res;

	return vmmu_vcpu_access(vcpu, LOG_GVA + page * 4096ULL, 8, VMMU_ACC_WRITE, &v, &res) ||
	       res.status != VMMU_ACCESS_DONE;
}

int main(int argc, char **argv)
{
	const char *mode;
	struct vmmu_vm_config cfg = example_config(argc, argv, "ept", &mode);
	struct vmmu_regs regs = example_regs64(TABLES, 0);
	vmmu_gpa_t next_table = TABLES;
	struct vmmu_vm *vm;
	struct vmmu_vcpu *vcpu;
	uint64_t hva, lhva, bitmap[1];

	if (vmmu_vm_create(&cfg, &vm) || vmmu_vm_mmap(vm, MEM, false, &hva) ||
	    vmmu_vm_mmap(vm, LOG_SIZE, false, &lhva))
		return fprintf(stderr, "dirty_log: cannot create the VM\n"), 1;
	struct vmmu_userspace_memory_region s0 = { .memory_size = MEM, .userspace_addr = hva };
	struct vmmu_userspace_memory_region s1 = {
		.slot = 1, .flags = VMMU_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = LOG_GPA,
		.memory_size = LOG_SIZE, .userspace_addr = lhva,
	};
	if (vmmu_set_user_memory_region(vm, &s0) || vmmu_set_user_memory_region(vm, &s1))
		return fprintf(stderr, "dirty_log: cannot add the memslots\n"), 1;
	for (unsigned i = 0; i < 64; i++)
		if (vmmu_gpt_map(vm, TABLES, 4, LOG_GVA + i * 4096ULL, LOG_GPA + i * 4096ULL, 1,
				 VMMU_PTE_P | VMMU_PTE_RW, example_alloc_table, &next_table))
			return fprintf(stderr, "dirty_log: cannot map page %u\n", i), 1;
	if (vmmu_vcpu_create(vm, 0, &vcpu) || vmmu_vcpu_set_regs(vcpu, &regs))
		return fprintf(stderr, "dirty_log: cannot create the vCPU\n"), 1;

	/* Round 1: pages 0, 5 and 63; round 2: page 5 again and page 7. */
	const unsigned round1[] = { 0, 5, 63 }, round2[] = { 5, 7 };
	const uint64_t want[] = { (1ULL << 0) | (1ULL << 5) | (1ULL << 63), (1ULL << 5) | (1ULL << 7) };
	for (int r = 0; r < 2; r++) {
		const unsigned *pages = r ? round2 : round1;
		unsigned n = r ? 2 : 3;
		for (unsigned i = 0; i < n; i++)
			if (write_page(vcpu, pages[i], r * 100 + i))
				return fprintf(stderr, "dirty_log: a guest write failed\n"), 1;
		if (vmmu_get_dirty_log(vm, 1, bitmap))
			return fprintf(stderr, "dirty_log: harvest failed\n"), 1;
		printf("%s: round %d: dirty bitmap %#018" PRIx64 "%s\n", mode, r + 1, bitmap[0],
		       bitmap[0] == want[r] ? "" : " (unexpected)");
		if (bitmap[0] != want[r])
			return 1;
	}
	vmmu_vm_destroy(vm);
	return 0;
}
