/* SPDX-License-Identifier: MIT */
/*
 * Counter probes: small guest programs that vmmu (through its public API) and real KVM
 * (through /dev/kvm, kvm_probe.c) both run, so that every counter the two share can be set side
 * by side (`vmmu validate --probes`, docs/fidelity.md).
 *
 * A probe is a page-table layout plus a list of operations: ring-3 loops of loads or stores
 * over pages, ring-0 stores (a PTE or PDE rewritten through its identity mapping), INVLPG and
 * CR3 loads. A ring-3 #PF on the probe's region is the guest's own demand fault: its handler
 * ORs the probe's fix bits into the faulting PTE and retries. Both machines see the same guest
 * memory: the harness tables of PRB_LOW (identity map of all RAM, low 2 MiB in 4 KiB pages) and
 * the probe's tables in PRB_RAM, built by one function (probe_layout) for both.
 *
 * Counting: a snapshot of every counter when the guest reaches the probe's first operation and
 * one when it ends; the same program with no operations (the baseline: what starting and
 * stopping costs) is subtracted; the median of several repetitions, each in a new VM, with its
 * spread.
 *
 * Invariants: everything here is pure data and single-threaded; a struct probe_prog owns its
 * arrays (probe_prog_free).
 */
#ifndef VMMU_VALIDATE_PROBE_H
#define VMMU_VALIDATE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "validate/kvm_probe_guest.h"
#include "vmmu/vmmu.h"

/* ---- the guest-physical layout (linear == physical below PRB_GVA) ---- */
#define PRB_LOW_SIZE  0x400000ULL     /* slot 0 at gpa 0: harness (GDT, IDT, code, stacks, ops) */
#define PRB_RAM_GPA   0x40000000ULL   /* slot 1: the probe's tables and data pages */
#define PRB_RAM_SIZE  (64ULL << 20)

#define PRB_PDPT_LOW  0x8000ULL       /* PML4[0] of every probe root -> this */
#define PRB_PD_LOW    0x9000ULL
#define PRB_PT_LOW    0xa000ULL       /* gpa 0..2M in 4 KiB pages (page 0 not present) */
#define PRB_PD_RAM    0xb000ULL       /* PRB_RAM identity-mapped in 2 MiB pages, supervisor */
#define PRB_MAX_OPS   (PRB_OPS_SIZE / 32 - 1) /* and the END record */

/* The probe's own tables inside PRB_RAM */
#define PRB_PML4_A    (PRB_RAM_GPA + 0x0000)
#define PRB_PML4_B    (PRB_RAM_GPA + 0x1000)
#define PRB_PDPT_A    (PRB_RAM_GPA + 0x2000)
#define PRB_PDPT_B    (PRB_RAM_GPA + 0x3000)
#define PRB_PD_A      (PRB_RAM_GPA + 0x4000)
#define PRB_PD_B      (PRB_RAM_GPA + 0x5000)
#define PRB_PT_A      (PRB_RAM_GPA + 0x10000)  /* PTs of space A, contiguous */
#define PRB_PT_B      (PRB_RAM_GPA + 0x100000) /* PTs of space B */
#define PRB_PT_ALT    (PRB_RAM_GPA + 0x1f0000) /* a spare PT (pde_rewrite) */
#define PRB_DATA      (PRB_RAM_GPA + (16ULL << 20))
#define PRB_MAX_PAGES ((PRB_RAM_SIZE - (16ULL << 20)) / 4096)

/* ---- operations (guest and vmmu read the same records; kinds PRB_OP_*) ---- */
struct probe_op {
	uint64_t kind, a, b, c;
};

/* A qword of guest memory the host writes before the guest runs. */
struct probe_word {
	uint64_t gpa, val;
};

/* One program, ready for either machine. */
struct probe_prog {
	const char *name;
	bool prepopulate;        /* host memory behind the data pages resident before the run */
	uint64_t cr3;            /* the root the probe starts in */
	uint64_t fix;            /* bits the guest's #PF handler ORs into a faulting PTE */
	uint64_t pt_base;        /* PTE of page i of the region: pt_base + 8 * i */
	uint64_t span;           /* bytes of the region the handler serves */
	struct probe_word *words;
	size_t nwords, capwords;
	struct probe_op ops[PRB_MAX_OPS + 1];
	size_t nops;
	int err;                 /* -ENOMEM/-E2BIG met while building */
	bool baseline;           /* the layout only: no operations */
};

