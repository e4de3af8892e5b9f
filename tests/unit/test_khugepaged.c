/* SPDX-License-Identifier: MIT */
/*
 * khugepaged (host/khugepaged.c, the collapse in host/mm.c) and the fragmenter, at two levels:
 *  - the host alone: a fragmented arena makes THP faults fall back to 4K; once the pins are let
 *    go, a pass collapses each 2M range into one THP with the same bytes, telling the notifiers
 *    once per range; max_ptes_none, the referenced rule, KSM pages, a failed allocation (the
 *    pass ends, alloc_sleep_millisecs follows), pages_to_scan and full scans; the knobs;
 *  - VMs in every mode: guest data written through 4K host pages survives the collapse, every
 *    MMU's audit holds after it (no spte names a frame that no longer backs its gfn), EPT and NPT
 *    map the collapsed ranges with 2M leaves again; and vCPU threads writing and checking their
 *    own pages while khugepaged's own thread collapses under them, audited between rounds.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/host.h"
#include "paging/paging.h"
#include "../common/gpt_build.h"
#include "../common/test_assert.h"
#include "vmmu/vmmu.h"

#define MiB (1ULL << 20)
#define PAGE 4096ULL
#define SZ_2M (2 * MiB)
#define NRANGES 4

/* ---- the host alone ---- */

struct inval_log {
	struct host_mmu_notifier mn;
	hva_t start[64], end[64];
	unsigned n;
};

static void log_start(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	struct inval_log *l = (struct inval_log *)mn;

	if (l->n < 64) {
		l->start[l->n] = start;
		l->end[l->n] = end;
	}
	l->n++;
}

static const struct host_mmu_notifier_ops log_ops = { .invalidate_range_start = log_start };

struct hfix {
	struct host_arena *a;
	struct host_mm *mm;
	struct host_khugepaged *kh;
	struct inval_log log;
	hva_t base;
	pfn_t *pins;
	size_t npins;
};

static uint64_t *page_ptr(struct hfix *f, hva_t hva)
{
	pfn_t pfn;

	assert_int_equal(host_hva_to_pfn(f->mm, hva, true, &pfn, NULL), 0);
	return (uint64_t *)host_pfn_to_ptr(f->a, pfn) + (hva & (PAGE - 1)) / 8;
}

static unsigned order_at(struct hfix *f, hva_t hva)
{
	unsigned order = 99;
	pfn_t pfn;

	assert_int_equal(host_hva_lookup_order(f->mm, hva, &pfn, &order, NULL), 0);
	return order;
}

/* A THP-always mm on a fully fragmented arena, NRANGES 2M ranges in one VMA; @touch pages of
 * each range written (word 0 = its hva), so 4K pages map them. */
static void hfix_init(struct hfix *f, unsigned touch)
{
	struct host_thp_stats ts;

	memset(f, 0, sizeof(*f));
	assert_int_equal(host_arena_create(1ULL << 30, &f->a), 0);
	assert_int_equal(host_mm_create(f->a, HOST_THP_ALWAYS, &f->mm), 0);
	assert_int_equal(host_khugepaged_create(f->a, &f->kh), 0);
	assert_int_equal(host_khugepaged_add_mm(f->kh, f->mm), 0);
	assert_int_equal(host_arena_fragment(f->a, 100, &f->pins, &f->npins), 0);
	assert_true(f->npins >= 500);
	assert_int_equal(host_mmap(f->mm, 0, NRANGES * SZ_2M, 0, &f->base), 0);
	assert_int_equal(f->base & (SZ_2M - 1), 0);
	for (unsigned r = 0; r < NRANGES; r++)
		for (unsigned i = 0; i < touch; i++) {
			hva_t h = f->base + r * SZ_2M + i * PAGE;

			*page_ptr(f, h) = h;
			assert_int_equal(order_at(f, h), HOST_ORDER_4K);
		}
	host_mm_thp_stats(f->mm, &ts);
	assert_int_equal(ts.thp_fault_fallback, NRANGES);
	assert_int_equal(ts.thp_fault_alloc, 0);
	f->log.mn.ops = &log_ops;
	host_mmu_notifier_register(f->mm, &f->log.mn);
}

