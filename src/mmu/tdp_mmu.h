/* SPDX-License-Identifier: MIT */
/*
 * The hard MMU's private interface (tdp_mmu.c: lifecycle and faults; tdp_mmu_range.c: the
 * iterator and everything that acts on a range of gfns; tdp_mmu_audit.c: the Isolation audit).
 * One implementation over both table formats: EPT (Intel) and NPT (AMD x86-64 entries). One root
 * per VM, as KVM's TDP MMU; every vCPU runs on it. docs/hard-mmu.md has the design.
 *
 * spte formats (bits 51:12 are the address in both; TDP_ADDR_MASK):
 *
 *   EPT table   addr | RWX | A(8)
 *   EPT leaf    addr | R | X | W? | MT=WB(5:3) | PS(7, 2M) | A(8) | D(9) | MMU_WRITABLE(10)?
 *   EPT MMIO    gen(31:12) | W-only (010): a misconfiguration, so the hardware exits
 *   NPT table   addr | P | W | U | A(5)
 *   NPT leaf    addr | P | U | W? | A(5) | D(6) | PS(7, 2M) | MMU_WRITABLE(10)?
 *   NPT MMIO    gen(31:12) | P | W | U | bit 51 (reserved below MAXPHYADDR 52): an RSVD NPF
 *
 * Invariants (checked by tdp_mmu_audit()):
 *  - A present leaf maps the pfn that backs its gfn now (host_hva_lookup of the slot's hva);
 *    W only if the slot is not READONLY, and in a write-protect-logging slot only if the page's
 *    dirty bit is set; MMU_WRITABLE iff the slot is not READONLY. If W is set, MMU_WRITABLE is.
 *  - A 2M leaf: the whole 2M gfn range lies in one slot that does not log dirty pages, and the
 *    host maps the hva range with one 2M page whose head is the leaf's pfn.
 *  - An MMIO spte lives at level 1, and its gfn is in no slot unless its generation is stale.
 *  - pages_4k/2m/1g count the present leaves by size; tdp_pages the table frames (root too,
 *    and tables unlinked but not yet freed).
 *
 * Locking (docs/locking.md): mmu_lock (the head's rwlock) shared for faults, exclusive for zaps,
 * memslot changes, dirty-log protection and MMU-notifier invalidations. Every spte is changed
 * with an atomic read-modify-write (cmpxchg or xchg), even under the exclusive lock: the
 * hardware (other vCPUs' walks) sets A/D bits by compare-and-swap at any time, and the fast page
 * fault changes leaves holding no lock at all. Tables are read with acquire loads; a table is
 * published by a cmpxchg of its parent entry after it was zeroed (host_frame_alloc) and filled.
 * A table is unlinked under the exclusive lock and its frame freed only after an RCU grace
 * period, once mmu_lock is dropped (tdp_mmu_free_tables); lockless walkers (the hardware, the fast
 * page fault, the MMIO fast path, the audit) stay inside an RCU read section
 * (memslots_read_lock). Lock order: mm->lock (notifiers run under it) > mmu_lock > vm->lock
 * (flush_remote_tlbs) > arena->lock. Never call into the host mm holding mmu_lock, and never wait
 * for a grace period holding mmu_lock, inside a read section, or from a notifier.
 */
#ifndef VMMU_MMU_TDP_MMU_H
#define VMMU_MMU_TDP_MMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mmu/mmu_internal.h"
#include "mmu/spte.h"
#include "paging/tdp.h"

/* ---- spte bits ---- */

/* EPT's W (bit 1) and NPT's R/W (bit 1) are the same bit. */
#define SPTE_W_MASK            (1ULL << 1)
/* Software: the slot allows writes, so a leaf write-protected for dirty logging may get W back
 * (the fast page fault) without a slot lookup. Ignored by the EPT (no MBEC) and NPT (AVL)
 * hardware. */
#define SPTE_MMU_WRITABLE      (1ULL << 10)
/* MMIO sptes: the memslot generation (bit 0 dropped: it is even when tagged) in bits 31:12, the
 * address field, which the hardware never interprets in a misconfigured / reserved entry. */
#define SPTE_MMIO_GEN_SHIFT    12
#define SPTE_MMIO_GEN_BITS     20
#define SPTE_MMIO_GEN_MASK     (((1ULL << SPTE_MMIO_GEN_BITS) - 1) << SPTE_MMIO_GEN_SHIFT)
#define SPTE_EPT_MMIO_VALUE    EPT_WRITABLE_MASK
#define SPTE_NPT_MMIO_RSVD     (1ULL << 51)
#define SPTE_NPT_MMIO_VALUE    (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | SPTE_NPT_MMIO_RSVD)

#define SPTE_EPT_HW_BITS (EPT_RWX_MASK | EPT_MT_MASK | EPT_IPAT_MASK | EPT_PAGE_SIZE_MASK | \
			  EPT_ACCESSED_MASK | EPT_DIRTY_MASK | TDP_ADDR_MASK)
