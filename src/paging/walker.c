/* SPDX-License-Identifier: MIT */
/*
 * The walker's shared rules (reserved bits, permissions, mode) and its per-format instances.
 * See paging.h for the semantics; walk_tmpl.h for the walk itself. No state, no locking.
 */
#include <errno.h>
#include <stddef.h>

#include "hot.h"
#include "paging/paging.h"

enum paging_mode paging_mode_of(const struct paging_ctx *ctx)
{
	if (!(ctx->cr0 & X86_CR0_PG))
		return PAGING_OFF;
	if (!(ctx->cr4 & X86_CR4_PAE))
		return PAGING_32;
	if (ctx->efer & EFER_LMA)
		return (ctx->cr4 & X86_CR4_LA57) ? PAGING_5LVL : PAGING_4LVL;
	return PAGING_PAE;
}

/*
 * Rights of an access against the combined rights of a translation (SDM 4.6):
 *  - a user access (CPL 3, not implicit) needs U, and W to write, and X to fetch;
 *  - a supervisor fetch needs X and, under SMEP, a supervisor page;
 *  - a supervisor write to a read-only page faults only under CR0.WP;
 *  - a supervisor data access to a user page faults under SMAP, unless it is explicit and
 *    EFLAGS.AC is set;
 *  - protection keys (CR4.PKE, user pages, data accesses only): PKRU.AD refuses any access,
 *    PKRU.WD a user write, or a supervisor write under CR0.WP.
 */
VMMU_HOT
uint32_t paging_permission_fault(const struct paging_ctx *ctx, unsigned acc, unsigned pkey,
				 unsigned access)
{
	const bool implicit = access & WALK_IMPLICIT;
	const bool user = !implicit && ctx->cpl == 3;
	const bool write = access & PFERR_WRITE;
	const bool fetch = access & PFERR_FETCH;
	const bool wp = ctx->cr0 & X86_CR0_WP;
	const bool upage = acc & ACC_USER;
	bool fault = false;
	uint32_t ec = 0;

	if (user) {
		fault = !upage || (write && !(acc & ACC_WRITE)) || (fetch && !(acc & ACC_EXEC));
	} else if (fetch) {
		fault = !(acc & ACC_EXEC) || ((ctx->cr4 & X86_CR4_SMEP) && upage);
	} else {
		fault = (write && !(acc & ACC_WRITE) && wp) ||
			((ctx->cr4 & X86_CR4_SMAP) && upage && (implicit || !ctx->ac));
	}

	if ((ctx->cr4 & X86_CR4_PKE) && upage && !fetch && paging_mode_of(ctx) >= PAGING_4LVL) {
		unsigned bits = (ctx->pkru >> (2 * (pkey & 15))) & 3;
		if ((bits & 1) || ((bits & 2) && write && (user || wp))) {
			fault = true;
			ec |= PFERR_PK;
		}
	}
	return fault ? ec | PFERR_PRESENT : 0;
}

#define PTTYPE 64
#include "paging/walk_tmpl.h"
#undef PTTYPE

#define PTTYPE 32
#include "paging/walk_tmpl.h"
#undef PTTYPE

VMMU_HOT
enum walk_status paging_walk(const struct paging_ctx *ctx, const struct guest_mem_ops *ops,
			     void *opaque, gva_t addr, unsigned access, struct walk_result *r)
{
	return paging_walk_from(ctx, ops, opaque, addr, access, NULL, r);
}

VMMU_HOT
enum walk_status paging_walk_from(const struct paging_ctx *ctx, const struct guest_mem_ops *ops,
				  void *opaque, gva_t addr, unsigned access,
				  const struct walk_start *start, struct walk_result *r)
{
	switch (paging_mode_of(ctx)) {
	case PAGING_OFF:
		/* No paging: linear is physical (32 bits outside long mode), every right granted. */
		r->addr = addr;
		r->gpa = addr & 0xffffffffULL;
		r->status = WALK_OK;
		r->access = ACC_ALL;
		r->page_shift = 12;
		r->level = r->root_level = r->top_level = 0;
		r->refs = 0;
		r->pkey = 0;
		return WALK_OK;
	case PAGING_32:
		return walk32_addr(ctx, ops, opaque, addr, access, NULL, r);
	case PAGING_PAE:
		return walk64_addr(ctx, ops, opaque, addr & 0xffffffffULL, access, NULL, r);
	case PAGING_4LVL:
	case PAGING_5LVL:
		if (!paging_canonical(addr, paging_mode_of(ctx))) {
			r->addr = addr;
			r->status = WALK_GP;
			r->refs = 0;
			return WALK_GP;
		}
		return walk64_addr(ctx, ops, opaque, addr, access, start, r);
	}
	return WALK_GP;
}
