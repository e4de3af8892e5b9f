/* SPDX-License-Identifier: MIT */
/*
 * vm/: the hypervisor's VM object, under the public API (include/vmmu/vmmu.h): it owns the host
 * (frame arena, VMM address space) and the memslots. Later phases add vCPUs, the MMU and the run
 * loop here.
 *
 * Invariants: vm->arena outlives vm->mm, which outlives vm->slots (destroyed in reverse).
 * Locking: memslot updates serialize inside mem/; guest memory access is lock-free (RCU).
 */
#ifndef VMMU_VM_H
#define VMMU_VM_H

#include "host/host.h"
#include "mem/memslot.h"
#include "paging/paging.h"
#include "vmmu/vmmu.h"

struct vmmu_vm {
	struct host_arena *arena;
	struct host_mm *mm;
	struct memslots *slots;
};

/* Guest physical memory for the page walker: reads with atomic loads, A/D updates with
 * compare-and-swap, through the memslots. Opaque is the struct vmmu_vm. */
extern const struct guest_mem_ops vm_guest_mem_ops;

#endif
