/* SPDX-License-Identifier: MIT */
/*
 * The soft MMU's private header (shadow*.c): shadow pages and their role, the spte format the
 * soft MMU writes, the hash tables (shadow pages by gfn, by frame), the per-gfn state (rmap and
 * write tracking, a radix tree by gfn), and the functions the files share. docs/soft-mmu.md is the design.
 *
 *   shadow.c        the ops table, create/destroy, vCPUs, roots and the prev-root cache, CR/INVLPG
 *   shadow_page.c   shadow pages: hash, LRU, parents, rmap, write tracking, zapping, recycling
 *   shadow_fault.c  page faults: guest walk, chain building, emulated writes, MMIO sptes
 *   shadow_hooks.c  memslot changes, dirty-log protection, MMU notifiers
 *   shadow_audit.c  the Isolation audit
 *
 * Invariants (the audit checks each one):
 *  - a shadow page (sp) of an indirect role shadows the guest table at gfn; every present spte in
 *    it is derived from the guest entry at the same index as that entry is now (write tracking
 *    makes every change of it exit first): a link to the sp of the table it points to with
 *    role.access = this role.access & the entry's rights, or a leaf no wider than the entry;
 *    an unsync sp (--opt unsync: level 1, no root, its gfn shadowed by no other level) may lag
 *    its guest table until the guest's next flush (CR3 load, INVLPG, INVPCID) syncs it;
 *  - an sp of a 32-bit guest table (role.has_4_byte_gpte) shadows one part of it (role.quadrant):
 *    a level-2 sp a quarter of the page directory (256 entries, each giving two sptes, one per
 *    2 MiB half of its 4 MiB), a level-1 sp a half of the page table (512 entries, one spte
 *    each): sp_gpte_index() maps an spte index to its guest entry;
 *  - under notrap an empty entry is SPTE_TRAP, and a 0 entry means the guest entry is not
 *    present (never in an unsync sp);
 *  - a direct sp maps a gfn range with role.access (a guest large page, or no paging);
 *  - a large leaf (PS, level 2 or 3: KVM's disallow_lpage rules) maps a guest large page, or the
 *    part of one a direct sp maps, where the host maps the whole range with one page at least as
 *    large (mmu_max_level: and the slot holds it, aligned, not logging dirty pages); it is in the
 *    rmap of its first gfn, and is writable only while no gfn of its range is write-tracked
 *    (gfn_chunk.lpage_track of its 2 MiB, gfn_gig.tracked of its 1 GiB: 0);
 *  - every gfn an indirect sp (not unsync) shadows is write-tracked, and no leaf spte maps it
 *    writable;
 *  - a writable leaf spte's guest entry has Dirty set, its slot is not READONLY, and in a
 *    dirty-logging slot its page is marked dirty;
 *  - every present leaf spte is in the rmap of the (first) gfn it maps, once; every present link spte is
 *    in the parent list of the sp it points to, once; sp_by_pfn holds every sp, and each table
 *    frame's private word (host_frame_private) points back at its sp until the frame is freed;
 *  - a link to an sp that is unsync or has unsync children has its bit set in its table's
 *    unsync_child_bitmap (so a flush syncs what its root reaches), and unsync_children counts
 *    the bits;
 *  - the number of sps in the hash = the LRU's length; shadow_pages counts them and the PAE root
 *    helpers.
 *
 * Locking: everything here is guarded by mmu_lock held for writing ([L]), except the sptes
 * themselves, which the page-walk hardware of every vCPU reads at any time and on which it sets
 * Accessed/Dirty: they are read and written only through spte.h's atomics. Under
 * VMMU_MMU_LOCK_FINE a fault takes mmu_lock shared and installs leaves, each under its sp's own
 * lock ([S]: sp->lock; a 2M leaf, in a level-2 sp, under [T]; a 1G leaf only exclusive), its
 * rmap entry under its gfn's stripe lock ([G]: gfn_stripe()->lock);
 * it makes and links a missing sp under the structure lock ([T]: sm->struct_lock: the hash,
 * the LRU, parent lists, counts; write tracking of a gfn no leaf maps, under its stripe lock);
 * anything else (replacing or zapping an sp, unsync and sync, write-protecting a mapped gfn,
 * eviction, MMIO sptes, emulated writes) retakes mmu_lock exclusive. A holder of mmu_lock
 * exclusive needs none of the fine locks (no shared holder runs); a shared holder takes
 * struct_lock or sp->lock before a stripe lock, and one stripe lock at a time. Table frames are
 * freed only after an RCU grace period (mmu_free_page_rcu: the call_rcu worker frees them; no
 * fault waits). The MMU never touches guest memory through the memslots (which
 * may fault a host page in under mm->lock) while it holds mmu_lock: MMU notifiers run under
 * mm->lock and take mmu_lock, so the order is mm->lock -> mmu_lock. Guest bytes needed under
 * mmu_lock are reached through host pointers resolved before, made safe by the invalidation
 * sequence (mmu_invalidate_retry).
 */
#ifndef VMMU_MMU_SHADOW_H
#define VMMU_MMU_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <urcu/list.h>

#include "mmu/mmu_internal.h"
#include "paging/paging.h"

/* ---- the soft MMU's use of the spte vocabulary (spte.h) ---- */

/*
 * No-trap non-present sptes (--opt notrap, VMX: #PF exits only with P=1, PFEC_MASK = PFEC_MATCH =
 * P). An entry of an sp is then one of: a translation or link; an MMIO spte; SPTE_TRAP, "not yet
 * shadowed" (present with a reserved bit, no MMIO mark: its #PF has P|RSVD and exits); or 0,
 * "truly non-present": the guest entry at the same index is not present, so the guest's own #PF
 * reaches it with no exit. Without notrap, sm->trap_spte is 0 and every empty entry is 0.
 */
