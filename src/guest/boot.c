/* SPDX-License-Identifier: MIT */
/*
 * Booting a guest and taking its picture: the VM and its RAM (one memslot at gpa 0), the vCPUs in
 * 64-bit mode, the frame allocator, the kernel's boot tables (a direct map of all RAM with 1G and
 * 2M pages where aligned, as Linux's kernel_physical_mapping_init; the device's ioremap page), the
 * zero page and the page cache (the init image, an optional data file). This is the only code,
 * with the final digest, that writes guest memory from the VMM's side (vmmu_write_guest): it is
 * the loading of the initial image, as firmware and a boot loader would.
 *
 * Then the kernel's first acts run on vCPU 0 through the MMU: read the device's ID register and
 * read back the image through the direct map, so a broken boot fails here with a reason.
 *
 * The digest (guest_digest) hashes, after the observation stream: every task's final state and
 * VMAs, the device, and every frame the allocator ever handed out (frames never handed out were
 * never written, so they are zero by construction: that is all of guest RAM, without touching
 * host memory for the untouched part).
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "guest.h"

uint64_t vmmu_guest_image_word(uint64_t off)
{
	uint64_t s = 0x696d616765ULL + (off >> 3);   /* "image" */
	return splitmix64(&s) | 1;                    /* never zero, so a zero page tells itself apart */
}

int guest_fail(struct guest *g, int rc, const char *fmt, ...)
{
	/* The first caller writes the reason, then publishes the error; vCPU threads may fail at
	 * once (one with the kernel lock, one in user mode). */
	if (!__atomic_exchange_n(&g->fail_claimed, 1, __ATOMIC_ACQ_REL)) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(g->why, sizeof(g->why), fmt, ap);
		va_end(ap);
		__atomic_store_n(&g->fatal, rc ? rc : -EIO, __ATOMIC_RELEASE);
	}
	return rc;
}

static int boot_put(struct guest *g, uint64_t pa, uint64_t v)
{
	return vmmu_write_guest(g->vm, pa, &v, 8);
}

/* A boot-time page, zero (fresh guest RAM is zero). */
static int boot_page(struct guest *g, uint8_t flags, uint64_t *pa)
{
	uint32_t pfn = frames_alloc(&g->fr, 0);

	if (pfn == FRAME_NONE)
		return -ENOMEM;
	g->fr.f[pfn].flags |= flags | F_KERNEL;
	*pa = (uint64_t)pfn << 12;
	return 0;
}

/* The table at entry @idx of table @parent (made if absent), as a boot-time page. */
static int boot_table_at(struct guest *g, uint64_t parent, unsigned idx, uint64_t *pa)
{
	uint64_t e;
	int rc = vmmu_read_guest(g->vm, parent + idx * 8, &e, 8);

	if (rc)
		return rc;
	if (e & GPTE_P) {
		*pa = gpte_addr(e);
		return 0;
	}
	rc = boot_page(g, F_PTABLE, pa);
	return rc ? rc : boot_put(g, parent + idx * 8, *pa | GPTE_TABLE_KERNEL);
}

/* The direct map: gpa [0, mem) at DIRECT_MAP_BASE, the largest page each aligned piece allows. */
static int boot_direct_map(struct guest *g)
{
	uint64_t root = g->init_mm.root, pdpt, pd = 0, pt = 0;
	int rc = boot_table_at(g, root, pt_index(DIRECT_MAP_BASE, 4), &pdpt);

	for (uint64_t pa = 0; !rc && pa < g->mem_bytes;) {
		uint64_t va = dm(pa);
		if (!(pa & (SZ_1G - 1)) && pa + SZ_1G <= g->mem_bytes) {
			rc = boot_put(g, pdpt + pt_index(va, 3) * 8, pa | GPTE_KERNEL_DATA | GPTE_PS);
			pa += SZ_1G;
		} else if (!(pa & (SZ_2M - 1)) && pa + SZ_2M <= g->mem_bytes) {
			rc = boot_table_at(g, pdpt, pt_index(va, 3), &pd);
			if (!rc)
				rc = boot_put(g, pd + pt_index(va, 2) * 8, pa | GPTE_KERNEL_DATA | GPTE_PS);
			pa += SZ_2M;
		} else {
			rc = boot_table_at(g, pdpt, pt_index(va, 3), &pd);
			if (!rc)
				rc = boot_table_at(g, pd, pt_index(va, 2), &pt);
			if (!rc)
				rc = boot_put(g, pt + pt_index(va, 1) * 8, pa | GPTE_KERNEL_DATA);
			pa += SZ_4K;
		}
	}
	return rc;
}

