/* SPDX-License-Identifier: MIT */
/*
 * What the examples share, kept small so each example still reads on its own: the MMU mode
 * named on the command line, a VM with its memory in one memslot, the registers of a vCPU in
 * 4-level paging, an error's report, and guest page tables handed out from a bump allocator
 * (guest memory starts zeroed).
 */
#ifndef VMMU_EXAMPLE_H
#define VMMU_EXAMPLE_H

#include <stdio.h>
#include <string.h>

#include <vmmu/vmmu.h>

/* A VM config for MODE (native, shadow, ept, npt; @dflt when none is given) with 1 GiB of host
 * memory; ept runs on a VMX host, npt on SVM. */
static inline struct vmmu_vm_config example_config(int argc, char **argv, const char *dflt,
						   const char **mode)
{
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30 };

	*mode = argc > 1 ? argv[1] : dflt;
	cfg.mmu = !strcmp(*mode, "native") ? VMMU_MMU_NATIVE : !strcmp(*mode, "shadow") ?
		  VMMU_MMU_SHADOW : !strcmp(*mode, "npt") ? VMMU_MMU_NPT : VMMU_MMU_EPT;
	cfg.host = cfg.mmu == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX;
	return cfg;
}

/* 64-bit mode, 4-level paging with the tables at @cr3: CR0.PG|WP|PE, CR4.PAE, EFER.LME|LMA|NXE. */
static inline struct vmmu_regs example_regs64(vmmu_gpa_t cr3, unsigned cpl)
{
	struct vmmu_regs r = {
		.cr0 = (1ULL << 31) | (1ULL << 16) | 1, .cr3 = cr3, .cr4 = 1ULL << 5,
		.efer = (1ULL << 8) | (1ULL << 10) | (1ULL << 11), .cpl = (uint8_t)cpl,
	};
	return r;
}

/* A VM of @cfg whose guest physical [0, @mem) is slot 0, backed by anonymous memory of the VMM
 * (KVM_SET_USER_MEMORY_REGION). 0, or -errno with *@what the call that failed. */
static inline int example_vm(const struct vmmu_vm_config *cfg, uint64_t mem, struct vmmu_vm **vm,
			     const char **what)
{
	uint64_t hva;
	int rc;

	*what = "vmmu_vm_create";
	if ((rc = vmmu_vm_create(cfg, vm)))
		return rc;
	*what = "vmmu_vm_mmap";
	if ((rc = vmmu_vm_mmap(*vm, mem, false, &hva)))
		return rc;
	struct vmmu_userspace_memory_region slot = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = mem, .userspace_addr = hva,
	};
	*what = "vmmu_set_user_memory_region";
	return vmmu_set_user_memory_region(*vm, &slot);
}

/* @what failed with -errno @rc: say so as @prog; the exit status. */
static inline int example_fail(const char *prog, const char *what, int rc)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, strerror(-rc));
	return 1;
}

/* vmmu_gpt_map's allocator: the next 4K page after the one @opaque (a vmmu_gpa_t *) names. */
static inline vmmu_gpa_t example_alloc_table(void *opaque)
{
	vmmu_gpa_t *next = opaque;

	*next += 4096;
	return *next;
}

#endif