#define SPTE_TRAP (PT_PRESENT_MASK | SPTE_RSVD_51)
_Static_assert(!(SPTE_TRAP & (SPTE_MMU_PRESENT_MASK | SPTE_MMIO_MASK)),
	       "a trap is neither present nor MMIO");

/* ---- shadow pages ---- */

/*
 * What an sp is, beside its gfn: two sps of the same gfn with different roles hold different
 * sptes. Hashed and compared as one word (as KVM's kvm_mmu_page_role).
 *  - level: the level of the table (1..5); direct: no guest table (a guest large page or no
 *    paging), gfn is the first gfn mapped; access: ACC_* the entries above allow;
 *  - cr0_wp, efer_nx: change which sptes a guest entry gives; smep/smap/pke_andnot_wp: with
 *    CR0.WP=0 a supervisor write to a read-only page makes a supervisor-only writable spte
 *    (user cleared), which is exact only without SMAP and PKE and, under SMEP, without exec;
 *  - pae: shadows a PAE table (reserved bits differ from 4-level ones); passthrough: a vCPU's
 *    PAE root helper (PML4 and PDPT pages made from the PDPTE registers, or for a 32-bit guest
 *    from CR3, no guest table behind them, never hashed);
 *  - has_4_byte_gpte: shadows a 32-bit guest table (1024 4-byte entries), of which quadrant
 *    says the part (level 2: entries 256q..256q+255, level 1: 512q..512q+511); cr4_pse: with
 *    it a PDE's PS bit makes a 4 MiB page, without it the PDE points to a page table whatever
 *    PS says (so the same table shadows differently); efer_nx is 0 (no NX in 32-bit paging);
 *    direct sps have neither (they map gfns, whatever entry format made them);
 *  - guest_global, guest_pkey: a direct sp copies the guest large page's G and key into its
 *    leaves, so they are part of what it is.
 */
union sp_role {
	uint32_t word;
	struct {
		unsigned level : 3;
		unsigned has_4_byte_gpte : 1;
		unsigned quadrant : 2;
		unsigned direct : 1;
		unsigned access : 3;
		unsigned efer_nx : 1;
		unsigned cr0_wp : 1;
		unsigned smep_andnot_wp : 1;
		unsigned smap_andnot_wp : 1;
		unsigned pke_andnot_wp : 1;
		unsigned passthrough : 1;
		unsigned guest_global : 1;
		unsigned guest_pkey : 4;
		unsigned pae : 1;
		unsigned cr4_pse : 1;
		unsigned unused : 9;
	};
};
_Static_assert(sizeof(union sp_role) == sizeof(uint32_t), "role is one word");

/* A 64-bit mix (murmur3's finalizer): hash buckets and gfn stripes. */
static inline uint64_t hmix(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	return k;
}

/* Intrusive hash chains keyed by a u64 (gfn or pfn); power-of-two buckets, grown at load 2. */
struct hnode {
	struct hnode *next;
	uint64_t key;
};
struct htab {
	struct hnode **b;
	uint64_t mask;
	uint64_t n;
};

/* A growable array of spte pointers (an sp's parent links). */
struct sptep_vec {
	uint64_t **v;
	uint32_t n, cap;
};

/*
 * One shadow page. Legend: [c] constant after creation; [L] mmu_lock.
 */
struct shadow_page {
	struct hnode hash;                /* [L] in sm->sp_hash, key gfn (unlinked when invalid) */
	struct hnode by_pfn;              /* [L] in sm->sp_by_pfn, key pfn */
	struct cds_list_head lru;         /* [L] or [T] in sm->lru: newest first (the clock moves
					   * a page it spares to the front) */
	struct mmu_page_free free;        /* once zapped and unreferenced: queued for freeing */
	gfn_t gfn;                        /* [c] */
	union sp_role role;               /* [c] */
	pfn_t pfn;                        /* [c] the table frame */
	uint64_t *spt;                    /* [c] its 512 sptes (atomics only) */
	gfn_t *gfns;                      /* indirect: the gfn each leaf maps; level 1: [L] or [S],
					   * from creation; levels 2-3 (large leaves): [L] or [T],
					   * made with the first large leaf */
	struct sptep_vec parents;         /* [L] or [T] sptes linking to this page */
	uint32_t root_count;              /* [L] vCPU roots and prev-root slots holding it */
	uint32_t write_flooding_count;    /* [L]; a shared fault clears it atomically: emulated
					   * writes since a fault last went through */
	uint32_t lock;                    /* the spin lock of [S] (shadow_spin_lock) */
	bool invalid;                     /* [L], stored atomically (the lockless MMIO fault reads
					   * it): zapped while a root, freed when root_count is 0 */
	bool unsync;                      /* [L], stored atomically (sp_unsync_peek): --opt unsync:
					   * the guest table is writable, its gfn untracked for this
					   * sp; synced at the guest's flush */
	const void *unsync_gpt;           /* [L] unsync: host address of the guest table (valid:
					   * a change of its mapping zaps this sp first) */
	uint64_t unsync_child_bitmap[SPTE_ENTRIES / 64];  /* [L] entries whose link leads to
					   * unsync sps (shadow_page.c, "unsync") */
	uint32_t unsync_children;         /* [L] bits set in unsync_child_bitmap */
};

