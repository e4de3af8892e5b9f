/* SPDX-License-Identifier: MIT */
/*
 * The access API's hit path: vmmu_vcpu_access and vmmu_vcpu_access_batch check their arguments and
 * try the hardware's TLB-hit path (cpu.h, cpu_access_fast); everything else goes to vcpu.c
 * (vcpu_access_slow, vcpu_access_entering). A file of its own so that a profile-guided build
 * (meson.build) compiles it without the training's profile: its code is tuned by hand for the hit
 * (hints, inline steps, docs/hardware.md), and the training's accesses mostly miss. Locking: as
 * vcpu.c's (vm.h): the caller's thread runs the vCPU; vcpu_try_enter / vcpu_leave bracket the hit.
 */
#include <errno.h>

#include "hot.h"
#include "vm/vm.h"

/* One access with its arguments checked: the hit path does the whole access or nothing
 * (cpu.h); everything else is a tail call. Inlined into both public access functions. */
static inline __attribute__((always_inline)) int vcpu_access_one(struct vmmu_vcpu *vcpu, uint64_t gva,
								 uint32_t len, unsigned kind, void *buf,
								 struct vmmu_access_result *res)
{
	if (__builtin_expect(!vcpu_try_enter(vcpu), 0))
		return vcpu_access_entering(vcpu, gva, len, kind, buf, res);
	if (__builtin_expect(cpu_access_fast(&vcpu->cpu, gva, len, kind, buf), 1)) {
		vcpu_leave(vcpu);
		res->status = VMMU_ACCESS_DONE;
		res->done = len;
		return 0;
	}
	return vcpu_access_slow(vcpu, gva, len, kind, buf, res);
}

VMMU_HOT
int vmmu_vcpu_access(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len, unsigned kind, void *buf,
		     struct vmmu_access_result *res)
{
	if (!vcpu || !buf || !res || !access_kind_ok(kind))
		return -EINVAL;
	if (!(len >= 1 && len <= 8) && !(len == VMMU_PAGE_SIZE && !(gva & (VMMU_PAGE_SIZE - 1))))
		return -EINVAL;
	return vcpu_access_one(vcpu, gva, len, kind, buf, res);
}

VMMU_HOT
int vmmu_vcpu_access_batch(struct vmmu_vcpu *vcpu, struct vmmu_access_op *ops, unsigned n,
			   unsigned *done, struct vmmu_access_result *res)
{
	unsigned i;
	int rc = 0;

	if (done)
		*done = 0;
	if (!vcpu || (n && !ops) || !done || !res)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		struct vmmu_access_op *op = &ops[i];

		if (!access_kind_ok(op->kind) || op->len < 1 || op->len > 8) {
			rc = -EINVAL;
			break;
		}
		if (!(op->kind & VMMU_ACC_WRITE))
			op->val = 0;
		rc = vcpu_access_one(vcpu, op->gva, op->len, op->kind, &op->val, res);
		if (rc || res->status != VMMU_ACCESS_DONE)
			break;
	}
	*done = i;
	return rc;
}
