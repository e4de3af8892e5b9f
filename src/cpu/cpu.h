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
 *  - perm_kinds[] and perm_access[] match the current CR0.WP and CR4.SMEP/SMAP (cpu_update());
 *    perm_kind[] is perm_kinds[]' row of the current CPL and EFLAGS.AC (cpu_select_perm());
 *  - a TLB entry's host pointer (the owner's field, tlb.h) is set in native mode only, on 4K
 *    and 2M entries only, and is what the guest-page cache would answer for one 4K page of the
 *    entry's frame, whose index within the entry's page it carries in its low bits (0 in a 4K
 *    entry; cpu_host_kept): it is copied from the cache (host_writable only where the cache
 *    serves writes, so never for a dirty-logging slot, whose writes must each reach the
 *    memslots to be logged), and
 *    cpu_flush_pcache drops every one with the cache (tlb_drop_host). A TLB hit that finds it
 *    moves the bytes at once; everything the model counts happens exactly as without it.
 * Locking: none; a struct cpu is owned by its vCPU's thread. Remote flush requests are applied by
 * the owner (vm/).
 */
#ifndef VMMU_CPU_CPU_H
#define VMMU_CPU_CPU_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "cpu/exit.h"
#include "cpu/nested.h"
#include "cpu/tlb.h"
#include "host/host.h"
#include "paging/paging.h"
#include "paging/tdp.h"
#include "sanitize.h"
#include "vmmu/vmmu.h"

/* Guest physical memory as the VMM provides it (memslots): for native data accesses and walks,
 * and PAE PDPTE loads in every mode. */
struct phys_ops {
	/* The host bytes of guest page @gfn. 0; -ENOENT: no memory there (MMIO); -EPERM: read-only
	 * memory and @write (an MMIO exit, as KVM treats read-only slots). *@cacheable: the pointer
	 * may be reused for this kind of access until a generation counter changes (false for
	 * writes to a dirty-logging slot, which must be logged one by one). */
	int (*page)(void *opaque, gfn_t gfn, bool write, uint8_t **host, bool *cacheable);
	/* The bytes of a write through a page() answer that was not cacheable have landed: the
	 * dirty log's mark. Required wherever page() can answer a write uncacheably. After the
	 * store, as KVM marks after its copy: marked before it, a harvest between the two could
	 * clear the bit, the VMM copy the page, and the write land unrecorded. A write that does
	 * not happen (a compare-and-swap that lost) is not marked. */
	void (*written)(void *opaque, gfn_t gfn);
};

/*
 * The cpu's cache of guest page -> host bytes for native mode: direct-mapped, CPU_PCACHE_SIZE
 * entries in native mode (256 KiB: a 64 MiB working set of guest pages stays in it; one entry in
 * the other modes, which never fill it). The VMM empties it (cpu_flush_pcache) whenever a guest
 * page's host bytes may change (a memslot change, a host mapping invalidation), before the change
 * completes. Emptying it must cost nothing however large it is (a host invalidation of any range
 * empties every vCPU's): a tag holds the cache's generation, which a flush advances, so an entry
 * of an older generation never matches. The host pointers kept in TLB entries are part of it
 * (see the invariants above).
 */
#define CPU_PCACHE_SIZE      16384
#define PCACHE_GFN_BITS      40                          /* gfns of a 52-bit guest physical space */
#define PCACHE_WRITABLE      (1ULL << PCACHE_GFN_BITS)   /* tag: serves writes too */
#define PCACHE_GEN_SHIFT     (PCACHE_GFN_BITS + 1)
#define PCACHE_GEN_MAX       (1u << (64 - PCACHE_GEN_SHIFT))
struct cpu_pcache_entry {
	uint64_t tag;         /* gfn | PCACHE_WRITABLE? | generation << PCACHE_GEN_SHIFT; 0: empty */
	uint8_t *host;
};

/*
 * Prefetch hints (cpu_prefetch): by 4K virtual page, direct-mapped, the host address of the page
 * that the vCPU's last full translation of it reached (a TLB miss, or a hit past the hit path).
 * A hint is never trusted: it is only prefetched, and a prefetch neither faults nor moves a byte
 * the guest sees, so a stale one (the page remapped, the memory freed, another PCID) costs a
 * wasted prefetch and nothing else; so nothing invalidates them. One word a hint (the table is
 * itself read at random, and must stay in the host's L2 with the rest): the host page's address,
 * 4K-aligned, and in its low 12 bits the virtual page's bits above the index as a tag.
 */
