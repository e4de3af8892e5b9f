/* SPDX-License-Identifier: MIT */
/*
 * The guest model (libvmmuguest) through its public API: what a process can observe.
 *  - demand paging (the zero page, then a private frame), brk, exec (the image, private data);
 *  - copy-on-write isolation after fork, both ways, for anonymous memory, the image's data and
 *    guest huge pages;
 *  - munmap then access kills; mprotect honoured (read-only, PROT_NONE, no-exec, restored);
 *  - TLB coherence across vCPUs: a thread on another vCPU never uses a translation the kernel
 *    removed (shootdowns), with and without PCIDs, including a vCPU that switched away and back;
 *  - exit frees every page and table (free frames back to where they started);
 *  - page aging; the device;
 *  - runs: every workload small, one seed one digest, another seed another digest; bad
 *    parameters; modes not built yet;
 *  - migrate: each dirty-log harvest holds every page the guest wrote (and the check fails when
 *    another harvester took the bits), the same digest in every mode, pf_fast with fastpf only;
 *  - the nested walk cache (an internal switch): EPT and NPT runs with it off, on, and checked on
 *    every hit give one result, every statistic included;
 *  - the lackey parser and reader: good lines, malformed ones with their line number, gzip.
 * The test data directory (tests/data) comes as argv[1], or $VMMU_TEST_DATA.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "cpu/cpu.h"
#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

#define RW (VMMU_PROT_READ | VMMU_PROT_WRITE)
#define PF_P 1u
#define PF_W 2u
#define PF_U 4u
#define PF_I 16u

static const char *data_dir = "tests/data";

/* An assertion that prints the expression, as TEST_ASSERT does. */
#define TEST_ASSERT(e, ...)                                                                        \
	do {                                                                                       \
		if (!(e)) {                                                                        \
			print_error("%s:%d: failed: %s: ", __FILE__, __LINE__, #e);                \
			print_error(__VA_ARGS__);                                                  \
			print_error("\n");                                                         \
			fail();                                                                    \
		}                                                                                  \
	} while (0)

static struct vmmu_guest *boot(unsigned vcpus, bool thp, bool pcid)
{
	struct vmmu_guest_config cfg = {
		.mem_bytes = 64ULL << 20, .vcpus = vcpus, .guest_thp = thp, .no_pcid = !pcid, .seed = 1,
	};
	struct vmmu_guest *g = NULL;
	int rc = vmmu_guest_create(&cfg, &g);
	TEST_ASSERT(rc == 0, "vmmu_guest_create: %d", rc);
	return g;
}

static uint64_t rd(struct vmmu_guest *g, int pid, uint64_t va)
{
	uint64_t v = 0;
	int rc = vmmu_guest_access(g, pid, va, 8, VMMU_ACC_READ, &v);
	TEST_ASSERT(rc == 0, "read %#llx by %d: %d", (unsigned long long)va, pid, rc);
	return v;
}

static void wr(struct vmmu_guest *g, int pid, uint64_t va, uint64_t v)
{
	int rc = vmmu_guest_access(g, pid, va, 8, VMMU_ACC_WRITE, &v);
	TEST_ASSERT(rc == 0, "write %#llx by %d: %d", (unsigned long long)va, pid, rc);
}

static uint64_t faults(struct vmmu_guest *g)
{
	struct vmmu_guest_result r;
	assert_int_equal(vmmu_guest_result(g, &r), 0);
	return r.page_faults;
}

static void expect_killed(struct vmmu_guest *g, int pid, uint64_t va, int sig, uint32_t ec)
{
	struct vmmu_task_info ti;
	assert_int_equal(vmmu_guest_task_info(g, pid, &ti), 0);
	TEST_ASSERT(ti.state == VMMU_TASK_KILLED, "pid %d state %d", pid, ti.state);
	TEST_ASSERT(ti.signal == sig, "signal %d, expected %d", ti.signal, sig);
	TEST_ASSERT(ti.fault_addr == va, "fault address %#llx, expected %#llx",
		    (unsigned long long)ti.fault_addr, (unsigned long long)va);
	TEST_ASSERT(ti.fault_ec == ec, "error code %#x, expected %#x", ti.fault_ec, ec);
}

static int spawn(struct vmmu_guest *g, unsigned cpu)
{
	int pid = 0;
	assert_int_equal(vmmu_guest_spawn(g, cpu, &pid), 0);
	TEST_ASSERT(pid > 0, "pid %d", pid);
	return pid;
}

static uint64_t map(struct vmmu_guest *g, int pid, uint64_t len, unsigned prot)
{
	uint64_t a = 0;
	int rc = vmmu_guest_mmap(g, pid, 0, len, prot, 0, &a);
	TEST_ASSERT(rc == 0, "mmap: %d", rc);
	return a;
}

/* ---- the kernel ---- */

static void test_demand_paging(void **state)
{
	struct vmmu_guest *g = boot(1, false, true);
	int pid = spawn(g, 0);
	uint64_t a = map(g, pid, 16 * 4096, RW), f0 = faults(g), free0;

	assert_int_equal(rd(g, pid, a), 0);                   /* the zero page */
	assert_int_equal(faults(g), f0 + 1);
	free0 = vmmu_guest_free_frames(g);
	wr(g, pid, a, 0x1234);                                /* now a private frame */
	assert_int_equal(faults(g), f0 + 2);
	assert_int_equal(vmmu_guest_free_frames(g), free0 - 1);
	wr(g, pid, a + 8, 0x5678);                            /* no fault */
	assert_int_equal(faults(g), f0 + 2);
	assert_int_equal(rd(g, pid, a), 0x1234);
	assert_int_equal(rd(g, pid, a + 8), 0x5678);
	assert_int_equal(rd(g, pid, a + 4096), 0);            /* a neighbour stays zero */
	/* An access across two pages. */
	uint64_t v = 0x1122334455667788ULL;
	assert_int_equal(vmmu_guest_access(g, pid, a + 2 * 4096 - 4, 8, VMMU_ACC_WRITE, &v), 0);
	assert_int_equal(rd(g, pid, a + 2 * 4096 - 4), 0x1122334455667788ULL);
	vmmu_guest_destroy(g);
}

static void test_cow_isolation(void **state)
{
	for (int pcid = 0; pcid < 2; pcid++) {
		struct vmmu_guest *g = boot(2, false, pcid);
		int parent = spawn(g, 0), child = 0;
		uint64_t a = map(g, parent, 8 * 4096, RW);

		wr(g, parent, a, 0xAAAA);
		wr(g, parent, a + 4096, 0xBBBB);
		assert_int_equal(vmmu_guest_fork(g, parent, 1, &child), 0);
		assert_int_equal(rd(g, child, a), 0xAAAA);
		wr(g, child, a, 0xC0C0);                          /* the child's copy */
		assert_int_equal(rd(g, parent, a), 0xAAAA);
		assert_int_equal(rd(g, child, a), 0xC0C0);
		wr(g, parent, a + 4096, 0xDDDD);                  /* the parent's copy */
		assert_int_equal(rd(g, child, a + 4096), 0xBBBB);
		assert_int_equal(rd(g, parent, a + 4096), 0xDDDD);
		/* Memory untouched before the fork is private on both sides too. */
		wr(g, child, a + 2 * 4096, 7);
		assert_int_equal(rd(g, parent, a + 2 * 4096), 0);
		/* The image's data page (a private file mapping). */
		uint64_t d0 = vmmu_guest_image_word(VMMU_GUEST_TEXT_PAGES * 4096ULL);
		assert_int_equal(rd(g, parent, VMMU_GUEST_DATA_BASE), d0);
		wr(g, child, VMMU_GUEST_DATA_BASE, 99);
		assert_int_equal(rd(g, parent, VMMU_GUEST_DATA_BASE), d0);
		assert_int_equal(rd(g, child, VMMU_GUEST_DATA_BASE), 99);
		int other = spawn(g, 1);
		assert_int_equal(rd(g, other, VMMU_GUEST_DATA_BASE), d0);   /* page cache intact */
		vmmu_guest_destroy(g);
	}
}

static void test_munmap_kills(void **state)
{
	struct vmmu_guest *g = boot(1, false, true);
	int pid = spawn(g, 0);
	uint64_t a = map(g, pid, 4 * 4096, RW), v = 0;

	wr(g, pid, a + 4096, 1);
	assert_int_equal(vmmu_guest_munmap(g, pid, a + 4096, 4096), 0);
	wr(g, pid, a, 2);                                     /* the rest is still there */
	assert_int_equal(vmmu_guest_access(g, pid, a + 4096, 8, VMMU_ACC_READ, &v), -EFAULT);
	expect_killed(g, pid, a + 4096, VMMU_SIGSEGV, PF_U);
	assert_int_equal(vmmu_guest_access(g, pid, a, 8, VMMU_ACC_READ, &v), -ESRCH);
	/* munmap's argument checks */
	pid = spawn(g, 0);
	assert_int_equal(vmmu_guest_munmap(g, pid, a + 1, 4096), -EINVAL);
	assert_int_equal(vmmu_guest_munmap(g, pid, a, 0), -EINVAL);
	assert_int_equal(vmmu_guest_munmap(g, pid, a, 4096), 0);      /* nothing there: fine */
	vmmu_guest_destroy(g);
}

static void test_mprotect(void **state)
{
	struct vmmu_guest *g = boot(1, false, true);
	int pid = spawn(g, 0);
	uint64_t a = map(g, pid, 4 * 4096, RW), v = 0;

	wr(g, pid, a, 11);
	wr(g, pid, a + 4096, 22);
	assert_int_equal(vmmu_guest_mprotect(g, pid, a, 4096, VMMU_PROT_READ), 0);
	assert_int_equal(rd(g, pid, a), 11);
	/* PROT_NONE, then back: the value survives. */
	assert_int_equal(vmmu_guest_mprotect(g, pid, a + 4096, 4096, VMMU_PROT_NONE), 0);
	assert_int_equal(vmmu_guest_mprotect(g, pid, a + 4096, 4096, RW), 0);
	assert_int_equal(rd(g, pid, a + 4096), 22);
	wr(g, pid, a + 4096, 23);
	/* Not mapped: ENOMEM and nothing changes. */
	assert_int_equal(vmmu_guest_mprotect(g, pid, a, 8 * 4096, VMMU_PROT_READ), -ENOMEM);
	wr(g, pid, a + 4096, 24);
	/* A write to the read-only page kills with a protection fault. */
	v = 5;
	assert_int_equal(vmmu_guest_access(g, pid, a, 8, VMMU_ACC_WRITE, &v), -EFAULT);
	expect_killed(g, pid, a, VMMU_SIGSEGV, PF_P | PF_W | PF_U);

	pid = spawn(g, 0);
	a = map(g, pid, 4096, RW);
	wr(g, pid, a, 1);
	assert_int_equal(vmmu_guest_mprotect(g, pid, a, 4096, VMMU_PROT_NONE), 0);
	assert_int_equal(vmmu_guest_access(g, pid, a, 8, VMMU_ACC_READ, &v), -EFAULT);
	expect_killed(g, pid, a, VMMU_SIGSEGV, PF_U);

	/* No-exec: data cannot be fetched; the text can. */
	pid = spawn(g, 0);
	a = map(g, pid, 4096, RW);
	wr(g, pid, a, 1);
	assert_int_equal(vmmu_guest_access(g, pid, VMMU_GUEST_TEXT_BASE, 8, VMMU_ACC_FETCH, &v), 0);
	assert_int_equal(v, vmmu_guest_image_word(0));
	assert_int_equal(vmmu_guest_access(g, pid, a, 8, VMMU_ACC_FETCH, &v), -EFAULT);
	expect_killed(g, pid, a, VMMU_SIGSEGV, PF_P | PF_U | PF_I);

	/* Made executable, it can be fetched. */
	pid = spawn(g, 0);
	a = map(g, pid, 4096, RW);
	wr(g, pid, a, 0x90);
	assert_int_equal(vmmu_guest_mprotect(g, pid, a, 4096, VMMU_PROT_READ | VMMU_PROT_EXEC), 0);
	assert_int_equal(vmmu_guest_access(g, pid, a, 1, VMMU_ACC_FETCH, &v), 0);
	assert_int_equal(v, 0x90);
	/* The text is read-only: this process never touched it, so the write finds no entry. */
	v = 1;
	assert_int_equal(vmmu_guest_access(g, pid, VMMU_GUEST_TEXT_BASE, 8, VMMU_ACC_WRITE, &v), -EFAULT);
	expect_killed(g, pid, VMMU_GUEST_TEXT_BASE, VMMU_SIGSEGV, PF_W | PF_U);
	vmmu_guest_destroy(g);
}

static void test_brk(void **state)
{
	struct vmmu_guest *g = boot(1, false, true);
	int pid = spawn(g, 0);
	uint64_t b0 = 0, b1 = 0, v = 0;

	assert_int_equal(vmmu_guest_brk(g, pid, 0, &b0), 0);
	assert_int_equal(b0, VMMU_GUEST_DATA_BASE + VMMU_GUEST_DATA_PAGES * 4096ULL);
	assert_int_equal(vmmu_guest_brk(g, pid, b0 + 65536, &b1), 0);
	assert_int_equal(b1, b0 + 65536);
	wr(g, pid, b0, 1);
	wr(g, pid, b0 + 65536 - 8, 2);
	assert_int_equal(vmmu_guest_brk(g, pid, b0 + 4096, &b1), 0);   /* shrink */
	assert_int_equal(rd(g, pid, b0), 1);
	assert_int_equal(vmmu_guest_access(g, pid, b0 + 65536 - 8, 8, VMMU_ACC_READ, &v), -EFAULT);
	expect_killed(g, pid, b0 + 65536 - 8, VMMU_SIGSEGV, PF_U);
	vmmu_guest_destroy(g);
}

static void test_exec(void **state)
{
	struct vmmu_guest *g = boot(1, false, true);
	int pid = spawn(g, 0);
	uint64_t a = map(g, pid, 4096, RW), v = 0;

	wr(g, pid, a, 1);
	wr(g, pid, VMMU_GUEST_DATA_BASE, 42);
	assert_int_equal(vmmu_guest_exec(g, pid), 0);
	/* A fresh image: the data is the file's again, the old mapping is gone. */
	assert_int_equal(rd(g, pid, VMMU_GUEST_DATA_BASE),
			 vmmu_guest_image_word(VMMU_GUEST_TEXT_PAGES * 4096ULL));
	assert_int_equal(rd(g, pid, VMMU_GUEST_TEXT_BASE + 4096), vmmu_guest_image_word(4096));
	assert_int_equal(vmmu_guest_access(g, pid, a, 8, VMMU_ACC_READ, &v), -EFAULT);
	expect_killed(g, pid, a, VMMU_SIGSEGV, PF_U);
	vmmu_guest_destroy(g);
}

static void test_exit_frees_everything(void **state)
{
	for (int thp = 0; thp < 2; thp++) {
		struct vmmu_guest *g = boot(2, thp, true);
		uint64_t free0 = vmmu_guest_free_frames(g);
		int pid = spawn(g, 0), child = 0, tid = 0;
		uint64_t a = map(g, pid, 8ULL << 20, RW), brk = 0;
		struct vmmu_task_info ti;

		for (uint64_t off = 0; off < (8ULL << 20); off += 4096)
			wr(g, pid, a + off, off);
		assert_int_equal(vmmu_guest_brk(g, pid, 0, &brk), 0);
		assert_int_equal(vmmu_guest_brk(g, pid, brk + (3 << 20), &brk), 0);
		wr(g, pid, brk - 8, 1);
		assert_int_equal(vmmu_guest_fork(g, pid, 1, &child), 0);
		for (uint64_t off = 0; off < (8ULL << 20); off += 64 * 4096)
			wr(g, child, a + off, 1);
		/* Unmap pieces that split huge pages, shared and not. */
		assert_int_equal(vmmu_guest_munmap(g, child, a + 4096, 4096), 0);
		assert_int_equal(vmmu_guest_munmap(g, pid, a + (2 << 20) + 8192, 3 * 4096), 0);
		assert_int_equal(rd(g, child, a), 1);
		assert_int_equal(rd(g, pid, a + 4096 * 2), 4096 * 2);
		assert_int_equal(rd(g, child, a + (2 << 20) + 8192), (2 << 20) + 8192);
		assert_int_equal(vmmu_guest_mprotect(g, pid, a + (4 << 20) + 4096, 4096, VMMU_PROT_READ), 0);
		assert_int_equal(rd(g, pid, a + (4 << 20) + 4096), (4 << 20) + 4096);
		assert_int_equal(vmmu_guest_thread(g, pid, 1, &tid), 0);
		assert_int_equal(rd(g, tid, a + 8192), 8192);
		assert_int_equal(vmmu_guest_task_info(g, pid, &ti), 0);
		TEST_ASSERT(ti.rss_pages > 2000 && ti.pt_pages > 3, "rss %llu, tables %llu",
			    (unsigned long long)ti.rss_pages, (unsigned long long)ti.pt_pages);
		assert_int_equal(vmmu_guest_exit(g, child, 3), 0);
		assert_int_equal(vmmu_guest_exit(g, pid, 0), 0);
		TEST_ASSERT(vmmu_guest_free_frames(g) < free0, "the thread still holds the memory");
		assert_int_equal(vmmu_guest_exit(g, tid, 0), 0);
		TEST_ASSERT(vmmu_guest_free_frames(g) == free0, "thp %d: %llu frames free, %llu at start",
			    thp, (unsigned long long)vmmu_guest_free_frames(g), (unsigned long long)free0);
		assert_int_equal(vmmu_guest_task_info(g, child, &ti), 0);
		assert_int_equal(ti.state, VMMU_TASK_EXITED);
		assert_int_equal(ti.exit_code, 3);
		struct vmmu_guest_result r;
		assert_int_equal(vmmu_guest_result(g, &r), 0);
		if (thp)
			TEST_ASSERT(r.thp_allocs >= 4 && r.thp_splits >= 2, "thp %llu, splits %llu",
				    (unsigned long long)r.thp_allocs, (unsigned long long)r.thp_splits);
		TEST_ASSERT(r.mmio_accesses >= 4, "mmio %llu", (unsigned long long)r.mmio_accesses);
		vmmu_guest_destroy(g);
	}
}

static void test_thp_cow(void **state)
{
	struct vmmu_guest *g = boot(1, true, true);
	int pid = spawn(g, 0), child = 0;
	uint64_t a = map(g, pid, 4ULL << 20, RW);
	struct vmmu_guest_result r;
	struct vmmu_task_info ti;

	TEST_ASSERT(!(a & ((2 << 20) - 1)), "a 4M mapping is 2M aligned: %#llx", (unsigned long long)a);
	wr(g, pid, a + 100 * 4096, 5);
	assert_int_equal(vmmu_guest_task_info(g, pid, &ti), 0);
	assert_int_equal(ti.rss_pages, 512);
	assert_int_equal(vmmu_guest_fork(g, pid, 0, &child), 0);
	wr(g, child, a + 4096, 6);                    /* copies the 2M page */
	assert_int_equal(rd(g, pid, a + 4096), 0);
	assert_int_equal(rd(g, child, a + 100 * 4096), 5);
	assert_int_equal(rd(g, child, a + 4096), 6);
	wr(g, pid, a + 100 * 4096, 7);                /* the parent's is its own again: no copy */
	assert_int_equal(rd(g, child, a + 100 * 4096), 5);
	assert_int_equal(vmmu_guest_result(g, &r), 0);
	assert_int_equal(r.thp_allocs, 2);
	assert_int_equal(r.cow_copies, 512);
	vmmu_guest_destroy(g);
}

/* Another vCPU must never use a translation the kernel took away. */
static void test_shootdown(void **state)
{
	for (int pcid = 0; pcid < 2; pcid++) {
		struct vmmu_guest *g = boot(2, false, pcid);
		int pid = spawn(g, 0), tid = 0, other;
		uint64_t a = map(g, pid, 4 * 4096, RW), v = 1;
		struct vmmu_guest_result r;

		assert_int_equal(vmmu_guest_thread(g, pid, 1, &tid), 0);
		wr(g, pid, a, 1);
		wr(g, pid, a + 4096, 2);
		assert_int_equal(rd(g, tid, a), 1);           /* now cached on vCPU 1 */
		assert_int_equal(rd(g, tid, a + 4096), 2);
		/* mprotect on vCPU 0: vCPU 1's write must fault. */
		assert_int_equal(vmmu_guest_mprotect(g, pid, a + 4096, 4096, VMMU_PROT_READ), 0);
		assert_int_equal(vmmu_guest_access(g, tid, a + 4096, 8, VMMU_ACC_WRITE, &v), -EFAULT);
		expect_killed(g, tid, a + 4096, VMMU_SIGSEGV, PF_P | PF_W | PF_U);
		assert_int_equal(vmmu_guest_result(g, &r), 0);
		TEST_ASSERT(r.tlb_shootdowns >= 1, "shootdowns %llu", (unsigned long long)r.tlb_shootdowns);

		/* A vCPU that switched away and back: main thread on vCPU 0 caches a, another
		 * process runs there, a thread on vCPU 1 unmaps a, then main comes back. */
		assert_int_equal(vmmu_guest_thread(g, pid, 1, &tid), 0);
		other = spawn(g, 0);
		assert_int_equal(rd(g, pid, a), 1);
		assert_int_equal(rd(g, other, VMMU_GUEST_TEXT_BASE), vmmu_guest_image_word(0));
		assert_int_equal(vmmu_guest_munmap(g, tid, a, 4096), 0);
		assert_int_equal(vmmu_guest_access(g, pid, a, 8, VMMU_ACC_READ, &v), -EFAULT);
		expect_killed(g, pid, a, VMMU_SIGSEGV, PF_U);
		vmmu_guest_destroy(g);
	}
}

static void test_aging(void **state)
{
	struct vmmu_guest *g = boot(1, false, true);
	int pid = spawn(g, 0);
	uint64_t a = map(g, pid, 8 * 4096, RW), young = 0;

	for (int i = 0; i < 8; i++)
		wr(g, pid, a + i * 4096, (uint64_t)i);
	assert_int_equal(vmmu_guest_age(g, &young), 0);
	TEST_ASSERT(young >= 8, "young %llu", (unsigned long long)young);
	assert_int_equal(vmmu_guest_age(g, &young), 0);
	assert_int_equal(young, 0);
	assert_int_equal(rd(g, pid, a + 3 * 4096), 3);        /* walks again: Accessed set again */
	assert_int_equal(vmmu_guest_age(g, &young), 0);
	assert_int_equal(young, 1);
	vmmu_guest_destroy(g);
}

/*
 * The guest's khugepaged: a guard page splits a THP; the pass collapses it again with every value
 * kept, but not while a PROT_NONE page sits inside, and after a fork the parent's collapse gives
 * it a copy of its own: the child keeps its values and sees none of the parent's later writes.
 */
static void test_khugepaged(void **state)
{
	struct vmmu_guest *g = boot(2, true, true);
	int pid = spawn(g, 0), child;
	uint64_t a = map(g, pid, 4ULL << 20, RW), n = 99, free0;
	struct vmmu_guest_result r;

	TEST_ASSERT((a & ((2ULL << 20) - 1)) == 0, "mapping at %#llx", (unsigned long long)a);
	for (uint64_t i = 0; i < 1024; i += 3)
		wr(g, pid, a + i * 4096, i + 1);
	assert_int_equal(vmmu_guest_khugepaged(g, &n), 0);
	assert_int_equal(n, 0);                           /* both 2M are THPs */
	assert_int_equal(vmmu_guest_mprotect(g, pid, a + 4096, 4096, VMMU_PROT_NONE), 0);
	assert_int_equal(vmmu_guest_khugepaged(g, &n), 0);
	assert_int_equal(n, 0);                           /* split, but a PROT_NONE page inside */
	assert_int_equal(vmmu_guest_mprotect(g, pid, a + 4096, 4096, RW), 0);
	free0 = vmmu_guest_free_frames(g);
	assert_int_equal(vmmu_guest_khugepaged(g, &n), 0);
	assert_int_equal(n, 1);
	/* The split page's 512 frames and its table back, one 2M page taken. */
	assert_int_equal(vmmu_guest_free_frames(g), free0 + 1);
	for (uint64_t i = 0; i < 1024; i++)
		assert_int_equal(rd(g, pid, a + i * 4096), i % 3 ? 0 : i + 1);

	/* Split again, then fork: the child shares the 4K pages copy-on-write. */
	assert_int_equal(vmmu_guest_mprotect(g, pid, a + 8192, 4096, VMMU_PROT_READ), 0);
	assert_int_equal(vmmu_guest_mprotect(g, pid, a + 8192, 4096, RW), 0);
	assert_int_equal(vmmu_guest_fork(g, pid, 1, &child), 0);
	/* The child's entries start old (as Linux's fork makes them): not worth a THP yet. */
	assert_int_equal(vmmu_guest_khugepaged(g, &n), 0);
	assert_int_equal(n, 1);                           /* the parent's */
	assert_int_equal(rd(g, child, a + 6 * 4096), 7);
	assert_int_equal(vmmu_guest_khugepaged(g, &n), 0);
	assert_int_equal(n, 1);                           /* the child's, once it read a page */
	wr(g, pid, a, 7777);
	wr(g, child, a + 3 * 4096, 8888);
	assert_int_equal(rd(g, child, a), 1);
	assert_int_equal(rd(g, pid, a + 3 * 4096), 4);
	assert_int_equal(rd(g, pid, a), 7777);
	assert_int_equal(rd(g, child, a + 3 * 4096), 8888);
	assert_int_equal(vmmu_guest_result(g, &r), 0);
	assert_int_equal(r.thp_collapses, 3);
	TEST_ASSERT(r.thp_splits >= 2, "splits %llu", (unsigned long long)r.thp_splits);
	vmmu_guest_destroy(g);
}

/*
 * --guest-1g: a mapping of 1G is one 1G page (a single #PF maps it all), cut only on 1G
 * boundaries; a fork shares it copy-on-write and the parent's write copies all of it; unmapped,
 * its frames come back.
 */
static void test_huge_1g(void **state)
{
	struct vmmu_guest_config cfg = {
		.mem_bytes = 4ULL << 30, .vcpus = 2, .guest_1g = true, .seed = 1,
	};
	struct vmmu_guest *g = NULL;
	struct vmmu_guest_result r;
	uint64_t a, free0, f0;
	int pid, child;

	assert_int_equal(vmmu_guest_create(&cfg, &g), 0);
	pid = spawn(g, 0);
	free0 = vmmu_guest_free_frames(g);
	a = map(g, pid, 1ULL << 30, RW);
	TEST_ASSERT((a & ((1ULL << 30) - 1)) == 0, "mapping at %#llx", (unsigned long long)a);
	f0 = faults(g);
	wr(g, pid, a + 8, 1);
	wr(g, pid, a + (1ULL << 30) - 8, 2);
	assert_int_equal(rd(g, pid, a + (512ULL << 20)), 0);
	assert_int_equal(faults(g), f0 + 1);
	assert_int_equal(vmmu_guest_munmap(g, pid, a + 4096, 4096), -EINVAL);
	assert_int_equal(vmmu_guest_mprotect(g, pid, a, 2ULL << 20, VMMU_PROT_READ), -EINVAL);
	/* Other VMAs are cut anywhere (the heap's flag is not the 1G one). */
	{
		uint64_t brk0 = 0, brk1 = 0;

		assert_int_equal(vmmu_guest_brk(g, pid, 0, &brk0), 0);
		assert_int_equal(vmmu_guest_brk(g, pid, brk0 + 65536, &brk1), 0);
		assert_int_equal(vmmu_guest_mprotect(g, pid, brk0 + 8192, 4096, VMMU_PROT_READ), 0);
		assert_int_equal(vmmu_guest_munmap(g, pid, brk0 + 16384, 4096), 0);
	}

	assert_int_equal(vmmu_guest_fork(g, pid, 1, &child), 0);
	wr(g, pid, a + 8, 3);                             /* copies the whole 1G */
	assert_int_equal(rd(g, child, a + 8), 1);
	assert_int_equal(rd(g, child, a + (1ULL << 30) - 8), 2);
	assert_int_equal(rd(g, pid, a + (1ULL << 30) - 8), 2);
	assert_int_equal(rd(g, pid, a + 8), 3);
	assert_int_equal(vmmu_guest_result(g, &r), 0);
	assert_int_equal(r.huge_1g_pages, 2);
	assert_int_equal(vmmu_guest_exit(g, child, 0), 0);

	assert_int_equal(vmmu_guest_mprotect(g, pid, a, 1ULL << 30, VMMU_PROT_READ), 0);
	assert_int_equal(rd(g, pid, a + 8), 3);
	assert_int_equal(vmmu_guest_munmap(g, pid, a, 1ULL << 30), 0);
	assert_int_equal(vmmu_guest_access(g, pid, a, 8, VMMU_ACC_READ, &f0), -EFAULT);
	TEST_ASSERT(vmmu_guest_free_frames(g) + 64 >= free0, "%llu frames free, %llu before",
		    (unsigned long long)vmmu_guest_free_frames(g), (unsigned long long)free0);
	vmmu_guest_destroy(g);
}

static void test_api_args(void **state)
{
	struct vmmu_guest_config cfg = { .mem_bytes = 4096 };
	struct vmmu_guest *g = NULL;
	struct vmmu_task_info ti;
	uint64_t v = 0;

	assert_int_equal(vmmu_guest_create(&cfg, &g), -EINVAL);
	cfg.mem_bytes = 64 << 20;
	cfg.vcpus = 65;
	assert_int_equal(vmmu_guest_create(&cfg, &g), -EINVAL);
	cfg.vcpus = 1;
	cfg.vm.mmu = VMMU_MMU_EPT;
	cfg.vm.host = VMMU_HOST_SVM;   /* EPT is Intel's */
	assert_int_equal(vmmu_guest_create(&cfg, &g), -EINVAL);
	g = boot(1, false, true);
	int pid = spawn(g, 0);
	assert_int_equal(vmmu_guest_spawn(g, 1, &pid), -EINVAL);
	assert_int_equal(vmmu_guest_access(g, 999, 0, 8, VMMU_ACC_READ, &v), -ESRCH);
	assert_int_equal(vmmu_guest_access(g, pid, 0, 9, VMMU_ACC_READ, &v), -EINVAL);
	assert_int_equal(vmmu_guest_task_info(g, 999, &ti), -ESRCH);
	assert_int_equal(vmmu_guest_mmap(g, pid, 0, 0, RW, 0, &v), -EINVAL);
	assert_int_equal(vmmu_guest_mmap(g, pid, 0, 4096, 8, 0, &v), -EINVAL);
	assert_int_equal(vmmu_guest_mmap(g, pid, 0x1001, 4096, RW, VMMU_MAP_FIXED, &v), -EINVAL);
	assert_int_equal(vmmu_guest_mmap(g, pid, 0, 1ULL << 50, RW, 0, &v), -ENOMEM);
	/* A kernel address is never a user's. */
	assert_int_equal(vmmu_guest_access(g, pid, 0xffff888000000000ULL, 8, VMMU_ACC_READ, &v), -EFAULT);
	expect_killed(g, pid, 0xffff888000000000ULL, VMMU_SIGSEGV, PF_P | PF_U);
	/* MAP_FIXED replaces what was there. */
	pid = spawn(g, 0);
	uint64_t a = map(g, pid, 4 * 4096, RW), b = 0;
	wr(g, pid, a + 4096, 9);
	assert_int_equal(vmmu_guest_mmap(g, pid, a + 4096, 4096, RW, VMMU_MAP_FIXED, &b), 0);
	assert_int_equal(b, a + 4096);
	assert_int_equal(rd(g, pid, a + 4096), 0);
	vmmu_guest_destroy(g);
}

/* ---- runs ---- */

static unsigned aging;   /* --guest-aging of the runs below */

static int run_mode(const char *name, const char *const *kv, unsigned n, unsigned vcpus,
		    uint64_t seed, bool thp, enum vmmu_mmu mmu, enum vmmu_host host, uint32_t opts_off,
		    struct vmmu_guest_result *res, char *err, size_t errlen)
{
	struct vmmu_workload_args a;
	struct vmmu_guest_config cfg = {
		.vm = { .mmu = mmu, .host = host, .opts_off = opts_off },
		.vcpus = vcpus, .seed = seed, .guest_thp = thp, .mem_bytes = 256ULL << 20, .interleave = true,
		.audit_period = mmu == VMMU_MMU_NATIVE ? 0 : 64, .aging_period = aging,
	};
	int rc = vmmu_workload_args(name, kv, n, &a, err, errlen);

	if (rc)
		return rc;
	return vmmu_run(&cfg, &a, res, err, errlen);
}

static int run(const char *name, const char *const *kv, unsigned n, unsigned vcpus, uint64_t seed,
	       bool thp, struct vmmu_guest_result *res, char *err, size_t errlen)
{
	return run_mode(name, kv, n, vcpus, seed, thp, VMMU_MMU_NATIVE, VMMU_HOST_VMX, 0, res, err,
			errlen);
}

static void test_workloads_deterministic(void **state)
{
	static const struct {
		const char *name;
		const char *kv[4];
		unsigned n, vcpus;
	} cases[] = {
		{ "touch", { "size=2M", "passes=2" }, 2, 2 },
		{ "touch", { "size=1M", "write=off", "stride=100" }, 3, 1 },
		{ "gups", { "size=1M", "updates=20000" }, 2, 3 },
		{ "fork", { "iters=8", "size=512K" }, 2, 2 },
		{ "fork", { "iters=6", "size=256K", "exec=on", "jobs=3" }, 4, 2 },
		{ "ctxsw", { "procs=3", "rounds=50", "ws=8K" }, 3, 1 },
		{ "ctxsw", { "procs=5", "rounds=20" }, 2, 2 },
		{ "mmap", { "iters=20", "size=160K" }, 2, 2 },
		{ "clone-vms", { "size=1M", "procs=2" }, 2, 1 },
		{ "migrate", { "size=1M", "updates=20000", "interval=2000", "rounds=8" }, 4, 2 },
	};
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (int thp = 0; thp < 2; thp++) {
			struct vmmu_guest_result r1, r2, r3;
			int rc = run(cases[i].name, cases[i].kv, cases[i].n, cases[i].vcpus, 7, thp, &r1, err, sizeof(err));
			TEST_ASSERT(rc == 0, "%s: %d %s", cases[i].name, rc, err);
			rc = run(cases[i].name, cases[i].kv, cases[i].n, cases[i].vcpus, 7, thp, &r2, err, sizeof(err));
			TEST_ASSERT(rc == 0, "%s: %d %s", cases[i].name, rc, err);
			TEST_ASSERT(r1.digest == r2.digest, "%s: one seed, two digests %llx %llx", cases[i].name,
				    (unsigned long long)r1.digest, (unsigned long long)r2.digest);
			TEST_ASSERT(r1.accesses == r2.accesses && r1.page_faults == r2.page_faults,
				    "%s: counts differ", cases[i].name);
			TEST_ASSERT(r1.kills == 0, "%s: %llu tasks killed", cases[i].name, (unsigned long long)r1.kills);
			TEST_ASSERT(r1.page_faults > 0 && r1.accesses > 0, "%s: did nothing", cases[i].name);
			rc = run(cases[i].name, cases[i].kv, cases[i].n, cases[i].vcpus, 8, thp, &r3, err, sizeof(err));
			TEST_ASSERT(rc == 0, "%s: %d %s", cases[i].name, rc, err);
			/* Workloads without randomness still differ: the seed is in the stream. */
			TEST_ASSERT(r1.digest != r3.digest, "%s: seeds 7 and 8 gave one digest", cases[i].name);
		}
	}
}

