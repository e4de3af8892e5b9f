/* SPDX-License-Identifier: MIT */
/*
 * mm.c: the VMM process's address space. VMAs in a sorted array; a modelled host page table maps
 * hva -> pfn, filled on first touch (a host page fault) and emptied by munmap, which tells the MMU
 * notifiers first.
 *
 * The page table has x86-64's shape, 4 levels of 512 entries over the 48-bit hva:
 *
 *     47      39 38      30 29      21 20      12 11         0
 *    |  L4 idx  |  L3 idx  |  L2 idx  |  L1 idx  |   offset   |
 *
 * An entry is 0 (none), a leaf (bit 0 set: pfn << 12 | PTE_* flags) or a pointer to the next
 * level's node (bit 0 clear, as pool objects are 64-byte aligned). Leaves sit at L1 (4K), at L2
 * (a 2M THP or hugetlb mapping, PTE_HUGE) and at L3 (a 1G hugetlb mapping, PTE_HUGE | PTE_1G),
 * never higher.
 *
 * Invariants:
 *  - Every leaf lies inside one VMA and holds one reference on its frame: an L1 leaf on an
 *    order-0 frame, an L2 leaf on the order-9 block whose head it names, an L3 leaf on an
 *    order-18 block. A partial unmap splits a huge leaf one level at a time (1G into 2M leaves,
 *    2M into 4K leaves) on the same frames, so the invariant holds across it.
 *  - node->nr counts a node's non-zero entries, and a node other than the root is freed as soon
 *    as it drops to 0; so an L2 entry of 0 means its whole 2M range is unmapped.
 *  - rss_pages is the number of 4K pages the leaves map.
 *
 * THPs change size three ways besides munmap: khugepaged collapses a 2M range of 4K leaves into
 * one (host_mm_collapse_scan), KSM splits one to merge a page of it, and a first touch that finds
 * no free frame splits this mm's underused THPs and frees their zero-filled subpages
 * (shrink_underused_thps; the kernel's shrinkers are global, this one reclaims from the faulting
 * mm only: its lock is the one held). Each calls the notifiers over the 2M.
 *
 * Locking: mm->lock (a reader-writer lock, host/brlock.h: the model's mmap_lock) guards the VMAs,
 * the page table and the notifier list; every change takes it for writing (notifiers run with it
 * held so), and stores an entry with pte_set. A lookup of a page mapped and young takes no lock
 * (pt_peek, the kernel's GUP-fast): nodes unlinked are freed after an RCU grace period, and
 * inval_seq, odd between the notifiers' start and end, tells it a change was under way (then it
 * takes the lock). So does a load of a word in such a page (host_hva_peek_word: inval_seq read
 * around the lookup and the load; frames are freed only inside a notify_start/notify_end window),
 * and a load from a page such a peek found, kept by the caller (host_peek_again: inval_seq and
 * young_seq, which every clear_young advances, unchanged since the peek). Marking a page young
 * takes the read lock (an atomic OR); a new mapping, the write lock. Frames are freed with the
 * lock held, so the lock order is mm->lock, then arena->lock. The rule the kept pages rest on:
 * every change of a present leaf's frame or KSM state (unmap, split, collapse, merge, COW
 * break) runs under the write lock inside a notify_start/notify_end window, and every aging
 * under the write lock advances young_seq; so a word swapped in a kept page under the read lock
 * with both sequences unchanged (host_cmpxchg_again) lands where host_hva_access would have put
 * it. A change that broke the rule would let such a swap land in a frame already copied.
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-bp.h>

#include "hot.h"
#include "host/brlock.h"
#include "host/host.h"
#include "host/host_internal.h"
#include "host/pool.h"
#include "host/rcu.h"

#define PT_LEVELS  4
#define PT_BITS    9
#define PT_ENTRIES (1u << PT_BITS)

#define PTE_PRESENT   (1ULL << 0)    /* a leaf; clear in a pointer to a node */
#define PTE_YOUNG     (1ULL << 1)    /* accessed since the last clear_young */
#define PTE_HUGE      (1ULL << 2)    /* an L2 leaf mapping a 2M block */
#define PTE_KSM       (1ULL << 3)    /* a 4K leaf mapping a KSM frame: read-only, shared */
#define PTE_1G        (1ULL << 4)    /* with PTE_HUGE: an L3 leaf mapping a 1G block */
#define PTE_HUGETLB   (1ULL << 5)    /* with PTE_HUGE: a hugetlb page, not a THP */
#define PTE_PFN_SHIFT 12

/* Where host_mmap(hint 0) starts looking: high, out of the way of small fixed hints. */
#define MMAP_BASE (1ULL << 40)

struct pt_node {
	uint64_t e[PT_ENTRIES]; /* stored with pte_set: lockless readers load them */
	unsigned nr;            /* non-zero entries of e[] */
	struct rcu_head rcu;    /* a node unlinked is freed after a grace period */
};

/* Every store to a linked entry: lockless lookups read entries concurrently, and a pointer to a
 * node is published with release so its filled entries are seen through it. */
static inline void pte_set(uint64_t *e, uint64_t v)
{
	__atomic_store_n(e, v, __ATOMIC_RELEASE);
}

/* Nodes come from a pool, not the heap: a first write to heap memory new to the process is a host
 * page fault, and a node is made inside a guest's page fault (host/pool.h). */
static struct host_pool pt_node_pool = HOST_POOL_INIT(sizeof(struct pt_node));

static struct pt_node *pt_node_alloc(void)
{
	return host_pool_zalloc(&pt_node_pool);
}

/* A node no lookup can reach (never linked, or after its grace period). */
static void pt_node_put(struct pt_node *n)
{
	host_pool_free(&pt_node_pool, n);
}

static void pt_node_free_rcu(struct rcu_head *head)
{
	vmmu_rcu_callback_begin(head);
	pt_node_put(caa_container_of(head, struct pt_node, rcu));
	vmmu_rcu_callback_end();
}

/* A node unlinked from the table: a lockless lookup may still be on it until its read section
 * ends. */
static void pt_node_free(struct pt_node *n)
{
	vmmu_call_rcu(&n->rcu, pt_node_free_rcu);
}

struct host_vma {
	hva_t start;            /* page aligned */
	hva_t end;              /* exclusive, page aligned */
	unsigned flags;         /* HOST_VMA_* */
};

/* Legend: [c] set at create, then constant; [m] guarded by mm->lock; [a] atomic. */
struct host_mm {
	struct brlock lock;                     /* the model's mmap_lock (host/brlock.h) */
	struct host_arena *arena;               /* [c] */
	enum host_thp thp;                      /* [c] */
	struct pt_node *root;                   /* [c] the L4 node; its entries [m] */
	struct host_vma *vmas;                  /* [m] sorted by start, disjoint */
	size_t nr_vmas;                         /* [m] */
	size_t cap_vmas;                        /* [m] */
	struct cds_list_head notifiers;         /* [m] struct host_mmu_notifier, in registration order */
	uint64_t rss_pages;                     /* [a] written under mm->lock */
	uint64_t ksm_cow_breaks;                /* [a] written under mm->lock */
	struct host_thp_stats thp_ev;           /* [a] each, written under mm->lock */
	/* Odd while notifiers are between invalidate_range_start and _end (a seqcount for the
	 * lockless lookups: one that met no invalidation saw what a locked one would). */
	uint64_t inval_seq;                     /* [a] written under mm->lock */
	/* Advanced by every clear_young once its bits are cleared, before it lets the lock go: a
	 * peek that read a value saw every bit an earlier clear_young cleared, so a page it found
	 * young has not been made old while the value holds (host_peek_again). */
	uint64_t young_seq;                     /* [a] written under mm->lock */
	/* Zero-filled subpages a THP may hold before memory pressure splits it and frees them
	 * (khugepaged's max_ptes_none, pushed here by khugepaged; 511 without it). */
	uint64_t underused_max_none;            /* [a] */
	unsigned inval_depth;                   /* [m] nested invalidations */
};

