/* SPDX-License-Identifier: MIT */
/*
 * The probe catalogue, the layout both machines share, and the vmmu side of a probe: the same
 * operations the KVM guest's interpreter executes (kvm_probe_guest.S), made through the public
 * API (vmmu_vcpu_access at CPL 3 or 0, vmmu_vcpu_invlpg, vmmu_vcpu_mov_cr).
 *
 * What the KVM guest does that vmmu's API calls do not (its code fetches, stack, IDT and op
 * list) is warmed up before the first snapshot, so it costs no counter inside the window; the
 * one harness access that does land inside it, the fetch after a MOV CR3 (a new root must link
 * the harness's tables), vmmu makes too (harness_fetch).
 *
 * Invariants: pure functions over a struct probe_prog, one thread; a build error is kept in
 * prog->err, so the catalogue's builders need no error paths of their own.
 */
#include "validate/probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "paging/paging.h"
#include "validate/kvm_guest.h"
#include "vmmu/vmmu.h"

#define P   VMMU_PTE_P
#define RW  VMMU_PTE_RW
#define US  VMMU_PTE_US
#define A   VMMU_PTE_A
#define D   VMMU_PTE_D
#define PS  VMMU_PTE_PS
#define TBL (P | RW | US | A) /* a table entry: the leaf alone sets the rights */

const char *const probe_counter_name[PRB_C_NR] = {
	[PRB_C_EXITS] = "exits",
	[PRB_C_PF_TAKEN] = "pf_taken",
	[PRB_C_PF_FIXED] = "pf_fixed",
	[PRB_C_PF_EMULATE] = "pf_emulate",
	[PRB_C_PF_SPURIOUS] = "pf_spurious",
	[PRB_C_PF_FAST] = "pf_fast",
	[PRB_C_PF_GUEST] = "pf_guest",
	[PRB_C_INVLPG] = "invlpg",
	[PRB_C_TLB_FLUSH] = "tlb_flush",
	[PRB_C_REMOTE_TLB_FLUSH] = "remote_tlb_flush",
	[PRB_C_MMU_SHADOW_ZAPPED] = "mmu_shadow_zapped",
	[PRB_C_MMU_PTE_WRITE] = "mmu_pte_write",
	[PRB_C_MMU_PDE_ZAPPED] = "mmu_pde_zapped",
	[PRB_C_MMU_FLOODED] = "mmu_flooded",
	[PRB_C_MMU_RECYCLED] = "mmu_recycled",
	[PRB_C_MMU_CACHE_MISS] = "mmu_cache_miss",
	[PRB_C_MMU_UNSYNC] = "mmu_unsync",
	[PRB_C_PAGES_4K] = "pages_4k",
	[PRB_C_PAGES_2M] = "pages_2m",
};

/* ---------------------------------------------------------------------------------------- */
/* Building programs */

static void word(struct probe_prog *p, uint64_t gpa, uint64_t val)
{
	if (p->err)
		return;
	if (p->nwords == p->capwords) {
		size_t cap = p->capwords ? 2 * p->capwords : 1024;
		struct probe_word *w = realloc(p->words, cap * sizeof(*w));

		if (!w) {
			p->err = -ENOMEM;
			return;
		}
		p->words = w;
		p->capwords = cap;
	}
	p->words[p->nwords++] = (struct probe_word){ gpa, val };
}

static void op(struct probe_prog *p, uint64_t kind, uint64_t a, uint64_t b, uint64_t c)
{
	if (p->baseline)
		return;
	if (p->nops == PRB_MAX_OPS) {
		p->err = p->err ? p->err : -E2BIG;
		return;
	}
	p->ops[p->nops++] = (struct probe_op){ kind, a, b, c };
}

static uint64_t frame(uint64_t i)
{
	return PRB_DATA + i * 4096;
}

static uint64_t gva(uint64_t i)
{
	return PRB_GVA + i * 4096;
}