/*
 * Per-gfn state: who maps a gfn (its rmap of leaf sptes) and how many indirect sps shadow it,
 * in a radix tree over the gfn space, as KVM keeps arrays indexed by gfn in each memslot: a fault
 * and its prefetched neighbours find theirs in a few dependent loads, eight neighbours on one
 * cache line, where a hash chain cost each one its own misses. Levels: sm->gfn_root[gfn >> 27]
 * -> struct gfn_dir (512 GiB) -> struct gfn_gig (1 GiB, with its counts) -> struct gfn_chunk
 * (2 MiB: 512 gfns). Directories and GiBs stay until the MMU goes (one GiB node per GiB of gfns
 * ever mapped or tracked); a chunk goes when nothing in its 2 MiB is mapped or tracked, so the
 * state of a gfn costs 12 bytes while its 2 MiB is in use and nothing after. Locking: a chunk's
 * contents, and its pointer in its GiB, [L] or [G] (the stripe lock of its 2 MiB: every gfn of a
 * chunk shares it); a GiB's counts [L] or [T]; directory and GiB pointers are published once by
 * compare-and-swap and read atomically.
 */
#define GFN_BITS 40                       /* gfns below 2^40: MAXPHYADDR 52 */
#define GFN_DIR_SHIFT 27

struct gfn_chunk {
	uintptr_t rmap[SPTE_ENTRIES];     /* each gfn's leaf sptes (an rmap head: rmap_count) */
	uint32_t write_track[SPTE_ENTRIES];   /* indirect sps of the gfn: writes must exit */
	uint32_t lpage_track;             /* gfns of this 2 MiB write-tracked (no large leaf
					   * writable over them) */
	uint32_t used;                    /* gfns with an rmap entry or write-tracked: at 0 (and
					   * lpage_track 0) the chunk goes */
};

/* One GiB of gfns (gfn >> GIG_SHIFT). */
#define GIG_SHIFT 18
struct gfn_gig {
	struct gfn_chunk *chunk[SPTE_ENTRIES];   /* by (gfn >> 9) & 511; [L] or [G], atomics */
	uint32_t tracked;                 /* [L] or [T] write-tracked gfns inside */
	uint32_t leaves;                  /* [L] 1G leaves mapping it (made under [L] only) */
	uint32_t audit_tracked, audit_leaves;   /* the audit's own counts ([L]) */
};

struct gfn_dir {
	struct gfn_gig *gig[SPTE_ENTRIES];   /* by (gfn >> 18) & 511; published once */
};

/*
 * An rmap head: 0, no leaf; an spte pointer (bit 0 clear: sptes are 8-byte aligned), the one
 * leaf mapping the gfn, as most gfns have (no allocation); or a struct rmap_desc tagged with
 * bit 0, for more.
 */
struct rmap_desc {
	uint32_t n, cap;
	uint64_t *v[];
};

static inline struct rmap_desc *rmap_desc_of(uintptr_t head)
{
	return (struct rmap_desc *)(head & ~(uintptr_t)1);
}

static inline uint32_t rmap_count(uintptr_t head)
{
	return !head ? 0 : !(head & 1) ? 1 : rmap_desc_of(head)->n;
}

/* Entry @i (below rmap_count) of @head. */
static inline uint64_t *rmap_at(uintptr_t head, uint32_t i)
{
	return head & 1 ? rmap_desc_of(head)->v[i] : (uint64_t *)head;
}

#define SHADOW_PREV_ROOTS 3

/* Per-vCPU soft MMU state (mmu_vcpu.priv). [o] owned by the vCPU thread; [L] mmu_lock. */
struct shadow_vcpu {
	struct cds_list_head link;        /* [L] in sm->vcpus */
	struct mmu_vcpu *mv;              /* [c] */
	struct shadow_page *root;         /* [L] the loaded root (holds a root_count) */
	int root_levels;                  /* [o] 4 or 5, as given to the hardware */
	struct shadow_page *prev[SHADOW_PREV_ROOTS];   /* [L] previous roots, most recent first */
	uint64_t prev_hits;               /* [o] root loads served by prev[] */
	/* PAE and 32-bit: the root is pae_pml4 (entry 0 -> pae_pdpt), whose four entries link the
	 * level-2 sps of the PDPTE registers as they were at the last load (pae_pdptrs), or, for a
	 * 32-bit guest, the four quadrant sps of its page directory (pae_pdptrs: CR3's table, P,
	 * four times). Both pages belong to the vCPU: never hashed, never recycled, not in the
	 * prev-root cache. */
	struct shadow_page *pae_pml4, *pae_pdpt;    /* [L] */
	uint64_t pae_pdptrs[4];           /* [L] */
	uint32_t pae_role;                /* [L] role word of the level-2 sps (quadrant 0) */
	/* The registers shadow_root_current last found root matching (any root but the PAE root), and
	 * that root; NULL: none. While both are as they were, the role, gfn and levels it computes
	 * are too, and only the root's invalid flag can change its answer (every fault asks twice).
	 * Cleared wherever root changes, so a root freed and another made at its address cannot
	 * pass for it. [o] */
	struct {
		uint64_t cr0, cr3, cr4, efer;
		struct shadow_page *root;
	} root_memo;
	gva_t unprotect_gva;              /* [o] the last write that fell back to unshadowing */
	unsigned unprotect_tries;         /* [o] fallbacks for it in a row */
	/* The host pages of the guest tables the vCPU's #PF walks read lately, two a walk level
	 * (a process's table and the kernel direct map's): a walk's load of a table page it read
	 * before takes no look-up. */
	struct memslots_wcache gpt_cache; /* [o] */
};

#define GFN_STRIPES 64