_Static_assert((PTE_PRESENT | PTE_YOUNG | PTE_HUGE | PTE_KSM | PTE_1G | PTE_HUGETLB) <
	       (1ULL << PTE_PFN_SHIFT),
	       "leaf flags sit below the pfn");
_Static_assert(_Alignof(struct pt_node) >= 2, "a node pointer has bit 0 clear");

/* ---- page table entries ---- */

static inline bool pte_is_leaf(uint64_t e)
{
	return e & PTE_PRESENT;
}

static inline struct pt_node *pte_node(uint64_t e)
{
	return (struct pt_node *)(uintptr_t)e;
}

static inline pfn_t pte_pfn(uint64_t e)
{
	return e >> PTE_PFN_SHIFT;
}

static inline uint64_t make_leaf(pfn_t pfn, uint64_t flags)
{
	return pfn << PTE_PFN_SHIFT | PTE_PRESENT | flags;
}

/* The buddy order of the block leaf @e holds. */
static inline unsigned leaf_order(uint64_t e)
{
	if (e & PTE_1G)
		return HOST_ORDER_1G;
	return (e & PTE_HUGE) ? HOST_ORDER_2M : HOST_ORDER_4K;
}

/* The pfn backing @hva under leaf @e: a huge leaf names its block's head. */
static inline pfn_t leaf_pfn_at(uint64_t e, hva_t hva)
{
	return pte_pfn(e) + ((hva >> HOST_PAGE_SHIFT) & ((1ULL << leaf_order(e)) - 1));
}

static inline unsigned level_shift(int level)
{
	return HOST_PAGE_SHIFT + PT_BITS * (level - 1);
}

/* Bytes one entry of a level-@level node maps. */
static inline uint64_t level_size(int level)
{
	return 1ULL << level_shift(level);
}

static inline unsigned pt_index(hva_t hva, int level)
{
	return (hva >> level_shift(level)) & (PT_ENTRIES - 1);
}

static inline hva_t hva_max(hva_t a, hva_t b)
{
	return a > b ? a : b;
}

static inline hva_t hva_min(hva_t a, hva_t b)
{
	return a < b ? a : b;
}

static void rss_add(struct host_mm *mm, int64_t pages)
{
	__atomic_add_fetch(&mm->rss_pages, (uint64_t)pages, __ATOMIC_RELAXED);
}