/*
 * One address space: @pml4 with the harness at entry 0 and the probe's region at entry 1,
 * @npages 4 KiB pages from PRB_GVA onto frames from @first, leaves with @flags, every
 * @hole-th leaf (hole > 0) without P.
 */
static void space(struct probe_prog *p, uint64_t pml4, uint64_t pdpt, uint64_t pd, uint64_t pt,
		  uint64_t npages, uint64_t first, uint64_t flags, uint64_t hole)
{
	word(p, pml4, PRB_PDPT_LOW | TBL);
	word(p, pml4 + 8, pdpt | TBL);
	word(p, pdpt, pd | TBL);
	for (uint64_t t = 0; t * 512 < npages; t++)
		word(p, pd + 8 * t, (pt + 4096 * t) | TBL);
	for (uint64_t i = 0; i < npages; i++) {
		uint64_t f = flags;

		if (hole && i % hole == hole - 1)
			f &= ~P;
		word(p, pt + 8 * i, frame(first + i) | f);
	}
}

static void space_a(struct probe_prog *p, uint64_t npages, uint64_t flags, uint64_t hole)
{
	space(p, PRB_PML4_A, PRB_PDPT_A, PRB_PD_A, PRB_PT_A, npages, 0, flags, hole);
	p->cr3 = PRB_PML4_A;
	p->pt_base = PRB_PT_A;
	p->span = npages * 4096;
}

/* ---- the catalogue: one guest behaviour each ---- */

#define N_SEQ 1024

static void b_touch_a0(struct probe_prog *p)
{
	space_a(p, N_SEQ, P | RW | US, 0);
	op(p, PRB_OP_READ, PRB_GVA, N_SEQ, 4096);
}

static void b_touch_ad(struct probe_prog *p)
{
	space_a(p, N_SEQ, P | RW | US | A | D, 0);
	op(p, PRB_OP_READ, PRB_GVA, N_SEQ, 4096);
}

static void b_write(struct probe_prog *p)
{
	space_a(p, N_SEQ, P | RW | US | A | D, 0);
	op(p, PRB_OP_WRITE, PRB_GVA, N_SEQ, 4096);
}

static void b_holes(struct probe_prog *p)
{
	space_a(p, N_SEQ, P | RW | US | A | D, 4);
	p->fix = P;
	op(p, PRB_OP_WRITE, PRB_GVA, N_SEQ, 4096);
}

static void b_dirty(struct probe_prog *p)
{
	space_a(p, N_SEQ, P | RW | US | A, 0);
	op(p, PRB_OP_READ, PRB_GVA, N_SEQ, 4096);
	op(p, PRB_OP_WRITE, PRB_GVA, N_SEQ, 4096);
}

#define N_REWRITE 256

static void b_pte_rewrite(struct probe_prog *p)
{
	const uint64_t fl = P | RW | US | A | D;

	space_a(p, N_REWRITE, fl, 0);
	op(p, PRB_OP_READ, PRB_GVA, N_REWRITE, 4096);
	for (uint64_t i = 0; i < N_REWRITE; i++) {
		op(p, PRB_OP_STORE, PRB_PT_A + 8 * i, frame(N_REWRITE + i) | fl, 0);
		op(p, PRB_OP_INVLPG, gva(i), 0, 0);
		op(p, PRB_OP_READ, gva(i), 1, 4096);
	}
}

static void b_pde_rewrite(struct probe_prog *p)
{
	const uint64_t fl = P | RW | US | A | D;

	space_a(p, 512, fl, 0);
	for (uint64_t i = 0; i < 512; i++)
		word(p, PRB_PT_ALT + 8 * i, frame(512 + i) | fl);
	op(p, PRB_OP_READ, PRB_GVA, 512, 4096);
	for (int r = 0; r < 4; r++) {
		op(p, PRB_OP_STORE, PRB_PD_A, (r % 2 ? PRB_PT_A : PRB_PT_ALT) | TBL, 0);
		op(p, PRB_OP_CR3, PRB_PML4_A, 0, 0);
		op(p, PRB_OP_READ, PRB_GVA, 512, 4096);
	}
}

#define N_SWITCH 64

