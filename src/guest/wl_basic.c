/* SPDX-License-Identifier: MIT */
/*
 * Workloads over one address space: touch (first touch, sequential), gups (random
 * read-modify-write over a table) and mmap (map, touch, unmap in a loop). Each runs one process
 * whose threads (one per vCPU by default) share its memory in slices, so flushes of one thread's
 * changes are shootdowns to the others' vCPUs.
 * Each program's state is the task's prog; the workload's shared counters are g->wl.
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wl.h"


/* ---- touch ---- */

enum { TOUCH_SIZE, TOUCH_STRIDE, TOUCH_PASSES, TOUCH_WRITE, TOUCH_THREADS };

static const struct vmmu_workload_param touch_params[] = {
	{ "size", VMMU_PARAM_SIZE, "64M", "bytes of one anonymous mapping, touched from the bottom up" },
	{ "stride", VMMU_PARAM_SIZE, "4K", "bytes from one touch to the next (4K: once a page)" },
	{ "passes", VMMU_PARAM_UINT, "1", "passes over the range (the first faults every page in)" },
	{ "write", VMMU_PARAM_BOOL, "on", "each touch writes 8 bytes (off: reads them)" },
	{ "threads", VMMU_PARAM_UINT, "0", "threads, each touching its slice (0: one per vCPU)" },
	{ NULL, 0, NULL, NULL },
};

struct touch_prog {
	int phase;                    /* 0 map and start threads, 1 touch, 2 wait */
	uint64_t size, stride, base;
	uint64_t first, i, end;       /* this thread's touch points [first, end); next is i */
	unsigned pass, passes, threads;
	bool write, main;
};

static void touch_slice(void *prog, unsigned k, unsigned n)
{
	struct touch_prog *p = prog;
	uint64_t points = (p->size + p->stride - 1) / p->stride;

	p->first = p->i = points * k / n;
	p->end = points * (k + 1) / n;
	p->main = k == 0;
	p->phase = 1;
}

static int touch_step(struct guest *g, struct task *t)
{
	struct touch_prog *p = t->prog;
	struct wl_count *w = g->wl;
	int rc;

	switch (p->phase) {
	case 0:
		return wl_map_and_start_threads(g, t, p->size, &p->base, p->threads, touch_step, p,
						sizeof(*p), touch_slice);
	case 1: {
		if (p->i == p->end) {
			if (++p->pass < p->passes) {
				p->i = p->first;
				return STEP_CONT;
			}
			if (!p->main)
				return wl_exit(g, t, 0);
			p->phase = 2;
			return STEP_CONT;
		}
		uint64_t off = p->i * p->stride, va = p->base + off, v;
		unsigned len = p->size - off < 8 ? (unsigned)(p->size - off) : 8;
		p->i++;
		wl_done(w);
		if (p->write)
			return wl_write(g, t, va, len, va ^ ((uint64_t)p->pass << 56));
		return wl_read(g, t, va, len, &v);
	}
	default:
		rc = wl_wait(g, t);
		return rc == STEP_BLOCK ? rc : wl_exit(g, t, 0);
	}
}

static int touch_check(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len)
{
	if (!a->u[TOUCH_SIZE] || !a->u[TOUCH_STRIDE] || !a->u[TOUCH_PASSES]) {
		snprintf(err, len, "touch: size, stride and passes must be at least 1");
		return -EINVAL;
	}
	if (wl_threads(a->u[TOUCH_THREADS], vcpus) > 4096) {
		snprintf(err, len, "touch: at most 4096 threads");
		return -EINVAL;
	}
	return 0;
}

static uint64_t touch_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	uint64_t size = a->u[TOUCH_SIZE];
	if (size > (1ULL << 46))
		return UINT64_MAX;
	return size + SZ_2M + pt_overhead(size) + PROC_OVERHEAD;
}

