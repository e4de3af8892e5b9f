/* SPDX-License-Identifier: MIT */
/*
 * Workloads over many processes: fork (fork, touch, exit in a loop, like a build), ctxsw
 * (processes switching round-robin) and clone-vms (several VMs booting the same image and data,
 * whose identical pages a host KSM can merge).
 * Each program's state is the task's prog; a child gets a copy of its parent's with its own phase.
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wl.h"


/* fork(2) with the child running @step on a copy of @prog set to @phase. 0, or -errno. */
static int fork_child(struct guest *g, struct task *t, step_fn step, const void *prog, size_t size,
		      int phase)
{
	struct task *ch;
	void *p = wl_dup(prog, size);
	int rc;

	if (!p)
		return -ENOMEM;
	*(int *)p = phase;   /* every program's state begins with its phase */
	rc = sys_fork(g, t, -1, &ch);
	if (rc) {
		free(p);
		return rc;
	}
	ch->step = step;
	ch->prog = p;
	return 0;
}

/* ---- fork ---- */

enum { FORK_ITERS, FORK_SIZE, FORK_DIRTY, FORK_JOBS, FORK_EXEC };

static const struct vmmu_workload_param fork_params[] = {
	{ "iters", VMMU_PARAM_UINT, "100", "children forked in all" },
	{ "size", VMMU_PARAM_SIZE, "8M", "the parent's anonymous memory, written before the first fork" },
	{ "dirty", VMMU_PARAM_UINT, "25", "percent of the parent's pages a child writes (copy on write); it reads the rest" },
	{ "jobs", VMMU_PARAM_UINT, "0", "children alive at once (0: one per vCPU)" },
	{ "exec", VMMU_PARAM_BOOL, "off", "each child execs the init image, then writes 64K of heap (fork+exec)" },
	{ NULL, 0, NULL, NULL },
};

enum { FP_MAP, FP_FILL, FP_FORK, FP_WAIT, FP_EXEC = 10, FP_HEAP, FP_COW = 20 };

struct fork_prog {
	int phase;                    /* FP_* */
	uint64_t size, base, npages, page, wpage;
	uint64_t iters, started;
	unsigned dirty, jobs;
	bool exec;
};

static int fork_step(struct guest *g, struct task *t)
{
	struct fork_prog *p = t->prog;
	struct wl_count *w = g->wl;
	uint64_t v;
	int rc;

	switch (p->phase) {
	case FP_MAP:
		rc = sys_mmap(g, t, 0, p->size, VMMU_PROT_READ | VMMU_PROT_WRITE, 0, &p->base);
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->phase = FP_FILL;
		return STEP_CONT;
	case FP_FILL: {
		uint64_t i = p->page++;
		if (p->page == p->npages) {
			p->phase = FP_FORK;
			p->page = 0;   /* where each child starts */
		}
		return wl_write(g, t, p->base + i * SZ_4K, 8, i);
	}
	case FP_FORK:
		if (p->started == p->iters) {
			p->phase = FP_WAIT;
			return STEP_CONT;
		}
		if (t->live_children >= p->jobs)
			return STEP_BLOCK;
		rc = fork_child(g, t, fork_step, p, sizeof(*p), p->exec ? FP_EXEC : FP_COW);
		if (rc == -ENOMEM && !guest_fatal(g) && t->live_children)
			return STEP_BLOCK;   /* out of memory for now: wait for a child to free some */
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->started++;
		/* The parent keeps working: a write that breaks copy-on-write on its side. */
		p->wpage = (p->wpage + 1) % p->npages;
		return wl_write(g, t, p->base + p->wpage * SZ_4K + 8, 8, p->started);
	case FP_WAIT:
		rc = wl_wait(g, t);
		return rc == STEP_BLOCK ? rc : wl_exit(g, t, 0);
	case FP_EXEC:
		rc = sys_exec(g, t);
		if (rc)
			return wl_sys_failed(g, t, rc);
		rc = sys_brk(g, t, 0, &p->base);
		if (!rc)
			rc = sys_brk(g, t, p->base + (64 << 10), &v);
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->page = 0;
		p->phase = FP_HEAP;
		return STEP_CONT;
	case FP_HEAP:
		if (p->page == 16) {
			w->done++;
			return wl_exit(g, t, 0);
		}
		p->page++;
		return wl_write(g, t, p->base + (p->page - 1) * SZ_4K, 8, p->page);
	default: /* FP_COW: the child */
		if (p->page == p->npages) {
			w->done++;
			return wl_exit(g, t, 0);
		}
		{
			uint64_t i = p->page++, va = p->base + i * SZ_4K;
			if ((i * p->dirty) % 100 < p->dirty)
				return wl_write(g, t, va, 8, i | ((uint64_t)t->pid << 32));
			return wl_read(g, t, va, 8, &v);
		}
	}
}

