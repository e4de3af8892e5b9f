/* SPDX-License-Identifier: MIT */
/*
 * The MMU core both modes share (mmu.c), and what each mode provides (its ops table: the hard MMU
 * in tdp_mmu.c, the soft MMU in shadow.c). As KVM's mmu.c sits under its shadow MMU and its TDP
 * MMU, one layer here does what does not depend on the tables' kind:
 *
 *  - the page fault's frame: one struct mmu_page_fault carried from the exit to the install, one
 *    set of results (enum mmu_pf_ret, KVM's RET_PF_*), and the steps every fault takes the same
 *    way: mmu_fault_begin() (generation and invalidation-sequence snapshots), mmu_fault_slot()
 *    and mmu_faultin_pfn() (gfn -> memslot -> hva -> host frame, with their cost), and the
 *    retry check against MMU notifiers (mmu_invalidate_retry);
 *  - MMU notifiers (one registration per MMU): invalidate-range start/end with the invalidation
 *    protocol, hva -> gfn ranges per memslot, clear/test young; the mode only unmaps or ages a
 *    gfn range of a slot (ops->unmap_gfn_range, ops->age_gfn_range);
 *  - remote TLB flushes (mmu_flush_remote_tlbs, counted as remote_tlb_flush);
 *  - the deferred free of table frames: after an RCU grace period, on liburcu's call_rcu worker,
 *    so no fault and no notifier ever waits for a grace period (mmu_free_page_rcu);
 *  - the fast page fault's fix (mmu_fast_fix_write), its ordering against a dirty-log harvest.
 *
 * Locking: mmu.h (mmu_lock; the invalidation protocol); docs/locking.md has the order.
 */
#ifndef VMMU_MMU_INTERNAL_H
#define VMMU_MMU_INTERNAL_H

#include <pthread.h>
#include <stddef.h>

#include <urcu-bp.h>
#include <urcu/compiler.h>

#include "host/brlock.h"
#include "mmu/mmu.h"
#include "mmu/spte.h"

/* ---- the page fault ---- */

/*
 * What a fault handler returns (KVM's RET_PF_*), or a negative errno for an error of the MMU
 * itself (no memory, a broken invariant). A guest-visible fault is a result, not an error.
 */
enum mmu_pf_ret {
	RET_PF_CONTINUE = 0,    /* this step is done: go on to the next */
	RET_PF_RETRY,           /* nothing to do now (a race, a change in progress): run it again */
	RET_PF_FIXED,           /* a translation was installed or widened */
	RET_PF_SPURIOUS,        /* the tables already allowed the access (another vCPU fixed it) */
	RET_PF_EMULATE,         /* the MMU performed the access itself (an emulated store) */
	RET_PF_MMIO,            /* no RAM there: exit to user space with the gpa (KVM emulates the
				 * access, then exits: counted as pf_emulate unless the fast MMIO
				 * path took it) */
	RET_PF_INJECT,          /* the guest must see a #PF (pf_ec, pf_addr) */
	/* Inside a handler only, under mmu_lock shared: the fault needs it exclusive (the soft
	 * MMU: replace, zap, sync or unsync an sp, emulate, evict; the hard MMU: unlink a table
	 * where a huge leaf goes now); nothing was changed but what the exclusive attempt finds
	 * made, and the steps count as if it had gone exclusive first. */
	RET_PF_EXCLUSIVE = 100,
};

/* One gfn's way to a host frame, as mmu_fault_slot() and mmu_faultin_pfn() found it. */
struct mmu_faultin {
	gfn_t gfn;
	const struct memslot *slot;     /* NULL: no memslot (MMIO) */
	hva_t hva;
	pfn_t pfn;                      /* the 4K frame backing gfn */
	bool map_writable;              /* the host lets pfn be written (not a KSM page; a write
					 * lookup broke its COW) and the slot is not READONLY */
	unsigned host_order;            /* the host mapping's size: HOST_ORDER_4K, _2M or _1G */
	int pfn_err;                    /* 0, or -EFAULT: no host memory behind the slot's hva */
};