static int touch_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct touch_prog p = {
		.size = a->u[TOUCH_SIZE], .stride = a->u[TOUCH_STRIDE],
		.passes = (unsigned)a->u[TOUCH_PASSES], .write = a->u[TOUCH_WRITE] != 0,
		.threads = wl_threads(a->u[TOUCH_THREADS], g->nr_cpus),
	};
	struct task *t;
	int rc = wl_start_count(g, (p.size + p.stride - 1) / p.stride * p.passes);

	if (!rc)
		rc = wl_spawn(g, touch_step, wl_dup(&p, sizeof(p)), &t);
	return rc;
}

const struct wl_ops wl_touch = {
	.info = { "touch", "first touch of SIZE bytes, sequential, by one process's threads",
		  touch_params, 1 },
	.check = touch_check,
	.need = touch_need,
	.start = touch_start,
	.steps_unlocked = true,
};

/* ---- gups ---- */

enum { GUPS_SIZE, GUPS_UPDATES, GUPS_THREADS, GUPS_GUARD, GUPS_SLICE };

static const struct vmmu_workload_param gups_params[] = {
	{ "size", VMMU_PARAM_SIZE, "64M", "bytes of the table (8-byte words, demand-zero)" },
	{ "updates", VMMU_PARAM_UINT, "1000000", "read-modify-writes at random words, all threads together" },
	{ "threads", VMMU_PARAM_UINT, "0", "threads sharing the table (0: one per vCPU)" },
	{ "guard", VMMU_PARAM_BOOL, "off", "before the updates, each 2M of the table is written once and one page of it made read-only and writable again (a guard page, as JITs and GCs do): guest huge pages split into 4K mappings" },
	{ "slice", VMMU_PARAM_BOOL, "off", "each thread updates only its own slice of the table (disjoint data: the same digest threaded and interleaved)" },
	{ NULL, 0, NULL, NULL },
};

struct gups_prog {
	int phase;                    /* 0 map and start threads, 1 update, 2 wait; guard: 3 write,
				       * 4 read-only, 5 writable again (each 2M), then threads */
	uint64_t size, base, updates, left, goff;
	uint64_t lo, words;           /* the words it updates: [lo, lo + words) */
	unsigned threads;
	bool main, guard, slice;
};

static void gups_slice(void *prog, unsigned k, unsigned n)
{
	struct gups_prog *p = prog;

	p->left = p->updates * (k + 1) / n - p->updates * k / n;
	p->main = k == 0;
	p->phase = 1;
	p->lo = p->slice ? p->size / 8 * k / n : 0;
	p->words = p->slice ? p->size / 8 * (k + 1) / n - p->lo : p->size / 8;
}

static int gups_step(struct guest *g, struct task *t)
{
	struct gups_prog *p = t->prog;
	struct wl_count *w = g->wl;
	int rc;

	switch (p->phase) {
	case 0:
		if (!p->guard)
			return wl_map_and_start_threads(g, t, p->size, &p->base, p->threads,
							gups_step, p, sizeof(*p), gups_slice);
		rc = sys_mmap(g, t, 0, p->size, VMMU_PROT_READ | VMMU_PROT_WRITE, 0, &p->base);
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->phase = 3;
		return STEP_CONT;
	case 3:
		if (p->goff >= p->size) {
			gups_slice(p, 0, p->threads);
			rc = wl_start_threads(g, t, p->threads, gups_step, p, sizeof(*p), gups_slice);
			return rc ? wl_sys_failed(g, t, rc) : STEP_CONT;
		}
		p->phase = 4;
		return wl_write(g, t, p->base + p->goff, 8, 0);
	case 4:
	case 5:
		rc = sys_mprotect(g, t, p->base + p->goff, SZ_4K, p->phase == 4 ? VMMU_PROT_READ :
				  VMMU_PROT_READ | VMMU_PROT_WRITE);
		if (rc)
			return wl_sys_failed(g, t, rc);
		if (p->phase++ == 5) {
			p->goff += SZ_2M;
			p->phase = 3;
		}
		return STEP_CONT;
	case 1: {
		if (!p->left) {
			if (!p->main)
				return wl_exit(g, t, 0);
			p->phase = 2;
			return STEP_CONT;
		}
		uint64_t r = wl_rand(t), v, va;
		if (!p->words) {
			p->left = 0;   /* more threads than words: this one's slice is empty */
			return STEP_CONT;
		}
		va = p->base + (p->lo + r % p->words) * 8;
		p->left--;
		wl_done(w);
		rc = wl_read(g, t, va, 8, &v);
		if (rc)
			return rc;
		return wl_write(g, t, va, 8, v ^ r);
	}
	default:
		rc = wl_wait(g, t);
		return rc == STEP_BLOCK ? rc : wl_exit(g, t, 0);
	}
}