static int fork_check(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len)
{
	if (a->u[FORK_SIZE] < SZ_4K || a->u[FORK_DIRTY] > 100 || wl_threads(a->u[FORK_JOBS], vcpus) > 4096) {
		snprintf(err, len, "fork: size at least 4K, dirty 0..100, jobs at most 4096");
		return -EINVAL;
	}
	return 0;
}

static uint64_t fork_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	uint64_t size = a->u[FORK_SIZE], jobs = wl_threads(a->u[FORK_JOBS], vcpus);
	uint64_t child = a->u[FORK_EXEC] ? (64 << 10) + PROC_OVERHEAD :
					   size / 100 * a->u[FORK_DIRTY] + pt_overhead(size) + PROC_OVERHEAD;
	if (size > (1ULL << 46))
		return UINT64_MAX;
	return size + pt_overhead(size) + PROC_OVERHEAD + jobs * child;
}

static int fork_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct fork_prog p = {
		.phase = FP_MAP, .size = a->u[FORK_SIZE] & ~(SZ_4K - 1),
		.npages = a->u[FORK_SIZE] >> 12, .iters = a->u[FORK_ITERS],
		.dirty = (unsigned)a->u[FORK_DIRTY], .jobs = wl_threads(a->u[FORK_JOBS], g->nr_cpus),
		.exec = a->u[FORK_EXEC] != 0,
	};
	struct task *t;
	int rc = wl_start_count(g, p.iters);

	if (!rc)
		rc = wl_spawn(g, fork_step, wl_dup(&p, sizeof(p)), &t);
	return rc;
}

const struct wl_ops wl_fork = {
	.info = { "fork", "a parent forks children that touch its memory (copy on write) and exit, like a build",
		  fork_params, 1 },
	.check = fork_check,
	.need = fork_need,
	.start = fork_start,
};

/* ---- ctxsw ---- */

enum { CTX_PROCS, CTX_ROUNDS, CTX_WS };

static const struct vmmu_workload_param ctxsw_params[] = {
	{ "procs", VMMU_PARAM_UINT, "4", "processes, switching round-robin" },
	{ "rounds", VMMU_PARAM_UINT, "10000", "times each process touches its working set, then yields" },
	{ "ws", VMMU_PARAM_SIZE, "16K", "each process's working set (one write a page a round)" },
	{ NULL, 0, NULL, NULL },
};

enum { CP_FORK, CP_MAP, CP_TOUCH, CP_END };

struct ctx_prog {
	int phase;                    /* CP_* */
	uint64_t ws, base, page, npages, rounds, round;
	unsigned procs, forked;
	bool child;
};

static int ctxsw_step(struct guest *g, struct task *t)
{
	struct ctx_prog *p = t->prog;
	struct wl_count *w = g->wl;
	int rc;

	switch (p->phase) {
	case CP_FORK:
		if (p->forked + 1 >= p->procs) {
			p->phase = CP_MAP;
			return STEP_CONT;
		}
		p->forked++;
		p->child = true;   /* what the child's copy says */
		rc = fork_child(g, t, ctxsw_step, p, sizeof(*p), CP_MAP);
		p->child = false;
		return rc ? wl_sys_failed(g, t, rc) : STEP_CONT;
	case CP_MAP:
		rc = sys_mmap(g, t, 0, p->ws, VMMU_PROT_READ | VMMU_PROT_WRITE, 0, &p->base);
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->phase = CP_TOUCH;
		return STEP_CONT;
	case CP_TOUCH:
		rc = wl_write(g, t, p->base + p->page * SZ_4K, 8, p->round);
		if (rc)
			return rc;
		if (++p->page < p->npages)
			return STEP_CONT;
		p->page = 0;
		w->done++;
		if (++p->round == p->rounds)
			p->phase = CP_END;
		return STEP_YIELD;
	default:
		if (p->child)
			return wl_exit(g, t, 0);
		rc = wl_wait(g, t);
		return rc == STEP_BLOCK ? rc : wl_exit(g, t, 0);
	}
}

static int ctxsw_check(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len)
{
	if (!a->u[CTX_PROCS] || a->u[CTX_PROCS] > 4096 || !a->u[CTX_ROUNDS] || !a->u[CTX_WS]) {
		snprintf(err, len, "ctxsw: procs 1..4096, rounds and ws at least 1");
		return -EINVAL;
	}
	return 0;
}

static uint64_t ctxsw_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	uint64_t ws = a->u[CTX_WS];
	if (ws > (1ULL << 46))
		return UINT64_MAX;
	return a->u[CTX_PROCS] * (ws + SZ_2M + pt_overhead(ws) + PROC_OVERHEAD);
}

