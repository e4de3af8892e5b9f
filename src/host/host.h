/* SPDX-License-Identifier: MIT */
/*
 * host/: the host the VMM runs on.
 *
 *  - The frame arena: host "physical" memory, one large MAP_NORESERVE mmap. pfn N is the 4 KiB at
 *    arena + N * 4096. A freed frame is handed back with madvise(MADV_DONTNEED), so RSS falls.
 *  - A buddy allocator over the arena for 4K (order 0), 2M (order 9) and 1G (order 18) frames.
 *  - Per-frame metadata (struct host_frame, at most 32 bytes a frame), in a second NORESERVE
 *    mapping, so untouched frames cost no RSS.
 *  - The VMM process's address space (struct host_mm): VMAs made by host_mmap(), and hva -> pfn
 *    created on first touch (a modelled host page fault), 4K, 2M (THP or hugetlb) or 1G
 *    (hugetlb).
 *  - MMU notifiers: every change of an hva -> pfn mapping calls invalidate_range_start/end of every
 *    registered notifier; clear_young/test_young age the mappings.
 *
 * Locking: the arena's buddy lists take arena->lock (a mutex). An mm's page table and VMAs take
 * mm->lock (a reader-writer lock, host/brlock.h, as mmap_lock: written for changes, read for
 * lookups and faults on pages already mapped); notifiers are called with it held for writing, so
 * a notifier must not call back into the mm. Frame refcounts are atomic.
 */
#ifndef VMMU_HOST_H
#define VMMU_HOST_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <urcu/list.h>

#include "vmmu/types.h"

/* The arena's populate-ahead (arena.c) and its test use it; older C library headers lack it. */
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23   /* Linux 5.14 */
#endif

#define HOST_PAGE_SHIFT 12
#define HOST_PAGE_SIZE  (1ULL << HOST_PAGE_SHIFT)
#define HOST_ORDER_4K   0
#define HOST_ORDER_2M   9
#define HOST_ORDER_1G   18
#define HOST_MAX_ORDER  HOST_ORDER_1G

/* ---- frames ---- */

struct host_frame;          /* 32 bytes, private to arena.c */
struct host_arena;

/* Create an arena of @bytes (rounded up to 1 GiB) of host physical memory. 0 or -errno. */
int host_arena_create(uint64_t bytes, struct host_arena **out);
void host_arena_destroy(struct host_arena *a);

/* Allocate 2^@order contiguous, naturally aligned frames, zeroed. 0 or -ENOMEM / -EINVAL. The
 * frames start with refcount 1. */
int host_frame_alloc(struct host_arena *a, unsigned order, pfn_t *pfn);
/* Drop a reference to the block starting at @pfn (allocated with @order); the last one frees it,
 * returns its memory to the kernel and merges buddies. */
void host_frame_put(struct host_arena *a, pfn_t pfn, unsigned order);
void host_frame_get(struct host_arena *a, pfn_t pfn);
/* A block its only holder will put after an RCU grace period (readers may still be in it): from
 * now on it no longer counts in host_arena_frames_used(), so that figure does not depend on when
 * the grace period ends; host_frame_put_retired() then frees it without counting it again. The
 * blocks retired are the MMUs' 4K tables: put_retired zeroes such a block with stores and keeps
 * it resident for its next use, where host_frame_put gives the memory back to the kernel. */
void host_frame_retire(struct host_arena *a, pfn_t pfn, unsigned order);
void host_frame_put_retired(struct host_arena *a, pfn_t pfn, unsigned order);
unsigned host_frame_refcount(const struct host_arena *a, pfn_t pfn);
/* The owner's word of an allocated block's head (the kernel's page->private): 0 at allocation,
 * read and written atomically (release/acquire), so a lockless reader that reached the frame
 * while it is allocated finds what its owner published. The soft MMU keeps its shadow page
 * there. host_frame_private() of a frame no one holds returns whatever was left: callers make
 * sure the frame stays allocated (an RCU grace period before the put, say). */
