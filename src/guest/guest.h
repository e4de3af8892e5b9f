/* SPDX-License-Identifier: MIT */
/*
 * guest/: the guest OS model's kernel-private state (docs/guest.md). The guest reaches the machine
 * only through include/vmmu/ (no src/ header is included anywhere in guest/).
 *
 * What lives where, as in a real kernel:
 *  - in guest memory, changed only by guest stores through a vCPU at CPL 0 via the direct map:
 *    page tables and page contents (zeroing, copy-on-write copies);
 *  - in host C memory (kernel-private bookkeeping a kernel keeps in its own data structures):
 *    the frame allocator's metadata, VMAs, tasks, run queue, the device's registers.
 * vmmu_write_guest()/vmmu_read_guest() are used only by boot (the initial image and boot page
 * tables) and by the final digest.
 *
 * Invariants:
 *  - every frame is either free (in exactly one buddy list, or above the allocator's frontier)
 *    or owned: kernel (boot tables, page
 *    cache, zero page), a page-table page of exactly one mm, or a user page whose refcount equals
 *    the number of leaf entries mapping it (plus one for page-cache pages);
 *  - a leaf entry of an mm is present only inside a VMA, with rights no wider than the VMA's;
 *  - after any change that narrows a translation, every vCPU that may cache it has flushed it
 *    (directly, or by the PCID generation check at its next switch to the mm) before the kernel
 *    returns to user mode.
 * Locking: a guest run interleaved (one host thread, fixed quanta: sched.c) needs none. Run on vCPU
 * threads (g->threaded, sched_thread.c), every kernel path, the scheduler and the workloads' steps
 * run under the guest's kernel lock (g->klock_word, as a big kernel lock); a vCPU thread lets it go
 * only while the vCPU runs user code (the access itself), while it zeroes a frame it alone owns
 * (the fault's spare, gcpu.spare), and around the steps of a workload that reaches kernel state
 * only through system calls (g->steps_unlocked: its system calls take the lock, kenter). What it touches then is its own: its vCPU, its gcpu's
 * counters (gcpu.cnt) and its task's observation stream (task.obs). A kernel path that must act
 * on another vCPU (a TLB shootdown, a switch away from a dying mm) sends it an IPI (gcpu.ipi):
 * the sender holds klock and waits for the acknowledgement; the target takes it while it waits
 * for klock or for the next round, never while it holds klock, so one IPI is in flight at a time.
 */
#ifndef VMMU_GUEST_GUEST_H
#define VMMU_GUEST_GUEST_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "gpt.h"
#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

/* ---- frames (frames.c): a buddy allocator of 4K..2M blocks over guest RAM ---- */

#define FRAME_MAX_ORDER 9          /* 2 MiB: the buddy lists' largest */
#define FRAME_1G_ORDER  18         /* a 1G page (--guest-1g): carved from the untouched body */
#define FRAME_NONE      UINT32_MAX

#define F_FREE    (1u << 0)   /* head of a free block (order in .order) */
#define F_EVER    (1u << 1)   /* handed out at least once: may be non-zero (the digest reads it) */
#define F_HEAD    (1u << 2)   /* head of an allocated compound page (.order 9: 2M, 18: 1G) */
#define F_ZERO    (1u << 3)   /* the shared zero page: never refcounted, never freed */
#define F_PCACHE  (1u << 4)   /* a page-cache page (the file holds one reference) */
#define F_PTABLE  (1u << 5)   /* a page-table page */
#define F_KERNEL  (1u << 6)   /* boot-time kernel memory */

struct frame {
	uint32_t ref;         /* mappings (+1 for page cache); for a compound page, on its head */
	uint8_t flags;        /* F_* */
	uint8_t order;        /* F_FREE / F_HEAD: the block's order */
	uint16_t unused;
	uint32_t next, prev;  /* free-list links (F_FREE heads) */
};

struct frames {
	struct frame *f;                       /* nframes entries, NORESERVE (touched lazily) */
	uint64_t nframes;
	uint32_t head[FRAME_MAX_ORDER + 1];
	uint64_t free;                         /* free 4K frames */
	uint64_t hwm;                          /* no frame at or above was ever handed out */
	uint64_t frontier, body_end;           /* [frontier, body_end): 2M blocks never listed */
};

