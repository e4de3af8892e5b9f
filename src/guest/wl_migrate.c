/* SPDX-License-Identifier: MIT */
/*
 * The migrate workload: the pre-copy phase of a live migration, seen from both sides.
 *
 * The guest: one process whose threads (one per vCPU by default) first touch every page of a
 * working set (a write each, in slices), meet at a barrier, then read and write random 8-byte
 * words of it (gups-like), through the same user-access path as every workload, so every MMU
 * mode sees the same accesses.
 * The VMM, in the same driver (as a migration thread of QEMU would run beside the vCPUs): when
 * the last thread reaches the barrier it turns on KVM_MEM_LOG_DIRTY_PAGES for guest RAM's
 * memslot (a flags-only KVM_SET_USER_MEMORY_REGION), then every `interval` accesses it harvests
 * the log with KVM_GET_DIRTY_LOG (copy and clear; the MMU write-protects the harvested pages
 * again inside that call, as KVM_GET_DIRTY_LOG does without manual-protect), `rounds` times, and
 * turns logging off after the last round. Those re-protected pages are what the fast page
 * fault (--opt fastpf) fixes with one cmpxchg on the next write.
 *
 * The check, which is the point of the workload: the guest knows the gfn of each working-set
 * page (its kernel walked its tables after the first touch, as /proc/self/pagemap would), and
 * records which pages its threads wrote in each round. After each harvest every one of them must
 * be in the harvested bitmap; a missing one stops the run (-EFAULT, naming round, page and gpa):
 * a write the log lost is a page a migration would never send again. The check is one-way: the
 * kernel's own stores, and the A/D bits the hardware or the MMU sets in guest page tables, dirty
 * pages too, and how many depends on the mode.
 *
 * Invariants: logging is on exactly from the barrier to the last round's harvest; `written` holds
 * the pages written since logging started or the last harvest, only while logging is on; a
 * working-set page keeps the frame its first touch gave it (nothing forks, copies, reclaims or
 * splits here), so the gfn looked up once stays right. None of
 * the VMM side enters the digest (the dirty counts differ between modes): the guest sees the
 * same run in every mode.
 * Locking: the kernel lock in a threaded run (see guest.h). The harvest runs in a guest step, under
 * it, once no write is in flight (mig_wl.inflight); vmmu_get_dirty_log() and vmmu_set_user_memory_region() are safe against the vCPUs anyway.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wl.h"

enum { MIG_SIZE, MIG_UPDATES, MIG_WRITE, MIG_INTERVAL, MIG_ROUNDS, MIG_THREADS, MIG_STEAL,
       MIG_SLICE };

static const struct vmmu_workload_param migrate_params[] = {
	{ "size", VMMU_PARAM_SIZE, "64M", "bytes of the working set, first touched before logging starts" },
	{ "updates", VMMU_PARAM_UINT, "500000", "random 8-byte accesses after the first touch, all threads together" },
	{ "write", VMMU_PARAM_UINT, "50", "percent of the accesses that write (the others read)" },
	{ "interval", VMMU_PARAM_UINT, "20000", "accesses from one harvest of the dirty log to the next" },
	{ "rounds", VMMU_PARAM_UINT, "20", "harvests (pre-copy rounds); logging goes off after the last" },
	{ "threads", VMMU_PARAM_UINT, "0", "threads sharing the working set (0: one per vCPU)" },
	{ "steal", VMMU_PARAM_UINT, "0", "self-test: another harvester takes round N's log first, so the check must fail (0: never)" },
	{ "slice", VMMU_PARAM_BOOL, "off", "each thread accesses only its own slice after the first touch (disjoint data: the same digest threaded and interleaved)" },
	{ NULL, 0, NULL, NULL },
};

/* The run's shared state (g->wl): the VMM side and what the check knows. */
struct mig_wl {
	uint64_t done, total;          /* progress: first touches and accesses */
	uint64_t base, npages;         /* the working set: [base, base + npages * 4K) */
	uint32_t *gfn;                 /* each working-set page's gfn, known after its first touch */
	uint64_t *written;             /* bit per working-set page: written in this round */
	uint64_t *log;                 /* the last harvest: bit per page of guest RAM's slot */
	uint64_t log_words;
	unsigned threads, arrived;     /* the barrier: threads that finished (or died in) the touch */
	int *waiting;                  /* pids blocked at the barrier */
	unsigned nwaiting;
	bool open;                     /* the barrier opened (logging started) */
	bool logging;
	uint64_t since;                /* accesses since logging started or the last harvest */
	unsigned inflight;             /* threaded runs: writes under way without the kernel lock; a
					* harvest waits for none (a write that landed before the
					* harvest but is recorded after it would be counted in the
					* wrong round) */
	uint64_t interval, rounds, round, steal;
};