/* A workload run of the tests below: its parameters, vCPUs, guest THP and --guest-aging. */
struct wl_case {
	const char *name;
	const char *kv[4];
	unsigned n, vcpus;
	bool thp;
	unsigned aging;
};

/* A mode and the host it runs on. */
struct mode_case {
	enum vmmu_mmu mmu;
	enum vmmu_host host;
	const char *name;
};

/* Invariant 1: every mode and every optimization gives the native run's digest. Modes not
 * built yet are skipped with a message. */
static void test_transparency(void **state)
{
	static const struct wl_case cases[] = {
		{ "touch", { "size=2M", "passes=2" }, 2, 2, false, 0 },
		{ "gups", { "size=1M", "updates=20000" }, 2, 3, false, 0 },
		{ "gups", { "size=1M", "updates=20000" }, 2, 2, false, 3 },
		{ "fork", { "iters=6", "size=512K" }, 2, 2, true, 0 },
		{ "fork", { "iters=4", "size=256K", "exec=on" }, 3, 1, false, 1 },
		{ "ctxsw", { "procs=3", "rounds=30" }, 2, 2, false, 0 },
		{ "mmap", { "iters=10", "size=160K" }, 2, 2, true, 0 },
		{ "clone-vms", { "size=512K" }, 1, 1, false, 0 },
		{ "migrate", { "size=1M", "updates=20000", "interval=2000", "rounds=8" }, 4, 3, false, 0 },
		{ "migrate", { "size=4M", "updates=10000", "interval=1000", "rounds=6" }, 4, 2, true, 2 },
	};
	static const struct mode_case modes[] = {
		{ VMMU_MMU_SHADOW, VMMU_HOST_VMX, "shadow/vmx" },
		{ VMMU_MMU_SHADOW, VMMU_HOST_SVM, "shadow/svm" },
		{ VMMU_MMU_EPT, VMMU_HOST_VMX, "ept" },
		{ VMMU_MMU_NPT, VMMU_HOST_SVM, "npt" },
	};
	static const uint32_t opt_sets[] = { 0, VMMU_OPT_NOTRAP | VMMU_OPT_UNSYNC | VMMU_OPT_PREFETCH | VMMU_OPT_FASTPF };
	char err[256];

	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		struct vmmu_guest_result native, r;
		const char *kv[] = { "size=64K" };
		int rc = run_mode("touch", kv, 1, 1, 1, false, modes[m].mmu, modes[m].host, 0, &r, err, sizeof(err));
		if (rc == -EOPNOTSUPP) {
			print_message("  %s: not built yet, skipped\n", modes[m].name);
			continue;
		}
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			aging = cases[i].aging;
			rc = run(cases[i].name, cases[i].kv, cases[i].n, cases[i].vcpus, 3, cases[i].thp,
				 &native, err, sizeof(err));
			TEST_ASSERT(rc == 0, "%s native: %s", cases[i].name, err);
			TEST_ASSERT(!aging || native.young_pages > 0, "%s: aging found nothing young", cases[i].name);
			for (size_t o = 0; o < sizeof(opt_sets) / sizeof(opt_sets[0]); o++) {
				rc = run_mode(cases[i].name, cases[i].kv, cases[i].n, cases[i].vcpus, 3,
					      cases[i].thp, modes[m].mmu, modes[m].host, opt_sets[o], &r, err,
					      sizeof(err));
				TEST_ASSERT(rc == 0, "%s on %s (opts off %#x): %d %s", cases[i].name,
					    modes[m].name, opt_sets[o], rc, err);
				TEST_ASSERT(r.digest == native.digest && r.page_faults == native.page_faults,
					    "%s on %s (opts off %#x): digest %016llx, native %016llx; faults %llu, native %llu",
					    cases[i].name, modes[m].name, opt_sets[o], (unsigned long long)r.digest,
					    (unsigned long long)native.digest, (unsigned long long)r.page_faults,
					    (unsigned long long)native.page_faults);
				TEST_ASSERT(r.audits > 0, "%s on %s: never audited", cases[i].name, modes[m].name);
			}
		}
	}
	aging = 0;
}

