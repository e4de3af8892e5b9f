/* SPDX-License-Identifier: MIT */
/*
 * scn_entry: the one definition of the entry values a scenario installs, shared by the model
 * and the /dev/kvm runner so both walk bit-identical tables.
 * Invariant: the harness's address and PS/pkey bits are ORed into the scenario's flags, never
 * masked, so raw bits a scenario sets (even address bits) reach the walker unchanged.
 */
#include "validate/scenario.h"

#define SCN_PTE_PS        (1ULL << 7)
#define SCN_PKEY_SHIFT    59

uint64_t scn_entry(const struct scenario *s, int lvl)
{
	static const uint64_t next_table[SCN_NLEVELS] = {
		[SCN_PML4] = SCN_PDPT_GPA,
		[SCN_PDPT] = SCN_PD_GPA,
		[SCN_PD] = SCN_PT_GPA,
	};
	int leaf = scn_nlevels(s) - 1;
	uint64_t v;

	/* Levels below the leaf are not part of the walk and stay zero in guest memory. */
	if (lvl < 0 || lvl > leaf || leaf >= SCN_NLEVELS)
		return 0;

	v = s->flags[lvl];
	if (lvl < leaf)
		return v | next_table[lvl];

	v |= SCN_DATA_GPA | (uint64_t)(s->pkey & 0xf) << SCN_PKEY_SHIFT;
	if (lvl != SCN_PT)
		v |= SCN_PTE_PS;
	return v;
}
