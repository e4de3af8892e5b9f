/* SPDX-License-Identifier: MIT */
/*
 * KSM under every MMU mode (native, shadow on VMX and SVM, EPT, NPT), through the public API: two
 * VMs on one machine hold the same pages, ksmd merges them, and then
 *  - every spte built over a merged page is read-only (vmmu_vm_audit fails otherwise) and a
 *    guest write exits, breaks COW and lands in a frame of the VM's own: each VM sees only its
 *    own data, and no KSM frame ever changes (vmmu_ksm_audit fails if one does);
 *  - several vCPUs of both VMs writing merged pages in a tight loop, with ksmd merging them again
 *    between the writes, never write through a shared frame (both audits after every step, the
 *    contents against a plain model).
 * Each with ksmd's checksums and with use_mmu_dirty (the MMU's dirty state instead); for the
 * latter, the KSM audit also checks every checksum ksmd would reuse against the bytes, and
 * test_mmu_dirty follows single pages through harvests.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "paging/paging.h"
#include "../common/gpt_build.h"
#include "../common/test_assert.h"
#include "vmmu/vmmu.h"

#define MiB (1ULL << 20)
#define PAGE 4096ULL
#define MEM (4 * MiB)
#define DATA_GVA 0x40000000ULL   /* the data pages, mapped to gpa DATA_GPA on */
#define DATA_GPA 0x200000ULL
#define NDATA 32
#define NCPU 2
/* Leaf rights: present, writable, user, Accessed and Dirty set, so that every mode would map a
 * read writable if nothing else said no. */
#define PRWUAD (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK | PT_ACCESSED_MASK | PT_DIRTY_MASK)


struct mode {
	const char *name;
	enum vmmu_mmu mmu;
	enum vmmu_host host;
};

static const struct mode modes[] = {
	{ "native", VMMU_MMU_NATIVE, VMMU_HOST_VMX },
	{ "shadow-vmx", VMMU_MMU_SHADOW, VMMU_HOST_VMX },
	{ "shadow-svm", VMMU_MMU_SHADOW, VMMU_HOST_SVM },
	{ "ept", VMMU_MMU_EPT, VMMU_HOST_VMX },
	{ "npt", VMMU_MMU_NPT, VMMU_HOST_SVM },
};

struct vm {
	struct gpt_vm gv;          /* the VM, and where its next table page goes */
	struct vmmu_vcpu *v[NCPU];
	gpa_t root;
	uint64_t hva;              /* slot 0's backing */
};

struct env {
	const struct mode *mode;
	bool mmu_dirty;
	struct vmmu_machine *m;
	struct vm vm[2];
};

/* Both VMs alike: slot 0 = [0, MEM), 4-level tables, the data pages at DATA_GVA with word w of
 * page i = i * 1000 + w, NCPU vCPUs on the tables. */