/*
 * The walk cache (cpu/nested.h) changes nothing the model shows: each workload under EPT and NPT
 * with it off, on, and on with every hit walked as well (CPU_WCACHE_VERIFY: a walk that writes
 * nothing compared with the hit, then the walk itself, whose result is used), gives the same
 * digest and every statistic the same; no hit ever differed from its walk, and the cache served.
 * The cases change the nested tables under it: aging clears A bits (the guest's and the host's),
 * dirty logging write-protects and gives W back (fast page faults), THP maps and splits 2M
 * leaves, clone-vms merges pages, several vCPUs and address spaces share tables.
 */
static void test_walk_cache_exact(void **state)
{
	static const struct wl_case cases[] = {
		{ "touch", { "size=2M", "passes=2" }, 2, 2, false, 0 },
		{ "gups", { "size=1M", "updates=20000" }, 2, 2, false, 3 },
		{ "fork", { "iters=6", "size=512K" }, 2, 2, true, 0 },
		{ "mmap", { "iters=10", "size=160K" }, 2, 2, true, 1 },
		{ "ctxsw", { "procs=3", "rounds=30" }, 2, 2, false, 0 },
		{ "clone-vms", { "size=512K" }, 1, 1, false, 0 },
		{ "migrate", { "size=1M", "updates=20000", "interval=2000", "rounds=8" }, 4, 3, false, 0 },
		{ "migrate", { "size=4M", "updates=10000", "interval=1000", "rounds=6" }, 4, 2, true, 2 },
	};
	static const struct mode_case modes[] = {
		{ VMMU_MMU_EPT, VMMU_HOST_VMX, "ept" },
		{ VMMU_MMU_NPT, VMMU_HOST_SVM, "npt" },
	};
	static const uint32_t opt_sets[] = { 0, VMMU_OPT_FASTPF };
	const struct cpu_wcache_totals t0 = cpu_wcache_totals;
	uint64_t verify_hits = 0, verify_data_hits = 0;
	char err[256];

	(void)state;
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			for (size_t o = 0; o < sizeof(opt_sets) / sizeof(opt_sets[0]); o++) {
				static const enum cpu_wcache_mode wm[] = { CPU_WCACHE_OFF, CPU_WCACHE_ON,
									   CPU_WCACHE_VERIFY };
				struct vmmu_guest_result r[3];

				aging = cases[i].aging;
				for (int k = 0; k < 3; k++) {
					uint64_t h0 = cpu_wcache_totals.hits;
					uint64_t d0 = cpu_wcache_totals.data_hits;
					cpu_wcache_mode = wm[k];
					int rc = run_mode(cases[i].name, cases[i].kv, cases[i].n,
							  cases[i].vcpus, 5, cases[i].thp, modes[m].mmu,
							  modes[m].host, opt_sets[o], &r[k], err, sizeof(err));
					cpu_wcache_mode = CPU_WCACHE_ON;
					TEST_ASSERT(rc == 0, "%s on %s: %d %s", cases[i].name,
						    modes[m].name, rc, err);
					if (wm[k] == CPU_WCACHE_OFF)
						TEST_ASSERT(cpu_wcache_totals.hits == h0,
							    "%s on %s: a cache that is off served",
							    cases[i].name, modes[m].name);
					if (wm[k] == CPU_WCACHE_VERIFY) {
						verify_hits += cpu_wcache_totals.hits - h0;
						verify_data_hits += cpu_wcache_totals.data_hits - d0;
					}
				}
				for (int k = 1; k < 3; k++) {
					TEST_ASSERT(r[k].digest == r[0].digest &&
						    r[k].page_faults == r[0].page_faults &&
						    r[k].young_pages == r[0].young_pages &&
						    r[k].dirty_pages == r[0].dirty_pages,
						    "%s on %s (opts off %#x), cache mode %d: digest %016llx "
						    "against %016llx with the cache off", cases[i].name,
						    modes[m].name, opt_sets[o], (int)wm[k],
						    (unsigned long long)r[k].digest,
						    (unsigned long long)r[0].digest);
					TEST_ASSERT(!memcmp(&r[k].stats, &r[0].stats, sizeof(r[0].stats)),
						    "%s on %s (opts off %#x), cache mode %d: statistics differ "
						    "(walk_refs %llu / %llu, sim_cycles %llu / %llu, exits %llu / %llu)",
						    cases[i].name, modes[m].name, opt_sets[o], (int)wm[k],
						    (unsigned long long)r[k].stats.walk_refs,
						    (unsigned long long)r[0].stats.walk_refs,
						    (unsigned long long)r[k].stats.sim_cycles,
						    (unsigned long long)r[0].stats.sim_cycles,
						    (unsigned long long)r[k].stats.exits,
						    (unsigned long long)r[0].stats.exits);
				}
			}
	aging = 0;
	TEST_ASSERT(cpu_wcache_totals.mismatches == t0.mismatches,
		    "%llu walk cache hits differed from the walk",
		    (unsigned long long)(cpu_wcache_totals.mismatches - t0.mismatches));
	TEST_ASSERT(verify_hits > 1000 && cpu_wcache_totals.hits - t0.hits - verify_hits > 1000,
		    "the walk cache served %llu times (%llu checked)",
		    (unsigned long long)(cpu_wcache_totals.hits - t0.hits),
		    (unsigned long long)verify_hits);
	/* Final translations served too (a touch fault's retried accesses), and checked. */
	TEST_ASSERT(verify_data_hits > 1000 &&
			    cpu_wcache_totals.data_hits - t0.data_hits - verify_data_hits > 1000,
		    "the walk cache served %llu final translations (%llu checked)",
		    (unsigned long long)(cpu_wcache_totals.data_hits - t0.data_hits),
		    (unsigned long long)verify_data_hits);
}

