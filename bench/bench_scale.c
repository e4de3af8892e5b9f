/*
 * vCPU-thread scaling through the public API: N vCPUs, each on its own host thread, run the same
 * total work split into N slices, under native, shadow, EPT and NPT; the figure is accesses per
 * second and its ratio to 1 vCPU measured in the same run. Two patterns:
 *   touch  the first write of every 4K page of a region (each vCPU a contiguous slice of one
 *          address space, so the upper levels of the shadow / EPT / NPT tables are shared): every
 *          access a fault under an MMU (the fault path's scaling), a host first touch natively
 *   gups   8-byte read-modify-writes at random pages of a warm region, each vCPU its own random
 *          stream over the whole region (TLB misses and walks, no exits: the hardware model's
 *          scaling); addresses are hinted to their vCPU (vmmu_vcpu_prefetch) in batches of -d
 *          (default 8; 0: none), each batch from d to 2d updates before its addresses are made,
 *          so that host cache misses overlap as the host loop's do in the out-of-order core
 * Guest page tables are built before the run (the guest itself takes no #PF), and every page is
 * touched once before the first round, by one thread in gpa order (a VMM's preallocation: each
 * slice in contiguous host frames), so host memory is resident: before each touch round the
 * data slot is deleted and added back on the same memory, and the round measures the MMU's faults
 * (under native, with no MMU, walks and TLB misses only). The VMs of every thread count are made
 * first and their rounds alternate (1, 2, 4, 1, 2, 4, ...), so that the machine's drift in speed
 * falls on all of them alike. Each point is the best of R rounds, the median beside; the ratio to
 * 1 vCPU is best against best, the paired ratio the median over rounds of the round's rate against
 * the 1-vCPU round just before it (the steadier figure on a noisy machine); the CPU time an access
 * is the CPU seconds of the round's threads over its accesses (median over rounds), and its paired
 * ratio the median of each round's against the 1-vCPU round's: what a fault or an access costs in
 * CPU with more threads, whatever the machine's scheduling (with perfect scaling 1.00x; two
 * threads at 1.25x cannot pass 1.6x however the CPUs are shared); the lock wait is
 * vmmu_stats.mmu_lock_wait_ns per round (all vCPUs, the warm-up included), and the fine-lock
 * waits are vmmu_stats.sp_lock_contended per round. The soft MMU is
 * measured under --mmu-lock big, shared (for it the same as big: its faults are exclusive) and
 * fine (faults shared, leaves installed under the shadow page's lock), the hard MMU under big and
 * fine (the same as shared for it). On a machine with C
 * cores, more than C vCPU threads cannot scale past C. The "host" rows run the same threads and
 * patterns on plain resident memory of this process (4K pages): the machine's own scaling of the
 * pattern, the ceiling for the VM rows.
 * vCPU thread i is pinned to the i-th CPU the process may run on (modulo their number), as vCPU
 * threads are pinned where a VM's scaling is measured: on these nested machines the two CPUs are
 * not alike (a thread the scheduler places on one of them ran a round at half the speed it had on
 * the other), so an unpinned round measures where the threads landed. -U leaves them unpinned.
 * -V adds, for each count of 2 or more, rows where every vCPU thread runs the same slice in a VM
 * of its own (same mode, lock and memory, one vCPU each: "N (a VM each)"), in the same
 * alternation: what the machine gives N threads of the model's work when nothing of a VM (MMU,
 * memslots, host mm) is shared, against which the one-VM rows' scaling can be read.
 * BENCH_SCALE_ROUNDS=1 in the environment prints every round's rate on stderr, and each of its
 * threads' wall and CPU time and thread id (to tell a profile's samples of each round apart).
 * Usage: bench_scale [-s MiB] [-u MILLION_UPDATES] [-R ROUNDS] [-t MAX_THREADS] [-m MODE] [-p PATTERN] [-l LOCK] [-d AHEAD] [-U] [-V]
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "vmmu/vmmu.h"

#define PTE_P  1ULL
#define PTE_W  2ULL
#define TABLES (1ULL << 36)     /* guest tables live in their own slot here */
#define TABLES_SIZE (64ULL << 20)
#define MAXT 8

static double clock_s(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

__attribute__((noreturn)) static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_scale: %s failed (%d)\n", what, rc);
	exit(1);
}

