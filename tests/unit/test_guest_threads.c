/* SPDX-License-Identifier: MIT */
/*
 * vmmu_run on vCPU threads (the default with more than one vCPU) against the interleaved run of
 * the same configuration: every workload whose threads write disjoint data gives the same
 * digest, page faults and user accesses in every MMU mode and in option sets of the two MMUs,
 * with 2 and 4 vCPU threads, with the MMU audit between rounds (every vCPU stopped). Built for
 * the TSan run too (suite threads): the guest kernel lock, the IPIs (TLB shootdowns, the switch
 * away from a dying mm) and the frames zeroed without the lock are all exercised.
 * VMMU_THREADS_REPEAT runs it more times.
 */
#define _GNU_SOURCE     /* sched_getaffinity of another thread, CPU_OR */
#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

#include "../common/test_assert.h"

struct wcase {
	const char *name;
	const char *kv[6];
	unsigned n;
	bool thp;
};

/* Threads on disjoint data (gups and migrate with slice=on), fork's processes, mmap's private
 * regions, clone-vms' two VMs. */
static const struct wcase cases[] = {
	{ "touch", { "size=4M" }, 1, false },
	{ "touch", { "size=16M" }, 1, true },
	{ "touch", { "size=6M", "stride=4096", "passes=2" }, 3, false },
	{ "gups", { "size=2M", "updates=20000", "slice=on" }, 3, false },
	{ "fork", { "iters=8", "size=1M" }, 2, false },
	{ "mmap", { "iters=20", "size=256K", "slice=on" }, 3, false },
	/* More threads than vCPUs, so they move between vCPUs: a shootdown missed leaves a stale
	 * TLB entry that reads the previous iteration's frame. */
	{ "mmap", { "iters=30", "size=64K", "slice=on", "verify=on", "threads=6" }, 5, false },
	{ "migrate", { "size=2M", "updates=20000", "interval=2000", "rounds=8", "slice=on" }, 5, false },
	{ "clone-vms", { "size=1M" }, 1, false },
};

/* The four modes with every optimization on, then option sets the threads meet differently:
 * the soft MMU with none (every guest table write-protected and emulated, no prefetch, no fast
 * fault) and on SVM (no no-trap), the hard MMU without the fast page fault. */
static const struct {
	enum vmmu_mmu mmu;
	enum vmmu_host host;
	uint32_t opts_off;
	const char *name;
} modes[] = {
	{ VMMU_MMU_NATIVE, VMMU_HOST_VMX, 0, "native" },
	{ VMMU_MMU_SHADOW, VMMU_HOST_VMX, 0, "shadow" },
	{ VMMU_MMU_EPT, VMMU_HOST_VMX, 0, "ept" },
	{ VMMU_MMU_NPT, VMMU_HOST_SVM, 0, "npt" },
	{ VMMU_MMU_SHADOW, VMMU_HOST_VMX, VMMU_OPT_NOTRAP | VMMU_OPT_UNSYNC | VMMU_OPT_PREFETCH |
	  VMMU_OPT_FASTPF, "shadow, no optimization" },
	{ VMMU_MMU_SHADOW, VMMU_HOST_SVM, 0, "shadow on SVM" },
	{ VMMU_MMU_EPT, VMMU_HOST_VMX, VMMU_OPT_FASTPF, "ept, no fast page fault" },
};

static int run(const struct wcase *w, unsigned vcpus, bool interleave, unsigned m, bool thp,
	       struct vmmu_guest_result *r, char *err, size_t errlen)
{
	struct vmmu_workload_args a;
	struct vmmu_guest_config cfg = {
		.vm = { .mmu = modes[m].mmu, .host = modes[m].host, .opts_off = modes[m].opts_off },
		.vcpus = vcpus, .seed = 11, .mem_bytes = 256ULL << 20, .guest_thp = thp,
		.interleave = interleave, .audit_period = modes[m].mmu == VMMU_MMU_NATIVE ? 0 : 32,
	};
	int rc = vmmu_workload_args(w->name, w->kv, w->n, &a, err, errlen);

	if (rc)
		return rc;
	memset(r, 0, sizeof(*r));
	return vmmu_run(&cfg, &a, r, err, errlen);
}