#define CPU_PF_HINTS     16384
#define CPU_PF_HINT_TAG(vpn) (((vpn) / CPU_PF_HINTS) & 0xfff)

static inline uintptr_t cpu_pf_hint_make(uint64_t vpn, const uint8_t *page)
{
	return (uintptr_t)page | CPU_PF_HINT_TAG(vpn);
}

/*
 * The same for the walk: by 2 MiB virtual region, the host address of the last-level table of
 * the last successful native 4- or 5-level walk in it that ended at a 4K page whose table the
 * guest-page cache held (its leaf entry of a page is the walk's last and likeliest cache miss).
 * Same rules and format, the region number for the page number.
 */
#define CPU_PF_PTS       512
#define CPU_PF_PT_TAG(region) (((region) / CPU_PF_PTS) & 0xfff)

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

/* The hardware's counters of one vCPU. Its thread is their only writer (cpu_stat_add); any
 * thread may read them at any time, each with a relaxed atomic load (vm/vcpu.c, the stats
 * calls): each read gives a value the counter had, not a snapshot of all at one instant. */
struct cpu_stats {
	uint64_t accesses, tlb_hits, stlb_hits, tlb_misses, walk_refs, walks;
	uint64_t pf_delivered, tlb_flush, invlpg, mmio, exits;
	uint64_t exits_by_reason[VMMU_EXIT_NR];
	uint64_t sim_cycles;
	/* Cycles of the exits by reason: each one's round trip and what its handler was charged
	 * (vm/ attributes them: only it knows where an exit's handling ends). */
	uint64_t exit_cycles[VMMU_EXIT_NR];
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
	uint8_t perm_kinds[2][2][8];         /* [v] [AC][CPL 3][VMMU_ACC_* kind] bit n: rights n fault */
	uint8_t perm_kind[8];                /* [v] perm_kinds[] row of this AC and CPL */
	uint8_t perm_access[2][16];          /* [v] [AC][cpu.c's perm_index] the same bitmaps by
					      * the walker's form of an access (the shadow walk's) */
	struct tlb *tlb;                     /* [c] */
	struct vmmu_cost cost;               /* [c] defaults filled */
	struct exit_controls ctl;            /* [v] set by the hypervisor */
	const struct phys_ops *phys;         /* [c] guest physical memory */
	void *phys_opaque;                   /* [c] */
	struct cpu_pcache_entry *pcache;     /* [v] the array [c] */
	uint64_t pcache_mask;                /* [c] entries - 1 */
	uint64_t pcache_gen;                 /* [v] generation << PCACHE_GEN_SHIFT, never 0 */
	struct host_arena *arena;            /* [c] host memory: shadow and nested modes */
	uint8_t *arena_base;                 /* [c] host address of hpa 0 */
	const uint8_t *arena_meta;           /* [c] the arena's metadata of frame 0 (prefetch hints) */
	uint64_t arena_frames;               /* [c] */
	hpa_t shadow_root;                   /* [v] shadow mode: the root the hypervisor loaded */
	int shadow_levels;                   /* [v] 4 or 5 */
	struct tdp_ctx tdp;                  /* [v] nested modes: the EPTP / nCR3 */
	struct nested_tlb *ntlb;             /* [c] nested TLB, NULL unless the geometry asks */
	struct nested_wcache *wcache;        /* [v] nested modes: the walk cache (nested.h); the
					      * array [c], NULL in other modes */
	struct pwc *pwc;                     /* [c] paging-structure caches, NULL unless asked */
	struct cpu_stats st;                 /* [v] written; read by any thread (cpu_stats) */
	uintptr_t *pf_hint;                  /* [v] CPU_PF_HINTS of them, the array [c]; 0: empty */
	uintptr_t *pf_pt;                    /* [v] CPU_PF_PTS of them, after pf_hint's [c] */
};

/* Add @n to a counter of a struct cpu_stats, from its vCPU's thread, the only writer, so that a
 * stats call on another thread reads a whole value (a relaxed atomic load). In C11 terms: the
 * thread's own read and add, the result stored atomically. A plain build says the same in one
 * x86-64 instruction, an add to memory without LOCK (an aligned 8-byte store is single-copy
 * atomic), as the counters cost before they could be read: the C form takes three, two more on
 * each of a TLB hit's three counters. A sanitizer build uses the C form, which TSan checks. */
