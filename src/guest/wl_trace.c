/* SPDX-License-Identifier: MIT */
/*
 * The trace workload: replay of a valgrind lackey trace (lackey.c reads it) by one guest process
 * whose address space is the traced program's. The process starts empty and grows on demand: a
 * fault at an address no VMA holds maps the 2M-aligned chunk around it (readable, writable,
 * executable, demand-zero; mm->autogrow, fault.c), so any user address of the trace is allowed.
 *
 * A record becomes accesses of at most 8 bytes (lackey reports up to the size of the widest
 * vector access): I a fetch, L a load, S a store of a value made from the record's index and the
 * seed, M a load then a store of the value plus one. Records reaching at or above USER_TOP (the
 * vsyscall page, say) cannot be user accesses of a guest process: they are counted as skipped.
 * A malformed line stops the run with its number and text.
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wl.h"

enum { TRACE_FILE, TRACE_LIMIT };

static const struct vmmu_workload_param trace_params[] = {
	{ "file", VMMU_PARAM_PATH, NULL, "lackey output (valgrind --tool=lackey --trace-mem=yes), plain or gzip'd" },
	{ "limit", VMMU_PARAM_UINT, "0", "records to replay at most (0: all)" },
	{ NULL, 0, NULL, NULL },
};

struct trace_wl {
	struct vmmu_lackey_reader *r;
	const char *path;
	uint64_t limit, recno;
};

static double trace_progress(struct guest *g)
{
	const struct trace_wl *w = g->wl;
	return w && w->r ? vmmu_lackey_progress(w->r) : 0;
}

static void trace_free(void *p)
{
	struct trace_wl *w = p;
	if (w)
		vmmu_lackey_close(w->r);
	free(w);
}

static int trace_step(struct guest *g, struct task *t)
{
	struct trace_wl *w = g->wl;
	struct vmmu_lackey_rec rec;
	uint64_t value;
	int rc;

	if (w->limit && w->recno == w->limit)
		return wl_exit(g, t, 0);
	rc = vmmu_lackey_next(w->r, &rec);
	if (rc == 0)
		return wl_exit(g, t, 0);
	if (rc < 0)
		return guest_fail(g, rc, "trace: %s: %s", w->path, vmmu_lackey_error(w->r));
	w->recno++;
	g->cnt.trace_records++;
	if (rec.addr >= USER_TOP || rec.size > USER_TOP - rec.addr) {
		g->cnt.trace_skipped++;
		return STEP_CONT;
	}
	value = (w->recno * 0x9e3779b97f4a7c15ULL) ^ g->seed;
	for (uint32_t off = 0; off < rec.size; off += 8) {
		uint64_t va = rec.addr + off, v = value;
		unsigned len = rec.size - off < 8 ? rec.size - off : 8;

		switch (rec.kind) {
		case VMMU_LACKEY_INSTR:
			rc = uaccess(g, t, va, len, VMMU_ACC_FETCH, &v);
			break;
		case VMMU_LACKEY_LOAD:
			rc = uaccess(g, t, va, len, VMMU_ACC_READ, &v);
			break;
		case VMMU_LACKEY_STORE:
			rc = uaccess(g, t, va, len, VMMU_ACC_WRITE, &v);
			break;
		case VMMU_LACKEY_MODIFY:
			rc = uaccess(g, t, va, len, VMMU_ACC_READ, &v);
			if (!rc) {
				v++;
				rc = uaccess(g, t, va, len, VMMU_ACC_WRITE, &v);
			}
			break;
		}
		if (rc == -EFAULT && g->tombs[t->pid].signal == VMMU_SIGKILL) {
			/* Killed for want of guest memory: the replay did not do what was asked. */
			char have[32], want[32];

			vmmu_format_size(g->mem_bytes, have, sizeof(have));
			vmmu_format_size(g->mem_bytes * 2, want, sizeof(want));
			return guest_fail(g, -ENOMEM, "trace: %s: the guest ran out of memory at record %"
					  PRIu64 " (%s of guest RAM); replay with a larger --mem, such as "
					  "--mem %s", w->path, w->recno, have, want);
		}
		if (rc)
			return rc == -EFAULT ? STEP_DEAD : rc;
	}
	return STEP_CONT;
}

static uint64_t trace_need(const struct vmmu_workload_args *a, unsigned vcpus)
{
	return PROC_OVERHEAD;   /* unknown before the replay: the default guest RAM is 1G */
}

static int trace_start(struct guest *g, const struct vmmu_workload_args *a, char *err, size_t len)
{
	struct trace_wl *w = calloc(1, sizeof(*w));
	struct gcpu *c = &g->cpus[0];
	struct mm *mm;
	struct task *t;
	int rc;

	if (!w)
		return -ENOMEM;
	g->wl = w;
	g->wl_free = trace_free;
	g->wl_progress = trace_progress;
	w->path = a->s[TRACE_FILE];
	w->limit = a->u[TRACE_LIMIT];
	rc = vmmu_lackey_open(w->path, &w->r);
	if (rc) {
		snprintf(err, len, "trace: %s: %s", w->path, strerror(-rc));
		return rc;
	}
	cpu_kernel(g, c);
	rc = mm_create(g, c, &mm);
	if (rc)
		return rc;
	mm->autogrow = true;
	t = task_new(g, NULL, mm, -1);
	if (!t) {
		free(mm);
		return -ENOMEM;
	}
	t->step = trace_step;
	return 0;
}

const struct wl_ops wl_trace = {
	.info = { "trace", "replay of a valgrind lackey trace (--param file=PATH) in one process",
		  trace_params, 1 },
	.need = trace_need,
	.start = trace_start,
};
