/* SPDX-License-Identifier: MIT */
/*
 * cpu/nested: the 2-D page walk of nested paging (EPT or NPT). It is the paging/ walker whose
 * "read a table entry at this gpa" step is itself a tdp_walk(): every guest table reference is
 * translated gpa -> hpa before it is read, then the final gpa is translated with the real access.
 *
 * How a guest table access counts for the nested walk (docs/walk-references.md):
 *  - EPT with A/D enabled: a write, for its read and its A/D update alike (SDM: "accesses to guest
 *    paging-structure entries are treated as writes"), so it sets D in the EPT leaf and a violation
 *    reports both read and write (qualification bits 0 and 1);
 *  - EPT without A/D: the read is a read; the guest A/D update is a write, checked against the
 *    rights of the read's translation;
 *  - NPT: a user write (as AMD parts report it and KVM models it: PFERR_NESTED_GUEST_PAGE).
 *
 * Outcomes: a translation (gpa, hpa); a guest #PF or #GP (for the guest, no exit); or a VM exit
 * with the hardware's fields: EPT violation (qualification, gpa, gva: bit 7 always, bit 8 only for
 * the final access), EPT misconfiguration (gpa), NPF (EXITINFO1 = error code | bit 32 final or
 * bit 33 guest table, EXITINFO2 = gpa).
 *
 * References (exact; docs/walk-references.md has the table): every guest entry read plus every
 * nested entry read. A guest A/D update reuses the translation of the read of the same entry (no
 * second nested walk) and is no reference; a guest read never made because its nested walk
 * faulted is none either. A cold 4-level guest on 4-level EPT makes 4 x (4 + 1) + 4 = 24.
 *
 * Locking: none; per vCPU. The nested TLB belongs to one vCPU. Memory is reached with atomic
 * accesses (cpu/hostmem), so walks of several vCPUs and MMU updates may run at once.
 */
#ifndef VMMU_CPU_NESTED_H
#define VMMU_CPU_NESTED_H

#include <stdbool.h>
#include <stdint.h>

#include "paging/paging.h"
#include "paging/tdp.h"
#include "vmmu/types.h"

/*
 * The nested TLB: gpa page -> hpa page, direct-mapped by gfn. It caches successful nested
 * translations (4K granularity, remembering the nested page size); a hit replaces the nested walk
 * of a guest table access or of the final gpa and costs no reference. Like a TLB it may keep a
 * translation after the tables change until nested_tlb_flush() (INVEPT, a new nCR3 / EPTP). A hit
 * needs the rights for the access, and for a write a leaf already dirty (or A/D off), else the
 * walk runs and sets D. Off unless the caller passes one to nested_walk().
 */
#define NESTED_TLB_ENTRIES 64

struct nested_tlb_entry {
	gfn_t gfn;              /* guest page (valid entries only) */
	hpa_t hpa;              /* its host page, 4K aligned */
	uint8_t page_shift;     /* size of the nested leaf it came from */
	uint8_t rights;         /* TDP_R/W/X */
	bool dirty;             /* a write may use it without a walk */
	bool valid;
};

struct nested_tlb {
	struct nested_tlb_entry e[NESTED_TLB_ENTRIES];
	uint64_t hits, misses;
};

/* Drop every entry (and initialises one: a zeroed struct is also empty). Counters are kept. */
void nested_tlb_flush(struct nested_tlb *t);

/*
 * The walk cache: no part of the modelled machine, and invisible in all it shows (every result,
 * reference, A/D bit, counter and cycle is the walk's). A host-side memo of the nested
 * translations of guest table gpas, so that a 2-D walk does not make again the four nested walks
 * of a guest table it translated before: most of a nested TLB miss's host time. It is consulted
 * where the nested walk would run (after a nested TLB miss). A few more entries, apart so that
 * data pages never evict tables, keep final translations: a fault's retried access, or another
 * address of the same page, translates the page its last walk did (a touch fault under EPT walks
 * the new page's final gpa three times: the violation, the kernel's retry, the user's). It is
 * exact by what it keeps and when it trusts it:
 *  - only translations whose nested walk now would read the same entries and write nothing: a
 *    successful walk made in one pass (no A/D race, so its references are the levels it read)
 *    that set A (and D, where a guest table access counts as a write) on its way; never one of a
 *    WALK_NO_AD probe, which sets nothing;
 *  - each tagged with the tables' generation (*gen), which the MMU advances after every change
 *    of a present nested entry (a zap, a split, a protection, A or D cleared, W given back) and
 *    before the TLB flush that follows it; the hardware's own A/D updates only add bits and
 *    leave it alone;
 *  - emptied when the root changes (nested_wcache_reset).
 * With vCPU threads, a walk that read the generation just before a change may still use a
 * translation the change removed, until the flush that follows the change reaches it: as a TLB
 * entry may (the MMU frees nothing before that flush). Owned by one vCPU: no locking.
 */
