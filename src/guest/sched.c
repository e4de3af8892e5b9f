/* SPDX-License-Identifier: MIT */
/*
 * Tasks, vCPUs and the scheduler: task life (new, exit, kill, reaping), context switches by
 * MOV CR3 with PCIDs, TLB flushes and shootdowns, the user-mode access path with its #PF loop,
 * and the run loop that interleaves every vCPU of every guest on one host thread.
 *
 * Determinism: vCPUs take turns in a fixed order, each running its current task for a fixed
 * quantum of steps; the run queue is FIFO; the only randomness is each task's seeded stream. So a
 * run is repeatable bit for bit, and does not depend on the MMU mode (threaded runs, in
 * sched_thread.c, share this file's turns and between-round work, not its determinism). ksmd (--ksm on) and
 * khugepaged (--khugepaged on) run between rounds on the run's clock: they change where guest
 * pages live, never what they hold.
 *
 * TLB rules the kernel keeps (as Linux's arch/x86/mm/tlb.c):
 *  - a flush of an mm runs on every vCPU that has it loaded now: INVLPG for up to 33 pages,
 *    else a reload of CR3 (a full flush of the PCID's non-global entries); on another vCPU that
 *    is a shootdown: an IPI (ipi_send), run at once here, taken by the target's own thread in a
 *    threaded run;
 *  - with PCIDs, each vCPU keeps NR_ASIDS (mm id, flush generation) slots; every flush bumps the
 *    mm's generation, and a switch to an mm whose slot is behind (or that has no slot) flushes
 *    that PCID, so vCPUs that ran the mm earlier never see a stale translation.
 *  - kernel mappings are global (CR4.PGE) and never change after boot, so nothing flushes them.
 * Locking: none interleaved; threaded, the kernel lock (guest.h), let go around a user access.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "guest.h"

#define MAX_FAULT_RETRIES 16

/* ---- run queue ---- */

void rq_push(struct guest *g, struct task *t)
{
	t->rq_next = NULL;
	t->queued = true;
	if (g->rq_tail)
		g->rq_tail->rq_next = t;
	else
		g->rq_head = t;
	g->rq_tail = t;
}

static void rq_unlink(struct guest *g, struct task *prev, struct task *t)
{
	if (prev)
		prev->rq_next = t->rq_next;
	else
		g->rq_head = t->rq_next;
	if (g->rq_tail == t)
		g->rq_tail = prev;
	t->rq_next = NULL;
	t->queued = false;
}

static void rq_remove(struct guest *g, struct task *t)
{
	struct task *prev = NULL;

	for (struct task *x = g->rq_head; x; prev = x, x = x->rq_next) {
		if (x == t) {
			rq_unlink(g, prev, t);
			return;
		}
	}
}

/* The first queued task allowed on vCPU @cpu (taken off the queue), or NULL. */
static struct task *rq_pop_for(struct guest *g, unsigned cpu)
{
	struct task *prev = NULL;

	for (struct task *x = g->rq_head; x; prev = x, x = x->rq_next) {
		if (x->cpu < 0 || (unsigned)x->cpu == cpu) {
			rq_unlink(g, prev, x);
			return x;
		}
	}
	return NULL;
}

static bool rq_has_for(struct guest *g, unsigned cpu)
{
	for (struct task *x = g->rq_head; x; x = x->rq_next)
		if (x->cpu < 0 || (unsigned)x->cpu == cpu)
			return true;
	return false;
}

void task_wake(struct guest *g, struct task *t)
{
	if (t->state == T_BLOCKED) {
		t->state = T_RUNNABLE;
		rq_push(g, t);
	}
}

/* ---- tasks ---- */

struct task *task_new(struct guest *g, struct task *parent, struct mm *mm, int cpu)
{
	struct task *t;

