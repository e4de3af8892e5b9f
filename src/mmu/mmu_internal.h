/* SPDX-License-Identifier: MIT */
/*
 * What the MMU implementations share: the ops table each mode provides (the hard MMU in
 * tdp_mmu.c, the soft MMU in shadow.c) and the common struct mmu header they embed first.
 * Locking: see mmu.h.
 */
#ifndef VMMU_MMU_INTERNAL_H
#define VMMU_MMU_INTERNAL_H

#include <pthread.h>

#include "mmu/mmu.h"

struct mmu_ops {
	const char *name;
	/* Allocate the mode's struct (which begins with struct mmu) and set it up. */
	int (*create)(const struct mmu_env *env, struct mmu **out);
	void (*destroy)(struct mmu *m);
	int (*vcpu_init)(struct mmu_vcpu *mv);
	void (*vcpu_destroy)(struct mmu_vcpu *mv);
	int (*handle_exit)(struct mmu_vcpu *mv, const struct hw_exit *e, struct mmu_outcome *out);
	int (*cr_changed)(struct mmu_vcpu *mv, int cr, uint64_t old, uint64_t val);
	int (*invlpg)(struct mmu_vcpu *mv, gva_t gva);
	int (*invpcid)(struct mmu_vcpu *mv, unsigned type, uint16_t pcid, gva_t gva);
	int (*audit)(struct mmu *m, char *why, size_t whylen);
	/* User space wrote guest memory [gpa, gpa + len) behind the guest's back (optional). */
	void (*guest_written)(struct mmu *m, gpa_t gpa, uint64_t len);
};

/* The common head of every mode's MMU (each mode's struct begins with it).
 * Legend: [c] constant after create; [a] atomic; [L] mmu_lock. */
struct mmu {
	const struct mmu_ops *ops;        /* [c] set by mmu_create() */
	struct mmu_env env;               /* [c] */
	pthread_rwlock_t mmu_lock;        /* faults shared, zaps and memslot changes exclusive */
	struct mmu_stats st;              /* [a] counters, updated with atomic adds */
	/*
	 * MMU-notifier invalidation protocol (as KVM's mmu_invalidate_seq): range_start bumps
	 * in_progress and records the range; range_end bumps seq and drops in_progress. A fault
	 * reads seq before it looks the pfn up (host_hva_to_pfn) and, under mmu_lock, installs the
	 * spte only if seq is unchanged and no invalidation covering its hva is in progress; else
	 * it retries.
	 */
	uint64_t invalidate_seq;          /* [a] */
	uint64_t invalidate_in_progress;  /* [a] */
	hva_t invalidate_start, invalidate_end;  /* [L] union of ranges in progress */
};

/* True if a fault that read @seq before its pfn lookup for @hva must retry (see above).
 * Call under mmu_lock (shared or exclusive). */
static inline bool mmu_invalidate_retry(struct mmu *m, uint64_t seq, hva_t hva)
{
	if (__atomic_load_n(&m->invalidate_in_progress, __ATOMIC_ACQUIRE) &&
	    hva >= m->invalidate_start && hva < m->invalidate_end)
		return true;
	return __atomic_load_n(&m->invalidate_seq, __ATOMIC_ACQUIRE) != seq;
}

/*
 * Steps the cost model charges a fault's slow path for resolving its gfn to a host frame: the
 * memslot lookup, then the host page-table walk of hva_to_pfn (4 levels, 3 to a 2M THP leaf).
 * The fast page fault skips both: that, with mmu_lock, is what it saves.
 */
static inline uint64_t mmu_pfn_lookup_steps(bool huge)
{
	return 1 + (huge ? 3 : 4);
}

/*
 * The fast page fault's fix, one path for both MMUs (shadow_fault.c, tdp_mmu.c): give a leaf
 * found write-protected only for dirty logging its write access back (@set: W, and D where the
 * format has one) by one compare-and-swap against @old, with no lock but the caller's RCU read
 * section, then mark @gfn dirty in @slot if it logs. W first, the mark after: a harvest clears
 * bitmap words and then write-protects, so either its protect follows our swap (the leaf is
 * read-only again, our mark is harvested now or next time) or our mark lands after its clear
 * (the next harvest reports the page); marking first could leave a writable leaf with its bit
 * cleared. False if the leaf changed meanwhile: the slow path decides.
 */
static inline bool mmu_fast_fix_write(uint64_t *sptep, uint64_t old, uint64_t set,
				      const struct memslot *slot, gfn_t gfn)
{
	if (!__atomic_compare_exchange_n(sptep, &old, old | set, false, __ATOMIC_SEQ_CST,
					 __ATOMIC_SEQ_CST))
		return false;
	if (slot && slot_logs_dirty(slot))
		slot_mark_dirty(slot, gfn);
	return true;
}

#define mmu_stat_inc(m, field) __atomic_add_fetch(&(m)->st.field, 1, __ATOMIC_RELAXED)
#define mmu_stat_add(m, field, n) __atomic_add_fetch(&(m)->st.field, (n), __ATOMIC_RELAXED)

extern const struct mmu_ops tdp_mmu_ops;
extern const struct mmu_ops shadow_mmu_ops;

#endif
