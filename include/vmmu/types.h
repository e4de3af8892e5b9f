/* SPDX-License-Identifier: MIT */
/* Address kinds, named so a gfn is never passed where a pfn is meant (docs/architecture.md, "Words"). */
#ifndef VMMU_TYPES_H
#define VMMU_TYPES_H

#include <stdint.h>

typedef uint64_t gva_t;   /* guest virtual address */
typedef uint64_t gpa_t;   /* guest physical address */
typedef uint64_t gfn_t;   /* guest frame number: gpa >> 12 */
typedef uint64_t hva_t;   /* host virtual address in the modelled VMM address space */
typedef uint64_t hpa_t;   /* host physical address */
typedef uint64_t pfn_t;   /* host frame number in the frame arena */

#define VMMU_PAGE_SHIFT 12
#define VMMU_PAGE_SIZE  (1ULL << VMMU_PAGE_SHIFT)

#endif