static void test_workload_effects(void **state)
{
	struct vmmu_guest_result r;
	char err[256];
	const char *fork_kv[] = { "iters=10", "size=256K", "dirty=50", "jobs=2" };
	const char *mmap_kv[] = { "iters=10", "size=1M", "threads=2" };
	const char *ctx_kv[] = { "procs=4", "rounds=10" };

	assert_int_equal(run("fork", fork_kv, 4, 2, 1, false, &r, err, sizeof(err)), 0);
	assert_int_equal(r.forks, 10);
	assert_int_equal(r.exits, 11);
	/* Each child writes half of 64 pages: 32 copies each, plus the parent's own breaks. */
	TEST_ASSERT(r.cow_copies >= 320, "cow copies %llu", (unsigned long long)r.cow_copies);
	assert_int_equal(run("mmap", mmap_kv, 3, 2, 1, false, &r, err, sizeof(err)), 0);
	/* 256 pages an unmap: a full flush each time, on both vCPUs. */
	TEST_ASSERT(r.tlb_flushes >= 20 && r.tlb_shootdowns >= 1, "flushes %llu, shootdowns %llu",
		    (unsigned long long)r.tlb_flushes, (unsigned long long)r.tlb_shootdowns);
	assert_int_equal(run("ctxsw", ctx_kv, 2, 1, 1, false, &r, err, sizeof(err)), 0);
	TEST_ASSERT(r.ctx_switches >= 40, "switches %llu", (unsigned long long)r.ctx_switches);
}