/* The soft MMU. Legend as above; [F] free_lock. */
struct shadow_mmu {
	struct mmu mmu;                   /* the core's part (mmu.fmt: SPTE_FMT_SHADOW) */
	struct htab sp_hash;              /* [L] or [T] valid sps by gfn */
	struct htab sp_by_pfn;            /* [L] or [T] every sp (invalid roots too) by frame */
	/* The locks of the per-gfn state, in stripes of 2 MiB of gfns (a fault's leaf and its
	 * prefetched neighbours lock one stripe; vCPUs faulting elsewhere rarely meet on one) */
	struct gfn_stripe {
		uint32_t lock;            /* the spin lock of [G] */
	} __attribute__((aligned(64))) gfns[GFN_STRIPES];
	struct gfn_dir *gfn_root[1u << (GFN_BITS - GFN_DIR_SHIFT)];   /* the per-gfn state
					   * (above); published once, read atomically */
	uint64_t nr_large;                /* [L], or [T] and atomics: large leaves (2M and 1G);
					   * while 0, no gfn lookup looks for one covering it */
	bool fine;                        /* [c] VMMU_MMU_LOCK_FINE: faults shared (above) */
	struct cds_list_head lru;         /* [L] or [T]: valid sps */
	struct cds_list_head vcpus;       /* [L] struct shadow_vcpu */
	uint64_t nr_sps;                  /* [L] or [T] (read atomically): valid sps in the hash
					   * (PAE root helpers apart) */
	uint32_t struct_lock;             /* the spin lock of [T]: under shared mmu_lock, making
					   * and linking sps (sp_get_link_shared), the aging sweep */
	uint64_t nr_indirect;             /* [L] or [T] (read atomically): of them indirect
					   * (KVM's indirect_shadow_pages) */
	uint64_t nr_helpers;              /* [L] PAE root helper pages */
	uint64_t slot_pages;              /* [L] pages in memslots: the default limit scales */
	/* Each thread's shard (mmu_stat_shard(), as the MMU's counters), one line each: what every
	 * fault would otherwise write to one shared line.
	 *   changes       [a] bumped on every change made outside an exit of one of this MMU's
	 *                 vCPUs (those count in mmu_vcpu.changes; shadow_changed): the audit
	 *                 compares sums (shadow_changes) taken before and after its unlocked phase
	 *   aging_credit  [a] (counter_add_unlocked, mmu_pages_available_shared says why) sps
	 *                 its thread's faults asked for since that thread's last aging sweep
	 *                 (lru). A sweep is due when one shard's credit reaches limit / 8: with
	 *                 one thread, as one counter; with N, as many sweeps in all for as many
	 *                 faults (each shard gets 1/N of them).
	 *                 One counter for all would take a locked add on one shared line from
	 *                 every fault of every vCPU. */
	struct {
		uint64_t changes;
		uint64_t aging_credit;
	} __attribute__((aligned(64))) shard[MMU_STAT_SHARDS];
	bool notrap;                      /* [c] --opt notrap in effect (VMX, mmio_enabled) */
	uint64_t nr_logging_slots;        /* [L] written, read atomically: slots logging dirty */
	uint64_t nr_unsync;               /* [L] unsync sps */
	uint64_t trap_spte;               /* [c] an empty entry: SPTE_TRAP with notrap, else 0 */
	uint8_t *arena_base;              /* [c] host address of hpa 0 */
};

static inline struct shadow_mmu *to_shadow(struct mmu *m)
{
	return caa_container_of(m, struct shadow_mmu, mmu);
}

/*
 * A fine-grained lock of the soft MMU (an sp's, a gfn stripe's, struct_lock): one word, held
 * for a few hundred instructions, taken only with mmu_lock held shared. A take that finds it held counts
 * sp_lock_contended; the waiter yields its CPU now and then, since the holder may have been
 * preempted (more vCPU threads than host CPUs).
 */
void shadow_spin_wait(struct shadow_mmu *sm, uint32_t *l);
static inline void shadow_spin_lock(struct shadow_mmu *sm, uint32_t *l)
{
	if (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE))
		shadow_spin_wait(sm, l);
}

static inline bool shadow_spin_trylock(uint32_t *l)
{
	return !__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE);
}

static inline void shadow_spin_unlock(uint32_t *l)
{
	__atomic_store_n(l, 0, __ATOMIC_RELEASE);
}

/* What a batch of zaps needs done before the lock is dropped. */
struct zap_batch {
	bool flush;                       /* TLBs may hold translations through zapped sptes */
};

/* ---- shadow_page.c ---- */

int htab_init(struct htab *t, unsigned bits);
void htab_destroy(struct htab *t);
void htab_add(struct htab *t, struct hnode *n);
void htab_del(struct htab *t, struct hnode *n);
struct hnode *htab_first(const struct htab *t, uint64_t key);

static inline struct hnode *htab_next(struct hnode *n, uint64_t key)
{
	for (n = n->next; n && n->key != key; n = n->next)
		;
	return n;
}

/* Every node with @key. The body must not remove nodes. */
#define htab_for_each_key(t, pos, k) \
	for ((pos) = htab_first((t), (k)); (pos); (pos) = htab_next((pos), (k)))

/* Every node @n (struct hnode *) of @t; @next is read before the body runs, so the body may free
 * @n (not another node). */
#define htab_nodes_for_each(t, n, next)                                                             \
	for (uint64_t b_ = 0; b_ <= (t)->mask; b_++)                                                \
		for (struct hnode *n = (t)->b[b_], *next; n && ((next = n->next), 1); n = next)

