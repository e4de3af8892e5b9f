/* SPDX-License-Identifier: MIT */
/*
 * arena.c: host physical frames. One MAP_NORESERVE mapping holds the bytes of every frame, a
 * second one a struct host_frame per frame; a binary buddy allocator hands out naturally aligned
 * blocks of 2^order frames, order 0 (4K) to 18 (1G).
 *
 * Invariants:
 *  - Every byte of a free block is zero: fresh anonymous memory is, and a block is given back with
 *    madvise(MADV_DONTNEED) before it returns to a free list, or (a retired 4K MMU table,
 *    host_frame_put_retired) zeroed with stores. So allocation never writes frames, and memory
 *    nobody uses is not resident but for the freed tables, at most what the MMUs once held, and
 *    the frames populated ahead (below) not yet handed out.
 *  - FRAME_FREE is set on exactly the head frames of the blocks on the free lists, FRAME_ALLOC on
 *    exactly the heads of allocated blocks (after host_frame_split, every frame of the old block
 *    is such a head). Other fields of a frame that is no head are stale and never read. So making,
 *    splitting and merging free blocks touches only head frames' metadata: a new 64 GiB arena has
 *    64 free 1G blocks and has touched 64 entries.
 *  - frames_used is the sum of 2^order over the allocated blocks not retired (a retired block
 *    waits for a grace period before its put: host_frame_retire).
 *  - Populate-ahead: once order-0 allocations run through consecutive pfns (the third in a row:
 *    a guest touching memory in order, an MMU growing its tables), the frames from the one just
 *    handed out are made resident in one MADV_POPULATE_WRITE, as the kernel's fault-around: to
 *    the next 2 MiB boundary, POPULATE_AHEAD frames at most, or from a 2 MiB boundary the whole
 *    2 MiB as one kernel huge page (MADV_HUGEPAGE for the populate only, NOHUGEPAGE again after,
 *    so the kernel does not fault or collapse huge pages there later). On these nested hosts a
 *    first write to a 4 KiB page costs 10-14 us, one to a page populated 4 KiB at a time 5-7
 *    (the outer hypervisor still maps it in), to a populated huge page's 4 KiB well under 1. An
 *    order-1..9 block is populated whole when handed out: its callers (a THP or 2M hugetlb
 *    fault, a khugepaged collapse) write it whole, and the model counts it resident whole, as
 *    the kernel does a THP; the fragmenter, which holds blocks it never writes, does not
 *    populate. The frames' metadata is populated ahead too. Free frames so populated stay zero
 *    (the kernel's zero-filled pages), so "free means zero" holds. RSS exceeds the frames in use
 *    by what was populated and not yet handed out: less than 2 MiB of frames and META_AHEAD
 *    frames' metadata a run, never for allocations out of order; frames populated and then never
 *    handed out stay resident. The model sees nothing: no frame changes state.
 *
 * Locking: arena->lock guards the free lists and every change of a frame's FREE/ALLOC state.
 * refcount and info are also read without it, so both are only accessed atomically: a caller that
 * holds a reference keeps its block's state stable. madvise() of a freed block runs outside the
 * lock: nobody references the block then and it is on no list yet. The populate-ahead madvise
 * also runs outside it: it changes no byte (a present page stays as it is, an absent one comes in
 * zero), so it may overlap anything done to those frames meanwhile, a discard included.
 */
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "hot.h"
#include "host/host.h"
#include "host/host_internal.h"

#define PFN_NONE UINT32_MAX             /* end of a free list; so an arena has < 2^32 frames */

#define FRAME_ORDER_MASK 0x1fu          /* info: order of the block this frame heads */
#define FRAME_FREE       (1u << 5)      /* info: head of a block on free list [order] */
#define FRAME_ALLOC      (1u << 6)      /* info: head of an allocated block */

/*
 * Metadata of one 4 KiB frame. 24 bytes, so 6 MiB per touched GiB; the issue allows 32, which
 * leaves room for what KSM or rmap will need.
 */
