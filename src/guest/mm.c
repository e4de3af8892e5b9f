/* SPDX-License-Identifier: MIT */
/*
 * Address spaces: VMAs, and the system calls that change them (mmap, munmap, mprotect, brk, fork,
 * exec), with Linux's semantics and errors. VMAs are kernel-private (a sorted array per mm);
 * the page tables they govern are changed through pgtable.c, and every narrowing is flushed
 * (flush_tlb_mm, sched.c) before the call returns.
 *
 * Invariants: VMAs are page aligned, disjoint, sorted, below USER_TOP, and adjacent compatible
 * ones are merged (so a trace that grows memory chunk by chunk keeps few VMAs). A root table
 * holds the kernel half (copied from init_mm at creation, never changed after boot).
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "guest.h"

#define MMAP_MIN 0x10000ULL   /* mmap_min_addr */

static inline uint64_t page_up(uint64_t x)
{
	return (x + SZ_4K - 1) & ~(SZ_4K - 1);
}

/* ---- VMAs ---- */

/* Index of the first VMA that ends above @va. */
static unsigned vma_index(const struct mm *mm, uint64_t va)
{
	unsigned lo = 0, hi = mm->nr_vmas;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (mm->vmas[mid].end <= va)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct vma *vma_find(struct mm *mm, uint64_t va)
{
	unsigned i = vma_index(mm, va);

	if (i < mm->nr_vmas && mm->vmas[i].start <= va)
		return &mm->vmas[i];
	return NULL;
}

bool vma_overlaps(const struct mm *mm, uint64_t start, uint64_t end)
{
	unsigned i = vma_index(mm, start);

	return i < mm->nr_vmas && mm->vmas[i].start < end;
}

void vma_gap(const struct mm *mm, uint64_t va, uint64_t *lo, uint64_t *hi)
{
	unsigned i = vma_index(mm, va);

	*lo = i > 0 ? mm->vmas[i - 1].end : 0;
	*hi = i < mm->nr_vmas ? mm->vmas[i].start : USER_TOP;
}

static int vma_reserve(struct mm *mm, unsigned extra)
{
	if (mm->nr_vmas + extra <= mm->cap_vmas)
		return 0;
	unsigned cap = mm->cap_vmas ? mm->cap_vmas * 2 : 8;
	while (cap < mm->nr_vmas + extra)
		cap *= 2;
	struct vma *n = realloc(mm->vmas, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	mm->vmas = n;
	mm->cap_vmas = cap;
	return 0;
}

/* Can @a (just below) and @b be one VMA? */
static bool vma_mergeable(const struct vma *a, const struct vma *b)
{
	return a->end == b->start && a->prot == b->prot && a->flags == b->flags && a->file == b->file &&
	       (!a->file || a->pgoff + ((a->end - a->start) >> 12) == b->pgoff);
}

static void vma_delete(struct mm *mm, unsigned i, unsigned n)
{
	memmove(&mm->vmas[i], &mm->vmas[i + n], (mm->nr_vmas - i - n) * sizeof(struct vma));
	mm->nr_vmas -= n;
}

/* Merge VMA i with its neighbours where possible. */
static void vma_merge_at(struct mm *mm, unsigned i)
{
	if (i + 1 < mm->nr_vmas && vma_mergeable(&mm->vmas[i], &mm->vmas[i + 1])) {
		mm->vmas[i].end = mm->vmas[i + 1].end;
		vma_delete(mm, i + 1, 1);
	}
	if (i > 0 && vma_mergeable(&mm->vmas[i - 1], &mm->vmas[i])) {
		mm->vmas[i - 1].end = mm->vmas[i].end;
		vma_delete(mm, i, 1);
	}
}

int vma_insert(struct mm *mm, const struct vma *v)
{
	unsigned i;

	if (vma_reserve(mm, 1))
		return -ENOMEM;
	i = vma_index(mm, v->start);
	memmove(&mm->vmas[i + 1], &mm->vmas[i], (mm->nr_vmas - i) * sizeof(struct vma));
	mm->vmas[i] = *v;
	mm->nr_vmas++;
	vma_merge_at(mm, i);
	return 0;
}

/* Split VMA i at @at (inside it): [start, at) stays i, [at, end) becomes i + 1. */
static int vma_split(struct mm *mm, unsigned i, uint64_t at)
{
	if (vma_reserve(mm, 1))
		return -ENOMEM;
	memmove(&mm->vmas[i + 1], &mm->vmas[i], (mm->nr_vmas - i) * sizeof(struct vma));
	mm->nr_vmas++;
	mm->vmas[i].end = at;
	mm->vmas[i + 1].start = at;
	if (mm->vmas[i + 1].file)
		mm->vmas[i + 1].pgoff += (at - mm->vmas[i].start) >> 12;
	return 0;
}

/* Make VMA boundaries at @start and @end; returns the index of the first VMA inside. */
static int vma_cut(struct mm *mm, uint64_t start, uint64_t end, unsigned *first)
{
	unsigned i = vma_index(mm, start);
	int rc;

	if (i < mm->nr_vmas && mm->vmas[i].start < start && mm->vmas[i].end > start) {
		rc = vma_split(mm, i, start);
		if (rc)
			return rc;
		i++;
	}
	unsigned j = vma_index(mm, end);
	if (j < mm->nr_vmas && mm->vmas[j].start < end && mm->vmas[j].end > end) {
		rc = vma_split(mm, j, end);
		if (rc)
			return rc;
	}
	*first = i;
	return 0;
}

static int vma_remove_range(struct mm *mm, uint64_t start, uint64_t end)
{
	unsigned i, n = 0;
	int rc = vma_cut(mm, start, end, &i);

	if (rc)
		return rc;
	while (i + n < mm->nr_vmas && mm->vmas[i + n].end <= end)
		n++;
	vma_delete(mm, i, n);
	return 0;
}

/* Top-down search for a free [addr, addr + len) below MMAP_BASE, aligned to @align. */
static int get_unmapped_area(const struct mm *mm, uint64_t len, uint64_t align, uint64_t *out)
{
	uint64_t top = MMAP_BASE;
	unsigned i = mm->nr_vmas;

	for (;;) {
		while (i > 0 && mm->vmas[i - 1].start >= top)
			i--;
		uint64_t lo = i > 0 ? mm->vmas[i - 1].end : MMAP_MIN;
		if (lo < top && top - lo >= len) {
			uint64_t cand = (top - len) & ~(align - 1);
			if (cand >= lo) {
				*out = cand;
				return 0;
			}
		}
		if (i == 0)
			return -ENOMEM;
		if (mm->vmas[i - 1].start < top)
			top = mm->vmas[i - 1].start;
		i--;
	}
}

/* ---- address spaces ---- */

int mm_create(struct guest *g, struct gcpu *c, struct mm **out)
{
	struct mm *mm = calloc(1, sizeof(*mm));
	int rc;

	if (!mm)
		return -ENOMEM;
	rc = pt_alloc_table(g, c, &mm->root);
	if (rc) {
		free(mm);
		return rc;
	}
	mm->pt_pages = 1;
	mm->users = 1;
	mm->id = ++g->next_mm_id;
	/* clone_pgd_range(): the kernel half, shared by every address space. */
	for (unsigned i = KERNEL_HALF; i < 512; i++) {
		if (g->pml4_kernel[i]) {
			rc = kstore64(g, c, mm->root + i * 8, g->pml4_kernel[i]);
			if (rc)
				return rc;   /* fatal: the guest is stopping; its memory goes with it */
		}
	}
	*out = mm;
	return 0;
}

/* Add to *@sum the hash of every page @mm maps present, each keyed by its virtual address and
 * the mm's owner (the per-task digest's memory: order-free, so vCPU threads that finish in
 * another order, or frames handed out in another order, leave it as it is). The tables are read
 * as the VMM reads guest memory, so this changes nothing the guest or the MMU counts. */
static int sum_table(struct guest *g, const struct mm *mm, uint64_t table, int level,
		     uint64_t va0, unsigned first, unsigned last, uint64_t *sum)
{
	uint64_t e[512];
	uint8_t page[4096];
	int rc = vmmu_read_guest(g->vm, table, e, sizeof(e));

	for (unsigned i = first; i < last && !rc; i++) {
		uint64_t va = va0 + ((uint64_t)i << (12 + 9 * (level - 1)));
		if (!gpte_present(e[i]))
			continue;
		if (level > 1 && !gpte_huge(e[i])) {
			rc = sum_table(g, mm, e[i] & GPTE_ADDR, level - 1, va, 0, 512, sum);
			continue;
		}
		uint64_t pa = level > 1 ? (uint64_t)leaf_head(e[i], level) << 12 : e[i] & GPTE_ADDR;
		for (uint64_t p = 0; p < leaf_pages(level) && !rc; p++) {
			rc = vmmu_read_guest(g->vm, pa + (p << 12), page, sizeof(page));
			*sum += XXH64(page, sizeof(page), (va + (p << 12)) ^ ((uint64_t)mm->owner << 48));
		}
	}
	return rc;
}

int mm_memory_sum(struct guest *g, const struct mm *mm, uint64_t *sum)
{
	return sum_table(g, mm, mm->root, 4, 0, 0, KERNEL_HALF, sum);
}

/* Drop a user; the last one tears the address space down: every leaf, every table, the root. */
int mm_put(struct guest *g, struct gcpu *c, struct mm *mm)
{
	struct flush f = { .n = 0 };
	int rc = 0;

	if (--mm->users)
		return 0;
	/* No vCPU may run on tables being freed: the others switch to the kernel's own. */
	for (unsigned i = 0; i < g->nr_cpus && !rc; i++) {
		struct gcpu *o = &g->cpus[i];
		if (o->loaded == mm)
			rc = o == c ? switch_mm(g, c, &g->init_mm) :
				      ipi_send(g, c, o, IPI_SWITCH_INIT, mm, NULL);
	}
	if (!rc && g->per_task)
		rc = mm_memory_sum(g, mm, &g->mem_sum);
	mm->nr_vmas = 0;
	if (!rc)
		rc = pt_unmap_range(g, c, mm, 0, USER_TOP, &f);
	if (!rc && (mm->rss || mm->pt_pages != 1))
		rc = guest_fail(g, -EIO, "guest kernel bug: exit left %" PRIu64 " pages and %" PRIu64 " tables mapped",
				mm->rss, mm->pt_pages - 1);
	if (!rc)
		frames_free(&g->fr, (uint32_t)(mm->root >> 12), 0);
	/* No flush: no vCPU has these tables loaded, and a PCID that cached them is flushed
	 * before it is given to another address space (switch_mm). */
	free(mm->vmas);
	free(mm);
	return rc;
}

/* The layout of a fresh image: text, data (private file mappings), the heap's start, a stack. */
int mm_exec_layout(struct guest *g, struct mm *mm)
{
	const struct vma text = {
		.start = VMMU_GUEST_TEXT_BASE, .end = VMMU_GUEST_TEXT_BASE + VMMU_GUEST_TEXT_PAGES * SZ_4K,
		.prot = VMMU_PROT_READ | VMMU_PROT_EXEC, .flags = VMA_FILE, .file = &g->image, .pgoff = 0,
	};
	const struct vma data = {
		.start = VMMU_GUEST_DATA_BASE, .end = VMMU_GUEST_DATA_BASE + VMMU_GUEST_DATA_PAGES * SZ_4K,
		.prot = VMMU_PROT_READ | VMMU_PROT_WRITE, .flags = VMA_FILE, .file = &g->image,
		.pgoff = VMMU_GUEST_TEXT_PAGES,
	};
	const struct vma stack = {
		.start = STACK_TOP - STACK_SIZE, .end = STACK_TOP,
		.prot = VMMU_PROT_READ | VMMU_PROT_WRITE, .flags = VMA_ANON | VMA_STACK,
	};
	int rc = vma_insert(mm, &text);

	if (!rc)
		rc = vma_insert(mm, &data);
	if (!rc)
		rc = vma_insert(mm, &stack);
	mm->brk_start = mm->brk = data.end;
	return rc;
}

static unsigned anon_flags(struct guest *g)
{
	return VMA_ANON | (g->thp ? VMA_THP : 0);
}

/* Would [start, end) cut a 1G-page VMA off a 1G boundary? (hugetlb refuses: -EINVAL) */
static bool cuts_huge1g(const struct mm *mm, uint64_t start, uint64_t end)
{
	for (unsigned i = 0; i < mm->nr_vmas; i++) {
		const struct vma *v = &mm->vmas[i];

		if (!(v->flags & VMA_HUGE1G) || v->end <= start || v->start >= end)
			continue;
		if ((start > v->start && (start & (SZ_1G - 1))) ||
		    (end < v->end && (end & (SZ_1G - 1))))
			return true;
	}
	return false;
}

/* Unmap [start, end) of @mm (VMAs, then tables) and flush. */
static int do_munmap(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t start, uint64_t end)
{
	struct flush f = { .n = 0 };
	int rc;

	if (!vma_overlaps(mm, start, end))
		return 0;
	rc = vma_remove_range(mm, start, end);
	if (!rc)
		rc = pt_unmap_range(g, c, mm, start, end, &f);
	if (!rc)
		rc = flush_tlb_mm(g, c, mm, &f);
	return rc;
}

static int sys_mmap_locked(struct guest *g, struct task *t, uint64_t addr, uint64_t len, unsigned prot,
			   unsigned flags, uint64_t *out)
{
	struct gcpu *c = task_cpu(g, t);
	struct mm *mm = t->mm;
	struct vma v = { .prot = prot, .flags = anon_flags(g) };
	int rc;

	cpu_kernel(g, c);
	if (!len || (prot & ~(VMMU_PROT_READ | VMMU_PROT_WRITE | VMMU_PROT_EXEC)) ||
	    (flags & ~VMMU_MAP_FIXED))
		return -EINVAL;
	if (len > USER_TOP)
		return -ENOMEM;
	len = page_up(len);
	if (flags & VMMU_MAP_FIXED) {
		if (addr & (SZ_4K - 1))
			return -EINVAL;
		if (addr > USER_TOP - len || addr < MMAP_MIN)
			return -ENOMEM;
		if (cuts_huge1g(mm, addr, addr + len))
			return -EINVAL;
		rc = do_munmap(g, c, mm, addr, addr + len);
		if (rc)
			return rc;
	} else if (!addr || (addr & (SZ_4K - 1)) || addr < MMAP_MIN || addr > USER_TOP - len ||
		   vma_overlaps(mm, addr, addr + len)) {
		/* The hint is taken only when it is free, as Linux does; otherwise search. Large
		 * mappings are 2M aligned so that guest huge pages can back them. */
		if (g->huge1g && len >= SZ_1G) {
			/* --guest-1g: as MAP_HUGETLB | MAP_HUGE_1GB, whole 1G pages. */
			if (len > USER_TOP - SZ_1G)
				return -ENOMEM;
			len = (len + SZ_1G - 1) & ~(SZ_1G - 1);
			v.flags |= VMA_HUGE1G;    /* and THP where no 1G block is left */
		}
		rc = get_unmapped_area(mm, len, v.flags & VMA_HUGE1G ? SZ_1G :
					   len >= SZ_2M ? SZ_2M : SZ_4K, &addr);
		if (rc)
			return rc;
	}
	v.start = addr;
	v.end = addr + len;
	rc = vma_insert(mm, &v);
	if (rc)
		return rc;
	*out = addr;
	return 0;
}

/* A private, read-only or copy-on-write mapping of a page-cache file (clone-vms). */
int sys_mmap_file(struct guest *g, struct task *t, const struct gfile *file, unsigned prot,
		  uint64_t *out)
{
	struct mm *mm = t->mm;
	uint64_t len = file->npages * SZ_4K, addr;
	struct vma v = { .prot = prot, .flags = VMA_FILE, .file = file };
	int rc;

	cpu_kernel(g, task_cpu(g, t));
	if (!len)
		return -EINVAL;
	rc = get_unmapped_area(mm, len, len >= SZ_2M ? SZ_2M : SZ_4K, &addr);
	if (rc)
		return rc;
	v.start = addr;
	v.end = addr + len;
	rc = vma_insert(mm, &v);
	if (!rc)
		*out = addr;
	return rc;
}

static int sys_munmap_locked(struct guest *g, struct task *t, uint64_t addr, uint64_t len)
{
	struct gcpu *c = task_cpu(g, t);

	cpu_kernel(g, c);
	if ((addr & (SZ_4K - 1)) || !len || len > USER_TOP || addr > USER_TOP - page_up(len) ||
	    cuts_huge1g(t->mm, addr, addr + page_up(len)))
		return -EINVAL;
	return do_munmap(g, c, t->mm, addr, addr + page_up(len));
}

static int sys_mprotect_locked(struct guest *g, struct task *t, uint64_t addr, uint64_t len, unsigned prot)
{
	struct gcpu *c = task_cpu(g, t);
	struct mm *mm = t->mm;
	struct flush f = { .n = 0 };
	uint64_t end;
	unsigned i;
	int rc;

	cpu_kernel(g, c);
	if ((addr & (SZ_4K - 1)) || (prot & ~(VMMU_PROT_READ | VMMU_PROT_WRITE | VMMU_PROT_EXEC)))
		return -EINVAL;
	if (!len)
		return 0;
	if (len > USER_TOP || addr > USER_TOP - page_up(len))
		return -ENOMEM;
	end = addr + page_up(len);
	if (cuts_huge1g(mm, addr, end))
		return -EINVAL;
	/* Every byte must be mapped (-ENOMEM otherwise), before anything changes. */
	for (uint64_t a = addr; a < end;) {
		struct vma *v = vma_find(mm, a);
		if (!v)
			return -ENOMEM;
		a = v->end;
	}
	rc = vma_cut(mm, addr, end, &i);
	if (rc)
		return rc;
	for (unsigned j = i; j < mm->nr_vmas && mm->vmas[j].start < end; j++)
		mm->vmas[j].prot = prot;
	/* Merge what became alike, from the last piece down so indexes stay valid. */
	unsigned last = vma_index(mm, end - 1);
	for (unsigned j = last + 2; j-- > i;)
		if (j < mm->nr_vmas)
			vma_merge_at(mm, j);
	rc = pt_protect_range(g, c, mm, addr, end, prot, &f);
	if (!rc)
		rc = flush_tlb_mm(g, c, mm, &f);
	return rc;
}

int sys_brk(struct guest *g, struct task *t, uint64_t addr, uint64_t *out)
{
	struct gcpu *c = task_cpu(g, t);
	struct mm *mm = t->mm;
	int rc = 0;

	cpu_kernel(g, c);
	*out = mm->brk;
	if (!addr || addr < mm->brk_start || addr > MMAP_BASE)
		return 0;   /* brk(2) answers with the current break when it refuses */
	uint64_t old_top = page_up(mm->brk), new_top = page_up(addr);
	if (new_top > old_top) {
		struct vma v = {
			.start = old_top, .end = new_top, .prot = VMMU_PROT_READ | VMMU_PROT_WRITE,
			.flags = anon_flags(g) | VMA_HEAP,
		};
		if (vma_overlaps(mm, old_top, new_top))
			return 0;
		rc = vma_insert(mm, &v);
	} else if (new_top < old_top) {
		rc = do_munmap(g, c, mm, new_top, old_top);
	}
	if (rc)
		return rc;
	mm->brk = addr;
	*out = addr;
	return 0;
}

int sys_fork(struct guest *g, struct task *t, int cpu, struct task **child)
{
	struct gcpu *c = task_cpu(g, t);
	struct mm *src = t->mm, *dst;
	bool wp = false;
	int rc;

	cpu_kernel(g, c);
	rc = mm_create(g, c, &dst);
	if (rc)
		return rc;
	rc = vma_reserve(dst, src->nr_vmas);
	if (rc)
		goto fail;
	memcpy(dst->vmas, src->vmas, src->nr_vmas * sizeof(struct vma));
	dst->nr_vmas = src->nr_vmas;
	dst->brk_start = src->brk_start;
	dst->brk = src->brk;
	dst->autogrow = src->autogrow;
	for (unsigned i = 0; i < src->nr_vmas; i++) {
		rc = pt_copy_range(g, c, dst, src, &src->vmas[i]);
		if (rc < 0)
			goto fail;
		wp |= rc > 0;
	}
	if (wp) {
		/* The parent's writable entries became read-only: flush_tlb_mm(oldmm). */
		struct flush f = { .full = true };
		rc = flush_tlb_mm(g, c, src, &f);
		if (rc)
			goto fail;
	}
	*child = task_new(g, t, dst, cpu);
	if (!*child) {
		rc = -ENOMEM;
		goto fail;
	}
	t->live_children++;
	g->cnt.forks++;
	return 0;
fail:
	if (rc != -ENOMEM || guest_fatal(g))
		return rc;
	/* Out of memory part way: undo the child as exit would, and flush the parent, whose
	 * entries may have lost W before the failure. */
	{
		struct flush f = { .full = true };
		int rc2 = mm_put(g, c, dst);
		if (!rc2)
			rc2 = flush_tlb_mm(g, c, src, &f);
		return rc2 ? rc2 : rc;
	}
}

int sys_clone_thread(struct guest *g, struct task *t, int cpu, struct task **thread)
{
	struct task *n = task_new(g, t, t->mm, cpu);

	if (!n)
		return -ENOMEM;
	t->mm->users++;
	n->tgid = t->tgid;
	t->live_children++;
	*thread = n;
	return 0;
}

int sys_exec(struct guest *g, struct task *t)
{
	struct gcpu *c = task_cpu(g, t);
	struct mm *old = t->mm, *mm;
	int rc;

	cpu_kernel(g, c);
	rc = mm_create(g, c, &mm);
	if (rc)
		return rc;
	rc = mm_exec_layout(g, mm);
	if (rc) {
		int rc2 = mm_put(g, c, mm);
		return rc2 ? rc2 : rc;
	}
	t->mm = mm;
	rc = switch_mm(g, c, mm);
	if (rc)
		return rc;
	g->cnt.execs++;
	return mm_put(g, c, old);
}

/* kswapd's pass: age every live address space from vCPU 0. */
int kernel_age(struct guest *g, uint64_t *young)
{
	struct gcpu *c = &g->cpus[0];
	uint64_t stamp = ++g->next_mm_id;   /* unique per pass; mm ids and stamps never collide */
	int rc = 0;

	*young = 0;
	cpu_kernel(g, c);
	for (unsigned pid = 1; pid < g->nr_pids && !rc; pid++) {
		struct task *t = g->tasks[pid];
		uint64_t y;
		if (!t || t->state == T_DEAD || !t->mm || t->mm->age_stamp == stamp)
			continue;
		t->mm->age_stamp = stamp;
		rc = pt_age(g, c, t->mm, &y);
		if (!rc) {
			obs3(obs_of(g, NULL), OBS_YOUNG, (uint64_t)pid, y);
			*young += y;
		}
	}
	g->cnt.young += *young;
	return rc;
}

int kernel_khugepaged(struct guest *g)
{
	struct gcpu *c = &g->cpus[0];
	uint64_t stamp = ++g->next_mm_id;   /* each mm once a pass, however many tasks share it */
	int rc = 0;

	cpu_kernel(g, c);
	for (unsigned pid = 1; pid < g->nr_pids && !rc; pid++) {
		struct task *t = g->tasks[pid];
		struct mm *mm;

		if (!t || t->state == T_DEAD || !t->mm || t->mm->age_stamp == stamp)
			continue;
		mm = t->mm;
		mm->age_stamp = stamp;
		for (struct vma *v = mm->vmas; v < mm->vmas + mm->nr_vmas && !rc; v++) {
			if (!(v->flags & VMA_THP) || (v->flags & VMA_FILE) ||
			    !(v->prot & VMMU_PROT_READ))
				continue;
			for (uint64_t va = (v->start + SZ_2M - 1) & ~(SZ_2M - 1);
			     va + SZ_2M <= v->end && !rc; va += SZ_2M) {
				struct flush f = { .n = 0 };
				uint64_t pde_pa, pde;

				rc = pt_pde(g, c, mm, va, &pde_pa, &pde);
				if (rc || !gpte_present(pde) || gpte_huge(pde))
					continue;
				rc = pt_collapse(g, c, mm, v, va, pde_pa, pde, 511, &f);
				if (rc == 1)
					rc = flush_tlb_mm(g, c, mm, &f);
			}
		}
	}
	return rc < 0 ? rc : 0;
}

int sys_mmap(struct guest *g, struct task *t, uint64_t addr, uint64_t len, unsigned prot,
	     unsigned flags, uint64_t *out)
{
	struct gcpu *c = task_cpu(g, t);
	bool taken = kenter(g, c);
	int rc = sys_mmap_locked(g, t, addr, len, prot, flags, out);

	kleave(g, c, taken);
	return rc;
}

int sys_munmap(struct guest *g, struct task *t, uint64_t addr, uint64_t len)
{
	struct gcpu *c = task_cpu(g, t);
	bool taken = kenter(g, c);
	int rc = sys_munmap_locked(g, t, addr, len);

	kleave(g, c, taken);
	return rc;
}

int sys_mprotect(struct guest *g, struct task *t, uint64_t addr, uint64_t len, unsigned prot)
{
	struct gcpu *c = task_cpu(g, t);
	bool taken = kenter(g, c);
	int rc = sys_mprotect_locked(g, t, addr, len, prot);

	kleave(g, c, taken);
	return rc;
}