struct vmx {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v[MAXT];
	uint64_t next_table;
	uint64_t hva0;          /* slot 0's host memory */
	uint8_t *host;          /* the "host" rows: plain memory, no VM (vm NULL) */
	struct vmx *own[MAXT];  /* -V: vCPU i is own[i]'s only vCPU (vm is own[0]'s), else NULL */
};

static vmmu_gpa_t alloc_table(void *opaque)
{
	struct vmx *x = opaque;
	uint64_t t = x->next_table;
	if (t >= TABLES + TABLES_SIZE)
		return 0;
	x->next_table += 4096;
	return t;
}

static uint64_t set_slot(struct vmmu_vm *vm, uint32_t slot, uint64_t gpa, uint64_t size)
{
	uint64_t hva;
	int rc = vmmu_vm_mmap(vm, size, false, &hva);
	if (rc)
		die("mmap", rc);
	struct vmmu_userspace_memory_region r = { .slot = slot, .guest_phys_addr = gpa,
						  .memory_size = size, .userspace_addr = hva };
	if ((rc = vmmu_set_user_memory_region(vm, &r)))
		die("memslot", rc);
	return hva;
}

/* A VM in @mode with @bytes of guest memory identity-mapped by 4K pages, and @nv vCPUs. */
static void vm_make(struct vmx *x, enum vmmu_mmu mode, enum vmmu_mmu_lock lock, uint64_t bytes,
		    unsigned nv)
{
	struct vmmu_vm_config cfg = { .mmu = mode, .host = mode == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX,
				      .host_mem_bytes = 2 * bytes + (256ULL << 20), .mmu_lock = lock };
	int rc;

	memset(x, 0, sizeof(*x));
	if ((rc = vmmu_vm_create(&cfg, &x->vm)))
		die("vm create", rc);
	x->hva0 = set_slot(x->vm, 0, 0, bytes);
	set_slot(x->vm, 1, TABLES, TABLES_SIZE);
	x->next_table = TABLES;
	uint64_t root = alloc_table(x);
	for (uint64_t a = 0; a < bytes; a += 4096)
		if ((rc = vmmu_gpt_map(x->vm, root, 4, a, a, 1, PTE_P | PTE_W, alloc_table, x)))
			die("gpt map", rc);
	struct vmmu_regs regs = { .cr0 = 0x80010001, .cr3 = root, .cr4 = 0x20, .efer = 0x500 };
	for (unsigned i = 0; i < nv; i++) {
		if ((rc = vmmu_vcpu_create(x->vm, i, &x->v[i])))
			die("vcpu create", rc);
		if ((rc = vmmu_vcpu_set_regs(x->v[i], &regs)))
			die("set regs", rc);
	}
}

/* Delete slot 0 and add it back on the same host memory: the MMU drops every mapping of it
 * (and the vCPUs' TLBs are flushed) while the host pages stay resident, so the next touch faults
 * in the MMU only. */
static void slot_cycle(struct vmx *x, uint64_t bytes)
{
	struct vmmu_userspace_memory_region r = { .slot = 0, .userspace_addr = x->hva0 };
	int rc;

	if (x->own[0]) {
		for (unsigned i = 0; i < MAXT && x->own[i]; i++)
			slot_cycle(x->own[i], bytes);
		return;
	}
	if ((rc = vmmu_set_user_memory_region(x->vm, &r)))
		die("memslot delete", rc);
	r.memory_size = bytes;
	if ((rc = vmmu_set_user_memory_region(x->vm, &r)))
		die("memslot add", rc);
}

/* -V: @nv VMs of one vCPU each, as vm_make's; vCPU i of @x is VM i's. */
static void vm_make_own(struct vmx *x, enum vmmu_mmu mode, enum vmmu_mmu_lock lock, uint64_t bytes,
			unsigned nv)
{
	memset(x, 0, sizeof(*x));
	for (unsigned i = 0; i < nv; i++) {
		struct vmx *y = malloc(sizeof(*y));
		if (!y)
			die("malloc", 0);
		vm_make(y, mode, lock, bytes, 1);
		x->own[i] = y;
		x->v[i] = y->v[0];
	}
	x->vm = x->own[0]->vm;
}

