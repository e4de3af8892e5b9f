/* SPDX-License-Identifier: MIT */
/*
 * host_internal.h: what the files of host/ share and nobody else sees.
 *
 * The mm frees page after page when it unmaps a range; dropping them one by one would cost a
 * madvise() system call and an arena->lock round trip per 4 KiB, so the arena offers a batched put.
 */
#ifndef VMMU_HOST_INTERNAL_H
#define VMMU_HOST_INTERNAL_H

#include <stddef.h>

#include "host/host.h"

/* Lowest and one past the highest hva of the modelled user address space (x86-64 4-level,
 * canonical lower half, page 0 never mapped). */
#define HOST_USER_MIN 0x1000ULL
#define HOST_USER_MAX (1ULL << 47)

#define HOST_SIZE_2M (HOST_PAGE_SIZE << HOST_ORDER_2M)
#define HOST_SIZE_1G (HOST_PAGE_SIZE << HOST_ORDER_1G)

/*
 * Drop one reference on each of @n order-0 frames. Those that reach zero are handed back to the
 * kernel with one madvise() per run of consecutive pfns and freed under one arena->lock. Same
 * contract as host_frame_put(a, pfns[i], 0) for each i. Takes arena->lock; may be called with
 * mm->lock held (lock order: mm->lock before arena->lock).
 */
void host_frame_put_many(struct host_arena *a, const pfn_t *pfns, size_t n);

/* For ksmd (ksm.c): the mm's lock, and the mm walk and edits it makes holding it. */
void host_mm_lock(struct host_mm *mm);
void host_mm_unlock(struct host_mm *mm);
/* The first mapped 4K page at or after *@hva in a MERGEABLE VMA (a 2M leaf's pages one by one):
 * its hva, pfn and whether it maps a KSM frame. false past the last one. */
bool host_mm_next_mergeable(struct host_mm *mm, hva_t *hva, pfn_t *pfn, bool *ksm);
/* Make @hva's mapping of @pfn a read-only KSM mapping, under the notifiers (a 2M mapping is split
 * first). -EAGAIN if @hva no longer maps @pfn, or maps it as a KSM page already. */
int host_mm_ksm_protect(struct host_mm *mm, hva_t hva, pfn_t pfn);
/* Replace @hva's mapping of @pfn by the KSM frame @kpfn if their bytes are equal (compared with
 * the notifiers' start called, so no one writes meanwhile); takes a reference on @kpfn and drops
 * @pfn's. -EAGAIN (mapping changed) or -ENODATA (bytes differ). */
int host_mm_ksm_merge(struct host_mm *mm, hva_t hva, pfn_t pfn, pfn_t kpfn);
/* Does @hva map a KSM frame? Its pfn in *@pfn. */
bool host_mm_leaf_is_ksm(struct host_mm *mm, hva_t hva, pfn_t *pfn);

#endif
