/* SPDX-License-Identifier: MIT */
/*
 * hot.h: VMMU_HOT marks the functions of the access and fault paths (a TLB miss, the walkers,
 * an exit and its handler in each MMU, the memslot and host look-ups under them), so that the
 * compiler places them together (.text.hot) instead of in link order.
 *
 * Why: one first-touch fault runs some 400 cache lines of code. Spread over the 250 KiB of the
 * library's text, enough of them fall in the same sets of a 32 KiB, 8-way L1 instruction cache
 * that every fault misses there again; which ones, and how many, changed with every unrelated
 * edit (a simulated 32 KiB L1i, callgrind's, counted 4 misses a soft-MMU fault in one build and
 * 20 after an edit elsewhere). Grouped, they share a few tens of KiB and the count stays low. It
 * changes no behaviour: only where the code lies, and that GCC weighs these calls as hot.
 *
 * Invariant: only functions that run on every access miss or fault of some mode; a rarely run
 * function marked here takes the place of a hot one.
 */
#ifndef VMMU_HOT_H
#define VMMU_HOT_H

#define VMMU_HOT __attribute__((hot))

#endif
