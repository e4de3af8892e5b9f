/* SPDX-License-Identifier: MIT */
/*
 * cpu/tlb: the modelled TLB of one vCPU (logical processor).
 *
 * Set-associative arrays: a first level with one array per page size (4K, 2M, 1G) and a second
 * level (STLB) holding 4K and 2M translations, plus a second-level 1G array. An entry caches a
 * combined translation (linear page -> physical frame, the frame being whatever the mode's final
 * address space is: gpa natively, hpa under shadow or nested paging), its combined rights, the
 * leaf's protection key, whether the leaf's Dirty bit was set, whether it is global, and its PCID.
 * Replacement is LRU within a set. A 2M/1G hit in the STLB is copied into the first level.
 *
 * Architectural rules (SDM 4.10) the callers rely on:
 *  - lookups match (vpn, pcid) or (vpn, global);
 *  - INVLPG removes every entry for the address (any page size) of the current PCID, and global
 *    ones for the address; INVPCID types 0..3 as the SDM; MOV CR3 / MOV CR4 flushes are decided by
 *    the caller (cpu/vcpu.c) and expressed with tlb_flush_pcid / tlb_flush_all.
 *
 * Invariants: at most one entry per (vpn, page size, pcid, global) in each level.
 *
 * Owner's host pointer: an entry has room for one pointer (and a writable flag) that the TLB does
 * not interpret: cpu/ keeps the host bytes of (a 4K page of) the entry's frame there, so a hit
 * needs no second lookup (as QEMU's softmmu TLB keeps an addend). The TLB only guarantees when it
 * is NULL:
 *  - every new entry starts without one (tlb_fill clears it; an L2 hit's copy into the first
 *    level comes from an L2 entry, which never has one);
 *  - the owner reaches entries only through tlb_lookup_entry, the tlb_find_* functions and
 *    tlb_fill's return, which give first-level ones;
 *  - tlb_drop_host clears every one (the first-level arrays hold them all).
 *
 * Locking: none; a TLB belongs to one vCPU and only its thread touches it, except remote flush
 * requests, which the owning vCPU applies itself (cpu/vcpu.c).
 */
#ifndef VMMU_CPU_TLB_H
#define VMMU_CPU_TLB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmmu/types.h"
#include "vmmu/vmmu.h"

struct tlb_entry_info {
	uint64_t frame;       /* physical address of the page (aligned to its size) */
	uint8_t *host;        /* the owner's (see "Owner's host pointer" above), NULL if none */
	uint8_t page_shift;   /* 12, 21 or 30 */
	uint8_t access;       /* ACC_* rights (paging.h) */
	uint8_t pkey;         /* the leaf's protection key */
	bool dirty;           /* the leaf's D bit was set when cached: a write through a clean entry must walk */
	bool global;          /* the leaf's G bit with CR4.PGE set */
	bool host_writable;   /* the owner's: @host may serve writes too */
	uint16_t pcid;        /* 0 when CR4.PCIDE = 0 */
};

enum tlb_hit { TLB_MISS = 0, TLB_HIT_L1, TLB_HIT_L2 };

struct tlb_stats {
	uint64_t hits_l1, hits_l2, misses, fills, flushes, invalidations;
};

/*
 * The TLB's insides are here only so that the first-level 4K probe, every hit's path, is inlined
 * into the access path (tlb_find_l1 and tlb_use_l1 below); everything else about them
 * belongs to tlb.c, and no other file writes them (but for an entry's host fields, above).
 */
#define TLB_KEY_INVALID (~0ULL)   /* an empty slot's key: no (vpn, size) produces it */

/* Page size codes: shift = 12 + 9 * code; a key is the vpn at the entry's size with the code
 * above it (tlb_key). A 4K vpn has at most 52 bits. */
enum { TLB_4K = 0, TLB_2M = 1, TLB_1G = 2, TLB_NSIZES = 3 };
#define TLB_SIZE_SHIFT 56

static inline unsigned tlb_size_shift(unsigned size)
{
	return 12 + 9 * size;
}

static inline uint64_t tlb_key(gva_t va, unsigned size)
{
	return (va >> tlb_size_shift(size)) | ((uint64_t)size << TLB_SIZE_SHIFT);
}

