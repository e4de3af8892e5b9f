/* SPDX-License-Identifier: MIT */
/*
 * host/pool: zeroed objects of one size for the MMUs' own metadata (shadow pages and their gfn
 * arrays, the soft MMU's per-gfn nodes, TDP table pages) and the modelled host page table's nodes,
 * as the kernel's slab caches give KVM its kvm_mmu_page headers and rmap memory.
 *
 * Why not malloc: heap memory the process never touched costs a host page fault at its first
 * write, and those writes fall inside the MMU's fault handler (a new shadow page, a new 2 MiB
 * of per-gfn state) or the guest's (a new host page-table node). On a nested host such as the
 * machines this project is measured on, one such fault costs 10-15 us, where a page populated
 * with others costs about 1 us to populate and 5-7 more at its first write (the outer hypervisor
 * still maps it in then): a pool maps its memory in slabs of at least 64 KiB, populated when
 * mapped (MAP_POPULATE), and
 * keeps every object freed for the next allocation. Nothing goes back to the host: a pool's
 * memory is its peak use, as a slab cache without a shrinker.
 *
 * Invariants: an object handed out is zeroed and 64-byte aligned; a free object's first word
 * links the free list (under AddressSanitizer the rest of it is poisoned, so a use after free is
 * reported until the object is handed out again: the list is LIFO, no quarantine; and the
 * padding past the object's size stays poisoned). Slabs are not listed: nothing unmaps them.
 * Locking: pool->lock guards the free list (a slab is mapped outside it); an object belongs to
 * its user between host_pool_zalloc() and host_pool_free(), which any thread may call. A leak
 * checker does not see inside slabs: what only a pool object points to looks leaked to it.
 */
#ifndef VMMU_HOST_POOL_H
#define VMMU_HOST_POOL_H

#include <pthread.h>
#include <stddef.h>

struct host_pool {
	pthread_mutex_t lock;
	size_t size;        /* [c] the objects' size */
	void *free;         /* [lock] free objects, linked through their first word */
};

#define HOST_POOL_INIT(object_size) { PTHREAD_MUTEX_INITIALIZER, (object_size), NULL }

/* A zeroed object, or NULL when the host has no memory left. */
void *host_pool_zalloc(struct host_pool *p);
/* Give @obj (from host_pool_zalloc() of @p, or NULL) back. */
void host_pool_free(struct host_pool *p, void *obj);

#endif
