/* SPDX-License-Identifier: MIT */
/*
 * Layout of the tiny guest that src/validate/kvm.c runs scenarios in, shared by the host side
 * (kvm.c builds the GDT, IDT, TSS and the harness page tables) and the guest code
 * (kvm_guest.S). Included from assembly too: plain integer #defines only, no C, no ULL.
 *
 * Invariants:
 *  - Everything the harness owns lies below SCN_PDPT_GPA (0x10000), so no scenario can alias
 *    a table onto it: scenario table addresses are 0x10000/0x11000/0x12000 ORed with raw
 *    bits, hence never below 0x10000.
 *  - Linear == physical for all guest RAM: the low slot [0, KVMG_LOW_SIZE) and the data slot
 *    [SCN_DATA_GPA, +KVMG_DATA_SIZE). Only KVMG_UCODE and the user stack page are U=1 (with
 *    U=1 on the upper levels leading to them), so SMEP/SMAP never trip on harness accesses.
 *  - Selectors follow the Linux x86-64 GDT layout (USER_CS = USER32_CS + 16), which PVM
 *    hosts expect of user segments.
 */
#ifndef VMMU_VALIDATE_KVM_GUEST_H
#define VMMU_VALIDATE_KVM_GUEST_H

#define KVMG_LOW_SIZE     0x400000   /* low RAM slot at gpa 0 */
#define KVMG_DATA_BASE    0x40000000 /* = SCN_DATA_GPA */
#define KVMG_DATA_SIZE    0x200000   /* data slot: one 2 MiB frame */
#define KVMG_GVA          0x8000000000 /* = SCN_GVA */

#define KVMG_GDT          0x1000
#define KVMG_IDT          0x2000
#define KVMG_TSS          0x3000
#define KVMG_PARAM        0x3800     /* host-written parameter block, read by the guest */
#define KVMG_KCODE        0x4000     /* guest image page 0: ring-0 code + exception stubs */
#define KVMG_UCODE        0x5000     /* guest image page 1: ring-3 code (U=1, read-only) */
#define KVMG_USTACK_PAGE  0x6000     /* U=1 */
#define KVMG_USTACK_TOP   0x7000
#define KVMG_KSTACK_PAGE  0x7000
#define KVMG_KSTACK_TOP   0x8000     /* also TSS.RSP0 */
#define KVMG_PDPT_LOW     0x8000     /* PML4[0] -> this */
#define KVMG_PD_LOW       0x9000     /* PDPT_LOW[0]: gpa 0..1G (only 0..4M mapped) */
#define KVMG_PT_LOW       0xa000     /* PD_LOW[0]: gpa 0..2M in 4K pages, page 0 unmapped */
#define KVMG_PD_DATA      0xb000     /* PDPT_LOW[1]: 2M page at KVMG_DATA_BASE */
#define KVMG_PML4         0xf000     /* = SCN_PML4_GPA; PML4[1] is the scenario's PML4E */

#define KVMG_KERNEL_CS    0x10
#define KVMG_KERNEL_DS    0x18
#define KVMG_USER32_CS    0x23
#define KVMG_USER_DS      0x2b
#define KVMG_USER_CS      0x33
#define KVMG_TSS_SEL      0x40
#define KVMG_GDT_ENTRIES  10         /* through the 16-byte TSS descriptor at 0x40 */
#define KVMG_IDT_VECTORS  32
#define KVMG_STUB_SIZE    16         /* bytes per exception stub, vector v at stubs + 16 * v */

/* Parameter block at KVMG_PARAM (all 64-bit). Zero addresses mean "none". */
#define KVMG_P_ENTRY      0x00       /* [4] PML4E, PDPTE, PDE, PTE (0 below the leaf) */
#define KVMG_P_ZERO       0x20       /* [4] gpas of stale qwords to clear first */
#define KVMG_P_FRAME      0x40       /* gpa of the leaf frame (in RAM) to put the RET at, or 0 */
#define KVMG_P_ACCESS     0x48       /* enum scn_access */
#define KVMG_P_CPL        0x50       /* 0 or 3 */
#define KVMG_P_RFLAGS     0x58       /* RFLAGS during the access (AC) */
#define KVMG_P_PKE        0x60       /* nonzero: WRPKRU with KVMG_P_PKRU first */
#define KVMG_P_PKRU       0x68
#define KVMG_P_SIZE       0x70

/* The frame's code: RET imm16 with imm16 = 0 (c2 00 00). Not plain RET (c3): bit 0 is clear,
 * so a walk that raw address bits shift onto a frame reads a not-present entry, exactly as
 * from zeroed memory. The store access writes this byte back, so the frame never changes. */
#define KVMG_RET_OPCODE   0xc2

/* Guest -> host report, in registers at the final HLT. */
#define KVMG_MARK_DONE    0x600d     /* r15: ring-0 access completed */
#define KVMG_MARK_EXC     0xe000     /* r15: exception, | vector; r14 = error code,
				      * r13 = CR2, r12 = frame RIP, r11 = frame CS */

#endif