/* Atomic, so host_mm_thp_stats() reads them without mm->lock. */
static void thp_count(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

/* ---- VMAs; caller holds mm->lock ---- */

/* Index of the first VMA ending above @hva: the one holding it, if any. nr_vmas if none. */
static size_t vma_first_after(const struct host_mm *mm, hva_t hva)
{
	size_t lo = 0, hi = mm->nr_vmas;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (mm->vmas[mid].end <= hva)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const struct host_vma *vma_find(const struct host_mm *mm, hva_t hva)
{
	size_t i = vma_first_after(mm, hva);

	return i < mm->nr_vmas && mm->vmas[i].start <= hva ? &mm->vmas[i] : NULL;
}

static bool vma_overlaps(const struct host_mm *mm, hva_t start, hva_t end)
{
	size_t i = vma_first_after(mm, start);

	return i < mm->nr_vmas && mm->vmas[i].start < end;
}

/* Room for @extra more VMAs, so that what follows cannot fail halfway. */
static int vma_reserve(struct host_mm *mm, size_t extra)
{
	size_t cap = mm->cap_vmas ? mm->cap_vmas : 8;
	struct host_vma *v;

	if (mm->nr_vmas + extra <= mm->cap_vmas)
		return 0;
	while (cap < mm->nr_vmas + extra)
		cap *= 2;
	v = realloc(mm->vmas, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	mm->vmas = v;
	mm->cap_vmas = cap;
	return 0;
}

/* Insert a VMA into a free range; room was reserved. */
static void vma_insert(struct host_mm *mm, hva_t start, hva_t end, unsigned flags)
{
	size_t i = vma_first_after(mm, start);

	assert(mm->nr_vmas < mm->cap_vmas);
	memmove(&mm->vmas[i + 1], &mm->vmas[i], (mm->nr_vmas - i) * sizeof(mm->vmas[0]));
	mm->vmas[i] = (struct host_vma){ .start = start, .end = end, .flags = flags };
	mm->nr_vmas++;
}

/* Does removing [start,end) cut one VMA in two (and so need one more slot)? */
static bool vma_remove_splits(const struct host_mm *mm, hva_t start, hva_t end)
{
	size_t i = vma_first_after(mm, start);

	return i < mm->nr_vmas && mm->vmas[i].start < start && mm->vmas[i].end > end;
}

/* Remove [start,end) from the VMAs, trimming or cutting those it overlaps; room was reserved. */
static void vma_remove(struct host_mm *mm, hva_t start, hva_t end)
{
	size_t i = vma_first_after(mm, start), j;

	if (vma_remove_splits(mm, start, end)) {
		struct host_vma tail = mm->vmas[i];

		assert(mm->nr_vmas < mm->cap_vmas);
		tail.start = end;
		mm->vmas[i].end = start;
		memmove(&mm->vmas[i + 2], &mm->vmas[i + 1],
			(mm->nr_vmas - i - 1) * sizeof(mm->vmas[0]));
		mm->vmas[i + 1] = tail;
		mm->nr_vmas++;
		return;
	}
	if (i < mm->nr_vmas && mm->vmas[i].start < start)
		mm->vmas[i++].end = start;
	/* vmas[i..j) lie wholly inside the range. */
	for (j = i; j < mm->nr_vmas && mm->vmas[j].end <= end; j++)
		;
	if (j < mm->nr_vmas && mm->vmas[j].start < end)
		mm->vmas[j].start = end;
	memmove(&mm->vmas[i], &mm->vmas[j], (mm->nr_vmas - j) * sizeof(mm->vmas[0]));
	mm->nr_vmas -= j - i;
}

/* First fit for @len bytes at or above @from, aligned to @align. */
static int vma_gap(const struct host_mm *mm, hva_t from, uint64_t len, uint64_t align, hva_t *out)
{
	hva_t cand = (from + align - 1) & ~(align - 1);

	for (size_t i = vma_first_after(mm, cand); i < mm->nr_vmas; i++) {
		const struct host_vma *v = &mm->vmas[i];

		if (v->start >= cand && v->start - cand >= len)
			break;
		cand = (v->end + align - 1) & ~(align - 1);
	}
	if (cand >= HOST_USER_MAX || len > HOST_USER_MAX - cand)
		return -ENOMEM;
	*out = cand;
	return 0;
}

/* ---- notifiers; caller holds mm->lock ---- */

static void notify_start(struct host_mm *mm, hva_t start, hva_t end)
{
	struct host_mmu_notifier *mn;

	if (mm->inval_depth++ == 0) {
		__atomic_store_n(&mm->inval_seq, mm->inval_seq + 1, __ATOMIC_RELAXED);
		/* The odd count is visible before any entry of the range changes. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	}
	cds_list_for_each_entry(mn, &mm->notifiers, link)
		if (mn->ops->invalidate_range_start)
			mn->ops->invalidate_range_start(mn, start, end);
}

static void notify_end(struct host_mm *mm, hva_t start, hva_t end)
{
	struct host_mmu_notifier *mn;

	cds_list_for_each_entry(mn, &mm->notifiers, link)
		if (mn->ops->invalidate_range_end)
			mn->ops->invalidate_range_end(mn, start, end);
	if (--mm->inval_depth == 0)
		__atomic_store_n(&mm->inval_seq, mm->inval_seq + 1, __ATOMIC_RELEASE);
}

/* What a lookup answers from the leaf value @v mapping @hva. */
VMMU_HOT
static void leaf_out(uint64_t v, hva_t hva, pfn_t *pfn, unsigned *order, bool *writable)
{
	*pfn = leaf_pfn_at(v, hva);
	if (order)
		*order = leaf_order(v);
	if (writable)
		*writable = !(v & PTE_KSM);
}

/* ---- page table walks; caller holds mm->lock, or is inside an RCU read section ---- */

/* The leaf mapping @hva, or NULL. Lockless in a read section: a node reached stays allocated
 * until the section ends; the entry may change under the caller, who reads it once. */
VMMU_HOT
static uint64_t *pt_lookup(const struct host_mm *mm, hva_t hva)
{
	struct pt_node *n = mm->root;

	for (int level = PT_LEVELS; level >= 1; level--) {
		uint64_t *e = &n->e[pt_index(hva, level)];
		/* Acquire: a node pointer read here was published by pte_set after its entries. */
		uint64_t v = __atomic_load_n(e, __ATOMIC_ACQUIRE);

		if (v == 0)
			return NULL;
		if (pte_is_leaf(v))
			return e;
		n = pte_node(v);
	}
	assert(!"an L1 entry is a leaf or none");
	return NULL;
}

/* Free the nodes left empty on the path to @hva, from @level up; the root stays. */
static void pt_prune(struct pt_node **path, hva_t hva, int level)
{
	for (; level < PT_LEVELS && path[level]->nr == 0; level++) {
		pte_set(&path[level + 1]->e[pt_index(hva, level + 1)], 0);
		pt_node_free(path[level]);
		path[level + 1]->nr--;
	}
}

#define HOST_VMA_HUGETLB (HOST_VMA_HUGETLB_2M | HOST_VMA_HUGETLB_1G)

/* May THPs back @vma (at fault time and by khugepaged's collapse)? The kernel's
 * vma_thp_eligible under transparent_hugepage/enabled: always, or madvise and MADV_HUGEPAGE. */
static bool vma_thp_eligible(const struct host_mm *mm, const struct host_vma *vma)
{
	if ((vma->flags & HOST_VMA_HUGETLB) || mm->thp == HOST_THP_NEVER)
		return false;
	return mm->thp == HOST_THP_ALWAYS || (vma->flags & HOST_VMA_HUGEPAGE);
}

/* May a fault at @hva map a block at @level (2: 2M, 3: 1G)? Its entry there is known to be
 * empty. hugetlb VMAs map the largest page they allow that fits; THP maps 2M only. */
static bool huge_applies(const struct host_mm *mm, const struct host_vma *vma, hva_t hva,
			 int level)
{
	const uint64_t size = level_size(level);
	hva_t haddr = hva & ~(size - 1);

	if (haddr < vma->start || haddr + size > vma->end)
		return false;
	if (level == 3)
		return vma->flags & HOST_VMA_HUGETLB_1G;
	if (level != 2)
		return false;
	return (vma->flags & HOST_VMA_HUGETLB) || vma_thp_eligible(mm, vma);
}

/*
 * A write to a KSM page: copy it to a frame of its own and map that writable (the kernel's
 * do_wp_page on a KSM page). The old mapping is read-only, but what secondary MMUs derived from
 * it names the shared frame, so they hear of the change as of an unmap.
 */
static int ksm_cow_break(struct host_mm *mm, uint64_t *e, hva_t hva)
{
	hva_t page = hva & ~(HOST_PAGE_SIZE - 1);
	pfn_t old = pte_pfn(*e), frame;
	int ret;

	ret = host_frame_alloc(mm->arena, HOST_ORDER_4K, &frame);
	if (ret)
		return ret;
	memcpy(host_pfn_to_ptr(mm->arena, frame), host_pfn_to_ptr(mm->arena, old), HOST_PAGE_SIZE);
	notify_start(mm, page, page + HOST_PAGE_SIZE);
	pte_set(e, make_leaf(frame, *e & PTE_YOUNG));
	host_frame_put(mm->arena, old, HOST_ORDER_4K);
	notify_end(mm, page, page + HOST_PAGE_SIZE);
	__atomic_add_fetch(&mm->ksm_cow_breaks, 1, __ATOMIC_RELAXED);
	return 0;
}

static uint64_t shrink_underused_thps(struct host_mm *mm);

/*
 * The modelled host page fault: find or make the leaf for @hva (inside @vma), mark it young.
 * A new mapping needs no notifier: nothing derived from it can exist yet. @write breaks COW of
 * a KSM page; *@writable (may be NULL) says whether the mapping may be written now.
 */
static int pt_fault(struct host_mm *mm, const struct host_vma *vma, hva_t hva, bool write,
		    pfn_t *pfn, unsigned *order, bool *writable)
{
	struct pt_node *path[PT_LEVELS + 1] = { [PT_LEVELS] = mm->root };
	uint64_t *e;
	pfn_t frame;
	int level, ret;

	for (level = PT_LEVELS; level > 1; level--) {
		e = &path[level]->e[pt_index(hva, level)];
		if (pte_is_leaf(*e))
			goto hit;
		if (*e == 0) {
			struct pt_node *n;

			/* No block free (fragmented or full): a smaller page still does. */
			if (level <= 3 && huge_applies(mm, vma, hva, level)) {
				const bool thp = !(vma->flags & HOST_VMA_HUGETLB);

				if (host_frame_alloc(mm->arena, PT_BITS * (level - 1), &frame) == 0) {
					pte_set(e, make_leaf(frame, PTE_HUGE | (level == 3 ? PTE_1G : 0) |
								   (thp ? 0 : PTE_HUGETLB)));
					path[level]->nr++;
					rss_add(mm, (int64_t)(level_size(level) >> HOST_PAGE_SHIFT));
					if (thp)
						thp_count(&mm->thp_ev.thp_fault_alloc);
					goto hit;
				}
				if (thp)
					thp_count(&mm->thp_ev.thp_fault_fallback);
			}
			n = pt_node_alloc();
			if (!n) {
				ret = -ENOMEM;
				goto out_prune;
			}
			pte_set(e, (uint64_t)(uintptr_t)n);
			path[level]->nr++;
		}
		path[level - 1] = pte_node(*e);
	}
	e = &path[1]->e[pt_index(hva, 1)];
	if (*e == 0) {
		ret = host_frame_alloc(mm->arena, HOST_ORDER_4K, &frame);
		/* No frame left: reclaim what underused THPs hold, then try once more. Nodes on
		 * this fault's path hold an entry each, so the shrinker frees none of them. */
		if (ret && shrink_underused_thps(mm))
			ret = host_frame_alloc(mm->arena, HOST_ORDER_4K, &frame);
		if (ret)
			goto out_prune;
		pte_set(e, make_leaf(frame, 0));
		path[1]->nr++;
		rss_add(mm, 1);
	}
hit:
	if ((*e & PTE_KSM) && write) {
		ret = ksm_cow_break(mm, e, hva);
		if (ret)
			return ret;
	}
	if (!(*e & PTE_YOUNG))
		pte_set(e, *e | PTE_YOUNG);
	leaf_out(*e, hva, pfn, order, writable);
	return 0;

out_prune:
	pt_prune(path, hva, level);
	return ret;
}

/* pt_fault for a page already mapped, under the read lock: mark it young (atomically: another
 * reader may do the same) and answer; -EAGAIN when it needs the write lock (no leaf yet, or a
 * write to a KSM page). */
static int pt_fault_mapped(struct host_mm *mm, hva_t hva, bool write, pfn_t *pfn, unsigned *order,
			   bool *writable)
{
	uint64_t *e = pt_lookup(mm, hva);
	uint64_t v;

	if (!e)
		return -EAGAIN;
	v = __atomic_load_n(e, __ATOMIC_RELAXED);
	if ((v & PTE_KSM) && write)
		return -EAGAIN;
	if (!(v & PTE_YOUNG))
		__atomic_fetch_or(e, PTE_YOUNG, __ATOMIC_RELAXED);
	leaf_out(v, hva, pfn, order, writable);
	return 0;
}

/*
 * A lockless read of the page table, as a seqcount's read side: pt_peek_begin gives the leaf value
 * mapping @hva (0 if none, or if an invalidation is under way) and the inval_seq it read it
 * under; whatever the caller then reads through that leaf was read while no invalidation changed
 * it iff pt_peek_valid(@seq) says so after. The walk is inside an RCU read section, so no node
 * goes away under it.
 */
static uint64_t pt_peek_begin(struct host_mm *mm, hva_t hva, uint64_t *seq)
{
	uint64_t *e, v = 0;

	*seq = __atomic_load_n(&mm->inval_seq, __ATOMIC_ACQUIRE);
	if (*seq & 1)
		return 0;
	vmmu_rcu_read_lock();
	e = pt_lookup(mm, hva);
	if (e)
		v = __atomic_load_n(e, __ATOMIC_ACQUIRE);
	vmmu_rcu_read_unlock();
	return v;
}

static bool pt_peek_valid(struct host_mm *mm, uint64_t seq)
{
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	return __atomic_load_n(&mm->inval_seq, __ATOMIC_RELAXED) == seq;
}

/*
 * The leaf value mapping @hva, read with no lock (the kernel's GUP-fast): what a lookup under the
 * lock would have returned. 0 when it cannot tell (none mapped, or an invalidation ran): take the
 * lock.
 */
VMMU_HOT
static uint64_t pt_peek(struct host_mm *mm, hva_t hva)
{
	uint64_t seq, v = pt_peek_begin(mm, hva, &seq);

	return pt_peek_valid(mm, seq) ? v : 0;
}

/* Young bits of the leaves meeting [start,end) under @n (a level-@level node at @base). */
static bool pt_young(struct pt_node *n, int level, hva_t base, hva_t start, hva_t end, bool clear)
{
	uint64_t size = level_size(level);
	hva_t lo = hva_max(start, base);
	hva_t hi = hva_min(end, base + size * PT_ENTRIES);
	bool young = false;

	for (hva_t s = lo & ~(size - 1); s < hi; s += size) {
		uint64_t *e = &n->e[pt_index(s, level)];

		if (*e == 0)
			continue;
		if (!pte_is_leaf(*e)) {
			young |= pt_young(pte_node(*e), level - 1, s, start, end, clear);
			continue;
		}
		young |= *e & PTE_YOUNG;
		if (clear && (*e & PTE_YOUNG))
			pte_set(e, *e & ~PTE_YOUNG);
	}
	return young;
}

/* ---- unmapping ---- */

struct unmap_ctx {
	struct host_mm *mm;             /* its lock held */
	hva_t start;                    /* the range being unmapped */
	hva_t end;
	struct pt_node *spare[4];       /* nodes made beforehand, to split huge leaves at the ends */
	pfn_t batch[PT_ENTRIES];        /* order-0 frames whose leaves are gone, to put at once */
	size_t nbatch;
};

static void unmap_flush(struct unmap_ctx *c)
{
	host_frame_put_many(c->mm->arena, c->batch, c->nbatch);
	c->nbatch = 0;
}

/*
 * Turn the huge leaf *@e into a node of 512 leaves one level down on the same bytes: the block
 * becomes 512 blocks of the smaller size (a 2M leaf: 4K frames; a 1G leaf: 2M blocks), each
 * holding the mapping's reference, and nothing is copied.
 */
static void pt_split_huge_into(struct host_mm *mm, struct pt_node *n, uint64_t *e)
{
	const unsigned order = leaf_order(*e), sub = order - PT_BITS;
	const uint64_t flags = (*e & PTE_YOUNG) | (sub ? PTE_HUGE | (*e & PTE_HUGETLB) : 0);
	pfn_t head = pte_pfn(*e);

	if (!(*e & PTE_HUGETLB))
		thp_count(&mm->thp_ev.thp_split_page);
	host_frame_split_to(mm->arena, head, order, sub);
	for (unsigned i = 0; i < PT_ENTRIES; i++)
		n->e[i] = make_leaf(head + ((pfn_t)i << sub), flags);
	n->nr = PT_ENTRIES;
	pte_set(e, (uint64_t)(uintptr_t)n);
}

static void pt_split_huge(struct unmap_ctx *c, uint64_t *e)
{
	for (size_t k = 0; k < sizeof(c->spare) / sizeof(c->spare[0]); k++) {
		if (c->spare[k]) {
			pt_split_huge_into(c->mm, c->spare[k], e);
			c->spare[k] = NULL;
			return;
		}
	}
	/* munmap made one for each split its range's ends need (munmap_splits). */
	assert(!"no spare node for a split");
}

/* Remove the leaves of [c->start, c->end) under @n (a level-@level node at @base). */
static void pt_unmap(struct unmap_ctx *c, struct pt_node *n, int level, hva_t base)
{
	uint64_t size = level_size(level);
	hva_t lo = hva_max(c->start, base);
	hva_t hi = hva_min(c->end, base + size * PT_ENTRIES);

	for (hva_t s = lo & ~(size - 1); s < hi; s += size) {
		uint64_t *e = &n->e[pt_index(s, level)];
		bool whole = c->start <= s && s + size <= c->end;
		struct pt_node *child;

		if (*e == 0)
			continue;
		if (pte_is_leaf(*e) && level == 1) {
			c->batch[c->nbatch++] = pte_pfn(*e);
			pte_set(e, 0);
			if (c->nbatch == PT_ENTRIES)
				unmap_flush(c);
			rss_add(c->mm, -1);
			n->nr--;
			continue;
		}
		if (pte_is_leaf(*e) && whole) {
			const uint64_t v = *e;

			pte_set(e, 0);
			host_frame_put(c->mm->arena, pte_pfn(v), leaf_order(v));
			rss_add(c->mm, -(int64_t)(size >> HOST_PAGE_SHIFT));
			n->nr--;
			continue;
		}
		if (pte_is_leaf(*e))
			pt_split_huge(c, e);
		child = pte_node(*e);
		pt_unmap(c, child, level - 1, s);
		if (child->nr == 0) {
			pte_set(e, 0);
			pt_node_free(child);
			n->nr--;
		}
	}
}

/* How many nodes splitting the huge leaf at @at (if any) down to a leaf boundary at @at takes:
 * one per level it goes down (a 1G leaf cut off a 2M boundary: two). */
static unsigned munmap_splits(const struct host_mm *mm, hva_t at)
{
	uint64_t *e = pt_lookup(mm, at);
	unsigned n = 0;

	if (!e || !(*e & PTE_HUGE))
		return 0;
	if ((*e & PTE_1G) && (at & (HOST_SIZE_1G - 1)))
		n++;
	if (at & (HOST_SIZE_2M - 1))
		n++;
	return n;
}

/*
 * Unmap [start,end) (page aligned, in user space). Everything that can fail is done before the
 * notifiers hear of it, so an invalidate_range_start is always followed by its end.
 */
static int munmap_locked(struct host_mm *mm, hva_t start, hva_t end)
{
	struct unmap_ctx c = { .mm = mm, .start = start, .end = end };
	unsigned nspare;
	int ret = 0;

	/* Nothing mapped, nothing derived from it: no notifier call. */
	if (!vma_overlaps(mm, start, end))
		return 0;
	if (vma_remove_splits(mm, start, end)) {
		ret = vma_reserve(mm, 1);
		if (ret)
			return ret;
	}
	/* Both ends in one huge leaf: the first split leaves each end its own leaf to split. */
	nspare = munmap_splits(mm, start) + munmap_splits(mm, end);
	for (unsigned k = 0; k < nspare; k++) {
		c.spare[k] = pt_node_alloc();
		if (!c.spare[k]) {
			ret = -ENOMEM;
			goto out;
		}
	}

	notify_start(mm, start, end);
	pt_unmap(&c, mm->root, PT_LEVELS, 0);
	unmap_flush(&c);
	vma_remove(mm, start, end);
	notify_end(mm, start, end);
out:
	for (size_t k = 0; k < sizeof(c.spare) / sizeof(c.spare[0]); k++)
		pt_node_put(c.spare[k]);
	return ret;
}

/* ---- the API ---- */

int host_mm_create(struct host_arena *a, enum host_thp thp, struct host_mm **out)
{
	struct host_mm *mm;
	int ret;

	if (!a || !out || (thp != HOST_THP_NEVER && thp != HOST_THP_MADVISE && thp != HOST_THP_ALWAYS))
		return -EINVAL;
	mm = host_zalloc_lines(sizeof(*mm));   /* the lock's reader counts are line-aligned */
	if (!mm)
		return -ENOMEM;
	CDS_INIT_LIST_HEAD(&mm->notifiers);
	mm->root = pt_node_alloc();
	if (!mm->root) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = brlock_init(&mm->lock, BRLOCK_MM);
	if (ret)
		goto out_free;
	mm->arena = a;
	mm->thp = thp;
	mm->underused_max_none = PT_ENTRIES - 1;
	*out = mm;
	return 0;

out_free:
	pt_node_put(mm->root);
	free(mm);
	return ret;
}

/* Unmaps every VMA first, so notifiers still registered hear of it and all frames go back. */
void host_mm_destroy(struct host_mm *mm)
{
	int ret = 0;

	if (!mm)
		return;
	brlock_write(&mm->lock);
	/* VMA edges never cut a huge leaf and nothing splits: this cannot fail. */
	if (mm->nr_vmas)
		ret = munmap_locked(mm, mm->vmas[0].start, mm->vmas[mm->nr_vmas - 1].end);
	assert(ret == 0 && mm->nr_vmas == 0 && mm->root->nr == 0);
	(void)ret;
	brlock_unlock(&mm->lock);

	brlock_destroy(&mm->lock);
	free(mm->vmas);
	pt_node_put(mm->root);
	free(mm);
}

int host_mmap(struct host_mm *mm, hva_t hint, uint64_t len, unsigned vma_flags, hva_t *out)
{
	hva_t start;
	int ret;

	uint64_t page = HOST_PAGE_SIZE;

	if (!mm || !out || len == 0 ||
	    (vma_flags & ~(HOST_VMA_HUGEPAGE | HOST_VMA_MERGEABLE | HOST_VMA_HUGETLB)) ||
	    (vma_flags & HOST_VMA_HUGETLB) == HOST_VMA_HUGETLB ||
	    ((vma_flags & HOST_VMA_HUGETLB) && (vma_flags & HOST_VMA_MERGEABLE)))
		return -EINVAL;
	if (vma_flags & HOST_VMA_HUGETLB)
		page = (vma_flags & HOST_VMA_HUGETLB_1G) ? HOST_SIZE_1G : HOST_SIZE_2M;
	if (len > HOST_USER_MAX - HOST_USER_MIN)
		return -ENOMEM;         /* as mmap(2): no room for it anywhere */
	/* hugetlbfs maps whole pages: the length rounds up to one. */
	len = (len + page - 1) & ~(page - 1);
	if (len > HOST_USER_MAX - HOST_USER_MIN)
		return -ENOMEM;
	if (hint && ((hint & (page - 1)) || hint < HOST_USER_MIN ||
		     hint >= HOST_USER_MAX || len > HOST_USER_MAX - hint))
		return -EINVAL;

	brlock_write(&mm->lock);
	if (hint) {
		ret = vma_overlaps(mm, hint, hint + len) ? -EEXIST : 0;
		start = hint;
	} else {
		/* 2M-aligned when it can hold a 2M page, so THP can back it; hugetlb on its
		 * page size. */
		uint64_t align = len >= HOST_SIZE_2M ? HOST_SIZE_2M : HOST_PAGE_SIZE;

		if (page > align)
			align = page;

		ret = vma_gap(mm, MMAP_BASE, len, align, &start);
		if (ret)
			ret = vma_gap(mm, HOST_USER_MIN, len, align, &start);
	}
	if (!ret)
		ret = vma_reserve(mm, 1);
	if (!ret) {
		vma_insert(mm, start, start + len, vma_flags);
		*out = start;
	}
	brlock_unlock(&mm->lock);
	return ret;
}

int host_munmap(struct host_mm *mm, hva_t hva, uint64_t len)
{
	int ret;

	if (!mm || len == 0 || (hva & (HOST_PAGE_SIZE - 1)))
		return -EINVAL;
	if (hva < HOST_USER_MIN || hva >= HOST_USER_MAX || len > HOST_USER_MAX - hva)
		return -EINVAL;
	len = (len + HOST_PAGE_SIZE - 1) & ~(HOST_PAGE_SIZE - 1);   /* cannot pass USER_MAX */

	brlock_write(&mm->lock);
	ret = munmap_locked(mm, hva, hva + len);
	brlock_unlock(&mm->lock);
	return ret;
}

VMMU_HOT
int host_hva_to_pfn_order(struct host_mm *mm, hva_t hva, bool write, pfn_t *pfn, unsigned *order,
			  bool *writable)
{
	const struct host_vma *vma;
	int ret;

	if (!mm || !pfn)
		return -EINVAL;

	/* A page already mapped and young (the common case: every vCPU's fault on memory the VMM
	 * has touched, every guest-memory read) needs no lock; one to mark young, the read lock;
	 * a new mapping or a COW break, the write lock. */
	if (hva < HOST_USER_MAX) {
		const uint64_t v = pt_peek(mm, hva);

		if ((v & PTE_YOUNG) && !(write && (v & PTE_KSM))) {
			leaf_out(v, hva, pfn, order, writable);
			return 0;
		}
	}
	brlock_read(&mm->lock);
	vma = vma_find(mm, hva);
	ret = vma ? pt_fault_mapped(mm, hva, write, pfn, order, writable) : -EFAULT;
	brlock_unlock(&mm->lock);
	if (ret != -EAGAIN)
		return ret;
	brlock_write(&mm->lock);
	vma = vma_find(mm, hva);
	ret = vma ? pt_fault(mm, vma, hva, write, pfn, order, writable) : -EFAULT;
	brlock_unlock(&mm->lock);
	return ret;
}

int host_hva_to_pfn_prot(struct host_mm *mm, hva_t hva, bool write, pfn_t *pfn, bool *huge,
			 bool *writable)
{
	unsigned order = HOST_ORDER_4K;
	int ret = host_hva_to_pfn_order(mm, hva, write, pfn, &order, writable);

	if (!ret && huge)
		*huge = order != HOST_ORDER_4K;
	return ret;
}

int host_hva_to_pfn(struct host_mm *mm, hva_t hva, bool write, pfn_t *pfn, bool *huge)
{
	return host_hva_to_pfn_prot(mm, hva, write, pfn, huge, NULL);
}

int host_hva_access(struct host_mm *mm, hva_t hva, bool write, void (*fn)(void *ptr, void *arg),
		    void *arg)
{
	if (!mm || !fn)
		return -EINVAL;
	for (;;) {
		uint64_t *e, v;
		pfn_t pfn;
		int rc;

		brlock_read(&mm->lock);
		e = pt_lookup(mm, hva);
		v = e ? __atomic_load_n(e, __ATOMIC_ACQUIRE) : 0;
		if (v && !(write && (v & PTE_KSM))) {
			if (!(v & PTE_YOUNG))
				__atomic_fetch_or(e, PTE_YOUNG, __ATOMIC_RELAXED);
			fn((uint8_t *)host_pfn_to_ptr(mm->arena, leaf_pfn_at(v, hva)) +
			   (hva & (HOST_PAGE_SIZE - 1)), arg);
			brlock_unlock(&mm->lock);
			return 0;
		}
		brlock_unlock(&mm->lock);
		/* Not mapped yet, or a write to a KSM page: the fault makes it so, then again. */
		rc = host_hva_to_pfn_prot(mm, hva, write, &pfn, NULL, NULL);
		if (rc)
			return rc;
	}
}

int host_hva_lookup(struct host_mm *mm, hva_t hva, pfn_t *pfn, bool *huge)
{
	unsigned order = HOST_ORDER_4K;
	int ret = host_hva_lookup_order(mm, hva, pfn, &order, NULL);

	if (!ret && huge)
		*huge = order != HOST_ORDER_4K;
	return ret;
}

int host_hva_lookup_order(struct host_mm *mm, hva_t hva, pfn_t *pfn, unsigned *order,
			  bool *writable)
{
	uint64_t *e, v;
	int ret = -ENOENT;

	if (!mm || !pfn)
		return -EINVAL;
	if (hva >= HOST_USER_MAX)
		return -ENOENT;
	v = pt_peek(mm, hva);
	if (v) {
		leaf_out(v, hva, pfn, order, writable);
		return 0;
	}
	brlock_read(&mm->lock);
	e = pt_lookup(mm, hva);
	if (e) {
		leaf_out(__atomic_load_n(e, __ATOMIC_RELAXED), hva, pfn, order, writable);
		ret = 0;
	}
	brlock_unlock(&mm->lock);
	return ret;
}

int host_hva_peek_prot(struct host_mm *mm, hva_t hva, pfn_t *pfn, bool *writable)
{
	uint64_t v;

	if (!mm || !pfn)
		return -EINVAL;
	if (hva >= HOST_USER_MAX)
		return -ENOENT;
	v = pt_peek(mm, hva);
	if (!v)
		return -ENOENT;
	leaf_out(v, hva, pfn, NULL, writable);
	return 0;
}

int host_hva_peek_word(struct host_mm *mm, hva_t hva, unsigned len, uint64_t *val, uint8_t **ptr,
		       struct host_peek_tok *tok)
{
	uint64_t seq, v, young_seq;
	uint8_t *p;

	if (hva >= HOST_USER_MAX)
		return -EAGAIN;
	/* Read before the leaf (acquire: the bits a clear_young cleared before advancing it are seen
	 * too); a clear_young the leaf's young bit missed moves it after. */
	young_seq = __atomic_load_n(&mm->young_seq, __ATOMIC_ACQUIRE);
	v = pt_peek_begin(mm, hva, &seq);
	if ((v & (PTE_PRESENT | PTE_YOUNG)) != (PTE_PRESENT | PTE_YOUNG))
		return -EAGAIN;
	p = (uint8_t *)host_pfn_to_ptr(mm->arena, leaf_pfn_at(v, hva)) + (hva & (HOST_PAGE_SIZE - 1));
	/* Frames are freed only between a change's notify_start and notify_end: if inval_seq is
	 * still @seq after the load, the frame backed @hva throughout. Else the frame may have been
	 * freed and written by a new owner meanwhile (the seqlock's benign race: what was loaded is
	 * thrown away; the arena stays mapped, so the load itself is safe). */
	*val = host_word_load(p, len);
	if (!pt_peek_valid(mm, seq))
		return -EAGAIN;
	*ptr = p;
	if (tok)
		*tok = (struct host_peek_tok){ .inval_seq = seq, .young_seq = young_seq,
					       .writable = !(v & PTE_KSM) };
	return 0;
}

VMMU_HOT
int host_peek_again(struct host_mm *mm, const struct host_peek_tok *tok, const uint8_t *p,
		    unsigned len, uint64_t *val)
{
	/* pt_peek_begin's read side with the kept page in place of the look-up. An odd @tok never
	 * came from a peek, so an odd inval_seq (a change under way) cannot match it. */
	if (__atomic_load_n(&mm->inval_seq, __ATOMIC_ACQUIRE) != tok->inval_seq ||
	    __atomic_load_n(&mm->young_seq, __ATOMIC_ACQUIRE) != tok->young_seq)
		return -EAGAIN;
	*val = host_word_load(p, len);
	return pt_peek_valid(mm, tok->inval_seq) ? 0 : -EAGAIN;
}

VMMU_HOT
int host_cmpxchg_again(struct host_mm *mm, const struct host_peek_tok *tok, uint8_t *p,
		       unsigned len, uint64_t old, uint64_t val, bool *ok)
{
	int r = -EAGAIN;

	if (!tok->writable)
		return r;
	/* Every change of a present leaf's frame or KSM state is made under the write lock inside a
	 * notifier window (which moves inval_seq), every aging under it too (young_seq; the top
	 * comment): with the read lock held, sequences as the token's mean the page is mapped, to the
	 * same frame, young and no KSM page, now and until the unlock (host_hva_access's conditions). */
	brlock_read(&mm->lock);
	if (__atomic_load_n(&mm->inval_seq, __ATOMIC_ACQUIRE) == tok->inval_seq &&
	    __atomic_load_n(&mm->young_seq, __ATOMIC_ACQUIRE) == tok->young_seq) {
		*ok = host_word_cmpxchg(p, len, old, val);
		r = 0;
	}
	brlock_unlock(&mm->lock);
	return r;
}

static bool notifier_registered(struct host_mm *mm, const struct host_mmu_notifier *mn)
{
	struct host_mmu_notifier *pos;

	cds_list_for_each_entry(pos, &mm->notifiers, link)
		if (pos == mn)
			return true;
	return false;
}

void host_mmu_notifier_register(struct host_mm *mm, struct host_mmu_notifier *mn)
{
	if (!mm || !mn || !mn->ops)
		return;
	brlock_write(&mm->lock);
	/* Registering twice would corrupt the list; once is what the caller meant. */
	if (!notifier_registered(mm, mn))
		cds_list_add_tail(&mn->link, &mm->notifiers);
	brlock_unlock(&mm->lock);
}

void host_mmu_notifier_unregister(struct host_mm *mm, struct host_mmu_notifier *mn)
{
	if (!mm || !mn)
		return;
	brlock_write(&mm->lock);
	if (notifier_registered(mm, mn))
		cds_list_del(&mn->link);
	brlock_unlock(&mm->lock);
}

bool host_mm_clear_young(struct host_mm *mm, hva_t start, hva_t end)
{
	struct host_mmu_notifier *mn;
	bool young;

	if (!mm || start >= end)
		return false;
	brlock_write(&mm->lock);
	young = pt_young(mm->root, PT_LEVELS, 0, start, end, true);
	/* After the bits, with release: a peek that reads the new value sees them cleared. Advanced
	 * first, a peek could read it, then find a page young that this call was yet to clear, and
	 * keep a token that outlived the clearing. */
	__atomic_store_n(&mm->young_seq, mm->young_seq + 1, __ATOMIC_RELEASE);
	/* Every notifier, not only until one says young: each must clear its own state. */
	cds_list_for_each_entry(mn, &mm->notifiers, link)
		if (mn->ops->clear_young)
			young |= mn->ops->clear_young(mn, start, end);
	brlock_unlock(&mm->lock);
	return young;
}

bool host_mm_test_young(struct host_mm *mm, hva_t start, hva_t end)
{
	struct host_mmu_notifier *mn;
	bool young;

	if (!mm || start >= end)
		return false;
	brlock_write(&mm->lock);
	young = pt_young(mm->root, PT_LEVELS, 0, start, end, false);
	cds_list_for_each_entry(mn, &mm->notifiers, link) {
		if (young)
			break;
		if (mn->ops->test_young)
			young = mn->ops->test_young(mn, start, end);
	}
	brlock_unlock(&mm->lock);
	return young;
}

struct host_arena *host_mm_arena(const struct host_mm *mm)
{
	return mm ? mm->arena : NULL;
}

uint64_t host_mm_rss_pages(const struct host_mm *mm)
{
	return mm ? __atomic_load_n(&mm->rss_pages, __ATOMIC_RELAXED) : 0;
}

void host_mm_thp_stats(const struct host_mm *mm, struct host_thp_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!mm)
		return;
	st->thp_fault_alloc = __atomic_load_n(&mm->thp_ev.thp_fault_alloc, __ATOMIC_RELAXED);
	st->thp_fault_fallback = __atomic_load_n(&mm->thp_ev.thp_fault_fallback, __ATOMIC_RELAXED);
	st->thp_split_page = __atomic_load_n(&mm->thp_ev.thp_split_page, __ATOMIC_RELAXED);
	st->thp_collapse_alloc = __atomic_load_n(&mm->thp_ev.thp_collapse_alloc, __ATOMIC_RELAXED);
	st->thp_collapse_alloc_failed = __atomic_load_n(&mm->thp_ev.thp_collapse_alloc_failed,
							__ATOMIC_RELAXED);
	st->thp_underused_split_page = __atomic_load_n(&mm->thp_ev.thp_underused_split_page,
						       __ATOMIC_RELAXED);
}

uint64_t host_mm_ksm_cow_breaks(const struct host_mm *mm)
{
	return mm ? __atomic_load_n(&mm->ksm_cow_breaks, __ATOMIC_RELAXED) : 0;
}

int host_madvise(struct host_mm *mm, hva_t start, uint64_t len, unsigned flag, bool on)
{
	size_t i;

	if (!mm || len == 0 || (flag & ~(HOST_VMA_HUGEPAGE | HOST_VMA_MERGEABLE)))
		return -EINVAL;
	brlock_write(&mm->lock);
	/* Whole VMAs only: a memslot's backing is one VMA, and no caller needs a split. */
	for (i = vma_first_after(mm, start); i < mm->nr_vmas && mm->vmas[i].start < start + len; i++) {
		if (on)
			mm->vmas[i].flags |= flag;
		else
			mm->vmas[i].flags &= ~flag;
	}
	brlock_unlock(&mm->lock);
	return 0;
}

/* ---- what ksmd needs; caller holds mm->lock ---- */

void host_mm_lock(struct host_mm *mm)
{
	brlock_write(&mm->lock);
}

void host_mm_unlock(struct host_mm *mm)
{
	brlock_unlock(&mm->lock);
}

/* First leaf at or after @from and below @end under @n (a level-@level node at @base); 0 if none. */
static uint64_t *pt_next_leaf(struct pt_node *n, int level, hva_t base, hva_t from, hva_t end,
			      hva_t *at)
{
	uint64_t size = level_size(level);

	for (hva_t s = hva_max(from, base) & ~(size - 1); s < end && s < base + size * PT_ENTRIES;
	     s += size) {
		uint64_t *e = &n->e[pt_index(s, level)];

		if (*e == 0)
			continue;
		if (pte_is_leaf(*e)) {
			*at = hva_max(s, from);
			return e;
		}
		e = pt_next_leaf(pte_node(*e), level - 1, s, from, end, at);
		if (e)
			return e;
	}
	return NULL;
}

bool host_mm_next_mergeable(struct host_mm *mm, hva_t *hva, pfn_t *pfn, bool *ksm)
{
	for (size_t i = vma_first_after(mm, *hva); i < mm->nr_vmas; i++) {
		const struct host_vma *v = &mm->vmas[i];
		hva_t from = hva_max(*hva, v->start);

		/* KSM never merges hugetlb pages (the kernel's vma_ksm_compatible). */
		if (!(v->flags & HOST_VMA_MERGEABLE) || (v->flags & HOST_VMA_HUGETLB))
			continue;
		while (from < v->end) {
			uint64_t *e = pt_next_leaf(mm->root, PT_LEVELS, 0, from, v->end, &from);

			if (!e)
				break;
			/* A THP is scanned page by page and split only when one of its pages
			 * merges (ksm_leaf), as the kernel's ksmd does. */
			*hva = from;
			*pfn = leaf_pfn_at(*e, from);
			*ksm = *e & PTE_KSM;
			return true;
		}
	}
	return false;
}

/* The 4K non-KSM leaf of @hva if it still maps @pfn, else NULL. A 2M leaf is split first (its
 * frames stay; secondary MMUs drop their huge translation of it, as of an unmap). */
static uint64_t *ksm_leaf(struct host_mm *mm, hva_t hva, pfn_t pfn)
{
	uint64_t *e = pt_lookup(mm, hva);
	hva_t h = hva & ~(HOST_SIZE_2M - 1);
	struct pt_node *n;

	if (!e || (*e & (PTE_KSM | PTE_1G)) || leaf_pfn_at(*e, hva) != pfn)
		return NULL;
	if (!(*e & PTE_HUGE))
		return e;
	n = pt_node_alloc();
	if (!n)
		return NULL;
	notify_start(mm, h, h + HOST_SIZE_2M);
	pt_split_huge_into(mm, n, e);
	notify_end(mm, h, h + HOST_SIZE_2M);
	return pt_lookup(mm, hva);
}

int host_mm_ksm_protect(struct host_mm *mm, hva_t hva, pfn_t pfn)
{
	uint64_t *e = ksm_leaf(mm, hva, pfn);

	if (!e)
		return -EAGAIN;
	/* Secondary MMUs may hold a writable translation: dropping it write-protects the page. */
	notify_start(mm, hva, hva + HOST_PAGE_SIZE);
	pte_set(e, *e | PTE_KSM);
	notify_end(mm, hva, hva + HOST_PAGE_SIZE);
	return 0;
}

int host_mm_ksm_merge(struct host_mm *mm, hva_t hva, pfn_t pfn, pfn_t kpfn)
{
	uint64_t *e = ksm_leaf(mm, hva, pfn);
	int ret = 0;

	if (!e)
		return -EAGAIN;
	/* Between start and end nothing can write the page: every translation derived from it is
	 * gone and a new one needs this lock (or fails the invalidation sequence). So the bytes
	 * compared are the bytes dropped. */
	notify_start(mm, hva, hva + HOST_PAGE_SIZE);
	if (memcmp(host_pfn_to_ptr(mm->arena, pfn), host_pfn_to_ptr(mm->arena, kpfn),
		   HOST_PAGE_SIZE)) {
		ret = -ENODATA;
	} else {
		host_frame_get(mm->arena, kpfn);
		pte_set(e, make_leaf(kpfn, (*e & PTE_YOUNG) | PTE_KSM));
		host_frame_put(mm->arena, pfn, HOST_ORDER_4K);
	}
	notify_end(mm, hva, hva + HOST_PAGE_SIZE);
	return ret;
}

bool host_mm_leaf_is_ksm(struct host_mm *mm, hva_t hva, pfn_t *pfn)
{
	uint64_t *e = pt_lookup(mm, hva);

	if (!e || !(*e & PTE_KSM))
		return false;
	*pfn = pte_pfn(*e);
	return true;
}

/* ---- what khugepaged needs (khugepaged.c) ---- */

/*
 * Collapse the 2M range at @haddr, mapped by the level-1 node @n that the level-2 entry *@e
 * names, into one THP: a new 2M block holding the bytes of every 4K page mapped (zeroes where
 * none is), mapped by one leaf, the old frames freed. The kernel's collapse_huge_page: between
 * the notifiers' start and end nothing writes the old pages (every translation derived from them
 * is gone and a new one waits for this lock or fails the invalidation sequence), so the bytes
 * copied are the final ones. Caller holds mm->lock for writing.
 */
static int collapse_range(struct host_mm *mm, uint64_t *e, struct pt_node *n, hva_t haddr,
			  bool young)
{
	uint8_t *dst;
	pfn_t head, old[PT_ENTRIES];
	size_t nold = 0;

	if (host_frame_alloc(mm->arena, HOST_ORDER_2M, &head)) {
		thp_count(&mm->thp_ev.thp_collapse_alloc_failed);
		return -ENOMEM;
	}
	dst = host_pfn_to_ptr(mm->arena, head);
	notify_start(mm, haddr, haddr + HOST_SIZE_2M);
	for (unsigned i = 0; i < PT_ENTRIES; i++) {
		if (n->e[i] == 0)
			continue;   /* a page never touched reads as zeroes: the block came zeroed */
		old[nold] = pte_pfn(n->e[i]);
		memcpy(dst + (size_t)i * HOST_PAGE_SIZE, host_pfn_to_ptr(mm->arena, old[nold]),
		       HOST_PAGE_SIZE);
		nold++;
	}
	pte_set(e, make_leaf(head, PTE_HUGE | (young ? PTE_YOUNG : 0)));
	pt_node_free(n);
	host_frame_put_many(mm->arena, old, nold);
	rss_add(mm, (int64_t)(PT_ENTRIES - nold));
	notify_end(mm, haddr, haddr + HOST_SIZE_2M);
	thp_count(&mm->thp_ev.thp_collapse_alloc);
	return 0;
}

/* The level-2 entry for @hva, or NULL when a level above has none (or is a 1G leaf). */
static uint64_t *pt_l2_entry(struct host_mm *mm, hva_t hva)
{
	struct pt_node *n = mm->root;

	for (int level = PT_LEVELS; level > 2; level--) {
		uint64_t v = n->e[pt_index(hva, level)];

		if (v == 0 || pte_is_leaf(v))
			return NULL;
		n = pte_node(v);
	}
	return &n->e[pt_index(hva, 2)];
}

/*
 * Look at the 2M range at @haddr (inside a THP-eligible VMA) and collapse it if the kernel's
 * hpage_collapse_scan_pmd would: mapped by 4K pages, at most max_ptes_none of them none, none a
 * KSM page (shared, read-only: the kernel refuses those too), and at least one referenced (young
 * in the host page table or, through the notifiers, in a secondary MMU).
 */
static void collapse_scan_range(struct host_mm *mm, hva_t haddr, struct host_collapse_ctl *c)
{
	uint64_t *e = pt_l2_entry(mm, haddr);
	struct pt_node *n;
	unsigned none = 0;
	bool young = false;
	struct host_mmu_notifier *mn;

	if (!e || *e == 0 || pte_is_leaf(*e))
		return;
	n = pte_node(*e);
	for (unsigned i = 0; i < PT_ENTRIES; i++) {
		uint64_t v = n->e[i];

		if (v == 0) {
			none++;
			continue;
		}
		if (v & PTE_KSM)
			return;
		young |= v & PTE_YOUNG;
	}
	if (none > c->max_ptes_none)
		return;
	cds_list_for_each_entry(mn, &mm->notifiers, link)
		if (!young && mn->ops->test_young)
			young = mn->ops->test_young(mn, haddr, haddr + HOST_SIZE_2M);
	if (!young)
		return;
	if (collapse_range(mm, e, n, haddr, young) == 0)
		c->collapsed++;
	else
		c->alloc_failed++;
}

bool host_mm_collapse_scan(struct host_mm *mm, hva_t *cursor, struct host_collapse_ctl *c)
{
	bool done = true;

	brlock_write(&mm->lock);
	for (size_t i = vma_first_after(mm, *cursor); i < mm->nr_vmas; i++) {
		const struct host_vma *v = &mm->vmas[i];
		hva_t h = (hva_max(*cursor, v->start) + HOST_SIZE_2M - 1) & ~(HOST_SIZE_2M - 1);

		if (!vma_thp_eligible(mm, v))
			continue;
		for (; h + HOST_SIZE_2M <= v->end; h += HOST_SIZE_2M) {
			/* The kernel's progress: a PMD's worth of pages whatever it held. After a
			 * failed allocation the pass ends (khugepaged sleeps alloc_sleep_millisecs). */
			if (c->budget == 0 || c->alloc_failed) {
				*cursor = h;
				done = false;
				goto out;
			}
			c->budget -= c->budget < PT_ENTRIES ? c->budget : PT_ENTRIES;
			c->scanned += PT_ENTRIES;
			collapse_scan_range(mm, h, c);
		}
	}
	*cursor = 0;
out:
	brlock_unlock(&mm->lock);
	return done;
}

/* ---- memory pressure: the shrinker of underused THPs ---- */

void host_mm_set_underused_max_none(struct host_mm *mm, unsigned max_none)
{
	__atomic_store_n(&mm->underused_max_none, max_none, __ATOMIC_RELAXED);
}

static bool page_is_zero(const struct host_mm *mm, pfn_t pfn)
{
	const uint64_t *w = host_pfn_to_ptr(mm->arena, pfn);

	for (unsigned i = 0; i < HOST_PAGE_SIZE / 8; i++)
		if (w[i])
			return false;
	return true;
}

/*
 * The THP at level-2 entry *@e of @path (mapping @haddr): if more than underused_max_none of its
 * subpages are zero-filled, split it into 4K mappings and unmap those (as the kernel's
 * thp_underused and deferred split shrinker, which map them to the zero page: here the next
 * touch faults a zeroed page in, which reads the same). The bytes are looked at between the
 * notifiers' start and end, as a collapse copies them: no translation derived from the THP
 * survives the start, so no write lands in a subpage after it was found zero. Returns the frames
 * freed. mm->lock held for writing.
 */
static uint64_t shrink_thp(struct host_mm *mm, struct pt_node **path, uint64_t *e, hva_t haddr)
{
	const pfn_t head = pte_pfn(*e);
	bool zero[PT_ENTRIES];
	unsigned nzero = 0;
	pfn_t dead[PT_ENTRIES];
	size_t ndead = 0;
	const unsigned max_none = (unsigned)__atomic_load_n(&mm->underused_max_none,
							    __ATOMIC_RELAXED);
	struct pt_node *n;

	/* A first look with the THP still mapped (the kernel's thp_underused) spares the others
	 * the invalidation; the second, under it, decides. */
	for (unsigned i = 0; i < PT_ENTRIES; i++)
		nzero += page_is_zero(mm, head + i);
	if (nzero <= max_none || !(n = pt_node_alloc()))
		return 0;
	notify_start(mm, haddr, haddr + HOST_SIZE_2M);
	nzero = 0;
	for (unsigned i = 0; i < PT_ENTRIES; i++)
		nzero += zero[i] = page_is_zero(mm, head + i);
	if (nzero <= max_none) {
		notify_end(mm, haddr, haddr + HOST_SIZE_2M);
		pt_node_put(n);
		return 0;
	}
	if (nzero == PT_ENTRIES) {
		/* Nothing but zeroes: the whole THP goes, and the nodes it leaves empty. */
		pt_node_put(n);
		pte_set(e, 0);
		path[2]->nr--;
		host_frame_put(mm->arena, head, HOST_ORDER_2M);
		rss_add(mm, -(int64_t)PT_ENTRIES);
		pt_prune(path, haddr, 2);
		notify_end(mm, haddr, haddr + HOST_SIZE_2M);
		thp_count(&mm->thp_ev.thp_split_page);
		thp_count(&mm->thp_ev.thp_underused_split_page);
		return PT_ENTRIES;
	}
	pt_split_huge_into(mm, n, e);
	for (unsigned i = 0; i < PT_ENTRIES; i++) {
		if (!zero[i])
			continue;
		dead[ndead++] = pte_pfn(n->e[i]);
		pte_set(&n->e[i], 0);
		n->nr--;
	}
	host_frame_put_many(mm->arena, dead, ndead);
	rss_add(mm, -(int64_t)ndead);
	notify_end(mm, haddr, haddr + HOST_SIZE_2M);
	thp_count(&mm->thp_ev.thp_underused_split_page);
	return ndead;
}

/* Every THP of @mm's THP VMAs, shrunk where underused. The frames freed. mm->lock held for
 * writing (a host page fault that found no frame). */
static uint64_t shrink_underused_thps(struct host_mm *mm)
{
	uint64_t freed = 0;

	/* As the kernel's thp_underused: off while max_ptes_none is 511, its default. */
	if (__atomic_load_n(&mm->underused_max_none, __ATOMIC_RELAXED) >= PT_ENTRIES - 1)
		return 0;

	for (size_t i = 0; i < mm->nr_vmas; i++) {
		const struct host_vma *v = &mm->vmas[i];

		if (v->flags & HOST_VMA_HUGETLB)
			continue;
		for (hva_t h = (v->start + HOST_SIZE_2M - 1) & ~(HOST_SIZE_2M - 1);
		     h + HOST_SIZE_2M <= v->end; h += HOST_SIZE_2M) {
			struct pt_node *path[PT_LEVELS + 1] = { [PT_LEVELS] = mm->root };
			uint64_t *e = NULL;
			int level;

			for (level = PT_LEVELS; level >= 2; level--) {
				e = &path[level]->e[pt_index(h, level)];
				if (*e == 0 || pte_is_leaf(*e) || level == 2)
					break;
				path[level - 1] = pte_node(*e);
			}
			if (level == 2 && pte_is_leaf(*e) && !(*e & (PTE_1G | PTE_HUGETLB)))
				freed += shrink_thp(mm, path, e, h);
		}
	}
	return freed;
}
