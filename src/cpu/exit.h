/* SPDX-License-Identifier: MIT */
/*
 * cpu/exit: the VM-exit rules the hardware applies before it hands an event to the hypervisor.
 *  - #PF: on a VMX host, bit 14 of the exception bitmap with PFEC_MASK/PFEC_MATCH (SDM 26.2: with
 *    the bit set, a #PF exits iff (ec & MASK) == MATCH; with it clear, iff they differ); on an SVM
 *    host, the #PF intercept bit alone.
 *  - CR3 loads and INVLPG: the CR3-load-exiting / INVLPG-exiting controls (VMX) or the
 *    intercepts (SVM).
 * No state; no locking.
 */
#ifndef VMMU_CPU_EXIT_H
#define VMMU_CPU_EXIT_H

#include <stdbool.h>
#include <stdint.h>

#include "vmmu/vmmu.h"

#define EXC_PF_VECTOR 14

struct exit_controls {
	enum vmmu_host host;
	uint32_t exception_bitmap;   /* VMX: bit per vector; SVM: the exception intercepts */
	uint32_t pfec_mask, pfec_match;  /* VMX only */
	bool cr3_load_exiting;
	bool invlpg_exiting;
	bool invpcid_exiting;
};

static inline bool exit_pf_intercepted(const struct exit_controls *c, uint32_t ec)
{
	bool bit = c->exception_bitmap & (1u << EXC_PF_VECTOR);
	if (c->host == VMMU_HOST_SVM)
		return bit;
	return bit == ((ec & c->pfec_mask) == c->pfec_match);
}

#endif
