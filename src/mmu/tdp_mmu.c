/* SPDX-License-Identifier: MIT */
/*
 * The hard MMU (layer 5 of docs/architecture.md): EPT (--mmu ept) and NPT (--mmu npt) direct tables, one
 * implementation over both formats (tdp_mmu.h has the spte formats, invariants and locking).
 * This file: create/destroy, vCPU setup, and the VM exits: EPT violation / NPF (the page fault),
 * EPT misconfiguration / NPF with RSVD (MMIO sptes), and the lockless fast page fault.
 *
 * A fault (tdp_page_fault, then tdp_handle_violation), in order (KVM's kvm_tdp_mmu_page_fault),
 * each step named after the core's
 * (mmu_internal.h) or this file's function that takes it:
 *   1. write to a leaf write-protected for dirty logging: tdp_fast_page_fault (no lock), if on;
 *   2. read section: mmu_fault_begin (generation, invalidation sequence), mmu_fault_slot (none:
 *      an MMIO spte and an MMIO exit, tdp_map_mmio);
 *   3. mmu_faultin_pfn: slot -> hva -> pfn, faulting the host page in (no mmu_lock held: the
 *      host mm's lock comes before mmu_lock, and notifiers take mmu_lock under it);
 *   4. mmu_lock shared; retry if an MMU-notifier invalidation raced with 3
 *      (mmu_invalidate_retry);
 *   5. tdp_mmu_map: the iterator from the root toward the gfn, linking missing tables by cmpxchg,
 *      and cmpxchg the leaf in at the largest level the host mapping and the slot allow (a
 *      table already there: the fault starts over with mmu_lock exclusive and unlinks it);
 *   6. unlock; mark the page dirty if it became writable in a logging slot; leave the section.
 * Guest page-table accesses the hardware cannot complete (their gpa is in no slot, has no host
 * memory, or is a read-only slot's and the walk writes A/D) are walked in software, as KVM's
 * emulator would, and the guest gets the #PF a native walk gives.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "mmu/tdp_mmu.h"
#include "paging/slots_gmem.h"

/* The dirty-logging mode of new MMUs. A create-time choice belongs in struct mmu_env (proposed:
 * a dirty_mode field); until then this flag, and tdp_mmu_set_dirty_mode() for tests. */
static const enum tdp_dirty_mode tdp_default_dirty_mode = TDP_DIRTY_WRPROT;

/* How often a fault that raced with an MMU-notifier invalidation starts over inside the handler
 * (yielding) before it hands MMU_RETRY back to the run loop. */
#define TDP_FAULT_ATTEMPTS 1000

/* What the exit says about the access that faulted. */
enum tdp_table_access {
	TABLE_NO = 0,       /* the final access (the data) */
	TABLE_YES,          /* a guest page-table access of the 2-D walk */
	TABLE_UNKNOWN,      /* EPT misconfiguration: the hardware does not say */
};

/* A fault of this MMU: the core's, and what the exit told about the access. */
struct tdp_fault {
	struct mmu_page_fault *pf;
	gfn_t gfn;
	enum tdp_table_access table;
};

static enum tdp_dirty_mode dirty_mode(const struct tdp_mmu *t)
{
	return __atomic_load_n(&t->dirty_mode, __ATOMIC_RELAXED);
}

void tdp_mmu_set_dirty_mode(struct mmu *m, enum tdp_dirty_mode mode)
{
	__atomic_store_n(&to_tdp(m)->dirty_mode, mode, __ATOMIC_RELAXED);
}

/* ---- the software walk of guest tables (KVM's emulator reads them so), over the memslots
 * (paging/slots_gmem.h) ---- */

static unsigned exit_access(const struct hw_exit *e)
{
	return e->access & (PFERR_WRITE | PFERR_FETCH | WALK_IMPLICIT);
}

/*
 * A guest page-table access the hardware could not complete through the tables. Walk the guest's
 * tables in software over the memslots (with A/D updates, as a native walk) and give the guest
 * what native mode gives: the #PF. If the walk now succeeds the tables changed under us: retry.
 * @ro_table: the hardware wrote (EPT A/D or NPT treat table reads as writes) into a READONLY
 * slot; if the software walk succeeds there, the access could only complete by emulating it,
 * which the MMU interface cannot express yet (docs/hard-mmu.md, "Limits"): -EFAULT.
 */