static void test_threads_as_interleaved(void **state)
{
	(void)state;
	const char *rep = getenv("VMMU_THREADS_REPEAT");
	unsigned repeat = rep ? (unsigned)atoi(rep) : 1;
	char err[256];

	for (unsigned k = 0; k < repeat; k++) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			for (unsigned vcpus = 2; vcpus <= 4; vcpus += 2) {
				/* Guest THP where every thread's slice is whole 2M pages (else the
				 * first thread to fault maps a 2M page its neighbour then finds). */
				bool thp = cases[i].thp && ((vcpus / 2 + k) & 1);
				struct vmmu_guest_result ref, r;
				int rc = run(&cases[i], vcpus, true, 0, thp, &ref, err, sizeof(err));

				TEST_ASSERT(rc == 0, "%s interleaved: %d %s", cases[i].name, rc, err);
				for (unsigned m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
					rc = run(&cases[i], vcpus, false, m, thp, &r, err, sizeof(err));
					TEST_ASSERT(rc == 0, "%s, %u vCPU threads, %s: %d %s", cases[i].name,
						    vcpus, modes[m].name, rc, err);
					TEST_ASSERT(r.digest == ref.digest && r.page_faults == ref.page_faults &&
						    r.user_accesses == ref.user_accesses && r.kills == 0,
						    "%s (thp %d), %u vCPU threads, %s: digest %llx pf %llu user %llu, interleaved %llx %llu %llu",
						    cases[i].name, thp, vcpus, modes[m].name,
						    (unsigned long long)r.digest, (unsigned long long)r.page_faults,
						    (unsigned long long)r.user_accesses,
						    (unsigned long long)ref.digest, (unsigned long long)ref.page_faults,
						    (unsigned long long)ref.user_accesses);
					TEST_ASSERT(r.vcpus == vcpus, "%u", r.vcpus);
				}
			}
		}
	}
}

/* The per-task digest sees what each task observed: another seed (other random words for
 * gups) changes it, threaded as interleaved; and one vCPU keeps the single-stream digest. */
static void test_digest_definition(void **state)
{
	(void)state;
	const struct wcase *gups = &cases[2];
	struct vmmu_guest_result a, b, one, one_i;
	char err[256];
	struct vmmu_workload_args wa;
	struct vmmu_guest_config cfg = { .vcpus = 2, .seed = 12, .mem_bytes = 256ULL << 20 };

	assert_int_equal(run(gups, 2, false, 0, false, &a, err, sizeof(err)), 0);
	assert_int_equal(vmmu_workload_args(gups->name, gups->kv, gups->n, &wa, err, sizeof(err)), 0);
	assert_int_equal(vmmu_run(&cfg, &wa, &b, err, sizeof(err)), 0);
	TEST_ASSERT(a.digest != b.digest, "seeds 11 and 12 gave one digest %llx",
		    (unsigned long long)a.digest);
	/* One vCPU: no threads, whatever @interleave says. */
	cfg.vcpus = 1;
	assert_int_equal(vmmu_run(&cfg, &wa, &one, err, sizeof(err)), 0);
	cfg.interleave = true;
	assert_int_equal(vmmu_run(&cfg, &wa, &one_i, err, sizeof(err)), 0);
	TEST_ASSERT(one.digest == one_i.digest && one.accesses == one_i.accesses &&
		    one.stats.sim_cycles == one_i.stats.sim_cycles, "one vCPU: %llx %llx",
		    (unsigned long long)one.digest, (unsigned long long)one_i.digest);
}

/* The migrate workload's own check (every page written in a round is in that round's dirty log)
 * holds with its writes racing the harvests on other vCPU threads, and its self-test (another
 * harvester takes a round's log) still fails it. */
static void test_migrate_check_threaded(void **state)
{
	(void)state;
	const struct wcase steal = { "migrate", { "size=2M", "updates=20000", "interval=500",
						  "rounds=20", "steal=3", "write=100" }, 6, false };
	const struct wcase shared = { "migrate", { "size=1M", "updates=40000", "interval=300",
						   "rounds=100" }, 4, false };
	struct vmmu_guest_result r;
	char err[256];

	for (unsigned m = 0; m < 4; m++) {
		int rc = run(&shared, 4, false, m, false, &r, err, sizeof(err));
		TEST_ASSERT(rc == 0, "%s: %d %s", modes[m].name, rc, err);
		assert_int_equal(r.dirty_rounds, 100);
		rc = run(&steal, 2, false, m, false, &r, err, sizeof(err));
		TEST_ASSERT(rc == -EFAULT && strstr(err, "dirty log does not have it"), "%s: %d %s",
			    modes[m].name, rc, err);
	}
}

