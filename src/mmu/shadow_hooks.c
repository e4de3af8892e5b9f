/* SPDX-License-Identifier: MIT */
/*
 * What the soft MMU hears from below: memslot changes and dirty-log harvests (mem/), and MMU
 * notifiers (host/, through the core's notifier: mmu.c).
 *  - DELETE/MOVE: every leaf mapping a gfn of the old slot goes, and every sp shadowing one (its
 *    table's bytes are gone or elsewhere); CREATE needs nothing (MMIO sptes of the new gfns carry
 *    an older generation, so they are stale); FLAGS_ONLY with dirty logging turned on
 *    write-protects the slot's leaves, with it turned off zaps the direct sps that large sptes
 *    can replace now. When the generation tag of MMIO sptes wraps
 *    (mmio_gen_wraps), everything is zapped (as KVM), so a stale tag can never look current.
 *  - Notifier invalidate_range_start (shadow_unmap_gfn_range): the same zap for the gfns whose
 *    hva is in the range; the core runs the invalidation protocol so a racing fault retries.
 *  - Notifier clear/test young (shadow_age_gfn_range): the Accessed bits of the leaves.
 *  - vmmu_write_guest (user space writing guest memory, which write tracking does not see):
 *    under notrap the written entries' truly non-present sptes trap again (shadow_guest_written).
 * Locking: hooks run with ms->lock held outside any read section; notifiers with mm->lock held.
 * Both run with mmu_lock held for writing and flush remote TLBs before it is dropped; neither
 * waits for a grace period (zapped frames go through call_rcu).
 */
#include <stdlib.h>

#include "mmu/shadow.h"

/* Every leaf mapping a gfn of [start, end) loses W: the gfns some leaf maps, chunk by chunk, and
 * a large leaf beginning before @start. [L] */
static void write_protect_range(struct shadow_mmu *sm, gfn_t start, gfn_t end, bool *flush)
{
	struct gfn_chunk *c;

	*flush |= write_protect_gfn(sm, start, true);
	gfn_range_for_each(sm, c, g, start, end)
		if (g != start && c->rmap[g & (SPTE_ENTRIES - 1)])
			*flush |= write_protect_gfn(sm, g, true);
}

/*
 * Dirty logging stopped on @slot: a direct sp (a guest large page mapped 2M or 4K at a time)
 * whose range the host now backs with a page as large as the sp's whole range, with no tracked
 * gfn inside, goes, so the next fault there maps a large spte (KVM's
 * kvm_mmu_zap_collapsible_sptes; @huge_ok as mmu_huge_blocks found the host pages before
 * mmu_lock). [L]
 */
/* Is @sp part of a paging-off tree (a direct sp linked from a direct table of level 3 or more)?
 * Those map 4K whatever the host pages (fault_goal). */
static bool under_direct_table(struct shadow_mmu *sm, const struct shadow_page *sp)
{
	for (unsigned up = 0; up < 2 && sp && sp->parents.n; up++) {
		sp = sptep_to_sp(sm, sp->parents.v[0]);
		if (!sp || !sp->role.direct)
			return false;
		if (sp->role.level >= 3)
			return true;
	}
	return false;
}

static void recover_large(struct shadow_mmu *sm, const uint8_t *huge_ok, gfn_t first,
			  uint64_t nblocks, struct zap_batch *z)
{
	htab_nodes_for_each(&sm->sp_hash, n, next) {
		struct shadow_page *sp = caa_container_of(n, struct shadow_page, hash);
		int level = (int)sp->role.level + 1;       /* what one spte could map instead */
		if (!sp->role.direct || level > 3 || under_direct_table(sm, sp) || sp->gfn < first ||
		    sp->gfn + spte_level_pages(level) > first + nblocks * 512 ||
		    huge_ok[(sp->gfn - first) / 512] < level ||
		    shadow_lpage_level(sm, sp->gfn, level, false) < level)
			continue;
		sp_zap(sm, sp, z);
	}
}

static void shadow_slot_change(void *opaque, const struct memslot *old, const struct memslot *new,
			       enum memslot_change change)
{
	struct shadow_mmu *sm = opaque;
	struct zap_batch z = { 0 };
	bool flush = false;
	uint8_t *huge_ok = NULL;
	gfn_t first = 0;
	uint64_t nblocks = 0;

	if (change == MEMSLOT_FLAGS_ONLY && slot_logs_dirty(old) && !slot_logs_dirty(new))
		huge_ok = mmu_huge_blocks(&sm->mmu, new, &first, &nblocks);
	brlock_write(&sm->mmu.mmu_lock);
	/* Slots logging dirty pages: the fast page fault has nothing to fix without one. */
	int64_t logging = (change != MEMSLOT_DELETE && new && slot_logs_dirty(new)) -
			  (change != MEMSLOT_CREATE && old && slot_logs_dirty(old));
	__atomic_add_fetch(&sm->nr_logging_slots, (uint64_t)logging, __ATOMIC_RELAXED);
	switch (change) {
	case MEMSLOT_CREATE:
		sm->slot_pages += new->npages;
		break;
	case MEMSLOT_DELETE:
		sm->slot_pages -= old->npages;
		zap_gfn_range(sm, old->base_gfn, slot_end_gfn(old), &z);
		break;
	case MEMSLOT_MOVE:
		zap_gfn_range(sm, old->base_gfn, slot_end_gfn(old), &z);
		break;
	case MEMSLOT_FLAGS_ONLY:
		if (slot_tracking_added(old, new))
			write_protect_range(sm, new->base_gfn, slot_end_gfn(new), &flush);
		else if (huge_ok)
			recover_large(sm, huge_ok, first, nblocks, &z);
		break;
	}
	if (sm->mmu.fmt.mmio_value && mmio_gen_wraps(memslots_generation(sm->mmu.env.slots)))
		zap_all(sm, &z);
	z.flush |= flush;
	zap_batch_commit(sm, &z);
	brlock_unlock(&sm->mmu.mmu_lock);
	free(huge_ok);
}