static int tdp_emulate_walk(struct tdp_fault *f, bool ro_table)
{
	const struct hw_exit *e = f->pf->e;
	struct walk_result r;

	switch (paging_walk(&f->pf->mv->cpu->guest, &slots_gmem_ops, f->pf->mmu->env.slots, e->gva,
			    exit_access(e), &r)) {
	case WALK_PF:
		f->pf->pf_ec = r.ec;
		f->pf->pf_addr = r.addr;
		return RET_PF_INJECT;
	case WALK_ABORT:
		return r.abort_err ? r.abort_err : -EIO;
	case WALK_GP:
		return -EIO;    /* the hardware checked the address before it walked */
	case WALK_OK:
		break;
	}
	return ro_table ? -EFAULT : RET_PF_RETRY;
}

/* Is @gfn the final gpa of the access that exited (not one of its guest table entries)? A
 * translate-only software walk tells, for the exits that do not say (EPT misconfiguration). */
static bool is_final_access(const struct tdp_fault *f)
{
	const struct hw_exit *e = f->pf->e;
	struct walk_result r;

	if (paging_walk(&f->pf->mv->cpu->guest, &slots_gmem_ops, f->pf->mmu->env.slots, e->gva,
			exit_access(e) | WALK_NO_AD, &r) != WALK_OK)
		return false;
	return (r.gpa >> VMMU_PAGE_SHIFT) == f->gfn;
}

/* No memory at the fault's gpa, as native mode sees it: an MMIO exit, or the native #PF for a
 * guest table there. */
static int tdp_no_memory(struct tdp_fault *f, bool ro_table)
{
	if (f->table == TABLE_YES)
		return tdp_emulate_walk(f, ro_table);
	f->pf->mmio_gpa = f->pf->e->gpa;
	return RET_PF_MMIO;
}

/* ---- walking and installing ---- */

/* The iterator at the lowest entry on @gfn's path: the level-1 entry, or the first non-present
 * or leaf entry above it. Lockless: inside an RCU read section (tables met stay allocated until
 * it ends). Charges one step per entry read. */
static void tdp_walk_to(const struct tdp_mmu *t, gfn_t gfn, struct tdp_iter *it, uint64_t *steps)
{
	tdp_iter_start(it, t, 1, gfn, gfn + 1);
	while (tdp_iter_step_down(it))
		;
	*steps += (uint64_t)(t->ctx.levels - it->level + 1);
}

struct host_pool tdp_page_pool = HOST_POOL_INIT(sizeof(struct tdp_page));

/*
 * Link a zeroed table into the iterator's entry, which held it->old_spte (not present). mmu_lock
 * held shared. Ordering: host_frame_alloc() hands back zeroed memory, and the seq-cst cmpxchg
 * publishes it, so a walker whose acquire load sees the entry sees an empty table. A lost cmpxchg
 * (another vCPU linked one first) frees our frame and leaves the entry as the winner made it; the
 * caller reads it again either way. 0 or -ENOMEM.
 */
static int link_table(struct tdp_mmu *t, struct tdp_iter *it)
{
	struct tdp_page *tp = host_pool_zalloc(&tdp_page_pool);
	uint64_t old = it->old_spte;
	pfn_t pfn;
	int rc;

	if (!tp)
		return -ENOMEM;
	rc = host_frame_alloc(t->ctx.arena, HOST_ORDER_4K, &pfn);
	if (rc) {
		host_pool_free(&tdp_page_pool, tp);
		return rc;
	}
	tp->gfn = it->gfn;
	tp->level = it->level - 1;
	host_frame_set_private(t->ctx.arena, pfn, (uintptr_t)tp);
	if (spte_cmpxchg(it->sptep, &old, make_table_spte(&t->head.fmt, pfn))) {
		mmu_stat_inc(&t->head, tdp_pages);
		return 0;
	}
	host_frame_set_private(t->ctx.arena, pfn, 0);
	host_frame_put(t->ctx.arena, pfn, HOST_ORDER_4K);
	host_pool_free(&tdp_page_pool, tp);
	return 0;
}