static inline void cpu_stat_add_u64(uint64_t *counter, uint64_t n)
{
#if defined(__x86_64__) && !defined(VMMU_SANITIZE)
	__asm__ volatile("addq %1, %0" : "+m"(*counter) : "er"(n));
#else
	__atomic_store_n(counter, *counter + n, __ATOMIC_RELAXED);
#endif
}
#define cpu_stat_add(c, field, n) cpu_stat_add_u64(&(c)->st.field, (uint64_t)(n))

int cpu_init(struct cpu *c, enum vmmu_mmu mode, const struct cpu_model *model,
	     const struct vmmu_tlb_geometry *geom, const struct vmmu_cost *cost,
	     const struct phys_ops *phys, void *phys_opaque, struct host_arena *arena);
/* Empty the guest-page cache, with the host pointers of the TLB entries (the VMM's memory map
 * changed). */
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
/* The context the hardware runs a shadowed guest with, which cpu_shadow_walk stands for: the
 * guest's own state (CPL, AC, SMEP/SMAP, PKE, PKRU, the model) under long-mode paging from the
 * shadow root at its depth, CR0.WP=1 and EFER.NXE=1, with the physical CPU's NX and 1 GiB
 * pages. */
static inline void cpu_shadow_hw_ctx(const struct cpu *c, struct paging_ctx *hw)
{
	*hw = c->guest;
	hw->cr0 |= X86_CR0_PG | X86_CR0_PE | X86_CR0_WP;
	hw->cr4 = (hw->cr4 | X86_CR4_PAE) & ~X86_CR4_LA57;
	if (c->shadow_levels == 5)
		hw->cr4 |= X86_CR4_LA57;
	hw->efer |= EFER_LME | EFER_LMA | EFER_NXE;
	hw->cr3 = c->shadow_root;
	hw->pdptrs_valid = false;
	hw->cpu.features |= CPU_FEAT_NX | CPU_FEAT_1G;
}

/* The hardware's walk of the shadow tables (shadow_root, shadow_levels) for @access
 * (PFERR_WRITE/FETCH, WALK_*) at the guest's privilege, resuming at @start (NULL: the root), as
 * paging_walk_from's 64-bit walk under long mode, CR0.WP=1 and EFER.NXE=1 with the guest's other
 * state would give it; the reads and A/D swaps are of host memory (hostmem.h). Returns
 * r->status. Only for a cpu in shadow mode (its permission bitmaps assume CR0.WP=1), and
 * @start->table 4 KiB aligned, as a paging-structure cache entry's is (the template's read
 * aborts the walk on a misaligned table; this walk assumes there is none). */
enum walk_status cpu_shadow_walk(const struct cpu *c, gva_t gva, unsigned access,
				 const struct walk_start *start, struct walk_result *r);
/* The MMU's promise that *@gen (atomic) advances after every change of a present entry of the
 * tables it loaded with cpu_set_tdp (nested.h, the walk cache): it turns the walk cache on. NULL
 * turns it off. A no-op outside the nested modes. */
void cpu_set_tdp_gen(struct cpu *c, const uint64_t *gen);

/* For tests and measurements only, read when a vCPU is made: whether its walk cache is used
 * (CPU_WCACHE_ON, the default), never used, or checked on every hit against the walk it saves
 * (the mismatches counted in its struct). */
enum cpu_wcache_mode { CPU_WCACHE_ON, CPU_WCACHE_OFF, CPU_WCACHE_VERIFY };
extern enum cpu_wcache_mode cpu_wcache_mode;
/* The walk caches' host-side counts, added in (atomically) as each vCPU is destroyed. */
struct cpu_wcache_totals {
	uint64_t hits, misses, mismatches, data_hits;
};
extern struct cpu_wcache_totals cpu_wcache_totals;
void cpu_destroy(struct cpu *c);

/* Architectural state as KVM_SET_SREGS: checked (-EINVAL where the CPU would refuse it), then the
 * TLB is flushed. */
int cpu_set_regs(struct cpu *c, const struct vmmu_regs *r);
void cpu_get_regs(const struct cpu *c, struct vmmu_regs *r);
/* CPL/AC and PKRU changes, which flush nothing. */
int cpu_set_cpl(struct cpu *c, unsigned cpl, bool ac);
void cpu_set_pkru(struct cpu *c, uint32_t pkru);

