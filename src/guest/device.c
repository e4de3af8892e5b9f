/* SPDX-License-Identifier: MIT */
/*
 * A small MMIO device, so that every run has MMIO exits to count and complete: four 8-byte
 * registers at DEV_GPA (guest.h), a gpa in no memslot. ID reads "VMMUDEV1"; CLOCK is a tick that
 * grows by one each read (deterministic, unlike a wall clock); a write to CONSOLE is folded into
 * CHECKSUM (the kernel writes each exit status there, as a kernel logs to a serial port).
 * Locking: none; the device belongs to one guest.
 */
#include <errno.h>

#include "guest.h"

int device_mmio(struct device *d, struct vmmu_access_result *res)
{
	uint64_t reg = res->mmio_gpa - DEV_GPA;

	if (res->mmio_gpa < DEV_GPA || reg > DEV_REG_CHECKSUM || (reg & 7) || res->mmio_len != 8)
		return -EFAULT;
	if (res->mmio_write) {
		if (reg != DEV_REG_CONSOLE)
			return 0;   /* writes to read-only registers are ignored, as on most devices */
		d->checksum = (d->checksum ^ res->mmio_data) * 0x100000001b3ULL;
		return 0;
	}
	switch (reg) {
	case DEV_REG_ID: res->mmio_data = DEV_ID; break;
	case DEV_REG_CLOCK: res->mmio_data = ++d->clock; break;
	case DEV_REG_CHECKSUM: res->mmio_data = d->checksum; break;
	default: res->mmio_data = 0; break;
	}
	return 0;
}