struct mig_prog {
	int phase;                     /* 0 map, start threads; 1 first touch; 2 barrier; 3 access; 4 wait */
	uint64_t size, base;
	uint64_t page, end;            /* first touch: this thread's pages [page, end) */
	uint64_t updates, left;
	unsigned threads, write;
	bool main, parked;             /* parked: its pid is in the barrier's list */
	bool slice;                    /* accesses in [page0, end) only */
	uint64_t page0;
};

static double mig_progress(struct guest *g)
{
	const struct mig_wl *w = g->wl;
	return w && w->total ? (double)w->done / (double)w->total : 0;
}

static void mig_free(void *p)
{
	struct mig_wl *w = p;

	if (!w)
		return;
	free(w->gfn);
	free(w->written);
	free(w->log);
	free(w->waiting);
	free(w);
}

/* KVM_SET_USER_MEMORY_REGION with guest RAM's slot as boot made it, LOG_DIRTY_PAGES on or off. */
static int mig_set_logging(struct guest *g, struct mig_wl *w, bool on)
{
	struct vmmu_userspace_memory_region r = g->ram;
	int rc;

	r.flags = on ? r.flags | VMMU_MEM_LOG_DIRTY_PAGES : r.flags & ~VMMU_MEM_LOG_DIRTY_PAGES;
	rc = vmmu_set_user_memory_region(g->vm, &r);
	if (rc)
		return guest_fail(g, rc, "migrate: dirty logging %s: KVM_SET_USER_MEMORY_REGION: %s",
				  on ? "on" : "off", strerror(-rc));
	w->logging = on;
	w->since = 0;
	memset(w->written, 0, (w->npages + 63) / 64 * sizeof(uint64_t));
	return 0;
}

/* One pre-copy round: harvest the log, count it, check that it holds every page written since
 * the last one. 0, or a fatal error. */
static int mig_harvest(struct guest *g, struct mig_wl *w)
{
	uint32_t slot = g->ram.slot;
	uint64_t dirty = 0, written = 0;
	int rc;

	w->round++;
	if (w->round == w->steal) {
		/* The self-test: someone else's KVM_GET_DIRTY_LOG copies and clears the bits first,
		 * so the round's own harvest must come up short. */
		rc = vmmu_get_dirty_log(g->vm, slot, w->log);
		if (rc)
			return guest_fail(g, rc, "migrate: round %" PRIu64 ": KVM_GET_DIRTY_LOG: %s",
					  w->round, strerror(-rc));
	}
	rc = vmmu_get_dirty_log(g->vm, slot, w->log);
	if (rc)
		return guest_fail(g, rc, "migrate: round %" PRIu64 ": KVM_GET_DIRTY_LOG: %s", w->round,
				  strerror(-rc));
	for (uint64_t i = 0; i < w->log_words; i++)
		dirty += (uint64_t)__builtin_popcountll(w->log[i]);
	for (uint64_t i = 0; i < (w->npages + 63) / 64; i++) {
		for (uint64_t bits = w->written[i]; bits; bits &= bits - 1) {
			uint64_t page = i * 64 + (unsigned)__builtin_ctzll(bits), gfn = w->gfn[page];

			if (!(w->log[gfn / 64] & (1ULL << (gfn % 64))))
				return guest_fail(g, -EFAULT,
						  "migrate: round %" PRIu64 ": the guest wrote page %#" PRIx64 " (gpa %#" PRIx64 ") but the dirty log does not have it",
						  w->round, (uint64_t)(w->base + page * SZ_4K), gfn << 12);
			written++;
		}
		w->written[i] = 0;
	}
	g->cnt.dirty_min = !g->cnt.dirty_rounds || dirty < g->cnt.dirty_min ? dirty : g->cnt.dirty_min;
	g->cnt.dirty_rounds++;
	g->cnt.dirty_pages += dirty;
	g->cnt.dirty_written += written;
	/* 0 unless the harvest waited for writes in flight (threaded runs): the accesses past the
	 * interval count toward the next round, which is harvested at the end of an access of its
	 * own (one that began after this harvest: none was in flight). */
	w->since -= w->interval;
	return w->round == w->rounds ? mig_set_logging(g, w, false) : 0;
}

