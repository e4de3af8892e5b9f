/* SPDX-License-Identifier: MIT */
/*
 * vmmu public API: a VM with KVM-style memslots over a modelled host.
 *
 * Every function returns 0 or a negative errno, as KVM's ioctls do; structs are opaque.
 * A struct vmmu_vm may be used from several threads: memslot changes are serialized inside,
 * lookups are lock-free (RCU).
 */
#ifndef VMMU_VMMU_H
#define VMMU_VMMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmmu/types.h"

#define VMMU_VERSION "0.1.0"

/* struct kvm_userspace_memory_region, field for field. */
struct vmmu_userspace_memory_region {
	uint32_t slot;             /* bits 15:0 slot id, bits 31:16 address space (0 only) */
	uint32_t flags;            /* VMMU_MEM_* */
	uint64_t guest_phys_addr;
	uint64_t memory_size;      /* bytes; 0 deletes the slot */
	uint64_t userspace_addr;   /* start of the backing hva range (vmmu_vm_mmap) */
};

#define VMMU_MEM_LOG_DIRTY_PAGES (1u << 0)
#define VMMU_MEM_READONLY        (1u << 1)

#define VMMU_USER_MEM_SLOTS      32764   /* as KVM_USER_MEM_SLOTS on x86 */
#define VMMU_MEM_MAX_NR_PAGES    ((1ULL << 31) - 1)

struct vmmu_vm;
struct vmmu_vcpu;

/* How the guest's memory accesses are translated. */
enum vmmu_mmu {
	VMMU_MMU_NATIVE = 0,   /* no hypervisor: the guest's tables, walked directly (baseline) */
	VMMU_MMU_SHADOW,       /* soft MMU: shadow page tables */
	VMMU_MMU_EPT,          /* hard MMU, Intel EPT */
	VMMU_MMU_NPT,          /* hard MMU, AMD NPT */
};

enum vmmu_host { VMMU_HOST_VMX = 0, VMMU_HOST_SVM };

/* One TLB array: sets x ways entries (sets a power of two). */
struct vmmu_tlb_array {
	uint32_t sets, ways;
};

/* TLB geometry; zeros take the defaults of docs/hardware.md (an Intel Skylake core). */
struct vmmu_tlb_geometry {
	struct vmmu_tlb_array l1_4k, l1_2m, l1_1g;   /* first-level data TLB, one array per size */
	struct vmmu_tlb_array l2;                    /* second-level (STLB), 4K and 2M */
	struct vmmu_tlb_array l2_1g;                 /* second-level, 1G */
	bool pwc;                                    /* paging-structure caches (off by default) */
	bool nested_tlb;                             /* gpa->hpa cache for 2-D walks (off by default) */
};

/* Cycle costs of modelled events; 0 takes the default of docs/hardware.md. */
struct vmmu_cost {
	uint32_t tlb_hit;        /* an access that hits the first-level TLB */
	uint32_t stlb_hit;       /* extra for a second-level TLB hit */
	uint32_t walk_ref;       /* each page-walk memory reference */
	uint32_t vm_exit;        /* a VM exit and the VM entry back (round trip) */
	uint32_t pf_deliver;     /* delivering a #PF to the guest (event injection or native) */
	uint32_t mmio;           /* an MMIO exit to user space and back */
	uint32_t mmu_step;       /* each handler step the MMU reports (an spte written, a gpte read) */
	uint32_t tlb_flush;      /* a full TLB flush (refill costs come as misses) */
	uint32_t invlpg;         /* one INVLPG/INVPCID invalidation */
};

/* MMU optimizations (--opt); all on by default where the host allows. */
#define VMMU_OPT_NOTRAP   (1u << 0)   /* no-trap non-present PTEs (VMX only) */
#define VMMU_OPT_UNSYNC   (1u << 1)   /* unsync shadow pages */
#define VMMU_OPT_PREFETCH (1u << 2)   /* PTE prefetch */
#define VMMU_OPT_FASTPF   (1u << 3)   /* fast page fault */

/* vCPUs a VM may have, and the largest vCPU id (ids are 0..VMMU_MAX_VCPU_ID, as KVM's
 * KVM_MAX_VCPU_IDS; the guest model numbers its vCPUs from 0). */
#define VMMU_MAX_VCPUS   64
#define VMMU_MAX_VCPU_ID 4095
/* The smallest host memory a VM may be given (the arena rounds up to a whole GiB). */
#define VMMU_HOST_MEM_MIN (16ULL << 20)