void host_frame_set_private(struct host_arena *a, pfn_t pfn, uintptr_t val);
uintptr_t host_frame_private(const struct host_arena *a, pfn_t pfn);
/* host_frame_get() and host_frame_refcount() take any frame of a block and act on the block, as
 * the kernel does on a compound page's head; host_frame_put() takes the head and the order. */

/* Split the allocated block of 2^@order frames at @pfn into 2^@order order-0 frames in place (no
 * copy), each starting with the block's refcount: a reference to the block becomes one on each
 * frame. The mm splits a 2M THP so when part of it is unmapped. */
void host_frame_split(struct host_arena *a, pfn_t pfn, unsigned order);
/* The same into 2^(@order - @new_order) blocks of 2^@new_order frames each: a 1G hugetlb page
 * becomes 512 2M ones when part of it is unmapped. */
void host_frame_split_to(struct host_arena *a, pfn_t pfn, unsigned order, unsigned new_order);

/* A zeroed object of the process (not an arena frame) on cache lines of its own: what one
 * thread writes on every access (a vCPU, its TLB, its MMU state) must share no line with another
 * thread's, and malloc packs objects made one after the other on the same line. free() it. */
static inline void *host_zalloc_lines(size_t size)
{
	size = (size + 63) & ~(size_t)63;
	void *p = aligned_alloc(64, size);

	if (p)
		memset(p, 0, size);
	return p;
}

/* The bytes of frame @pfn. Valid while the frame is allocated. */
void *host_pfn_to_ptr(const struct host_arena *a, pfn_t pfn);
bool host_pfn_valid(const struct host_arena *a, pfn_t pfn);    /* inside the arena and allocated */
/* The bytes at host physical address @hpa if host_pfn_valid() holds for its frame, else NULL:
 * the page-walk hardware's every read, in one call. */
void *host_hpa_ptr(const struct host_arena *a, uint64_t hpa);
/* Where the arena keeps frame @pfn's own metadata (HOST_FRAME_META_BYTES), for a caller that
 * prefetches it before host_pfn_valid reads it; NULL outside the arena. */
#define HOST_FRAME_META_BYTES 24
const void *host_frame_meta(const struct host_arena *a, pfn_t pfn);
/* host_hpa_ptr, its usual case inline (a frame that heads an allocated block, as every MMU table
 * is) and the rest through the call, for a walker that reads four or five entries a walk and
 * would otherwise make that many calls. @base, @meta and @nframes: the caller's copies of
 * host_pfn_to_ptr(@a, 0), host_frame_meta(@a, 0) and host_arena_frames(@a). Where a frame's
 * metadata keeps the word that says so, and the bit (arena.c checks both). */
#define HOST_FRAME_INFO_OFFSET 12
#define HOST_FRAME_INFO_HEAD (1u << 6)
static inline void *host_hpa_ptr_inline(const struct host_arena *a, uint8_t *base,
					const uint8_t *meta, uint64_t nframes, uint64_t hpa)
{
	const uint64_t pfn = hpa >> 12;

	if (__builtin_expect(pfn < nframes, 1)) {
		const uint32_t *info =
			(const uint32_t *)(meta + pfn * HOST_FRAME_META_BYTES + HOST_FRAME_INFO_OFFSET);
		/* Acquire, as arena.c's own reads: the frame's allocation is seen before its bytes. */
		if (__builtin_expect(__atomic_load_n(info, __ATOMIC_ACQUIRE) & HOST_FRAME_INFO_HEAD, 1))
			return base + hpa;
	}
	return host_hpa_ptr(a, hpa);
}

uint64_t host_arena_frames(const struct host_arena *a);        /* total 4K frames */
uint64_t host_arena_frames_used(const struct host_arena *a);   /* allocated 4K frames, less
								  * retired ones */
/* The arena's memory the kernel holds for this process now (frames and their metadata, by
 * mincore): what the arena costs in RSS, apart from every other mapping of the process (a
 * sanitizer's shadow, say). UINT64_MAX if mincore fails. */
uint64_t host_arena_resident_bytes(const struct host_arena *a);