/* One fault, from the exit to the install (KVM's struct kvm_page_fault). */
struct mmu_page_fault {
	struct mmu *mmu;
	struct mmu_vcpu *mv;
	const struct hw_exit *e;
	gfn_t gfn;                      /* the gfn that faulted (hard MMU; the soft MMU walks) */
	bool write;                     /* the access (or the nested access) was a write */
	bool fast;                      /* the fast page fault took it (RET_PF_FIXED or _SPURIOUS) */
	bool mmio_fast;                 /* the fast MMIO path took it: no pf_taken, no pf_emulate */
	uint64_t mmu_seq;               /* invalidate_seq before any pfn lookup */
	uint64_t mmu_gen;               /* memslot generation before any slot lookup */
	uint64_t steps;                 /* handler steps, charged to the vCPU's cost model */
	gpa_t mmio_gpa;                 /* RET_PF_MMIO: the gpa of the exit */
	uint32_t mmio_done;             /* RET_PF_MMIO: bytes the MMU stored first (a crossing
					 * store's RAM part it emulated); mmio_gpa is the rest's */
	uint32_t pf_ec;                 /* RET_PF_INJECT: the guest's error code and address */
	gva_t pf_addr;
};

/*
 * The fault path of either MMU, from here down: the mode's page_fault (tdp_mmu.c:
 * tdp_page_fault; shadow_fault.c: shadow_page_fault), which takes the common steps below
 * in the same order: mmu_fault_begin, mmu_fault_slot, mmu_faultin_pfn, then under mmu_lock
 * mmu_invalidate_retry and its own install. mmu_handle_exit() builds @f from the exit, calls this
 * and mmu_pf_finish().
 */
int mmu_page_fault(struct mmu_page_fault *f);

/* Start @f. Inside the memslot read section that will cover its slot lookups. */
void mmu_fault_begin(struct mmu_page_fault *f);
/* @gfn's memslot (the vCPU's slot cache first) into @fi; false if none (MMIO). Inside the
 * section. */
bool mmu_fault_slot(struct mmu_page_fault *f, struct mmu_faultin *fi, gfn_t gfn);
/*
 * After mmu_fault_slot() found a slot: its hva and host frame (KVM's kvm_faultin_pfn), the host
 * page faulted in (for writing with @write), the lookup charged (mmu_pfn_lookup_steps). 0 with
 * fi->pfn_err = -EFAULT when no host memory is behind the hva (the fault then fails the access
 * with it, as KVM_RUN fails with -EFAULT), or -errno. Inside the section, with no mmu_lock held: the host mm's lock comes first.
 */
int mmu_faultin_pfn(struct mmu_page_fault *f, struct mmu_faultin *fi, bool write);
/* The largest level a leaf for @gfn of @slot may have over a host page of @host_order (KVM's
 * kvm_mmu_max_mapping_level): both MMUs' fault paths', and what the recovery of huge mappings
 * after dirty logging aims for. */
int mmu_max_level(const struct memslot *slot, gfn_t gfn, unsigned host_order);
/* The largest level each 2M block of @slot could be mapped at again, by mmu_max_level over the
 * host page there now (a 1G figure only on a 1G range's first block), for the recovery of huge
 * mappings when dirty logging stops: *@first the first block's gfn, *@n the blocks; free() it.
 * No mmu_lock held (the host lookup takes mm->lock). NULL if none could be huge. */
uint8_t *mmu_huge_blocks(struct mmu *m, const struct memslot *slot, gfn_t *first, uint64_t *n);

/* Count a fault's result as KVM's kvm_mmu_do_page_fault and fast_page_fault do: exactly one of
 * pf_fixed, pf_spurious, pf_emulate per fault, pf_fast besides for the fast path; pf_guest for a
 * #PF the hypervisor injects (kvm_inject_page_fault). */
void mmu_count_pf_result(const struct mmu_page_fault *f, int ret);
/* End a fault handler: charge its steps to the vCPU, count its result @ret, and tell vm/ what the
 * access does next (@out). Returns 0, or @ret if it is a negative errno. */
int mmu_pf_finish(struct mmu_page_fault *f, int ret, struct mmu_outcome *out);