int frames_init(struct frames *fr, uint64_t nframes);
void frames_destroy(struct frames *fr);
/* A block of 2^@order frames: its first frame number, or FRAME_NONE. Marks them F_EVER. */
uint32_t frames_alloc(struct frames *fr, unsigned order);
/* A naturally aligned 1G block (2^18 frames) from the untouched body above the frontier (the 2M
 * blocks skipped to align it go to the 2M list), or FRAME_NONE. Freed with frames_free(order
 * 18): it goes back as 512 2M blocks. */
uint32_t frames_alloc_1g(struct frames *fr);
void frames_free(struct frames *fr, uint32_t pfn, unsigned order);

/* ---- files (the page cache): images loaded at boot ---- */

struct gfile {
	uint64_t npages;
	uint32_t *frames;     /* page i lives in frames[i] */
};

/* ---- address spaces ---- */

#define VMA_ANON   (1u << 0)
#define VMA_FILE   (1u << 1)   /* private file mapping: reads share the page cache, writes copy */
#define VMA_THP    (1u << 2)   /* anonymous memory may use 2M pages */
#define VMA_STACK  (1u << 3)
#define VMA_HEAP   (1u << 4)
#define VMA_HUGE1G (1u << 5)   /* 1G pages (--guest-1g, as MAP_HUGETLB | MAP_HUGE_1GB): 1G
				* aligned, a multiple of 1G, unmapped and protected by 1G */
_Static_assert(((VMA_ANON | VMA_FILE | VMA_THP | VMA_STACK | VMA_HEAP) & VMA_HUGE1G) == 0,
	       "VMA flags are distinct bits");

struct vma {
	uint64_t start, end;           /* [start, end), page aligned */
	unsigned prot;                 /* VMMU_PROT_* */
	unsigned flags;                /* VMA_* */
	const struct gfile *file;      /* VMA_FILE */
	uint64_t pgoff;                /* VMA_FILE: file page of start */
};

struct mm {
	uint64_t id;                   /* unique for the guest's life (PCID ownership) */
	uint64_t root;                 /* gpa of the PML4 */
	unsigned users;                /* tasks sharing it */
	struct vma *vmas;              /* sorted, disjoint */
	unsigned nr_vmas, cap_vmas;
	uint64_t brk_start, brk;
	uint64_t tlb_gen;              /* bumped by every flush of this mm */
	uint64_t loaded_on;            /* bit per vCPU: CR3 points at this mm now */
	uint64_t rss;                  /* 4K pages mapped */
	uint64_t pt_pages;             /* table pages, root included */
	bool autogrow;                 /* a fault outside every VMA creates one (trace replay) */
	uint64_t age_stamp;            /* the aging pass that saw it last */
	int owner;                     /* pid of its first task: the key of its memory in the
					* per-task digest (guest_digest) */
};

/* ---- tasks ---- */

enum task_state { T_RUNNABLE = 0, T_BLOCKED, T_DEAD };

struct obs;

struct guest;
struct task;

/* What a step of a task's program returns (negative: a fatal error, the run stops). */
enum step_ret {
	STEP_CONT = 0,   /* did its work, may continue */
	STEP_YIELD,      /* sched_yield(): give the vCPU to the next task */
	STEP_BLOCK,      /* waiting (for children): off the run queue until woken */
	STEP_DEAD,       /* the task exited or was killed */
};

typedef int (*step_fn)(struct guest *g, struct task *t);

struct task {
	int pid, tgid, ppid;
	enum task_state state;
	struct mm *mm;
	int cpu;                       /* pinned vCPU, or -1 */
	int on_cpu;                    /* vCPU it is current on, or -1 */
	struct task *rq_next;
	bool queued;
	unsigned live_children;        /* children and threads it made, not yet dead */
	step_fn step;
	void *prog;                    /* the program's state, freed with the task */
	uint64_t rng;                  /* the program's random stream */
	struct obs *obs;               /* its own observations (g->per_task), else NULL */
};

