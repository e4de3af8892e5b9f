/* SPDX-License-Identifier: MIT */
/*
 * The hard MMU over ranges of gfns: the iterator, zapping with the deferred free of tables,
 * write protection and huge-page splitting for dirty logging, the recovery of huge pages when
 * logging stops, the memslot hooks (mem/) and the MMU notifiers (host/). tdp_mmu.h has the
 * invariants and locking.
 *
 * Who runs what, and under which lock:
 *   memslot change (ms->lock held, outside read sections)   mmu_lock exclusive; may free tables
 *   dirty-log protect (ms->lock held, outside read sections) mmu_lock exclusive; frees nothing
 *   notifier invalidate start/end (mm->lock held)            mmu_lock exclusive; zaps leaves only:
 *       freeing a table needs a grace period, and a fault holds its read section while it waits
 *       for mm->lock in host_hva_to_pfn, so waiting for one under mm->lock could deadlock
 *   notifier clear/test young (mm->lock held)                 mmu_lock shared; A bits only
 *   D-bit sync (a read section or ms->lock)                   mmu_lock shared; D bits only
 *
 * Freed tables: a table is unlinked with an xchg of its parent entry to 0 under the exclusive
 * lock, its entries are xchg'd to 0 (so a lockless cmpxchg on one of them, by the fast page fault
 * or the hardware's A/D update, fails from then on), it leaves tdp_pages, and its frame is queued
 * with mmu_free_page_rcu: it returns to the arena once every walker that could have reached it
 * has left its read section, and nobody waits for that.
 */
#include <errno.h>
#include <stdlib.h>

#include "hot.h"
#include "mmu/tdp_mmu.h"

/* ---- the iterator ---- */

static gfn_t round_gfn(gfn_t gfn, int level)
{
	return gfn & ~(spte_level_pages(level) - 1);
}

static uint64_t *iter_entry(const struct tdp_iter *it)
{
	return &it->table[it->level][spte_index(it->gfn << VMMU_PAGE_SHIFT, it->level)];
}

VMMU_HOT
void tdp_iter_start(struct tdp_iter *it, const struct tdp_mmu *t, int min_level, gfn_t start,
		    gfn_t end)
{
	const gfn_t reach = 1ULL << (9 * t->ctx.levels);

	it->t = t;
	it->goal = start;
	it->end = end < reach ? end : reach;
	it->min_level = min_level;
	it->level = t->ctx.levels;
	it->table[it->level] = spte_table(t->ctx.arena, t->ctx.root);
	it->gfn = round_gfn(start, it->level);
	it->valid = start < it->end;
	it->sptep = it->valid ? iter_entry(it) : it->table[it->level];
	it->old_spte = spte_read(it->sptep);
}

/* 1. Into the table the current entry points to, toward goal. */
VMMU_HOT
bool tdp_iter_step_down(struct tdp_iter *it)
{
	if (it->level == it->min_level)
		return false;
	/* The caller may have changed the entry (zapped it, split it) since it was read. */
	it->old_spte = spte_read(it->sptep);
	if (!is_shadow_present_pte(it->old_spte) || is_last_spte(it->old_spte, it->level))
		return false;
	it->table[it->level - 1] = spte_child(it->t, it->old_spte);
	it->level--;
	it->gfn = round_gfn(it->goal, it->level);
	it->sptep = iter_entry(it);
	it->old_spte = spte_read(it->sptep);
	return true;
}

/* 2. The next entry of the same table. */
static bool try_step_side(struct tdp_iter *it)
{
	if (spte_index(it->gfn << VMMU_PAGE_SHIFT, it->level) == SPTE_ENTRIES - 1)
		return false;
	it->gfn += spte_level_pages(it->level);
	it->goal = it->gfn;
	it->sptep++;
	it->old_spte = spte_read(it->sptep);
	return true;
}

/* 3. Back to the entry that points to the current table. */
static bool try_step_up(struct tdp_iter *it)
{
	if (it->level == it->t->ctx.levels)
		return false;
	it->level++;
	it->gfn = round_gfn(it->gfn, it->level);
	it->sptep = iter_entry(it);
	return true;
}

void tdp_iter_next(struct tdp_iter *it)
{
	if (tdp_iter_step_down(it))
		return;
	do {
		if (try_step_side(it))
			return;
	} while (try_step_up(it));
	it->valid = false;
}

/* ---- atomics over entries ---- */

/*
 * Clear @mask in *@sptep, whatever else changes meanwhile (the hardware setting A/D, the fast
 * page fault setting W). Any lock or none. Returns the value the clear applied to (nothing was
 * written if it had none of @mask). A failed cmpxchg reloads the entry and tries again; an entry
 * that became non-present is left alone.
 */