/* How the host backs the memory vmmu_vm_mmap() makes: anonymous memory (THP as @thp says), or a
 * hugetlbfs file of 2M or 1G pages (QEMU's -mem-path on a hugetlbfs mount). */
enum vmmu_hugetlb { VMMU_HUGETLB_NONE = 0, VMMU_HUGETLB_2M, VMMU_HUGETLB_1G };

struct vmmu_vm_config {
	uint64_t host_mem_bytes;   /* host physical memory (frame arena), at least
				    * VMMU_HOST_MEM_MIN, rounded up to 1 GiB; 0 = 64 GiB */
	int thp;                   /* 0 never, 1 madvise, 2 always */
	enum vmmu_mmu mmu;
	enum vmmu_host host;       /* ept implies vmx, npt svm */
	uint32_t opts_off;         /* VMMU_OPT_* switched off (0: all on where available) */
	uint64_t max_shadow_pages; /* soft MMU page limit (0: 2% of guest pages, at least 64) */
	struct vmmu_tlb_geometry tlb;
	struct vmmu_cost cost;
	const char *cpu;           /* guest CPU model: "intel" (default) or "amd" */
	/* Which shadow pages make room when max_shadow_pages is reached (soft MMU) */
	enum vmmu_mmu_evict {
		VMMU_EVICT_LRU = 0,  /* least recently used, by the Accessed bits the hardware sets in
				      * the links to them (the clock algorithm; the default) */
		VMMU_EVICT_FIFO,     /* oldest created first, as KVM */
	} mmu_evict;
	enum vmmu_hugetlb hugetlb; /* vmmu_vm_mmap's backing: hugetlbfs pages of this size (its
				    * length rounds up to one); THP does not apply to it */
	/* How faults of vCPUs on different threads exclude each other (mmu_lock) */
	enum vmmu_mmu_lock {
		VMMU_MMU_LOCK_FINE = 0,   /* the default: every fault takes mmu_lock shared; the hard
					   * MMU installs by compare-and-swap, the soft MMU leaves under
					   * the shadow page's own lock, new shadow pages under a
					   * structure lock, retaking mmu_lock exclusive to zap, sync,
					   * unsync, emulate a write or evict */
		VMMU_MMU_LOCK_SHARED,     /* hard-MMU faults shared, soft-MMU faults exclusive (its
					   * leaf installs need the per-page locks: none are optional) */
		VMMU_MMU_LOCK_BIG,        /* every fault takes mmu_lock exclusive (KVM's shadow MMU) */
	} mmu_lock;
};

int vmmu_vm_create(const struct vmmu_vm_config *cfg, struct vmmu_vm **out);
void vmmu_vm_destroy(struct vmmu_vm *vm);

/* ---- the machine several VMs share (its host frames, its ksmd) ---- */

struct vmmu_machine;

/* A machine of @mem_bytes of host physical memory (0: 64 GiB; at least VMMU_HOST_MEM_MIN,
 * rounded up to 1 GiB). vmmu_vm_create() gives each VM a host of its own; VMs made with vmmu_vm_create_on()
 * share one, so KSM can merge pages across them. */
int vmmu_machine_create(uint64_t mem_bytes, struct vmmu_machine **out);
/* After every VM on it is destroyed (-EBUSY, nothing done, before). */
int vmmu_machine_destroy(struct vmmu_machine *m);
/* vmmu_vm_create() on machine @m (cfg->host_mem_bytes is ignored). */
int vmmu_vm_create_on(struct vmmu_machine *m, const struct vmmu_vm_config *cfg,
		      struct vmmu_vm **out);
struct vmmu_machine *vmmu_vm_machine(struct vmmu_vm *vm);

/*
 * KSM, as Linux's (docs/architecture.md, "KSM"). vmmu_vm_set_mergeable() is QEMU's
 * madvise(MADV_MERGEABLE) of guest RAM: the host memory behind every memslot of @vm, now and
 * made later, is scanned by the host's ksmd from then on (off: no longer scanned; merged pages
 * stay merged until written). A guest write to a merged page exits and the host copies it (copy on write). ksmd
 * runs when the caller says: vmmu_ksm_run() is its wake-up, at the caller's clock.
 */
