/* SPDX-License-Identifier: MIT */
/*
 * khugepaged.c: khugepaged, the collapse of 2M ranges mapped with 4K pages into THPs, over the
 * THP-eligible VMAs of the mms that share one arena (Linux's mm/khugepaged.c, anonymous memory
 * only).
 *
 * A pass scans pages_to_scan pages (a 2M range counts 512 whatever it holds, as the kernel's
 * progress does), in mm order then hva order, resuming where the last pass stopped; a full scan
 * is one trip over every registered mm. A range is collapsed (mm.c, host_mm_collapse_scan) when
 * 4K pages map it, at most max_ptes_none of its 512 entries are none, none maps a KSM page and
 * one at least was referenced: a new 2M block gets the bytes of its pages under the MMU
 * notifiers, and one huge mapping replaces the 512. A failed 2M allocation ends the pass, and
 * the next one comes alloc_sleep_millisecs later instead of scan_sleep_millisecs (the kernel's
 * khugepaged_alloc_sleep). The model's buddy allocator has no compaction: `defrag` is kept (the
 * kernel's knob, so settings written for Linux apply) and changes nothing.
 *
 * Passes run when the caller says (host_khugepaged_scan: vmmu_run's deterministic step, on the
 * run's clock), or on a thread of their own (host_khugepaged_start: real milliseconds between
 * passes), never both at once for one instance.
 *
 * Locking: kh->lock (a mutex, the kernel's khugepaged_mutex) guards the mm list, the cursor, the
 * knobs and the counters; it is taken before any mm->lock (khugepaged.lock > host_mm.lock) and
 * never together with ksm.lock. The thread's stop flag is under kh->lock too, with a condition
 * variable the stop signals so it does not wait out a sleep.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host/host.h"
#include "host/host_internal.h"

struct host_khugepaged {
	pthread_mutex_t lock;
	pthread_cond_t wake;             /* signalled by host_khugepaged_stop */
	struct host_arena *arena;        /* constant */
	struct host_mm **mms;            /* registered, in registration order */
	size_t nr_mms, cap_mms;
	size_t cur_mm;                   /* the mm being scanned */
	hva_t cur_hva;                   /* where in it */
	struct host_khugepaged_params p;
	struct host_khugepaged_stats st;
	bool last_alloc_failed;          /* the last pass ended on a failed allocation */
	pthread_t thread;
	bool running, stop;              /* the thread exists / must exit */
	bool stopping;                   /* a stop is joining it: no start meanwhile */
};

static const struct host_khugepaged_params khugepaged_defaults = {
	.pages_to_scan = 4096, .scan_sleep_millisecs = 10000, .alloc_sleep_millisecs = 60000,
	.max_ptes_none = 511, .defrag = 1,
};

/* The knobs, their ranges as /sys/kernel/mm/transparent_hugepage/khugepaged takes them. */
static const struct host_knob khugepaged_knobs[] = {
	{ "pages_to_scan", offsetof(struct host_khugepaged_params, pages_to_scan), 1, 1u << 30 },
	{ "scan_sleep_millisecs", offsetof(struct host_khugepaged_params, scan_sleep_millisecs), 0,
	  1u << 30 },
	{ "alloc_sleep_millisecs", offsetof(struct host_khugepaged_params, alloc_sleep_millisecs), 0,
	  1u << 30 },
	{ "max_ptes_none", offsetof(struct host_khugepaged_params, max_ptes_none), 0, 511 },
	{ "defrag", offsetof(struct host_khugepaged_params, defrag), 0, 1 },
	{ NULL, 0, 0, 0 },
};

