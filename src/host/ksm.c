/* SPDX-License-Identifier: MIT */
/*
 * ksm.c: ksmd, same-page merging over the MERGEABLE VMAs of the mms that share one arena (Linux's
 * mm/ksm.c, reduced to what the model needs).
 *
 * A pass looks at pages_to_scan mapped 4K pages (a THP's one by one), in mm order then hva
 * order, resuming where the last pass stopped; a full scan is one trip over every registered mm.
 * For each page, in the kernel's order (cmp_and_merge_page):
 *   1. the stable tree: KSM frames, read-only, ordered by the xxh64 of their (fixed) bytes; a
 *      byte-for-byte match maps the page to that frame (host_mm_ksm_merge) and frees its own;
 *   2. its xxh64 must equal the one the last full scan recorded, else it is volatile (recorded,
 *      skipped): a page that changes is not worth write-protecting;
 *   3. zero-filled, with use_zero_pages: merged with the zero frame;
 *   4. the unstable tree: this full scan's candidates ordered by the xxh64 recorded at insertion;
 *      a byte-for-byte match makes the candidate's frame a KSM frame (write-protected in place,
 *      moved to the stable tree) and merges the page with it;
 *   5. else the page becomes a candidate.
 * Ordering the unstable tree by the recorded checksum, not by live bytes, keeps it ordered however
 * its pages change; every match is confirmed by comparing bytes under the notifiers.
 *
 * use_mmu_dirty (the MMU's dirty state instead of step 2's checksum): an mm whose secondary MMU
 * offers a host_ksm_tracker has its writes tracked, as a second dirty log. When the scan reaches
 * a page outside its current window, it harvests the 64 pages from there (one lock round and at
 * most one TLB flush for them); written pages of a window harvested in an earlier pass stay
 * written. A tracked page written since its last harvest is volatile at once: no checksum, no
 * stable-tree lookup (the trees are keyed by checksum). One not written, in the same frame as at
 * its last checksum, reuses that checksum; else it is checksummed once and is a candidate at
 * once, as no write came since tracking began. Pages no MMU tracks are checksummed as above.
 *
 * Invariants: a stable node holds one reference on its frame (the tree's); every other reference
 * is a KSM leaf of an mm, read-only, so the frame's bytes never change and xxh64(frame) == key
 * (host_ksm_audit checks it: a write through a stale writable translation would break it). A node
 * whose frame only the tree holds is freed at the end of the full scan.
 *
 * Locking: k->lock (a mutex, the kernel's ksm_thread_mutex) guards everything here and is taken
 * before any mm->lock (lock order: ksm.lock > host_mm.lock); ksmd holds one mm->lock at a time,
 * and changes mappings only through mm.c, which calls the MMU notifiers as host_munmap does.
 * A tracker is called with k->lock and no mm->lock (it takes the memslots' lock and mmu_lock,
 * which a memslot change holds while it reads the host mm: ksm.lock > memslots > host_mm).
 * Checksums and first compares read guest frames with no lock that stops a guest store: the
 * kernel's race too, made harmless by the compare under the notifiers before any merge. Today a
 * pass runs on the vCPUs' own thread between their steps; a ksmd thread beside running vCPUs
 * would need those reads made atomic for ThreadSanitizer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "host/host.h"
#include "host/host_internal.h"

struct stable_node {
	uint64_t key;           /* xxh64 of the frame's bytes */
	pfn_t pfn;              /* the KSM frame */
};

struct unstable_node {
	uint64_t key;           /* xxh64 recorded when it was inserted */
	struct host_mm *mm;
	hva_t hva;
	pfn_t pfn;
};

/* A record's frame when its checksum is no longer known to be the page's (use_mmu_dirty). */
#define KSM_NO_PFN ((pfn_t)-1)

/* Per-mm record of the last checksum of each page (the kernel's rmap_item.oldchecksum) and the
 * frame it was taken of. Open addressing on the hva; 0 marks an empty slot (hva 0 is never
 * mapped). Then use_mmu_dirty's state: the tracker and the window last harvested. */