int vmmu_vm_set_mergeable(struct vmmu_vm *vm, bool on);
/* Knobs by their /sys/kernel/mm/ksm names: pages_to_scan, sleep_millisecs, use_zero_pages,
 * max_page_sharing, run; and use_mmu_dirty (not Linux's; 0 or 1): ksmd takes a page's "written
 * since the last pass" from the MMU's dirty state (a second dirty log the MMU keeps for it, the
 * user's KVM_GET_DIRTY_LOG untouched) instead of a checksum, for the VMs made mergeable. 0,
 * -ENOENT (no such knob), -ERANGE (out of its range), -ENOMEM (a VM could not start tracking:
 * it stays on checksums). */
int vmmu_ksm_set_param(struct vmmu_machine *m, const char *key, uint64_t val);
int vmmu_ksm_get_param(struct vmmu_machine *m, const char *key, uint64_t *val);
/* "KEY=VALUE[,KEY=VALUE...]" (values decimal): checked, or set on @m (NULL: check only). 0,
 * or -EINVAL with a one-line reason in @err. */
int vmmu_ksm_set_params(struct vmmu_machine *m, const char *spec, char *err, size_t errlen);
/* ksmd's wake-up at time @now_ms of the caller's clock: one pass of pages_to_scan pages if
 * sleep_millisecs have gone by since the last one (or none ran yet); *@ran (may be NULL) says if
 * one did. The pages merged, or -errno. */
int vmmu_ksm_run(struct vmmu_machine *m, uint64_t now_ms, bool *ran);
/* Debug: the stable and unstable trees in order, every KSM frame still holding the bytes it was
 * merged with. 0, or -EFAULT with the first inconsistency in @why. */
int vmmu_ksm_audit(struct vmmu_machine *m, char *why, size_t whylen);

/*
 * khugepaged, as Linux's (docs/architecture.md, "Host huge pages"): it collapses 2M ranges of
 * every VM's host memory on @m that THP applies to (the VM's config.thp always, or madvise and
 * the memory madvised) and that 4K pages map (a fault that found no free 2M block, a split)
 * into THPs, under the MMU notifiers, so the MMUs can map them 2M again. Passes run when the
 * caller says, vmmu_khugepaged_run() at the caller's clock, or on a thread of its own,
 * vmmu_khugepaged_start(), real milliseconds apart; not both at once.
 */
/* Knobs by their /sys/kernel/mm/transparent_hugepage/khugepaged names: pages_to_scan,
 * scan_sleep_millisecs, alloc_sleep_millisecs, max_ptes_none, defrag. As vmmu_ksm_*_param. */
int vmmu_khugepaged_set_param(struct vmmu_machine *m, const char *key, uint64_t val);
int vmmu_khugepaged_get_param(struct vmmu_machine *m, const char *key, uint64_t *val);
/* "KEY=VALUE[,KEY=VALUE...]": checked, or set on @m (NULL: check only); -EINVAL with @err. */
int vmmu_khugepaged_set_params(struct vmmu_machine *m, const char *spec, char *err,
			       size_t errlen);
/* khugepaged's wake-up at time @now_ms: a pass if scan_sleep_millisecs (alloc_sleep_millisecs
 * after a pass that found no free 2M block) have gone by since the last one, or none ran yet;
 * *@ran (may be NULL) says if one did. The ranges collapsed, or -errno. */
int vmmu_khugepaged_run(struct vmmu_machine *m, uint64_t now_ms, bool *ran);
/* The thread: 0, -EBUSY (runs already) or -errno; stop waits for the pass under way. */
int vmmu_khugepaged_start(struct vmmu_machine *m);
void vmmu_khugepaged_stop(struct vmmu_machine *m);

/* A fragmented host, as memory-fragmentation studies make one before a workload: every other 4K
 * frame of @pct% (0..100) of @m's free 2M blocks is taken and held, so a THP fault falls back to
 * 4K pages once the free 2M blocks are gone (thp_fault_fallback) and khugepaged finds no block
 * to collapse into (thp_collapse_alloc_failed) until vmmu_machine_unfragment() lets them go (it
 * returns how many frames; the machine's destroy does it too). The blocks whose holes the VMs
 * filled meanwhile stay broken: the model has no compaction. 0, -EINVAL, -EBUSY (fragmented already), -ENOMEM.
 * Locking: the caller's, as vmmu_ksm_run. */
int vmmu_machine_fragment(struct vmmu_machine *m, unsigned pct);
uint64_t vmmu_machine_unfragment(struct vmmu_machine *m);