int host_khugepaged_create(struct host_arena *a, struct host_khugepaged **out)
{
	struct host_khugepaged *kh;
	pthread_condattr_t ca;
	int rc;

	if (!a || !out)
		return -EINVAL;
	kh = calloc(1, sizeof(*kh));
	if (!kh)
		return -ENOMEM;
	kh->arena = a;
	kh->p = khugepaged_defaults;
	rc = -pthread_mutex_init(&kh->lock, NULL);
	if (rc)
		goto out_free;
	/* The thread's sleeps are measured on the monotonic clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = -pthread_cond_init(&kh->wake, &ca);
	pthread_condattr_destroy(&ca);
	if (rc) {
		pthread_mutex_destroy(&kh->lock);
		goto out_free;
	}
	*out = kh;
	return 0;
out_free:
	free(kh);
	return rc;
}

void host_khugepaged_destroy(struct host_khugepaged *kh)
{
	if (!kh)
		return;
	host_khugepaged_stop(kh);
	pthread_cond_destroy(&kh->wake);
	pthread_mutex_destroy(&kh->lock);
	free(kh->mms);
	free(kh);
}

int host_khugepaged_add_mm(struct host_khugepaged *kh, struct host_mm *mm)
{
	int rc = 0;

	if (!kh || !mm || host_mm_arena(mm) != kh->arena)
		return -EINVAL;
	pthread_mutex_lock(&kh->lock);
	for (size_t i = 0; i < kh->nr_mms; i++)
		if (kh->mms[i] == mm)
			goto out;
	if (kh->nr_mms == kh->cap_mms) {
		size_t cap = kh->cap_mms ? 2 * kh->cap_mms : 4;
		struct host_mm **m = realloc(kh->mms, cap * sizeof(*m));

		if (!m) {
			rc = -ENOMEM;
			goto out;
		}
		kh->mms = m;
		kh->cap_mms = cap;
	}
	kh->mms[kh->nr_mms++] = mm;
	host_mm_set_underused_max_none(mm, (unsigned)kh->p.max_ptes_none);
out:
	pthread_mutex_unlock(&kh->lock);
	return rc;
}

void host_khugepaged_remove_mm(struct host_khugepaged *kh, struct host_mm *mm)
{
	size_t i;

	if (!kh || !mm)
		return;
	pthread_mutex_lock(&kh->lock);
	for (i = 0; i < kh->nr_mms && kh->mms[i] != mm; i++)
		;
	if (i < kh->nr_mms) {
		memmove(&kh->mms[i], &kh->mms[i + 1], (kh->nr_mms - i - 1) * sizeof(*kh->mms));
		kh->nr_mms--;
		if (kh->cur_mm == i)
			kh->cur_hva = 0;         /* the next mm, from its start */
		else if (kh->cur_mm > i)
			kh->cur_mm--;
		if (kh->cur_mm >= kh->nr_mms)
			kh->cur_mm = 0;
	}
	pthread_mutex_unlock(&kh->lock);
}

int host_khugepaged_param_check(const char *key, uint64_t val, uint64_t *min, uint64_t *max)
{
	return host_knob_check(khugepaged_knobs, key, val, min, max);
}

int host_khugepaged_get_param(struct host_khugepaged *kh, const char *key, uint64_t *val)
{
	if (!kh || !val)
		return -EINVAL;
	return host_knob_get(khugepaged_knobs, &kh->lock, &kh->p, key, val);
}

int host_khugepaged_set_param(struct host_khugepaged *kh, const char *key, uint64_t val)
{
	const struct host_knob *kn = host_knob_find(khugepaged_knobs, key);

	if (!kh || !kn)
		return kh ? -ENOENT : -EINVAL;
	if (val < kn->min || val > kn->max)
		return -EINVAL;
	pthread_mutex_lock(&kh->lock);
	*host_knob_field(&kh->p, kn) = val;
	/* The shrinker of underused THPs takes the same threshold. */
	if (kn->off == offsetof(struct host_khugepaged_params, max_ptes_none))
		for (size_t i = 0; i < kh->nr_mms; i++)
			host_mm_set_underused_max_none(kh->mms[i], (unsigned)val);
	/* A sleeping thread takes the new sleep at once, as writing the sysfs file wakes it. */
	pthread_cond_signal(&kh->wake);
	pthread_mutex_unlock(&kh->lock);
	return 0;
}

void host_khugepaged_get_params(struct host_khugepaged *kh, struct host_khugepaged_params *p)
{
	pthread_mutex_lock(&kh->lock);
	*p = kh->p;
	pthread_mutex_unlock(&kh->lock);
}