/* The "host" rows: the same threads and patterns on plain memory of this process, resident (as
 * the VM's is after its warm-up), so each VM row's scaling can be read against the machine's. */
static void host_make(struct vmx *x, uint64_t bytes)
{
	memset(x, 0, sizeof(*x));
	x->host = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (x->host == MAP_FAILED)
		die("mmap", -1);
	(void)madvise(x->host, bytes, MADV_NOHUGEPAGE);   /* 4K pages, as the VM's */
}

enum pattern { TOUCH, GUPS };

/* gups: addresses hinted to the vCPU a batch at a time, this many a batch, a batch this many
 * updates ahead (-d; 0: no hints). */
#define GUPS_AHEAD_MAX 64
static unsigned gups_ahead = 8;

struct job {
	struct vmmu_vcpu *v;
	enum pattern p;
	uint64_t lo, hi;          /* touch: [lo, hi) */
	uint64_t bytes, n, seed;  /* gups: n updates over [0, bytes) */
	volatile uint64_t *host;  /* set: the same pattern on plain host memory */
	pthread_barrier_t *start;
	int cpu;                  /* pinned to it, or -1 */
	double t0, t1;            /* this thread's own start and end */
	double cpu_s;             /* this thread's CPU seconds from start to end */
	int tid;                  /* its thread id, for a profile's samples */
	int err;
} __attribute__((aligned(64)));   /* one job per cache line: threads share none */

/* gups: the next address of the stream of state *@s (xorshift) over @pages pages, 8-byte aligned;
 * the host loop and the VM's make the same stream. */
static inline uint64_t gups_next(uint64_t *s, uint64_t pages)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return ((x % pages) << 12) | ((x >> 40) & 0xff8);
}

static void *run_job(void *arg)
{
	struct job *j = arg;
	struct vmmu_access_result r;
	uint64_t x = 1;

	if (j->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(j->cpu, &set);
		if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set))
			fprintf(stderr, "bench_scale: cannot pin to CPU %d, unpinned\n", j->cpu);
	}
	j->tid = gettid();
	pthread_barrier_wait(j->start);
	j->t0 = now();
	j->cpu_s = clock_s(CLOCK_THREAD_CPUTIME_ID);
	if (j->host) {
		uint64_t s = j->seed, pages = j->bytes >> 12;

		if (j->p == TOUCH)
			for (uint64_t a = j->lo; a < j->hi; a += 4096)
				j->host[a / 8] = x;
		for (uint64_t i = 0; j->p == GUPS && i < j->n; i++) {
			uint64_t a = gups_next(&s, pages);
			j->host[a / 8] = j->host[a / 8] + 1;
		}
		goto out;
	}
	/* The loop keeps what it writes in locals: a store to the job on every access would share a
	 * line with the next job's, the very false sharing this benchmark exists to rule out. */
	struct vmmu_vcpu *v = j->v;
	int err = 0;
	if (j->p == TOUCH) {
		for (uint64_t a = j->lo, hi = j->hi; a < hi && !err; a += 4096) {
			err = vmmu_vcpu_access(v, a, 8, VMMU_ACC_WRITE, &x, &r);
			if (!err && r.status != VMMU_ACCESS_DONE)
				err = -1;
		}
		goto done;
	}
	/* The same addresses as the host loop's, in the same order. Hints go out in batches of d,
	 * the next d addresses once the d before them are made. Hinted one an update, the model
	 * waited on each prefetch in turn (a profile found 40% of a native run's samples on the
	 * prefetch instruction itself, as if it retired only once its host translation, a TLB miss
	 * over 64 MiB of 4K pages, is done); d issued together wait for one another's misses. */
	uint64_t s = j->seed, pages = j->bytes >> 12, n = j->n, ring[2 * GUPS_AHEAD_MAX];
	unsigned d = gups_ahead, size = 2 * d;
	for (unsigned k = 0; k < size; k++) {
		ring[k] = gups_next(&s, pages);
		vmmu_vcpu_prefetch(v, ring[k], VMMU_ACC_WRITE);
	}
	for (uint64_t i = 0; i < n && !err; i++) {
		uint64_t a;
		if (d) {
			unsigned k = (unsigned)(i % size);
			a = ring[k];
			if (k % d == d - 1) {   /* the half just used: refilled, a batch of hints */
				for (unsigned q = k + 1 - d; q <= k; q++) {
					ring[q] = gups_next(&s, pages);
					vmmu_vcpu_prefetch(v, ring[q], VMMU_ACC_WRITE);
				}
			}
		} else {
			a = gups_next(&s, pages);
		}
		err = vmmu_vcpu_access(v, a, 8, 0, &x, &r);
		x++;
		if (!err)
			err = vmmu_vcpu_access(v, a, 8, VMMU_ACC_WRITE, &x, &r);
	}
