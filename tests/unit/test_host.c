/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of host/: the buddy allocator over the frame arena, the modelled address space
 * (VMAs, first-touch faults, THP, munmap with splitting), MMU notifiers and young bits, RSS
 * accounting against the real process, and concurrent faults.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "host/host.h"
#include "host/pool.h"
#include "sanitize.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)
#define PAGE HOST_PAGE_SIZE
#define SZ_2M (2 * MiB)

static struct host_arena *arena_new(uint64_t bytes)
{
	struct host_arena *a = NULL;

	assert_int_equal(host_arena_create(bytes, &a), 0);
	assert_non_null(a);
	return a;
}

static struct host_mm *mm_new(struct host_arena *a, enum host_thp thp)
{
	struct host_mm *mm = NULL;

	assert_int_equal(host_mm_create(a, thp, &mm), 0);
	assert_non_null(mm);
	return mm;
}

static hva_t map(struct host_mm *mm, hva_t hint, uint64_t len, unsigned flags)
{
	hva_t hva = 0;

	assert_int_equal(host_mmap(mm, hint, len, flags, &hva), 0);
	if (hint)
		assert_int_equal(hva, hint);
	return hva;
}

static pfn_t touch(struct host_mm *mm, hva_t hva, bool *huge)
{
	pfn_t pfn = ~0ULL;

	assert_int_equal(host_hva_to_pfn(mm, hva, true, &pfn, huge), 0);
	return pfn;
}

/* A deterministic generator for shuffles, so a failure repeats. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void shuffle(pfn_t *v, size_t n, uint64_t seed)
{
	for (size_t i = n - 1; i > 0; i--) {
		size_t j = rng_next(&seed) % (i + 1);
		pfn_t t = v[i];

		v[i] = v[j];
		v[j] = t;
	}
}

/* Resident bytes of this process, as the kernel counts them. */
static uint64_t rss_bytes(void)
{
	unsigned long size = 0, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	assert_non_null(f);
	assert_int_equal(fscanf(f, "%lu %lu", &size, &resident), 2);
	fclose(f);
	return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static bool all_zero(const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* ---- arena and buddy allocator ---- */

static void test_arena_args(void **state)
{
	struct host_arena *a = NULL;
	pfn_t pfn;

	(void)state;
	assert_int_equal(host_arena_create(0, &a), -EINVAL);
	assert_int_equal(host_arena_create(GiB, NULL), -EINVAL);
	/* 2^32 frames would not fit the 32-bit free-list links. */
	assert_int_equal(host_arena_create(16384 * GiB, &a), -EINVAL);

	a = arena_new(1);   /* rounded up to 1 GiB */
	assert_int_equal(host_arena_frames(a), GiB / PAGE);
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_int_equal(host_frame_alloc(a, HOST_MAX_ORDER + 1, &pfn), -EINVAL);
	assert_int_equal(host_frame_alloc(a, 0, NULL), -EINVAL);
	assert_int_equal(host_frame_alloc(NULL, 0, &pfn), -EINVAL);
	assert_null(host_pfn_to_ptr(a, GiB / PAGE));
	assert_false(host_pfn_valid(a, 0));                 /* free */
	assert_false(host_pfn_valid(a, GiB / PAGE));        /* outside */
	assert_int_equal(host_frame_refcount(a, 0), 0);
	host_arena_destroy(a);
	host_arena_destroy(NULL);
}

static void test_buddy_orders_aligned(void **state)
{
	struct host_arena *a = arena_new(2 * GiB);

	(void)state;
	for (unsigned order = 0; order <= HOST_MAX_ORDER; order++) {
		uint64_t n = 1ULL << order;
		pfn_t pfn;
		unsigned char *p;

		assert_int_equal(host_frame_alloc(a, order, &pfn), 0);
		assert_int_equal(pfn % n, 0);
		assert_int_equal(host_arena_frames_used(a), n);
		assert_int_equal(host_frame_refcount(a, pfn), 1);
		assert_true(host_pfn_valid(a, pfn));
		assert_true(host_pfn_valid(a, pfn + n - 1));
		p = host_pfn_to_ptr(a, pfn);
		p[0] = 1;
		p[n * PAGE - 1] = 2;
		host_frame_put(a, pfn, order);
		assert_int_equal(host_arena_frames_used(a), 0);
		assert_false(host_pfn_valid(a, pfn));
	}

	/* Blocks of all three sizes at once: each aligned, none overlapping. */
	pfn_t f4k, f2m, f1g;

	assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &f4k), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_2M, &f2m), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &f1g), 0);
	assert_int_equal(f2m % 512, 0);
	assert_int_equal(f1g % (1u << 18), 0);
	assert_true(f4k < f2m || f4k >= f2m + 512);
	assert_true(f1g + (1u << 18) <= f2m || f1g >= f2m + 512);
	assert_true(f1g + (1u << 18) <= f4k || f1g > f4k);
	assert_int_equal(host_arena_frames_used(a), 1 + 512 + (1u << 18));
	host_frame_put(a, f1g, HOST_ORDER_1G);
	host_frame_put(a, f2m, HOST_ORDER_2M);
	host_frame_put(a, f4k, HOST_ORDER_4K);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

static void test_buddy_exhaust(void **state)
{
	struct host_arena *a = arena_new(GiB);
	pfn_t big, pfn, blocks[512];

	(void)state;
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &big), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &pfn), -ENOMEM);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &pfn), -ENOMEM);
	host_frame_put(a, big, HOST_ORDER_1G);

	for (int i = 0; i < 512; i++) {
		assert_int_equal(host_frame_alloc(a, HOST_ORDER_2M, &blocks[i]), 0);
		assert_int_equal(blocks[i] % 512, 0);
		for (int j = 0; j < i; j++)
			assert_true(blocks[i] != blocks[j]);
	}
	assert_int_equal(host_arena_frames_used(a), host_arena_frames(a));
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_2M, &pfn), -ENOMEM);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &pfn), -ENOMEM);
	shuffle(blocks, 512, 42);
	for (int i = 0; i < 512; i++)
		host_frame_put(a, blocks[i], HOST_ORDER_2M);
	assert_int_equal(host_arena_frames_used(a), 0);
	/* Only a full merge gives the 1G block back. */
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &big), 0);
	host_frame_put(a, big, HOST_ORDER_1G);
	host_arena_destroy(a);
}

static void test_buddy_merge_back(void **state)
{
	enum { N = 8192 };
	struct host_arena *a = arena_new(2 * GiB);
	pfn_t *pfns = malloc(N * sizeof(*pfns));
	unsigned *orders = malloc(N * sizeof(*orders));
	pfn_t g1, g2;
	uint64_t seed = 7, used = 0;

	(void)state;
	assert_non_null(pfns);
	assert_non_null(orders);
	/* Mixed orders, freed in random order: the arena must merge back into two 1G blocks. */
	for (int i = 0; i < N; i++) {
		orders[i] = rng_next(&seed) % 4 == 0 ? (unsigned)(rng_next(&seed) % 10) : 0;
		assert_int_equal(host_frame_alloc(a, orders[i], &pfns[i]), 0);
		used += 1ULL << orders[i];
	}
	assert_int_equal(host_arena_frames_used(a), used);
	for (int i = N - 1; i > 0; i--) {
		int j = (int)(rng_next(&seed) % (uint64_t)(i + 1));
		pfn_t tp = pfns[i];
		unsigned to = orders[i];

		pfns[i] = pfns[j];
		orders[i] = orders[j];
		pfns[j] = tp;
		orders[j] = to;
	}
	for (int i = 0; i < N; i++)
		host_frame_put(a, pfns[i], orders[i]);
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &g1), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &g2), 0);
	assert_int_equal(host_arena_frames_used(a), host_arena_frames(a));
	host_frame_put(a, g1, HOST_ORDER_1G);
	host_frame_put(a, g2, HOST_ORDER_1G);
	free(pfns);
	free(orders);
	host_arena_destroy(a);
}

