/* SPDX-License-Identifier: MIT */
/*
 * host_internal.h: what the files of host/ share and nobody else sees.
 *
 * The mm frees page after page when it unmaps a range; dropping them one by one would cost a
 * madvise() system call and an arena->lock round trip per 4 KiB, so the arena offers a batched put.
 */
#ifndef VMMU_HOST_INTERNAL_H
#define VMMU_HOST_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

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

/* A daemon's knob (ksmd's, khugepaged's): its sysfs name, where it sits in the daemon's params
 * struct (a uint64_t), the values it takes. Tables end with a NULL name. */
struct host_knob {
	const char *name;
	size_t off;
	uint64_t min, max;
};

static inline const struct host_knob *host_knob_find(const struct host_knob *t, const char *key)
{
	for (; key && t->name; t++)
		if (!strcmp(key, t->name))
			return t;
	return NULL;
}

/* 0, -ENOENT (no such knob) or -ERANGE; the range in *@min, *@max (may be NULL) if it exists. */
static inline int host_knob_check(const struct host_knob *t, const char *key, uint64_t val,
				  uint64_t *min, uint64_t *max)
{
	const struct host_knob *kn = host_knob_find(t, key);

	if (!kn)
		return -ENOENT;
	if (min)
		*min = kn->min;
	if (max)
		*max = kn->max;
	return val < kn->min || val > kn->max ? -ERANGE : 0;
}

static inline uint64_t *host_knob_field(void *params, const struct host_knob *kn)
{
	return (uint64_t *)((char *)params + kn->off);
}

/* A daemon's get_param: the knob @key of @params, read under @lock. */
static inline int host_knob_get(const struct host_knob *t, pthread_mutex_t *lock, void *params,
				const char *key, uint64_t *val)
{
	const struct host_knob *kn = host_knob_find(t, key);

	if (!kn)
		return -ENOENT;
	pthread_mutex_lock(lock);
	*val = *host_knob_field(params, kn);
	pthread_mutex_unlock(lock);
	return 0;
}

/* For khugepaged (khugepaged.c). A scan's knob and budget in, what it did out. */
struct host_collapse_ctl {
	unsigned max_ptes_none;     /* in: none entries a 2M range may have and still collapse */
	uint64_t budget;            /* in/out: pages left to scan in this pass */
	uint64_t scanned;           /* out (added to): pages looked at, a 2M range's 512 each */
	uint64_t collapsed;         /* out (added to): ranges collapsed into a THP */
	uint64_t alloc_failed;      /* out (added to): collapses with no free 2M block; the scan
				     * stops at the first */
};
/* Scan @mm's THP-eligible VMAs from *@cursor, 2M range by 2M range, collapsing those that qualify
 * (mm.c, collapse_scan_range), until the budget is spent or an allocation fails: then false and
 * *@cursor where to resume. true (and *@cursor 0) when it reached the end of the mm. Takes
 * mm->lock for writing; the notifiers hear of each collapse as of an unmap of its 2M. */
bool host_mm_collapse_scan(struct host_mm *mm, hva_t *cursor, struct host_collapse_ctl *c);

#endif
