/* SPDX-License-Identifier: MIT */
/*
 * Page-walk scenarios: the line format of `vmmu check` (docs/check-format.md) and the
 * outcome both the model and the real CPU (through /dev/kvm) produce for one scenario.
 *
 * Invariants: a scenario names only flags; the harness supplies every address bit:
 *   gva 0x8000000000 (PML4 index 1); PML4 at gpa SCN_PML4_GPA, its entry 1 -> PDPT at
 *   0x10000 -> PD at 0x11000 -> PT at 0x12000 -> data frame at gpa 0x40000000.
 * Raw bits a scenario ORs in (bN, 0xHEX) may change address bits; both sides see the
 * same entry values, so they still compare.
 * No locking: scenarios are plain values.
 */
#ifndef VMMU_VALIDATE_SCENARIO_H
#define VMMU_VALIDATE_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCN_GVA       0x8000000000ULL
#define SCN_PML4_GPA  0xf000ULL
#define SCN_PDPT_GPA  0x10000ULL
#define SCN_PD_GPA    0x11000ULL
#define SCN_PT_GPA    0x12000ULL
#define SCN_DATA_GPA  0x40000000ULL
/* Guest memory of a scenario, the same on both sides: [0, 2 MiB) and [1 GiB, 1 GiB + 2 MiB).
 * Everything else is not memory. */
#define SCN_LOW_SLOT_SIZE  (2ULL << 20)
#define SCN_DATA_SLOT_SIZE (2ULL << 20)

/* Level index inside a scenario: 0 = PML4E, 1 = PDPTE, 2 = PDE, 3 = PTE. */
enum scn_level { SCN_PML4 = 0, SCN_PDPT, SCN_PD, SCN_PT, SCN_NLEVELS };

enum scn_leaf { SCN_LEAF_4K = 0, SCN_LEAF_2M, SCN_LEAF_1G };
enum scn_access { SCN_READ = 0, SCN_WRITE, SCN_FETCH };

struct scenario {
	uint64_t flags[SCN_NLEVELS]; /* entry bits without the address (PS added for huge leaves) */
	enum scn_leaf leaf;
	enum scn_access access;
	int cpl;                      /* 0 or 3 */
	bool ac;                      /* EFLAGS.AC */
	bool cr0_wp, efer_nxe, cr4_smep, cr4_smap, cr4_pke;
	uint32_t pkru;
	unsigned pkey;                /* 0..15, bits 62:59 of the leaf */
	char id[64];                  /* echoed label, "" if none */
};

/* A/D as found in guest memory after the access, per walked level. */
#define SCN_AD_A 1u
#define SCN_AD_D 2u

struct scn_outcome {
	bool fault;
	uint32_t ec;          /* page-fault error code when fault */
	uint64_t cr2;         /* faulting address when fault */
	uint8_t ad[SCN_NLEVELS];
	int nlevels;          /* 4 (4k), 3 (2m) or 2 (1g) */
};

/* Number of levels a scenario walks: 4 for a 4K leaf, 3 for 2M, 2 for 1G. */
static inline int scn_nlevels(const struct scenario *s)
{
	return 4 - (int)s->leaf;
}

/* The entry value at level @lvl as installed in guest memory: flags | next-table or frame
 * address, with PS for the leaf of a huge page. */
uint64_t scn_entry(const struct scenario *s, int lvl);

#endif

#ifndef VMMU_VALIDATE_SCENARIO_API
#define VMMU_VALIDATE_SCENARIO_API
#include "paging/cpu_model.h"

/* Default scenario: every level P,RW,US, 4K leaf, a CPL-0 read, CR0.WP=1, EFER.NXE=1. */
void scn_default(struct scenario *s);

/* Parse one input line. Returns 0 for a scenario, 1 for a line to echo unchanged (blank or
 * '#'), or -EINVAL with "why" in @err naming the bad token. */
int scn_parse(const char *line, struct scenario *s, char *err, size_t errlen);

/* Write @s as a line of the input format that parses back to the same scenario. */
int scn_format(const struct scenario *s, char *buf, size_t len);

/* Append the outcome fields (" fault=.. ec=.. [cr2=..] ad=..") to @buf. */
int scn_format_outcome(const struct scn_outcome *o, char *buf, size_t len);

/* Why @cpu cannot run @s (a CR4/EFER bit it lacks), or NULL if it can. */
const char *scn_unsupported(const struct scenario *s, const struct cpu_model *cpu);

/* Run @s on the model: build the tables in a guest's memory, walk, read back A/D.
 * 0, -EOPNOTSUPP (see scn_unsupported), or -errno from building the guest. */
struct scn_model;
int scn_model_create(struct scn_model **out);
void scn_model_destroy(struct scn_model *m);
int scn_model_run(struct scn_model *m, const struct scenario *s, const struct cpu_model *cpu,
		  struct scn_outcome *out);

bool scn_outcome_equal(const struct scn_outcome *a, const struct scn_outcome *b);
#endif

#ifndef VMMU_VALIDATE_SCENARIO_GEN
#define VMMU_VALIDATE_SCENARIO_GEN
/* A random scenario for @cpu from the state *@rng (advanced). Deterministic for a seed.
 * Biased towards the interesting: mostly present entries, some reserved and ignored bits, every
 * leaf size, both CPLs; CR4 features the CPU lacks appear rarely (they are skipped). Never sets
 * address bits below MAXPHYADDR, whose outcome would depend on memory contents. */
void scn_random(struct scenario *s, uint64_t *rng, const struct cpu_model *cpu, unsigned long n);
#endif
