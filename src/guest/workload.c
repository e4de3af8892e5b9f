/* SPDX-License-Identifier: MIT */
/*
 * Workloads: the registry, KEY=VALUE parameters, sizes, and the run driver vmmu_run(): size guest
 * RAM, boot one guest per VM, start the workload in each, interleave all their vCPUs to the end,
 * then digest, sum the statistics and tear down. Also the helpers the workload programs share.
 *
 * The digest of a multi-VM run is xxh64 over the VMs' digests in order; a one-VM run's digest is
 * its guest's.
 * Locking: none; a run belongs to the calling thread, which joins the vCPU threads it starts.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "wl.h"

#define KERNEL_OVERHEAD (8ULL << 20)   /* boot tables, page cache of the image, slack */
#define DEFAULT_QUANTUM 64

static const struct wl_ops *const workloads[] = {
	&wl_touch, &wl_gups, &wl_fork, &wl_ctxsw, &wl_mmap, &wl_clone_vms, &wl_trace, &wl_migrate,
};
#define NR_WORKLOADS (sizeof(workloads) / sizeof(workloads[0]))

const struct vmmu_workload_info *vmmu_workload_at(unsigned i)
{
	return i < NR_WORKLOADS ? &workloads[i]->info : NULL;
}

const struct vmmu_workload_info *vmmu_workload_find(const char *name)
{
	for (unsigned i = 0; i < NR_WORKLOADS; i++)
		if (!strcmp(workloads[i]->info.name, name))
			return &workloads[i]->info;
	return NULL;
}

static const struct wl_ops *ops_of(const struct vmmu_workload_info *w)
{
	for (unsigned i = 0; i < NR_WORKLOADS; i++)
		if (&workloads[i]->info == w)
			return workloads[i];
	return NULL;
}

/* ---- values ---- */

int vmmu_parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return -EINVAL;
	switch (*p) {
	case 'k': case 'K': mul = 1ULL << 10; p++; break;
	case 'm': case 'M': mul = 1ULL << 20; p++; break;
	case 'g': case 'G': mul = 1ULL << 30; p++; break;
	case 't': case 'T': mul = 1ULL << 40; p++; break;
	default: break;
	}
	if (mul > 1 && (!strcmp(p, "iB") || !strcmp(p, "B")))
		p += strlen(p);
	else if (mul == 1 && (*p == 'b' || *p == 'B'))
		p++;
	if (*p || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*out = v * mul;
	return 0;
}