/* Anonymous memory in the VMM's (modelled) address space, to back memslots (hugetlbfs pages if
 * the VM's config asks: @hugepage is then moot). Unmapping memory
 * under a memslot is allowed (the MMU notifiers drop every mapping of it); guest accesses to it
 * then fail with -EFAULT, and a new mapping at the hva is faulted in fresh. */
int vmmu_vm_mmap(struct vmmu_vm *vm, uint64_t len, bool hugepage, uint64_t *hva);
int vmmu_vm_munmap(struct vmmu_vm *vm, uint64_t hva, uint64_t len);

/* KVM_SET_USER_MEMORY_REGION. */
int vmmu_set_user_memory_region(struct vmmu_vm *vm, const struct vmmu_userspace_memory_region *r);

/* KVM_GET_DIRTY_LOG: copy the slot's dirty bitmap (one bit a page, LSB first) to @bitmap
 * (at least ceil(npages/64) words) and clear it. */
int vmmu_get_dirty_log(struct vmmu_vm *vm, uint32_t slot, uint64_t *bitmap);

/* Guest physical memory as the VMM sees it (not through any MMU): copy to/from gpa. */
int vmmu_read_guest(struct vmmu_vm *vm, vmmu_gpa_t gpa, void *buf, size_t len);
int vmmu_write_guest(struct vmmu_vm *vm, vmmu_gpa_t gpa, const void *buf, size_t len);

/* ---- vCPUs ---- */

/* Architectural control state, as KVM_SET_SREGS sets it (no exits, no flush rules). */
struct vmmu_regs {
	uint64_t cr0, cr3, cr4, efer;
	uint32_t pkru;
	uint8_t cpl;        /* 0..3 */
	bool ac;            /* RFLAGS.AC */
};

/* A new vCPU is in its reset state, as after INIT: real mode, paging off (CR0 = ET | CD | NW;
 * CR3, CR4, EFER, PKRU 0; CPL 0, RFLAGS.AC clear), an empty TLB. Give it paging with
 * vmmu_vcpu_set_regs. -EINVAL for an id that is taken or out of range. */
int vmmu_vcpu_create(struct vmmu_vm *vm, unsigned id, struct vmmu_vcpu **out);
int vmmu_vcpu_get_regs(struct vmmu_vcpu *vcpu, struct vmmu_regs *regs);
/* -EINVAL for a state the CPU refuses (reserved bits, CR4 bits of absent features, PG without PE,
 * LMA without PAE). Flushes the vCPU's TLB. */
int vmmu_vcpu_set_regs(struct vmmu_vcpu *vcpu, const struct vmmu_regs *regs);

/* A privilege change as on interrupt/syscall entry and return: CPL and RFLAGS.AC only, no TLB
 * flush. -EINVAL for cpl > 3. */
int vmmu_vcpu_set_cpl(struct vmmu_vcpu *vcpu, unsigned cpl, bool ac);
/* WRPKRU. */
int vmmu_vcpu_set_pkru(struct vmmu_vcpu *vcpu, uint32_t pkru);

/* Access kinds. */
#define VMMU_ACC_READ     0u
#define VMMU_ACC_WRITE    (1u << 0)
#define VMMU_ACC_FETCH    (1u << 1)
#define VMMU_ACC_IMPLICIT (1u << 2)   /* implicit supervisor access (descriptor tables) */

enum vmmu_access_status {
	VMMU_ACCESS_DONE = 0,   /* the access happened */
	VMMU_ACCESS_PF,         /* a #PF was delivered to the guest: pf_ec, pf_addr */
	VMMU_ACCESS_MMIO,       /* an MMIO exit: complete it with vmmu_vcpu_complete_mmio() */
	VMMU_ACCESS_GP,         /* #GP (a non-canonical address) */
};

struct vmmu_access_result {
	enum vmmu_access_status status;
	uint32_t pf_ec;         /* PF: error code */
	uint64_t pf_addr;       /* PF: CR2 */
	uint64_t mmio_gpa;      /* MMIO: address, size (1..8), direction, data */
	uint32_t mmio_len;
	bool mmio_write;
	uint64_t mmio_data;     /* MMIO write: the data; read: fill it and call complete */
	uint32_t done;          /* bytes completed before the PF/MMIO (a split access) */
};

