/* SPDX-License-Identifier: MIT */
/*
 * cpu/tlb: the modelled TLB of one vCPU (interface and architectural rules in tlb.h).
 *
 * Five set-associative arrays: L1 4K, L1 2M, L1 1G, the STLB (4K and 2M mixed) and the
 * second-level 1G array. An entry is 32 bytes (two a cache line): a key, the virtual page number
 * at the entry's size with the size code above it (tlb_key), so one 64-bit compare checks page,
 * size and validity together; and the struct tlb_entry_info a hit returns, stored ready to hand
 * out (its pcid and global fields are the rest of the tag; its host field is the owner's, tlb.h).
 * The set index is the low bits of the key: no division, no dispatch. The first level's LRU
 * stamps live in a parallel array, so a hit writes one word beside the set; the second level keeps
 * each set's recency in order instead ("LRU order" below).
 *
 * Invariants (tlb_check):
 *  - a valid entry sits in the set its key selects, in an array that holds its size, and its
 *    frame is aligned to that size;
 *  - in each set, no two valid entries could answer the same lookup: for one key, at most one
 *    entry per PCID and, if a global entry is present, no other entry (arr_insert drops the ones
 *    a new entry overlaps, which is always allowed since a TLB may forget anything);
 *  - in an array with stamps, a free slot has stamp 0 and the stamps of a set's valid entries
 *    are distinct, in 1..clock; in one with an order, as "LRU order" says;
 *  - an array's nvalid counts its valid entries, and nsize[s] those of size code s;
 *  - second-level entries have no host pointer (tlb_fill stores none; the owner reaches only
 *    first-level entries), so tlb_drop_host scans the first level only;
 *  - every hint is the index of a slot of the first-level 4K array, every 2M hint of one of the
 *    first-level 2M array (what the slot holds is checked at each use, tlb.h);
 *  - once the L1 2M array has held an entry, the L1 4K array's regions points to tlb.regions, and
 *    regions[b] counts the valid L1 4K entries whose 2M region falls in bucket b (slot_clear and
 *    arr_insert, the only places an L1 slot changes key, keep it); before, it is NULL and
 *    nothing is counted (regions_start counts when the first 2M entry comes in);
 *  - no entry answers a lookup of (absent_key, absent_pcid): a lookup's miss at every level sets
 *    them, every insertion (arr_insert, the only one) drops them, and removals keep it true;
 *  - sole_pcid, unless TLB_SOLE_MIXED, is the tag of every valid non-global entry, or
 *    TLB_SOLE_NONE with none: tlb_fill, where every new translation comes in, moves it on a
 *    non-global fill (an L2 hit's copy to the first level has the tag of an entry already in);
 *    a flush of every PCID's non-global entries sets it back to TLB_SOLE_NONE.
 *  - signatures: sig[i] is tlb_sig(ent[i].key) for a valid slot, 0 for a free one (slot_clear
 *    and arr_insert keep it). A scan that may find nothing, the STLB's on every miss, an
 *    insertion's overlap pass, an invalidation, compares them first and reads an entry only
 *    where they match; the first level's hinted lookups read entries directly.
 * Inclusion: a fill goes to both levels; an L1 eviction leaves the L2 copy (which is how an STLB
 * hit happens), an L2 eviction leaves the L1 copy (no back-invalidation; Intel's STLB is not
 * inclusive either). Every invalidation therefore searches both levels, but where nsize says an
 * array holds no entry of the size, or the address is the absent one.
 * Locking: none; one vCPU thread owns the TLB (tlb.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "cpu/tlb.h"
#include "host/host.h"

/*
 * Defaults: the data TLBs of an Intel Skylake core, from the Intel 64 and IA-32 Architectures
 * Optimization Reference Manual, "TLB Parameters of the Skylake Microarchitecture":
 *   DTLB 4K: 64 entries, 4-way; DTLB 2M/4M: 32 entries, 4-way; DTLB 1G: 4 entries, 4-way (fully
 *   associative); STLB 4K+2M: 1536 entries, 12-way; STLB 1G: 16 entries, 4-way.
 */