/* ---- what each mode provides ---- */

struct mmu_page_free;

struct mmu_ops {
	const char *name;
	/* Allocate the mode's struct (which embeds struct mmu) and set it up. */
	int (*create)(const struct mmu_env *env, struct mmu **out);
	void (*destroy)(struct mmu *m);
	int (*vcpu_init)(struct mmu_vcpu *mv);
	void (*vcpu_destroy)(struct mmu_vcpu *mv);
	/* The fault of a VM exit (@f: the exit, the vCPU): the mode's fault path (mmu_page_fault).
	 * Returns an enum mmu_pf_ret or -errno. */
	int (*page_fault)(struct mmu_page_fault *f);
	int (*cr_changed)(struct mmu_vcpu *mv, int cr, uint64_t old, uint64_t val);
	int (*invlpg)(struct mmu_vcpu *mv, gva_t gva);
	int (*invpcid)(struct mmu_vcpu *mv, unsigned type, uint16_t pcid, gva_t gva);
	int (*audit)(struct mmu *m, char *why, size_t whylen);
	/* User space wrote guest memory [gpa, gpa + len) behind the guest's back (optional). */
	void (*guest_written)(struct mmu *m, gpa_t gpa, uint64_t len);
	/* The emulator wrote [gpa, gpa + len) for the guest (optional: modes that track writes);
	 * returns handler steps. */
	uint64_t (*track_write)(struct mmu *m, gpa_t gpa, uint32_t len);
	/* MMU notifiers, per memslot (@slot NULL: every gfn of every slot, for a notifier that
	 * raced with a memslot change): drop every translation of [start, end) (KVM's
	 * kvm_unmap_gfn_range), mmu_lock exclusive, inside a read section; true if TLBs must be
	 * flushed. */
	bool (*unmap_gfn_range)(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end);
	/* Accessed state of [start, end), cleared with @clear; true if any was young. mmu_lock
	 * shared if age_shared, else exclusive; inside a read section. */
	bool (*age_gfn_range)(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end,
			      bool clear);
	bool age_shared;
	/* The RCU callback's end of a table freed by mmu_free_page_rcu: free the struct that
	 * embeds @pf (the frame itself is back in the arena already). */
	void (*free_page)(struct mmu_page_free *pf);
};

/* The ops every mode names after itself (PREFIX_create, PREFIX_page_fault, ...); a mode's table
 * adds what only it has. */
#define MMU_MODE_OPS(prefix)                                                                       \
	.name = #prefix, .create = prefix##_create, .destroy = prefix##_destroy,                   \
	.vcpu_init = prefix##_vcpu_init, .vcpu_destroy = prefix##_vcpu_destroy,                    \
	.page_fault = prefix##_page_fault, .audit = prefix##_audit,                                \
	.unmap_gfn_range = prefix##_unmap_gfn_range, .age_gfn_range = prefix##_age_gfn_range,      \
	.free_page = prefix##_free_page

/* Shards of the counters, enough that the vCPU threads of one VM rarely share one: this thread's
 * is its shard of every brlock (given out round robin at first use), so one index serves both. */
#define MMU_STAT_SHARDS BRLOCK_SHARDS

static inline unsigned mmu_stat_shard(void)
{
	return brlock_shard();
}

/* The common part of every mode's MMU (embedded in the mode's struct).
 * Legend: [c] constant after create; [a] atomic; [L] mmu_lock. */
