/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel's API for tests and tools (include/vmmu/guest.h): boot a guest, then run
 * system calls and user accesses of its tasks one at a time, each on the vCPU its task is pinned
 * to (a context switch there first if another task was current). struct vmmu_guest is the
 * kernel's struct guest.
 *
 * A guest that met a fatal error (a kernel oops: an MMU bug) refuses every later call with that
 * error. Tasks that die are reaped before each call returns.
 * Locking: none; a guest belongs to its caller's thread.
 */
#include <errno.h>
#include <string.h>

#include "guest.h"

static struct guest *G(struct vmmu_guest *g)
{
	return (struct guest *)g;
}

static int enter(struct guest *g, int pid, struct task **t)
{
	if (guest_fatal(g))
		return guest_fatal(g);
	*t = task_get(g, pid);
	if (!*t)
		return -ESRCH;
	return task_make_current(g, *t);
}

static int leave(struct guest *g, int rc)
{
	task_reap(g);
	return guest_fatal(g) ? guest_fatal(g) : rc;
}

int vmmu_guest_create(const struct vmmu_guest_config *cfg, struct vmmu_guest **out)
{
	struct vmmu_guest_config c;
	struct guest *g;
	int rc;

	if (!cfg || !out)
		return -EINVAL;
	c = *cfg;
	if (!c.mem_bytes)
		c.mem_bytes = 64ULL << 20;
	rc = guest_boot(&c, 0, 0, NULL, &g);
	if (rc) {
		guest_free(g);
		return rc;
	}
	*out = (struct vmmu_guest *)g;
	return 0;
}

void vmmu_guest_destroy(struct vmmu_guest *g)
{
	guest_free(G(g));
}

struct vmmu_vm *vmmu_guest_vm(struct vmmu_guest *g)
{
	return G(g)->vm;
}

int vmmu_guest_spawn(struct vmmu_guest *vg, unsigned cpu, int *pid)
{
	struct guest *g = G(vg);
	struct gcpu *c;
	struct mm *mm;
	struct task *t;
	int rc;

	if (guest_fatal(g))
		return guest_fatal(g);
	if (cpu >= g->nr_cpus || !pid)
		return -EINVAL;
	c = &g->cpus[cpu];
	cpu_kernel(g, c);
	rc = mm_create(g, c, &mm);
	if (!rc)
		rc = mm_exec_layout(g, mm);
	if (rc)
		return leave(g, rc);
	t = task_new(g, NULL, mm, (int)cpu);
	if (!t)
		return -ENOMEM;
	g->cnt.execs++;
	*pid = t->pid;
	return leave(g, 0);
}

int vmmu_guest_mmap(struct vmmu_guest *vg, int pid, uint64_t addr, uint64_t len, unsigned prot,
		    unsigned flags, uint64_t *out)
{
	struct guest *g = G(vg);
	struct task *t;
	int rc = enter(g, pid, &t);

	if (!rc)
		rc = sys_mmap(g, t, addr, len, prot, flags, out);
	return leave(g, rc);
}

int vmmu_guest_munmap(struct vmmu_guest *vg, int pid, uint64_t addr, uint64_t len)
{
	struct guest *g = G(vg);
	struct task *t;
	int rc = enter(g, pid, &t);

	if (!rc)
		rc = sys_munmap(g, t, addr, len);
	return leave(g, rc);
}

int vmmu_guest_mprotect(struct vmmu_guest *vg, int pid, uint64_t addr, uint64_t len, unsigned prot)
{
	struct guest *g = G(vg);
	struct task *t;
	int rc = enter(g, pid, &t);

	if (!rc)
		rc = sys_mprotect(g, t, addr, len, prot);
	return leave(g, rc);
}

int vmmu_guest_brk(struct vmmu_guest *vg, int pid, uint64_t addr, uint64_t *out)
{
	struct guest *g = G(vg);
	struct task *t;
	int rc = enter(g, pid, &t);

	if (!rc)
		rc = sys_brk(g, t, addr, out);
	return leave(g, rc);
}

