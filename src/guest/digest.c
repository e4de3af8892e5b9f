/* SPDX-License-Identifier: MIT */
/*
 * The observation stream behind guest.digest: xxh64 over what the guest can observe, in order
 * (docs/guest.md has the exact list). Observations are buffered as 64-bit words and hashed a
 * buffer at a time, so recording one costs a few stores.
 * Locking: a stream belongs to its guest (under the kernel lock) or to its task (its vCPU thread).
 */
#include <errno.h>
#include <xxhash.h>

#include "guest.h"

int obs_init(struct obs *o, uint64_t seed)
{
	o->n = 0;
	o->state = XXH64_createState();
	if (!o->state)
		return -ENOMEM;
	XXH64_reset(o->state, seed);
	return 0;
}

void obs_destroy(struct obs *o)
{
	if (o->state)
		XXH64_freeState(o->state);
	o->state = NULL;
}

void obs_flush_slow(struct obs *o)
{
	if (o->n)
		XXH64_update(o->state, o->buf, o->n * sizeof(o->buf[0]));
	o->n = 0;
}
