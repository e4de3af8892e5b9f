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
 * Locking: none; a TLB belongs to one vCPU and only its thread touches it, except remote flush
 * requests, which the owning vCPU applies itself (cpu/vcpu.c).
 */
#ifndef VMMU_CPU_TLB_H
#define VMMU_CPU_TLB_H

#include <stdbool.h>
#include <stdint.h>

#include "vmmu/types.h"
#include "vmmu/vmmu.h"

struct tlb_entry_info {
	uint64_t frame;       /* physical address of the page (aligned to its size) */
	uint8_t page_shift;   /* 12, 21 or 30 */
	uint8_t access;       /* ACC_* rights (paging.h) */
	uint8_t pkey;         /* the leaf's protection key */
	bool dirty;           /* the leaf's D bit was set when cached: a write through a clean entry must walk */
	bool global;          /* the leaf's G bit with CR4.PGE set */
	uint16_t pcid;        /* 0 when CR4.PCIDE = 0 */
};

enum tlb_hit { TLB_MISS = 0, TLB_HIT_L1, TLB_HIT_L2 };

struct tlb_stats {
	uint64_t hits_l1, hits_l2, misses, fills, flushes, invalidations;
};

struct tlb;

/* Geometry: zeros take the defaults (tlb_default_geometry). -EINVAL for a zero/odd set count or
 * too many ways (> 32), -ENOMEM. */
int tlb_create(const struct vmmu_tlb_geometry *g, struct tlb **out);
void tlb_destroy(struct tlb *t);
/* The defaults: Intel Skylake, from the Intel optimization manual (docs/hardware.md). */
void tlb_default_geometry(struct vmmu_tlb_geometry *g);

/* Look @va up for @pcid. On a hit fills @out (frame and page_shift give the physical address). */
enum tlb_hit tlb_lookup(struct tlb *t, gva_t va, uint16_t pcid, struct tlb_entry_info *out);
/* Insert the translation of @va (replacing an entry for the same page, size and tag). */
void tlb_fill(struct tlb *t, gva_t va, const struct tlb_entry_info *e);

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
 * aligned frames, LRU stamps distinct and not ahead of the clock). 0 or -EUCLEAN. */
int tlb_check(const struct tlb *t);
/* Tests: set the LRU clock (to start it just before it wraps). */
void tlb_test_set_clock(struct tlb *t, uint32_t clock);

#endif