struct host_frame {
	uint32_t next;          /* free list link (pfn), valid on a FRAME_FREE head */
	uint32_t prev;          /* free list link (pfn), valid on a FRAME_FREE head */
	uint32_t refcount;      /* atomic; valid on a FRAME_ALLOC head */
	uint32_t info;          /* atomic; order | FRAME_FREE | FRAME_ALLOC */
	uintptr_t private;      /* atomic; the owner's word (page->private), 0 when allocated */
};
_Static_assert(sizeof(struct host_frame) <= 32, "frame metadata must stay within 32 bytes a frame");
_Static_assert(sizeof(struct host_frame) == HOST_FRAME_META_BYTES, "host.h says how large it is");
_Static_assert(offsetof(struct host_frame, info) == HOST_FRAME_INFO_OFFSET &&
	       FRAME_ALLOC == HOST_FRAME_INFO_HEAD, "host.h's host_hpa_ptr_inline reads info");
_Static_assert(HOST_MAX_ORDER <= FRAME_ORDER_MASK, "order must fit in info");

/*
 * A free block of 2^order frames this large or larger also gives back the metadata of its
 * frames but the head's page: 2^8 * 24 bytes is 1.5 pages, so smaller blocks have none to give.
 */
#define META_RELEASE_ORDER 8

/* Populate-ahead (invariants above): a window of at most this many frames (128 KiB) unless it
 * starts a 2 MiB block, opened once SEQ_RUN frames in a row have each extended a run (the third
 * consecutive pfn). The metadata's window is wider, META_AHEAD frames (96 KiB of it), renewed
 * while fewer than half are left: a split writes the heads of the free halves ahead of the frame
 * it hands out. */
#define POPULATE_AHEAD 32
#define META_AHEAD     4096
#define SEQ_RUN        2

/* Legend: [c] set at create, then constant; [l] guarded by lock; [a] atomic. */
struct host_arena {
	pthread_mutex_t lock;
	uint8_t *base;                          /* [c] pfn 0's bytes */
	uint64_t bytes;                         /* [c] size of the frame mapping */
	struct host_frame *meta;                /* [c] metadata mapping, one entry a frame */
	uint64_t meta_bytes;                    /* [c] its size, page rounded */
	uint64_t nframes;                       /* [c] 4K frames in the arena */
	uint64_t used;                          /* [a] frames in allocated blocks; written under lock */
	uint32_t free_head[HOST_MAX_ORDER + 1]; /* [l] first free block of each order, or PFN_NONE */
	uint64_t seq_next;                      /* [l] the pfn that would continue the run */
	unsigned seq_run;                       /* [l] consecutive order-0 pfns handed out so far */
	uint64_t pop_lo, pop_hi;                /* [l] the last window of frames populated ahead */
	uint64_t meta_lo, meta_hi;              /* [l] the last window of metadata populated ahead */
	bool no_populate;                       /* [a] the kernel has no MADV_POPULATE_WRITE */
	bool no_huge;                           /* [a] a window's NOHUGEPAGE failed: no more huge */
	uint8_t *map;                           /* [c] the frame mapping as mmap gave it, 2 MiB more */
};

static inline struct host_frame *frame(const struct host_arena *a, uint64_t pfn)
{
	return &a->meta[pfn];
}

static inline uint32_t info_get(const struct host_frame *f)
{
	return __atomic_load_n(&f->info, __ATOMIC_ACQUIRE);
}

static inline void info_set(struct host_frame *f, uint32_t info)
{
	__atomic_store_n(&f->info, info, __ATOMIC_RELEASE);
}

static inline unsigned info_order(uint32_t info)
{
	return info & FRAME_ORDER_MASK;
}

static inline uint64_t block_bytes(unsigned order)
{
	return HOST_PAGE_SIZE << order;
}

/* ---- free lists: doubly linked through pfns; caller holds lock ---- */

static void list_add(struct host_arena *a, uint32_t pfn, unsigned order)
{
	struct host_frame *f = frame(a, pfn);
	uint32_t head = a->free_head[order];

	f->prev = PFN_NONE;
	f->next = head;
	if (head != PFN_NONE)
		frame(a, head)->prev = pfn;
	a->free_head[order] = pfn;
	info_set(f, FRAME_FREE | order);
}