/* What a fault wants installed at the end of tdp_mmu_map's walk. */
struct map_req {
	gfn_t gfn;
	bool mmio;             /* an MMIO spte (@mmio_spte) at level 1, over an empty or stale one */
	uint64_t mmio_spte;
	pfn_t pfn;             /* the 4K frame backing gfn */
	int level;             /* the largest level the host mapping and the slot allow */
	bool write;            /* the fault was a write */
	bool writable;         /* the leaf may be writable now */
	bool mmu_writable;     /* the slot and the host page allow writes */
	bool dirty;            /* set D (a write is about to happen and D bits are not logging) */
	bool writable_now;     /* out: the leaf became writable through this call */
	bool exclusive;        /* mmu_lock is held exclusive: a table may be unlinked */
};

/* The leaf @r asks for at @level. */
static uint64_t map_req_leaf(const struct tdp_mmu *t, const struct map_req *r, int level)
{
	const struct spte_leaf l = {
		.pfn = r->pfn & ~(spte_level_pages(level) - 1), .level = level,
		.access = ACC_EXEC | ACC_USER, .writable = r->writable,
		.mmu_writable = r->mmu_writable, .host_writable = r->mmu_writable, .dirty = r->dirty,
	};

	return make_leaf_spte(&t->head.fmt, &l);
}

/* tdp_mmu_map's end for an MMIO spte: the entry at level 1. RET_PF_FIXED if it went in. */
static int map_mmio(struct tdp_iter *it, const struct map_req *r)
{
	for (uint64_t old = it->old_spte;;) {
		if (is_shadow_present_pte(old) || old == r->mmio_spte)
			return RET_PF_CONTINUE;
		if (spte_cmpxchg(it->sptep, &old, r->mmio_spte))
			return RET_PF_FIXED;
	}
}

/*
 * tdp_mmu_map's end for a leaf: the entry at the goal level (it->old_spte just read). Every change is
 * one cmpxchg; a lost one returns RET_PF_CONTINUE so that the caller reads the entry again and
 * decides again.
 */
static int map_leaf(struct tdp_mmu *t, struct tdp_iter *it, struct map_req *r, uint64_t *steps)
{
	const int level = it->level;
	uint64_t old = it->old_spte, val;

	if (!is_shadow_present_pte(old)) {
		/* Empty, or a stale MMIO spte (the gfn is RAM now). */
		val = map_req_leaf(t, r, level);
		if (!spte_cmpxchg(it->sptep, &old, val))
			return RET_PF_CONTINUE;
		(*steps)++;
		mmu_account_leaf(&t->head, level, 1);
		r->writable_now = r->writable;
		return RET_PF_FIXED;
	}
	if (spte_to_pfn(old) != (r->pfn & ~(spte_level_pages(level) - 1))) {
		/* Never expected: notifiers zap a leaf before its hva changes and the invalidation
		 * check guards our pfn. Replace it and flush, as KVM would. */
		val = map_req_leaf(t, r, level);
		if (!spte_cmpxchg(it->sptep, &old, val))
			return RET_PF_CONTINUE;
		(*steps)++;
		tdp_tables_changed(t);
		mmu_flush_remote_tlbs(&t->head);
		r->writable_now = r->writable;
		return RET_PF_FIXED;
	}
	if (!r->write || is_writable_pte(old) || !r->writable)
		return RET_PF_SPURIOUS;    /* another vCPU fixed it first */
	/* A write to a leaf write-protected for dirty logging: W back (the slow path of the fast
	 * page fault). */
	val = old | SPTE_W_MASK | SPTE_MMU_WRITABLE | t->head.fmt.accessed_mask;
	if (r->dirty)
		val |= t->head.fmt.dirty_mask;
	if (!spte_cmpxchg(it->sptep, &old, val))
		return RET_PF_CONTINUE;
	(*steps)++;
	tdp_tables_changed(t);
	r->writable_now = true;
	return RET_PF_FIXED;
}

/*
 * Step 5 of the file comment (KVM's kvm_tdp_mmu_map), for a leaf or an MMIO spte: the iterator
 * from the root toward r->gfn, one step charged per entry read, linking a table where one is
 * missing and reading the entry again, down to the goal level. mmu_lock held shared. Returns
 * RET_PF_FIXED, RET_PF_SPURIOUS, RET_PF_RETRY (something in the way goes away soon: a memslot
 * hook is running), RET_PF_CONTINUE (an MMIO spte found no place), or -ENOMEM.
 */