int vmmu_guest_fork(struct vmmu_guest *vg, int pid, unsigned cpu, int *child)
{
	struct guest *g = G(vg);
	struct task *t, *ch;
	int rc;

	if (cpu >= g->nr_cpus)
		return -EINVAL;
	rc = enter(g, pid, &t);
	if (!rc)
		rc = sys_fork(g, t, (int)cpu, &ch);
	if (!rc)
		*child = ch->pid;
	return leave(g, rc);
}

int vmmu_guest_thread(struct vmmu_guest *vg, int pid, unsigned cpu, int *tid)
{
	struct guest *g = G(vg);
	struct task *t, *th;
	int rc;

	if (cpu >= g->nr_cpus)
		return -EINVAL;
	rc = enter(g, pid, &t);
	if (!rc)
		rc = sys_clone_thread(g, t, (int)cpu, &th);
	if (!rc)
		*tid = th->pid;
	return leave(g, rc);
}

int vmmu_guest_exec(struct vmmu_guest *vg, int pid)
{
	struct guest *g = G(vg);
	struct task *t;
	int rc = enter(g, pid, &t);

	if (!rc)
		rc = sys_exec(g, t);
	return leave(g, rc);
}

int vmmu_guest_exit(struct vmmu_guest *vg, int pid, int code)
{
	struct guest *g = G(vg);
	struct task *t;
	int rc = enter(g, pid, &t);

	if (!rc)
		rc = task_exit(g, t, code);
	return leave(g, rc);
}

int vmmu_guest_access(struct vmmu_guest *vg, int pid, uint64_t gva, unsigned len, unsigned kind,
		      uint64_t *val)
{
	struct guest *g = G(vg);
	struct task *t;
	int rc;

	if (!val || len < 1 || len > 8 || (kind & ~(VMMU_ACC_WRITE | VMMU_ACC_FETCH)) ||
	    kind == (VMMU_ACC_WRITE | VMMU_ACC_FETCH))
		return -EINVAL;
	rc = enter(g, pid, &t);
	if (!rc)
		rc = uaccess(g, t, gva, len, kind, val);
	return leave(g, rc);
}

int vmmu_guest_age(struct vmmu_guest *vg, uint64_t *young)
{
	struct guest *g = G(vg);

	if (guest_fatal(g))
		return guest_fatal(g);
	return leave(g, kernel_age(g, young));
}

int vmmu_guest_khugepaged(struct vmmu_guest *vg, uint64_t *collapsed)
{
	struct guest *g = G(vg);
	uint64_t before = g->cnt.thp_collapses;
	int rc;

	if (guest_fatal(g))
		return guest_fatal(g);
	rc = leave(g, kernel_khugepaged(g));
	if (collapsed)
		*collapsed = g->cnt.thp_collapses - before;
	return rc;
}

int vmmu_guest_task_info(struct vmmu_guest *vg, int pid, struct vmmu_task_info *info)
{
	struct guest *g = G(vg);
	struct task *t;

	if (pid <= 0 || (unsigned)pid >= g->nr_pids || !info)
		return -ESRCH;
	memset(info, 0, sizeof(*info));
	t = task_get(g, pid);
	if (t) {
		info->state = t->state == T_BLOCKED ? VMMU_TASK_BLOCKED : VMMU_TASK_RUNNABLE;
		info->rss_pages = t->mm->rss;
		info->pt_pages = t->mm->pt_pages;
		return 0;
	}
	const struct tomb *tb = &g->tombs[pid];
	info->state = (enum vmmu_task_state)tb->state;
	info->exit_code = tb->exit_code;
	info->signal = tb->signal;
	info->fault_addr = tb->fault_addr;
	info->fault_ec = tb->fault_ec;
	return 0;
}

uint64_t vmmu_guest_free_frames(struct vmmu_guest *g)
{
	return G(g)->fr.free;
}

int vmmu_guest_result(struct vmmu_guest *vg, struct vmmu_guest_result *res)
{
	struct guest *g = G(vg);
	int rc;

	memset(res, 0, sizeof(*res));
	guest_counters(g, res);
	rc = guest_digest(g, &res->digest);
	if (!rc)
		rc = vmmu_vm_get_stats(g->vm, &res->stats);
	res->mem_bytes = g->mem_bytes;
	res->vcpus = g->nr_cpus;
	res->vms = 1;
	res->opts = vmmu_vm_opts(g->vm);
	return rc;
}