/*
 * A load, store or fetch of @len bytes (1..8, or 4096 for a page-aligned page copy) at @gva with
 * the vCPU's CPL, from/into @buf. Returns 0 and fills @res, or -EINVAL for bad arguments. VM exits
 * to the MMU are handled inside and never seen here. -EFAULT: the access, or the walk of the
 * guest's tables, reached a memslot page with no host memory behind it (vmmu_vm_munmap'ed), in
 * every mode, as KVM_RUN fails with -EFAULT; nothing of the access is done (a #PF of any page of
 * it comes first).
 */
int vmmu_vcpu_access(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len, unsigned kind, void *buf,
		     struct vmmu_access_result *res);
/* One access of a batch: @len 1..8 bytes at @gva; a write stores the low @len bytes of @val, a
 * read or fetch fills @val with them, zero-extended. */
struct vmmu_access_op {
	uint64_t gva;
	uint64_t val;
	uint32_t len;
	uint32_t kind;          /* VMMU_ACC_* */
};

/*
 * @n accesses in order, each exactly as vmmu_vcpu_access makes it (the same TLB, exits,
 * counters and cycles), without an API crossing for each: the guest's straight-line code. It
 * stops at the first access that does not complete: *@done gets the number that did, and if
 * fewer than @n, @res is the result of access *@done (PF, GP or MMIO, as vmmu_vcpu_access gives
 * it; a split access's first page may be done, res->done says). 0; or -EINVAL for a bad
 * argument (*@done 0) or op (*@done: the ops before it were made), -EFAULT as
 * vmmu_vcpu_access (*@done: the ops before the one that failed).
 */
int vmmu_vcpu_access_batch(struct vmmu_vcpu *vcpu, struct vmmu_access_op *ops, unsigned n,
			   unsigned *done, struct vmmu_access_result *res);
/*
 * A hint that the guest will soon make an access of @kind at @gva, as an out-of-order core starts
 * a later load's cache miss before the loads ahead of it are done: if the vCPU translated @gva's
 * page lately, its host bytes are prefetched into the host's caches (natively, also the page's
 * entry in the guest's last-level table, which a TLB miss's walk reads). A caller that knows its
 * next accesses (a trace, a loop over random addresses) issues them a few accesses ahead, so that
 * their cache misses overlap. Nothing the model shows changes: no TLB entry, A/D bit, counter,
 * cycle or exit, whatever @gva is. The same thread rules as vmmu_vcpu_access. 0, or -EINVAL.
 */
int vmmu_vcpu_prefetch(struct vmmu_vcpu *vcpu, uint64_t gva, unsigned kind);
/*
 * The same access made by the hypervisor's instruction emulator instead of the hardware, as KVM's
 * x86 emulator makes it for an instruction it emulates (and a PVM host for all guest ring-0
 * code): the guest's tables walked in software with the vCPU's state (A/D set), guest memory read
 * or written, a write reported to the MMU's write tracking (mmu_pte_write; shadow entries of a
 * written guest table dropped, as kvm_page_track_write). No TLB entry, no VM exit. @len 1..8
 * within one page. A #PF it finds is injected (status PF, counted as pf_guest under an MMU);
 * memory outside every memslot (MMIO) is -EFAULT.
 */
int vmmu_vcpu_emulate_access(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len, unsigned kind,
			     void *buf, struct vmmu_access_result *res);
/* Finish an MMIO read exit: the data the device returned. */
int vmmu_vcpu_complete_mmio(struct vmmu_vcpu *vcpu, struct vmmu_access_result *res, void *buf);

/* Guest instructions with architectural TLB semantics (and exits where intercepted).
 * -EINVAL where the CPU would #GP (reserved bits, invalid INVPCID type or operand). */
int vmmu_vcpu_mov_cr(struct vmmu_vcpu *vcpu, int cr, uint64_t val);   /* cr 0, 3 or 4 */
int vmmu_vcpu_invlpg(struct vmmu_vcpu *vcpu, uint64_t gva);
int vmmu_vcpu_invpcid(struct vmmu_vcpu *vcpu, unsigned type, uint16_t pcid, uint64_t gva);

/* ---- statistics (names as KVM's binary stats; docs/user-guide.md, "The JSON object") ---- */

enum vmmu_exit_reason {
	VMMU_EXIT_PF = 0, VMMU_EXIT_EPT_VIOLATION, VMMU_EXIT_EPT_MISCONFIG, VMMU_EXIT_NPF,
	VMMU_EXIT_CR3, VMMU_EXIT_INVLPG, VMMU_EXIT_MMIO, VMMU_EXIT_NR,
};