#define TLB_SKL_L1_4K_SETS 16
#define TLB_SKL_L1_4K_WAYS 4
#define TLB_SKL_L1_2M_SETS 8
#define TLB_SKL_L1_2M_WAYS 4
#define TLB_SKL_L1_1G_SETS 1
#define TLB_SKL_L1_1G_WAYS 4
#define TLB_SKL_L2_SETS    128
#define TLB_SKL_L2_WAYS    12
#define TLB_SKL_L2_1G_SETS 4
#define TLB_SKL_L2_1G_WAYS 4

#define TLB_MAX_WAYS 32          /* tlb.h's limit; also keeps renumbering ranks small */
#define TLB_MAX_SETS (1u << 16)  /* far above any real TLB; bounds the allocation */

_Static_assert(TLB_NSIZES == sizeof(((struct tlb_array *)0)->nsize) / sizeof(uint32_t),
	       "tlb_array.nsize: a count a size code");

/* The L2 array that holds a size: the STLB for 4K and 2M, the L2 1G array for 1G. */
static inline unsigned l2_index(unsigned size)
{
	return size == TLB_1G ? TLB_ARR_L2_1G : TLB_ARR_L2;
}

static inline struct tlb_array *l2_of(struct tlb *t, unsigned size)
{
	return &t->arr[l2_index(size)];
}

/* Index of the first slot of @key's set in @a. */
static inline size_t set_base(const struct tlb_array *a, uint64_t key)
{
	return (size_t)(key & a->set_mask) * a->ways;
}

static inline bool ent_valid(const struct tlb_ent *e)
{
	return e->key != TLB_KEY_INVALID;
}

/* ---- LRU order ---- */

/*
 * The second-level arrays keep each set's recency as an order (struct tlb_lru) instead of stamps:
 * an insertion there follows every miss, and finding the smallest of a dozen stamps was a hundred
 * instructions of a random access's fifteen hundred, where the order gives the victim at once.
 * The first level keeps stamps: its hits are the hit path, where a stamp is one store and an
 * order's update (lru_touch) some 25 instructions; an STLB hit pays them (bench_cpu -p stlb did
 * not measurably slow). Both choose the same victim:
 *  - a free way if there is one, the lowest (stamps: the first 0);
 *  - else the least recently used valid way (stamps: the smallest); the order holds every way,
 *    free ones too, by its last use (insertion or hit), and with none free, the last is it.
 * A nibble a way: the order is kept only for arrays of at most 16 ways (LRU_ORDER_MAX_WAYS);
 * an array with more has stamps, wherever it is.
 * Invariants (tlb_check): the low @ways nibbles of order are a permutation of 0..ways-1 and the
 * rest are zero; free has a bit for each free way and no other.
 */
#define LRU_ORDER_MAX_WAYS 16
#define NIBBLES_ONE 0x1111111111111111ULL

static inline struct tlb_lru *set_lru(const struct tlb_array *a, uint64_t key)
{
	return &a->lru[key & a->set_mask];
}

/* Way @w becomes the most recently used: out of its place, in at the front. */
static inline void lru_touch(struct tlb_lru *l, unsigned w)
{
	uint64_t o = l->order, x = o ^ (NIBBLES_ONE * w);
	/* The lowest zero nibble of x is w's place, exactly: the subtraction's borrows run only up
	 * from a zero nibble, and below the first one every nibble is 1..15. */
	uint64_t z = (x - NIBBLES_ONE) & ~x & (NIBBLES_ONE << 3);
	unsigned sh = (unsigned)__builtin_ctzll(z) - 3;
	uint64_t below = o & ((1ULL << sh) - 1), above = o & ~(((1ULL << sh) << 4) - 1);
	l->order = above | (below << 4) | w;
}

/* The way an insertion takes (the lowest free one, else the least recently used), made the most
 * recently used and not free. */
static inline unsigned lru_take(struct tlb_lru *l, uint32_t ways)
{
	unsigned tail = 4 * (ways - 1);

	if (__builtin_expect(!l->free, 1)) {   /* a full set's: its last way moves to the front */
		unsigned w = (unsigned)(l->order >> tail) & 15;
		l->order = ((l->order & ((1ULL << tail) - 1)) << 4) | w;
		return w;
	}
	unsigned w = (unsigned)__builtin_ctz(l->free);
	l->free &= ~(1u << w);
	lru_touch(l, w);
	return w;
}

