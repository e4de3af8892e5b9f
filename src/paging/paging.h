/* SPDX-License-Identifier: MIT */
/*
 * paging/: the x86 guest page-table formats and the walker (32-bit, PAE, 4-level, 5-level).
 *
 * One walker, written once in walk_tmpl.h and compiled per entry format (as KVM's paging_tmpl.h):
 * walk32_addr() for 32-bit paging, walk64_addr() for PAE, 4- and 5-level. paging_walk() picks one
 * from the control registers.
 *
 * Semantics follow the SDM and, where the SDM leaves a choice, KVM's software walker (the oracle
 * `vmmu validate` compares with):
 *  - the walk stops at the first non-present entry (#PF, P=0) or the first entry with a reserved
 *    bit set (#PF, P=1|RSVD);
 *  - permissions are checked on the combined rights after the walk;
 *  - Accessed (every level) and Dirty (leaf, on a write) are set only when the access succeeds,
 *    each with a compare-and-swap on guest memory; a failed swap restarts the walk;
 *  - a table outside guest memory ends the walk as a not-present fault; a table in memory the
 *    walker cannot write (a read-only slot) when A/D must be set also ends it as not present.
 *  - PAE PDPTEs come from the PDPTE registers when loaded (ctx->pdptrs_valid), else from memory;
 *    they carry no rights and get no A bit.
 * Hostile tables (loops, self-references, every reserved bit) give one of these outcomes: a walk
 * reads at most one entry a level, so it always ends.
 *
 * Locking: none inside. Guest memory is reached through struct guest_mem_ops, whose cmpxchg must be
 * atomic against other walkers and vCPU stores; the walker itself keeps no state between calls.
 */
#ifndef VMMU_PAGING_H
#define VMMU_PAGING_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmmu/types.h"
#include "paging/cpu_model.h"

/* Entry bits (x86 format). */
#define PT_PRESENT_MASK   (1ULL << 0)
#define PT_WRITABLE_MASK  (1ULL << 1)
#define PT_USER_MASK      (1ULL << 2)
#define PT_PWT_MASK       (1ULL << 3)
#define PT_PCD_MASK       (1ULL << 4)
#define PT_ACCESSED_MASK  (1ULL << 5)
#define PT_DIRTY_MASK     (1ULL << 6)
#define PT_PAGE_SIZE_MASK (1ULL << 7)
#define PT_GLOBAL_MASK    (1ULL << 8)
#define PT64_NX_MASK      (1ULL << 63)
#define PT64_PKEY_SHIFT   59
#define PT64_PKEY_MASK    (0xfULL << PT64_PKEY_SHIFT)

/* Control-register bits the walker reads. */
#define X86_CR0_PG   (1ULL << 31)
#define X86_CR0_WP   (1ULL << 16)
#define X86_CR0_PE   (1ULL << 0)
#define X86_CR4_PSE  (1ULL << 4)
#define X86_CR4_PAE  (1ULL << 5)
#define X86_CR4_PGE  (1ULL << 7)
#define X86_CR4_LA57 (1ULL << 12)
#define X86_CR4_PCIDE (1ULL << 17)
#define X86_CR4_SMEP (1ULL << 20)
#define X86_CR4_SMAP (1ULL << 21)
#define X86_CR4_PKE  (1ULL << 22)
#define EFER_LME     (1ULL << 8)
#define EFER_LMA     (1ULL << 10)
#define EFER_NXE     (1ULL << 11)

/* Page-fault error code. */
#define PFERR_PRESENT (1u << 0)
#define PFERR_WRITE   (1u << 1)
#define PFERR_USER    (1u << 2)
#define PFERR_RSVD    (1u << 3)
#define PFERR_FETCH   (1u << 4)
#define PFERR_PK      (1u << 5)

/* What an access is: PFERR_WRITE / PFERR_FETCH as in the error code, plus: */
#define WALK_IMPLICIT  (1u << 16)  /* implicit supervisor access (GDT, IDT, ...) even at CPL 3 */
#define WALK_NO_AD     (1u << 17)  /* translate only: set no A/D (a debugger's or emulator's probe) */

/* Combined rights of a translation, as KVM's ACC_*. */
#define ACC_EXEC  (1u << 0)
#define ACC_WRITE (1u << 1)
#define ACC_USER  (1u << 2)
#define ACC_ALL   (ACC_EXEC | ACC_WRITE | ACC_USER)

#define PT_MAX_LEVELS 5

/* A lost compare-and-swap means another writer changed the table; this bounds how often a
 * hostile, constantly-rewriting guest can make one walk start over. */
#define WALK_MAX_RETRIES 1000

enum paging_mode { PAGING_OFF = 0, PAGING_32, PAGING_PAE, PAGING_4LVL, PAGING_5LVL };

/* The architectural state a walk depends on. */
struct paging_ctx {
	uint64_t cr0, cr3, cr4, efer;
	uint32_t pkru;
	uint8_t cpl;
	bool ac;                 /* EFLAGS.AC */
	bool pdptrs_valid;       /* PAE: use pdptrs[] (loaded at MOV CR3) */
	uint64_t pdptrs[4];
	struct cpu_model cpu;
};