VMMU_HOT
static int tdp_mmu_map(struct tdp_mmu *t, struct map_req *r, uint64_t *steps)
{
	int goal = r->mmio ? 1 : r->level;
	struct tdp_iter it;
	int rc;

	tdp_iter_start(&it, t, 1, r->gfn, r->gfn + 1);
	for (;;) {
		it.old_spte = spte_read(it.sptep);
		(*steps)++;
		if (it.level > goal) {
			if (!is_shadow_present_pte(it.old_spte)) {
				rc = link_table(t, &it);
				if (rc)
					return rc;
				/* The link itself is charged for a leaf; an MMIO spte's walk
				 * charges only the entries it reads. */
				if (!r->mmio)
					(*steps)++;
				continue;       /* read it again: ours or the winner's */
			}
			if (is_last_spte(it.old_spte, it.level)) {
				if (r->mmio)
					return RET_PF_CONTINUE;
				/* A huge leaf already maps the gfn (the slot's flags changed and its
				 * hook has not split it yet). It serves reads and, if writable,
				 * writes; anything else waits for the hook. */
				return (!r->write || is_writable_pte(it.old_spte)) ? RET_PF_SPURIOUS
										   : RET_PF_RETRY;
			}
			tdp_iter_step_down(&it);
			continue;
		}
		if (r->mmio)
			return map_mmio(&it, r);
		if (is_shadow_present_pte(it.old_spte) && !is_last_spte(it.old_spte, it.level)) {
			/* A table where a huge leaf goes now: the host maps the range with one
			 * page since the table was made (khugepaged collapsed it). KVM swaps the
			 * huge leaf in under the shared lock, freezing the table's entries; here
			 * the fault starts over exclusive, unlinks the table (its leaves counted
			 * out, TLBs flushed, its frames freed after a grace period) and maps the
			 * leaf. (Dirty logging's end unlinks its tables itself: recover_huge.) */
			if (!r->exclusive)
				return RET_PF_EXCLUSIVE;
			if (tdp_zap_range(t, it.gfn, it.gfn + spte_level_pages(it.level), true, NULL))
				mmu_flush_remote_tlbs(&t->head);
			(*steps)++;
			continue;       /* read it again: empty now */
		}
		rc = map_leaf(t, &it, r, steps);
		if (rc != RET_PF_CONTINUE)
			return rc;
	}
}

/*
 * The fast page fault (KVM's fast_page_fault): a write to a level-1 leaf that is write-protected
 * only for dirty logging (MMU_WRITABLE set, W clear) gets W back with one cmpxchg, under no lock
 * but an RCU read section (the tables walked stay allocated until it ends). The fix itself, and
 * its ordering against a harvest, is mmu_fast_fix_write's, shared with the soft MMU.
 *
 * A lost cmpxchg leaves the leaf as the other writer (the hardware's A/D, a zap, a protect) made
 * it; the slow path decides then. Returns RET_PF_FIXED or RET_PF_SPURIOUS (W already set),
 * with pf->fast set (KVM counts both as pf_fast), or RET_PF_CONTINUE (not for the fast path).
 */
static int tdp_fast_page_fault(struct tdp_mmu *t, struct tdp_fault *f)
{
	const struct memslot *slot;
	struct tdp_iter it;
	uint64_t old, set;
	int ret = RET_PF_CONTINUE;

	vmmu_rcu_read_lock();
	tdp_walk_to(t, f->gfn, &it, &f->pf->steps);
	old = it.old_spte;
	if (!is_shadow_present_pte(old) || !is_last_spte(old, it.level))
		goto out;
	if (is_writable_pte(old)) {
		ret = RET_PF_SPURIOUS;
		f->pf->fast = true;
		goto out;
	}
	if (it.level != 1 || !is_mmu_writable_spte(old))
		goto out;
	set = SPTE_W_MASK | t->head.fmt.accessed_mask;
	if (dirty_mode(t) == TDP_DIRTY_WRPROT)
		set |= t->head.fmt.dirty_mask;
	/* D-bit logging marks pages from the D bits at harvest, not here. */
	slot = dirty_mode(t) == TDP_DIRTY_WRPROT ?
	       gfn_to_memslot_cached(t->head.env.slots, &f->pf->mv->slots, f->gfn) : NULL;
	if (!mmu_fast_fix_write(it.sptep, old, set, slot, f->gfn))
		goto out;
	tdp_tables_changed(t);
	f->pf->steps++;
	ret = RET_PF_FIXED;
	f->pf->fast = true;
out:
	vmmu_rcu_read_unlock();
	return ret;
}