static void test_frame_split(void **state)
{
	struct host_arena *a = arena_new(GiB);
	pfn_t head, big;

	(void)state;
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_2M, &head), 0);
	for (unsigned i = 0; i < 512; i++)
		*(uint32_t *)host_pfn_to_ptr(a, head + i) = 0xc0de0000u + i;
	/* A tail frame stands for its block until the split. */
	host_frame_get(a, head + 5);
	assert_int_equal(host_frame_refcount(a, head), 2);
	assert_int_equal(host_frame_refcount(a, head + 511), 2);

	host_frame_split(a, head, HOST_ORDER_2M);
	assert_int_equal(host_arena_frames_used(a), 512);
	for (unsigned i = 0; i < 512; i++) {
		assert_int_equal(host_frame_refcount(a, head + i), 2);
		assert_int_equal(*(uint32_t *)host_pfn_to_ptr(a, head + i), 0xc0de0000u + i);
		host_frame_put(a, head + i, 0);
	}
	/* One reference each left; free the low half, the high half keeps its bytes. */
	for (unsigned i = 0; i < 256; i++)
		host_frame_put(a, head + i, 0);
	assert_int_equal(host_arena_frames_used(a), 256);
	for (unsigned i = 0; i < 512; i++)
		assert_int_equal(host_pfn_valid(a, head + i), i >= 256);
	for (unsigned i = 256; i < 512; i++) {
		assert_int_equal(*(uint32_t *)host_pfn_to_ptr(a, head + i), 0xc0de0000u + i);
		host_frame_put(a, head + i, 0);
	}
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &big), 0);
	host_frame_put(a, big, HOST_ORDER_1G);
	host_arena_destroy(a);
}

static void test_frame_refcount(void **state)
{
	struct host_arena *a = arena_new(GiB);
	pfn_t pfn;

	(void)state;
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &pfn), 0);
	assert_int_equal(host_frame_refcount(a, pfn), 1);
	host_frame_get(a, pfn);
	host_frame_get(a, pfn);
	assert_int_equal(host_frame_refcount(a, pfn), 3);
	host_frame_put(a, pfn, 0);
	host_frame_put(a, pfn, 0);
	assert_int_equal(host_frame_refcount(a, pfn), 1);
	assert_true(host_pfn_valid(a, pfn));
	assert_int_equal(host_arena_frames_used(a), 1);
	host_frame_put(a, pfn, 0);
	assert_int_equal(host_frame_refcount(a, pfn), 0);
	assert_false(host_pfn_valid(a, pfn));
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

static void test_frame_zeroed_after_dirty_free(void **state)
{
	struct host_arena *a = arena_new(GiB);
	pfn_t pfn, again;

	(void)state;
	for (unsigned order = 0; order <= HOST_ORDER_2M; order += HOST_ORDER_2M) {
		size_t len = PAGE << order;

		assert_int_equal(host_frame_alloc(a, order, &pfn), 0);
		memset(host_pfn_to_ptr(a, pfn), 0xa5, len);
		host_frame_put(a, pfn, order);
		assert_int_equal(host_frame_alloc(a, order, &again), 0);
		/* The same bytes come back, so the test sees what a dirty free left. */
		assert_int_equal(again, pfn);
		assert_true(all_zero(host_pfn_to_ptr(a, again), len));
		host_frame_put(a, again, order);
	}
	host_arena_destroy(a);
}

/* Whether the 4K page at @p is resident in this process. */
static bool resident(const void *p)
{
	unsigned char v = 0;

	assert_int_equal(mincore((void *)((uintptr_t)p & ~(uintptr_t)(PAGE - 1)), PAGE, &v), 0);
	return v & 1;
}

/*
 * A retired 4K frame (an MMU table freed after a grace period) is zeroed in place and stays
 * resident: no madvise, whose TLB shootdown would interrupt every CPU running a vCPU thread. A
 * frame put the ordinary way gives its memory back to the kernel. Both come back zero.
 */
static void test_frame_retired_zeroed_in_place(void **state)
{
	struct host_arena *a = arena_new(GiB);
	pfn_t pfn, again;

	(void)state;
	for (int retired = 1; retired >= 0; retired--) {
		assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &pfn), 0);
		memset(host_pfn_to_ptr(a, pfn), 0x5a, PAGE);
		if (retired) {
			host_frame_retire(a, pfn, HOST_ORDER_4K);
			assert_int_equal(host_arena_frames_used(a), 0);
			host_frame_put_retired(a, pfn, HOST_ORDER_4K);
		} else {
			host_frame_put(a, pfn, HOST_ORDER_4K);
		}
		assert_int_equal(host_arena_frames_used(a), 0);
		assert_false(host_pfn_valid(a, pfn));
		/* Before anything reads it: a read makes a page resident where no zero page is mapped. */
		assert_int_equal(resident(host_pfn_to_ptr(a, pfn)), retired);
		assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &again), 0);
		assert_int_equal(again, pfn);
		assert_true(all_zero(host_pfn_to_ptr(a, again), PAGE));
		host_frame_put(a, again, HOST_ORDER_4K);
	}
	host_arena_destroy(a);
}

/* ---- address space ---- */

static void test_mmap_args(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = NULL;
	hva_t hva, h1, h2;

	(void)state;
	assert_int_equal(host_mm_create(NULL, HOST_THP_NEVER, &mm), -EINVAL);
	assert_int_equal(host_mm_create(a, (enum host_thp)7, &mm), -EINVAL);
	assert_int_equal(host_mm_create(a, HOST_THP_NEVER, NULL), -EINVAL);
	mm = mm_new(a, HOST_THP_NEVER);
	assert_ptr_equal(host_mm_arena(mm), a);

	assert_int_equal(host_mmap(mm, 0x10000, 0, 0, &hva), -EINVAL);
	assert_int_equal(host_mmap(mm, 0x10001, PAGE, 0, &hva), -EINVAL);
	assert_int_equal(host_mmap(mm, 0x10000, PAGE, 1u << 5, &hva), -EINVAL);
	assert_int_equal(host_mmap(mm, 0x10000, PAGE, 0, NULL), -EINVAL);
	assert_int_equal(host_mmap(mm, 1ULL << 47, PAGE, 0, &hva), -EINVAL);
	assert_int_equal(host_mmap(mm, (1ULL << 47) - PAGE, 2 * PAGE, 0, &hva), -EINVAL);
	assert_int_equal(host_mmap(NULL, 0, PAGE, 0, &hva), -EINVAL);

	/* len is rounded up to a page, as mmap(2) does. */
	map(mm, 0x10000, 100, 0);
	assert_int_equal(host_mmap(mm, 0x10000, PAGE, 0, &hva), -EEXIST);
	map(mm, 0x11000, PAGE, 0);
	assert_int_equal(host_mmap(mm, 0x8000, 0x9000, 0, &hva), -EEXIST);   /* overlaps the tail */
	assert_int_equal(host_mmap(mm, 0x11000, 0x9000, 0, &hva), -EEXIST);
	map(mm, 0x8000, 0x8000, 0);                                            /* fits exactly */

	/* hint 0: disjoint ranges, 2M-aligned once THP could use them. */
	h1 = map(mm, 0, 4 * MiB + PAGE, 0);
	h2 = map(mm, 0, 4 * MiB, 0);
	assert_int_equal(h1 % SZ_2M, 0);
	assert_int_equal(h2 % SZ_2M, 0);
	assert_true(h1 + 4 * MiB + PAGE <= h2 || h2 + 4 * MiB <= h1);
	assert_int_equal(host_mmap(mm, h1 + 4 * MiB, PAGE, 0, &hva), -EEXIST);
	hva = map(mm, 0, PAGE, 0);
	assert_int_equal(hva % PAGE, 0);
	assert_true(hva >= 0x1000 && hva < (1ULL << 47));

	assert_int_equal(host_munmap(mm, h1 + 1, PAGE), -EINVAL);
	assert_int_equal(host_munmap(mm, h1, 0), -EINVAL);
	assert_int_equal(host_munmap(mm, 0, PAGE), -EINVAL);
	assert_int_equal(host_munmap(mm, (1ULL << 47) - PAGE, 2 * PAGE), -EINVAL);
	assert_int_equal(host_munmap(NULL, h1, PAGE), -EINVAL);
	assert_int_equal(host_munmap(mm, 0x200000000ULL, PAGE), 0);            /* no VMA: nothing */

	/* Punch a hole in the middle of a VMA: both sides stay, the hole can be mapped again. */
	assert_int_equal(host_munmap(mm, h1 + MiB, MiB), 0);
	assert_int_equal(host_mmap(mm, h1 + MiB - PAGE, PAGE, 0, &hva), -EEXIST);
	assert_int_equal(host_mmap(mm, h1 + 2 * MiB, PAGE, 0, &hva), -EEXIST);
	map(mm, h1 + MiB, MiB, 0);
	/* One munmap over several VMAs and the gaps between them. */
	assert_int_equal(host_munmap(mm, 0x8000, 0x10000), 0);
	map(mm, 0x8000, 0x10000, 0);

	host_mm_destroy(mm);
	host_arena_destroy(a);
}