struct ksm_mm {
	struct host_mm *mm;
	hva_t *hva;
	uint64_t *sum;
	pfn_t *pfn;
	size_t cap;             /* a power of two, or 0 */
	size_t nr;
	const struct host_ksm_tracker *tracker;   /* or NULL */
	void *opaque;
	bool tracking;          /* set_tracking(true) succeeded and was not undone */
	bool win_valid;
	hva_t win_start;        /* the window: 64 pages from here */
	hva_t win_next;         /* its pages below this were looked at: a visit uses a bit once */
	uint64_t win_written, win_tracked;
	uint64_t win_pass;      /* the pass that harvested it */
};

/* Legend: everything [k], guarded by k->lock, but arena which is [c]. */
struct host_ksm {
	pthread_mutex_t lock;
	struct host_arena *arena;
	struct host_ksm_params p;
	struct ksm_mm *mms;
	size_t nr_mms, cap_mms;
	size_t cur_mm;                   /* the scan cursor: mms[cur_mm] at cur_hva */
	hva_t cur_hva;
	struct stable_node *stable;      /* sorted by key */
	size_t nr_stable, cap_stable;
	struct unstable_node *unstable;  /* sorted by key */
	size_t nr_unstable, cap_unstable;
	pfn_t zero_pfn;                  /* allocated, zeroed, when the first mm comes (a machine
					  * with no KSM user holds no frame for it) */
	bool has_zero;
	uint64_t zero_key;
	uint64_t volatile_now;           /* volatile pages in the full scan under way */
	uint64_t volatile_last;          /* and in the last complete one */
	uint64_t full_scans, passes, checksums, compares;
	uint64_t merges;                 /* pages merged, ever */
	uint64_t merge_scan;             /* full_scans when the last merge happened */
	uint64_t cow_breaks_gone;        /* of mms removed since */
	uint64_t mmu_unchanged, mmu_written, mmu_harvests;
};

#define KSM_DEFAULT_PARAMS                                                                         \
	((struct host_ksm_params){ .pages_to_scan = 100, .sleep_millisecs = 20,                    \
				   .use_zero_pages = 0, .max_page_sharing = 256, .run = 1,                 \
				   .use_mmu_dirty = 0 })

static const uint8_t *frame_bytes(const struct host_ksm *k, pfn_t pfn)
{
	return host_pfn_to_ptr(k->arena, pfn);
}

static uint64_t page_sum(struct host_ksm *k, pfn_t pfn)
{
	k->checksums++;
	return XXH64(frame_bytes(k, pfn), HOST_PAGE_SIZE, 0);
}

static bool same_bytes(struct host_ksm *k, pfn_t a, pfn_t b)
{
	k->compares++;
	return memcmp(frame_bytes(k, a), frame_bytes(k, b), HOST_PAGE_SIZE) == 0;
}

/* ---- growable sorted arrays ---- */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 64;
	void *n;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	n = realloc(*arr, c * elem);
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = c;
	return 0;
}

/* Index of the first node whose key is >= @key in an array of @n nodes, @key at offset 0. */
#define LOWER_BOUND(arr, n, want)                                                                  \
	({                                                                                         \
		size_t lo_ = 0, hi_ = (n);                                                         \
		while (lo_ < hi_) {                                                                \
			size_t mid_ = lo_ + (hi_ - lo_) / 2;                                       \
			if ((arr)[mid_].key < (want))                                              \
				lo_ = mid_ + 1;                                                    \
			else                                                                       \
				hi_ = mid_;                                                        \
		}                                                                                  \
		lo_;                                                                               \
	})

static int stable_insert(struct host_ksm *k, uint64_t key, pfn_t pfn)
{
	size_t i;

	if (grow((void **)&k->stable, &k->cap_stable, k->nr_stable + 1, sizeof(*k->stable)))
		return -ENOMEM;
	i = LOWER_BOUND(k->stable, k->nr_stable, key);
	memmove(&k->stable[i + 1], &k->stable[i], (k->nr_stable - i) * sizeof(*k->stable));
	k->stable[i] = (struct stable_node){ .key = key, .pfn = pfn };
	k->nr_stable++;
	return 0;
}

