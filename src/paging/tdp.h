/* SPDX-License-Identifier: MIT */
/*
 * paging/tdp: the nested ("two-dimensional paging") table formats, Intel EPT and AMD NPT, and the
 * 1-D walk gpa -> hpa through them as the page-walk hardware does it.
 *
 *  - EPT (SDM vol. 3C, "EPT"): R/W/X in bits 2:0 (present = any of them), memory type 5:3 and IPAT
 *    6 in a leaf, PS 7 (2M at level 2, 1G at level 3 when supported), A 8 and D 9 when the EPTP
 *    enables them, address 51:12. A walk that meets a present entry the CPU cannot interpret ends
 *    in an EPT misconfiguration (tdp_ept_misconfigured()); one that meets a not-present entry, or
 *    whose access the AND of the levels' rights refuses, in an EPT violation, with the
 *    qualification bits 5:0 (access kind, rights) in tdp_result.qual.
 *  - NPT (AMD APM vol. 2, "Nested Paging"): entries in the x86-64 long-mode format, walked by the
 *    paging/ walker itself (walk64_addr) with nCR3 as CR3, EFER.NXE and CPL 3: every nested access
 *    is a user access. A fault gives the page-fault error code bits (P, W, U, RSVD, I/D) of the
 *    NPF's EXITINFO1 in tdp_result.qual; the caller adds bit 32 or 33.
 *
 * Rules where the manuals leave a choice (docs/walk-references.md):
 *  - the walk stops at the first not-present or misconfigured entry; it reads one entry a level,
 *    so hostile tables (loops, self-references) always end;
 *  - A (every level) and D (leaf, on a write) are set only when the translation succeeds, each by
 *    compare-and-swap; a lost swap restarts the walk (bounded, then -EAGAIN); NPT always has A/D,
 *    EPT only when tdp_ctx.ad (EPTP bit 6);
 *  - a table the walk cannot read (outside the arena, or a frame not allocated) is not present;
 *  - a gpa at or above 2^(12 + 9 * levels) is beyond the tables' reach: not present, no reference.
 *
 * Locking: none inside; tables are reached through cpu/hostmem (atomic loads and compare-and-swap).
 * A tdp_ctx is a value a vCPU reads.
 */
#ifndef VMMU_PAGING_TDP_H
#define VMMU_PAGING_TDP_H

#include <stdbool.h>
#include <stdint.h>

#include "host/host.h"
#include "paging/paging.h"
#include "vmmu/types.h"

/* EPT entry bits. */
#define EPT_READABLE_MASK   (1ULL << 0)
#define EPT_WRITABLE_MASK   (1ULL << 1)
#define EPT_EXECUTABLE_MASK (1ULL << 2)
#define EPT_RWX_MASK        (EPT_READABLE_MASK | EPT_WRITABLE_MASK | EPT_EXECUTABLE_MASK)
#define EPT_MT_SHIFT        3
#define EPT_MT_MASK         (7ULL << EPT_MT_SHIFT)
#define EPT_IPAT_MASK       (1ULL << 6)
#define EPT_PAGE_SIZE_MASK  (1ULL << 7)
#define EPT_ACCESSED_MASK   (1ULL << 8)
#define EPT_DIRTY_MASK      (1ULL << 9)
#define TDP_ADDR_MASK       0x000ffffffffff000ULL   /* bits 51:12, both formats */

/* EPT memory types (leaf bits 5:3, EPTP bits 2:0); 2, 3 and 7 are reserved. */
#define EPT_MT_UC 0u
#define EPT_MT_WB 6u

/* EPTP. */
#define EPTP_MT_MASK   0x7ULL
#define EPTP_PWL_SHIFT 3                    /* page-walk length - 1 */
#define EPTP_PWL_MASK  (0x7ULL << EPTP_PWL_SHIFT)
#define EPTP_AD_MASK   (1ULL << 6)

/* EPT-violation exit qualification (SDM "Exit Qualification for EPT Violations"). */
#define EPT_QUAL_READ           (1ULL << 0)  /* a data read */
#define EPT_QUAL_WRITE          (1ULL << 1)  /* a data write */
#define EPT_QUAL_FETCH          (1ULL << 2)  /* an instruction fetch */
#define EPT_QUAL_RIGHTS_SHIFT   3            /* bits 5:3: AND of bits 2:0 over the levels read */
#define EPT_QUAL_READABLE       (1ULL << 3)
#define EPT_QUAL_WRITABLE       (1ULL << 4)
#define EPT_QUAL_EXECUTABLE     (1ULL << 5)
#define EPT_QUAL_GVA_VALID      (1ULL << 7)  /* the guest linear-address field is valid */
#define EPT_QUAL_GVA_TRANSLATED (1ULL << 8)  /* with bit 7: the final access, not a guest table */

/* NPF EXITINFO1 above the error code (APM "Nested versus Guest Page Faults"). */
#define NPF_INFO_FINAL (1ULL << 32)   /* the fault was on the final gpa translation */
#define NPF_INFO_TABLE (1ULL << 33)   /* the fault was on a guest page-table access */

/* Rights of a nested translation; the values of EPT bits 2:0. */
#define TDP_R 1u
#define TDP_W 2u
#define TDP_X 4u
#define TDP_RWX (TDP_R | TDP_W | TDP_X)

#define TDP_MAX_LEVELS 5

enum tdp_format { TDP_EPT = 0, TDP_NPT };