static int ctxsw_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct ctx_prog p = {
		.phase = CP_FORK, .ws = a->u[CTX_WS], .npages = (a->u[CTX_WS] + SZ_4K - 1) >> 12,
		.rounds = a->u[CTX_ROUNDS], .procs = (unsigned)a->u[CTX_PROCS],
	};
	struct task *t;
	int rc = wl_start_count(g, p.rounds * p.procs);

	if (!rc)
		rc = wl_spawn(g, ctxsw_step, wl_dup(&p, sizeof(p)), &t);
	return rc;
}

const struct wl_ops wl_ctxsw = {
	.info = { "ctxsw", "processes touch a working set and yield, round-robin (context switches)",
		  ctxsw_params, 1 },
	.check = ctxsw_check,
	.need = ctxsw_need,
	.start = ctxsw_start,
};

/* ---- clone-vms ---- */

enum { CV_SIZE, CV_PROCS, CV_DIRTY };

static const struct vmmu_workload_param clone_params[] = {
	{ "size", VMMU_PARAM_SIZE, "32M", "the data file every VM loads at boot (the same bytes in each)" },
	{ "procs", VMMU_PARAM_UINT, "2", "processes per VM, each mapping the whole file privately" },
	{ "dirty", VMMU_PARAM_UINT, "10", "percent of the file's pages each process writes (copy on write)" },
	{ NULL, 0, NULL, NULL },
};

enum { CV_FORK, CV_MAP, CV_READ, CV_END };

struct cv_prog {
	int phase;                    /* CV_* */
	uint64_t base, npages, page;
	unsigned procs, forked, dirty;
	bool child;
};

static int clone_step(struct guest *g, struct task *t)
{
	struct cv_prog *p = t->prog;
	struct wl_count *w = g->wl;
	int rc;

	switch (p->phase) {
	case CV_FORK:
		if (p->forked + 1 >= p->procs) {
			p->phase = CV_MAP;
			return STEP_CONT;
		}
		p->forked++;
		p->child = true;
		rc = fork_child(g, t, clone_step, p, sizeof(*p), CV_MAP);
		p->child = false;
		return rc ? wl_sys_failed(g, t, rc) : STEP_CONT;
	case CV_MAP:
		rc = sys_mmap_file(g, t, &g->data, VMMU_PROT_READ | VMMU_PROT_WRITE, &p->base);
		if (rc)
			return wl_sys_failed(g, t, rc);
		p->phase = CV_READ;
		return STEP_CONT;
	case CV_READ: {
		uint64_t i = p->page++, va = p->base + i * SZ_4K, v;
		if (p->page == p->npages)
			p->phase = CV_END;
		w->done++;
		rc = wl_read(g, t, va, 8, &v);
		if (rc || (i * p->dirty) % 100 >= p->dirty)
			return rc;
		return wl_write(g, t, va + 8, 8, v + (uint64_t)t->pid);
	}
	default:
		if (p->child)
			return wl_exit(g, t, 0);
		rc = wl_wait(g, t);
		return rc == STEP_BLOCK ? rc : wl_exit(g, t, 0);
	}
}

static int clone_check(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len)
{
	if (a->u[CV_SIZE] < SZ_4K || !a->u[CV_PROCS] || a->u[CV_PROCS] > 4096 || a->u[CV_DIRTY] > 100) {
		snprintf(err, len, "clone-vms: size at least 4K, procs 1..4096, dirty 0..100");
		return -EINVAL;
	}
	return 0;
}

static uint64_t clone_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	uint64_t size = a->u[CV_SIZE];
	if (size > (1ULL << 46))
		return UINT64_MAX;
	return a->u[CV_PROCS] * (size / 100 * a->u[CV_DIRTY] + pt_overhead(size) + PROC_OVERHEAD);
}

static uint64_t clone_data(const struct vmmu_workload_args *a)
{
	return a->u[CV_SIZE] > (1ULL << 46) ? (1ULL << 46) : (a->u[CV_SIZE] + SZ_4K - 1) & ~(SZ_4K - 1);
}

static int clone_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct cv_prog p = {
		.phase = CV_FORK, .npages = g->data.npages, .procs = (unsigned)a->u[CV_PROCS],
		.dirty = (unsigned)a->u[CV_DIRTY],
	};
	struct task *t;
	int rc = wl_start_count(g, p.npages * p.procs);

	if (!rc)
		rc = wl_spawn(g, clone_step, wl_dup(&p, sizeof(p)), &t);
	return rc;
}

const struct wl_ops wl_clone_vms = {
	.info = { "clone-vms", "several VMs boot the same image and data file and read it (pages for KSM to merge)",
		  clone_params, 2 },
	.check = clone_check,
	.need = clone_need,
	.data_bytes = clone_data,
	.start = clone_start,
};