int sptep_vec_add(struct sptep_vec *v, uint64_t *sptep);
bool sptep_vec_del(struct sptep_vec *v, uint64_t *sptep);
bool sptep_vec_has(const struct sptep_vec *v, const uint64_t *sptep);

/* The sp whose table holds @sptep, or is frame @pfn; NULL for a frame that is no table. Under
 * mmu_lock, or lockless inside an RCU read section for a table reached through the root or a
 * link read in that section (frames are freed after a grace period). */
struct shadow_page *sptep_to_sp(struct shadow_mmu *sm, const uint64_t *sptep);
struct shadow_page *pfn_to_sp(struct shadow_mmu *sm, pfn_t pfn);

/* The stripe of sm->gfns holding @gfn's state: its 2 MiB, hashed (vCPUs walking slices of equal
 * size in step must not meet on a stripe every time). */
static inline struct gfn_stripe *gfn_stripe(struct shadow_mmu *sm, gfn_t gfn)
{
	return &sm->gfns[hmix(gfn >> 9) % GFN_STRIPES];
}

/* @gfn's GiB node, or NULL if no gfn of it was ever mapped or tracked. */
static inline struct gfn_gig *gfn_gig_find(const struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_dir *d;

	if (gfn >> GFN_BITS)
		return NULL;
	d = __atomic_load_n(&sm->gfn_root[gfn >> GFN_DIR_SHIFT], __ATOMIC_ACQUIRE);
	return d ? __atomic_load_n(&d->gig[(gfn >> GIG_SHIFT) & (SPTE_ENTRIES - 1)],
				   __ATOMIC_ACQUIRE) : NULL;
}

/* @gfn's chunk, or NULL if nothing in its 2 MiB is mapped or tracked. [L] or [G] */
static inline struct gfn_chunk *gfn_chunk_find(const struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_gig *g = gfn_gig_find(sm, gfn);

	return g ? __atomic_load_n(&g->chunk[(gfn >> 9) & (SPTE_ENTRIES - 1)], __ATOMIC_ACQUIRE)
		 : NULL;
}

/* Is gfn @i of chunk @c mapped or tracked (counted in c->used)? */
static inline bool gfn_used(const struct gfn_chunk *c, unsigned i)
{
	return c->rmap[i] || c->write_track[i];
}

/* @gfn's rmap head (0: no leaf maps it). [L] or [G] */
static inline uintptr_t gfn_rmap(const struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_chunk *c = gfn_chunk_find(sm, gfn);

	return c ? c->rmap[gfn & (SPTE_ENTRIES - 1)] : 0;
}

/* [L] or [G] */
static inline bool gfn_write_tracked(struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_chunk *c = gfn_chunk_find(sm, gfn);

	return c && c->write_track[gfn & (SPTE_ENTRIES - 1)];
}

/* The first chunk at or after *@gfn's 2 MiB and before @end, skipping absent directories and
 * GiBs whole; *@gfn becomes its first gfn. NULL if none. [L] */
struct gfn_chunk *gfn_chunk_next(const struct shadow_mmu *sm, gfn_t *gfn, gfn_t end);
/* The same for GiB nodes: the first at or after *@gfn's GiB. [L] */
struct gfn_gig *gfn_gig_next(const struct shadow_mmu *sm, gfn_t *gfn, gfn_t end);

/* Every gfn @g of [@start, @end) in a chunk, @c its chunk as found when the walk reached its
 * 2 MiB (the body may free it: a body that drops rmap entries reads each gfn's state afresh,
 * gfn_rmap). [L] */
#define gfn_range_for_each(sm, c, g, start, end)                                                    \
	for (gfn_t b_ = (start); ((c) = gfn_chunk_next((sm), &b_, (end))); b_ += SPTE_ENTRIES)     \
		for (gfn_t g = b_ < (start) ? (start) : b_; g < b_ + SPTE_ENTRIES && g < (end); g++)
/* Is @sptep in rmap @head? */
bool rmap_has(uintptr_t head, const uint64_t *sptep);
/* Free the radix tree of per-gfn state (the MMU is going: nothing runs on it). */
void shadow_gfn_state_free(struct shadow_mmu *sm);

/* @gfn's stripe locked if @shared (mmu_lock held shared), else NULL ([L]: no lock needed);
 * gfn_unlock() takes either. */
static inline struct gfn_stripe *gfn_lock(struct shadow_mmu *sm, gfn_t gfn, bool shared)
{
	struct gfn_stripe *st;

	if (!shared)
		return NULL;
	st = gfn_stripe(sm, gfn);
	shadow_spin_lock(sm, &st->lock);
	return st;
}

static inline void gfn_unlock(struct gfn_stripe *st)
{
	if (st)
		shadow_spin_unlock(&st->lock);
}

/* The same under mmu_lock held shared too (@shared: the hash may change under another leaf
 * install; a write-tracking count cannot, but a maker's under the same stripe lock). */
static inline bool gfn_write_tracked_shared(struct shadow_mmu *sm, gfn_t gfn, bool shared)
{
	struct gfn_stripe *st = gfn_lock(sm, gfn, shared);
	bool t = gfn_write_tracked(sm, gfn);

	gfn_unlock(st);
	return t;
}

/* The guest entry spte @i of an sp of @role derives from (its index in the guest table). */
static inline unsigned role_gpte_index(union sp_role role, unsigned i)
{
	if (!role.has_4_byte_gpte)
		return i;
	if (role.level == 1)
		return role.quadrant * SPTE_ENTRIES + i;
	return role.quadrant * (SPTE_ENTRIES / 2) + i / 2;
}