static void hfix_unfragment(struct hfix *f)
{
	if (f->pins)
		host_arena_unfragment(f->a, f->pins, f->npins);
	f->pins = NULL;
}

static void hfix_fini(struct hfix *f)
{
	hfix_unfragment(f);
	host_mmu_notifier_unregister(f->mm, &f->log.mn);
	host_khugepaged_remove_mm(f->kh, f->mm);
	host_khugepaged_destroy(f->kh);
	host_mm_destroy(f->mm);
	assert_int_equal(host_arena_frames_used(f->a), 0);
	host_arena_destroy(f->a);
}

static void test_collapse(void **state)
{
	struct hfix f;
	struct host_khugepaged_stats st;
	struct host_thp_stats ts;
	uint64_t sleep_ms = 0, rss;

	(void)state;
	hfix_init(&f, 512);
	assert_int_equal(host_khugepaged_set_param(f.kh, "alloc_sleep_millisecs", 777), 0);
	/* No free 2M block: the first collapse fails and ends the pass. */
	assert_int_equal(host_khugepaged_scan(f.kh, &sleep_ms), 0);
	assert_int_equal(sleep_ms, 777);
	host_mm_thp_stats(f.mm, &ts);
	assert_int_equal(ts.thp_collapse_alloc_failed, 1);
	assert_int_equal(f.log.n, 0);

	hfix_unfragment(&f);
	rss = host_mm_rss_pages(f.mm);
	assert_int_equal(host_khugepaged_scan(f.kh, &sleep_ms), NRANGES);
	assert_int_equal(sleep_ms, 10000);
	for (unsigned r = 0; r < NRANGES; r++) {
		assert_int_equal(order_at(&f, f.base + r * SZ_2M + 5 * PAGE), HOST_ORDER_2M);
		for (unsigned i = 0; i < 512; i++) {
			hva_t h = f.base + r * SZ_2M + i * PAGE;

			assert_int_equal(*page_ptr(&f, h), h);
		}
	}
	/* Each range once, exactly its 2M (from range 1: the failed pass stopped past range 0). */
	assert_int_equal(f.log.n, NRANGES);
	for (unsigned k = 0; k < NRANGES; k++) {
		hva_t want = f.base + ((k + 1) % NRANGES) * SZ_2M;

		assert_int_equal(f.log.start[k], want);
		assert_int_equal(f.log.end[k], want + SZ_2M);
	}
	assert_int_equal(host_mm_rss_pages(f.mm), rss);
	host_mm_thp_stats(f.mm, &ts);
	assert_int_equal(ts.thp_collapse_alloc, NRANGES);
	host_khugepaged_get_stats(f.kh, &st);
	assert_int_equal(st.pages_collapsed, NRANGES);
	assert_int_equal(st.passes, 2);
	/* The second pass reached the end, went round to range 0 and to the end again. */
	assert_int_equal(st.full_scans, 2);
	/* The old frames went back: the VMA's 4M and nothing else of the mm's data. */
	assert_int_equal(host_arena_frames_used(f.a), NRANGES * 512);
	/* Nothing left to do. */
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), 0);
	assert_int_equal(f.log.n, NRANGES);
	hfix_fini(&f);
}

static void test_max_ptes_none(void **state)
{
	struct hfix f;

	(void)state;
	hfix_init(&f, 3);      /* 509 none in each range */
	hfix_unfragment(&f);
	assert_int_equal(host_khugepaged_set_param(f.kh, "max_ptes_none", 508), 0);
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), 0);
	assert_int_equal(order_at(&f, f.base), HOST_ORDER_4K);
	assert_int_equal(host_khugepaged_set_param(f.kh, "max_ptes_none", 509), 0);
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), NRANGES);
	for (unsigned r = 0; r < NRANGES; r++) {
		hva_t b = f.base + r * SZ_2M;

		assert_int_equal(*page_ptr(&f, b + 2 * PAGE), b + 2 * PAGE);
		/* A page never touched reads as zeroes and now counts in RSS. */
		assert_int_equal(*page_ptr(&f, b + 100 * PAGE), 0);
	}
	assert_int_equal(host_mm_rss_pages(f.mm), NRANGES * 512);
	hfix_fini(&f);
}

