/* SPDX-License-Identifier: MIT */
/* The hard MMU (EPT/NPT): not built yet; an empty ops table makes mmu_create() say -EOPNOTSUPP. */
#include "mmu/mmu_internal.h"

const struct mmu_ops tdp_mmu_ops = { .name = NULL };