static void list_del(struct host_arena *a, uint32_t pfn, unsigned order)
{
	struct host_frame *f = frame(a, pfn);

	if (f->prev != PFN_NONE)
		frame(a, f->prev)->next = f->next;
	else
		a->free_head[order] = f->next;
	if (f->next != PFN_NONE)
		frame(a, f->next)->prev = f->prev;
	info_set(f, 0);
}

static void used_add(struct host_arena *a, int64_t delta)
{
	__atomic_add_fetch(&a->used, (uint64_t)delta, __ATOMIC_RELAXED);
}

/*
 * The metadata of a free block's frames other than its head is never read, so give its pages
 * back; keep the page holding the head's entry. Caller holds lock, so nobody can split the block
 * and write new heads into those pages meanwhile.
 */
static void release_meta(struct host_arena *a, uint64_t pfn, unsigned order)
{
	uintptr_t lo = (uintptr_t)(frame(a, pfn) + 1);
	uintptr_t hi = (uintptr_t)frame(a, pfn + (1ULL << order));

	lo = (lo + HOST_PAGE_SIZE - 1) & ~(uintptr_t)(HOST_PAGE_SIZE - 1);
	hi &= ~(uintptr_t)(HOST_PAGE_SIZE - 1);
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_DONTNEED);  /* only RSS is at stake */
}

/*
 * Put the zeroed block [pfn, pfn + 2^order) on the free lists, merging it with free buddies as far
 * as they go. Caller holds lock; the block's head is no longer FRAME_ALLOC.
 */
static void buddy_free(struct host_arena *a, uint64_t pfn, unsigned order)
{
	while (order < HOST_MAX_ORDER) {
		uint64_t buddy = pfn ^ (1ULL << order);

		/* Arena sizes are whole 1G blocks, so a buddy below the top order always exists. */
		if (info_get(frame(a, buddy)) != (FRAME_FREE | order))
			break;
		list_del(a, (uint32_t)buddy, order);
		pfn &= ~(1ULL << order);
		order++;
	}
	list_add(a, (uint32_t)pfn, order);
	if (order >= META_RELEASE_ORDER)
		release_meta(a, pfn, order);
}

/* Hand the bytes of a block nobody references back to the kernel, which makes them zero. */
static void block_discard(struct host_arena *a, uint64_t pfn, uint64_t nframes)
{
	void *p = a->base + pfn * HOST_PAGE_SIZE;
	size_t len = nframes * HOST_PAGE_SIZE;

	/* madvise fails only on a bad range; keep "free means zero" even then. */
	if (madvise(p, len, MADV_DONTNEED) != 0)
		memset(p, 0, len);
}

/* One populate-ahead window, @len bytes at @p: false when the kernel cannot (before 5.14:
 * EINVAL). Another failure (ENOMEM, say) costs only the speed-up. A whole aligned 2 MiB comes in
 * as one huge page where the kernel has one (invariants above). */
static bool populate(struct host_arena *a, void *p, size_t len)
{
	bool huge = len == HOST_SIZE_2M && !((uintptr_t)p & (HOST_SIZE_2M - 1)) &&
		    !__atomic_load_n(&a->no_huge, __ATOMIC_RELAXED);
	int err = 0;

	if (huge)
		(void)madvise(p, len, MADV_HUGEPAGE);
	if (madvise(p, len, MADV_POPULATE_WRITE))
		err = errno;
	/* The range back to NOHUGEPAGE, as the rest of the arena: left HUGEPAGE, the kernel could
	 * fault or collapse huge pages there later. If that fails (ENOMEM splitting the mapping, say),
	 * once more, then no huge windows again. */
	if (huge && madvise(p, len, MADV_NOHUGEPAGE) && madvise(p, len, MADV_NOHUGEPAGE))
		__atomic_store_n(&a->no_huge, true, __ATOMIC_RELAXED);
	if (err == EINVAL) {
		__atomic_store_n(&a->no_populate, true, __ATOMIC_RELAXED);
		return false;
	}
	return true;
}