static void b_cr3_switch(struct probe_prog *p)
{
	const uint64_t fl = P | RW | US | A | D;

	space_a(p, N_SWITCH, fl, 0);
	space(p, PRB_PML4_B, PRB_PDPT_B, PRB_PD_B, PRB_PT_B, N_SWITCH, N_SWITCH, fl, 0);
	for (int r = 0; r < 16; r++) {
		op(p, PRB_OP_CR3, PRB_PML4_A, 0, 0);
		op(p, PRB_OP_READ, PRB_GVA, N_SWITCH, 4096);
		op(p, PRB_OP_CR3, PRB_PML4_B, 0, 0);
		op(p, PRB_OP_READ, PRB_GVA, N_SWITCH, 4096);
	}
}

static void b_fork_wp(struct probe_prog *p)
{
	const uint64_t fl = P | RW | US | A | D;

	space_a(p, N_REWRITE, fl, 0);
	p->fix = RW;
	op(p, PRB_OP_WRITE, PRB_GVA, N_REWRITE, 4096);
	for (uint64_t i = 0; i < N_REWRITE; i++)
		op(p, PRB_OP_STORE, PRB_PT_A + 8 * i, frame(i) | (fl & ~RW), 0);
	op(p, PRB_OP_CR3, PRB_PML4_A, 0, 0);
	op(p, PRB_OP_WRITE, PRB_GVA, N_REWRITE, 4096);
}

/* Runs of 32 INVLPGs, each followed by touching its pages: as Linux flushes a range page by page
 * (up to 33 pages). A run this short stays inside PVM's emulation budget (longer runs of emulated
 * ring-0 instructions exit now and then, which vmmu does not model). */
static void b_flush_many(struct probe_prog *p)
{
	space_a(p, 512, P | RW | US | A | D, 0);
	op(p, PRB_OP_READ, PRB_GVA, 512, 4096);
	for (uint64_t r = 0; r < 512; r += 32) {
		for (uint64_t i = r; i < r + 32; i++)
			op(p, PRB_OP_INVLPG, gva(i), 0, 0);
		op(p, PRB_OP_READ, gva(r), 32, 4096);
	}
}

const struct probe probe_catalogue[] = {
	{ "touch_a0", "first read of 1024 pages, guest Accessed clear", b_touch_a0, true },
	{ "touch_ad", "first read of 1024 pages, guest Accessed and Dirty set", b_touch_ad, true },
	{ "write_fresh", "first write of 1024 pages, host memory never touched", b_write, false },
	{ "write_prepop", "first write of 1024 pages, host memory resident", b_write, true },
	{ "holes", "writes over 1024 PTEs, every 4th not present (guest demand fault)", b_holes,
	  true },
	{ "dirty", "read then write 1024 pages, guest Dirty clear", b_dirty, true },
	{ "pte_rewrite", "256 PTEs rewritten to new frames, INVLPG, touched again",
	  b_pte_rewrite, true },
	{ "pde_rewrite", "a PDE switched between two page tables 4 times, CR3 reload, 512 reads",
	  b_pde_rewrite, true },
	{ "cr3_switch", "16 rounds of CR3 A, 64 reads, CR3 B, 64 reads", b_cr3_switch, true },
	{ "fork_wp", "256 written pages write-protected by the guest, written again (guest #PF)",
	  b_fork_wp, true },
	{ "flush_many", "512 pages read, then 16 times: 32 INVLPGs, their pages read again",
	  b_flush_many, true },
};
const size_t probe_count = sizeof(probe_catalogue) / sizeof(probe_catalogue[0]);

const struct probe *probe_find(const char *name)
{
	for (size_t i = 0; i < probe_count; i++)
		if (!strcmp(probe_catalogue[i].name, name))
			return &probe_catalogue[i];
	return NULL;
}

