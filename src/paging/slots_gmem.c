/* SPDX-License-Identifier: MIT */
/* Guest physical memory through the memslots for the walker; see slots_gmem.h. Each access holds
 * the host page still (memslots_gpa_access): a hypervisor walk's A/D write must not land in a
 * frame a collapse or merge has copied, or freed, meanwhile. */
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

/* One naturally aligned word, loaded or compare-and-swapped (another vCPU may swap it at any time:
 * the hardware sets A/D so), with the host page held still (memslots_gpa_access). */
struct word_op {
	unsigned len;
	bool cmpxchg, ok;
	uint64_t old, val;
};

static void word_fn(void *ptr, void *arg)
{
	struct word_op *o = arg;

	if (!o->cmpxchg) {
		o->old = o->len == 8 ? __atomic_load_n((uint64_t *)ptr, __ATOMIC_ACQUIRE) :
				       __atomic_load_n((uint32_t *)ptr, __ATOMIC_ACQUIRE);
	} else if (o->len == 8) {
		o->ok = __atomic_compare_exchange_n((uint64_t *)ptr, &o->old, o->val, false,
						    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	} else {
		uint32_t w = (uint32_t)o->old;

		o->ok = __atomic_compare_exchange_n((uint32_t *)ptr, &w, (uint32_t)o->val, false,
						    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
	}
}

static int slots_read(void *opaque, gpa_t gpa, void *buf, unsigned len)
{
	struct word_op o = { .len = len };
	int rc;

	if ((len != 4 && len != 8) || (gpa & (len - 1)))
		return -EINVAL;
	rc = memslots_gpa_access(opaque, gpa, len, false, word_fn, &o);
	if (!rc) {
		if (len == 8)
			*(uint64_t *)buf = o.old;
		else
			*(uint32_t *)buf = (uint32_t)o.old;
	}
	return walker_err(rc);
}

static int slots_cmpxchg(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	struct word_op o = { .len = len, .cmpxchg = true, .old = old, .val = val };
	int rc;

	if ((len != 4 && len != 8) || (gpa & (len - 1)))
		return -EINVAL;
	rc = memslots_gpa_access(opaque, gpa, len, true, word_fn, &o);
	if (rc)
		return walker_err(rc);
	return o.ok ? 0 : -EAGAIN;
}

const struct guest_mem_ops slots_gmem_ops = {
	.read = slots_read,
	.cmpxchg = slots_cmpxchg,
};
