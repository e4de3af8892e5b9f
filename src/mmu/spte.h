/* SPDX-License-Identifier: MIT */
/*
 * spte helpers shared by the soft and hard MMUs. Every spte is read and written through these
 * atomics, never with plain loads and stores (DESIGN.md Concurrency): lockless walkers (the
 * hardware model of other vCPUs, the fast page fault) read tables while faults install entries.
 *
 *  spte_read     acquire load: a present non-leaf spte read this way makes the table it points to
 *                (initialised before publication) visible;
 *  spte_write    release store, for entries no one else can be changing (under mmu_lock held
 *                exclusive, or a table not yet published);
 *  spte_cmpxchg  sequentially consistent compare-and-swap; on failure *old holds the value found
 *                and nothing was written — the caller re-reads and decides again.
 *
 * Table pages live in the host frame arena; a table at hpa is an array of 512 sptes.
 */
#ifndef VMMU_MMU_SPTE_H
#define VMMU_MMU_SPTE_H

#include <stdbool.h>
#include <stdint.h>

#include "host/host.h"
#include "vmmu/types.h"

static inline uint64_t spte_read(const uint64_t *sptep)
{
	return __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
}

static inline void spte_write(uint64_t *sptep, uint64_t val)
{
	__atomic_store_n(sptep, val, __ATOMIC_RELEASE);
}

static inline bool spte_cmpxchg(uint64_t *sptep, uint64_t *old, uint64_t val)
{
	return __atomic_compare_exchange_n(sptep, old, val, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

/* Atomically exchange: the value before, for zaps that must see what they removed (A/D). */
static inline uint64_t spte_xchg(uint64_t *sptep, uint64_t val)
{
	return __atomic_exchange_n(sptep, val, __ATOMIC_SEQ_CST);
}

/* The 512 sptes of the table page at @hpa. */
static inline uint64_t *spte_table(const struct host_arena *a, hpa_t hpa)
{
	return (uint64_t *)host_pfn_to_ptr(a, hpa >> 12);
}

#endif
