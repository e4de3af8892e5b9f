/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of host/ksm.c: same-page merging across two mms of one arena (the frames really go
 * back to the kernel: the arena's resident bytes fall), copy on write of a KSM page under the
 * notifiers, volatile pages, the zero frame, max_page_sharing, THP pages, the knobs, and the
 * trees' audit after every pass.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/host.h"

#define PAGE HOST_PAGE_SIZE
#define NPAGES 64
#define SZ_2M (2ULL << 20)

struct env {
	struct host_arena *a;
	struct host_mm *mm[2];
	hva_t base[2];
	struct host_ksm *k;
};

/* Counts invalidations of one mm, as a secondary MMU would see them. */
struct count_mn {
	struct host_mmu_notifier mn;
	unsigned starts, ends;
};

static void cm_start(struct host_mmu_notifier *mn, hva_t s, hva_t e)
{
	((struct count_mn *)mn)->starts++;
}

static void cm_end(struct host_mmu_notifier *mn, hva_t s, hva_t e)
{
	((struct count_mn *)mn)->ends++;
}

static const struct host_mmu_notifier_ops cm_ops = {
	.invalidate_range_start = cm_start,
	.invalidate_range_end = cm_end,
};

static uint8_t *page_at(struct env *e, int m, uint64_t i, bool write, bool *writable)
{
	pfn_t pfn;

	assert_int_equal(host_hva_to_pfn_prot(e->mm[m], e->base[m] + i * PAGE, write, &pfn, NULL,
					      writable), 0);
	return host_pfn_to_ptr(e->a, pfn);
}

/* Page i of both mms holds the same bytes: i+1 in every word (no page is zero). */
static void fill(struct env *e, unsigned flags, enum host_thp thp)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(host_arena_create(1ULL << 30, &e->a), 0);
	for (int m = 0; m < 2; m++) {
		assert_int_equal(host_mm_create(e->a, thp, &e->mm[m]), 0);
		assert_int_equal(host_mmap(e->mm[m], 0, thp ? SZ_2M : NPAGES * PAGE, flags,
					   &e->base[m]), 0);
		for (uint64_t i = 0; i < NPAGES; i++) {
			uint64_t *p = (uint64_t *)page_at(e, m, i, true, NULL);

			for (size_t w = 0; w < PAGE / 8; w++)
				p[w] = i + 1;
		}
	}
	assert_int_equal(host_ksm_create(e->a, &e->k), 0);
	for (int m = 0; m < 2; m++)
		assert_int_equal(host_ksm_add_mm(e->k, e->mm[m], NULL, NULL), 0);
}

static void teardown_env(struct env *e)
{
	char why[160];

	assert_int_equal(host_ksm_audit(e->k, why, sizeof(why)), 0);
	for (int m = 0; m < 2; m++) {
		host_ksm_remove_mm(e->k, e->mm[m]);
		host_mm_destroy(e->mm[m]);
	}
	host_ksm_destroy(e->k);
	/* Every frame back, the KSM ones and the zero frame included. */
	assert_int_equal(host_arena_frames_used(e->a), 0);
	host_arena_destroy(e->a);
}

/* Passes until nothing merges in a whole full scan; each pass audited. */
static void scan_until_stable(struct env *e)
{
	struct host_ksm_stats st;
	char why[160];
	uint64_t scans0 = 0;

	for (int pass = 0; pass < 1000; pass++) {
		int merged = host_ksm_scan(e->k);

		assert_true(merged >= 0);
		if (host_ksm_audit(e->k, why, sizeof(why)))
			fail_msg("audit after pass %d: %s", pass, why);
		host_ksm_get_stats(e->k, &st);
		if (merged)
			scans0 = st.full_scans;
		else if (st.full_scans >= scans0 + 2)
			return;
	}
	fail_msg("KSM did not converge");
}

static void test_merge_two_mms(void **state)
{
	struct env e;
	struct host_ksm_stats st;
	uint64_t used0, res0;
	bool w;

	fill(&e, HOST_VMA_MERGEABLE, HOST_THP_NEVER);
	used0 = host_arena_frames_used(e.a);
	res0 = host_arena_resident_bytes(e.a);
	scan_until_stable(&e);
	host_ksm_get_stats(e.k, &st);
	assert_int_equal(st.pages_shared, NPAGES);
	assert_int_equal(st.pages_sharing, NPAGES);
	assert_int_equal(st.merges, NPAGES);
	assert_true(st.merge_scans >= 2);
	assert_true(st.general_profit > 0);
	/* Half the frames are back in the arena and out of the process's RSS. */
	assert_int_equal(host_arena_frames_used(e.a), used0 - NPAGES);
	assert_true(host_arena_resident_bytes(e.a) <= res0 - NPAGES * PAGE);
	/* Both mms map the same frame, read-only. */
	for (uint64_t i = 0; i < NPAGES; i++) {
		assert_ptr_equal(page_at(&e, 0, i, false, &w), page_at(&e, 1, i, false, NULL));
		assert_false(w);
	}
	teardown_env(&e);
}

