/* SPDX-License-Identifier: MIT */
/*
 * The modelled CPU: the vendor, MAXPHYADDR and paging features the walker's rules depend on.
 * Fixed models (intel, amd) and the host's, read from /dev/kvm's supported CPUID
 * (src/validate/kvm.c), as a guest of this machine would see them.
 * Invariant: 32 <= maxphyaddr <= 52. No locking: a model is a value, copied into each walk context.
 */
#ifndef VMMU_PAGING_CPU_MODEL_H
#define VMMU_PAGING_CPU_MODEL_H

#include <stdbool.h>
#include <stdint.h>

enum cpu_vendor { CPU_VENDOR_INTEL = 0, CPU_VENDOR_AMD = 1 };

/* Feature bits of struct cpu_model.features. */
#define CPU_FEAT_NX     (1u << 0)
#define CPU_FEAT_SMEP   (1u << 1)
#define CPU_FEAT_SMAP   (1u << 2)
#define CPU_FEAT_PKU    (1u << 3)
#define CPU_FEAT_1G     (1u << 4)  /* 1 GiB pages (CPUID 0x80000001 EDX.26) */
#define CPU_FEAT_LA57   (1u << 5)
#define CPU_FEAT_PSE36  (1u << 6)

struct cpu_model {
	enum cpu_vendor vendor;
	int maxphyaddr;
	uint32_t features;
	char name[32];
};

static inline bool cpu_has(const struct cpu_model *c, uint32_t feat)
{
	return (c->features & feat) == feat;
}

/* Fill @c with a documented fixed model: "intel", "amd". Returns 0 or -EINVAL. */
int cpu_model_fixed(struct cpu_model *c, const char *name);

/* Apply "+smep,-1g,..." to @c. Returns 0, or -EINVAL with the bad token copied to @bad. */
int cpu_model_adjust(struct cpu_model *c, const char *spec, char *bad, unsigned badlen);

#endif