/* A fragmenter, as memory-fragmentation studies run before a workload: every other 4K frame of
 * @pct% of the free 2M blocks (taken in allocation order) held, so no 2M block can be made of
 * them until host_arena_unfragment() lets them go (and frees the array); *@npins frames held,
 * counted as used (never written: no RSS). 0, -EINVAL or -ENOMEM. */
int host_arena_fragment(struct host_arena *a, unsigned pct, pfn_t **pins, size_t *npins);
void host_arena_unfragment(struct host_arena *a, pfn_t *pins, size_t npins);

/* ---- the VMM address space ---- */

struct host_mm;

enum host_thp { HOST_THP_NEVER = 0, HOST_THP_MADVISE, HOST_THP_ALWAYS };

#define HOST_VMA_HUGEPAGE  (1u << 0)   /* madvise(MADV_HUGEPAGE) on this VMA */
#define HOST_VMA_MERGEABLE (1u << 1)   /* madvise(MADV_MERGEABLE): ksmd scans this VMA */
/* A mapping of a hugetlbfs file: host_mmap() aligns it and rounds its length up to the page
 * size, and a first touch maps a whole page of that size (the largest that fits inside the VMA
 * and has a free block: the model's pool is the arena, never empty on purpose, so it falls back
 * where hugetlbfs would fail the fault). Never with MERGEABLE: ksmd skips hugetlb VMAs. */
#define HOST_VMA_HUGETLB_2M (1u << 2)
#define HOST_VMA_HUGETLB_1G (1u << 3)

struct host_mmu_notifier;
struct host_mmu_notifier_ops {
	/* [start, end) of hva is about to change: drop every translation derived from it. */
	void (*invalidate_range_start)(struct host_mmu_notifier *mn, hva_t start, hva_t end);
	void (*invalidate_range_end)(struct host_mmu_notifier *mn, hva_t start, hva_t end);
	/* Clear the accessed state of [start,end); return true if any was young. */
	bool (*clear_young)(struct host_mmu_notifier *mn, hva_t start, hva_t end);
	bool (*test_young)(struct host_mmu_notifier *mn, hva_t start, hva_t end);
};
struct host_mmu_notifier {
	const struct host_mmu_notifier_ops *ops;
	struct cds_list_head link;        /* in the mm's list, set by register */
};

int host_mm_create(struct host_arena *a, enum host_thp thp, struct host_mm **out);
void host_mm_destroy(struct host_mm *mm);

/* Create an anonymous VMA: [@hint, @hint+@len) if @hint != 0 (must be free, page aligned), else
 * anywhere. 0 or -EINVAL / -EEXIST / -ENOMEM. Pages are made on first touch. */
int host_mmap(struct host_mm *mm, hva_t hint, uint64_t len, unsigned vma_flags, hva_t *out);
/* Remove [hva, hva+len): frees the frames, calls the notifiers. */
int host_munmap(struct host_mm *mm, hva_t hva, uint64_t len);
/* host_munmap calls invalidate_range_start/end once, with exactly [hva, hva+len) (len rounded up
 * to a page), whenever that range overlaps a VMA, whether or not pages were faulted in (as Linux
 * notifies per unmapped range); a range that overlaps no VMA changes nothing and notifies nobody.
 * It returns 0 then too, as munmap(2) does. The end of a range that falls inside a 2M mapping
 * splits it into 4K mappings of the same frames (inside a 1G hugetlb mapping: into 2M mappings,
 * and the 2M one the end falls in into 4K ones): the invalidated range overlaps the huge mapping,
 * so secondary MMUs drop any huge translation of it. host_mm_destroy() unmaps all VMAs the same
 * way, so notifiers still registered then hear of it. */

/* hva -> pfn, faulting the page in (zeroed) if absent, as get_user_pages would. -EFAULT when hva is
 * in no VMA. @huge (may be NULL) says if a 2M mapping backs it. */