static int boot_ioremap(struct guest *g)
{
	uint64_t pdpt, pd, pt, va = IOREMAP_BASE;
	int rc = boot_table_at(g, g->init_mm.root, pt_index(va, 4), &pdpt);

	if (!rc)
		rc = boot_table_at(g, pdpt, pt_index(va, 3), &pd);
	if (!rc)
		rc = boot_table_at(g, pd, pt_index(va, 2), &pt);
	if (!rc)
		rc = boot_put(g, pt + pt_index(va, 1) * 8, DEV_GPA | GPTE_KERNEL_IO);
	return rc;
}

/* Load a file of @npages into the page cache; word w of page p is @word(arg, p * 512 + w). */
static int boot_file(struct guest *g, struct gfile *f, uint64_t npages,
		     uint64_t (*word)(uint64_t arg, uint64_t idx), uint64_t arg)
{
	uint64_t buf[512];

	f->npages = npages;
	if (!npages)
		return 0;
	f->frames = calloc(npages, sizeof(*f->frames));
	if (!f->frames)
		return -ENOMEM;
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t pa;
		int rc = boot_page(g, F_PCACHE, &pa);
		if (rc)
			return rc;
		g->fr.f[pa >> 12].ref = 1;   /* the file's own reference */
		f->frames[p] = (uint32_t)(pa >> 12);
		for (unsigned w = 0; w < 512; w++)
			buf[w] = word(arg, p * 512 + w);
		rc = vmmu_write_guest(g->vm, pa, buf, sizeof(buf));
		if (rc)
			return rc;
	}
	return 0;
}

static uint64_t image_word(uint64_t arg, uint64_t idx)
{
	return vmmu_guest_image_word(idx * 8);
}

static uint64_t data_word(uint64_t seed, uint64_t idx)
{
	uint64_t s = seed ^ (idx * 0x9e3779b97f4a7c15ULL);
	return splitmix64(&s);
}

static int boot_vcpus(struct guest *g)
{
	struct vmmu_regs r = {
		.cr0 = GCR0_PE | GCR0_MP | GCR0_ET | GCR0_NE | GCR0_WP | GCR0_AM | GCR0_PG,
		.cr3 = g->init_mm.root,
		.cr4 = GCR4_PAE | GCR4_PGE | GCR4_SMEP | GCR4_SMAP | (g->pcid ? GCR4_PCIDE : 0),
		.efer = GEFER_SCE | GEFER_LME | GEFER_LMA | GEFER_NXE,
		.cpl = 0,
	};

	for (unsigned i = 0; i < g->nr_cpus; i++) {
		struct gcpu *c = &g->cpus[i];
		int rc = vmmu_vcpu_create(g->vm, i, &c->v);
		if (!rc)
			rc = vmmu_vcpu_set_regs(c->v, &r);
		if (rc)
			return guest_fail(g, rc, "vCPU %u: %s", i, strerror(-rc));
		c->id = i;
		c->cpl = 0;
		c->loaded = &g->init_mm;
		c->cr3 = g->init_mm.root;
		g->init_mm.loaded_on |= 1ULL << i;
	}
	return 0;
}

