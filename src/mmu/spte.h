/* SPDX-License-Identifier: MIT */
/*
 * One spte vocabulary for every mode (KVM's spte.h): the tables the soft MMU builds (shadow page
 * tables, x86-64 entries), and the hard MMU's EPT and NPT tables. What the three formats share is
 * named once here; where they differ, struct spte_fmt says how, and only the constructors and the
 * A/D questions read it.
 *
 * Layout of an spte this MMU makes (bits 51:12 are the frame in every format):
 *
 *   table    frame | the format's "everything allowed" bits (P W U A; EPT R W X A) | MMU_PRESENT
 *   leaf     frame | the format's rights for ACC_* | A | D? | PS (level > 1) | MMU_PRESENT |
 *            HOST_WRITABLE? | MMU_WRITABLE? | (shadow: G, protection key)
 *   MMIO     the format's MMIO value (a reserved or misconfigured entry, so the access exits) |
 *            MMIO | gfn (50:12) | memslot generation (62:53)
 *   empty    0; and in the soft MMU under notrap SPTE_TRAP (shadow.h)
 *
 * Software bits, ignored by the hardware of every format (x86-64 and NPT: 11 and 52-58 are
 * available; EPT: 11 and 52-62 are ignored; no MMIO spte is ever present to a walk):
 *   MMU_PRESENT (11)     a table or leaf this MMU made: is_shadow_present_pte() needs no format;
 *   MMIO (52)            an MMIO spte (its hardware bits make every access exit);
 *   HOST_WRITABLE (56)   the host page was looked up for writing;
 *   MMU_WRITABLE (57)    writable but for dirty logging (the fast page fault may set W);
 *   generation (62:53)   MMIO sptes only, in place of the protection key and HOST/MMU_WRITABLE.
 *
 * Invariants (the audits check them): W set => MMU_WRITABLE set => HOST_WRITABLE set (soft
 * MMU; the hard MMU looks writable host pages up whenever a slot allows writes); an MMIO spte lives
 * at level 1 and is never shadow-present; a present leaf at level > 1 has PS.
 *
 * Every spte is read and written through these atomics, never with plain loads and stores:
 * lockless walkers (the hardware model of other vCPUs, the fast page fault) read tables while
 * faults install entries.
 *  spte_read     acquire load: a present non-leaf spte read this way makes the table it points to
 *                (initialised before publication) visible;
 *  spte_write    release store, for entries no one else can be changing (under mmu_lock held
 *                exclusive, or a table not yet published);
 *  spte_cmpxchg  sequentially consistent compare-and-swap; on failure *old holds the value found
 *                and nothing was written: the caller re-reads and decides again;
 *  spte_xchg     the value before, for zaps that must see what they removed (A/D).
 * Table pages live in the host frame arena; a table at hpa is an array of 512 sptes.
 */
#ifndef VMMU_MMU_SPTE_H
#define VMMU_MMU_SPTE_H

#include <stdbool.h>
#include <stdint.h>

#include "host/host.h"
#include "mem/memslot.h"
#include "paging/paging.h"
#include "paging/tdp.h"
#include "vmmu/types.h"

/* ---- atomics ---- */

static inline uint64_t spte_read(const uint64_t *sptep)
{
	return __atomic_load_n(sptep, __ATOMIC_ACQUIRE);
}

static inline void spte_write(uint64_t *sptep, uint64_t val)
{
	__atomic_store_n(sptep, val, __ATOMIC_RELEASE);
}

static inline bool spte_cmpxchg(uint64_t *sptep, uint64_t *old, uint64_t val)
{
	return __atomic_compare_exchange_n(sptep, old, val, false, __ATOMIC_SEQ_CST,
					   __ATOMIC_SEQ_CST);
}

static inline uint64_t spte_xchg(uint64_t *sptep, uint64_t val)
{
	return __atomic_exchange_n(sptep, val, __ATOMIC_SEQ_CST);
}

/* ---- geometry ---- */

#define SPTE_ENTRIES     512
#define SPTE_LEVEL_BITS  9

/* Index of address @addr (a gva for shadow tables, a gpa for EPT/NPT) in a table of @level. */
static inline unsigned spte_index(uint64_t addr, int level)
{
	return (unsigned)(addr >> (12 + SPTE_LEVEL_BITS * (level - 1))) & (SPTE_ENTRIES - 1);
}

/* 4 KiB pages an entry at @level maps: 1, 512, 512^2 (KVM's KVM_PAGES_PER_HPAGE). */
static inline uint64_t spte_level_pages(int level)
{
	return 1ULL << (SPTE_LEVEL_BITS * (level - 1));
}

/* Index of @sptep in its table (tables are page-aligned). */
static inline unsigned sptep_index(const uint64_t *sptep)
{
	return (unsigned)(((uintptr_t)sptep & 0xfff) / sizeof(uint64_t));
}

