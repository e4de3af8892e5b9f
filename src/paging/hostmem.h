/* SPDX-License-Identifier: MIT */
/*
 * paging/hostmem: host physical memory as the page-walk hardware sees it. Addresses are hpas
 * (pfn << 12) in a struct host_arena; the EPT/NPT tables and the frames behind guest memory
 * live there.
 *
 * host_mem_ops is a struct guest_mem_ops whose opaque is the struct host_arena * and whose
 * addresses are hpas, so the x86 walker can walk tables in host memory (NPT, native tests).
 *
 * Invariants: an access is 4 or 8 bytes, naturally aligned (-EINVAL otherwise), so it never
 * straddles a frame; an hpa outside the arena or in a frame that is not allocated is -ENOENT and
 * touches nothing, so a hostile table can point anywhere and still reach only allocated frames.
 *
 * Locking: none. Every access is one atomic load, store or compare-and-swap, so walkers of other
 * vCPUs and MMU writers may run at the same time. The validity check guards against hostile
 * addresses, not against a frame freed during the access: MMU tables are freed after an RCU grace
 * period, so callers walking them hold rcu_read_lock (and a freed frame still lies in the arena's
 * mapping: reading it gives zeros, never a crash).
 */
#ifndef VMMU_PAGING_HOSTMEM_H
#define VMMU_PAGING_HOSTMEM_H

#include <stdint.h>
#include <string.h>

#include "host/host.h"
#include "paging/paging.h"
#include "vmmu/types.h"

/* opaque: struct host_arena *; read = acquire load, cmpxchg = sequentially consistent. */
extern const struct guest_mem_ops host_mem_ops;

/* Load @len (4 or 8) bytes at @hpa into *@val (zero-extended), with acquire ordering: a table
 * published with a release store is seen whole. 0, -ENOENT or -EINVAL. */
int hostmem_load(const struct host_arena *a, hpa_t hpa, unsigned len, uint64_t *val);

/* hostmem_load into a walker's buffer (@len bytes at @buf): host_mem_ops.read, inline for a
 * walker instance's WALK_READ and the nested walk's reads. */
static inline int hostmem_read(const struct host_arena *a, hpa_t hpa, void *buf, unsigned len)
{
	uint64_t v = 0;
	int err = hostmem_load(a, hpa, len, &v);

	if (err)
		return err;
	if (len == 8) {
		memcpy(buf, &v, 8);
	} else {
		uint32_t v32 = (uint32_t)v;

		memcpy(buf, &v32, 4);
	}
	return 0;
}

/* Store @len bytes of @val at @hpa with release ordering. 0, -ENOENT or -EINVAL. */
int hostmem_store(struct host_arena *a, hpa_t hpa, unsigned len, uint64_t val);

/* If the @len bytes at @hpa equal @old, replace them with @val (sequentially consistent).
 * 0, -EAGAIN when they differ (nothing written), -ENOENT or -EINVAL. */
int hostmem_cmpxchg(struct host_arena *a, hpa_t hpa, uint64_t old, uint64_t val, unsigned len);

#endif
