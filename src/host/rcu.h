/* SPDX-License-Identifier: MIT */
/*
 * rcu.h: the project's one RCU flavour, liburcu-bp, behind a few calls that add what
 * ThreadSanitizer cannot see (urcu-bp orders readers and grace periods with barriers and
 * membarrier, invisible to TSan).
 *
 * Who uses it: the memslot arrays (src/mem), the MMUs' table frames with their shadow_page /
 * tdp_page (src/mmu), and the host page table's nodes (src/host/mm.c, whose lookups are lockless).
 * A read section protects all of them at once and nests.
 *
 * Rules: never wait for a grace period (vmmu_synchronize_rcu, vmmu_rcu_barrier) inside a read
 * section or holding a lock a reader may wait for; a call_rcu callback begins with
 * vmmu_rcu_callback_begin() and ends with vmmu_rcu_callback_end().
 */
#ifndef VMMU_HOST_RCU_H
#define VMMU_HOST_RCU_H

struct rcu_head;

/* Enter / leave a read section (rcu_read_lock / rcu_read_unlock). Under TSan the section's
 * accesses happen before the end of the next grace period. */
void vmmu_rcu_read_lock(void);
void vmmu_rcu_read_unlock(void);
/* synchronize_rcu(): every read section that began before has ended. Never inside one. */
void vmmu_synchronize_rcu(void);
/* call_rcu(): what the caller did before happens before @fn runs; @fn runs after every read
 * section that began before. @fn must call vmmu_rcu_callback_begin() first and
 * vmmu_rcu_callback_end() last. */
void vmmu_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *head));
void vmmu_rcu_callback_begin(struct rcu_head *head);
void vmmu_rcu_callback_end(void);
/* rcu_barrier(): every callback queued before has run, and what it did happens before the return. */
void vmmu_rcu_barrier(void);

#endif
