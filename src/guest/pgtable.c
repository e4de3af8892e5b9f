/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel's page tables: 4-level x86-64 tables in guest memory, read and written only
 * with kernel accesses through the direct map (kaccess.c), as Linux's mm/ does through
 * set_pte()/pte_clear(). Table pages are read a page at a time (one 4096-byte load) when a range
 * is scanned; every entry change is one 8-byte store, so a shadow MMU traps each as it would a
 * real kernel's.
 *
 * Range operations (unmap, protect, copy at fork, aging) share one walker, walk_level(): it reads
 * a table page, visits the entries that overlap [start, end), descends into tables and hands leaves
 * (4K PTEs, 2M PDEs, and 1G PDPTEs under --guest-1g) to the operation. A 2M leaf the range covers only in part is split first
 * when the operation asks for it (unmap, protect), as split_huge_pmd() does.
 *
 * Invariants kept here:
 *  - a table page is linked into its parent only after it was zeroed;
 *  - a table is freed only when no VMA overlaps the span it maps, so it is empty (leaves exist
 *    only inside VMAs), or by a collapse once its link was replaced by the 2M leaf (its old
 *    entries are never read again: a table page is zeroed when it is allocated again); either
 *    way its address is in the caller's flush (paging-structure caches);
 *  - refcounts: +1 per leaf that maps a frame (the head frame for a 2M or 1G page); the zero page is
 *    never counted.
 * Every function that changes an entry adds the addresses whose translation narrowed to the
 * caller's struct flush; the caller flushes (flush_tlb_mm) before returning to user mode.
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "guest.h"

uint64_t leaf_bits(unsigned prot)
{
	uint64_t e = GPTE_P | GPTE_U;

	if (prot & VMMU_PROT_WRITE)
		e |= GPTE_W;
	if (!(prot & VMMU_PROT_EXEC))
		e |= GPTE_NX;
	return e;
}

void frame_put(struct guest *g, uint32_t pfn)
{
	struct frame *f = &g->fr.f[pfn];

	if (f->flags & F_ZERO)
		return;
	if (!f->ref) {
		guest_fail(g, -EIO, "guest kernel bug: frame %#x freed twice", pfn);
		return;
	}
	if (--f->ref)
		return;
	frames_free(&g->fr, pfn, (f->flags & F_HEAD) ? f->order : 0);
}

static void frame_get(struct guest *g, uint32_t pfn)
{
	struct frame *f = &g->fr.f[pfn];

	if (!(f->flags & F_ZERO))
		f->ref++;
}

int pt_alloc_table(struct guest *g, struct gcpu *c, uint64_t *pa)
{
	uint32_t pfn = frames_alloc(&g->fr, 0);

	if (pfn == FRAME_NONE)
		return -ENOMEM;
	g->fr.f[pfn].flags |= F_PTABLE;
	*pa = (uint64_t)pfn << 12;
	return kzero_page(g, c, *pa);
}

static void pt_free_table(struct guest *g, struct mm *mm, uint64_t pa)
{
	frames_free(&g->fr, (uint32_t)(pa >> 12), 0);
	mm->pt_pages--;
}

int pt_walk_alloc(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, int level,
		  uint64_t *epa, uint64_t *entry, bool *huge)
{
	uint64_t table = mm->root;
	int rc;

	*huge = false;
	for (int l = 4; l > level; l--) {
		uint64_t pa = table + pt_index(va, l) * 8, e;
		rc = kload64(g, c, pa, &e);
		if (rc)
			return rc;
		if (l <= 3 && gpte_used(e) && gpte_huge(e)) {
			*huge = true;
			*epa = pa;
			*entry = e;
			return 0;
		}
		if (!gpte_present(e)) {
			uint64_t t;
			rc = pt_alloc_table(g, c, &t);
			if (rc)
				return rc;
			e = t | GPTE_TABLE_USER;
			rc = kstore64(g, c, pa, e);
			if (rc)
				return rc;
			mm->pt_pages++;
		}
		table = gpte_addr(e);
	}
	*epa = table + pt_index(va, level) * 8;
	return kload64(g, c, *epa, entry);
}

int pt_lookup(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, uint64_t *epa,
	      uint64_t *entry, int *level)
{
	uint64_t table = mm->root;

	for (int l = 4; l >= 1; l--) {
		uint64_t pa = table + pt_index(va, l) * 8, e;
		int rc = kload64(g, c, pa, &e);
		if (rc)
			return rc;
		*epa = pa;
		*entry = e;
		*level = l;
		if (l == 1 || !gpte_used(e) || (l <= 3 && gpte_huge(e)))
			return 0;
		if (!gpte_present(e))
			return guest_fail(g, -EIO, "guest kernel bug: a non-present table entry in use at level %d", l);
		table = gpte_addr(e);
	}
	return 0;
}