/* migrate: every round's log holds the pages the guest wrote (the workload checks it and fails
 * the run otherwise), logging re-protects what it harvests, so the soft and hard MMUs take write
 * faults after every harvest, and fastpf fixes those without the slow path. */
static void test_migrate(void **state)
{
	static const struct mode_case modes[] = {
		{ VMMU_MMU_SHADOW, VMMU_HOST_VMX, "shadow/vmx" },
		{ VMMU_MMU_SHADOW, VMMU_HOST_SVM, "shadow/svm" },
		{ VMMU_MMU_EPT, VMMU_HOST_VMX, "ept" },
		{ VMMU_MMU_NPT, VMMU_HOST_SVM, "npt" },
	};
	const char *kv[] = { "size=2M", "updates=30000", "interval=3000", "rounds=8" };
	struct vmmu_guest_result native, on, off;
	char err[256];
	int rc = run("migrate", kv, 4, 2, 5, false, &native, err, sizeof(err));

	TEST_ASSERT(rc == 0, "migrate native: %d %s", rc, err);
	assert_int_equal(native.dirty_rounds, 8);
	TEST_ASSERT(native.dirty_min_round >= 1, "a round with no dirty page");
	/* Half the accesses write, over 512 pages: most rounds write most pages. */
	TEST_ASSERT(native.dirty_written >= 8 * 256 && native.dirty_pages >= native.dirty_written,
		    "written %llu, dirty %llu", (unsigned long long)native.dirty_written,
		    (unsigned long long)native.dirty_pages);
	for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		rc = run_mode("migrate", kv, 4, 2, 5, false, modes[m].mmu, modes[m].host, 0, &on, err,
			      sizeof(err));
		if (rc == -EOPNOTSUPP) {
			print_message("  %s: not built yet, skipped\n", modes[m].name);
			continue;
		}
		TEST_ASSERT(rc == 0, "migrate on %s: %d %s", modes[m].name, rc, err);
		rc = run_mode("migrate", kv, 4, 2, 5, false, modes[m].mmu, modes[m].host,
			      VMMU_OPT_FASTPF, &off, err, sizeof(err));
		TEST_ASSERT(rc == 0, "migrate on %s -fastpf: %d %s", modes[m].name, rc, err);
		TEST_ASSERT(on.digest == native.digest && off.digest == native.digest,
			    "%s: digests %016llx (fastpf) %016llx (none), native %016llx", modes[m].name,
			    (unsigned long long)on.digest, (unsigned long long)off.digest,
			    (unsigned long long)native.digest);
		assert_int_equal(on.dirty_written, native.dirty_written);
		TEST_ASSERT(on.stats.pf_fast > 0 && off.stats.pf_fast == 0, "%s: pf_fast %llu/%llu",
			    modes[m].name, (unsigned long long)on.stats.pf_fast,
			    (unsigned long long)off.stats.pf_fast);
		/* As KVM, a fast fix is a pf_fixed too: the slow path's share is what shrinks. */
		TEST_ASSERT(off.stats.pf_fixed > on.stats.pf_fixed - on.stats.pf_fast,
			    "%s: slow-path pf_fixed %llu (fastpf) %llu", modes[m].name,
			    (unsigned long long)(on.stats.pf_fixed - on.stats.pf_fast),
			    (unsigned long long)off.stats.pf_fixed);
	}
	/* The check itself: a second KVM_GET_DIRTY_LOG takes round 3's bits first (steal=3), as
	 * a harvester racing the migration would; the round's own harvest then lacks the pages
	 * the guest wrote, and the run fails naming the round. */
	const char *steal[] = { "size=2M", "updates=30000", "interval=3000", "rounds=8", "steal=3" };
	rc = run("migrate", steal, 5, 2, 5, false, &off, err, sizeof(err));
	TEST_ASSERT(rc == -EFAULT && strstr(err, "round 3") && strstr(err, "dirty log"), "%d %s", rc, err);
	rc = run_mode("migrate", steal, 5, 2, 5, false, VMMU_MMU_SHADOW, VMMU_HOST_VMX, 0, &off, err,
		      sizeof(err));
	TEST_ASSERT(rc == -EFAULT || rc == -EOPNOTSUPP, "shadow, steal=3: %d %s", rc, err);
}

