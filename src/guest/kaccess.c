/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel's own memory accesses: loads and stores at CPL 0 through the direct map,
 * page-sized zeroing and copying, and the device's registers through the ioremap mapping. Every
 * change the kernel makes to guest memory while it runs goes through here, as a store through a
 * vCPU, so a shadow MMU sees (and traps) each write to a page table.
 *
 * Privilege changes (kernel entry and return to user) are the only place that calls
 * vmmu_vcpu_set_cpl(): they flush nothing, as on hardware. Both are lazy: the kernel enters when
 * it starts work and returns to user mode just before the next user access, which is what a
 * kernel does (the return is the last thing before the user instruction runs again).
 *
 * A kernel access that does not complete is an oops: the kernel only touches the direct map and
 * the ioremap page, which are always mapped. It ends the run with a one-line reason (a bug in an
 * MMU mode shows up this way) instead of crashing.
 * Locking: a vCPU is driven by one thread at a time; its counters are its own (gcpu.cnt).
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "guest.h"

static const uint8_t zero_page_buf[4096];

/* The one place the CPL changes. */
static void set_cpl(struct guest *g, struct gcpu *c, unsigned cpl)
{
	int rc = vmmu_vcpu_set_cpl(c->v, cpl, false);
	if (rc)
		guest_fail(g, rc, "vmmu_vcpu_set_cpl(%u): %s", cpl, strerror(-rc));
	c->cpl = cpl;
}

void cpu_kernel(struct guest *g, struct gcpu *c)
{
	if (c->cpl != 0)
		set_cpl(g, c, 0);
}

void cpu_user(struct guest *g, struct gcpu *c)
{
	if (c->cpl != 3)
		set_cpl(g, c, 3);
}

static int oops(struct guest *g, struct gcpu *c, uint64_t va, const struct vmmu_access_result *r)
{
	switch (r->status) {
	case VMMU_ACCESS_PF:
		return guest_fail(g, -EFAULT, "guest kernel oops: #PF at %#" PRIx64 " error code %#x on vCPU %u (kernel access to %#" PRIx64 ")",
				  r->pf_addr, r->pf_ec, c->id, va);
	case VMMU_ACCESS_GP:
		return guest_fail(g, -EFAULT, "guest kernel oops: #GP on vCPU %u (kernel access to %#" PRIx64 ")", c->id, va);
	case VMMU_ACCESS_MMIO:
		return guest_fail(g, -EFAULT, "guest kernel oops: MMIO exit at gpa %#" PRIx64 " on vCPU %u (kernel access to %#" PRIx64 ")",
				  r->mmio_gpa, c->id, va);
	default:
		return guest_fail(g, -EIO, "guest kernel oops: access status %d", (int)r->status);
	}
}

/* @unlocked: the kernel lock is let go around the access (a threaded run's zeroing of a frame
 * only this vCPU owns). */
static inline int kaccess(struct guest *g, struct gcpu *c, uint64_t va, uint32_t len, unsigned kind,
			  void *buf, bool unlocked)
{
	struct vmmu_access_result r;
	int rc;

	if (c->cpl != 0)
		return guest_fail(g, -EINVAL, "internal error: a kernel access at CPL %u", c->cpl);
	c->cnt.kernel_accesses++;
	if (unlocked)
		kunlock(g, c);
	rc = vmmu_vcpu_access(c->v, va, len, kind, buf, &r);
	if (unlocked)
		klock(g, c);
	if (rc)
		return guest_fail(g, rc, "vmmu_vcpu_access(%#" PRIx64 ", %u): %s", va, len, strerror(-rc));
	if (r.status != VMMU_ACCESS_DONE)
		return oops(g, c, va, &r);
	return 0;
}

int kload64(struct guest *g, struct gcpu *c, uint64_t pa, uint64_t *val)
{
	return kaccess(g, c, dm(pa), 8, VMMU_ACC_READ, val, false);
}

int kstore64(struct guest *g, struct gcpu *c, uint64_t pa, uint64_t val)
{
	return kaccess(g, c, dm(pa), 8, VMMU_ACC_WRITE, &val, false);
}

int kread_page(struct guest *g, struct gcpu *c, uint64_t pa, void *buf)
{
	return kaccess(g, c, dm(pa), 4096, VMMU_ACC_READ, buf, false);
}

int kwrite_page(struct guest *g, struct gcpu *c, uint64_t pa, const void *buf)
{
	/* A write access only reads the buffer; the API takes one pointer for both ways. */
	return kaccess(g, c, dm(pa), 4096, VMMU_ACC_WRITE, (void *)buf, false);
}

int kzero_page(struct guest *g, struct gcpu *c, uint64_t pa)
{
	/* clear_page(): one page-sized store. The buffer is only read by a write access. */
	return kaccess(g, c, dm(pa), 4096, VMMU_ACC_WRITE, (void *)zero_page_buf, false);
}

int kzero_page_unlocked(struct guest *g, struct gcpu *c, uint64_t pa)
{
	return kaccess(g, c, dm(pa), 4096, VMMU_ACC_WRITE, (void *)zero_page_buf, true);
}

int kcopy_page(struct guest *g, struct gcpu *c, uint64_t dst, uint64_t src)
{
	uint64_t buf[512];
	int rc = kread_page(g, c, src, buf);
	if (rc)
		return rc;
	return kwrite_page(g, c, dst, buf);
}

int kmmio(struct guest *g, struct gcpu *c, unsigned reg, bool write, uint64_t *val)
{
	struct vmmu_access_result r;
	uint64_t buf = write ? *val : 0;
	uint64_t va = IOREMAP_BASE + reg;
	int rc;

	if (c->cpl != 0)
		return guest_fail(g, -EINVAL, "internal error: a device access at CPL %u", c->cpl);
	c->cnt.kernel_accesses++;
	g->cnt.mmio++;
	rc = vmmu_vcpu_access(c->v, va, 8, write ? VMMU_ACC_WRITE : VMMU_ACC_READ, &buf, &r);
	if (rc)
		return guest_fail(g, rc, "vmmu_vcpu_access(device): %s", strerror(-rc));
	if (r.status != VMMU_ACCESS_MMIO)
		return r.status == VMMU_ACCESS_DONE ?
			guest_fail(g, -EFAULT, "guest kernel oops: the device register %#x is memory", reg) :
			oops(g, c, va, &r);
	if (r.mmio_gpa != DEV_GPA + reg || device_mmio(&g->dev, &r))
		return guest_fail(g, -EFAULT, "guest kernel oops: the device did not decode gpa %#" PRIx64,
				  r.mmio_gpa);
	if (!write) {
		rc = vmmu_vcpu_complete_mmio(c->v, &r, &buf);
		if (rc)
			return guest_fail(g, rc, "vmmu_vcpu_complete_mmio: %s", strerror(-rc));
		*val = buf;
		obs3(obs_of(g, c->cur), OBS_MMIO, reg, buf);
	}
	return 0;
}
