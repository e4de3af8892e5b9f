/* SPDX-License-Identifier: MIT */
/*
 * mem/: memslots with KVM_SET_USER_MEMORY_REGION semantics, gfn -> slot -> hva -> pfn, dirty logs.
 *
 * A struct memslots is the set of slots of one VM (one address space), bound to the host_mm whose
 * hvas back it. Slots are sorted by base gfn in an array searched in O(log n); a per-vCPU
 * struct slot_cache makes repeated hits O(1).
 *
 * Invariants:
 *  - Slots in a set never overlap in gfn; a published struct memslot is immutable (only its dirty
 *    bitmap's bits change). A change that alters a slot (move, flags) publishes a new struct.
 *  - The generation (memslots_generation()) changes on every effective change and only then. It is
 *    odd while a change is in progress (from just before the new set is published until every
 *    reader of the old set has left), even when stable; each change adds 2, as KVM's
 *    KVM_MEMSLOT_GEN_UPDATE_IN_PROGRESS protocol. A value is never reused (64 bits).
 *
 * Locking:
 *  - Updates (memslots_set_user_memory_region, memslots_get_dirty_log, memslots_set_ops) take
 *    ms->lock (a mutex); a region change also waits for an RCU grace period, so never call it
 *    inside a read section, from a hook, or holding a lock a reader may wait for (mm->lock,
 *    mmu_lock). Hooks run with ms->lock held.
 *  - Readers are lock-free: every function returning a struct memslot * (and the gfn_to_* helpers
 *    that use one) must be called inside vmmu_rcu_read_lock()/vmmu_rcu_read_unlock() (liburcu-bp
 *    rcu_read_lock plus a ThreadSanitizer annotation). The slot stays valid until the read section
 *    ends. A fault must stay in one read section from its slot lookup until its spte is installed:
 *    the change hook runs only after every such section has ended.
 */
#ifndef VMMU_MEM_MEMSLOT_H
#define VMMU_MEM_MEMSLOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/host.h"
#include "host/rcu.h"
#include "vmmu/types.h"
#include "vmmu/vmmu.h"

#define MEMSLOT_VALID_FLAGS (VMMU_MEM_LOG_DIRTY_PAGES | VMMU_MEM_READONLY)
/* Largest gpa width a slot may reach when memslots_create() gets 0 (x86's 52-bit MAXPHYADDR). */
#define MEMSLOT_DEFAULT_PHYS_BITS 52
/* access_ok() on x86-64: the user half of a 4-level address space. */
#define MEMSLOT_USER_ADDR_LIMIT (1ULL << 47)
/* Low bit of the generation: an update is in progress (see the file comment). */
#define MEMSLOT_GEN_UPDATE_IN_PROGRESS 1ULL

/* One registered range. Immutable once published, except the bits of its bitmaps. */
struct memslot {
	gfn_t base_gfn;            /* first gfn */
	uint64_t npages;           /* > 0 */
	hva_t userspace_addr;      /* hva backing base_gfn */
	uint32_t flags;            /* VMMU_MEM_* */
	uint16_t id;               /* slot id, < VMMU_USER_MEM_SLOTS */
	uint16_t as_id;            /* address space: always 0 */
	uint64_t *dirty_bitmap;    /* one bit a page, LSB first; non-NULL iff LOG_DIRTY_PAGES; atomic */
	uint64_t *ksm_bitmap;      /* the same for ksmd (pages written since it last harvested them);
				    * non-NULL iff the set tracks writes for KSM; atomic */
};

enum memslot_change {
	MEMSLOT_CREATE,
	MEMSLOT_DELETE,
	MEMSLOT_MOVE,
	MEMSLOT_FLAGS_ONLY,
};

/*
 * Callbacks for the MMU. Both run with ms->lock held and outside any read section; they must not
 * call back into memslots updates (reads are fine).
 */
