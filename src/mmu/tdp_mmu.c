/* SPDX-License-Identifier: MIT */
/*
 * The hard MMU (DESIGN.md layer 5): EPT (--mmu ept) and NPT (--mmu npt) direct tables, one
 * implementation over both formats (tdp_mmu.h has the spte formats, invariants and locking).
 * This file: create/destroy, vCPU setup, and the VM exits: EPT violation / NPF (the page fault),
 * EPT misconfiguration / NPF with RSVD (MMIO sptes), and the lockless fast page fault.
 *
 * A fault, in order (KVM's kvm_tdp_mmu_map with kvm_faultin_pfn before it):
 *   1. write to a leaf write-protected for dirty logging: the fast path (no lock) if enabled;
 *   2. read section: generation, gfn -> slot (none: MMIO spte, MMIO exit), invalidate_seq;
 *   3. slot -> hva -> pfn, faulting the host page in (no mmu_lock held: the host mm's lock
 *      comes before mmu_lock, and notifiers take mmu_lock under it);
 *   4. mmu_lock shared; retry if an MMU-notifier invalidation raced with 3;
 *   5. walk from the root, linking missing tables by cmpxchg, and cmpxchg the leaf in at the
 *      largest level the host mapping and the slot allow (a table already there: 4K);
 *   6. unlock; mark the page dirty if it became writable in a logging slot; leave the section.
 * Guest page-table accesses the hardware cannot complete (their gpa is in no slot, has no host
 * memory, or is a read-only slot's and the walk writes A/D) are walked in software, as KVM's
 * emulator would, and the guest gets the #PF a native walk gives.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

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

struct tdp_fault {
	gpa_t gpa;
	gfn_t gfn;
	bool write;                     /* the nested access was a write */
	enum tdp_table_access table;
	uint64_t steps;                 /* handler steps for the cost model */
};

enum map_result {
	MAP_FIXED,          /* a leaf was installed or made writable */
	MAP_SPURIOUS,       /* the entry already allowed the access */
	MAP_RETRY,          /* something in the way goes away soon (a memslot hook is running) */
};

/* ---- small helpers shared with the other files ---- */

void tdp_account_leaf(struct tdp_mmu *t, int level, int64_t delta)
{
	switch (level) {
	case 1: mmu_stat_add(&t->head, pages_4k, (uint64_t)delta); break;
	case 2: mmu_stat_add(&t->head, pages_2m, (uint64_t)delta); break;
	case 3: mmu_stat_add(&t->head, pages_1g, (uint64_t)delta); break;
	}
}

void tdp_flush_remote(struct tdp_mmu *t)
{
	mmu_stat_inc(&t->head, remote_tlb_flush);
	t->head.env.flush_remote_tlbs(t->head.env.opaque);
}

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
static int tdp_emulate_walk(struct tdp_mmu *t, struct mmu_vcpu *mv, const struct hw_exit *e,
			    bool ro_table, struct mmu_outcome *out)
{
	struct walk_result r;

	switch (paging_walk(&mv->cpu->guest, &slots_gmem_ops, t->head.env.slots, e->gva,
			    exit_access(e), &r)) {
	case WALK_PF:
		out->action = MMU_INJECT_PF;
		out->pf_ec = r.ec;
		out->pf_addr = r.addr;
		return 0;
	case WALK_ABORT:
		return r.abort_err ? r.abort_err : -EIO;
	case WALK_GP:
		return -EIO;    /* the hardware checked the address before it walked */
	case WALK_OK:
		break;
	}
	if (ro_table)
		return -EFAULT;
	out->action = MMU_RETRY;
	return 0;
}

/* Is @gfn the final gpa of the access that exited (not one of its guest table entries)? A
 * translate-only software walk tells, for the exits that do not say (EPT misconfiguration). */
static bool is_final_access(struct tdp_mmu *t, struct mmu_vcpu *mv, const struct hw_exit *e,
			    gfn_t gfn)
{
	struct walk_result r;

	if (paging_walk(&mv->cpu->guest, &slots_gmem_ops, t->head.env.slots, e->gva,
			exit_access(e) | WALK_NO_AD, &r) != WALK_OK)
		return false;
	return (r.gpa >> VMMU_PAGE_SHIFT) == gfn;
}

/* ---- walking and installing ---- */

/*
 * The lowest entry on @gfn's path: the level-1 entry, or the first non-present or leaf entry
 * above it. Lockless: inside an RCU read section (tables met stay allocated until it ends).
 */
