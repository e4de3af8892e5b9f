/* SPDX-License-Identifier: MIT */
/*
 * vm/: the hypervisor's VM and vCPU objects under the public API (include/vmmu/vmmu.h), as KVM's
 * x86.c sits over vmx/svm and the MMU. A VM owns the host (frame arena, VMM address space) and the
 * memslots; a vCPU owns its hardware model (cpu/) and a gfn -> host-pointer cache for it.
 *
 * Invariants:
 *  - vm->host (its arena, its ksmd) outlives vm->mm, which outlives vm->slots (destroyed in
 *    reverse); the mm leaves ksmd before it goes;
 *  - a vCPU's guest-page cache (in cpu/) is emptied on every memslot change (native mode) and
 *    host mapping invalidation, before the change completes.
 * Locking: memslot updates serialize inside mem/; vCPU creation takes vm->lock; a vCPU is used by
 * one thread at a time (its caller's), which alone touches its hardware caches: other threads
 * reach them only through requests (request.c: vm_make_all_cpus_request, under vm->lock).
 */
#ifndef VMMU_VM_H
#define VMMU_VM_H

#include <pthread.h>

#include "cpu/cpu.h"
#include "host/host.h"
#include "mem/memslot.h"
#include "mmu/mmu.h"
#include "paging/paging.h"
#include "paging/slots_gmem.h"
#include "vmmu/vmmu.h"


/* Legend: [c] set at creation, then constant; [o] owned by the vCPU's thread. */
struct vmmu_vcpu {
	struct vmmu_vm *vm;                              /* [c] */
	unsigned id;                                     /* [c] */
	/* KVM's request protocol (request.c has it in full). [a] VCPU_REQ_* bits: set by any
	 * thread, taken by the vCPU's own when it enters the guest; VCPU_REQ_FLUSH_COUNTED is
	 * KVM_REQ_TLB_FLUSH as counted (requests before one entry are one flush). */
	uint32_t requests;
	uint32_t mode;                                   /* [a] enum vcpu_mode */
	uintptr_t owner;                                 /* [a] the thread that entered it last
							  * (vcpu_owner_tag); here, beside the
							  * hardware's hot fields */
	/* [a] Remote TLB flushes made since the vCPU last serviced its requests: each is charged
	 * to the vCPU's hardware as one flush (cpu_flush_tlb_charge) when it services them. */
	uint64_t remote_flushes;
	/* [a] Odd while the vCPU's thread moves remote_flushes into its hardware's counts
	 * (vcpu_service_requests): a stats call, which adds both, reads again across it, so that
	 * it sees those flushes in one or the other and a counter never reads lower later. */
	uint32_t flush_seq;
	struct cpu cpu;                                  /* [o] the hardware */
	struct mmu_vcpu mmu;                             /* [o] the MMU's per-vCPU state */
	struct slot_cache slots;                         /* [o] */
	/* [o] The slot of the last write answer vcpu_phys_page gave uncacheable (a dirty-logging
	 * slot): vcpu_phys_written marks its bitmap after the store. Valid while the vCPU stays in
	 * guest mode from that answer to the store: a slot change waits for it to leave (its change
	 * hook's request) before it frees the old slot, and a MOVE keeps the bitmap. */
	const struct memslot *logged_slot;
	/* [a] The hypervisor's own counters of this vCPU, as KVM's per-vCPU stats (docs/fidelity.md):
	 * flush requests serviced (an intercepted CR3 load or other guest flush, a remote flush) and
	 * INVLPG / INVPCID-address exits handled. The hardware's own counts (cpu.st) feed the cost
	 * model only. */
	struct {
		uint64_t tlb_flush, invlpg;
	} kvm_st;
};

/* ---- request.c: KVM's vcpu->requests and vcpu->mode ---- */

enum vcpu_mode { OUTSIDE_GUEST_MODE = 0, IN_GUEST_MODE, EXITING_GUEST_MODE };

#define VCPU_REQ_FLUSH_COUNTED (1u << 0)   /* KVM_REQ_TLB_FLUSH, for the count only */
#define VCPU_REQ_TLB_FLUSH     (1u << 1)   /* flush the hardware's TLB (a remote flush) */
#define VCPU_REQ_PCACHE_FLUSH  (1u << 2)   /* empty the guest-page cache (memory map changed) */

/* The thread's tag (vcpu->owner holds the tag of the thread that entered it last; with the bit
 * VCPU_OWNER_FENCE set where the kernel lacks membarrier, so that every entry takes the out-of-line
 * path with its full fence) and the vCPU whose exit or intercepted instruction this thread is
 * handling now (KVM's kvm_get_running_vcpu), NULL outside one. */
#define VCPU_TLS __thread __attribute__((tls_model("initial-exec")))
extern VCPU_TLS uint64_t vcpu_thread_tag;
extern VCPU_TLS struct vmmu_vcpu *vcpu_running;
#define VCPU_OWNER_FENCE 1u

void vcpu_service_requests(struct vmmu_vcpu *v, uint32_t take);
bool vcpu_enter_slow(struct vmmu_vcpu *v, uint32_t take);
/* Make a request of every vCPU of @vm but the running one, kick those in guest mode and wait
 * until each has left it (KVM's kvm_make_all_cpus_request with KVM_REQUEST_WAIT). Takes
 * vm->lock. */