struct tlb_ent {
	uint64_t key;                 /* the vpn at the entry's size, size code above it (tlb.c) */
	struct tlb_entry_info info;   /* what a hit returns; info.pcid/global are the tag */
};
_Static_assert(sizeof(struct tlb_ent) == 32, "tlb_ent is meant to stay compact: two a cache line");

/* A set's recency where it is kept in order (tlb.c, "LRU order"): the ways from most to least
 * recently used, a nibble each from the low end, and the free ways. */
struct tlb_lru {
	uint64_t order;
	uint32_t free;
	uint32_t pad;      /* 16 bytes: four sets a cache line */
};

struct tlb_array {
	struct tlb_ent *ent;  /* sets * ways entries, set-major */
	uint8_t *sig;         /* per entry: tlb_sig(key) if valid, else 0 (tlb.c, "signatures") */
	/* Recency, one of the two (tlb.c, "LRU order"): */
	uint32_t *stamp;      /* per entry: LRU clock at last use, 0 when free; the smallest is the victim */
	struct tlb_lru *lru;  /* per set, where stamp is NULL */
	uint32_t set_mask;    /* sets - 1 */
	uint32_t ways;
	uint32_t nvalid;      /* valid entries: lookups skip an empty array (no 2M/1G pages in use) */
	uint32_t nsize[3];    /* valid entries by size code (tlb.c): the STLB's probe for a 2M page
			       * is skipped while it holds none, every miss's case without them */
	uint32_t *regions;    /* the L1 4K array's only, once a 2M entry came in: tlb.regions */
};

enum { TLB_ARR_L1_4K, TLB_ARR_L1_2M, TLB_ARR_L1_1G, TLB_ARR_L2, TLB_ARR_L2_1G, TLB_ARR_N };

#define TLB_HINTS    256  /* way hints for the first-level 4K array */
#define TLB_HINTS_2M 64   /* and for the first-level 2M array */
#define TLB_REGIONS  256  /* buckets of the L1 4K array's entries by 2M region */
#define TLB_SOLE_NONE  (-1)   /* tlb.sole_pcid's states beside a PCID */
#define TLB_SOLE_MIXED (-2)

struct tlb {
	struct tlb_array arr[TLB_ARR_N];  /* the L1 array of size code s is arr[TLB_ARR_L1_4K + s] */
	uint32_t clock;                   /* LRU clock; renumbered when it would wrap */
	/* Hints: by (4K vpn, PCID) hashed (tlb_hint), a slot of the L1 4K array that held the page
	 * lately, tried before the set is scanned. A hint is checked like any slot (key and tag),
	 * and a lookup matches at most one slot, so a hint can be useless, never wrong: nothing
	 * needs to keep hints up to date. It saves the set scan, and its mispredicted exit, when a
	 * page is used again. */
	uint32_t hint[TLB_HINTS];
	/* The same for the first-level 2M array, by (2M vpn, PCID) hashed (tlb_hint_2m). Such a
	 * hint answers a lookup only where no L1 4K entry could (regions, below): the lookup
	 * order is 4K first (tlb_find_l1). */
	uint32_t hint_2m[TLB_HINTS_2M];
	/* The L1 4K array's valid entries, counted by the 2M region they lie in, hashed
	 * (tlb_region): a zero bucket says no L1 4K entry answers any address of the region.
	 * Kept from the first time the L1 2M array has an entry (tlb.c), not before: until then
	 * no 2M hint is taken, and a guest without 2M pages pays nothing for them. */
	uint32_t regions[TLB_REGIONS];
	/* The 4K page (key) and PCID a lookup last missed at every level, TLB_KEY_INVALID once
	 * anything was inserted since: no entry answers a lookup of it, so an invalidation of that
	 * address (the #PF that follows such a miss, every fault's) has nothing to search for, and
	 * a non-global fill of it (the walk's that follows the miss) nothing to replace. */
	uint64_t absent_key;
	uint16_t absent_pcid;
	/* TLB_SOLE_NONE: no valid entry is non-global; a PCID (0-4095): every valid non-global entry
	 * is tagged with it; TLB_SOLE_MIXED: unknown. With one PCID in use, the usual case, a miss
	 * at every level (absent_key) says no entry of the page is there under any tag, so a
	 * global fill of it (a kernel page's, under a hypervisor's 4K mappings) needs no overlap
	 * pass either. */
	int32_t sole_pcid;
	struct tlb_stats stats;
	struct tlb_ent *mem;              /* every array's entries, one block */
	uint8_t *sigs;                    /* their signatures, same order */
	uint32_t *stamps;                 /* the stamps of the arrays that have them, same order */
	struct tlb_lru *lrus;             /* the orders of the others, by set */
};