static uint64_t spte_clear_bits(uint64_t *sptep, uint64_t mask)
{
	uint64_t old = spte_read(sptep);

	while (is_shadow_present_pte(old) && (old & mask))
		if (spte_cmpxchg(sptep, &old, old & ~mask))
			break;
	return old;
}

/* ---- zapping and freeing ---- */

void tdp_free_page(struct mmu_page_free *pf)
{
	host_pool_free(&tdp_page_pool, caa_container_of(pf, struct tdp_page, free));
}

/* The table @table_spte linked is unreachable now: out of the count, its frame (with its
 * tdp_page) back after a grace period. */
static void table_gone(struct tdp_mmu *t, uint64_t table_spte)
{
	pfn_t pfn = spte_to_pfn(table_spte);
	struct tdp_page *tp = (struct tdp_page *)host_frame_private(t->ctx.arena, pfn);

	mmu_stat_add(&t->head, tdp_pages, (uint64_t)-1);
	mmu_free_page_rcu(&t->head, &tp->free, pfn);
}

/* A leaf @old of @level at @gfn was zapped: count it, and keep the D bit a D-bit-logging slot
 * would otherwise lose. */
static void leaf_gone(struct tdp_mmu *t, uint64_t old, int level, gfn_t gfn,
		      const struct memslot *slot)
{
	mmu_account_leaf(&t->head, level, -1);
	if (slot && slot_logs_dirty(slot) && (old & t->head.fmt.dirty_mask) &&
	    __atomic_load_n(&t->dirty_mode, __ATOMIC_RELAXED) == TDP_DIRTY_DBIT) {
		for (uint64_t i = 0; i < spte_level_pages(level); i++)
			if (slot_contains(slot, gfn + i))
				slot_mark_dirty(slot, gfn + i);
	}
}

/* Empty the unlinked table that @table_spte (at @level, mapping from @gfn) pointed to, count its
 * leaves, and free it and every table below it after a grace period. Exclusive mmu_lock. */
static void free_subtree(struct tdp_mmu *t, uint64_t table_spte, int level, gfn_t gfn,
			 const struct memslot *slot)
{
	uint64_t *child = spte_child(t, table_spte);

	for (unsigned i = 0; i < SPTE_ENTRIES; i++) {
		uint64_t old = spte_xchg(&child[i], 0);
		gfn_t g = gfn + i * spte_level_pages(level - 1);

		if (!is_shadow_present_pte(old))
			continue;       /* empty, or an MMIO spte: nothing to count */
		if (is_last_spte(old, level - 1))
			leaf_gone(t, old, level - 1, g, slot);
		else
			free_subtree(t, old, level - 1, g, slot);
	}
	table_gone(t, table_spte);
}

bool tdp_zap_range(struct tdp_mmu *t, gfn_t start, gfn_t end, bool tables,
		   const struct memslot *slot)
{
	struct tdp_iter it;
	bool flush = false;

	for_each_tdp_spte(it, t, 1, start, end) {
		uint64_t old = spte_read(it.sptep);

		if (!old)
			continue;
		if (is_mmio_spte(old)) {
			spte_xchg(it.sptep, 0);        /* not cached by any TLB: no flush */
			continue;
		}
		if (!is_shadow_present_pte(old))
			continue;
		if (is_last_spte(old, it.level)) {
			old = spte_xchg(it.sptep, 0);
			leaf_gone(t, old, it.level, it.gfn, slot);
			flush = true;
			continue;
		}
		if (tables && it.gfn >= start && it.gfn + spte_level_pages(it.level) <= end) {
			old = spte_xchg(it.sptep, 0);
			free_subtree(t, old, it.level, it.gfn, slot);
			flush = true;
		}
	}
	if (flush)
		tdp_tables_changed(t);
	return flush;
}

/* Every MMIO spte (the generation tag wrapped). Exclusive mmu_lock. */
static void zap_all_mmio(struct tdp_mmu *t)
{
	struct tdp_iter it;

	for_each_tdp_spte(it, t, 1, 0, ~0ULL)
		if (is_mmio_spte(it.old_spte))
			spte_xchg(it.sptep, 0);
}

/* ---- dirty logging ---- */

/*
 * Replace the huge leaf at @it by a table of leaves one level down mapping the same frames, with
 * W cleared (@wrprot) or D cleared (@clear_d). Exclusive mmu_lock. The new table is filled before
 * it is published (cmpxchg); a lost cmpxchg means the hardware set A or D meanwhile: refill from
 * the new value. False (nothing changed) if no frame is free.
 */