/* Between rounds, with every vCPU thread stopped, the coordinator ages the address spaces, runs
 * the guest's khugepaged and audits the MMU on vCPU 0 (kernel paths whose shootdowns are IPIs to
 * the stopped threads). */
static void test_between_rounds(void **state)
{
	(void)state;
	const char *kv[] = { "size=16M", "passes=3" };
	struct vmmu_workload_args a;
	char err[256];

	assert_int_equal(vmmu_workload_args("touch", kv, 2, &a, err, sizeof(err)), 0);
	for (unsigned m = 0; m < 4; m++) {
		struct vmmu_guest_config cfg = {
			.vm = { .mmu = modes[m].mmu, .host = modes[m].host },
			.vcpus = 3, .seed = 5, .mem_bytes = 256ULL << 20, .guest_thp = true,
			.aging_period = 4, .khugepaged_period = 8, .audit_period = 4,
		};
		struct vmmu_guest_result r;
		int rc = vmmu_run(&cfg, &a, &r, err, sizeof(err));

		TEST_ASSERT(rc == 0, "%s: %d %s", modes[m].name, rc, err);
		TEST_ASSERT(r.young_pages > 0 && r.audits > 1 && r.kills == 0,
			    "%s: young %llu audits %llu", modes[m].name,
			    (unsigned long long)r.young_pages, (unsigned long long)r.audits);
	}
}

/* A trace replay reads ahead on a thread of its reader's own, and replays in batches (on one
 * vCPU; with vCPU threads, access by access under the kernel lock): with TSan, the reader's
 * hand-over of batches; the same run as record by record (batch=off), interleaved as threaded. */
static void test_trace_readahead(void **state)
{
	(void)state;
	char path[64] = "/tmp/vmmu_test_trace_XXXXXX", file[96], err[256];
	struct vmmu_guest_result ref, r;
	int fd = mkstemp(path);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	for (unsigned i = 0; i < 40000; i++) {
		unsigned long a = 0x10000000UL + (i * 2654435761UL) % (8UL << 20);
		fprintf(f, "I  %08lx,4\n S %lx,8\n L %lx,%u\n", 0x400000UL + i % 512 * 4, a & ~7UL,
			a, 1 + i % 8);
		if (i % 100 == 0)
			fprintf(f, " M %lx,4\n L %lx,32\n", a & ~7UL, a & ~31UL);
	}
	assert_int_equal(fclose(f), 0);
	snprintf(file, sizeof(file), "file=%s", path);
	for (unsigned m = 0; m < 4; m++) {
		const struct wcase batched = { "trace", { file }, 1, false };
		const struct wcase one = { "trace", { file, "batch=off" }, 2, false };

		assert_int_equal(run(&one, 1, true, m, false, &ref, err, sizeof(err)), 0);
		assert_int_equal(run(&batched, 1, true, m, false, &r, err, sizeof(err)), 0);
		TEST_ASSERT(r.digest == ref.digest && r.page_faults == ref.page_faults &&
			    r.user_accesses == ref.user_accesses && r.stats.exits == ref.stats.exits &&
			    r.stats.sim_cycles == ref.stats.sim_cycles && r.trace_records == 40000 * 3 + 800,
			    "%s: digest %llx/%llx, records %llu", modes[m].name, (unsigned long long)r.digest,
			    (unsigned long long)ref.digest, (unsigned long long)r.trace_records);
		assert_true(ref.page_faults >= 2048);
		assert_int_equal(run(&batched, 2, false, m, false, &r, err, sizeof(err)), 0);
		assert_int_equal(run(&batched, 2, true, m, false, &ref, err, sizeof(err)), 0);
		TEST_ASSERT(r.digest == ref.digest, "%s, 2 vCPU threads", modes[m].name);
	}
	unlink(path);
}

/* What the progress callback saw of the run's vCPU threads (named "vmmu vcpu N"): how many, how many were allowed exactly one CPU, and which CPUs those were. */
struct affinity_seen {
	unsigned calls, threads, single;
	cpu_set_t pinned_to;
	int allowed;            /* CPUs of an unpinned thread's mask, -1 when masks differ */
};

