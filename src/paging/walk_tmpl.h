/* SPDX-License-Identifier: MIT */
/*
 * The guest page walker, written once and compiled per entry format (PTTYPE 64: PAE, 4- and
 * 5-level; PTTYPE 32: 32-bit paging), as KVM's paging_tmpl.h. walker.c compiles the instances
 * every caller shares (walk32_addr, walk64_addr). A caller whose reads are always the same
 * function may compile an instance of its own that calls it directly, so that the compiler can
 * inline it (cpu.c's native walk, most of a TLB miss): it defines WALK_INSTANCE (the prefix of
 * the names, its functions then static) and WALK_READ(ops, opaque, gpa, buf, len), used in
 * place of ops->read. Semantics and invariants: see paging.h. The walk, for each level from the
 * root down:
 *
 *   1. read the entry at table + index * sizeof(entry)           (not in memory -> #PF, P=0)
 *   2. not present                                               -> #PF, P=0
 *   3. any reserved bit for this level and PS                    -> #PF, P=1|RSVD
 *   4. fold the entry's R/W, U/S, NX into the combined rights
 *   5. a leaf (level 1, or PS where the level allows it)         -> stop, else step down
 *
 * then the permission check on the combined rights, then A on every level (D on the leaf for a
 * write) by compare-and-swap; a lost race restarts the whole walk, as the CPU would see the new
 * entry. In 4- and 5-level paging a table entry that cannot fail 2 or 3 and is no leaf takes
 * steps 2 to 5 in one test (quick, below).
 */

#if PTTYPE == 64
#define pt_element_t uint64_t
#define WALK_FORMAT_NAME(name) walk64_##name
#define PT_LEVEL_BITS 9
#define PT_ENTRY_ADDR_MASK (rsvd_bits(12, 51))
#elif PTTYPE == 32
#define pt_element_t uint32_t
#define WALK_FORMAT_NAME(name) walk32_##name
#define PT_LEVEL_BITS 10
#define PT_ENTRY_ADDR_MASK (rsvd_bits(12, 31))
#else
#error "PTTYPE must be 32 or 64"
#endif

#ifdef WALK_INSTANCE
#define WALK_CAT2(a, b) a##b
#define WALK_CAT(a, b) WALK_CAT2(a, b)
#define FNAME(name) WALK_CAT(WALK_INSTANCE, WALK_FORMAT_NAME(name))
#define WALK_LINKAGE static
#else
#define FNAME(name) WALK_FORMAT_NAME(name)
#define WALK_LINKAGE
#endif
#ifndef WALK_READ
#define WALK_READ(ops, opaque, gpa, buf, len) (ops)->read(opaque, gpa, buf, len)
#endif

static unsigned FNAME(index)(gva_t addr, int level)
{
	return (unsigned)(addr >> (12 + (level - 1) * PT_LEVEL_BITS)) & ((1u << PT_LEVEL_BITS) - 1);
}

/* @high: paging_rsvd_high64() of the walk (64-bit format only). */
static uint64_t FNAME(rsvd)(const struct paging_ctx *ctx, uint64_t high, enum paging_mode mode,
			    int level, uint64_t pte)
{
#if PTTYPE == 64
	return paging_rsvd_level64(ctx, high, mode, level, pte & PT_PAGE_SIZE_MASK);
#else
	(void)mode;
	(void)high;
	/* 32-bit paging reserves bits only in a 4 MiB PDE: bit 21, and the PSE-36 address bits
	 * 20:13 above MAXPHYADDR (all of 21:13 without PSE-36). */
	if (level == 2 && (pte & PT_PAGE_SIZE_MASK) && (ctx->cr4 & X86_CR4_PSE)) {
		if (!cpu_has(&ctx->cpu, CPU_FEAT_PSE36))
			return rsvd_bits(13, 21);
		int m = ctx->cpu.maxphyaddr < 40 ? ctx->cpu.maxphyaddr : 40;
		return rsvd_bits(21, 21) | rsvd_bits(13 + (m - 32), 20);
	}
	return 0;
#endif
}