/* How the walker reaches guest physical memory. Each returns 0, -ENOENT when @gpa is not guest
 * memory, -EACCES when it cannot be written; cmpxchg returns -EAGAIN when *@gpa != @old (nothing
 * written). Any other negative value aborts the walk and is passed up (a nested walk's exit). */
struct guest_mem_ops {
	int (*read)(void *opaque, gpa_t gpa, void *buf, unsigned len);
	int (*cmpxchg)(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len);
};

enum walk_status {
	WALK_OK = 0,      /* translated */
	WALK_PF,          /* page fault: ec, addr */
	WALK_GP,          /* non-canonical address: #GP, no walk */
	WALK_ABORT,       /* a guest_mem_ops call failed with abort_err */
};

struct walk_result {
	enum walk_status status;
	uint32_t ec;                        /* WALK_PF: error code */
	gva_t addr;                         /* the address walked (CR2 on a fault) */
	gpa_t gpa;                          /* WALK_OK: the translation */
	int level;                          /* level of the last entry read (the leaf when OK) */
	int root_level;                     /* 2, 3 (PAE), 4 or 5 */
	int top_level;                      /* the first level this walk read (root_level unless it
					     * resumed from a struct walk_start); WALK_OK and
					     * WALK_PF: gpte[] and pte_gpa[] are valid from
					     * top_level down to level, an entry the walk could not
					     * read (no memory) recorded as 0 */
	unsigned page_shift;                /* WALK_OK: 12, 21, 22 or 30 */
	unsigned access;                    /* WALK_OK: combined ACC_* rights */
	unsigned pkey;                      /* WALK_OK: leaf protection key (0 unless 64-bit format) */
	uint64_t gpte[PT_MAX_LEVELS + 1];   /* gpte[l]: entry read at level l (after A/D update) */
	gpa_t pte_gpa[PT_MAX_LEVELS + 1];   /* where gpte[l] lives */
	unsigned refs;                      /* guest table entries read, retries included */
	int abort_err;                      /* WALK_ABORT: the ops error */
};

enum paging_mode paging_mode_of(const struct paging_ctx *ctx);

/* Translate @addr for @access (PFERR_WRITE/PFERR_FETCH | WALK_*); CPL, AC and the control
 * registers come from @ctx. Returns r->status. */
enum walk_status paging_walk(const struct paging_ctx *ctx, const struct guest_mem_ops *ops,
			     void *opaque, gva_t addr, unsigned access, struct walk_result *r);

/* Where a walk may resume: the table of @level (1 .. root_level - 1) and the rights the entries
 * above it grant, from a paging-structure cache (4-/5-level paging only). */
struct walk_start {
	int level;
	gpa_t table;
	unsigned access;
};

/* paging_walk() resuming at @start (NULL: from the root). The entries above @start are neither
 * read nor updated. */
enum walk_status paging_walk_from(const struct paging_ctx *ctx, const struct guest_mem_ops *ops,
				  void *opaque, gva_t addr, unsigned access,
				  const struct walk_start *start, struct walk_result *r);

/* Whether @addr is canonical in 4- or 5-level paging (@mode): its bits above the linear width
 * (48 or 57) copy the highest one. paging_walk_from() raises #GP for one that is not. */
static inline bool paging_canonical(gva_t addr, enum paging_mode mode)
{
	int vbits = mode == PAGING_5LVL ? 57 : 48;
	int64_t s = (int64_t)(addr << (64 - vbits)) >> (64 - vbits);

	return (uint64_t)s == addr;
}

/* The per-format walkers paging_walk_from() dispatches to (walk_tmpl.h). */
enum walk_status walk32_addr(const struct paging_ctx *ctx, const struct guest_mem_ops *ops,
			     void *opaque, gva_t addr, unsigned access,
			     const struct walk_start *start, struct walk_result *r);
enum walk_status walk64_addr(const struct paging_ctx *ctx, const struct guest_mem_ops *ops,
			     void *opaque, gva_t addr, unsigned access,
			     const struct walk_start *start, struct walk_result *r);

/* The permission rules alone: does an access with @access (PFERR_WRITE/FETCH, WALK_IMPLICIT) to a
 * translation with rights @acc and key @pkey fault? Returns 0 or the error-code bits
 * (PFERR_PRESENT, plus PFERR_PK for a protection-key fault). Shared by the walker and the TLB. */
uint32_t paging_permission_fault(const struct paging_ctx *ctx, unsigned acc, unsigned pkey,
				 unsigned access);

/* What a walk does after its A/D pass (paging_walk_ad). */
enum walk_ad { WALK_AD_DONE, WALK_AD_RETRY, WALK_AD_FAULT, WALK_AD_ABORT };

