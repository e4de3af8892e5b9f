/* SPDX-License-Identifier: MIT */
/*
 * Guest physical memory through the memslots, as the page walker reaches it from software (the
 * MMUs' walks of guest tables, the scenario model): struct guest_mem_ops whose opaque is a
 * struct memslots *. Reads are atomic loads, A/D updates compare-and-swap, each in its own
 * memslot read section (sections nest, so callers already in one are fine). Errors in the
 * walker's vocabulary: no memory (no slot) is -ENOENT (the guest's #PF), a read-only slot
 * refuses a swap with -EACCES; a slot with no host memory behind its hva (munmapped) is -EFAULT,
 * which aborts the walk: the access fails, as KVM_RUN does. No locking beyond RCU.
 */
#ifndef VMMU_PAGING_SLOTS_GMEM_H
#define VMMU_PAGING_SLOTS_GMEM_H

#include "mem/memslot.h"
#include "paging/paging.h"

extern const struct guest_mem_ops slots_gmem_ops;

#endif