/* Grows at its end only; version and size say what a caller got (vmmu_vm_stats). Version 2
 * added the KSM figures after exit_cycles; version 3 ksmd's use of the MMU's dirty state;
 * version 4 the host's THP events; version 5 mmu_lock_wait_ns; version 6 sp_lock_contended;
 * version 7 khugepaged's figures. */
#define VMMU_STATS_VERSION 7

struct vmmu_stats {
	uint32_t version;          /* out: VMMU_STATS_VERSION of the library that filled it */
	uint32_t size;             /* out: bytes filled (the caller's struct, or less) */
	uint64_t pf_taken, pf_fixed, pf_emulate, pf_spurious, pf_fast, pf_guest,
		 pf_mmio_spte_created, invlpg, tlb_flush, exits, mmu_shadow_zapped, mmu_pte_write,
		 mmu_pde_zapped, mmu_flooded, mmu_recycled, mmu_cache_miss, mmu_unsync, pages_4k,
		 pages_2m, pages_1g, remote_tlb_flush;
	uint64_t tlb_hits, tlb_misses, walk_refs, shadow_pages, tdp_pages;
	uint64_t exits_by_reason[VMMU_EXIT_NR];
	/* The VM's host's (shared by the VMs on one host): KSM as /sys/kernel/mm/ksm, frames used */
	uint64_t ksm_pages_shared, ksm_pages_sharing, ksm_full_scans, host_frames;
	uint64_t accesses, sim_cycles;
	/* Simulated cycles of the VM exits by reason: the round trip and the handler (the MMU's
	 * steps, an MMIO exit to user space), as `perf kvm stat` times exits. */
	uint64_t exit_cycles[VMMU_EXIT_NR];
	/* Version 2: the rest of the host's KSM figures (/sys/kernel/mm/ksm names), and ksmd's work */
	uint64_t ksm_pages_unshared, ksm_pages_volatile, ksm_cow_breaks, ksm_zero_pages;
	int64_t general_profit;    /* bytes: frames saved less ksmd's metadata, as the kernel's */
	uint64_t ksm_passes, ksm_checksums, ksm_compares, ksm_merges;
	uint64_t ksm_merge_scans;  /* full scans until the last merge, its own included */
	/* Version 3: with the KSM knob use_mmu_dirty, pages ksmd took as unchanged from the MMU's
	 * dirty state (their checksum reused), as written (volatile, no checksum), and its
	 * harvests of that state (64 pages each) */
	uint64_t ksm_mmu_unchanged, ksm_mmu_written, ksm_mmu_harvests;
	/* Version 4: the VM's host address space's transparent huge page events, named as in
	 * /proc/vmstat (hugetlb pages count in none): 2M THPs a first touch mapped, first touches
	 * THP applied to that found no free 2M block (mapped 4K), THPs split into 4K mappings,
	 * and THPs khugepaged collapsed. */
	uint64_t thp_fault_alloc, thp_fault_fallback, thp_split_page, thp_collapse_alloc;
	/* Version 5: host nanoseconds vCPUs waited for the MMU's lock (mmu_lock) when another
	 * thread held it: faults, root loads, INVLPG, syncs (0 when one thread runs every vCPU) */
	uint64_t mmu_lock_wait_ns;
	/* Version 6: takes of the soft MMU's fine-grained locks (a shadow page's, a gfn stripe's,
	 * the structure lock) that found it held by another thread (VMMU_MMU_LOCK_FINE; 0 on one
	 * thread) */
	uint64_t sp_lock_contended;
	/* Version 7: khugepaged. The VM's: collapses that found no free 2M block (/proc/vmstat's
	 * thp_collapse_alloc_failed). The machine's (transparent_hugepage/khugepaged's files):
	 * THPs it made in every VM, its trips over every VM, its passes, the pages it looked at. */
	uint64_t thp_collapse_alloc_failed;
	/* THPs split under memory pressure for their zero-filled subpages (thp_underused_split_page;
	 * counted in thp_split_page too) */
	uint64_t thp_underused_split_page;
	uint64_t khugepaged_pages_collapsed, khugepaged_full_scans, khugepaged_passes,
		 khugepaged_pages_scanned;
};

/* The fields of struct vmmu_stats that are the machine's, not the VM's: the same in the stats of
 * every VM on one machine (X(field) each). */