static int gups_check(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len)
{
	if (a->u[GUPS_SIZE] < 8) {
		snprintf(err, len, "gups: size must be at least 8 bytes");
		return -EINVAL;
	}
	if (wl_threads(a->u[GUPS_THREADS], vcpus) > 4096) {
		snprintf(err, len, "gups: at most 4096 threads");
		return -EINVAL;
	}
	return 0;
}

static uint64_t gups_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	uint64_t size = a->u[GUPS_SIZE];
	if (size > (1ULL << 46))
		return UINT64_MAX;
	return size + SZ_2M + pt_overhead(size) + PROC_OVERHEAD;
}

static int gups_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct gups_prog p = {
		.size = a->u[GUPS_SIZE] & ~7ULL, .updates = a->u[GUPS_UPDATES],
		.threads = wl_threads(a->u[GUPS_THREADS], g->nr_cpus), .guard = a->u[GUPS_GUARD],
		.slice = a->u[GUPS_SLICE] != 0,
	};
	struct task *t;
	int rc = wl_start_count(g, p.updates);

	if (!rc)
		rc = wl_spawn(g, gups_step, wl_dup(&p, sizeof(p)), &t);
	return rc;
}

const struct wl_ops wl_gups = {
	.info = { "gups", "random read-modify-write of 8-byte words over a table (HPCC RandomAccess)",
		  gups_params, 1 },
	.check = gups_check,
	.need = gups_need,
	.start = gups_start,
	.steps_unlocked = true,
};

/* ---- mmap ---- */

enum { MMAP_ITERS, MMAP_SIZE, MMAP_STRIDE, MMAP_THREADS, MMAP_SLICE, MMAP_VERIFY };

static const struct vmmu_workload_param mmap_params[] = {
	{ "iters", VMMU_PARAM_UINT, "1000", "map, touch, unmap rounds of each thread" },
	{ "size", VMMU_PARAM_SIZE, "1M", "bytes of each mapping" },
	{ "stride", VMMU_PARAM_SIZE, "4K", "bytes from one touch to the next" },
	{ "threads", VMMU_PARAM_UINT, "0", "threads of the process, each with its own loop (0: one per vCPU)" },
	{ "slice", VMMU_PARAM_BOOL, "off", "each thread asks for its mappings at its own address (a hint, as mmap(addr) takes it), so where they land does not depend on the order the threads ran (the same digest threaded and interleaved)" },
	{ "verify", VMMU_PARAM_BOOL, "off", "read each word back before the unmap; a wrong value ends the thread with status 3 (a stale translation: with more threads than vCPUs they move between vCPUs, so a TLB shootdown missed by one shows here)" },
	{ NULL, 0, NULL, NULL },
};

struct mmap_prog {
	int phase;                    /* 0 start threads, 1 map, 2 touch, 3 unmap, 4 wait, 5 verify */
	uint64_t size, stride, base, off, voff;
	uint64_t iters, iter;
	uint64_t hint;                /* slice: where it asks for its mappings (0: anywhere) */
	unsigned threads;
	bool main, slice, verify;
};

/* slice=on: thread k's window, far below the stack and above the heap's usual reach. */
#define MMAP_SLICE_BASE 0x100000000000ULL

