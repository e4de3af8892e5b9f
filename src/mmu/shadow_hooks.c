/* SPDX-License-Identifier: MIT */
/*
 * What the soft MMU hears from below: memslot changes and dirty-log harvests (mem/), and MMU
 * notifiers (host/).
 *  - DELETE/MOVE: every leaf mapping a gfn of the old slot goes, and every sp shadowing one (its
 *    table's bytes are gone or elsewhere); CREATE needs nothing (MMIO sptes of the new gfns carry
 *    an older generation, so they are stale); FLAGS_ONLY with dirty logging turned on
 *    write-protects the slot's leaves. The generation of MMIO sptes has 9 bits: when it wraps,
 *    everything is zapped (as KVM), so a stale tag can never look current.
 *  - Notifier invalidate_range_start: the same zap for the gfns whose hva is in the range, and
 *    the invalidation protocol of mmu_internal.h so a racing fault retries.
 *  - vmmu_write_guest (user space writing guest memory, which write tracking does not see):
 *    under notrap the written entries' truly non-present sptes trap again (shadow_guest_written).
 * Locking: hooks run with ms->lock held outside any read section; notifiers with mm->lock held
 * (so the notifier never waits for a grace period: freed frames wait for the next drain). Both
 * take mmu_lock for writing and flush remote TLBs before dropping it.
 */
#include "mmu/shadow.h"

static void write_protect_range(struct shadow_mmu *sm, gfn_t start, gfn_t end, bool *flush)
{
	if (end - start <= 4 * (sm->gfns.n + 1)) {
		for (gfn_t g = start; g < end; g++)
			*flush |= write_protect_gfn(sm, g, true);
		return;
	}
	for (uint64_t i = 0; i <= sm->gfns.mask; i++)
		for (struct hnode *n = sm->gfns.b[i]; n; n = n->next)
			if (n->key >= start && n->key < end)
				*flush |= write_protect_gfn(sm, n->key, true);
}

static void shadow_slot_change(void *opaque, const struct memslot *old, const struct memslot *new,
			       enum memslot_change change)
{
	struct shadow_mmu *sm = opaque;
	struct zap_batch z = { 0 };
	bool flush = false;

	pthread_rwlock_wrlock(&sm->mmu.mmu_lock);
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
		if (slot_logs_dirty(new) && !slot_logs_dirty(old))
			write_protect_range(sm, new->base_gfn, slot_end_gfn(new), &flush);
		break;
	}
	/* The generation this change ends with is the current (odd) one + 1. */
	if (sm->mmio_enabled && mmio_gen_of(memslots_generation(sm->mmu.env.slots) + 1) == 0)
		zap_all(sm, &z);
	z.flush |= flush;
	zap_batch_commit(sm, &z);
	pthread_rwlock_unlock(&sm->mmu.mmu_lock);
	shadow_drain_frees(sm, true);
}

static void shadow_dirty_log_protect(void *opaque, const struct memslot *slot,
				     const uint64_t *harvested, uint64_t nwords)
{
	struct shadow_mmu *sm = opaque;
	bool flush = false;

	pthread_rwlock_wrlock(&sm->mmu.mmu_lock);
	for (uint64_t w = 0; w < nwords; w++)
		for (uint64_t bits = harvested[w]; bits; bits &= bits - 1)
			flush |= write_protect_gfn(sm, slot->base_gfn + w * 64 +
						   (unsigned)__builtin_ctzll(bits), true);
	if (flush)
		shadow_remote_flush(sm);
	pthread_rwlock_unlock(&sm->mmu.mmu_lock);
}

const struct memslots_ops shadow_memslots_ops = {
	.change = shadow_slot_change,
	.dirty_log_protect = shadow_dirty_log_protect,
};

/* ---- MMU notifiers ---- */

static struct shadow_mmu *mn_to_shadow(struct host_mmu_notifier *mn)
{
	return container_of(mn, struct shadow_mmu, mn);
}

/* Call @fn on the gfn range of every slot whose hvas meet [start, end). Inside a read section. */
static void for_each_gfn_range_of_hva(struct shadow_mmu *sm, hva_t start, hva_t end,
				      void (*fn)(struct shadow_mmu *, gfn_t, gfn_t, void *),
				      void *arg)
{
	struct memslot_iter it;
	const struct memslot *slot;

	memslots_for_each_in_gfn_range(slot, &it, sm->mmu.env.slots, 0, ~0ULL) {
		hva_t s = slot->userspace_addr, e = s + (slot->npages << 12);
		hva_t lo = start > s ? start : s, hi = end < e ? end : e;
		if (lo >= hi)
			continue;
		fn(sm, slot->base_gfn + ((lo - s) >> 12), slot->base_gfn + ((hi - s + 4095) >> 12),
		   arg);
	}
}