int host_hva_to_pfn(struct host_mm *mm, hva_t hva, bool write, pfn_t *pfn, bool *huge);
/* (host_hva_to_pfn: the pfn carries no reference for the caller; it backs hva until an
 * invalidate_range_start that covers hva, as KVM relies on the notifiers. It marks the mapping
 * young; host_hva_lookup does not.) */

/* The same, and *@writable (may be NULL): whether the mapping may be written now. A KSM page is
 * not, until a lookup with @write breaks its COW (a frame of its own, the notifiers called first),
 * as get_user_pages(FOLL_WRITE) does; a secondary MMU must map a read lookup's pfn read-only
 * when *@writable is false. */
int host_hva_to_pfn_prot(struct host_mm *mm, hva_t hva, bool write, pfn_t *pfn, bool *huge,
			 bool *writable);

/* The same with the size of the mapping that backs @hva: *@order (may be NULL) is HOST_ORDER_4K,
 * HOST_ORDER_2M (THP or hugetlb) or HOST_ORDER_1G (hugetlb). */
int host_hva_to_pfn_order(struct host_mm *mm, hva_t hva, bool write, pfn_t *pfn, unsigned *order,
			  bool *writable);
int host_hva_lookup_order(struct host_mm *mm, hva_t hva, pfn_t *pfn, unsigned *order,
			  bool *writable);

/* The VMM's own access to its memory at @hva (inside one page): @fn(ptr, @arg) runs on the
 * page's bytes with its mapping held still (mm->lock read: no collapse, KSM merge, COW break or
 * unmap replaces or frees the page under it, as a user access of the process is ordered with the
 * kernel's changes of its page table). The page is faulted in first if need be (@write: made
 * writable, a KSM page copied). 0, or -EFAULT (in no VMA) / -ENOMEM. Not with mm->lock held. */
int host_hva_access(struct host_mm *mm, hva_t hva, bool write, void (*fn)(void *ptr, void *arg),
		    void *arg);

/* The same without faulting: -ENOENT if not mapped. */
int host_hva_lookup(struct host_mm *mm, hva_t hva, pfn_t *pfn, bool *huge);
/* The same and whether it may be written (false for a KSM page), without the mm's lock ever (the
 * kernel's GUP-fast), for a caller holding a lock the mm's may not nest in (an MMU's mmu_lock):
 * -ENOENT if not mapped, or while a change of the mm is under way (its notifiers, which come to
 * that lock, will follow). */
int host_hva_peek_prot(struct host_mm *mm, hva_t hva, pfn_t *pfn, bool *writable);
/* Load the naturally aligned @len-byte word (4 or 8) at @hva without the mm's lock, as
 * host_hva_access would: the leaf found as host_hva_peek_prot finds it, the word loaded, and no
 * change of the mm begun since the leaf was read (a seqcount read side), so the word is what the
 * page held while it backed @hva. 0 with *@val and where it lies (*@ptr), or -EAGAIN: not mapped,
 * not young (marking it so takes the lock), or a change under way: take host_hva_access. */
struct host_peek_tok;
int host_hva_peek_word(struct host_mm *mm, hva_t hva, unsigned len, uint64_t *val, uint8_t **ptr,
		       struct host_peek_tok *tok);
/*
 * What a successful host_hva_peek_word saw (@tok, unless NULL): the mm's invalidation and aging
 * sequences. While neither has moved, no frame of the mm was unmapped, replaced or freed, and no
 * aging has completed (one under way holds the mm's lock, which a locked access waits for): a
 * caller may keep the page's address and load from it again with host_peek_again, with no
 * look-up, as a peek of the same hva would (the page is still mapped, to the same frame, and
 * young, so a locked access would change nothing either). Tokens of one mm only.
 */
struct host_peek_tok {
	uint64_t inval_seq, young_seq;
	bool writable;   /* the page was no KSM page: a write needs no COW break */
};
/* Load the word at @p (in the page a peek gave @tok with) if @tok still holds, the load inside
 * the same seqcount read side as a peek's: 0 with *@val, or -EAGAIN (look up again). */