static int unstable_insert(struct host_ksm *k, const struct unstable_node *u)
{
	size_t i;

	if (grow((void **)&k->unstable, &k->cap_unstable, k->nr_unstable + 1, sizeof(*k->unstable)))
		return -ENOMEM;
	i = LOWER_BOUND(k->unstable, k->nr_unstable, u->key);
	memmove(&k->unstable[i + 1], &k->unstable[i], (k->nr_unstable - i) * sizeof(*k->unstable));
	k->unstable[i] = *u;
	k->nr_unstable++;
	return 0;
}

static void unstable_remove(struct host_ksm *k, size_t i)
{
	memmove(&k->unstable[i], &k->unstable[i + 1],
		(k->nr_unstable - i - 1) * sizeof(*k->unstable));
	k->nr_unstable--;
}

/* ---- the per-mm checksum record ---- */

static size_t item_slot(const struct ksm_mm *km, hva_t hva)
{
	size_t i = (size_t)(((hva >> HOST_PAGE_SHIFT) * 0x9E3779B97F4A7C15ULL) >> 20);

	for (i &= km->cap - 1; km->hva[i] && km->hva[i] != hva; i = (i + 1) & (km->cap - 1))
		;
	return i;
}

static int item_rehash(struct ksm_mm *km)
{
	struct ksm_mm n = { .cap = km->cap ? km->cap * 2 : 1024 };

	n.hva = calloc(n.cap, sizeof(*n.hva));
	n.sum = calloc(n.cap, sizeof(*n.sum));
	n.pfn = calloc(n.cap, sizeof(*n.pfn));
	if (!n.hva || !n.sum || !n.pfn) {
		free(n.hva);
		free(n.sum);
		free(n.pfn);
		return -ENOMEM;
	}
	for (size_t i = 0; i < km->cap; i++) {
		if (km->hva[i]) {
			size_t j = item_slot(&n, km->hva[i]);

			n.hva[j] = km->hva[i];
			n.sum[j] = km->sum[i];
			n.pfn[j] = km->pfn[i];
		}
	}
	free(km->hva);
	free(km->sum);
	free(km->pfn);
	km->hva = n.hva;
	km->sum = n.sum;
	km->pfn = n.pfn;
	km->cap = n.cap;
	return 0;
}

/* Record @sum of @pfn for @hva; true if it equals the one recorded before (the page held
 * still). */
static bool item_update(struct ksm_mm *km, hva_t hva, uint64_t sum, pfn_t pfn)
{
	size_t i;

	if ((km->nr + 1) * 2 > km->cap && item_rehash(km))
		return false;   /* no memory: the page is treated as volatile */
	i = item_slot(km, hva);
	km->pfn[i] = pfn;
	if (km->hva[i] == hva) {
		bool same = km->sum[i] == sum;

		km->sum[i] = sum;
		return same;
	}
	km->hva[i] = hva;
	km->sum[i] = sum;
	km->nr++;
	return false;
}

/* The record of @hva if its checksum is still that of @pfn's bytes as far as ksmd knows. */
static bool item_known(const struct ksm_mm *km, hva_t hva, pfn_t pfn, uint64_t *sum)
{
	size_t i;

	if (!km->cap)
		return false;
	i = item_slot(km, hva);
	if (km->hva[i] != hva || km->pfn[i] != pfn || pfn == KSM_NO_PFN)
		return false;
	*sum = km->sum[i];
	return true;
}

/* The page was written: its checksum says nothing of its bytes any more. */
static void item_forget(struct ksm_mm *km, hva_t hva)
{
	size_t i;

	if (!km->cap)
		return;
	i = item_slot(km, hva);
	if (km->hva[i] == hva)
		km->pfn[i] = KSM_NO_PFN;
}

/* ---- merging ---- */

static bool merge_into(struct host_mm *mm, hva_t hva, pfn_t pfn, pfn_t kpfn)
{
	int r;

	host_mm_lock(mm);
	r = host_mm_ksm_merge(mm, hva, pfn, kpfn);
	host_mm_unlock(mm);
	return r == 0;
}

/* Mappings of a KSM frame: its references less the tree's. */
static uint64_t ksm_mappings(const struct host_ksm *k, pfn_t pfn)
{
	return host_frame_refcount(k->arena, pfn) - 1;
}