static void test_referenced_and_budget(void **state)
{
	struct hfix f;
	struct host_khugepaged_stats st;

	(void)state;
	hfix_init(&f, 512);
	hfix_unfragment(&f);
	/* Not one page referenced since the last aging: not worth a THP. */
	host_mm_clear_young(f.mm, f.base, f.base + NRANGES * SZ_2M);
	assert_int_equal(host_khugepaged_set_param(f.kh, "pages_to_scan", NRANGES * 512), 0);
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), 0);
	/* One range's page touched again; a pass of one range at a time. */
	assert_int_equal(*page_ptr(&f, f.base + 2 * SZ_2M + 7 * PAGE), f.base + 2 * SZ_2M + 7 * PAGE);
	assert_int_equal(host_khugepaged_set_param(f.kh, "pages_to_scan", 512), 0);
	host_khugepaged_get_stats(f.kh, &st);
	assert_int_equal(st.full_scans, 1);
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), 0);   /* range 0 */
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), 0);   /* range 1 */
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), 1);   /* range 2 */
	assert_int_equal(order_at(&f, f.base + 2 * SZ_2M), HOST_ORDER_2M);
	assert_int_equal(order_at(&f, f.base + 3 * SZ_2M), HOST_ORDER_4K);
	host_khugepaged_get_stats(f.kh, &st);
	assert_int_equal(st.pages_scanned, NRANGES * 512 + 3 * 512);
	assert_int_equal(st.full_scans, 1);
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), 0);   /* range 3, then the end */
	host_khugepaged_get_stats(f.kh, &st);
	assert_int_equal(st.full_scans, 2);
	hfix_fini(&f);
}

