/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the hardware's walk of the shadow tables (cpu_shadow_walk, written for their
 * one format) against the guest walker's template under the context it stands for (long mode,
 * CR0.WP=1, EFER.NXE=1, the guest's CPL, AC, SMEP/SMAP, PKE and PKRU, the model's reserved bits
 * with NX and 1 GiB pages): on hostile tables, every result field and every A/D bit written must
 * be the same. test_hw_modes makes the same comparison on random tables; this one is guided by
 * coverage. Built only with clang (-fsanitize=fuzzer); CI runs it for a fixed number of inputs.
 * Also usable as a plain program over files: fuzz_shadow_walk FILE...
 *
 * The input: four control words, then the contents of the tables. An entry whose bit 11 (ignored
 * by both walks) is clear gets its address replaced by one of the target's frames, named by bits
 * 12-14: a table, a data page, a freed frame or a frame inside a block, which a fuzzer would
 * rarely guess.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu.h"
#include "host/host.h"
#include "paging/hostmem.h"
#include "paging/paging.h"

#define NT 6                 /* table frames the input fills */
#define NF 8                 /* frames an entry may name: the tables, a data page, a freed one */

struct target {
	struct host_arena *arena;
	hpa_t frame[NF];
	struct cpu cpu[2][21];   /* [amd][maxphyaddr - 32], made as first needed */
	bool made[2][21];
};

static int no_page(void *o, gfn_t gfn, bool w, uint8_t **h, bool *c)
{
	(void)o, (void)gfn, (void)w, (void)h, (void)c;
	return -ENOENT;
}
static const struct phys_ops no_phys = { .page = no_page };

static struct target *target(void)
{
	static struct target t;
	pfn_t pfn;

	if (t.arena)
		return &t;
	if (host_arena_create(1ULL << 30, &t.arena))
		abort();
	/* The last table inside a block, not its head (the frame check's slow path). */
	for (int i = 0; i < NT - 1; i++) {
		if (host_frame_alloc(t.arena, 0, &pfn))
			abort();
		t.frame[i] = pfn << 12;
	}
	if (host_frame_alloc(t.arena, 1, &pfn))
		abort();
	t.frame[NT - 1] = (pfn + 1) << 12;
	if (host_frame_alloc(t.arena, 0, &pfn))
		abort();
	t.frame[NT] = pfn << 12;                 /* a data page */
	if (host_frame_alloc(t.arena, 0, &pfn))
		abort();
	t.frame[NT + 1] = pfn << 12;             /* freed, entries left in it below */
	host_frame_put(t.arena, pfn, 0);
	return &t;
}

static struct cpu *cpu_for(struct target *t, bool amd, int maxphy)
{
	struct cpu *c = &t->cpu[amd][maxphy - 32];
	struct cpu_model m;

	if (!t->made[amd][maxphy - 32]) {
		cpu_model_fixed(&m, amd ? "amd" : "intel");
		m.maxphyaddr = maxphy;
		if (cpu_init(c, VMMU_MMU_SHADOW, &m, NULL, NULL, &no_phys, NULL, t->arena))
			abort();
		t->made[amd][maxphy - 32] = true;
	}
	return c;
}

static uint64_t *frame_bytes(struct target *t, int i)
{
	return host_pfn_to_ptr(t->arena, t->frame[i] >> 12);
}

static void save(struct target *t, uint64_t (*buf)[512])
{
	for (int i = 0; i < NT; i++)
		memcpy(buf[i], frame_bytes(t, i), 4096);
}

static void restore(struct target *t, uint64_t (*buf)[512])
{
	for (int i = 0; i < NT; i++)
		memcpy(frame_bytes(t, i), buf[i], 4096);
}

