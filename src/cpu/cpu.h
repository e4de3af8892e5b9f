/* SPDX-License-Identifier: MIT */
/*
 * cpu/: the hardware model of one vCPU (logical processor): architectural state, the TLB, the
 * page-walk hardware of the mode, the exit rules, and the cost model's accounting.
 *
 * The hardware *returns* what happened (done, a #PF delivered to the guest, an MMIO access, a VM
 * exit); it never calls the hypervisor. Memory is reached through two sets of callbacks given at
 * init: guest physical memory for native walks (struct guest_mem_ops) and the memory of final
 * translations for data accesses (struct phys_ops).
 *
 * Invariants:
 *  - every TLB entry was filled from a successful walk under the current paging mode and has not
 *    been invalidated since by an architectural flush (INVLPG, INVPCID, MOV CR3/CR4/CR0 rules,
 *    cpu_flush_tlb) or by a #PF on its address;
 *  - perm[] matches the current CR0.WP and CR4.SMEP/SMAP (cpu_update()); perm_kind[] the current
 *    CPL and EFLAGS.AC (cpu_select_perm()).
 * Locking: none; a struct cpu is owned by its vCPU's thread. Remote flush requests are applied by
 * the owner (vm/).
 */
#ifndef VMMU_CPU_CPU_H
#define VMMU_CPU_CPU_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/exit.h"
#include "cpu/nested.h"
#include "cpu/tlb.h"
#include "host/host.h"
#include "paging/paging.h"
#include "paging/tdp.h"
#include "vmmu/vmmu.h"

/* Guest physical memory as the VMM provides it (memslots): for native data accesses and walks,
 * and PAE PDPTE loads in every mode. */
struct phys_ops {
	/* The host bytes of guest page @gfn. 0; -ENOENT: no memory there (MMIO); -EPERM: read-only
	 * memory and @write (an MMIO exit, as KVM treats read-only slots). *@cacheable: the pointer
	 * may be reused for this kind of access until a generation counter changes (false for
	 * writes to a dirty-logging slot, which must be logged one by one). */
	int (*page)(void *opaque, gfn_t gfn, bool write, uint8_t **host, bool *cacheable);
};

/* The cpu's cache of guest page -> host bytes for native mode: direct-mapped; the VMM empties it
 * (cpu_flush_pcache) whenever a guest page's host bytes may change (a memslot change, a host
 * mapping invalidation), before the change completes. */
#define CPU_PCACHE_SIZE 256
struct cpu_pcache_entry {
	gfn_t gfn;            /* ~0 when empty */
	uint8_t *host;
	bool writable;
};

enum hw_status {
	HW_DONE = 0,
	HW_PF,       /* #PF delivered to the guest: pf_ec, pf_addr */
	HW_GP,       /* #GP: a non-canonical address */
	HW_MMIO,     /* an access to no memory: mmio_pa, mmio_len, mmio_write */
	HW_EXIT,     /* a VM exit for the hypervisor: exit */
};

struct hw_exit {
	enum vmmu_exit_reason reason;
	gva_t gva;
	gpa_t gpa;
	uint32_t ec;        /* #PF error code, NPF EXITINFO1 low bits */
	uint64_t qual;      /* EPT violation qualification, NPF EXITINFO1 */
	unsigned access;    /* PFERR_WRITE / PFERR_FETCH of the access */
	/* The whole access, as decoding the instruction tells a hypervisor (gva above is the page
	 * part that faulted): its address and length and, for a write, its bytes (the caller's
	 * buffer, valid during the exit). A soft MMU emulates writes to the guest tables it tracks
	 * from these. Set for exits from cpu_access(); zero otherwise. */
	gva_t access_gva;
	uint32_t access_len;
	const void *data;
};

struct hw_outcome {
	enum hw_status status;
	uint32_t pf_ec;
	gva_t pf_addr;
	uint64_t mmio_pa;
	uint32_t mmio_len;
	bool mmio_write;
	uint32_t done;      /* bytes completed before an MMIO part */
	struct hw_exit exit;
};

struct cpu_stats {
	uint64_t accesses, tlb_hits, stlb_hits, tlb_misses, walk_refs, walks;
	uint64_t pf_delivered, tlb_flush, invlpg, mmio, exits;
	uint64_t exits_by_reason[VMMU_EXIT_NR];
	uint64_t sim_cycles;
};

/*
 * Paging-structure caches (SDM 4.10.3), optional (struct vmmu_tlb_geometry.pwc): for the 1-D walks
 * (native, shadow) the non-leaf PML4E, PDPTE and PDE that a successful walk used, so a TLB miss
 * resumes below them. Direct-mapped; sizes after published measurements of Intel cores (2, 4 and
 * 32 entries; an estimate). Tagged by PCID; dropped whenever the TLB drops anything (a
 * conservative reading of the SDM's rules, which allow it).
 */
