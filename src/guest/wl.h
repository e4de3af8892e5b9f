/* SPDX-License-Identifier: MIT */
/*
 * guest/ workloads: what each one provides to the run driver (workload.c), and the helpers their
 * programs share. A workload's programs are step functions (struct task.step): one step does one
 * user access or one system call, so the scheduler can interleave vCPUs at any step.
 * Locking: none (see guest.h).
 */
#ifndef VMMU_GUEST_WL_H
#define VMMU_GUEST_WL_H

#include <stddef.h>
#include <stdint.h>

#include "guest.h"

struct wl_ops {
	struct vmmu_workload_info info;
	/* Checks between parameters (and against the vCPUs): 0, or -EINVAL with a reason. */
	int (*check)(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len);
	/* Guest RAM the workload needs, its page-cache data file excluded. */
	uint64_t (*need)(const struct vmmu_workload_args *a, unsigned vcpus);
	/* Bytes of the data file loaded into the page cache at boot (NULL: none). */
	uint64_t (*data_bytes)(const struct vmmu_workload_args *a);
	/* Create the first task(s) of a booted guest. 0 or -errno with a reason. */
	int (*start)(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len);
	/* Its steps reach kernel state only through the system-call layer (sys_mmap, sys_munmap,
	 * sys_mprotect, wl_start_threads, uaccess, task_exit, wl_wait) and their own task's
	 * program: a threaded run runs them without the kernel lock. */
	bool steps_unlocked;
};

extern const struct wl_ops wl_touch, wl_gups, wl_mmap, wl_fork, wl_ctxsw, wl_clone_vms, wl_trace,
	wl_migrate;

/* Pages of page tables for @bytes mapped with 4K pages, with room for the upper levels. */
static inline uint64_t pt_overhead(uint64_t bytes)
{
	return bytes / 512 + bytes / (512 * 512) + (64ULL << 10);
}

#define PROC_OVERHEAD (256ULL << 10)   /* a process: root, tables, stack and data pages */

static inline uint64_t wl_rand(struct task *t)
{
	return splitmix64(&t->rng);
}

static inline unsigned wl_threads(uint64_t param, unsigned vcpus)
{
	return param ? (unsigned)param : vcpus;
}

/* A new process running a program: the init image, then @step with @prog (malloc'd). */
int wl_spawn(struct guest *g, step_fn step, void *prog, struct task **out);
/* User accesses, returning STEP_DEAD for a killed task, a negative errno for a fatal error, or
 * STEP_CONT. */
int wl_read(struct guest *g, struct task *t, uint64_t va, unsigned len, uint64_t *val);
int wl_write(struct guest *g, struct task *t, uint64_t va, unsigned len, uint64_t val);
/* exit(code) from a step: returns STEP_DEAD, or a negative errno. */
int wl_exit(struct guest *g, struct task *t, int code);
/* Wait for every child: STEP_BLOCK while some live, else STEP_CONT. */
int wl_wait(struct guest *g, struct task *t);
/* Progress of a workload counted in units of work: g->wl points at one of these. */
struct wl_count {
	uint64_t done, total;   /* done: atomic (threads of steps_unlocked workloads bump it) */
};
/* One unit done. The count is progress only: a thread adds its units 64 at a time, so vCPU
 * threads do not meet on the counter's line at every step (up to 63 a thread go uncounted). */
static inline void wl_done(struct wl_count *w)
{
	static __thread unsigned pending;

	if (++pending == 64) {
		__atomic_fetch_add(&w->done, 64, __ATOMIC_RELAXED);
		pending = 0;
	}
}
/* Make g->wl a struct wl_count of @total units and report progress from it. 0 or -ENOMEM. */
int wl_start_count(struct guest *g, uint64_t total);
/* A system call failed: a fatal guest error stops the run, anything else ends the task (exit
 * code 12 for ENOMEM, else 1). */
int wl_sys_failed(struct guest *g, struct task *t, int rc);
/* A copy of @size bytes of @src (a program's state), NULL when out of memory. */
void *wl_dup(const void *src, size_t size);
/* Start @n - 1 threads of @t running @step, each with a copy of @prog whose slice @slice()
 * sets; the caller keeps slice 0. 0 or -errno. */
int wl_start_threads(struct guest *g, struct task *t, unsigned n, step_fn step,
		     const void *prog, size_t size, void (*slice)(void *prog, unsigned k, unsigned n));
/* The first step of a workload whose threads share one anonymous mapping: map @size bytes into
 * *@base, give the caller slice 0 of @n and start the other threads on theirs. STEP_CONT, or
 * what wl_sys_failed() makes of an error. */
int wl_map_and_start_threads(struct guest *g, struct task *t, uint64_t size, uint64_t *base,
			     unsigned n, step_fn step, void *prog, size_t psize,
			     void (*slice)(void *prog, unsigned k, unsigned n));

#endif