int host_peek_again(struct host_mm *mm, const struct host_peek_tok *tok, const uint8_t *p,
		    unsigned len, uint64_t *val);
/* Compare-and-swap the word at @p (as host_peek_again's) under the mm's read lock if @tok still
 * holds and its page was writable: what host_hva_access would do with the lock held, with no
 * look-up (the lock keeps every change of the mm out until the swap is done, and the token says
 * none came between the peek and the lock). 0 with *@ok (swapped), or -EAGAIN (look up again). */
int host_cmpxchg_again(struct host_mm *mm, const struct host_peek_tok *tok, uint8_t *p,
		       unsigned len, uint64_t old, uint64_t val, bool *ok);

/* The naturally aligned 4- or 8-byte word at @p, loaded / compare-and-swapped atomically: guest
 * memory that other vCPUs (and the hardware's A/D updates) may change at any time. One copy for
 * every reader of guest page-table entries. */
static inline uint64_t host_word_load(const void *p, unsigned len)
{
	return len == 8 ? __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE) :
			  __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE);
}

static inline bool host_word_cmpxchg(void *p, unsigned len, uint64_t old, uint64_t val)
{
	if (len == 8)
		return __atomic_compare_exchange_n((uint64_t *)p, &old, val, false, __ATOMIC_SEQ_CST,
						   __ATOMIC_SEQ_CST);
	uint32_t o = (uint32_t)old;
	return __atomic_compare_exchange_n((uint32_t *)p, &o, (uint32_t)val, false,
					   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

void host_mmu_notifier_register(struct host_mm *mm, struct host_mmu_notifier *mn);
void host_mmu_notifier_unregister(struct host_mm *mm, struct host_mmu_notifier *mn);
/* Age [start,end): calls clear_young of every notifier; true if any said young. */
bool host_mm_clear_young(struct host_mm *mm, hva_t start, hva_t end);
bool host_mm_test_young(struct host_mm *mm, hva_t start, hva_t end);
/* (Both also test the mm's own young bits, set by host_hva_to_pfn, and OR them in; clear_young
 * clears them and asks every notifier even once one said young.) */

/* Set or clear a VMA_* flag on every VMA meeting [start, start+len) (whole VMAs). 0 or -EINVAL. */
int host_madvise(struct host_mm *mm, hva_t start, uint64_t len, unsigned flag, bool on);
uint64_t host_mm_ksm_cow_breaks(const struct host_mm *mm);   /* writes that copied a KSM page */

/* Transparent huge page events of one mm, named as in /proc/vmstat. hugetlb pages are not THPs
 * and count in none of them. */
struct host_thp_stats {
	uint64_t thp_fault_alloc;     /* a first touch mapped a 2M THP */
	uint64_t thp_fault_fallback;  /* a first touch THP applied to found no free 2M block: 4K */
	uint64_t thp_split_page;      /* a 2M THP split into 4K mappings (partial munmap, KSM) */
	uint64_t thp_collapse_alloc;  /* khugepaged collapsed a 2M range of 4K pages into a THP */
	uint64_t thp_collapse_alloc_failed;  /* ... but found no free 2M block */
	uint64_t thp_underused_split_page;   /* THPs split under memory pressure (a 4K fault found
					      * no frame) for their zero-filled subpages */
};
/* Under memory pressure (a first touch that finds no free frame), THPs of the mm with more than
 * @max_none zero-filled subpages are split and those subpages freed (the kernel's thp_underused,
 * threshold khugepaged's max_ptes_none: khugepaged sets it on the mms it scans; at 511, the
 * default, the shrinker is off, as the kernel's). A THP of zeroes goes whole; either counts in
 * thp_split_page too. */
void host_mm_set_underused_max_none(struct host_mm *mm, unsigned max_none);
void host_mm_thp_stats(const struct host_mm *mm, struct host_thp_stats *st);

struct host_arena *host_mm_arena(const struct host_mm *mm);
uint64_t host_mm_rss_pages(const struct host_mm *mm);  /* 4K pages mapped */

/* ---- KSM (ksm.c): same-page merging across the mms of one arena ---- */

struct host_ksm;

/* The knobs of /sys/kernel/mm/ksm. host_ksm_scan() is one pass; the caller sleeps
 * sleep_millisecs of its own clock between two (vmmu_ksm_run; vmmu_run's clock is 1000 guest
 * accesses a millisecond). */
struct host_ksm_params {
	uint64_t pages_to_scan;      /* pages a pass looks at (default 100) */
	uint64_t sleep_millisecs;    /* between passes (default 20) */
	uint64_t use_zero_pages;     /* merge zero-filled pages with one zero frame (default 0) */
	uint64_t max_page_sharing;   /* mappings of one KSM page at most (default 256) */
	uint64_t run;                /* 0 stop, 1 run (default 1) */
	uint64_t use_mmu_dirty;      /* 1: "written since the last pass" from the secondary MMUs'
				      * dirty state (host_ksm_tracker), not a checksum (default 0;
				      * not a Linux knob) */
};

struct host_ksm_stats {
	uint64_t pages_shared;       /* KSM pages mapped at least once */
	uint64_t pages_sharing;      /* mappings of KSM pages beyond one per page: frames saved */
	uint64_t pages_unshared;     /* candidates in the unstable tree */
	uint64_t pages_volatile;     /* pages whose checksum changed during the last full scan */
	uint64_t full_scans;
	uint64_t cow_breaks;         /* of the registered mms */
	uint64_t zero_pages;         /* mappings of the zero frame (use_zero_pages) */
	int64_t general_profit;      /* bytes: saved frames less ksmd's own metadata */
	uint64_t checksums;          /* xxh64 of a page, as a cost */
	uint64_t compares;           /* byte-for-byte comparisons of two pages */
	uint64_t passes;
	uint64_t merges;             /* pages merged (a mapping replaced by a KSM or zero frame) */
	uint64_t merge_scans;        /* full scans until the last merge (its own included): how
				      * long the merge took to converge; 0 if none */
	/* use_mmu_dirty: pages the MMUs said unchanged (the recorded checksum reused), written
	 * (volatile, no checksum taken), and the harvests of their dirty state */
	uint64_t mmu_unchanged, mmu_written, mmu_harvests;
};

/*
 * A secondary MMU's write tracking for ksmd (use_mmu_dirty), the dirty state of the sptes
 * mapping an mm's pages. Called with the KSM lock held and no mm->lock: set_tracking starts
 * (every page then counts as unwritten; the MMU write-protects them) or stops it, 0 or -errno;
 * harvest reports, for the 64 pages from @start, those it tracks (*@tracked) and those of them
 * written since their last harvest (*@written), and re-arms their tracking; peek (may be NULL)
 * reports the same and changes nothing, for host_ksm_audit.
 */
struct host_ksm_tracker {
	int (*set_tracking)(void *opaque, bool on);
	void (*harvest)(void *opaque, hva_t start, uint64_t *written, uint64_t *tracked);
	void (*peek)(void *opaque, hva_t start, uint64_t *written, uint64_t *tracked);
};

int host_ksm_create(struct host_arena *a, struct host_ksm **out);
/* After every mm was removed. Frees the KSM frames nobody maps any more, the zero frame, the
 * trees. */
void host_ksm_destroy(struct host_ksm *k);
/* ksmd scans @mm's mergeable VMAs from now on; remove it before host_mm_destroy() and before
 * what @tracker's calls reach goes. @tracker (may be NULL: checksums only) and @opaque: the MMU
 * mapping @mm, for use_mmu_dirty; tracking is started here if the knob is on. */
int host_ksm_add_mm(struct host_ksm *k, struct host_mm *mm, const struct host_ksm_tracker *tracker,
		    void *opaque);
void host_ksm_remove_mm(struct host_ksm *k, struct host_mm *mm);
/* Set a knob by its /sys/kernel/mm/ksm name. 0, -ENOENT (no such knob) or -EINVAL (value). */
int host_ksm_set_param(struct host_ksm *k, const char *key, uint64_t val);
int host_ksm_get_param(struct host_ksm *k, const char *key, uint64_t *val);
/* Is @key a knob and @val in its range? 0, -ENOENT or -ERANGE; the range in *@min, *@max (may be
 * NULL) whenever the knob exists. */
int host_ksm_param_check(const char *key, uint64_t val, uint64_t *min, uint64_t *max);
void host_ksm_get_params(struct host_ksm *k, struct host_ksm_params *p);
/* One pass of ksmd: up to pages_to_scan pages (nothing if run is 0). Returns the pages merged. */
int host_ksm_scan(struct host_ksm *k);
void host_ksm_get_stats(struct host_ksm *k, struct host_ksm_stats *st);
/* Debug: the stable tree in order, each KSM frame still holding the bytes it was merged with
 * (no write went through), the unstable tree in order; with use_mmu_dirty, every checksum ksmd
 * would reuse (the page in the same frame, not written since as its tracker says) still that
 * of the page's bytes. 0, or -EIO with a reason. */
int host_ksm_audit(struct host_ksm *k, char *why, size_t whylen);

/* ---- khugepaged (khugepaged.c): collapse of 4K-mapped 2M ranges into THPs ---- */

struct host_khugepaged;

/* The knobs of /sys/kernel/mm/transparent_hugepage/khugepaged. */
struct host_khugepaged_params {
	uint64_t pages_to_scan;          /* pages a pass looks at, 512 a 2M range (default 4096) */
	uint64_t scan_sleep_millisecs;   /* between passes (default 10000) */
	uint64_t alloc_sleep_millisecs;  /* after a pass whose 2M allocation failed (60000) */
	uint64_t max_ptes_none;          /* none entries a collapsed range may have (0..511: 511) */
	uint64_t defrag;                 /* 0 or 1 (default 1); the model has no compaction, so it
					  * changes nothing */
};

struct host_khugepaged_stats {
	uint64_t pages_collapsed;        /* THPs made (the sysfs file of that name) */
	uint64_t full_scans;             /* trips over every registered mm (sysfs) */
	uint64_t passes;                 /* wake-ups */
	uint64_t pages_scanned;          /* 512 a 2M range looked at */
	uint64_t alloc_failed;           /* collapses with no free 2M block */
};

int host_khugepaged_create(struct host_arena *a, struct host_khugepaged **out);
/* Stops the thread if it runs; after every mm was removed. */
void host_khugepaged_destroy(struct host_khugepaged *kh);
/* khugepaged scans @mm's THP-eligible VMAs from now on (transparent_hugepage/enabled always, or
 * madvise and MADV_HUGEPAGE; never hugetlb); remove it before host_mm_destroy(). */
int host_khugepaged_add_mm(struct host_khugepaged *kh, struct host_mm *mm);
void host_khugepaged_remove_mm(struct host_khugepaged *kh, struct host_mm *mm);
/* Knobs by their sysfs names: as host_ksm_*_param. */
int host_khugepaged_param_check(const char *key, uint64_t val, uint64_t *min, uint64_t *max);
int host_khugepaged_set_param(struct host_khugepaged *kh, const char *key, uint64_t val);
int host_khugepaged_get_param(struct host_khugepaged *kh, const char *key, uint64_t *val);
void host_khugepaged_get_params(struct host_khugepaged *kh, struct host_khugepaged_params *p);
/* One pass: returns the ranges collapsed (or -EINVAL); *@sleep_ms (may be NULL): how long the
 * kernel's khugepaged would sleep before the next (scan or alloc sleep). */
int host_khugepaged_scan(struct host_khugepaged *kh, uint64_t *sleep_ms);
void host_khugepaged_get_stats(struct host_khugepaged *kh, struct host_khugepaged_stats *st);
/* A thread of its own running passes, scan_sleep_millisecs of real time apart, until stopped
 * (-EBUSY if it runs). Stop waits for the pass under way. */
int host_khugepaged_start(struct host_khugepaged *kh);
void host_khugepaged_stop(struct host_khugepaged *kh);

#endif