/* Geometry: zeros take the defaults (tlb_default_geometry). -EINVAL for a zero/odd set count or
 * too many ways (> 32), -ENOMEM. */
int tlb_create(const struct vmmu_tlb_geometry *g, struct tlb **out);
void tlb_destroy(struct tlb *t);
/* The defaults: Intel Skylake, from the Intel optimization manual (docs/hardware.md). */
void tlb_default_geometry(struct vmmu_tlb_geometry *g);

/* Look @va up for @pcid. On a hit fills @out (frame and page_shift give the physical address). */
enum tlb_hit tlb_lookup(struct tlb *t, gva_t va, uint16_t pcid, struct tlb_entry_info *out);

/*
 * A first-level hit, every hit's path, in two inline steps that lookups build on: tlb_find_l1()
 * finds the entry that a lookup hits in the first level, changing nothing that the model counts
 * or replaces by; tlb_use_l1() then makes the hit's effects (the LRU stamp, the count). Between
 * the two a caller may decide not to use the hit after all, and nothing has happened.
 */
#define TLB_NO_SLOT SIZE_MAX

/* Whether slot @e answers a lookup of @key for @pcid. */
static inline bool tlb_ent_hits(const struct tlb_ent *e, uint64_t key, uint16_t pcid)
{
	return e->key == key && (e->info.global || e->info.pcid == pcid);
}

/* A valid entry's signature: never 0, which marks a free slot; the set index's bits are the
 * same in a whole set, so every bit of the key is mixed in. */
static inline uint8_t tlb_sig(uint64_t key)
{
	return (uint8_t)((key * 0x9e3779b97f4a7c15ULL) >> 56) | 1;
}

/* tlb_arr_find through the signatures: the set's, one line (two for the few sets whose 12 bytes
 * straddle one) instead of its entries' (a 12-way STLB set spans six), and an entry's own line
 * only where its signature matches. */
static inline size_t tlb_arr_find_sig(const struct tlb_array *a, uint64_t key, uint16_t pcid)
{
	const size_t base = (size_t)(key & a->set_mask) * a->ways;
	const uint8_t sig = tlb_sig(key);

	for (size_t i = base; i < base + a->ways; i++)
		if (a->sig[i] == sig && tlb_ent_hits(&a->ent[i], key, pcid))
			return i;
	return TLB_NO_SLOT;
}

/* The slot of @a that a lookup of @key for @pcid hits, or TLB_NO_SLOT: a scan of the key's set
 * (tlb.c's invariants leave at most one). */
static inline size_t tlb_arr_find(const struct tlb_array *a, uint64_t key, uint16_t pcid)
{
	size_t i = (size_t)(key & a->set_mask) * a->ways;

	for (uint32_t w = 0; w < a->ways; w++, i++)
		if (tlb_ent_hits(&a->ent[i], key, pcid))
			return i;
	return TLB_NO_SLOT;
}

/* The hint for 4K page @key looked up under @pcid (several processes use the same addresses). */
static inline uint32_t *tlb_hint(struct tlb *t, uint64_t key, uint16_t pcid)
{
	return &t->hint[(key ^ ((uint64_t)pcid << 3)) % TLB_HINTS];
}

/* The hinted L1 4K slot's entry if a lookup of @va for @pcid hits it, with its LRU stamp in
 * *@stamp, else NULL (the first level may still have the page elsewhere). Changes nothing. */
static inline __attribute__((always_inline)) struct tlb_entry_info *tlb_find_hinted(struct tlb *t, gva_t va,
										    uint16_t pcid, uint32_t **stamp)
{
	struct tlb_array *a = &t->arr[TLB_ARR_L1_4K];
	uint64_t key = va >> 12;   /* a 4K key needs no size code (it is 0) */
	uint32_t i = *tlb_hint(t, key, pcid);

	if (!tlb_ent_hits(&a->ent[i], key, pcid))
		return NULL;
	*stamp = &a->stamp[i];
	return &a->ent[i].info;
}