/* The barrier after the first touch: the last thread to arrive (or to die before it) starts
 * logging and wakes the others. */
static int mig_arrive(struct guest *g, struct mig_wl *w)
{
	if (++w->arrived < w->threads)
		return 0;
	w->open = true;
	for (unsigned i = 0; i < w->nwaiting; i++) {
		struct task *t = task_get(g, w->waiting[i]);
		if (t)
			task_wake(g, t);
	}
	w->nwaiting = 0;
	return mig_set_logging(g, w, true);
}

static void mig_slice(void *prog, unsigned k, unsigned n)
{
	struct mig_prog *p = prog;
	uint64_t pages = (p->size + SZ_4K - 1) / SZ_4K;

	p->page = p->page0 = pages * k / n;
	p->end = pages * (k + 1) / n;
	p->left = p->updates * (k + 1) / n - p->updates * k / n;
	p->main = k == 0;
	p->phase = 1;
}

/* After @va's first touch: its gfn, from the tables the kernel keeps (a 4K leaf or a guest 2M
 * page), as /proc/self/pagemap reads them. */
static int mig_find_gfn(struct guest *g, struct task *t, uint64_t va, uint32_t *gfn)
{
	uint64_t epa, e;
	int level, rc;

	cpu_kernel(g, task_cpu(g, t));
	rc = pt_lookup(g, task_cpu(g, t), t->mm, va, &epa, &e, &level);
	if (rc)
		return rc;
	if (!gpte_present(e) || (level != 1 && !gpte_huge(e)))
		return guest_fail(g, -EIO, "migrate: page %#" PRIx64 " is not mapped after its first touch", va);
	*gfn = (uint32_t)(leaf_head(e, level) + ((va >> 12) & (leaf_pages(level) - 1)));
	if (*gfn >= g->mem_bytes >> 12)
		return guest_fail(g, -EIO, "migrate: page %#" PRIx64 " maps gfn %#x, outside guest RAM", va, *gfn);
	return 0;
}

static int migrate_step(struct guest *g, struct task *t)
{
	struct mig_prog *p = t->prog;
	struct mig_wl *w = g->wl;
	int rc;

	switch (p->phase) {
	case 0:
		rc = wl_map_and_start_threads(g, t, p->size, &p->base, p->threads, migrate_step, p,
					      sizeof(*p), mig_slice);
		w->base = p->base;
		return rc;
	case 1: {
		if (p->page == p->end) {
			p->phase = 2;
			return mig_arrive(g, w);
		}
		uint64_t va = p->base + p->page * SZ_4K;
		rc = wl_write(g, t, va, 8, va ^ g->seed);
		if (rc == STEP_DEAD) {
			int r = mig_arrive(g, w);
			return r ? r : rc;
		}
		if (rc)
			return rc;
		rc = mig_find_gfn(g, t, va, &w->gfn[p->page]);
		if (rc)
			return rc;
		p->page++;
		w->done++;
		return STEP_CONT;
	}
	case 2:
		/* A wake-up before the barrier opens (a thread's death wakes its parent) is not
		 * the barrier's: block again. */
		if (!w->open) {
			if (!p->parked) {
				w->waiting[w->nwaiting++] = t->pid;
				p->parked = true;
			}
			return STEP_BLOCK;
		}
		p->phase = 3;
		return STEP_CONT;
	case 3: {
		if (!p->left) {
			if (!p->main)
				return wl_exit(g, t, 0);
			p->phase = 4;
			return STEP_CONT;
		}
		uint64_t r = wl_rand(t), v, word, va;
		if (p->slice && p->end == p->page0) {
			p->left = 0;   /* more threads than pages: this one's slice is empty */
			return STEP_CONT;
		}
		word = p->slice ? p->page0 * 512 + r % ((p->end - p->page0) * 512) : r % (p->size / 8);
		if (word >= p->size / 8)
			word = p->size / 8 - 1;   /* the last page of a size not a multiple of 4K */
		va = p->base + word * 8;
		bool write = wl_rand(t) % 100 < p->write;

		p->left--;
		w->done++;
		w->inflight += write;
		rc = write ? wl_write(g, t, va, 8, r) : wl_read(g, t, va, 8, &v);
		w->inflight -= write;
		if (rc)
			return rc;
		if (!w->logging)
			return STEP_CONT;
		if (write)
			w->written[word / 512 / 64] |= 1ULL << (word / 512 % 64);
		return ++w->since >= w->interval && !w->inflight ? mig_harvest(g, w) : STEP_CONT;
	}
	default:
		rc = wl_wait(g, t);
		if (rc == STEP_BLOCK)
			return rc;
		/* Only when threads died early can rounds be left: the migration is abandoned. */
		if (w->logging && (rc = mig_set_logging(g, w, false)))
			return rc;
		return wl_exit(g, t, 0);
	}
}