#define SPTE_NPT_HW_BITS (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT_PWT_MASK | \
			  PT_PCD_MASK | PT_ACCESSED_MASK | PT_DIRTY_MASK | PT_PAGE_SIZE_MASK | \
			  PT_GLOBAL_MASK | PT64_NX_MASK | TDP_ADDR_MASK)
_Static_assert(!(SPTE_MMU_WRITABLE & (SPTE_EPT_HW_BITS | SPTE_NPT_HW_BITS)),
	       "the software bit must be one both formats ignore");
_Static_assert(EPT_WRITABLE_MASK == PT_WRITABLE_MASK, "W is bit 1 in both formats");
_Static_assert((SPTE_MMIO_GEN_MASK & ~TDP_ADDR_MASK) == 0 && SPTE_MMIO_GEN_SHIFT +
	       SPTE_MMIO_GEN_BITS <= 32, "the generation sits below any MAXPHYADDR");

/* ---- the MMU ---- */

/* How dirty logging finds written pages (a create-time choice; see docs/hard-mmu.md). */
enum tdp_dirty_mode {
	TDP_DIRTY_WRPROT = 0,   /* write-protect; the first write faults and marks the page */
	TDP_DIRTY_DBIT,         /* leave W, clear D; tdp_mmu_sync_dirty_log() collects D bits */
};

/* Legend: [c] constant after create; [a] atomic; [L] mmu_lock exclusive to write. */
struct tdp_mmu {
	struct mmu head;                 /* first: a struct mmu * is a struct tdp_mmu * */
	struct tdp_ctx ctx;              /* [c] format, root, levels, A/D; what every vCPU loads */
	uint64_t acc_mask, dirty_mask;   /* [c] A and D of a leaf in this format */
	bool mmio_caching;               /* [c] MMIO sptes can be made (NPT needs a reserved bit) */
	enum tdp_dirty_mode dirty_mode;  /* [L] set before any slot logs (tests: the D-bit mode) */
	struct host_mmu_notifier mn;     /* [c] registered on env.mm */
};

static inline struct tdp_mmu *to_tdp(struct mmu *m)
{
	return (struct tdp_mmu *)m;
}

/* ---- spte predicates and constructors ---- */

static inline bool spte_is_mmio(const struct tdp_mmu *t, uint64_t s)
{
	if (t->ctx.fmt == TDP_EPT)
		return (s & EPT_RWX_MASK) == SPTE_EPT_MMIO_VALUE;
	return (s & SPTE_NPT_MMIO_VALUE) == SPTE_NPT_MMIO_VALUE;
}

/* Present to the hardware and not MMIO: a table or a leaf this MMU made. */
static inline bool spte_is_present(const struct tdp_mmu *t, uint64_t s)
{
	return tdp_is_present(&t->ctx, s) && !spte_is_mmio(t, s);
}

static inline bool spte_is_leaf(uint64_t s, int level)
{
	return tdp_is_leaf(s, level);
}

static inline pfn_t spte_to_pfn(uint64_t s)
{
	return (s & TDP_ADDR_MASK) >> HOST_PAGE_SHIFT;
}

static inline uint64_t *spte_child(const struct tdp_mmu *t, uint64_t s)
{
	return spte_table(t->ctx.arena, s & TDP_ADDR_MASK);
}

/* Pages (4K) an entry at @level maps: 1, 512, 512^2. */
static inline uint64_t level_pages(int level)
{
	return 1ULL << (9 * (level - 1));
}

static inline unsigned spte_index(gfn_t gfn, int level)
{
	return (unsigned)(gfn >> (9 * (level - 1))) & 511u;
}

static inline uint64_t mmio_gen_tag(uint64_t gen)
{
	return ((gen >> 1) << SPTE_MMIO_GEN_SHIFT) & SPTE_MMIO_GEN_MASK;
}

static inline uint64_t make_mmio_spte(const struct tdp_mmu *t, uint64_t gen)
{
	return mmio_gen_tag(gen) | (t->ctx.fmt == TDP_EPT ? SPTE_EPT_MMIO_VALUE : SPTE_NPT_MMIO_VALUE);
}

/* A table entry pointing to the table at @pfn (A preset: the hardware would set it anyway). */
static inline uint64_t make_table_spte(const struct tdp_mmu *t, pfn_t pfn)
{
	uint64_t a = pfn << HOST_PAGE_SHIFT;

	if (t->ctx.fmt == TDP_EPT)
		return a | EPT_RWX_MASK | EPT_ACCESSED_MASK;
	return a | PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT_ACCESSED_MASK;
}

/* A leaf mapping @pfn (aligned for @level) readable and executable; @w: writable now;
 * @mmu_w: may become writable (the slot is not READONLY); A set; D as @dirty. */
