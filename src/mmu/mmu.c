/* SPDX-License-Identifier: MIT */
/*
 * The MMU's front: dispatch to the mode's implementation through its ops table (as bhyve puts
 * Intel and AMD behind one table), and what is common to all of them. See mmu.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mmu/mmu_internal.h"

static const struct mmu_ops *ops_for(enum vmmu_mmu mode)
{
	switch (mode) {
	case VMMU_MMU_EPT:
	case VMMU_MMU_NPT:
		return tdp_mmu_ops.create ? &tdp_mmu_ops : NULL;
	case VMMU_MMU_SHADOW:
		return shadow_mmu_ops.create ? &shadow_mmu_ops : NULL;
	case VMMU_MMU_NATIVE:
		break;
	}
	return NULL;
}

bool mmu_mode_available(enum vmmu_mmu mode)
{
	return ops_for(mode) != NULL;
}

int mmu_create(const struct mmu_env *env, struct mmu **out)
{
	const struct mmu_ops *ops;
	struct mmu *m;
	int rc;

	if (!env || !out)
		return -EINVAL;
	ops = ops_for(env->mode);
	if (!ops)
		return -EOPNOTSUPP;
	rc = ops->create(env, &m);
	if (rc)
		return rc;
	m->ops = ops;
	*out = m;
	return 0;
}

void mmu_destroy(struct mmu *m)
{
	if (m)
		m->ops->destroy(m);
}

int mmu_vcpu_init(struct mmu *m, struct mmu_vcpu *mv, struct cpu *c)
{
	memset(mv, 0, sizeof(*mv));
	mv->mmu = m;
	mv->cpu = c;
	slot_cache_init(&mv->slots);
	return m->ops->vcpu_init(mv);
}

void mmu_vcpu_destroy(struct mmu_vcpu *mv)
{
	if (mv->mmu)
		mv->mmu->ops->vcpu_destroy(mv);
	mv->mmu = NULL;
}

int mmu_handle_exit(struct mmu_vcpu *mv, const struct hw_exit *e, struct mmu_outcome *out)
{
	memset(out, 0, sizeof(*out));
	return mv->mmu->ops->handle_exit(mv, e, out);
}

int mmu_guest_cr_changed(struct mmu_vcpu *mv, int cr, uint64_t old, uint64_t val)
{
	return mv->mmu->ops->cr_changed ? mv->mmu->ops->cr_changed(mv, cr, old, val) : 0;
}

int mmu_guest_invlpg(struct mmu_vcpu *mv, gva_t gva)
{
	return mv->mmu->ops->invlpg ? mv->mmu->ops->invlpg(mv, gva) : 0;
}

int mmu_guest_invpcid(struct mmu_vcpu *mv, unsigned type, uint16_t pcid, gva_t gva)
{
	return mv->mmu->ops->invpcid ? mv->mmu->ops->invpcid(mv, type, pcid, gva) : 0;
}

void mmu_guest_written(struct mmu *m, gpa_t gpa, uint64_t len)
{
	if (m->ops->guest_written)
		m->ops->guest_written(m, gpa, len);
}

int mmu_audit(struct mmu *m, char *why, size_t whylen)
{
	return m->ops->audit(m, why, whylen);
}

void mmu_get_stats(struct mmu *m, struct mmu_stats *st)
{
	struct mmu_stats *s = &m->st;
	/* Field by field with atomic loads: other vCPU threads may be counting. */
	const uint64_t *src = (const uint64_t *)s;
	uint64_t *dst = (uint64_t *)st;
	for (size_t i = 0; i < sizeof(*st) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}
