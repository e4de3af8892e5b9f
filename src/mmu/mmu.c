/* SPDX-License-Identifier: MIT */
/*
 * The MMU core (mmu_internal.h): dispatch to the mode's ops table (as bhyve puts Intel and AMD
 * behind one table), and what every mode shares: the page fault's common steps, MMU notifiers,
 * remote TLB flushes and the deferred free of table frames.
 *
 * Locking: see mmu.h. Notifiers run with the host mm's lock held and take mmu_lock under it;
 * they never wait for a grace period (frees go through call_rcu). mmu_destroy() runs with no
 * vCPU left and waits for every queued free (rcu_barrier).
 */
#include <errno.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "mmu/mmu_internal.h"

static const struct mmu_ops *ops_for(enum vmmu_mmu mode)
{
	switch (mode) {
	case VMMU_MMU_EPT:
	case VMMU_MMU_NPT:
		return tdp_mmu_ops.create ? &tdp_mmu_ops : NULL;
	case VMMU_MMU_SHADOW:
		return shadow_mmu_ops.create ? &shadow_mmu_ops : NULL;
	case VMMU_MMU_NATIVE:
		break;
	}
	return NULL;
}

bool mmu_mode_available(enum vmmu_mmu mode)
{
	return ops_for(mode) != NULL;
}

int mmu_create(const struct mmu_env *env, struct mmu **out)
{
	const struct mmu_ops *ops;
	struct mmu *m;
	int rc;

	if (!env || !out)
		return -EINVAL;
	ops = ops_for(env->mode);
	if (!ops)
		return -EOPNOTSUPP;
	rc = ops->create(env, &m);
	if (rc)
		return rc;
	m->ops = ops;
	*out = m;
	return 0;
}

__thread struct mmu_vcpu *mmu_vcpu_self __attribute__((tls_model("initial-exec")));

int mmu_init(struct mmu *m, const struct mmu_env *env)
{
	int rc;

	m->env = *env;
	m->vcpus = NULL;
	rc = brlock_init(&m->mmu_lock, BRLOCK_MMU);
	if (!rc)
		pthread_mutex_init(&m->vcpus_lock, NULL);
	return rc;
}

void mmu_lock_wait(struct mmu *m, bool write)
{
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	if (write)
		brlock_write(&m->mmu_lock);
	else
		brlock_read(&m->mmu_lock);
	clock_gettime(CLOCK_MONOTONIC, &b);
	mmu_stat_add(m, mmu_lock_wait_ns,
		     (uint64_t)((b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec)));
}

void mmu_fini(struct mmu *m)
{
	pthread_mutex_destroy(&m->vcpus_lock);
	brlock_destroy(&m->mmu_lock);
}

void mmu_destroy(struct mmu *m)
{
	if (!m)
		return;
	/* The mode waits for its queued frees (rcu_barrier) before it frees its struct: the
	 * callbacks read it, and the VM's arena goes next. */
	m->ops->destroy(m);
}

/* @dst += @src field by field, each of @src's read atomically (its writer may be counting);
 * @atomic: @dst is shared too. */
static void stats_add(struct mmu_stats *dst, const struct mmu_stats *src, bool atomic)
{
	uint64_t *d = (uint64_t *)dst;
	const uint64_t *s = (const uint64_t *)src;

	for (size_t i = 0; i < sizeof(*dst) / sizeof(uint64_t); i++) {
		uint64_t v = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
		if (atomic)
			__atomic_add_fetch(&d[i], v, __ATOMIC_RELAXED);
		else
			d[i] += v;
	}
}

int mmu_vcpu_init(struct mmu *m, struct mmu_vcpu *mv, struct cpu *c)
{
	int rc;

	memset(mv, 0, sizeof(*mv));
	mv->mmu = m;
	mv->cpu = c;
	slot_cache_init(&mv->slots);
	rc = m->ops->vcpu_init(mv);
	if (rc) {
		mv->mmu = NULL;
		return rc;
	}
	pthread_mutex_lock(&m->vcpus_lock);
	mv->next = m->vcpus;
	m->vcpus = mv;
	pthread_mutex_unlock(&m->vcpus_lock);
	return 0;
}