void vm_make_all_cpus_request(struct vmmu_vm *vm, uint32_t req);
/* Once per process, before any vCPU runs. */
void vcpu_requests_init(void);

#define VCPU_REQ_WORK (VCPU_REQ_TLB_FLUSH | VCPU_REQ_PCACHE_FLUSH)

/* Into guest mode: publish the mode, then take the pending requests of @take. The store and the
 * load are ordered by the sender's membarrier (asymmetric fence), or a full fence here. True
 * when requests were taken, so what was looked up out of guest mode may be stale. */
static inline bool vcpu_enter_take(struct vmmu_vcpu *v, uint32_t take)
{
	if (__builtin_expect(__atomic_load_n(&v->owner, __ATOMIC_RELAXED) != (uintptr_t)&vcpu_thread_tag, 0))
		return vcpu_enter_slow(v, take);
	__atomic_store_n(&v->mode, IN_GUEST_MODE, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);   /* the sender's membarrier does the rest */
	if (__builtin_expect((__atomic_load_n(&v->requests, __ATOMIC_RELAXED) & take) == 0, 1))
		return false;
	vcpu_service_requests(v, take);
	return true;
}

/* The hit path's entry: false when the vCPU must enter the full way (vcpu_enter: a new thread, no
 * membarrier, or requests pending), so that the hit path makes no call but tail calls. */
static inline bool vcpu_try_enter(struct vmmu_vcpu *v)
{
	if (__builtin_expect(__atomic_load_n(&v->owner, __ATOMIC_RELAXED) != (uintptr_t)&vcpu_thread_tag, 0))
		return false;
	__atomic_store_n(&v->mode, IN_GUEST_MODE, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return __builtin_expect(__atomic_load_n(&v->requests, __ATOMIC_RELAXED) == 0, 1);
}

/* The vCPU enters the guest to run an access: every request is taken (KVM services them once
 * per entry, so flush requests before it count as one). */
static inline void vcpu_enter(struct vmmu_vcpu *v)
{
	vcpu_enter_take(v, ~0u);
}

/* The vCPU leaves guest mode: a sender waiting for it goes on. Nothing of the hardware (TLB,
 * guest-page cache) is used after this until the next vcpu_enter. */
static inline void vcpu_leave(struct vmmu_vcpu *v)
{
	__atomic_store_n(&v->mode, OUTSIDE_GUEST_MODE, __ATOMIC_RELEASE);
}

/* ---- vcpu.c and access.c: an access ---- */

/* A load, a store or a fetch (or an implicit supervisor load); never a store that fetches. */
static inline bool access_kind_ok(unsigned kind)
{
	return !(kind & ~(VMMU_ACC_WRITE | VMMU_ACC_FETCH | VMMU_ACC_IMPLICIT)) &&
	       !((kind & VMMU_ACC_WRITE) && (kind & VMMU_ACC_FETCH));
}

/* The access past the hit path (vcpu.c), which leaves guest mode when it is done; and the access
 * when the vCPU enters the full way (vcpu_try_enter said no). access.c's hit path calls them. */
int vcpu_access_slow(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len, unsigned kind, void *buf,
		     struct vmmu_access_result *res);
int vcpu_access_entering(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len, unsigned kind,
			 void *buf, struct vmmu_access_result *res);

/* The host's KSM figures into @st (host.c). */
void vm_machine_ksm_stats(struct vmmu_machine *h, struct vmmu_stats *st);

/* KVM_REQ_TLB_FLUSH for @v: counted (tlb_flush) unless one is already pending. */
void vcpu_request_flush(struct vmmu_vcpu *v);

/* The machine VMs run on: its frames, its ksmd and khugepaged. Legend as below; [a] atomic. */
struct vmmu_machine {
	struct host_arena *arena;                        /* [c] */
	struct host_ksm *ksm;                            /* [c] */
	uint64_t ksm_next_ms;                            /* ksmd's next wake-up; guarded by the
							  * caller of vmmu_ksm_run */
	bool ksm_ran;
	struct host_khugepaged *khugepaged;              /* [c] */
	uint64_t khugepaged_next_ms;                     /* as ksm_next_ms, for
							  * vmmu_khugepaged_run */
	bool khugepaged_ran;
	pfn_t *frag_pins;                                /* vmmu_machine_fragment's; guarded by */
	size_t nr_frag_pins;                             /* its caller */
	unsigned nr_vms;                                 /* [a] VMs on it */
};

struct vmmu_vm {
	struct vmmu_machine *host;                          /* [c] */
	bool own_host;                                   /* [c] made by vmmu_vm_create */
	bool mergeable;                                  /* [a] vmmu_vm_set_mergeable's last word:
							  * slots made later are mergeable too */
	struct host_arena *arena;                        /* [c] host->arena */
	struct host_mm *mm;                              /* [c] */
	struct memslots *slots;                          /* [c] */
	struct vmmu_vm_config cfg;                       /* [c] with defaults filled */
	struct cpu_model cpu_model;                      /* [c] the guest CPU */
	struct mmu *mmu;                                 /* [c] NULL in native mode */
	uint32_t opts;                                   /* [c] VMMU_OPT_* in effect */
	struct host_mmu_notifier mn;                     /* [c] empties the vCPUs' page caches */
	pthread_mutex_t lock;                            /* guards vcpus[], nr_vcpus */
	struct vmmu_vcpu *vcpus[VMMU_MAX_VCPUS];
	unsigned nr_vcpus;
};


#endif
