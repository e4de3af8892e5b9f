/* SPDX-License-Identifier: MIT */
/*
 * Cost-model defaults (cycles at the core clock). Sources, in docs/hardware.md: Intel's
 * optimization manual for Skylake TLB and walk latencies; published VMX round-trip measurements
 * (kvm-unit-tests' vmexit suite) for exits; estimates where no measurement exists, marked so.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cost.h"

#define COST_FIELDS(X)                                                                             \
	X(tlb_hit, 1)                                                                              \
	X(stlb_hit, 9)                                                                             \
	X(walk_ref, 20)                                                                            \
	X(vm_exit, 1200)                                                                           \
	X(pf_deliver, 250)                                                                         \
	X(mmio, 8000)                                                                              \
	X(mmu_step, 40)                                                                            \
	X(tlb_flush, 100)                                                                          \
	X(invlpg, 150)

const char *const cost_keys[] = {
#define X(name, def) #name,
	COST_FIELDS(X)
#undef X
	NULL,
};

static const size_t cost_offsets[] = {
#define X(name, def) offsetof(struct vmmu_cost, name),
	COST_FIELDS(X)
#undef X
};

static const uint32_t cost_defaults[] = {
#define X(name, def) def,
	COST_FIELDS(X)
#undef X
};

_Static_assert(sizeof(cost_offsets) / sizeof(cost_offsets[0]) == sizeof(struct vmmu_cost) / sizeof(uint32_t),
	       "every struct vmmu_cost field has a default");

uint32_t cost_get(const struct vmmu_cost *c, unsigned idx)
{
	return *(const uint32_t *)((const char *)c + cost_offsets[idx]);
}

void cost_fill_defaults(struct vmmu_cost *c)
{
	for (size_t i = 0; i < sizeof(cost_offsets) / sizeof(cost_offsets[0]); i++) {
		uint32_t *f = (uint32_t *)((char *)c + cost_offsets[i]);
		if (!*f)
			*f = cost_defaults[i];
	}
}

int cost_set(struct vmmu_cost *c, const char *kv)
{
	const char *eq = strchr(kv, '=');

	if (!eq)
		return -EINVAL;
	for (size_t i = 0; cost_keys[i]; i++) {
		if (strlen(cost_keys[i]) == (size_t)(eq - kv) && !strncmp(cost_keys[i], kv, (size_t)(eq - kv))) {
			uint64_t v;
			/* 0 would mean "the default" in struct vmmu_cost: a cost is at least a cycle. */
			if (vmmu_parse_uint(eq + 1, UINT32_MAX, &v) || !v)
				return -EINVAL;
			*(uint32_t *)((char *)c + cost_offsets[i]) = (uint32_t)v;
			return 0;
		}
	}
	return -EINVAL;
}