/* The 512 sptes of the table page at @hpa. */
static inline uint64_t *spte_table(const struct host_arena *a, hpa_t hpa)
{
	return (uint64_t *)host_pfn_to_ptr(a, hpa >> 12);
}

/* ---- bits ---- */

#define SPTE_W_MASK             (1ULL << 1)     /* x86-64 R/W, NPT R/W and EPT W: bit 1 in all */
#define SPTE_PFN_MASK           0x0007fffffffff000ULL   /* frames below 2^51 */
#define SPTE_RSVD_51            (1ULL << 51)    /* reserved below MAXPHYADDR 52: an RSVD fault */
#define SPTE_MMU_PRESENT_MASK   (1ULL << 11)
#define SPTE_MMIO_MASK          (1ULL << 52)
#define SPTE_HOST_WRITABLE      (1ULL << 56)
#define SPTE_MMU_WRITABLE       (1ULL << 57)
#define SPTE_PKEY_SHIFT         59
#define SPTE_PKEY_MASK          (0xfULL << SPTE_PKEY_SHIFT)
#define SPTE_MMIO_GEN_SHIFT     53
#define SPTE_MMIO_GEN_BITS      10
#define SPTE_MMIO_GEN_MASK      (((1ULL << SPTE_MMIO_GEN_BITS) - 1) << SPTE_MMIO_GEN_SHIFT)
#define SPTE_SW_MASK            (SPTE_MMU_PRESENT_MASK | SPTE_MMIO_MASK | SPTE_HOST_WRITABLE | \
				 SPTE_MMU_WRITABLE)

/* What the hardware interprets in each format. */
#define SPTE_X86_HW_MASK        (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT_PWT_MASK | \
				 PT_PCD_MASK | PT_ACCESSED_MASK | PT_DIRTY_MASK | PT_PAGE_SIZE_MASK | \
				 PT_GLOBAL_MASK | PT64_NX_MASK | SPTE_PKEY_MASK | TDP_ADDR_MASK)
#define SPTE_EPT_HW_MASK        (EPT_RWX_MASK | EPT_MT_MASK | EPT_IPAT_MASK | EPT_PAGE_SIZE_MASK | \
				 EPT_ACCESSED_MASK | EPT_DIRTY_MASK | TDP_ADDR_MASK | (1ULL << 63))
_Static_assert(!(SPTE_SW_MASK & (SPTE_X86_HW_MASK | SPTE_EPT_HW_MASK)),
	       "software spte bits overlap bits some format's hardware interprets");
_Static_assert(!(SPTE_MMIO_GEN_MASK & (SPTE_EPT_HW_MASK | PT64_NX_MASK | SPTE_MMIO_MASK)),
	       "the MMIO generation must sit in bits every format ignores in an MMIO spte");
_Static_assert(EPT_WRITABLE_MASK == SPTE_W_MASK && PT_WRITABLE_MASK == SPTE_W_MASK,
	       "W is bit 1 in every format");
_Static_assert(EPT_PAGE_SIZE_MASK == PT_PAGE_SIZE_MASK, "PS is bit 7 in every format");

/* ---- questions that need no format ---- */

/* A table or leaf this MMU made (not empty, not MMIO, not a soft-MMU trap). */
static inline bool is_shadow_present_pte(uint64_t spte)
{
	return spte & SPTE_MMU_PRESENT_MASK;
}

static inline bool is_mmio_spte(uint64_t spte)
{
	return spte & SPTE_MMIO_MASK;
}

/* A present spte at @level maps a page (as opposed to linking a table). */
static inline bool is_last_spte(uint64_t spte, int level)
{
	return level == 1 || (spte & PT_PAGE_SIZE_MASK);
}

static inline bool is_writable_pte(uint64_t spte)
{
	return spte & SPTE_W_MASK;
}

static inline bool is_mmu_writable_spte(uint64_t spte)
{
	return spte & SPTE_MMU_WRITABLE;
}

static inline pfn_t spte_to_pfn(uint64_t spte)
{
	return (spte & SPTE_PFN_MASK) >> 12;
}

/* ---- MMIO sptes: the memslot generation they were made in ---- */

/* A stable memslot generation is even and grows by 2: count changes, keep the low bits. */
static inline uint64_t mmio_gen_of(uint64_t memslot_gen)
{
	return (memslot_gen >> 1) & ((1ULL << SPTE_MMIO_GEN_BITS) - 1);
}

/* Does the memslot change now in progress (generation @memslot_gen, odd) wrap the tag? Then every
 * MMIO spte must go, so a stale tag can never look current (KVM's "MMIO generation wrapped"). */
static inline bool mmio_gen_wraps(uint64_t memslot_gen)
{
	return mmio_gen_of(memslot_gen + 1) == 0;
}

static inline gfn_t mmio_spte_gfn(uint64_t spte)
{
	return (spte & SPTE_PFN_MASK & ~SPTE_RSVD_51) >> 12;
}

/* Was MMIO spte @spte made in the generation current now (@memslot_gen, read in the same read
 * section)? Never while a change is in progress. */