/* Frames [lo, hi) (none when lo == hi) and the metadata of frames [mlo, mhi) made resident. */
static void populate_ahead(struct host_arena *a, uint64_t lo, uint64_t hi, uint64_t mlo,
			   uint64_t mhi)
{
	if (lo < hi && !populate(a, a->base + lo * HOST_PAGE_SIZE, (hi - lo) * HOST_PAGE_SIZE))
		return;
	if (mlo < mhi) {
		uintptr_t m0 = (uintptr_t)frame(a, mlo) & ~(uintptr_t)(HOST_PAGE_SIZE - 1);
		uintptr_t m1 = ((uintptr_t)frame(a, mhi) + HOST_PAGE_SIZE - 1) &
			       ~(uintptr_t)(HOST_PAGE_SIZE - 1);
		populate(a, (void *)m0, m1 - m0);
	}
}

/* Caller holds lock: @head (order 0) was just handed out; the windows to populate ahead, if any,
 * in [*lo, *hi) (frames) and [*mlo, *mhi) (metadata), both empty if none. */
static void populate_plan(struct host_arena *a, uint64_t head, uint64_t *lo, uint64_t *hi,
			  uint64_t *mlo, uint64_t *mhi)
{
	*lo = *hi = *mlo = *mhi = 0;
	a->seq_run = head == a->seq_next ? a->seq_run + 1 : 0;
	a->seq_next = head + 1;
	if (a->seq_run < SEQ_RUN || __atomic_load_n(&a->no_populate, __ATOMIC_RELAXED))
		return;
	if (head < a->pop_lo || head >= a->pop_hi) {
		const uint64_t huge = 1ULL << HOST_ORDER_2M;
		uint64_t end = (head | (huge - 1)) + 1;   /* the next 2 MiB boundary */

		if (head % huge && end > head + POPULATE_AHEAD)
			end = head + POPULATE_AHEAD;
		*lo = a->pop_lo = head;
		*hi = a->pop_hi = end < a->nframes ? end : a->nframes;
	}
	if (head < a->meta_lo || (head + META_AHEAD / 2 > a->meta_hi && a->meta_hi < a->nframes)) {
		*mlo = a->meta_lo = head;
		*mhi = a->meta_hi = head + META_AHEAD < a->nframes ? head + META_AHEAD : a->nframes;
	}
}

/*
 * The head of the allocated block holding @pfn, or PFN_NONE. Reads up to 19 heads' info without
 * the lock: exact while the caller holds a reference to the block, a snapshot otherwise.
 */
VMMU_HOT
static uint64_t block_head(const struct host_arena *a, uint64_t pfn, unsigned *order)
{
	if (pfn >= a->nframes)
		return PFN_NONE;
	for (unsigned k = 0; k <= HOST_MAX_ORDER; k++) {
		uint64_t head = pfn & ~((1ULL << k) - 1);
		uint32_t info = info_get(frame(a, head));

		/* A head aligned to 2^k with order >= k covers pfn, since pfn shares its high bits. */
		if ((info & FRAME_ALLOC) && info_order(info) >= k) {
			if (order)
				*order = info_order(info);
			return head;
		}
	}
	return PFN_NONE;
}

/* ---- the API ---- */