static bool FNAME(is_leaf)(const struct paging_ctx *ctx, int level, uint64_t pte)
{
	if (level == 1)
		return true;
	if (!(pte & PT_PAGE_SIZE_MASK))
		return false;
#if PTTYPE == 64
	(void)ctx;
	/* PS on levels 4/5, on a PAE PDPTE and (without 1G pages) on a PDPTE is reserved: step 3
	 * already failed for those, so PS here is a real large page. */
	return level == 2 || level == 3;
#else
	return level == 2 && (ctx->cr4 & X86_CR4_PSE);
#endif
}

/* The gpa of @addr inside the large or small page mapped by leaf @pte at @level. */
static gpa_t FNAME(leaf_gpa)(uint64_t pte, int level, gva_t addr, unsigned *shift)
{
#if PTTYPE == 64
	unsigned s = 12 + 9 * (unsigned)(level - 1);
	*shift = s;
	return (pte & rsvd_bits((int)s, 51)) | (addr & ((1ULL << s) - 1));
#else
	if (level == 2) {
		*shift = 22;
		/* PSE-36: PDE bits 20:13 are physical address bits 39:32. */
		return (pte & 0xffc00000ULL) | (((pte >> 13) & 0xffULL) << 32) | (addr & 0x3fffffULL);
	}
	*shift = 12;
	return (pte & PT_ENTRY_ADDR_MASK) | (addr & 0xfffULL);
#endif
}

static unsigned FNAME(gpte_access)(const struct paging_ctx *ctx, uint64_t pte)
{
	unsigned acc = ACC_EXEC;

	if (pte & PT_WRITABLE_MASK)
		acc |= ACC_WRITE;
	if (pte & PT_USER_MASK)
		acc |= ACC_USER;
#if PTTYPE == 64
	if ((ctx->efer & EFER_NXE) && (pte & PT64_NX_MASK))
		acc &= ~ACC_EXEC;
#else
	(void)ctx;
#endif
	return acc;
}