struct memslots_ops {
	/*
	 * Every effective change, once: @old is the slot before (NULL on CREATE), @new after (NULL on
	 * DELETE). Called after the new set is published and after a grace period (no reader still
	 * sees @old), before @old and its data are freed and before the generation turns even: during
	 * the call memslots_generation() is the odd in-progress value, the final one is that + 1.
	 * DELETE/MOVE: zap every spte of @old. FLAGS_ONLY: write-protect when a bitmap comes
	 * (slot_tracking_added: LOG_DIRTY_PAGES or KSM's tracking enabled); huge mappings may come
	 * back when none is left.
	 */
	void (*change)(void *opaque, const struct memslot *old, const struct memslot *new,
		       enum memslot_change change);
	/*
	 * From memslots_get_dirty_log() and memslots_ksm_harvest(), when some bit was harvested:
	 * @harvested[w] bit b is page (@first_word+w)*64+b of @slot, just cleared from one of its
	 * bitmaps. Write-protect those pages again (and flush TLBs) so the next write is logged, as
	 * kvm_arch_mmu_enable_log_dirty_pt_masked().
	 */
	void (*dirty_log_protect)(void *opaque, const struct memslot *slot, uint64_t first_word,
				  const uint64_t *harvested, uint64_t nwords);
	/*
	 * Optional, before either harvest: move writes the MMU recorded elsewhere (D bits of
	 * leaves mapping [start, end) of @slot) into the bitmaps, as kvm_arch_sync_dirty_log().
	 */
	void (*sync_dirty_log)(void *opaque, const struct memslot *slot, gfn_t start, gfn_t end);
};

/* Per-vCPU last-slot cache. Zero-initialize (or slot_cache_init). Used by one thread only. */
struct slot_cache {
	const struct memslot *slot;  /* last slot hit, or NULL */
	uint64_t gen;                /* generation of the set @slot was found in */
	uint64_t hits, misses;       /* statistics */
};

struct memslots;
struct memslot_array;

/* ---- reader side ---- */

/* Read sections and grace periods: host/rcu.h (liburcu-bp). A slot pointer is valid until the
 * read section it was found in ends. */

static inline bool slot_is_readonly(const struct memslot *slot)
{
	return slot->flags & VMMU_MEM_READONLY;
}

/* Writes to the slot are tracked: it logs dirty pages for the user, for ksmd, or both. An MMU
 * then maps a page writable only on a write fault, which marks it in every bitmap
 * (slot_mark_dirty), and a harvest write-protects what it clears. */
static inline bool slot_logs_dirty(const struct memslot *slot)
{
	return slot->dirty_bitmap != NULL || slot->ksm_bitmap != NULL;
}

/* A bitmap @new has that @old lacked: the MMU must write-protect the slot for it. */
static inline bool slot_tracking_added(const struct memslot *old, const struct memslot *new)
{
	return (new->dirty_bitmap && !old->dirty_bitmap) || (new->ksm_bitmap && !old->ksm_bitmap);
}

/* @gfn (inside @slot) is marked in every bitmap the slot has: what the audits require of a page
 * mapped writable. */
static inline bool slot_page_marked(const struct memslot *slot, gfn_t gfn)
{
	uint64_t rel = gfn - slot->base_gfn, bit = 1ULL << (rel % 64);

	if (slot->dirty_bitmap && !(__atomic_load_n(&slot->dirty_bitmap[rel / 64],
						    __ATOMIC_RELAXED) & bit))
		return false;
	return !slot->ksm_bitmap ||
	       (__atomic_load_n(&slot->ksm_bitmap[rel / 64], __ATOMIC_RELAXED) & bit);
}

static inline gfn_t slot_end_gfn(const struct memslot *slot)
{
	return slot->base_gfn + slot->npages;
}

static inline bool slot_contains(const struct memslot *slot, gfn_t gfn)
{
	return gfn - slot->base_gfn < slot->npages;   /* unsigned: also false below base */
}

/* @gfn must be inside @slot. */
static inline hva_t slot_gfn_to_hva(const struct memslot *slot, gfn_t gfn)
{
	return slot->userspace_addr + ((gfn - slot->base_gfn) << VMMU_PAGE_SHIFT);
}

static inline bool memslot_gen_in_progress(uint64_t gen)
{
	return gen & MEMSLOT_GEN_UPDATE_IN_PROGRESS;
}

static inline void slot_cache_init(struct slot_cache *c)
{
	c->slot = NULL;
	c->gen = 0;
	c->hits = c->misses = 0;
}