/* Empty the valid slot @i of @a. */
static inline void slot_clear(struct tlb_array *a, size_t i)
{
	uint64_t key = a->ent[i].key;

	a->nsize[key >> TLB_SIZE_SHIFT]--;
	if (a->regions)
		a->regions[tlb_region(key << 12)]--;
	a->ent[i].key = TLB_KEY_INVALID;
	a->sig[i] = 0;
	if (a->stamp) {
		a->stamp[i] = 0;
	} else {
		size_t set = key & a->set_mask;   /* a valid entry is in its key's set */
		a->lru[set].free |= 1u << (i - set * a->ways);
	}
	a->nvalid--;
}

/* The valid entries of the L1 4K array @l1 by region bucket, into @out (TLB_REGIONS). */
static void regions_count(const struct tlb_array *l1, uint32_t *out)
{
	memset(out, 0, TLB_REGIONS * sizeof(*out));
	for (size_t i = 0; i < (size_t)(l1->set_mask + 1) * l1->ways; i++)
		if (ent_valid(&l1->ent[i]))
			out[tlb_region(l1->ent[i].key << 12)]++;
}

/* Start counting the L1 4K entries by region (tlb.regions), from a count of the array: the first
 * 2M entry is in, and its hint needs them. Until then nothing does, so a guest without 2M pages
 * never pays for the count. */
__attribute__((cold, noinline)) static void regions_start(struct tlb *t)
{
	regions_count(&t->arr[TLB_ARR_L1_4K], t->regions);
	t->arr[TLB_ARR_L1_4K].regions = t->regions;
}

/* Two entries of one key overlap when some lookup could match both. */
static inline bool tags_overlap(const struct tlb_ent *e, uint16_t pcid, bool global)
{
	return e->info.global || global || e->info.pcid == pcid;
}

/* ---- LRU clock ---- */

/*
 * The clock would wrap: rewrite each set's stamps as ranks 1..n in the same order, so recency
 * survives, and restart the clock above every rank. Runs once per 2^32 uses, hence cold.
 */
__attribute__((cold, noinline)) static uint32_t tlb_renumber(struct tlb *t)
{
	for (unsigned i = 0; i < TLB_ARR_N; i++) {
		struct tlb_array *a = &t->arr[i];
		for (uint32_t s = 0; a->stamp && s <= a->set_mask; s++) {
			const struct tlb_ent *set = a->ent + (size_t)s * a->ways;
			uint32_t *st = a->stamp + (size_t)s * a->ways;
			uint32_t rank[TLB_MAX_WAYS];
			for (uint32_t w = 0; w < a->ways; w++) {
				rank[w] = 1;
				for (uint32_t v = 0; v < a->ways; v++)
					if (v != w && ent_valid(&set[v]) && st[v] < st[w])
						rank[w]++;
			}
			for (uint32_t w = 0; w < a->ways; w++)
				st[w] = ent_valid(&set[w]) ? rank[w] : 0;
		}
	}
	t->clock = TLB_MAX_WAYS + 1;   /* above every rank: the next stamp is the newest */
	return t->clock;
}

static inline uint32_t tlb_tick(struct tlb *t)
{
	uint32_t c = t->clock + 1;
	if (__builtin_expect(c == 0, 0))
		return tlb_renumber(t);
	t->clock = c;
	return c;
}

/* ---- one array ---- */

/*
 * Field by field, never a struct copy: a fill's caller has just built @s with narrow stores, and a
 * wide load of several of them cannot take its data from the store buffer: it waits for them to
 * reach the cache (a store-forwarding stall, twice a fill; a tenth of a warm gups run's time).
 * @frame: s->frame at the entry's size. The owner's host fields start empty: a new translation's
 * (the owner's pointer, if any, was for another), or a second-level entry's copy (second-level
 * entries never have one: the owner sets it on the entry that served a hit or that its walk just
 * filled, always first-level).
 */
static inline void info_set(struct tlb_entry_info *d, const struct tlb_entry_info *s, uint64_t frame)
{
	d->frame = frame;
	d->host = NULL;
	d->page_shift = s->page_shift;
	d->access = s->access;
	d->pkey = s->pkey;
	d->dirty = s->dirty;
	d->global = s->global;
	d->host_writable = false;
	d->pcid = s->pcid;
}

/* No entry answers a lookup of @va's page for @pcid, global or not: a lookup of it missed at
 * every level and nothing was inserted since (absent_key's invariant, at the top). */
static inline bool known_absent(const struct tlb *t, gva_t va, uint16_t pcid)
{
	return va >> 12 == t->absent_key && pcid == t->absent_pcid;
}