static uint64_t *tdp_lookup(const struct tdp_mmu *t, gfn_t gfn, int *level, uint64_t *spte)
{
	uint64_t *table = spte_table(t->ctx.arena, t->ctx.root);

	for (int l = t->ctx.levels;; l--) {
		uint64_t *sptep = &table[spte_index(gfn, l)];
		uint64_t s = spte_read(sptep);

		if (l == 1 || !spte_is_present(t, s) || spte_is_leaf(s, l)) {
			*level = l;
			*spte = s;
			return sptep;
		}
		table = spte_child(t, s);
	}
}

/*
 * Link a zeroed table into *@sptep, which held @old (not present). mmu_lock held shared.
 * Ordering: host_frame_alloc() hands back zeroed memory, and the seq-cst cmpxchg publishes it, so
 * a walker whose acquire load sees the entry sees an empty table. A lost cmpxchg (another vCPU
 * linked one first) frees our frame and leaves *@sptep as the winner made it. Returns the entry
 * now there in *@now, or -ENOMEM.
 */
static int link_table(struct tdp_mmu *t, uint64_t *sptep, uint64_t old, uint64_t *now)
{
	pfn_t pfn;
	uint64_t val;
	int rc = host_frame_alloc(t->ctx.arena, HOST_ORDER_4K, &pfn);

	if (rc)
		return rc;
	val = make_table_spte(t, pfn);
	if (spte_cmpxchg(sptep, &old, val)) {
		mmu_stat_inc(&t->head, tdp_pages);
		*now = val;
		return 0;
	}
	host_frame_put(t->ctx.arena, pfn, HOST_ORDER_4K);
	*now = old;
	return 0;
}

/* What a fault wants installed. */
struct map_req {
	gfn_t gfn;
	pfn_t pfn;             /* the 4K frame backing gfn */
	int level;             /* the largest level the host mapping and the slot allow */
	bool write;            /* the fault was a write */
	bool writable;         /* the leaf may be writable now */
	bool mmu_writable;     /* the slot allows writes */
	bool dirty;            /* set D (a write is about to happen and D bits are not logging) */
};

/*
 * Install the leaf @r asks for (step 5 of the file comment). mmu_lock held shared. Every change
 * is one cmpxchg; a lost one leaves the entry as the other writer made it, and the loop reads it
 * again and decides again. *@writable_now: the leaf ends up writable through this call.
 */
static int tdp_install_leaf(struct tdp_mmu *t, const struct map_req *r, uint64_t *steps,
			    bool *writable_now, enum map_result *res)
{
	uint64_t *table = spte_table(t->ctx.arena, t->ctx.root);
	int level = t->ctx.levels, goal = r->level;

	*writable_now = false;
	for (;;) {
		uint64_t *sptep = &table[spte_index(r->gfn, level)];
		uint64_t old = spte_read(sptep), val;
		pfn_t lpfn;
		int rc;

		(*steps)++;
		if (level > goal) {
			if (!spte_is_present(t, old)) {
				rc = link_table(t, sptep, old, &val);
				if (rc)
					return rc;
				(*steps)++;
				continue;       /* read it again: ours or the winner's */
			}
			if (spte_is_leaf(old, level)) {
				/* A huge leaf already maps the gfn (the slot's flags changed and its
				 * hook has not split it yet). It serves reads and, if writable,
				 * writes; anything else waits for the hook. */
				*res = (!r->write || (old & SPTE_W_MASK)) ? MAP_SPURIOUS : MAP_RETRY;
				return 0;
			}
			table = spte_child(t, old);
			level--;
			continue;
		}
		if (spte_is_present(t, old) && !spte_is_leaf(old, level)) {
			/* A table where a huge leaf could go: map 4K under it. Replacing a live
			 * table takes the exclusive lock (huge pages come back when dirty logging
			 * stops; docs/hard-mmu.md). */
			goal--;
			table = spte_child(t, old);
			level--;
			continue;
		}
		lpfn = r->pfn & ~(level_pages(level) - 1);
		if (!spte_is_present(t, old)) {
			/* Empty, or a stale MMIO spte (the gfn is RAM now). */
			val = make_leaf_spte(t, lpfn, level, r->writable, r->mmu_writable, r->dirty);
			if (!spte_cmpxchg(sptep, &old, val))
				continue;
			(*steps)++;
			tdp_account_leaf(t, level, 1);
			*writable_now = r->writable;
			*res = MAP_FIXED;
			return 0;
		}
		if (spte_to_pfn(old) != lpfn) {
			/* Never expected: notifiers zap a leaf before its hva changes and the
			 * invalidation check guards our pfn. Replace it and flush, as KVM would. */
			val = make_leaf_spte(t, lpfn, level, r->writable, r->mmu_writable, r->dirty);
			if (!spte_cmpxchg(sptep, &old, val))
				continue;
			(*steps)++;
			tdp_flush_remote(t);
			*writable_now = r->writable;
			*res = MAP_FIXED;
			return 0;
		}
		if (!r->write || (old & SPTE_W_MASK) || !r->writable) {
			*res = MAP_SPURIOUS;    /* another vCPU fixed it first */
			return 0;
		}
		/* A write to a leaf write-protected for dirty logging: W back (the slow path of
		 * the fast page fault). */
		val = old | SPTE_W_MASK | SPTE_MMU_WRITABLE | t->acc_mask;
		if (r->dirty)
			val |= t->dirty_mask;
		if (!spte_cmpxchg(sptep, &old, val))
			continue;
		(*steps)++;
		*writable_now = true;
		*res = MAP_FIXED;
		return 0;
	}
}