static bool split_huge(struct tdp_mmu *t, struct tdp_iter *it, bool wrprot, bool clear_d)
{
	const int level = it->level;
	struct tdp_page *tp = host_pool_zalloc(&tdp_page_pool);
	uint64_t old = spte_read(it->sptep), table;
	uint64_t *child;
	pfn_t pfn;

	if (!tp)
		return false;
	if (host_frame_alloc(t->ctx.arena, HOST_ORDER_4K, &pfn)) {
		host_pool_free(&tdp_page_pool, tp);
		return false;
	}
	tp->gfn = it->gfn;
	tp->level = level - 1;
	host_frame_set_private(t->ctx.arena, pfn, (uintptr_t)tp);
	child = spte_table(t->ctx.arena, pfn << HOST_PAGE_SHIFT);
	table = make_table_spte(&t->head.fmt, pfn);
	do {
		uint64_t flags = old & ~(TDP_ADDR_MASK | PT_PAGE_SIZE_MASK);

		if (!is_shadow_present_pte(old) || !is_last_spte(old, level)) {
			host_frame_set_private(t->ctx.arena, pfn, 0);
			host_frame_put(t->ctx.arena, pfn, HOST_ORDER_4K);
			host_pool_free(&tdp_page_pool, tp);
			return false;
		}
		if (wrprot)
			flags &= ~SPTE_W_MASK;
		if (clear_d)
			flags &= ~t->head.fmt.dirty_mask;
		if (level - 1 > 1)
			flags |= PT_PAGE_SIZE_MASK;
		for (unsigned i = 0; i < SPTE_ENTRIES; i++)
			spte_write(&child[i], ((spte_to_pfn(old) + i * spte_level_pages(level - 1))
					       << HOST_PAGE_SHIFT) | flags);
	} while (!spte_cmpxchg(it->sptep, &old, table));
	mmu_stat_inc(&t->head, tdp_pages);
	mmu_account_leaf(&t->head, level, -1);
	mmu_account_leaf(&t->head, level - 1, 512);
	return true;
}

/* A huge leaf in a logging slot: split it (else zap it; a fault maps 4K). True: flush. */
static bool split_or_zap(struct tdp_mmu *t, struct tdp_iter *it, const struct memslot *slot)
{
	const bool dbit = __atomic_load_n(&t->dirty_mode, __ATOMIC_RELAXED) == TDP_DIRTY_DBIT;

	if (!split_huge(t, it, !dbit, dbit)) {
		uint64_t old = spte_xchg(it->sptep, 0);

		if (is_shadow_present_pte(old))
			leaf_gone(t, old, it->level, it->gfn, slot);
	}
	return true;
}

/* LOG_DIRTY_PAGES turned on: protect every leaf of @slot (W or D off by mode), splitting huge
 * ones. Exclusive mmu_lock. True: flush. */
static bool enable_dirty_logging(struct tdp_mmu *t, const struct memslot *slot)
{
	const uint64_t mask = __atomic_load_n(&t->dirty_mode, __ATOMIC_RELAXED) == TDP_DIRTY_DBIT
			      ? t->head.fmt.dirty_mask : SPTE_W_MASK;
	struct tdp_iter it;
	bool flush = false;

	for_each_tdp_spte(it, t, 1, slot->base_gfn, slot_end_gfn(slot)) {
		uint64_t old = spte_read(it.sptep);

		if (!is_shadow_present_pte(old) || !is_last_spte(old, it.level))
			continue;
		if (it.level > 1)
			flush |= split_or_zap(t, &it, slot);   /* the walk goes on into its leaves */
		else if (spte_clear_bits(it.sptep, mask) & mask)
			flush = true;
	}
	if (flush)
		tdp_tables_changed(t);
	return flush;
}

/*
 * LOG_DIRTY_PAGES turned off: unlink the tables under 2M and 1G ranges that may be mapped huge
 * again (@huge_ok[i]: the largest level block i of the slot may be mapped at, by its host page
 * found before mmu_lock was taken: the host mm's lock comes first). The next fault maps 2M or 1G
 * (KVM's recovery of huge pages after dirty logging). Exclusive mmu_lock. True: flush.
 */
