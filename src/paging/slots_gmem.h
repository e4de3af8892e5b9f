/* SPDX-License-Identifier: MIT */
/*
 * Guest physical memory through the memslots, as the page walker reaches it from software (the
 * MMUs' walks of guest tables, the scenario model): struct guest_mem_ops whose opaque is a
 * struct memslots *. Reads are atomic loads, A/D updates compare-and-swap, each in its own
 * memslot read section (sections nest, so callers already in one are fine). Errors in the
 * walker's vocabulary: no memory (no slot, no host memory behind the hva) is -ENOENT, a
 * read-only slot refuses a swap with -EACCES. No locking beyond RCU.
 */
#ifndef VMMU_PAGING_SLOTS_GMEM_H
#define VMMU_PAGING_SLOTS_GMEM_H

#include "mem/memslot.h"
#include "paging/paging.h"

extern const struct guest_mem_ops slots_gmem_ops;

#endif
