/* SPDX-License-Identifier: MIT */
/*
 * Differential-testing runner: executes one page-walk scenario (validate/scenario.h) in a tiny
 * 64-bit guest through /dev/kvm and reports the #PF (error code, CR2) and the A/D bits the
 * walk left in guest memory, to compare against the software walker.
 *
 * What "the CPU" is: whatever /dev/kvm provides. With hardware EPT/NPT the walk is the
 * silicon's; with shadow paging or KVM's instruction emulator (e.g. PVM hosts) it is KVM's
 * software walker. Either way it is an independent implementation of the architecture.
 *
 * Invariants: one struct kvmv = one VM with one vCPU, reused for many scenarios and owned by
 * one thread (no locking); each kvmv_run starts from a fully reset register state, so
 * scenarios do not depend on each other's order. Guest layout: validate/kvm_guest.h.
 */
#ifndef VMMU_VALIDATE_KVM_H
#define VMMU_VALIDATE_KVM_H

#include <stddef.h>

#include "paging/cpu_model.h"
#include "validate/scenario.h"

struct kvmv; /* one VM + one vCPU, reused for many scenarios */

/*
 * Fill @cpu with what a guest of this machine sees, from KVM_GET_SUPPORTED_CPUID: vendor,
 * MAXPHYADDR (0x80000008 EAX[7:0]) and NX, SMEP, SMAP, PKU, 1G pages, LA57, PSE36.
 * @cpu->name is "host". Returns 0, or -errno with a one-line reason in @why when /dev/kvm
 * is absent or unusable.
 */
int kvmv_probe_cpu(struct cpu_model *cpu, char *why, size_t whylen);

/* Create the VM and its guest. Returns 0, or -errno with a one-line reason in @why. */
int kvmv_open(struct kvmv **out, char *why, size_t whylen);

/*
 * Run @s. Returns 0 and fills @out: fault, ec and cr2 (0 when no fault), nlevels =
 * scn_nlevels(s) and ad[] of the walked levels, read after the access from the entries at
 * their scenario addresses (PML4 entry 1, then entry 0 of 0x10000, 0x11000, 0x12000);
 * levels below the leaf are 0. A leaf frame outside guest RAM is MMIO: reads see zeroes,
 * stores are dropped, and the outcome is fault=0.
 * What a walk can see, for a model to match: guest RAM is gpa [0, 4 MiB) and [0x40000000,
 * +2 MiB); at and above 0x10000 it reads as zero except the scenario's entries and the
 * frame's code (c2 00 00, RET imm16: bit 0 clear, so a not-present entry if raw address bits
 * make a walk read it as one). A table outside RAM is KVM's call: it reports a not-present
 * #PF (P=0 in ec).
 * Returns -EOPNOTSUPP with a reason in @why when this host cannot run @s (a CR4/EFER bit the
 * guest CPU lacks or KVM refuses, a fetch from an MMIO frame, which KVM cannot execute);
 * -EINVAL for a malformed scenario; -EPROTO when the guest did something no scenario should
 * cause (an exception other than the test #PF, a triple fault, an unexpected exit), with
 * the vector/exit named in @why; another -errno when a KVM ioctl fails.
 * @out is only meaningful when 0 is returned.
 */
int kvmv_run(struct kvmv *k, const struct scenario *s, struct scn_outcome *out, char *why,
	     size_t whylen);

/* Free everything; NULL is fine. */
void kvmv_close(struct kvmv *k);

#endif