void mmu_vcpu_destroy(struct mmu_vcpu *mv)
{
	struct mmu *m = mv->mmu;

	if (!m)
		return;
	m->ops->vcpu_destroy(mv);
	/* Its counts go to the shards: the VM's sums outlive the vCPU. */
	pthread_mutex_lock(&m->vcpus_lock);
	for (struct mmu_vcpu **pp = &m->vcpus; *pp; pp = &(*pp)->next) {
		if (*pp == mv) {
			*pp = mv->next;
			break;
		}
	}
	stats_add(&m->st[0].s, &mv->st, true);
	m->changes_gone += __atomic_load_n(&mv->changes, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&m->vcpus_lock);
	mv->mmu = NULL;
}

VMMU_HOT
int mmu_handle_exit(struct mmu_vcpu *mv, const struct hw_exit *e, struct mmu_outcome *out)
{
	struct mmu_page_fault f = { .mmu = mv->mmu, .mv = mv, .e = e };
	struct mmu_vcpu *outer = mmu_vcpu_self;
	int rc;

	memset(out, 0, sizeof(*out));
	mmu_vcpu_self = mv;
	rc = mmu_pf_finish(&f, mmu_page_fault(&f), out);
	mmu_vcpu_self = outer;
	return rc;
}

VMMU_HOT
int mmu_page_fault(struct mmu_page_fault *f)
{
	return f->mmu->ops->page_fault(f);
}

int mmu_guest_cr_changed(struct mmu_vcpu *mv, int cr, uint64_t old, uint64_t val)
{
	return mv->mmu->ops->cr_changed ? mv->mmu->ops->cr_changed(mv, cr, old, val) : 0;
}

int mmu_guest_invlpg(struct mmu_vcpu *mv, gva_t gva)
{
	return mv->mmu->ops->invlpg ? mv->mmu->ops->invlpg(mv, gva) : 0;
}

int mmu_guest_invpcid(struct mmu_vcpu *mv, unsigned type, uint16_t pcid, gva_t gva)
{
	return mv->mmu->ops->invpcid ? mv->mmu->ops->invpcid(mv, type, pcid, gva) : 0;
}

void mmu_guest_written(struct mmu *m, gpa_t gpa, uint64_t len)
{
	if (m->ops->guest_written)
		m->ops->guest_written(m, gpa, len);
}

uint64_t mmu_track_write(struct mmu *m, gpa_t gpa, uint32_t len)
{
	return m->ops->track_write ? m->ops->track_write(m, gpa, len) : 0;
}

void mmu_count_injected_pf(struct mmu *m)
{
	mmu_stat_inc(m, pf_guest);
}

int mmu_audit(struct mmu *m, char *why, size_t whylen)
{
	return m->ops->audit(m, why, whylen);
}

void mmu_get_stats(struct mmu *m, struct mmu_stats *st)
{
	memset(st, 0, sizeof(*st));
	/* Field by field with atomic loads: other vCPU threads may be counting. Under vcpus_lock,
	 * the shards too: a vCPU that goes meanwhile moves its counts into shard 0 under it. */
	pthread_mutex_lock(&m->vcpus_lock);
	for (unsigned k = 0; k < MMU_STAT_SHARDS; k++)
		stats_add(st, &m->st[k].s, false);
	for (const struct mmu_vcpu *v = m->vcpus; v; v = v->next)
		stats_add(st, &v->st, false);
	pthread_mutex_unlock(&m->vcpus_lock);
}

/* ---- the page fault's common steps ---- */

void mmu_fault_begin(struct mmu_page_fault *f)
{
	f->mmu_seq = __atomic_load_n(&f->mmu->invalidate_seq, __ATOMIC_ACQUIRE);
	f->mmu_gen = memslots_generation(f->mmu->env.slots);
}

