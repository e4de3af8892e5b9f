/* SPDX-License-Identifier: MIT */
/*
 * mmu/: the MMU virtualization proper (layer 5 of docs/architecture.md), entered from VM exits (vm/ hands it
 * what the hardware returned), from guest instructions the hypervisor intercepts (MOV CR3,
 * INVLPG, INVPCID, CR0/CR4 writes), from MMU notifiers (host/) and from memslot changes (mem/).
 *
 * One interface over the modes: the hard MMU (mmu/tdp_mmu.c: EPT and NPT direct tables) and the
 * soft MMU (mmu/shadow.c: shadow page tables). Native mode has no MMU (vm/ never creates one).
 *
 * Invariants (docs/architecture.md): Isolation — every present leaf spte maps the pfn that backs its gfn now,
 * with rights no wider than the guest PTE (soft MMU), the memslot, the host mapping and write
 * tracking allow (mmu_audit() checks every table); Coherence — once the guest changes a PTE and
 * performs the flush the architecture requires, no access uses the old translation; Accounting —
 * every table page is owned and counted, and mmu_destroy() returns them all.
 *
 * Locking: mmu_lock is a reader-writer lock: hard-MMU faults take it shared and install sptes
 * with compare-and-swap (exclusive under VMMU_MMU_LOCK_BIG), soft-MMU faults exclusive; zapping
 * roots and memslot changes take it exclusive. Table pages are freed
 * after an RCU grace period (liburcu-bp), so lockless walkers never touch a freed page. An
 * invalidation sequence (as KVM's mmu_invalidate_seq) makes a fault that raced with an MMU
 * notifier retry. Counters: a vCPU's block (mmu_vcpu.st) has one writer, the thread handling
 * that vCPU's exit; the MMU's list of vCPUs is under its vcpus_lock (mmu_internal.h).
 * docs/locking.md has the order.
 */
#ifndef VMMU_MMU_H
#define VMMU_MMU_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/cpu.h"
#include "host/host.h"
#include "mem/memslot.h"
#include "vmmu/vmmu.h"

/* Optimizations (--opt), each on by default where the host allows it. */
#define MMU_OPT_NOTRAP   (1u << 0)
#define MMU_OPT_UNSYNC   (1u << 1)
#define MMU_OPT_PREFETCH (1u << 2)
#define MMU_OPT_FASTPF   (1u << 3)
#define MMU_OPT_ALL      (MMU_OPT_NOTRAP | MMU_OPT_UNSYNC | MMU_OPT_PREFETCH | MMU_OPT_FASTPF)

/* What the MMU uses from its VM, given at creation. */
struct mmu_env {
	enum vmmu_mmu mode;               /* shadow, ept or npt */
	enum vmmu_host host;
	unsigned opts;                    /* MMU_OPT_* */
	struct host_arena *arena;
	struct host_mm *mm;
	struct memslots *slots;
	struct cpu_model cpu;             /* the (host = guest) CPU: MAXPHYADDR, 1G pages */
	uint64_t max_shadow_pages;        /* soft MMU page limit (0 = default) */
	enum vmmu_mmu_evict evict;        /* which shadow pages make room at the limit */
	enum vmmu_mmu_lock lock;          /* big: every fault takes mmu_lock exclusive */
	/* Flush every vCPU's TLB and wait until each has (KVM's kvm_flush_remote_tlbs). True when
	 * another vCPU had to be interrupted for it (KVM's kvm_make_all_cpus_request sent IPIs). */
	bool (*flush_remote_tlbs)(void *opaque);
	void *opaque;
};

struct mmu;

/* Per-VM counters the MMU keeps (summed into struct vmmu_stats by vm/). */
struct mmu_stats {
	uint64_t pf_taken, pf_fixed, pf_emulate, pf_spurious, pf_fast, pf_guest,
		 pf_mmio_spte_created, mmu_shadow_zapped, mmu_pte_write, mmu_pde_zapped,
		 mmu_flooded, mmu_recycled, mmu_cache_miss, mmu_unsync, pages_4k, pages_2m,
		 pages_1g, remote_tlb_flush, shadow_pages, tdp_pages, mmu_steps,
		 mmu_lock_wait_ns, sp_lock_contended;
};

