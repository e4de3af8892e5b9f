/* SPDX-License-Identifier: MIT */
/*
 * host/pool: the slab pools of pool.h (rules there). A slab is an anonymous mapping of at least
 * 64 KiB, populated as it is mapped, cut into 64-byte-aligned objects that all go on the free
 * list at once; slabs are never unmapped.
 */
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#include "host/pool.h"
#include "sanitize.h"

#ifdef VMMU_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SLAB_MIN_BYTES (64u << 10)
#define SLAB_MIN_OBJS  16u

static size_t stride(const struct host_pool *p)
{
	size_t s = p->size < sizeof(void *) ? sizeof(void *) : p->size;
	return (s + 63) & ~(size_t)63;
}

/* Put @obj on the free list, the link in its first word. [lock] */
static void push(struct host_pool *p, void *obj)
{
	UNPOISON(obj, sizeof(void *));
	*(void **)obj = p->free;
	p->free = obj;
	POISON((char *)obj + sizeof(void *), stride(p) - sizeof(void *));
}

/* Map and populate a slab, outside the lock (the population takes tens of microseconds, and
 * another vCPU allocating meanwhile may hold an MMU spin lock), then free every object of it.
 * false if the host refuses. */
static bool grow(struct host_pool *p)
{
	size_t st = stride(p), bytes = st * SLAB_MIN_OBJS;
	char *slab;

	if (bytes < SLAB_MIN_BYTES)
		bytes = SLAB_MIN_BYTES;
	bytes = (bytes + 4095) & ~(size_t)4095;
	slab = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
		    -1, 0);
	if (slab == MAP_FAILED)
		return false;
	pthread_mutex_lock(&p->lock);
	/* Last object first, so that allocations run upwards through the slab. */
	for (size_t n = bytes / st; n-- > 0;)
		push(p, slab + n * st);
	pthread_mutex_unlock(&p->lock);
	return true;
}

void *host_pool_zalloc(struct host_pool *p)
{
	void *obj;

	pthread_mutex_lock(&p->lock);
	while (!p->free) {
		pthread_mutex_unlock(&p->lock);
		if (!grow(p))
			return NULL;
		pthread_mutex_lock(&p->lock);
	}
	obj = p->free;
	p->free = *(void **)obj;        /* the link's word is never poisoned (push) */
	UNPOISON(obj, p->size);
	pthread_mutex_unlock(&p->lock);
	memset(obj, 0, p->size);
	return obj;
}

void host_pool_free(struct host_pool *p, void *obj)
{
	if (!obj)
		return;
	pthread_mutex_lock(&p->lock);
	push(p, obj);
	pthread_mutex_unlock(&p->lock);
}