static void test_not_mergeable(void **state)
{
	struct env e;
	struct host_ksm_stats st;

	fill(&e, 0, HOST_THP_NEVER);
	for (int i = 0; i < 20; i++)
		assert_int_equal(host_ksm_scan(e.k), 0);
	host_ksm_get_stats(e.k, &st);
	assert_int_equal(st.pages_shared + st.pages_sharing + st.pages_unshared, 0);
	teardown_env(&e);
}

/* A write breaks COW: a frame of its own with the data, the notifiers told, the other mm and the
 * KSM frame unchanged. */
static void test_cow_break(void **state)
{
	struct count_mn cm = { .mn.ops = &cm_ops };
	struct env e;
	struct host_ksm_stats st;
	uint8_t *shared, *mine;
	bool w;

	fill(&e, HOST_VMA_MERGEABLE, HOST_THP_NEVER);
	scan_until_stable(&e);
	/* A peek of a merged page says it is not writable, and a swap through its token is refused
	 * (it would write the frame both mms share): the caller takes the locked way, which breaks
	 * COW. */
	struct host_peek_tok tok;
	uint64_t val;
	uint8_t *ptr;
	bool ok = false;
	assert_int_equal(host_hva_peek_word(e.mm[0], e.base[0] + 5 * PAGE, 8, &val, &ptr, &tok), 0);
	assert_int_equal(val, 6);
	assert_false(tok.writable);
	assert_int_equal(host_cmpxchg_again(e.mm[0], &tok, ptr, 8, 6, 7, &ok), -EAGAIN);
	assert_int_equal(*(uint64_t *)ptr, 6);
	host_mmu_notifier_register(e.mm[0], &cm.mn);
	shared = page_at(&e, 1, 5, false, NULL);
	mine = page_at(&e, 0, 5, true, &w);
	assert_true(w);
	assert_ptr_not_equal(mine, shared);
	assert_int_equal(cm.starts, 1);
	assert_int_equal(cm.ends, 1);
	assert_memory_equal(mine, shared, PAGE);
	mine[100] = 0xAB;
	assert_int_not_equal(shared[100], 0xAB);
	host_ksm_get_stats(e.k, &st);
	assert_int_equal(st.cow_breaks, 1);
	assert_int_equal(st.pages_sharing, NPAGES - 1);
	/* The other mm's copy is still shared and still read-only. */
	assert_ptr_equal(page_at(&e, 1, 5, false, &w), shared);
	assert_false(w);
	host_mmu_notifier_unregister(e.mm[0], &cm.mn);
	teardown_env(&e);
}

/* A page that changes between two full scans is volatile and never merged. */
static void test_volatile(void **state)
{
	struct env e;
	struct host_ksm_stats st;

	fill(&e, HOST_VMA_MERGEABLE, HOST_THP_NEVER);
	assert_int_equal(host_ksm_set_param(e.k, "pages_to_scan", 2 * NPAGES), 0);
	for (int pass = 0; pass < 10; pass++) {
		/* Page 7 of both mms changes before every full scan, both the same way. */
		for (int m = 0; m < 2; m++)
			page_at(&e, m, 7, true, NULL)[0] = (uint8_t)(pass + 1);
		host_ksm_scan(e.k);
	}
	host_ksm_get_stats(e.k, &st);
	assert_ptr_not_equal(page_at(&e, 0, 7, false, NULL), page_at(&e, 1, 7, false, NULL));
	assert_int_equal(st.pages_sharing, NPAGES - 1);
	assert_int_equal(st.pages_volatile, 2);
	teardown_env(&e);
}

