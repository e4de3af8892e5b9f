/* SPDX-License-Identifier: MIT */
/*
 * Address kinds, named so a gfn is never passed where a pfn is meant (docs/architecture.md,
 * "Words"). The public names carry the vmmu_ prefix, so an embedder's own gva_t/gpa_t (KVM
 * selftests have them) never clash; vmmu's own sources use the short names, which only a build
 * of vmmu itself (VMMU_INTERNAL defined) sees.
 */
#ifndef VMMU_TYPES_H
#define VMMU_TYPES_H

#include <stdint.h>

typedef uint64_t vmmu_gva_t;   /* guest virtual address */
typedef uint64_t vmmu_gpa_t;   /* guest physical address */
typedef uint64_t vmmu_gfn_t;   /* guest frame number: gpa >> 12 */
typedef uint64_t vmmu_hva_t;   /* host virtual address in the modelled VMM address space */
typedef uint64_t vmmu_hpa_t;   /* host physical address */
typedef uint64_t vmmu_pfn_t;   /* host frame number in the frame arena */

#ifdef VMMU_INTERNAL
typedef vmmu_gva_t gva_t;
typedef vmmu_gpa_t gpa_t;
typedef vmmu_gfn_t gfn_t;
typedef vmmu_hva_t hva_t;
typedef vmmu_hpa_t hpa_t;
typedef vmmu_pfn_t pfn_t;
#endif

#define VMMU_PAGE_SHIFT 12
#define VMMU_PAGE_SIZE  (1ULL << VMMU_PAGE_SHIFT)

#endif