/*
 * The generation of the current set (odd: an update is in progress). For MMIO sptes: read it
 * before the lookup that found no slot, in the same read section, and tag the spte with it; do
 * not create one if it is odd. An MMIO spte whose tag differs from the current value is stale.
 * May be called inside or outside a read section.
 */
uint64_t memslots_generation(struct memslots *ms);
/* Where the generation lives, for a reader that polls it with atomic loads on a hot path. */
const uint64_t *memslots_generation_ptr(struct memslots *ms);

/* The slot containing @gfn, or NULL (MMIO). O(log n). Inside a read section. */
const struct memslot *gfn_to_memslot(struct memslots *ms, gfn_t gfn);
/* The same through @c: O(1) when @gfn is in the slot last hit and the set has not changed since
 * (a generation change always misses). Inside a read section. */
const struct memslot *gfn_to_memslot_cached(struct memslots *ms, struct slot_cache *c, gfn_t gfn);
/* The slot with id @id (bits 15:0 of a region's slot field), or NULL. Inside a read section. */
const struct memslot *memslots_id_to_slot(struct memslots *ms, uint32_t id);
/* Number of slots in the current set. */
uint32_t memslots_count(struct memslots *ms);

/* Slots intersecting [start, end), in gfn order, from one snapshot. Inside a read section. */
struct memslot_iter {
	const struct memslot_array *arr;  /* the snapshot */
	uint32_t idx;                     /* next entry */
	gfn_t end;                        /* stop at slots starting at or after this */
};
const struct memslot *memslot_iter_first(struct memslot_iter *it, struct memslots *ms, gfn_t start,
					 gfn_t end);
const struct memslot *memslot_iter_next(struct memslot_iter *it);
#define memslots_for_each_in_gfn_range(slot, it, ms, start, end)                                   \
	for ((slot) = memslot_iter_first((it), (ms), (start), (end)); (slot);                      \
	     (slot) = memslot_iter_next(it))

/*
 * gfn -> hva. -ENOENT: in no slot (MMIO to callers). -EPERM: @write and the slot is READONLY
 * (KVM makes such a write an MMIO exit). Takes its own read section.
 */
int gfn_to_hva(struct memslots *ms, gfn_t gfn, bool write, hva_t *hva);
/*
 * gfn -> hva -> pfn through host_hva_to_pfn(), faulting the host page in. -ENOENT (no slot,
 * MMIO), -EPERM (@write to a READONLY slot), -EFAULT (the hva is in no host VMA). @huge (may be
 * NULL): a 2M host mapping backs it. The pfn is only as stable as the hva mapping: MMU notifiers
 * report its changes. Takes its own read section.
 */
int gfn_to_pfn(struct memslots *ms, gfn_t gfn, bool write, pfn_t *pfn, bool *huge);
/* The same for a slot the caller already holds (inside a read section); @gfn inside @slot. */
int slot_gfn_to_pfn(struct memslots *ms, const struct memslot *slot, gfn_t gfn, bool write,
		    pfn_t *pfn, bool *huge);
/* And *@writable: whether the host lets the page be written now (host_hva_to_pfn_prot: false for
 * a KSM page looked up for reading); *@order (may be NULL): the host mapping's size
 * (host_hva_to_pfn_order: HOST_ORDER_4K, _2M or _1G). */
int slot_gfn_to_pfn_prot(struct memslots *ms, const struct memslot *slot, gfn_t gfn, bool write,
			 pfn_t *pfn, unsigned *order, bool *writable);
/*
 * A host pointer to guest memory [gpa, gpa+len), which must lie inside one 4K page (else
 * -EINVAL): for the vCPUs' hardware model (the request protocol guards it) and the MMUs' reads
 * of guest tables (the invalidation sequence guards them). Errors as gfn_to_pfn. @write: the
 * pointer is for a write (refused for a read-only slot, the page made writable); it is not marked
 * dirty: the writer marks it once its bytes have landed (slot_mark_written, as KVM marks after
 * its copy). The pointer stays inside the host frame arena; it backs the gpa until the hva
 * mapping changes (MMU notifier), after which it may point to a freed (zeroed) frame.
 */
