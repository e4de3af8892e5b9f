/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel's page-fault handler (do_user_addr_fault / handle_mm_fault in Linux terms).
 * A user #PF is resolved (demand zero, page-cache mapping, copy on write, a guest huge page) or
 * kills the task (no VMA, rights the VMA does not grant, out of memory). The access is retried by
 * the caller (uaccess, sched.c).
 *
 * Rules:
 *  - a read of untouched anonymous memory maps the shared zero page read-only; a write maps a
 *    zeroed private frame (or a 2M page where the VMA allows guest THP and the whole 2M lies
 *    inside it);
 *  - a write to a present read-only entry in a writable VMA copies the page unless this mapping
 *    is its only user (then W is set in place: no flush, as Linux's wp_page_reuse);
 *  - replacing a frame flushes the old translation on every vCPU that may hold it;
 *  - a fault the tables already allow is spurious (another vCPU fixed it, or a stale TLB entry):
 *    the kernel flushes the address locally and returns;
 *  - a kernel-mode fault, or a reserved bit in a table, cannot happen with a correct MMU: the run
 *    stops with the reason.
 * Locking: the kernel lock in a threaded run (guest.h). The one thing done without it is the
 * zeroing of a demand-zero frame: the frame is taken, the lock let go while the vCPU zeroes it,
 * and the fault handled again from the start with the frame kept as the vCPU's spare (what the
 * first pass saw may have changed meanwhile: Linux zeroes before it takes the page-table lock
 * and checks the entry again after, for the same reason).
 */
#include <errno.h>
#include <inttypes.h>

#include "guest.h"

static int kill(struct kill_info *k, int sig, uint64_t va, uint32_t ec)
{
	k->signal = sig;
	k->addr = va;
	k->ec = ec;
	return 1;
}

static int flush_page(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va)
{
	struct flush f = { .n = 0 };

	flush_add(&f, va);
	return flush_tlb_mm(g, c, mm, &f);
}

#define FAULT_AGAIN 2   /* handle the fault again: the vCPU has a spare zeroed frame now */

/* A zeroed anonymous frame, or FRAME_NONE when memory is out. FAULT_AGAIN (threaded runs): one
 * was zeroed without the kernel lock and is the vCPU's spare; *@pfn is not FRAME_NONE then. */
static int alloc_zeroed(struct guest *g, struct gcpu *c, uint32_t *pfn)
{
	int rc;

	if (c->spare != FRAME_NONE) {
		*pfn = c->spare;
		c->spare = FRAME_NONE;
		g->fr.f[*pfn].ref = 1;
		g->cnt.zero_fills++;
		return 0;
	}
	*pfn = frames_alloc(&g->fr, 0);
	if (*pfn == FRAME_NONE)
		return 0;
	if (g->threaded) {
		rc = kzero_page_unlocked(g, c, (uint64_t)*pfn << 12);
		if (rc) {
			frames_free(&g->fr, *pfn, 0);
			return rc;
		}
		c->spare = *pfn;
		return FAULT_AGAIN;
	}
	g->fr.f[*pfn].ref = 1;
	g->cnt.zero_fills++;
	return kzero_page(g, c, (uint64_t)*pfn << 12);
}

/* A zeroed huge page at the empty entry of @level for @va: guest THP (level 2, a 2M page at the
 * PDE), or --guest-1g (level 3, a 1G page at the PDPTE, as a hugetlbfs fault; its block carved
 * from guest RAM never handed out yet). 1 done, 0 fall back to smaller pages (no block free, or
 * a table there already), <0 fatal. */
static int do_huge_anonymous(struct guest *g, struct gcpu *c, struct mm *mm, const struct vma *v,
			     uint64_t va, bool write, int level)
{
	const uint64_t pages = leaf_pages(level), base = va & ~((pages << 12) - 1);
	uint64_t epa, e;
	uint32_t head;
	bool huge;
	int rc;

	if (base < v->start || base + (pages << 12) > v->end)
		return 0;
	rc = pt_walk_alloc(g, c, mm, va, level, &epa, &e, &huge);
	if (rc)
		return rc == -ENOMEM ? 0 : rc;
	if (huge || gpte_used(e))
		return 0;   /* a table is there already: stay with smaller pages */
	head = level == 3 ? frames_alloc_1g(&g->fr) : frames_alloc(&g->fr, FRAME_MAX_ORDER);
	if (head == FRAME_NONE)
		return 0;
	g->fr.f[head].flags |= F_HEAD;
	g->fr.f[head].order = level == 3 ? FRAME_1G_ORDER : FRAME_MAX_ORDER;
	g->fr.f[head].ref = 1;
	for (uint32_t i = 0; i < pages; i++) {
		rc = kzero_page(g, c, ((uint64_t)(head + i)) << 12);
		if (rc)
			return rc;
	}
	if (level == 3)
		g->cnt.huge_1g++;
	else
		g->cnt.thp_allocs++;
	mm->rss += pages;
	rc = kstore64(g, c, epa, ((uint64_t)head << 12) | leaf_bits(v->prot) | GPTE_PS |
		      (write ? GPTE_D : 0));
	return rc ? rc : 1;
}