/*
 * The candidate unstable[@ui] matched @pfn's bytes: make its frame a KSM frame and merge @pfn with
 * it. The node leaves the tree either way. 0 merged, -EAGAIN the candidate is gone (unmapped,
 * copied, merged elsewhere since it went in: its frame may be anyone's now), -ENODATA its bytes
 * or @pfn's changed since the compare, -ENOMEM.
 */
static int merge_with_candidate(struct host_ksm *k, size_t ui, struct host_mm *mm, hva_t hva,
				pfn_t pfn)
{
	struct unstable_node u = k->unstable[ui];
	int r;

	unstable_remove(k, ui);
	host_mm_lock(u.mm);
	r = host_mm_ksm_protect(u.mm, u.hva, u.pfn);
	if (r == 0)
		host_frame_get(k->arena, u.pfn);     /* the stable tree's reference */
	host_mm_unlock(u.mm);
	if (r)
		return r;
	/* Its bytes may have changed between the compare and the write protection: key them by
	 * what they are now, which can no longer change. */
	if (stable_insert(k, page_sum(k, u.pfn), u.pfn)) {
		host_frame_put(k->arena, u.pfn, HOST_ORDER_4K);
		return -ENOMEM; /* a KSM page with one mapping: a write to it just copies it back */
	}
	return merge_into(mm, hva, pfn, u.pfn) ? 0 : -ENODATA;
}

/* The steps of the file comment for a mapped page that is no KSM page yet, its checksum @sum,
 * @still if it held still since the last pass: true if merged. */
static bool cmp_and_merge(struct host_ksm *k, struct ksm_mm *km, hva_t hva, pfn_t pfn, uint64_t sum,
			  bool still)
{
	struct host_mm *mm = km->mm;
	size_t i;

	for (i = LOWER_BOUND(k->stable, k->nr_stable, sum);
	     i < k->nr_stable && k->stable[i].key == sum; i++) {
		if (ksm_mappings(k, k->stable[i].pfn) >= k->p.max_page_sharing)
			continue;       /* full: a duplicate KSM page starts, as the kernel's chains */
		if (same_bytes(k, pfn, k->stable[i].pfn))
			return merge_into(mm, hva, pfn, k->stable[i].pfn);
	}
	if (!still) {
		k->volatile_now++;
		return false;
	}
	if (k->p.use_zero_pages && k->has_zero && sum == k->zero_key &&
	    same_bytes(k, pfn, k->zero_pfn))
		return merge_into(mm, hva, pfn, k->zero_pfn);

	for (i = LOWER_BOUND(k->unstable, k->nr_unstable, sum);
	     i < k->nr_unstable && k->unstable[i].key == sum;) {
		if (!same_bytes(k, pfn, k->unstable[i].pfn)) {
			i++;
			continue;
		}
		int r = merge_with_candidate(k, i, mm, hva, pfn);

		if (r != -EAGAIN)
			return r == 0;
		/* unstable[i] is the next node now. */
	}
	unstable_insert(k, &(struct unstable_node){ .key = sum, .mm = mm, .hva = hva, .pfn = pfn });
	return false;
}

/* ---- use_mmu_dirty ---- */

/* Start or stop @km's write tracking. A failure to start leaves it off: checksums then. */
static int km_track(struct ksm_mm *km, bool on)
{
	int rc;

	if (!km->tracker || km->tracking == on)
		return 0;
	rc = km->tracker->set_tracking(km->opaque, on);
	km->tracking = on && rc == 0;
	km->win_valid = false;
	/* A checksum taken before tracking began may be of bytes written since. */
	for (size_t i = 0; km->tracking && i < km->cap; i++)
		km->pfn[i] = KSM_NO_PFN;
	return rc;
}

static bool in_window(const struct host_ksm *k, const struct ksm_mm *km, hva_t hva)
{
	return km->win_valid && km->win_pass == k->passes && hva >= km->win_next &&
	       hva - km->win_start < 64 * HOST_PAGE_SIZE;
}

/* Harvest the window of 64 pages from @hva, the next page the scan looks at. Pages of the last
 * window not looked at yet keep what it harvested of them. */