bool mmu_fault_slot(struct mmu_page_fault *f, struct mmu_faultin *fi, gfn_t gfn)
{
	memset(fi, 0, sizeof(*fi));
	fi->gfn = gfn;
	fi->slot = gfn_to_memslot_cached(f->mmu->env.slots, &f->mv->slots, gfn);
	return fi->slot != NULL;
}

VMMU_HOT
int mmu_faultin_pfn(struct mmu_page_fault *f, struct mmu_faultin *fi, bool write)
{
	int rc;

	bool host_w = false;

	fi->hva = slot_gfn_to_hva(fi->slot, fi->gfn);
	rc = slot_gfn_to_pfn_prot(f->mmu->env.slots, fi->slot, fi->gfn, write, &fi->pfn,
				  &fi->host_order, &host_w);
	/* A read of a KSM page maps it read-only; the write that follows exits and breaks COW. */
	fi->map_writable = host_w && !slot_is_readonly(fi->slot);
	f->steps += mmu_pfn_lookup_steps(fi->host_order);
	if (rc == -EFAULT) {
		/* No host memory behind the hva (munmapped): the guest sees none there. No spte
		 * for it: a new mapping of the hva must be found by the next fault. */
		fi->pfn_err = -EFAULT;
		return 0;
	}
	return rc;
}

void mmu_count_pf_result(const struct mmu_page_fault *f, int ret)
{
	struct mmu *m = f->mmu;

	if (f->fast)
		mmu_stat_inc(m, pf_fast);
	if (ret == RET_PF_FIXED)
		mmu_stat_inc(m, pf_fixed);
	else if (ret == RET_PF_SPURIOUS)
		mmu_stat_inc(m, pf_spurious);
	else if (ret == RET_PF_EMULATE || (ret == RET_PF_MMIO && !f->mmio_fast))
		mmu_stat_inc(m, pf_emulate);
	else if (ret == RET_PF_INJECT)
		mmu_stat_inc(m, pf_guest);
}

int mmu_pf_finish(struct mmu_page_fault *f, int ret, struct mmu_outcome *out)
{
	cpu_account_mmu_steps(f->mv->cpu, f->steps);
	mmu_stat_add(f->mmu, mmu_steps, f->steps);
	if (ret < 0)
		return ret;
	mmu_count_pf_result(f, ret);
	switch (ret) {
	case RET_PF_MMIO:
		out->action = MMU_MMIO;
		out->mmio_gpa = f->mmio_gpa;
		out->mmio_done = f->mmio_done;
		break;
	case RET_PF_INJECT:
		out->action = MMU_INJECT_PF;
		out->pf_ec = f->pf_ec;
		out->pf_addr = f->pf_addr;
		break;
	case RET_PF_EMULATE:
		out->action = MMU_EMULATED;
		break;
	default:
		out->action = MMU_RETRY;
		break;
	}
	return 0;
}

/* ---- remote TLB flushes ---- */

void mmu_flush_remote_tlbs(struct mmu *m)
{
	if (m->env.flush_remote_tlbs && m->env.flush_remote_tlbs(m->env.opaque))
		mmu_stat_inc(m, remote_tlb_flush);
}

/* ---- deferred frees ---- */

static void free_page_rcu_cb(struct rcu_head *head)
{
	struct mmu_page_free *pf = caa_container_of(head, struct mmu_page_free, rcu);
	struct mmu *m;

	vmmu_rcu_callback_begin(head);
	m = pf->mmu;
	host_frame_set_private(m->env.arena, pf->pfn, 0);
	host_frame_put_retired(m->env.arena, pf->pfn, HOST_ORDER_4K);
	m->ops->free_page(pf);
	vmmu_rcu_callback_end();
}