/* The guest-page cache's entry for @gfn if it may serve an access (@write), else NULL. */
static inline const struct cpu_pcache_entry *cpu_pcache_peek(const struct cpu *c, gfn_t gfn, bool write)
{
	const struct cpu_pcache_entry *e = &c->pcache[gfn & c->pcache_mask];
	uint64_t key = gfn | c->pcache_gen;

	/* A gfn too wide for a tag is never cached (its high bits would alias the generation). */
	if (__builtin_expect(gfn >> PCACHE_GFN_BITS, 0))
		return NULL;
	return (e->tag | (write ? 0 : PCACHE_WRITABLE)) == (key | PCACHE_WRITABLE) ? e : NULL;
}

/* Move @len bytes between the caller's @buf and guest memory at host address @p. Aligned 1/2/4/8
 * byte guest accesses are single-copy atomic, as on x86 (another vCPU may race with them), and
 * ordered as x86 orders them (TSO): a store is a release, a load an acquire, so what a vCPU wrote
 * before it stored a pointer (a zeroed page table, then the entry linking it) is seen by the vCPU
 * that loads the pointer. On x86 hosts these are the plain moves a relaxed access compiles to. */
static inline __attribute__((always_inline)) void cpu_move_bytes(uint8_t *p, void *buf, uint32_t len,
								 bool write)
{
	if (write) {
		switch (len) {
		case 1: __atomic_store_n(p, *(const uint8_t *)buf, __ATOMIC_RELEASE); return;
		case 2: if (!((uintptr_t)p & 1)) { uint16_t v; memcpy(&v, buf, 2); __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE); return; } break;
		case 4: if (!((uintptr_t)p & 3)) { uint32_t v; memcpy(&v, buf, 4); __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); return; } break;
		case 8: if (!((uintptr_t)p & 7)) { uint64_t v; memcpy(&v, buf, 8); __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); return; } break;
		}
		memcpy(p, buf, len);
	} else {
		switch (len) {
		case 1: *(uint8_t *)buf = __atomic_load_n(p, __ATOMIC_ACQUIRE); return;
		case 2: if (!((uintptr_t)p & 1)) { uint16_t v = __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE); memcpy(buf, &v, 2); return; } break;
		case 4: if (!((uintptr_t)p & 3)) { uint32_t v = __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); memcpy(buf, &v, 4); return; } break;
		case 8: if (!((uintptr_t)p & 7)) { uint64_t v = __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); memcpy(buf, &v, 8); return; } break;
		}
		memcpy(buf, p, len);
	}
}

/* A guest access (len 1..8, or 4096 page-aligned): the TLB, the walk on a miss, the bytes. 0 with
 * the outcome in @o, or -errno. The hit path below is its fast part. */
int cpu_access(struct cpu *c, gva_t gva, uint32_t len, unsigned kind, void *buf,
	       struct hw_outcome *o);

/* The low bits a host pointer kept in TLB entry @e (of page size 1 << @shift) carries for the 4K
 * page of final address or linear address @a: that page's index within the entry's page (a 4K
 * page's host pointer is page-aligned, and a 2M entry has 512 of them). */
static inline uintptr_t cpu_host_tag(unsigned shift, uint64_t a)
{
	return (uintptr_t)(a >> 12) & (((uintptr_t)1 << (shift - 12)) - 1);
}

/* Whether an entry of page size 1 << @shift may keep a host pointer: a 1G entry's 18 bits of
 * index would not fit under a page address. */
static inline bool cpu_host_keeps(unsigned shift)
{
	return shift <= 21;
}

/* Whether entry @e keeps the host bytes at @a (cpu_host_tag's) for an access (@write): then in
 * *@p. (A 4K entry's tag is 0: its pointer is used as it is.) */
static inline __attribute__((always_inline)) bool cpu_host_kept(const struct tlb_entry_info *e,
								unsigned shift, uint64_t a, bool write,
								uint8_t **p)
{
	uintptr_t h = (uintptr_t)e->host;

	if (!h || (write && !e->host_writable))
		return false;
	if (shift != 12) {
		if ((h & 0xfff) != cpu_host_tag(shift, a))
			return false;
		h &= ~(uintptr_t)0xfff;
	}
	*p = (uint8_t *)h + (a & 0xfff);
	return true;
}