static void harvest_window(struct host_ksm *k, struct ksm_mm *km, hva_t hva)
{
	uint64_t written, tracked, carry = 0;

	if (km->win_valid && hva >= km->win_next && hva - km->win_start < 64 * HOST_PAGE_SIZE)
		carry = km->win_written >> ((hva - km->win_start) >> HOST_PAGE_SHIFT);
	km->tracker->harvest(km->opaque, hva, &written, &tracked);
	k->mmu_harvests++;
	km->win_start = km->win_next = hva;
	km->win_written = written | (carry & tracked);
	km->win_tracked = tracked;
	km->win_pass = k->passes;
	km->win_valid = true;
}

/*
 * Step 2 for the page at @hva in frame @pfn (its window harvested if it is tracked): its
 * checksum in *@sum and whether it held still since the last pass in *@still. False: volatile
 * with no checksum taken (the MMU saw it written), already counted.
 */
static bool page_sum_still(struct host_ksm *k, struct ksm_mm *km, hva_t hva, pfn_t pfn,
			   uint64_t *sum, bool *still)
{
	unsigned bit = (unsigned)((hva - km->win_start) >> HOST_PAGE_SHIFT);

	if (km->tracking && in_window(k, km, hva) && ((km->win_tracked >> bit) & 1)) {
		km->win_next = hva + HOST_PAGE_SIZE;
		if ((km->win_written >> bit) & 1) {
			k->mmu_written++;
			k->volatile_now++;
			item_forget(km, hva);
			return false;
		}
		*still = true;
		if (item_known(km, hva, pfn, sum)) {
			k->mmu_unchanged++;
			return true;
		}
		*sum = page_sum(k, pfn);
		item_update(km, hva, *sum, pfn);
		return true;
	}
	*sum = page_sum(k, pfn);
	*still = item_update(km, hva, *sum, pfn);
	return true;
}

/* A full scan ended: the candidates start over; KSM frames nobody maps go back. */
static void full_scan_done(struct host_ksm *k)
{
	size_t j = 0;

	k->nr_unstable = 0;
	k->full_scans++;
	k->volatile_last = k->volatile_now;
	k->volatile_now = 0;
	for (size_t i = 0; i < k->nr_stable; i++) {
		if (ksm_mappings(k, k->stable[i].pfn) == 0)
			host_frame_put(k->arena, k->stable[i].pfn, HOST_ORDER_4K);
		else
			k->stable[j++] = k->stable[i];
	}
	k->nr_stable = j;
}

/* ---- the API ---- */

int host_ksm_create(struct host_arena *a, struct host_ksm **out)
{
	struct host_ksm *k;
	int rc;

	if (!a || !out)
		return -EINVAL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	k->arena = a;
	k->p = KSM_DEFAULT_PARAMS;
	rc = -pthread_mutex_init(&k->lock, NULL);
	if (rc) {
		free(k);
		return rc;
	}
	*out = k;
	return 0;
}

void host_ksm_destroy(struct host_ksm *k)
{
	if (!k)
		return;
	while (k->nr_mms)
		host_ksm_remove_mm(k, k->mms[0].mm);
	for (size_t i = 0; i < k->nr_stable; i++)
		host_frame_put(k->arena, k->stable[i].pfn, HOST_ORDER_4K);
	if (k->has_zero)
		host_frame_put(k->arena, k->zero_pfn, HOST_ORDER_4K);
	pthread_mutex_destroy(&k->lock);
	free(k->mms);
	free(k->stable);
	free(k->unstable);
	free(k);
}

int host_ksm_add_mm(struct host_ksm *k, struct host_mm *mm, const struct host_ksm_tracker *tracker,
		    void *opaque)
{
	int rc = 0;

	if (!k || !mm || host_mm_arena(mm) != k->arena)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nr_mms; i++)
		if (k->mms[i].mm == mm)
			goto out;
	if (!k->has_zero) {
		rc = host_frame_alloc(k->arena, HOST_ORDER_4K, &k->zero_pfn);
		if (rc)
			goto out;
		k->has_zero = true;
		k->zero_key = XXH64(frame_bytes(k, k->zero_pfn), HOST_PAGE_SIZE, 0);
	}
	rc = grow((void **)&k->mms, &k->cap_mms, k->nr_mms + 1, sizeof(*k->mms));
	if (rc)
		goto out;
	k->mms[k->nr_mms++] = (struct ksm_mm){ .mm = mm, .tracker = tracker, .opaque = opaque };
	/* Could it not start, the mm is scanned by checksums. */
	if (k->p.use_mmu_dirty)
		km_track(&k->mms[k->nr_mms - 1], true);