/* No memslot: an MMIO spte tagged with the generation mmu_fault_begin read (inside the same read
 * section), unless a memslot change is in progress; then the MMIO exit. */
static int tdp_map_mmio(struct tdp_mmu *t, struct tdp_fault *f)
{
	struct mmu *m = &t->head;
	struct map_req req = { .gfn = f->gfn, .mmio = true };
	int rc = RET_PF_CONTINUE;

	if (f->table == TABLE_YES)
		return tdp_emulate_walk(f, false);
	if (m->fmt.mmio_value && !memslot_gen_in_progress(f->pf->mmu_gen)) {
		req.mmio_spte = make_mmio_spte(&m->fmt, f->gfn, f->pf->mmu_gen);
		mmu_fault_lock(m);
		rc = tdp_mmu_map(t, &req, &f->pf->steps);
		brlock_unlock(&m->mmu_lock);
	}
	if (rc < 0)
		return rc;
	if (rc == RET_PF_FIXED)
		mmu_stat_inc(m, pf_mmio_spte_created);   /* KVM's tdp_mmu_map_handle_target_level */
	f->pf->mmio_gpa = f->pf->e->gpa;
	return RET_PF_MMIO;
}

/* How often a fault that raced with an MMU-notifier invalidation starts over inside the handler
 * (yielding) before it hands RET_PF_RETRY back to the run loop. */
#define TDP_FAULT_ATTEMPTS 1000

/* EPT violation / NPF on a non-reserved entry: the page fault of the file comment. */
VMMU_HOT
static int tdp_handle_violation(struct tdp_mmu *t, struct tdp_fault *f)
{
	struct mmu *m = &t->head;
	struct mmu_page_fault *pf = f->pf;

	mmu_stat_inc(m, pf_taken);
	if (pf->write && (m->env.opts & MMU_OPT_FASTPF)) {
		int ret = tdp_fast_page_fault(t, f);

		if (ret != RET_PF_CONTINUE)
			return ret;
	}

	for (unsigned attempt = 1;; attempt++) {
		struct mmu_faultin fi;
		struct map_req req;
		uint64_t steps0;
		int rc;

		vmmu_rcu_read_lock();
		mmu_fault_begin(pf);
		if (!mmu_fault_slot(pf, &fi, f->gfn)) {
			/* MMIO. A guest table there is no memory to the guest: a native #PF. */
			rc = tdp_map_mmio(t, f);
			vmmu_rcu_read_unlock();
			return rc;
		}
		if (pf->write && slot_is_readonly(fi.slot)) {
			/* KVM makes a write to a read-only slot an MMIO exit. */
			vmmu_rcu_read_unlock();
			return tdp_no_memory(f, true);
		}
		rc = mmu_faultin_pfn(pf, &fi, pf->write);
		if (rc || fi.pfn_err) {
			/* No host memory behind the hva, for data or a guest table: the run fails
			 * (KVM_RUN's -EFAULT), in every mode. */
			vmmu_rcu_read_unlock();
			return rc ? rc : fi.pfn_err;
		}

		req = (struct map_req){
			.gfn = f->gfn, .pfn = fi.pfn, .level = mmu_max_level(fi.slot, f->gfn, fi.host_order),
			.write = pf->write, .mmu_writable = fi.map_writable,
		};
		if (!fi.map_writable) {
			/* A read-only slot, or a KSM page read: its write exits and breaks COW. */
			req.writable = false;
		} else if (slot_logs_dirty(fi.slot) && dirty_mode(t) == TDP_DIRTY_WRPROT) {
			/* A read maps read-only: the first write is logged. */
			req.writable = pf->write;
			req.dirty = pf->write;
		} else {
			/* D-bit logging leaves D clear: the hardware sets it on the write. */
			req.writable = true;
			req.dirty = pf->write && !slot_logs_dirty(fi.slot);
		}

		req.exclusive = m->env.lock == VMMU_MMU_LOCK_BIG;
		steps0 = pf->steps;
	relock:
		mmu_vcpu_lock(m, req.exclusive);
		if (mmu_invalidate_retry(m, pf->mmu_seq, fi.hva)) {
			/* The pfn may be gone already: look it up again once the host is done. */
			brlock_unlock(&m->mmu_lock);
			vmmu_rcu_read_unlock();
			if (attempt >= TDP_FAULT_ATTEMPTS)
				return RET_PF_RETRY;
			sched_yield();
			continue;
		}
		rc = tdp_mmu_map(t, &req, &pf->steps);
		brlock_unlock(&m->mmu_lock);
		if (rc == RET_PF_EXCLUSIVE) {
			/* Counted as if it had gone exclusive first, as under the big lock. */
			pf->steps = steps0;
			req.exclusive = true;
			goto relock;
		}
		/* After the leaf is writable, as the fast path: see there. */
		if (rc >= 0 && req.writable_now && dirty_mode(t) == TDP_DIRTY_WRPROT)
			slot_mark_dirty(fi.slot, f->gfn);
		vmmu_rcu_read_unlock();
		if (rc == RET_PF_RETRY)
			sched_yield();
		return rc;
	}
}