static void env_init(struct env *e, const struct mode *mode, bool mmu_dirty)
{
	memset(e, 0, sizeof(*e));
	e->mode = mode;
	e->mmu_dirty = mmu_dirty;
	assert_int_equal(vmmu_machine_create(1ULL << 30, &e->m), 0);
	for (int k = 0; k < 2; k++) {
		struct vm *v = &e->vm[k];
		struct vmmu_vm_config cfg = { .mmu = mode->mmu, .host = mode->host };
		struct gpt_builder b = gpt_vm_builder(&v->gv);
		struct vmmu_regs r = {
			.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr4 = X86_CR4_PAE,
			.efer = EFER_LME | EFER_LMA | EFER_NXE,
		};
		uint64_t hva;

		assert_int_equal(vmmu_vm_create_on(e->m, &cfg, &v->gv.vm), 0);
		assert_int_equal(vmmu_vm_mmap(v->gv.vm, MEM, false, &hva), 0);
		v->hva = hva;
		struct vmmu_userspace_memory_region slot = {
			.slot = 0, .memory_size = MEM, .userspace_addr = hva,
		};
		assert_int_equal(vmmu_set_user_memory_region(v->gv.vm, &slot), 0);
		v->gv.next_table = 0x100000;
		v->root = gpt_vm_new_table(&v->gv);
		for (uint64_t i = 0; i < NDATA; i++) {
			gpt_map(&b, v->root, 4, DATA_GVA + i * PAGE, DATA_GPA + i * PAGE, 1, PRWUAD);
			for (uint64_t w = 0; w < PAGE / 8; w++)
				gpt_vm_wr(&v->gv, DATA_GPA + i * PAGE + w * 8, i * 1000 + w);
		}
		r.cr3 = v->root;
		for (unsigned c = 0; c < NCPU; c++) {
			assert_int_equal(vmmu_vcpu_create(v->gv.vm, c, &v->v[c]), 0);
			assert_int_equal(vmmu_vcpu_set_regs(v->v[c], &r), 0);
		}
		assert_int_equal(vmmu_vm_set_mergeable(v->gv.vm, true), 0);
	}
	assert_int_equal(vmmu_ksm_set_params(e->m, "pages_to_scan=4096,sleep_millisecs=0", NULL, 0), 0);
	/* After the VMs are mergeable: the knob starts tracking in every one. */
	assert_int_equal(vmmu_ksm_set_param(e->m, "use_mmu_dirty", mmu_dirty), 0);
}

static void env_fini(struct env *e)
{
	for (int k = 0; k < 2; k++)
		vmmu_vm_destroy(e->vm[k].gv.vm);
	assert_int_equal(vmmu_machine_destroy(e->m), 0);
}

static void audits(struct env *e, const char *when)
{
	char why[256] = "";
	int rc = vmmu_ksm_audit(e->m, why, sizeof(why));

	TEST_ASSERT(rc == 0, "%s%s, %s: KSM audit: %s", e->mode->name,
		    e->mmu_dirty ? " (MMU dirty)" : "", when, why);
	for (int k = 0; k < 2; k++) {
		rc = vmmu_vm_audit(e->vm[k].gv.vm, why, sizeof(why));
		TEST_ASSERT(rc == 0, "%s, %s: VM %d audit: %s", e->mode->name, when, k, why);
	}
}

static struct vmmu_stats stats(struct env *e, int k)
{
	struct vmmu_stats s;

	assert_int_equal(vmmu_vm_get_stats(e->vm[k].gv.vm, &s), 0);
	return s;
}

/* ksmd passes until a whole pass merges nothing after two full scans. */
static void merge_all(struct env *e)
{
	uint64_t scans = 0;

	for (int pass = 0; pass < 100; pass++) {
		int merged = vmmu_ksm_run(e->m, 0, NULL);

		assert_true(merged >= 0);
		audits(e, "a ksmd pass");
		if (merged)
			scans = stats(e, 0).ksm_full_scans;
		else if (stats(e, 0).ksm_full_scans >= scans + 2)
			return;
	}
	fail_msg("%s: ksmd did not converge", e->mode->name);
}

static uint64_t rd8(struct env *e, int k, unsigned c, gva_t gva)
{
	struct vmmu_access_result res;
	uint64_t x = 0;
	int rc = vmmu_vcpu_access(e->vm[k].v[c], gva, 8, VMMU_ACC_READ, &x, &res);

	TEST_ASSERT(rc == 0 && res.status == VMMU_ACCESS_DONE, "%s: read %#" PRIx64 ": %d/%d",
		    e->mode->name, gva, rc, res.status);
	return x;
}

static void wr8(struct env *e, int k, unsigned c, gva_t gva, uint64_t x)
{
	struct vmmu_access_result res;
	int rc = vmmu_vcpu_access(e->vm[k].v[c], gva, 8, VMMU_ACC_WRITE, &x, &res);

	TEST_ASSERT(rc == 0 && res.status == VMMU_ACCESS_DONE, "%s: write %#" PRIx64 ": %d/%d",
		    e->mode->name, gva, rc, res.status);
}

