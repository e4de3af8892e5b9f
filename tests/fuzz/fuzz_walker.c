/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the guest page walker on hostile tables. The input fills a small guest memory
 * (tables and all) and picks the control state and the access; the walk must end with a defined
 * outcome, never read outside guest memory, and agree with itself on a second, translate-only
 * walk (which must not write). Built only with clang (-fsanitize=fuzzer); CI runs it for a fixed
 * number of inputs. Also usable as a plain program over files: fuzz_walker FILE...
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "paging/paging.h"

#define MEM 0x8000   /* 8 pages of guest memory */

struct mem {
	uint8_t b[MEM];
	unsigned writes;
};

static int m_read(void *o, gpa_t gpa, void *buf, unsigned len)
{
	struct mem *m = o;
	if (gpa >= MEM || gpa + len > MEM)
		return -ENOENT;
	memcpy(buf, m->b + gpa, len);
	return 0;
}

static int m_cmpxchg(void *o, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	struct mem *m = o;
	uint64_t cur = 0;
	if (gpa >= MEM || gpa + len > MEM)
		return -ENOENT;
	memcpy(&cur, m->b + gpa, len);
	if (len == 4 ? (uint32_t)cur != (uint32_t)old : cur != old)
		return -EAGAIN;
	memcpy(m->b + gpa, &val, len);
	m->writes++;
	return 0;
}

static const struct guest_mem_ops ops = { m_read, m_cmpxchg };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mem m;
	struct paging_ctx ctx;
	struct walk_result r1, r2;
	uint64_t ctl[4] = { 0 };

	if (size < sizeof(ctl))
		return 0;
	memcpy(ctl, data, sizeof(ctl));
	data += sizeof(ctl);
	size -= sizeof(ctl);
	memset(&m, 0, sizeof(m));
	memcpy(m.b, data, size < MEM ? size : MEM);

	memset(&ctx, 0, sizeof(ctx));
	cpu_model_fixed(&ctx.cpu, (ctl[0] & 1) ? "amd" : "intel");
	ctx.cpu.features = (uint32_t)(ctl[0] >> 8) & 0x7f;
	ctx.cpu.maxphyaddr = 36 + (int)((ctl[0] >> 16) % 17);
	static const uint64_t modes[][3] = {
		/* cr0, cr4, efer */
		{ X86_CR0_PG | X86_CR0_PE, 0, 0 },
		{ X86_CR0_PG | X86_CR0_PE, X86_CR4_PSE, 0 },
		{ X86_CR0_PG | X86_CR0_PE, X86_CR4_PAE, 0 },
		{ X86_CR0_PG | X86_CR0_PE, X86_CR4_PAE, EFER_LME | EFER_LMA },
		{ X86_CR0_PG | X86_CR0_PE, X86_CR4_PAE | X86_CR4_LA57, EFER_LME | EFER_LMA },
	};
	unsigned mode = (unsigned)(ctl[0] >> 24) % 5;
	ctx.cr0 = modes[mode][0] | ((ctl[0] & 2) ? X86_CR0_WP : 0);
	ctx.cr4 = modes[mode][1] | (ctl[1] & (X86_CR4_SMEP | X86_CR4_SMAP | X86_CR4_PKE | X86_CR4_PGE));
	ctx.efer = modes[mode][2] | ((ctl[0] & 4) ? EFER_NXE : 0);
	ctx.cr3 = ctl[2] & 0x7fff;
	ctx.cpl = (ctl[0] & 8) ? 3 : 0;
	ctx.ac = ctl[0] & 16;
	ctx.pkru = (uint32_t)ctl[3];
	unsigned access = (unsigned)(ctl[1] & (PFERR_WRITE | PFERR_FETCH)) |
			  ((ctl[1] & 0x100) ? WALK_IMPLICIT : 0);
	gva_t gva = ctl[3];

	enum walk_status s1 = paging_walk(&ctx, &ops, &m, gva, access | WALK_NO_AD, &r1);
	unsigned w = m.writes;
	if (w != 0)
		abort();                      /* a translate-only walk wrote guest memory */
	enum walk_status s2 = paging_walk(&ctx, &ops, &m, gva, access, &r2);
	if (s1 > WALK_ABORT || s2 > WALK_ABORT)
		abort();
	/* The same tables give the same answer, whether or not A/D get set — unless setting them
	 * changed the tables the walk reads (aliased entries: an A bit landing in a PAE PDPTE's
	 * reserved bits), which shows as a restarted walk (more references). */
	if (r2.refs == r1.refs) {
		if (s1 != s2)
			abort();
		if (s1 == WALK_OK && (r1.gpa != r2.gpa || r1.access != r2.access))
			abort();
		if (s1 == WALK_PF && r1.ec != r2.ec)
			abort();
	}
	if (r2.refs > 1001 * 5)
		abort();                      /* bounded: at most one entry a level per attempt */
	return 0;
}
