/* SPDX-License-Identifier: MIT */
/*
 * An MMIO device: a guest physical page that no memslot backs is device memory, so every access
 * the guest makes there exits to the VMM (VMMU_ACCESS_MMIO) with the address, size, direction and
 * data, as KVM_EXIT_MMIO does. Here a 4-byte counter register at gpa 0xfee00000: a store sets it,
 * a load reads it and increments it. The MMU caches the translation (an MMIO spte), so later
 * exits take its fast path (pf_mmio_spte_created stays 1).
 *   cc mmio.c $(pkg-config --cflags --libs vmmu) -o mmio && ./mmio [native|shadow|ept|npt]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <vmmu/vmmu.h>

#include "example.h"

#define MEM        (4ULL << 20)
#define TABLES     0x100000ULL
#define DEV_GPA    0xfee00000ULL
#define DEV_GVA    0x600000ULL

static uint32_t counter;              /* the device's register */

/* One guest access, with the device answering its MMIO exits. */
static int guest_access(struct vmmu_vcpu *vcpu, uint64_t gva, unsigned kind, uint32_t *val)
{
	struct vmmu_access_result res;
	int rc = vmmu_vcpu_access(vcpu, gva, 4, kind, val, &res);

	if (rc)
		return rc;
	if (res.status == VMMU_ACCESS_DONE)
		return 0;
	if (res.status != VMMU_ACCESS_MMIO || res.mmio_gpa != DEV_GPA || res.mmio_len != 4)
		return -EIO;
	if (res.mmio_write) {
		counter = (uint32_t)res.mmio_data;
		return 0;
	}
	/* A read: the device's answer goes in mmio_data; completing copies it into the guest's
	 * destination (@val), as KVM_RUN does after a KVM_EXIT_MMIO read. */
	res.mmio_data = counter++;
	return vmmu_vcpu_complete_mmio(vcpu, &res, val) ? -EIO : 0;
}

int main(int argc, char **argv)
{
	const char *mode;
	struct vmmu_vm_config cfg = example_config(argc, argv, "ept", &mode);
	struct vmmu_regs regs = example_regs64(TABLES, 0);
	vmmu_gpa_t next_table = TABLES;
	struct vmmu_vm *vm;
	struct vmmu_vcpu *vcpu;
	struct vmmu_stats st;
	uint64_t hva;
	uint32_t v = 100;

	if (vmmu_vm_create(&cfg, &vm) || vmmu_vm_mmap(vm, MEM, false, &hva))
		return fprintf(stderr, "mmio: cannot create the VM\n"), 1;
	struct vmmu_userspace_memory_region slot = { .memory_size = MEM, .userspace_addr = hva };
	if (vmmu_set_user_memory_region(vm, &slot) ||
	    vmmu_gpt_map(vm, TABLES, 4, DEV_GVA, DEV_GPA, 1, VMMU_PTE_P | VMMU_PTE_RW,
			 example_alloc_table, &next_table) ||
	    vmmu_vcpu_create(vm, 0, &vcpu) || vmmu_vcpu_set_regs(vcpu, &regs))
		return fprintf(stderr, "mmio: cannot set the guest up\n"), 1;
	if (guest_access(vcpu, DEV_GVA, VMMU_ACC_WRITE, &v))
		return fprintf(stderr, "mmio: the store failed\n"), 1;
	for (int i = 0; i < 3; i++) {
		if (guest_access(vcpu, DEV_GVA, VMMU_ACC_READ, &v))
			return fprintf(stderr, "mmio: a load failed\n"), 1;
		printf("%s: the guest read %u from the device\n", mode, v);
	}
	vmmu_vm_get_stats(vm, &st);
	printf("%s: exits %" PRIu64 " (mmio %" PRIu64 "), pf_mmio_spte_created %" PRIu64 "\n", mode,
	       st.exits, st.exits_by_reason[VMMU_EXIT_MMIO], st.pf_mmio_spte_created);
	vmmu_vm_destroy(vm);
	return v == 102 ? 0 : 1;
}
