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
 * one thread at a time (its caller's).
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
	struct cpu cpu;                                  /* [o] the hardware */
	struct mmu_vcpu mmu;                             /* [o] the MMU's per-vCPU state */
	struct slot_cache slots;                         /* [o] */
	/* [a] The hypervisor's own counters of this vCPU, as KVM's per-vCPU stats (docs/fidelity.md):
	 * flush requests serviced (an intercepted CR3 load or other guest flush, a remote flush) and
	 * INVLPG / INVPCID-address exits handled. The hardware's own counts (cpu.st) feed the cost
	 * model only. */
	struct {
		uint64_t tlb_flush, invlpg;
	} kvm_st;
	/* [a] A flush request made since the vCPU last entered the guest (vcpu_request_flush):
	 * KVM services its pending requests once per entry, so requests before one entry are one
	 * flush. Set by any thread, cleared by the vCPU's own at each entry (an access, a retry). */
	uint32_t flush_pending;
};

/* The host's KSM figures into @st (host.c). */
void vm_machine_ksm_stats(struct vmmu_machine *h, struct vmmu_stats *st);

/* KVM_REQ_TLB_FLUSH for @v: counted (tlb_flush) unless one is already pending. */
void vcpu_request_flush(struct vmmu_vcpu *v);

/* The machine VMs run on: its frames and its ksmd. Legend as below; [a] atomic. */
struct vmmu_machine {
	struct host_arena *arena;                        /* [c] */
	struct host_ksm *ksm;                            /* [c] */
	uint64_t ksm_next_ms;                            /* ksmd's next wake-up; guarded by the
							  * caller of vmmu_ksm_run */
	bool ksm_ran;
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