int memslots_gpa_to_ptr(struct memslots *ms, gpa_t gpa, size_t len, bool write, void **ptr);
/* @fn(ptr, @arg) on the @len bytes at @gpa (inside one page) with the host page held still
 * (host_hva_access): the hypervisor's own access to guest memory (its software page walks' A/D
 * swaps, the VMM's reads and writes), which a host page change (a THP collapse, a KSM merge, an
 * unmap) must not race: a pointer from memslots_gpa_to_ptr is only safe where the vCPU request
 * protocol or the invalidation sequence guards it. A write marks the page dirty in a logging
 * slot once its bytes landed (slot_mark_written). 0, -ENOENT (no slot), -EPERM (a write to a
 * READONLY slot), -EFAULT, -EINVAL. Not with mmu_lock held (the host mm's lock comes first). */
int memslots_gpa_access(struct memslots *ms, gpa_t gpa, size_t len, bool write,
			void (*fn)(void *ptr, void *arg), void *arg);
/* The naturally aligned @len-byte word (4 or 8) at @gpa, and where it lies (*@ptr, as
 * memslots_gpa_to_ptr gives it): what memslots_gpa_access would load, without the host mm's lock
 * where the page is mapped and young and nothing changes it meanwhile (host_hva_peek_word), which
 * is nearly always. Errors as memslots_gpa_access; not with mmu_lock held either (the fallback
 * takes the host mm's lock). */
int memslots_gpa_read_word(struct memslots *ms, gpa_t gpa, unsigned len, uint64_t *val,
			   uint8_t **ptr);
/*
 * A caller's (one thread's) memory of the host pages its reads reached, so that a read of a page
 * read lately takes neither the slot look-up nor the host page-table look-up: an entry holds while
 * the memslots generation it was made under and its host peek token (host_peek_again: no
 * invalidation, no aging since) do, so a read through it is what memslots_gpa_read_word would
 * give, young bit included. Zeroed: empty. No lock: the owner's alone.
 */
#define MEMSLOTS_WCACHE_WAYS 5
#define MEMSLOTS_WCACHE (2 * MEMSLOTS_WCACHE_WAYS)   /* two entries a way */
struct memslots_wcache_ent {
	struct memslots *ms;   /* whose: a token means nothing to another's mm */
	gfn_t gfn;
	uint8_t *page;   /* NULL: empty */
	uint64_t gen;
	const struct memslot *slot;   /* the page's slot, in generation gen */
	struct host_peek_tok tok;
	uint64_t used;   /* the cache's clock at its last use: of a way's two, the older goes */
};
struct memslots_wcache {
	struct memslots_wcache_ent e[MEMSLOTS_WCACHE];
	uint64_t clock;
	uint64_t hits, misses;   /* reads */
	uint64_t swap_hits;      /* swaps with no look-up (memslots_gpa_cmpxchg_cached) */
};
/* memslots_gpa_read_word through @c, its way @way (mod MEMSLOTS_WCACHE_WAYS): a caller reading the
 * same few pages in the same order (a walk's levels) gives each its own way, whose two entries
 * hold the last two pages read there. */
int memslots_gpa_read_word_cached(struct memslots *ms, struct memslots_wcache *c, unsigned way,
				  gpa_t gpa, unsigned len, uint64_t *val, uint8_t **ptr);
/* Compare-and-swap the naturally aligned word at @gpa (4 or 8 bytes: a guest page-table entry's
 * A/D update), with the host page held still as memslots_gpa_access holds it; a page @c holds (in
 * any way) is not looked up again (host_cmpxchg_again). @c may be NULL: the look-up always. 0 with
 * *@ok (swapped), or the errors of memslots_gpa_access (-EINVAL for a bad length or alignment). */
int memslots_gpa_cmpxchg_cached(struct memslots *ms, struct memslots_wcache *c, gpa_t gpa,
				unsigned len, uint64_t old, uint64_t val, bool *ok);
/* Copy to/from guest physical memory, across pages. -EFAULT for a gpa in no slot, or a write to a
 * READONLY slot (as kvm_read_guest/kvm_write_guest). Writes mark pages dirty. */
int memslots_read_guest(struct memslots *ms, gpa_t gpa, void *buf, size_t len);
int memslots_write_guest(struct memslots *ms, gpa_t gpa, const void *buf, size_t len);