static void test_fault_in_once(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	hva_t base = map(mm, 0x10000000, MiB, 0);
	pfn_t pfn, again, other, seen;
	bool huge = true;

	(void)state;
	assert_int_equal(host_hva_lookup(mm, base + 0x123, &seen, NULL), -ENOENT);
	pfn = touch(mm, base + 0x123, &huge);
	assert_false(huge);
	assert_true(host_pfn_valid(a, pfn));
	assert_int_equal(host_mm_rss_pages(mm), 1);
	assert_int_equal(host_arena_frames_used(a), 1);
	assert_true(all_zero(host_pfn_to_ptr(a, pfn), PAGE));
	strcpy(host_pfn_to_ptr(a, pfn), "hello");

	again = touch(mm, base + 0xff8, NULL);
	assert_int_equal(again, pfn);
	assert_int_equal(host_hva_lookup(mm, base, &seen, &huge), 0);
	assert_int_equal(seen, pfn);
	assert_false(huge);
	assert_int_equal(host_mm_rss_pages(mm), 1);
	assert_string_equal(host_pfn_to_ptr(a, touch(mm, base, NULL)), "hello");

	other = touch(mm, base + PAGE, NULL);
	assert_true(other != pfn);
	assert_int_equal(host_mm_rss_pages(mm), 2);
	assert_int_equal(host_arena_frames_used(a), 2);
	assert_int_equal(host_hva_to_pfn(mm, base, false, NULL, NULL), -EINVAL);
	assert_int_equal(host_hva_lookup(mm, base, NULL, NULL), -EINVAL);

	host_mm_destroy(mm);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

static void test_efault_outside_vmas(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_ALWAYS);
	hva_t base = map(mm, 0x40000000, 4 * MiB, 0);
	pfn_t pfn;

	(void)state;
	assert_int_equal(host_hva_to_pfn(mm, base - 1, true, &pfn, NULL), -EFAULT);
	assert_int_equal(host_hva_to_pfn(mm, base + 4 * MiB, true, &pfn, NULL), -EFAULT);
	assert_int_equal(host_hva_to_pfn(mm, 0, true, &pfn, NULL), -EFAULT);
	assert_int_equal(host_hva_to_pfn(mm, 1ULL << 47, true, &pfn, NULL), -EFAULT);
	assert_int_equal(host_hva_to_pfn(mm, UINT64_MAX, true, &pfn, NULL), -EFAULT);
	assert_int_equal(host_hva_lookup(mm, UINT64_MAX, &pfn, NULL), -ENOENT);
	touch(mm, base, NULL);
	touch(mm, base + 3 * MiB, NULL);
	assert_int_equal(host_munmap(mm, base, 4 * MiB), 0);
	assert_int_equal(host_hva_to_pfn(mm, base, true, &pfn, NULL), -EFAULT);
	assert_int_equal(host_hva_to_pfn(mm, base + 3 * MiB, true, &pfn, NULL), -EFAULT);
	assert_int_equal(host_mm_rss_pages(mm), 0);
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_int_equal(host_hva_to_pfn(mm, base, true, &pfn, NULL), -EFAULT);
	host_mm_destroy(mm);
	host_arena_destroy(a);
}

/* Fault @hva of a fresh VMA [@hint, @hint + @len) and say whether a 2M page backs it. */
static bool thp_backed(struct host_mm *mm, hva_t hint, uint64_t len, unsigned flags, hva_t off)
{
	bool huge = false;
	hva_t base = map(mm, hint, len, flags);

	touch(mm, base + off, &huge);
	return huge;
}

static void test_thp_policy(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_ALWAYS);
	hva_t base;
	pfn_t pfn, next;
	bool huge = false;

	(void)state;
	base = map(mm, 0, 4 * MiB, 0);
	pfn = touch(mm, base + 3 * PAGE + 17, &huge);
	assert_true(huge);
	assert_int_equal(pfn % 512, 3);
	assert_int_equal(host_arena_frames_used(a), 512);
	assert_int_equal(host_mm_rss_pages(mm), 512);
	assert_true(all_zero(host_pfn_to_ptr(a, pfn - 3), SZ_2M));
	next = touch(mm, base + 7 * PAGE, &huge);
	assert_true(huge);
	assert_int_equal(next, pfn + 4);
	assert_int_equal(host_arena_frames_used(a), 512);
	assert_int_equal(host_hva_lookup(mm, base + SZ_2M - 1, &next, &huge), 0);
	assert_int_equal(next, pfn - 3 + 511);
	assert_true(huge);

	assert_false(thp_backed(mm, 0, MiB, 0, 0));                         /* too small */
	assert_false(thp_backed(mm, 0x80000000 + PAGE, SZ_2M, 0, 0));       /* not aligned */
	assert_false(thp_backed(mm, 0x90000000 + PAGE, SZ_2M + PAGE, 0, SZ_2M - PAGE));
	assert_true(thp_backed(mm, 0xa0000000 - PAGE, SZ_2M + 2 * PAGE, 0, 2 * PAGE));
	host_mm_destroy(mm);

	mm = mm_new(a, HOST_THP_MADVISE);
	assert_false(thp_backed(mm, 0, 4 * MiB, 0, 0));
	assert_true(thp_backed(mm, 0, 4 * MiB, HOST_VMA_HUGEPAGE, 0));
	host_mm_destroy(mm);

	mm = mm_new(a, HOST_THP_NEVER);
	assert_false(thp_backed(mm, 0, 4 * MiB, HOST_VMA_HUGEPAGE, 0));
	host_mm_destroy(mm);

	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

static void test_thp_fallback_to_4k(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_ALWAYS);
	pfn_t blocks[511], small;
	hva_t base = map(mm, 0, 4 * MiB, 0);
	bool huge = true;

	(void)state;
	/* Leave no 2M block free: 511 taken, the last one broken by a 4K frame. */
	for (int i = 0; i < 511; i++)
		assert_int_equal(host_frame_alloc(a, HOST_ORDER_2M, &blocks[i]), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &small), 0);
	touch(mm, base, &huge);
	assert_false(huge);
	assert_int_equal(host_mm_rss_pages(mm), 1);
	host_mm_destroy(mm);
	for (int i = 0; i < 511; i++)
		host_frame_put(a, blocks[i], HOST_ORDER_2M);
	host_frame_put(a, small, HOST_ORDER_4K);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

static void fill_pages(struct host_arena *a, pfn_t head, unsigned n, uint32_t tag)
{
	for (unsigned i = 0; i < n; i++) {
		unsigned char *p = host_pfn_to_ptr(a, head + i);

		*(uint32_t *)p = tag + i;
		p[PAGE - 1] = (unsigned char)i;
	}
}

static bool page_holds(struct host_arena *a, pfn_t pfn, uint32_t tag, unsigned i)
{
	unsigned char *p = host_pfn_to_ptr(a, pfn);

	return *(uint32_t *)p == tag + i && p[PAGE - 1] == (unsigned char)i;
}

static void test_partial_munmap_splits_thp(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_ALWAYS);
	hva_t base = map(mm, 0, 4 * MiB, 0);
	pfn_t h0, h1, pfn, big;
	bool huge = true;

	(void)state;
	h0 = touch(mm, base, &huge);
	assert_true(huge);
	h1 = touch(mm, base + SZ_2M, &huge);
	assert_true(huge);
	fill_pages(a, h0, 512, 0x1000);
	fill_pages(a, h1, 512, 0x2000);

	/* One page out of the first 2M mapping. */
	assert_int_equal(host_munmap(mm, base + 10 * PAGE, PAGE), 0);
	assert_int_equal(host_arena_frames_used(a), 1023);
	assert_int_equal(host_mm_rss_pages(mm), 1023);
	assert_int_equal(host_hva_to_pfn(mm, base + 10 * PAGE, true, &pfn, NULL), -EFAULT);
	for (unsigned i = 0; i < 512; i++) {
		if (i == 10)
			continue;
		assert_int_equal(host_hva_lookup(mm, base + i * PAGE, &pfn, &huge), 0);
		assert_int_equal(pfn, h0 + i);
		assert_false(huge);
		assert_int_equal(host_frame_refcount(a, pfn), 1);
		assert_true(page_holds(a, pfn, 0x1000, i));
	}
	assert_false(host_pfn_valid(a, h0 + 10));

	/* [1M, 3M): cuts the first mapping again and splits the second. */
	assert_int_equal(host_munmap(mm, base + MiB, SZ_2M), 0);
	assert_int_equal(host_arena_frames_used(a), 255 + 256);
	assert_int_equal(host_mm_rss_pages(mm), 255 + 256);
	for (unsigned i = 0; i < 512; i++) {
		int ret = host_hva_lookup(mm, base + SZ_2M + i * PAGE, &pfn, &huge);

		if (i < 256) {
			assert_int_equal(ret, -ENOENT);
			continue;
		}
		assert_int_equal(ret, 0);
		assert_int_equal(pfn, h1 + i);
		assert_false(huge);
		assert_true(page_holds(a, pfn, 0x2000, i));
	}
	assert_true(page_holds(a, touch(mm, base, NULL), 0x1000, 0));

	assert_int_equal(host_munmap(mm, base, 4 * MiB), 0);
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_int_equal(host_mm_rss_pages(mm), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &big), 0);     /* all merged back */
	host_frame_put(a, big, HOST_ORDER_1G);
	host_mm_destroy(mm);
	host_arena_destroy(a);
}