/* A not-present 4K entry: demand zero, or the page cache. @epa/@level: where the lookup
 * stopped (level 1: the PTE's own address, so the table is there already). */
static int do_pte_missing(struct guest *g, struct gcpu *c, struct mm *mm, const struct vma *v,
			  uint64_t va, bool write, struct kill_info *k, uint32_t ec, uint64_t epa,
			  int level)
{
	uint64_t e = 0, ne;
	uint32_t pfn;
	bool huge = false;
	int rc = 0;

	if (level > 1) {
		rc = pt_walk_alloc(g, c, mm, va, 1, &epa, &e, &huge);
		if (rc == -ENOMEM)
			return kill(k, VMMU_SIGKILL, va, ec);
		if (rc)
			return rc;
	}
	if (huge)
		return guest_fail(g, -EIO, "guest kernel bug: a 2M leaf appeared under a 4K fault at %#" PRIx64, va);
	if (gpte_used(e))
		return 0;   /* not missing any more: the retry will tell */
	if (v->flags & VMA_FILE) {
		uint64_t idx = v->pgoff + ((va - v->start) >> 12);
		if (idx >= v->file->npages)
			return kill(k, VMMU_SIGBUS, va, ec);
		uint32_t cache = v->file->frames[idx];
		if (write) {
			pfn = frames_alloc(&g->fr, 0);
			if (pfn == FRAME_NONE)
				return kill(k, VMMU_SIGKILL, va, ec);
			g->fr.f[pfn].ref = 1;
			g->cnt.cow_copies++;
			rc = kcopy_page(g, c, (uint64_t)pfn << 12, (uint64_t)cache << 12);
			ne = ((uint64_t)pfn << 12) | leaf_bits(v->prot) | GPTE_D;
		} else {
			g->fr.f[cache].ref++;
			ne = ((uint64_t)cache << 12) | (leaf_bits(v->prot) & ~GPTE_W);
		}
	} else if (!write) {
		/* The zero page, read-only: a later write copies (allocates) it. */
		ne = ((uint64_t)g->zero_pfn << 12) | (leaf_bits(v->prot) & ~GPTE_W);
	} else {
		rc = alloc_zeroed(g, c, &pfn);
		if (pfn == FRAME_NONE)
			return kill(k, VMMU_SIGKILL, va, ec);
		if (rc)
			return rc;   /* FAULT_AGAIN: the lock was let go, @v may be gone */
		ne = ((uint64_t)pfn << 12) | leaf_bits(v->prot) | GPTE_D;
	}
	if (rc)
		return rc;
	mm->rss++;
	/* Not present before: no vCPU caches a not-present entry, so nothing to flush. */
	return kstore64(g, c, epa, ne);
}

/* Write to a present read-only 4K entry @e at @epa in a writable VMA. */
static int do_wp_page(struct guest *g, struct gcpu *c, struct mm *mm, const struct vma *v,
		      uint64_t va, uint64_t epa, uint64_t e, struct kill_info *k, uint32_t ec)
{
	uint32_t old = gpte_pfn(e), pfn;
	struct frame *f = &g->fr.f[old];
	int rc;

	if (!(f->flags & (F_ZERO | F_PCACHE)) && f->ref == 1)
		return kstore64(g, c, epa, e | GPTE_W | GPTE_D | GPTE_A);   /* reuse */
	if (f->flags & F_ZERO) {
		rc = alloc_zeroed(g, c, &pfn);
		if (pfn == FRAME_NONE)
			return kill(k, VMMU_SIGKILL, va, ec);
	} else {
		pfn = frames_alloc(&g->fr, 0);
		if (pfn == FRAME_NONE)
			return kill(k, VMMU_SIGKILL, va, ec);
		g->fr.f[pfn].ref = 1;
		g->cnt.cow_copies++;
		rc = kcopy_page(g, c, (uint64_t)pfn << 12, (uint64_t)old << 12);
	}
	if (!rc)
		rc = kstore64(g, c, epa, ((uint64_t)pfn << 12) | leaf_bits(v->prot) | GPTE_D | GPTE_A);
	if (rc)
		return rc;
	frame_put(g, old);
	return flush_page(g, c, mm, va);
}