done:
	j->err = err;
out:
	j->t1 = now();
	j->cpu_s = clock_s(CLOCK_THREAD_CPUTIME_ID) - j->cpu_s;
	return NULL;
}

/* The CPUs vCPU threads are pinned to, in order; none with -U. */
static int pin_cpus[CPU_SETSIZE], nr_pin_cpus;

/* One round of @p with @nv vCPU threads on @x: its wall seconds, from the first thread's start
 * to the last one's end; *cpu gets the CPU seconds of all its threads. */
static double run(struct vmx *x, enum pattern p, unsigned nv, uint64_t bytes, uint64_t updates,
		  double *cpu)
{
	struct job jobs[MAXT];
	pthread_t tid[MAXT];
	pthread_barrier_t start;
	uint64_t slice = (bytes / nv) & ~4095ULL;

	pthread_barrier_init(&start, NULL, nv + 1);
	for (unsigned i = 0; i < nv; i++) {
		jobs[i] = (struct job){ .v = x->v[i], .host = (volatile uint64_t *)x->host, .p = p, .lo = i * slice,
					.hi = i + 1 == nv ? bytes : (i + 1) * slice, .bytes = bytes,
					.n = updates / nv, .seed = 0x9e3779b97f4a7c15ULL * (i + 1), .start = &start,
					.cpu = nr_pin_cpus ? pin_cpus[i % (unsigned)nr_pin_cpus] : -1 };
		pthread_create(&tid[i], NULL, run_job, &jobs[i]);
	}
	pthread_barrier_wait(&start);
	/* From the first thread's start to the last one's end: the main thread may be scheduled out
	 * for the whole of a short run on a 2-core machine. */
	double t0 = 1e300, t1 = 0;
	*cpu = 0;
	for (unsigned i = 0; i < nv; i++) {
		pthread_join(tid[i], NULL);
		*cpu += jobs[i].cpu_s;
		if (getenv("BENCH_SCALE_ROUNDS"))
			fprintf(stderr, "  thread %u (tid %d): %.1f ms, CPU %.1f ms\n", i, jobs[i].tid,
				(jobs[i].t1 - jobs[i].t0) * 1e3, jobs[i].cpu_s * 1e3);
		t0 = jobs[i].t0 < t0 ? jobs[i].t0 : t0;
		t1 = jobs[i].t1 > t1 ? jobs[i].t1 : t1;
	}
	double t = t1 - t0;
	pthread_barrier_destroy(&start);
	for (unsigned i = 0; i < nv; i++)
		if (jobs[i].err)
			die("guest access", jobs[i].err);
	return t;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* The median of @n values, sorted in place (so afterwards v[n - 1] is the largest). */
static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	static const char *const mode_names[] = { "native", "shadow", "ept", "npt", "host" };
	static const enum vmmu_mmu modes[] = { VMMU_MMU_NATIVE, VMMU_MMU_SHADOW, VMMU_MMU_EPT, VMMU_MMU_NPT };
	/* The MMU lock designs each mode has. The soft MMU's faults are exclusive under both big and
	 * shared (its leaf installs need the per-page locks); the hard MMU's are shared under both
	 * shared and fine, so it shows big and fine. */
	static const struct { int mode; enum vmmu_mmu_lock lock; const char *name; } configs[] = {
		{ 4, VMMU_MMU_LOCK_FINE, "-" },
		{ 0, VMMU_MMU_LOCK_FINE, "-" }, { 1, VMMU_MMU_LOCK_BIG, "big" },
		{ 1, VMMU_MMU_LOCK_SHARED, "shared" }, { 1, VMMU_MMU_LOCK_FINE, "fine" },
		{ 2, VMMU_MMU_LOCK_BIG, "big" }, { 2, VMMU_MMU_LOCK_FINE, "fine" },
		{ 3, VMMU_MMU_LOCK_BIG, "big" }, { 3, VMMU_MMU_LOCK_FINE, "fine" },
	};
	static const char *const pat_names[] = { "touch", "gups" };
	uint64_t mib = 64, mupdates = 4;
	int rounds = 3, maxt = 4, only_mode = -1, only_pat = -1, only_lock = -1, opt;
	bool pin = true, own = false;

	while ((opt = getopt(argc, argv, "s:u:R:t:m:p:l:d:UV")) != -1) {
		switch (opt) {
		case 's': mib = strtoull(optarg, NULL, 0); break;
		case 'u': mupdates = strtoull(optarg, NULL, 0); break;
		case 'R': rounds = atoi(optarg); break;
		case 't': maxt = atoi(optarg); break;
		case 'm':
			for (int i = 0; i < 5; i++)
				if (!strcmp(optarg, mode_names[i]))
					only_mode = i;
			if (only_mode < 0)
				die("-m (host, native, shadow, ept or npt)", 0);
			break;
		case 'l':
			only_lock = !strcmp(optarg, "fine")     ? VMMU_MMU_LOCK_FINE :
				    !strcmp(optarg, "shared") ? VMMU_MMU_LOCK_SHARED :
				    !strcmp(optarg, "big")    ? VMMU_MMU_LOCK_BIG : -2;
			if (only_lock < 0)
				die("-l (fine, shared or big)", 0);
			break;
		case 'p':
			only_pat = !strcmp(optarg, "touch") ? 0 : !strcmp(optarg, "gups") ? 1 : -2;
			if (only_pat < 0)
				die("-p (touch or gups)", 0);
			break;
		case 'd':
			gups_ahead = (unsigned)strtoul(optarg, NULL, 0);
			if (gups_ahead > GUPS_AHEAD_MAX)
				die("-d (0 to 64)", 0);
			break;
		case 'U': pin = false; break;
		case 'V': own = true; break;
		default:
			fprintf(stderr, "usage: bench_scale [-s MiB] [-u MILLION_UPDATES] [-R ROUNDS] [-t MAX_THREADS] [-m MODE] [-p PATTERN] [-l LOCK] [-d AHEAD] [-U] [-V]\n");
			return 2;
		}
	}
	if (!mib || mib > 4096 || !mupdates || rounds < 1 || rounds > 50 || maxt < 1 || maxt > MAXT)
		die("options", 0);
	if (mib * (unsigned)(32 - __builtin_clz((unsigned)maxt)) * (own ? (unsigned)maxt : 1) > 8192)
		die("-s: the VMs of every thread count live at once; MiB times their number over 8 GiB", 0);
	uint64_t bytes = mib << 20, updates = mupdates * 1000000;
	cpu_set_t allowed;
	if (pin && !sched_getaffinity(0, sizeof(allowed), &allowed))
		for (int c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &allowed))
				pin_cpus[nr_pin_cpus++] = c;
	printf("bench_scale: %llu MiB, %llu M gups updates (a read and a write each), best of %d rounds (median beside), vCPU threads %s\n",
	       (unsigned long long)mib, (unsigned long long)mupdates, rounds,
	       nr_pin_cpus ? "pinned one per CPU" : "unpinned");
	printf("| pattern | MMU | mmu_lock | vCPU threads | M accesses/s | median | ratio to 1 vCPU | paired ratio | CPU ns an access | CPU an access, paired ratio | lock wait ms | fine-lock waits |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
	for (int p = 0; p < 2; p++) {
		if (only_pat >= 0 && p != only_pat)
			continue;
		for (size_t c = 0; c < sizeof(configs) / sizeof(configs[0]); c++) {
			const int m = configs[c].mode;
			if ((only_mode >= 0 && m != only_mode) ||
			    (only_lock >= 0 && m >= 1 && m <= 3 && (int)configs[c].lock != only_lock))
				continue;
			/* Every thread count has its VM, made and warmed first; then the rounds alternate
			 * between them, so that a slow minute of this machine falls on all of them alike
			 * (measured one after the other, a drift of the machine's speed was the ratio). */
			struct vmx xs[8];
			double rate[8][50], cpu_ns[8][50], cpu;
			int nvs[8], nn = 0;
			for (int nv = 1; nv <= maxt; nv *= 2) {
				for (int sep = 0; sep < 2; sep++) {
					if (sep && (!own || nv == 1 || m == 4))
						continue;
					struct vmx *x = &xs[nn];
					nvs[nn++] = nv;
					if (m == 4)
						host_make(x, bytes);
					else if (sep)
						vm_make_own(x, modes[m], configs[c].lock, bytes, (unsigned)nv);
					else
						vm_make(x, modes[m], configs[c].lock, bytes, (unsigned)nv);
					/* Warm: every page faulted in, by one thread in gpa order, as a VMM
					 * that preallocates guest memory does: each vCPU's slice lies in
					 * contiguous host frames. Populated by the vCPU threads at once, the
					 * slices' frames interleaved 4K by 4K (the arena hands out frames in
					 * the order they are asked for), and each thread's stores landed beside
					 * the other's: native touch scaled 1.23-1.34x at 2 vCPUs, its CPU an
					 * access 1.35-1.46x, against 1.75x and 1.06x so (-V's rows: 2.0x). */
					if (sep)
						for (int i = 0; i < nv; i++)
							run(x->own[i], TOUCH, 1, bytes, 0, &cpu);
					else
						run(x, TOUCH, 1, bytes, 0, &cpu);
				}
			}
			for (int r = 0; r < rounds; r++) {
				for (int k = 0; k < nn; k++) {
					const unsigned nv = (unsigned)nvs[k];
					uint64_t accesses = p == TOUCH ? bytes >> 12 : 2 * (updates / nv) * nv;
					if (p == TOUCH && xs[k].vm)
						slot_cycle(&xs[k], bytes);
					rate[k][r] = accesses / run(&xs[k], (enum pattern)p, nv, bytes, updates, &cpu) / 1e6;
					cpu_ns[k][r] = cpu * 1e9 / (double)accesses;
					if (getenv("BENCH_SCALE_ROUNDS"))
						fprintf(stderr, "round %d, %u vCPUs: %.2f\n", r, nv, rate[k][r]);
				}
			}
			double base = 0;
			for (int k = 0; k < nn; k++) {
				struct vmx *x = &xs[k];
				struct vmmu_stats st = { 0 };
				double sorted[50], paired[50], cpu_own[50], cpu_paired[50];
				/* The VMs of the row: one, or with -V one a vCPU (their waits summed). */
				const bool each = x->own[0] != NULL;
				for (unsigned i = 0; i < MAXT && x->vm; i++) {
					struct vmmu_vm *vm = each ? (x->own[i] ? x->own[i]->vm : NULL) : i ? NULL : x->vm;
					struct vmmu_stats one = { 0 };
					if (!vm)
						break;
					if (vmmu_vm_stats(vm, &one, sizeof(one)))
						die("stats", 0);
					st.mmu_lock_wait_ns += one.mmu_lock_wait_ns;
					st.sp_lock_contended += one.sp_lock_contended;
					vmmu_vm_destroy(vm);
					free(x->own[i]);
				}
				if (!x->vm)
					munmap(x->host, bytes);
				for (int r = 0; r < rounds; r++) {
					/* Copies: rate[0] and cpu_ns[0] stay in round order for the pairing. */
					sorted[r] = rate[k][r];
					paired[r] = rate[k][r] / rate[0][r];
					cpu_own[r] = cpu_ns[k][r];
					cpu_paired[r] = cpu_ns[k][r] / cpu_ns[0][r];
				}
				double med = median(sorted, rounds), best = sorted[rounds - 1];
				if (k == 0)
					base = best;
				printf("| %s | %s | %s | %d%s | %.2f | %.2f | %.2fx | %.2fx | %.0f | %.2fx | %.1f | %.0f |\n",
				       pat_names[p], mode_names[m], configs[c].name, nvs[k],
				       each ? " (a VM each)" : "", best, med,
				       best / base, median(paired, rounds), median(cpu_own, rounds),
				       median(cpu_paired, rounds), (double)st.mmu_lock_wait_ns / 1e6 / rounds,
				       (double)st.sp_lock_contended / rounds);
				fflush(stdout);
			}
		}
	}
	return 0;
}