#define VMMU_STATS_MACHINE_FIELDS(X)                                                               \
	X(host_frames) X(ksm_pages_shared) X(ksm_pages_sharing) X(ksm_full_scans)                  \
	X(ksm_pages_unshared) X(ksm_pages_volatile) X(ksm_cow_breaks) X(ksm_zero_pages)            \
	X(general_profit) X(ksm_passes) X(ksm_checksums) X(ksm_compares) X(ksm_merges)             \
	X(ksm_merge_scans) X(ksm_mmu_unchanged) X(ksm_mmu_written) X(ksm_mmu_harvests)             \
	X(khugepaged_pages_collapsed) X(khugepaged_full_scans) X(khugepaged_passes)                \
	X(khugepaged_pages_scanned)

/* A count as a user writes it on a command line or in a parameter: decimal digits only (no sign,
 * space, base prefix or suffix), so "010" is ten and "0x10" is refused. 0, or -EINVAL (not a
 * number) / -ERANGE (above @max). */
int vmmu_parse_uint(const char *s, uint64_t max, uint64_t *out);

/* The optimizations in effect (VMMU_OPT_*): those asked for that the host allows. */
uint32_t vmmu_vm_opts(const struct vmmu_vm *vm);
/* Check the Isolation invariant over every MMU table (a no-op in native mode). 0, or -EFAULT
 * with the first violation described in @why. */
int vmmu_vm_audit(struct vmmu_vm *vm, char *why, size_t whylen);

/* Sum of every vCPU's counters and the VM's (a vCPU's: its own only), into the first @size bytes
 * of @st: a program built against an older, shorter struct vmmu_stats gets the fields it knows.
 * The *_get_stats macros pass the size the caller was compiled with. docs/fidelity.md says what
 * each KVM-named counter counts. Callable from any thread at any time, vCPU threads running
 * (as KVM's binary stats are read while its vCPUs run): each counter is a value it had during the
 * call, never torn, never lower than an earlier call's, but the fields are not one instant's (a
 * running vCPU's accesses may already count one its tlb_hits does not yet). The gauges (pages_*,
 * shadow_pages, tdp_pages) are sums of parts counted on several threads: meanwhile they may be
 * off by the changes in flight (never below 0). Read once the vCPUs stop, all agree exactly. */
int vmmu_vm_stats(struct vmmu_vm *vm, struct vmmu_stats *st, size_t size);
int vmmu_vcpu_stats(struct vmmu_vcpu *vcpu, struct vmmu_stats *st, size_t size);
#define vmmu_vm_get_stats(vm, st) vmmu_vm_stats((vm), (st), sizeof(*(st)))
#define vmmu_vcpu_get_stats(vcpu, st) vmmu_vcpu_stats((vcpu), (st), sizeof(*(st)))

/* ---- building guest page tables from the VMM (embedders, tests) ---- */

/* Guest page-table entry bits (x86-64), for vmmu_gpt_map's @flags. */
#define VMMU_PTE_P    (1ULL << 0)
#define VMMU_PTE_RW   (1ULL << 1)
#define VMMU_PTE_US   (1ULL << 2)
#define VMMU_PTE_A    (1ULL << 5)
#define VMMU_PTE_D    (1ULL << 6)
#define VMMU_PTE_PS   (1ULL << 7)
#define VMMU_PTE_G    (1ULL << 8)
#define VMMU_PTE_NX   (1ULL << 63)

/*
 * Map @gva to @gpa in the 64-bit guest page tables (@levels 4 or 5) rooted at gpa @root, with a
 * leaf at @level (1: 4K, 2: 2M, 3: 1G) whose flags are @flags (PS is added above level 1). A
 * missing table comes from @alloc_table (the gpa of a zeroed 4K page of guest memory; 0 when
 * none is left); tables are made present, writable and user, so the leaf alone sets the rights.
 * Guest memory is written from the VMM side (vmmu_write_guest): build tables before the guest
 * runs, or flush as the guest would. 0, -EINVAL (alignment, level), -ENOMEM, or what
 * vmmu_read_guest/vmmu_write_guest return (-EFAULT: a table outside guest memory).
 */
int vmmu_gpt_map(struct vmmu_vm *vm, vmmu_gpa_t root, int levels, vmmu_gva_t gva, vmmu_gpa_t gpa,
		 int level, uint64_t flags, vmmu_gpa_t (*alloc_table)(void *opaque), void *opaque);

#endif
