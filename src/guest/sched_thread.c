/* SPDX-License-Identifier: MIT */
/*
 * Threaded runs: every vCPU of every guest on its own host thread (vmmu run's default with more
 * than one vCPU; --interleave keeps sched.c's one-thread schedule).
 *
 * Rounds: a coordinator (the caller's thread) starts a round; each vCPU thread runs
 * SCHED_TURNS turns of its vCPU (sched_turn, as an interleaved round runs one) and reports back;
 * between rounds, with every vCPU stopped, the coordinator does what an interleaved run does
 * between its rounds (aging, khugepaged, audits, ksmd, samples: sched_guest_periodic and
 * sched_global, their periods counted in turns), on vCPU 0 as the interleaved run does.
 * Threads are named "vmmu vcpu N" and, with sched_opts.pin, each pinned to one allowed CPU
 * before its first round (vmmu_guest_config.pin_vcpus has the rule).
 *
 * Locking (guest.h has the whole rule):
 *  - g->klock_word, the guest's kernel lock (a spin lock; gcpu.holds_klock says who has it):
 *    everything of the guest but what a vCPU thread owns. A vCPU thread holds it for its turns
 *    and lets it go around a user access (uaccess), the zeroing of a frame it owns
 *    (kzero_page_unlocked) and, for a workload whose steps allow it (wl_ops.steps_unlocked), the
 *    steps themselves, whose system calls take it (kenter);
 *  - IPIs: the sender holds klock, fills the target's mailbox, sets ipi_pending (release), rings
 *    its bell and waits until the target cleared it (acquire). A target takes IPIs before a user
 *    access made without klock, while it waits for klock and while it waits for a round, which
 *    are the only places a vCPU thread waits, so a sender never waits on a thread that waits on
 *    it. The rest of the mailbox is plain memory ordered by ipi_pending;
 *  - the round: gen (release by the coordinator, acquire by the threads) starts it, arrived
 *    (acq_rel) ends it; bells and arrived are futex words, with a timeout as a safety net.
 */
#define _GNU_SOURCE     /* pthread_setaffinity_np, sched_getaffinity */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guest.h"

/* Turns of each vCPU per round: enough that the round's hand-over (two futex hops) costs little
 * against the work of a turn (quantum steps), few enough that between-round work keeps its
 * pace. */
#define SCHED_TURNS 16

struct trun {
	uint64_t gen;          /* atomic: bumped to start a round */
	uint32_t arrived;      /* atomic: threads done with the round */
	uint32_t stop;         /* atomic: leave after this wake-up */
	unsigned nthreads;
	unsigned quantum;
};

struct vthread {
	struct trun *run;
	struct guest *g;
	struct gcpu *c;
	pthread_t tid;
	int cpu;               /* the CPU to pin to, or -1: unpinned */
	unsigned index;        /* over every vCPU of the run: VM 0's first */
};

static void futex_wait(uint32_t *addr, uint32_t val)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 10 * 1000 * 1000 };

	syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
}