/* The bucket of tlb.regions that counts @va's 2M region. */
static inline uint32_t tlb_region(gva_t va)
{
	return (uint32_t)(va >> 21) % TLB_REGIONS;
}

/* The hint for 2M page @key (its key, size code and all) looked up under @pcid. */
static inline uint32_t *tlb_hint_2m(struct tlb *t, uint64_t key, uint16_t pcid)
{
	return &t->hint_2m[(key ^ ((uint64_t)pcid << 3)) % TLB_HINTS_2M];
}

/* The hinted L1 2M slot's entry if a lookup of @va for @pcid hits it and no L1 4K entry could
 * answer the lookup first (tlb_find_l1's order), with its LRU stamp in *@stamp, else NULL.
 * Changes nothing. */
static inline __attribute__((always_inline)) struct tlb_entry_info *tlb_find_hinted_2m(struct tlb *t, gva_t va,
										       uint16_t pcid, uint32_t **stamp)
{
	struct tlb_array *a = &t->arr[TLB_ARR_L1_2M];
	uint64_t key = tlb_key(va, TLB_2M);

	if (!a->nvalid)
		return NULL;   /* no 2M page cached (and perhaps no regions counted: tlb.c) */
	uint32_t i = *tlb_hint_2m(t, key, pcid);
	if (!tlb_ent_hits(&a->ent[i], key, pcid) || t->regions[tlb_region(va)])
		return NULL;
	*stamp = &a->stamp[i];
	return &a->ent[i].info;
}

/* The L1 4K entry that a lookup of @va for @pcid hits (the hinted slot, then the set), with its
 * LRU stamp in *@stamp, or NULL. Changes nothing but a hint. */
static inline __attribute__((always_inline)) struct tlb_entry_info *tlb_find_l1_4k(struct tlb *t, gva_t va,
										   uint16_t pcid, uint32_t **stamp)
{
	struct tlb_array *a = &t->arr[TLB_ARR_L1_4K];
	uint64_t key = va >> 12;   /* a 4K key needs no size code (it is 0) */
	uint32_t *hint = tlb_hint(t, key, pcid);
	size_t i = *hint;

	if (__builtin_expect(!tlb_ent_hits(&a->ent[i], key, pcid), 0)) {
		i = tlb_arr_find(a, key, pcid);
		if (i == TLB_NO_SLOT)
			return NULL;
		*hint = (uint32_t)i;
	}
	*stamp = &a->stamp[i];
	return &a->ent[i].info;
}

/* The same in the L1 2M array, then the L1 1G array: where the first level answers a lookup that
 * missed the L1 4K array. */
__attribute__((noinline)) struct tlb_entry_info *tlb_find_l1_large(struct tlb *t, gva_t va, uint16_t pcid,
								   uint32_t **stamp);

/*
 * The first-level entry that a lookup of @va for @pcid hits, with its LRU stamp in *@stamp; NULL
 * if the lookup misses the first level (it may still hit the second). Probe order as tlb_lookup:
 * 4K, 2M, 1G. Changes nothing but a hint.
 */
static inline struct tlb_entry_info *tlb_find_l1(struct tlb *t, gva_t va, uint16_t pcid, uint32_t **stamp)
{
	struct tlb_entry_info *e = tlb_find_l1_4k(t, va, pcid, stamp);

	if (e || !(t->arr[TLB_ARR_L1_2M].nvalid | t->arr[TLB_ARR_L1_1G].nvalid))
		return e;   /* no large pages cached: nothing more to probe (the common case) */
	return tlb_find_l1_large(t, va, pcid, stamp);
}

/* Count a first-level hit and make the entry (whose stamp is @stamp) the most recently used.
 * false, with nothing done, when the LRU clock would wrap (tlb_lookup_entry renumbers then). */
static inline __attribute__((always_inline)) bool tlb_use_l1(struct tlb *t, uint32_t *stamp)
{
	uint32_t clock = t->clock + 1;

	if (__builtin_expect(clock == 0, 0))
		return false;
	t->clock = clock;
	*stamp = clock;
	t->stats.hits_l1++;
	return true;
}