/*
 * Split the 2M leaf @pde (at @pde_pa, mapping @va) into a table of 512 4K entries with the same
 * rights. An exclusively owned page is split in place (its frames become 512 order-0 frames);
 * one still shared with another address space after fork gets private copies instead, since a
 * frame's refcount is per frame and the other mapping still holds the compound page.
 * The caller flushes @va (the 2M translation is gone).
 */
int pt_split_huge(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, uint64_t pde_pa,
		  uint64_t pde)
{
	uint32_t head = (uint32_t)((pde & GPTE_ADDR_2M) >> 12);
	struct frame *h = &g->fr.f[head];
	uint64_t bits = pde & ~(GPTE_ADDR | GPTE_PS);
	uint64_t pt;
	int rc;

	if (!(h->flags & F_HEAD))
		return guest_fail(g, -EIO, "guest kernel bug: a 2M leaf at %#" PRIx64 " maps no compound page", va);
	rc = pt_alloc_table(g, c, &pt);
	if (rc)
		return rc;
	mm->pt_pages++;
	if (h->ref == 1) {
		h->flags &= (uint8_t)~F_HEAD;
		h->order = 0;
		for (uint32_t i = 0; i < 512; i++) {
			g->fr.f[head + i].ref = 1;
			rc = kstore64(g, c, pt + i * 8, ((uint64_t)(head + i) << 12) | bits);
			if (rc)
				return rc;
		}
	} else {
		for (uint32_t i = 0; i < 512; i++) {
			uint32_t pfn = frames_alloc(&g->fr, 0);
			if (pfn == FRAME_NONE) {
				/* Undo: the table's frames so far, then the table. */
				for (uint32_t j = 0; j < i; j++) {
					uint64_t e;
					if (!kload64(g, c, pt + j * 8, &e))
						frames_free(&g->fr, gpte_pfn(e), 0);
				}
				pt_free_table(g, mm, pt);
				return -ENOMEM;
			}
			g->fr.f[pfn].ref = 1;
			rc = kcopy_page(g, c, (uint64_t)pfn << 12, ((uint64_t)(head + i)) << 12);
			if (!rc)
				rc = kstore64(g, c, pt + i * 8, ((uint64_t)pfn << 12) | bits);
			if (rc)
				return rc;
		}
		g->cnt.cow_copies += 512;
		h->ref--;
	}
	g->cnt.thp_splits++;
	return kstore64(g, c, pde_pa, pt | GPTE_TABLE_USER);
}

/* ---- the range walker ---- */

struct range {
	struct guest *g;
	struct gcpu *c;
	struct mm *mm;
	uint64_t start, end;          /* the range, page aligned */
	bool split_partial;           /* split 2M leaves the range covers in part */
	bool free_tables;             /* free tables no VMA overlaps, after their leaves */
	int (*leaf)(struct range *r, uint64_t va, int level, uint64_t epa, uint64_t e);
	struct flush *f;
	/* per operation */
	unsigned prot;                /* protect */
	uint64_t young;               /* age */
	struct mm *dst;               /* copy: the child */
	bool cow;                     /* copy: write-protect both sides */
	bool wp;                      /* copy: some parent entry lost W */
	uint64_t dst_pt_va, dst_pt;   /* copy: the child's last PT page and the 2M it maps */
};

