/* SPDX-License-Identifier: MIT */
/*
 * vCPUs on their own threads while another thread changes the memory map under them: the request
 * protocol (src/vm/request.c) at work in every mode. Four vCPU threads write and read back their
 * own pages and their own words of shared pages, read a region whose host memory the main thread
 * keeps replacing, switch CR3 between two equal roots and INVLPG; meanwhile the main thread
 * toggles dirty logging and harvests the log, deletes the replaced region's memslot, unmaps its
 * host memory (MMU notifiers) and makes it again over fresh memory. Every remote TLB flush and
 * guest-page-cache flush is then a request to vCPUs that may be in guest mode at that moment.
 *
 * What is checked: each vCPU reads back what it wrote; a read of the replaced region gives 0 (fresh
 * memory), the pattern of a generation not yet dropped when the read began, or no memory (-EFAULT,
 * or MMIO while the slot is gone), never anything else (a stale translation or host pointer would
 * read a dropped generation's frame, or a recycled one); the MMU's isolation audit after
 * every round, with the vCPU threads joined; at the end every word holds its last write. The host
 * starts fragmented, so the 4 MiB slot of the guest tables is mapped with 4K host pages; in the
 * first round the fragmenter lets go and khugepaged, on its own thread, collapses those ranges
 * into THPs under the running vCPUs (the frames of the very tables they walk and write change
 * under them). Large pages on both sides: a 4 MiB region the guest maps with two 2M pages, which
 * the host backs with THPs (fault-time, or collapsed), so the MMUs map it with 2M leaves; inside
 * its second 2 MiB sit two guest page tables that the vCPUs walk now and then, so the soft MMU
 * begins and ends shadowing a table under a large leaf (its write tracking takes W away from
 * the leaf, a write splits it, a zap of the table lets a large leaf come back); the vCPUs also
 * rewrite the guest's 2M entries (an emulated store drops the large leaf) and read the guest
 * tables' own 2 MiB through a 2M mapping (tracked gfns inside: never a large leaf).
 * Built for the TSan run (suite threads). VMMU_STRESS_ROUNDS makes it run longer.
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
#include <sched.h>
#include <time.h>

#include <cmocka.h>

#include "paging/paging.h"
#include "../common/gpt_build.h"
#include "mmu/mmu_internal.h"
#include "mmu/shadow.h"
#include "vm/vm.h"
#include "vmmu/vmmu.h"

#define MiB (1ULL << 20)
#define PRWU (PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK)

#define NV          4
#define PRIV        48                        /* pages of each vCPU's own */
#define SHARED      16                        /* pages every vCPU writes a word of */
#define DATA_PAGES  (NV * PRIV + SHARED)
#define VOL_PAGES   16                        /* the region the main thread replaces */
#define DATA_GPA    (16 * MiB)
#define VOL_GPA     (32 * MiB)
#define TABLE_VA    (64 * MiB)                /* the guest tables, mapped for the guest to write */
#define TABLE_WIN   (256 * 1024)              /* the part of slot 0 they are in */
#define SLOT_DATA   1
#define SLOT_VOL    2
#define SLOT_BIG    3
#define BIG_GPA     (128 * MiB)               /* guest-mapped by two 2M pages, identity */
#define BIG_PAGES   1024
#define BIG_TABLE   (BIG_PAGES / 2 + 256)     /* its page of the guest table of root 0 (+1: 1) */
#define BIGT_VA     (160 * MiB)               /* mapped through that table: the data pages */
#define LOWL_VA     (192 * MiB)               /* a 2M mapping of the guest tables' 2 MiB */
#define VOL_MAGIC   0x501a000000000000ULL
#define VOL_MASK    0xffff000000000000ULL

struct tg {
	struct vmmu_vm *vm;
	struct vmmu_vcpu *v[NV];
	gpa_t next_table, root[2];
	gpa_t pte[2][DATA_PAGES];      /* each root's leaf entry of each data page */
	gpa_t big_pde[2][2];           /* each root's 2M entries of the large region */
	uint64_t low_hva, data_hva, vol_hva, vol_gen;   /* low: slot 0, the guest tables */
	uint64_t big_hva;
	uint64_t vol_dropped;          /* [atomic] the last generation whose memory is gone */
};

static uint64_t g_rd(void *ctx, gpa_t a)
{
	uint64_t x = 0;
	assert_int_equal(vmmu_read_guest(((struct tg *)ctx)->vm, a, &x, 8), 0);
	return x;
}

static void g_wr(void *ctx, gpa_t a, uint64_t x)
{
	assert_int_equal(vmmu_write_guest(((struct tg *)ctx)->vm, a, &x, 8), 0);
}

static gpa_t g_new_table(void *ctx)
{
	struct tg *g = ctx;
	gpa_t t = g->next_table;
	g->next_table += 4096;
	return t;
}

static void set_slot(struct tg *g, uint32_t id, uint32_t flags, gpa_t gpa, uint64_t size, uint64_t hva)
{
	struct vmmu_userspace_memory_region r = {
		.slot = id, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = hva,
	};
	assert_int_equal(vmmu_set_user_memory_region(g->vm, &r), 0);
}

/* Fresh host memory for the replaced region, its slot, and its patterns for generation @gen. */
static void vol_make(struct tg *g)
{
	g->vol_gen++;
	assert_int_equal(vmmu_vm_mmap(g->vm, VOL_PAGES * 4096ULL, false, &g->vol_hva), 0);
	set_slot(g, SLOT_VOL, 0, VOL_GPA, VOL_PAGES * 4096ULL, g->vol_hva);
	for (unsigned p = 0; p < VOL_PAGES; p++)
		g_wr(g, VOL_GPA + p * 4096ULL, VOL_MAGIC | g->vol_gen << 16 | p);
}

/* The slot goes, then its memory (the notifiers see the unmap with the slot gone). */
static void vol_drop(struct tg *g)
{
	set_slot(g, SLOT_VOL, 0, VOL_GPA, 0, 0);
	assert_int_equal(vmmu_vm_munmap(g->vm, g->vol_hva, VOL_PAGES * 4096ULL), 0);
	__atomic_store_n(&g->vol_dropped, g->vol_gen, __ATOMIC_RELEASE);
}

/* @max_sps: the soft MMU's page limit (0: its default, 64 here, so that eviction and its aging
 * run all the time; a larger one lets most faults take the fine path). */