static void two_vms_write_merged(const struct mode *mode, bool mmu_dirty)
{
	struct env e;
	struct vmmu_stats s0, s1;

	env_init(&e, mode, mmu_dirty);
	/* Both VMs read every data page first: their sptes and TLB entries exist before the merge
	 * and must go with it. */
	for (int k = 0; k < 2; k++)
		for (uint64_t i = 0; i < NDATA; i++)
			assert_int_equal(rd8(&e, k, 0, DATA_GVA + i * PAGE), i * 1000);
	merge_all(&e);
	s0 = stats(&e, 0);
	/* At least the data pages of one VM are gone (the tables and zero pages merge too). */
	TEST_ASSERT(s0.ksm_pages_sharing >= NDATA, "%s: %" PRIu64 " sharing", mode->name,
		    s0.ksm_pages_sharing);
	TEST_ASSERT(s0.general_profit > 0, "%s", mode->name);
	/* Reads of merged pages map them (read-only), from both vCPUs of both VMs. */
	for (int k = 0; k < 2; k++)
		for (unsigned c = 0; c < NCPU; c++)
			for (uint64_t i = 0; i < NDATA; i++)
				assert_int_equal(rd8(&e, k, c, DATA_GVA + i * PAGE + 8), i * 1000 + 1);
	audits(&e, "reads of merged pages");

	s0 = stats(&e, 0);
	for (uint64_t i = 0; i < NDATA; i += 2) {
		wr8(&e, 0, 0, DATA_GVA + i * PAGE + 16, 0xA000 + i);
		wr8(&e, 1, 1, DATA_GVA + i * PAGE + 16, 0xB000 + i);
		audits(&e, "a write to a merged page");
	}
	s1 = stats(&e, 0);
	TEST_ASSERT(s1.ksm_cow_breaks - s0.ksm_cow_breaks >= NDATA, "%s: %" PRIu64 " COW breaks",
		    mode->name, s1.ksm_cow_breaks - s0.ksm_cow_breaks);
	if (mode->mmu != VMMU_MMU_NATIVE)
		TEST_ASSERT(s1.exits > s0.exits, "%s: a write to a merged page must exit",
			    mode->name);
	/* Each VM sees its own data, through either vCPU and from the VMM side. */
	for (uint64_t i = 0; i < NDATA; i++) {
		uint64_t want0 = i & 1 ? i * 1000 + 2 : 0xA000 + i;
		uint64_t want1 = i & 1 ? i * 1000 + 2 : 0xB000 + i;
		uint64_t x = 0;

		assert_int_equal(rd8(&e, 0, 1, DATA_GVA + i * PAGE + 16), want0);
		assert_int_equal(rd8(&e, 1, 0, DATA_GVA + i * PAGE + 16), want1);
		assert_int_equal(vmmu_read_guest(e.vm[1].gv.vm, DATA_GPA + i * PAGE + 16, &x, 8), 0);
		assert_int_equal(x, want1);
	}
	env_fini(&e);
}

static void test_two_vms_write_merged(void **state)
{
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		for (int d = 0; d < 2; d++)
			two_vms_write_merged(&modes[m], d);
}

/*
 * Both vCPUs of both VMs write the data pages in a tight loop, both VMs the same values, so the
 * pages keep becoming equal again and ksmd (a pass every step) keeps merging them again; every
 * step is audited and every read checked against the model.
 */