/* A probe from the catalogue. */
struct probe {
	const char *name;
	const char *what;        /* one line: the guest behaviour it isolates */
	void (*build)(struct probe_prog *p);
	bool prepopulate;
};

extern const struct probe probe_catalogue[];
extern const size_t probe_count;
const struct probe *probe_find(const char *name);

/* Build @pr (baseline: same layout, no operations). 0 or -ENOMEM/-E2BIG. */
int probe_prog_build(const struct probe *pr, bool baseline, struct probe_prog *out);
void probe_prog_free(struct probe_prog *p);

/* The harness's identity tables plus the program's words, through @write (0 or -errno). */
int probe_layout(const struct probe_prog *p, int (*write)(void *opaque, uint64_t gpa,
							   uint64_t val), void *opaque);

/* ---- counters ---- */
enum probe_counter {
	PRB_C_EXITS, PRB_C_PF_TAKEN, PRB_C_PF_FIXED, PRB_C_PF_EMULATE, PRB_C_PF_SPURIOUS,
	PRB_C_PF_FAST, PRB_C_PF_GUEST, PRB_C_INVLPG, PRB_C_TLB_FLUSH, PRB_C_REMOTE_TLB_FLUSH,
	PRB_C_MMU_SHADOW_ZAPPED, PRB_C_MMU_PTE_WRITE, PRB_C_MMU_PDE_ZAPPED, PRB_C_MMU_FLOODED,
	PRB_C_MMU_RECYCLED, PRB_C_MMU_CACHE_MISS, PRB_C_MMU_UNSYNC, PRB_C_PAGES_4K,
	PRB_C_PAGES_2M, PRB_C_NR,
};
extern const char *const probe_counter_name[PRB_C_NR];

struct probe_counts {
	int64_t v[PRB_C_NR];
};

/* Run @p on vmmu under @mmu (KVM's defaults: unsync, prefetch and fast page fault on, no-trap
 * off). @pvm: as on a PVM host, whose KVM emulates guest ring-0 code: ring-0 accesses through
 * vmmu_vcpu_emulate_access, exits as PVM takes them (docs/fidelity.md). @out: the counters'
 * change over the operations. 0, or -errno with @why. */
int probe_run_vmmu(const struct probe_prog *p, enum vmmu_mmu mmu, bool pvm,
		   struct probe_counts *out, char *why, size_t whylen);

/* Run probe @pr's program and its baseline on vmmu: the program's counts less the baseline's. */
int probe_measure_vmmu(const struct probe *pr, enum vmmu_mmu mmu, bool pvm,
		       struct probe_counts *out, char *why, size_t whylen);

/* What a KVM host ran the probes with: the goldens' header. */
struct probe_host {
	char kernel[65];   /* uname -r (struct utsname's release: 65 bytes) */
	char module[32];   /* kvm_intel, kvm_amd or kvm_pvm */
	char tdp_mmu[8];   /* kvm.tdp_mmu */
	char mmu[16];      /* what KVM's MMU does here: shadow, ept or npt */
	char cpu[128];     /* /proc/cpuinfo model name */
	char cpuid[96];    /* vendor, family, model, stepping (CPUID leaves 0 and 1) */
	unsigned reps;
};

/* The vmmu configuration that matches @h: its MMU mode, and whether ring 0 is emulated (PVM). */
int probe_host_mmu(const struct probe_host *h, enum vmmu_mmu *mmu, bool *pvm);

/* KVM's results for the catalogue, as recorded (tests/data/kvm_probes.txt). */
struct probe_golden {
	struct probe_host host;
	bool have[64];                   /* by catalogue index */
	struct probe_counts med[64], spread[64];
};
/* Read / write a goldens file. Read: 0, or -errno with @why naming the line. */
int probe_golden_read(const char *path, struct probe_golden *g, char *why, size_t whylen);
int probe_golden_write(const char *path, const struct probe_golden *g, char *why, size_t whylen);

/* Whether vmmu's @v agrees with KVM's median @k of spread @s: within 10% of @k, or within the
 * spread KVM itself showed, or within 2 (small counts). */
bool probe_agrees(int64_t k, int64_t s, int64_t v);

/* Median of @n samples of each counter into @med, spread (max - min) into @spread. */
void probe_median(const struct probe_counts *s, size_t n, struct probe_counts *med,
		  struct probe_counts *spread);

#endif