void vmmu_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char suffix[] = "KMGT";

	for (int i = 3; i >= 0; i--) {
		uint64_t unit = 1ULL << (10 * (i + 1));
		if (bytes && !(bytes % unit)) {
			snprintf(buf, len, "%" PRIu64 "%c", bytes / unit, suffix[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRIu64, bytes);
}

static int parse_uint(const char *s, uint64_t *out)
{
	return vmmu_parse_uint(s, UINT64_MAX, out);
}

static int parse_bool(const char *s, uint64_t *out)
{
	static const char *const yes[] = { "1", "on", "yes", "true" };
	static const char *const no[] = { "0", "off", "no", "false" };

	for (unsigned i = 0; i < 4; i++) {
		if (!strcmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_value(const struct vmmu_workload_param *p, const char *s, uint64_t *u,
		       const char **str)
{
	switch (p->type) {
	case VMMU_PARAM_UINT: return parse_uint(s, u);
	case VMMU_PARAM_SIZE: return vmmu_parse_size(s, u);
	case VMMU_PARAM_BOOL: return parse_bool(s, u);
	case VMMU_PARAM_PATH:
		if (!*s)
			return -EINVAL;
		*str = s;
		return 0;
	}
	return -EINVAL;
}

static const char *type_hint(enum vmmu_param_type t)
{
	switch (t) {
	case VMMU_PARAM_UINT: return "a number";
	case VMMU_PARAM_SIZE: return "a size such as 4096, 64K or 1G";
	case VMMU_PARAM_BOOL: return "on or off";
	case VMMU_PARAM_PATH: return "a file";
	}
	return "?";
}

int vmmu_workload_args(const char *name, const char *const *kv, unsigned n,
		       struct vmmu_workload_args *a, char *err, size_t errlen)
{
	const struct vmmu_workload_info *w = vmmu_workload_find(name);
	unsigned np = 0;

	memset(a, 0, sizeof(*a));
	if (!w) {
		snprintf(err, errlen, "unknown workload '%s' ('vmmu workloads' lists them)", name);
		return -ENOENT;
	}
	a->w = w;
	for (; w->params[np].name; np++) {
		const struct vmmu_workload_param *p = &w->params[np];
		if (p->def && parse_value(p, p->def, &a->u[np], &a->s[np])) {
			snprintf(err, errlen, "internal error: bad default for %s.%s", w->name, p->name);
			return -EINVAL;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		const char *eq = strchr(kv[i], '=');
		unsigned j;

		if (!eq || eq == kv[i]) {
			snprintf(err, errlen, "--param '%s': expected KEY=VALUE", kv[i]);
			return -EINVAL;
		}
		for (j = 0; j < np; j++)
			if (strlen(w->params[j].name) == (size_t)(eq - kv[i]) &&
			    !strncmp(w->params[j].name, kv[i], (size_t)(eq - kv[i])))
				break;
		if (j == np) {
			int off = snprintf(err, errlen, "%s has no parameter '%.*s' (it takes", w->name,
					   (int)(eq - kv[i]), kv[i]);
			for (unsigned k = 0; k < np && off > 0 && (size_t)off < errlen; k++)
				off += snprintf(err + off, errlen - (size_t)off, "%s%s", k ? ", " : " ",
						w->params[k].name);
			if (off > 0 && (size_t)off < errlen)
				snprintf(err + off, errlen - (size_t)off, "%s)", np ? "" : " none");
			return -EINVAL;
		}
		if (parse_value(&w->params[j], eq + 1, &a->u[j], &a->s[j])) {
			snprintf(err, errlen, "--param %s: expected %s", kv[i], type_hint(w->params[j].type));
			return -EINVAL;
		}
		a->given[j] = true;
	}
	for (unsigned j = 0; j < np; j++) {
		if (!w->params[j].def && !a->given[j]) {
			snprintf(err, errlen, "%s needs --param %s=%s", w->name, w->params[j].name,
				 w->params[j].type == VMMU_PARAM_PATH ? "PATH" : "VALUE");
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- helpers of the programs ---- */

static double count_progress(struct guest *g)
{
	const struct wl_count *w = g->wl;
	return w && w->total ? (double)__atomic_load_n(&w->done, __ATOMIC_RELAXED) / (double)w->total : 0;
}

int wl_start_count(struct guest *g, uint64_t total)
{
	struct wl_count *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->total = total;
	g->wl = w;
	g->wl_progress = count_progress;
	return 0;
}

int wl_sys_failed(struct guest *g, struct task *t, int rc)
{
	if (guest_fatal(g))
		return guest_fatal(g);
	return wl_exit(g, t, rc == -ENOMEM ? 12 : 1);
}

void *wl_dup(const void *src, size_t size)
{
	void *p = malloc(size);
	if (p)
		memcpy(p, src, size);
	return p;
}

int wl_start_threads(struct guest *g, struct task *t, unsigned n, step_fn step,
		     const void *prog, size_t size, void (*slice)(void *prog, unsigned k, unsigned n))
{
	/* A thread is queued when made: its step and program go in before another vCPU can pick
	 * it up (the kernel lock held throughout). */
	struct gcpu *c = task_cpu(g, t);
	bool taken = kenter(g, c);
	int rc = 0;

	for (unsigned k = 1; k < n && !rc; k++) {
		struct task *th;
		void *p = wl_dup(prog, size);

		if (!p) {
			rc = -ENOMEM;
			break;
		}
		slice(p, k, n);
		rc = sys_clone_thread(g, t, -1, &th);
		if (rc) {
			free(p);
			break;
		}
		th->step = step;
		th->prog = p;
	}
	kleave(g, c, taken);
	return rc;
}

int wl_map_and_start_threads(struct guest *g, struct task *t, uint64_t size, uint64_t *base,
			     unsigned n, step_fn step, void *prog, size_t psize,
			     void (*slice)(void *prog, unsigned k, unsigned n))
{
	int rc = sys_mmap(g, t, 0, size, VMMU_PROT_READ | VMMU_PROT_WRITE, 0, base);
	if (rc)
		return wl_sys_failed(g, t, rc);
	slice(prog, 0, n);
	rc = wl_start_threads(g, t, n, step, prog, psize, slice);
	if (rc)
		return wl_sys_failed(g, t, rc);
	return STEP_CONT;
}

int wl_spawn(struct guest *g, step_fn step, void *prog, struct task **out)
{
	struct gcpu *c = &g->cpus[0];
	struct mm *mm;
	struct task *t;
	int rc;

	if (!prog)
		return -ENOMEM;
	cpu_kernel(g, c);
	rc = mm_create(g, c, &mm);
	if (!rc)
		rc = mm_exec_layout(g, mm);
	if (rc) {
		free(prog);
		return rc;
	}
	t = task_new(g, NULL, mm, -1);
	if (!t) {
		free(prog);
		return -ENOMEM;
	}
	t->step = step;
	t->prog = prog;
	g->cnt.execs++;
	*out = t;
	return 0;
}

int wl_read(struct guest *g, struct task *t, uint64_t va, unsigned len, uint64_t *val)
{
	int rc = uaccess(g, t, va, len, VMMU_ACC_READ, val);
	return rc == -EFAULT ? STEP_DEAD : rc;
}

int wl_write(struct guest *g, struct task *t, uint64_t va, unsigned len, uint64_t val)
{
	int rc = uaccess(g, t, va, len, VMMU_ACC_WRITE, &val);
	return rc == -EFAULT ? STEP_DEAD : rc;
}

int wl_wait(struct guest *g, struct task *t)
{
	/* The children's count changes under the kernel lock; what is seen here may be stale by
	 * the time the scheduler blocks the task, so it looks again then (sched_turn). */
	struct gcpu *c = task_cpu(g, t);
	bool taken = kenter(g, c);
	int rc = t->live_children ? STEP_BLOCK : STEP_CONT;

	kleave(g, c, taken);
	return rc;
}

int wl_exit(struct guest *g, struct task *t, int code)
{
	int rc = task_exit(g, t, code);
	return rc ? rc : STEP_DEAD;
}

/* ---- the run ---- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sum_stats(struct vmmu_stats *sum, const struct vmmu_stats *st)
{
	_Static_assert(sizeof(struct vmmu_stats) % sizeof(uint64_t) == 0, "vmmu_stats is all uint64_t");
	uint64_t *d = (uint64_t *)sum;
	const uint64_t *s = (const uint64_t *)st;
	for (size_t i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
		d[i] += s[i];
}

/* The machine's own figures are the same in every VM's stats: count them once, not per VM. */
static void machine_stats(struct vmmu_stats *sum, const struct vmmu_stats *m)
{
#define X(f) sum->f = m->f;
	VMMU_STATS_MACHINE_FIELDS(X)
#undef X
}

/* The machine's host memory for @vms guests of @mem bytes: as a VM of its own would get
 * (guest_boot), times the VMs when that is more. */
static uint64_t machine_bytes(const struct vmmu_guest_config *cfg, uint64_t mem, unsigned vms)
{
	uint64_t one = mem > (30ULL << 30) ? 2 * mem : 64ULL << 30;

	if (cfg->vm.host_mem_bytes)
		return cfg->vm.host_mem_bytes;
	/* A fragmented host has its size, not 64G of spare address space: fragmentation means
	 * free 2M blocks are scarce. The fragmenter holds half of what it fragments, so three
	 * times the guest RAM leaves the VMs theirs and room for the MMUs' tables. */
	if (cfg->host_fragment_pct)
		return 3 * mem * vms;
	return one > 2 * mem * vms ? one : 2 * mem * vms;
}

int vmmu_run(const struct vmmu_guest_config *cfg, const struct vmmu_workload_args *a,
	     struct vmmu_guest_result *res, char *err, size_t errlen)
{
	const struct wl_ops *w = a ? ops_of(a->w) : NULL;
	struct vmmu_guest_config gc;
	struct guest *gs[VMMU_GUEST_MAX_VMS] = { NULL };
	struct vmmu_machine *m = NULL;
	uint64_t need, data, digests[VMMU_GUEST_MAX_VMS];
	struct vmmu_stats machine = { 0 };
	char s1[32], s2[32];
	unsigned vms;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	if (errlen)
		err[0] = '\0';
	if (!w || !cfg) {
		snprintf(err, errlen, "no workload");
		return -EINVAL;
	}
	gc = *cfg;
	gc.vcpus = cfg->vcpus ? cfg->vcpus : 1;
	vms = cfg->vms ? cfg->vms : w->info.default_vms;
	if (gc.vcpus > VMMU_GUEST_MAX_VCPUS) {
		snprintf(err, errlen, "--vcpus %u: at most %u", gc.vcpus, VMMU_GUEST_MAX_VCPUS);
		return -EINVAL;
	}
	if (vms < 1 || vms > VMMU_GUEST_MAX_VMS) {
		snprintf(err, errlen, "--vms %u: 1 to %u", vms, VMMU_GUEST_MAX_VMS);
		return -EINVAL;
	}
	rc = w->check ? w->check(a, gc.vcpus, err, errlen) : 0;
	if (rc)
		return rc;
	data = w->data_bytes ? w->data_bytes(a) : 0;
	need = w->need(a, gc.vcpus);
	/* Saturating: a parameter may ask for more than any guest can have. */
	need = need > UINT64_MAX - data - KERNEL_OVERHEAD ? UINT64_MAX : need + data + KERNEL_OVERHEAD;
	if (!gc.mem_bytes) {
		gc.mem_bytes = need > VMMU_GUEST_MAX_MEM - SZ_1G ? VMMU_GUEST_MAX_MEM :
			       (need + SZ_1G - 1) & ~(SZ_1G - 1);
	} else if (gc.mem_bytes < VMMU_GUEST_MIN_MEM || gc.mem_bytes > VMMU_GUEST_MAX_MEM ||
		   (gc.mem_bytes & (SZ_4K - 1))) {
		vmmu_format_size(gc.mem_bytes, s1, sizeof(s1));
		snprintf(err, errlen, "--mem %s: guest RAM is a multiple of 4K from 16M to 256G", s1);
		return -EINVAL;
	}
	if (need > gc.mem_bytes) {
		vmmu_format_size(gc.mem_bytes, s2, sizeof(s2));
		if (need > VMMU_GUEST_MAX_MEM)
			snprintf(err, errlen, "%s: these parameters need more guest RAM than the largest guest (%s)",
				 w->info.name, s2);
		else
			snprintf(err, errlen, "%s: these parameters need about %" PRIu64 "M of guest RAM; --mem is %s",
				 w->info.name, (need + (1 << 20) - 1) >> 20, s2);
		return -E2BIG;
	}
	gc.quantum = cfg->quantum ? cfg->quantum : DEFAULT_QUANTUM;
	for (unsigned i = 0; i < cfg->nr_ksm_params; i++) {
		rc = vmmu_ksm_set_params(NULL, cfg->ksm_params[i], err, errlen);
		if (rc)
			return rc;
	}
	for (unsigned i = 0; i < cfg->nr_thp_params; i++) {
		rc = vmmu_khugepaged_set_params(NULL, cfg->thp_params[i], err, errlen);
		if (rc)
			return rc;
	}
	if (cfg->host_fragment_pct > 100) {
		snprintf(err, errlen, "--host-fragment %u: a percentage from 0 to 100",
			 cfg->host_fragment_pct);
		return -EINVAL;
	}

	/* One machine for every VM of the run, as one host runs them all (KSM merges across them).
	 * Its arena is reserved address space: err on the large side. */
	rc = vmmu_machine_create(machine_bytes(cfg, gc.mem_bytes, vms), &m);
	if (rc) {
		snprintf(err, errlen, "vmmu_machine_create: %s", strerror(-rc));
		return rc;
	}
	for (unsigned i = 0; i < cfg->nr_ksm_params && !rc; i++)
		rc = vmmu_ksm_set_params(m, cfg->ksm_params[i], err, errlen);
	for (unsigned i = 0; i < cfg->nr_thp_params && !rc; i++)
		rc = vmmu_khugepaged_set_params(m, cfg->thp_params[i], err, errlen);
	if (!rc && cfg->host_fragment_pct && (rc = vmmu_machine_fragment(m, cfg->host_fragment_pct)))
		snprintf(err, errlen, "vmmu_machine_fragment: %s", strerror(-rc));
	for (unsigned i = 0; i < vms && !rc; i++) {
		rc = guest_boot(&gc, data, cfg->seed, m, &gs[i]);
		if (rc) {
			snprintf(err, errlen, "%s", gs[i] && gs[i]->why[0] ? gs[i]->why : strerror(-rc));
			break;
		}
		rc = w->start(gs[i], a, err, errlen);
		gs[i]->steps_unlocked = w->steps_unlocked;
		if (rc && guest_fatal(gs[i]))
			snprintf(err, errlen, "%s", gs[i]->why);
		if (!rc && cfg->ksm && (rc = vmmu_vm_set_mergeable(gs[i]->vm, true)))
			snprintf(err, errlen, "vmmu_vm_set_mergeable: %s", strerror(-rc));
	}
	if (!rc) {
		struct sched_opts so = {
			.quantum = gc.quantum, .aging_period = cfg->aging_period,
			.khugepaged_period = cfg->khugepaged_period,
			.audit_period = cfg->audit_period, .progress = cfg->progress,
			.opaque = cfg->progress_opaque, .ksm = cfg->ksm ? m : NULL, .rss = res,
			.khugepaged = cfg->khugepaged ? m : NULL,
			.fragmented = cfg->host_fragment_pct ? m : NULL,
			.unfragment_ms = cfg->host_fragment_ms,
			.threads = gc.vcpus > 1 && !cfg->interleave,
			.pin = cfg->pin_vcpus,
		};
		double t0 = now();
		rc = sched_run(gs, vms, &so);
		res->seconds = now() - t0;
		if (rc) {
			for (unsigned i = 0; i < vms; i++) {
				if (guest_fatal(gs[i])) {
					snprintf(err, errlen, "%s", gs[i]->why);
					break;
				}
			}
		}
	}
	for (unsigned i = 0; i < vms && !rc; i++) {
		struct vmmu_stats st;
		rc = guest_digest(gs[i], &digests[i]);
		if (!rc)
			rc = vmmu_vm_get_stats(gs[i]->vm, &st);
		if (rc) {
			snprintf(err, errlen, "digest: %s", strerror(-rc));
			break;
		}
		sum_stats(&res->stats, &st);
		if (i == 0)
			machine = st;
		guest_counters(gs[i], res);
	}
	if (!rc)
		machine_stats(&res->stats, &machine);
	if (!rc) {
		res->digest = vms == 1 ? digests[0] : XXH64(digests, vms * sizeof(digests[0]), 0);
		res->mem_bytes = gc.mem_bytes;
		res->vcpus = gc.vcpus;
		res->vms = vms;
		res->opts = vmmu_vm_opts(gs[0]->vm);
	}
	if (rc && errlen && !err[0])
		snprintf(err, errlen, "%s: %s", w->info.name, strerror(-rc));
	for (unsigned i = 0; i < vms; i++)
		guest_free(gs[i]);
	vmmu_machine_destroy(m);
	return rc;
}