static void same(const struct walk_result *a, const struct walk_result *b)
{
	if (a->status != b->status || a->addr != b->addr || a->refs != b->refs)
		abort();
	if (a->status == WALK_ABORT && a->abort_err != b->abort_err)
		abort();
	if (a->status == WALK_GP)
		return;
	if (a->level != b->level || a->root_level != b->root_level || a->top_level != b->top_level)
		abort();
	for (int l = a->top_level; l >= a->level; l--)
		if (a->gpte[l] != b->gpte[l] || a->pte_gpa[l] != b->pte_gpa[l])
			abort();
	if (a->status == WALK_PF) {
		if (a->ec != b->ec)
			abort();
		return;
	}
	if (a->gpa != b->gpa || a->page_shift != b->page_shift || a->access != b->access ||
	    a->pkey != b->pkey)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t before[NT][512], after[NT][512];
	struct target *t = target();
	uint64_t ctl[4];

	if (size < sizeof(ctl))
		return 0;
	memcpy(ctl, data, sizeof(ctl));
	data += sizeof(ctl);
	size -= sizeof(ctl);

	/* The tables: the input's words, each naming one of the frames unless its bit 11 is set. */
	for (int i = 0; i < NT; i++) {
		uint64_t *p = frame_bytes(t, i);
		for (int k = 0; k < 512; k++) {
			uint64_t w = 0;
			size_t off = ((size_t)i * 512 + (size_t)k) * 8;
			if (off < size)
				memcpy(&w, data + off, size - off < 8 ? size - off : 8);
			/* Bit 10 keeps the input's address bits from 30 up (above the arena, or
			 * reserved from MAXPHYADDR) beside the frame. */
			if (!(w & (1ULL << 11)))
				w = (w & ~rsvd_bits(12, 51)) | t->frame[(w >> 12) & 7] |
				    ((w & (1ULL << 10)) ? w & rsvd_bits(30, 51) : 0);
			p[k] = w;
		}
	}
	/* A freed frame with entries still in it: the walk must not read them. */
	uint64_t *freed = host_pfn_to_ptr(t->arena, t->frame[NT + 1] >> 12);
	for (int k = 0; k < 512; k++)
		freed[k] = t->frame[k % NT] | PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK;

	const bool amd = ctl[0] & 1;
	const int maxphy = 32 + (int)((ctl[0] >> 8) % 21);
	const int levels = (ctl[0] & 2) ? 5 : 4;
	struct cpu *c = cpu_for(t, amd, maxphy);
	struct vmmu_regs regs = {
		.cr0 = X86_CR0_PG | X86_CR0_PE | ((ctl[0] & 4) ? X86_CR0_WP : 0), .cr3 = 0x1000,
		.cr4 = X86_CR4_PAE | (ctl[1] & (X86_CR4_SMEP | X86_CR4_SMAP | X86_CR4_PKE)),
		.efer = EFER_LME | EFER_LMA | ((ctl[0] & 8) ? EFER_NXE : 0),
	};
	if (cpu_set_regs(c, &regs))
		abort();
	if (cpu_set_cpl(c, (unsigned)(ctl[0] >> 4) & 3, ctl[0] & 64))
		abort();
	cpu_set_pkru(c, (uint32_t)(ctl[1] >> 32));
	cpu_set_shadow_root(c, t->frame[(ctl[2] >> 12) % NT] | (ctl[2] & 0xfff) |
			       (ctl[2] & rsvd_bits(maxphy, 63)), levels);
	const unsigned access = (unsigned)(ctl[1] & (PFERR_WRITE | PFERR_FETCH)) |
				((ctl[1] & 0x100) ? WALK_IMPLICIT : 0) |
				((ctl[1] & 0x200) ? WALK_NO_AD : 0);
	struct walk_start start, *sp = NULL;
	if (ctl[0] & 128) {
		start = (struct walk_start){ .level = (int)((ctl[0] >> 32) % 7) - 1,
					     .table = t->frame[(ctl[0] >> 40) % NF],
					     .access = (unsigned)(ctl[0] >> 48) & ACC_ALL };
		sp = &start;
	}
	const gva_t gva = ctl[3];

	struct paging_ctx hw;
	cpu_shadow_hw_ctx(c, &hw);

	struct walk_result ra, rb;
	save(t, before);
	cpu_shadow_walk(c, gva, access, sp, &ra);
	save(t, after);
	restore(t, before);
	paging_walk_from(&hw, &host_mem_ops, t->arena, gva, access, sp, &rb);
	same(&ra, &rb);
	save(t, before);
	if (memcmp(before, after, sizeof(before)))
		abort();                          /* a different A or D bit set */
	return 0;
}