int host_arena_create(uint64_t bytes, struct host_arena **out)
{
	const uint64_t block = block_bytes(HOST_MAX_ORDER);
	struct host_arena *a;
	int ret;

	if (!out || bytes == 0 || bytes > UINT64_MAX - block)
		return -EINVAL;
	bytes = (bytes + block - 1) & ~(block - 1);
	if (bytes / HOST_PAGE_SIZE >= PFN_NONE)
		return -EINVAL;         /* free-list links are 32-bit pfns */

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->bytes = bytes;
	a->nframes = bytes / HOST_PAGE_SIZE;
	a->meta_bytes = (a->nframes * sizeof(struct host_frame) + HOST_PAGE_SIZE - 1) &
			~(HOST_PAGE_SIZE - 1);

	ret = pthread_mutex_init(&a->lock, NULL);
	if (ret) {
		ret = -ret;
		goto out_free;
	}
	/* 2 MiB aligned (kernels before 6.7 do not align a large mapping), so a populate-ahead window
	 * of a 2 MiB block is a huge page's range. */
	a->map = mmap(NULL, a->bytes + HOST_SIZE_2M, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->map == MAP_FAILED) {
		ret = -errno;
		goto out_mutex;
	}
	a->base = (uint8_t *)(((uintptr_t)a->map + HOST_SIZE_2M - 1) &
			      ~(uintptr_t)(HOST_SIZE_2M - 1));
	a->meta = mmap(NULL, a->meta_bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (a->meta == MAP_FAILED) {
		ret = -errno;
		goto out_unmap;
	}
	/*
	 * Kernel THP would back a 4 KiB model frame with 2 MiB of RSS once its neighbours are touched
	 * or freed apart; the model's RSS must be what the model uses (but for populate-ahead's
	 * windows, above, which choose their huge pages). Failure (no THP) is fine.
	 */
	(void)madvise(a->base, a->bytes, MADV_NOHUGEPAGE);
	(void)madvise(a->meta, a->meta_bytes, MADV_NOHUGEPAGE);

	for (unsigned k = 0; k <= HOST_MAX_ORDER; k++)
		a->free_head[k] = PFN_NONE;
	a->seq_next = PFN_NONE;   /* the first frame handed out begins a run; it does not extend one */
	/* Highest first, so the LIFO list hands out low pfns first. */
	for (uint64_t pfn = a->nframes; pfn > 0;) {
		pfn -= 1ULL << HOST_MAX_ORDER;
		list_add(a, (uint32_t)pfn, HOST_MAX_ORDER);
	}
	*out = a;
	return 0;

out_unmap:
	munmap(a->map, a->bytes + HOST_SIZE_2M);
out_mutex:
	pthread_mutex_destroy(&a->lock);
out_free:
	free(a);
	return ret;
}

void host_arena_destroy(struct host_arena *a)
{
	if (!a)
		return;
	munmap(a->meta, a->meta_bytes);
	munmap(a->map, a->bytes + HOST_SIZE_2M);
	pthread_mutex_destroy(&a->lock);
	free(a);
}

/* host_frame_alloc(); @populate: the caller will write the block, so populate-ahead applies
 * (invariants above); the fragmenter, which never writes what it holds, passes false. */
static int frame_alloc(struct host_arena *a, unsigned order, pfn_t *pfn, bool populate)
{
	unsigned k;
	uint32_t head;

	if (!a || !pfn || order > HOST_MAX_ORDER)
		return -EINVAL;

	pthread_mutex_lock(&a->lock);
	for (k = order; k <= HOST_MAX_ORDER && a->free_head[k] == PFN_NONE; k++)
		;
	if (k > HOST_MAX_ORDER) {
		pthread_mutex_unlock(&a->lock);
		return -ENOMEM;
	}
	head = a->free_head[k];
	list_del(a, head, k);
	/* Keep the low half, free the high halves: allocations run upwards through memory. */
	while (k > order) {
		k--;
		list_add(a, head + (1u << k), k);
	}
	__atomic_store_n(&frame(a, head)->refcount, 1, __ATOMIC_RELAXED);
	__atomic_store_n(&frame(a, head)->private, 0, __ATOMIC_RELAXED);
	info_set(frame(a, head), FRAME_ALLOC | order);
	used_add(a, (int64_t)1 << order);
	uint64_t lo = 0, hi = 0, mlo = 0, mhi = 0;
	if (populate && order == 0)
		populate_plan(a, head, &lo, &hi, &mlo, &mhi);
	else if (populate && order <= HOST_ORDER_2M &&
		 !__atomic_load_n(&a->no_populate, __ATOMIC_RELAXED))
		lo = mlo = head, hi = mhi = head + (1u << order);   /* a lookup reads a tail's info */
	pthread_mutex_unlock(&a->lock);

	if (hi || mhi)
		populate_ahead(a, lo, hi, mlo, mhi);
	*pfn = head;
	return 0;
}

int host_frame_alloc(struct host_arena *a, unsigned order, pfn_t *pfn)
{
	return frame_alloc(a, order, pfn, true);
}

/* Drop a reference to an allocated head; true if it was the last. */
static bool frame_unref(struct host_arena *a, pfn_t pfn, unsigned order)
{
	struct host_frame *f;
	uint32_t info;

	assert(pfn < a->nframes);
	f = frame(a, pfn);
	info = info_get(f);
	/* Freeing what is not allocated, or with another order, is a bug in the caller. */
	assert(info == (FRAME_ALLOC | order));
	(void)info;
	(void)order;
	assert(__atomic_load_n(&f->refcount, __ATOMIC_RELAXED) > 0);
	/* acq_rel: the last putter sees every earlier holder's writes before freeing. */
	return __atomic_sub_fetch(&f->refcount, 1, __ATOMIC_ACQ_REL) == 0;
}

/* The last reference went: back to the free lists (@count: the block is still counted used).
 * @in_place: zero its bytes with stores instead of giving them back to the kernel (see
 * host_frame_put_retired). */
static void block_release(struct host_arena *a, pfn_t pfn, unsigned order, bool count,
			  bool in_place)
{
	if (in_place)
		memset(a->base + pfn * HOST_PAGE_SIZE, 0, HOST_PAGE_SIZE << order);
	else
		block_discard(a, pfn, 1ULL << order);
	pthread_mutex_lock(&a->lock);
	info_set(frame(a, pfn), 0);
	if (count)
		used_add(a, -((int64_t)1 << order));
	buddy_free(a, pfn, order);
	pthread_mutex_unlock(&a->lock);
}

void host_frame_put(struct host_arena *a, pfn_t pfn, unsigned order)
{
	assert(a && order <= HOST_MAX_ORDER);
	if (frame_unref(a, pfn, order))
		block_release(a, pfn, order, true, false);
}

void host_frame_retire(struct host_arena *a, pfn_t pfn, unsigned order)
{
	assert(a && order <= HOST_MAX_ORDER && host_frame_refcount(a, pfn) == 1);
	(void)pfn;
	used_add(a, -((int64_t)1 << order));
}

void host_frame_put_retired(struct host_arena *a, pfn_t pfn, unsigned order)
{
	assert(a && order <= HOST_MAX_ORDER);
	/* A 4K table zeroed in place costs a few hundred stores to lines the cache still holds; a
	 * madvise, a system call and, with vCPU threads running, a TLB shootdown IPI to every CPU
	 * the process runs on (tens of microseconds in a nested VM, on the CPUs doing the work). */
	if (frame_unref(a, pfn, order))
		block_release(a, pfn, order, false, order == HOST_ORDER_4K);
}

void host_frame_put_many(struct host_arena *a, const pfn_t *pfns, size_t n)
{
	enum { CHUNK = 512 };           /* one L1 node's worth: 4 KiB of stack */
	pfn_t dead[CHUNK];

	assert(a && (pfns || n == 0));
	for (size_t done = 0; done < n; done += CHUNK) {
		size_t len = n - done < CHUNK ? n - done : CHUNK;
		size_t ndead = 0;

		for (size_t i = 0; i < len; i++)
			if (frame_unref(a, pfns[done + i], 0))
				dead[ndead++] = pfns[done + i];
		if (ndead == 0)
			continue;

		/* Pages of one unmapped range tend to be consecutive frames: one madvise per run. */
		for (size_t i = 0; i < ndead;) {
			size_t j = i + 1;

			while (j < ndead && dead[j] == dead[j - 1] + 1)
				j++;
			block_discard(a, dead[i], j - i);
			i = j;
		}
		pthread_mutex_lock(&a->lock);
		for (size_t i = 0; i < ndead; i++) {
			info_set(frame(a, dead[i]), 0);
			buddy_free(a, dead[i], 0);
		}
		used_add(a, -(int64_t)ndead);
		pthread_mutex_unlock(&a->lock);
	}
}

void host_frame_get(struct host_arena *a, pfn_t pfn)
{
	uint64_t head;

	assert(a);
	head = block_head(a, pfn, NULL);
	/* Taking a reference needs one already: the block cannot be free. */
	assert(head != PFN_NONE);
	assert(__atomic_load_n(&frame(a, head)->refcount, __ATOMIC_RELAXED) > 0);
	__atomic_add_fetch(&frame(a, head)->refcount, 1, __ATOMIC_RELAXED);
}

void host_frame_set_private(struct host_arena *a, pfn_t pfn, uintptr_t val)
{
	assert(a && pfn < a->nframes && (info_get(frame(a, pfn)) & FRAME_ALLOC));
	__atomic_store_n(&frame(a, pfn)->private, val, __ATOMIC_RELEASE);
}

uintptr_t host_frame_private(const struct host_arena *a, pfn_t pfn)
{
	return __atomic_load_n(&frame(a, pfn)->private, __ATOMIC_ACQUIRE);
}

unsigned host_frame_refcount(const struct host_arena *a, pfn_t pfn)
{
	uint64_t head;

	if (!a)
		return 0;
	head = block_head(a, pfn, NULL);
	if (head == PFN_NONE)
		return 0;
	return __atomic_load_n(&frame(a, head)->refcount, __ATOMIC_RELAXED);
}

void host_frame_split_to(struct host_arena *a, pfn_t pfn, unsigned order, unsigned new_order)
{
	uint32_t refs;

	assert(a && order <= HOST_MAX_ORDER && new_order <= order && pfn < a->nframes);
	assert(info_get(frame(a, pfn)) == (FRAME_ALLOC | order));
	refs = __atomic_load_n(&frame(a, pfn)->refcount, __ATOMIC_RELAXED);
	assert(refs > 0);

	pthread_mutex_lock(&a->lock);
	/* A new head's refcount before its ALLOC bit: a lockless block_head() that finds it reads
	 * both. Frames inside a new block stay tails (no ALLOC bit), as they were in the old one. */
	for (uint64_t i = 1ULL << new_order; i < (1ULL << order); i += 1ULL << new_order) {
		struct host_frame *f = frame(a, pfn + i);

		__atomic_store_n(&f->refcount, refs, __ATOMIC_RELAXED);
		__atomic_store_n(&f->private, 0, __ATOMIC_RELAXED);
		info_set(f, FRAME_ALLOC | new_order);
	}
	info_set(frame(a, pfn), FRAME_ALLOC | new_order);
	pthread_mutex_unlock(&a->lock);
}

void host_frame_split(struct host_arena *a, pfn_t pfn, unsigned order)
{
	host_frame_split_to(a, pfn, order, HOST_ORDER_4K);
}

void *host_pfn_to_ptr(const struct host_arena *a, pfn_t pfn)
{
	if (!a || pfn >= a->nframes)
		return NULL;
	return a->base + pfn * HOST_PAGE_SIZE;
}

bool host_pfn_valid(const struct host_arena *a, pfn_t pfn)
{
	return a && block_head(a, pfn, NULL) != PFN_NONE;
}

/* host_hpa_ptr's frame inside a block (not its head): out of line and cold, so that the usual
 * case, a block's head (every MMU table), is a bounds check and one load with no call to make
 * room for (the walks of shadow and EPT tables call it four times a walk). */
__attribute__((noinline, cold)) static void *hpa_ptr_in_block(const struct host_arena *a,
								uint64_t hpa)
{
	return block_head(a, hpa >> HOST_PAGE_SHIFT, NULL) == PFN_NONE ? NULL : a->base + hpa;
}

VMMU_HOT
void *host_hpa_ptr(const struct host_arena *a, uint64_t hpa)
{
	const uint64_t pfn = hpa >> HOST_PAGE_SHIFT;

	if (!a || pfn >= a->nframes)
		return NULL;
	/* block_head's first step alone first: the tables walked are order-0 blocks. */
	if (__builtin_expect(info_get(frame(a, pfn)) & FRAME_ALLOC, 1))
		return a->base + hpa;
	return hpa_ptr_in_block(a, hpa);
}

const void *host_frame_meta(const struct host_arena *a, pfn_t pfn)
{
	if (!a || pfn >= a->nframes)
		return NULL;
	return frame(a, pfn);
}

uint64_t host_arena_frames(const struct host_arena *a)
{
	return a ? a->nframes : 0;
}

/* Resident bytes of [p, p + len): mincore, a chunk at a time (the mapping can be 64 GiB). The
 * vector is the heap's, not thread-local: a library with 64 KiB of TLS cannot be dlopen()ed
 * (its initial-exec variables must fit the few bytes glibc keeps for late loads). */
static uint64_t resident(const uint8_t *p, uint64_t len)
{
	enum { CHUNK_PAGES = 1u << 16 };
	unsigned char *vec = malloc(CHUNK_PAGES);
	const uint64_t page = 4096;
	uint64_t n = 0;
	bool failed = !vec;

	for (uint64_t off = 0; !failed && off < len; off += (uint64_t)CHUNK_PAGES * page) {
		uint64_t bytes = len - off < (uint64_t)CHUNK_PAGES * page ? len - off :
				 (uint64_t)CHUNK_PAGES * page;
		failed = mincore((void *)(p + off), bytes, vec) != 0;
		for (uint64_t i = 0; !failed && i < (bytes + page - 1) / page; i++)
			n += vec[i] & 1;
	}
	free(vec);
	return failed ? UINT64_MAX : n * page;
}

uint64_t host_arena_resident_bytes(const struct host_arena *a)
{
	uint64_t f, m;

	if (!a)
		return 0;
	f = resident(a->base, a->bytes);
	m = resident((const uint8_t *)a->meta, a->meta_bytes);
	return f == UINT64_MAX || m == UINT64_MAX ? UINT64_MAX : f + m;
}

uint64_t host_arena_frames_used(const struct host_arena *a)
{
	return a ? __atomic_load_n(&a->used, __ATOMIC_RELAXED) : 0;
}

/* Free order-0 frames no one ever wrote (so still zero: no madvise needed), each its own
 * allocated head with one reference. The fragmenter's, whose frames only it ever held. */
static void free_clean(struct host_arena *a, const pfn_t *pfns, size_t n)
{
	pthread_mutex_lock(&a->lock);
	for (size_t i = 0; i < n; i++) {
		info_set(frame(a, pfns[i]), 0);
		buddy_free(a, pfns[i], 0);
	}
	used_add(a, -(int64_t)n);
	pthread_mutex_unlock(&a->lock);
}

int host_arena_fragment(struct host_arena *a, unsigned pct, pfn_t **pins, size_t *npins)
{
	uint64_t target, n = 0;
	pfn_t *heads, *pinned;

	if (!a || !pins || !npins || pct > 100)
		return -EINVAL;
	target = (a->nframes - host_arena_frames_used(a)) / 512 * pct / 100;
	heads = calloc(target ? target : 1, sizeof(*heads));
	if (!heads)
		return -ENOMEM;
	while (n < target && frame_alloc(a, HOST_ORDER_2M, &heads[n], false) == 0)
		n++;
	pinned = calloc(n * 256 + 1, sizeof(*pinned));
	if (!pinned) {
		for (uint64_t i = 0; i < n; i++)
			host_frame_put(a, heads[i], HOST_ORDER_2M);
		free(heads);
		return -ENOMEM;
	}
	for (uint64_t i = 0; i < n; i++) {
		pfn_t holes[256];

		/* Every other frame held (the classic fragmenter: allocate all, free every other
		 * page), so the frames a workload takes meanwhile fill the holes of a few blocks
		 * and the others become 2M again once the pins go. */
		host_frame_split(a, heads[i], HOST_ORDER_2M);
		for (unsigned f = 0; f < 256; f++) {
			holes[f] = heads[i] + 2 * f;
			pinned[i * 256 + f] = heads[i] + 2 * f + 1;
		}
		free_clean(a, holes, 256);
	}
	free(heads);
	*pins = pinned;
	*npins = n * 256;
	return 0;
}

void host_arena_unfragment(struct host_arena *a, pfn_t *pins, size_t npins)
{
	free_clean(a, pins, npins);
	free(pins);
}