/* The kernel's first acts, on vCPU 0 through the MMU. */
static int boot_selfcheck(struct guest *g)
{
	struct gcpu *c = &g->cpus[0];
	uint64_t id = 0, w = 0;
	int rc = kmmio(g, c, DEV_REG_ID, false, &id);

	if (rc)
		return rc;
	if (id != DEV_ID)
		return guest_fail(g, -EIO, "boot: the device answers %#" PRIx64 " to its ID register", id);
	rc = kload64(g, c, (uint64_t)g->image.frames[0] << 12, &w);
	if (rc)
		return rc;
	if (w != vmmu_guest_image_word(0))
		return guest_fail(g, -EIO, "boot: the direct map reads %#" PRIx64 " where the image has %#" PRIx64,
				  w, vmmu_guest_image_word(0));
	return 0;
}

int guest_boot(const struct vmmu_guest_config *cfg, uint64_t data_bytes, uint64_t data_seed,
	       struct vmmu_machine *m, struct guest **out)
{
	struct vmmu_vm_config vc = cfg->vm;
	struct vmmu_userspace_memory_region slot = { .slot = 0 };
	struct guest *g;
	uint64_t hva;
	int rc;

	*out = NULL;
	if (cfg->mem_bytes < VMMU_GUEST_MIN_MEM || cfg->mem_bytes > VMMU_GUEST_MAX_MEM ||
	    (cfg->mem_bytes & (SZ_4K - 1)) || cfg->vcpus > VMMU_GUEST_MAX_VCPUS)
		return -EINVAL;
	/* Aligned as its cache-line members are (calloc gives 16 bytes). */
	g = aligned_alloc(_Alignof(struct guest), (sizeof(*g) + 63) & ~(size_t)63);
	if (g)
		memset(g, 0, sizeof(*g));
	if (!g)
		return -ENOMEM;
	*out = g;
	g->mem_bytes = cfg->mem_bytes;
	g->nr_cpus = cfg->vcpus ? cfg->vcpus : 1;
	g->thp = cfg->guest_thp;
	g->huge1g = cfg->guest_1g;
	g->pcid = !cfg->no_pcid;
	g->seed = cfg->seed;
	g->nr_pids = 1;   /* pid 0 is nobody */
	g->per_task = g->nr_cpus > 1;
	for (unsigned i = 0; i < g->nr_cpus; i++)
		g->cpus[i].spare = FRAME_NONE;
	g->init_mm.users = 1;
	g->init_mm.pt_pages = 1;
	rc = obs_init(&g->obs, cfg->seed);
	if (rc)
		return rc;
	/* The host's frames back guest RAM plus the VMM's own tables; an arena is reserved
	 * address space, so err on the large side. */
	if (!vc.host_mem_bytes)
		vc.host_mem_bytes = g->mem_bytes > (30ULL << 30) ? 2 * g->mem_bytes : 64ULL << 30;
	rc = m ? vmmu_vm_create_on(m, &vc, &g->vm) : vmmu_vm_create(&vc, &g->vm);
	if (rc) {
		g->vm = NULL;
		return guest_fail(g, rc, "vmmu_vm_create: %s", strerror(-rc));
	}
	/* Guest RAM is madvise(MADV_HUGEPAGE)'d when host THP is on, as QEMU does. */
	rc = vmmu_vm_mmap(g->vm, g->mem_bytes, cfg->vm.thp != 0, &hva);
	if (rc)
		return guest_fail(g, rc, "vmmu_vm_mmap(%" PRIu64 "): %s", g->mem_bytes, strerror(-rc));
	slot.memory_size = g->mem_bytes;
	slot.userspace_addr = hva;
	rc = vmmu_set_user_memory_region(g->vm, &slot);
	if (rc)
		return guest_fail(g, rc, "vmmu_set_user_memory_region: %s", strerror(-rc));
	g->ram = slot;
	rc = frames_init(&g->fr, g->mem_bytes >> 12);
	if (rc)
		return guest_fail(g, rc, "frame allocator: %s", strerror(-rc));