static inline unsigned sp_gpte_index(const struct shadow_page *sp, unsigned i)
{
	return role_gpte_index(sp->role, i);
}

/* Bytes of one guest entry of @sp's table. */
static inline unsigned sp_gpte_size(const struct shadow_page *sp)
{
	return sp->role.has_4_byte_gpte ? 4 : 8;
}

/* Guest entry @gi of the guest table at host address @gpt (a whole 4 KiB page), entries of
 * @size bytes; a 4-byte one zero-extended (its bits mean what a 64-bit entry's low bits mean). */
static inline uint64_t gpt_read(const void *gpt, unsigned size, unsigned gi)
{
	if (size == 4)
		return __atomic_load_n((const uint32_t *)gpt + gi, __ATOMIC_ACQUIRE);
	return __atomic_load_n((const uint64_t *)gpt + gi, __ATOMIC_ACQUIRE);
}

/* The guest entry spte @i of @sp derives from, in its guest table at host address @gpt. */
static inline uint64_t sp_read_gpte(const struct shadow_page *sp, const void *gpt, unsigned i)
{
	return gpt_read(gpt, sp_gpte_size(sp), sp_gpte_index(sp, i));
}

/* The sptes of @sp whose guest entries bytes [@off, @off + @len) of its guest table touch:
 * [*@first, *@last], or false if none (a 32-bit table's other quadrant). A partial or
 * misaligned store touches one or two entries; a 32-bit PDE gives two sptes. */
static inline bool sp_sptes_of_bytes(const struct shadow_page *sp, uint32_t off, uint32_t len,
				     unsigned *first, unsigned *last)
{
	if (!sp->role.has_4_byte_gpte) {
		*first = off / 8;
		*last = (off + len - 1) / 8;
		return true;
	}
	unsigned per = sp->role.level == 1 ? 1 : 2;          /* sptes per guest entry */
	unsigned n = SPTE_ENTRIES / per, base = sp->role.quadrant * n;
	unsigned g0 = off / 4, g1 = (off + len - 1) / 4;
	if (g1 < base || g0 >= base + n)
		return false;
	g0 = g0 < base ? base : g0;
	g1 = g1 >= base + n ? base + n - 1 : g1;
	*first = (g0 - base) * per;
	*last = (g1 - base) * per + per - 1;
	return true;
}

/* Does a guest entry at @level of a table of @role map a large page? 32-bit: only with
 * CR4.PSE (role.cr4_pse); without it PS is ignored and the PDE points to a page table. */
static inline bool gpte_is_large(union sp_role role, int level, uint64_t gpte)
{
	return (gpte & PT_PAGE_SIZE_MASK) && (level == 2 || level == 3) &&
	       (!role.has_4_byte_gpte || role.cr4_pse);
}

/* The frame a 32-bit 4 MiB PDE maps (PSE-36: bits 20:13 are physical address bits 39:32). */
static inline gfn_t gpte32_large_gfn(uint64_t pde)
{
	return ((pde & 0xffc00000ULL) | (((pde >> 13) & 0xffULL) << 32)) >> 12;
}

/* Reserved bits of guest entry @gpte at @level of a table of @role: the walker's rules
 * (paging/walk_tmpl.h); for a 32-bit table only a 4 MiB PDE has any (bit 21, and the PSE-36
 * address bits above MAXPHYADDR). */
static inline uint64_t sp_gpte_rsvd(const struct cpu_model *cpu, union sp_role role, int level,
				    uint64_t gpte)
{
	if (role.has_4_byte_gpte) {
		if (level != 2 || !gpte_is_large(role, level, gpte))
			return 0;
		if (!cpu_has(cpu, CPU_FEAT_PSE36))
			return rsvd_bits(13, 21);
		int m = cpu->maxphyaddr < 40 ? cpu->maxphyaddr : 40;
		return rsvd_bits(21, 21) | rsvd_bits(13 + (m - 32), 20);
	}
	struct paging_ctx ctx = { .cpu = *cpu, .efer = role.efer_nx ? EFER_NXE : 0 };
	return paging_rsvd_mask64(&ctx, role.pae ? PAGING_PAE : PAGING_4LVL, level,
				  gpte & PT_PAGE_SIZE_MASK);
}

/* The (first) gfn the leaf at @idx of @sp maps. */
static inline gfn_t sp_leaf_gfn(const struct shadow_page *sp, unsigned idx)
{
	return sp->role.direct ? sp->gfn + ((gfn_t)idx << (9 * (sp->role.level - 1))) : sp->gfns[idx];
}

/* The first gfn of @gfn's 2 MiB (the rmap of a 2M leaf mapping it). */
static inline gfn_t gfn_2m(gfn_t gfn)
{
	return gfn & ~(gfn_t)(SPTE_ENTRIES - 1);
}

/* The largest level, up to @max (2 or 3), at which a leaf for @gfn may go as far as write
 * tracking goes: no gfn of its 2 MiB / 1 GiB is write-tracked (KVM's disallow_lpage); 1 if
 * none. [L]; under mmu_lock shared only with @max 2 (@gfn's stripe lock is taken here). */
int shadow_lpage_level(struct shadow_mmu *sm, gfn_t gfn, int max, bool shared);

/* Every valid sp shadowing guest table @gfn (indirect), collected first so the body may zap. */
#define SHADOW_MAX_SPS_PER_GFN 64
unsigned sps_of_gfn(struct shadow_mmu *sm, gfn_t gfn, struct shadow_page **out, unsigned max);