static int migrate_check(const struct vmmu_workload_args *a, unsigned vcpus, char *err, size_t len)
{
	uint64_t interval = a->u[MIG_INTERVAL], rounds = a->u[MIG_ROUNDS];

	if (a->u[MIG_SIZE] < 8) {
		snprintf(err, len, "migrate: size must be at least 8 bytes");
		return -EINVAL;
	}
	if (a->u[MIG_WRITE] > 100) {
		snprintf(err, len, "migrate: write=%" PRIu64 ": a percentage, 0 to 100", a->u[MIG_WRITE]);
		return -EINVAL;
	}
	if (!interval || !rounds) {
		snprintf(err, len, "migrate: interval and rounds must be at least 1");
		return -EINVAL;
	}
	if (rounds > a->u[MIG_UPDATES] / interval) {
		snprintf(err, len, "migrate: rounds=%" PRIu64 " x interval=%" PRIu64 " is more than updates=%" PRIu64 " (the last rounds would never come)",
			 rounds, interval, a->u[MIG_UPDATES]);
		return -EINVAL;
	}
	if (a->u[MIG_STEAL] > rounds) {
		snprintf(err, len, "migrate: steal=%" PRIu64 ": there are only %" PRIu64 " rounds",
			 a->u[MIG_STEAL], rounds);
		return -EINVAL;
	}
	if (wl_threads(a->u[MIG_THREADS], vcpus) > 4096) {
		snprintf(err, len, "migrate: at most 4096 threads");
		return -EINVAL;
	}
	return 0;
}

static uint64_t migrate_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	uint64_t size = a->u[MIG_SIZE];
	if (size > (1ULL << 46))
		return UINT64_MAX;
	return size + SZ_2M + pt_overhead(size) + PROC_OVERHEAD;
}

static int migrate_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct mig_prog p = {
		.size = a->u[MIG_SIZE] & ~7ULL, .updates = a->u[MIG_UPDATES],
		.write = (unsigned)a->u[MIG_WRITE],
		.threads = wl_threads(a->u[MIG_THREADS], g->nr_cpus), .slice = a->u[MIG_SLICE] != 0,
	};
	struct mig_wl *w = calloc(1, sizeof(*w));
	struct task *t;

	if (!w)
		return -ENOMEM;
	g->wl = w;
	g->wl_free = mig_free;
	g->wl_progress = mig_progress;
	w->npages = (p.size + SZ_4K - 1) / SZ_4K;
	w->total = w->npages + p.updates;
	w->threads = p.threads;
	w->interval = a->u[MIG_INTERVAL];
	w->rounds = a->u[MIG_ROUNDS];
	w->steal = a->u[MIG_STEAL];
	w->log_words = (g->ram.memory_size / SZ_4K + 63) / 64;
	w->gfn = calloc(w->npages, sizeof(*w->gfn));
	w->written = calloc((w->npages + 63) / 64, sizeof(uint64_t));
	w->log = calloc(w->log_words, sizeof(uint64_t));
	w->waiting = calloc(p.threads, sizeof(int));
	if (!w->gfn || !w->written || !w->log || !w->waiting)
		return -ENOMEM;
	return wl_spawn(g, migrate_step, wl_dup(&p, sizeof(p)), &t);
}

const struct wl_ops wl_migrate = {
	.info = { "migrate", "live-migration pre-copy: random reads and writes under dirty logging, each harvest checked against the pages written",
		  migrate_params, 1 },
	.check = migrate_check,
	.need = migrate_need,
	.start = migrate_start,
};