static inline uint64_t make_leaf_spte(const struct tdp_mmu *t, pfn_t pfn, int level, bool w,
				      bool mmu_w, bool dirty)
{
	uint64_t s = (pfn << HOST_PAGE_SHIFT) | t->acc_mask;

	if (level > 1)
		s |= PT_PAGE_SIZE_MASK;
	if (t->ctx.fmt == TDP_EPT)
		s |= EPT_READABLE_MASK | EPT_EXECUTABLE_MASK | ((uint64_t)EPT_MT_WB << EPT_MT_SHIFT);
	else
		s |= PT_PRESENT_MASK | PT_USER_MASK;
	if (w)
		s |= SPTE_W_MASK;
	if (mmu_w)
		s |= SPTE_MMU_WRITABLE;
	if (dirty)
		s |= t->dirty_mask;
	return s;
}

/* ---- the iterator (tdp_mmu_range.c) ---- */

/*
 * A pre-order walk over the entries that map [start, end), as KVM's tdp_iter: from the root
 * down to min_level through present tables, then side by side, then up. Use it under mmu_lock
 * (shared or exclusive) or inside an RCU read section. An entry the caller zaps is not descended
 * into; an entry the caller turns into a table (a split) is.
 *
 *   1. step down: the entry is a present table and we are above min_level -> its first entry
 *      on the way to `goal`;
 *   2. else step side: not the last entry of its table -> the next one;
 *   3. else step up and try 2 again; leaving the root ends the walk.
 */
struct tdp_iter {
	const struct tdp_mmu *t;                 /* whose tables */
	gfn_t goal;                              /* the lowest gfn not yet visited at level 1 */
	gfn_t end;                               /* one past the last gfn of the walk */
	int min_level;                           /* never step below this level */
	uint64_t *table[TDP_MAX_LEVELS + 1];     /* table[l]: the level-l table on the path */
	uint64_t *sptep;                         /* the current entry */
	uint64_t old_spte;                       /* its value when last read */
	gfn_t gfn;                               /* the first gfn it maps */
	int level;                               /* its level */
	bool valid;                              /* false once the walk left the range or root */
};

void tdp_iter_start(struct tdp_iter *it, const struct tdp_mmu *t, int min_level, gfn_t start,
		    gfn_t end);
void tdp_iter_next(struct tdp_iter *it);

#define for_each_tdp_spte(_it, _t, _min_level, _start, _end)                                      \
	for (tdp_iter_start(&(_it), (_t), (_min_level), (_start), (_end));                         \
	     (_it).valid && (_it).gfn < (_it).end; tdp_iter_next(&(_it)))

/* ---- shared between the files ---- */

/* Table frames unlinked under mmu_lock, freed by tdp_mmu_free_tables() after a grace period
 * (tdp_mmu_range.c says how they are chained). Zero-initialize. */
struct tdp_freelist {
	hpa_t head;        /* the last table pushed; each links the one before in its entry 0 */
	uint64_t n;        /* tables on the list */
};

/* Add @delta leaves of @level to pages_4k/2m/1g. */
void tdp_account_leaf(struct tdp_mmu *t, int level, int64_t delta);
/* kvm_flush_remote_tlbs: every vCPU's TLB, counted as remote_tlb_flush. */
void tdp_flush_remote(struct tdp_mmu *t);
/* After mmu_lock is dropped, outside any read section: wait for a grace period, then free. */
void tdp_mmu_free_tables(struct tdp_mmu *t, struct tdp_freelist *fl);

/*
 * Zap what maps [start, end) (exclusive mmu_lock): leaves (whole, even where a huge leaf only
 * overlaps), MMIO sptes, and with @tables every table wholly inside the range (its frame to @fl).
 * @slot: the slot the range belongs to, or NULL; a D-bit-logging slot gets the D bits it would
 * lose. True if the caller must flush TLBs.
 */
bool tdp_zap_range(struct tdp_mmu *t, gfn_t start, gfn_t end, bool tables,
		   struct tdp_freelist *fl, const struct memslot *slot);

/* Memslot and MMU-notifier hooks (tdp_mmu_range.c), registered by create. */
extern const struct memslots_ops tdp_memslots_ops;
extern const struct host_mmu_notifier_ops tdp_mn_ops;

int tdp_mmu_audit(struct mmu *m, char *why, size_t whylen);

/* ---- tests and the proposed hooks ---- */

/* Choose the dirty-logging mode; only while no slot logs dirty pages. */
void tdp_mmu_set_dirty_mode(struct mmu *m, enum tdp_dirty_mode mode);
/*
 * D-bit mode: move the D bits of @slot's leaves into its dirty bitmap (and clear them, and flush
 * TLBs), as KVM's kvm_arch_sync_dirty_log before a harvest. Call before memslots_get_dirty_log()
 * (a memslots_ops.sync_dirty_log hook is proposed for it); inside a read section or under the
 * memslots lock, so @slot stays valid. A no-op in write-protect mode.
 */
void tdp_mmu_sync_dirty_log(struct mmu *m, const struct memslot *slot);

#endif
