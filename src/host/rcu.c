/* SPDX-License-Identifier: MIT */
/*
 * rcu.c: liburcu-bp with the ThreadSanitizer annotations (rcu.h). Two sync objects stand for
 * what urcu-bp's barriers order: every read section releases into the grace-period object and
 * every grace period (synchronize_rcu, or a callback's start) acquires from it; every callback
 * releases into the callbacks-done object when it ends, and rcu_barrier acquires from it.
 * Stateless otherwise: liburcu-bp keeps the readers' registry. An outermost read section runs
 * liburcu-bp's read side inline (below), its reader pointer reached in the default TLS model:
 * initial-exec into another library's TLS would make a dlopen() of libvmmu fail wherever
 * liburcu-bp's block is already dynamic (another plugin loaded it first).
 */
#include <assert.h>

#include "sanitize.h"

/* The read side inline: liburcu-bp's header marks _urcu_bp_read_lock and _urcu_bp_read_unlock as
 * within LGPL's ten-line allowance for non-LGPL code. Each call and its TLS lookup cost more than
 * the section they open (three outermost sections a soft-MMU fault). Not in a sanitizer build
 * (VMMU_SANITIZE): under TSan a reader slot of a thread that ended is handed to a new
 * one inside the library, which TSan does not see, so the inline counter's accesses would look
 * like a race; under UBSan the header's reader struct is 128-byte aligned and the library's
 * slots are not. */
#ifndef VMMU_SANITIZE
#define VMMU_RCU_INLINE 1
#define _LGPL_SOURCE
#endif
#include <urcu-bp.h>

#include "host/rcu.h"

#ifdef VMMU_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
/* Sync object: every read section releases into it, every grace period acquires from it. */
static char tsan_grace_period;
/* Every call_rcu callback releases into it when it ends; rcu_barrier acquires from it. */
static char tsan_callbacks_done;
#endif

__thread unsigned vmmu_rcu_depth __attribute__((tls_model("initial-exec")));

void vmmu_rcu_read_lock_outer(void)
{
	rcu_read_lock();
}

void vmmu_rcu_read_unlock_outer(void)
{
#ifdef VMMU_TSAN
	__tsan_release(&tsan_grace_period);
#endif
	rcu_read_unlock();
}

void vmmu_synchronize_rcu(void)
{
	/* Inside a read section this would wait for itself. */
	assert(vmmu_rcu_depth == 0);
	synchronize_rcu();
#ifdef VMMU_TSAN
	__tsan_acquire(&tsan_grace_period);
#endif
}

void vmmu_call_rcu(struct rcu_head *head, void (*fn)(struct rcu_head *head))
{
#ifdef VMMU_TSAN
	__tsan_release(head);
#endif
	call_rcu(head, fn);
}

void vmmu_rcu_callback_begin(struct rcu_head *head)
{
#ifdef VMMU_TSAN
	__tsan_acquire(head);
	__tsan_acquire(&tsan_grace_period);
#endif
	(void)head;
}

void vmmu_rcu_callback_end(void)
{
#ifdef VMMU_TSAN
	__tsan_release(&tsan_callbacks_done);
#endif
}

void vmmu_rcu_barrier(void)
{
	assert(vmmu_rcu_depth == 0);
	rcu_barrier();
#ifdef VMMU_TSAN
	__tsan_acquire(&tsan_callbacks_done);
#endif
}