static void test_ksm_page_blocks(void **state)
{
	struct hfix f;
	struct host_ksm *k;

	(void)state;
	hfix_init(&f, 512);
	hfix_unfragment(&f);
	/* Two equal pages in range 1: ksmd merges them, and a range holding a KSM page (shared,
	 * read-only) is not collapsed, as the kernel refuses. */
	*page_ptr(&f, f.base + SZ_2M + 10 * PAGE) = 42;
	*page_ptr(&f, f.base + SZ_2M + 11 * PAGE) = 42;
	assert_int_equal(host_ksm_create(f.a, &k), 0);
	assert_int_equal(host_ksm_set_param(k, "pages_to_scan", 10000), 0);
	assert_int_equal(host_madvise(f.mm, f.base, NRANGES * SZ_2M, HOST_VMA_MERGEABLE, true), 0);
	assert_int_equal(host_ksm_add_mm(k, f.mm, NULL, NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_true(host_ksm_scan(k) >= 0);
	{
		struct host_ksm_stats ks;

		host_ksm_get_stats(k, &ks);
		assert_true(ks.merges >= 1);
	}
	/* Every other range of the VMA collapses. */
	assert_int_equal(host_khugepaged_scan(f.kh, NULL), NRANGES - 1);
	assert_int_equal(order_at(&f, f.base + SZ_2M), HOST_ORDER_4K);
	host_ksm_remove_mm(k, f.mm);
	host_mmu_notifier_unregister(f.mm, &f.log.mn);
	host_khugepaged_remove_mm(f.kh, f.mm);
	host_khugepaged_destroy(f.kh);
	host_mm_destroy(f.mm);
	host_ksm_destroy(k);
	assert_int_equal(host_arena_frames_used(f.a), 0);
	host_arena_destroy(f.a);
}

/* Memory pressure: a full arena, and a first touch that needs a frame. */
static void pressure(unsigned max_none)
{
	struct host_arena *a;
	struct host_mm *mm, *mm2;
	struct host_khugepaged *kh;
	struct host_thp_stats ts;
	struct inval_log log = { .mn.ops = &log_ops };
	const unsigned nr = 512;           /* 2M ranges: the whole 1 GiB arena */
	hva_t base, small;
	pfn_t pfn;
	unsigned order;

	assert_int_equal(host_arena_create(1ULL << 30, &a), 0);
	assert_int_equal(host_mm_create(a, HOST_THP_ALWAYS, &mm), 0);
	assert_int_equal(host_mm_create(a, HOST_THP_ALWAYS, &mm2), 0);
	assert_int_equal(host_khugepaged_create(a, &kh), 0);
	assert_int_equal(host_khugepaged_set_param(kh, "max_ptes_none", max_none), 0);
	assert_int_equal(host_khugepaged_add_mm(kh, mm), 0);
	assert_int_equal(host_mmap(mm, 0, nr * SZ_2M, 0, &base), 0);
	/* Even ranges hold one non-zero word, odd ones only zeroes. */
	for (unsigned r = 0; r < nr; r++) {
		assert_int_equal(host_hva_to_pfn(mm, base + r * SZ_2M, true, &pfn, NULL), 0);
		if (!(r & 1))
			*(uint64_t *)host_pfn_to_ptr(a, pfn) = r + 1;
	}
	assert_int_equal(host_arena_frames_used(a), host_arena_frames(a));
	host_mmu_notifier_register(mm, &log.mn);
	assert_int_equal(host_mmap(mm, 0, PAGE, 0, &small), 0);
	/* Another mm's fault finds no frame and reclaims nothing of this mm's: ENOMEM. */
	{
		hva_t other;

		assert_int_equal(host_mmap(mm2, 0, PAGE, 0, &other), 0);
		assert_int_equal(host_hva_to_pfn(mm2, other, true, &pfn, NULL), -ENOMEM);
	}
	if (max_none == 511) {
		/* As the kernel's: no underused split at the default. */
		assert_int_equal(host_hva_to_pfn(mm, small, true, &pfn, NULL), -ENOMEM);
		host_mm_thp_stats(mm, &ts);
		assert_int_equal(ts.thp_underused_split_page, 0);
		assert_int_equal(log.n, 0);
		goto out;
	}
	assert_int_equal(host_hva_to_pfn(mm, small, true, &pfn, NULL), 0);
	host_mm_thp_stats(mm, &ts);
	/* 511 zero subpages beside the written one: split (and those freed) when max_none is
	 * below 511; the THPs of zeroes go whole. */
	const unsigned want = max_none < 511 ? nr : nr / 2;
	assert_int_equal(ts.thp_underused_split_page, want);
	assert_int_equal(ts.thp_split_page, want);
	assert_int_equal(log.n, want);
	for (unsigned r = 0; r < nr; r++) {
		int rc = host_hva_lookup_order(mm, base + r * SZ_2M, &pfn, &order, NULL);

		if (r & 1) {
			assert_int_equal(rc, -ENOENT);      /* all zeroes: gone whole */
			continue;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(*(uint64_t *)host_pfn_to_ptr(a, pfn), r + 1);
		assert_int_equal(order, max_none < 511 ? HOST_ORDER_4K : HOST_ORDER_2M);
		if (max_none < 511)
			assert_int_equal(host_hva_lookup_order(mm, base + r * SZ_2M + PAGE, &pfn, &order,
							       NULL), -ENOENT);
	}
	assert_int_equal(host_mm_rss_pages(mm), max_none < 511 ? nr / 2 + 1 : nr / 2 * 512 + 1);
	/* What went reads as zeroes again when touched. */
	assert_int_equal(host_hva_to_pfn(mm, base + SZ_2M + 5 * PAGE, false, &pfn, NULL), 0);
	assert_int_equal(*(uint64_t *)host_pfn_to_ptr(a, pfn), 0);
out:
	host_mmu_notifier_unregister(mm, &log.mn);
	host_khugepaged_remove_mm(kh, mm);
	host_khugepaged_destroy(kh);
	host_mm_destroy(mm2);
	host_mm_destroy(mm);
	assert_int_equal(host_arena_frames_used(a), 0);
	host_arena_destroy(a);
}

static void test_pressure_splits_underused(void **state)
{
	(void)state;
	pressure(511);
	pressure(511 - 1);
	pressure(100);
}

static void test_knobs(void **state)
{
	struct vmmu_machine *m;
	char err[256] = "";
	uint64_t v = 0, lo, hi;

	(void)state;
	assert_int_equal(host_khugepaged_param_check("max_ptes_none", 512, &lo, &hi), -ERANGE);
	assert_int_equal(hi, 511);
	assert_int_equal(host_khugepaged_param_check("pages_to_scan", 0, NULL, NULL), -ERANGE);
	assert_int_equal(host_khugepaged_param_check("nope", 0, NULL, NULL), -ENOENT);
	assert_int_equal(vmmu_machine_create(1ULL << 30, &m), 0);
	assert_int_equal(vmmu_khugepaged_get_param(m, "pages_to_scan", &v), 0);
	assert_int_equal(v, 4096);
	assert_int_equal(vmmu_khugepaged_get_param(m, "scan_sleep_millisecs", &v), 0);
	assert_int_equal(v, 10000);
	assert_int_equal(vmmu_khugepaged_set_params(m, "max_ptes_none=0,defrag=0", err, sizeof(err)),
			 0);
	assert_int_equal(vmmu_khugepaged_get_param(m, "max_ptes_none", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(vmmu_khugepaged_set_params(m, "max_ptes_none=512", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "from 0 to 511"));
	assert_int_equal(vmmu_khugepaged_set_params(NULL, "sleep_millisecs=1", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "no knob 'sleep_millisecs'"));
	assert_int_equal(vmmu_khugepaged_set_param(m, "defrag", 2), -ERANGE);
	assert_int_equal(vmmu_machine_fragment(m, 101), -EINVAL);
	assert_int_equal(vmmu_machine_fragment(m, 50), 0);
	assert_int_equal(vmmu_machine_fragment(m, 50), -EBUSY);
	assert_true(vmmu_machine_unfragment(m) > 200);
	assert_int_equal(vmmu_machine_unfragment(m), 0);
	assert_int_equal(vmmu_khugepaged_start(m), 0);
	assert_int_equal(vmmu_khugepaged_start(m), -EBUSY);
	vmmu_khugepaged_stop(m);
	assert_int_equal(vmmu_machine_destroy(m), 0);
}

/* ---- VMs ---- */

#define MEM (16 * MiB)
#define DATA_GVA 0x40000000ULL
#define DATA_GPA (4 * MiB)           /* 2M aligned, as the slot's hva */
#define NDATA (4 * 512)              /* 8M of data: four 2M ranges */
#define NCPU 2
#define PRWUAD (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT_ACCESSED_MASK | PT_DIRTY_MASK)

struct mode {
	const char *name;
	enum vmmu_mmu mmu;
	enum vmmu_host host;
};

static const struct mode modes[] = {
	{ "native", VMMU_MMU_NATIVE, VMMU_HOST_VMX },
	{ "shadow", VMMU_MMU_SHADOW, VMMU_HOST_VMX },
	{ "ept", VMMU_MMU_EPT, VMMU_HOST_VMX },
	{ "npt", VMMU_MMU_NPT, VMMU_HOST_SVM },
};

struct venv {
	const struct mode *mode;
	struct vmmu_machine *m;
	struct gpt_vm gv;          /* the VM, and where its next table page goes */
	struct vmmu_vcpu *v[NCPU];
	gpa_t root;
};

static int access8(struct venv *e, unsigned c, gva_t gva, unsigned kind, uint64_t *x)
{
	struct vmmu_access_result res;
	int rc;

	rc = vmmu_vcpu_access(e->v[c], gva, 8, kind, x, &res);
	if (rc == 0 && res.status != VMMU_ACCESS_DONE)
		rc = -EIO;
	return rc;
}

/* A THP-always VM on a fragmented machine: its tables and data faulted in 4K pages. */
static void venv_init(struct venv *e, const struct mode *mode)
{
	struct vmmu_vm_config cfg = { .mmu = mode->mmu, .host = mode->host, .thp = 2 };
	struct gpt_builder b = gpt_vm_builder(&e->gv);
	struct vmmu_regs r = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr4 = X86_CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	uint64_t hva;

	memset(e, 0, sizeof(*e));
	e->mode = mode;
	assert_int_equal(vmmu_machine_create(1ULL << 30, &e->m), 0);
	assert_int_equal(vmmu_machine_fragment(e->m, 100), 0);
	assert_int_equal(vmmu_vm_create_on(e->m, &cfg, &e->gv.vm), 0);
	assert_int_equal(vmmu_vm_mmap(e->gv.vm, MEM, true, &hva), 0);
	struct vmmu_userspace_memory_region slot = {
		.slot = 0, .memory_size = MEM, .userspace_addr = hva,
	};
	assert_int_equal(vmmu_set_user_memory_region(e->gv.vm, &slot), 0);
	e->gv.next_table = 0x100000;
	e->root = gpt_vm_new_table(&e->gv);
	for (uint64_t i = 0; i < NDATA; i++)
		gpt_map(&b, e->root, 4, DATA_GVA + i * PAGE, DATA_GPA + i * PAGE, 1, PRWUAD);
	r.cr3 = e->root;
	for (unsigned c = 0; c < NCPU; c++) {
		assert_int_equal(vmmu_vcpu_create(e->gv.vm, c, &e->v[c]), 0);
		assert_int_equal(vmmu_vcpu_set_regs(e->v[c], &r), 0);
	}
}

static void venv_fini(struct venv *e)
{
	vmmu_khugepaged_stop(e->m);
	vmmu_vm_destroy(e->gv.vm);
	assert_int_equal(vmmu_machine_destroy(e->m), 0);
}

static void vaudit(struct venv *e, const char *when)
{
	char why[256] = "";
	int rc = vmmu_vm_audit(e->gv.vm, why, sizeof(why));

	TEST_ASSERT(rc == 0, "%s, %s: audit: %s", e->mode->name, when, why);
}

static struct vmmu_stats vstats(struct venv *e)
{
	struct vmmu_stats s;

	assert_int_equal(vmmu_vm_get_stats(e->gv.vm, &s), 0);
	return s;
}

static void collapse_vm(const struct mode *mode)
{
	struct venv e;
	struct vmmu_stats s;
	bool ran = false;
	int n;

	venv_init(&e, mode);
	for (uint64_t i = 0; i < NDATA; i++) {
		uint64_t x = i * 7 + 1;

		assert_int_equal(access8(&e, i & 1, DATA_GVA + i * PAGE + 8, VMMU_ACC_WRITE, &x), 0);
	}
	s = vstats(&e);
	assert_int_equal(s.thp_collapse_alloc, 0);
	TEST_ASSERT(s.pages_2m == 0, "%s: %" PRIu64 " 2M leaves on a fragmented host", mode->name,
		    s.pages_2m);
	assert_true(vmmu_machine_unfragment(e.m) > 0);
	assert_int_equal(vmmu_khugepaged_set_params(e.m, "pages_to_scan=100000", NULL, 0), 0);
	n = vmmu_khugepaged_run(e.m, 0, &ran);
	assert_true(ran);
	/* The data's four ranges, the tables' and whatever else the guest touched. */
	TEST_ASSERT(n >= 4, "%s: %d collapsed", mode->name, n);
	vaudit(&e, "the collapse");
	for (uint64_t i = 0; i < NDATA; i++) {
		uint64_t x = 0;

		assert_int_equal(access8(&e, (i + 1) & 1, DATA_GVA + i * PAGE + 8, VMMU_ACC_READ, &x),
				 0);
		TEST_ASSERT(x == i * 7 + 1, "%s: page %" PRIu64 " reads %" PRIu64, mode->name, i, x);
		x = i * 11;
		assert_int_equal(access8(&e, i & 1, DATA_GVA + i * PAGE + 16, VMMU_ACC_WRITE, &x), 0);
	}
	vaudit(&e, "accesses after the collapse");
	for (uint64_t i = 0; i < NDATA; i++)
		assert_int_equal(gpt_vm_rd(&e.gv, DATA_GPA + i * PAGE + 16), i * 11);
	s = vstats(&e);
	assert_int_equal(s.thp_collapse_alloc, (uint64_t)n);
	assert_int_equal(s.khugepaged_pages_collapsed, (uint64_t)n);
	/* The hard MMUs map the new THPs 2M: their 4K tables were unlinked by the next fault. */
	if (mode->mmu == VMMU_MMU_EPT || mode->mmu == VMMU_MMU_NPT)
		TEST_ASSERT(s.pages_2m >= 4 && s.pages_4k == 0, "%s: %" PRIu64 " 4K, %" PRIu64
			    " 2M leaves after the collapse", mode->name, s.pages_4k, s.pages_2m);
	venv_fini(&e);
}

static void test_collapse_vm(void **state)
{
	(void)state;
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		collapse_vm(&modes[m]);
}

/* vCPU threads, each on its own half of the data pages: write a round's value into each, read
 * it back, and check the last round's value first (a write lost in a collapse shows). */
struct worker {
	struct venv *e;
	unsigned c, round;
	int rc;
	uint64_t bad_page, bad_val;
};

static void *worker(void *arg)
{
	struct worker *w = arg;

	for (uint64_t i = w->c; i < NDATA; i += NCPU) {
		gva_t gva = DATA_GVA + i * PAGE + 24;
		uint64_t x = 0, want = w->round ? (w->round - 1) * 100000 + i : 0;

		if ((w->rc = access8(w->e, w->c, gva, VMMU_ACC_READ, &x)))
			return NULL;
		if (x != want) {
			w->bad_page = i;
			w->bad_val = x;
			w->rc = -EILSEQ;
			return NULL;
		}
		x = w->round * 100000 + i;
		if ((w->rc = access8(w->e, w->c, gva, VMMU_ACC_WRITE, &x)))
			return NULL;
	}
	return NULL;
}

static void threads_vm(const struct mode *mode)
{
	struct venv e;
	unsigned rounds = 0;
	struct vmmu_stats s;

	venv_init(&e, mode);
	/* Every data page faulted in (4K: the host is fragmented). */
	for (uint64_t i = 0; i < NDATA; i++) {
		uint64_t x = 0;

		assert_int_equal(access8(&e, 0, DATA_GVA + i * PAGE + 24, VMMU_ACC_WRITE, &x), 0);
	}
	vmmu_machine_unfragment(e.m);
	/* One range a millisecond: the collapses land among the rounds. */
	assert_int_equal(vmmu_khugepaged_set_params(e.m, "pages_to_scan=512,scan_sleep_millisecs=1",
						    NULL, 0), 0);
	assert_int_equal(vmmu_khugepaged_start(e.m), 0);
	for (unsigned round = 0; round < 400; round++) {
		struct worker w[NCPU];
		pthread_t tid[NCPU];

		for (unsigned c = 0; c < NCPU; c++) {
			w[c] = (struct worker){ .e = &e, .c = c, .round = round };
			assert_int_equal(pthread_create(&tid[c], NULL, worker, &w[c]), 0);
		}
		for (unsigned c = 0; c < NCPU; c++) {
			pthread_join(tid[c], NULL);
			TEST_ASSERT(w[c].rc == 0, "%s round %u vCPU %u: %d (page %" PRIu64 " read %"
				    PRIu64 ")", mode->name, round, c, w[c].rc, w[c].bad_page,
				    w[c].bad_val);
		}
		/* The audit wants the MMU still: khugepaged pauses too, and goes on after. */
		vmmu_khugepaged_stop(e.m);
		vaudit(&e, "a round beside khugepaged");
		assert_int_equal(vmmu_khugepaged_start(e.m), 0);
		rounds++;
		if (round >= 20 && vstats(&e).thp_collapse_alloc >= 5)
			break;
	}
	vmmu_khugepaged_stop(e.m);
	s = vstats(&e);
	/* The tables' range and the data's four. */
	TEST_ASSERT(s.thp_collapse_alloc >= 5, "%s: %" PRIu64 " collapsed in %u rounds", mode->name,
		    s.thp_collapse_alloc, rounds);
	venv_fini(&e);
}

static void test_threads_vm(void **state)
{
	(void)state;
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		threads_vm(&modes[m]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_collapse),
		cmocka_unit_test(test_max_ptes_none),
		cmocka_unit_test(test_referenced_and_budget),
		cmocka_unit_test(test_ksm_page_blocks),
		cmocka_unit_test(test_pressure_splits_underused),
		cmocka_unit_test(test_knobs),
		cmocka_unit_test(test_collapse_vm),
		cmocka_unit_test(test_threads_vm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
