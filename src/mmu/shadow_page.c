/* SPDX-License-Identifier: MIT */
/*
 * Shadow pages: the hash by (gfn, role), the frame -> sp map, the LRU and its page limit, parent
 * links, the rmap (gfn -> leaf sptes), write tracking, zapping and the deferred freeing of table
 * frames. Invariants: shadow.h. Locking: every function here runs with mmu_lock held for
 * writing, except shadow_free_page, which the call_rcu worker runs after a grace period, and
 * what says otherwise: leaf_set with @shared, mmu_pages_available_shared, sp_reset_flooding and
 * shadow_spin_wait also run under mmu_lock held shared (VMMU_MMU_LOCK_FINE, shadow.h).
 */
#include <errno.h>
#include <stddef.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "host/pool.h"
#include "mmu/shadow.h"

/* ---- hash chains ---- */

int htab_init(struct htab *t, unsigned bits)
{
	t->b = calloc(1ULL << bits, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	t->mask = (1ULL << bits) - 1;
	t->n = 0;
	return 0;
}

void htab_destroy(struct htab *t)
{
	free(t->b);
	t->b = NULL;
}

/* Double the buckets; on allocation failure keep the old ones (chains just grow longer). */
static void htab_grow(struct htab *t)
{
	uint64_t nmask = t->mask * 2 + 1;
	struct hnode **nb = calloc(nmask + 1, sizeof(*nb));

	if (!nb)
		return;
	for (uint64_t i = 0; i <= t->mask; i++) {
		struct hnode *n = t->b[i], *next;
		for (; n; n = next) {
			next = n->next;
			struct hnode **head = &nb[hmix(n->key) & nmask];
			n->next = *head;
			*head = n;
		}
	}
	free(t->b);
	t->b = nb;
	t->mask = nmask;
}

void htab_add(struct htab *t, struct hnode *n)
{
	if (t->n >= 2 * (t->mask + 1))
		htab_grow(t);
	struct hnode **head = &t->b[hmix(n->key) & t->mask];
	n->next = *head;
	*head = n;
	t->n++;
}

void htab_del(struct htab *t, struct hnode *n)
{
	struct hnode **p = &t->b[hmix(n->key) & t->mask];

	for (; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			n->next = NULL;
			t->n--;
			return;
		}
	}
}

struct hnode *htab_first(const struct htab *t, uint64_t key)
{
	struct hnode *n = t->b[hmix(key) & t->mask];

	while (n && n->key != key)
		n = n->next;
	return n;
}

/* ---- the fine-grained locks (shadow.h) ---- */

void shadow_spin_wait(struct shadow_mmu *sm, uint32_t *l)
{
	mmu_stat_inc(&sm->mmu, sp_lock_contended);
	do {
		for (unsigned spins = 0; __atomic_load_n(l, __ATOMIC_RELAXED); spins++) {
			if (spins % 128 == 127)
				sched_yield();
			else
				__builtin_ia32_pause();
		}
	} while (__atomic_exchange_n(l, 1, __ATOMIC_ACQUIRE));
}

/* ---- spte pointer vectors ---- */