static void tg_init(struct tg *g, enum vmmu_mmu mode, enum vmmu_mmu_lock lock, uint64_t max_sps)
{
	struct vmmu_vm_config cfg = { .mmu = mode, .host = mode == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX,
				      .mmu_lock = lock, .max_shadow_pages = max_sps, .thp = 2,
				      .host_mem_bytes = 1ULL << 30 };
	memset(g, 0, sizeof(*g));
	assert_int_equal(vmmu_vm_create(&cfg, &g->vm), 0);
	/* 4K host pages until run_mode lets khugepaged collapse them (the machine's destroy lets
	 * the fragmenter go in the other tests). */
	assert_int_equal(vmmu_machine_fragment(vmmu_vm_machine(g->vm), 100), 0);
	assert_int_equal(vmmu_khugepaged_set_params(vmmu_vm_machine(g->vm),
						    "pages_to_scan=512,scan_sleep_millisecs=1", NULL, 0), 0);
	assert_int_equal(vmmu_vm_mmap(g->vm, 4 * MiB, false, &g->low_hva), 0);
	set_slot(g, 0, 0, 0, 4 * MiB, g->low_hva);
	assert_int_equal(vmmu_vm_mmap(g->vm, DATA_PAGES * 4096ULL, false, &g->data_hva), 0);
	set_slot(g, SLOT_DATA, 0, DATA_GPA, DATA_PAGES * 4096ULL, g->data_hva);
	/* 2 MiB-aligned in both spaces, so a 2M host page can back a 2M leaf. */
	assert_int_equal(vmmu_vm_mmap(g->vm, BIG_PAGES * 4096ULL + 2 * MiB, false, &g->big_hva), 0);
	g->big_hva = (g->big_hva + 2 * MiB - 1) & ~(2 * MiB - 1);
	set_slot(g, SLOT_BIG, 0, BIG_GPA, BIG_PAGES * 4096ULL, g->big_hva);
	vol_make(g);
	g->next_table = 0x1000;
	const struct gpt_builder b = { g, g_rd, g_wr, g_new_table };
	/* Two roots mapping the same: a CR3 switch changes the root, never a translation. */
	for (unsigned r = 0; r < 2; r++) {
		g->root[r] = g_new_table(g);
		for (unsigned p = 0; p < DATA_PAGES; p++)
			g->pte[r][p] = gpt_map(&b, g->root[r], 4, DATA_GPA + p * 4096ULL,
					       DATA_GPA + p * 4096ULL, 1, PRWU);
		for (unsigned p = 0; p < VOL_PAGES; p++)
			gpt_map(&b, g->root[r], 4, VOL_GPA + p * 4096ULL, VOL_GPA + p * 4096ULL, 1, PRWU);
	}
	for (unsigned r = 0; r < 2; r++)
		for (gpa_t a = 0; a < TABLE_WIN; a += 4096)
			gpt_map(&b, g->root[r], 4, TABLE_VA + a, a, 1, PRWU);
	for (unsigned r = 0; r < 2; r++) {
		for (unsigned h = 0; h < 2; h++)
			g->big_pde[r][h] = gpt_map(&b, g->root[r], 4, BIG_GPA + h * 2 * MiB,
						   BIG_GPA + h * 2 * MiB, 2, PRWU);
		gpt_map(&b, g->root[r], 4, LOWL_VA, 0, 2, PRWU);
		/* The page table of BIGT_VA lies in the large region. */
		gpa_t keep = g->next_table;
		g->next_table = BIG_GPA + (BIG_TABLE + r) * 4096ULL;
		for (unsigned p = 0; p < DATA_PAGES; p++)
			gpt_map(&b, g->root[r], 4, BIGT_VA + p * 4096ULL, DATA_GPA + p * 4096ULL, 1, PRWU);
		assert_int_equal(g->next_table, BIG_GPA + (BIG_TABLE + r + 1) * 4096ULL);
		g->next_table = keep;
	}
	assert_true(g->next_table <= TABLE_WIN);
	struct vmmu_regs regs = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = g->root[0], .cr4 = X86_CR4_PAE,
		.efer = EFER_LME | EFER_LMA | EFER_NXE,
	};
	for (unsigned i = 0; i < NV; i++) {
		assert_int_equal(vmmu_vcpu_create(g->vm, i, &g->v[i]), 0);
		assert_int_equal(vmmu_vcpu_set_regs(g->v[i], &regs), 0);
	}
}

struct th {
	struct tg *g;
	unsigned id, round, iters;
	unsigned cur;                  /* the root this vCPU runs on */
	uint64_t last[DATA_PAGES];     /* the last value this vCPU wrote to its word of each page */
	uint64_t big_last[BIG_PAGES];  /* the same in the large region */
	uint64_t vol_reads, vol_gone;
	int *running;
	char err[160];
};

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static bool th_fail(struct th *t, const char *what, uint64_t a, uint64_t b)
{
	snprintf(t->err, sizeof(t->err), "vCPU %u round %u: %s (0x%" PRIx64 ", 0x%" PRIx64 ")", t->id,
		 t->round, what, a, b);
	return false;
}

/* Write @val at @gva, read it back. */
static bool write_read(struct th *t, gva_t gva, uint64_t val)
{
	struct vmmu_access_result r;
	uint64_t x = val;
	int rc = vmmu_vcpu_access(t->g->v[t->id], gva, 8, VMMU_ACC_WRITE, &x, &r);

	if (rc || r.status != VMMU_ACCESS_DONE)
		return th_fail(t, "write failed", gva, (uint64_t)-rc);
	x = 0;
	rc = vmmu_vcpu_access(t->g->v[t->id], gva, 8, VMMU_ACC_READ, &x, &r);
	if (rc || r.status != VMMU_ACCESS_DONE)
		return th_fail(t, "read failed", gva, (uint64_t)-rc);
	if (x != val)
		return th_fail(t, "read back another value", x, val);
	return true;
}

/* Write this vCPU's word of data page @p, read it back. */
static bool data_access(struct th *t, unsigned p, uint64_t val)
{
	if (!write_read(t, DATA_GPA + p * 4096ULL + t->id * 8, val))
		return false;
	t->last[p] = val;
	return true;
}

/* Read the replaced region: fresh memory, a pattern of some generation, or no memory at all. */
static bool vol_read(struct th *t, unsigned p)
{
	struct vmmu_access_result r;
	uint64_t x = 0;
	/* A generation dropped before the access began is gone for it: its bytes now would come
	 * from a stale translation or host pointer. */
	uint64_t dropped = __atomic_load_n(&t->g->vol_dropped, __ATOMIC_ACQUIRE);
	int rc = vmmu_vcpu_access(t->g->v[t->id], VOL_GPA + p * 4096ULL, 8, VMMU_ACC_READ, &x, &r);

	t->vol_reads++;
	if (rc == -EFAULT || (!rc && r.status == VMMU_ACCESS_MMIO)) {
		t->vol_gone++;
		return true;
	}
	if (rc || r.status != VMMU_ACCESS_DONE)
		return th_fail(t, "read of the replaced region failed", (uint64_t)-rc, r.status);
	if (x != 0 && ((x & VOL_MASK) != VOL_MAGIC || (x & 0xffff) != p))
		return th_fail(t, "read of the replaced region gave foreign bytes", x, p);
	if (x != 0 && ((x >> 16) & 0xffffffff) <= dropped)
		return th_fail(t, "read of the replaced region gave the bytes of dropped memory", x, dropped);
	return true;
}