/* What a vCPU's nested paging is; a value, set when the EPTP / nCR3 is loaded. */
struct tdp_ctx {
	enum tdp_format fmt;
	hpa_t root;                 /* EPTP / nCR3 bits 51:12 */
	int levels;                 /* 4 or 5 */
	bool ad;                    /* EPT: A/D enabled (EPTP bit 6); NPT: ignored, always on */
	bool exec_only;             /* EPT: execute-only entries (RWX = 100) are allowed */
	bool has_1g;                /* 1 GiB leaves at level 3 */
	int maxphyaddr;             /* host MAXPHYADDR: address bits from it to 51 are reserved */
	struct host_arena *arena;   /* where the tables and the hpas live */
	/* The arena's host_pfn_to_ptr(0), host_frame_meta(0) and host_arena_frames(), which
	 * tdp_alloc_root fills in: the EPT walk's frame check inline (host_hpa_ptr_inline); left
	 * zero, each read makes the call. */
	uint8_t *arena_base;
	const uint8_t *arena_meta;
	uint64_t arena_frames;
};

enum tdp_status {
	TDP_OK = 0,       /* translated: hpa, page_shift, rights */
	TDP_VIOLATION,    /* EPT violation / NPF: qual */
	TDP_MISCONFIG,    /* EPT misconfiguration (EPT only) */
};

struct tdp_result {
	enum tdp_status status;
	hpa_t hpa;                  /* OK: the translation of the gpa */
	unsigned page_shift;        /* OK: 12, 21 or 30 */
	unsigned rights;            /* TDP_R/W/X allowed by every level read (0 if not present) */
	int level;                  /* level of the last entry read (the leaf when OK) */
	uint64_t entry;             /* that entry, after any A/D update */
	unsigned refs;              /* entries read, retries included */
	uint64_t qual;              /* VIOLATION: EPT qualification bits 5:0, or NPT error code */
};

/* Entry predicates. */
static inline bool ept_is_present(uint64_t e)
{
	return e & EPT_RWX_MASK;
}

static inline unsigned ept_memtype(uint64_t e)
{
	return (unsigned)((e & EPT_MT_MASK) >> EPT_MT_SHIFT);
}

static inline bool ept_memtype_reserved(unsigned mt)
{
	return mt == 2 || mt == 3 || mt == 7;
}

static inline hpa_t tdp_entry_addr(uint64_t e)
{
	return e & TDP_ADDR_MASK;
}

static inline bool tdp_is_present(const struct tdp_ctx *c, uint64_t e)
{
	return c->fmt == TDP_EPT ? ept_is_present(e) : (e & PT_PRESENT_MASK);
}

/* Whether nested leaf @e lets a write through without a walk to set D: D is set, or the format
 * has none (EPT without A/D). */
static inline bool tdp_leaf_dirty(const struct tdp_ctx *c, uint64_t e)
{
	if (c->fmt == TDP_EPT)
		return !c->ad || (e & EPT_DIRTY_MASK);
	return e & PT_DIRTY_MASK;
}

/* A present entry at @level maps a page (as opposed to pointing to a table). */
static inline bool tdp_is_leaf(uint64_t e, int level)
{
	_Static_assert(EPT_PAGE_SIZE_MASK == PT_PAGE_SIZE_MASK, "PS is bit 7 in both formats");
	return level == 1 || ((level == 2 || level == 3) && (e & PT_PAGE_SIZE_MASK));
}

/* Reserved bits of an EPT entry at @level; @large: PS set. */
uint64_t tdp_ept_rsvd_mask(const struct tdp_ctx *c, int level, bool large);
/* A present EPT entry at @level the CPU cannot interpret: W without R, X-only without support,
 * a reserved bit, or a reserved memory type in a leaf. */
bool tdp_ept_misconfigured(const struct tdp_ctx *c, uint64_t e, int level);

/*
 * Translate @gpa for @access (PFERR_WRITE / PFERR_FETCH; WALK_NO_AD sets no A/D). Returns 0 with
 * the outcome in @r, -EINVAL for a bad @c, or -EAGAIN when A/D updates kept losing races.
 */
int tdp_walk(const struct tdp_ctx *c, gpa_t gpa, unsigned access, struct tdp_result *r);

/* The right (TDP_R/W/X) an access needs: a write needs W only, since W without R never gets this
 * far (a misconfiguration in EPT; NPT has no such entry). */
static inline unsigned tdp_needed(unsigned access)
{
	if (access & PFERR_FETCH)
		return TDP_X;
	return (access & PFERR_WRITE) ? TDP_W : TDP_R;
}

/* Would a translation with @rights allow @access? If not, fill @r as the walk would have
 * (VIOLATION, qual) for a cached translation (a TLB entry) that refuses the access;
 * rights & tdp_needed(access) is the test alone, for a caller with nothing to fill. */
bool tdp_check_access(const struct tdp_ctx *c, unsigned rights, unsigned access,
		      struct tdp_result *r);

/* ---- the root ---- */

/* Allocate a zeroed root table; sets c->root. 0 or -ENOMEM / -EINVAL. The hard MMU builds the
 * tables below it (mmu/tdp_mmu.c); the hardware tests build theirs with tests/common/tdp_build.h,
 * entries the MMU never makes included. */
int tdp_alloc_root(struct tdp_ctx *c);

/* The EPTP of @c (memory type WB). */
uint64_t tdp_eptp(const struct tdp_ctx *c);
/* Load an EPTP into @c (fmt, root, levels, ad; other fields kept): -EINVAL for a memory type
 * other than UC/WB, a walk length other than 4 or 5, or a reserved bit. */
int tdp_set_eptp(struct tdp_ctx *c, uint64_t eptp);

#endif