/*
 * Put an entry in @a: drop every entry of the key it overlaps (the old translation of the same
 * page and tag, or one the new entry would shadow), and take a free way if there is one (the
 * lowest), else the least recently used ("LRU order" above). Returns the slot used.
 * @frame: info_set's. @stamped: a->stamp is set (a constant where known: every first-level array
 * has stamps).
 * @fresh: the caller knows no entry of @a overlaps (a non-global entry of a page and tag that no
 * lookup would find), so the set's keys need no pass: the usual fill, after a miss of its page
 * and tag at every level, which a random access makes at both levels (the pass was about a third
 * of an insertion into the STLB).
 */
VMMU_HOT
static inline size_t
arr_insert(struct tlb *t, struct tlb_array *a, uint64_t key, const struct tlb_entry_info *info,
	   uint64_t frame, bool fresh, bool stamped)
{
	size_t base = set_base(a, key);

	t->absent_key = TLB_KEY_INVALID;
	const uint8_t sig = tlb_sig(key);
	if (!fresh) {
		for (size_t i = base; i < base + a->ways; i++)
			if (a->sig[i] == sig && a->ent[i].key == key &&
			    tags_overlap(&a->ent[i], info->pcid, info->global))
				slot_clear(a, i);
	}
	size_t victim = base;
	if (stamped) {
		uint32_t oldest = UINT32_MAX;   /* a free way's stamp, 0, is below every valid one */
		for (size_t i = base; i < base + a->ways; i++) {
			uint32_t st = a->stamp[i];
			victim = st < oldest ? i : victim;
			oldest = st < oldest ? st : oldest;
		}
		a->stamp[victim] = tlb_tick(t);
	} else {
		victim = base + lru_take(set_lru(a, key), a->ways);
	}
	uint64_t old = a->ent[victim].key;
	if (old == TLB_KEY_INVALID)
		a->nvalid++;
	else
		a->nsize[old >> TLB_SIZE_SHIFT]--;
	a->nsize[key >> TLB_SIZE_SHIFT]++;
	a->ent[victim].key = key;
	a->sig[victim] = sig;
	info_set(&a->ent[victim].info, info, frame);
	/* The page's next use tries the slot first. */
	if (a == &t->arr[TLB_ARR_L1_4K]) {
		*tlb_hint(t, key, info->pcid) = (uint32_t)victim;
		if (a->regions) {
			a->regions[tlb_region(key << 12)]++;
			if (old != TLB_KEY_INVALID)
				a->regions[tlb_region(old << 12)]--;
		}
	} else if (a == &t->arr[TLB_ARR_L1_2M]) {
		*tlb_hint_2m(t, key, info->pcid) = (uint32_t)victim;
		if (!t->arr[TLB_ARR_L1_4K].regions)
			regions_start(t);
	}
	return victim;
}

/* Drop the entries of @key in @a tagged @pcid, and the global ones when @with_global. */
static void arr_invalidate(struct tlb_array *a, uint64_t key, uint16_t pcid, bool with_global)
{
	size_t base = set_base(a, key);
	const uint8_t sig = tlb_sig(key);
	for (size_t i = base; i < base + a->ways; i++) {
		const struct tlb_ent *e = &a->ent[i];
		if (a->sig[i] == sig && e->key == key &&
		    (e->info.global ? with_global : e->info.pcid == pcid))
			slot_clear(a, i);
	}
}

/* ---- creation ---- */

void tlb_default_geometry(struct vmmu_tlb_geometry *g)
{
	memset(g, 0, sizeof(*g));
	g->l1_4k = (struct vmmu_tlb_array){ TLB_SKL_L1_4K_SETS, TLB_SKL_L1_4K_WAYS };
	g->l1_2m = (struct vmmu_tlb_array){ TLB_SKL_L1_2M_SETS, TLB_SKL_L1_2M_WAYS };
	g->l1_1g = (struct vmmu_tlb_array){ TLB_SKL_L1_1G_SETS, TLB_SKL_L1_1G_WAYS };
	g->l2 = (struct vmmu_tlb_array){ TLB_SKL_L2_SETS, TLB_SKL_L2_WAYS };
	g->l2_1g = (struct vmmu_tlb_array){ TLB_SKL_L2_1G_SETS, TLB_SKL_L2_1G_WAYS };
}