static void test_zero_pages(void **state)
{
	struct env e;
	struct host_ksm_stats st;
	bool w;

	fill(&e, HOST_VMA_MERGEABLE, HOST_THP_NEVER);
	for (int m = 0; m < 2; m++)
		for (uint64_t i = 0; i < 4; i++)
			memset(page_at(&e, m, i, true, NULL), 0, PAGE);
	assert_int_equal(host_ksm_set_param(e.k, "use_zero_pages", 1), 0);
	scan_until_stable(&e);
	host_ksm_get_stats(e.k, &st);
	assert_int_equal(st.zero_pages, 8);
	assert_int_equal(st.pages_sharing, NPAGES - 4);
	assert_ptr_equal(page_at(&e, 0, 0, false, &w), page_at(&e, 1, 3, false, NULL));
	assert_false(w);
	/* A write to the zero frame copies it too. */
	page_at(&e, 0, 0, true, &w)[0] = 1;
	assert_true(w);
	assert_int_equal(page_at(&e, 1, 0, false, NULL)[0], 0);
	teardown_env(&e);
}

/* max_page_sharing: a KSM page has at most that many mappings; more start another one. */
static void test_max_page_sharing(void **state)
{
	struct env e;
	struct host_ksm_stats st;

	fill(&e, HOST_VMA_MERGEABLE, HOST_THP_NEVER);
	/* Every page of mm 0 the same. */
	for (uint64_t i = 0; i < NPAGES; i++)
		memset(page_at(&e, 0, i, true, NULL), 0x5a, PAGE);
	assert_int_equal(host_ksm_set_param(e.k, "max_page_sharing", 16), 0);
	assert_int_equal(host_ksm_set_param(e.k, "pages_to_scan", 1000), 0);
	scan_until_stable(&e);
	host_ksm_get_stats(e.k, &st);
	/* mm 0: 64 mappings of 0x5a in 4 KSM pages; mm 1: 64 distinct pages, never merged. */
	assert_int_equal(st.pages_shared, 4);
	assert_int_equal(st.pages_sharing, NPAGES - 4);
	teardown_env(&e);
}

/* THP: a 2M mapping's pages are scanned one by one and the mapping split when one merges. */
static void test_thp_split(void **state)
{
	struct env e;
	struct host_ksm_stats st;
	bool huge = true;
	pfn_t pfn;

	fill(&e, HOST_VMA_MERGEABLE | HOST_VMA_HUGEPAGE, HOST_THP_ALWAYS);
	assert_int_equal(host_hva_lookup(e.mm[0], e.base[0], &pfn, &huge), 0);
	assert_true(huge);
	assert_int_equal(host_ksm_set_param(e.k, "pages_to_scan", 1024), 0);
	assert_int_equal(host_ksm_set_param(e.k, "max_page_sharing", 1024), 0);
	scan_until_stable(&e);
	host_ksm_get_stats(e.k, &st);
	/* The 64 filled pages merge; the 448 zero pages of each THP too (zero pages merge like
	 * any other content without use_zero_pages). */
	assert_int_equal(st.pages_shared, NPAGES + 1);
	assert_int_equal(st.pages_sharing, 2 * 512 - NPAGES - 1);
	assert_int_equal(host_hva_lookup(e.mm[0], e.base[0], &pfn, &huge), 0);
	assert_false(huge);
	teardown_env(&e);
}

static void test_params(void **state)
{
	struct env e;
	struct host_ksm_params p;
	uint64_t lo, hi;

	fill(&e, HOST_VMA_MERGEABLE, HOST_THP_NEVER);
	assert_int_equal(host_ksm_set_param(e.k, "nope", 1), -ENOENT);
	assert_int_equal(host_ksm_set_param(e.k, "run", 2), -EINVAL);
	assert_int_equal(host_ksm_set_param(e.k, "max_page_sharing", 1), -EINVAL);
	assert_int_equal(host_ksm_param_check("use_zero_pages", 2, &lo, &hi), -ERANGE);
	assert_int_equal(hi, 1);
	assert_int_equal(host_ksm_param_check("pages_to_scan", 5000, NULL, NULL), 0);
	assert_int_equal(host_ksm_set_param(e.k, "run", 0), 0);
	host_ksm_get_params(e.k, &p);
	assert_int_equal(p.run, 0);
	assert_int_equal(p.pages_to_scan, 100);
	/* run=0: ksmd does nothing. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(host_ksm_scan(e.k), 0);
	teardown_env(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_merge_two_mms),
		cmocka_unit_test(test_not_mergeable),
		cmocka_unit_test(test_cow_break),
		cmocka_unit_test(test_volatile),
		cmocka_unit_test(test_zero_pages),
		cmocka_unit_test(test_max_page_sharing),
		cmocka_unit_test(test_thp_split),
		cmocka_unit_test(test_params),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