static void tight_loop(const struct mode *mode, bool mmu_dirty)
{
	static uint64_t model[NDATA][4];
	struct env e;
	uint64_t rnd = 88172645463325252ULL;

	env_init(&e, mode, mmu_dirty);
	for (uint64_t i = 0; i < NDATA; i++)
		for (unsigned w = 0; w < 4; w++)
			model[i][w] = i * 1000 + w;
	merge_all(&e);
	for (unsigned step = 0; step < 400; step++) {
		uint64_t i, w, val;

		rnd ^= rnd << 13;
		rnd ^= rnd >> 7;
		rnd ^= rnd << 17;
		i = rnd % NDATA;
		w = (rnd >> 8) % 4;
		val = (rnd >> 16) % 3;     /* few values: pages often equal again */
		for (int k = 0; k < 2; k++)
			wr8(&e, k, (step + (unsigned)k) % NCPU, DATA_GVA + i * PAGE + w * 8, val);
		model[i][w] = val;
		assert_true(vmmu_ksm_run(e.m, 0, NULL) >= 0);
		audits(&e, "the tight loop");
		for (int k = 0; k < 2; k++)
			for (unsigned c = 0; c < NCPU; c++)
				assert_int_equal(rd8(&e, k, c, DATA_GVA + i * PAGE + w * 8), val);
	}
	for (int k = 0; k < 2; k++)
		for (uint64_t i = 0; i < NDATA; i++)
			for (unsigned w = 0; w < 4; w++)
				assert_int_equal(rd8(&e, k, 1, DATA_GVA + i * PAGE + w * 8), model[i][w]);
	TEST_ASSERT(stats(&e, 0).ksm_merges > NDATA, "%s: pages were merged again", mode->name);
	env_fini(&e);
}

static void test_tight_loop(void **state)
{
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		for (int d = 0; d < 2; d++)
			tight_loop(&modes[m], d);
}

/* Passes of ksmd until a full scan ends, each audited. */
static struct vmmu_stats full_scan(struct env *e)
{
	uint64_t scans = stats(e, 0).ksm_full_scans;

	while (stats(e, 0).ksm_full_scans == scans) {
		assert_true(vmmu_ksm_run(e->m, 0, NULL) >= 0);
		audits(e, "a ksmd pass");
	}
	return stats(e, 0);
}

/*
 * use_mmu_dirty, page by page. After the merge, VM 0's page U (its own bytes, never merged) is
 * unwritten: a quiet full scan takes no checksum at all (it would take one per unmerged page on
 * checksums). A guest write through its spte is seen at the next scan (volatile, no checksum),
 * and so is a second write after that harvest, which only a write-protection renewed by the
 * harvest can catch; meanwhile a write through the VMM (vmmu_write_guest) is seen too. The user's
 * dirty log, on through all of it, still reports every write KSM harvested.
 */