/* An all-zero array takes the default; otherwise sets must be a power of two and ways 1..32. */
static int array_geometry(const struct vmmu_tlb_array *req, const struct vmmu_tlb_array *def,
			  struct vmmu_tlb_array *out)
{
	if (req->sets == 0 && req->ways == 0) {
		*out = *def;
		return 0;
	}
	if (req->sets == 0 || (req->sets & (req->sets - 1)) || req->sets > TLB_MAX_SETS)
		return -EINVAL;
	if (req->ways == 0 || req->ways > TLB_MAX_WAYS)
		return -EINVAL;
	*out = *req;
	return 0;
}

int tlb_create(const struct vmmu_tlb_geometry *g, struct tlb **out)
{
	struct vmmu_tlb_geometry def, zero = { 0 };
	struct vmmu_tlb_array geo[TLB_ARR_N];
	struct tlb *t;
	bool ordered[TLB_ARR_N];
	size_t n = 0, nstamps = 0, nsets = 0;
	int r;

	tlb_default_geometry(&def);
	if (!g)
		g = &zero;
	const struct vmmu_tlb_array *req[TLB_ARR_N] = { &g->l1_4k, &g->l1_2m, &g->l1_1g, &g->l2, &g->l2_1g };
	const struct vmmu_tlb_array *dfl[TLB_ARR_N] = { &def.l1_4k, &def.l1_2m, &def.l1_1g, &def.l2, &def.l2_1g };
	for (unsigned i = 0; i < TLB_ARR_N; i++) {
		r = array_geometry(req[i], dfl[i], &geo[i]);
		if (r)
			return r;
		n += (size_t)geo[i].sets * geo[i].ways;
		ordered[i] = (i == TLB_ARR_L2 || i == TLB_ARR_L2_1G) && geo[i].ways <= LRU_ORDER_MAX_WAYS;
		if (ordered[i])
			nsets += geo[i].sets;
		else
			nstamps += (size_t)geo[i].sets * geo[i].ways;
	}

	t = host_zalloc_lines(sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* A whole number of cache lines, line-aligned: small sets then share few lines. */
	t->mem = host_zalloc_lines(n * sizeof(struct tlb_ent));
	t->sigs = host_zalloc_lines(n);         /* every slot free: signature 0 */
	t->stamps = host_zalloc_lines(nstamps * sizeof(*t->stamps));
	t->lrus = host_zalloc_lines((nsets ? nsets : 1) * sizeof(*t->lrus));   /* NULL for 0 bytes */
	if (!t->mem || !t->sigs || !t->stamps || !t->lrus) {
		tlb_destroy(t);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		t->mem[i].key = TLB_KEY_INVALID;
	t->absent_key = TLB_KEY_INVALID;
	t->sole_pcid = TLB_SOLE_NONE;
	n = nstamps = nsets = 0;
	for (unsigned i = 0; i < TLB_ARR_N; i++) {
		struct tlb_array *a = &t->arr[i];
		a->ent = t->mem + n;
		a->sig = t->sigs + n;
		a->set_mask = geo[i].sets - 1;
		a->ways = geo[i].ways;
		n += (size_t)geo[i].sets * geo[i].ways;
		if (!ordered[i]) {
			a->stamp = t->stamps + nstamps;
			nstamps += (size_t)geo[i].sets * geo[i].ways;
			continue;
		}
		a->lru = t->lrus + nsets;
		nsets += geo[i].sets;
		uint64_t order = 0;   /* any permutation will do while every way is free */
		for (unsigned w = 0; w < a->ways; w++)
			order |= (uint64_t)w << (4 * w);
		for (uint32_t s = 0; s <= a->set_mask; s++)
			a->lru[s] = (struct tlb_lru){ .order = order, .free = (1u << a->ways) - 1 };
	}
	*out = t;
	return 0;
}

void tlb_destroy(struct tlb *t)
{
	if (!t)
		return;
	free(t->mem);
	free(t->sigs);
	free(t->stamps);
	free(t->lrus);
	free(t);
}

/* ---- lookup and fill ---- */

/*
 * Probe order: L1 4K (inline, tlb.h), L1 2M, L1 1G, then the STLB (4K, then 2M), then the L2 1G
 * array; the first match wins. If a guest changed a mapping's page size without flushing, a stale
 * 4K entry and a fresh 2M one may both cover @va: the architecture allows either (SDM 4.10.2.3);
 * this returns the smaller page, the first-level one before the second-level one. An L2 hit is
 * copied into the L1 array of its size, and the copy is what the caller gets. Empty arrays are
 * skipped (a guest without large pages never probes them).
 */
struct tlb_entry_info *tlb_find_l1_large(struct tlb *t, gva_t va, uint16_t pcid, uint32_t **stamp)
{
	for (unsigned size = TLB_2M; size < TLB_NSIZES; size++) {
		struct tlb_array *a = &t->arr[TLB_ARR_L1_4K + size];
		if (!a->nvalid)
			continue;
		uint64_t key = tlb_key(va, size);
		size_t i = tlb_arr_find(a, key, pcid);
		if (i != TLB_NO_SLOT) {
			if (size == TLB_2M)
				*tlb_hint_2m(t, key, pcid) = (uint32_t)i;
			*stamp = &a->stamp[i];
			return &a->ent[i].info;
		}
	}
	return NULL;
}

VMMU_HOT
struct tlb_entry_info *tlb_lookup_l2(struct tlb *t, gva_t va, uint16_t pcid, enum tlb_hit *level)
{
	for (unsigned size = TLB_4K; size < TLB_NSIZES; size++) {
		struct tlb_array *a = l2_of(t, size);
		if (!a->nsize[size])
			continue;
		uint64_t key = tlb_key(va, size);
		size_t i = tlb_arr_find_sig(a, key, pcid);
		if (i != TLB_NO_SLOT) {
			if (a->stamp)
				a->stamp[i] = tlb_tick(t);
			else
				lru_touch(set_lru(a, key), (unsigned)(i - set_base(a, key)));
			t->stats.hits_l2++;
			struct tlb_array *l1 = &t->arr[TLB_ARR_L1_4K + size];
			/* The first level missed (tlb_lookup_finish): a non-global hit, tagged @pcid,
			 * has no copy there. */
			size_t j = arr_insert(t, l1, a->ent[i].key, &a->ent[i].info, a->ent[i].info.frame,
					      !a->ent[i].info.global, true);
			*level = TLB_HIT_L2;
			return &l1->ent[j].info;
		}
	}
	t->stats.misses++;
	t->absent_key = va >> 12;
	t->absent_pcid = pcid;
	*level = TLB_MISS;
	return NULL;
}

struct tlb_entry_info *tlb_lookup_wrap(struct tlb *t, gva_t va, uint16_t pcid, enum tlb_hit *level)
{
	tlb_renumber(t);
	return tlb_lookup_entry(t, va, pcid, level);
}

enum tlb_hit tlb_lookup(struct tlb *t, gva_t va, uint16_t pcid, struct tlb_entry_info *out)
{
	enum tlb_hit level;
	const struct tlb_entry_info *e = tlb_lookup_entry(t, va, pcid, &level);

	if (e)
		*out = *e;
	return level;
}

VMMU_HOT
struct tlb_entry_info *tlb_fill(struct tlb *t, gva_t va, const struct tlb_entry_info *e)
{
	unsigned size;

	switch (e->page_shift) {
	case 12: size = TLB_4K; break;
	case 21: size = TLB_2M; break;
	case 30: size = TLB_1G; break;
	default:
		/* Not a page size: dropping the fill is safe (the next access walks again). */
		assert(!"tlb_fill: bad page_shift");
		return NULL;
	}
	uint64_t page_mask = (1ULL << e->page_shift) - 1;
	assert((e->frame & page_mask) == 0);
	uint64_t key = tlb_key(va, size), frame = e->frame & ~page_mask;

	/* The usual fill follows a miss of the same page and tag, which no entry answers; a global
	 * one may overlap entries of other tags, unless no other tag is in use (sole_pcid). */
	bool fresh = known_absent(t, va, e->pcid) &&
		     (!e->global || t->sole_pcid == e->pcid || t->sole_pcid == TLB_SOLE_NONE);
	if (!e->global && t->sole_pcid != e->pcid)
		t->sole_pcid = t->sole_pcid == TLB_SOLE_NONE ? e->pcid : TLB_SOLE_MIXED;

	struct tlb_array *l1 = &t->arr[TLB_ARR_L1_4K + size];
	size_t j = arr_insert(t, l1, key, e, frame, fresh, true);
	struct tlb_array *l2 = l2_of(t, size);
	arr_insert(t, l2, key, e, frame, fresh, l2->stamp != NULL);
	t->stats.fills++;
	return &l1->ent[j].info;
}

/* ---- invalidation ---- */

void tlb_drop_host(struct tlb *t)
{
	for (unsigned n = TLB_ARR_L1_4K; n <= TLB_ARR_L1_1G; n++) {
		struct tlb_array *a = &t->arr[n];
		size_t end = (size_t)(a->set_mask + 1) * a->ways;
		for (size_t i = 0; a->nvalid && i < end; i++) {
			a->ent[i].info.host = NULL;
			a->ent[i].info.host_writable = false;
		}
	}
}

/* Every array holding @va's page at each size, for @pcid (and global entries if @with_global). */
VMMU_HOT
static void invalidate_va(struct tlb *t, gva_t va, uint16_t pcid, bool with_global)
{
	if (known_absent(t, va, pcid)) {
		t->stats.invalidations++;   /* the lookup's miss searched every array for @pcid */
		return;
	}
	for (unsigned size = TLB_4K; size < TLB_NSIZES; size++) {
		uint64_t key = tlb_key(va, size);
		struct tlb_array *l1 = &t->arr[TLB_ARR_L1_4K + size], *l2 = l2_of(t, size);
		if (l1->nsize[size])
			arr_invalidate(l1, key, pcid, with_global);
		if (l2->nsize[size])
			arr_invalidate(l2, key, pcid, with_global);
	}
	t->stats.invalidations++;
}

void tlb_invlpg(struct tlb *t, gva_t va, uint16_t pcid)
{
	invalidate_va(t, va, pcid, true);
}

void tlb_flush_addr_pcid(struct tlb *t, gva_t va, uint16_t pcid)
{
	invalidate_va(t, va, pcid, false);
}

/*
 * Drop, in every array, the non-global entries tagged @pcid (any PCID when @all_pcids), and the
 * global ones when @global. A flush scans every slot (about 1,650 with the defaults, contiguous;
 * an empty array not at all): a per-PCID index would cost on every fill, which runs far more
 * often than a flush.
 */
static void flush_where(struct tlb *t, bool all_pcids, uint16_t pcid, bool global)
{
	for (unsigned n = 0; n < TLB_ARR_N; n++) {
		struct tlb_array *a = &t->arr[n];
		size_t end = (size_t)(a->set_mask + 1) * a->ways;
		for (size_t i = 0; a->nvalid && i < end; i++) {
			const struct tlb_ent *e = &a->ent[i];
			if (e->key != TLB_KEY_INVALID &&
			    (e->info.global ? global : all_pcids || e->info.pcid == pcid))
				slot_clear(a, i);
		}
	}
	if (all_pcids)
		t->sole_pcid = TLB_SOLE_NONE;
	t->stats.flushes++;
}

void tlb_flush_pcid(struct tlb *t, uint16_t pcid, bool global)
{
	flush_where(t, false, pcid, global);
}

void tlb_flush_all(struct tlb *t, bool global)
{
	flush_where(t, true, 0, global);
}

/* ---- introspection ---- */

const struct tlb_stats *tlb_get_stats(const struct tlb *t)
{
	return &t->stats;
}

unsigned tlb_count(const struct tlb *t)
{
	unsigned n = 0;
	for (unsigned i = 0; i < TLB_ARR_N; i++)
		n += t->arr[i].nvalid;
	return n;
}

static bool array_holds(unsigned arr, unsigned size)
{
	switch (arr) {
	case TLB_ARR_L1_4K: return size == TLB_4K;
	case TLB_ARR_L1_2M: return size == TLB_2M;
	case TLB_ARR_L1_1G: return size == TLB_1G;
	case TLB_ARR_L2: return size == TLB_4K || size == TLB_2M;
	default: return size == TLB_1G;
	}
}

/* A set's record against its entries ("LRU order"'s invariants): 0 or -EUCLEAN. */
static int lru_check(const struct tlb_array *a, const struct tlb_lru *l, const struct tlb_ent *set)
{
	uint32_t seen = 0, free = 0, ways = a->ways;

	for (uint32_t p = 0; p < ways; p++)
		seen |= 1u << ((l->order >> (4 * p)) & 15);
	for (uint32_t w = 0; w < ways; w++)
		if (!ent_valid(&set[w]))
			free |= 1u << w;
	uint32_t all = (uint32_t)((1ULL << ways) - 1);
	if (seen != all || (ways < 16 && l->order >> (4 * ways)) || l->free != free)
		return -EUCLEAN;
	return 0;
}

int tlb_check(const struct tlb *t)
{
	const struct tlb_array *l1 = &t->arr[TLB_ARR_L1_4K], *l1_2m = &t->arr[TLB_ARR_L1_2M];
	uint32_t regions[TLB_REGIONS];
	for (unsigned h = 0; h < TLB_HINTS; h++)
		if (t->hint[h] >= (size_t)(l1->set_mask + 1) * l1->ways)
			return -EUCLEAN;
	for (unsigned h = 0; h < TLB_HINTS_2M; h++)
		if (t->hint_2m[h] >= (size_t)(l1_2m->set_mask + 1) * l1_2m->ways)
			return -EUCLEAN;
	regions_count(l1, regions);
	if (l1->regions ? l1->regions != t->regions || memcmp(regions, t->regions, sizeof(regions)) :
			  l1_2m->nvalid != 0)
		return -EUCLEAN;
	for (unsigned i = 0; i < TLB_ARR_N; i++) {
		const struct tlb_array *a = &t->arr[i];
		uint32_t valid = 0, nsize[TLB_NSIZES] = { 0 };
		for (uint32_t s = 0; s <= a->set_mask; s++) {
			const struct tlb_ent *set = a->ent + (size_t)s * a->ways;
			const uint32_t *st = a->stamp ? a->stamp + (size_t)s * a->ways : NULL;
			if (!st && lru_check(a, &a->lru[s], set))
				return -EUCLEAN;
			const uint8_t *sig = a->sig + (size_t)s * a->ways;
			for (uint32_t w = 0; w < a->ways; w++) {
				const struct tlb_ent *e = &set[w];
				if (sig[w] != (ent_valid(e) ? tlb_sig(e->key) : 0))
					return -EUCLEAN;
				if (!ent_valid(e)) {
					if (st && st[w] != 0)
						return -EUCLEAN;
					continue;
				}
				valid++;
				unsigned size = (unsigned)(e->key >> TLB_SIZE_SHIFT);
				if (size < TLB_NSIZES)
					nsize[size]++;
				if (size >= TLB_NSIZES || !array_holds(i, size) || (e->key & a->set_mask) != s ||
				    e->info.page_shift != tlb_size_shift(size) ||
				    (e->info.frame & ((1ULL << tlb_size_shift(size)) - 1)))
					return -EUCLEAN;
				if (st && (st[w] == 0 || st[w] > t->clock))
					return -EUCLEAN;
				if (!e->info.global && t->sole_pcid != TLB_SOLE_MIXED &&
				    t->sole_pcid != e->info.pcid)
					return -EUCLEAN;
				if ((i == TLB_ARR_L2 || i == TLB_ARR_L2_1G) && (e->info.host || e->info.host_writable))
					return -EUCLEAN;
				for (uint32_t v = w + 1; v < a->ways; v++) {
					const struct tlb_ent *f = &set[v];
					if (!ent_valid(f))
						continue;
					if (st && st[v] == st[w])
						return -EUCLEAN;
					if (f->key == e->key && tags_overlap(f, e->info.pcid, e->info.global))
						return -EUCLEAN;
				}
			}
		}
		if (valid != a->nvalid || memcmp(nsize, a->nsize, sizeof(nsize)))
			return -EUCLEAN;
	}
	if (t->absent_key != TLB_KEY_INVALID) {
		for (unsigned size = TLB_4K; size < TLB_NSIZES; size++) {
			uint64_t key = tlb_key(t->absent_key << 12, size);
			if (tlb_arr_find(&t->arr[TLB_ARR_L1_4K + size], key, t->absent_pcid) != TLB_NO_SLOT ||
			    tlb_arr_find(&t->arr[l2_index(size)], key, t->absent_pcid) != TLB_NO_SLOT)
				return -EUCLEAN;
		}
	}
	return 0;
}

void tlb_test_set_clock(struct tlb *t, uint32_t clock)
{
	/* Forward only: stamps already given must stay <= the clock. */
	if (clock > t->clock)
		t->clock = clock;
}
