/* SPDX-License-Identifier: MIT */
/* Guest physical memory through the memslots for the walker; see slots_gmem.h. */
#include <errno.h>
#include <string.h>

#include "paging/slots_gmem.h"

static int walker_err(int rc)
{
	if (rc == -EPERM)
		return -EACCES;
	/* -EFAULT (no host memory behind a slot's hva) aborts the walk: the access fails. */
	return rc;
}

static int slots_read(void *opaque, gpa_t gpa, void *buf, unsigned len)
{
	void *p;
	int rc;

	if ((len != 4 && len != 8) || (gpa & (len - 1)))
		return -EINVAL;
	vmmu_rcu_read_lock();
	rc = memslots_gpa_to_ptr(opaque, gpa, len, false, &p);
	if (!rc) {
		/* Entries are naturally aligned; another vCPU may swap them at any time. */
		if (len == 8)
			*(uint64_t *)buf = __atomic_load_n((uint64_t *)p, __ATOMIC_ACQUIRE);
		else
			*(uint32_t *)buf = __atomic_load_n((uint32_t *)p, __ATOMIC_ACQUIRE);
	}
	vmmu_rcu_read_unlock();
	return walker_err(rc);
}

static int slots_cmpxchg(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	bool ok = false;
	void *p;
	int rc;

	if ((len != 4 && len != 8) || (gpa & (len - 1)))
		return -EINVAL;
	vmmu_rcu_read_lock();
	rc = memslots_gpa_to_ptr(opaque, gpa, len, true, &p);
	if (!rc) {
		if (len == 8) {
			ok = __atomic_compare_exchange_n((uint64_t *)p, &old, val, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		} else {
			uint32_t o = (uint32_t)old;
			ok = __atomic_compare_exchange_n((uint32_t *)p, &o, (uint32_t)val, false,
							 __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
		}
	}
	vmmu_rcu_read_unlock();
	if (rc)
		return walker_err(rc);
	return ok ? 0 : -EAGAIN;
}

const struct guest_mem_ops slots_gmem_ops = {
	.read = slots_read,
	.cmpxchg = slots_cmpxchg,
};
