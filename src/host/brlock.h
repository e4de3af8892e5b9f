/* SPDX-License-Identifier: MIT */
/*
 * brlock.h: a reader-writer lock whose readers share no cache line (a "big-reader" lock, as
 * Linux's percpu_rw_semaphore), for the locks every vCPU thread takes shared on its hot paths:
 * the MMU's mmu_lock (every fault) and the host mm's lock (the software walks' A/D swaps, and
 * their loads the lockless path refuses: host_hva_peek_word). A
 * pthread rwlock keeps its readers in one word: every shared take and release by every vCPU
 * thread is a locked write to that one line, and with two vCPU threads faulting under the shared
 * lock those moves between cores were a third of the fault path's time (docs/locking.md).
 *
 * Protocol. A reader adds 1 to its thread's shard's count, then reads writer: 0, it holds the
 * lock; else it takes its 1 back and waits on wmutex, which the writer holds throughout. A writer
 * takes wmutex, stores its thread's tag in writer, then waits for every shard's count to be 0.
 * Both sides store, then load the other's word, all sequentially consistent: one of the two sees
 * the other (Dekker), so a reader and a writer are never inside together. A reader's release (its
 * count's decrement) is a release the writer's load acquires; the writer's release (writer = 0,
 * then wmutex) is what the next reader's load of writer acquires.
 *
 * Rules. Writers come first: a pending writer turns new readers away, so a thread must not take a
 * read lock of a class it already holds one of (it would wait behind a writer that waits for it);
 * an assertion enforces it (per class: a thread may hold the mm's lock and an MMU's, in that
 * order). brlock_unlock releases either hold: the writer is the thread whose tag is in writer.
 */
#ifndef VMMU_HOST_BRLOCK_H
#define VMMU_HOST_BRLOCK_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define BRLOCK_SHARDS 8

enum brlock_class { BRLOCK_MM, BRLOCK_MMU, BRLOCK_CLASSES };

struct brlock {
	uintptr_t writer;                 /* [a] the holder's tag (brlock_tag), 0 if none */
	unsigned cls;                     /* [c] enum brlock_class */
	pthread_mutex_t wmutex;           /* held by the writer, waited on by turned-away readers */
	struct {
		long readers;             /* [a] read holds of the threads of this shard */
	} __attribute__((aligned(64))) shard[BRLOCK_SHARDS];
};

int brlock_init(struct brlock *l, enum brlock_class cls);
void brlock_destroy(struct brlock *l);
void brlock_read_slow(struct brlock *l);
void brlock_write(struct brlock *l);
bool brlock_write_trylock(struct brlock *l);
void brlock_write_unlock(struct brlock *l);

/* This thread's shard (given out round robin at first use), tag and read holds per class. */
extern __thread unsigned brlock_shard_tls __attribute__((tls_model("initial-exec")));
extern __thread char brlock_tag_var __attribute__((tls_model("initial-exec")));
extern __thread unsigned brlock_depth[BRLOCK_CLASSES] __attribute__((tls_model("initial-exec")));
unsigned brlock_shard_new(void);

static inline unsigned brlock_shard(void)
{
	unsigned s = brlock_shard_tls;

	return s ? s - 1 : brlock_shard_new();
}

static inline uintptr_t brlock_tag(void)
{
	return (uintptr_t)&brlock_tag_var;
}

static inline bool brlock_read_trylock(struct brlock *l)
{
	long *n = &l->shard[brlock_shard()].readers;

	assert(brlock_depth[l->cls] == 0);
	__atomic_add_fetch(n, 1, __ATOMIC_SEQ_CST);
	if (__builtin_expect(__atomic_load_n(&l->writer, __ATOMIC_SEQ_CST) == 0, 1)) {
		brlock_depth[l->cls]++;
		return true;
	}
	__atomic_sub_fetch(n, 1, __ATOMIC_RELEASE);
	return false;
}

static inline void brlock_read(struct brlock *l)
{
	if (!brlock_read_trylock(l))
		brlock_read_slow(l);
}

static inline void brlock_read_unlock(struct brlock *l)
{
	brlock_depth[l->cls]--;
	__atomic_sub_fetch(&l->shard[brlock_shard()].readers, 1, __ATOMIC_RELEASE);
}

static inline void brlock_unlock(struct brlock *l)
{
	if (__atomic_load_n(&l->writer, __ATOMIC_RELAXED) == brlock_tag())
		brlock_write_unlock(l);
	else
		brlock_read_unlock(l);
}

#endif