int probe_prog_build(const struct probe *pr, bool baseline, struct probe_prog *out)
{
	memset(out, 0, sizeof(*out));
	out->name = pr->name;
	out->prepopulate = pr->prepopulate;
	out->baseline = baseline;
	pr->build(out);
	out->ops[out->nops] = (struct probe_op){ PRB_OP_END, 0, 0, 0 };
	if (out->err) {
		int err = out->err;

		probe_prog_free(out);
		return err;
	}
	return 0;
}

void probe_prog_free(struct probe_prog *p)
{
	free(p->words);
	p->words = NULL;
	p->nwords = p->capwords = 0;
}

int probe_layout(const struct probe_prog *p, int (*write)(void *opaque, uint64_t gpa,
							   uint64_t val), void *opaque)
{
	int rc = 0;

	/* The harness: low 2 MiB in 4 KiB pages (page 0 absent, the ring-3 code and stack user
	 * pages), the next 2 MiB and all of PRB_RAM in supervisor 2 MiB pages. */
	rc = rc ? rc : write(opaque, PRB_PDPT_LOW, PRB_PD_LOW | TBL);
	rc = rc ? rc : write(opaque, PRB_PDPT_LOW + 8, PRB_PD_RAM | P | RW | A);
	rc = rc ? rc : write(opaque, PRB_PD_LOW, PRB_PT_LOW | TBL);
	rc = rc ? rc : write(opaque, PRB_PD_LOW + 8, 0x200000 | P | RW | PS | A | D);
	for (uint64_t i = 1; i < 512 && !rc; i++) {
		uint64_t f = P | RW | A | D;

		if (i == KVMG_UCODE >> 12)
			f = P | US | A;
		else if (i == KVMG_USTACK_PAGE >> 12)
			f |= US;
		rc = write(opaque, PRB_PT_LOW + 8 * i, i << 12 | f);
	}
	for (uint64_t i = 0; i < PRB_RAM_SIZE >> 21 && !rc; i++)
		rc = write(opaque, PRB_PD_RAM + 8 * i, (PRB_RAM_GPA + (i << 21)) | P | RW | PS | A | D);
	for (size_t i = 0; i < p->nwords && !rc; i++)
		rc = write(opaque, p->words[i].gpa, p->words[i].val);
	return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Medians */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

void probe_median(const struct probe_counts *s, size_t n, struct probe_counts *med,
		  struct probe_counts *spread)
{
	int64_t v[64];

	memset(med, 0, sizeof(*med));
	memset(spread, 0, sizeof(*spread));
	if (n > 64)
		n = 64;
	for (int c = 0; c < PRB_C_NR && n; c++) {
		for (size_t i = 0; i < n; i++)
			v[i] = s[i].v[c];
		qsort(v, n, sizeof(v[0]), cmp_i64);
		med->v[c] = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
		spread->v[c] = v[n - 1] - v[0];
	}
}

/* ---------------------------------------------------------------------------------------- */
/* The vmmu side */

static int vm_write(void *opaque, uint64_t gpa, uint64_t val)
{
	return vmmu_write_guest(opaque, gpa, &val, sizeof(val));
}

static void counts_of(const struct vmmu_stats *s, struct probe_counts *c)
{
	const uint64_t v[PRB_C_NR] = {
		s->exits, s->pf_taken, s->pf_fixed, s->pf_emulate, s->pf_spurious, s->pf_fast,
		s->pf_guest, s->invlpg, s->tlb_flush, s->remote_tlb_flush, s->mmu_shadow_zapped,
		s->mmu_pte_write, s->mmu_pde_zapped, s->mmu_flooded, s->mmu_recycled,
		s->mmu_cache_miss, s->mmu_unsync, s->pages_4k, s->pages_2m,
	};

	for (int i = 0; i < PRB_C_NR; i++)
		c->v[i] = (int64_t)v[i];
}

struct vrun {
	const struct probe_prog *p;
	bool pvm;                 /* ring 0 emulated, as a PVM host runs it */
	uint64_t user_entries;    /* IRETQs to ring 3: each ring-3 loop and each guest #PF */
	struct vmmu_vcpu *vcpu;
	char *why;
	size_t whylen;
};

static int vfail(struct vrun *r, int rc, const char *what, uint64_t at)
{
	snprintf(r->why, r->whylen, "%s: %s at %#llx: %s", r->p->name, what,
		 (unsigned long long)at, rc < 0 ? strerror(-rc) : "unexpected outcome");
	return rc < 0 ? rc : -EPROTO;
}

/* A CPL-0 qword access; anything but completion is the harness's bug. */
static int kaccess(struct vrun *r, uint64_t gva_, unsigned kind, uint64_t *val)
{
	struct vmmu_access_result res;
	int rc = vmmu_vcpu_set_cpl(r->vcpu, 0, false);

	if (!rc)
		rc = r->pvm ? vmmu_vcpu_emulate_access(r->vcpu, gva_, 8, kind, val, &res) :
			      vmmu_vcpu_access(r->vcpu, gva_, 8, kind, val, &res);
	if (!rc && res.status != VMMU_ACCESS_DONE)
		rc = 1;
	return rc ? vfail(r, rc, kind ? "ring-0 store" : "ring-0 load", gva_) : 0;
}

/*
 * The harness's own ring-0 stores, which a PVM host emulates and so counts (mmu_pte_write: every
 * emulated write once the VM has indirect sps): @n qwords pushed on the kernel stack. Measured on
 * PVM: the five-qword frame of each INT3 from ring 3 counts; the frame of a #PF the MMU injects
 * does not (written by the injection, not the emulator). On hardware they are plain stores to
 * mapped pages and cost nothing.
 */
static int harness_stores(struct vrun *r, unsigned n)
{
	uint64_t v = 0;
	int rc = 0;

	for (unsigned i = 1; r->pvm && i <= n && !rc; i++)
		rc = kaccess(r, KVMG_KSTACK_TOP - 8 * i, VMMU_ACC_WRITE, &v);
	return rc;
}

/* The guest's #PF handler: OR the fix bits into the PTE, as `orq` in kvm_probe_guest.S (and,
 * as it does, push two registers and count the fault in the parameter block). */
static int guest_pf(struct vrun *r, uint64_t cr2)
{
	const struct probe_prog *p = r->p;
	uint64_t off = cr2 - PRB_GVA, pte = 0;
	int rc;

	if (cr2 < PRB_GVA || off >= p->span || !p->fix)
		return vfail(r, 1, "#PF outside the probe's region", cr2);
	r->user_entries++;
	rc = harness_stores(r, 2);
	rc = rc ? rc : kaccess(r, p->pt_base + (off >> 12) * 8, VMMU_ACC_READ, &pte);
	pte |= p->fix;
	rc = rc ? rc : kaccess(r, p->pt_base + (off >> 12) * 8, VMMU_ACC_WRITE, &pte);
	if (!rc && r->pvm) {
		uint64_t n;

		rc = kaccess(r, KVMG_PARAM + PRB_P_NFAULT, VMMU_ACC_READ, &n);
		n++;
		rc = rc ? rc : kaccess(r, KVMG_PARAM + PRB_P_NFAULT, VMMU_ACC_WRITE, &n);
	}
	return rc;
}

/* The KVM guest's code is fetched through the current root: ring 0's after a MOV CR3 (which
 * must link the harness's tables into a new root), ring 3's at each entry to the loop. */
static int harness_fetch(struct vrun *r, unsigned cpl, uint64_t at)
{
	struct vmmu_access_result res;
	uint8_t insn;
	int rc = vmmu_vcpu_set_cpl(r->vcpu, cpl, false);

	rc = rc ? rc : vmmu_vcpu_access(r->vcpu, at, 1, VMMU_ACC_FETCH, &insn, &res);
	if (!rc && res.status != VMMU_ACCESS_DONE)
		rc = 1;
	return rc ? vfail(r, rc, "harness fetch", at) : 0;
}

static int user_loop(struct vrun *r, const struct probe_op *o)
{
	unsigned kind = o->kind == PRB_OP_WRITE ? VMMU_ACC_WRITE : VMMU_ACC_READ;
	int rc0 = harness_fetch(r, 3, KVMG_UCODE);

	if (rc0)
		return rc0;
	r->user_entries++;

	for (uint64_t k = 0; k < o->b; k++) {
		uint64_t at = o->a + k * o->c;
		uint8_t byte = 1;

		for (int tries = 0;; tries++) {
			struct vmmu_access_result res;
			int rc = vmmu_vcpu_set_cpl(r->vcpu, 3, false);

			rc = rc ? rc : vmmu_vcpu_access(r->vcpu, at, 1, kind, &byte, &res);
			if (rc)
				return vfail(r, rc, "ring-3 access", at);
			if (res.status == VMMU_ACCESS_DONE)
				break;
			if (res.status != VMMU_ACCESS_PF || tries == 3)
				return vfail(r, 1, "ring-3 access", at);
			rc = guest_pf(r, res.pf_addr);
			if (rc)
				return rc;
		}
	}
	return harness_stores(r, 5);   /* the INT3 back to ring 0 */
}


static int run_ops(struct vrun *r)
{
	for (size_t i = 0; i < r->p->nops; i++) {
		const struct probe_op *o = &r->p->ops[i];
		uint64_t v = o->b;
		int rc;

		switch (o->kind) {
		case PRB_OP_READ:
		case PRB_OP_WRITE:
			rc = user_loop(r, o);
			break;
		case PRB_OP_STORE:
			rc = kaccess(r, o->a, VMMU_ACC_WRITE, &v);
			break;
		case PRB_OP_INVLPG:
			rc = vmmu_vcpu_invlpg(r->vcpu, o->a);
			rc = rc ? vfail(r, rc, "INVLPG", o->a) : 0;
			break;
		case PRB_OP_CR3:
			rc = vmmu_vcpu_mov_cr(r->vcpu, 3, o->a);
			rc = rc ? vfail(r, rc, "MOV CR3", o->a) : r->pvm ? 0 : harness_fetch(r, 0, KVMG_KCODE);
			break;
		default:
			rc = vfail(r, -EINVAL, "unknown operation", o->kind);
		}
		if (rc)
			return rc;
	}
	return 0;
}

/* What kvm_probe_guest.S reads before its first snapshot: the harness's pages and the first
 * 2 MiB of probe RAM (the probe's tables), so both machines start the window with the same
 * shadow pages. */
static int warm_up(struct vrun *r)
{
	uint64_t v;
	int rc = 0;

	for (uint64_t g = KVMG_GDT; g < PRB_OPS + PRB_OPS_SIZE && !rc; g += 4096)
		rc = kaccess(r, g, VMMU_ACC_READ, &v);
	for (uint64_t g = PRB_RAM_GPA; g < PRB_RAM_GPA + (2ULL << 20) && !rc; g += 4096)
		rc = kaccess(r, g, VMMU_ACC_READ, &v);
	/* and its round trip to ring 3, whose code fetch the hardware makes on every host */
	return rc ? rc : harness_fetch(r, 3, KVMG_UCODE);
}

int probe_run_vmmu(const struct probe_prog *p, enum vmmu_mmu mmu, bool pvm,
		   struct probe_counts *out, char *why, size_t whylen)
{
	struct vmmu_vm_config cfg = {
		.host_mem_bytes = 1ULL << 30, .mmu = mmu,
		.host = mmu == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX,
		/* KVM removed no-trap non-present PTEs in 2011; the rest are KVM's defaults. */
		.opts_off = VMMU_OPT_NOTRAP,
	};
	struct vmmu_regs regs = {
		.cr0 = X86_CR0_PE | X86_CR0_PG | X86_CR0_WP | (1ULL << 1) | (1ULL << 4) | (1ULL << 5),
		.cr3 = p->cr3, .cr4 = X86_CR4_PAE, .efer = EFER_LME | EFER_LMA,
	};
	struct vrun r = { .p = p, .pvm = pvm, .why = why, .whylen = whylen };
	struct vmmu_stats s0, s1;
	struct probe_counts c0, c1;
	struct vmmu_vm *vm = NULL;
	uint64_t hva_low, hva_ram;
	int rc;

	rc = vmmu_vm_create(&cfg, &vm);
	if (rc) {
		snprintf(why, whylen, "vmmu_vm_create: %s", strerror(-rc));
		return rc;
	}
	rc = vmmu_vm_mmap(vm, PRB_LOW_SIZE, false, &hva_low);
	rc = rc ? rc : vmmu_vm_mmap(vm, PRB_RAM_SIZE, false, &hva_ram);
	if (!rc) {
		struct vmmu_userspace_memory_region low = {
			.slot = 0, .guest_phys_addr = 0, .memory_size = PRB_LOW_SIZE,
			.userspace_addr = hva_low,
		}, ram = {
			.slot = 1, .guest_phys_addr = PRB_RAM_GPA, .memory_size = PRB_RAM_SIZE,
			.userspace_addr = hva_ram,
		};

		rc = vmmu_set_user_memory_region(vm, &low);
		rc = rc ? rc : vmmu_set_user_memory_region(vm, &ram);
	}
	rc = rc ? rc : probe_layout(p, vm_write, vm);
	if (!rc && p->prepopulate) {
		static const uint8_t zero[4096];

		for (uint64_t g = PRB_DATA; g < PRB_RAM_GPA + PRB_RAM_SIZE && !rc; g += 4096)
			rc = vmmu_write_guest(vm, g, zero, sizeof(zero));
	}
	rc = rc ? rc : vmmu_vcpu_create(vm, 0, &r.vcpu);
	rc = rc ? rc : vmmu_vcpu_set_regs(r.vcpu, &regs);
	if (rc) {
		snprintf(why, whylen, "%s: setting up the VM: %s", p->name, strerror(-rc));
		goto out;
	}
	rc = warm_up(&r);
	rc = rc ? rc : vmmu_vm_get_stats(vm, &s0);
	rc = rc ? rc : run_ops(&r);
	rc = rc ? rc : vmmu_vm_get_stats(vm, &s1);
	if (rc)
		goto out;
	counts_of(&s0, &c0);
	counts_of(&s1, &c1);
	for (int i = 0; i < PRB_C_NR; i++)
		out->v[i] = c1.v[i] - c0.v[i];
	/* A PVM host exits where the guest enters ring 3 and where ring 3 traps to ring 0 (its
	 * switcher), and not for the ring-0 instructions it emulates (MOV CR3, INVLPG); every
	 * #PF exits (INT3 and a guest #PF are the trap halves of user_entries). */
	if (pvm)
		out->v[PRB_C_EXITS] = (int64_t)(s1.exits_by_reason[VMMU_EXIT_PF] -
						s0.exits_by_reason[VMMU_EXIT_PF]) +
				      2 * (int64_t)r.user_entries - (int64_t)(s1.pf_guest - s0.pf_guest);
out:
	vmmu_vm_destroy(vm);
	return rc;
}

int probe_measure_vmmu(const struct probe *pr, enum vmmu_mmu mmu, bool pvm,
		       struct probe_counts *out, char *why, size_t whylen)
{
	struct probe_prog *p = malloc(sizeof(*p)), *b = malloc(sizeof(*b));
	struct probe_counts base;
	int rc = p && b ? 0 : -ENOMEM;

	rc = rc ? rc : probe_prog_build(pr, false, p);
	if (!rc) {
		rc = probe_prog_build(pr, true, b);
		if (!rc) {
			rc = probe_run_vmmu(p, mmu, pvm, out, why, whylen);
			rc = rc ? rc : probe_run_vmmu(b, mmu, pvm, &base, why, whylen);
			for (int c = 0; !rc && c < PRB_C_NR; c++)
				out->v[c] -= base.v[c];
			probe_prog_free(b);
		}
		probe_prog_free(p);
	}
	if (rc == -ENOMEM || rc == -E2BIG)
		snprintf(why, whylen, "%s: cannot build the program: %s", pr->name, strerror(-rc));
	free(p);
	free(b);
	return rc;
}