static void futex_wake(uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static void ring(struct gcpu *c)
{
	__atomic_fetch_add(&c->bell, 1, __ATOMIC_RELEASE);
	futex_wake(&c->bell);
}

void ipi_poll(struct guest *g, struct gcpu *c)
{
	if (!__atomic_load_n(&c->ipi_pending, __ATOMIC_ACQUIRE))
		return;
	c->ipi_err = ipi_handle(g, c, c->ipi_kind, c->ipi_mm, c->ipi_flush);
	__atomic_store_n(&c->ipi_pending, 0, __ATOMIC_RELEASE);
}

/* A test-and-test-and-set spin lock: the lock is let go and taken again around every user access,
 * so a take must cost a few instructions and a wait no system call; a waiter spins on a read
 * (the holder's cache line stays shared) and yields the CPU only now and then, for the machines
 * that run more vCPU threads than they have cores. */
void klock(struct guest *g, struct gcpu *c)
{
	if (!g->threaded)
		return;
	for (unsigned spins = 0;; spins++) {
		if (!__atomic_load_n(&g->klock_word, __ATOMIC_RELAXED) &&
		    !__atomic_exchange_n(&g->klock_word, 1, __ATOMIC_ACQUIRE)) {
			c->holds_klock = true;
			return;
		}
		ipi_poll(g, c);
		if (spins % 64 == 63)
			sched_yield();
		else
			__builtin_ia32_pause();
	}
}

void kunlock(struct guest *g, struct gcpu *c)
{
	if (!g->threaded)
		return;
	c->holds_klock = false;
	__atomic_store_n(&g->klock_word, 0, __ATOMIC_RELEASE);
}

/* The coordinator's take, with every vCPU thread stopped between rounds: it then acts as vCPU 0
 * (kernel_age and kernel_khugepaged run there), whose thread is parked. */
static void klock_stopped(struct guest *g)
{
	while (__atomic_exchange_n(&g->klock_word, 1, __ATOMIC_ACQUIRE))
		sched_yield();
	g->cpus[0].holds_klock = true;
}

int ipi_send(struct guest *g, struct gcpu *c, struct gcpu *o, enum ipi_kind kind, struct mm *mm,
	     const struct flush *f)
{
	(void)c;
	if (!g->threaded)
		return ipi_handle(g, o, kind, mm, f);
	o->ipi_kind = kind;
	o->ipi_mm = mm;
	o->ipi_flush = f;
	o->ipi_err = 0;
	__atomic_store_n(&o->ipi_pending, 1, __ATOMIC_RELEASE);
	ring(o);
	while (__atomic_load_n(&o->ipi_pending, __ATOMIC_ACQUIRE))
		sched_yield();
	return o->ipi_err;
}

/* Wait for the round after @gen, taking IPIs meanwhile; the new round's number. */
static uint64_t wait_round(struct trun *tr, struct guest *g, struct gcpu *c, uint64_t gen)
{
	for (;;) {
		uint32_t bell = __atomic_load_n(&c->bell, __ATOMIC_ACQUIRE);
		uint64_t now;

		ipi_poll(g, c);
		now = __atomic_load_n(&tr->gen, __ATOMIC_ACQUIRE);
		if (now != gen)
			return now;
		if (__atomic_load_n(&c->ipi_pending, __ATOMIC_ACQUIRE))
			continue;
		futex_wait(&c->bell, bell);
	}
}

static void *vcpu_thread(void *arg)
{
	struct vthread *vt = arg;
	struct trun *tr = vt->run;
	struct guest *g = vt->g;
	struct gcpu *c = vt->c;
	uint64_t gen = 0;

	/* Named as a hypervisor names its vCPU threads, for top -H, perf and gdb. */
	char name[16];

	snprintf(name, sizeof(name), "vmmu vcpu %u", vt->index);
	(void)pthread_setname_np(pthread_self(), name);
	if (vt->cpu >= 0) {
		cpu_set_t set;

		/* A request: a set the kernel refuses (the CPU went offline) leaves it unpinned. */
		CPU_ZERO(&set);
		CPU_SET(vt->cpu, &set);
		(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	}
	for (;;) {
		bool ran = false;
		int rc = 0;

		gen = wait_round(tr, g, c, gen);
		if (__atomic_load_n(&tr->stop, __ATOMIC_ACQUIRE))
			break;
		klock(g, c);
		for (unsigned t = 0; t < SCHED_TURNS && !rc && !guest_fatal(g) && g->live_tasks; t++)
			rc = sched_turn(g, c, tr->quantum, &ran);
		if (rc && !guest_fatal(g))
			guest_fail(g, rc, "vCPU %u: %s", c->id, strerror(-rc));
		kunlock(g, c);
		c->ran = ran;
		if (__atomic_add_fetch(&tr->arrived, 1, __ATOMIC_ACQ_REL) == tr->nthreads)
			futex_wake(&tr->arrived);
	}
	/* The spare frame goes back: a finished run has every frame it did not map free. */
	klock(g, c);
	if (c->spare != FRAME_NONE)
		frames_free(&g->fr, c->spare, 0);
	c->spare = FRAME_NONE;
	kunlock(g, c);
	return NULL;
}

/* Start a round (or, with @stop, the threads' way out) and, unless stopping, wait for its end. */
static void round_trip(struct trun *tr, struct vthread *vt, unsigned nt, bool stop)
{
	__atomic_store_n(&tr->arrived, 0, __ATOMIC_RELAXED);
	if (stop)
		__atomic_store_n(&tr->stop, 1, __ATOMIC_RELEASE);
	__atomic_fetch_add(&tr->gen, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < nt; i++)
		ring(vt[i].c);
	if (stop)
		return;
	for (;;) {
		uint32_t a = __atomic_load_n(&tr->arrived, __ATOMIC_ACQUIRE);
		if (a == tr->nthreads)
			return;
		futex_wait(&tr->arrived, a);
	}
}

/* One round's end, every vCPU stopped: what sched.c's loop does after its rounds. 1: done. */
static int after_round(struct guest **gs, unsigned n, const bool *alive,
		       const struct sched_opts *o, uint64_t prev, uint64_t rounds,
		       struct sched_state *st)
{
	struct guest *stuck = NULL;
	bool ran = false;
	int rc = 0;

	for (unsigned k = 0; k < n; k++) {
		if (guest_fatal(gs[k]))
			return guest_fatal(gs[k]);
	}
	for (unsigned k = 0; k < n && !rc; k++) {
		struct guest *g = gs[k];
		bool r = false;

		if (!alive[k])
			continue;
		for (unsigned i = 0; i < g->nr_cpus; i++)
			r |= g->cpus[i].ran;
		if (!r)
			stuck = g;
		ran |= r;
		klock_stopped(g);
		rc = sched_guest_periodic(g, o, prev, rounds);
		kunlock(g, &g->cpus[0]);
	}
	if (rc)
		return rc;
	if (stuck && !ran)
		return guest_fail(stuck, -EDEADLK, "every task of the guest is blocked");
	return sched_global(gs, n, o, prev, rounds, st);
}

/* The CPUs this process may run on, in order, into @cpus (@pin false, or no mask: none). */
static void pin_cpus(bool pin, int *cpus, unsigned *nr)
{
	cpu_set_t set;

	*nr = 0;
	if (!pin || sched_getaffinity(0, sizeof(set), &set))
		return;
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &set))
			cpus[(*nr)++] = i;
}