	rc = boot_page(g, F_PTABLE, &g->init_mm.root);
	if (!rc)
		rc = boot_direct_map(g);
	if (!rc)
		rc = boot_ioremap(g);
	if (!rc)
		rc = vmmu_read_guest(g->vm, g->init_mm.root, g->pml4_kernel, sizeof(g->pml4_kernel));
	if (!rc) {
		uint64_t pa = 0;
		rc = boot_page(g, F_ZERO, &pa);
		g->zero_pfn = (uint32_t)(pa >> 12);
	}
	if (!rc)
		rc = boot_file(g, &g->image, VMMU_GUEST_TEXT_PAGES + VMMU_GUEST_DATA_PAGES, image_word, 0);
	if (!rc)
		rc = boot_file(g, &g->data, (data_bytes + SZ_4K - 1) >> 12, data_word, data_seed);
	if (rc)
		return guest_fail(g, rc, "boot: %s (guest RAM %" PRIu64 " bytes)", strerror(-rc), g->mem_bytes);
	for (unsigned i = 0; i < KERNEL_HALF; i++)
		g->pml4_kernel[i] = 0;
	g->init_mm.id = ++g->next_mm_id;
	rc = boot_vcpus(g);
	if (!rc)
		rc = boot_selfcheck(g);
	return rc;
}

void guest_free(struct guest *g)
{
	if (!g)
		return;
	for (unsigned pid = 1; pid < g->nr_pids; pid++) {
		struct task *t = g->tasks[pid];
		if (!t)
			continue;
		/* Live tasks at teardown: their memory goes with the VM; free the bookkeeping. An
		 * mm shared by threads is freed by its last one. */
		if (t->mm && !--t->mm->users) {
			free(t->mm->vmas);
			free(t->mm);
		}
		if (t->state != T_DEAD)
			task_free(t);
	}
	while (g->dead) {
		struct task *t = g->dead;
		g->dead = t->rq_next;
		task_free(t);
	}
	if (g->wl_free)
		g->wl_free(g->wl);
	else
		free(g->wl);
	free(g->tasks);
	free(g->tombs);
	free(g->image.frames);
	free(g->data.frames);
	frames_destroy(&g->fr);
	obs_destroy(&g->obs);
	if (g->vm)
		vmmu_vm_destroy(g->vm);
	free(g);
}

/* @t is the live task of lowest pid on its mm. */
static bool first_user(struct guest *g, const struct task *t)
{
	for (int pid = 1; pid < t->pid; pid++) {
		const struct task *x = g->tasks[pid];
		if (x && x->state != T_DEAD && x->mm == t->mm)
			return false;
	}
	return true;
}

void guest_counters_sum(const struct guest *g, struct guest_counters *sum)
{
	/* The vCPUs' own counts (accesses, switches, flushes: see gcpu.cnt) are all sums. */
	_Static_assert(sizeof(*sum) % sizeof(uint64_t) == 0, "counters are 64-bit words");
	*sum = g->cnt;
	for (unsigned i = 0; i < g->nr_cpus; i++)
		for (size_t w = 0; w < sizeof(*sum) / sizeof(uint64_t); w++)
			((uint64_t *)sum)[w] += ((const uint64_t *)&g->cpus[i].cnt)[w];
}