/* Write to a present read-only 2M (@level 2) or 1G (3) entry in a writable VMA. */
static int do_huge_wp(struct guest *g, struct gcpu *c, struct mm *mm, const struct vma *v,
		      uint64_t va, uint64_t epa, uint64_t e, int level, struct kill_info *k,
		      uint32_t ec)
{
	uint32_t old = leaf_head(e, level);
	struct frame *h = &g->fr.f[old];
	const uint64_t pages = leaf_pages(level), base = va & ~((pages << 12) - 1);
	int rc;

	if (h->ref == 1)
		return kstore64(g, c, epa, e | GPTE_W | GPTE_D | GPTE_A);
	uint32_t head = level == 3 ? frames_alloc_1g(&g->fr) : frames_alloc(&g->fr, FRAME_MAX_ORDER);
	if (head == FRAME_NONE && level == 3) {
		/* No 1G block for the copy: hugetlb's SIGBUS. */
		return kill(k, VMMU_SIGBUS, va, ec);
	}
	if (head == FRAME_NONE) {
		/* No 2M block: split into private 4K copies; the retry faults on the 4K entry. */
		rc = pt_split_huge(g, c, mm, base, epa, e);
		if (rc == -ENOMEM)
			return kill(k, VMMU_SIGKILL, va, ec);
		return rc ? rc : flush_page(g, c, mm, base);
	}
	g->fr.f[head].flags |= F_HEAD;
	g->fr.f[head].order = level == 3 ? FRAME_1G_ORDER : FRAME_MAX_ORDER;
	g->fr.f[head].ref = 1;
	for (uint32_t i = 0; i < pages; i++) {
		rc = kcopy_page(g, c, ((uint64_t)(head + i)) << 12, ((uint64_t)(old + i)) << 12);
		if (rc)
			return rc;
	}
	g->cnt.cow_copies += pages;
	if (level == 3)
		g->cnt.huge_1g++;
	else
		g->cnt.thp_allocs++;
	rc = kstore64(g, c, epa, ((uint64_t)head << 12) | leaf_bits(v->prot) | GPTE_PS | GPTE_D | GPTE_A);
	if (rc)
		return rc;
	frame_put(g, old);
	return flush_page(g, c, mm, base);
}

/* A fault outside every VMA of a trace's address space: map the 2M-aligned chunk around @va
 * (clipped to the free gap), readable, writable and executable. */
static struct vma *autogrow(struct guest *g, struct mm *mm, uint64_t va)
{
	uint64_t start = va & ~(SZ_2M - 1), end = start + SZ_2M;
	struct vma v = { .prot = VMMU_PROT_READ | VMMU_PROT_WRITE | VMMU_PROT_EXEC,
			 .flags = VMA_ANON | (g->thp ? VMA_THP : 0) };

	uint64_t lo, hi;

	vma_gap(mm, va, &lo, &hi);
	if (start < lo)
		start = lo;
	if (end > hi)
		end = hi;
	if (end > USER_TOP)
		end = USER_TOP;
	v.start = start;
	v.end = end;
	if (vma_insert(mm, &v))
		return NULL;
	return vma_find(mm, va);
}

static int fault_once(struct guest *g, struct gcpu *c, struct task *t, uint64_t va, uint32_t ec,
		      struct kill_info *k)
{
	struct mm *mm = t->mm;
	bool write = ec & PF_W, fetch = ec & PF_I;
	uint64_t epa, e;
	int level, rc;

	if (!(ec & PF_U))
		return guest_fail(g, -EFAULT, "guest kernel oops: a kernel-mode #PF at %#" PRIx64 " error code %#x", va, ec);
	if (ec & PF_RSVD)
		return guest_fail(g, -EFAULT, "guest kernel oops: a reserved bit in a page table (#PF at %#" PRIx64 " error code %#x)", va, ec);
	if (va >= USER_TOP)
		return kill(k, VMMU_SIGSEGV, va, ec);
	struct vma *v = vma_find(mm, va);
	if (!v && mm->autogrow)
		v = autogrow(g, mm, va);
	if (!v)
		return kill(k, VMMU_SIGSEGV, va, ec);
	if (v->prot == VMMU_PROT_NONE || (write && !(v->prot & VMMU_PROT_WRITE)) ||
	    (fetch && !(v->prot & VMMU_PROT_EXEC)))
		return kill(k, VMMU_SIGSEGV, va, ec);

	rc = pt_lookup(g, c, mm, va, &epa, &e, &level);
	if (rc)
		return rc;
	if (gpte_present(e)) {
		if (write && !(e & GPTE_W))
			return level >= 2 ? do_huge_wp(g, c, mm, v, va, epa, e, level, k, ec) :
					    do_wp_page(g, c, mm, v, va, epa, e, k, ec);
		/* Spurious: the entry allows the access now. */
		rc = vmmu_vcpu_invlpg(c->v, va);
		g->cnt.invlpgs++;
		return rc ? guest_fail(g, rc, "invlpg: %d", rc) : 0;
	}
	if (gpte_used(e))
		return guest_fail(g, -EIO, "guest kernel bug: a PROT_NONE entry inside an accessible VMA at %#" PRIx64, va);
	if ((v->flags & VMA_HUGE1G) && level >= 3) {
		rc = do_huge_anonymous(g, c, mm, v, va, write, 3);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	if ((v->flags & VMA_THP) && level >= 2) {
		rc = do_huge_anonymous(g, c, mm, v, va, write, 2);
		if (rc)
			return rc < 0 ? rc : 0;
	}
	return do_pte_missing(g, c, mm, v, va, write, k, ec, epa, level);
}

int handle_page_fault(struct guest *g, struct gcpu *c, struct task *t, uint64_t va, uint32_t ec,
		      struct kill_info *k)
{
	int rc;

	while ((rc = fault_once(g, c, t, va, ec, k)) == FAULT_AGAIN && !guest_fatal(g))
		;
	return rc == FAULT_AGAIN ? guest_fatal(g) : rc;
}