#define PWC_LEVELS 3                     /* caches for entries of levels 4, 3, 2 */
struct pwc_entry {
	uint64_t key;                        /* va >> (12 + 9 * (level - 1)); ~0 when empty */
	uint64_t table;                      /* the next level's table */
	uint16_t pcid;
	uint8_t access;                      /* rights granted from the root down to this entry */
};
struct pwc {
	struct pwc_entry l4[2], l3[4], l2[32];
	uint64_t hits, misses;
};

/* Legend: [c] set by cpu_init, then constant; [v] owned by the vCPU thread. */
struct cpu {
	enum vmmu_mmu mode;                  /* [c] */
	struct paging_ctx guest;             /* [v] the guest's architectural state */
	uint16_t pcid;                       /* [v] current PCID (0 unless CR4.PCIDE) */
	uint8_t perm[2][16];                 /* [v] perm[AC][access index] bit n: rights n fault */
	uint8_t perm_kind[8];                /* [v] perm[] row of each VMMU_ACC_* kind at this CPL */
	struct tlb *tlb;                     /* [c] */
	struct vmmu_cost cost;               /* [c] defaults filled */
	struct exit_controls ctl;            /* [v] set by the hypervisor */
	const struct phys_ops *phys;         /* [c] guest physical memory */
	void *phys_opaque;                   /* [c] */
	struct cpu_pcache_entry pcache[CPU_PCACHE_SIZE];   /* [v] */
	struct host_arena *arena;            /* [c] host memory: shadow and nested modes */
	uint8_t *arena_base;                 /* [c] host address of hpa 0 */
	hpa_t shadow_root;                   /* [v] shadow mode: the root the hypervisor loaded */
	int shadow_levels;                   /* [v] 4 or 5 */
	struct tdp_ctx tdp;                  /* [v] nested modes: the EPTP / nCR3 */
	struct nested_tlb *ntlb;             /* [c] nested TLB, NULL unless the geometry asks */
	struct pwc *pwc;                     /* [c] paging-structure caches, NULL unless asked */
	struct cpu_stats st;                 /* [v] */
};

int cpu_init(struct cpu *c, enum vmmu_mmu mode, const struct cpu_model *model,
	     const struct vmmu_tlb_geometry *geom, const struct vmmu_cost *cost,
	     const struct phys_ops *phys, void *phys_opaque, struct host_arena *arena);
/* Empty the guest-page cache (the VMM's memory map changed). */
void cpu_flush_pcache(struct cpu *c);

/* Guest physical memory through the cpu's cache: 4- or 8-byte aligned reads and
 * compare-and-swap (the page walker's struct guest_mem_ops, opaque = struct cpu). */
extern const struct guest_mem_ops cpu_gmem_ops;

/* What the hypervisor sets (VMCS/VMCB fields): the exit controls, the shadow root the vCPU runs
 * on (shadow mode), the EPTP / nCR3 (nested modes). A new root or EPTP flushes the TLB, as a VM
 * entry with a new root without VPID/ASID tagging does. */
void cpu_set_exit_controls(struct cpu *c, const struct exit_controls *ctl);
void cpu_set_shadow_root(struct cpu *c, hpa_t root, int levels);
/* The same without the flush, for a root switch at MOV CR3 whose TLB effect the architecture
 * already decided (PCID, the no-flush bit). The MMU must flush itself whenever it frees or
 * changes a root that entries of another PCID may still come from. */
void cpu_switch_shadow_root(struct cpu *c, hpa_t root, int levels);
void cpu_set_tdp(struct cpu *c, const struct tdp_ctx *tdp);
void cpu_destroy(struct cpu *c);

/* Architectural state as KVM_SET_SREGS: checked (-EINVAL where the CPU would refuse it), then the
 * TLB is flushed. */
int cpu_set_regs(struct cpu *c, const struct vmmu_regs *r);
void cpu_get_regs(const struct cpu *c, struct vmmu_regs *r);
/* CPL/AC and PKRU changes, which flush nothing. */
int cpu_set_cpl(struct cpu *c, unsigned cpl, bool ac);
void cpu_set_pkru(struct cpu *c, uint32_t pkru);

/* A guest access (len 1..8, or 4096 page-aligned). */
int cpu_access(struct cpu *c, gva_t gva, uint32_t len, unsigned kind, void *buf,
	       struct hw_outcome *o);

/* Guest instructions. -EINVAL where the CPU raises #GP (nothing changes). */
int cpu_mov_cr(struct cpu *c, int cr, uint64_t val);
int cpu_invlpg(struct cpu *c, gva_t gva);
int cpu_invpcid(struct cpu *c, unsigned type, uint16_t pcid, gva_t gva);

/* A #PF the hypervisor injects into the guest (counted and charged as a delivered one). */
void cpu_inject_pf(struct cpu *c, gva_t gva, uint32_t ec);
/* Count an exit the hypervisor took outside an access (an intercepted MOV CR3 or INVLPG). */
void cpu_account_exit(struct cpu *c, enum vmmu_exit_reason reason);
/* Charge @n MMU handler steps. */
void cpu_account_mmu_steps(struct cpu *c, uint64_t n);

/* Drop every TLB entry, globals included (a remote flush, a memory-map change). */
void cpu_flush_tlb(struct cpu *c);

#endif
