/* SPDX-License-Identifier: MIT */
/*
 * The public VM API over host/ and mem/. See vm.h for invariants and locking.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

#define DEFAULT_HOST_MEM (64ULL << 30)

int vmmu_vm_create(const struct vmmu_vm_config *cfg, struct vmmu_vm **out)
{
	struct vmmu_vm *vm;
	uint64_t host_mem = cfg && cfg->host_mem_bytes ? cfg->host_mem_bytes : DEFAULT_HOST_MEM;
	int thp = cfg ? cfg->thp : 0;
	int rc;

	if (!out || thp < HOST_THP_NEVER || thp > HOST_THP_ALWAYS)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	rc = host_arena_create(host_mem, &vm->arena);
	if (rc)
		goto out_free;
	rc = host_mm_create(vm->arena, (enum host_thp)thp, &vm->mm);
	if (rc)
		goto out_arena;
	rc = memslots_create(vm->mm, 0, &vm->slots);
	if (rc)
		goto out_mm;
	*out = vm;
	return 0;

out_mm:
	host_mm_destroy(vm->mm);
out_arena:
	host_arena_destroy(vm->arena);
out_free:
	free(vm);
	return rc;
}

void vmmu_vm_destroy(struct vmmu_vm *vm)
{
	if (!vm)
		return;
	memslots_destroy(vm->slots);
	host_mm_destroy(vm->mm);
	host_arena_destroy(vm->arena);
	free(vm);
}

int vmmu_vm_mmap(struct vmmu_vm *vm, uint64_t len, bool hugepage, uint64_t *hva)
{
	if (!vm || !hva)
		return -EINVAL;
	return host_mmap(vm->mm, 0, len, hugepage ? HOST_VMA_HUGEPAGE : 0, hva);
}

int vmmu_vm_munmap(struct vmmu_vm *vm, uint64_t hva, uint64_t len)
{
	if (!vm)
		return -EINVAL;
	return host_munmap(vm->mm, hva, len);
}

int vmmu_set_user_memory_region(struct vmmu_vm *vm, const struct vmmu_userspace_memory_region *r)
{
	if (!vm || !r)
		return -EINVAL;
	return memslots_set_user_memory_region(vm->slots, r);
}

int vmmu_get_dirty_log(struct vmmu_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	if (!vm || !bitmap)
		return -EINVAL;
	return memslots_get_dirty_log(vm->slots, slot, bitmap);
}

int vmmu_read_guest(struct vmmu_vm *vm, gpa_t gpa, void *buf, size_t len)
{
	if (!vm || (!buf && len))
		return -EINVAL;
	return memslots_read_guest(vm->slots, gpa, buf, len);
}

int vmmu_write_guest(struct vmmu_vm *vm, gpa_t gpa, const void *buf, size_t len)
{
	if (!vm || (!buf && len))
		return -EINVAL;
	return memslots_write_guest(vm->slots, gpa, buf, len);
}

/* Map mem/'s errors to the walker's vocabulary: no memory (no slot, no host VMA) reads as
 * -ENOENT; a read-only slot refuses writes with -EACCES. */
static int walker_err(int rc)
{
	if (rc == -EPERM)
		return -EACCES;
	if (rc == -ENOENT || rc == -EFAULT)
		return -ENOENT;
	return rc;
}

static int vm_gpa_read(void *opaque, gpa_t gpa, void *buf, unsigned len)
{
	struct vmmu_vm *vm = opaque;
	void *p;
	int rc;

	memslots_read_lock();
	rc = memslots_gpa_to_ptr(vm->slots, gpa, len, false, &p);
	if (!rc) {
		/* Entries are naturally aligned; another vCPU may swap them at any time. */
		if (len == 8)
			*(uint64_t *)buf = __atomic_load_n((uint64_t *)p, __ATOMIC_ACQUIRE);
		else if (len == 4)
			*(uint32_t *)buf = __atomic_load_n((uint32_t *)p, __ATOMIC_ACQUIRE);
		else
			memcpy(buf, p, len);
	}
	memslots_read_unlock();
	return walker_err(rc);
}

static int vm_gpa_cmpxchg(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	struct vmmu_vm *vm = opaque;
	void *p;
	int rc;
	bool ok;

	if (len != 8 && len != 4)
		return -EINVAL;
	memslots_read_lock();
	rc = memslots_gpa_to_ptr(vm->slots, gpa, len, true, &p);
	if (!rc) {
		if (len == 8) {
			ok = __atomic_compare_exchange_n((uint64_t *)p, &old, val, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		} else {
			uint32_t o = (uint32_t)old;
			ok = __atomic_compare_exchange_n((uint32_t *)p, &o, (uint32_t)val, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		}
		rc = ok ? 0 : -EAGAIN;
	}
	memslots_read_unlock();
	return walker_err(rc);
}

const struct guest_mem_ops vm_guest_mem_ops = {
	.read = vm_gpa_read,
	.cmpxchg = vm_gpa_cmpxchg,
};