/* Out of line parts of tlb_lookup_entry: the second level (and a miss), and the renumbering when
 * the LRU clock would wrap. */
__attribute__((noinline)) struct tlb_entry_info *tlb_lookup_l2(struct tlb *t, gva_t va, uint16_t pcid,
							       enum tlb_hit *level);
__attribute__((cold, noinline)) struct tlb_entry_info *tlb_lookup_wrap(struct tlb *t, gva_t va,
								       uint16_t pcid, enum tlb_hit *level);

/* The rest of tlb_lookup_entry after its tlb_find_l1 (@e, @stamp), for a caller that probed the
 * first level itself and changed nothing since. */
static inline struct tlb_entry_info *tlb_lookup_finish(struct tlb *t, gva_t va, uint16_t pcid,
						       struct tlb_entry_info *e, uint32_t *stamp,
						       enum tlb_hit *level)
{
	if (!e)
		return tlb_lookup_l2(t, va, pcid, level);
	if (!tlb_use_l1(t, stamp))
		return tlb_lookup_wrap(t, va, pcid, level);
	*level = TLB_HIT_L1;
	return e;
}

/*
 * The same lookup as tlb_lookup (the same LRU update and counts), giving the entry itself: NULL
 * on a miss, else a first-level entry (an L2 hit gives its new L1 copy), with *@level TLB_HIT_L1
 * or TLB_HIT_L2. The pointer is valid until the next call that changes the TLB; the caller may
 * write only its host and host_writable fields (so may the callers of tlb_find_*).
 */
static inline struct tlb_entry_info *tlb_lookup_entry(struct tlb *t, gva_t va, uint16_t pcid,
						      enum tlb_hit *level)
{
	uint32_t *stamp;
	struct tlb_entry_info *e = tlb_find_l1(t, va, pcid, &stamp);

	return tlb_lookup_finish(t, va, pcid, e, stamp, level);
}

/* Clear every entry's host pointer (the owner's cache went stale). Scans the first level only. */
void tlb_drop_host(struct tlb *t);
/* Insert the translation of @va (replacing an entry for the same page, size and tag). Returns
 * its first-level entry (tlb_lookup_entry's rules; NULL for a bad page_shift, which is dropped). */
struct tlb_entry_info *tlb_fill(struct tlb *t, gva_t va, const struct tlb_entry_info *e);

/* INVLPG: every entry mapping @va for @pcid, and global entries mapping @va. */
void tlb_invlpg(struct tlb *t, gva_t va, uint16_t pcid);
/* INVPCID type 0: entries mapping @va for @pcid, not global ones. */
void tlb_flush_addr_pcid(struct tlb *t, gva_t va, uint16_t pcid);
/* Entries tagged @pcid; global ones too when @global. (INVPCID 1, MOV CR3 with PCIDE.)
 * A global entry matches every PCID whatever its tag, so @global removes every global entry. */
void tlb_flush_pcid(struct tlb *t, uint16_t pcid, bool global);
/* Every entry; global ones too when @global. (INVPCID 2/3, MOV CR3/CR4/CR0 flushes.) */
void tlb_flush_all(struct tlb *t, bool global);

const struct tlb_stats *tlb_get_stats(const struct tlb *t);
/* Number of valid entries, for tests. Counts every array: a translation held in both levels
 * counts twice (a fill puts it in both). */
unsigned tlb_count(const struct tlb *t);

/* The physical address of @va through the hit @e (frame plus the offset within the page). */
static inline uint64_t tlb_entry_pa(const struct tlb_entry_info *e, gva_t va)
{
	return e->frame | (va & ((1ULL << e->page_shift) - 1));
}

/* Debug: check the invariants of every set (entries in their set, one entry per lookup tag,
 * aligned frames, LRU stamps distinct and not ahead of the clock, no host pointer in the second
 * level, the counts by size and by region), that every hint names a slot of its first-level
 * array, and that no entry answers the absent page. 0 or -EUCLEAN. */
int tlb_check(const struct tlb *t);
/* Tests: set the LRU clock (to start it just before it wraps). */
void tlb_test_set_clock(struct tlb *t, uint32_t clock);

#endif
