/* SPDX-License-Identifier: MIT */
/*
 * The EPT and NPT formats and the 1-D nested walk (see tdp.h for the rules). EPT has its own walk
 * below; NPT entries are x86-64 entries, so NPT is the paging/ walker run over host memory with a
 * context that makes every access a user access. Tables are built by the hard MMU (and, for the
 * hardware tests, by tests/common/tdp_build.h). No state; no locks (host memory is reached with
 * atomic accesses).
 *
 * An EPT walk, for each level from the root down:
 *
 *   1. read the entry at table + index * 8        (unreadable -> not present)
 *   2. RWX = 000                                  -> violation (rights 0)
 *   3. misconfigured (tdp_ept_misconfigured)      -> misconfiguration
 *   4. AND the entry's RWX into the rights
 *   5. a leaf (level 1, or PS at level 2 or 3)    -> stop, else step down
 *
 * then the access against the rights (violation), then A/D by compare-and-swap.
 */
#include <errno.h>
#include <string.h>

#include "hot.h"
#include "paging/hostmem.h"
#include "paging/tdp.h"

/* As the guest walker: bounds how often entries rewritten under us make one walk start over. */
#define TDP_MAX_RETRIES 1000

static bool ctx_ok(const struct tdp_ctx *c)
{
	return c && c->arena && (c->levels == 4 || c->levels == 5) && c->maxphyaddr >= 32 &&
	       c->maxphyaddr <= 52 && (c->fmt == TDP_EPT || c->fmt == TDP_NPT);
}

/* Width of the gpas the tables translate: 48 bits for 4 levels, 57 for 5. */
static unsigned input_bits(const struct tdp_ctx *c)
{
	return 12 + 9 * (unsigned)c->levels;
}

static unsigned tdp_index(gpa_t gpa, int level)
{
	return (unsigned)(gpa >> (12 + 9 * (level - 1))) & 511u;
}

static unsigned level_shift(int level)
{
	return 12 + 9 * (unsigned)(level - 1);
}

/*
 * EPT reserved bits (SDM "EPT Translation Mechanism", the entry format tables):
 *  - address bits from MAXPHYADDR to 51, everywhere;
 *  - PML5E/PML4E: bits 7:3 (PS included: no 512G pages);
 *  - non-leaf PDPTE/PDE: bits 6:3;
 *  - a PDPTE with PS: bits 29:12 with 1G pages, else PS itself;
 *  - a PDE with PS: bits 20:12.
 * Bits 11:10 and 63:52 are ignored (or features not modelled: MBEC, #VE suppression).
 */
static inline __attribute__((always_inline)) uint64_t ept_rsvd_mask(const struct tdp_ctx *c,
								     int level, bool large)
{
	const uint64_t high = rsvd_bits(c->maxphyaddr, 51);

	switch (level) {
	case 5:
	case 4:
		return high | rsvd_bits(3, 7);
	case 3:
		if (large)
			return high | (c->has_1g ? rsvd_bits(12, 29) : EPT_PAGE_SIZE_MASK);
		return high | rsvd_bits(3, 6);
	case 2:
		return high | (large ? rsvd_bits(12, 20) : rsvd_bits(3, 6));
	default:
		return high;
	}
}

uint64_t tdp_ept_rsvd_mask(const struct tdp_ctx *c, int level, bool large)
{
	return ept_rsvd_mask(c, level, large);
}

/* Inlined into the walk: a call for each of a walk's four entries was 8% of an EPT fault. */
static inline __attribute__((always_inline)) bool ept_misconfigured(const struct tdp_ctx *c,
								    uint64_t e, int level)
{
	const uint64_t rwx = e & EPT_RWX_MASK;
	const bool large = level > 1 && (e & EPT_PAGE_SIZE_MASK);

	if ((rwx & EPT_WRITABLE_MASK) && !(rwx & EPT_READABLE_MASK))
		return true;
	if (rwx == EPT_EXECUTABLE_MASK && !c->exec_only)
		return true;
	if (e & ept_rsvd_mask(c, level, large))
		return true;
	/* Only a leaf has a memory type; in a table entry those bits are reserved (checked above). */
	return tdp_is_leaf(e, level) && ept_memtype_reserved(ept_memtype(e));
}

bool tdp_ept_misconfigured(const struct tdp_ctx *c, uint64_t e, int level)
{
	return ept_misconfigured(c, e, level);
}

static uint64_t ept_access_qual(unsigned access)
{
	if (access & PFERR_FETCH)
		return EPT_QUAL_FETCH;
	return (access & PFERR_WRITE) ? EPT_QUAL_WRITE : EPT_QUAL_READ;
}

/* An NPF's error code for @access; P and RSVD come from the walk. The I/D bit is there because
 * nested paging runs with EFER.NXE set. */
static uint64_t npt_access_ec(unsigned access)
{
	uint64_t ec = PFERR_USER;

	if (access & PFERR_WRITE)
		ec |= PFERR_WRITE;
	if (access & PFERR_FETCH)
		ec |= PFERR_FETCH;
	return ec;
}