/* One pass; kh->lock held. */
static uint64_t scan_locked(struct host_khugepaged *kh)
{
	struct host_collapse_ctl c = { .max_ptes_none = (unsigned)kh->p.max_ptes_none,
				       .budget = kh->p.pages_to_scan };
	unsigned mms_done = 0;

	kh->st.passes++;
	/* Every mm reached its end once in this pass: nothing more to see until the next. */
	while (c.budget && !c.alloc_failed && kh->nr_mms && mms_done <= kh->nr_mms) {
		if (!host_mm_collapse_scan(kh->mms[kh->cur_mm], &kh->cur_hva, &c))
			break;
		mms_done++;
		if (++kh->cur_mm == kh->nr_mms) {
			kh->cur_mm = 0;
			kh->st.full_scans++;
		}
	}
	kh->st.pages_scanned += c.scanned;
	kh->st.pages_collapsed += c.collapsed;
	kh->st.alloc_failed += c.alloc_failed;
	kh->last_alloc_failed = c.alloc_failed != 0;
	return c.collapsed;
}

/* How long khugepaged sleeps after the last pass: the alloc sleep if it found no 2M block. */
static uint64_t next_sleep_ms(const struct host_khugepaged *kh)
{
	return kh->last_alloc_failed ? kh->p.alloc_sleep_millisecs : kh->p.scan_sleep_millisecs;
}

int host_khugepaged_scan(struct host_khugepaged *kh, uint64_t *sleep_ms)
{
	uint64_t collapsed;

	if (!kh)
		return -EINVAL;
	pthread_mutex_lock(&kh->lock);
	collapsed = scan_locked(kh);
	if (sleep_ms)
		*sleep_ms = next_sleep_ms(kh);
	pthread_mutex_unlock(&kh->lock);
	return collapsed > (uint64_t)INT32_MAX ? INT32_MAX : (int)collapsed;
}

void host_khugepaged_get_stats(struct host_khugepaged *kh, struct host_khugepaged_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!kh)
		return;
	pthread_mutex_lock(&kh->lock);
	*st = kh->st;
	pthread_mutex_unlock(&kh->lock);
}

/* The thread: a pass, then a sleep of the knob's length on the monotonic clock, until stopped. */
static void *khugepaged_thread(void *arg)
{
	struct host_khugepaged *kh = arg;

	pthread_mutex_lock(&kh->lock);
	while (!kh->stop) {
		uint64_t ms;
		struct timespec until;

		scan_locked(kh);
		ms = next_sleep_ms(kh);
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += (time_t)(ms / 1000);
		until.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		if (!kh->stop)
			pthread_cond_timedwait(&kh->wake, &kh->lock, &until);
	}
	pthread_mutex_unlock(&kh->lock);
	return NULL;
}

int host_khugepaged_start(struct host_khugepaged *kh)
{
	int rc;

	if (!kh)
		return -EINVAL;
	pthread_mutex_lock(&kh->lock);
	if (kh->running || kh->stopping) {
		rc = -EBUSY;
		goto out;
	}
	kh->stop = false;
	rc = -pthread_create(&kh->thread, NULL, khugepaged_thread, kh);
	kh->running = rc == 0;
out:
	pthread_mutex_unlock(&kh->lock);
	return rc;
}

void host_khugepaged_stop(struct host_khugepaged *kh)
{
	pthread_t t;

	if (!kh)
		return;
	pthread_mutex_lock(&kh->lock);
	if (!kh->running || kh->stopping) {
		/* Not running, or another stop is joining it. */
		pthread_mutex_unlock(&kh->lock);
		return;
	}
	kh->stop = true;
	kh->stopping = true;
	t = kh->thread;
	pthread_cond_signal(&kh->wake);
	pthread_mutex_unlock(&kh->lock);
	pthread_join(t, NULL);
	pthread_mutex_lock(&kh->lock);
	kh->running = false;
	kh->stopping = false;
	pthread_mutex_unlock(&kh->lock);
}