VMMU_HOT
WALK_LINKAGE enum walk_status FNAME(addr)(const struct paging_ctx *ctx,
					  const struct guest_mem_ops *ops, void *opaque, gva_t addr,
					  unsigned access, const struct walk_start *start,
					  struct walk_result *r)
{
	const enum paging_mode mode = paging_mode_of(ctx);
	const bool fetch = access & PFERR_FETCH;
	const bool user = !(access & WALK_IMPLICIT) && ctx->cpl == 3;
	unsigned retries = 0;
	uint32_t ec;
	int err;

#if PTTYPE == 32
	addr &= 0xffffffffULL;
#endif
	r->addr = addr;
	r->refs = 0;
	r->abort_err = 0;
#if PTTYPE == 64
	const uint64_t rsvd_high = paging_rsvd_high64(ctx, mode);
	/* 4- and 5-level paging, above level 1: a present entry with none of these bits is a table
	 * to step into. They are a superset of what paging_rsvd_level64 reserves at any of those
	 * levels for PS=0 (bit 8 is reserved only in an AMD PML4E/PML5E), and PS=0 makes no leaf
	 * there: such an entry takes steps 3 to 5 in one test, with the same outcome. */
	const bool quick_ok = mode >= PAGING_4LVL;
	const uint64_t quick = PT_PRESENT_MASK | rsvd_high | PT_PAGE_SIZE_MASK | rsvd_bits(8, 8);
#else
	const uint64_t rsvd_high = 0;
#endif

retry:
	ec = 0;
	r->status = WALK_PF;
	r->pkey = 0;
	{
		int level;
		gpa_t table;
		unsigned acc = ACC_ALL;
		pt_element_t pte = 0;
		pt_element_t anded = ~(pt_element_t)0;   /* the entries that have an A bit, ANDed */

#if PTTYPE == 64
		if (mode == PAGING_PAE) {
			level = 3;
			table = ctx->cr3 & rsvd_bits(5, 31);
		} else {
			level = mode == PAGING_5LVL ? 5 : 4;
			table = ctx->cr3 & rsvd_bits(12, ctx->cpu.maxphyaddr - 1);
		}
#else
		level = 2;
		table = ctx->cr3 & PT_ENTRY_ADDR_MASK;
#endif
		r->root_level = level;
		/* A paging-structure cache hit resumes below the root with the rights the cached
		 * upper entries grant (their A bits are already set: they were cached after a
		 * successful walk). */
		if (start && start->level > 0 && start->level < level) {
			level = start->level;
			table = start->table;
			acc = start->access;
		}
		r->top_level = level;

		for (;;) {
			gpa_t pte_gpa;
			r->level = level;

#if PTTYPE == 64
			if (mode == PAGING_PAE && level == 3) {
				unsigned i = (unsigned)(addr >> 30) & 3;
				pte_gpa = table + i * sizeof(pt_element_t);
				if (ctx->pdptrs_valid) {
					pte = ctx->pdptrs[i];
					err = 0;
				} else {
					err = WALK_READ(ops, opaque, pte_gpa, &pte, sizeof(pte));
					r->refs++;
				}
			} else
#endif
			{
				pte_gpa = table + FNAME(index)(addr, level) * sizeof(pt_element_t);
				err = WALK_READ(ops, opaque, pte_gpa, &pte, sizeof(pte));
				r->refs++;
			}
			if (err == -ENOENT || err == -EACCES) {
				/* No memory there: the walk faults as on a not-present entry, and
				 * records one (the result's entries stay valid down to level). */
				r->gpte[level] = 0;
				r->pte_gpa[level] = pte_gpa;
				goto error;
			}
			if (err)
				goto abort;

			r->gpte[level] = pte;
			r->pte_gpa[level] = pte_gpa;

#if PTTYPE == 64
			if (quick_ok && level > 1 && (pte & quick) == PT_PRESENT_MASK) {
				acc &= FNAME(gpte_access)(ctx, pte);
				anded &= pte;
				table = pte & PT_ENTRY_ADDR_MASK;
				level--;
				continue;
			}
#endif
			if (!(pte & PT_PRESENT_MASK))
				goto error;
			if (pte & FNAME(rsvd)(ctx, rsvd_high, mode, level, pte)) {
				ec = PFERR_RSVD | PFERR_PRESENT;
				goto error;
			}
#if PTTYPE == 64
			/* A PAE PDPTE carries no rights. */
			if (!(mode == PAGING_PAE && level == 3))
#endif
			{
				acc &= FNAME(gpte_access)(ctx, pte);
				anded &= pte;
			}

			if (FNAME(is_leaf)(ctx, level, pte))
				break;
			table = pte & PT_ENTRY_ADDR_MASK;
			level--;
		}

		r->gpa = FNAME(leaf_gpa)(pte, level, addr, &r->page_shift);
		r->access = acc;
#if PTTYPE == 64
		if (mode >= PAGING_4LVL)
			r->pkey = (unsigned)((pte & PT64_PKEY_MASK) >> PT64_PKEY_SHIFT);
#endif
		ec = paging_permission_fault(ctx, acc, r->pkey, access);
		if (ec)
			goto error;

#if PTTYPE == 64
		const int no_a = mode == PAGING_PAE ? 3 : 0;   /* PDPTEs have no A bit */
#else
		const int no_a = 0;
#endif
		switch (paging_walk_ad(ops, opaque, r, level, access, pte, anded, no_a,
				       sizeof(pt_element_t), &retries, &err)) {
		case WALK_AD_DONE: break;
		case WALK_AD_RETRY: goto retry;
		case WALK_AD_FAULT: ec = 0; goto error;
		case WALK_AD_ABORT: goto abort;
		}
		r->status = WALK_OK;
		return WALK_OK;
	}

error:
	ec |= access & PFERR_WRITE;
	if (user)
		ec |= PFERR_USER;
	/* The I/D bit exists only where the CPU can refuse a fetch: NX (PAE/64-bit) or SMEP. */
	if (fetch && (((ctx->efer & EFER_NXE) && mode != PAGING_32) || (ctx->cr4 & X86_CR4_SMEP)))
		ec |= PFERR_FETCH;
	r->ec = ec;
	r->status = WALK_PF;
	return WALK_PF;

abort:
	r->abort_err = err;
	r->status = WALK_ABORT;
	return WALK_ABORT;
}

#undef pt_element_t
#undef WALK_FORMAT_NAME
#undef FNAME
#undef WALK_LINKAGE
#undef WALK_READ
#ifdef WALK_INSTANCE
#undef WALK_CAT2
#undef WALK_CAT
#endif
#undef PT_LEVEL_BITS
#undef PT_ENTRY_ADDR_MASK