/*
 * The hit path: the whole of an access that a first-level TLB hit serves with nothing else to
 * consult (one page in long mode; the hit's rights allow the access under the current state, as
 * precomputed in perm_kind[], with no protection key to check; Dirty set for a write; the host
 * bytes at hand: the arena under a hypervisor, natively the host pointer kept in the entry or
 * the guest-page cache), with exactly the counts, charges and LRU update that the general path
 * would make. It either does all of that or nothing at all.
 *
 * In two steps, each of which the caller tries in turn before cpu_access():
 *  1. cpu_access_fast(), inlined into the public access function: the hinted L1 4K slot and a
 *     host pointer kept there, else the hinted L1 2M slot and its pointer or the guest-page
 *     cache (a 2M entry keeps one 4K page's pointer, and its other pages are used too: the
 *     kernel's direct map zeroes a new page each fault), free of calls (the compiler still
 *     saves registers on entry for the caller's other paths);
 *  2. cpu_access_l1(), out of line: the whole first level (tlb_find_l1) and the guest-page cache.
 *     When the first level has no entry for the page it says so, and cpu_access_l1_missed() then
 *     goes on from there instead of probing the first level again.
 * Only the hardware is involved: no MMU table is read (a hit's hpa stays allocated until the TLB
 * entry is flushed, and the vCPU applies flushes itself), so no RCU read section either.
 */

/* The hit path from first-level entry @e (LRU stamp @stamp) that the lookup of @gva hits: true,
 * the access done; false, nothing done. With @pcache false, a native access that finds no host
 * pointer kept in @e is left to the next step (step 1 leaves the guest-page cache out for a 4K
 * entry, whose pointer a hit keeps; a 2M entry's is one 4K page's of 512).
 * @shift: e's page shift where the caller knows it as a constant, else 0. */
static inline __attribute__((always_inline)) bool cpu_hit_serve(struct cpu *c, struct tlb_entry_info *e,
								uint32_t *stamp, gva_t gva, uint32_t len,
								unsigned kind, void *buf, const bool pcache,
								const unsigned shift)
{
	const bool write = kind & VMMU_ACC_WRITE;
	const unsigned sh = shift ? shift : e->page_shift;
	const struct cpu_pcache_entry *pe = NULL;
	uint8_t *p;

	if ((c->perm_kind[kind & 7] >> e->access) & 1)
		return false;                             /* a fault, from a walk */
	if ((c->guest.cr4 & X86_CR4_PKE) && (e->access & ACC_USER))
		return false;                             /* the protection-key check */
	if (write && !e->dirty)
		return false;                             /* the walk sets D */
	if (c->mode != VMMU_MMU_NATIVE) {
		p = c->arena_base + tlb_entry_pa(e, gva);     /* an hpa, checked at the fill */
	} else if (cpu_host_kept(e, sh, gva, write, &p)) {
		;                                         /* kept in the entry */
	} else if (!pcache) {
		return false;
	} else {
		uint64_t pa = tlb_entry_pa(e, gva);
		pe = cpu_pcache_peek(c, pa >> 12, write);
		if (!pe)
			return false;                     /* the memslots */
		p = pe->host + (pa & 0xfff);
	}
	if (!tlb_use_l1(c->tlb, stamp))
		return false;                             /* the LRU clock wraps: renumber first */
	if (pe && cpu_host_keeps(sh)) {                   /* for the next hit (invariants above) */
		e->host = pe->host + cpu_host_tag(sh, gva);
		e->host_writable = pe->tag & PCACHE_WRITABLE;
	}
	cpu_stat_add(c, accesses, 1);
	cpu_stat_add(c, sim_cycles, c->cost.tlb_hit);
	cpu_stat_add(c, tlb_hits, 1);
	cpu_move_bytes(p, buf, len, write);
	return true;
}

/* Step 1 of the hit path: true, the access done; false, nothing done (step 2). */
static inline __attribute__((always_inline)) bool cpu_access_fast(struct cpu *c, gva_t gva, uint32_t len,
								  unsigned kind, void *buf)
{
	uint32_t *stamp;

	if ((gva & 0xfff) + len > 4096 || !(c->guest.efer & EFER_LMA))
		return false;
	struct tlb_entry_info *e = tlb_find_hinted(c->tlb, gva, c->pcid, &stamp);
	if (e)
		return cpu_hit_serve(c, e, stamp, gva, len, kind, buf, false, 12);
	e = tlb_find_hinted_2m(c->tlb, gva, c->pcid, &stamp);
	return e && cpu_hit_serve(c, e, stamp, gva, len, kind, buf, true, 21);
}