/* May a truly non-present spte (0) stand in @sp under notrap? Only in an indirect 64-bit sp
 * with EFER.NXE in its role: then the hardware's #PF error code on the shadow (NX always on) is
 * the guest's own (I/D set on fetches), and the guest entry is there to check. (Not for 32-bit
 * tables: no NX there, so the hardware's I/D bit would not be the guest's.) */
static inline bool sp_notrap_ok(const struct shadow_mmu *sm, const struct shadow_page *sp)
{
	return sm->notrap && !sp->role.direct && !sp->role.passthrough && !sp->role.pae &&
	       !sp->role.has_4_byte_gpte && sp->role.efer_nx && !sp->unsync;
}

/* Is @sp unsync, read without mmu_lock inside an RCU read section that reached it? True means
 * it was, and then in the hash (only sps there go unsync; a zap clears the flag before it
 * unlinks). A hint, for a choice any answer keeps correct. */
static inline bool sp_unsync_peek(const struct shadow_page *sp)
{
	return __atomic_load_n(&sp->unsync, __ATOMIC_RELAXED);
}

/* --opt unsync. Let guest table @gfn (host address @gpt) go unsync if every sp of it is a level-1
 * sp that is no root: each stops write-tracking it (mmu_unsync). True if done. [L] */
bool sp_try_unsync(struct shadow_mmu *sm, gfn_t gfn, const void *gpt);
/* The guest flushed its TLB for the address space of @root (a CR3 load, INVPCID, a CR0/CR4
 * change): sync every unsync sp @root reaches (each leaf still derived from its guest entry
 * stays, any other is dropped; the gfn is write-tracked again). Returns the steps taken. [L] */
uint64_t shadow_sync_root(struct shadow_mmu *sm, struct shadow_page *root);

/* Find the sp for (@gfn, @role), or create it (write-tracking @gfn if indirect: leaf sptes
 * mapping it lose write access and the TLBs are flushed before this returns). 0 or -ENOMEM.
 * [L] */
int sp_get(struct shadow_mmu *sm, gfn_t gfn, union sp_role role, struct shadow_page **out);
/* The same; *@created tells a new sp (every entry empty) from one found. [L] */
int sp_get_new(struct shadow_mmu *sm, gfn_t gfn, union sp_role role, struct shadow_page **out,
	       bool *created);
/* Point @sptep (in @parent) at @child. [L] */
int sp_link(struct shadow_mmu *sm, uint64_t *sptep, struct shadow_page *child);
/* The same under mmu_lock held shared: the sp for (@gfn, @role) linked at @sptep, found (in
 * the hash, or linked there by another vCPU meanwhile) or made (its entries as no-trap fill
 * from guest table @gtable wants, if given, before anyone can reach it; *@steps counts that,
 * and the link made).
 * 0 with *@out and *@created; RET_PF_EXCLUSIVE if it takes mmu_lock exclusive (an sp to sync,
 * a different link there, a table gfn some leaf maps), nothing changed; or -ENOMEM. [T] is
 * taken here. */
int sp_get_link_shared(struct shadow_mmu *sm, uint64_t *sptep, gfn_t gfn, union sp_role role,
		       const void *gtable, struct shadow_page **out, bool *created, uint64_t *steps);
/* No-trap: a new indirect sp (all SPTE_TRAP) gets 0, "truly non-present", for every guest entry
 * of @gtable (its guest table, write-tracked already) not present. Returns the steps: one per
 * cache line of guest entries. [L], or the sp not reachable yet. */
uint64_t sp_notrap_fill(struct shadow_mmu *sm, struct shadow_page *sp, const void *gtable);
/* Make the leaf at @sptep (index @idx of @sp, a leaf of @sp's level) map @gfn (its first gfn)
 * with @spte (present, not MMIO), keeping the rmap and counts right. [L], or with @shared:
 * mmu_lock shared and [S] held for a level-1 sp, [T] for a level-2 one (a large leaf among the
 * links that sp_get_link_shared makes; the stripe locks are taken here). A 1G leaf: [L]. */
int leaf_set(struct shadow_mmu *sm, struct shadow_page *sp, uint64_t *sptep, gfn_t gfn,
	     uint64_t spte, bool shared);
/* Clear one spte of @sp (leaf, link or MMIO), keeping rmap/parents right. Returns the old value.
 * [L] */
uint64_t spte_drop(struct shadow_mmu *sm, struct shadow_page *sp, uint64_t *sptep);
/* Zap @sp: unlink it from its parents, drop its sptes (children lose a parent), stop tracking its
 * gfn, queue its frame (or mark it invalid while a root). [L] */
void sp_zap(struct shadow_mmu *sm, struct shadow_page *sp, struct zap_batch *z);
/* A PAE root helper page (passthrough, @level 4 or 3), and its release. [L] */
int sp_alloc_helper(struct shadow_mmu *sm, int level, struct shadow_page **out);
void sp_free_helper(struct shadow_mmu *sm, struct shadow_page *sp);
/* A fault went through @sp: its write flooding count starts over (KVM's
 * clear_sp_write_flooding_count; recency is the hardware's Accessed bits). [L] */
void sp_reset_flooding(struct shadow_page *sp);
/* Drop a root reference; frees an invalid root at zero. [L] */
void sp_put_root(struct shadow_mmu *sm, struct shadow_page *sp);
/* Zap least recently used sps (never one a root slot holds) until @need more fit under the
 * limit; mmu_recycled. @credited: the fault's aging credit was added already (by
 * mmu_pages_available_shared, before it gave up for mmu_lock exclusive). [L] */
void make_mmu_pages_available(struct shadow_mmu *sm, unsigned need, struct zap_batch *z,
			      bool credited);
