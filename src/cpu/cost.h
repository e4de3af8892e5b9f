/* SPDX-License-Identifier: MIT */
/*
 * cpu/cost: the cost model. Every modelled event has a cycle cost (struct vmmu_cost, public); the
 * defaults and their sources are in docs/hardware.md. sim_cycles is the sum over events.
 * No state beyond the table; no locking (one table per VM, read-only once the VM runs).
 */
#ifndef VMMU_CPU_COST_H
#define VMMU_CPU_COST_H

#include "vmmu/vmmu.h"

/* Fill every zero field of @c with its default. */
void cost_fill_defaults(struct vmmu_cost *c);
/* Set one cost from "KEY=VALUE" (KEY a struct vmmu_cost field name). 0, or -EINVAL (unknown key,
 * bad number). */
int cost_set(struct vmmu_cost *c, const char *kv);
/* The field names, NULL-terminated, for help texts and JSON. */
extern const char *const cost_keys[];
uint32_t cost_get(const struct vmmu_cost *c, unsigned idx);

#endif