static void test_migrate_params(void **state)
{
	static const struct {
		const char *kv[2];
		const char *want;
	} bad[] = {
		{ { "write=101", NULL }, "write=101" },
		{ { "interval=0", NULL }, "interval" },
		{ { "rounds=0", NULL }, "rounds" },
		{ { "updates=1000", NULL }, "updates=1000" },
		{ { "rounds=4", "steal=5" }, "steal=5" },
		{ { "size=4", NULL }, "size" },
		{ { "threads=5000", NULL }, "threads" },
	};
	struct vmmu_workload_args a;
	struct vmmu_guest_result r;
	struct vmmu_guest_config cfg = { .mem_bytes = 64ULL << 20 };
	char err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		unsigned n = bad[i].kv[1] ? 2 : 1;
		assert_int_equal(vmmu_workload_args("migrate", bad[i].kv, n, &a, err, sizeof(err)), 0);
		int rc = vmmu_run(&cfg, &a, &r, err, sizeof(err));
		TEST_ASSERT(rc == -EINVAL && strstr(err, "migrate") && strstr(err, bad[i].want),
			    "%s: %d '%s'", bad[i].kv[0], rc, err);
	}
	const char *junk[] = { "write=half" };
	assert_int_equal(vmmu_workload_args("migrate", junk, 1, &a, err, sizeof(err)), -EINVAL);
	/* The largest legal values: every access in some round, each round one access. */
	const char *edge[] = { "size=64K", "updates=100", "interval=1", "rounds=100", "write=100" };
	assert_int_equal(vmmu_workload_args("migrate", edge, 5, &a, err, sizeof(err)), 0);
	int rc = vmmu_run(&cfg, &a, &r, err, sizeof(err));
	TEST_ASSERT(rc == 0, "%d %s", rc, err);
	assert_int_equal(r.dirty_rounds, 100);
	assert_int_equal(r.dirty_min_round, 1);
	assert_int_equal(r.dirty_written, 100);
}