static int walk_level(struct range *r, uint64_t table, int level, uint64_t base)
{
	uint64_t ents[512];
	uint64_t sz = level_size(level);
	unsigned i = r->start > base ? (unsigned)((r->start - base) / sz) : 0;
	int rc = kread_page(r->g, r->c, table, ents);

	if (rc)
		return rc;
	for (; i < 512; i++) {
		uint64_t va = base + i * sz, e = ents[i], epa = table + i * 8;
		bool leaf;

		if (va >= r->end || (level == 4 && i >= KERNEL_HALF))
			break;
		if (!gpte_used(e))
			continue;
		leaf = level == 1 || (level <= 3 && gpte_huge(e));
		if (leaf && level == 3 && (va < r->start || va + sz > r->end))
			return guest_fail(r->g, -EIO, "guest kernel bug: a range cuts the 1G page at %#" PRIx64, va);
		if (leaf && level == 2 && r->split_partial && (va < r->start || va + sz > r->end)) {
			rc = pt_split_huge(r->g, r->c, r->mm, va, epa, e);
			if (rc)
				return rc;
			flush_add(r->f, va);
			rc = kload64(r->g, r->c, epa, &e);
			if (rc)
				return rc;
			leaf = false;
		}
		if (leaf) {
			rc = r->leaf(r, va, level, epa, e);
			if (rc)
				return rc;
			continue;
		}
		rc = walk_level(r, gpte_addr(e), level - 1, va);
		if (rc)
			return rc;
		if (r->free_tables && !vma_overlaps(r->mm, va, va + sz)) {
			rc = kstore64(r->g, r->c, epa, 0);
			if (rc)
				return rc;
			pt_free_table(r->g, r->mm, gpte_addr(e));
			r->f->freed_tables = true;
			if (!r->f->n && !r->f->full)
				flush_add(r->f, va);
		}
	}
	return 0;
}

static int walk_range(struct range *r)
{
	if (r->start >= r->end)
		return 0;
	return walk_level(r, r->mm->root, 4, 0);
}

/* ---- unmap ---- */

static int unmap_leaf(struct range *r, uint64_t va, int level, uint64_t epa, uint64_t e)
{
	int rc = kstore64(r->g, r->c, epa, 0);

	if (rc)
		return rc;
	frame_put(r->g, leaf_head(e, level));
	r->mm->rss -= leaf_pages(level);
	if (e & GPTE_P)
		flush_add(r->f, va);
	return 0;
}

int pt_unmap_range(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t start, uint64_t end,
		   struct flush *f)
{
	struct range r = {
		.g = g, .c = c, .mm = mm, .start = start, .end = end, .split_partial = true,
		.free_tables = true, .leaf = unmap_leaf, .f = f,
	};
	return walk_range(&r);
}

/* ---- mprotect ---- */

static int protect_leaf(struct range *r, uint64_t va, int level, uint64_t epa, uint64_t e)
{
	uint64_t n;

	if (r->prot == VMMU_PROT_NONE) {
		n = (e & ~GPTE_P) | GPTE_PROTNONE;
	} else {
		n = (e | GPTE_P) & ~GPTE_PROTNONE;
		/* Write permission is never added here: a write fault adds it after the
		 * copy-on-write checks, as Linux does for private mappings. */
		if (!(r->prot & VMMU_PROT_WRITE))
			n &= ~GPTE_W;
		if (r->prot & VMMU_PROT_EXEC)
			n &= ~GPTE_NX;
		else
			n |= GPTE_NX;
	}
	if (n == e)
		return 0;
	if (e & GPTE_P)
		flush_add(r->f, va);
	return kstore64(r->g, r->c, epa, n);
}

int pt_protect_range(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t start, uint64_t end,
		     unsigned prot, struct flush *f)
{
	struct range r = {
		.g = g, .c = c, .mm = mm, .start = start, .end = end, .split_partial = true,
		.leaf = protect_leaf, .f = f, .prot = prot,
	};
	return walk_range(&r);
}

/* ---- fork ---- */

static int copy_leaf(struct range *r, uint64_t va, int level, uint64_t epa, uint64_t e)
{
	struct guest *g = r->g;
	uint64_t depa, de, ce = e;
	bool huge;
	int rc;

	if (r->cow && (e & GPTE_W)) {
		ce = e & ~GPTE_W;
		rc = kstore64(g, r->c, epa, ce);
		if (rc)
			return rc;
		if (e & GPTE_P)
			r->wp = true;
	}
	ce &= ~GPTE_A;   /* the child's copy starts old (copy_present_pte's pte_mkold) */
	if (level == 1 && (va & ~(SZ_2M - 1)) == r->dst_pt_va) {
		depa = r->dst_pt + pt_index(va, 1) * 8;
		de = 0;   /* the child's table holds only what this walk wrote, below va */
		huge = false;
	} else {
		rc = pt_walk_alloc(g, r->c, r->dst, va, level, &depa, &de, &huge);
		if (rc)
			return rc;
		if (level == 1) {
			r->dst_pt_va = va & ~(SZ_2M - 1);
			r->dst_pt = depa - pt_index(va, 1) * 8;
		}
	}
	if (huge || gpte_used(de))
		return guest_fail(g, -EIO, "guest kernel bug: fork found the child's entry for %#" PRIx64 " in use", va);
	rc = kstore64(g, r->c, depa, ce);
	if (rc)
		return rc;
	frame_get(g, leaf_head(e, level));
	r->dst->rss += leaf_pages(level);
	return 0;
}