/* hugetlbfs-like 1G backing: one touch maps the whole 1G block; a partial munmap splits it into
 * 2M mappings and the one the hole falls in into 4K ones, on the same frames (bytes kept); the
 * rest goes back whole. */
static void test_hugetlb_1g_split(void **state)
{
	struct host_arena *a = arena_new(2 * GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	const hva_t hole = 3 * MiB + 10 * PAGE;
	hva_t base = map(mm, 0, GiB - PAGE, HOST_VMA_HUGETLB_1G);  /* rounds up to 1G */
	unsigned order = 99;
	pfn_t head, pfn, big;

	(void)state;
	assert_int_equal(base & (GiB - 1), 0);
	assert_int_equal(host_hva_to_pfn_order(mm, base + 5 * PAGE, true, &pfn, &order, NULL), 0);
	assert_int_equal(order, HOST_ORDER_1G);
	head = pfn - 5;
	assert_int_equal(head & ((1ULL << HOST_ORDER_1G) - 1), 0);
	assert_int_equal(host_arena_frames_used(a), 1ULL << HOST_ORDER_1G);
	assert_int_equal(host_mm_rss_pages(mm), 1ULL << HOST_ORDER_1G);
	/* The last page of the rounded-up length is in the mapping too. */
	assert_int_equal(host_hva_lookup_order(mm, base + GiB - PAGE, &pfn, &order, NULL), 0);
	assert_int_equal(pfn, head + (1ULL << HOST_ORDER_1G) - 1);
	fill_pages(a, head + (hole >> 12) - 4, 8, 0x3000);
	fill_pages(a, head + (512 * MiB >> 12), 4, 0x4000);

	assert_int_equal(host_munmap(mm, base + hole, PAGE), 0);
	assert_int_equal(host_arena_frames_used(a), (1ULL << HOST_ORDER_1G) - 1);
	assert_int_equal(host_mm_rss_pages(mm), (1ULL << HOST_ORDER_1G) - 1);
	assert_int_equal(host_hva_lookup_order(mm, base + hole, &pfn, &order, NULL), -ENOENT);
	for (unsigned i = 0; i < 8; i++) {
		if (i == 4)
			continue;
		assert_int_equal(host_hva_lookup_order(mm, base + hole - 4 * PAGE + i * PAGE, &pfn,
						       &order, NULL), 0);
		assert_int_equal(order, HOST_ORDER_4K);
		assert_int_equal(pfn, head + (hole >> 12) - 4 + i);
		assert_true(page_holds(a, pfn, 0x3000, i));
		assert_int_equal(host_frame_refcount(a, pfn), 1);
	}
	/* The other 2M pieces stay 2M. */
	assert_int_equal(host_hva_lookup_order(mm, base + 512 * MiB + PAGE, &pfn, &order, NULL), 0);
	assert_int_equal(order, HOST_ORDER_2M);
	assert_int_equal(pfn, head + (512 * MiB >> 12) + 1);
	assert_true(page_holds(a, pfn, 0x4000, 1));
	assert_int_equal(host_hva_lookup_order(mm, base, &pfn, &order, NULL), 0);
	assert_int_equal(order, HOST_ORDER_2M);
	/* An unmap that cuts a 2M piece at both ends. */
	assert_int_equal(host_munmap(mm, base + 600 * MiB + PAGE, SZ_2M), 0);
	assert_int_equal(host_mm_rss_pages(mm), (1ULL << HOST_ORDER_1G) - 1 - 512);

	assert_int_equal(host_munmap(mm, base, GiB), 0);
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_int_equal(host_mm_rss_pages(mm), 0);
	/* Every piece merged back: both 1G blocks are free again. */
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &big), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &pfn), 0);
	host_frame_put(a, big, HOST_ORDER_1G);
	host_frame_put(a, pfn, HOST_ORDER_1G);
	host_mm_destroy(mm);
	host_arena_destroy(a);
}

/* 2M hugetlb backs with 2M pages whatever THP says; flags that make no sense are refused; a
 * hugetlb VMA too small for its page size rounds up, never down to 4K. */
static void test_hugetlb_2m(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	hva_t base = map(mm, 0, 3 * MiB, HOST_VMA_HUGETLB_2M), out;
	unsigned order = 99;
	pfn_t pfn;

	(void)state;
	assert_int_equal(base & (SZ_2M - 1), 0);
	assert_int_equal(host_hva_to_pfn_order(mm, base + 3 * MiB + PAGE, false, &pfn, &order, NULL), 0);
	assert_int_equal(order, HOST_ORDER_2M);
	assert_int_equal(host_arena_frames_used(a), 512);
	assert_int_equal(host_mmap(mm, 0, SZ_2M, HOST_VMA_HUGETLB_2M | HOST_VMA_HUGETLB_1G, &out),
			 -EINVAL);
	assert_int_equal(host_mmap(mm, 0, SZ_2M, HOST_VMA_HUGETLB_2M | HOST_VMA_MERGEABLE, &out),
			 -EINVAL);
	assert_int_equal(host_mmap(mm, base + 8 * MiB + PAGE, SZ_2M, HOST_VMA_HUGETLB_2M, &out),
			 -EINVAL);
	host_mm_destroy(mm);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

/* /proc/vmstat's THP events: a THP fault, a fallback when no 2M block is left, a split on a
 * partial munmap; hugetlb pages count in none. */
static void test_thp_counters(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_ALWAYS);
	hva_t base = map(mm, 0, 8 * MiB, 0), tlb = map(mm, 0, 4 * MiB, HOST_VMA_HUGETLB_2M);
	pfn_t blocks[512], smalls[4], pfn;
	struct host_thp_stats st;
	unsigned n = 0, nsmall = 0;
	bool huge;

	(void)state;
	touch(mm, base, &huge);
	assert_true(huge);
	touch(mm, tlb, &huge);
	assert_true(huge);
	host_mm_thp_stats(mm, &st);
	assert_int_equal(st.thp_fault_alloc, 1);
	assert_int_equal(st.thp_fault_fallback + st.thp_split_page + st.thp_collapse_alloc, 0);

	assert_int_equal(host_munmap(mm, base + PAGE, PAGE), 0);
	assert_int_equal(host_munmap(mm, tlb + PAGE, PAGE), 0);
	host_mm_thp_stats(mm, &st);
	assert_int_equal(st.thp_split_page, 1);

	/* Every 2M block taken, then one given back with a 4K frame taken from it: no 2M left. */
	while (n < 512 && host_frame_alloc(a, HOST_ORDER_2M, &blocks[n]) == 0)
		n++;
	assert_true(n > 0 && n < 512);
	host_frame_put(a, blocks[--n], HOST_ORDER_2M);
	/* The 4K frames the munmaps freed go first; then one of the block given back. */
	do
		assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &smalls[nsmall++]), 0);
	while (smalls[nsmall - 1] >> HOST_ORDER_2M != blocks[n] >> HOST_ORDER_2M && nsmall < 4);
	touch(mm, base + SZ_2M, &huge);
	assert_false(huge);
	host_mm_thp_stats(mm, &st);
	assert_int_equal(st.thp_fault_fallback, 1);
	assert_int_equal(st.thp_fault_alloc, 1);
	assert_int_equal(host_hva_lookup(mm, base + SZ_2M, &pfn, &huge), 0);
	while (nsmall)
		host_frame_put(a, smalls[--nsmall], HOST_ORDER_4K);
	while (n)
		host_frame_put(a, blocks[--n], HOST_ORDER_2M);
	host_mm_destroy(mm);
	host_arena_destroy(a);
}