int guest_digest(struct guest *g, uint64_t *out)
{
	XXH64_state_t *s;
	uint64_t w[4];
	uint8_t page[4096];
	int rc = 0;

	uint64_t mem = g->mem_sum;

	obs_flush_slow(&g->obs);
	s = XXH64_createState();
	if (!s)
		return -ENOMEM;
	XXH64_copyState(s, g->obs.state);
	for (unsigned pid = 1; pid < g->nr_pids; pid++) {
		struct task *t = g->tasks[pid];
		if (t && t->state != T_DEAD) {
			w[0] = OBS_TASK | ((uint64_t)t->state << 8);
			w[1] = pid;
			w[2] = g->per_task ? 0 : t->mm->root;   /* a gpa: frame order (see below) */
			w[3] = t->mm->brk;
			XXH64_update(s, w, sizeof(w));
			if (t->obs) {
				/* Its stream so far, and (once per mm) its memory. */
				XXH64_state_t *ts = XXH64_createState();
				if (!ts) {
					XXH64_freeState(s);
					return -ENOMEM;
				}
				obs_flush_slow(t->obs);
				XXH64_copyState(ts, t->obs->state);
				w[0] = XXH64_digest(ts);
				XXH64_freeState(ts);
				XXH64_update(s, w, sizeof(w[0]));
				if (first_user(g, t))
					rc = mm_memory_sum(g, t->mm, &mem);
			}
			for (unsigned i = 0; i < t->mm->nr_vmas; i++) {
				const struct vma *v = &t->mm->vmas[i];
				w[0] = OBS_VMA;
				w[1] = v->start;
				w[2] = v->end;
				w[3] = v->prot | (v->flags << 8) | (v->pgoff << 16);
				XXH64_update(s, w, sizeof(w));
			}
		} else {
			const struct tomb *tb = &g->tombs[pid];
			w[0] = OBS_TASK | ((uint64_t)tb->state << 8) | ((uint64_t)tb->signal << 16) |
			       ((uint64_t)tb->fault_ec << 32);
			w[1] = pid;
			w[2] = (uint64_t)(uint32_t)tb->exit_code;
			w[3] = tb->fault_addr;
			XXH64_update(s, w, sizeof(w));
			if (g->per_task)
				XXH64_update(s, &tb->obs, sizeof(tb->obs));
		}
	}
	w[0] = OBS_END;
	w[1] = g->per_task ? 0 : g->dev.clock;      /* per task: the order of the vCPUs' */
	w[2] = g->per_task ? mem : g->dev.checksum; /* reads and writes is not the guest's */
	w[3] = g->fr.free;
	XXH64_update(s, w, sizeof(w));
	for (uint64_t pfn = 0; pfn < g->fr.hwm && !rc && !g->per_task; pfn++) {
		if (!(g->fr.f[pfn].flags & F_EVER))
			continue;
		rc = vmmu_read_guest(g->vm, pfn << 12, page, sizeof(page));
		XXH64_update(s, &pfn, sizeof(pfn));
		XXH64_update(s, page, sizeof(page));
	}
	*out = XXH64_digest(s);
	XXH64_freeState(s);
	return rc;
}

void guest_counters(struct guest *g, struct vmmu_guest_result *res)
{
	struct guest_counters sum;
	const struct guest_counters *k = &sum;

	guest_counters_sum(g, &sum);

	res->user_accesses += k->user_accesses;
	res->kernel_accesses += k->kernel_accesses;
	res->accesses += k->user_accesses + k->kernel_accesses;
	res->page_faults += k->page_faults;
	res->kills += k->kills;
	res->forks += k->forks;
	res->execs += k->execs;
	res->exits += k->exits;
	res->ctx_switches += k->ctx_switches;
	res->tlb_shootdowns += k->shootdowns;
	res->tlb_flushes += k->tlb_flushes;
	res->invlpgs += k->invlpgs;
	res->cow_copies += k->cow_copies;
	res->zero_fills += k->zero_fills;
	res->thp_allocs += k->thp_allocs;
	res->thp_splits += k->thp_splits;
	res->thp_collapses += k->thp_collapses;
	res->huge_1g_pages += k->huge_1g;
	res->young_pages += k->young;
	res->mmio_accesses += k->mmio;
	res->trace_records += k->trace_records;
	res->trace_skipped += k->trace_skipped;
	if (k->dirty_rounds)
		res->dirty_min_round = res->dirty_rounds && res->dirty_min_round < k->dirty_min ?
				       res->dirty_min_round : k->dirty_min;
	res->dirty_rounds += k->dirty_rounds;
	res->dirty_pages += k->dirty_pages;
	res->dirty_written += k->dirty_written;
	res->audits += k->audits;
}