struct mmu {
	const struct mmu_ops *ops;        /* [c] set by mmu_create() */
	struct mmu_env env;               /* [c] */
	struct spte_fmt fmt;              /* [c] the format of the tables this MMU makes */
	struct brlock mmu_lock;           /* faults shared (hard MMU) or exclusive (soft MMU),
					   * zaps and memslot changes exclusive */
	/* [a] counters: what a thread counts while it handles a vCPU's exit goes to that vCPU's
	 * own block (mmu_vcpu.st, one writer: mmu_stat_add_at); anything else by an atomic add
	 * into the calling thread's shard (one cache line apart: one shared counter bumped by every
	 * fault of every vCPU thread was the fault path's hottest line). mmu_get_stats sums the
	 * shards and the blocks. A shard's or block's gauge (pages_4k, shadow_pages) may go below
	 * 0: only the sum means anything. */
	struct mmu_stat_shard {
		struct mmu_stats s;
	} __attribute__((aligned(64))) st[MMU_STAT_SHARDS];
	/* The vCPUs, whose own counters (mmu_vcpu.st) mmu_get_stats adds to the shards'. */
	pthread_mutex_t vcpus_lock;
	struct mmu_vcpu *vcpus;           /* [vcpus_lock] */
	uint64_t changes_gone;            /* [vcpus_lock] mmu_vcpu.changes of the vCPUs gone */
	struct host_mmu_notifier mn;      /* [c] registered on env.mm by mmu_notifier_register */
	/*
	 * MMU-notifier invalidation protocol (as KVM's mmu_invalidate_seq): range_start bumps
	 * in_progress and records the range; range_end bumps seq and drops in_progress. A fault
	 * reads seq before it looks the pfn up and, under mmu_lock, installs the spte only if seq is
	 * unchanged and no invalidation covering its hva is in progress; else it retries.
	 */
	uint64_t invalidate_seq;          /* [a] */
	uint64_t invalidate_in_progress;  /* [a] */
	hva_t invalidate_start, invalidate_end;  /* [L] union of ranges in progress */
};

/* mmu_invalidate_retry's @hva for a fault that depends on several host pages (the soft MMU's:
 * guest tables, both parts of a split access, prefetched neighbours): any invalidation in progress
 * makes it retry. */
#define MMU_HVA_ANY (~(hva_t)0)

/* True if a fault that read @seq before its pfn lookups for @hva must retry (see above). Call
 * under mmu_lock (shared or exclusive). */
static inline bool mmu_invalidate_retry(struct mmu *m, uint64_t seq, hva_t hva)
{
	if (__atomic_load_n(&m->invalidate_in_progress, __ATOMIC_ACQUIRE) &&
	    (hva == MMU_HVA_ANY || (hva >= m->invalidate_start && hva < m->invalidate_end)))
		return true;
	return __atomic_load_n(&m->invalidate_seq, __ATOMIC_ACQUIRE) != seq;
}

/* The core's part of a mode's create and destroy: the environment, mmu_lock, vcpus_lock. 0 or
 * -errno. */
int mmu_init(struct mmu *m, const struct mmu_env *env);
/* A mode struct embeds struct mmu, whose counter shards are cache-line aligned: it is made by
 * host_zalloc_lines (calloc would give 16 bytes). */
void mmu_fini(struct mmu *m);

/* Register / unregister the MMU's notifier on env.mm (the mode's create / destroy). */
void mmu_notifier_register(struct mmu *m);
void mmu_notifier_unregister(struct mmu *m);

/* kvm_flush_remote_tlbs: every vCPU's TLB, waiting until each has; counted as remote_tlb_flush
 * only when another vCPU had to be interrupted, as KVM counts it (a VM of one vCPU: never; each
 * vCPU's serviced request is its tlb_flush). */
void mmu_flush_remote_tlbs(struct mmu *m);

/*
 * Steps the cost model charges a fault's slow path for resolving its gfn to a host frame: the
 * memslot lookup, then the host page-table walk of hva_to_pfn (4 levels, 3 to a 2M leaf, 2 to a
 * 1G one). The fast page fault skips both: that, with mmu_lock, is what it saves.
 */
static inline uint64_t mmu_pfn_lookup_steps(unsigned host_order)
{
	return 1 + 4 - host_order / 9;
}

/* ---- deferred frees ---- */

/*
 * A table frame on its way back to the arena, embedded in the mode's per-table struct (the soft
 * MMU's shadow_page, the hard MMU's tdp_page), found from the frame through its private word
 * (host_frame_private) while the table lives. mmu_free_page_rcu() queues it with liburcu's
 * call_rcu: once every read section that could have reached the table has ended, the call_rcu
 * worker clears the private word, returns the frame and calls ops->free_page. Queue it only after
 * the table is unreachable (unlinked from every parent and root). mmu_destroy() waits for every
 * queued free (rcu_barrier) before the MMU and its arena go.
 */