static void shadow_dirty_log_protect(void *opaque, const struct memslot *slot, uint64_t first_word,
				     const uint64_t *harvested, uint64_t nwords)
{
	struct shadow_mmu *sm = opaque;
	bool flush = false;

	brlock_write(&sm->mmu.mmu_lock);
	for (uint64_t w = 0; w < nwords; w++)
		for (uint64_t bits = harvested[w]; bits; bits &= bits - 1)
			flush |= write_protect_gfn(sm, slot->base_gfn + (first_word + w) * 64 +
						   (unsigned)__builtin_ctzll(bits), true);
	if (flush)
		mmu_flush_remote_tlbs(&sm->mmu);
	brlock_unlock(&sm->mmu.mmu_lock);
}

const struct memslots_ops shadow_memslots_ops = {
	.change = shadow_slot_change,
	.dirty_log_protect = shadow_dirty_log_protect,
};

/* ---- MMU notifiers (the core's hooks) ---- */

bool shadow_unmap_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end)
{
	struct zap_batch z = { 0 };

	(void)slot;
	zap_gfn_range(to_shadow(m), start, end, &z);
	return z.flush;
}

/* The Accessed bits of the leaves in rmap @head of level @minlevel or more: any set? Cleared with
 * @clear. */
static bool age_rmap(struct shadow_mmu *sm, uintptr_t head, int minlevel, bool clear)
{
	bool young = false;

	for (uint32_t i = 0, n = rmap_count(head); i < n; i++) {
		uint64_t *sptep = rmap_at(head, i);
		uint64_t old = spte_read(sptep);
		if (minlevel > 1 && (int)sptep_to_sp(sm, sptep)->role.level < minlevel)
			continue;
		while (old & PT_ACCESSED_MASK) {
			young = true;
			if (!clear || spte_cmpxchg(sptep, &old, old & ~PT_ACCESSED_MASK))
				break;
		}
	}
	return young;
}

/* The hardware sets Accessed in leaf sptes: that is the page's age (KVM's kvm_age_rmap); a large
 * leaf's is the age of every page it maps. */
bool shadow_age_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end,
			  bool clear)
{
	struct shadow_mmu *sm = to_shadow(m);
	struct gfn_chunk *c;
	gfn_t cover[2];
	int minlevel[2];
	unsigned nc = gfn_cover_rmaps(sm, start, cover, minlevel);
	bool young = false;

	(void)slot;
	for (unsigned k = 0; k < nc; k++)
		young |= age_rmap(sm, gfn_rmap(sm, cover[k]), minlevel[k], clear);
	gfn_range_for_each(sm, c, g, start, end)
		young |= age_rmap(sm, c->rmap[g & (SPTE_ENTRIES - 1)], 1, clear);
	return young;
}

/*
 * User space wrote guest memory. A guest entry it made present behind a truly non-present spte
 * (notrap) would stay hidden from the guest until its next flush of the address, where natively
 * a not-present -> present change needs no flush: the zeroes of the written entries, in every sp
 * shadowing those tables, trap again. Other sptes follow the guest's own flush, as on KVM, whose
 * user-space writes bypass write tracking too.
 */
void shadow_guest_written(struct mmu *m, gpa_t gpa, uint64_t len)
{
	struct shadow_mmu *sm = to_shadow(m);
	struct hnode *n;

	if (!sm->notrap || !len)
		return;
	brlock_write(&m->mmu_lock);
	for (gfn_t gfn = gpa >> 12; sm->nr_sps && gfn <= (gpa + len - 1) >> 12; gfn++) {
		uint64_t lo = gfn == gpa >> 12 ? gpa & 0xfff : 0;
		uint64_t hi = gfn == (gpa + len - 1) >> 12 ? (gpa + len - 1) & 0xfff : 0xfff;

		htab_for_each_key(&sm->sp_hash, n, gfn) {
			struct shadow_page *sp = caa_container_of(n, struct shadow_page, hash);
			unsigned first, last;
			if (sp->role.direct ||
			    !sp_sptes_of_bytes(sp, (uint32_t)lo, (uint32_t)(hi - lo + 1), &first, &last))
				continue;
			for (unsigned i = first; i <= last; i++)
				if (!spte_read(&sp->spt[i])) {
					spte_write(&sp->spt[i], SPTE_TRAP);
					shadow_changed(sm);
				}
		}
	}
	brlock_unlock(&m->mmu_lock);
}