void mmu_free_page_rcu(struct mmu *m, struct mmu_page_free *pf, pfn_t pfn)
{
	pf->mmu = m;
	pf->pfn = pfn;
	/* Counted free from now: host_frames does not depend on when the worker runs. */
	host_frame_retire(m->env.arena, pfn, HOST_ORDER_4K);
	vmmu_call_rcu(&pf->rcu, free_page_rcu_cb);
}

/* ---- MMU notifiers ---- */

/* The gfns of @slot whose hva lies in [start, end): [*g0, *g1). False if none. */
static bool slot_hva_range(const struct memslot *slot, hva_t start, hva_t end, gfn_t *g0,
			   gfn_t *g1)
{
	const hva_t s0 = slot->userspace_addr, s1 = s0 + (slot->npages << VMMU_PAGE_SHIFT);

	if (end <= s0 || start >= s1)
		return false;
	*g0 = slot->base_gfn + (((start > s0 ? start : s0) - s0) >> VMMU_PAGE_SHIFT);
	*g1 = slot->base_gfn + (((end < s1 ? end : s1) - s0 + VMMU_PAGE_SIZE - 1) >> VMMU_PAGE_SHIFT);
	return true;
}

/*
 * Unmap every slot's gfns whose hva is in [start, end). mmu_lock exclusive. A slot being deleted
 * or moved has left the published set before its hook zaps it, so while a memslot change is in
 * progress (odd generation, or a different one after the walk than before) everything goes: it
 * is rare, and correct. True: flush.
 */
static bool unmap_hva_range(struct mmu *m, hva_t start, hva_t end)
{
	struct memslots *ms = m->env.slots;
	const struct memslot *slot;
	struct memslot_iter si;
	bool flush = false;
	uint64_t gen;

	vmmu_rcu_read_lock();
	gen = memslots_generation(ms);
	memslots_for_each_in_gfn_range(slot, &si, ms, 0, ~0ULL) {
		gfn_t g0, g1;

		if (slot_hva_range(slot, start, end, &g0, &g1))
			flush |= m->ops->unmap_gfn_range(m, slot, g0, g1);
	}
	if (memslot_gen_in_progress(gen) || gen != memslots_generation(ms))
		flush |= m->ops->unmap_gfn_range(m, NULL, 0, ~0ULL);
	vmmu_rcu_read_unlock();
	return flush;
}

/*
 * invalidate_range_start (mm->lock held): record the range and bump in_progress first, so a fault
 * that looked its pfn up before our unmap and installs after it sees the invalidation and retries
 * (mmu_invalidate_retry); then unmap and flush, so no vCPU reaches the old pfns once we return.
 * Both under mmu_lock exclusive, which orders them against every fault's check.
 */
static void mn_invalidate_start(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct mmu *m = caa_container_of(mn, struct mmu, mn);

	brlock_write(&m->mmu_lock);
	if (!__atomic_load_n(&m->invalidate_in_progress, __ATOMIC_RELAXED)) {
		m->invalidate_start = start;
		m->invalidate_end = end;
	} else {
		if (start < m->invalidate_start)
			m->invalidate_start = start;
		if (end > m->invalidate_end)
			m->invalidate_end = end;
	}
	__atomic_add_fetch(&m->invalidate_in_progress, 1, __ATOMIC_RELEASE);
	if (unmap_hva_range(m, start, end))
		mmu_flush_remote_tlbs(m);
	brlock_unlock(&m->mmu_lock);
}

/* invalidate_range_end: the sequence moves before in_progress drops, so a fault that checks after
 * the drop still sees a changed sequence. */
static void mn_invalidate_end(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct mmu *m = caa_container_of(mn, struct mmu, mn);

	(void)start;
	(void)end;
	brlock_write(&m->mmu_lock);
	__atomic_add_fetch(&m->invalidate_seq, 1, __ATOMIC_RELEASE);
	__atomic_sub_fetch(&m->invalidate_in_progress, 1, __ATOMIC_RELEASE);
	brlock_unlock(&m->mmu_lock);
}