/* The R/W/X a user access gets from combined x86 rights: none without U. */
static unsigned npt_rights(unsigned acc)
{
	unsigned rights = TDP_R;

	if (!(acc & ACC_USER))
		return 0;
	if (acc & ACC_WRITE)
		rights |= TDP_W;
	if (acc & ACC_EXEC)
		rights |= TDP_X;
	return rights;
}

VMMU_HOT
static void set_violation(const struct tdp_ctx *c, unsigned rights, unsigned access, bool present,
			  struct tdp_result *r)
{
	r->status = TDP_VIOLATION;
	r->rights = rights;
	if (c->fmt == TDP_EPT)
		r->qual = ept_access_qual(access) | (uint64_t)rights << EPT_QUAL_RIGHTS_SHIFT;
	else
		r->qual = npt_access_ec(access) | (present ? PFERR_PRESENT : 0);
}

bool tdp_check_access(const struct tdp_ctx *c, unsigned rights, unsigned access,
		      struct tdp_result *r)
{
	/* A cached NPT translation is a user page: R is there, W and X say the rest. */
	if (rights & tdp_needed(access))
		return true;
	memset(r, 0, sizeof(*r));
	set_violation(c, rights, access, true, r);
	return false;
}

static int ept_walk(const struct tdp_ctx *c, gpa_t gpa, unsigned access, struct tdp_result *r)
{
	const bool write = access & PFERR_WRITE;
	uint64_t ent[TDP_MAX_LEVELS + 1];       /* ent[l]: entry read at level l */
	hpa_t ent_hpa[TDP_MAX_LEVELS + 1];      /* where it lives */
	unsigned retries = 0, rights;
	hpa_t table;
	uint64_t e;
	int level;

	/*
	 * Above level 1, an entry with R, W and X and none of these bits is a table to step into:
	 * they are every bit ept_rsvd_mask reserves in a table entry at any level (bits 3-7 at
	 * levels 4 and 5, 3-6 at 2 and 3) and PS, which makes a leaf at 2 and 3. Such an entry is
	 * present and cannot be misconfigured, and leaves the rights as they were: the same outcome
	 * as the checks below, in one test.
	 */
	const uint64_t quick = rsvd_bits(c->maxphyaddr, 51) | rsvd_bits(3, 7) | EPT_RWX_MASK;

retry:
	rights = TDP_RWX;
	table = c->root & TDP_ADDR_MASK;
	for (level = c->levels;; level--) {
		hpa_t eh = table + tdp_index(gpa, level) * sizeof(uint64_t);

		r->refs++;
		r->level = level;
		/* Tables are 4 KiB aligned: the entry is a naturally aligned 8 bytes. Acquire: a
		 * table published by a release store is seen whole (hostmem_load's). */
		const uint64_t *p = host_hpa_ptr_inline(c->arena, c->arena_base, c->arena_meta,
							c->arena_frames, eh);
		e = p ? __atomic_load_n(p, __ATOMIC_ACQUIRE) : 0;   /* no frame: not present */
		r->entry = e;
		if (level > 1 && (e & quick) == EPT_RWX_MASK) {
			ent[level] = e;
			ent_hpa[level] = eh;
			table = tdp_entry_addr(e);
			continue;
		}
		if (!ept_is_present(e)) {
			set_violation(c, 0, access, false, r);
			return 0;
		}
		if (ept_misconfigured(c, e, level)) {
			r->status = TDP_MISCONFIG;
			r->rights = rights & (unsigned)(e & EPT_RWX_MASK);
			return 0;
		}
		rights &= (unsigned)(e & EPT_RWX_MASK);
		ent[level] = e;
		ent_hpa[level] = eh;
		if (tdp_is_leaf(e, level))
			break;
		table = tdp_entry_addr(e);
	}

	r->page_shift = level_shift(level);
	r->hpa = (e & rsvd_bits((int)r->page_shift, 51)) | (gpa & ((1ULL << r->page_shift) - 1));
	r->rights = rights;
	if (!(rights & tdp_needed(access))) {
		set_violation(c, rights, access, true, r);
		return 0;
	}

	if (c->ad && !(access & WALK_NO_AD)) {
		for (int l = c->levels; l >= level; l--) {
			uint64_t old = ent[l], val = old | EPT_ACCESSED_MASK;
			int err;

			if (l == level && write)
				val |= EPT_DIRTY_MASK;
			if (val == old)
				continue;
			err = hostmem_cmpxchg(c->arena, ent_hpa[l], old, val, sizeof(val));
			if (err == -EAGAIN) {
				if (++retries > TDP_MAX_RETRIES)
					return -EAGAIN;
				goto retry;
			}
			if (err) {
				/* The table went away under us (freed after a zap): as not present. */
				set_violation(c, 0, access, false, r);
				return 0;
			}
			ent[l] = val;
		}
		r->entry = ent[level];
	}
	r->status = TDP_OK;
	return 0;
}