out:
	pthread_mutex_unlock(&k->lock);
	return rc;
}

void host_ksm_remove_mm(struct host_ksm *k, struct host_mm *mm)
{
	size_t i, j = 0;

	if (!k || !mm)
		return;
	pthread_mutex_lock(&k->lock);
	for (i = 0; i < k->nr_mms && k->mms[i].mm != mm; i++)
		;
	if (i == k->nr_mms)
		goto out;
	k->cow_breaks_gone += host_mm_ksm_cow_breaks(mm);
	km_track(&k->mms[i], false);
	free(k->mms[i].hva);
	free(k->mms[i].sum);
	free(k->mms[i].pfn);
	memmove(&k->mms[i], &k->mms[i + 1], (k->nr_mms - i - 1) * sizeof(*k->mms));
	k->nr_mms--;
	if (k->cur_mm == i)
		k->cur_hva = 0;         /* the next mm, from its start */
	else if (k->cur_mm > i)
		k->cur_mm--;
	if (k->cur_mm >= k->nr_mms)
		k->cur_mm = 0;
	for (i = 0; i < k->nr_unstable; i++)
		if (k->unstable[i].mm != mm)
			k->unstable[j++] = k->unstable[i];
	k->nr_unstable = j;
out:
	pthread_mutex_unlock(&k->lock);
}

/* The knobs, their ranges as /sys/kernel/mm/ksm takes them. */
static const struct host_knob ksm_knobs[] = {
	{ "pages_to_scan", offsetof(struct host_ksm_params, pages_to_scan), 0, 1u << 30 },
	{ "sleep_millisecs", offsetof(struct host_ksm_params, sleep_millisecs), 0, 1u << 30 },
	{ "use_zero_pages", offsetof(struct host_ksm_params, use_zero_pages), 0, 1 },
	{ "max_page_sharing", offsetof(struct host_ksm_params, max_page_sharing), 2, 1u << 30 },
	{ "run", offsetof(struct host_ksm_params, run), 0, 1 },
	{ "use_mmu_dirty", offsetof(struct host_ksm_params, use_mmu_dirty), 0, 1 },
	{ NULL, 0, 0, 0 },
};

int host_ksm_param_check(const char *key, uint64_t val, uint64_t *min, uint64_t *max)
{
	return host_knob_check(ksm_knobs, key, val, min, max);
}

int host_ksm_get_param(struct host_ksm *k, const char *key, uint64_t *val)
{
	if (!k || !val)
		return -EINVAL;
	return host_knob_get(ksm_knobs, &k->lock, &k->p, key, val);
}

int host_ksm_set_param(struct host_ksm *k, const char *key, uint64_t val)
{
	const struct host_knob *kn = host_knob_find(ksm_knobs, key);
	int rc = 0;

	if (!k || !kn)
		return k ? -ENOENT : -EINVAL;
	if (val < kn->min || val > kn->max)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	*host_knob_field(&k->p, kn) = val;
	/* Every mm follows; one that cannot start tracking stays on checksums (the error says
	 * so). */
	if (kn->off == offsetof(struct host_ksm_params, use_mmu_dirty))
		for (size_t i = 0; i < k->nr_mms; i++) {
			int r = km_track(&k->mms[i], val);

			rc = rc ? rc : r;
		}
	pthread_mutex_unlock(&k->lock);
	return rc;
}

void host_ksm_get_params(struct host_ksm *k, struct host_ksm_params *p)
{
	pthread_mutex_lock(&k->lock);
	*p = k->p;
	pthread_mutex_unlock(&k->lock);
}