static void test_munmap_then_fault_is_zero(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	hva_t base = map(mm, 0x20000000, 64 * PAGE, 0);
	pfn_t first[64];

	(void)state;
	for (int i = 0; i < 64; i++) {
		first[i] = touch(mm, base + (hva_t)i * PAGE, NULL);
		memset(host_pfn_to_ptr(a, first[i]), 0x5a, PAGE);
	}
	assert_int_equal(host_munmap(mm, base, 64 * PAGE), 0);
	map(mm, base, 64 * PAGE, 0);
	for (int i = 0; i < 64; i++) {
		pfn_t pfn = touch(mm, base + (hva_t)i * PAGE, NULL);

		assert_true(all_zero(host_pfn_to_ptr(a, pfn), PAGE));
	}
	/* The frames were reused, so zero was not luck. */
	assert_int_equal(touch(mm, base, NULL), first[0]);
	host_mm_destroy(mm);
	host_arena_destroy(a);
}

/* ---- notifiers and young bits ---- */

#define MAX_CALLS 8

struct rec {
	struct host_mmu_notifier mn;
	struct host_arena *arena;
	pfn_t watch;                    /* a frame the unmapped range holds, or ~0 */
	int *order;                     /* shared call counter, to check call order */
	int nstart, nend, nclear, ntest;
	hva_t start[MAX_CALLS][2];      /* [start, end) of each invalidate_range_start */
	hva_t end[MAX_CALLS][2];        /* [start, end) of each invalidate_range_end */
	int seq_start, seq_end;         /* value of *order at the last call */
	bool watch_at_start, watch_at_end;
	bool young;                     /* what clear/test_young answer */
	hva_t young_start, young_end;
};

static struct rec *to_rec(struct host_mmu_notifier *mn)
{
	return (struct rec *)((char *)mn - offsetof(struct rec, mn));
}

static void rec_start(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct rec *r = to_rec(mn);

	assert_true(r->nstart < MAX_CALLS);
	r->start[r->nstart][0] = start;
	r->start[r->nstart++][1] = end;
	r->seq_start = (*r->order)++;
	r->watch_at_start = r->watch != ~0ULL && host_pfn_valid(r->arena, r->watch);
}

static void rec_end(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct rec *r = to_rec(mn);

	assert_true(r->nend < MAX_CALLS);
	r->end[r->nend][0] = start;
	r->end[r->nend++][1] = end;
	r->seq_end = (*r->order)++;
	r->watch_at_end = r->watch != ~0ULL && host_pfn_valid(r->arena, r->watch);
}

static bool rec_clear_young(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct rec *r = to_rec(mn);
	bool was = r->young;

	r->nclear++;
	r->young_start = start;
	r->young_end = end;
	r->young = false;
	return was;
}

static bool rec_test_young(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct rec *r = to_rec(mn);

	r->ntest++;
	r->young_start = start;
	r->young_end = end;
	return r->young;
}

static const struct host_mmu_notifier_ops rec_ops = {
	.invalidate_range_start = rec_start,
	.invalidate_range_end = rec_end,
	.clear_young = rec_clear_young,
	.test_young = rec_test_young,
};

static void rec_init(struct rec *r, struct host_arena *a, int *order)
{
	memset(r, 0, sizeof(*r));
	r->mn.ops = &rec_ops;
	r->arena = a;
	r->watch = ~0ULL;
	r->order = order;
}

static void assert_range(const hva_t got[2], hva_t start, hva_t end)
{
	assert_int_equal(got[0], start);
	assert_int_equal(got[1], end);
}

static void test_notifier_munmap(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_ALWAYS);
	hva_t base = map(mm, 0, 4 * MiB, 0);
	struct rec r1, r2;
	int order = 0;

	(void)state;
	rec_init(&r1, a, &order);
	rec_init(&r2, a, &order);
	host_mmu_notifier_register(mm, &r1.mn);
	host_mmu_notifier_register(mm, &r2.mn);
	host_mmu_notifier_register(mm, &r1.mn);     /* twice is once */

	/* Faulting in is no change of an existing mapping: nobody is told. */
	r1.watch = touch(mm, base + 5 * PAGE, NULL);
	assert_int_equal(r1.nstart + r2.nstart, 0);

	/* Exact range, start while the frame is still there, end after it is gone; in order. */
	assert_int_equal(host_munmap(mm, base + 5 * PAGE, 3 * PAGE), 0);
	assert_int_equal(r1.nstart, 1);
	assert_int_equal(r1.nend, 1);
	assert_int_equal(r2.nstart, 1);
	assert_int_equal(r2.nend, 1);
	assert_range(r1.start[0], base + 5 * PAGE, base + 8 * PAGE);
	assert_range(r1.end[0], base + 5 * PAGE, base + 8 * PAGE);
	assert_range(r2.start[0], base + 5 * PAGE, base + 8 * PAGE);
	assert_range(r2.end[0], base + 5 * PAGE, base + 8 * PAGE);
	assert_true(r1.watch_at_start);
	assert_false(r1.watch_at_end);
	assert_true(r1.seq_start < r2.seq_start);           /* registration order */
	assert_true(r2.seq_start < r1.seq_end);             /* every start before any end */
	assert_true(r1.seq_end < r2.seq_end);

	/* Range in a VMA but never faulted in: still notified (the VMA changes). */
	r1.watch = ~0ULL;
	assert_int_equal(host_munmap(mm, base + 3 * MiB, PAGE), 0);
	assert_int_equal(r1.nstart, 2);
	assert_range(r1.start[1], base + 3 * MiB, base + 3 * MiB + PAGE);
	assert_range(r1.end[1], base + 3 * MiB, base + 3 * MiB + PAGE);

	/* No VMA there: nothing changes, nobody is told. */
	assert_int_equal(host_munmap(mm, base + 3 * MiB, PAGE), 0);
	assert_int_equal(host_munmap(mm, 0x300000000ULL, 4 * MiB), 0);
	assert_int_equal(r1.nstart, 2);
	assert_int_equal(r2.nend, 2);

	/* Unregistered: not told any more. */
	host_mmu_notifier_unregister(mm, &r2.mn);
	assert_int_equal(host_munmap(mm, base, PAGE), 0);
	assert_int_equal(r1.nstart, 3);
	assert_int_equal(r2.nstart, 2);

	/* destroy unmaps what is left, over the VMAs' span. */
	host_mm_destroy(mm);
	assert_int_equal(r1.nstart, 4);
	assert_int_equal(r1.nend, 4);
	assert_range(r1.start[3], base + PAGE, base + 4 * MiB);
	assert_range(r1.end[3], base + PAGE, base + 4 * MiB);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

static void test_young(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	hva_t base = map(mm, 0, 16 * PAGE, 0);
	hva_t end = base + 16 * PAGE;
	struct rec r1, r2;
	int order = 0;

	(void)state;
	assert_false(host_mm_test_young(mm, base, end));
	touch(mm, base, NULL);
	touch(mm, base + PAGE, NULL);
	assert_true(host_mm_test_young(mm, base, end));
	assert_true(host_mm_test_young(mm, base + PAGE, base + 2 * PAGE));
	assert_false(host_mm_test_young(mm, base + 2 * PAGE, end));
	assert_false(host_mm_test_young(mm, end, base));            /* empty range */

	/* Clearing a part leaves the rest young. */
	assert_true(host_mm_clear_young(mm, base, base + PAGE));
	assert_false(host_mm_test_young(mm, base, base + PAGE));
	assert_true(host_mm_test_young(mm, base, end));
	assert_true(host_mm_clear_young(mm, base, end));
	assert_false(host_mm_clear_young(mm, base, end));
	assert_false(host_mm_test_young(mm, base, end));

	/* A lookup is not an access; hva_to_pfn is. */
	pfn_t pfn;

	assert_int_equal(host_hva_lookup(mm, base, &pfn, NULL), 0);
	assert_false(host_mm_test_young(mm, base, end));
	touch(mm, base + PAGE, NULL);
	assert_true(host_mm_test_young(mm, base + PAGE, base + 2 * PAGE));
	assert_false(host_mm_test_young(mm, base, base + PAGE));
	assert_true(host_mm_clear_young(mm, base, end));

	/* Notifiers' answers are ORed in, and each one is asked to clear. */
	rec_init(&r1, a, &order);
	rec_init(&r2, a, &order);
	host_mmu_notifier_register(mm, &r1.mn);
	host_mmu_notifier_register(mm, &r2.mn);
	assert_false(host_mm_test_young(mm, base, end));
	assert_int_equal(r1.ntest, 1);
	assert_int_equal(r2.ntest, 1);
	r1.young = true;
	r2.young = true;
	assert_true(host_mm_test_young(mm, base, end));
	assert_int_equal(r1.young_start, base);
	assert_int_equal(r1.young_end, end);
	assert_true(host_mm_clear_young(mm, base, end));
	assert_int_equal(r1.nclear, 1);
	assert_int_equal(r2.nclear, 1);
	assert_int_equal(r2.young_start, base);
	assert_int_equal(r2.young_end, end);
	assert_false(r1.young);
	assert_false(r2.young);
	assert_false(host_mm_clear_young(mm, base, end));
	assert_false(host_mm_test_young(mm, base, end));
	/* Young bits are no mapping change. */
	assert_int_equal(r1.nstart, 0);

	host_mmu_notifier_unregister(mm, &r1.mn);
	host_mmu_notifier_unregister(mm, &r2.mn);
	host_mm_destroy(mm);
	host_arena_destroy(a);
}