/* Write this vCPU's word of page @p of the large region through its 2M mapping, read it back (the
 * pages of the guest tables in it are left alone). */
static bool big_access(struct th *t, unsigned p, uint64_t val)
{
	if (p == BIG_TABLE || p == BIG_TABLE + 1)
		return true;
	if (!write_read(t, BIG_GPA + p * 4096ULL + t->id * 8, val))
		return false;
	t->big_last[p] = val;
	return true;
}

/* Read this vCPU's word of data page @p through the page table inside the large region (the MMU
 * shadows that table, under whatever maps its 2 MiB), and a word of the guest tables through
 * their 2M mapping. */
static bool big_table_read(struct th *t, unsigned p)
{
	struct vmmu_access_result r;
	uint64_t x = 0;
	int rc = vmmu_vcpu_access(t->g->v[t->id], BIGT_VA + p * 4096ULL + t->id * 8, 8, VMMU_ACC_READ,
				  &x, &r);

	if (rc || r.status != VMMU_ACCESS_DONE)
		return th_fail(t, "read through the table in the large region failed", (uint64_t)-rc,
			       r.status);
	if (x != t->last[p])
		return th_fail(t, "read through the table in the large region: another value", x,
			       t->last[p]);
	rc = vmmu_vcpu_access(t->g->v[t->id], LOWL_VA + t->g->pte[t->cur][p], 8, VMMU_ACC_READ, &x,
			      &r);
	if (rc || r.status != VMMU_ACCESS_DONE)
		return th_fail(t, "read of the guest tables through a 2M page failed", (uint64_t)-rc,
			       r.status);
	if ((x & rsvd_bits(12, 51)) != DATA_GPA + p * 4096ULL)
		return th_fail(t, "read of the guest tables through a 2M page: another entry", x, p);
	return true;
}

/* The guest rewrites one of its 2M entries of the large region as it was made (A/D clear). */
static bool big_pde_rewrite(struct th *t, unsigned h)
{
	struct vmmu_access_result r;
	uint64_t x = (BIG_GPA + h * 2 * MiB) | PRWU | PT_PAGE_SIZE_MASK;
	int rc = vmmu_vcpu_access(t->g->v[t->id], TABLE_VA + t->g->big_pde[t->cur][h], 8,
				  VMMU_ACC_WRITE, &x, &r);

	if (rc || r.status != VMMU_ACCESS_DONE)
		return th_fail(t, "2M entry write failed", (uint64_t)-rc, r.status);
	rc = vmmu_vcpu_invlpg(t->g->v[t->id], BIG_GPA + h * 2 * MiB);
	return rc ? th_fail(t, "INVLPG failed", (uint64_t)-rc, 0) : true;
}

/* The guest rewrites the leaf entry of its own data page @p in the table it runs on, as it was
 * made (Accessed and Dirty clear): a store to a write-tracked (or unsync) guest table, beside the
 * other vCPUs' faults through the same table. The next write sets both bits again; the audit
 * checks that no writable spte outlives a clean entry. */
static bool pte_rewrite(struct th *t, unsigned p)
{
	struct vmmu_access_result r;
	uint64_t x = (DATA_GPA + p * 4096ULL) | PRWU;
	int rc = vmmu_vcpu_access(t->g->v[t->id], TABLE_VA + t->g->pte[t->cur][p], 8, VMMU_ACC_WRITE,
				  &x, &r);

	if (rc || r.status != VMMU_ACCESS_DONE)
		return th_fail(t, "page-table write failed", (uint64_t)-rc, r.status);
	return true;
}