int host_ksm_scan(struct host_ksm *k)
{
	unsigned empty_mms = 0;
	int merged = 0;

	if (!k)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	if (!k->p.run)
		goto out;
	k->passes++;
	for (uint64_t n = 0; n < k->p.pages_to_scan && k->nr_mms;) {
		struct ksm_mm *km = &k->mms[k->cur_mm];
		bool is_ksm, found, harvest, look = false, still = false;
		uint64_t sum = 0;
		pfn_t pfn;
		hva_t hva;

		host_mm_lock(km->mm);
		found = host_mm_next_mergeable(km->mm, &k->cur_hva, &pfn, &is_ksm);
		hva = k->cur_hva;
		/* The harvest takes the memslots' and the MMU's locks, which come before mm->lock:
		 * it is done unlocked, and the page looked up again. */
		harvest = found && !is_ksm && km->tracking && !in_window(k, km, hva);
		if (found && !is_ksm && !harvest)
			look = page_sum_still(k, km, hva, pfn, &sum, &still);
		host_mm_unlock(km->mm);
		if (harvest) {
			harvest_window(k, km, hva);
			continue;
		}
		if (!found) {
			k->cur_hva = 0;
			if (++k->cur_mm == k->nr_mms) {
				k->cur_mm = 0;
				full_scan_done(k);
			}
			/* Nothing mapped anywhere: one full scan a pass is enough. */
			if (++empty_mms > k->nr_mms)
				break;
			continue;
		}
		empty_mms = 0;
		k->cur_hva += HOST_PAGE_SIZE;
		n++;
		if (!look || !cmp_and_merge(k, km, hva, pfn, sum, still))
			continue;
		merged++;
		k->merges++;
		k->merge_scan = k->full_scans;
	}
out:
	pthread_mutex_unlock(&k->lock);
	return merged;
}

void host_ksm_get_stats(struct host_ksm *k, struct host_ksm_stats *st)
{
	uint64_t meta = 0;

	memset(st, 0, sizeof(*st));
	if (!k)
		return;
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nr_stable; i++) {
		uint64_t m = ksm_mappings(k, k->stable[i].pfn);

		if (m) {
			st->pages_shared++;
			st->pages_sharing += m - 1;
		}
	}
	st->pages_unshared = k->nr_unstable;
	st->pages_volatile = k->full_scans ? k->volatile_last : k->volatile_now;
	st->full_scans = k->full_scans;
	st->zero_pages = k->has_zero ? host_frame_refcount(k->arena, k->zero_pfn) - 1 : 0;
	st->cow_breaks = k->cow_breaks_gone;
	for (size_t i = 0; i < k->nr_mms; i++) {
		st->cow_breaks += host_mm_ksm_cow_breaks(k->mms[i].mm);
		meta += k->mms[i].cap * (sizeof(hva_t) + sizeof(uint64_t) + sizeof(pfn_t));
	}
	meta += k->cap_stable * sizeof(*k->stable) + k->cap_unstable * sizeof(*k->unstable);
	st->general_profit = (int64_t)((st->pages_sharing + st->zero_pages) * HOST_PAGE_SIZE) -
			     (int64_t)meta;
	st->checksums = k->checksums;
	st->compares = k->compares;
	st->passes = k->passes;
	st->merges = k->merges;
	st->merge_scans = k->merges ? k->merge_scan + 1 : 0;
	st->mmu_unchanged = k->mmu_unchanged;
	st->mmu_written = k->mmu_written;
	st->mmu_harvests = k->mmu_harvests;
	pthread_mutex_unlock(&k->lock);
}

static int cmp_hva(const void *a, const void *b)
{
	hva_t x = *(const hva_t *)a, y = *(const hva_t *)b;

	return (x > y) - (x < y);
}

/* use_mmu_dirty's premise: a checksum page_sum_still() would reuse is that of the bytes. Pages
 * of the current window go by what it harvested, which the tracker no longer holds. In hva
 * order, one look at the tracker per 64 pages. */
