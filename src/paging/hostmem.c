/* SPDX-License-Identifier: MIT */
/*
 * Host physical memory accesses for the page-walk hardware: see hostmem.h for the contract.
 * Each access checks that its frame is allocated in the arena before touching it; no state, no
 * locks.
 */
#include <errno.h>
#include <string.h>

#include "hot.h"
#include "paging/hostmem.h"

/* The bytes at @hpa if a @len-byte access there is allowed, else NULL with *@err set. */
static void *hpa_to_ptr(const struct host_arena *a, hpa_t hpa, unsigned len, int *err)
{
	void *p;

	if ((len != 4 && len != 8) || (hpa & (len - 1))) {
		*err = -EINVAL;
		return NULL;
	}
	/* host_hpa_ptr() bounds the pfn by the arena first, so any 64-bit hpa is safe here. */
	p = host_hpa_ptr(a, hpa);
	if (!p)
		*err = -ENOENT;
	return p;
}

VMMU_HOT
int hostmem_load(const struct host_arena *a, hpa_t hpa, unsigned len, uint64_t *val)
{
	int err = 0;
	void *p = hpa_to_ptr(a, hpa, len, &err);

	if (!p)
		return err;
	if (len == 8)
		*val = __atomic_load_n((uint64_t *)p, __ATOMIC_ACQUIRE);
	else
		*val = __atomic_load_n((uint32_t *)p, __ATOMIC_ACQUIRE);
	return 0;
}

int hostmem_store(struct host_arena *a, hpa_t hpa, unsigned len, uint64_t val)
{
	int err = 0;
	void *p = hpa_to_ptr(a, hpa, len, &err);

	if (!p)
		return err;
	if (len == 8)
		__atomic_store_n((uint64_t *)p, val, __ATOMIC_RELEASE);
	else
		__atomic_store_n((uint32_t *)p, (uint32_t)val, __ATOMIC_RELEASE);
	return 0;
}

VMMU_HOT
int hostmem_cmpxchg(struct host_arena *a, hpa_t hpa, uint64_t old, uint64_t val, unsigned len)
{
	int err = 0;
	void *p = hpa_to_ptr(a, hpa, len, &err);
	bool ok;

	if (!p)
		return err;
	if (len == 8) {
		ok = __atomic_compare_exchange_n((uint64_t *)p, &old, val, false, __ATOMIC_SEQ_CST,
						 __ATOMIC_SEQ_CST);
	} else {
		uint32_t o32 = (uint32_t)old;

		ok = __atomic_compare_exchange_n((uint32_t *)p, &o32, (uint32_t)val, false,
						 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
	return ok ? 0 : -EAGAIN;
}

VMMU_HOT
static int host_mem_read(void *opaque, gpa_t hpa, void *buf, unsigned len)
{
	return hostmem_read(opaque, hpa, buf, len);
}

VMMU_HOT
static int host_mem_cmpxchg(void *opaque, gpa_t hpa, uint64_t old, uint64_t val, unsigned len)
{
	return hostmem_cmpxchg(opaque, hpa, old, val, len);
}

const struct guest_mem_ops host_mem_ops = {
	.read = host_mem_read,
	.cmpxchg = host_mem_cmpxchg,
};