static void test_run_errors(void **state)
{
	struct vmmu_workload_args a;
	struct vmmu_guest_result r;
	struct vmmu_guest_config cfg = { .mem_bytes = 64ULL << 20 };
	char err[256];
	const char *big[] = { "size=1G" };
	const char *junk[] = { "size=12Q" };
	const char *unknown[] = { "colour=blue" };
	const char *noeq[] = { "size" };
	const char *missing[] = { "file=/nonexistent/trace" };

	assert_int_equal(vmmu_workload_args("nosuch", NULL, 0, &a, err, sizeof(err)), -ENOENT);
	TEST_ASSERT(strstr(err, "nosuch"), "%s", err);
	assert_int_equal(vmmu_workload_args("touch", unknown, 1, &a, err, sizeof(err)), -EINVAL);
	TEST_ASSERT(strstr(err, "colour") && strstr(err, "stride"), "%s", err);
	assert_int_equal(vmmu_workload_args("touch", junk, 1, &a, err, sizeof(err)), -EINVAL);
	TEST_ASSERT(strstr(err, "12Q"), "%s", err);
	assert_int_equal(vmmu_workload_args("touch", noeq, 1, &a, err, sizeof(err)), -EINVAL);
	assert_int_equal(vmmu_workload_args("trace", NULL, 0, &a, err, sizeof(err)), -EINVAL);
	TEST_ASSERT(strstr(err, "file"), "%s", err);

	assert_int_equal(vmmu_workload_args("touch", big, 1, &a, err, sizeof(err)), 0);
	assert_int_equal(vmmu_run(&cfg, &a, &r, err, sizeof(err)), -E2BIG);
	TEST_ASSERT(strstr(err, "64M"), "%s", err);
	assert_int_equal(vmmu_workload_args("trace", missing, 1, &a, err, sizeof(err)), 0);
	assert_int_equal(vmmu_run(&cfg, &a, &r, err, sizeof(err)), -ENOENT);
	TEST_ASSERT(strstr(err, "/nonexistent/trace"), "%s", err);
	const char *small[] = { "size=1M" };
	assert_int_equal(vmmu_workload_args("touch", small, 1, &a, err, sizeof(err)), 0);
	cfg.vm.mmu = VMMU_MMU_NPT;
	cfg.vm.host = VMMU_HOST_VMX;   /* NPT is AMD's */
	assert_int_equal(vmmu_run(&cfg, &a, &r, err, sizeof(err)), -EINVAL);

	uint64_t s;
	assert_int_equal(vmmu_parse_size("64M", &s), 0);
	assert_int_equal(s, 64ULL << 20);
	assert_int_equal(vmmu_parse_size("2GiB", &s), 0);
	assert_int_equal(s, 2ULL << 30);
	assert_int_equal(vmmu_parse_size("4096", &s), 0);
	assert_int_equal(s, 4096);
	assert_int_equal(vmmu_parse_size("", &s), -EINVAL);
	assert_int_equal(vmmu_parse_size("M", &s), -EINVAL);
	assert_int_equal(vmmu_parse_size("-1", &s), -EINVAL);
	assert_int_equal(vmmu_parse_size("99999999999999999999", &s), -EINVAL);
	assert_int_equal(vmmu_parse_size("16777216T", &s), -EINVAL);
}

/* ---- lackey ---- */

static void test_lackey_parse(void **state)
{
	static const struct {
		const char *line;
		int rc;
		enum vmmu_lackey_kind kind;
		uint64_t addr;
		uint32_t size;
	} good[] = {
		{ "I  04001090,3", 1, VMMU_LACKEY_INSTR, 0x4001090, 3 },
		{ " S 1ffefffd88,8", 1, VMMU_LACKEY_STORE, 0x1ffefffd88, 8 },
		{ " L 04022fd8,8", 1, VMMU_LACKEY_LOAD, 0x4022fd8, 8 },
		{ " M 0402EE40,4\r", 1, VMMU_LACKEY_MODIFY, 0x402ee40, 4 },
		{ " L ffffffffffffffff,32", 1, VMMU_LACKEY_LOAD, ~0ULL, 32 },
		{ "==12345== Lackey, an example Valgrind tool", 0, 0, 0, 0 },
		{ "--12345-- warning: something", 0, 0, 0, 0 },
	};
	static const char *const bad[] = {
		"", "   ", "X 1234,4", " L 1234", " L ,4", " L 1234,", " L 1234,0", " L0x1234,4",
		" L 12345678901234567,4", " L 12g4,4", " L 1234,4 junk", "I 1234,99999999", " L 1234,-4",
		"=", "L\t1234,4", " S 1234,4,", " LL 1234,4",
	};
	struct vmmu_lackey_rec rec;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc = vmmu_lackey_parse(good[i].line, strlen(good[i].line), &rec);
		TEST_ASSERT(rc == good[i].rc, "'%s': %d", good[i].line, rc);
		if (rc == 1)
			TEST_ASSERT(rec.kind == good[i].kind && rec.addr == good[i].addr &&
				    rec.size == good[i].size, "'%s'", good[i].line);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = vmmu_lackey_parse(bad[i], strlen(bad[i]), &rec);
		TEST_ASSERT(rc == -EINVAL, "'%s' accepted: %d", bad[i], rc);
	}
	/* A NUL inside the line is malformed, not the end of it. */
	assert_int_equal(vmmu_lackey_parse(" L 12\0" "34,4", 10, &rec), -EINVAL);
}

static char *tmpfile_with(const char *text, bool gz)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof(path), "/tmp/vmmu_test_lackey_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	if (gz) {
		gzFile z = gzdopen(fd, "wb");
		assert_non_null(z);
		assert_int_equal(gzwrite(z, text, (unsigned)strlen(text)), (int)strlen(text));
		assert_int_equal(gzclose(z), Z_OK);
	} else {
		assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
		close(fd);
	}
	return path;
}

static void lackey_reader_with(unsigned fl)
{
	const char *text = "==1== Lackey\nI  00400000,4\n S 7ff000,8\n L 7ff000,8\n M 7ff008,4\n"
			   "what is this\n L 1000,4\n";
	struct vmmu_lackey_reader *r;
	struct vmmu_lackey_rec rec;

	for (int gz = 0; gz < 2; gz++) {
		char *path = tmpfile_with(text, gz);
		int n = 0, rc;
		assert_int_equal(vmmu_lackey_open_flags(path, fl, &r), 0);
		while ((rc = vmmu_lackey_next(r, &rec)) == 1)
			n++;
		assert_int_equal(n, 4);
		assert_int_equal(rc, -EINVAL);
		assert_int_equal(vmmu_lackey_lineno(r), 6);
		TEST_ASSERT(strstr(vmmu_lackey_error(r), "line 6") &&
			    strstr(vmmu_lackey_error(r), "what is this"), "%s", vmmu_lackey_error(r));
		vmmu_lackey_close(r);
		unlink(path);
	}
	/* The last line needs no newline; an empty file is empty. */
	char *path = tmpfile_with(" L 1000,4\n S 2000,2", false);
	assert_int_equal(vmmu_lackey_open_flags(path, fl, &r), 0);
	assert_int_equal(vmmu_lackey_next(r, &rec), 1);
	assert_int_equal(vmmu_lackey_next(r, &rec), 1);
	assert_int_equal(rec.addr, 0x2000);
	assert_int_equal(vmmu_lackey_next(r, &rec), 0);
	vmmu_lackey_close(r);
	unlink(path);
	path = tmpfile_with("", true);
	assert_int_equal(vmmu_lackey_open_flags(path, fl, &r), 0);
	assert_int_equal(vmmu_lackey_next(r, &rec), 0);
	vmmu_lackey_close(r);
	unlink(path);
	/* A truncated gzip file is bad input (-EINVAL: the CLI's exit 2), not a crash, and the
	 * message says where the compressed data broke, not zlib's descriptor name. */
	path = tmpfile_with(" L 1000,4\n L 1000,4\n L 1000,4\n L 1000,4\n", true);
	assert_int_equal(truncate(path, 20), 0);
	assert_int_equal(vmmu_lackey_open_flags(path, fl, &r), 0);
	int rc;
	while ((rc = vmmu_lackey_next(r, &rec)) == 1)
		;
	assert_int_equal(rc, -EINVAL);
	assert_non_null(strstr(vmmu_lackey_error(r), "truncated or corrupt gzip file"));
	assert_non_null(strstr(vmmu_lackey_error(r), "at byte 20 of the compressed file"));
	assert_null(strstr(vmmu_lackey_error(r), "<fd:"));
	vmmu_lackey_close(r);
	unlink(path);
	/* Long lines: a valgrind message of 300 KiB is read (the buffer grows) and skipped; a line
	 * over 1 MiB is refused with its number, not read to its end. */
	static char big[(3u << 20) + 64];
	memset(big, 'x', sizeof(big) - 1);
	memcpy(big, "==1== ", 6);
	strcpy(big + (300u << 10), "\n L 1000,4\n S 2000,8\n");
	path = tmpfile_with(big, fl != 0);
	assert_int_equal(vmmu_lackey_open_flags(path, fl, &r), 0);
	assert_int_equal(vmmu_lackey_next(r, &rec), 1);
	assert_int_equal(vmmu_lackey_lineno(r), 2);
	assert_int_equal(vmmu_lackey_next(r, &rec), 1);
	assert_int_equal(rec.addr, 0x2000);
	assert_int_equal(vmmu_lackey_next(r, &rec), 0);
	vmmu_lackey_close(r);
	unlink(path);
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, " L 1000,4\n", 10);
	path = tmpfile_with(big, fl == 0);
	assert_int_equal(vmmu_lackey_open_flags(path, fl, &r), 0);
	assert_int_equal(vmmu_lackey_next(r, &rec), 1);
	assert_int_equal(vmmu_lackey_next(r, &rec), -EINVAL);
	TEST_ASSERT(strstr(vmmu_lackey_error(r), "line 2: longer than 1048576 bytes"), "%s",
		    vmmu_lackey_error(r));
	vmmu_lackey_close(r);
	unlink(path);
	assert_int_equal(vmmu_lackey_open_flags("/nonexistent", fl, &r), -ENOENT);
	assert_int_equal(vmmu_lackey_open_flags("/tmp", fl, &r), -EISDIR);
}