/* The same under mmu_lock held shared: adds the fault's aging credit and runs the sweep if due;
 * false if an eviction is due: the caller retakes mmu_lock exclusive (credit added). */
bool mmu_pages_available_shared(struct shadow_mmu *sm, unsigned need);
uint64_t shadow_page_limit(const struct shadow_mmu *sm);
/* Remove write access from every leaf mapping @gfn (large leaves covering it too). True if one
 * had it. @for_log: for dirty logging, leaving SPTE_MMU_WRITABLE on a 4K leaf so the fast page
 * fault may give W back; else (write tracking), and on a large leaf (a write splits it),
 * MMU_WRITABLE goes too. [L] */
bool write_protect_gfn(struct shadow_mmu *sm, gfn_t gfn, bool for_log);
/* The gfns whose rmaps hold large leaves that cover @gfn but begin before it (up to 2: its 2 MiB's
 * and its GiB's first gfns), each with the lowest level of its entries that do (the others map
 * their own gfn). 0 while there is no large leaf. [L] */
unsigned gfn_cover_rmaps(struct shadow_mmu *sm, gfn_t gfn, gfn_t *first, int *minlevel);
/* Zap leaves mapping gfns in [start, end) and sps shadowing them. [L] */
void zap_gfn_range(struct shadow_mmu *sm, gfn_t start, gfn_t end, struct zap_batch *z);
void zap_all(struct shadow_mmu *sm, struct zap_batch *z);
/* Finish a batch under the lock: flush remote TLBs if needed. [L] */
void zap_batch_commit(struct shadow_mmu *sm, struct zap_batch *z);
/* ops->free_page: the struct of an sp whose frame went back after its grace period. */
void shadow_free_page(struct mmu_page_free *pf);

/* A change to the soft MMU's tables, for the audit: counted as mmu_stat_add counts (the vCPU's
 * own count while this thread handles its exit: no locked instruction on the fault path). */
static inline void shadow_changed(struct shadow_mmu *sm)
{
	struct mmu_vcpu *v = mmu_vcpu_handling(&sm->mmu);

	if (v)
		counter_add_unlocked(&v->changes, 1);
	else
		__atomic_add_fetch(&sm->shard[mmu_stat_shard()].changes, 1, __ATOMIC_RELAXED);
}

/* The changes so far: only the sum means anything (a vCPU that goes moves its count, under
 * vcpus_lock, which is taken after mmu_lock if at all). */
static inline uint64_t shadow_changes(struct shadow_mmu *sm)
{
	uint64_t sum = 0;

	pthread_mutex_lock(&sm->mmu.vcpus_lock);
	for (unsigned i = 0; i < MMU_STAT_SHARDS; i++)
		sum += __atomic_load_n(&sm->shard[i].changes, __ATOMIC_ACQUIRE);
	for (const struct mmu_vcpu *v = sm->mmu.vcpus; v; v = v->next)
		sum += __atomic_load_n(&v->changes, __ATOMIC_ACQUIRE);
	sum += sm->mmu.changes_gone;
	pthread_mutex_unlock(&sm->mmu.vcpus_lock);
	return sum;
}

/* ---- shadow.c ---- */

/* The root role and level for the vCPU's current control state (for PAE and 32-bit guests the
 * role of the level-2 sps under the vCPU's PAE root, quadrant 0). */
bool shadow_root_role(const struct paging_ctx *g, union sp_role *role, gfn_t *gfn, int *levels);
/* Make the hardware run on the root for the current guest state (finding it in the prev-root
 * cache or the hash, or building it). Takes mmu_lock. 0, -ENOMEM, -EOPNOTSUPP. */
int shadow_load_root(struct shadow_vcpu *sv);
/* The same, mmu_lock held for writing. *@changed: a different root was loaded. @keep_tlb: a
 * MOV CR3 with PCID's no-flush bit: a root from the prev-root cache keeps the TLB. */
int shadow_load_root_locked(struct shadow_vcpu *sv, bool keep_tlb, bool *changed);
/* Does the loaded root still match the guest state (a root may go invalid, the guest state may
 * change with KVM_SET_SREGS, which does not exit)? [L] or owner. */
bool shadow_root_current(struct shadow_vcpu *sv);

/* ---- shadow_fault.c ---- */

/* ops->page_fault: a #PF exit (shadow_fault.c's file comment has its two phases). */
int shadow_page_fault(struct mmu_page_fault *pf);
/* The rights a 64-bit guest entry gives (ACC_*), as the walker folds them. */
static inline unsigned gpte_access64(uint64_t gpte, bool nx)
{
	unsigned acc = ACC_EXEC;
	if (gpte & PT_WRITABLE_MASK)
		acc |= ACC_WRITE;
	if (gpte & PT_USER_MASK)
		acc |= ACC_USER;
	if (nx && (gpte & PT64_NX_MASK))
		acc &= ~ACC_EXEC;
	return acc;
}

/* ---- shadow_hooks.c ---- */

extern const struct memslots_ops shadow_memslots_ops;
void shadow_guest_written(struct mmu *m, gpa_t gpa, uint64_t len);
/* mmu_track_write for the soft MMU (shadow_fault.c). */
uint64_t shadow_track_write(struct mmu *m, gpa_t gpa, uint32_t len);
/* The core's notifier hooks (mmu_internal.h). [L] */
bool shadow_unmap_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end);
bool shadow_age_gfn_range(struct mmu *m, const struct memslot *slot, gfn_t start, gfn_t end,
			  bool clear);

/* ---- shadow_audit.c ---- */

int shadow_audit(struct mmu *m, char *why, size_t whylen);

#endif