static bool recover_huge(struct tdp_mmu *t, const struct memslot *slot, const uint8_t *huge_ok,
			 gfn_t first_block, uint64_t nblocks)
{
	const gfn_t end = first_block + nblocks * 512;
	struct tdp_iter it;
	bool flush = false;

	for_each_tdp_spte(it, t, 2, first_block, end) {
		uint64_t old = spte_read(it.sptep);

		if (it.level > 3 || !is_shadow_present_pte(old) || is_last_spte(old, it.level) ||
		    it.gfn < first_block || it.gfn + spte_level_pages(it.level) > end ||
		    huge_ok[(it.gfn - first_block) / 512] < it.level)
			continue;
		/* The iterator reads the entry again before it would step into it: none now. */
		old = spte_xchg(it.sptep, 0);
		free_subtree(t, old, it.level, it.gfn, slot);
		flush = true;
	}
	if (flush)
		tdp_tables_changed(t);
	return flush;
}

/*
 * memslots_ops.dirty_log_protect (KVM's kvm_arch_mmu_enable_log_dirty_pt_masked): write-protect
 * again the pages just harvested. ms->lock held, outside read sections; exclusive mmu_lock, one
 * walk per run of non-zero bitmap words, one flush at the end.
 */
static void tdp_dirty_log_protect(void *opaque, const struct memslot *slot, uint64_t first_word,
				  const uint64_t *harvested, uint64_t nwords)
{
	struct tdp_mmu *t = opaque;
	struct tdp_iter it;
	bool flush = false;

	/* D-bit mode cleared the D bits when it collected them (tdp_mmu_sync_dirty_log). */
	if (__atomic_load_n(&t->dirty_mode, __ATOMIC_RELAXED) == TDP_DIRTY_DBIT)
		return;
	brlock_write(&t->head.mmu_lock);
	for (uint64_t w = 0; w < nwords;) {
		gfn_t start, end;

		if (!harvested[w]) {
			w++;
			continue;
		}
		start = slot->base_gfn + (first_word + w) * 64;
		while (w < nwords && harvested[w])
			w++;
		end = slot->base_gfn + (first_word + w) * 64;
		if (end > slot_end_gfn(slot))
			end = slot_end_gfn(slot);
		for_each_tdp_spte(it, t, 1, start, end) {
			uint64_t old = spte_read(it.sptep), rel = it.gfn - slot->base_gfn;

			if (!is_shadow_present_pte(old) || !is_last_spte(old, it.level))
				continue;
			/* A huge leaf has no business in a logging slot (faults map 4K, enabling
			 * split them): whatever pages of it were harvested, it goes. */
			if (it.level > 1) {
				flush |= split_or_zap(t, &it, slot);
				continue;
			}
			if (rel / 64 < first_word || rel / 64 >= first_word + nwords ||
			    !((harvested[rel / 64 - first_word] >> (rel % 64)) & 1))
				continue;
			if (spte_clear_bits(it.sptep, SPTE_W_MASK) & SPTE_W_MASK)
				flush = true;
		}
	}
	if (flush) {
		tdp_tables_changed(t);
		mmu_flush_remote_tlbs(&t->head);
	}
	brlock_unlock(&t->head.mmu_lock);
}

/* D-bit mode: the D bits of @slot's leaves in [start, end) into its bitmaps, cleared. */
static void sync_dirty_range(struct tdp_mmu *t, const struct memslot *slot, gfn_t start, gfn_t end)
{
	struct tdp_iter it;
	bool flush = false;

	if (__atomic_load_n(&t->dirty_mode, __ATOMIC_RELAXED) != TDP_DIRTY_DBIT ||
	    !slot_logs_dirty(slot))
		return;
	/* Shared: D bits only, each cleared atomically against the hardware setting it. */
	brlock_read(&t->head.mmu_lock);
	for_each_tdp_spte(it, t, 1, start, end) {
		uint64_t old;

		if (!is_shadow_present_pte(it.old_spte) || !is_last_spte(it.old_spte, it.level))
			continue;
		old = spte_clear_bits(it.sptep, t->head.fmt.dirty_mask);
		if (!(old & t->head.fmt.dirty_mask))
			continue;
		for (uint64_t i = 0; i < spte_level_pages(it.level); i++)
			if (slot_contains(slot, it.gfn + i))
				slot_mark_dirty(slot, it.gfn + i);
		flush = true;
	}
	if (flush)
		tdp_tables_changed(t);
	brlock_unlock(&t->head.mmu_lock);
	/* A TLB entry cached as dirty lets writes through without setting D again. */
	if (flush)
		mmu_flush_remote_tlbs(&t->head);
}

void tdp_mmu_sync_dirty_log(struct mmu *m, const struct memslot *slot)
{
	sync_dirty_range(to_tdp(m), slot, slot->base_gfn, slot_end_gfn(slot));
}