/* Step 2 of the hit path. Nothing was done unless CPU_L1_DONE. */
enum cpu_l1 {
	CPU_L1_DONE,         /* the access is done */
	CPU_L1_MISS,         /* the first level has no entry for the page: cpu_access_l1_missed() */
	CPU_L1_NO,           /* cpu_access() */
};
static inline __attribute__((always_inline)) enum cpu_l1 cpu_access_l1(struct cpu *c, gva_t gva, uint32_t len,
									unsigned kind, void *buf)
{
	uint32_t *stamp;

	if ((gva & 0xfff) + len > 4096 || !(c->guest.efer & EFER_LMA))
		return CPU_L1_NO;
	struct tlb_entry_info *e = tlb_find_l1(c->tlb, gva, c->pcid, &stamp);
	if (!e)
		return CPU_L1_MISS;
	return cpu_hit_serve(c, e, stamp, gva, len, kind, buf, true, 0) ? CPU_L1_DONE : CPU_L1_NO;
}

/* cpu_access() right after cpu_access_l1() said CPU_L1_MISS, with nothing changed since. */
int cpu_access_l1_missed(struct cpu *c, gva_t gva, uint32_t len, unsigned kind, void *buf,
			 struct hw_outcome *o);

/*
 * A hint that the guest will soon access @gva: a prefetch of its host bytes if the hints know the
 * page (what out-of-order hardware gets by starting a later load's miss early). Nothing the model
 * shows changes: no TLB entry, A/D bit, counter or cycle.
 */
static inline void cpu_prefetch(const struct cpu *c, gva_t gva, bool write)
{
	uint64_t vpn = gva >> 12;
	uintptr_t h = c->pf_hint[vpn & (CPU_PF_HINTS - 1)];
	uintptr_t pt = c->pf_pt[(vpn >> 9) & (CPU_PF_PTS - 1)];

	/* Not __builtin_prefetch: GCC counts it no side effect, so a function that only prefetches
	 * is found pure and its calls, whose result nobody uses, deleted (LTO did).
	 * First the leaf entry, in case the access misses the TLB (under a hypervisor the walk
	 * reads other tables: pf_pt stays empty). */
	if ((pt & ~(uintptr_t)0xfff) && (pt & 0xfff) == CPU_PF_PT_TAG(vpn >> 9))
		__asm__ volatile("prefetcht0 (%0)" : : "r"((pt & ~(uintptr_t)0xfff) + (vpn & 511) * 8));
	if (!(h & ~(uintptr_t)0xfff) || (h & 0xfff) != CPU_PF_HINT_TAG(vpn))
		return;   /* empty (no host page), or another virtual page's */
	const uint8_t *page = (const uint8_t *)(h & ~(uintptr_t)0xfff), *p = page + (gva & 0xfff);
	/* Under a hypervisor a TLB fill checks the frame is allocated (host_pfn_valid), reading
	 * its metadata, another miss a TLB miss would wait for. */
	if (c->mode != VMMU_MMU_NATIVE) {
		/* Integers, not pointers: a stale hint need not point into the arena. */
		uint64_t pfn = ((uintptr_t)page - (uintptr_t)c->arena_base) >> 12;
		if (pfn < c->arena_frames)
			__asm__ volatile("prefetcht0 (%0)" : : "r"(c->arena_meta + pfn * HOST_FRAME_META_BYTES));
	}
	if (write)
		__asm__ volatile("prefetchw (%0)" : : "r"(p));
	else
		__asm__ volatile("prefetcht0 (%0)" : : "r"(p));
}

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

/* Drop every TLB entry, globals included (a remote flush, a memory-map change), charged as one
 * flush. */
void cpu_flush_tlb(struct cpu *c);
/* Its two halves, for remote flush requests taken at once (vm/request.c): the drop, and its
 * charge as @n flushes (0: none). */
void cpu_flush_tlb_uncharged(struct cpu *c);
void cpu_flush_tlb_charge(struct cpu *c, uint64_t n);

#endif
