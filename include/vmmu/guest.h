/* SPDX-License-Identifier: MIT */
/*
 * vmmu guest model (libvmmuguest): a guest OS that runs on vCPUs through the public API only, as
 * a kernel runs on hardware, and the workloads every MMU mode is measured on (docs/guest.md).
 *
 * Three layers of API:
 *  - workloads: vmmu_workload_*() describe them, vmmu_workload_args() checks KEY=VALUE parameters,
 *    vmmu_run() boots the VMs, runs one workload to its end and returns the result (digest,
 *    counters, the VMs' statistics);
 *  - the guest kernel, for tests and tools: vmmu_guest_create() boots one guest, then system
 *    calls (spawn, mmap, munmap, mprotect, brk, fork, exec, exit) and user-mode accesses on its
 *    processes, each run on the vCPU the task is pinned to;
 *  - the valgrind lackey trace reader (vmmu_lackey_*).
 *
 * Invariant (Transparency, docs/architecture.md): a run is a pure function of its configuration and seed
 * apart from the MMU mode and host options, so its digest is the same in every mode.
 * Errors: 0 or a negative errno; guest-visible faults (a process killed by SIGSEGV) are data.
 * Locking: none. A guest and a run belong to the calling thread; different guests may be used
 * from different threads. vmmu_run() with more than one vCPU runs them on threads of its own
 * (unless interleave), all joined before it returns.
 */
#ifndef VMMU_GUEST_H
#define VMMU_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmmu/vmmu.h"

#define VMMU_GUEST_MAX_VCPUS 64
#define VMMU_GUEST_MAX_VMS   16
#define VMMU_GUEST_MIN_MEM   (16ULL << 20)
#define VMMU_GUEST_MAX_MEM   (256ULL << 30)

struct vmmu_guest_config {
	struct vmmu_vm_config vm;   /* the machine; host_mem_bytes 0 = sized to the guest RAM */
	uint64_t mem_bytes;         /* guest RAM, a multiple of 4K; 0 = the workload's need
				     * rounded up to 1 GiB (vmmu_run), 64 MiB (vmmu_guest_create) */
	unsigned vcpus;             /* 1..VMMU_GUEST_MAX_VCPUS; 0 = 1 */
	unsigned vms;               /* vmmu_run: 1..VMMU_GUEST_MAX_VMS; 0 = the workload's default */
	bool guest_thp;             /* anonymous memory in 2M pages where a VMA allows */
	bool guest_1g;              /* anonymous mappings of 1 GiB or more in 1G pages, as
				     * MAP_HUGETLB | MAP_HUGE_1GB asks (1G aligned and rounded, cut
				     * only on 1G boundaries); a fault that finds no free 1G block
				     * falls back to smaller pages */
	bool no_pcid;               /* the kernel leaves CR4.PCIDE off (it uses PCIDs by default) */
	unsigned aging_period;      /* page aging every N scheduler rounds; 0 = off */
	unsigned khugepaged_period; /* the guest kernel's khugepaged (collapse of 4K-mapped 2M of
				     * THP memory into 2M pages) every N scheduler rounds; 0 = off */
	unsigned quantum;           /* workload steps per vCPU turn; 0 = 64 */
	unsigned audit_period;      /* vmmu_run: vmmu_vm_audit() every N scheduler rounds and at the
				     * end (a violation fails the run); 0 = never */
	uint64_t seed;
	/* vmmu_run calls this from time to time (every few million steps) with the fraction of
	 * the workload done and the accesses so far. */
	void (*progress)(void *opaque, double fraction, uint64_t accesses);
	void *progress_opaque;
	/* vmmu_run: KSM. Its VMs share one machine (vmmu_vm_create_on) either way; with @ksm their
	 * memslots are mergeable (vmmu_vm_set_mergeable) once the workload has started, and ksmd
	 * wakes between scheduler rounds on the run's clock, a millisecond every 1000 guest
	 * accesses (vmmu_ksm_run; with audit_period, vmmu_ksm_audit after every pass). Knobs:
	 * @ksm_params, each "KEY=VALUE[,KEY=VALUE...]" (vmmu_ksm_set_params). */
	bool ksm;
	const char *const *ksm_params;
	unsigned nr_ksm_params;
	/* vmmu_run: khugepaged wakes between scheduler rounds on the same clock
	 * (vmmu_khugepaged_run; with audit_period, vmmu_vm_audit of every VM after each pass that
	 * collapsed). Knobs: @thp_params, each "KEY=VALUE[,KEY=VALUE...]"
	 * (vmmu_khugepaged_set_params). Off by default, so runs that do not ask are as before. */
	bool khugepaged;
	const char *const *thp_params;
	unsigned nr_thp_params;
	/* vmmu_run: a fragmented host (vmmu_machine_fragment) of @host_fragment_pct percent of its
	 * free 2M blocks, made before the VMs boot and let go at @host_fragment_ms of the run's
	 * clock (0: held to the end). 0 percent: none. */
	unsigned host_fragment_pct;
	uint64_t host_fragment_ms;
	/* vmmu_run with more than one vCPU: each vCPU runs on its own host thread (the default),
	 * the guest kernel under its own lock, so MMU work of different vCPUs overlaps and counts
	 * vary from run to run (the digest does not: docs/guest.md). @interleave runs every vCPU
	 * on the caller's thread in fixed quanta instead: deterministic, bit for bit. */
	bool interleave;
	/* Threaded: vCPU thread i (vCPUs of VM 0 first, then VM 1's, ...) is pinned to the i-th
	 * CPU the process may run on, modulo their number, as a VM's vCPUs are pinned (libvirt's
	 * vcpupin) where its speed is measured: an unpinned thread runs where the scheduler put
	 * it, and the CPUs of a machine are not always alike. The coordinator is left where it is.
	 * The pin is a request: a CPU set the kernel refuses leaves the thread unpinned. */
	bool pin_vcpus;
};