/* Accessed state of [start, end) (KVM's kvm_age_gfn / kvm_test_age_gfn). No TLB flush, as KVM:
 * a cached translation keeps the page looking idle a little longer, which aging tolerates. */
static bool mn_age(struct host_mmu_notifier *mn, hva_t start, hva_t end, bool clear)
{
	struct mmu *m = caa_container_of(mn, struct mmu, mn);
	struct memslots *ms = m->env.slots;
	const struct memslot *slot;
	struct memslot_iter si;
	bool young = false;

	if (m->ops->age_shared)
		brlock_read(&m->mmu_lock);
	else
		brlock_write(&m->mmu_lock);
	vmmu_rcu_read_lock();
	memslots_for_each_in_gfn_range(slot, &si, ms, 0, ~0ULL) {
		gfn_t g0, g1;

		if (slot_hva_range(slot, start, end, &g0, &g1))
			young |= m->ops->age_gfn_range(m, slot, g0, g1, clear);
	}
	vmmu_rcu_read_unlock();
	brlock_unlock(&m->mmu_lock);
	return young;
}

static bool mn_clear_young(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	return mn_age(mn, start, end, true);
}

static bool mn_test_young(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	return mn_age(mn, start, end, false);
}

static const struct host_mmu_notifier_ops mmu_mn_ops = {
	.invalidate_range_start = mn_invalidate_start,
	.invalidate_range_end = mn_invalidate_end,
	.clear_young = mn_clear_young,
	.test_young = mn_test_young,
};

void mmu_notifier_register(struct mmu *m)
{
	m->mn.ops = &mmu_mn_ops;
	host_mmu_notifier_register(m->env.mm, &m->mn);
}

void mmu_notifier_unregister(struct mmu *m)
{
	host_mmu_notifier_unregister(m->env.mm, &m->mn);
}

/* The largest level a leaf for @gfn may have (KVM's kvm_mmu_max_mapping_level), for both MMUs:
 * no larger than the host mapping (@host_order: a THP or hugetlb 2M page, a hugetlb 1G page),
 * with the slot's gpa and hva congruent modulo the leaf's size and the leaf's whole gpa range
 * inside the slot; 4K while the slot logs dirty pages (each write must fault on its own 4K). */
VMMU_HOT
int mmu_max_level(const struct memslot *slot, gfn_t gfn, unsigned host_order)
{
	int level = 1 + (int)host_order / 9;

	if (slot_logs_dirty(slot))
		return 1;
	for (; level > 1; level--) {
		const gfn_t pages = spte_level_pages(level), base = gfn & ~(pages - 1);

		if (((slot->base_gfn ^ (slot->userspace_addr >> VMMU_PAGE_SHIFT)) & (pages - 1)) == 0 &&
		    base >= slot->base_gfn && base + pages <= slot_end_gfn(slot))
			break;
	}
	return level;
}

uint8_t *mmu_huge_blocks(struct mmu *m, const struct memslot *slot, gfn_t *first, uint64_t *n)
{
	gfn_t lo = (slot->base_gfn + 511) & ~511ULL, hi = slot_end_gfn(slot) & ~511ULL;
	uint8_t *ok;

	*first = lo;
	*n = hi > lo ? (hi - lo) / 512 : 0;
	if (!*n || ((slot->base_gfn ^ (slot->userspace_addr >> VMMU_PAGE_SHIFT)) & 511))
		return NULL;
	ok = calloc(*n, 1);
	if (!ok)
		return NULL;    /* no recovery: 4K mappings stay correct */
	for (uint64_t i = 0; i < *n; i++) {
		unsigned order;
		pfn_t pfn;

		if (!host_hva_lookup_order(m->env.mm, slot_gfn_to_hva(slot, lo + i * 512), &pfn,
					   &order, NULL))
			ok[i] = (uint8_t)mmu_max_level(slot, lo + i * 512, order);
	}
	return ok;
}