static int audit_reuse(struct host_ksm *k, struct ksm_mm *km, char *why, size_t whylen)
{
	uint64_t written = 0, tracked = 0;
	hva_t win = 0, *hvas;
	size_t n = 0;
	int rc = 0;

	if (!km->tracking || !km->tracker->peek || !km->cap)
		return 0;
	hvas = malloc(km->cap * sizeof(*hvas));
	if (!hvas)
		return 0;       /* a debug check: no memory, no check */
	for (size_t i = 0; i < km->cap; i++)
		if (km->hva[i] && km->pfn[i] != KSM_NO_PFN)
			hvas[n++] = km->hva[i];
	qsort(hvas, n, sizeof(*hvas), cmp_hva);
	for (size_t i = 0; i < n && !rc; i++) {
		hva_t hva = hvas[i];
		uint64_t bit, sum;
		pfn_t pfn;
		bool w;

		if (!win || hva - win >= 64 * HOST_PAGE_SIZE) {
			win = hva;
			km->tracker->peek(km->opaque, win, &written, &tracked);
		}
		bit = (hva - win) >> HOST_PAGE_SHIFT;
		w = (written >> bit) & 1;
		if (km->win_valid && hva >= km->win_next && hva - km->win_start < 64 * HOST_PAGE_SIZE)
			w |= (km->win_written >> ((hva - km->win_start) >> HOST_PAGE_SHIFT)) & 1;
		if (!((tracked >> bit) & 1) || w || host_hva_lookup(km->mm, hva, &pfn, NULL) ||
		    !item_known(km, hva, pfn, &sum))
			continue;
		if (XXH64(frame_bytes(k, pfn), HOST_PAGE_SIZE, 0) != sum) {
			snprintf(why, whylen, "page %#llx changed, unwritten as its MMU says: a write "
				 "went untracked", (unsigned long long)hva);
			rc = -EIO;
		}
	}
	free(hvas);
	return rc;
}

int host_ksm_audit(struct host_ksm *k, char *why, size_t whylen)
{
	int rc = 0;

#define AUDIT_FAIL(...)                                                                            \
	do {                                                                                       \
		snprintf(why, whylen, __VA_ARGS__);                                                \
		rc = -EIO;                                                                         \
		goto out;                                                                          \
	} while (0)

	if (!k)
		return -EINVAL;
	pthread_mutex_lock(&k->lock);
	for (size_t i = 0; i < k->nr_stable; i++) {
		const struct stable_node *s = &k->stable[i];

		if (i && k->stable[i - 1].key > s->key)
			AUDIT_FAIL("stable tree out of order at %zu", i);
		if (!host_pfn_valid(k->arena, s->pfn) || host_frame_refcount(k->arena, s->pfn) < 1)
			AUDIT_FAIL("stable node %zu: pfn %#llx not held", i,
				   (unsigned long long)s->pfn);
		if (XXH64(frame_bytes(k, s->pfn), HOST_PAGE_SIZE, 0) != s->key)
			AUDIT_FAIL("KSM frame %#llx changed: a write went through",
				   (unsigned long long)s->pfn);
		if (k->has_zero && s->pfn == k->zero_pfn)
			AUDIT_FAIL("the zero frame is in the stable tree");
	}
	if (k->has_zero && XXH64(frame_bytes(k, k->zero_pfn), HOST_PAGE_SIZE, 0) != k->zero_key)
		AUDIT_FAIL("the zero frame was written");
	for (size_t i = 0; i < k->nr_unstable; i++) {
		const struct unstable_node *u = &k->unstable[i];
		bool known = false;

		if (i && k->unstable[i - 1].key > u->key)
			AUDIT_FAIL("unstable tree out of order at %zu", i);
		for (size_t j = 0; j < k->nr_mms; j++)
			known |= k->mms[j].mm == u->mm;
		if (!known)
			AUDIT_FAIL("unstable node %zu of an mm ksmd no longer scans", i);
		for (size_t j = 0; j < i; j++)
			if (k->unstable[j].mm == u->mm && k->unstable[j].hva == u->hva)
				AUDIT_FAIL("page %#llx twice in the unstable tree",
					   (unsigned long long)u->hva);
	}
	for (size_t j = 0; j < k->nr_mms; j++) {
		rc = audit_reuse(k, &k->mms[j], why, whylen);
		if (rc)
			goto out;
	}
out:
	pthread_mutex_unlock(&k->lock);
	return rc;
#undef AUDIT_FAIL
}