	if (g->nr_pids >= g->cap_pids) {
		unsigned cap = g->cap_pids ? g->cap_pids * 2 : 64;
		struct task **nt = realloc(g->tasks, cap * sizeof(*nt));
		if (!nt)
			return NULL;
		g->tasks = nt;
		struct tomb *tb = realloc(g->tombs, cap * sizeof(*tb));
		if (!tb)
			return NULL;
		g->tombs = tb;
		g->cap_pids = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->pid = t->tgid = (int)g->nr_pids++;
	t->ppid = parent ? parent->pid : 0;
	t->mm = mm;
	t->cpu = cpu;
	t->on_cpu = -1;
	t->state = T_RUNNABLE;
	uint64_t s = g->seed ^ ((uint64_t)t->pid * 0xd1342543de82ef95ULL);
	t->rng = splitmix64(&s);
	if (g->per_task) {
		t->obs = calloc(1, sizeof(*t->obs));
		if (!t->obs || obs_init(t->obs, (uint64_t)t->pid)) {
			free(t->obs);
			free(t);
			g->nr_pids--;
			return NULL;
		}
	}
	if (mm && !mm->owner)
		mm->owner = t->pid;
	g->tasks[t->pid] = t;
	memset(&g->tombs[t->pid], 0, sizeof(struct tomb));
	g->live_tasks++;
	rq_push(g, t);
	return t;
}

struct task *task_get(struct guest *g, int pid)
{
	if (pid <= 0 || (unsigned)pid >= g->nr_pids)
		return NULL;
	struct task *t = g->tasks[pid];
	return t && t->state != T_DEAD ? t : NULL;
}

void task_free(struct task *t)
{
	free(t->prog);
	if (t->obs)
		obs_destroy(t->obs);
	free(t->obs);
	free(t);
}

/* Free the tasks that died (their state is in tombs[]). */
void task_reap(struct guest *g)
{
	while (g->dead) {
		struct task *t = g->dead;
		g->dead = t->rq_next;
		g->tasks[t->pid] = NULL;
		task_free(t);
	}
}

/* The vCPU whose kernel handles @t's end: the one it runs on, else its pinned one, else 0. */
static struct gcpu *task_kcpu(struct guest *g, const struct task *t)
{
	return &g->cpus[t->on_cpu >= 0 ? t->on_cpu : (t->cpu >= 0 ? t->cpu : 0)];
}

static int task_end(struct guest *g, struct task *t, const struct tomb *tb)
{
	struct gcpu *c = task_kcpu(g, t);
	struct task *p = (t->ppid > 0 && (unsigned)t->ppid < g->nr_pids) ? g->tasks[t->ppid] : NULL;
	int rc;

	cpu_kernel(g, c);
	if (t->on_cpu >= 0) {
		g->cpus[t->on_cpu].cur = NULL;
		t->on_cpu = -1;
	}
	if (t->queued)
		rq_remove(g, t);
	t->state = T_DEAD;
	g->live_tasks--;
	g->tombs[t->pid] = *tb;
	if (t->obs) {
		obs_flush_slow(t->obs);
		g->tombs[t->pid].obs = XXH64_digest(t->obs->state);
	}
	if (p && p->state != T_DEAD) {
		p->live_children--;
		task_wake(g, p);
	}
	rc = mm_put(g, c, t->mm);
	t->mm = NULL;
	t->rq_next = g->dead;
	g->dead = t;
	return rc;
}

static int task_exit_locked(struct guest *g, struct task *t, int code);

int task_exit(struct guest *g, struct task *t, int code)
{
	struct gcpu *c = task_kcpu(g, t);
	bool taken = kenter(g, c);
	int rc = task_exit_locked(g, t, code);

	kleave(g, c, taken);
	return rc;
}

static int task_exit_locked(struct guest *g, struct task *t, int code)
{
	struct gcpu *c = task_kcpu(g, t);
	struct tomb tb = { .state = VMMU_TASK_EXITED, .exit_code = code };
	uint64_t msg = ((uint64_t)(uint32_t)t->pid << 32) | (uint32_t)code;
	int rc;

	cpu_kernel(g, c);
	obs3(obs_of(g, t), OBS_EXIT, (uint64_t)t->pid, (uint64_t)(uint32_t)code);
	g->cnt.exits++;
	/* The exit status goes to the console, as a kernel logs it: an MMIO write. */
	rc = kmmio(g, c, DEV_REG_CONSOLE, true, &msg);
	if (rc)
		return rc;
	return task_end(g, t, &tb);
}

int task_kill(struct guest *g, struct task *t, const struct kill_info *k)
{
	struct tomb tb = {
		.state = VMMU_TASK_KILLED, .signal = (uint8_t)k->signal, .fault_addr = k->addr,
		.fault_ec = k->ec,
	};

	obs3(obs_of(g, t), OBS_KILL | ((uint64_t)k->signal << 8) | ((uint64_t)(uint32_t)t->pid << 32),
	     k->addr, k->ec);
	g->cnt.kills++;
	return task_end(g, t, &tb);
}

/* ---- context switches and TLB flushes ---- */

int switch_mm(struct guest *g, struct gcpu *c, struct mm *next)
{
	uint64_t cr3 = next->root;
	bool noflush = false;
	int rc;

	if (c->loaded == next)
		return 0;
	cpu_kernel(g, c);
	if (g->pcid && next != &g->init_mm) {
		unsigned s;
		for (s = 0; s < NR_ASIDS; s++)
			if (c->asid[s].mm_id == next->id)
				break;
		if (s < NR_ASIDS && c->asid[s].gen == next->tlb_gen) {
			noflush = true;
		} else {
			if (s == NR_ASIDS) {
				s = c->next_asid;
				c->next_asid = (s + 1) % NR_ASIDS;
				c->asid[s].mm_id = next->id;
			}
			c->asid[s].gen = next->tlb_gen;
		}
		c->cur_asid = s;
		cr3 |= s + 1;
	} else if (g->pcid) {
		/* PCID 0 is init_mm's alone, and it maps nothing but global kernel pages. */
		noflush = true;
	}
	rc = vmmu_vcpu_mov_cr(c->v, 3, cr3 | (noflush ? GCR3_NOFLUSH : 0));
	if (rc)
		return guest_fail(g, rc, "MOV CR3 %#" PRIx64 " on vCPU %u: %s", cr3, c->id, strerror(-rc));
	if (c->loaded)
		c->loaded->loaded_on &= ~(1ULL << c->id);
	next->loaded_on |= 1ULL << c->id;
	c->loaded = next;
	c->cr3 = cr3;
	c->cnt.ctx_switches++;
	return 0;
}

int flush_tlb_mm(struct guest *g, struct gcpu *c, struct mm *mm, const struct flush *f)
{
	int rc = 0;

	if (!f->n && !f->full)
		return 0;
	mm->tlb_gen++;
	for (unsigned i = 0; i < g->nr_cpus && !rc; i++) {
		struct gcpu *o = &g->cpus[i];
		if (!(mm->loaded_on & (1ULL << i)))
			continue;
		if (o != c) {
			g->cnt.shootdowns++;
			rc = ipi_send(g, c, o, IPI_FLUSH, mm, f);
		} else {
			rc = ipi_handle(g, c, IPI_FLUSH, mm, f);
		}
	}
	if (rc)
		return guest_fatal(g) ? guest_fatal(g) : guest_fail(g, rc, "TLB flush: %s", strerror(-rc));
	return 0;
}

int ipi_handle(struct guest *g, struct gcpu *c, enum ipi_kind kind, struct mm *mm,
	       const struct flush *f)
{
	int rc = 0;

	if (kind == IPI_SWITCH_INIT)
		return c->loaded == mm ? switch_mm(g, c, &g->init_mm) : 0;
	cpu_kernel(g, c);
	if (f->full) {
		c->cnt.tlb_flushes++;
		rc = vmmu_vcpu_mov_cr(c->v, 3, c->cr3);
	} else {
		for (unsigned k = 0; k < f->n && !rc; k++) {
			c->cnt.invlpgs++;
			rc = vmmu_vcpu_invlpg(c->v, f->addr[k]);
		}
	}
	if (g->pcid)
		c->asid[c->cur_asid].gen = mm->tlb_gen;
	return rc;
}

/* Make @t the current task of its vCPU (the API's way in; the scheduler has its own). */
int task_make_current(struct guest *g, struct task *t)
{
	struct gcpu *c = &g->cpus[t->cpu >= 0 ? t->cpu : 0];

	if (t->on_cpu == (int)c->id)
		return 0;
	if (t->on_cpu >= 0)
		g->cpus[t->on_cpu].cur = NULL;
	if (t->queued)
		rq_remove(g, t);
	if (c->cur) {
		c->cur->on_cpu = -1;
		rq_push(g, c->cur);
	}
	c->cur = t;
	t->on_cpu = (int)c->id;
	return switch_mm(g, c, t->mm);
}

/* ---- user accesses ---- */

#define UACCESS_AGAIN 1

/* What follows a user access that did not simply complete: the kernel's part, under the kernel
 * lock. UACCESS_AGAIN: retry the access; 0 never; -EFAULT: the task was killed; <0 fatal. */
static int uaccess_kernel(struct guest *g, struct gcpu *c, struct task *t, uint64_t va,
			  unsigned len, int rc, const struct vmmu_access_result *r)
{
	struct kill_info k;

	if (rc)
		return guest_fail(g, rc, "vmmu_vcpu_access(%#" PRIx64 ", %u): %s", va, len, strerror(-rc));
	if (guest_fatal(g))
		return guest_fatal(g);   /* the guest stopped while this vCPU ran user code */
	switch (r->status) {
	case VMMU_ACCESS_PF:
		g->cnt.page_faults++;
		obs3(obs_of(g, t), OBS_PF, r->pf_addr, r->pf_ec);
		cpu_kernel(g, c);
		rc = handle_page_fault(g, c, t, r->pf_addr, r->pf_ec, &k);
		if (rc < 0)
			return rc;
		if (rc > 0) {
			rc = task_kill(g, t, &k);
			return rc ? rc : -EFAULT;
		}
		return guest_fatal(g) ? guest_fatal(g) : UACCESS_AGAIN;
	case VMMU_ACCESS_GP:
		cpu_kernel(g, c);
		k = (struct kill_info){ .signal = VMMU_SIGSEGV, .addr = va };
		break;
	case VMMU_ACCESS_MMIO:
		/* No user mapping reaches the device; a bus error if one ever does. */
		cpu_kernel(g, c);
		k = (struct kill_info){ .signal = VMMU_SIGBUS, .addr = va };
		break;
	default:
		return guest_fail(g, -EIO, "vmmu_vcpu_access(%#" PRIx64 "): status %d", va, (int)r->status);
	}
	rc = task_kill(g, t, &k);
	return rc ? rc : -EFAULT;
}

/* A user read or fetch the task saw complete: what it read goes in its observations. */
static inline void obs_read(struct obs *o, uint64_t va, unsigned len, unsigned kind, uint64_t val)
{
	obs3(o, OBS_READ | ((uint64_t)len << 8) | ((uint64_t)kind << 16), va, val);
}

/* The user access, or (@first) its retry after a first attempt made by uaccess_batch that did
 * not complete: @first_rc and @first are that attempt's. */
static int uaccess_go(struct guest *g, struct task *t, uint64_t va, unsigned len, unsigned kind,
		      uint64_t *val, int first_rc, const struct vmmu_access_result *first)
{
	struct gcpu *c = task_cpu(g, t);
	/* Threaded: user mode runs without the kernel lock. The caller may hold it (a step run
	 * under it) or not (a step run without it); it leaves as it came. */
	const bool held = g->threaded && c->holds_klock;
	struct vmmu_access_result r;
	int rc;

	for (unsigned tries = 0; tries < MAX_FAULT_RETRIES; tries++) {
		uint64_t buf = (kind & VMMU_ACC_WRITE) ? *val : 0;

		if (first && !tries) {
			rc = first_rc;
			r = *first;
			klock(g, c);
			goto kernel;
		}
		if (held)
			kunlock(g, c);
		else if (g->threaded)
			ipi_check(g, c);   /* an instruction boundary (its handler enters the kernel) */
		cpu_user(g, c);
		c->cnt.user_accesses++;
		rc = vmmu_vcpu_access(c->v, va, len, kind, &buf, &r);
		if (!rc && r.status == VMMU_ACCESS_DONE) {
			if (!(kind & VMMU_ACC_WRITE)) {
				*val = buf;
				obs_read(obs_of(g, t), va, len, kind, buf);
			}
			if (held)
				klock(g, c);
			return 0;
		}
		klock(g, c);
kernel:
		rc = uaccess_kernel(g, c, t, va, len, rc, &r);
		if (g->threaded && !held)
			kunlock(g, c);
		if (rc != UACCESS_AGAIN)
			return rc;
	}
	bool taken = kenter(g, c);
	rc = guest_fail(g, -ELOOP, "the access to %#" PRIx64 " by pid %d faulted %d times in a row",
			va, t->pid, MAX_FAULT_RETRIES);
	kleave(g, c, taken);
	return rc;
}

int uaccess(struct guest *g, struct task *t, uint64_t va, unsigned len, unsigned kind,
	    uint64_t *val)
{
	return uaccess_go(g, t, va, len, kind, val, 0, NULL);
}

int uaccess_batch(struct guest *g, struct task *t, struct vmmu_access_op *ops, unsigned n,
		  unsigned *done)
{
	struct gcpu *c = task_cpu(g, t);
	struct vmmu_access_result r;
	struct obs *o = obs_of(g, t);
	unsigned k = 0;
	int rc;

	if (g->threaded) {   /* the kernel lock and IPIs, access by access */
		for (k = 0; k < n; k++) {
			rc = uaccess(g, t, ops[k].gva, ops[k].len, ops[k].kind, &ops[k].val);
			if (rc) {
				*done = k;
				return rc;
			}
		}
		*done = n;
		return 0;
	}
	cpu_user(g, c);
	rc = vmmu_vcpu_access_batch(c->v, ops, n, &k, &r);
	c->cnt.user_accesses += k + (k < n);
	for (unsigned i = 0; i < k; i++)
		if (!(ops[i].kind & VMMU_ACC_WRITE))
			obs_read(o, ops[i].gva, ops[i].len, ops[i].kind, ops[i].val);
	*done = k;
	if (k == n)
		return 0;
	/* The access that stopped the batch: the kernel's part, then its retries, one by one. */
	struct vmmu_access_op *op = &ops[k];
	rc = uaccess_go(g, t, op->gva, op->len, op->kind, &op->val, rc, &r);
	if (!rc)
		*done = k + 1;
	return rc;
}

/* ---- the run loop ---- */

static int run_on(struct guest *g, struct gcpu *c, struct task *t)
{
	c->cur = t;
	t->on_cpu = (int)c->id;
	return switch_mm(g, c, t->mm);
}

int sched_turn(struct guest *g, struct gcpu *c, unsigned quantum, bool *ran)
{
	const unsigned i = c->id;
	int rc;

	if (!c->cur) {
		struct task *t = rq_pop_for(g, i);
		if (!t) {
			/* Idle: leave no address space loaded, so nothing needs this vCPU's flushes. */
			if (c->loaded != &g->init_mm && (rc = switch_mm(g, c, &g->init_mm)))
				return rc;
			return 0;
		}
		if ((rc = run_on(g, c, t)))
			return rc;
	}
	*ran = true;
	c->quantum = quantum;
	/* Threaded, a workload whose steps reach kernel state only through the system-call layer
	 * runs them without the kernel lock, taking it back for what the step's result asks of the
	 * scheduler (and before it returns, as it was called). */
	const bool free_run = g->threaded && g->steps_unlocked;
	bool locked = true;
	for (c->steps = 0; c->steps < quantum; c->steps++) {
		struct task *t = c->cur;
		int r;

		if (free_run && locked) {
			kunlock(g, c);
			locked = false;
		}
		r = t->step(g, t);
		if (!locked) {
			if (r == STEP_CONT && !guest_fatal(g))
				continue;
			klock(g, c);
			locked = true;
		}
		if (guest_fatal(g))
			return guest_fatal(g);
		if (r < 0)
			return guest_fail(g, r, "pid %d: %s", t->pid, strerror(-r));
		if (r == STEP_CONT)
			continue;
		if (r == STEP_BLOCK && free_run && !t->live_children)
			continue;   /* its children ended between its look and now: nothing to wait for */
		if (r == STEP_YIELD) {
			if (!rq_has_for(g, i))
				continue;
			c->cur = NULL;
			t->on_cpu = -1;
			rq_push(g, t);
		} else if (r == STEP_BLOCK) {
			c->cur = NULL;
			t->on_cpu = -1;
			t->state = T_BLOCKED;
		} else {
			task_reap(g);
		}
		struct task *n = rq_pop_for(g, i);
		if (!n)
			break;
		if ((rc = run_on(g, c, n)))
			return rc;
	}
	if (!locked)
		klock(g, c);
	/* The time slice is over: the next queued task gets the vCPU. */
	if (c->cur && rq_has_for(g, i)) {
		struct task *t = c->cur;
		c->cur = NULL;
		t->on_cpu = -1;
		rq_push(g, t);
	}
	return 0;
}

/* One turn of every vCPU of @g. *@ran: some vCPU had a task. */
static int run_round(struct guest *g, unsigned quantum, bool *ran)
{
	int rc;

	for (unsigned i = 0; i < g->nr_cpus; i++)
		if ((rc = sched_turn(g, &g->cpus[i], quantum, ran)))
			return rc;
	return 0;
}

int guest_audit(struct guest *g)
{
	char why[200] = "";
	int rc = vmmu_vm_audit(g->vm, why, sizeof(why));

	g->cnt.audits++;
	if (rc)
		return guest_fail(g, rc == -EFAULT ? rc : -EIO, "MMU audit failed: %s", why[0] ? why : strerror(-rc));
	return 0;
}

/* The process's resident bytes now (/proc/self/statm); 0 if it cannot be read. */
static uint64_t process_rss(void)
{
	unsigned long long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void sched_rss_sample(struct vmmu_guest_result *res, uint64_t accesses, uint64_t *period)
{
	if (res->nr_rss_samples == VMMU_RSS_SAMPLES) {
		/* Full: keep every other sample and take them half as often. */
		for (unsigned i = 0; i < VMMU_RSS_SAMPLES / 2; i++)
			res->rss_samples[i] = res->rss_samples[2 * i];
		res->nr_rss_samples = VMMU_RSS_SAMPLES / 2;
		*period *= 2;
	}
	res->rss_samples[res->nr_rss_samples++] = (struct vmmu_rss_sample){
		.accesses = accesses, .rss_bytes = process_rss(),
	};
}

static uint64_t all_accesses(struct guest **gs, unsigned n)
{
	uint64_t acc = 0;

	for (unsigned k = 0; k < n; k++) {
		struct guest_counters sum;
		guest_counters_sum(gs[k], &sum);
		acc += sum.user_accesses + sum.kernel_accesses;
	}
	return acc;
}

/* ksmd's wake-up after a round: the run's clock is a millisecond every 1000 guest accesses. With
 * audits on, the trees are checked after every pass. */
static int ksmd_step(struct guest **gs, unsigned n, const struct sched_opts *o)
{
	char why[200] = "";
	bool ran;
	int rc = vmmu_ksm_run(o->ksm, all_accesses(gs, n) / 1000, &ran);

	if (rc < 0)
		return guest_fail(gs[0], rc, "ksmd: %s", strerror(-rc));
	if (ran && o->audit_period && (rc = vmmu_ksm_audit(o->ksm, why, sizeof(why))))
		return guest_fail(gs[0], -EFAULT, "KSM audit failed: %s", why);
	return 0;
}

/* khugepaged's wake-up after a round, on the same clock; with audits on, every VM is audited
 * after a pass that collapsed something (its sptes must follow the new frames). The fragmented
 * host is let go first when its time has come. */
static int khugepaged_step(struct guest **gs, unsigned n, const struct sched_opts *o,
			   bool *unfragmented)
{
	uint64_t now_ms = all_accesses(gs, n) / 1000;
	bool ran;
	int rc;

	if (o->fragmented && !*unfragmented && o->unfragment_ms && now_ms >= o->unfragment_ms) {
		vmmu_machine_unfragment(o->fragmented);
		*unfragmented = true;
	}
	if (!o->khugepaged)
		return 0;
	rc = vmmu_khugepaged_run(o->khugepaged, now_ms, &ran);
	if (rc < 0)
		return guest_fail(gs[0], rc, "khugepaged: %s", strerror(-rc));
	for (unsigned k = 0; rc > 0 && k < n && o->audit_period; k++)
		if ((rc = guest_audit(gs[k])))
			return rc;
	return 0;
}

/* Some multiple of @period lies in (prev, now]: a periodic task is due. */
static bool due(unsigned period, uint64_t prev, uint64_t now)
{
	return period && now / period != prev / period;
}

int sched_guest_periodic(struct guest *g, const struct sched_opts *o, uint64_t prev,
			 uint64_t rounds)
{
	int rc;

	if (due(o->aging_period, prev, rounds) && g->live_tasks) {
		uint64_t young;
		if ((rc = kernel_age(g, &young)))
			return rc;
	}
	if (due(o->khugepaged_period, prev, rounds) && g->live_tasks && (rc = kernel_khugepaged(g)))
		return rc;
	if (due(o->audit_period, prev, rounds) && (rc = guest_audit(g)))
		return rc;
	return 0;
}

int sched_global(struct guest **gs, unsigned n, const struct sched_opts *o, uint64_t prev,
		 uint64_t rounds, struct sched_state *st)
{
	int rc;

	if (o->ksm && (rc = ksmd_step(gs, n, o)))
		return rc;
	if ((o->khugepaged || o->fragmented) &&
	    (rc = khugepaged_step(gs, n, o, &st->unfragmented)))
		return rc;
	if (o->rss && due((unsigned)st->rss_period, prev, rounds))
		sched_rss_sample(o->rss, all_accesses(gs, n), &st->rss_period);
	if (o->progress && due(64, prev, rounds)) {
		double f = 0;
		for (unsigned k = 0; k < n; k++)
			f += gs[k]->wl_progress ? gs[k]->wl_progress(gs[k]) : 0;
		o->progress(o->opaque, f / n, all_accesses(gs, n));
	}
	return 0;
}

static int sched_interleaved(struct guest **gs, unsigned n, const struct sched_opts *o)
{
	struct sched_state st = { .rss_period = 1 };
	int rc;

	for (uint64_t rounds = 1;; rounds++) {
		bool alive = false, ran = false;
		struct guest *stuck = NULL;

		for (unsigned k = 0; k < n; k++) {
			struct guest *g = gs[k];
			bool r = false;

			if (!g->live_tasks)
				continue;
			alive = true;
			if ((rc = run_round(g, o->quantum, &r)))
				return rc;
			if (!r)
				stuck = g;
			ran |= r;
			if ((rc = sched_guest_periodic(g, o, rounds - 1, rounds)))
				return rc;
		}
		if (!alive)
			return 0;
		if (stuck && !ran)
			return guest_fail(stuck, -EDEADLK, "every task of the guest is blocked");
		if ((rc = sched_global(gs, n, o, rounds - 1, rounds, &st)))
			return rc;
	}
}

int sched_run(struct guest **gs, unsigned n, const struct sched_opts *o)
{
	uint64_t rss_period = 1;
	int rc;

	if (o->rss)
		sched_rss_sample(o->rss, 0, &rss_period);
	rc = o->threads ? sched_run_threads(gs, n, o) : sched_interleaved(gs, n, o);
	if (rc)
		return rc;
	if (o->rss) {
		rss_period = 1;
		sched_rss_sample(o->rss, all_accesses(gs, n), &rss_period);
		o->rss->rss_bytes = o->rss->rss_samples[o->rss->nr_rss_samples - 1].rss_bytes;
	}
	for (unsigned k = 0; k < n && o->audit_period; k++)
		if ((rc = guest_audit(gs[k])))
			return rc;
	return 0;
}
