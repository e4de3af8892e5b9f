/* SPDX-License-Identifier: MIT */
/*
 * What the counter-probe guest (kvm_probe_guest.S) and the C side (probe.h) share: the
 * parameter block, the reports at HLT, the operation kinds and the addresses the guest code
 * names. Included from assembly: plain integer #defines only, no C, no ULL. The rest of the
 * harness layout (GDT, IDT, code, stacks) is validate/kvm_guest.h's.
 */
#ifndef VMMU_VALIDATE_KVM_PROBE_GUEST_H
#define VMMU_VALIDATE_KVM_PROBE_GUEST_H

#define PRB_OPS       0x10000        /* the operation list, 32 bytes an operation */
#define PRB_OPS_SIZE  0x20000
#define PRB_GVA       0x8000000000   /* PML4 entry 1: the probe's region */

/* Parameter block at KVMG_PARAM (all 64-bit). */
#define PRB_P_CR3     0x00
#define PRB_P_FIX     0x08           /* bits the #PF handler ORs into a faulting PTE */
#define PRB_P_PTBASE  0x10           /* PTE of region page i: PTBASE + 8 * i */
#define PRB_P_SPAN    0x18           /* bytes of the region the handler serves */
#define PRB_P_NFAULT  0x20           /* out: #PFs the handler served */

/* r15 at HLT */
#define PRB_MARK_START 0x57a7        /* warmed up: the first snapshot */
#define PRB_MARK_DONE  0x600d        /* the last operation ran */
#define PRB_MARK_BADOP 0xbad0        /* an unknown operation kind */
#define PRB_MARK_EXC   0xe000        /* | vector: an exception the probe did not expect;
				      * r14 = error code, r13 = CR2, r12 = RIP */

/* Operation kinds: record = kind, a, b, c (64-bit each). */
#define PRB_OP_END    0
#define PRB_OP_READ   1              /* ring 3: b one-byte loads from a, c bytes apart */
#define PRB_OP_WRITE  2              /* ring 3: b one-byte stores */
#define PRB_OP_STORE  3              /* ring 0: the qword b stored at a */
#define PRB_OP_INVLPG 4              /* ring 0: INVLPG a */
#define PRB_OP_CR3    5              /* ring 0: MOV a to CR3 */

#endif
