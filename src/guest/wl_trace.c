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
 *
 * Speed (a replay is millions of records a second): the reader decodes ahead on a thread of its
 * own (VMMU_LACKEY_READAHEAD), and a step takes the records of the rest of its time slice at
 * once, their one-access records made by one uaccess_batch; the scheduler's count of steps, and
 * so the run, is the same as one record a step (batch=off does that, the reference).
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wl.h"

enum { TRACE_FILE, TRACE_LIMIT, TRACE_BATCHED };

static const struct vmmu_workload_param trace_params[] = {
	{ "file", VMMU_PARAM_PATH, NULL, "lackey output (valgrind --tool=lackey --trace-mem=yes), plain or gzip'd" },
	{ "limit", VMMU_PARAM_UINT, "0", "records to replay at most (0: all)" },
	{ "batch", VMMU_PARAM_BOOL, "on", "records of a time slice in one batch of accesses (off: one by one; the same run, slower)" },
	{ NULL, 0, NULL, NULL },
};

#define TRACE_BATCH 64

struct trace_wl {
	struct vmmu_lackey_reader *r;
	const char *path;
	uint64_t limit, recno;
	bool batch;
	struct vmmu_lackey_rec recs[TRACE_BATCH];   /* the records a step took */
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

/* The end of the replay, or -EFAULT, as the step's result. */
static int trace_failed(struct guest *g, struct task *t, struct trace_wl *w, int rc,
			uint64_t recno)
{
	if (rc == -EFAULT && g->tombs[t->pid].signal == VMMU_SIGKILL) {
		/* Killed for want of guest memory: the replay did not do what was asked. */
		char have[32], want[32];

		vmmu_format_size(g->mem_bytes, have, sizeof(have));
		vmmu_format_size(g->mem_bytes * 2, want, sizeof(want));
		return guest_fail(g, -ENOMEM, "trace: %s: the guest ran out of memory at record %"
				  PRIu64 " (%s of guest RAM); replay with a larger --mem, such as "
				  "--mem %s", w->path, recno, have, want);
	}
	return rc == -EFAULT ? STEP_DEAD : rc;
}

static inline uint64_t trace_value(const struct guest *g, uint64_t recno)
{
	return (recno * 0x9e3779b97f4a7c15ULL) ^ g->seed;
}

static inline bool trace_user(const struct vmmu_lackey_rec *rec)
{
	return rec->addr < USER_TOP && rec->size <= USER_TOP - rec->addr;
}

/* A record that is not one access of at most 8 bytes (a modify, whose store needs its load's
 * value; a wide one): its accesses one by one. */
static int trace_record(struct guest *g, struct task *t, struct trace_wl *w,
			const struct vmmu_lackey_rec *rec, uint64_t recno)
{
	const uint64_t value = trace_value(g, recno);
	int rc = 0;

	for (uint32_t off = 0; off < rec->size && !rc; off += 8) {
		uint64_t va = rec->addr + off, v = value;
		unsigned len = rec->size - off < 8 ? rec->size - off : 8;

		switch (rec->kind) {
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
	}
	return rc ? trace_failed(g, t, w, rc, recno) : STEP_CONT;
}

/* Records i..j-1 of the batch are done. */
static void trace_commit(struct guest *g, struct trace_wl *w, unsigned i, unsigned j)
{
	for (; i < j; i++) {
		w->recno++;
		g->cnt.trace_records++;
		if (!trace_user(&w->recs[i]))
			g->cnt.trace_skipped++;
	}
}

/*
 * A step is one record, as the scheduler counts them; but this step takes as many records as
 * its turn has steps left (at most TRACE_BATCH), and adds them to the turn's steps, so that the
 * rounds, and everything between them, come at the same records as one record a step would put
 * them. The one-access records among them go to the hardware model in one batch (uaccess_batch:
 * the same accesses, faults and observations as one by one); the others are made one by one in
 * their place. The end of the trace, its limit, or a malformed line ends the records taken; the
 * next step meets it as the first thing, as it would have.
 */
static int trace_step(struct guest *g, struct task *t)
{
	struct trace_wl *w = g->wl;
	struct gcpu *c = task_cpu(g, t);
	struct vmmu_access_op ops[TRACE_BATCH];
	unsigned char op_rec[TRACE_BATCH];   /* the record of each op */
	const unsigned base = c->steps;
	unsigned room = c->quantum - c->steps, m = 0, i = 0;
	int rc = 1;

	if (room > TRACE_BATCH)
		room = TRACE_BATCH;
	if (!w->batch)
		room = 1;
	while (m < room && !(w->limit && w->recno + m == w->limit)) {
		rc = vmmu_lackey_next(w->r, &w->recs[m]);
		if (rc != 1)
			break;   /* the reader gives the same answer again next time */
		m++;
	}
	if (!m) {
		if (rc < 0)
			return guest_fail(g, rc, "trace: %s: %s", w->path, vmmu_lackey_error(w->r));
		return wl_exit(g, t, 0);
	}
	while (i < m) {
		unsigned j = i, n = 0, done;

		/* The one-access records from i on, and their ops. */
		for (; j < m; j++) {
			const struct vmmu_lackey_rec *rec = &w->recs[j];

			if (!trace_user(rec))
				continue;
			if (rec->size > 8 || rec->kind == VMMU_LACKEY_MODIFY || !w->batch)
				break;
			ops[n].gva = rec->addr;
			ops[n].len = rec->size;
			ops[n].kind = rec->kind == VMMU_LACKEY_INSTR ? VMMU_ACC_FETCH :
				      rec->kind == VMMU_LACKEY_STORE ? VMMU_ACC_WRITE : VMMU_ACC_READ;
			ops[n].val = trace_value(g, w->recno + 1 + (j - i));
			op_rec[n++] = (unsigned char)j;
		}
		for (unsigned k = 0; k < n; k += done) {
			rc = uaccess_batch(g, t, ops + k, n - k, &done);
			if (rc) {
				/* The task ended at this op's record. */
				unsigned at = op_rec[k + done];
				trace_commit(g, w, i, at + 1);
				c->steps = base + at;
				return trace_failed(g, t, w, rc, w->recno);
			}
		}
		trace_commit(g, w, i, j);
		if (j < m) {
			trace_commit(g, w, j, j + 1);
			rc = trace_record(g, t, w, &w->recs[j], w->recno);
			if (rc != STEP_CONT) {
				c->steps = base + j;
				return rc;
			}
			j++;
		}
		i = j;
	}
	c->steps = base + m - 1;   /* the scheduler counts the last */
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
	w->batch = a->u[TRACE_BATCHED];
	rc = vmmu_lackey_open_flags(w->path, VMMU_LACKEY_READAHEAD, &w->r);
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