static inline bool mmio_spte_current(uint64_t spte, uint64_t memslot_gen)
{
	return !memslot_gen_in_progress(memslot_gen) &&
	       ((spte & SPTE_MMIO_GEN_MASK) >> SPTE_MMIO_GEN_SHIFT) == mmio_gen_of(memslot_gen);
}

/* ---- the formats ---- */

enum spte_format { SPTE_FMT_SHADOW = 0, SPTE_FMT_EPT, SPTE_FMT_NPT };

/* How one MMU's format spells things (KVM's shadow_*_mask globals, here per MMU). Constant after
 * the MMU is created. */
struct spte_fmt {
	enum spte_format kind;
	uint64_t table_bits;     /* a link: everything allowed (the leaf decides), A preset */
	uint64_t accessed_mask;  /* A in a leaf */
	uint64_t dirty_mask;     /* D in a leaf */
	uint64_t mmio_value;     /* the hardware bits of an MMIO spte; 0: no MMIO caching */
};

/* @mmio: the format can make MMIO sptes (a reserved bit exists below MAXPHYADDR, or EPT). */
static inline void spte_fmt_init(struct spte_fmt *f, enum spte_format kind, bool mmio)
{
	f->kind = kind;
	if (kind == SPTE_FMT_EPT) {
		f->table_bits = EPT_RWX_MASK | EPT_ACCESSED_MASK;
		f->accessed_mask = EPT_ACCESSED_MASK;
		f->dirty_mask = EPT_DIRTY_MASK;
		f->mmio_value = EPT_WRITABLE_MASK;           /* W without R: a misconfiguration */
	} else {
		f->table_bits = PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT_ACCESSED_MASK;
		f->accessed_mask = PT_ACCESSED_MASK;
		f->dirty_mask = PT_DIRTY_MASK;
		/* NPT's MMIO sptes look like a writable user page but for the reserved bit, as
		 * KVM's; the soft MMU's need only P and the reserved bit. */
		f->mmio_value = PT_PRESENT_MASK | SPTE_RSVD_51 |
				(kind == SPTE_FMT_NPT ? PT_WRITABLE_MASK | PT_USER_MASK : 0);
	}
	if (!mmio)
		f->mmio_value = 0;
}

static inline uint64_t make_mmio_spte(const struct spte_fmt *f, gfn_t gfn, uint64_t memslot_gen)
{
	return f->mmio_value | SPTE_MMIO_MASK | ((gfn << 12) & SPTE_PFN_MASK & ~SPTE_RSVD_51) |
	       (mmio_gen_of(memslot_gen) << SPTE_MMIO_GEN_SHIFT);
}

/* A link to the table at @pfn. */
static inline uint64_t make_table_spte(const struct spte_fmt *f, pfn_t pfn)
{
	return (pfn << 12) | f->table_bits | SPTE_MMU_PRESENT_MASK;
}

/* What a leaf is to allow (make_leaf_spte). */
struct spte_leaf {
	pfn_t pfn;              /* aligned to the leaf's size */
	int level;              /* > 1: a huge leaf (PS) */
	unsigned access;        /* ACC_EXEC / ACC_USER (ACC_WRITE: see writable) */
	bool writable;          /* W now */
	bool mmu_writable;      /* W but for dirty logging */
	bool host_writable;     /* the host page was looked up for writing */
	bool dirty;             /* D preset */
	bool global;            /* shadow: the guest leaf's G */
	unsigned pkey;          /* shadow: the guest leaf's protection key */
};

/* A leaf mapping @l->pfn in format @f, A set (the access that made it is about to happen). */
static inline uint64_t make_leaf_spte(const struct spte_fmt *f, const struct spte_leaf *l)
{
	uint64_t s = (l->pfn << 12) | f->accessed_mask | SPTE_MMU_PRESENT_MASK;

	if (l->level > 1)
		s |= PT_PAGE_SIZE_MASK;
	if (f->kind == SPTE_FMT_EPT) {
		s |= EPT_READABLE_MASK | ((uint64_t)EPT_MT_WB << EPT_MT_SHIFT);
		if (l->access & ACC_EXEC)
			s |= EPT_EXECUTABLE_MASK;
	} else {
		s |= PT_PRESENT_MASK;
		if (l->access & ACC_USER)
			s |= PT_USER_MASK;
		if (!(l->access & ACC_EXEC))
			s |= PT64_NX_MASK;
		if (l->global)
			s |= PT_GLOBAL_MASK;
		s |= (uint64_t)(l->pkey & 0xf) << SPTE_PKEY_SHIFT;
	}
	if (l->writable)
		s |= SPTE_W_MASK;
	if (l->mmu_writable)
		s |= SPTE_MMU_WRITABLE;
	if (l->host_writable)
		s |= SPTE_HOST_WRITABLE;
	if (l->dirty)
		s |= f->dirty_mask;
	return s;
}

#endif