/* What a dead pid left (tasks are freed at death; tests and the digest read this). */
struct tomb {
	uint8_t state;                 /* VMMU_TASK_* */
	uint8_t signal;
	int exit_code;
	uint64_t fault_addr;
	uint32_t fault_ec;
	uint64_t obs;                  /* g->per_task: the hash of the task's observations */
};

/* ---- vCPUs ---- */

#define NR_ASIDS 6                     /* dynamic PCIDs per vCPU, as Linux's TLB_NR_DYN_ASIDS */

/* The guest's own counters (also kept per vCPU for the accesses, see guest_counters()). */
struct guest_counters {
	uint64_t user_accesses, kernel_accesses, page_faults, kills, forks, execs, exits;
	uint64_t ctx_switches, shootdowns, tlb_flushes, invlpgs, cow_copies, zero_fills;
	uint64_t thp_allocs, thp_splits, young, mmio, audits, thp_collapses, huge_1g;
	uint64_t trace_records, trace_skipped;
	/* migrate: dirty-log harvests, pages they reported, pages the workload wrote in them (each
	 * found in its round's log), and the fewest pages one harvest reported */
	uint64_t dirty_rounds, dirty_pages, dirty_written, dirty_min;
};

/* An IPI's request: a TLB flush of @mm's translations, or a switch to init_mm (@mm is dying). */
enum ipi_kind { IPI_FLUSH = 1, IPI_SWITCH_INIT };
struct flush;

struct gcpu {
	/* A cache line of its own for each vCPU: its thread writes cnt on every access. */
	_Alignas(64) struct vmmu_vcpu *v;
	unsigned id;
	unsigned cpl;                      /* what the vCPU has now (cached) */
	struct task *cur;
	struct mm *loaded;                 /* CR3's mm (&g->init_mm when idle) */
	uint64_t cr3;                      /* CR3 as loaded, without the no-flush bit */
	struct { uint64_t mm_id, gen; } asid[NR_ASIDS];
	unsigned next_asid, cur_asid;
	unsigned steps;                    /* steps in the current turn */
	unsigned quantum;                  /* steps the current turn may take: a step that is
					    * many steps' work (a trace's records) adds the rest */
	/* Threaded runs. Written by this vCPU's thread only, or under klock while it waits: */
	struct guest_counters cnt;         /* accesses, context switches, flushes it ran */
	uint32_t spare;                    /* a zeroed frame for the next fault, or FRAME_NONE */
	int ipi_err;                       /* an IPI handler's failure, reported under klock */
	/* The IPI mailbox: filled by the sender (under klock), then ipi_pending set (release);
	 * the target runs it and clears ipi_pending (release). */
	enum ipi_kind ipi_kind;
	struct mm *ipi_mm;
	const struct flush *ipi_flush;     /* the sender's, valid until it sees the ack */
	uint32_t ipi_pending;              /* atomic */
	uint32_t bell;                     /* atomic: bumped (and futex-woken) for an IPI or a round */
	bool ran;                          /* the last round ran a task (for the coordinator) */
	bool holds_klock;                  /* this vCPU's thread holds the kernel lock */
};

/* ---- the MMIO device (device.c) ---- */

#define DEV_GPA      0x3f0000000000ULL      /* above any guest RAM, below MAXPHYADDR 46 */
#define DEV_REG_ID       0x00   /* r: "VMMUDEV1" */
#define DEV_REG_CLOCK    0x08   /* r: a tick that grows by one each read */
#define DEV_REG_CONSOLE  0x10   /* w: a value folded into CHECKSUM */
#define DEV_REG_CHECKSUM 0x18   /* r: the fold of every CONSOLE write */
#define DEV_ID 0x31564544554d4d56ULL        /* "VMMUDEV1" little-endian */

struct device {
	uint64_t clock, checksum;
};

/* Complete an MMIO exit @res against the device. 0, or -EFAULT for an access the device does
 * not decode (the kernel treats it as a bus error). */
int device_mmio(struct device *d, struct vmmu_access_result *res);

/* ---- observations: the digest stream (digest.c) ---- */

#define OBS_BUF 512

