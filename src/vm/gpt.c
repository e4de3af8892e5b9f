/* SPDX-License-Identifier: MIT */
/*
 * vmmu_gpt_map: guest page tables built from the VMM side, for embedders (the examples) and
 * tests, through the public guest-memory calls only. Invariant: a table it creates is zeroed by
 * the caller's allocator and linked present, writable and user, so the leaf alone decides the
 * rights. Locking: none of its own; the VM's memslot lookups are lock-free.
 */
#include <errno.h>

#include "vmmu/vmmu.h"

#define GPT_ADDR_MASK 0x000ffffffffff000ULL   /* bits 51:12 */

int vmmu_gpt_map(struct vmmu_vm *vm, vmmu_gpa_t root, int levels, vmmu_gva_t gva, vmmu_gpa_t gpa,
		 int level, uint64_t flags, vmmu_gpa_t (*alloc_table)(void *opaque), void *opaque)
{
	const uint64_t page = 1ULL << (12 + 9 * (level - 1));
	vmmu_gpa_t table = root & GPT_ADDR_MASK;
	uint64_t e;
	int rc;

	if (!vm || !alloc_table || (levels != 4 && levels != 5) || level < 1 || level > 3 ||
	    ((gva | gpa) & (page - 1)) || (gpa & ~GPT_ADDR_MASK))
		return -EINVAL;
	for (int l = levels; l > level; l--) {
		vmmu_gpa_t ea = table + ((gva >> (12 + 9 * (l - 1))) & 511) * 8;

		rc = vmmu_read_guest(vm, ea, &e, sizeof(e));
		if (rc)
			return rc;
		if (!(e & VMMU_PTE_P)) {
			vmmu_gpa_t t = alloc_table(opaque);

			if (!t || (t & ~GPT_ADDR_MASK))
				return -ENOMEM;
			e = t | VMMU_PTE_P | VMMU_PTE_RW | VMMU_PTE_US;
			rc = vmmu_write_guest(vm, ea, &e, sizeof(e));
			if (rc)
				return rc;
		} else if (e & VMMU_PTE_PS) {
			return -EINVAL;     /* a large page is in the way of a table */
		}
		table = e & GPT_ADDR_MASK;
	}
	e = gpa | flags | (level > 1 ? VMMU_PTE_PS : 0);
	return vmmu_write_guest(vm, table + ((gva >> (12 + 9 * (level - 1))) & 511) * 8, &e,
				sizeof(e));
}