int pt_copy_range(struct guest *g, struct gcpu *c, struct mm *dst, struct mm *src,
		  const struct vma *v)
{
	struct flush f = { .n = 0 };
	struct range r = {
		.g = g, .c = c, .mm = src, .start = v->start, .end = v->end, .leaf = copy_leaf,
		.f = &f, .dst = dst, .cow = (v->prot & VMMU_PROT_WRITE) != 0, .dst_pt_va = ~0ULL,
	};
	int rc = walk_range(&r);

	if (rc)
		return rc;
	return r.wp ? 1 : 0;
}

/* ---- page aging ---- */

static int age_leaf(struct range *r, uint64_t va, int level, uint64_t epa, uint64_t e)
{
	if ((e & (GPTE_P | GPTE_A)) != (GPTE_P | GPTE_A))
		return 0;
	r->young += leaf_pages(level);
	flush_add(r->f, va);
	/* The hardware sets A with a locked operation; this clear is a plain store, which is
	 * exact here because no other vCPU runs while the kernel does (guest.h). */
	return kstore64(r->g, r->c, epa, e & ~GPTE_A);
}

int pt_age(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t *young)
{
	struct flush f = { .n = 0 };
	struct range r = {
		.g = g, .c = c, .mm = mm, .start = 0, .end = USER_TOP, .leaf = age_leaf, .f = &f,
	};
	int rc = walk_range(&r);

	if (rc)
		return rc;
	*young = r.young;
	if (r.young) {
		f.full = true;
		rc = flush_tlb_mm(g, c, mm, &f);
	}
	return rc;
}

/* ---- collapse (the guest kernel's khugepaged) ---- */

int pt_pde(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, uint64_t *pde_pa,
	   uint64_t *pde)
{
	uint64_t table = mm->root;

	for (int l = 4; l >= 2; l--) {
		uint64_t pa = table + pt_index(va, l) * 8, e;
		int rc = kload64(g, c, pa, &e);

		if (rc)
			return rc;
		if (l == 2) {
			*pde_pa = pa;
			*pde = e;
			return 0;
		}
		if (!gpte_present(e) || gpte_huge(e)) {
			*pde = 0;
			return 0;
		}
		table = gpte_addr(e);
	}
	return 0;
}

int pt_collapse(struct guest *g, struct gcpu *c, struct mm *mm, const struct vma *v, uint64_t va,
		uint64_t pde_pa, uint64_t pde, unsigned max_none, struct flush *f)
{
	uint64_t ents[512], table = gpte_addr(pde);
	uint64_t bits = leaf_bits(v->prot) | GPTE_PS | GPTE_A;
	unsigned none = 0;
	bool young = false;
	uint32_t head;
	int rc = kread_page(g, c, table, ents);

	if (rc)
		return rc;
	for (unsigned i = 0; i < 512; i++) {
		if (!gpte_used(ents[i])) {
			none++;
			continue;
		}
		if (!gpte_present(ents[i]))
			return 0;               /* a PROT_NONE entry: not for a THP */
		young |= ents[i] & GPTE_A;
		if (ents[i] & GPTE_D)
			bits |= GPTE_D;
	}
	if (none > max_none || !young)
		return 0;
	head = frames_alloc(&g->fr, FRAME_MAX_ORDER);
	if (head == FRAME_NONE)
		return 0;
	g->fr.f[head].flags |= F_HEAD;
	g->fr.f[head].order = FRAME_MAX_ORDER;
	g->fr.f[head].ref = 1;
	for (unsigned i = 0; i < 512 && !rc; i++) {
		uint64_t dst = ((uint64_t)head + i) << 12;

		/* A zero-page or page-cache entry is copied too: the THP is this mm's own. */
		rc = gpte_used(ents[i]) ? kcopy_page(g, c, dst, gpte_addr(ents[i])) :
					  kzero_page(g, c, dst);
	}
	if (!rc)
		rc = kstore64(g, c, pde_pa, ((uint64_t)head << 12) | bits);
	if (rc)
		return rc;
	for (unsigned i = 0; i < 512; i++)
		if (gpte_used(ents[i]))
			frame_put(g, gpte_pfn(ents[i]));
	pt_free_table(g, mm, table);
	mm->rss += none;
	/* Every 4K translation of the range, and the table in the paging-structure caches. */
	f->full = true;
	f->freed_tables = true;
	g->cnt.thp_collapses++;
	return 1;
}