static void *vcpu_thread(void *arg)
{
	struct th *t = arg;
	struct vmmu_vcpu *v = t->g->v[t->id];
	uint64_t s = 0x9e3779b97f4a7c15ULL * (t->id + 1) + t->round;
	bool ok = true;

	for (unsigned i = 0; i < t->iters && ok; i++) {
		uint64_t r = xorshift(&s);
		uint64_t val = (uint64_t)t->round << 48 | (uint64_t)i << 16 | t->id;
		switch (r % 8) {
		case 0: case 1:
			ok = data_access(t, t->id * PRIV + (unsigned)(r >> 8) % PRIV, val);
			break;
		case 2:
			if ((r >> 8) % 4)
				ok = big_access(t, (unsigned)(r >> 10) % BIG_PAGES, val);
			else if ((r >> 10) % 16)
				ok = big_table_read(t, t->id * PRIV + (unsigned)(r >> 14) % PRIV);
			else
				ok = big_pde_rewrite(t, (unsigned)(r >> 14) & 1);
			break;
		case 3: case 4:
			ok = data_access(t, NV * PRIV + (unsigned)(r >> 8) % SHARED, val);
			break;
		case 5: case 6:
			ok = vol_read(t, (unsigned)(r >> 8) % VOL_PAGES);
			break;
		case 7:
			if ((r >> 8) % 3 == 0) {
				t->cur = (r >> 10) & 1;
				int rc = vmmu_vcpu_mov_cr(v, 3, t->g->root[t->cur]);
				if (rc)
					ok = th_fail(t, "MOV CR3 failed", (uint64_t)-rc, 0);
			} else {
				unsigned p = t->id * PRIV + (unsigned)(r >> 10) % PRIV;
				if ((r >> 8) % 3 == 2)
					ok = pte_rewrite(t, p);
				int rc = vmmu_vcpu_invlpg(v, DATA_GPA + p * 4096ULL);
				if (ok && rc)
					ok = th_fail(t, "INVLPG failed", (uint64_t)-rc, 0);
			}
			break;
		}
	}
	__atomic_sub_fetch(t->running, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void audit_ok(struct tg *g)
{
	char why[256] = "";
	int rc = vmmu_vm_audit(g->vm, why, sizeof(why));
	if (rc)
		fail_msg("audit: %s", why);
}

static unsigned stress_rounds(unsigned dflt)
{
	const char *e = getenv("VMMU_STRESS_ROUNDS");
	return e && atoi(e) > 0 ? (unsigned)atoi(e) : dflt;
}

static void run_mode(enum vmmu_mmu mode, enum vmmu_mmu_lock lock, uint64_t max_sps)
{
	static struct th th[NV];
	uint64_t bm[(DATA_PAGES + 63) / 64];
	unsigned rounds = stress_rounds(4), changes = 0;
	uint64_t vol_reads = 0, vol_gone = 0, max_2m = 0;
	pthread_t tid[NV];
	struct tg g;

	tg_init(&g, mode, lock, max_sps);
	memset(th, 0, sizeof(th));
	assert_true(vmmu_machine_unfragment(vmmu_vm_machine(g.vm)) > 0);
	for (unsigned round = 0; round < rounds; round++) {
		int running = NV;
		for (unsigned i = 0; i < NV; i++) {
			th[i].g = &g;
			th[i].id = i;
			th[i].round = round;
			th[i].iters = 20000;
			th[i].running = &running;
			th[i].vol_reads = th[i].vol_gone = 0;
			assert_int_equal(pthread_create(&tid[i], NULL, vcpu_thread, &th[i]), 0);
		}
		/* khugepaged beside them (its first pass at once). */
		assert_int_equal(vmmu_khugepaged_start(vmmu_vm_machine(g.vm)), 0);
		/* The memory map changes under the running vCPUs. */
		for (unsigned op = 0; __atomic_load_n(&running, __ATOMIC_ACQUIRE) > 0; op++) {
			switch (op % 4) {
			case 0:
				set_slot(&g, SLOT_DATA, VMMU_MEM_LOG_DIRTY_PAGES, DATA_GPA,
					 DATA_PAGES * 4096ULL, g.data_hva);
				break;
			case 1:
				assert_int_equal(vmmu_get_dirty_log(g.vm, SLOT_DATA, bm), 0);
				break;
			case 2:
				set_slot(&g, SLOT_DATA, 0, DATA_GPA, DATA_PAGES * 4096ULL, g.data_hva);
				break;
			case 3:
				vol_drop(&g);
				vol_make(&g);
				break;
			}
			changes++;
		}
		for (unsigned i = 0; i < NV; i++) {
			pthread_join(tid[i], NULL);
			if (th[i].err[0])
				fail_msg("%s", th[i].err);
			vol_reads += th[i].vol_reads;
			vol_gone += th[i].vol_gone;
		}
		/* The audit wants the MMU still: khugepaged pauses too. */
		vmmu_khugepaged_stop(vmmu_vm_machine(g.vm));
		audit_ok(&g);
		struct vmmu_stats rs;
		assert_int_equal(vmmu_vm_stats(g.vm, &rs, sizeof(rs)), 0);
		max_2m = rs.pages_2m > max_2m ? rs.pages_2m : max_2m;
	}
	/* Every word holds its vCPU's last write: none was lost to a stale translation. */
	for (unsigned i = 0; i < NV; i++) {
		for (unsigned p = 0; p < DATA_PAGES; p++) {
			uint64_t x = 0;
			if (!th[i].last[p])
				continue;
			assert_int_equal(vmmu_read_guest(g.vm, DATA_GPA + p * 4096ULL + i * 8, &x, 8), 0);
			assert_int_equal(x, th[i].last[p]);
		}
		for (unsigned p = 0; p < BIG_PAGES; p++) {
			uint64_t x = 0;
			if (!th[i].big_last[p])
				continue;
			assert_int_equal(vmmu_read_guest(g.vm, BIG_GPA + p * 4096ULL + i * 8, &x, 8), 0);
			assert_int_equal(x, th[i].big_last[p]);
		}
	}
	struct vmmu_stats st;
	assert_int_equal(vmmu_vm_stats(g.vm, &st, sizeof(st)), 0);
	if (mode != VMMU_MMU_NATIVE)
		assert_true(st.remote_tlb_flush > 0);
	/* The 2 MiB the guest tables sit in (the rest of the slot is never touched): a THP made
	 * under the running vCPUs; the large region's second 2 MiB, touched before the fragmenter
	 * let go, may be one too (if khugepaged gets there before the vCPUs' faults). */
	assert_in_range(st.thp_collapse_alloc, 1, 2);
	/* The large region was mapped with 2M leaves at some point. */
	if (mode != VMMU_MMU_NATIVE)
		assert_true(max_2m > 0);
	print_message("%s (%s, limit %" PRIu64 "): %u rounds, %u map changes under 4 vCPU threads, %"
		      PRIu64 " reads of the replaced region (%" PRIu64 " found it gone), %" PRIu64
		      " remote TLB flushes, %" PRIu64 " exits, %" PRIu64 " fine-lock waits, %" PRIu64
		      " THPs collapsed, up to %" PRIu64 " 2M leaves\n",
		      mode == VMMU_MMU_NATIVE ? "native" : mode == VMMU_MMU_SHADOW ? "shadow" :
		      mode == VMMU_MMU_EPT ? "ept" : "npt",
		      lock == VMMU_MMU_LOCK_FINE ? "fine" : lock == VMMU_MMU_LOCK_SHARED ? "shared" : "big",
		      max_sps, rounds, changes, vol_reads, vol_gone, st.remote_tlb_flush, st.exits,
		      st.sp_lock_contended, st.thp_collapse_alloc, max_2m);
	vmmu_vm_destroy(g.vm);
}

/* ---- the protocol itself, white-box ---- */

struct holder {
	struct vmmu_vcpu *v;
	int phase;          /* [atomic] 1: in guest mode; 2: leaving */
	int sender_saw;     /* the phase when the sender's request returned */
};

/* A vCPU thread that stays in guest mode (as in one long access) until told to leave. */
static void *hold_in_guest(void *arg)
{
	struct holder *h = arg;

	vcpu_enter(h->v);
	__atomic_store_n(&h->phase, 1, __ATOMIC_RELEASE);
	/* Kicked: the sender changed the mode and waits for it to leave. */
	while (__atomic_load_n(&h->v->mode, __ATOMIC_ACQUIRE) != EXITING_GUEST_MODE)
		sched_yield();
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	nanosleep(&ts, NULL);   /* the rest of the access: the sender must still be waiting */
	__atomic_store_n(&h->phase, 2, __ATOMIC_RELEASE);
	vcpu_leave(h->v);
	return NULL;
}

static void *send_flush(void *arg)
{
	struct holder *h = arg;
	vm_make_all_cpus_request(h->v->vm, VCPU_REQ_TLB_FLUSH);
	/* Returned: the vCPU has left guest mode. */
	h->sender_saw = __atomic_load_n(&h->phase, __ATOMIC_ACQUIRE);
	return NULL;
}

static void test_request_waits(void **state)
{
	struct vmmu_vm_config cfg = { .mmu = VMMU_MMU_EPT };
	struct vmmu_vm *vm;
	struct holder h = { 0 };
	pthread_t t1, t2;

	assert_int_equal(vmmu_vm_create(&cfg, &vm), 0);
	assert_int_equal(vmmu_vcpu_create(vm, 0, &h.v), 0);

	/* A vCPU out of guest mode gets the request and is not waited for: it takes the request
	 * when it next enters, charged as the one flush it was asked for. */
	vm_make_all_cpus_request(vm, VCPU_REQ_TLB_FLUSH);
	assert_true(h.v->requests & VCPU_REQ_TLB_FLUSH);
	assert_int_equal(h.v->remote_flushes, 1);
	uint64_t flushes = h.v->cpu.st.tlb_flush;
	vcpu_enter(h.v);
	vcpu_leave(h.v);
	assert_int_equal(h.v->requests, 0);
	assert_int_equal(h.v->remote_flushes, 0);
	assert_int_equal(h.v->cpu.st.tlb_flush, flushes + 1);

	/* In guest mode on another thread: kicked, and waited for until it leaves. */
	assert_int_equal(pthread_create(&t1, NULL, hold_in_guest, &h), 0);
	while (__atomic_load_n(&h.phase, __ATOMIC_ACQUIRE) != 1)
		sched_yield();
	assert_int_equal(pthread_create(&t2, NULL, send_flush, &h), 0);
	pthread_join(t2, NULL);
	pthread_join(t1, NULL);
	assert_int_equal(h.sender_saw, 2);
	assert_int_equal(h.v->mode, OUTSIDE_GUEST_MODE);
	assert_true(h.v->requests & VCPU_REQ_TLB_FLUSH);   /* taken at its next entry */
	vmmu_vm_destroy(vm);
}

/* ---- --mmu-lock: who waits for whom ---- */

struct faulter {
	struct vmmu_vcpu *v;
	gva_t gva;
	uint64_t val;       /* what it stores */
	int started;        /* [atomic] the faulting access is about to be made */
	int done;           /* [atomic] the faulting access returned */
	int rc;
};

static void *fault_once(void *arg)
{
	struct faulter *f = arg;
	struct vmmu_access_result r;
	uint64_t x = f->val;

	__atomic_store_n(&f->started, 1, __ATOMIC_RELEASE);
	f->rc = vmmu_vcpu_access(f->v, f->gva, 8, VMMU_ACC_WRITE, &x, &r);
	if (!f->rc && r.status != VMMU_ACCESS_DONE)
		f->rc = -1;
	__atomic_store_n(&f->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* What the test holds while a vCPU's access faults (lock_case), and where the access goes:
 * NEAR page 0 of the data (its shadow pages made by the first access, to page 100), FAR the
 * replaced region (a new level-1 shadow page), PTE a store to the guest's own leaf entry of
 * data page 0 (a write-tracked guest table: emulated, or unsync). */
enum held { HOLD_MMU_LOCK, HOLD_MMU_AND_GFN_LOCK };
enum target { NEAR, FAR, PTE };

/*
 * While another thread holds mmu_lock shared (as another vCPU's fault does), a vCPU's access
 * faults: under `fine` and `shared` an EPT/NPT fault goes through, and under `fine` a soft-MMU
 * fault that installs a leaf or makes and links a shadow page; under `big`, for the soft MMU
 * under `shared`, and for a soft-MMU write to a guest page table, it waits until the lock is
 * released, and the wait is counted. With the soft MMU's rmap lock held too, a
 * fine fault spins on it (sp_lock_contended): the stripe of @gva's gfn (identity-mapped).
 */
static void lock_case(enum vmmu_mmu mode, enum vmmu_mmu_lock lock, enum target to, enum held held,
		      bool must_wait)
{
	struct tg g;
	struct faulter f = { 0 };
	struct vmmu_stats st;
	struct vmmu_access_result r;
	uint64_t x = 1;
	pthread_t t;

	tg_init(&g, mode, lock, 4096);
	f.v = g.v[0];
	f.gva = to == NEAR ? DATA_GPA : to == FAR ? VOL_GPA : TABLE_VA + g.pte[0][0];
	f.val = to == PTE ? DATA_GPA | PRWU : 7;
	assert_int_equal(vmmu_vcpu_access(f.v, DATA_GPA + 100 * 4096ULL, 8, VMMU_ACC_WRITE, &x, &r), 0);
	brlock_read(&g.vm->mmu->mmu_lock);
	if (held == HOLD_MMU_AND_GFN_LOCK)
		shadow_spin_lock(to_shadow(g.vm->mmu), &gfn_stripe(to_shadow(g.vm->mmu), f.gva >> 12)->lock);
	assert_int_equal(pthread_create(&t, NULL, fault_once, &f), 0);
	/* The 30 ms count from the faulter's start, not its creation: on a loaded machine a new
	 * thread may first run many milliseconds later, and its wait would be too short to tell. */
	for (int i = 0, waited = 0; i < 4000 && !__atomic_load_n(&f.done, __ATOMIC_ACQUIRE); i++) {
		struct timespec ts = { 0, 1000 * 1000 };
		nanosleep(&ts, NULL);
		if (__atomic_load_n(&f.started, __ATOMIC_ACQUIRE) && must_wait && ++waited == 30)
			break;          /* 30 ms: it waits */
	}
	assert_int_equal(__atomic_load_n(&f.done, __ATOMIC_ACQUIRE), !must_wait);
	if (held == HOLD_MMU_AND_GFN_LOCK)
		shadow_spin_unlock(&gfn_stripe(to_shadow(g.vm->mmu), f.gva >> 12)->lock);
	brlock_unlock(&g.vm->mmu->mmu_lock);
	pthread_join(t, NULL);
	assert_int_equal(f.rc, 0);
	assert_int_equal(vmmu_vm_stats(g.vm, &st, sizeof(st)), 0);
	assert_int_equal(st.version, VMMU_STATS_VERSION);
	if (must_wait && held == HOLD_MMU_LOCK)
		assert_true(st.mmu_lock_wait_ns >= 20ULL * 1000 * 1000);
	else
		assert_int_equal(st.mmu_lock_wait_ns, 0);
	assert_int_equal(st.sp_lock_contended, held == HOLD_MMU_AND_GFN_LOCK);
	vmmu_vm_destroy(g.vm);
}

/*
 * The soft MMU's memo of the registers that matched its root (shadow_root_current): a zap that
 * invalidates the loaded root, with the registers unchanged, must still make the root not
 * current, or a fault racing the zap (another vCPU's memslot change) installs into a dead root.
 * Then the next access reloads a root and the memo holds again.
 */
static void test_root_memo(void **state)
{
	struct vmmu_access_result r;
	struct zap_batch z = { 0 };
	struct shadow_vcpu *sv;
	struct shadow_page *old;
	struct tg g;
	uint64_t x = 1;

	(void)state;
	tg_init(&g, VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, 4096);
	assert_int_equal(vmmu_vcpu_access(g.v[0], DATA_GPA, 8, VMMU_ACC_WRITE, &x, &r), 0);
	assert_int_equal(r.status, VMMU_ACCESS_DONE);
	sv = g.v[0]->mmu.priv;
	brlock_write(&g.vm->mmu->mmu_lock);
	assert_true(shadow_root_current(sv));
	assert_true(shadow_root_current(sv));        /* the memo's answer, the registers unchanged */
	old = sv->root;
	zap_all(to_shadow(g.vm->mmu), &z);
	zap_batch_commit(to_shadow(g.vm->mmu), &z);
	assert_true(sv->root == old);                /* not reloaded: the vCPU is not running */
	assert_false(shadow_root_current(sv));
	brlock_unlock(&g.vm->mmu->mmu_lock);
	assert_int_equal(vmmu_vcpu_access(g.v[0], DATA_GPA + 4096, 8, VMMU_ACC_READ, &x, &r), 0);
	assert_int_equal(r.status, VMMU_ACCESS_DONE);
	brlock_write(&g.vm->mmu->mmu_lock);
	assert_true(sv->root != old);
	assert_true(shadow_root_current(sv));
	brlock_unlock(&g.vm->mmu->mmu_lock);
	vmmu_vm_destroy(g.vm);
}

static void test_mmu_lock(void **state)
{
	struct vmmu_vm_config cfg = { .mmu = VMMU_MMU_EPT, .mmu_lock = (enum vmmu_mmu_lock)3 };
	struct vmmu_vm *vm;
	for (enum vmmu_mmu m = VMMU_MMU_EPT; m <= VMMU_MMU_NPT; m++) {
		lock_case(m, VMMU_MMU_LOCK_FINE, FAR, HOLD_MMU_LOCK, false);
		lock_case(m, VMMU_MMU_LOCK_SHARED, FAR, HOLD_MMU_LOCK, false);
		lock_case(m, VMMU_MMU_LOCK_BIG, NEAR, HOLD_MMU_LOCK, true);
	}
	/* fine: a leaf, and a new shadow page linked, under the shared lock; an emulated (or
	 * unsync) page-table write needs it exclusive. */
	lock_case(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, NEAR, HOLD_MMU_LOCK, false);
	lock_case(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, FAR, HOLD_MMU_LOCK, false);
	lock_case(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, PTE, HOLD_MMU_LOCK, true);
	lock_case(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, NEAR, HOLD_MMU_AND_GFN_LOCK, true);
	lock_case(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_SHARED, NEAR, HOLD_MMU_LOCK, true);
	lock_case(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_BIG, NEAR, HOLD_MMU_LOCK, true);
	assert_int_equal(vmmu_vm_create(&cfg, &vm), -EINVAL);
	cfg.mmu_lock = (enum vmmu_mmu_lock)7;
	assert_int_equal(vmmu_vm_create(&cfg, &vm), -EINVAL);
}

/* ---- mmu_lock itself: the big-reader lock's protocol (host/brlock.h) ---- */

struct rw_stress {
	struct brlock *l;
	unsigned id;
	int *inside;        /* [atomic] +1 per reader inside, +1000 per writer inside */
	uint64_t *a, *b;    /* written only by writers, always equal outside a writer */
	int err;
};

/* Readers and writers in turn on one lock: a writer is alone (inside is 1000 while it holds the
 * lock), a reader sees no writer and a consistent pair; a stale or torn pair means a reader
 * entered beside a writer, which TSan reports as a race too. */
static void *rw_stress_thread(void *arg)
{
	struct rw_stress *t = arg;
	uint64_t seed = t->id * 0x9e3779b97f4a7c15ULL + 1;

	for (int i = 0; i < 20000 && !t->err; i++) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		bool write = seed % 8 == 0, try = (seed >> 8) % 4 == 0;

		if (write) {
			if (try ? !brlock_write_trylock(t->l) : (brlock_write(t->l), false))
				continue;
			if (__atomic_add_fetch(t->inside, 1000, __ATOMIC_RELAXED) != 1000)
				t->err = 1;
			(*t->a)++;
			(*t->b)++;
			__atomic_sub_fetch(t->inside, 1000, __ATOMIC_RELAXED);
			brlock_unlock(t->l);
		} else {
			if (try ? !brlock_read_trylock(t->l) : (brlock_read(t->l), false))
				continue;
			if (__atomic_add_fetch(t->inside, 1, __ATOMIC_RELAXED) >= 1000 || *t->a != *t->b)
				t->err = 2;
			__atomic_sub_fetch(t->inside, 1, __ATOMIC_RELAXED);
			brlock_unlock(t->l);
		}
	}
	return NULL;
}

struct rw_try {
	struct brlock *l;
	bool write;
	int got;
};

static void *rw_try_thread(void *arg)
{
	struct rw_try *t = arg;

	t->got = t->write ? brlock_write_trylock(t->l) : brlock_read_trylock(t->l);
	if (t->got)
		brlock_unlock(t->l);
	return NULL;
}

/* A trylock of @l from another thread (a thread holds one read lock at a time): 1 if it got it. */
static int try_in_thread(struct brlock *l, bool write)
{
	struct rw_try t = { .l = l, .write = write };
	pthread_t tid;

	assert_int_equal(pthread_create(&tid, NULL, rw_try_thread, &t), 0);
	pthread_join(tid, NULL);
	return t.got;
}

static void test_mmu_rwlock(void **state)
{
	struct brlock l;
	struct rw_stress t[6];
	pthread_t tid[6];
	int inside = 0;
	uint64_t a = 0, b = 0;

	assert_int_equal(brlock_init(&l, BRLOCK_MMU), 0);
	/* Readers share; a writer excludes readers and writers; trylock fails where lock waits. */
	assert_true(brlock_read_trylock(&l));
	assert_int_equal(try_in_thread(&l, false), 1);
	assert_int_equal(try_in_thread(&l, true), 0);
	assert_false(brlock_write_trylock(&l));
	brlock_unlock(&l);
	assert_true(brlock_write_trylock(&l));
	assert_int_equal(try_in_thread(&l, false), 0);
	assert_int_equal(try_in_thread(&l, true), 0);
	brlock_unlock(&l);
	assert_int_equal(try_in_thread(&l, true), 1);
	assert_true(brlock_read_trylock(&l));
	brlock_read_unlock(&l);
	for (unsigned i = 0; i < BRLOCK_SHARDS; i++)
		assert_int_equal(l.shard[i].readers, 0);
	assert_int_equal(l.writer, 0);

	/* More threads than shards share some: their counts add up. */
	for (unsigned i = 0; i < 6; i++) {
		t[i] = (struct rw_stress){ .l = &l, .id = i, .inside = &inside, .a = &a, .b = &b };
		assert_int_equal(pthread_create(&tid[i], NULL, rw_stress_thread, &t[i]), 0);
	}
	for (unsigned i = 0; i < 6; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(t[i].err, 0);
	}
	assert_int_equal(a, b);
	assert_true(a > 0);
	for (unsigned i = 0; i < BRLOCK_SHARDS; i++)
		assert_int_equal(l.shard[i].readers, 0);
	assert_int_equal(l.writer, 0);
	brlock_destroy(&l);
}

static void test_native(void **state) { run_mode(VMMU_MMU_NATIVE, VMMU_MMU_LOCK_FINE, 0); }
static void test_shadow(void **state)
{
	run_mode(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, 0);
	run_mode(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, 4096);
	run_mode(VMMU_MMU_SHADOW, VMMU_MMU_LOCK_BIG, 0);
}
static void test_ept(void **state) { run_mode(VMMU_MMU_EPT, VMMU_MMU_LOCK_FINE, 0); }
static void test_npt(void **state) { run_mode(VMMU_MMU_NPT, VMMU_MMU_LOCK_FINE, 0); }

/* ---- fine: vCPUs faulting on the same sptes at once ---- */

struct herd {
	struct tg *g;
	unsigned id;
	int *go;            /* [atomic] round number released by the main thread */
	int *done;          /* [atomic] threads finished with the round */
	int round;
	int err;
};

static void *herd_thread(void *arg)
{
	struct herd *h = arg;

	for (int round = 1; round <= h->round; round++) {
		while (__atomic_load_n(h->go, __ATOMIC_ACQUIRE) < round)
			sched_yield();
		/* Every vCPU the same pages in the same order: the same leaves, the same rmaps. */
		for (unsigned p = 0; p < DATA_PAGES && !h->err; p++) {
			struct vmmu_access_result r;
			uint64_t x = 0;
			int rc = vmmu_vcpu_access(h->g->v[h->id], DATA_GPA + p * 4096ULL, 8, VMMU_ACC_READ,
						  &x, &r);
			if (rc || r.status != VMMU_ACCESS_DONE)
				h->err = rc ? rc : -1;
		}
		__atomic_add_fetch(h->done, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Under fine, leaves go in under their shadow page's lock and shadow pages are made and linked
 * under the structure lock: four vCPUs read the same pages in the same order after each zap, so
 * their faults make the same shadow pages and install the same sptes (and the prefetch the same
 * neighbours) at the same moment; the audit after each round finds every leaf in its rmap
 * exactly once, every link in its child's parent list once, every table tracked once. */
static void test_fine_same_sptes(void **state)
{
	struct tg g;
	struct herd h[NV];
	pthread_t tid[NV];
	int go = 0, done = 0, rounds = (int)stress_rounds(4) * 10;

	tg_init(&g, VMMU_MMU_SHADOW, VMMU_MMU_LOCK_FINE, 4096);
	for (unsigned i = 0; i < NV; i++) {
		h[i] = (struct herd){ .g = &g, .id = i, .go = &go, .done = &done, .round = rounds };
		assert_int_equal(pthread_create(&tid[i], NULL, herd_thread, &h[i]), 0);
	}
	for (int round = 1; round <= rounds; round++) {
		/* The leaves go, each round; every other round the guest tables' slot too, so the
		 * shadow pages of the tables go and the vCPUs make and link them all at once. */
		set_slot(&g, SLOT_DATA, 0, DATA_GPA, 0, 0);
		set_slot(&g, SLOT_DATA, 0, DATA_GPA, DATA_PAGES * 4096ULL, g.data_hva);
		if (round & 1) {
			set_slot(&g, 0, 0, 0, 0, 0);
			set_slot(&g, 0, 0, 0, 4 * MiB, g.low_hva);
		}
		__atomic_store_n(&go, round, __ATOMIC_RELEASE);
		while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < round * NV)
			sched_yield();
		audit_ok(&g);
	}
	for (unsigned i = 0; i < NV; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(h[i].err, 0);
	}
	struct vmmu_stats st;
	assert_int_equal(vmmu_vm_stats(g.vm, &st, sizeof(st)), 0);
	print_message("fine, same sptes: %d rounds, %" PRIu64 " faults, %" PRIu64 " spurious, %" PRIu64
		      " fine-lock waits\n", rounds, st.pf_taken, st.pf_spurious, st.sp_lock_contended);
	vmmu_vm_destroy(g.vm);
}

/* ---- the MMU's counters, summed over vCPU threads ---- */

enum { SUM_PAGES = 192, SUM_READS = 20000, SUM_GVA = 0x400000, SUM_GPA = 0x800000,
       SUM_TABLES = 0x100000 };

struct sum_th {
	struct vmmu_vcpu *v;
	unsigned id;
	int err;
	uint64_t reads;              /* done; the thread's own until joined */
	const int *stop;             /* set: stop reading (once SUM_READS are done) */
};

static void *sum_thread(void *arg)
{
	struct sum_th *t = arg;

	/* Each vCPU's own pages, each aligned group of 8 (a PTE prefetch's) one vCPU's: one fault
	 * a page, whatever the other threads do. */
	for (unsigned p = 0; p < SUM_PAGES && !t->err; p++) {
		uint64_t v = p;
		struct vmmu_access_result res;
		uint64_t gva = SUM_GVA + ((uint64_t)t->id * SUM_PAGES + p) * 4096;
		if (vmmu_vcpu_access(t->v, gva, 8, VMMU_ACC_WRITE, &v, &res) ||
		    res.status != VMMU_ACCESS_DONE)
			__atomic_store_n(&t->err, 1, __ATOMIC_RELAXED);
	}
	/* Then reads of them, mostly TLB hits, until the stats calls have met them running. */
	for (unsigned i = 0; (i < SUM_READS || !__atomic_load_n(t->stop, __ATOMIC_ACQUIRE)) &&
			     !t->err; i++, t->reads++) {
		unsigned p = (i * 7u) % SUM_PAGES;
		uint64_t v = ~0ULL;
		struct vmmu_access_result res;
		uint64_t gva = SUM_GVA + ((uint64_t)t->id * SUM_PAGES + p) * 4096;
		if (vmmu_vcpu_access(t->v, gva, 8, VMMU_ACC_READ, &v, &res) ||
		    res.status != VMMU_ACCESS_DONE || v != p)
			__atomic_store_n(&t->err, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

/* Every counter of @b at least @a's: a counter read while its vCPU runs is a value it had. Not
 * an assertion: the caller stops its threads before it fails the test. */
static bool stats_not_less(const struct vmmu_stats *a, const struct vmmu_stats *b)
{
	bool ok = b->accesses >= a->accesses && b->tlb_hits >= a->tlb_hits &&
		  b->tlb_misses >= a->tlb_misses && b->walk_refs >= a->walk_refs &&
		  b->exits >= a->exits && b->sim_cycles >= a->sim_cycles &&
		  b->pf_fixed >= a->pf_fixed;
	for (unsigned r = 0; r < VMMU_EXIT_NR; r++)
		ok = ok && b->exits_by_reason[r] >= a->exits_by_reason[r] &&
		     b->exit_cycles[r] >= a->exit_cycles[r];
	return ok;
}

/* The counters as a VM reads them while its vCPU threads run: each vCPU thread counts its faults
 * into its own block (no locked add), which mmu_get_stats adds to the shared shards, and its
 * hardware counters in plain memory that it alone writes (cpu_stat_add). Read meanwhile, with
 * remote TLB flushes between the reads (each vCPU moves their charge from its pending count into
 * its cycles: flush_seq), the VM's and each vCPU's counters never go down (and TSan, in the
 * threads suite, sees no race); once the threads end, pf_fixed and pages_4k are one a page
 * written, as with one vCPU, every access is counted, and the VM's figures are its vCPUs'
 * summed. The threads read on until 50 of the stats calls have met them running. */
static void test_stats_sum(void **state)
{
	(void)state;
	struct vmmu_vm_config cfg = { .mmu = VMMU_MMU_SHADOW, .host = VMMU_HOST_VMX,
				      .host_mem_bytes = 256 * MiB, .mmu_lock = VMMU_MMU_LOCK_FINE };
	struct vmmu_regs regs = { .cr0 = X86_CR0_PG | X86_CR0_PE | X86_CR0_WP, .cr3 = SUM_TABLES,
				  .cr4 = X86_CR4_PAE, .efer = EFER_LME | EFER_LMA | EFER_NXE };
	struct sum_th th[NV];
	pthread_t tid[NV];
	struct vmmu_vm *vm;
	uint64_t hva, last = 0;
	struct vmmu_stats st = { 0 }, prev = { 0 }, vprev[NV];
	unsigned seen_running = 0;

	memset(vprev, 0, sizeof(vprev));
	assert_int_equal(vmmu_vm_create(&cfg, &vm), 0);
	assert_int_equal(vmmu_vm_mmap(vm, 16 * MiB, false, &hva), 0);
	struct vmmu_userspace_memory_region r = { .memory_size = 16 * MiB, .userspace_addr = hva };
	assert_int_equal(vmmu_set_user_memory_region(vm, &r), 0);
	struct gpt_vm gv = { vm, SUM_TABLES + 4096 };
	struct gpt_builder b = gpt_vm_builder(&gv);
	for (unsigned p = 0; p < NV * SUM_PAGES; p++)
		gpt_map(&b, SUM_TABLES, 4, SUM_GVA + p * 4096ULL, SUM_GPA + p * 4096ULL, 1,
			PT_PRESENT_MASK | PT_WRITABLE_MASK);
	int stop = 0;
	for (unsigned i = 0; i < NV; i++) {
		th[i] = (struct sum_th){ .id = i, .stop = &stop };
		assert_int_equal(vmmu_vcpu_create(vm, i, &th[i].v), 0);
		assert_int_equal(vmmu_vcpu_set_regs(th[i].v, &regs), 0);
	}
	for (unsigned i = 0; i < NV; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, sum_thread, &th[i]), 0);
	/* No assertion until the threads are joined: a failed one would leave them running. */
	unsigned polls = 0, thread_err = 0;
	bool ok = true;
	for (; ok && seen_running < 50 && polls < 1000000; polls++) {
		struct mmu_stats ms;
		mmu_get_stats(vm->mmu, &ms);
		ok = ms.pf_fixed >= last;
		last = ms.pf_fixed;
		int rc = vmmu_vm_get_stats(vm, &st);
		ok = ok && rc == 0 && stats_not_less(&prev, &st);
		/* Reads made: the accesses beyond the writes and each exit's re-execution. */
		if (st.accesses > st.exits + (uint64_t)NV * SUM_PAGES)
			seen_running++;
		prev = st;
		for (unsigned i = 0; i < NV; i++) {
			struct vmmu_stats vs = { 0 };
			rc = vmmu_vcpu_get_stats(th[i].v, &vs);
			ok = ok && rc == 0 && stats_not_less(&vprev[i], &vs);
			vprev[i] = vs;
			thread_err += __atomic_load_n(&th[i].err, __ATOMIC_RELAXED);
		}
		if (thread_err)
			break;
		if (polls % 4 == 0)
			mmu_flush_remote_tlbs(vm->mmu);
		sched_yield();
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	uint64_t total = 0;
	for (unsigned i = 0; i < NV; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(th[i].err, 0);
		total += SUM_PAGES + th[i].reads;
	}
	assert_true(ok);
	assert_int_equal(seen_running, 50);
	assert_int_equal(vmmu_vm_get_stats(vm, &st), 0);
	assert_true(stats_not_less(&prev, &st));
	assert_int_equal(st.pf_fixed, NV * SUM_PAGES);
	assert_int_equal(st.pages_4k, NV * SUM_PAGES);
	assert_true(st.pf_taken >= NV * SUM_PAGES);   /* a fault may retry after another's change */
	assert_true(st.shadow_pages > 0);
	/* An access that exits is made again once its exit is handled: the hardware counts both. */
	assert_int_equal(st.accesses, total + st.exits);
	assert_int_equal(st.tlb_hits + st.tlb_misses, st.accesses);
	struct vmmu_stats sum = { 0 };
	for (unsigned i = 0; i < NV; i++) {
		struct vmmu_stats vs;
		assert_int_equal(vmmu_vcpu_get_stats(th[i].v, &vs), 0);
		assert_int_equal(vs.accesses, SUM_PAGES + th[i].reads + vs.exits);
		sum.tlb_hits += vs.tlb_hits;
		sum.tlb_misses += vs.tlb_misses;
		sum.exits += vs.exits;
		sum.sim_cycles += vs.sim_cycles;
	}
	assert_int_equal(st.tlb_hits, sum.tlb_hits);
	assert_int_equal(st.tlb_misses, sum.tlb_misses);
	assert_int_equal(st.exits, sum.exits);
	assert_int_equal(st.sim_cycles, sum.sim_cycles);
	assert_true(st.exits >= NV * SUM_PAGES);      /* a #PF exit a page at least */
	assert_true(st.remote_tlb_flush > 0);
	print_message("stats read while %u vCPU threads ran: %u reads, %" PRIu64 " remote flushes\n",
		      NV, polls, st.remote_tlb_flush);
	vmmu_vm_destroy(vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_waits),
		cmocka_unit_test(test_mmu_lock),
		cmocka_unit_test(test_root_memo),
		cmocka_unit_test(test_mmu_rwlock),
		cmocka_unit_test(test_native),
		cmocka_unit_test(test_shadow),
		cmocka_unit_test(test_ept),
		cmocka_unit_test(test_npt),
		cmocka_unit_test(test_fine_same_sptes),
		cmocka_unit_test(test_stats_sum),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