/* A notifier that tries the lockless look-ups while its invalidation is under way. */
struct peek_probe {
	struct host_mmu_notifier mn;
	struct host_mm *mm;
	hva_t hva;                      /* a page the change does not touch, mapped and young */
	struct host_peek_tok tok;       /* a peek of it before the change */
	const uint8_t *ptr;             /* where that peek found it */
	int word_rc, prot_rc, again_rc, calls;
};

static void probe_start(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct peek_probe *p = (struct peek_probe *)((char *)mn - offsetof(struct peek_probe, mn));
	uint64_t val;
	uint8_t *ptr;
	pfn_t pfn;

	(void)start;
	(void)end;
	p->calls++;
	p->word_rc = host_hva_peek_word(p->mm, p->hva, 8, &val, &ptr, NULL);
	p->prot_rc = host_hva_peek_prot(p->mm, p->hva, &pfn, NULL);
	p->again_rc = host_peek_again(p->mm, &p->tok, p->ptr, 8, &val);
}

static const struct host_mmu_notifier_ops probe_ops = { .invalidate_range_start = probe_start };

static void read_fn(void *ptr, void *arg)
{
	*(uint64_t *)arg = *(uint64_t *)ptr;
}

/*
 * host_hva_peek_word and host_hva_peek_prot, the look-ups without the mm's lock: they answer what
 * the locked ones would, and refuse (for the caller to take the lock, or give up) where they
 * cannot be sure: a page not mapped, not young (marking it takes the lock), or any change of the
 * mm under way.
 */
static void test_peek(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	hva_t base = map(mm, 0, 16 * PAGE, 0);
	struct peek_probe probe = { .mn.ops = &probe_ops, .mm = mm, .hva = base + 2 * PAGE };
	uint64_t val = 0, got = 0;
	uint8_t *ptr = NULL;
	pfn_t pfn, seen;
	bool w = false;

	(void)state;
	/* Not mapped. */
	assert_int_equal(host_hva_peek_word(mm, base + PAGE, 8, &val, &ptr, NULL), -EAGAIN);
	assert_int_equal(host_hva_peek_prot(mm, base + PAGE, &pfn, NULL), -ENOENT);
	assert_int_equal(host_hva_peek_prot(mm, UINT64_MAX, &pfn, NULL), -ENOENT);
	assert_int_equal(host_hva_peek_prot(NULL, base, &pfn, NULL), -EINVAL);

	/* Mapped and young: the word and where it lies, as the locked access sees them. */
	pfn = touch(mm, base + PAGE, NULL);
	uint8_t *frame = host_pfn_to_ptr(a, pfn);
	memcpy(frame + 0x48, &(uint64_t){ 0x1122334455667788ULL }, 8);
	assert_int_equal(host_hva_peek_word(mm, base + PAGE + 0x48, 8, &val, &ptr, NULL), 0);
	assert_int_equal(val, 0x1122334455667788ULL);
	assert_ptr_equal(ptr, frame + 0x48);
	assert_int_equal(host_hva_peek_word(mm, base + PAGE + 0x4c, 4, &val, &ptr, NULL), 0);
	assert_int_equal(val, 0x11223344ULL);
	assert_ptr_equal(ptr, frame + 0x4c);
	assert_int_equal(host_hva_access(mm, base + PAGE + 0x48, false, read_fn, &got), 0);
	assert_int_equal(got, 0x1122334455667788ULL);
	assert_int_equal(host_hva_peek_prot(mm, base + PAGE + 0x48, &seen, &w), 0);
	assert_int_equal(seen, pfn);
	assert_true(w);

	/* A peek's token lets the page be read again with no look-up (host_peek_again), the
	 * word as it is now, until the mm ages a page or changes. */
	struct host_peek_tok tok;
	const uint8_t *kept;
	assert_int_equal(host_hva_peek_word(mm, base + PAGE + 0x48, 8, &val, &ptr, &tok), 0);
	kept = ptr - 0x48;
	assert_int_equal(tok.inval_seq & 1, 0);
	memcpy(frame + 0x50, &(uint64_t){ 0xabcdef }, 8);
	assert_int_equal(host_peek_again(mm, &tok, kept + 0x50, 8, &val), 0);
	assert_int_equal(val, 0xabcdef);
	assert_int_equal(host_peek_again(mm, &tok, kept + 0x4c, 4, &val), 0);
	assert_int_equal(val, 0x11223344ULL);

	/* Not young: the word waits for the lock, which marks it young again; the token, taken
	 * before the aging, no longer holds even then (a read through it would not mark the page). */
	assert_true(host_mm_clear_young(mm, base, base + 16 * PAGE));
	assert_int_equal(host_peek_again(mm, &tok, kept + 0x48, 8, &val), -EAGAIN);
	assert_int_equal(host_hva_peek_word(mm, base + PAGE + 0x48, 8, &val, &ptr, NULL), -EAGAIN);
	assert_int_equal(host_hva_peek_prot(mm, base + PAGE, &seen, NULL), 0);   /* no access */
	assert_int_equal(host_hva_access(mm, base + PAGE + 0x48, false, read_fn, &got), 0);
	assert_int_equal(host_peek_again(mm, &tok, kept + 0x48, 8, &val), -EAGAIN);
	assert_int_equal(host_hva_peek_word(mm, base + PAGE + 0x48, 8, &val, &ptr, &tok), 0);
	assert_int_equal(host_peek_again(mm, &tok, kept + 0x48, 8, &val), 0);
	assert_int_equal(val, 0x1122334455667788ULL);

	/* A token also lets the page be swapped in with no look-up (host_cmpxchg_again), as
	 * host_hva_access would under the lock: the word swapped or, if it differs, left. Not after
	 * an aging, nor for a page the peek found read-only (a KSM page: test_ksm). */
	bool ok = false;
	uint8_t *wptr = (uint8_t *)kept;
	assert_true(tok.writable);
	assert_int_equal(host_cmpxchg_again(mm, &tok, wptr + 0x48, 8, 0x1122334455667788ULL, 0x99,
					    &ok), 0);
	assert_true(ok);
	assert_int_equal(*(uint64_t *)(frame + 0x48), 0x99);
	assert_int_equal(host_cmpxchg_again(mm, &tok, wptr + 0x48, 8, 0x1234, 0x77, &ok), 0);
	assert_false(ok);
	assert_int_equal(*(uint64_t *)(frame + 0x48), 0x99);
	assert_int_equal(host_cmpxchg_again(mm, &tok, wptr + 0x4c, 4, 0, 0x5, &ok), 0);
	assert_true(ok);
	assert_int_equal(*(uint64_t *)(frame + 0x48), 0x500000099ULL);
	struct host_peek_tok ro = tok;
	ro.writable = false;
	assert_int_equal(host_cmpxchg_again(mm, &ro, wptr + 0x48, 8, 0x500000099ULL, 1, &ok), -EAGAIN);
	assert_true(host_mm_clear_young(mm, base, base + 16 * PAGE));
	assert_int_equal(host_cmpxchg_again(mm, &tok, wptr + 0x48, 8, 0x500000099ULL, 1, &ok), -EAGAIN);
	assert_int_equal(*(uint64_t *)(frame + 0x48), 0x500000099ULL);
	memcpy(frame + 0x48, &(uint64_t){ 0x1122334455667788ULL }, 8);

	/* While a change runs, even a page it does not touch is refused, and so is every token
	 * taken before it, after it too. */
	touch(mm, probe.hva, NULL);
	assert_int_equal(host_hva_peek_word(mm, probe.hva, 8, &val, &ptr, &probe.tok), 0);
	probe.ptr = ptr;
	assert_int_equal(host_peek_again(mm, &probe.tok, probe.ptr, 8, &val), 0);
	host_mmu_notifier_register(mm, &probe.mn);
	assert_int_equal(host_munmap(mm, base + PAGE, PAGE), 0);
	assert_int_equal(probe.calls, 1);
	assert_int_equal(probe.word_rc, -EAGAIN);
	assert_int_equal(probe.prot_rc, -ENOENT);
	assert_int_equal(probe.again_rc, -EAGAIN);
	host_mmu_notifier_unregister(mm, &probe.mn);
	assert_int_equal(host_peek_again(mm, &probe.tok, probe.ptr, 8, &val), -EAGAIN);
	assert_int_equal(host_cmpxchg_again(mm, &probe.tok, (uint8_t *)probe.ptr, 8, val, val + 1,
					    &ok), -EAGAIN);
	/* After it: the page unmapped is refused, the other answered again. */
	assert_int_equal(host_hva_peek_word(mm, base + PAGE + 0x48, 8, &val, &ptr, NULL), -EAGAIN);
	assert_int_equal(host_hva_peek_prot(mm, base + PAGE, &seen, NULL), -ENOENT);
	assert_int_equal(host_hva_peek_word(mm, probe.hva, 8, &val, &ptr, NULL), 0);

	host_mm_destroy(mm);
	host_arena_destroy(a);
}

