/* SPDX-License-Identifier: MIT */
/*
 * vmmu public API: a VM with KVM-style memslots over a modelled host.
 *
 * Every function returns 0 or a negative errno, as KVM's ioctls do; structs are opaque.
 * A struct vmmu_vm may be used from several threads: memslot changes are serialized inside,
 * lookups are lock-free (RCU).
 */
#ifndef VMMU_VMMU_H
#define VMMU_VMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmmu/types.h"

#define VMMU_VERSION "0.1.0"

/* struct kvm_userspace_memory_region, field for field. */
struct vmmu_userspace_memory_region {
	uint32_t slot;             /* bits 15:0 slot id, bits 31:16 address space (0 only) */
	uint32_t flags;            /* VMMU_MEM_* */
	uint64_t guest_phys_addr;
	uint64_t memory_size;      /* bytes; 0 deletes the slot */
	uint64_t userspace_addr;   /* start of the backing hva range (vmmu_vm_mmap) */
};

#define VMMU_MEM_LOG_DIRTY_PAGES (1u << 0)
#define VMMU_MEM_READONLY        (1u << 1)

#define VMMU_USER_MEM_SLOTS      32764   /* as KVM_USER_MEM_SLOTS on x86 */
#define VMMU_MEM_MAX_NR_PAGES    ((1ULL << 31) - 1)

struct vmmu_vm;

struct vmmu_vm_config {
	uint64_t host_mem_bytes;   /* host physical memory (frame arena); 0 = 64 GiB */
	int thp;                   /* 0 never, 1 madvise, 2 always */
};

int vmmu_vm_create(const struct vmmu_vm_config *cfg, struct vmmu_vm **out);
void vmmu_vm_destroy(struct vmmu_vm *vm);

/* Anonymous memory in the VMM's (modelled) address space, to back memslots. */
int vmmu_vm_mmap(struct vmmu_vm *vm, uint64_t len, bool hugepage, uint64_t *hva);
int vmmu_vm_munmap(struct vmmu_vm *vm, uint64_t hva, uint64_t len);

/* KVM_SET_USER_MEMORY_REGION. */
int vmmu_set_user_memory_region(struct vmmu_vm *vm, const struct vmmu_userspace_memory_region *r);

/* KVM_GET_DIRTY_LOG: copy the slot's dirty bitmap (one bit a page, LSB first) to @bitmap
 * (at least ceil(npages/64) words) and clear it. */
int vmmu_get_dirty_log(struct vmmu_vm *vm, uint32_t slot, uint64_t *bitmap);

/* Guest physical memory as the VMM sees it (not through any MMU): copy to/from gpa. */
int vmmu_read_guest(struct vmmu_vm *vm, gpa_t gpa, void *buf, size_t len);
int vmmu_write_guest(struct vmmu_vm *vm, gpa_t gpa, const void *buf, size_t len);

#endif