static void mmu_dirty(const struct mode *mode)
{
	const gva_t u = DATA_GVA + 5 * PAGE;
	struct vmmu_stats s0, s1, c0, c1;
	struct env e;
	uint64_t bm[MEM / PAGE / 64];
	struct vmmu_userspace_memory_region slot = { .slot = 0, .memory_size = MEM };

	env_init(&e, mode, false);
	/* VM 0's page 5 differs from VM 1's; both VMs map every data page first, page 5 of VM 0
	 * writable from both vCPUs: tracking must write-protect what is mapped when it starts. */
	wr8(&e, 0, 0, u + 64, 0x5151);
	wr8(&e, 0, 1, u + 64, 0x5151);
	for (int k = 0; k < 2; k++)
		for (uint64_t i = 0; i < NDATA; i++)
			rd8(&e, k, 1, DATA_GVA + i * PAGE);
	assert_int_equal(vmmu_ksm_set_param(e.m, "use_mmu_dirty", 1), 0);
	e.mmu_dirty = true;
	audits(&e, "tracking started");
	merge_all(&e);
	/* Passes that end far from page 5 of VM 0 (page 517 of ksmd's round), so that a full scan
	 * looks at it once. */
	assert_int_equal(vmmu_ksm_set_param(e.m, "pages_to_scan", 64), 0);
	/* The user's dirty log on VM 0 (a flags-only change), drained. */
	slot.userspace_addr = e.vm[0].hva;
	slot.flags = VMMU_MEM_LOG_DIRTY_PAGES;
	assert_int_equal(vmmu_set_user_memory_region(e.vm[0].gv.vm, &slot), 0);
	assert_int_equal(vmmu_get_dirty_log(e.vm[0].gv.vm, 0, bm), 0);

	s0 = full_scan(&e);
	s1 = full_scan(&e);
	TEST_ASSERT(s1.ksm_checksums == s0.ksm_checksums, "%s: a quiet full scan took %" PRIu64
		    " checksums", mode->name, s1.ksm_checksums - s0.ksm_checksums);
	TEST_ASSERT(s1.ksm_mmu_unchanged > s0.ksm_mmu_unchanged, "%s: no checksum reused",
		    mode->name);
	TEST_ASSERT(s1.ksm_mmu_written == s0.ksm_mmu_written, "%s: written while quiet", mode->name);

	/* Write 1: through the spte (a fault makes it writable and marks both logs). Under EPT
	 * the walk after the harvest's flush writes the guest tables too (A/D assists count as
	 * writes), so they are seen written with it. */
	wr8(&e, 0, 0, u + 72, 0x7272);
	c0 = full_scan(&e);
	TEST_ASSERT(c0.ksm_mmu_written > s1.ksm_mmu_written, "%s: write 1 unseen", mode->name);
	TEST_ASSERT(c0.ksm_checksums == s1.ksm_checksums, "%s: a written page checksummed",
		    mode->name);
	/* Unwritten since: each checksummed once, a candidate. */
	c1 = full_scan(&e);
	TEST_ASSERT(c1.ksm_checksums - c0.ksm_checksums == c0.ksm_mmu_written - s1.ksm_mmu_written &&
		    c1.ksm_mmu_written == c0.ksm_mmu_written, "%s: after write 1: %" PRIu64
		    " checksums, %" PRIu64 " written", mode->name,
		    c1.ksm_checksums - c0.ksm_checksums, c1.ksm_mmu_written - c0.ksm_mmu_written);
	/* Write 2, after the harvest that saw write 1: only its write protection catches it (an
	 * unseen write fails the KSM audit: a checksum reused over changed bytes). */
	wr8(&e, 0, 1, u + 80, 0x8080);
	c0 = full_scan(&e);
	TEST_ASSERT(c0.ksm_mmu_written > c1.ksm_mmu_written, "%s: write 2 unseen", mode->name);
	full_scan(&e);
	/* Write 3, from the VMM. */
	c1 = stats(&e, 0);
	{
		uint64_t x = 0x9090;
		gpa_t gpa = DATA_GPA + 5 * PAGE + 88;

		assert_int_equal(vmmu_write_guest(e.vm[0].gv.vm, gpa, &x, 8), 0);
	}
	c0 = full_scan(&e);
	TEST_ASSERT(c0.ksm_mmu_written == c1.ksm_mmu_written + 1, "%s: VMM write: %" PRIu64
		    " pages written", mode->name, c0.ksm_mmu_written - c1.ksm_mmu_written);
	/* The user's log: page 5 written three times, reported. */
	assert_int_equal(vmmu_get_dirty_log(e.vm[0].gv.vm, 0, bm), 0);
	{
		uint64_t pg = (DATA_GPA >> 12) + 5;

		TEST_ASSERT((bm[pg / 64] >> (pg % 64)) & 1, "%s: the user's log lost a write",
			    mode->name);
	}
	/* A write, then the slot deleted and made again over the same memory: the write's bit went
	 * with the old slot, ksmd still holds the page's checksum of the same frame; the new slot's
	 * pages start written, so ksmd forgets it (the KSM audit fails on a reused stale one). */
	full_scan(&e);
	wr8(&e, 0, 0, u + 96, 0x6060);
	slot.memory_size = 0;
	assert_int_equal(vmmu_set_user_memory_region(e.vm[0].gv.vm, &slot), 0);
	slot.memory_size = MEM;
	assert_int_equal(vmmu_set_user_memory_region(e.vm[0].gv.vm, &slot), 0);
	c1 = stats(&e, 0);
	c0 = full_scan(&e);
	TEST_ASSERT(c0.ksm_mmu_written > c1.ksm_mmu_written, "%s: re-made slot: no page written",
		    mode->name);
	full_scan(&e);

	/* Off: tracking stops, checksums again; every page still reads right. */
	assert_int_equal(vmmu_ksm_set_param(e.m, "use_mmu_dirty", 0), 0);
	s0 = full_scan(&e);
	s1 = full_scan(&e);
	TEST_ASSERT(s1.ksm_checksums > s0.ksm_checksums && s1.ksm_mmu_harvests == s0.ksm_mmu_harvests,
		    "%s: off", mode->name);
	assert_int_equal(rd8(&e, 0, 0, u + 64), 0x5151);
	assert_int_equal(rd8(&e, 0, 0, u + 88), 0x9090);
	assert_int_equal(rd8(&e, 0, 0, u + 96), 0x6060);
	assert_int_equal(rd8(&e, 1, 0, u + 64), 5 * 1000 + 8);
	env_fini(&e);
}