#define NESTED_WCACHE_ENTRIES 1024
#define NESTED_WCACHE_DATA 64

struct nested_wcache_entry {
	gfn_t gfn;              /* guest page of the table */
	uint64_t gen;           /* tables generation it was filled under (0: never) */
	uint64_t info;          /* its host page | nested reads << 6 | level << 3 | TDP_R/W/X */
	uint64_t entry;         /* the nested leaf, as the walk left it */
	uint8_t *host;          /* that page's bytes, found allocated when filled (NULL: it was
				 * not; a read checks it then): while the generation is current the
				 * nested leaf maps it, and the MMU frees a page its tables map only
				 * after the generation advances and the flush that follows */
};

struct nested_wcache {
	const uint64_t *gen;    /* the MMU's tables generation (atomic, starts at 1); NULL: off */
	/* Host-side counts for tests and benchmarks, never in vmmu_stats: every lookup, and the
	 * hits of final translations apart too. */
	uint64_t hits, misses, mismatches, data_hits;
	bool verify;            /* tests: every hit walks too, and a difference counts a mismatch */
	struct nested_wcache_entry e[NESTED_WCACHE_ENTRIES];       /* guest tables' pages */
	struct nested_wcache_entry data[NESTED_WCACHE_DATA];       /* final gpas' pages */
};

/* Empty every entry (a zeroed struct is empty too). Counters are kept. */
void nested_wcache_reset(struct nested_wcache *w);

enum nested_status {
	NESTED_OK = 0,          /* gpa, hpa, page_shift, access, tdp_rights */
	NESTED_GUEST_PF,        /* #PF for the guest: pf_ec, gva (CR2); no exit */
	NESTED_GUEST_GP,        /* #GP for the guest: a non-canonical gva */
	NESTED_EPT_VIOLATION,   /* exit: exit_qual, gpa, gva */
	NESTED_EPT_MISCONFIG,   /* exit: gpa */
	NESTED_NPF,             /* exit: exit_qual (EXITINFO1), gpa (EXITINFO2) */
};

struct nested_result {
	enum nested_status status;
	gva_t gva;                 /* the address walked (the guest linear-address field) */
	gpa_t gpa;                 /* OK: final gpa; exit: the gpa whose nested walk failed */
	hpa_t hpa;                 /* OK: the translation */
	unsigned page_shift;       /* OK: the smaller of the guest and nested page sizes */
	unsigned access;           /* OK: the guest's combined ACC_* rights */
	unsigned tdp_rights;       /* OK: the nested TDP_R/W/X of the final gpa */
	uint32_t pf_ec;            /* GUEST_PF: the error code */
	uint64_t exit_qual;        /* EPT violation qualification / NPF EXITINFO1 */
	bool table_fault;          /* exit: on a guest table access, not the final one */
	unsigned refs;             /* guest_refs + nested_refs */
	unsigned guest_refs;       /* guest entries read (walk retries included) */
	unsigned nested_refs;      /* nested entries read, over all nested walks */
	struct walk_result guest;  /* the guest walk (gpte[], pte_gpa[], ...) */
	struct tdp_result tdp;     /* the final nested walk, or the one that faulted */
};

/*
 * Translate @gva for @access (PFERR_WRITE / PFERR_FETCH, WALK_IMPLICIT, WALK_NO_AD as in
 * paging_walk) through the guest's tables (@guest) and the nested tables (@tdp), setting A/D in
 * both as the hardware does. @ntlb: the vCPU's nested TLB, or NULL (off). @wc: the vCPU's walk
 * cache, or NULL (off; also off while wc->gen is NULL). Returns 0 with the outcome in @r, or
 * -EINVAL (bad arguments) / -EAGAIN (A/D updates kept losing races), with @r holding only the
 * references made.
 */
int nested_walk(const struct paging_ctx *guest, const struct tdp_ctx *tdp, struct nested_tlb *ntlb,
		struct nested_wcache *wc, gva_t gva, unsigned access, struct nested_result *r);

#endif