/* The process's resident memory at one point of a run. */
struct vmmu_rss_sample {
	uint64_t accesses;          /* guest accesses so far */
	uint64_t rss_bytes;
};
#define VMMU_RSS_SAMPLES 64

/* What a run (or a guest so far) did. Counts are the guest's own; stats are the VMs'. */
struct vmmu_guest_result {
	uint64_t digest;            /* xxh64 of everything the guest can observe (docs/guest.md) */
	uint64_t accesses;          /* every access the guest issued, user and kernel */
	uint64_t user_accesses, kernel_accesses;
	uint64_t page_faults;       /* #PF delivered to the guest */
	uint64_t kills;             /* tasks killed by a signal (SIGSEGV, SIGBUS, OOM) */
	uint64_t forks, execs, exits, ctx_switches;
	uint64_t tlb_shootdowns;    /* flush requests sent to other vCPUs (IPIs) */
	uint64_t tlb_flushes;       /* full flushes of an address space the kernel issued */
	uint64_t invlpgs;           /* INVLPGs the kernel issued */
	uint64_t cow_copies, zero_fills, thp_allocs, thp_splits, young_pages;
	uint64_t mmio_accesses;
	uint64_t trace_records, trace_skipped;
	/* migrate (dirty logging): harvests of the dirty log, pages they reported dirty (the
	 * guest's own writes, and its kernel's and the MMU's A/D writes to page tables: these vary
	 * with the mode), pages the workload wrote under logging (every one found in its round's
	 * log), the fewest pages one harvest reported (over the VMs) */
	uint64_t dirty_rounds, dirty_pages, dirty_written, dirty_min_round;
	uint64_t mem_bytes;         /* guest RAM of each VM */
	unsigned vcpus, vms;
	uint32_t opts;              /* VMMU_OPT_* in effect (vmmu_vm_opts of the first VM) */
	uint64_t audits;            /* vmmu_vm_audit() calls, all passed */
	double seconds;             /* the workload's run (boot and the final digest excluded) */
	struct vmmu_stats stats;    /* summed over the VMs; the machine's figures (host_frames,
				     * ksm_*, general_profit) counted once */
	/* vmmu_run: the process's RSS at the end of the workload (before teardown), and sampled
	 * over the run (the first at its start, the last at its end, evenly spaced in scheduler
	 * rounds between) */
	uint64_t rss_bytes;
	unsigned nr_rss_samples;
	struct vmmu_rss_sample rss_samples[VMMU_RSS_SAMPLES];
	uint64_t thp_collapses;     /* 2M ranges the guest kernel's khugepaged collapsed */
	uint64_t huge_1g_pages;     /* 1G pages mapped (guest_1g; a copy on write included) */
};

/* ---- workloads ---- */

enum vmmu_param_type {
	VMMU_PARAM_UINT,   /* decimal or 0x hex */
	VMMU_PARAM_SIZE,   /* bytes, with an optional K, M, G or T suffix (powers of 1024) */
	VMMU_PARAM_BOOL,   /* 0/1, on/off, yes/no, true/false */
	VMMU_PARAM_PATH,   /* a file */
};

struct vmmu_workload_param {
	const char *name;
	enum vmmu_param_type type;
	const char *def;            /* default, as written on the command line; NULL: required */
	const char *help;
};

#define VMMU_WORKLOAD_MAX_PARAMS 8