static void test_mmu_dirty(void **state)
{
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		mmu_dirty(&modes[m]);
}

/* A memslot added after the VM was made mergeable is mergeable too (QEMU madvises each RAM
 * block as it comes), and tracked for use_mmu_dirty. */
static void test_late_slot(void **state)
{
	struct vmmu_userspace_memory_region r = {
		.slot = 1, .guest_phys_addr = 1ULL << 30, .memory_size = 16 * PAGE,
	};
	struct vmmu_stats s0, s1;
	struct env e;

	(void)state;
	for (int d = 0; d < 2; d++) {
		env_init(&e, &modes[3], d);
		merge_all(&e);
		s0 = stats(&e, 0);
		assert_int_equal(vmmu_vm_mmap(e.vm[0].gv.vm, r.memory_size, false, &r.userspace_addr), 0);
		assert_int_equal(vmmu_set_user_memory_region(e.vm[0].gv.vm, &r), 0);
		for (uint64_t i = 0; i < 16; i++)
			for (uint64_t w = 0; w < PAGE / 8; w++) {
				uint64_t x = 0xC0FFEE00 + w;

				assert_int_equal(vmmu_write_guest(e.vm[0].gv.vm, r.guest_phys_addr +
								  i * PAGE + w * 8, &x, 8), 0);
			}
		merge_all(&e);
		s1 = stats(&e, 0);
		TEST_ASSERT(s1.ksm_pages_sharing >= s0.ksm_pages_sharing + 15,
			    "use_mmu_dirty=%d: the late slot's 16 equal pages: %" PRIu64 " -> %" PRIu64
			    " sharing", d, s0.ksm_pages_sharing, s1.ksm_pages_sharing);
		env_fini(&e);
	}
}

/* The API's checks: knobs by name and range, a machine with VMs stays. */
static void test_api(void **state)
{
	struct env e;
	char err[200];
	uint64_t v;

	env_init(&e, &modes[3], false);
	assert_int_equal(vmmu_ksm_set_param(e.m, "pages_to_scan", 7), 0);
	assert_int_equal(vmmu_ksm_get_param(e.m, "pages_to_scan", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(vmmu_ksm_set_param(e.m, "use_zero_pages", 2), -ERANGE);
	assert_int_equal(vmmu_ksm_set_param(e.m, "use_mmu_dirty", 2), -ERANGE);
	assert_int_equal(vmmu_ksm_get_param(e.m, "use_mmu_dirty", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(vmmu_ksm_set_param(e.m, "nope", 2), -ENOENT);
	assert_int_equal(vmmu_ksm_set_params(NULL, "run=0,pages_to_scan=5", err, sizeof(err)), 0);
	assert_int_equal(vmmu_ksm_set_params(NULL, "run=0,", err, sizeof(err)), -EINVAL);
	assert_int_equal(vmmu_ksm_set_params(NULL, "run=0x1", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "decimal"));
	assert_int_equal(vmmu_ksm_set_params(NULL, "max_page_sharing=1", err, sizeof(err)), -EINVAL);
	assert_int_equal(vmmu_ksm_set_params(NULL, "sleep=1", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "no knob"));
	assert_int_equal(vmmu_machine_destroy(e.m), -EBUSY);
	env_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_two_vms_write_merged),
		cmocka_unit_test(test_tight_loop),
		cmocka_unit_test(test_mmu_dirty),
		cmocka_unit_test(test_late_slot),
		cmocka_unit_test(test_api),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
