/* SPDX-License-Identifier: MIT */
/* The soft MMU (shadow paging): not built yet; an empty ops table makes mmu_create() say
 * -EOPNOTSUPP. */
#include "mmu/mmu_internal.h"

const struct mmu_ops shadow_mmu_ops = { .name = NULL };
