/* SPDX-License-Identifier: MIT */
/*
 * hot.h: VMMU_HOT marks the functions where an access miss or a fault of each mode spends its
 * instructions (the access and the TLB, the walkers, the soft MMU's #PF handler and the hard
 * MMU's violation handler, the memslot and host look-ups under them), so that GCC, at -O2 and
 * above, places them together in .text.hot instead of in link order.
 *
 * Why: one soft-MMU fault runs some 400 64-byte lines of code. Laid out in link order across the
 * library's 210 KiB of text, it took about 10% longer in the rounds of one hour (docs/figures.md,
 * stop 45, which also has later rounds where one of two rows did not gain), and which of its lines
 * met in the same L1i sets moved with edits: flattening one walk (on the path itself) took
 * callgrind's simulated 32 KiB L1i from 4 misses a fault to 20, and the fault from 311 ns to 332.
 * Grouped, the set lies in about 50 KiB. Only where code lies changes, and GCC weighs calls from
 * these functions as hot; no behaviour.
 *
 * The set is the one measured, not a closed list: a few small functions run on every fault are
 * not in it (the vCPU's exit loop, vcpu_access_slow_body; mmu_fault_begin; paging_mode_of), and
 * vcpu_access_entering, which runs only when a vCPU changes threads, is. Marking those too made
 * the #PF 10-20 ns slower in alternated rounds (the layout moved again). A function added here
 * is measured with bench_shadow -f and bench_tdp before and after.
 */
#ifndef VMMU_HOT_H
#define VMMU_HOT_H

#define VMMU_HOT __attribute__((hot))

#endif