static void mmap_slice(void *prog, unsigned k, unsigned n)
{
	struct mmap_prog *p = prog;

	p->main = k == 0;
	p->phase = 1;
	p->hint = p->slice ? MMAP_SLICE_BASE + k * ((p->size + 2 * SZ_2M - 1) & ~(SZ_2M - 1)) : 0;
}

static int mmap_step(struct guest *g, struct task *t)
{
	struct mmap_prog *p = t->prog;
	struct wl_count *w = g->wl;
	int rc;

	switch (p->phase) {
	case 0:
		mmap_slice(p, 0, p->threads);
		rc = wl_start_threads(g, t, p->threads, mmap_step, p, sizeof(*p), mmap_slice);
		return rc ? wl_sys_failed(g, t, rc) : STEP_CONT;
	case 1:
		if (p->iter == p->iters) {
			if (!p->main)
				return wl_exit(g, t, 0);
			p->phase = 4;
			return STEP_CONT;
		}
		rc = sys_mmap(g, t, p->hint, p->size, VMMU_PROT_READ | VMMU_PROT_WRITE, 0, &p->base);
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->off = 0;
		p->phase = 2;
		return STEP_CONT;
	case 2: {
		uint64_t va = p->base + p->off;
		unsigned len = p->size - p->off < 8 ? (unsigned)(p->size - p->off) : 8;
		p->off += p->stride;
		if (p->off >= p->size) {
			p->phase = p->verify ? 5 : 3;
			p->voff = 0;
		}
		wl_done(w);
		return wl_write(g, t, va, len, va ^ p->iter);
	}
	case 5: {
		uint64_t va = p->base + p->voff, v = 0, want = va ^ p->iter;
		unsigned len = p->size - p->voff < 8 ? (unsigned)(p->size - p->voff) : 8;
		p->voff += p->stride;
		if (p->voff >= p->size)
			p->phase = 3;
		rc = wl_read(g, t, va, len, &v);
		if (rc)
			return rc;
		if (len < 8)
			want &= (1ULL << (8 * len)) - 1;
		return v == want ? STEP_CONT : wl_exit(g, t, 3);
	}
	case 3:
		rc = sys_munmap(g, t, p->base, p->size);
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->iter++;
		p->phase = 1;
		return STEP_CONT;
	default:
		rc = wl_wait(g, t);
		return rc == STEP_BLOCK ? rc : wl_exit(g, t, 0);
	}
}

static int mmap_check(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len)
{
	if (!a->u[MMAP_SIZE] || !a->u[MMAP_STRIDE]) {
		snprintf(err, len, "mmap: size and stride must be at least 1");
		return -EINVAL;
	}
	if (wl_threads(a->u[MMAP_THREADS], vcpus) > 4096) {
		snprintf(err, len, "mmap: at most 4096 threads");
		return -EINVAL;
	}
	return 0;
}

static uint64_t mmap_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	uint64_t size = a->u[MMAP_SIZE], n = wl_threads(a->u[MMAP_THREADS], vcpus);
	if (size > (1ULL << 46))
		return UINT64_MAX;
	return n * (size + SZ_2M + pt_overhead(size)) + PROC_OVERHEAD;
}

static int mmap_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct mmap_prog p = {
		.size = a->u[MMAP_SIZE], .stride = a->u[MMAP_STRIDE], .iters = a->u[MMAP_ITERS],
		.threads = wl_threads(a->u[MMAP_THREADS], g->nr_cpus), .slice = a->u[MMAP_SLICE] != 0,
		.verify = a->u[MMAP_VERIFY] != 0,
	};
	struct task *t;
	uint64_t per = (p.size + p.stride - 1) / p.stride;
	int rc = wl_start_count(g, per * p.iters * p.threads);

	if (!rc)
		rc = wl_spawn(g, mmap_step, wl_dup(&p, sizeof(p)), &t);
	return rc;
}

const struct wl_ops wl_mmap = {
	.info = { "mmap", "map, touch and unmap anonymous memory in a loop, in each thread",
		  mmap_params, 1 },
	.check = mmap_check,
	.need = mmap_need,
	.start = mmap_start,
	.steps_unlocked = true,
};
