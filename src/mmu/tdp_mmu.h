/* SPDX-License-Identifier: MIT */
/*
 * The hard MMU's private interface (tdp_mmu.c: lifecycle and faults; tdp_mmu_range.c: the
 * iterator and everything that acts on a range of gfns; tdp_mmu_audit.c: the Isolation audit).
 * One implementation over both table formats: EPT (Intel) and NPT (AMD x86-64 entries). One root
 * per VM, as KVM's TDP MMU; every vCPU runs on it. docs/hard-mmu.md has the design.
 *
 * The spte formats are spte.h's (SPTE_FMT_EPT, SPTE_FMT_NPT): tables everything-allowed with A
 * preset; leaves readable and executable (EPT memory type WB), W as below; MMIO sptes an EPT
 * misconfiguration (W without R) or an NPT reserved-bit fault (bit 51).
 *
 * Invariants (checked by tdp_audit()):
 *  - A present leaf maps the pfn that backs its gfn now (host_hva_lookup of the slot's hva);
 *    W only if the slot is not READONLY, and in a write-protect-logging slot only if the page's
 *    dirty bit is set; MMU_WRITABLE iff the slot is not READONLY and the host page may be written
 *    (no KSM page: host_hva_lookup_order's writable), HOST_WRITABLE with it. If W is set,
 *    MMU_WRITABLE is.
 *  - A 2M leaf: the whole 2M gfn range lies in one slot that does not log dirty pages, and the
 *    host maps the hva range with one 2M page whose head is the leaf's pfn.
 *  - An MMIO spte lives at level 1, and its gfn is in no slot unless its generation is stale.
 *  - pages_4k/2m/1g count the present leaves by size; tdp_pages the tables linked (the root
 *    too): a table leaves the count when it is unlinked, before its frame waits for its grace
 *    period; every table below the root has a struct tdp_page in its frame's private word.
 *  - tables_gen advances after every change of a present entry (a zap, a split, W or D or A
 *    cleared, W given back), before the TLB flush that follows it: the vCPUs' walk caches trust
 *    nothing filled under an older one (cpu/nested.h). Filling an empty entry changes nothing a
 *    cache holds (it holds only translations that succeeded), so faults that map do not advance it.
 *
 * Locking (docs/locking.md): mmu_lock (struct mmu's reader-writer lock) shared for faults, exclusive for
 * zaps, memslot changes, dirty-log protection and MMU-notifier invalidations. Every spte is
 * changed with an atomic read-modify-write (cmpxchg or xchg), even under the exclusive lock: the
 * hardware (other vCPUs' walks) sets A/D bits by compare-and-swap at any time, and the fast page
 * fault changes leaves holding no lock at all. Tables are read with acquire loads; a table is
 * published by a cmpxchg of its parent entry after it was zeroed (host_frame_alloc) and filled.
 * A table is unlinked under the exclusive lock, its entries exchanged to 0, and its frame queued
 * with mmu_free_page_rcu: lockless walkers (the hardware, the fast page fault, the MMIO fast
 * path, the audit) stay inside an RCU read section (vmmu_rcu_read_lock), so the frame returns
 * only once they have left. Lock order: mm->lock (notifiers run under it) > mmu_lock > vm->lock
 * (flush_remote_tlbs) > arena->lock. Never call into the host mm holding mmu_lock.
 */
#ifndef VMMU_MMU_TDP_MMU_H
#define VMMU_MMU_TDP_MMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host/pool.h"
#include "mmu/mmu_internal.h"
#include "paging/tdp.h"

/* ---- the MMU ---- */

/* How dirty logging finds written pages (a create-time choice; see docs/hard-mmu.md). */
enum tdp_dirty_mode {
	TDP_DIRTY_WRPROT = 0,   /* write-protect; the first write faults and marks the page */
	TDP_DIRTY_DBIT,         /* leave W, clear D; tdp_mmu_sync_dirty_log() collects D bits */
};