/*
 * Mark @gfn dirty in each bitmap of its slot (atomic bit set; any thread). 0, or -ENOENT when
 * @gfn is in no slot. Takes its own read section; slot_mark_dirty() is the same for a slot held.
 */
int memslots_mark_dirty(struct memslots *ms, gfn_t gfn);
void slot_mark_dirty(const struct memslot *slot, gfn_t gfn);
/* slot_mark_dirty() for a write whose bytes the caller has just stored (the VMM's, a native
 * vCPU's), fenced so that a harvest clearing the bit sees the store or leaves the bit set. */
void slot_mark_written(const struct memslot *slot, gfn_t gfn);

/* ---- update side (ms->lock; never inside a read section) ---- */

/*
 * A set bound to @mm (NULL only in tests of the slot rules: gfn_to_pfn then fails with -EFAULT).
 * Slots must end below 2^@phys_bits (0: MEMSLOT_DEFAULT_PHYS_BITS), as x86's
 * kvm_arch_prepare_memory_region checks kvm_mmu_max_gfn(). 0 or -ENOMEM / -EINVAL.
 */
int memslots_create(struct host_mm *mm, unsigned phys_bits, struct memslots **out);
/* Frees every slot and bitmap; no reader or updater may be running. No hook is called. */
void memslots_destroy(struct memslots *ms);
struct host_mm *memslots_mm(const struct memslots *ms);

/* Register the MMU's callbacks (one set; NULL unregisters). */
void memslots_set_ops(struct memslots *ms, const struct memslots_ops *ops, void *opaque);

/*
 * KVM_SET_USER_MEMORY_REGION, with kvm_set_memory_region()'s checks in its order. 0 on success or
 * when nothing changes (generation unchanged); -EINVAL (bad flags, misaligned size/gpa/hva, hva
 * range outside [0, 2^47), as_id != 0 or id >= 32764, gpa+size overflow or beyond phys_bits,
 * too many pages, delete of a missing slot, an existing slot's hva/size/READONLY changed);
 * -EEXIST (a new or moved slot overlaps another); -ENOMEM. On error nothing changed.
 */
int memslots_set_user_memory_region(struct memslots *ms,
				    const struct vmmu_userspace_memory_region *r);

/*
 * KVM_GET_DIRTY_LOG: copy slot @slot's bitmap to @bitmap (ceil(npages/64) words) and clear it,
 * one atomic exchange a word, then call ops->dirty_log_protect. -EINVAL (as_id != 0, id >=
 * 32764), -ENOENT (no such slot, or it does not log dirty pages).
 */
int memslots_get_dirty_log(struct memslots *ms, uint32_t slot, uint64_t *bitmap);

/*
 * KSM's write tracking, a second dirty log the user never sees (KVM_GET_DIRTY_LOG stays the
 * user's): on, every slot gets a ksm_bitmap, all clear, and the MMU write-protects the slot, so
 * from then on a clear bit means "not written since tracking began or since the last harvest of
 * the page" (the caller forgets what it knew before); a slot created later starts all set
 * (written: its hvas may have been written through a slot gone since). Off, the bitmaps go.
 * 0 (also when nothing changes) or -ENOMEM (then tracking is off).
 */
int memslots_set_ksm_tracking(struct memslots *ms, bool on);
/*
 * For the 64 pages at @start, @start + 4K, ... (bit i: the page at @start + i * 4K) whose bit is
 * set in @want: *@tracked gets those that some slot with a ksm_bitmap maps, *@written those of
 * them written since their last harvest (in any slot mapping them); their bits are cleared and
 * the pages write-protected again (ops->dirty_log_protect) so that the next write is seen.
 * Pages before their harvest are marked (ops->sync_dirty_log first). Takes ms->lock.
 */
void memslots_ksm_harvest(struct memslots *ms, hva_t start, uint64_t want, uint64_t *written,
			  uint64_t *tracked);
/* The same look, clearing and protecting nothing: for audits. (In the hard MMU's D-bit mode the
 * sync before it still moves D bits into both bitmaps and flushes, as before a harvest.) */
void memslots_ksm_peek(struct memslots *ms, hva_t start, uint64_t want, uint64_t *written,
		       uint64_t *tracked);

#endif