struct vmmu_workload_info {
	const char *name;
	const char *summary;
	const struct vmmu_workload_param *params;   /* terminated by a NULL name */
	unsigned default_vms;
};

/* The i-th workload (NULL past the last), or the one called @name (NULL if none). */
const struct vmmu_workload_info *vmmu_workload_at(unsigned i);
const struct vmmu_workload_info *vmmu_workload_find(const char *name);

/* A workload with checked parameters: values by the index of their vmmu_workload_param. */
struct vmmu_workload_args {
	const struct vmmu_workload_info *w;
	uint64_t u[VMMU_WORKLOAD_MAX_PARAMS];      /* UINT, SIZE and BOOL values */
	const char *s[VMMU_WORKLOAD_MAX_PARAMS];   /* PATH values (the caller's strings) */
	bool given[VMMU_WORKLOAD_MAX_PARAMS];
};

/* Check "KEY=VALUE" strings against workload @name and fill @a with them and the defaults.
 * -ENOENT unknown workload, -EINVAL a bad parameter; @err gets a one-line reason. */
int vmmu_workload_args(const char *name, const char *const *kv, unsigned n,
		       struct vmmu_workload_args *a, char *err, size_t errlen);

/* Boot cfg->vms guests, run the workload in each to its end (vCPUs interleaved
 * deterministically on the calling thread), digest them, tear them down. 0, or a negative errno
 * with a one-line reason in @err: -EOPNOTSUPP from vmmu_vm_create (an MMU mode not built),
 * -E2BIG (the workload does not fit in cfg->mem_bytes), -EINVAL, -ENOENT (a trace file), -EIO,
 * -EFAULT (the guest kernel met a fault it cannot explain, or an audit failed: an MMU bug). */
int vmmu_run(const struct vmmu_guest_config *cfg, const struct vmmu_workload_args *a,
	     struct vmmu_guest_result *res, char *err, size_t errlen);

/* "64M" -> 67108864. 0 or -EINVAL (empty, junk, overflow). */
int vmmu_parse_size(const char *s, uint64_t *out);
/* 67108864 -> "64M" (exact when a power-of-1024 multiple, else bytes). */
void vmmu_format_size(uint64_t bytes, char *buf, size_t len);

/* ---- the guest kernel ---- */

struct vmmu_guest;

#define VMMU_PROT_NONE  0u
#define VMMU_PROT_READ  (1u << 0)
#define VMMU_PROT_WRITE (1u << 1)
#define VMMU_PROT_EXEC  (1u << 2)

#define VMMU_MAP_FIXED  (1u << 0)

/* The init image every process starts from (exec): text (r-x) and data (rw, private). */
#define VMMU_GUEST_TEXT_BASE  0x400000ULL
#define VMMU_GUEST_TEXT_PAGES 8
#define VMMU_GUEST_DATA_BASE  0x600000ULL
#define VMMU_GUEST_DATA_PAGES 4
/* The 8-byte word at byte @off of the image (text then data, page after page). */
uint64_t vmmu_guest_image_word(uint64_t off);

enum vmmu_task_state {
	VMMU_TASK_RUNNABLE = 0,
	VMMU_TASK_BLOCKED,
	VMMU_TASK_EXITED,
	VMMU_TASK_KILLED,
};

#define VMMU_SIGSEGV 11
#define VMMU_SIGBUS  7
#define VMMU_SIGKILL 9    /* out of memory */

struct vmmu_task_info {
	enum vmmu_task_state state;
	int exit_code;              /* EXITED */
	int signal;                 /* KILLED: VMMU_SIG* */
	uint64_t fault_addr;        /* KILLED by a fault: the address and #PF error code */
	uint32_t fault_ec;
	uint64_t rss_pages;         /* live tasks: 4K pages mapped (a 2M page counts 512) */
	uint64_t pt_pages;          /* live tasks: page-table pages of the address space, root included */
};

/* Boot a guest on a new VM (cfg->vms is ignored). */
int vmmu_guest_create(const struct vmmu_guest_config *cfg, struct vmmu_guest **out);
void vmmu_guest_destroy(struct vmmu_guest *g);
struct vmmu_vm *vmmu_guest_vm(struct vmmu_guest *g);

/* A new process running the init image, pinned to vCPU @cpu. */
int vmmu_guest_spawn(struct vmmu_guest *g, unsigned cpu, int *pid);
/* System calls of task @pid, run on its vCPU. Linux's semantics and errors. */
int vmmu_guest_mmap(struct vmmu_guest *g, int pid, uint64_t addr, uint64_t len, unsigned prot,
		    unsigned flags, uint64_t *out);