int sched_run_threads(struct guest **gs, unsigned n, const struct sched_opts *o)
{
	struct sched_state st = { .rss_period = 1 };
	struct trun tr = { .quantum = o->quantum };
	struct vthread *vt;
	pthread_attr_t attr;
	bool alive[VMMU_GUEST_MAX_VMS];
	int allowed[CPU_SETSIZE];
	unsigned nt = 0, started = 0, nr_allowed = 0;
	uint64_t rounds = 0;
	int rc = 0;

	if (n > VMMU_GUEST_MAX_VMS)
		return -EINVAL;
	for (unsigned k = 0; k < n; k++)
		tr.nthreads += gs[k]->nr_cpus;
	vt = calloc(tr.nthreads, sizeof(*vt));
	if (!vt)
		return -ENOMEM;
	pin_cpus(o->pin, allowed, &nr_allowed);
	for (unsigned k = 0; k < n; k++) {
		gs[k]->threaded = true;
		for (unsigned i = 0; i < gs[k]->nr_cpus; i++, nt++)
			vt[nt] = (struct vthread){ .run = &tr, .g = gs[k], .c = &gs[k]->cpus[i],
						   .cpu = nr_allowed ? allowed[nt % nr_allowed] : -1,
						   .index = nt };
	}
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 2u << 20);
	for (; started < nt; started++) {
		rc = -pthread_create(&vt[started].tid, &attr, vcpu_thread, &vt[started]);
		if (rc)
			break;
	}
	pthread_attr_destroy(&attr);
	if (rc)
		guest_fail(gs[0], rc, "vCPU threads: %s", strerror(-rc));
	while (!rc) {
		bool any = false;
		uint64_t prev = rounds;

		for (unsigned k = 0; k < n; k++)
			any |= alive[k] = gs[k]->live_tasks != 0;
		if (!any)
			break;
		round_trip(&tr, vt, nt, false);
		rounds += SCHED_TURNS;
		rc = after_round(gs, n, alive, o, prev, rounds, &st);
	}
	/* Threads not started never read the round; the started ones wait for it. */
	tr.nthreads = started;
	round_trip(&tr, vt, started, true);
	for (unsigned i = 0; i < started; i++)
		pthread_join(vt[i].tid, NULL);
	for (unsigned k = 0; k < n; k++)
		gs[k]->threaded = false;
	free(vt);
	return rc;
}
