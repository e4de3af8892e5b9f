/* SPDX-License-Identifier: MIT */
/*
 * Random scenarios for `vmmu validate`. The weights aim every rule of the walker at least once a
 * few hundred scenarios: each level present 92%, reserved bits in 15% of scenarios, ignored bits
 * in 10%, CR4 features the CPU lacks in 3% (skipped, and counted so). No state but *rng.
 */
#include <stdio.h>

#include "paging/paging.h"
#include "validate/scenario.h"

static uint64_t next(uint64_t *s)
{
	/* splitmix64: a full-period, well-mixed 64-bit generator in three lines. */
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static bool chance(uint64_t *rng, unsigned percent)
{
	return next(rng) % 100 < percent;
}

static unsigned pick(uint64_t *rng, unsigned n)
{
	return (unsigned)(next(rng) % n);
}

void scn_random(struct scenario *s, uint64_t *rng, const struct cpu_model *cpu, unsigned long n)
{
	unsigned r = pick(rng, 100);
	int nlevels, leaf;

	scn_default(s);
	snprintf(s->id, sizeof(s->id), "r%lu", n);
	s->leaf = r < 50 ? SCN_LEAF_4K : r < 80 ? SCN_LEAF_2M : SCN_LEAF_1G;
	s->access = (enum scn_access)pick(rng, 3);
	s->cpl = chance(rng, 50) ? 3 : 0;
	s->ac = chance(rng, 30);
	s->cr0_wp = chance(rng, 80);
	s->efer_nxe = chance(rng, 85);
	s->cr4_smep = chance(rng, cpu_has(cpu, CPU_FEAT_SMEP) ? 25 : 3);
	s->cr4_smap = chance(rng, cpu_has(cpu, CPU_FEAT_SMAP) ? 25 : 3);
	s->cr4_pke = chance(rng, cpu_has(cpu, CPU_FEAT_PKU) ? 25 : 3);
	if (s->cr4_pke) {
		s->pkru = (uint32_t)next(rng);
		if (chance(rng, 30))
			s->pkru = 0;
	}
	if (chance(rng, 50))
		s->pkey = pick(rng, 16);

	nlevels = scn_nlevels(s);
	leaf = nlevels - 1;
	for (int l = 0; l < nlevels; l++) {
		uint64_t f = 0;
		if (chance(rng, 92)) f |= PT_PRESENT_MASK;
		if (chance(rng, 75)) f |= PT_WRITABLE_MASK;
		if (chance(rng, 75)) f |= PT_USER_MASK;
		if (chance(rng, 25)) f |= PT_ACCESSED_MASK;
		if (chance(rng, 15)) f |= PT_DIRTY_MASK;
		if (chance(rng, 8)) f |= PT_PWT_MASK;
		if (chance(rng, 8)) f |= PT_PCD_MASK;
		if (chance(rng, 8)) f |= PT_GLOBAL_MASK;
		if (chance(rng, 20)) f |= PT64_NX_MASK;
		s->flags[l] = f;
	}
	if (chance(rng, 15)) {
		int l = (int)pick(rng, (unsigned)nlevels);
		unsigned kind = pick(rng, 4);
		int bit;
		if (kind == 0 && cpu->maxphyaddr < 52)
			bit = cpu->maxphyaddr + (int)pick(rng, (unsigned)(52 - cpu->maxphyaddr));
		else if (kind == 1 && l == 0)
			bit = chance(rng, 50) ? 7 : 8;
		else if (kind == 2 && l == leaf && l != SCN_PT)
			bit = 13 + (int)pick(rng, l == SCN_PD ? 8 : 17);  /* 13..20 or 13..29 */
		else
			bit = 63;
		s->flags[l] |= 1ULL << bit;
	}
	if (chance(rng, 10)) {
		/* Ignored bits: 11:9 anywhere, 58:52 in 4-level paging. */
		int l = (int)pick(rng, (unsigned)nlevels);
		s->flags[l] |= 1ULL << (chance(rng, 50) ? 9 + (int)pick(rng, 3) : 52 + (int)pick(rng, 7));
	}
}