struct obs {
	void *state;                   /* XXH64_state_t */
	uint64_t buf[OBS_BUF];
	unsigned n;
};

/* The first word of each observation (docs/guest.md, "guest.digest"). */
enum obs_tag {
	OBS_READ = 1, OBS_PF, OBS_KILL, OBS_EXIT, OBS_MMIO, OBS_YOUNG, OBS_TASK, OBS_VMA, OBS_END,
};

int obs_init(struct obs *o, uint64_t seed);
void obs_destroy(struct obs *o);
void obs_flush_slow(struct obs *o);
static inline void obs3(struct obs *o, uint64_t a, uint64_t b, uint64_t c)
{
	if (o->n + 3 > OBS_BUF)
		obs_flush_slow(o);
	o->buf[o->n++] = a;
	o->buf[o->n++] = b;
	o->buf[o->n++] = c;
}

/* ---- the guest ---- */

struct guest {
	struct vmmu_vm *vm;
	uint64_t mem_bytes;
	struct vmmu_userspace_memory_region ram;   /* guest RAM's memslot, as boot registered it */
	unsigned nr_cpus;
	struct gcpu cpus[VMMU_GUEST_MAX_VCPUS];
	struct frames fr;
	struct mm init_mm;                 /* the kernel's own tables: kernel half only */
	uint64_t pml4_kernel[512];         /* init_mm's upper-half entries, copied into every root */
	uint32_t zero_pfn;
	struct gfile image;                /* the init program */
	struct gfile data;                 /* a data file (clone-vms), may be empty */
	struct device dev;
	bool thp, pcid, huge1g;
	uint64_t next_mm_id;
	/* tasks: tasks[pid] (NULL once dead), tombs[pid] */
	struct task **tasks;
	struct tomb *tombs;
	unsigned nr_pids, cap_pids;
	struct task *rq_head, *rq_tail;
	struct task *dead;                 /* died, not yet freed (linked by rq_next) */
	unsigned live_tasks;
	uint64_t seed;
	struct obs obs;
	_Alignas(64) struct guest_counters cnt;   /* written under klock: off the hot lines */
	_Alignas(64) int fatal;            /* atomic: first fatal error (negative errno), 0 if none;
					    * written once, after why (guest_fail) */
	uint32_t fail_claimed;             /* atomic: a guest_fail() is writing why */
	bool per_task;                     /* more than one vCPU: the digest is per task (docs/guest.md) */
	bool threaded;                     /* vCPU threads run it now (sched_thread.c) */
	bool steps_unlocked;               /* the workload's steps run without klock (wl.h) */
	/* The lock word on a line of its own: the read-mostly fields above are read on every step
	 * of a thread that runs without it. */
	_Alignas(64) uint32_t klock_word;  /* atomic: the kernel lock (threaded runs; see the top) */
	_Alignas(64) uint64_t mem_sum;     /* per_task: the memory of the mms that ended (digest) */
	char why[256];                     /* its one-line reason */
	/* the running workload */
	void *wl;                          /* the workload's state */
	double (*wl_progress)(struct guest *g);   /* fraction done, 0..1 */
	void (*wl_free)(void *wl);
};

/* boot.c */
/* The guest's VM is made on machine @m (NULL: one of its own). */
int guest_boot(const struct vmmu_guest_config *cfg, uint64_t data_bytes, uint64_t data_seed,
	       struct vmmu_machine *m, struct guest **out);