/* Per-vCPU MMU state, embedded in the vCPU (vm/). Legend: [o] owned by the vCPU thread. */
struct mmu_vcpu {
	struct mmu *mmu;
	struct cpu *cpu;                  /* the hardware this vCPU runs on */
	struct slot_cache slots;          /* [o] */
	void *priv;                       /* [o] the mode's per-vCPU state (roots, caches) */
	/* [o] what the MMU counts while it handles this vCPU's exits (mmu_stat_add): one writer,
	 * whose adds are a relaxed load and store, not a locked add; summed by mmu_get_stats with
	 * the VM's shards, and folded into them when the vCPU goes (mmu_vcpu_destroy). */
	struct mmu_stats st;
	/* [o] as st: the soft MMU's changes to its tables while it handles this vCPU's exits
	 * (shadow_changed), summed by shadow_changes, folded into mmu.changes_gone when it goes */
	uint64_t changes;
	struct mmu_vcpu *next;            /* the MMU's list of vCPUs [the mmu's vcpus_lock] */
};

enum mmu_action {
	MMU_RETRY = 0,      /* fixed: run the access again */
	MMU_MMIO,           /* the access is MMIO: exit to user space (mmio_gpa) */
	MMU_INJECT_PF,      /* the guest must see a #PF (pf_ec, pf_addr) */
	MMU_EMULATED,       /* the MMU performed the access itself (a write it emulated): done */
};

struct mmu_outcome {
	enum mmu_action action;
	gpa_t mmio_gpa;
	uint32_t mmio_done;    /* MMIO: bytes of the access already stored by the MMU (then
				* mmio_gpa is the second page's); vm/ reports the rest as MMIO */
	uint32_t pf_ec;
	gva_t pf_addr;
};

/* Is the mode's implementation present? */
bool mmu_mode_available(enum vmmu_mmu mode);
int mmu_create(const struct mmu_env *env, struct mmu **out);
void mmu_destroy(struct mmu *m);

/* Attach a vCPU: set its exit controls and its root. 0 or -errno. */
int mmu_vcpu_init(struct mmu *m, struct mmu_vcpu *mv, struct cpu *c);
/* Detach a vCPU, folding its counts into the VM's. No thread is handling its exits (their
 * counts, after the fold, would be lost). */
void mmu_vcpu_destroy(struct mmu_vcpu *mv);

/* A VM exit the hardware returned for an access (o->exit). */
int mmu_handle_exit(struct mmu_vcpu *mv, const struct hw_exit *e, struct mmu_outcome *out);

/* Intercepted guest instructions, after the architectural effect on the hardware (cpu_mov_cr,
 * cpu_invlpg, cpu_invpcid) has been applied. Only the soft MMU intercepts them. */
int mmu_guest_cr_changed(struct mmu_vcpu *mv, int cr, uint64_t old, uint64_t val);
int mmu_guest_invlpg(struct mmu_vcpu *mv, gva_t gva);
int mmu_guest_invpcid(struct mmu_vcpu *mv, unsigned type, uint16_t pcid, gva_t gva);

/* User space wrote guest memory (vmmu_write_guest): no write tracking saw it. Takes mmu_lock;
 * call with no memslot read section or mm lock held. */
void mmu_guest_written(struct mmu *m, gpa_t gpa, uint64_t len);
/* The hypervisor's instruction emulator wrote [gpa, gpa + len) (one page at most) for the guest:
 * KVM's kvm_page_track_write. Returns the handler steps it cost (0 in modes without write
 * tracking). */
uint64_t mmu_track_write(struct mmu *m, gpa_t gpa, uint32_t len);
/* The hypervisor injected a #PF its emulator found (pf_guest). */
void mmu_count_injected_pf(struct mmu *m);

/* Check the Isolation invariant over every table. 0, or -EFAULT with the first violation in
 * @why. */
int mmu_audit(struct mmu *m, char *why, size_t whylen);

void mmu_get_stats(struct mmu *m, struct mmu_stats *st);

#endif