/*
 * An MMIO spte for @gfn tagged with generation @gen (even, read before the slot lookup that
 * found nothing, in the same read section). mmu_lock held shared. Only over an empty or stale
 * MMIO entry at level 1; a leaf in the way (a slot being deleted whose hook has not run yet)
 * stays. *@installed: whether it went in. 0 or -ENOMEM.
 */
static int tdp_install_mmio(struct tdp_mmu *t, gfn_t gfn, uint64_t gen, uint64_t *steps,
			    bool *installed)
{
	uint64_t *table = spte_table(t->ctx.arena, t->ctx.root);
	const uint64_t val = make_mmio_spte(t, gen);

	*installed = false;
	for (int level = t->ctx.levels;;) {
		uint64_t *sptep = &table[spte_index(gfn, level)];
		uint64_t old = spte_read(sptep), now;
		int rc;

		(*steps)++;
		if (level > 1) {
			if (spte_is_present(t, old) && spte_is_leaf(old, level))
				return 0;
			if (!spte_is_present(t, old)) {
				rc = link_table(t, sptep, old, &now);
				if (rc)
					return rc;
				continue;
			}
			table = spte_child(t, old);
			level--;
			continue;
		}
		if (spte_is_present(t, old) || old == val)
			return 0;
		if (spte_cmpxchg(sptep, &old, val)) {
			*installed = true;
			return 0;
		}
	}
}

/* The largest level a leaf for @gfn may have: 2M when a 2M host page backs it, the slot's gpa
 * and hva are congruent modulo 2M, the whole 2M gpa range lies in the slot, and the slot does not
 * log dirty pages. 1G never: the host makes 4K and 2M mappings only (docs/hard-mmu.md). */
static int max_level(const struct memslot *slot, gfn_t gfn, bool huge)
{
	const gfn_t base = gfn & ~511ULL;

	if (!huge || slot_logs_dirty(slot))
		return 1;
	if ((slot->base_gfn ^ (slot->userspace_addr >> VMMU_PAGE_SHIFT)) & 511)
		return 1;
	if (base < slot->base_gfn || base + 512 > slot_end_gfn(slot))
		return 1;
	return 2;
}

/*
 * The fast page fault (KVM's fast_page_fault): a write to a level-1 leaf that is write-protected
 * only for dirty logging (MMU_WRITABLE set, W clear) gets W back with one cmpxchg, under no lock
 * but an RCU read section (the tables walked stay allocated until it ends). The fix itself, and
 * its ordering against a harvest, is mmu_fast_fix_write's, shared with the soft MMU.
 *
 * A lost cmpxchg leaves the leaf as the other writer (the hardware's A/D, a zap, a protect) made
 * it; the slow path decides then. Returns 1 fixed, 2 spurious (W already set), 0 not handled.
 */