void guest_free(struct guest *g);
/* Record the first fatal error; returns @rc. */
int guest_fail(struct guest *g, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The digest of the observations so far and the guest as it is now; the stream goes on. */
int guest_digest(struct guest *g, uint64_t *out);
void guest_counters(struct guest *g, struct vmmu_guest_result *res);
/* The guest's counters with every vCPU's own (gcpu.cnt) added in. */
void guest_counters_sum(const struct guest *g, struct guest_counters *sum);

/* kaccess.c: the kernel's memory accesses (CPL 0, through the direct map). */
void cpu_kernel(struct guest *g, struct gcpu *c);
void cpu_user(struct guest *g, struct gcpu *c);
int kload64(struct guest *g, struct gcpu *c, uint64_t pa, uint64_t *val);
int kstore64(struct guest *g, struct gcpu *c, uint64_t pa, uint64_t val);
int kread_page(struct guest *g, struct gcpu *c, uint64_t pa, void *buf);
int kwrite_page(struct guest *g, struct gcpu *c, uint64_t pa, const void *buf);
int kzero_page(struct guest *g, struct gcpu *c, uint64_t pa);
/* kzero_page() of a frame only the caller owns, with the kernel lock let go meanwhile. */
int kzero_page_unlocked(struct guest *g, struct gcpu *c, uint64_t pa);
int kcopy_page(struct guest *g, struct gcpu *c, uint64_t dst, uint64_t src);
int kmmio(struct guest *g, struct gcpu *c, unsigned reg, bool write, uint64_t *val);

/* pgtable.c: page tables of an mm, through guest stores. */
struct flush {
	uint64_t addr[33];     /* Linux's tlb_single_page_flush_ceiling */
	unsigned n;
	bool full;             /* more than 33 pages: reload CR3 instead */
	bool freed_tables;     /* table pages were freed; INVLPG and CR3 reloads drop them from
				* the paging-structure caches, and idle vCPUs hold no user tables */
};
static inline void flush_add(struct flush *f, uint64_t va)
{
	if (f->n < 33)
		f->addr[f->n++] = va;
	else
		f->full = true;
}
int pt_alloc_table(struct guest *g, struct gcpu *c, uint64_t *pa);
/* Find the entry for @va at @level (1 = PTE, 2 = PDE), allocating tables above it. *@huge when
 * a 2M leaf sits at the PDE on the way to a level-1 entry (its gpa returned in *@epa). */
int pt_walk_alloc(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, int level,
		  uint64_t *epa, uint64_t *entry, bool *huge);
/* Find without allocating: the walk stops at the leaf, or at the first entry not in use;
 * *@epa, *@entry and *@level describe that entry (level 1 = PTE, 2 = PDE, ...). */
int pt_lookup(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, uint64_t *epa,
	      uint64_t *entry, int *level);
int pt_unmap_range(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t start, uint64_t end,
		   struct flush *f);
int pt_protect_range(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t start, uint64_t end,
		     unsigned prot, struct flush *f);
/* Copy @v's entries into @dst, write-protecting both sides of a writable mapping: 1 if a present
 * parent entry lost W (the parent needs a flush), 0, or <0. */
int pt_copy_range(struct guest *g, struct gcpu *c, struct mm *dst, struct mm *src,
		  const struct vma *v);
int pt_age(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t *young);
/* The PDE for @va (no table made): its gpa and value; *@pde 0 if a level above has none. */
int pt_pde(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, uint64_t *pde_pa,
	   uint64_t *pde);
/* khugepaged's collapse of the 2M at @va of THP VMA @v, whose PDE (@pde at @pde_pa) links a
 * table, into one 2M page, as Linux's collapse_huge_page: at most @max_none entries none, one at
 * least young, no PROT_NONE entry; each page copied (zeroes for none) into a new compound page
 * the PDE then maps with the VMA's rights (dirty if any page was); the old frames and the table
 * freed; a full flush with freed tables asked of the caller (@f). 1 collapsed, 0 not (no 2M
 * block, or the range does not qualify), <0 fatal. */
int pt_collapse(struct guest *g, struct gcpu *c, struct mm *mm, const struct vma *v, uint64_t va,
		uint64_t pde_pa, uint64_t pde, unsigned max_none, struct flush *f);
int pt_split_huge(struct guest *g, struct gcpu *c, struct mm *mm, uint64_t va, uint64_t pde_pa,
		  uint64_t pde);
void frame_put(struct guest *g, uint32_t pfn);
uint64_t leaf_bits(unsigned prot);

/* mm.c: address spaces and their system calls. */
int mm_create(struct guest *g, struct gcpu *c, struct mm **out);
int mm_put(struct guest *g, struct gcpu *c, struct mm *mm);
/* Add @mm's user memory, by virtual address, to *@sum (the per-task digest, docs/guest.md). */
int mm_memory_sum(struct guest *g, const struct mm *mm, uint64_t *sum);
struct vma *vma_find(struct mm *mm, uint64_t va);
bool vma_overlaps(const struct mm *mm, uint64_t start, uint64_t end);
/* The free gap [*lo, *hi) around @va, which no VMA holds. */
void vma_gap(const struct mm *mm, uint64_t va, uint64_t *lo, uint64_t *hi);
int vma_insert(struct mm *mm, const struct vma *v);
int mm_exec_layout(struct guest *g, struct mm *mm);
int sys_mmap(struct guest *g, struct task *t, uint64_t addr, uint64_t len, unsigned prot,
	     unsigned flags, uint64_t *out);
int sys_mmap_file(struct guest *g, struct task *t, const struct gfile *file, unsigned prot,
		  uint64_t *out);
int sys_munmap(struct guest *g, struct task *t, uint64_t addr, uint64_t len);
int sys_mprotect(struct guest *g, struct task *t, uint64_t addr, uint64_t len, unsigned prot);
int sys_brk(struct guest *g, struct task *t, uint64_t addr, uint64_t *out);
int sys_fork(struct guest *g, struct task *t, int cpu, struct task **child);
int sys_clone_thread(struct guest *g, struct task *t, int cpu, struct task **thread);
int sys_exec(struct guest *g, struct task *t);
int kernel_age(struct guest *g, uint64_t *young);
/* A pass of the guest kernel's khugepaged on vCPU 0: every 2M of every live mm's THP VMAs that
 * 4K pages map, collapsed where pt_collapse() says so (max_ptes_none 511, as Linux's default),
 * each collapse flushed. */
int kernel_khugepaged(struct guest *g);

/* fault.c: the #PF handler. 0 fixed, 1 the task must die (info filled), <0 fatal. */
struct kill_info { int signal; uint64_t addr; uint32_t ec; };
int handle_page_fault(struct guest *g, struct gcpu *c, struct task *t, uint64_t va, uint32_t ec,
		      struct kill_info *k);

/* sched.c: tasks, context switches, TLB flushes, user accesses, the run loop. */
struct task *task_new(struct guest *g, struct task *parent, struct mm *mm, int cpu);
/* A task's end: recorded, the parent woken, its address space dropped. The task is freed at the
 * next reaping point, so callers may still read it until they return. */
int task_kill(struct guest *g, struct task *t, const struct kill_info *k);
int task_exit(struct guest *g, struct task *t, int code);
struct task *task_get(struct guest *g, int pid);
void task_free(struct task *t);
/* Free the tasks that died since the last call. */
void task_reap(struct guest *g);
int task_make_current(struct guest *g, struct task *t);
int switch_mm(struct guest *g, struct gcpu *c, struct mm *next);
int flush_tlb_mm(struct guest *g, struct gcpu *c, struct mm *mm, const struct flush *f);
void rq_push(struct guest *g, struct task *t);
void task_wake(struct guest *g, struct task *t);
/* User-mode access by the current task @t: 0; -EFAULT: the task was killed; <0 fatal. */
int uaccess(struct guest *g, struct task *t, uint64_t va, unsigned len, unsigned kind,
	    uint64_t *val);
/* @n user accesses by @t, in order, as @n uaccess calls make them (the same observations,
 * faults and counts) but with one crossing into the hardware model for the ones that complete
 * at once. *@done: how many completed. 0, or what uaccess returned for access *@done. */
int uaccess_batch(struct guest *g, struct task *t, struct vmmu_access_op *ops, unsigned n,
		  unsigned *done);
/* Run every guest's tasks until all are dead. */
struct sched_opts {
	unsigned quantum, aging_period, audit_period, khugepaged_period;
	void (*progress)(void *opaque, double fraction, uint64_t accesses);
	void *opaque;
	struct vmmu_machine *ksm;          /* ksmd's machine, NULL: no KSM */
	struct vmmu_machine *khugepaged;   /* khugepaged's machine, NULL: none */
	struct vmmu_machine *fragmented;   /* a fragmented machine to let go at unfragment_ms */
	uint64_t unfragment_ms;            /* (0: never) */
	struct vmmu_guest_result *rss;     /* RSS samples go there (NULL: none) */
	bool threads;                      /* every vCPU on its own host thread (sched_thread.c) */
	bool pin;                          /* threaded: vCPU thread i on the i-th allowed CPU */
};
/* Sample the process's RSS into @res at @accesses (vmmu_run's samples: decimated when full). */
void sched_rss_sample(struct vmmu_guest_result *res, uint64_t accesses, uint64_t *period);
int sched_run(struct guest **gs, unsigned n, const struct sched_opts *o);
/* vmmu_vm_audit() of the guest's VM: 0, or a fatal -EFAULT with the violation. */
int guest_audit(struct guest *g);
/* One turn of vCPU @c: its current task (or the next queued one) runs up to @quantum steps. */
int sched_turn(struct guest *g, struct gcpu *c, unsigned quantum, bool *ran);
/* What runs between scheduler rounds, with every vCPU of every guest stopped; the rounds so far
 * went from @prev to @rounds. Per guest alive when the round began: aging, khugepaged, audits. */
int sched_guest_periodic(struct guest *g, const struct sched_opts *o, uint64_t prev,
			 uint64_t rounds);
/* Then, once a round in which some guest was alive: ksmd, khugepaged, samples, progress. */
struct sched_state { uint64_t rss_period; bool unfragmented; };
int sched_global(struct guest **gs, unsigned n, const struct sched_opts *o, uint64_t prev,
		 uint64_t rounds, struct sched_state *st);
/* Run @c's part of a TLB flush of @mm (@kind IPI_FLUSH, @f) or its switch away from a dying mm
 * (IPI_SWITCH_INIT): on @c's own thread, or on the only thread of an interleaved run. */
int ipi_handle(struct guest *g, struct gcpu *c, enum ipi_kind kind, struct mm *mm,
	       const struct flush *f);

/* sched_thread.c: every vCPU on its own host thread. */
int sched_run_threads(struct guest **gs, unsigned n, const struct sched_opts *o);
/* The kernel lock of a threaded run (no-ops otherwise); a vCPU waiting for it takes IPIs. */
void klock(struct guest *g, struct gcpu *c);
void kunlock(struct guest *g, struct gcpu *c);
/* Take IPIs sent to @c (a vCPU thread not holding the kernel lock, at an instruction boundary). */
void ipi_poll(struct guest *g, struct gcpu *c);
static inline void ipi_check(struct guest *g, struct gcpu *c)
{
	if (__atomic_load_n(&c->ipi_pending, __ATOMIC_ACQUIRE))
		ipi_poll(g, c);
}
/* A kernel entry from a step run without the kernel lock: take it unless @c holds it already;
 * true if taken (give it to kleave). */
static inline bool kenter(struct guest *g, struct gcpu *c)
{
	if (!g->threaded || c->holds_klock)
		return false;
	klock(g, c);
	return true;
}
static inline void kleave(struct guest *g, struct gcpu *c, bool taken)
{
	if (taken)
		kunlock(g, c);
}
/* Make vCPU @o (not the caller's @c) run ipi_handle(): directly in an interleaved run, else as
 * an IPI to its thread, waiting for the acknowledgement. The caller holds klock. */
int ipi_send(struct guest *g, struct gcpu *c, struct gcpu *o, enum ipi_kind kind, struct mm *mm,
	     const struct flush *f);

static inline struct gcpu *task_cpu(struct guest *g, struct task *t)
{
	return &g->cpus[t->on_cpu];
}

/* The guest's fatal error, 0 if none (read from any thread). */
static inline int guest_fatal(const struct guest *g)
{
	return __atomic_load_n(&g->fatal, __ATOMIC_ACQUIRE);
}

/* Where an observation of task @t (NULL: of the kernel) goes: its own stream in a per-task
 * digest, else the guest's one stream. */
static inline struct obs *obs_of(struct guest *g, struct task *t)
{
	return t && t->obs ? t->obs : &g->obs;
}

/* Deterministic randomness: splitmix64 (Steele, Lea, Flood 2014), one stream per task. */
static inline uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

#endif