struct mmu_page_free {
	struct rcu_head rcu;
	struct mmu *mmu;
	pfn_t pfn;
};

void mmu_free_page_rcu(struct mmu *m, struct mmu_page_free *pf, pfn_t pfn);

/* ---- the fast page fault ---- */

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
	if (!spte_cmpxchg(sptep, &old, old | set))
		return false;
	if (slot && slot_logs_dirty(slot))
		slot_mark_dirty(slot, gfn);
	return true;
}

/* The vCPU whose exit this thread is handling (mmu_handle_exit), or NULL. */
extern __thread struct mmu_vcpu *mmu_vcpu_self __attribute__((tls_model("initial-exec")));

/* @p + @n stored in @p by a relaxed load and store, no locked instruction: exact where the
 * caller is @p's only writer (readers load it atomically). Returns the new value. */
static inline uint64_t counter_add_unlocked(uint64_t *p, uint64_t n)
{
	uint64_t v = __atomic_load_n(p, __ATOMIC_RELAXED) + n;

	__atomic_store_n(p, v, __ATOMIC_RELAXED);
	return v;
}

/* The vCPU of @m whose exit this thread is handling, or NULL. */
static inline struct mmu_vcpu *mmu_vcpu_handling(const struct mmu *m)
{
	struct mmu_vcpu *v = mmu_vcpu_self;

	return v && v->mmu == m ? v : NULL;
}

/* Add @n to a counter of @m: the vCPU's own while this thread handles one of @m's vCPUs' exits
 * (no other thread writes it: counter_add_unlocked, no locked instruction on the fault path,
 * as KVM's vcpu->stat), else the thread's shard by an atomic add (other threads share shards). */
static inline void mmu_stat_add_at(struct mmu *m, size_t off, uint64_t n)
{
	struct mmu_vcpu *v = mmu_vcpu_handling(m);
	uint64_t *p;

	if (v) {
		p = (uint64_t *)((char *)&v->st + off);
		counter_add_unlocked(p, n);
	} else {
		p = (uint64_t *)((char *)&m->st[mmu_stat_shard()].s + off);
		__atomic_add_fetch(p, n, __ATOMIC_RELAXED);
	}
}

#define mmu_stat_add(m, field, n) mmu_stat_add_at(m, offsetof(struct mmu_stats, field), (uint64_t)(n))
#define mmu_stat_inc(m, field) mmu_stat_add(m, field, 1)

/*
 * mmu_lock taken on behalf of a vCPU (faults, root loads, INVLPG, syncs, emulated writes): one
 * try first, so an uncontended take costs what it did; a contended one is timed into
 * mmu_lock_wait_ns (host nanoseconds; 0 in a one-thread run). Released with brlock_unlock.
 */
void mmu_lock_wait(struct mmu *m, bool write);
static inline void mmu_vcpu_lock(struct mmu *m, bool write)
{
	if (!(write ? brlock_write_trylock(&m->mmu_lock) : brlock_read_trylock(&m->mmu_lock)))
		mmu_lock_wait(m, write);
}

/* A hard-MMU fault's mmu_lock: shared, or exclusive under VMMU_MMU_LOCK_BIG. */
static inline void mmu_fault_lock(struct mmu *m)
{
	mmu_vcpu_lock(m, m->env.lock == VMMU_MMU_LOCK_BIG);
}

/* Add @delta leaves of @level to pages_4k/2m/1g. */
static inline void mmu_account_leaf(struct mmu *m, int level, int64_t delta)
{
	switch (level) {
	case 1: mmu_stat_add(m, pages_4k, (uint64_t)delta); break;
	case 2: mmu_stat_add(m, pages_2m, (uint64_t)delta); break;
	case 3: mmu_stat_add(m, pages_1g, (uint64_t)delta); break;
	}
}

extern const struct mmu_ops tdp_mmu_ops;
extern const struct mmu_ops shadow_mmu_ops;

#endif