/*
 * EPT misconfiguration / NPF with RSVD: the hardware met a reserved entry, which only an MMIO
 * spte is. Current generation: the access is MMIO (KVM's fast MMIO path: no slot lookup, no
 * lock, not counted as pf_taken), or, for a guest table access, the native #PF. Stale: the
 * ordinary page fault, which replaces it.
 */
static int tdp_mmio_fault(struct tdp_mmu *t, struct tdp_fault *f)
{
	struct mmu *m = &t->head;
	struct tdp_iter it;
	uint64_t spte, gen;

	vmmu_rcu_read_lock();
	tdp_walk_to(t, f->gfn, &it, &f->pf->steps);
	spte = it.old_spte;
	gen = memslots_generation(m->env.slots);
	if (t->ctx.fmt == TDP_EPT && !is_mmio_spte(spte) && tdp_is_present(&t->ctx, spte) &&
	    tdp_ept_misconfigured(&t->ctx, spte, it.level)) {
		vmmu_rcu_read_unlock();
		return -EIO;    /* an entry this MMU never makes: a bug, not the guest's doing */
	}
	vmmu_rcu_read_unlock();
	if (f->table == TABLE_UNKNOWN)
		f->table = is_final_access(f) ? TABLE_NO : TABLE_YES;
	if (is_mmio_spte(spte) && mmio_spte_current(spte, gen)) {
		f->pf->mmio_fast = true;
		return tdp_no_memory(f, false);
	}
	/* A stale MMIO spte (a memslot changed since), or one gone meanwhile: an ordinary fault
	 * replaces it (KVM: handle_mmio_page_fault says RET_PF_INVALID, then the page fault). */
	return tdp_handle_violation(t, f);
}

/* ops->page_fault: an EPT violation or misconfiguration, or an NPF. */
VMMU_HOT
static int tdp_page_fault(struct mmu_page_fault *pf)
{
	struct tdp_mmu *t = to_tdp(pf->mmu);
	const struct hw_exit *e = pf->e;
	const bool ept = t->ctx.fmt == TDP_EPT;
	struct tdp_fault f = { .pf = pf };

	pf->gfn = e->gpa >> VMMU_PAGE_SHIFT;
	f.gfn = pf->gfn;
	/* The tables reach 2^(12 + 9 * levels), beyond any gpa the guest's MAXPHYADDR allows. */
	if (e->gpa >> (12 + 9 * t->ctx.levels))
		return -EFAULT;
	switch (e->reason) {
	case VMMU_EXIT_EPT_VIOLATION:
		if (!ept)
			return -EINVAL;
		pf->write = e->qual & EPT_QUAL_WRITE;
		f.table = ((e->qual & EPT_QUAL_GVA_VALID) && !(e->qual & EPT_QUAL_GVA_TRANSLATED))
			  ? TABLE_YES : TABLE_NO;
		return tdp_handle_violation(t, &f);
	case VMMU_EXIT_EPT_MISCONFIG:
		if (!ept)
			return -EINVAL;
		f.table = TABLE_UNKNOWN;
		return tdp_mmio_fault(t, &f);
	case VMMU_EXIT_NPF:
		if (ept)
			return -EINVAL;
		pf->write = e->qual & PFERR_WRITE;
		f.table = (e->qual & NPF_INFO_TABLE) ? TABLE_YES : TABLE_NO;
		if (e->qual & PFERR_RSVD)
			return tdp_mmio_fault(t, &f);
		return tdp_handle_violation(t, &f);
	default:
		return -EINVAL; /* #PF, CR3 and INVLPG are not intercepted under nested paging */
	}
}