/*
 * The A/D pass of a walk that translated, @level its leaf's, @leaf its entry, @anded every entry
 * read ANDed: A on every level from r->top_level down and, for a write, D on the leaf, each by a
 * compare-and-swap (@size bytes) of the entry as the walk read it, which r->gpte[] then holds;
 * @no_a: a level whose entries have no A bit (a PAE PDPTE: 3), else 0. Nothing to set (every A,
 * and a write's D, already set: the usual walk of a warm page) is found in one test. Returns
 * WALK_AD_RETRY when an entry changed since it was read (the walk starts over, as the CPU would
 * see the new entry; *@retries counts them), WALK_AD_FAULT when a table is not memory the walk
 * can write (a not-present fault), WALK_AD_ABORT with *@err set (another error, or more than
 * WALK_MAX_RETRIES). Shared by walk_tmpl.h and cpu.c's shadow walk.
 */
static inline enum walk_ad paging_walk_ad(const struct guest_mem_ops *ops, void *opaque,
					  struct walk_result *r, int level, unsigned access,
					  uint64_t leaf, uint64_t anded, int no_a, unsigned size,
					  unsigned *retries, int *err)
{
	const bool write = access & PFERR_WRITE;

	if ((access & WALK_NO_AD) ||
	    ((anded & PT_ACCESSED_MASK) && (!write || (leaf & PT_DIRTY_MASK))))
		return WALK_AD_DONE;
	for (int l = r->top_level; l >= level; l--) {
		uint64_t old = r->gpte[l], val = old | PT_ACCESSED_MASK;

		if (l == no_a)
			continue;
		if (l == level && write)
			val |= PT_DIRTY_MASK;
		if (val == old)
			continue;
		*err = ops->cmpxchg(opaque, r->pte_gpa[l], old, val, size);
		if (*err == -EAGAIN)
			return ++*retries > WALK_MAX_RETRIES ? WALK_AD_ABORT : WALK_AD_RETRY;
		if (*err == -ENOENT || *err == -EACCES)
			return WALK_AD_FAULT;
		if (*err)
			return WALK_AD_ABORT;
		r->gpte[l] = val;
	}
	return WALK_AD_DONE;
}

static inline uint64_t rsvd_bits(int s, int e)
{
	if (e < s)
		return 0;
	return ((2ULL << (e - s)) - 1) << s;
}

/*
 * Reserved bits of a 64-bit-format entry (the SDM's tables 4-8 and 4-14..4-20):
 *  - physical-address bits at and above MAXPHYADDR (up to 51; up to 62 under PAE, where 62:52
 *    are not "ignored" but reserved);
 *  - bit 63 (XD) when EFER.NXE = 0, and always in a PAE PDPTE;
 *  - PS in a PML4E/PML5E; PS in a PDPTE when the CPU lacks 1 GiB pages;
 *  - the address bits below a large page's alignment, above its PAT bit (bit 12);
 *  - a PAE PDPTE's bits 2:1 and 8:5;
 *  - AMD only: bit 8 of a non-leaf PML4E/PML5E.
 * Split in two so that a walk computes the part every level shares once (inline: the walk is
 * every soft-MMU fault's and every native TLB miss's path).
 */
static inline uint64_t paging_rsvd_high64(const struct paging_ctx *ctx, enum paging_mode mode)
{
	uint64_t high = rsvd_bits(ctx->cpu.maxphyaddr, mode == PAGING_PAE ? 62 : 51);

	if (!(ctx->efer & EFER_NXE))
		high |= rsvd_bits(63, 63);
	return high;
}

/* The mask at @level (1..5) of mode @mode, from @high = paging_rsvd_high64(); @large: the entry
 * has PS set. */
static inline uint64_t paging_rsvd_level64(const struct paging_ctx *ctx, uint64_t high,
					   enum paging_mode mode, int level, bool large)
{
	if (mode == PAGING_PAE) {
		switch (level) {
		case 3:
			return high | rsvd_bits(63, 63) | rsvd_bits(5, 8) | rsvd_bits(1, 2);
		case 2:
			return high | (large ? rsvd_bits(13, 20) : 0);
		default:
			return high;
		}
	}
	switch (level) {
	case 5:
	case 4:
		return high | (ctx->cpu.vendor == CPU_VENDOR_AMD ? rsvd_bits(8, 8) : 0) |
		       rsvd_bits(7, 7);
	case 3:
		return high | (cpu_has(&ctx->cpu, CPU_FEAT_1G) ? 0 : rsvd_bits(7, 7)) |
		       (large ? rsvd_bits(13, 29) : 0);
	case 2:
		return high | (large ? rsvd_bits(13, 20) : 0);
	default:
		return high;
	}
}

/* Reserved-bit mask of a 64-bit-format entry at @level (1..5) of mode @mode; @large selects the
 * mask for an entry with PS set. */
static inline uint64_t paging_rsvd_mask64(const struct paging_ctx *ctx, enum paging_mode mode,
					  int level, bool large)
{
	return paging_rsvd_level64(ctx, paging_rsvd_high64(ctx, mode), mode, level, large);
}

#endif