/* memslots_ops.sync_dirty_log: before a harvest of either bitmap. */
static void tdp_sync_dirty_log(void *opaque, const struct memslot *slot, gfn_t start, gfn_t end)
{
	sync_dirty_range(opaque, slot, start, end);
}

/* ---- memslot changes ---- */

/*
 * memslots_ops.change: once per effective change, after publication and a grace period, with
 * ms->lock held, outside any read section; the generation is odd. DELETE and MOVE zap the old
 * range exactly (tables wholly inside it are freed after the next grace period); CREATE and MOVE
 * clear the new range of MMIO sptes (stale by generation already, but their tables would keep
 * the range from being mapped huge); FLAGS_ONLY protects for dirty logging or recovers huge
 * pages. If the generation tag wraps with this change, every MMIO spte goes (KVM's "MMIO
 * generation wrapped").
 */
static void tdp_slot_change(void *opaque, const struct memslot *old, const struct memslot *new,
			    enum memslot_change change)
{
	struct tdp_mmu *t = opaque;
	uint8_t *huge_ok = NULL;
	gfn_t first = 0;
	uint64_t nblocks = 0;
	bool flush = false;

	if (change == MEMSLOT_FLAGS_ONLY && slot_logs_dirty(old) && !slot_logs_dirty(new))
		huge_ok = mmu_huge_blocks(&t->head, new, &first, &nblocks);
	/* A second bitmap comes while one logs in D-bit mode: enabling clears the D bits, so the
	 * writes they hold go into the bitmaps first (both: KSM's takes them as writes too). */
	if (change == MEMSLOT_FLAGS_ONLY && slot_logs_dirty(old) && slot_tracking_added(old, new))
		sync_dirty_range(t, new, new->base_gfn, slot_end_gfn(new));

	brlock_write(&t->head.mmu_lock);
	if (mmio_gen_wraps(memslots_generation(t->head.env.slots)))
		zap_all_mmio(t);
	if (change == MEMSLOT_DELETE || change == MEMSLOT_MOVE)
		flush = tdp_zap_range(t, old->base_gfn, slot_end_gfn(old), true, old);
	/* A new range held no RAM: only MMIO sptes (stale now) and the tables they sit in, which
	 * go so that the new slot can be mapped huge. */
	if (change == MEMSLOT_CREATE || change == MEMSLOT_MOVE)
		flush |= tdp_zap_range(t, new->base_gfn, slot_end_gfn(new), true, NULL);
	switch (change) {
	case MEMSLOT_CREATE:
	case MEMSLOT_DELETE:
	case MEMSLOT_MOVE:
		break;
	case MEMSLOT_FLAGS_ONLY:
		if (slot_tracking_added(old, new))
			flush = enable_dirty_logging(t, new);
		else if (huge_ok)
			flush = recover_huge(t, new, huge_ok, first, nblocks);
		break;
	}
	if (flush)
		mmu_flush_remote_tlbs(&t->head);
	brlock_unlock(&t->head.mmu_lock);
	free(huge_ok);
}

const struct memslots_ops tdp_memslots_ops = {
	.change = tdp_slot_change,
	.dirty_log_protect = tdp_dirty_log_protect,
	.sync_dirty_log = tdp_sync_dirty_log,
};

/* ---- MMU notifiers (the core's hooks) ---- */

/* Zap the leaves mapping [start, end) of @slot (NULL: every gfn). Exclusive mmu_lock. */
bool tdp_unmap_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end)
{
	return tdp_zap_range(to_tdp(m), start, end, false, slot);
}

/*
 * Accessed bits of the leaves mapping [start, end) of @slot, cleared with @clear (KVM's
 * age_gfn_range). Shared mmu_lock: only A changes, atomically. EPT runs with A/D enabled and NPT
 * always has them, so nothing is zapped for aging.
 */
bool tdp_age_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end,
		       bool clear)
{
	struct tdp_mmu *t = to_tdp(m);
	const uint64_t a = m->fmt.accessed_mask;
	struct tdp_iter it;
	bool young = false;

	(void)slot;
	for_each_tdp_spte(it, t, 1, start, end) {
		if (!is_shadow_present_pte(it.old_spte) || !is_last_spte(it.old_spte, it.level))
			continue;
		if (clear)
			young |= (spte_clear_bits(it.sptep, a) & a) != 0;
		else
			young |= (spte_read(it.sptep) & a) != 0;
	}
	/* No flush follows (KVM's aging leaves TLBs alone), but a walk cache entry is a walk that
	 * would set A again. */
	if (clear && young)
		tdp_tables_changed(t);
	return young;
}