static void zap_range_cb(struct shadow_mmu *sm, gfn_t start, gfn_t end, void *arg)
{
	zap_gfn_range(sm, start, end, arg);
}

static void shadow_invalidate_range_start(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct shadow_mmu *sm = mn_to_shadow(mn);
	struct zap_batch z = { 0 };

	pthread_rwlock_wrlock(&sm->mmu.mmu_lock);
	if (__atomic_load_n(&sm->mmu.invalidate_in_progress, __ATOMIC_RELAXED) == 0) {
		sm->mmu.invalidate_start = start;
		sm->mmu.invalidate_end = end;
	} else {
		if (start < sm->mmu.invalidate_start)
			sm->mmu.invalidate_start = start;
		if (end > sm->mmu.invalidate_end)
			sm->mmu.invalidate_end = end;
	}
	__atomic_add_fetch(&sm->mmu.invalidate_in_progress, 1, __ATOMIC_SEQ_CST);
	memslots_read_lock();
	for_each_gfn_range_of_hva(sm, start, end, zap_range_cb, &z);
	memslots_read_unlock();
	zap_batch_commit(sm, &z);
	pthread_rwlock_unlock(&sm->mmu.mmu_lock);
}

static void shadow_invalidate_range_end(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct shadow_mmu *sm = mn_to_shadow(mn);

	pthread_rwlock_wrlock(&sm->mmu.mmu_lock);
	__atomic_add_fetch(&sm->mmu.invalidate_seq, 1, __ATOMIC_SEQ_CST);
	__atomic_sub_fetch(&sm->mmu.invalidate_in_progress, 1, __ATOMIC_SEQ_CST);
	shadow_changed(sm);
	pthread_rwlock_unlock(&sm->mmu.mmu_lock);
}

struct young_arg {
	bool clear;
	bool young;
};

/* The hardware sets Accessed in leaf sptes: that is the page's age (KVM's kvm_age_rmap). */
static void young_cb(struct shadow_mmu *sm, gfn_t start, gfn_t end, void *arg)
{
	struct young_arg *y = arg;

	for (gfn_t g = start; g < end; g++) {
		struct gfn_info *gi = gfn_info_find(sm, g);
		for (uint32_t i = 0; gi && i < gi->rmap.n; i++) {
			uint64_t *sptep = gi->rmap.v[i];
			uint64_t old = spte_read(sptep);
			while (old & PT_ACCESSED_MASK) {
				y->young = true;
				if (!y->clear || spte_cmpxchg(sptep, &old, old & ~PT_ACCESSED_MASK))
					break;
			}
		}
	}
}

static bool shadow_age(struct host_mmu_notifier *mn, hva_t start, hva_t end, bool clear)
{
	struct shadow_mmu *sm = mn_to_shadow(mn);
	struct young_arg y = { .clear = clear };

	pthread_rwlock_wrlock(&sm->mmu.mmu_lock);
	memslots_read_lock();
	for_each_gfn_range_of_hva(sm, start, end, young_cb, &y);
	memslots_read_unlock();
	pthread_rwlock_unlock(&sm->mmu.mmu_lock);
	return y.young;
}

static bool shadow_clear_young(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	return shadow_age(mn, start, end, true);
}

static bool shadow_test_young(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	return shadow_age(mn, start, end, false);
}

const struct host_mmu_notifier_ops shadow_mn_ops = {
	.invalidate_range_start = shadow_invalidate_range_start,
	.invalidate_range_end = shadow_invalidate_range_end,
	.clear_young = shadow_clear_young,
	.test_young = shadow_test_young,
};

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
	pthread_rwlock_wrlock(&m->mmu_lock);
	for (gfn_t gfn = gpa >> 12; sm->nr_sps && gfn <= (gpa + len - 1) >> 12; gfn++) {
		uint64_t lo = gfn == gpa >> 12 ? gpa & 0xfff : 0;
		uint64_t hi = gfn == (gpa + len - 1) >> 12 ? (gpa + len - 1) & 0xfff : 0xfff;

		htab_for_each_key(&sm->sp_hash, n, gfn) {
			struct shadow_page *sp = container_of(n, struct shadow_page, hash);
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
	pthread_rwlock_unlock(&m->mmu_lock);
}
