/* SPDX-License-Identifier: MIT */
/*
 * The minimal embedding of libvmmu: a VM under one MMU mode, 16 MiB of guest memory in one
 * memslot, one vCPU in 4-level paging over page tables the VMM builds (vmmu_gpt_map), one guest
 * store and load through the MMU, and the VM's counters.
 *   cc embed.c $(pkg-config --cflags --libs vmmu) -o embed && ./embed [native|shadow|ept|npt]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <vmmu/vmmu.h>

#include "example.h"

#define MEM      (16ULL << 20)
#define TABLES   0x100000ULL          /* guest page tables from 1 MiB up */
#define DATA_GVA 0x400000ULL
#define DATA_GPA 0x800000ULL

#define fail(what, rc) example_fail("embed", what, rc)

int main(int argc, char **argv)
{
	const char *mode;
	struct vmmu_vm_config cfg = example_config(argc, argv, "shadow", &mode);
	struct vmmu_regs regs = example_regs64(TABLES, 3);
	vmmu_gpa_t next_table = TABLES;
	struct vmmu_vm *vm;
	struct vmmu_vcpu *vcpu;
	struct vmmu_access_result res;
	struct vmmu_stats st;
	uint64_t val = 0x1122334455667788ULL, back = 0;
	const char *what;
	int rc;

	/* Guest physical [0, 16 MiB) in slot 0, backed by anonymous memory of the VMM (example.h:
	 * vmmu_vm_create, vmmu_vm_mmap, vmmu_set_user_memory_region). */
	if ((rc = example_vm(&cfg, MEM, &vm, &what)))
		return fail(what, rc);
	/* gva 0x400000 -> gpa 0x800000, a writable user page. */
	if ((rc = vmmu_gpt_map(vm, TABLES, 4, DATA_GVA, DATA_GPA, 1,
			       VMMU_PTE_P | VMMU_PTE_RW | VMMU_PTE_US, example_alloc_table, &next_table)))
		return fail("vmmu_gpt_map", rc);
	if ((rc = vmmu_vcpu_create(vm, 0, &vcpu)))
		return fail("vmmu_vcpu_create", rc);
	if ((rc = vmmu_vcpu_set_regs(vcpu, &regs)))
		return fail("vmmu_vcpu_set_regs", rc);
	if ((rc = vmmu_vcpu_access(vcpu, DATA_GVA + 8, 8, VMMU_ACC_WRITE, &val, &res)) ||
	    res.status != VMMU_ACCESS_DONE)
		return fail("store", rc ? rc : -EIO);
	if ((rc = vmmu_vcpu_access(vcpu, DATA_GVA + 8, 8, VMMU_ACC_READ, &back, &res)) ||
	    res.status != VMMU_ACCESS_DONE || back != val)
		return fail("load", rc ? rc : -EIO);
	if ((rc = vmmu_vm_get_stats(vm, &st)))
		return fail("vmmu_vm_get_stats", rc);
	printf("%s: read back %#" PRIx64 "; exits %" PRIu64 ", pf_fixed %" PRIu64 ", TLB misses %"
	       PRIu64 ", walk refs %" PRIu64 ", simulated cycles %" PRIu64 "\n", mode, back, st.exits,
	       st.pf_fixed, st.tlb_misses, st.walk_refs, st.sim_cycles);
	vmmu_vm_destroy(vm);
	return 0;
}