static void see_affinity(void *opaque, double fraction, uint64_t accesses)
{
	struct affinity_seen *s = opaque;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	(void)fraction, (void)accesses;
	assert_non_null(d);
	s->calls++;
	while ((e = readdir(d))) {
		pid_t tid = (pid_t)atoi(e->d_name);
		cpu_set_t set;

		char path[64], name[32] = "";
		FILE *f;

		/* The vCPU threads by their names: liburcu's call_rcu thread is there too. */
		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)tid);
		if (tid <= 0 || !(f = fopen(path, "r")))
			continue;
		if (!fgets(name, sizeof(name), f))
			name[0] = 0;
		fclose(f);
		if (strncmp(name, "vmmu vcpu ", 10) || sched_getaffinity(tid, sizeof(set), &set))
			continue;
		s->threads++;
		if (CPU_COUNT(&set) == 1) {
			s->single++;
			CPU_OR(&s->pinned_to, &s->pinned_to, &set);
		}
		if (s->allowed == 0)
			s->allowed = CPU_COUNT(&set);
		else if (s->allowed != CPU_COUNT(&set))
			s->allowed = -1;
	}
	closedir(d);
}

/* --pin-vcpus: vCPU thread i on the i-th CPU the process may run on, modulo their number; the
 * digest is the run's as interleaved. Unpinned, every vCPU thread has the process's mask. */
static void test_pin_vcpus(void **state)
{
	(void)state;
	const char *kv[] = { "size=64M" };
	struct vmmu_workload_args a;
	struct vmmu_guest_result ref, r;
	cpu_set_t mine;
	char err[256];
	int nr;

	assert_int_equal(sched_getaffinity(0, sizeof(mine), &mine), 0);
	nr = CPU_COUNT(&mine);
	assert_int_equal(vmmu_workload_args("touch", kv, 1, &a, err, sizeof(err)), 0);
	for (unsigned pin = 0; pin < 2; pin++) {
		struct affinity_seen seen = { 0 };
		struct vmmu_guest_config cfg = {
			.vm = { .mmu = VMMU_MMU_SHADOW, .host = VMMU_HOST_VMX },
			.vcpus = 3, .seed = 5, .mem_bytes = 256ULL << 20, .pin_vcpus = pin,
			/* Short turns: many rounds, so the callback (every 64 turns) runs often. */
			.quantum = 8, .progress = see_affinity, .progress_opaque = &seen,
		};
		int rc = vmmu_run(&cfg, &a, &r, err, sizeof(err));
		unsigned want_cpus = nr < 3 ? (unsigned)nr : 3, k = 0;

		TEST_ASSERT(rc == 0, "pin %u: %d %s", pin, rc, err);
		TEST_ASSERT(seen.calls >= 4 && seen.threads == 3 * seen.calls,
			    "pin %u: %u calls saw %u threads", pin, seen.calls, seen.threads);
		if (!pin) {
			TEST_ASSERT(seen.allowed == nr, "unpinned: masks of %d CPUs, the process's %d",
				    seen.allowed, nr);
			cfg.interleave = true;
			cfg.progress = NULL;
			assert_int_equal(vmmu_run(&cfg, &a, &ref, err, sizeof(err)), 0);
			continue;
		}
		TEST_ASSERT(r.digest == ref.digest, "pinned: digest %llx, interleaved %llx",
			    (unsigned long long)r.digest, (unsigned long long)ref.digest);
		TEST_ASSERT(seen.single == seen.threads, "pinned: %u of %u threads on one CPU",
			    seen.single, seen.threads);
		/* The first min(3, allowed) allowed CPUs, in order, and no other. */
		for (int cpu = 0; cpu < CPU_SETSIZE && k < want_cpus; cpu++)
			if (CPU_ISSET(cpu, &mine)) {
				TEST_ASSERT(CPU_ISSET(cpu, &seen.pinned_to), "CPU %d unused", cpu);
				k++;
			}
		TEST_ASSERT((unsigned)CPU_COUNT(&seen.pinned_to) == want_cpus,
			    "pinned to %d CPUs, want %u", CPU_COUNT(&seen.pinned_to), want_cpus);
		if (nr == 1)
			print_message("one CPU allowed: pinned and unpinned masks are alike\n");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_as_interleaved),
		cmocka_unit_test(test_digest_definition),
		cmocka_unit_test(test_migrate_check_threaded),
		cmocka_unit_test(test_between_rounds),
		cmocka_unit_test(test_trace_readahead),
		cmocka_unit_test(test_pin_vcpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