/* ---- RSS: a 64 GiB guest that touches 1 GiB runs in about 1 GiB ---- */

/*
 * The arena's memory follows what is touched and goes back on munmap: measured as the arena's own
 * resident bytes (frames and metadata, by mincore), not the process's RSS, which a sanitizer's
 * shadow memory inflates on kernels that map no zero page (pvm_no_zero_page=1: ASan's shadow
 * reads become resident), so the bound holds on every machine; the process's RSS is printed
 * beside it.
 */
static void test_rss_64g_touch_1g(void **state)
{
	const uint64_t touched = GiB, pages = GiB / PAGE;
	struct host_arena *a = arena_new(64 * GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	hva_t base = map(mm, 0, 64 * GiB, 0);
	uint64_t rss0, rss1, rss2;

	(void)state;
	/* TSan keeps 4 bytes of shadow per byte it sees written, so it alone doubles the RSS
	 * measured (VMMU_TSAN: sanitize.h). */
#ifdef VMMU_TSAN
	print_message("skipped: RSS is not the model's under ThreadSanitizer\n");
	host_mm_destroy(mm);
	host_arena_destroy(a);
	skip();
#endif
	uint64_t prss0 = rss_bytes();
	rss0 = host_arena_resident_bytes(a);
	assert_true(rss0 != UINT64_MAX);
	for (uint64_t i = 0; i < pages; i++) {
		pfn_t pfn;

		assert_int_equal(host_hva_to_pfn(mm, base + i * PAGE, true, &pfn, NULL), 0);
		*(volatile char *)host_pfn_to_ptr(a, pfn) = 1;
	}
	rss1 = host_arena_resident_bytes(a);
	uint64_t prss1 = rss_bytes();
	assert_int_equal(host_mm_rss_pages(mm), pages);
	assert_int_equal(host_arena_frames_used(a), pages);
	assert_true(rss1 >= rss0 + touched);
	assert_true(rss1 - rss0 < touched + touched * 15 / 100);

	assert_int_equal(host_munmap(mm, base, 64 * GiB), 0);
	rss2 = host_arena_resident_bytes(a);
	uint64_t prss2 = rss_bytes();
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_true(rss2 < rss0 + 64 * MiB);
	print_message("arena resident: start %.1f MiB, after touching 1 GiB +%.1f MiB, after munmap "
		      "%+.1f MiB (process RSS: %.1f MiB, %+.1f MiB, %+.1f MiB)\n",
		      rss0 / (double)MiB, (rss1 - rss0) / (double)MiB,
		      ((double)rss2 - (double)rss0) / (double)MiB, prss0 / (double)MiB,
		      ((double)prss1 - (double)prss0) / (double)MiB,
		      ((double)prss2 - (double)prss0) / (double)MiB);
	host_mm_destroy(mm);
	host_arena_destroy(a);
}

/* ---- concurrency ---- */

enum { THREAD_PAGES = 2048 };

struct fault_thread {
	struct host_mm *mm;
	hva_t base;
	bool backwards;
	pfn_t pfn[THREAD_PAGES];
	int err;
};

static void *fault_pages(void *arg)
{
	struct fault_thread *t = arg;
	struct host_arena *a = host_mm_arena(t->mm);

	for (int k = 0; k < THREAD_PAGES; k++) {
		int i = t->backwards ? THREAD_PAGES - 1 - k : k;
		pfn_t pfn;
		int ret = host_hva_to_pfn(t->mm, t->base + (hva_t)i * PAGE, true, &pfn, NULL);

		if (ret) {
			t->err = ret;
			break;
		}
		t->pfn[i] = pfn;
		/* Both threads write the same bytes: atomically, since they do race. */
		__atomic_add_fetch((uint32_t *)host_pfn_to_ptr(a, pfn), 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_concurrent_faults(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct host_mm *mm = mm_new(a, HOST_THP_NEVER);
	hva_t base = map(mm, 0, THREAD_PAGES * PAGE, 0);
	struct fault_thread *t = calloc(2, sizeof(*t));
	pthread_t tid[2];

	(void)state;
	assert_non_null(t);
	for (int i = 0; i < 2; i++) {
		t[i].mm = mm;
		t[i].base = base;
		t[i].backwards = i == 1;
		assert_int_equal(pthread_create(&tid[i], NULL, fault_pages, &t[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(t[i].err, 0);
	}
	/* One pfn a page, whichever thread faulted it in; each page seen by both. */
	assert_int_equal(host_arena_frames_used(a), THREAD_PAGES);
	assert_int_equal(host_mm_rss_pages(mm), THREAD_PAGES);
	for (int i = 0; i < THREAD_PAGES; i++) {
		assert_int_equal(t[0].pfn[i], t[1].pfn[i]);
		assert_int_equal(*(uint32_t *)host_pfn_to_ptr(a, t[0].pfn[i]), 2);
	}
	free(t);
	host_mm_destroy(mm);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

struct churn_thread {
	struct host_arena *arena;
	enum host_thp thp;
	pfn_t shared;                   /* a frame both threads take references on */
	int err;
};

/* Fault, split and unmap in a private mm while the other thread does the same on the arena. */
static void *churn(void *arg)
{
	struct churn_thread *t = arg;
	struct host_mm *mm;
	int ret = host_mm_create(t->arena, t->thp, &mm);

	for (int round = 0; !ret && round < 50; round++) {
		hva_t base;
		pfn_t pfn;

		ret = host_mmap(mm, 0, 4 * MiB, 0, &base);
		for (int i = 0; !ret && i < 64; i++)
			ret = host_hva_to_pfn(mm, base + (hva_t)i * 15 * PAGE, true, &pfn, NULL);
		host_frame_get(t->arena, t->shared);
		if (!ret)
			ret = host_munmap(mm, base + 5 * PAGE, 3 * MiB);
		host_frame_put(t->arena, t->shared, 0);
		if (!ret)
			ret = host_munmap(mm, base, 4 * MiB);
	}
	t->err = ret;
	host_mm_destroy(mm);
	return NULL;
}

static void test_concurrent_arena(void **state)
{
	struct host_arena *a = arena_new(GiB);
	struct churn_thread t[2];
	pthread_t tid[2];
	pfn_t shared;

	(void)state;
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_4K, &shared), 0);
	for (int i = 0; i < 2; i++) {
		t[i] = (struct churn_thread){ .arena = a, .shared = shared,
					      .thp = i ? HOST_THP_ALWAYS : HOST_THP_NEVER };
		assert_int_equal(pthread_create(&tid[i], NULL, churn, &t[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_int_equal(t[i].err, 0);
	}
	/* Nothing leaked, and the references on the shared frame balanced. */
	assert_int_equal(host_frame_refcount(a, shared), 1);
	assert_int_equal(host_arena_frames_used(a), 1);
	host_frame_put(a, shared, 0);
	assert_int_equal(host_arena_frames_used(a), 0);
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_1G, &shared), 0);
	host_frame_put(a, shared, HOST_ORDER_1G);
	host_arena_destroy(a);
}

/* ---- host/pool: the MMUs' metadata objects ---- */

struct pool_arg {
	struct host_pool *pool;
	unsigned rounds;
	int bad;
};

/* Allocate, check, fill and free, over and over: another thread does the same at once. */
static void *pool_worker(void *arg)
{
	struct pool_arg *a = arg;
	enum { N = 40 };
	unsigned char *o[N];

	for (unsigned r = 0; r < a->rounds; r++) {
		for (unsigned i = 0; i < N; i++) {
			o[i] = host_pool_zalloc(a->pool);
			if (!o[i] || !all_zero(o[i], a->pool->size))
				a->bad++;
			if (o[i])
				memset(o[i], 0x5a, a->pool->size);
		}
		for (unsigned i = 0; i < N; i++)
			host_pool_free(a->pool, o[i]);
	}
	return NULL;
}

static void test_pool(void **state)
{
	static struct host_pool big = HOST_POOL_INIT(6200), tiny = HOST_POOL_INIT(4);
	enum { N = 100 };
	unsigned char *o[N], *again[N];

	(void)state;
	/* Objects are zeroed, 64-byte aligned and disjoint, across several slabs (of 16 here). */
	for (unsigned i = 0; i < N; i++) {
		o[i] = host_pool_zalloc(&big);
		assert_non_null(o[i]);
		assert_int_equal((uintptr_t)o[i] & 63, 0);
		assert_true(all_zero(o[i], big.size));
		for (unsigned j = 0; j < i; j++)
			assert_true(o[i] + big.size <= o[j] || o[j] + big.size <= o[i]);
		memset(o[i], 0xa5, big.size);
	}
	/* What is freed comes back, zeroed again: the memory is reused, not mapped anew. */
	for (unsigned i = 0; i < N; i++)
		host_pool_free(&big, o[i]);
	host_pool_free(&big, NULL);
	for (unsigned i = 0; i < N; i++) {
		again[i] = host_pool_zalloc(&big);
		assert_non_null(again[i]);
		assert_true(all_zero(again[i], big.size));
		bool known = false;
		for (unsigned j = 0; j < N && !known; j++)
			known = again[i] == o[j];
		assert_true(known);
	}
	for (unsigned i = 0; i < N; i++)
		host_pool_free(&big, again[i]);
	/* An object smaller than the free list's link. */
	unsigned char *t1 = host_pool_zalloc(&tiny), *t2 = host_pool_zalloc(&tiny);
	assert_non_null(t1);
	assert_non_null(t2);
	assert_true(t1 != t2);
	memset(t1, 0xff, 4);
	host_pool_free(&tiny, t1);
	t1 = host_pool_zalloc(&tiny);
	assert_true(all_zero(t1, tiny.size));
	host_pool_free(&tiny, t1);
	host_pool_free(&tiny, t2);
	/* Two threads at once (TSan checks the pool's lock; each sees only zeroed objects). */
	struct pool_arg a[2] = { { &big, 200, 0 }, { &big, 200, 0 } };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, pool_worker, &a[0]), 0);
	pool_worker(&a[1]);
	pthread_join(th, NULL);
	assert_int_equal(a[0].bad + a[1].bad, 0);
}

/* How many of frames [pfn, pfn + n) the kernel holds for the arena (mincore; reads no frame, so
 * makes none resident on a kernel without a zero page). */
static unsigned frames_resident(struct host_arena *a, pfn_t pfn, unsigned n)
{
	unsigned char vec[1024];
	unsigned count = 0;

	assert_true(n <= sizeof(vec));
	assert_int_equal(mincore(host_pfn_to_ptr(a, pfn), (size_t)n * PAGE, vec), 0);
	for (unsigned i = 0; i < n; i++)
		count += vec[i] & 1;
	return count;
}

/* Populate-ahead: the third frame of a run of consecutive ones makes the frames ahead resident in
 * one go (to the next 2 MiB boundary, 32 at most; from a boundary, the whole 2 MiB); they stay
 * free and zero, and the model counts nothing more; an allocation out of order ends the run; a
 * 2 MiB block comes in whole. */
static void test_populate_ahead(void **state)
{
	struct host_arena *a = arena_new(GiB);
	pfn_t p[520], big;

	(void)state;
	void *probe = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(probe != MAP_FAILED);
	bool can = madvise(probe, PAGE, MADV_POPULATE_WRITE) == 0;
	munmap(probe, PAGE);
	if (!can) {
		print_message("skipped: this kernel has no MADV_POPULATE_WRITE (Linux 5.14)\n");
		host_arena_destroy(a);
		skip();
	}
	/* The frames' mapping is 2 MiB aligned: a window of a 2 MiB block is a huge page's range. */
	assert_int_equal((uintptr_t)host_pfn_to_ptr(a, 0) & (SZ_2M - 1), 0);
	/* Two in a row, then out of order (the first one freed comes back): no run, nothing ahead. */
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(host_frame_alloc(a, 0, &p[i]), 0);
		assert_int_equal(p[i], i);
	}
	host_frame_put(a, p[0], 0);
	assert_int_equal(host_frame_alloc(a, 0, &p[0]), 0);
	assert_int_equal(p[0], 0);
	assert_int_equal(frames_resident(a, 0, 64), 0);
	/* A run begins again at 2; its third frame brings in frames 4 .. 35, and nothing past them. */
	for (unsigned i = 2; i < 4; i++) {
		assert_int_equal(host_frame_alloc(a, 0, &p[i]), 0);
		assert_int_equal(p[i], i);
	}
	assert_int_equal(frames_resident(a, 0, 64), 0);
	assert_int_equal(host_frame_alloc(a, 0, &p[4]), 0);
	assert_int_equal(p[4], 4);
	assert_int_equal(frames_resident(a, 4, 32), 32);
	assert_int_equal(frames_resident(a, 0, 4) + frames_resident(a, 36, 64), 0);
	assert_int_equal(host_arena_frames_used(a), 5);
	/* On to the 2 MiB boundary and past it: the next 2 MiB as a whole. */
	for (unsigned i = 5; i < 515; i++) {
		assert_int_equal(host_frame_alloc(a, 0, &p[i]), 0);
		assert_int_equal(p[i], i);
	}
	assert_int_equal(frames_resident(a, 512, 512), 512);
	assert_int_equal(frames_resident(a, 1024, 64), 0);
	assert_int_equal(host_arena_frames_used(a), 515);
	/* The frames populated and not handed out are free and zero: the next ones come back so. */
	for (unsigned i = 515; i < 520; i++) {
		assert_int_equal(host_frame_alloc(a, 0, &p[i]), 0);
		assert_true(all_zero(host_pfn_to_ptr(a, p[i]), PAGE));
	}
	/* A 2 MiB block is resident whole when handed out, and zero. */
	assert_int_equal(host_frame_alloc(a, HOST_ORDER_2M, &big), 0);
	assert_int_equal(frames_resident(a, big, 512), 512);
	assert_true(all_zero(host_pfn_to_ptr(a, big), SZ_2M));
	host_frame_put(a, big, HOST_ORDER_2M);
	for (unsigned i = 0; i < 520; i++)
		host_frame_put(a, p[i], 0);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
	/* The fragmenter's 2 MiB blocks are held, never written: not populated. */
	a = arena_new(GiB);
	pfn_t *pins = NULL;
	size_t npins = 0;
	assert_int_equal(host_arena_fragment(a, 100, &pins, &npins), 0);
	assert_true(npins > 0);
	for (pfn_t f = 0; f < 8 * 512; f += 512)
		assert_int_equal(frames_resident(a, f, 512), 0);
	host_arena_unfragment(a, pins, npins);
	host_arena_destroy(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arena_args),
		cmocka_unit_test(test_pool),
		cmocka_unit_test(test_buddy_orders_aligned),
		cmocka_unit_test(test_buddy_exhaust),
		cmocka_unit_test(test_buddy_merge_back),
		cmocka_unit_test(test_frame_split),
		cmocka_unit_test(test_frame_refcount),
		cmocka_unit_test(test_frame_zeroed_after_dirty_free),
		cmocka_unit_test(test_frame_retired_zeroed_in_place),
		cmocka_unit_test(test_populate_ahead),
		cmocka_unit_test(test_mmap_args),
		cmocka_unit_test(test_fault_in_once),
		cmocka_unit_test(test_efault_outside_vmas),
		cmocka_unit_test(test_thp_policy),
		cmocka_unit_test(test_thp_fallback_to_4k),
		cmocka_unit_test(test_partial_munmap_splits_thp),
		cmocka_unit_test(test_munmap_then_fault_is_zero),
		cmocka_unit_test(test_hugetlb_1g_split),
		cmocka_unit_test(test_hugetlb_2m),
		cmocka_unit_test(test_thp_counters),
		cmocka_unit_test(test_notifier_munmap),
		cmocka_unit_test(test_young),
		cmocka_unit_test(test_peek),
		cmocka_unit_test(test_rss_64g_touch_1g),
		cmocka_unit_test(test_concurrent_faults),
		cmocka_unit_test(test_concurrent_arena),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