static int npt_walk(const struct tdp_ctx *c, gpa_t gpa, unsigned access, struct tdp_result *r)
{
	struct paging_ctx pc;
	struct walk_result w;

	/* Long mode with NXE, CR0.WP, no SMEP/SMAP/PKE, CPL 3: exactly the x86 rules the APM
	 * gives nested walks. The AMD model makes PML4E bit 8 reserved, as on AMD parts.
	 * Field by field, not memset: this runs on every nested TLB miss, and the two memsets
	 * (rep stos on this compiler's tuning) were a third of an NPT fault's walk time. The
	 * fields left unset are never read here: pdptrs[] (PAE only), cpu.name. */
	pc.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP;
	pc.cr4 = X86_CR4_PAE | (c->levels == 5 ? X86_CR4_LA57 : 0);
	pc.efer = EFER_LME | EFER_LMA | EFER_NXE;
	pc.cr3 = c->root;
	pc.pkru = 0;
	pc.cpl = 3;
	pc.ac = false;
	pc.pdptrs_valid = false;
	pc.cpu.vendor = CPU_VENDOR_AMD;
	pc.cpu.maxphyaddr = c->maxphyaddr;
	pc.cpu.features = CPU_FEAT_NX | (c->has_1g ? CPU_FEAT_1G : 0) |
			  (c->levels == 5 ? CPU_FEAT_LA57 : 0);

	/* An aborted walk leaves its last level's entry unset (a read that found no memory is
	 * recorded as 0 by the walker itself): 0 for every level the walk does not set. */
	for (int l = 0; l <= PT_MAX_LEVELS; l++)
		w.gpte[l] = 0;
	/* walk64_addr, not paging_walk: a gpa has no canonical form to check. */
	walk64_addr(&pc, &host_mem_ops, c->arena, gpa,
		    access & (PFERR_WRITE | PFERR_FETCH | WALK_NO_AD), NULL, &w);
	r->refs = w.refs;
	r->level = w.level;
	if (w.level >= 1 && w.level <= PT_MAX_LEVELS)
		r->entry = w.gpte[w.level];

	switch (w.status) {
	case WALK_OK:
		r->status = TDP_OK;
		r->hpa = w.gpa;
		r->page_shift = w.page_shift;
		r->rights = npt_rights(w.access);
		return 0;
	case WALK_PF:
		r->status = TDP_VIOLATION;
		r->qual = w.ec;
		/* The combined rights exist only when the walk reached the permission check. */
		r->rights = (w.ec & PFERR_PRESENT) && !(w.ec & PFERR_RSVD) ? npt_rights(w.access) : 0;
		return 0;
	case WALK_ABORT:
		return w.abort_err;
	case WALK_GP:
		break;
	}
	return -EINVAL;         /* walk64_addr makes no canonical check: never here */
}

VMMU_HOT
int tdp_walk(const struct tdp_ctx *c, gpa_t gpa, unsigned access, struct tdp_result *r)
{
	memset(r, 0, sizeof(*r));
	if (!ctx_ok(c))
		return -EINVAL;
	if (gpa >> input_bits(c)) {
		/* No table covers it; indexing would silently alias a lower gpa. */
		set_violation(c, 0, access, false, r);
		return 0;
	}
	return c->fmt == TDP_EPT ? ept_walk(c, gpa, access, r) : npt_walk(c, gpa, access, r);
}

/* ---- the root (the hard MMU builds the rest; tests/common/tdp_build.h builds tables for the
 * hardware tests) ---- */

int tdp_alloc_root(struct tdp_ctx *c)
{
	pfn_t pfn;
	int err;

	if (!ctx_ok(c))
		return -EINVAL;
	err = host_frame_alloc(c->arena, HOST_ORDER_4K, &pfn);
	if (err)
		return err;
	c->root = pfn << HOST_PAGE_SHIFT;
	c->arena_base = host_pfn_to_ptr(c->arena, 0);
	c->arena_meta = host_frame_meta(c->arena, 0);
	c->arena_frames = host_arena_frames(c->arena);
	return 0;
}

uint64_t tdp_eptp(const struct tdp_ctx *c)
{
	return (c->root & TDP_ADDR_MASK) | EPT_MT_WB |
	       ((uint64_t)(c->levels - 1) << EPTP_PWL_SHIFT) | (c->ad ? EPTP_AD_MASK : 0);
}

int tdp_set_eptp(struct tdp_ctx *c, uint64_t eptp)
{
	const unsigned mt = (unsigned)(eptp & EPTP_MT_MASK);
	const int levels = (int)((eptp & EPTP_PWL_MASK) >> EPTP_PWL_SHIFT) + 1;

	if (!c || c->maxphyaddr < 32 || c->maxphyaddr > 52)
		return -EINVAL;
	if ((mt != EPT_MT_UC && mt != EPT_MT_WB) || (levels != 4 && levels != 5))
		return -EINVAL;
	/* Bit 7 (supervisor shadow stacks) and the features in 11:8 are not modelled. */
	if (eptp & (rsvd_bits(7, 11) | rsvd_bits(c->maxphyaddr, 63)))
		return -EINVAL;
	c->fmt = TDP_EPT;
	c->root = eptp & TDP_ADDR_MASK;
	c->levels = levels;
	c->ad = eptp & EPTP_AD_MASK;
	return 0;
}