int vmmu_guest_munmap(struct vmmu_guest *g, int pid, uint64_t addr, uint64_t len);
int vmmu_guest_mprotect(struct vmmu_guest *g, int pid, uint64_t addr, uint64_t len, unsigned prot);
/* brk(2): @addr 0 asks; *out gets the break after the call. */
int vmmu_guest_brk(struct vmmu_guest *g, int pid, uint64_t addr, uint64_t *out);
/* fork(2): the child is pinned to @cpu. */
int vmmu_guest_fork(struct vmmu_guest *g, int pid, unsigned cpu, int *child);
/* A thread sharing @pid's address space, pinned to @cpu. */
int vmmu_guest_thread(struct vmmu_guest *g, int pid, unsigned cpu, int *tid);
int vmmu_guest_exec(struct vmmu_guest *g, int pid);
int vmmu_guest_exit(struct vmmu_guest *g, int pid, int code);
/* A user-mode access of @len (1..8) bytes by task @pid (VMMU_ACC_READ/WRITE/FETCH); a write
 * stores *@val, a read or fetch fills it. Page faults are handled by the kernel as they come.
 * 0; -EFAULT: the access killed the task (see vmmu_guest_task_info); -ESRCH: no live task. */
int vmmu_guest_access(struct vmmu_guest *g, int pid, uint64_t gva, unsigned len, unsigned kind,
		      uint64_t *val);
/* One pass of page aging over every address space: Accessed bits cleared, TLBs flushed.
 * *@young gets the number of pages that were young. */
int vmmu_guest_age(struct vmmu_guest *g, uint64_t *young);
/* One pass of the guest kernel's khugepaged (docs/guest.md): the 2M ranges of THP memory that 4K
 * pages map, collapsed into 2M pages where Linux's would; *@collapsed (may be NULL) how many. */
int vmmu_guest_khugepaged(struct vmmu_guest *g, uint64_t *collapsed);
/* -ESRCH for a pid never created. */
int vmmu_guest_task_info(struct vmmu_guest *g, int pid, struct vmmu_task_info *info);
/* Free 4K frames in the guest's allocator. */
uint64_t vmmu_guest_free_frames(struct vmmu_guest *g);
/* The counters so far, and the digest of the observations so far with the memory as it is
 * now (the stream itself goes on). */
int vmmu_guest_result(struct vmmu_guest *g, struct vmmu_guest_result *res);

/* ---- valgrind lackey traces (valgrind --tool=lackey --trace-mem=yes) ---- */

enum vmmu_lackey_kind { VMMU_LACKEY_INSTR, VMMU_LACKEY_LOAD, VMMU_LACKEY_STORE, VMMU_LACKEY_MODIFY };

struct vmmu_lackey_rec {
	enum vmmu_lackey_kind kind;
	uint64_t addr;
	uint32_t size;              /* 1..VMMU_LACKEY_MAX_SIZE */
};

#define VMMU_LACKEY_MAX_SIZE 65536

/* One line without its newline: 1 a record, 0 a line to skip (valgrind's "==PID==" and
 * "--PID--" messages), -EINVAL malformed. */
int vmmu_lackey_parse(const char *line, size_t len, struct vmmu_lackey_rec *rec);

struct vmmu_lackey_reader;
/* A plain or gzip'd file. -errno when it cannot be opened. */
int vmmu_lackey_open(const char *path, struct vmmu_lackey_reader **out);
/* The same with @flags: VMMU_LACKEY_READAHEAD, a thread of the reader's own reads, inflates and
 * decodes records ahead of the caller (up to 32,768 of them), so that a replay does not wait for
 * zlib or the parser; records, errors and line numbers come to the caller exactly as without
 * it. -EINVAL for an unknown flag. */
#define VMMU_LACKEY_READAHEAD (1u << 0)
int vmmu_lackey_open_flags(const char *path, unsigned flags, struct vmmu_lackey_reader **out);
/* 1 a record, 0 the end, -EINVAL a malformed line or a damaged gzip file, -EIO a read error (see
 * vmmu_lackey_error). */
int vmmu_lackey_next(struct vmmu_lackey_reader *r, struct vmmu_lackey_rec *rec);
/* "line N: malformed: 'TEXT'" after an error. */
const char *vmmu_lackey_error(const struct vmmu_lackey_reader *r);
uint64_t vmmu_lackey_lineno(const struct vmmu_lackey_reader *r);
/* Fraction of the file consumed, 0..1. */
double vmmu_lackey_progress(const struct vmmu_lackey_reader *r);
void vmmu_lackey_close(struct vmmu_lackey_reader *r);

#endif