static int tdp_fast_page_fault(struct tdp_mmu *t, struct mmu_vcpu *mv, struct tdp_fault *f)
{
	const struct memslot *slot;
	uint64_t old, set, *sptep;
	int level, ret = 0;

	memslots_read_lock();
	sptep = tdp_lookup(t, f->gfn, &level, &old);
	f->steps += (uint64_t)(t->ctx.levels - level + 1);
	if (!spte_is_present(t, old) || !spte_is_leaf(old, level))
		goto out;
	if (old & SPTE_W_MASK) {
		ret = 2;
		goto out;
	}
	if (level != 1 || !(old & SPTE_MMU_WRITABLE))
		goto out;
	set = SPTE_W_MASK | t->acc_mask;
	if (dirty_mode(t) == TDP_DIRTY_WRPROT)
		set |= t->dirty_mask;
	/* D-bit logging marks pages from the D bits at harvest, not here. */
	slot = dirty_mode(t) == TDP_DIRTY_WRPROT ?
	       gfn_to_memslot_cached(t->head.env.slots, &mv->slots, f->gfn) : NULL;
	if (!mmu_fast_fix_write(sptep, old, set, slot, f->gfn))
		goto out;
	f->steps++;
	ret = 1;
out:
	memslots_read_unlock();
	return ret;
}

static void mmio_exit(const struct tdp_fault *f, struct mmu_outcome *out)
{
	out->action = MMU_MMIO;
	out->mmio_gpa = f->gpa;
}

/* EPT violation / NPF on a non-reserved entry: the page fault of the file comment. */
static int tdp_page_fault(struct tdp_mmu *t, struct mmu_vcpu *mv, const struct hw_exit *e,
			  struct tdp_fault *f, struct mmu_outcome *out)
{
	struct mmu *m = &t->head;
	struct memslots *ms = m->env.slots;

	mmu_stat_inc(m, pf_taken);
	if (f->write && (m->env.opts & MMU_OPT_FASTPF)) {
		int fast = tdp_fast_page_fault(t, mv, f);

		if (fast) {
			if (fast == 1)
				mmu_stat_inc(m, pf_fast);
			else
				mmu_stat_inc(m, pf_spurious);
			out->action = MMU_RETRY;
			return 0;
		}
	}

	for (unsigned attempt = 1;; attempt++) {
		const struct memslot *slot;
		struct map_req req;
		enum map_result res;
		bool huge = false, writable_now;
		uint64_t gen, seq;
		pfn_t pfn;
		hva_t hva;
		int rc;

		memslots_read_lock();
		gen = memslots_generation(ms);
		slot = gfn_to_memslot_cached(ms, &mv->slots, f->gfn);
		if (!slot) {
			/* MMIO. A guest table there is no memory to the guest: a native #PF. */
			bool installed = false;

			if (f->table == TABLE_YES) {
				memslots_read_unlock();
				return tdp_emulate_walk(t, mv, e, false, out);
			}
			rc = 0;
			if (t->mmio_caching && !memslot_gen_in_progress(gen)) {
				pthread_rwlock_rdlock(&m->mmu_lock);
				rc = tdp_install_mmio(t, f->gfn, gen, &f->steps, &installed);
				pthread_rwlock_unlock(&m->mmu_lock);
			}
			memslots_read_unlock();
			if (installed)
				mmu_stat_inc(m, pf_mmio_spte_created);
			if (!rc)
				mmio_exit(f, out);
			return rc;
		}
		if (f->write && slot_is_readonly(slot)) {
			/* KVM makes a write to a read-only slot an MMIO exit. */
			memslots_read_unlock();
			if (f->table == TABLE_YES)
				return tdp_emulate_walk(t, mv, e, true, out);
			mmio_exit(f, out);
			return 0;
		}
		hva = slot_gfn_to_hva(slot, f->gfn);
		seq = __atomic_load_n(&m->invalidate_seq, __ATOMIC_ACQUIRE);
		rc = slot_gfn_to_pfn(ms, slot, f->gfn, f->write, &pfn, &huge);
		f->steps += mmu_pfn_lookup_steps(huge);
		if (rc == -EFAULT) {
			/* No host memory behind the slot's hva (munmapped): no memory, as native mode
			 * sees it: an MMIO exit, or a #PF for a guest table there. No spte: a new
			 * mapping of the hva must be found by the next fault. */
			memslots_read_unlock();
			if (f->table == TABLE_YES)
				return tdp_emulate_walk(t, mv, e, false, out);
			mmio_exit(f, out);
			return 0;
		}
		if (rc) {
			memslots_read_unlock();
			return rc;
		}

		req = (struct map_req){
			.gfn = f->gfn, .pfn = pfn, .level = max_level(slot, f->gfn, huge),
			.write = f->write, .mmu_writable = !slot_is_readonly(slot),
		};
		if (slot_is_readonly(slot)) {
			req.writable = false;
		} else if (slot_logs_dirty(slot) && dirty_mode(t) == TDP_DIRTY_WRPROT) {
			/* A read maps read-only: the first write is logged. */
			req.writable = f->write;
			req.dirty = f->write;
		} else {
			/* D-bit logging leaves D clear: the hardware sets it on the write. */
			req.writable = true;
			req.dirty = f->write && !slot_logs_dirty(slot);
		}

		pthread_rwlock_rdlock(&m->mmu_lock);
		if (mmu_invalidate_retry(m, seq, hva)) {
			/* The pfn may be gone already: look it up again once the host is done. */
			pthread_rwlock_unlock(&m->mmu_lock);
			memslots_read_unlock();
			if (attempt >= TDP_FAULT_ATTEMPTS) {
				out->action = MMU_RETRY;
				return 0;
			}
			sched_yield();
			continue;
		}
		rc = tdp_install_leaf(t, &req, &f->steps, &writable_now, &res);
		pthread_rwlock_unlock(&m->mmu_lock);
		/* After the leaf is writable, as the fast path: see there. */
		if (!rc && writable_now && dirty_mode(t) == TDP_DIRTY_WRPROT)
			slot_mark_dirty(slot, f->gfn);
		memslots_read_unlock();
		if (rc)
			return rc;
		if (res == MAP_FIXED)
			mmu_stat_inc(m, pf_fixed);
		else if (res == MAP_SPURIOUS)
			mmu_stat_inc(m, pf_spurious);
		else
			sched_yield();
		out->action = MMU_RETRY;
		return 0;
	}
}

