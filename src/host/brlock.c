/* SPDX-License-Identifier: MIT */
/* brlock.c: the slow paths of the big-reader lock (brlock.h: the protocol and its rules). */
#include <sched.h>
#include <string.h>

#include "host/brlock.h"

__thread unsigned brlock_shard_tls __attribute__((tls_model("initial-exec")));
__thread char brlock_tag_var __attribute__((tls_model("initial-exec")));
__thread unsigned brlock_depth[BRLOCK_CLASSES] __attribute__((tls_model("initial-exec")));

unsigned brlock_shard_new(void)
{
	static unsigned next;
	unsigned s = __atomic_fetch_add(&next, 1, __ATOMIC_RELAXED) % BRLOCK_SHARDS;

	brlock_shard_tls = s + 1;
	return s;
}

int brlock_init(struct brlock *l, enum brlock_class cls)
{
	memset(l, 0, sizeof(*l));
	l->cls = cls;
	return -pthread_mutex_init(&l->wmutex, NULL);
}

void brlock_destroy(struct brlock *l)
{
	pthread_mutex_destroy(&l->wmutex);
}

void brlock_read_slow(struct brlock *l)
{
	do {
		/* The writer holds wmutex until it has released the lock. */
		pthread_mutex_lock(&l->wmutex);
		pthread_mutex_unlock(&l->wmutex);
	} while (!brlock_read_trylock(l));
}

/* Nonzero if some reader holds @l; with @wait, spin until none does. Readers hold the lock for a
 * short step (one fault's install, one page-walk read): spin a little, then let the holder's
 * thread run (two cores, and more vCPU threads than cores). */
static bool readers_held(struct brlock *l, bool wait)
{
	for (unsigned i = 0; i < BRLOCK_SHARDS; i++)
		for (unsigned spins = 0; __atomic_load_n(&l->shard[i].readers, __ATOMIC_SEQ_CST); spins++) {
			if (!wait)
				return true;
			if (spins > 64)
				sched_yield();
			else
				__builtin_ia32_pause();
		}
	return false;
}

void brlock_write(struct brlock *l)
{
	pthread_mutex_lock(&l->wmutex);
	__atomic_store_n(&l->writer, brlock_tag(), __ATOMIC_SEQ_CST);
	readers_held(l, true);
}

bool brlock_write_trylock(struct brlock *l)
{
	if (pthread_mutex_trylock(&l->wmutex))
		return false;
	__atomic_store_n(&l->writer, brlock_tag(), __ATOMIC_SEQ_CST);
	if (!readers_held(l, false))
		return true;
	brlock_write_unlock(l);
	return false;
}

void brlock_write_unlock(struct brlock *l)
{
	__atomic_store_n(&l->writer, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->wmutex);
}
