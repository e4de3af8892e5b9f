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
 * accesses happen before the end of the next grace period. Nested sections only count: most are
 * (a host page lookup inside a fault's memslot section), and liburcu-bp's calls and its TLS
 * lookup cost a guest-memory read more than the lock they replace. */
extern __thread unsigned vmmu_rcu_depth __attribute__((tls_model("initial-exec")));
void vmmu_rcu_read_lock_outer(void);
void vmmu_rcu_read_unlock_outer(void);

static inline void vmmu_rcu_read_lock(void)
{
	if (vmmu_rcu_depth++ == 0)
		vmmu_rcu_read_lock_outer();
}

static inline void vmmu_rcu_read_unlock(void)
{
	if (--vmmu_rcu_depth == 0)
		vmmu_rcu_read_unlock_outer();
}
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