/*
 * EPT misconfiguration / NPF with RSVD: the hardware met a reserved entry, which only an MMIO
 * spte is. Current generation: the access is MMIO (KVM's fast MMIO path: no slot lookup, no
 * lock), or, for a guest table access, the native #PF. Stale: zap it and retry, so the next
 * exit is an ordinary violation that looks the gfn up again.
 */
static int tdp_mmio_fault(struct tdp_mmu *t, struct mmu_vcpu *mv, const struct hw_exit *e,
			  struct tdp_fault *f, struct mmu_outcome *out)
{
	struct mmu *m = &t->head;
	uint64_t spte, gen, *sptep;
	int level;

	memslots_read_lock();
	sptep = tdp_lookup(t, f->gfn, &level, &spte);
	f->steps += (uint64_t)(t->ctx.levels - level + 1);
	gen = memslots_generation(m->env.slots);
	if (spte_is_mmio(t, spte)) {
		if (!memslot_gen_in_progress(gen) &&
		    (spte & SPTE_MMIO_GEN_MASK) == mmio_gen_tag(gen)) {
			memslots_read_unlock();
			if (f->table == TABLE_YES ||
			    (f->table == TABLE_UNKNOWN && !is_final_access(t, mv, e, f->gfn)))
				return tdp_emulate_walk(t, mv, e, false, out);
			mmio_exit(f, out);
			return 0;
		}
		/* A failed cmpxchg: someone replaced it already, which is all we wanted. */
		pthread_rwlock_rdlock(&m->mmu_lock);
		spte_cmpxchg(sptep, &spte, 0);
		pthread_rwlock_unlock(&m->mmu_lock);
		f->steps++;
	} else if (t->ctx.fmt == TDP_EPT && tdp_is_present(&t->ctx, spte) &&
		   tdp_ept_misconfigured(&t->ctx, spte, level)) {
		memslots_read_unlock();
		return -EIO;    /* an entry this MMU never makes: a bug, not the guest's doing */
	}
	memslots_read_unlock();
	out->action = MMU_RETRY;
	return 0;
}