int sptep_vec_add(struct sptep_vec *v, uint64_t *sptep)
{
	if (v->n == v->cap) {
		uint32_t cap = v->cap ? v->cap * 2 : 2;
		uint64_t **nv = realloc(v->v, cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		v->v = nv;
		v->cap = cap;
	}
	v->v[v->n++] = sptep;
	return 0;
}

bool sptep_vec_del(struct sptep_vec *v, uint64_t *sptep)
{
	for (uint32_t i = v->n; i-- > 0;) {
		if (v->v[i] == sptep) {
			v->v[i] = v->v[--v->n];
			return true;
		}
	}
	return false;
}

bool sptep_vec_has(const struct sptep_vec *v, const uint64_t *sptep)
{
	for (uint32_t i = 0; i < v->n; i++)
		if (v->v[i] == sptep)
			return true;
	return false;
}

static void sptep_vec_free(struct sptep_vec *v)
{
	free(v->v);
	v->v = NULL;
	v->n = v->cap = 0;
}

/* ---- lookups ---- */

/* The frame's private word holds its sp from creation until the frame is freed, after a grace
 * period: any table reached through a link (or the root) under an RCU read section has it. */
struct shadow_page *pfn_to_sp(struct shadow_mmu *sm, pfn_t pfn)
{
	return (struct shadow_page *)host_frame_private(sm->mmu.env.arena, pfn);
}

struct shadow_page *sptep_to_sp(struct shadow_mmu *sm, const uint64_t *sptep)
{
	return pfn_to_sp(sm, (pfn_t)(((const uint8_t *)sptep - sm->arena_base) >> 12));
}

/* ---- metadata memory (host/pool.h: populated in bulk, not faulted in by the handler) ---- */

static struct host_pool sp_pool = HOST_POOL_INIT(sizeof(struct shadow_page));
static struct host_pool gfns_pool = HOST_POOL_INIT(SPTE_ENTRIES * sizeof(gfn_t));
static struct host_pool dir_pool = HOST_POOL_INIT(sizeof(struct gfn_dir));
static struct host_pool gig_pool = HOST_POOL_INIT(sizeof(struct gfn_gig));
static struct host_pool chunk_pool = HOST_POOL_INIT(sizeof(struct gfn_chunk));

/* ---- per-gfn state (shadow.h: the radix tree by gfn) ---- */

/* The node at *@slotp, or a new zeroed one published there; NULL if out of memory. Creators of
 * one directory or GiB may race (each under its own stripe lock): one wins, the others free
 * theirs and take it. */
#define gfn_node_get(slotp, pool)                                                                   \
	({                                                                                          \
		__typeof__(*(slotp)) cur_ = __atomic_load_n((slotp), __ATOMIC_ACQUIRE), new_;       \
		if (!cur_ && (new_ = host_pool_zalloc(pool))) {                                     \
			if (__atomic_compare_exchange_n((slotp), &cur_, new_, false,                \
							__ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))        \
				cur_ = new_;                                                        \
			else                                                                        \
				host_pool_free((pool), new_);                                       \
		}                                                                                   \
		cur_;                                                                               \
	})

/* @gfn's GiB node, made if missing; NULL if out of memory (or beyond GFN_BITS). */
VMMU_HOT
static struct gfn_gig *gfn_gig_get(struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_dir *d;

	if (gfn >> GFN_BITS)
		return NULL;
	d = gfn_node_get(&sm->gfn_root[gfn >> GFN_DIR_SHIFT], &dir_pool);
	return d ? gfn_node_get(&d->gig[(gfn >> GIG_SHIFT) & (SPTE_ENTRIES - 1)], &gig_pool) : NULL;
}

/* @gfn's chunk, made if missing; NULL if out of memory. [L] or [G] */
VMMU_HOT
static struct gfn_chunk *gfn_chunk_get(struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_gig *g = gfn_gig_get(sm, gfn);

	return g ? gfn_node_get(&g->chunk[(gfn >> 9) & (SPTE_ENTRIES - 1)], &chunk_pool) : NULL;
}

/* Free @c, @gfn's chunk, once nothing in its 2 MiB is mapped or tracked. [L] or [G] */
static void gfn_chunk_put(struct shadow_mmu *sm, gfn_t gfn, struct gfn_chunk *c)
{
	if (c->used || c->lpage_track)
		return;
	__atomic_store_n(&gfn_gig_find(sm, gfn)->chunk[(gfn >> 9) & (SPTE_ENTRIES - 1)], NULL,
			 __ATOMIC_RELEASE);
	host_pool_free(&chunk_pool, c);
}

struct gfn_gig *gfn_gig_next(const struct shadow_mmu *sm, gfn_t *gfn, gfn_t end)
{
	const gfn_t gig = 1ULL << GIG_SHIFT, dir = 1ULL << GFN_DIR_SHIFT;

	if (end > 1ULL << GFN_BITS)
		end = 1ULL << GFN_BITS;
	for (gfn_t g = *gfn & ~(gig - 1); g < end;) {
		struct gfn_dir *d = __atomic_load_n(&sm->gfn_root[g >> GFN_DIR_SHIFT], __ATOMIC_ACQUIRE);
		if (!d) {
			g = (g | (dir - 1)) + 1;
			continue;
		}
		struct gfn_gig *n = __atomic_load_n(&d->gig[(g >> GIG_SHIFT) & (SPTE_ENTRIES - 1)],
						    __ATOMIC_ACQUIRE);
		if (n) {
			*gfn = g;
			return n;
		}
		g += gig;
	}
	return NULL;
}

struct gfn_chunk *gfn_chunk_next(const struct shadow_mmu *sm, gfn_t *gfn, gfn_t end)
{
	gfn_t g = gfn_2m(*gfn);
	struct gfn_gig *n;

	for (gfn_t base = g; (n = gfn_gig_next(sm, &base, end)); base += 1ULL << GIG_SHIFT) {
		if (g < base)
			g = base;
		for (; g < base + (1ULL << GIG_SHIFT) && g < end; g += SPTE_ENTRIES) {
			struct gfn_chunk *c = __atomic_load_n(&n->chunk[(g >> 9) & (SPTE_ENTRIES - 1)],
							      __ATOMIC_ACQUIRE);
			if (c) {
				*gfn = g;
				return c;
			}
		}
	}
	return NULL;
}

/* ---- rmap heads (shadow.h) ---- */

/* A gfn's second leaf (the usual case: a frame both a process and the kernel's direct map map)
 * takes a desc of the first size, from a pool (host/pool.h: populated memory, where malloc's
 * fresh heap took a host page fault at its first write inside the fault handler, and its own
 * search); larger ones, rare, come from malloc. Which one a desc is, its cap says. */
#define RMAP_DESC_FIRST 4
static struct host_pool rmap_desc_pool =
	HOST_POOL_INIT(sizeof(struct rmap_desc) + RMAP_DESC_FIRST * sizeof(uint64_t *));

static void rmap_desc_free(struct rmap_desc *d)
{
	if (d->cap == RMAP_DESC_FIRST)
		host_pool_free(&rmap_desc_pool, d);
	else
		free(d);
}

static int rmap_head_add(uintptr_t *head, uint64_t *sptep)
{
	struct rmap_desc *d;

	if (!*head) {
		*head = (uintptr_t)sptep;
		return 0;
	}
	if (!(*head & 1)) {
		d = host_pool_zalloc(&rmap_desc_pool);
		if (!d)
			return -ENOMEM;
		d->cap = RMAP_DESC_FIRST;
		d->n = 1;
		d->v[0] = (uint64_t *)*head;
	} else {
		d = rmap_desc_of(*head);
		if (d->n == d->cap) {
			/* Read before realloc, which frees @d. */
			const bool pooled = d->cap == RMAP_DESC_FIRST;
			const uint32_t cap = d->cap;
			size_t bytes = sizeof(*d) + cap * sizeof(d->v[0]);
			struct rmap_desc *nd = pooled ? malloc(2 * bytes - sizeof(*d)) :
							realloc(d, 2 * bytes - sizeof(*d));
			if (!nd)
				return -ENOMEM;
			if (pooled) {
				memcpy(nd, d, bytes);
				host_pool_free(&rmap_desc_pool, d);
			}
			d = nd;
			d->cap = 2 * cap;
		}
	}
	d->v[d->n++] = sptep;
	*head = (uintptr_t)d | 1;
	return 0;
}

/* Take @sptep out of @head: the last entry moves into its place, and a last one left goes back
 * inline (entries below the removed one keep their index). */
static void rmap_head_del(uintptr_t *head, const uint64_t *sptep)
{
	struct rmap_desc *d;

	if (!(*head & 1)) {
		if (*head == (uintptr_t)sptep)
			*head = 0;
		return;
	}
	d = rmap_desc_of(*head);
	for (uint32_t i = d->n; i-- > 0;) {
		if (d->v[i] == sptep) {
			d->v[i] = d->v[--d->n];
			break;
		}
	}
	if (d->n == 1) {
		*head = (uintptr_t)d->v[0];
		rmap_desc_free(d);
	}
}

static void rmap_head_free(uintptr_t *head)
{
	if (*head & 1)
		rmap_desc_free(rmap_desc_of(*head));
	*head = 0;
}

bool rmap_has(uintptr_t head, const uint64_t *sptep)
{
	for (uint32_t i = 0, n = rmap_count(head); i < n; i++)
		if (rmap_at(head, i) == sptep)
			return true;
	return false;
}

void shadow_gfn_state_free(struct shadow_mmu *sm)
{
	for (unsigned r = 0; r < 1u << (GFN_BITS - GFN_DIR_SHIFT); r++) {
		struct gfn_dir *d = sm->gfn_root[r];
		for (unsigned j = 0; d && j < SPTE_ENTRIES; j++) {
			struct gfn_gig *g = d->gig[j];
			for (unsigned k = 0; g && k < SPTE_ENTRIES; k++) {
				struct gfn_chunk *c = g->chunk[k];
				for (unsigned i = 0; c && i < SPTE_ENTRIES; i++)
					rmap_head_free(&c->rmap[i]);
				host_pool_free(&chunk_pool, c);
			}
			host_pool_free(&gig_pool, g);
		}
		host_pool_free(&dir_pool, d);
		sm->gfn_root[r] = NULL;
	}
}

unsigned sps_of_gfn(struct shadow_mmu *sm, gfn_t gfn, struct shadow_page **out, unsigned max)
{
	struct hnode *n;
	unsigned k = 0;

	htab_for_each_key(&sm->sp_hash, n, gfn) {
		struct shadow_page *sp = caa_container_of(n, struct shadow_page, hash);
		if (!sp->role.direct && k < max)
			out[k++] = sp;
	}
	return k;
}

/* ---- rmap and write tracking ---- */

/*
 * Large leaves covering @gfn beside those in its own rmap: the level-2 and -3 leaves of its 2 MiB's
 * first gfn, the level-3 ones of its 1 GiB's first gfn (each rmap holds the leaves that start at
 * its gfn). Fills @first/@minlevel with those whose rmap holds any; returns how many (0 while no
 * large leaf exists). [L], or with @gfn's stripe lock for the 2 MiB one alone (@max_level 2).
 */
static unsigned cover_rmaps(struct shadow_mmu *sm, gfn_t gfn, int max_level, gfn_t *first,
			    int *minlevel)
{
	gfn_t b2 = gfn_2m(gfn), b1 = gfn & ~((1ULL << GIG_SHIFT) - 1);
	unsigned n = 0;

	if (!__atomic_load_n(&sm->nr_large, __ATOMIC_RELAXED))
		return 0;
	if (b2 != gfn && gfn_rmap(sm, b2)) {
		first[n] = b2;
		minlevel[n++] = 2;
	}
	if (max_level >= 3 && b1 != b2 && gfn_rmap(sm, b1)) {
		first[n] = b1;
		minlevel[n++] = 3;
	}
	return n;
}

/* The level of the leaf at @sptep (an rmap entry): its sp's. */
static int rmap_level(struct shadow_mmu *sm, const uint64_t *sptep)
{
	return (int)sptep_to_sp(sm, sptep)->role.level;
}

/* Clear @clear in @sptep; true if W was set. Compare-and-swap: the page-walk hardware may be
 * setting A/D in the same spte; a lost swap re-reads and tries again. */
static bool spte_clear_bits(uint64_t *sptep, uint64_t clear)
{
	uint64_t old = spte_read(sptep);

	while (old & clear) {
		if (spte_cmpxchg(sptep, &old, old & ~clear))
			return old & PT_WRITABLE_MASK;
	}
	return false;
}

static int rmap_add(struct shadow_mmu *sm, gfn_t gfn, uint64_t *sptep)
{
	struct gfn_chunk *c = gfn_chunk_get(sm, gfn);
	unsigned i = gfn & (SPTE_ENTRIES - 1);
	bool was;
	int rc;

	if (!c)
		return -ENOMEM;
	was = gfn_used(c, i);
	rc = rmap_head_add(&c->rmap[i], sptep);
	if (rc) {
		gfn_chunk_put(sm, gfn, c);        /* one made for this gfn alone goes */
		return rc;
	}
	c->used += !was;
	return 0;
}

static void rmap_del(struct shadow_mmu *sm, gfn_t gfn, uint64_t *sptep)
{
	struct gfn_chunk *c = gfn_chunk_find(sm, gfn);
	unsigned i = gfn & (SPTE_ENTRIES - 1);

	if (!c || !c->rmap[i])
		return;
	rmap_head_del(&c->rmap[i], sptep);
	c->used -= !gfn_used(c, i);
	gfn_chunk_put(sm, gfn, c);
}

bool write_protect_gfn(struct shadow_mmu *sm, gfn_t gfn, bool for_log)
{
	uintptr_t heads[3];
	gfn_t first[2];
	int minlevel[3] = { 1 };
	const uint64_t all = PT_WRITABLE_MASK | SPTE_MMU_WRITABLE;
	const uint64_t clear = for_log ? PT_WRITABLE_MASK : all;
	unsigned n = 1 + cover_rmaps(sm, gfn, 3, first, minlevel + 1);
	/* While no large leaf exists every rmap entry is a 4K leaf: no sp lookup per entry. */
	const bool large = __atomic_load_n(&sm->nr_large, __ATOMIC_RELAXED);
	bool changed = false;

	heads[0] = gfn_rmap(sm, gfn);
	for (unsigned k = 1; k < n; k++)
		heads[k] = gfn_rmap(sm, first[k - 1]);
	for (unsigned k = 0; k < n; k++) {
		for (uint32_t i = 0, e = rmap_count(heads[k]); i < e; i++) {
			uint64_t *sptep = rmap_at(heads[k], i);
			int level = large ? rmap_level(sm, sptep) : 1;
			if (level >= minlevel[k])
				changed |= spte_clear_bits(sptep, level > 1 ? all : clear);
		}
	}
	if (changed)
		shadow_changed(sm);
	return changed;
}

/* The write tracking of @gfn (in chunk @c) began (@delta 1) or ended (-1): its 2 MiB and 1 GiB
 * count it, so no large leaf is made writable over it. The chunk's count is under @gfn's stripe
 * lock; the GiB's needs [L] or [T]. */
static void track_lpage(struct shadow_mmu *sm, struct gfn_chunk *c, gfn_t gfn, int delta)
{
	c->lpage_track += (uint32_t)delta;
	gfn_gig_find(sm, gfn)->tracked += (uint32_t)delta;   /* the chunk's GiB: there */
}

int shadow_lpage_level(struct shadow_mmu *sm, gfn_t gfn, int max, bool shared)
{
	if (max >= 3) {
		struct gfn_gig *g = gfn_gig_find(sm, gfn);
		if (!g || !g->tracked)
			return 3;
	}
	if (max >= 2) {
		struct gfn_stripe *st = gfn_lock(sm, gfn, shared);
		struct gfn_chunk *c = gfn_chunk_find(sm, gfn);
		bool ok = !c || !c->lpage_track;
		gfn_unlock(st);
		if (ok)
			return 2;
	}
	return 1;
}

/* Write tracking of @gfn (in chunk @c) begins or counts one sp more. [L] or [G], and [T] */
static void track_one(struct shadow_mmu *sm, struct gfn_chunk *c, gfn_t gfn)
{
	unsigned i = gfn & (SPTE_ENTRIES - 1);

	if (!c->write_track[i]++) {
		c->used += !c->rmap[i];
		track_lpage(sm, c, gfn, 1);
	}
}

/* An indirect sp now shadows @gfn: writes to it must exit from now on. */
static int account_shadowed(struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_chunk *c = gfn_chunk_get(sm, gfn);

	if (!c)
		return -ENOMEM;
	track_one(sm, c, gfn);
	if (c->write_track[gfn & (SPTE_ENTRIES - 1)] == 1 && write_protect_gfn(sm, gfn, false)) {
		/* A vCPU's TLB may still allow the write: the flush must precede the caller's
		 * check that the guest table is unchanged. */
		mmu_flush_remote_tlbs(&sm->mmu);
	}
	return 0;
}

static void unaccount_shadowed(struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_chunk *c = gfn_chunk_find(sm, gfn);
	unsigned i = gfn & (SPTE_ENTRIES - 1);

	if (!c || !c->write_track[i])
		return;
	if (--c->write_track[i] == 0) {
		track_lpage(sm, c, gfn, -1);
		c->used -= !c->rmap[i];
	}
	gfn_chunk_put(sm, gfn, c);
}

/* ---- unsync (--opt unsync) ---- */

/*
 * Unsync children are tracked up to the roots (KVM's unsync_child_bitmap): bit i of an sp is set
 * when its entry i links an sp that is unsync or has unsync children itself, so a guest flush
 * syncs what its roots reach and nothing else. A bit may be stale (set over a link that no longer
 * leads to anything unsync): the walk that finds it so clears it. Never missing: mark_link runs
 * whenever an sp goes unsync, and sp_link marks a new link to such an sp. [L]
 */
static void mark_parents(struct shadow_mmu *sm, struct shadow_page *sp);

static void mark_link(struct shadow_mmu *sm, uint64_t *sptep)
{
	struct shadow_page *psp = sptep_to_sp(sm, sptep);
	unsigned idx = sptep_index(sptep);
	uint64_t bit = 1ULL << (idx % 64);

	if (!psp || (psp->unsync_child_bitmap[idx / 64] & bit))
		return;
	psp->unsync_child_bitmap[idx / 64] |= bit;
	/* Its links were marked when its count left 0, and stay marked while it is above 0. */
	if (psp->unsync_children++ == 0)
		mark_parents(sm, psp);
}

static void mark_parents(struct shadow_mmu *sm, struct shadow_page *sp)
{
	for (uint32_t i = 0; i < sp->parents.n; i++)
		mark_link(sm, sp->parents.v[i]);
}

static void clear_unsync_bit(struct shadow_page *sp, unsigned idx)
{
	uint64_t bit = 1ULL << (idx % 64);

	if (sp->unsync_child_bitmap[idx / 64] & bit) {
		sp->unsync_child_bitmap[idx / 64] &= ~bit;
		sp->unsync_children--;
	}
}

bool sp_try_unsync(struct shadow_mmu *sm, gfn_t gfn, const void *gpt)
{
	struct shadow_page *sps[SHADOW_MAX_SPS_PER_GFN];
	unsigned n = sps_of_gfn(sm, gfn, sps, SHADOW_MAX_SPS_PER_GFN);

	if (!n || n == SHADOW_MAX_SPS_PER_GFN)
		return false;
	/* Not if the gfn is also shadowed at another level or as a root (KVM's
	 * mmu_try_to_unsync_pages): those sptes are links, which must never be stale. */
	for (unsigned i = 0; i < n; i++)
		if (sps[i]->role.level != 1 || sps[i]->root_count || sps[i]->unsync ||
		    sps[i]->role.passthrough)
			return false;
	for (unsigned i = 0; i < n; i++) {
		struct shadow_page *sp = sps[i];
		/* Truly non-present sptes would go stale as the guest writes: trap instead. */
		for (unsigned j = 0; sm->trap_spte && j < SPTE_ENTRIES; j++)
			if (!spte_read(&sp->spt[j]))
				spte_write(&sp->spt[j], sm->trap_spte);
		__atomic_store_n(&sp->unsync, true, __ATOMIC_RELAXED);
		sp->unsync_gpt = gpt;
		sm->nr_unsync++;
		unaccount_shadowed(sm, gfn);
		mark_parents(sm, sp);
		mmu_stat_inc(&sm->mmu, mmu_unsync);
	}
	shadow_changed(sm);
	return true;
}

/* Is leaf @s (index @i of level-1 sp @sp) still what guest entry @gpte gives, or narrower? */
static bool leaf_still_derived(const struct shadow_mmu *sm, const struct shadow_page *sp,
			       unsigned i, uint64_t s, uint64_t gpte)
{
	uint64_t rsvd = sp_gpte_rsvd(&sm->mmu.env.cpu, sp->role, 1, gpte);
	unsigned acc = sp->role.access & gpte_access64(gpte, sp->role.efer_nx);
	bool w_ok = (acc & ACC_WRITE) || (!sp->role.cr0_wp && !(s & PT_USER_MASK));

	if (!(gpte & PT_PRESENT_MASK) || !(gpte & PT_ACCESSED_MASK) || (gpte & rsvd) ||
	    ((gpte & rsvd_bits(12, 51)) >> 12) != sp->gfns[i])
		return false;
	if (((s & PT_USER_MASK) && !(acc & ACC_USER)) || (!(s & PT64_NX_MASK) && !(acc & ACC_EXEC)))
		return false;
	if ((s & (PT_WRITABLE_MASK | SPTE_MMU_WRITABLE)) && (!w_ok || !(gpte & PT_DIRTY_MASK)))
		return false;
	return (s & PT_GLOBAL_MASK) == (gpte & PT_GLOBAL_MASK) &&
	       (s & SPTE_PKEY_MASK) == (gpte & SPTE_PKEY_MASK);
}

/*
 * Sync one unsync sp (KVM's kvm_sync_page, dropping what it cannot keep): tracked again, each
 * leaf still derived from its guest entry stays, any other goes; under notrap an entry whose
 * guest entry is not present becomes truly non-present again (0), so the guest's own faults
 * there stop exiting. Steps charged: one per cache line of guest entries read. [L]
 */
static uint64_t sp_sync(struct shadow_mmu *sm, struct shadow_page *sp)
{
	const void *gpt = sp->unsync_gpt;
	bool notrap;

	/* Tracked again first: leaves mapping the table lose W (the TLBs that allow it are
	 * flushed), so the guest entries read below stay as they are while we hold the lock. No
	 * memory for the gfn's state: it stays unsync until the next flush. */
	if (account_shadowed(sm, sp->gfn))
		return 0;
	__atomic_store_n(&sp->unsync, false, __ATOMIC_RELAXED);
	sp->unsync_gpt = NULL;
	sm->nr_unsync--;
	notrap = sp_notrap_ok(sm, sp);
	for (unsigned i = 0; i < SPTE_ENTRIES; i++) {
		uint64_t s = spte_read(&sp->spt[i]);
		uint64_t gpte = sp_read_gpte(sp, gpt, i);
		if (is_shadow_present_pte(s) && leaf_still_derived(sm, sp, i, s, gpte))
			continue;
		if (s != sm->trap_spte)
			spte_drop(sm, sp, &sp->spt[i]);
		if (notrap && !(gpte & PT_PRESENT_MASK))
			spte_write(&sp->spt[i], 0);
	}
	shadow_changed(sm);
	return SPTE_ENTRIES / 8;
}

/* KVM's mmu_sync_children: every unsync sp the marked links of @sp lead to. [L] */
static uint64_t sync_children(struct shadow_mmu *sm, struct shadow_page *sp)
{
	uint64_t steps = 0;

	for (unsigned w = 0; w < SPTE_ENTRIES / 64 && sp->unsync_children; w++) {
		uint64_t bits = sp->unsync_child_bitmap[w];
		while (bits) {
			unsigned idx = w * 64 + (unsigned)__builtin_ctzll(bits);
			uint64_t s = spte_read(&sp->spt[idx]);
			struct shadow_page *child = NULL;

			bits &= bits - 1;
			steps++;
			if (is_shadow_present_pte(s) && !is_last_spte(s, sp->role.level))
				child = pfn_to_sp(sm, spte_to_pfn(s));
			if (child && child->unsync)
				steps += sp_sync(sm, child);
			if (child && child->unsync_children)
				steps += sync_children(sm, child);
			if (!child || (!child->unsync && !child->unsync_children))
				clear_unsync_bit(sp, idx);
		}
	}
	return steps;
}

uint64_t shadow_sync_root(struct shadow_mmu *sm, struct shadow_page *root)
{
	if (!root || root->invalid || !sm->nr_unsync)
		return 0;
	return sync_children(sm, root);
}

/* ---- creating, linking, dropping ---- */

uint64_t shadow_page_limit(const struct shadow_mmu *sm)
{
	uint64_t max = sm->mmu.env.max_shadow_pages;

	if (max)
		return max < 8 ? 8 : max;
	/* As KVM's kvm_mmu_calculate_default_mmu_pages: 2% of guest memory, at least 64. */
	max = sm->slot_pages * 20 / 1000;
	return max < 64 ? 64 : max;
}

static void sp_free_struct(struct shadow_page *sp)
{
	host_pool_free(&gfns_pool, sp->gfns);
	sptep_vec_free(&sp->parents);
	host_pool_free(&sp_pool, sp);
}

void shadow_free_page(struct mmu_page_free *pf)
{
	sp_free_struct(caa_container_of(pf, struct shadow_page, free));
}

/* The frame goes back after a grace period: a vCPU's page-walk hardware, or a fast page fault,
 * may be reading it (and its sp, through the frame's private word). */
static void sp_queue_free(struct shadow_mmu *sm, struct shadow_page *sp)
{
	htab_del(&sm->sp_by_pfn, &sp->by_pfn);
	mmu_free_page_rcu(&sm->mmu, &sp->free, sp->pfn);
}

/* A new table (zeroed): with notrap every entry starts "not yet shadowed", trapping. Before it
 * is published (no one else sees it yet). */
static void sp_fill_trap(struct shadow_mmu *sm, struct shadow_page *sp)
{
	if (!sm->trap_spte)
		return;
	for (unsigned i = 0; i < SPTE_ENTRIES; i++)
		spte_write(&sp->spt[i], sm->trap_spte);
}

int sp_get(struct shadow_mmu *sm, gfn_t gfn, union sp_role role, struct shadow_page **out)
{
	bool created;
	return sp_get_new(sm, gfn, role, out, &created);
}

/*
 * Make the sp for (@gfn, @role) and enter it in the hash, the frame map and the LRU (KVM's
 * kvm_mmu_alloc_shadow_page). [L], or with @shared under [T] with mmu_lock shared, the gfn's
 * write tracking taken by the caller (sp_get_link_shared), and no-trap fill from @gtable done
 * before the sp is entered anywhere another vCPU could reach it (*@steps counts it). 0 or
 * -errno.
 */
static int sp_new(struct shadow_mmu *sm, gfn_t gfn, union sp_role role, bool shared,
		  const void *gtable, uint64_t *steps, struct shadow_page **out)
{
	struct shadow_page *sp;
	pfn_t pfn;
	int rc;

	sp = host_pool_zalloc(&sp_pool);
	if (!sp)
		return -ENOMEM;
	if (role.level == 1 && !role.direct) {
		sp->gfns = host_pool_zalloc(&gfns_pool);
		if (!sp->gfns) {
			host_pool_free(&sp_pool, sp);
			return -ENOMEM;
		}
	}
	rc = host_frame_alloc(sm->mmu.env.arena, 0, &pfn);   /* zeroed: every spte not present */
	if (rc) {
		sp_free_struct(sp);
		return rc;
	}
	sp->gfn = gfn;
	sp->role = role;
	sp->pfn = pfn;
	sp->spt = host_pfn_to_ptr(sm->mmu.env.arena, pfn);
	sp_fill_trap(sm, sp);
	sp->hash.key = gfn;
	sp->by_pfn.key = pfn;
	if (!role.direct && !shared) {
		rc = account_shadowed(sm, gfn);
		if (rc) {
			host_frame_put(sm->mmu.env.arena, pfn, 0);
			sp_free_struct(sp);
			return rc;
		}
	}
	if (gtable)
		*steps += sp_notrap_fill(sm, sp, gtable);
	host_frame_set_private(sm->mmu.env.arena, pfn, (uintptr_t)sp);
	htab_add(&sm->sp_hash, &sp->hash);
	htab_add(&sm->sp_by_pfn, &sp->by_pfn);
	cds_list_add(&sp->lru, &sm->lru);
	__atomic_add_fetch(&sm->nr_sps, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&sm->nr_indirect, !role.direct, __ATOMIC_RELAXED);
	mmu_stat_inc(&sm->mmu, shadow_pages);
	mmu_stat_inc(&sm->mmu, mmu_cache_miss);
	shadow_changed(sm);
	*out = sp;
	return 0;
}

/* The valid sp of (@gfn, @role), or NULL. [L] or [T] */
static struct shadow_page *sp_find(struct shadow_mmu *sm, gfn_t gfn, union sp_role role)
{
	struct hnode *n;

	htab_for_each_key(&sm->sp_hash, n, gfn) {
		struct shadow_page *sp = caa_container_of(n, struct shadow_page, hash);
		if (sp->role.word == role.word)
			return sp;
	}
	return NULL;
}

int sp_get_new(struct shadow_mmu *sm, gfn_t gfn, union sp_role role, struct shadow_page **out,
	       bool *created)
{
	struct shadow_page *sp = sp_find(sm, gfn, role);
	struct hnode *n;
	int rc;

	*created = false;
	if (sp) {
		/* About to be linked at a new place, where the guest cannot have cached the entries
		 * an unsync sp may still hold: synced first (as KVM's kvm_mmu_find_shadow_page). */
		if (sp->unsync)
			sp_sync(sm, sp);
		/* Its unsync children too (KVM requests KVM_REQ_MMU_SYNC here): the new link may
		 * put them under a root that no guest flush covered while they were detached from
		 * it, and their stale entries would be reached through it. */
		if (sp->unsync_children)
			sync_children(sm, sp);
		*out = sp;
		return 0;
	}
	/* Shadowed at another level or role now: an unsync sp of the gfn syncs first (the new
	 * sp's gfn is write-tracked; no sp of it stays unsync). */
	if (!role.direct && sm->nr_unsync) {
		htab_for_each_key(&sm->sp_hash, n, gfn) {
			sp = caa_container_of(n, struct shadow_page, hash);
			if (sp->unsync)
				sp_sync(sm, sp);
		}
	}
	rc = sp_new(sm, gfn, role, false, NULL, NULL, out);
	*created = !rc;
	return rc;
}

/*
 * Write tracking for a new indirect sp of @gfn under mmu_lock shared: taken only if no leaf maps
 * the gfn (else the leaves must lose W and the TLBs be flushed: exclusive work). Tracking and
 * the check are one step under the gfn's stripe lock, so no shared fault maps the gfn writable
 * after it: a leaf install reads the count under the same lock. No TLB can allow a write
 * either: the last leaf that mapped it was zapped under mmu_lock exclusive and flushed.
 */
static bool track_unmapped_shared(struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_stripe *st = gfn_stripe(sm, gfn);
	struct gfn_chunk *c;
	gfn_t cover[2];
	int minlevel[2];
	bool ok = false;

	/* A 1G leaf over it (made and dropped only under mmu_lock exclusive; the count read under
	 * [T], held by the caller) is exclusive work too. */
	struct gfn_gig *g = gfn_gig_find(sm, gfn);
	if (g && g->leaves)
		return false;
	shadow_spin_lock(sm, &st->lock);
	c = gfn_chunk_get(sm, gfn);
	ok = c && !c->rmap[gfn & (SPTE_ENTRIES - 1)];
	/* A 2M leaf over it: its rmap is in the same chunk. */
	for (unsigned k = 0, n = ok ? cover_rmaps(sm, gfn, 2, cover, minlevel) : 0; k < n; k++) {
		uintptr_t h = gfn_rmap(sm, cover[k]);
		for (uint32_t i = 0, e = rmap_count(h); ok && i < e; i++)
			ok = rmap_level(sm, rmap_at(h, i)) < minlevel[k];
	}
	if (ok)
		track_one(sm, c, gfn);
	else if (c)
		gfn_chunk_put(sm, gfn, c);
	shadow_spin_unlock(&st->lock);
	return ok;
}

static void untrack_shared(struct shadow_mmu *sm, gfn_t gfn)
{
	struct gfn_stripe *st = gfn_stripe(sm, gfn);

	shadow_spin_lock(sm, &st->lock);
	unaccount_shadowed(sm, gfn);
	shadow_spin_unlock(&st->lock);
}

int sp_get_link_shared(struct shadow_mmu *sm, uint64_t *sptep, gfn_t gfn, union sp_role role,
		       const void *gtable, struct shadow_page **out, bool *created, uint64_t *steps)
{
	struct shadow_page *sp;
	uint64_t spte;
	int rc = RET_PF_EXCLUSIVE;

	*created = false;
	shadow_spin_lock(sm, &sm->struct_lock);
	/* Only [T] links under mmu_lock shared: an entry present now was linked by another vCPU
	 * since our look; follow it if it is the one we would make. */
	spte = spte_read(sptep);
	if (is_shadow_present_pte(spte)) {
		/* A large leaf there (another vCPU's) maps a data frame: no sp behind it. */
		sp = is_last_spte(spte, (int)role.level + 1) ? NULL : pfn_to_sp(sm, spte_to_pfn(spte));
		if (sp && sp->gfn == gfn && sp->role.word == role.word) {
			*out = sp;
			rc = 0;
		}
		goto out;
	}
	sp = sp_find(sm, gfn, role);
	if (sp) {
		if (sp->unsync || sp->unsync_children)
			goto out;                 /* syncs first: exclusive */
	} else {
		if (!role.direct && (sm->nr_unsync || !track_unmapped_shared(sm, gfn)))
			goto out;
		rc = sp_new(sm, gfn, role, true, gtable, steps, &sp);
		if (rc) {
			if (!role.direct)
				untrack_shared(sm, gfn);
			goto out;
		}
		*created = true;
	}
	rc = sptep_vec_add(&sp->parents, sptep);
	if (!rc) {
		/* Release: the child (filled before) is seen whole through the link. Neither is
		 * unsync nor has unsync children: no mark to carry up. */
		spte_write(sptep, make_table_spte(&sm->mmu.fmt, sp->pfn));
		shadow_changed(sm);
		(*steps)++;
		*out = sp;
	}
out:
	shadow_spin_unlock(&sm->struct_lock);
	return rc;
}

uint64_t sp_notrap_fill(struct shadow_mmu *sm, struct shadow_page *sp, const void *gtable)
{
	const uint64_t *gpt = gtable;

	if (!sp_notrap_ok(sm, sp) || !gpt)
		return 0;
	for (unsigned i = 0; i < SPTE_ENTRIES; i++) {
		uint64_t gpte = __atomic_load_n(&gpt[i], __ATOMIC_ACQUIRE);
		if (!(gpte & PT_PRESENT_MASK) && spte_read(&sp->spt[i]) == SPTE_TRAP)
			spte_write(&sp->spt[i], 0);
	}
	shadow_changed(sm);
	return SPTE_ENTRIES / 8;   /* one step per cache line of guest entries */
}

int sp_alloc_helper(struct shadow_mmu *sm, int level, struct shadow_page **out)
{
	struct shadow_page *sp = host_pool_zalloc(&sp_pool);
	pfn_t pfn;
	int rc;

	if (!sp)
		return -ENOMEM;
	rc = host_frame_alloc(sm->mmu.env.arena, 0, &pfn);
	if (rc) {
		host_pool_free(&sp_pool, sp);
		return rc;
	}
	sp->gfn = ~0ULL;
	sp->role.level = (unsigned)level;
	sp->role.passthrough = 1;
	sp->role.access = ACC_ALL;
	sp->pfn = pfn;
	sp->spt = host_pfn_to_ptr(sm->mmu.env.arena, pfn);
	sp_fill_trap(sm, sp);
	sp->by_pfn.key = pfn;
	sp->root_count = 1;             /* the vCPU's own */
	CDS_INIT_LIST_HEAD(&sp->lru);
	host_frame_set_private(sm->mmu.env.arena, pfn, (uintptr_t)sp);
	htab_add(&sm->sp_by_pfn, &sp->by_pfn);
	sm->nr_helpers++;
	mmu_stat_inc(&sm->mmu, shadow_pages);
	shadow_changed(sm);
	*out = sp;
	return 0;
}

void sp_free_helper(struct shadow_mmu *sm, struct shadow_page *sp)
{
	while (sp->parents.n)
		spte_write(sp->parents.v[--sp->parents.n], sm->trap_spte);
	for (unsigned i = 0; i < SPTE_ENTRIES; i++)
		if (spte_read(&sp->spt[i]) != sm->trap_spte)
			spte_drop(sm, sp, &sp->spt[i]);
	sm->nr_helpers--;
	mmu_stat_add(&sm->mmu, shadow_pages, (uint64_t)-1);
	shadow_changed(sm);
	sp_queue_free(sm, sp);
}

int sp_link(struct shadow_mmu *sm, uint64_t *sptep, struct shadow_page *child)
{
	int rc = sptep_vec_add(&child->parents, sptep);

	if (rc)
		return rc;
	/* Release: the child table (zeroed or filled before) is seen whole through the link. */
	spte_write(sptep, make_table_spte(&sm->mmu.fmt, child->pfn));
	if (child->unsync || child->unsync_children)
		mark_link(sm, sptep);
	shadow_changed(sm);
	return 0;
}

static uint64_t spte_drop_shared(struct shadow_mmu *sm, struct shadow_page *sp, uint64_t *sptep,
				 bool shared);

/*
 * The fault judged the gfn (a 2M leaf's 2 MiB) untracked before it took the sp's lock; under
 * @shared another vCPU may have begun shadowing a guest table there since (track_unmapped_shared
 * found no leaf: ours comes only now). Read-only then: a write faults again and is emulated (or
 * splits the large leaf). @gfn's stripe lock held.
 */
VMMU_HOT
static uint64_t leaf_tracking_check(struct shadow_mmu *sm, gfn_t gfn, int level, uint64_t spte,
				    bool shared)
{
	struct gfn_chunk *c;

	if (!shared || !(spte & (PT_WRITABLE_MASK | SPTE_MMU_WRITABLE)))
		return spte;
	c = gfn_chunk_find(sm, gfn);
	if (c && (level > 1 ? c->lpage_track : c->write_track[gfn & (SPTE_ENTRIES - 1)]))
		spte &= ~(PT_WRITABLE_MASK | SPTE_MMU_WRITABLE | PT_DIRTY_MASK);
	return spte;
}

/* Under @shared a level-1 sp's present entries are all leaves and the fault holds its lock (a
 * level-2 sp's entry: [T], under which alone shared faults link there): no other leaf install
 * reaches @sptep, and nothing else changes it but the hardware's A/D bits and the fast page
 * fault's W (compare-and-swap, level 1 only), which the exchange and the stores below may
 * overwrite only for an entry they replace. */
VMMU_HOT
int leaf_set(struct shadow_mmu *sm, struct shadow_page *sp, uint64_t *sptep, gfn_t gfn,
	     uint64_t spte, bool shared)
{
	const int level = sp->role.level;
	unsigned idx = sptep_index(sptep);
	uint64_t old = spte_read(sptep);
	struct gfn_gig *g = NULL;
	int rc;

	if (is_shadow_present_pte(old)) {
		if (is_last_spte(old, level) && sp_leaf_gfn(sp, idx) == gfn) {
			/* Another vCPU's leaf for the same gfn, in its rmap: no tracker can begin
			 * now (it would find that leaf), but one may have begun before it went in. */
			struct gfn_stripe *st = gfn_lock(sm, gfn, shared);
			spte = leaf_tracking_check(sm, gfn, level, spte, shared);
			gfn_unlock(st);
			spte_write(sptep, spte);
			shadow_changed(sm);
			return 0;
		}
		spte_drop_shared(sm, sp, sptep, shared);
	} else if (old != sm->trap_spte) {
		spte_write(sptep, sm->trap_spte);    /* MMIO or non-present: trapping meanwhile */
	}
	/* A large leaf of an indirect sp records its gfn as a 4K one does; a 1G one is counted in
	 * its GiB (what a shared fault that shadows a table inside looks at). */
	if (level > 1 && !sp->role.direct && !sp->gfns) {
		sp->gfns = host_pool_zalloc(&gfns_pool);
		if (!sp->gfns)
			return -ENOMEM;
	}
	if (level == 3 && !(g = gfn_gig_get(sm, gfn)))
		return -ENOMEM;
	struct gfn_stripe *st = gfn_lock(sm, gfn, shared);
	spte = leaf_tracking_check(sm, gfn, level, spte, shared);
	rc = rmap_add(sm, gfn, sptep);
	gfn_unlock(st);
	if (rc)
		return rc;
	if (!sp->role.direct)
		__atomic_store_n(&sp->gfns[idx], gfn, __ATOMIC_RELAXED);  /* the fast page fault reads it */
	if (g)
		g->leaves++;
	if (level > 1)
		__atomic_add_fetch(&sm->nr_large, 1, __ATOMIC_RELAXED);
	spte_write(sptep, spte);
	mmu_account_leaf(&sm->mmu, level, 1);
	shadow_changed(sm);
	return 0;
}

uint64_t spte_drop(struct shadow_mmu *sm, struct shadow_page *sp, uint64_t *sptep)
{
	return spte_drop_shared(sm, sp, sptep, false);
}

/* spte_drop; with @shared under mmu_lock shared, for a leaf (leaf_set: a level-1 sp, its lock
 * held), the rmap entry under its stripe's lock. */
static uint64_t spte_drop_shared(struct shadow_mmu *sm, struct shadow_page *sp, uint64_t *sptep,
				 bool shared)
{
	/* The entry becomes "not yet shadowed": with notrap it must trap, whatever it held. */
	uint64_t old = spte_xchg(sptep, sm->trap_spte);

	if (!is_shadow_present_pte(old))
		return old;
	if (is_last_spte(old, sp->role.level)) {
		const int level = sp->role.level;
		gfn_t gfn = sp_leaf_gfn(sp, sptep_index(sptep));
		struct gfn_stripe *st = gfn_lock(sm, gfn, shared);
		rmap_del(sm, gfn, sptep);
		gfn_unlock(st);
		if (level > 1)
			__atomic_sub_fetch(&sm->nr_large, 1, __ATOMIC_RELAXED);
		if (level == 3) {
			struct gfn_gig *g = gfn_gig_find(sm, gfn);
			if (g)
				g->leaves--;
		}
		mmu_account_leaf(&sm->mmu, level, -1);
	} else {
		struct shadow_page *child = pfn_to_sp(sm, spte_to_pfn(old));
		if (child)
			sptep_vec_del(&child->parents, sptep);
		clear_unsync_bit(sp, sptep_index(sptep));
	}
	shadow_changed(sm);
	return old;
}

/*
 * Zap @sp (KVM's kvm_mmu_prepare_zap_page):
 *   1. every parent spte pointing here is cleared;
 *   2. every spte here is dropped: leaves leave their rmap, children lose this parent (a child
 *      left without parents stays, reusable, until recycled or flooded, as in KVM);
 *   3. its gfn is tracked one sp less;
 *   4. it leaves the hash and the LRU; a page some vCPU still runs on (or keeps as a previous
 *      root) stays allocated, invalid, until its last reference goes; any other is queued for
 *      freeing after a grace period.
 * The caller flushes TLBs (zap_batch_commit) before dropping mmu_lock.
 */
void sp_zap(struct shadow_mmu *sm, struct shadow_page *sp, struct zap_batch *z)
{
	if (sp->invalid)
		return;
	while (sp->parents.n) {
		uint64_t *p = sp->parents.v[--sp->parents.n];
		spte_write(p, sm->trap_spte);
	}
	/* Every entry, truly non-present ones too: an invalid root must make its vCPU exit. */
	for (unsigned i = 0; i < SPTE_ENTRIES; i++)
		if (spte_read(&sp->spt[i]) != sm->trap_spte)
			spte_drop(sm, sp, &sp->spt[i]);
	if (sp->unsync) {
		__atomic_store_n(&sp->unsync, false, __ATOMIC_RELAXED);  /* its gfn is not tracked for it */
		sm->nr_unsync--;
	} else if (!sp->role.direct) {
		unaccount_shadowed(sm, sp->gfn);
	}
	htab_del(&sm->sp_hash, &sp->hash);
	cds_list_del_init(&sp->lru);
	sm->nr_sps--;
	sm->nr_indirect -= !sp->role.direct;
	mmu_stat_add(&sm->mmu, shadow_pages, (uint64_t)-1);
	mmu_stat_inc(&sm->mmu, mmu_shadow_zapped);
	shadow_changed(sm);
	z->flush = true;
	if (sp->root_count)
		__atomic_store_n(&sp->invalid, true, __ATOMIC_RELAXED);   /* read locklessly too */
	else
		sp_queue_free(sm, sp);
}

void sp_put_root(struct shadow_mmu *sm, struct shadow_page *sp)
{
	if (--sp->root_count == 0 && sp->invalid)
		sp_queue_free(sm, sp);
}

void sp_reset_flooding(struct shadow_page *sp)
{
	/* Shared faults through one sp would otherwise all store to its line. */
	if (__atomic_load_n(&sp->write_flooding_count, __ATOMIC_RELAXED))
		__atomic_store_n(&sp->write_flooding_count, 0, __ATOMIC_RELAXED);
}

/* Was @sp walked through since the last look? A walk reaching it sets Accessed in the link it
 * came by; cleared here, as the host ages its pages (no flush: a translation cached in a TLB
 * since then is not a use the clock sees, as with the kernel's page aging). */
static bool sp_test_clear_young(struct shadow_page *sp)
{
	bool young = false;

	for (uint32_t i = 0; i < sp->parents.n; i++) {
		uint64_t *sptep = sp->parents.v[i];
		uint64_t old = spte_read(sptep);

		while (old & PT_ACCESSED_MASK) {
			young = true;
			if (spte_cmpxchg(sptep, &old, old & ~PT_ACCESSED_MASK))
				break;
		}
	}
	return young;
}

/* Move @sp to the newest end if it was walked through since the last look. */
static bool sp_second_chance(struct shadow_mmu *sm, struct shadow_page *sp)
{
	if (!sp_test_clear_young(sp))
		return false;
	cds_list_move(&sp->lru, &sm->lru);
	return true;
}

/*
 * The host's aging, for lru: a sweep from the oldest sp that moves every one walked through
 * since the last sweep to the newest end (in the order they were), clearing its Accessed bits.
 * Run every eighth of the limit in sps asked for, so the list holds recency at that grain; a
 * sweep at eviction time alone would see every page young at once (the new ones are born young)
 * and fall back to creation order.
 */
VMMU_HOT
static void age_sps(struct shadow_mmu *sm)
{
	struct cds_list_head *pos = sm->lru.prev, *prev;

	for (uint64_t left = sm->nr_sps; pos != &sm->lru && left; pos = prev, left--) {
		struct shadow_page *sp = caa_container_of(pos, struct shadow_page, lru);

		prev = pos->prev;
		if (!sp->root_count)
			sp_second_chance(sm, sp);
	}
}

/*
 * The page to zap to make room, or NULL if every one is a root (pinned). sm->lru is in creation
 * order, newest first. FIFO takes the oldest (KVM's kvm_mmu_zap_oldest_mmu_pages). LRU runs the
 * clock from the oldest: a page walked through since the last look gets a second chance (its
 * Accessed bits cleared, moved to the newest end), the first one not walked through goes; after
 * one trip every page has been looked at, so the trip ends with the oldest.
 */
static struct shadow_page *pick_victim(struct shadow_mmu *sm)
{
	struct cds_list_head *pos = sm->lru.prev, *prev;
	struct shadow_page *oldest = NULL;

	for (uint64_t left = sm->nr_sps; pos != &sm->lru && left; pos = prev, left--) {
		struct shadow_page *sp = caa_container_of(pos, struct shadow_page, lru);

		prev = pos->prev;
		if (sp->root_count)
			continue;
		if (sm->mmu.env.evict == VMMU_EVICT_FIFO || !sp_second_chance(sm, sp))
			return sp;
		if (!oldest)
			oldest = sp;
	}
	return oldest;
}

/*
 * The aging sweep runs under the shared lock too, holding struct_lock: shared faults touch
 * sm->lru, parent lists and links only under it (leaf installs never), so the sweep's list moves
 * and its compare-and-swaps on links race with nothing (but the hardware's A bits); a sweep that
 * finds struct_lock taken leaves the credit due for a later fault.
 * The order of events is the exclusive path's: credit, sweep if due, evict if over the limit.
 * The credit is added by counter_add_unlocked, not a locked add (one less a fault, some 7 ns).
 * Threads that share a shard (more threads than shards) may lose each other's adds, or an add may
 * undo a sweep's reset: a sweep then comes some faults late or early. The credit only paces the
 * sweeps, and one thread's, the deterministic case, is exact.
 */
bool mmu_pages_available_shared(struct shadow_mmu *sm, unsigned need)
{
	uint64_t limit = shadow_page_limit(sm);
	bool lru = sm->mmu.env.evict == VMMU_EVICT_LRU;
	uint64_t *mine = &sm->shard[mmu_stat_shard()].aging_credit;
	uint64_t credit = lru ? counter_add_unlocked(mine, need) : 0;

	if (__atomic_load_n(&sm->nr_sps, __ATOMIC_RELAXED) + need > limit)
		return false;
	if (lru && credit >= limit / 8 && shadow_spin_trylock(&sm->struct_lock)) {
		if (__atomic_load_n(mine, __ATOMIC_RELAXED) >= limit / 8) {
			__atomic_store_n(mine, 0, __ATOMIC_RELAXED);
			age_sps(sm);
		}
		shadow_spin_unlock(&sm->struct_lock);
	}
	return true;
}

void make_mmu_pages_available(struct shadow_mmu *sm, unsigned need, struct zap_batch *z,
			      bool credited)
{
	uint64_t limit = shadow_page_limit(sm);

	if (sm->mmu.env.evict == VMMU_EVICT_LRU) {
		/* This thread's credit, as the shared path's: a fault that went exclusive after
		 * crediting there finds it here. */
		uint64_t *mine = &sm->shard[mmu_stat_shard()].aging_credit;

		uint64_t credit = credited ? __atomic_load_n(mine, __ATOMIC_RELAXED) :
					    counter_add_unlocked(mine, need);

		if (credit >= limit / 8) {
			__atomic_store_n(mine, 0, __ATOMIC_RELAXED);
			age_sps(sm);
		}
	}
	while (sm->nr_sps + need > limit) {
		struct shadow_page *victim = pick_victim(sm);

		if (!victim)
			break;
		sp_zap(sm, victim, z);
		mmu_stat_inc(&sm->mmu, mmu_recycled);
	}
}

/* ---- zapping ranges ---- */

/* Drop the leaves in @gfn's rmap of level @minlevel or more. */
static void zap_gfn_leaves(struct shadow_mmu *sm, gfn_t gfn, int minlevel, struct zap_batch *z)
{
	/* Each drop takes its entry out (the last one moving into its place, one already looked
	 * at; the head may change shape, and the chunk go with the last entry): the head is read
	 * again each time. */
	for (uint32_t i = rmap_count(gfn_rmap(sm, gfn)); i-- > 0;) {
		uint64_t *sptep = rmap_at(gfn_rmap(sm, gfn), i);
		struct shadow_page *sp = sptep_to_sp(sm, sptep);
		if ((int)sp->role.level < minlevel)
			continue;
		z->flush = true;
		spte_drop(sm, sp, sptep);
	}
}

void zap_gfn_range(struct shadow_mmu *sm, gfn_t start, gfn_t end, struct zap_batch *z)
{
	if (start >= end)
		return;
	/* Guest tables in the range: their contents are gone or moved. */
	for (uint64_t i = 0; i <= sm->sp_hash.mask; i++) {
		struct hnode *n = sm->sp_hash.b[i], *next;
		for (; n; n = next) {
			struct shadow_page *sp = caa_container_of(n, struct shadow_page, hash);
			next = n->next;
			if (!sp->role.direct && sp->gfn >= start && sp->gfn < end)
				sp_zap(sm, sp, z);
		}
	}
	/* Large leaves that begin before the range and reach into it. */
	gfn_t cover[2];
	int minlevel[2];
	for (unsigned k = 0, nc = cover_rmaps(sm, start, 3, cover, minlevel); k < nc; k++)
		zap_gfn_leaves(sm, cover[k], minlevel[k], z);
	/* Leaves mapping the range (or beginning in it), chunk by chunk: a chunk goes with its last
	 * leaf, so each gfn's rmap is looked up afresh (zap_gfn_leaves). */
	struct gfn_chunk *c;
	gfn_range_for_each(sm, c, g, start, end)
		zap_gfn_leaves(sm, g, 1, z);
}

unsigned gfn_cover_rmaps(struct shadow_mmu *sm, gfn_t gfn, gfn_t *first, int *minlevel)
{
	return cover_rmaps(sm, gfn, 3, first, minlevel);
}

void zap_all(struct shadow_mmu *sm, struct zap_batch *z)
{
	for (uint64_t i = 0; i <= sm->sp_hash.mask; i++) {
		struct hnode *n = sm->sp_hash.b[i], *next;
		for (; n; n = next) {
			next = n->next;
			sp_zap(sm, caa_container_of(n, struct shadow_page, hash), z);
		}
	}
}

void zap_batch_commit(struct shadow_mmu *sm, struct zap_batch *z)
{
	if (z->flush)
		mmu_flush_remote_tlbs(&sm->mmu);
	z->flush = false;
}