/* ---- lifecycle ---- */

static int tdp_create(const struct mmu_env *env, struct mmu **out)
{
	struct tdp_mmu *t;
	int rc;

	if (env->mode != VMMU_MMU_EPT && env->mode != VMMU_MMU_NPT)
		return -EINVAL;
	t = host_zalloc_lines(sizeof(*t));
	if (!t)
		return -ENOMEM;
	rc = mmu_init(&t->head, env);
	if (rc)
		goto out_free;
	t->ctx = (struct tdp_ctx){
		.fmt = env->mode == VMMU_MMU_EPT ? TDP_EPT : TDP_NPT,
		/* 4 levels reach 48 bits of gpa; a wider guest MAXPHYADDR needs 5. */
		.levels = env->cpu.maxphyaddr > 48 ? 5 : 4,
		.ad = true,
		.has_1g = cpu_has(&env->cpu, CPU_FEAT_1G),
		.maxphyaddr = env->cpu.maxphyaddr,
		.arena = env->arena,
	};
	rc = tdp_alloc_root(&t->ctx);
	if (rc)
		goto out_lock;
	mmu_stat_inc(&t->head, tdp_pages);
	/* NPT's MMIO sptes need bit 51 reserved, so only below MAXPHYADDR 52; else every MMIO
	 * access takes the slow path (as KVM turns MMIO caching off). */
	spte_fmt_init(&t->head.fmt, t->ctx.fmt == TDP_EPT ? SPTE_FMT_EPT : SPTE_FMT_NPT,
		      t->ctx.fmt == TDP_EPT || t->ctx.maxphyaddr < 52);
	t->dirty_mode = tdp_default_dirty_mode;
	t->tables_gen = 1;      /* a zeroed walk cache entry (generation 0) is never current */
	mmu_notifier_register(&t->head);
	memslots_set_ops(env->slots, &tdp_memslots_ops, t);
	*out = &t->head;
	return 0;

out_lock:
	mmu_fini(&t->head);
out_free:
	free(t);
	return rc;
}

/* Tear everything down: no vCPU may run any more (vm/ destroys them first). */
static void tdp_destroy(struct mmu *m)
{
	struct tdp_mmu *t = to_tdp(m);

	memslots_set_ops(m->env.slots, NULL, NULL);
	mmu_notifier_unregister(m);
	brlock_write(&m->mmu_lock);
	tdp_zap_range(t, 0, 1ULL << (9 * t->ctx.levels), true, NULL);
	brlock_unlock(&m->mmu_lock);
	/* The tables queued above are freed before the MMU struct: the callbacks read it. */
	vmmu_rcu_barrier();
	host_frame_put(t->ctx.arena, t->ctx.root >> HOST_PAGE_SHIFT, HOST_ORDER_4K);
	mmu_fini(m);
	free(t);
}

static int tdp_vcpu_init(struct mmu_vcpu *mv)
{
	struct tdp_mmu *t = to_tdp(mv->mmu);
	/* Nested paging: #PF, CR3 loads, INVLPG and INVPCID are the guest's own business. */
	struct exit_controls ctl = { .host = t->head.env.host };

	cpu_set_exit_controls(mv->cpu, &ctl);
	cpu_set_tdp(mv->cpu, &t->ctx);
	cpu_set_tdp_gen(mv->cpu, &t->tables_gen);
	mv->priv = NULL;
	return 0;
}

static void tdp_vcpu_destroy(struct mmu_vcpu *mv)
{
}

const struct mmu_ops tdp_mmu_ops = {
	MMU_MODE_OPS(tdp),
	.age_shared = true,
};