static int tdp_handle_exit(struct mmu_vcpu *mv, const struct hw_exit *e, struct mmu_outcome *out)
{
	struct tdp_mmu *t = to_tdp(mv->mmu);
	struct tdp_fault f = { .gpa = e->gpa, .gfn = e->gpa >> VMMU_PAGE_SHIFT };
	const bool ept = t->ctx.fmt == TDP_EPT;
	int rc;

	/* The tables reach 2^(12 + 9 * levels), beyond any gpa the guest's MAXPHYADDR allows. */
	if (e->gpa >> (12 + 9 * t->ctx.levels))
		return -EFAULT;
	switch (e->reason) {
	case VMMU_EXIT_EPT_VIOLATION:
		if (!ept)
			return -EINVAL;
		f.write = e->qual & EPT_QUAL_WRITE;
		f.table = ((e->qual & EPT_QUAL_GVA_VALID) && !(e->qual & EPT_QUAL_GVA_TRANSLATED))
			  ? TABLE_YES : TABLE_NO;
		rc = tdp_page_fault(t, mv, e, &f, out);
		break;
	case VMMU_EXIT_EPT_MISCONFIG:
		if (!ept)
			return -EINVAL;
		f.table = TABLE_UNKNOWN;
		rc = tdp_mmio_fault(t, mv, e, &f, out);
		break;
	case VMMU_EXIT_NPF:
		if (ept)
			return -EINVAL;
		f.write = e->qual & PFERR_WRITE;
		f.table = (e->qual & NPF_INFO_TABLE) ? TABLE_YES : TABLE_NO;
		if (e->qual & PFERR_RSVD)
			rc = tdp_mmio_fault(t, mv, e, &f, out);
		else
			rc = tdp_page_fault(t, mv, e, &f, out);
		break;
	default:
		return -EINVAL; /* #PF, CR3 and INVLPG are not intercepted under nested paging */
	}
	cpu_account_mmu_steps(mv->cpu, f.steps);
	mmu_stat_add(&t->head, mmu_steps, f.steps);
	return rc;
}

/* ---- lifecycle ---- */

static int tdp_create(const struct mmu_env *env, struct mmu **out)
{
	struct tdp_mmu *t;
	int rc;

	if (env->mode != VMMU_MMU_EPT && env->mode != VMMU_MMU_NPT)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->head.env = *env;
	rc = -pthread_rwlock_init(&t->head.mmu_lock, NULL);
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
	if (t->ctx.fmt == TDP_EPT) {
		t->acc_mask = EPT_ACCESSED_MASK;
		t->dirty_mask = EPT_DIRTY_MASK;
		t->mmio_caching = true;
	} else {
		t->acc_mask = PT_ACCESSED_MASK;
		t->dirty_mask = PT_DIRTY_MASK;
		/* Bit 51 is reserved only below MAXPHYADDR 52; else every MMIO access takes the
		 * slow path (as KVM turns MMIO caching off). */
		t->mmio_caching = t->ctx.maxphyaddr < 52;
	}
	t->dirty_mode = tdp_default_dirty_mode;
	t->mn.ops = &tdp_mn_ops;
	host_mmu_notifier_register(env->mm, &t->mn);
	memslots_set_ops(env->slots, &tdp_memslots_ops, t);
	*out = &t->head;
	return 0;

out_lock:
	pthread_rwlock_destroy(&t->head.mmu_lock);
out_free:
	free(t);
	return rc;
}

/* Tear everything down: no vCPU may run any more (vm/ destroys them first). */
static void tdp_destroy(struct mmu *m)
{
	struct tdp_mmu *t = to_tdp(m);
	struct tdp_freelist fl = { 0 };

	memslots_set_ops(m->env.slots, NULL, NULL);
	host_mmu_notifier_unregister(m->env.mm, &t->mn);
	pthread_rwlock_wrlock(&m->mmu_lock);
	tdp_zap_range(t, 0, 1ULL << (9 * t->ctx.levels), true, &fl, NULL);
	pthread_rwlock_unlock(&m->mmu_lock);
	tdp_mmu_free_tables(t, &fl);
	host_frame_put(t->ctx.arena, t->ctx.root >> HOST_PAGE_SHIFT, HOST_ORDER_4K);
	pthread_rwlock_destroy(&m->mmu_lock);
	free(t);
}

static int tdp_vcpu_init(struct mmu_vcpu *mv)
{
	struct tdp_mmu *t = to_tdp(mv->mmu);
	/* Nested paging: #PF, CR3 loads, INVLPG and INVPCID are the guest's own business. */
	struct exit_controls ctl = { .host = t->head.env.host };

	cpu_set_exit_controls(mv->cpu, &ctl);
	cpu_set_tdp(mv->cpu, &t->ctx);
	mv->priv = NULL;
	return 0;
}

static void tdp_vcpu_destroy(struct mmu_vcpu *mv)
{
}

const struct mmu_ops tdp_mmu_ops = {
	.name = "tdp",
	.create = tdp_create,
	.destroy = tdp_destroy,
	.vcpu_init = tdp_vcpu_init,
	.vcpu_destroy = tdp_vcpu_destroy,
	.handle_exit = tdp_handle_exit,
	.audit = tdp_mmu_audit,
};
