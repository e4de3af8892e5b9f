/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel's view of the x86-64 4-level page-table format and of its own address-space
 * layout. The guest model defines its own constants (it may not include the hypervisor's src/
 * headers, as a kernel has its own pgtable_types.h). No state, no locking.
 *
 * Address split (4-level, 48-bit):
 *   47      39 38      30 29      21 20      12 11        0
 *   | PML4 idx | PDPT idx |  PD idx  |  PT idx  |  offset   |
 */
#ifndef VMMU_GUEST_GPT_H
#define VMMU_GUEST_GPT_H

#include <stdbool.h>
#include <stdint.h>

#define GPTE_P    (1ULL << 0)
#define GPTE_W    (1ULL << 1)
#define GPTE_U    (1ULL << 2)
#define GPTE_PWT  (1ULL << 3)
#define GPTE_PCD  (1ULL << 4)
#define GPTE_A    (1ULL << 5)
#define GPTE_D    (1ULL << 6)
#define GPTE_PS   (1ULL << 7)
#define GPTE_G    (1ULL << 8)
#define GPTE_NX   (1ULL << 63)
/* Software bit, ignored by the hardware: a PROT_NONE page. P is clear, the frame is kept (as
 * Linux's _PAGE_PROTNONE), so mprotect can bring it back. */
#define GPTE_PROTNONE (1ULL << 10)
#define GPTE_ADDR     0x000ffffffffff000ULL
#define GPTE_ADDR_2M  0x000fffffffe00000ULL
#define GPTE_ADDR_1G  0x000fffffc0000000ULL

_Static_assert((GPTE_PROTNONE & (GPTE_P | GPTE_W | GPTE_U | GPTE_PWT | GPTE_PCD | GPTE_A |
				 GPTE_D | GPTE_PS | GPTE_G | GPTE_NX | GPTE_ADDR)) == 0,
	       "software bits never overlap hardware bits");

/* Tables: Linux's _PAGE_TABLE / _KERNPG_TABLE (Accessed preset, rights decided at the leaf). */
#define GPTE_TABLE_USER   (GPTE_P | GPTE_W | GPTE_U | GPTE_A)
#define GPTE_TABLE_KERNEL (GPTE_P | GPTE_W | GPTE_A)
/* Kernel data (the direct map): PAGE_KERNEL, global, Accessed and Dirty preset. */
#define GPTE_KERNEL_DATA  (GPTE_P | GPTE_W | GPTE_A | GPTE_D | GPTE_G | GPTE_NX)
/* Device memory: uncached. */
#define GPTE_KERNEL_IO    (GPTE_KERNEL_DATA | GPTE_PCD | GPTE_PWT)

/* Page-fault error code bits. */
#define PF_P     (1u << 0)
#define PF_W     (1u << 1)
#define PF_U     (1u << 2)
#define PF_RSVD  (1u << 3)
#define PF_I     (1u << 4)

/* Control registers the kernel sets. */
#define GCR0_PE  (1ULL << 0)
#define GCR0_MP  (1ULL << 1)
#define GCR0_ET  (1ULL << 4)
#define GCR0_NE  (1ULL << 5)
#define GCR0_WP  (1ULL << 16)
#define GCR0_AM  (1ULL << 18)
#define GCR0_PG  (1ULL << 31)
#define GCR4_PAE   (1ULL << 5)
#define GCR4_PGE   (1ULL << 7)
#define GCR4_PCIDE (1ULL << 17)
#define GCR4_SMEP  (1ULL << 20)
#define GCR4_SMAP  (1ULL << 21)
#define GEFER_SCE  (1ULL << 0)
#define GEFER_LME  (1ULL << 8)
#define GEFER_LMA  (1ULL << 10)
#define GEFER_NXE  (1ULL << 11)
#define GCR3_NOFLUSH (1ULL << 63)

/* Layout, as Linux x86-64 with 4-level paging. */
#define DIRECT_MAP_BASE 0xffff888000000000ULL   /* all guest RAM, 1G/2M pages where aligned */
#define IOREMAP_BASE    0xffffc90000000000ULL   /* the device's registers */
#define USER_TOP        0x00007ffffffff000ULL   /* TASK_SIZE: user addresses are below */
#define STACK_TOP       USER_TOP
#define STACK_SIZE      (8ULL << 20)
#define MMAP_BASE       0x00007f0000000000ULL   /* mmap() searches top-down from here */
#define KERNEL_HALF     256                     /* first PML4 index of the kernel half */

#define SZ_4K (1ULL << 12)
#define SZ_2M (1ULL << 21)
#define SZ_1G (1ULL << 30)

static inline unsigned pt_index(uint64_t va, int level)
{
	return (unsigned)((va >> (12 + 9 * (level - 1))) & 511);
}

/* Bytes one entry at @level maps (1: 4K, 2: 2M, 3: 1G, 4: 512G). */
static inline uint64_t level_size(int level)
{
	return 1ULL << (12 + 9 * (level - 1));
}

static inline bool gpte_present(uint64_t e) { return e & GPTE_P; }
/* In use: present, or a PROT_NONE leaf holding its frame. */
static inline bool gpte_used(uint64_t e) { return e & (GPTE_P | GPTE_PROTNONE); }
static inline bool gpte_huge(uint64_t e) { return e & GPTE_PS; }
static inline uint64_t gpte_addr(uint64_t e) { return e & GPTE_ADDR; }
static inline uint32_t gpte_pfn(uint64_t e) { return (uint32_t)((e & GPTE_ADDR) >> 12); }
/* A user leaf at @level (1: 4K, 2: 2M, 3: 1G): the 4K pages it maps, its head frame. */
static inline uint64_t leaf_pages(int level) { return 1ULL << (9 * (level - 1)); }
static inline uint32_t leaf_head(uint64_t e, int level)
{
	return (uint32_t)((e & (level == 3 ? GPTE_ADDR_1G : level == 2 ? GPTE_ADDR_2M : GPTE_ADDR)) >> 12);
}

static inline uint64_t dm(uint64_t gpa)
{
	return DIRECT_MAP_BASE + gpa;
}

#endif