static void test_lackey_reader(void **state)
{
	struct vmmu_lackey_reader *r;

	lackey_reader_with(0);
	lackey_reader_with(VMMU_LACKEY_READAHEAD);
	assert_int_equal(vmmu_lackey_open_flags("/dev/null", 1u << 5, &r), -EINVAL);
}

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A random line in lackey's alphabet, often lackey's own layout with one thing changed. */
static size_t random_lackey_line(uint64_t *seed, char *buf, size_t cap)
{
	static const char alpha[] = " ILSM0123456789abcdefABCDEFg,\r=-\t";
	uint64_t x = splitmix(seed);
	size_t n = 0;

	if (x % 4) {   /* lackey's layout, addresses of 1-18 digits, sizes 0-99999 */
		static const char *const kinds[] = { "I  ", " L ", " S ", " M ", "I ", "  L ", " X " };
		uint64_t k = splitmix(seed);
		n = (size_t)snprintf(buf, cap, "%s%0*llx,%llu", kinds[k % 7], 1 + (int)(k >> 8) % 18,
				     (unsigned long long)splitmix(seed),
				     (unsigned long long)((k >> 16) % 5 == 0 ? (k >> 24) % 100000 :
							  (k >> 24) % 17));
		if (n >= cap)
			n = cap - 1;
		if ((x >> 8) % 8 == 0 && n)   /* one byte changed */
			buf[(x >> 16) % n] = alpha[(x >> 24) % (sizeof(alpha) - 1)];
		if ((x >> 32) % 16 == 0 && n + 1 < cap)
			buf[n++] = (x >> 40) % 2 ? '\r' : ' ';
	} else {
		size_t len = (x >> 8) % 24;
		for (; n < len && n + 1 < cap; n++)
			buf[n] = alpha[splitmix(seed) % (sizeof(alpha) - 1)];
	}
	buf[n] = '\0';
	return n;
}

/* The reader decodes lackey's own layout in one pass of its own (parse_fast) and everything
 * else through vmmu_lackey_parse: both must agree on every line. Thousands of random lines near
 * lackey's layout: those vmmu_lackey_parse takes (records and skipped lines) in one file, read
 * with and without read-ahead, give its records with their line numbers; each line it refuses,
 * after a good line, stops the reader at that line. A file larger than the reader's chunks and
 * its batches crosses both; closing a read-ahead reader in the middle does not wait for the end. */
static void test_lackey_fast_path(void **state)
{
	enum { LINES = 100000 };
	static struct vmmu_lackey_rec want[LINES];
	static uint64_t want_line[LINES];
	char line[64], path[64];
	uint64_t seed = 7;
	unsigned nwant = 0, nbad = 0, lineno = 0;
	struct vmmu_lackey_reader *r;
	struct vmmu_lackey_rec rec;
	FILE *f;
	int fd, rc;

	snprintf(path, sizeof(path), "/tmp/vmmu_test_lackey_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	while (lineno < LINES) {
		size_t n = random_lackey_line(&seed, line, sizeof(line));
		struct vmmu_lackey_rec x;

		rc = vmmu_lackey_parse(line, n, &x);
		if (rc < 0) {
			/* Refused: alone after a good line, the reader stops there too. */
			if (nbad < 400) {
				char one[128], *p;
				snprintf(one, sizeof(one), " L 1000,4\n%s\n", line);
				p = tmpfile_with(one, false);
				for (unsigned fl = 0; fl <= VMMU_LACKEY_READAHEAD; fl += VMMU_LACKEY_READAHEAD) {
					assert_int_equal(vmmu_lackey_open_flags(p, fl, &r), 0);
					assert_int_equal(vmmu_lackey_next(r, &rec), 1);
					rc = vmmu_lackey_next(r, &rec);
					TEST_ASSERT(rc == -EINVAL, "'%s' read as %d", line, rc);
					assert_int_equal(vmmu_lackey_lineno(r), 2);
					vmmu_lackey_close(r);
				}
				unlink(p);
				nbad++;
			}
			continue;
		}
		assert_true(fputs(line, f) >= 0 && fputc('\n', f) == '\n');
		lineno++;
		if (rc == 1) {
			want[nwant] = x;
			want_line[nwant++] = lineno;
		}
	}
	assert_int_equal(fclose(f), 0);
	TEST_ASSERT(nwant > LINES / 2 && nbad == 400, "%u records, %u refused", nwant, nbad);
	for (unsigned fl = 0; fl <= VMMU_LACKEY_READAHEAD; fl += VMMU_LACKEY_READAHEAD) {
		unsigned k = 0;
		assert_int_equal(vmmu_lackey_open_flags(path, fl, &r), 0);
		while ((rc = vmmu_lackey_next(r, &rec)) == 1) {
			assert_true(k < nwant);
			TEST_ASSERT(rec.kind == want[k].kind && rec.addr == want[k].addr &&
				    rec.size == want[k].size && vmmu_lackey_lineno(r) == want_line[k],
				    "record %u (line %llu)", k, (unsigned long long)want_line[k]);
			k++;
		}
		assert_int_equal(rc, 0);
		assert_int_equal(k, nwant);
		assert_int_equal(vmmu_lackey_lineno(r), LINES);
		assert_true(vmmu_lackey_progress(r) == 1.0);
		vmmu_lackey_close(r);
	}
	/* Closed after a few records, the read-ahead thread blocked on a full ring. */
	assert_int_equal(vmmu_lackey_open_flags(path, VMMU_LACKEY_READAHEAD, &r), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(vmmu_lackey_next(r, &rec), 1);
	usleep(20000);
	vmmu_lackey_close(r);
	unlink(path);
}

static void test_trace_replay(void **state)
{
	const char *text = "==1== Lackey\nI  00400000,4\n S 7ff000,8\n L 7ff000,8\n M 7ff008,4\n"
			   "I  00400004,15\n L 7fffffffe000,32\n S 1000,1\n L ffffffffff600000,8\n";
	char *path = tmpfile_with(text, false);
	char kv[128], err[256];
	const char *kvs[] = { kv };
	struct vmmu_guest_result r1, r2;

	snprintf(kv, sizeof(kv), "file=%s", path);
	assert_int_equal(run("trace", kvs, 1, 1, 1, false, &r1, err, sizeof(err)), 0);
	assert_int_equal(r1.trace_records, 8);
	assert_int_equal(r1.trace_skipped, 1);
	assert_int_equal(r1.kills, 0);
	/* Pages: 0x400000 (fetches), 0x7ff000, 0x7fffffffe000, 0x1000. */
	TEST_ASSERT(r1.page_faults >= 4, "faults %llu", (unsigned long long)r1.page_faults);
	assert_int_equal(run("trace", kvs, 1, 1, 1, false, &r2, err, sizeof(err)), 0);
	assert_int_equal(r1.digest, r2.digest);
	unlink(path);

	/* A malformed line stops the run with its number and text. */
	path = tmpfile_with(" L 1000,4\n L 2000,4\n L 3000;4\n", false);
	snprintf(kv, sizeof(kv), "file=%s", path);
	assert_int_equal(run("trace", kvs, 1, 1, 1, false, &r1, err, sizeof(err)), -EINVAL);
	TEST_ASSERT(strstr(err, "line 3") && strstr(err, "3000;4"), "%s", err);
	unlink(path);

	/* The trace of a real program (/bin/true), stored with the tests. */
	snprintf(kv, sizeof(kv), "file=%s/true.lackey.gz", data_dir);
	int rc = run("trace", kvs, 1, 1, 1, false, &r1, err, sizeof(err));
	TEST_ASSERT(rc == 0, "%s", err);
	TEST_ASSERT(r1.trace_records > 100000 && r1.kills == 0, "records %llu, kills %llu",
		    (unsigned long long)r1.trace_records, (unsigned long long)r1.kills);
	assert_int_equal(run("trace", kvs, 1, 1, 1, false, &r2, err, sizeof(err)), 0);
	assert_int_equal(r1.digest, r2.digest);
	/* Guest THP changes the tables, not what the program reads. */
	assert_int_equal(run("trace", kvs, 1, 1, 1, true, &r2, err, sizeof(err)), 0);
	assert_int_equal(r2.kills, 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_demand_paging),
		cmocka_unit_test(test_cow_isolation),
		cmocka_unit_test(test_munmap_kills),
		cmocka_unit_test(test_mprotect),
		cmocka_unit_test(test_brk),
		cmocka_unit_test(test_exec),
		cmocka_unit_test(test_exit_frees_everything),
		cmocka_unit_test(test_thp_cow),
		cmocka_unit_test(test_shootdown),
		cmocka_unit_test(test_aging),
		cmocka_unit_test(test_khugepaged),
		cmocka_unit_test(test_huge_1g),
		cmocka_unit_test(test_api_args),
		cmocka_unit_test(test_workloads_deterministic),
		cmocka_unit_test(test_transparency),
		cmocka_unit_test(test_walk_cache_exact),
		cmocka_unit_test(test_workload_effects),
		cmocka_unit_test(test_migrate),
		cmocka_unit_test(test_migrate_params),
		cmocka_unit_test(test_run_errors),
		cmocka_unit_test(test_lackey_parse),
		cmocka_unit_test(test_lackey_reader),
		cmocka_unit_test(test_lackey_fast_path),
		cmocka_unit_test(test_trace_replay),
	};

	if (argc > 1)
		data_dir = argv[1];
	else if (getenv("VMMU_TEST_DATA"))
		data_dir = getenv("VMMU_TEST_DATA");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