/* Legend: [c] constant after create; [a] atomic; [L] mmu_lock exclusive to write. */
struct tdp_mmu {
	struct mmu head;                 /* the core's part (head.fmt: EPT or NPT) */
	struct tdp_ctx ctx;              /* [c] format, root, levels, A/D; what every vCPU loads */
	enum tdp_dirty_mode dirty_mode;  /* [L] set before any slot logs (tests: the D-bit mode) */
	/* [a] from 1; read by every vCPU's nested TLB miss, so on a line of its own. */
	uint64_t tables_gen __attribute__((aligned(64)));
};

/* Present entries changed: tell the vCPUs' walk caches (the invariant above). */
static inline void tdp_tables_changed(struct tdp_mmu *t)
{
	__atomic_add_fetch(&t->tables_gen, 1, __ATOMIC_RELEASE);
}

static inline struct tdp_mmu *to_tdp(struct mmu *m)
{
	return caa_container_of(m, struct tdp_mmu, head);
}

/* What the MMU keeps of each table below the root (KVM's kvm_mmu_page for the TDP MMU), found
 * through the frame's private word: its way back to the arena. [c] */
struct tdp_page {
	struct mmu_page_free free;
	gfn_t gfn;                       /* the first gfn it maps */
	int level;
};
/* Where every tdp_page comes from and goes back to (host/pool.h: no host page fault for them
 * inside a fault handler). */
extern struct host_pool tdp_page_pool;

/* The table an spte links to. */
static inline uint64_t *spte_child(const struct tdp_mmu *t, uint64_t s)
{
	return spte_table(t->ctx.arena, s & TDP_ADDR_MASK);
}

/* ---- the iterator (tdp_mmu_range.c) ---- */

/*
 * A pre-order walk over the entries that map [start, end), as KVM's tdp_iter: from the root
 * down to min_level through present tables, then side by side, then up. Use it under mmu_lock
 * (shared or exclusive) or inside an RCU read section. An entry the caller zaps is not descended
 * into; an entry the caller turns into a table (a split, or a fault's link) is. The fault path
 * uses the same iterator one gfn at a time: tdp_iter_start() at the root, then
 * tdp_iter_step_down() while it has a table to enter.
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
/* Step 1 alone: into the table the current entry links (re-read now), toward goal; false (the
 * iterator unchanged but for old_spte) at min_level, or if the entry links no table. */
bool tdp_iter_step_down(struct tdp_iter *it);

#define for_each_tdp_spte(_it, _t, _min_level, _start, _end)                                      \
	for (tdp_iter_start(&(_it), (_t), (_min_level), (_start), (_end));                         \
	     (_it).valid && (_it).gfn < (_it).end; tdp_iter_next(&(_it)))

/* ---- shared between the files ---- */

/*
 * Zap what maps [start, end) (exclusive mmu_lock): leaves (whole, even where a huge leaf only
 * overlaps), MMIO sptes, and with @tables every table wholly inside the range (freed after a
 * grace period). @slot: the slot the range belongs to, or NULL; a D-bit-logging slot gets the D
 * bits it would lose. True if the caller must flush TLBs.
 */
bool tdp_zap_range(struct tdp_mmu *t, gfn_t start, gfn_t end, bool tables,
		   const struct memslot *slot);

/* Memslot hooks (tdp_mmu_range.c), registered by create; the core's notifier hooks. */
extern const struct memslots_ops tdp_memslots_ops;
bool tdp_unmap_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end);
bool tdp_age_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end,
		       bool clear);
void tdp_free_page(struct mmu_page_free *pf);

int tdp_audit(struct mmu *m, char *why, size_t whylen);

/* ---- tests and the proposed hooks ---- */

/* Choose the dirty-logging mode; only while no slot logs dirty pages. */
void tdp_mmu_set_dirty_mode(struct mmu *m, enum tdp_dirty_mode mode);
/*
 * D-bit mode: move the D bits of @slot's leaves into its dirty bitmap (and clear them, and flush
 * TLBs), as KVM's kvm_arch_sync_dirty_log before a harvest. memslots_get_dirty_log() and
 * memslots_ksm_harvest() do it through memslots_ops.sync_dirty_log; call it inside a read
 * section or under the memslots lock, so @slot stays valid. A no-op in write-protect mode.
 */
void tdp_mmu_sync_dirty_log(struct mmu *m, const struct memslot *slot);

#endif
