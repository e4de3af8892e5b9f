/* SPDX-License-Identifier: MIT */
/*
 * The vCPU hardware model: control registers with their checks and TLB-flush rules (SDM 4.10.4),
 * the TLB-first access path, and the mode's page walk. See cpu.h for invariants and locking.
 *
 * Over-flushing is always architecturally allowed (a TLB may drop any entry at any time), so where
 * the SDM flushes "the current PCID" on a CR4 change we flush everything; under-flushing never is,
 * so every rule that must flush does. Global entries survive MOV CR3, as the architecture keeps
 * them, because that is what makes a guest's kernel mappings cheap and the model must count it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "cpu/cost.h"
#include "cpu/cpu.h"
#include "paging/hostmem.h"

#define CR0_KNOWN (X86_CR0_PE | (1ULL << 1) | (1ULL << 2) | (1ULL << 3) | (1ULL << 4) | \
		   (1ULL << 5) | X86_CR0_WP | (1ULL << 18) | (1ULL << 29) | (1ULL << 30) | X86_CR0_PG)
#define CR0_NW (1ULL << 29)
#define CR0_CD (1ULL << 30)
#define CR4_BASE_KNOWN (rsvd_bits(0, 11) | (1ULL << 16) | X86_CR4_PCIDE | (1ULL << 18))
#define EFER_SCE (1ULL << 0)
#define CR3_NOFLUSH (1ULL << 63)

enum cpu_wcache_mode cpu_wcache_mode = CPU_WCACHE_ON;
struct cpu_wcache_totals cpu_wcache_totals;

/* The walker's form of an access kind (VMMU_ACC_* to PFERR_WRITE / PFERR_FETCH / WALK_IMPLICIT). */
static inline unsigned kind_to_access(unsigned kind)
{
	return ((kind & VMMU_ACC_WRITE) ? PFERR_WRITE : 0) | ((kind & VMMU_ACC_FETCH) ? PFERR_FETCH : 0) |
	       ((kind & VMMU_ACC_IMPLICIT) ? WALK_IMPLICIT : 0);
}

/* Index into cpu_update's bitmaps: the kind of access, as the permission rules see it. */
static inline unsigned perm_index(unsigned access, uint8_t cpl)
{
	bool implicit = access & WALK_IMPLICIT;
	bool user = !implicit && cpl == 3;
	return ((access & PFERR_WRITE) ? 1u : 0u) | ((access & PFERR_FETCH) ? 2u : 0u) |
	       (user ? 4u : 0u) | (implicit ? 8u : 0u);
}

/* Pick the permission rows of the current CPL and AC: a privilege change (two a guest #PF, and
 * the kernel's user-memory accesses) costs only this copy. */
static void cpu_select_perm(struct cpu *c)
{
	memcpy(c->perm_kind, c->perm_kinds[c->guest.ac ? 1 : 0][c->guest.cpl == 3], sizeof(c->perm_kind));
}

/* The PCID that tags new TLB entries and that lookups match: CR3[11:0] with CR4.PCIDE. */
static void cpu_update_pcid(struct cpu *c)
{
	c->pcid = (c->guest.cr4 & X86_CR4_PCIDE) ? (uint16_t)(c->guest.cr3 & 0xfff) : 0;
}

/* Recompute what depends on control state: the permission bitmaps for both values of AC (as
 * KVM's update_permission_bitmask; perm_access), their rows by access kind for each privilege,
 * the current rows and the PCID. Protection keys are checked apart. The bitmaps read CR0.WP and
 * CR4.SMEP/SMAP (and CPL and AC, per row), never CR3. */
static void cpu_update(struct cpu *c)
{
	struct paging_ctx nopk = c->guest;

	nopk.cr4 &= ~X86_CR4_PKE;
	/* Under shadow paging the hardware runs with CR0.WP=1 whatever the guest set (the MMU
	 * emulates WP=0 through the sptes), so cached rights are checked as the hardware does. */
	if (c->mode == VMMU_MMU_SHADOW)
		nopk.cr0 |= X86_CR0_WP;
	for (unsigned ac = 0; ac < 2; ac++) {
		nopk.ac = ac;
		for (unsigned idx = 0; idx < 16; idx++) {
			unsigned access = ((idx & 1) ? PFERR_WRITE : 0) | ((idx & 2) ? PFERR_FETCH : 0) |
					  ((idx & 8) ? WALK_IMPLICIT : 0);
			uint8_t bits = 0;
			/* The rules read CPL only to tell a user access, which idx bit 2 says. */
			nopk.cpl = (idx & 4) ? 3 : 0;
			for (unsigned acc = 0; acc < 8; acc++)
				if (paging_permission_fault(&nopk, acc, 0, access))
					bits |= (uint8_t)(1u << acc);
			c->perm_access[ac][idx] = bits;
		}
		/* The hit path indexes by the caller's access kind directly. */
		for (unsigned user = 0; user < 2; user++)
			for (unsigned kind = 0; kind < 8; kind++)
				c->perm_kinds[ac][user][kind] =
					c->perm_access[ac][perm_index(kind_to_access(kind), user ? 3 : 0)];
	}
	cpu_select_perm(c);
	cpu_update_pcid(c);
}

static void pwc_flush(struct cpu *c)
{
	if (!c->pwc)
		return;
	for (unsigned i = 0; i < 2; i++) c->pwc->l4[i].key = ~0ULL;
	for (unsigned i = 0; i < 4; i++) c->pwc->l3[i].key = ~0ULL;
	for (unsigned i = 0; i < 32; i++) c->pwc->l2[i].key = ~0ULL;
}

static struct pwc_entry *pwc_slot(struct pwc *p, int level, uint64_t key)
{
	switch (level) {
	case 4: return &p->l4[key & 1];
	case 3: return &p->l3[key & 3];
	default: return &p->l2[key & 31];
	}
}

/* The deepest cached entry for @gva: where a walk may resume. */
static bool pwc_lookup(struct cpu *c, gva_t gva, struct walk_start *ws)
{
	for (int level = 2; level <= 4; level++) {
		uint64_t key = gva >> (12 + 9 * (level - 1));
		struct pwc_entry *e = pwc_slot(c->pwc, level, key);
		if (e->key == key && e->pcid == c->pcid) {
			ws->level = level - 1;
			ws->table = e->table;
			ws->access = e->access;
			c->pwc->hits++;
			return true;
		}
	}
	c->pwc->misses++;
	return false;
}

/* Cache the non-leaf entries of levels 4..2 a successful walk read; @acc: the rights granted
 * above its first level (ACC_ALL from the root); @nxe: the walk's EFER.NXE. */
static void pwc_fill(struct cpu *c, gva_t gva, const struct walk_result *r, bool nxe,
		     unsigned acc)
{
	for (int level = r->top_level; level > r->level; level--) {
		uint64_t e = r->gpte[level];
		unsigned a = ACC_EXEC | ((e & PT_WRITABLE_MASK) ? ACC_WRITE : 0) |
			     ((e & PT_USER_MASK) ? ACC_USER : 0);
		if (nxe && (e & PT64_NX_MASK))
			a &= ~ACC_EXEC;
		acc &= a;
		if (level > 4)
			continue;   /* PML5Es are not cached */
		uint64_t key = gva >> (12 + 9 * (level - 1));
		struct pwc_entry *p = pwc_slot(c->pwc, level, key);
		p->key = key;
		p->table = e & rsvd_bits(12, 51);
		p->pcid = c->pcid;
		p->access = (uint8_t)acc;
	}
}

/* ---- guest physical memory through the page cache ---- */

void cpu_flush_pcache(struct cpu *c)
{
	c->pcache_gen += 1ULL << PCACHE_GEN_SHIFT;
	/* Once in 8M flushes the generations run out: start again from an empty array. */
	if (c->pcache_gen == 0) {
		memset(c->pcache, 0, (c->pcache_mask + 1) * sizeof(*c->pcache));
		c->pcache_gen = 1ULL << PCACHE_GEN_SHIFT;
	}
	/* Before cpu_init has made the TLB there is nothing to drop. */
	if (c->tlb)
		tlb_drop_host(c->tlb);
}

/* How the guest-page cache holds gfn_host's answer. */
enum pcache_kept {
	PCACHE_NOT_KEPT,     /* not at all */
	PCACHE_KEPT_RO,      /* for reads */
	PCACHE_KEPT_RW,      /* for writes too, whatever this access was */
};

/* The host bytes of guest page @gfn for an access (@write), through the cache. Errors as
 * struct phys_ops. *@kept: whether the answer is in the cache, and for which accesses (so a TLB
 * entry may keep it too, for as much); *@log: the caller calls phys->written() once the write's
 * bytes are stored. Inline: this is every native access's path. */
static inline int gfn_host(struct cpu *c, gfn_t gfn, bool write, uint8_t **host,
			   enum pcache_kept *kept, bool *log)
{
	const struct cpu_pcache_entry *hit = cpu_pcache_peek(c, gfn, write);
	struct cpu_pcache_entry *e = &c->pcache[gfn & c->pcache_mask];
	bool cacheable;
	int rc;

	*log = false;
	if (__builtin_expect(hit != NULL, 1)) {
		*host = hit->host;
		*kept = hit->tag & PCACHE_WRITABLE ? PCACHE_KEPT_RW : PCACHE_KEPT_RO;
		return 0;
	}
	*kept = PCACHE_NOT_KEPT;
	rc = c->phys->page(c->phys_opaque, gfn, write, host, &cacheable);
	if (rc)
		return rc;
	*log = write && !cacheable;
	/* Only native mode's memory map change is pushed to this cache (cpu_flush_pcache). */
	if (cacheable && c->mode == VMMU_MMU_NATIVE && !(gfn >> PCACHE_GFN_BITS)) {
		e->tag = gfn | c->pcache_gen | (write ? PCACHE_WRITABLE : 0);
		e->host = *host;
		*kept = write ? PCACHE_KEPT_RW : PCACHE_KEPT_RO;
	} else if ((e->tag & ~PCACHE_WRITABLE) == (gfn | c->pcache_gen)) {
		e->tag &= ~PCACHE_WRITABLE;
	}
	return 0;
}

VMMU_HOT
__attribute__((noinline)) static int cpu_gmem_read_slow(void *opaque, gpa_t gpa, void *buf,
							 unsigned len)
{
	uint8_t *page;
	int rc;

	enum pcache_kept kept;
	bool log;

	if ((len != 4 && len != 8) || (gpa & (len - 1)))
		return -EINVAL;
	rc = gfn_host(opaque, gpa >> 12, false, &page, &kept, &log);
	if (rc)
		return rc == -EPERM ? -EACCES : rc;
	/* Entries are naturally aligned; another vCPU may swap them at any time. */
	uint64_t v = host_word_load(page + (gpa & 0xfff), len);
	if (len == 8)
		*(uint64_t *)buf = v;
	else
		*(uint32_t *)buf = (uint32_t)v;
	return 0;
}

/* A walk's read of a table entry. The usual one, a 64-bit entry of a page the guest-page cache
 * holds, is kept small enough for the compiler to inline it into the native walk, where it is
 * most of the cost of a TLB miss; the rest is cpu_gmem_read_slow. */
VMMU_HOT
static int cpu_gmem_read(void *opaque, gpa_t gpa, void *buf, unsigned len)
{
	const struct cpu_pcache_entry *hit;

	if (len == 8 && !(gpa & 7) && (hit = cpu_pcache_peek(opaque, gpa >> 12, false))) {
		/* Entries are naturally aligned; another vCPU may swap them at any time. */
		*(uint64_t *)buf = host_word_load(hit->host + (gpa & 0xfff), 8);
		return 0;
	}
	return cpu_gmem_read_slow(opaque, gpa, buf, len);
}

VMMU_HOT
static int cpu_gmem_cmpxchg(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	struct cpu *c = opaque;
	uint8_t *page;
	bool ok;
	int rc;

	enum pcache_kept kept;
	bool log;

	if ((len != 4 && len != 8) || (gpa & (len - 1)))
		return -EINVAL;
	rc = gfn_host(c, gpa >> 12, true, &page, &kept, &log);
	if (rc)
		return rc == -EPERM ? -EACCES : rc;
	ok = host_word_cmpxchg(page + (gpa & 0xfff), len, old, val);
	if (ok && log)
		c->phys->written(c->phys_opaque, gpa >> 12);
	return ok ? 0 : -EAGAIN;
}

const struct guest_mem_ops cpu_gmem_ops = {
	.read = cpu_gmem_read,
	.cmpxchg = cpu_gmem_cmpxchg,
};

/* The native walk's own instance of the walker (walk_tmpl.h), cpu_walk64_addr: its reads call
 * cpu_gmem_read directly, and the compiler inlines its usual case, where through ops->read it kept
 * a call (the pointer is known only after inlining has been decided), four a TLB miss: with
 * walk_native_other below, warm gups took 1,467 -> 1,391 instructions an update. */
#define PTTYPE 64
#define WALK_INSTANCE cpu_
#define WALK_READ(ops, opaque, gpa, buf, len) cpu_gmem_read(opaque, gpa, buf, len)
#include "paging/walk_tmpl.h"
#undef WALK_INSTANCE
#undef PTTYPE


int cpu_init(struct cpu *c, enum vmmu_mmu mode, const struct cpu_model *model,
	     const struct vmmu_tlb_geometry *geom, const struct vmmu_cost *cost,
	     const struct phys_ops *phys, void *phys_opaque, struct host_arena *arena)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->mode = mode;
	c->guest.cpu = *model;
	if (cost)
		c->cost = *cost;
	cost_fill_defaults(&c->cost);
	c->phys = phys;
	c->phys_opaque = phys_opaque;
	/* Only native mode fills the guest-page cache: the others get one entry, never used. */
	c->pcache_mask = mode == VMMU_MMU_NATIVE ? CPU_PCACHE_SIZE - 1 : 0;
	c->pcache = host_zalloc_lines((c->pcache_mask + 1) * sizeof(*c->pcache));
	if (!c->pcache)
		return -ENOMEM;
	c->pcache_gen = 1ULL << PCACHE_GEN_SHIFT;
	/* Pages only as hints are made. */
	c->pf_hint = calloc(CPU_PF_HINTS + CPU_PF_PTS, sizeof(*c->pf_hint));
	if (!c->pf_hint) {
		rc = -ENOMEM;
		goto out_pcache;
	}
	c->pf_pt = c->pf_hint + CPU_PF_HINTS;
	c->arena = arena;
	c->arena_base = arena ? host_pfn_to_ptr(arena, 0) : NULL;
	c->arena_meta = arena ? host_frame_meta(arena, 0) : NULL;
	c->arena_frames = host_arena_frames(arena);
	c->shadow_levels = 4;
	rc = tlb_create(geom, &c->tlb);
	if (rc)
		goto out_pcache;
	if (geom && geom->pwc) {
		c->pwc = host_zalloc_lines(sizeof(*c->pwc));
		if (!c->pwc) {
			rc = -ENOMEM;
			goto out_tlb;
		}
		pwc_flush(c);
	}
	const enum cpu_wcache_mode wm = __atomic_load_n(&cpu_wcache_mode, __ATOMIC_RELAXED);
	if ((mode == VMMU_MMU_EPT || mode == VMMU_MMU_NPT) && wm != CPU_WCACHE_OFF) {
		c->wcache = host_zalloc_lines(sizeof(*c->wcache));
		if (!c->wcache) {
			rc = -ENOMEM;
			goto out_pwc;
		}
		c->wcache->verify = wm == CPU_WCACHE_VERIFY;
	}
	if (geom && geom->nested_tlb && (mode == VMMU_MMU_EPT || mode == VMMU_MMU_NPT)) {
		c->ntlb = host_zalloc_lines(sizeof(*c->ntlb));
		if (!c->ntlb) {
			rc = -ENOMEM;
			goto out_wcache;
		}
		nested_tlb_flush(c->ntlb);
	}
	/* Reset state: real mode, no paging, as after INIT. */
	c->guest.cr0 = (1ULL << 4) | CR0_NW | CR0_CD;
	cpu_update(c);
	return 0;

out_wcache:
	free(c->wcache);
	c->wcache = NULL;
out_pwc:
	free(c->pwc);
out_tlb:
	tlb_destroy(c->tlb);
out_pcache:
	free(c->pcache);
	free(c->pf_hint);
	return rc;
}

void cpu_destroy(struct cpu *c)
{
	tlb_destroy(c->tlb);
	c->tlb = NULL;
	free(c->ntlb);
	c->ntlb = NULL;
	if (c->wcache) {
		__atomic_add_fetch(&cpu_wcache_totals.hits, c->wcache->hits, __ATOMIC_RELAXED);
		__atomic_add_fetch(&cpu_wcache_totals.misses, c->wcache->misses, __ATOMIC_RELAXED);
		__atomic_add_fetch(&cpu_wcache_totals.mismatches, c->wcache->mismatches,
				   __ATOMIC_RELAXED);
		__atomic_add_fetch(&cpu_wcache_totals.data_hits, c->wcache->data_hits,
				   __ATOMIC_RELAXED);
	}
	free(c->wcache);
	c->wcache = NULL;
	free(c->pwc);
	c->pwc = NULL;
	free(c->pcache);
	c->pcache = NULL;
	free(c->pf_hint);
	c->pf_hint = NULL;
	c->pf_pt = NULL;
}

void cpu_set_exit_controls(struct cpu *c, const struct exit_controls *ctl)
{
	c->ctl = *ctl;
}

void cpu_set_shadow_root(struct cpu *c, hpa_t root, int levels)
{
	c->shadow_root = root;
	c->shadow_levels = levels;
	cpu_flush_tlb(c);
}

void cpu_switch_shadow_root(struct cpu *c, hpa_t root, int levels)
{
	/* The TLB is tagged by the guest's PCID: entries of other PCIDs stay valid for the roots
	 * they were filled under, which the MMU keeps (its cached roots) or flushes when it drops
	 * them. MOV CR3's own architectural flush has already happened. */
	c->shadow_root = root;
	c->shadow_levels = levels;
}

void cpu_set_tdp(struct cpu *c, const struct tdp_ctx *tdp)
{
	c->tdp = *tdp;
	if (c->ntlb)
		nested_tlb_flush(c->ntlb);
	/* Entries of another root would be tagged with a generation still current. */
	nested_wcache_reset(c->wcache);
	cpu_flush_tlb(c);
}

void cpu_set_tdp_gen(struct cpu *c, const uint64_t *gen)
{
	if (c->wcache) {
		c->wcache->gen = gen;
		nested_wcache_reset(c->wcache);
	}
}

void cpu_flush_tlb_uncharged(struct cpu *c)
{
	/* The nested TLB caches gpa -> hpa: a remote flush after a zap must reach it too. */
	if (c->ntlb)
		nested_tlb_flush(c->ntlb);
	tlb_flush_all(c->tlb, true);
	pwc_flush(c);
}

void cpu_flush_tlb_charge(struct cpu *c, uint64_t n)
{
	cpu_stat_add(c, tlb_flush, n);
	cpu_stat_add(c, sim_cycles, n * c->cost.tlb_flush);
}

void cpu_flush_tlb(struct cpu *c)
{
	cpu_flush_tlb_uncharged(c);
	cpu_flush_tlb_charge(c, 1);
}

static uint64_t cr4_allowed(const struct cpu_model *m)
{
	uint64_t ok = CR4_BASE_KNOWN;
	if (cpu_has(m, CPU_FEAT_SMEP)) ok |= X86_CR4_SMEP;
	if (cpu_has(m, CPU_FEAT_SMAP)) ok |= X86_CR4_SMAP;
	if (cpu_has(m, CPU_FEAT_PKU)) ok |= X86_CR4_PKE;
	if (cpu_has(m, CPU_FEAT_LA57)) ok |= X86_CR4_LA57;
	return ok;
}

/* PAE paging (not long mode) loads the four PDPTEs at MOV CR3 and when paging turns on; a present
 * one with a reserved bit is a #GP (SDM 4.4.1). */
static int load_pdptrs(struct cpu *c, struct paging_ctx *ctx)
{
	gpa_t base = ctx->cr3 & rsvd_bits(5, 31);
	uint64_t rsvd = paging_rsvd_mask64(ctx, PAGING_PAE, 3, false);

	for (unsigned i = 0; i < 4; i++) {
		uint64_t e;
		if (cpu_gmem_read(c, base + i * 8, &e, 8))
			return -EINVAL;
		if ((e & PT_PRESENT_MASK) && (e & rsvd))
			return -EINVAL;
		ctx->pdptrs[i] = e;
	}
	ctx->pdptrs_valid = true;
	return 0;
}

/* Check a full control state the way the CPU would on the MOVs that reach it. */
static int check_state(struct cpu *c, struct paging_ctx *n)
{
	const struct cpu_model *m = &n->cpu;
	uint64_t efer_ok = EFER_SCE | EFER_LME | EFER_LMA | (cpu_has(m, CPU_FEAT_NX) ? EFER_NXE : 0);

	if (n->cr0 & ~CR0_KNOWN)
		return -EINVAL;
	if ((n->cr0 & X86_CR0_PG) && !(n->cr0 & X86_CR0_PE))
		return -EINVAL;
	if ((n->cr0 & CR0_NW) && !(n->cr0 & CR0_CD))
		return -EINVAL;
	if (n->cr4 & ~cr4_allowed(m))
		return -EINVAL;
	if (n->efer & ~efer_ok)
		return -EINVAL;
	if (n->cpl > 3)
		return -EINVAL;
	bool lma = (n->efer & EFER_LME) && (n->cr0 & X86_CR0_PG);
	if (lma && !(n->cr4 & X86_CR4_PAE))
		return -EINVAL;
	if ((n->cr4 & X86_CR4_PCIDE) && !lma)
		return -EINVAL;
	if (!!(n->efer & EFER_LMA) != lma)
		return -EINVAL;
	if (n->cr3 & rsvd_bits(n->cpu.maxphyaddr, 63))
		return -EINVAL;
	n->pdptrs_valid = false;
	if (paging_mode_of(n) == PAGING_PAE)
		return load_pdptrs(c, n);
	return 0;
}

int cpu_set_regs(struct cpu *c, const struct vmmu_regs *r)
{
	struct paging_ctx n = c->guest;
	int rc;

	n.cr0 = r->cr0;
	n.cr3 = r->cr3;
	n.cr4 = r->cr4;
	n.efer = r->efer;
	n.pkru = r->pkru;
	n.cpl = r->cpl;
	n.ac = r->ac;
	rc = check_state(c, &n);
	if (rc)
		return rc;
	c->guest = n;
	cpu_update(c);
	cpu_flush_tlb(c);
	return 0;
}

void cpu_get_regs(const struct cpu *c, struct vmmu_regs *r)
{
	r->cr0 = c->guest.cr0;
	r->cr3 = c->guest.cr3;
	r->cr4 = c->guest.cr4;
	r->efer = c->guest.efer;
	r->pkru = c->guest.pkru;
	r->cpl = c->guest.cpl;
	r->ac = c->guest.ac;
}

int cpu_set_cpl(struct cpu *c, unsigned cpl, bool ac)
{
	if (cpl > 3)
		return -EINVAL;
	c->guest.cpl = (uint8_t)cpl;
	c->guest.ac = ac;
	cpu_select_perm(c);
	return 0;
}

void cpu_set_pkru(struct cpu *c, uint32_t pkru)
{
	c->guest.pkru = pkru;
}

int cpu_mov_cr(struct cpu *c, int cr, uint64_t val)
{
	struct paging_ctx n = c->guest;
	uint64_t flush_all = 0, noflush = 0;
	int rc;

	switch (cr) {
	case 0:
		/* Long mode turns on and off with CR0.PG (EFER.LMA follows it). */
		n.cr0 = val;
		if ((n.efer & EFER_LME) && (val & X86_CR0_PG))
			n.efer |= EFER_LMA;
		else
			n.efer &= ~EFER_LMA;
		/* Turning paging on or off flushes everything. */
		flush_all = (c->guest.cr0 ^ val) & X86_CR0_PG;
		break;
	case 3:
		if (c->guest.cr4 & X86_CR4_PCIDE) {
			noflush = val & CR3_NOFLUSH;
			val &= ~CR3_NOFLUSH;
		}
		n.cr3 = val;
		break;
	case 4: {
		uint64_t changed = c->guest.cr4 ^ val;
		/* CR4.LA57 cannot change in long mode; PCIDE can be set only with CR3[11:0] = 0. */
		if ((changed & X86_CR4_LA57) && (c->guest.efer & EFER_LMA))
			return -EINVAL;
		if ((changed & X86_CR4_PAE) && (c->guest.efer & EFER_LMA))
			return -EINVAL;
		if ((changed & val & X86_CR4_PCIDE) && (c->guest.cr3 & 0xfff))
			return -EINVAL;
		n.cr4 = val;
		flush_all = changed & (X86_CR4_PGE | X86_CR4_PAE | X86_CR4_PSE | X86_CR4_SMEP |
				       X86_CR4_SMAP | X86_CR4_LA57 | X86_CR4_PKE);
		if (changed & c->guest.cr4 & X86_CR4_PCIDE)
			flush_all = 1;
		break;
	}
	default:
		return -EINVAL;
	}
	/* PAE PDPTEs reload at MOV CR3 and at a CR0/CR4 change that affects paging, and only then. */
	bool reload = cr == 3 || flush_all;
	if (!reload) {
		bool keep = n.pdptrs_valid;
		uint64_t save[4];
		memcpy(save, n.pdptrs, sizeof(save));
		rc = check_state(c, &n);
		n.pdptrs_valid = keep;
		memcpy(n.pdptrs, save, sizeof(save));
	} else {
		rc = check_state(c, &n);
	}
	if (rc)
		return rc;
	c->guest = n;
	/* MOV CR3 (a context switch) changes no input of the permission bitmaps: only the PCID. */
	if (cr == 3)
		cpu_update_pcid(c);
	else
		cpu_update(c);
	if (flush_all) {
		cpu_flush_tlb(c);
	} else if (cr == 3 && !noflush) {
		/* Non-global entries of the new PCID go (with PCIDE off, that is all of them). */
		tlb_flush_pcid(c->tlb, c->pcid, false);
		pwc_flush(c);
		cpu_stat_add(c, tlb_flush, 1);
		cpu_stat_add(c, sim_cycles, c->cost.tlb_flush);
	}
	return 0;
}

static bool canonical(const struct cpu *c, gva_t va)
{
	int bits = (c->guest.cr4 & X86_CR4_LA57) ? 57 : 48;
	return (uint64_t)((int64_t)(va << (64 - bits)) >> (64 - bits)) == va;
}

int cpu_invlpg(struct cpu *c, gva_t gva)
{
	/* INVLPG of a non-canonical address is a no-op, not a fault. */
	cpu_stat_add(c, invlpg, 1);
	cpu_stat_add(c, sim_cycles, c->cost.invlpg);
	if ((c->guest.efer & EFER_LMA) && !canonical(c, gva))
		return 0;
	tlb_invlpg(c->tlb, gva, c->pcid);
	pwc_flush(c);
	return 0;
}

int cpu_invpcid(struct cpu *c, unsigned type, uint16_t pcid, gva_t gva)
{
	if (type > 3 || pcid > 0xfff)
		return -EINVAL;
	if (type <= 1 && !(c->guest.cr4 & X86_CR4_PCIDE) && pcid)
		return -EINVAL;
	if (type == 0 && !canonical(c, gva))
		return -EINVAL;
	cpu_stat_add(c, invlpg, 1);
	cpu_stat_add(c, sim_cycles, c->cost.invlpg);
	pwc_flush(c);
	switch (type) {
	case 0: tlb_flush_addr_pcid(c->tlb, gva, pcid); break;
	case 1: tlb_flush_pcid(c->tlb, pcid, false); break;
	case 2: tlb_flush_all(c->tlb, true); break;
	case 3: tlb_flush_all(c->tlb, false); break;
	}
	return 0;
}

static enum hw_status deliver_pf(struct cpu *c, gva_t gva, uint32_t ec, struct hw_outcome *o)
{
	/* A #PF drops the address's TLB entries (SDM 4.10.4.1). */
	tlb_invlpg(c->tlb, gva, c->pcid);
	pwc_flush(c);
	cpu_stat_add(c, pf_delivered, 1);
	cpu_stat_add(c, sim_cycles, c->cost.pf_deliver);
	o->status = HW_PF;
	o->pf_ec = ec;
	o->pf_addr = gva;
	return HW_PF;
}

void cpu_inject_pf(struct cpu *c, gva_t gva, uint32_t ec)
{
	struct hw_outcome o;
	deliver_pf(c, gva, ec, &o);
}

void cpu_account_exit(struct cpu *c, enum vmmu_exit_reason reason)
{
	cpu_stat_add(c, exits, 1);
	cpu_stat_add(c, exits_by_reason[reason], 1);
	cpu_stat_add(c, sim_cycles, c->cost.vm_exit);
}

void cpu_account_mmu_steps(struct cpu *c, uint64_t n)
{
	cpu_stat_add(c, sim_cycles, n * c->cost.mmu_step);
}

static enum hw_status vm_exit(struct cpu *c, struct hw_outcome *o, enum vmmu_exit_reason reason,
			      gva_t gva, gpa_t gpa, uint32_t ec, uint64_t qual, unsigned access)
{
	cpu_stat_add(c, exits, 1);
	cpu_stat_add(c, exits_by_reason[reason], 1);
	cpu_stat_add(c, sim_cycles, c->cost.vm_exit);
	o->status = HW_EXIT;
	o->exit = (struct hw_exit){ .reason = reason, .gva = gva, .gpa = gpa, .ec = ec,
				    .qual = qual, .access = access };
	return HW_EXIT;
}

/* A #PF from a walk under a hypervisor: a VM exit if the exit controls intercept it, else it goes
 * straight to the guest (the no-trap case, or nested paging's guest faults). */
VMMU_HOT
static enum hw_status pf_exit_or_deliver(struct cpu *c, gva_t gva, gva_t addr, uint32_t ec,
					 unsigned access, struct hw_outcome *o)
{
	if (exit_pf_intercepted(&c->ctl, ec)) {
		tlb_invlpg(c->tlb, gva, c->pcid);
		pwc_flush(c);
		return vm_exit(c, o, VMMU_EXIT_PF, gva, 0, ec, 0, access);
	}
	return deliver_pf(c, addr, ec, o);
}

/* Returns the new first-level entry (tlb_fill's). */
VMMU_HOT
static struct tlb_entry_info *fill(struct cpu *c, gva_t gva, uint64_t pa, unsigned page_shift,
				   unsigned rights, unsigned pkey, bool dirty, bool global)
{
	unsigned shift = page_shift == 22 ? 21 : page_shift;   /* a 4M page is cached as 2M halves */
	struct tlb_entry_info f = {
		.frame = pa & ~((1ULL << shift) - 1),
		.page_shift = (uint8_t)shift,
		.access = (uint8_t)rights,
		.pkey = (uint8_t)pkey,
		.dirty = dirty,
		.global = global && (c->guest.cr4 & X86_CR4_PGE),
		.pcid = c->pcid,
	};
	return tlb_fill(c->tlb, gva, &f);
}

static void count_walk(struct cpu *c, unsigned refs)
{
	cpu_stat_add(c, walks, 1);
	cpu_stat_add(c, walk_refs, refs);
	cpu_stat_add(c, sim_cycles, (uint64_t)refs * c->cost.walk_ref);
}

/* The native walk of the modes other than 4- and 5-level paging, and of a non-canonical address:
 * out of line, or walk_native's flattening would inline the shared walkers too (3 KiB more of
 * the hot text, hot.h). Cold: the guest model pages in 4 or 5 levels; 32-bit and PAE guests are
 * the validation scenarios' and the tests'. */
__attribute__((noinline, cold)) static enum walk_status
walk_native_other(struct cpu *c, gva_t gva, unsigned access, const struct walk_start *sp,
		  struct walk_result *r)
{
	return paging_walk_from(&c->guest, &cpu_gmem_ops, c, gva, access, sp, r);
}

/*
 * Native: the guest's own tables in guest physical memory. *@hit: the entry filled, for
 * final_host to keep the page's host pointer in (translate_from's). Flattened: the walker
 * (cpu_walk64_addr) and the TLB fill inlined here see this walk's constants; a random access's
 * TLB miss (warm gups natively) took 11% fewer instructions.
 */
VMMU_HOT
__attribute__((flatten)) static enum hw_status walk_native(struct cpu *c, gva_t gva, unsigned access,
							   uint64_t *pa, struct hw_outcome *o, int *err,
							   struct tlb_entry_info **hit)
{
	struct walk_result r;
	struct walk_start start, *sp = NULL;
	bool pwc = c->pwc && paging_mode_of(&c->guest) >= PAGING_4LVL;

	if (pwc && pwc_lookup(c, gva, &start))
		sp = &start;
	/* The mode read again, not once above for both: so GCC compiled warm gups's miss 41
	 * instructions shorter, and laid the #PF path's text out without an L1i set it overfills. */
	enum paging_mode mode = paging_mode_of(&c->guest);
	enum walk_status ws = mode >= PAGING_4LVL && paging_canonical(gva, mode) ?
		cpu_walk64_addr(&c->guest, &cpu_gmem_ops, c, gva, access, sp, &r) :
		walk_native_other(c, gva, access, sp, &r);

	count_walk(c, r.refs);
	switch (ws) {
	case WALK_OK:
		break;
	case WALK_PF:
		return deliver_pf(c, r.addr, r.ec, o);
	case WALK_GP:
		o->status = HW_GP;
		return HW_GP;
	case WALK_ABORT:
		*err = r.abort_err ? r.abort_err : -EIO;
		return HW_EXIT;
	}
	uint64_t leaf = r.level ? r.gpte[r.level] : 0;
	*hit = fill(c, gva, r.gpa, r.page_shift, r.access, r.pkey,
		    r.level == 0 || (leaf & PT_DIRTY_MASK), r.level && (leaf & PT_GLOBAL_MASK));
	if (r.level == 1 && r.root_level >= 4) {   /* the prefetch hint of the leaf's table */
		const struct cpu_pcache_entry *pt = cpu_pcache_peek(c, r.pte_gpa[1] >> 12, false);
		uint64_t region = gva >> 21;
		if (pt)
			c->pf_pt[region & (CPU_PF_PTS - 1)] = (uintptr_t)pt->host | CPU_PF_PT_TAG(region);
	}
	if (pwc)
		pwc_fill(c, gva, &r, c->guest.efer & EFER_NXE, sp ? sp->access : ACC_ALL);
	*pa = r.gpa;
	return HW_DONE;
}

/* The rights an entry of the shadow tables grants (EFER.NXE is always on under them). */
static inline unsigned spte_hw_access(uint64_t spte)
{
	return ((spte & PT64_NX_MASK) ? 0 : ACC_EXEC) | ((spte & PT_WRITABLE_MASK) ? ACC_WRITE : 0) |
	       ((spte & PT_USER_MASK) ? ACC_USER : 0);
}

/* The permission rules for the shadow walk: cpu_update's bitmaps (CR0.WP forced on there under
 * shadow paging), and protection keys as paging_permission_fault has them, under the context the
 * hardware runs the guest with. */
static uint32_t shadow_permission_fault(const struct cpu *c, unsigned acc, unsigned pkey,
					unsigned access)
{
	if ((c->guest.cr4 & X86_CR4_PKE) && (acc & ACC_USER) && !(access & PFERR_FETCH)) {
		struct paging_ctx hw;

		cpu_shadow_hw_ctx(c, &hw);
		return paging_permission_fault(&hw, acc, pkey, access);
	}
	return (c->perm_access[c->guest.ac][perm_index(access, c->guest.cpl)] >> acc) & 1 ?
		PFERR_PRESENT : 0;
}

/*
 * The hardware's walk of the shadow tables: x86-64 entries, 4 or 5 levels, in host memory, with
 * the guest's CPL, AC, SMEP/SMAP and PKU state under CR0.WP=1 and EFER.NXE=1, the physical
 * CPU's reserved bits (the model's MAXPHYADDR, 1 GiB pages, NX: what makes MMIO and "not yet
 * shadowed" sptes fault with RSVD). It gives what the 64-bit
 * instance of walk_tmpl.h gives under that context (test_hw_modes holds the two to the same
 * result, entries and counts on random tables), with the same steps, retries and A/D updates.
 *
 * Why its own code: the format is fixed, so the template's mode tests, its PAE and 32-bit
 * cases, the copy of the guest context each walk made and the read's generic checks all go;
 * every soft-MMU exit walks the shadow tables at least twice (a shadow touch fault: five walks,
 * 19% of its instructions in the template's instance).
 */
VMMU_HOT
enum walk_status cpu_shadow_walk(const struct cpu *c, gva_t gva, unsigned access,
				 const struct walk_start *start, struct walk_result *r)
{
	const int root_level = c->shadow_levels == 5 ? 5 : 4;
	const uint8_t maxphy = c->guest.cpu.maxphyaddr;
	const uint64_t high = rsvd_bits(maxphy, 51);
	/* Above level 1, a present entry with none of these bits is a table to step into: they
	 * are a superset of what any of those levels reserves for PS=0 (bit 8: AMD's PML4E and
	 * PML5E), and PS=0 makes no leaf there. */
	const uint64_t quick = PT_PRESENT_MASK | high | PT_PAGE_SIZE_MASK | rsvd_bits(8, 8);
	const uint64_t rsvd_top = high | rsvd_bits(7, 7) |
				  (c->guest.cpu.vendor == CPU_VENDOR_AMD ? rsvd_bits(8, 8) : 0);
	const bool user = !(access & WALK_IMPLICIT) && c->guest.cpl == 3;
	unsigned retries = 0;
	uint64_t pte = 0;
	uint32_t ec;
	int level, err;

	r->addr = gva;
	r->refs = 0;
	r->abort_err = 0;
	r->root_level = root_level;
	if (!paging_canonical(gva, root_level == 5 ? PAGING_5LVL : PAGING_4LVL)) {
		r->status = WALK_GP;
		return WALK_GP;
	}

retry:
	ec = 0;
	r->pkey = 0;
	{
		hpa_t table = c->shadow_root & rsvd_bits(12, maxphy - 1);
		unsigned acc = ACC_ALL;
		uint64_t anded = ~0ULL;   /* the entries read, ANDed: every A bit set? */

		level = root_level;
		if (start && start->level > 0 && start->level < level) {
			level = start->level;
			table = start->table;
			acc = start->access;
		}
		r->top_level = level;

		for (;;) {
			const hpa_t pte_hpa = table + ((gva >> (3 + 9 * level)) & 511) * 8;
			/* Tables are 4 KiB aligned (the root and every entry's address masked,
			 * @start's by contract): the entry is a naturally aligned 8 bytes. */
			const uint64_t *p = host_hpa_ptr_inline(c->arena, c->arena_base, c->arena_meta,
								c->arena_frames, pte_hpa);

			r->level = level;
			r->refs++;
			r->pte_gpa[level] = pte_hpa;
			if (!p) {
				/* No frame there: a not-present fault, as the template's. */
				r->gpte[level] = 0;
				goto error;
			}
			/* Acquire: a table published by a release store is seen whole. */
			pte = __atomic_load_n(p, __ATOMIC_ACQUIRE);
			r->gpte[level] = pte;
			if (level > 1 && (pte & quick) == PT_PRESENT_MASK) {
				acc &= spte_hw_access(pte);
				anded &= pte;
				table = pte & rsvd_bits(12, 51);
				level--;
				continue;
			}
			if (!(pte & PT_PRESENT_MASK))
				goto error;
			const bool large = pte & PT_PAGE_SIZE_MASK;
			uint64_t rsvd = level >= 4 ? rsvd_top :
					level == 3 ? high | (large ? rsvd_bits(13, 29) : 0) :
					level == 2 ? high | (large ? rsvd_bits(13, 20) : 0) : high;
			if (pte & rsvd) {
				ec = PFERR_RSVD | PFERR_PRESENT;
				goto error;
			}
			acc &= spte_hw_access(pte);
			anded &= pte;
			/* PS at levels 4 and 5 is reserved (above): at 2 and 3 it is a large page. */
			if (level == 1 || large)
				break;
			table = pte & rsvd_bits(12, 51);
			level--;
		}

		const unsigned shift = 12 + 9 * (unsigned)(level - 1);
		r->page_shift = shift;
		r->gpa = (pte & rsvd_bits((int)shift, 51)) | (gva & ((1ULL << shift) - 1));
		r->access = acc;
		r->pkey = (unsigned)((pte & PT64_PKEY_MASK) >> PT64_PKEY_SHIFT);
		ec = shadow_permission_fault(c, acc, r->pkey, access);
		if (ec)
			goto error;

		switch (paging_walk_ad(&host_mem_ops, c->arena, r, level, access, pte, anded, 0, 8,
				       &retries, &err)) {
		case WALK_AD_DONE: break;
		case WALK_AD_RETRY: goto retry;
		case WALK_AD_FAULT: ec = 0; goto error;
		case WALK_AD_ABORT: goto abort;
		}
		r->status = WALK_OK;
		return WALK_OK;
	}

error:
	ec |= access & PFERR_WRITE;
	if (user)
		ec |= PFERR_USER;
	if (access & PFERR_FETCH)   /* NX is on: the I/D bit always exists */
		ec |= PFERR_FETCH;
	r->ec = ec;
	r->status = WALK_PF;
	return WALK_PF;

abort:
	r->abort_err = err;
	r->status = WALK_ABORT;
	return WALK_ABORT;
}

/*
 * Shadow: the hardware walks the shadow root (cpu_shadow_walk); it sets the sptes' A/D. A #PF
 * exits when the exception bitmap (and on VMX PFEC_MASK/MATCH) says so, else it goes straight to
 * the guest.
 */
VMMU_HOT
static enum hw_status walk_shadow(struct cpu *c, gva_t gva, unsigned access, uint64_t *pa,
				  struct hw_outcome *o, int *err)
{
	struct walk_result r;
	struct walk_start start, *sp = NULL;

	if (c->pwc && pwc_lookup(c, gva, &start))
		sp = &start;
	enum walk_status ws = cpu_shadow_walk(c, gva, access, sp, &r);

	count_walk(c, r.refs);
	switch (ws) {
	case WALK_OK:
		break;
	case WALK_PF:
		return pf_exit_or_deliver(c, gva, r.addr, r.ec, access, o);
	case WALK_GP:
		o->status = HW_GP;
		return HW_GP;
	case WALK_ABORT:
		*err = r.abort_err ? r.abort_err : -EIO;
		return HW_EXIT;
	}
	/* The MMU must only ever map allocated host frames (Isolation): refuse anything else. */
	if (!host_pfn_valid(c->arena, r.gpa >> 12)) {
		*err = -EFAULT;
		return HW_EXIT;
	}
	uint64_t leaf = r.gpte[r.level];
	fill(c, gva, r.gpa, r.page_shift, r.access, r.pkey, leaf & PT_DIRTY_MASK,
	     leaf & PT_GLOBAL_MASK);
	if (c->pwc)
		pwc_fill(c, gva, &r, true, sp ? sp->access : ACC_ALL);
	*pa = r.gpa;
	return HW_DONE;
}

/* Nested: the 2-D walk; nested faults exit, guest faults go to the guest. */
VMMU_HOT
static enum hw_status walk_nested(struct cpu *c, gva_t gva, unsigned access, uint64_t *pa,
				  struct hw_outcome *o, int *err)
{
	struct nested_result r;
	int rc = nested_walk(&c->guest, &c->tdp, c->ntlb, c->wcache, gva, access, &r);

	count_walk(c, r.refs);
	if (rc) {
		*err = rc;
		return HW_EXIT;
	}
	switch (r.status) {
	case NESTED_OK:
		break;
	case NESTED_GUEST_PF:
		return pf_exit_or_deliver(c, gva, r.gva, r.pf_ec, access, o);
	case NESTED_GUEST_GP:
		o->status = HW_GP;
		return HW_GP;
	case NESTED_EPT_VIOLATION:
		return vm_exit(c, o, VMMU_EXIT_EPT_VIOLATION, gva, r.gpa, 0, r.exit_qual, access);
	case NESTED_EPT_MISCONFIG:
		return vm_exit(c, o, VMMU_EXIT_EPT_MISCONFIG, gva, r.gpa, 0, r.exit_qual, access);
	case NESTED_NPF:
		return vm_exit(c, o, VMMU_EXIT_NPF, gva, r.gpa, (uint32_t)r.exit_qual, r.exit_qual,
			       access);
	}
	/* The TLB caches the combined translation: the guest's rights less what the nested tables
	 * refuse, and "dirty" only when both leaves are and the nested leaf allows writes, so a
	 * write that must set either D, or that the nested tables refuse, walks. The last matters
	 * where the guest's rules let a write through without ACC_WRITE (CR0.WP=0 at CPL 0, an
	 * implicit supervisor access): the nested W is the hypervisor's, whatever the guest sets
	 * (a write-protected page for dirty logging was written unlogged through such a hit). */
	unsigned rights = r.access;
	if (!(r.tdp_rights & TDP_W))
		rights &= ~ACC_WRITE;
	if (!(r.tdp_rights & TDP_X))
		rights &= ~ACC_EXEC;
	if (!host_pfn_valid(c->arena, r.hpa >> 12)) {
		*err = -EFAULT;
		return HW_EXIT;
	}
	uint64_t leaf = r.guest.level ? r.guest.gpte[r.guest.level] : PT_DIRTY_MASK;
	fill(c, gva, r.hpa, r.page_shift, rights, r.guest.pkey,
	     (leaf & PT_DIRTY_MASK) && tdp_leaf_dirty(&c->tdp, r.tdp.entry) && (r.tdp_rights & TDP_W),
	     r.guest.level && (leaf & PT_GLOBAL_MASK));
	*pa = r.hpa;
	return HW_DONE;
}

/* The protection-key part of the rights check of a hit on a user page with CR4.PKE (the rest
 * passed through perm_kind[]): the full rules under the current PKRU. */
__attribute__((noinline)) static bool hit_pkey_fault(const struct cpu *c, const struct tlb_entry_info *e,
						     unsigned kind)
{
	struct paging_ctx hw = c->guest;

	/* Under shadow paging the hardware runs with CR0.WP=1 (cpu_update). */
	if (c->mode == VMMU_MMU_SHADOW)
		hw.cr0 |= X86_CR0_WP;
	return paging_permission_fault(&hw, e->access, e->pkey, kind_to_access(kind)) != 0;
}

/*
 * Whether TLB hit @e serves an access of @kind: its cached rights allow the access under the
 * current state and, for a write, the leaf was already dirty. Otherwise the hardware walks again:
 * for the D bit it must set, or to take a fault from the tables as they are now (a #PF also drops
 * the address's TLB entries, as the SDM says).
 */
static inline bool hit_serves(const struct cpu *c, const struct tlb_entry_info *e, unsigned kind)
{
	if ((c->perm_kind[kind & 7] >> e->access) & 1)
		return false;
	if ((c->guest.cr4 & X86_CR4_PKE) && (e->access & ACC_USER) && hit_pkey_fault(c, e, kind))
		return false;
	return !(kind & VMMU_ACC_WRITE) || e->dirty;
}

/* Count a hit that served an access (the TLB counted its own lookup). */
static inline void count_hit(struct cpu *c, enum tlb_hit level)
{
	cpu_stat_add(c, tlb_hits, 1);
	if (level == TLB_HIT_L2) {
		cpu_stat_add(c, stlb_hits, 1);
		cpu_stat_add(c, sim_cycles, c->cost.stlb_hit);
	}
}

/* A TLB miss, or a hit that cannot serve the access: the mode's walk. *@hit (NULL on entry):
 * natively, the entry filled. */
VMMU_HOT
static enum hw_status translate_miss(struct cpu *c, gva_t gva, unsigned access, uint64_t *pa,
				     struct hw_outcome *o, int *err, struct tlb_entry_info **hit)
{
	cpu_stat_add(c, tlb_misses, 1);

	switch (c->mode) {
	case VMMU_MMU_NATIVE:
		return walk_native(c, gva, access, pa, o, err, hit);
	case VMMU_MMU_SHADOW:
		return walk_shadow(c, gva, access, pa, o, err);
	case VMMU_MMU_EPT:
	case VMMU_MMU_NPT:
		return walk_nested(c, gva, access, pa, o, err);
	}
	*err = -EINVAL;
	return HW_EXIT;
}

/*
 * gva -> final address for an access of @kind: a TLB hit that serves it, else the walk. The lookup
 * is tlb_lookup_entry's, from its first-level probe @e/@stamp (tlb_find_l1). *@hit: the entry
 * that served it; after a walk, natively the entry it filled (so the next access to the page, the
 * write of a read-modify-write, finds the host pointer final_host keeps there), else NULL.
 */
static inline __attribute__((always_inline)) enum hw_status
translate_from(struct cpu *c, gva_t gva, unsigned kind, struct tlb_entry_info *e, uint32_t *stamp,
	       uint64_t *pa, struct tlb_entry_info **hit, struct hw_outcome *o, int *err)
{
	enum tlb_hit level;

	e = tlb_lookup_finish(c->tlb, gva, c->pcid, e, stamp, &level);
	if (e && hit_serves(c, e, kind)) {
		count_hit(c, level);
		*pa = tlb_entry_pa(e, gva);
		*hit = e;
		return HW_DONE;
	}
	*hit = NULL;
	return translate_miss(c, gva, kind_to_access(kind), pa, o, err, hit);
}

static enum hw_status translate(struct cpu *c, gva_t gva, unsigned kind, uint64_t *pa,
				struct tlb_entry_info **hit, struct hw_outcome *o, int *err)
{
	uint32_t *stamp;
	struct tlb_entry_info *e = tlb_find_l1(c->tlb, gva, c->pcid, &stamp);

	return translate_from(c, gva, kind, e, stamp, pa, hit, o, err);
}

/* A VM exit during an access carries the access (struct hw_exit). */
static void exit_describe_access(struct hw_outcome *o, gva_t gva, uint32_t len, bool write,
				 const void *buf)
{
	o->exit.access_gva = gva;
	o->exit.access_len = len;
	o->exit.data = write ? buf : NULL;
}

/* No memory at @pa (or a write to read-only memory): an MMIO access of @len bytes, after @done. */
static void mmio_access(struct cpu *c, uint64_t pa, uint32_t len, bool write, uint32_t done,
			struct hw_outcome *o)
{
	cpu_stat_add(c, mmio, 1);
	cpu_stat_add(c, sim_cycles, c->cost.mmio);
	o->status = HW_MMIO;
	o->mmio_pa = pa;
	o->mmio_len = len;
	o->mmio_write = write;
	o->done = done;
}

/*
 * The host bytes of final address @pa for an access (@write) of the page part @e translated: in
 * native mode the guest-page cache's answer (-ENOENT or -EPERM: an MMIO access), kept in @e for
 * the next hit if the cache kept it and @e may keep one (cpu.h's invariants); else the arena.
 * *@log as gfn_host's.
 */
static inline __attribute__((always_inline)) int final_host(struct cpu *c, uint64_t pa,
		struct tlb_entry_info *e, bool write, uint8_t **p, bool *log)
{
	*log = false;
	if (c->mode != VMMU_MMU_NATIVE) {
		/* An hpa from a TLB entry, checked when the entry was filled (walk_*). */
		*p = c->arena_base + pa;
		return 0;
	}
	if (e && cpu_host_kept(e, e->page_shift, pa, write, p))
		return 0;
	enum pcache_kept kept;
	int rc = gfn_host(c, pa >> 12, write, p, &kept, log);
	if (rc)
		return rc;
	/* In native mode nothing gfn_host calls changes the TLB (a host invalidation only drops
	 * host pointers, and that has happened by now): @e is still the entry. It may write
	 * through the pointer whenever the cache could (a read then a write of the page, the
	 * usual read-modify-write, takes the hit path twice, as cpu_hit_serve's refill would). */
	if (kept != PCACHE_NOT_KEPT && e && cpu_host_keeps(e->page_shift)) {
		e->host = *p + cpu_host_tag(e->page_shift, pa);
		e->host_writable = kept == PCACHE_KEPT_RW;
	}
	*p += pa & 0xfff;
	return 0;
}

/*
 * One guest access: every part translated before any byte moves (a page-crossing access needs
 * both translations, so a fault on the second page leaves memory untouched, as on hardware), then
 * the bytes. One page in long mode is the common case, kept apart; @probed: the caller probed the
 * first level for it (cpu_access_l1), which has nothing for the page, so the lookup goes on from
 * there.
 */
static inline __attribute__((always_inline)) int access(struct cpu *c, gva_t gva, uint32_t len,
							unsigned kind, void *buf, struct hw_outcome *o,
							const bool probed)
{
	const bool write = kind & VMMU_ACC_WRITE;
	struct tlb_entry_info *hit[2];
	uint64_t pa[2];
	uint32_t part[2];
	unsigned nparts = 1;
	int err = 0;

	o->status = HW_DONE;
	o->done = 0;
	if (__builtin_expect((gva & 0xfff) + len <= 4096 && (c->guest.efer & EFER_LMA), 1)) {
		uint32_t *stamp = NULL;
		struct tlb_entry_info *e = probed ? NULL : tlb_find_l1(c->tlb, gva, c->pcid, &stamp);
		cpu_stat_add(c, accesses, 1);
		cpu_stat_add(c, sim_cycles, c->cost.tlb_hit);
		enum hw_status s = translate_from(c, gva, kind, e, stamp, &pa[0], &hit[0], o, &err);
		if (s != HW_DONE) {
			if (s == HW_EXIT && !err)
				exit_describe_access(o, gva, len, write, buf);
			return err;
		}
		part[0] = len;
		goto move;
	}

	cpu_stat_add(c, accesses, 1);
	cpu_stat_add(c, sim_cycles, c->cost.tlb_hit);
	part[0] = len;
	if ((gva & 0xfff) + len > 4096) {
		part[0] = 4096 - (uint32_t)(gva & 0xfff);
		part[1] = len - part[0];
		nparts = 2;
		/* The canonical check comes with the linear address, before paging: an access that
		 * runs from canonical into non-canonical space is a #GP, whatever its first page's
		 * translation would have given (SDM vol. 3A, 3.3.7.1). */
		if ((c->guest.efer & EFER_LMA) && !canonical(c, (gva & ~0xfffULL) + 4096)) {
			o->status = HW_GP;
			return 0;
		}
	}
	for (unsigned i = 0; i < nparts; i++) {
		gva_t va = i ? (gva & ~0xfffULL) + 4096 : gva;
		if (!(c->guest.efer & EFER_LMA) && va > 0xffffffffULL)
			va &= 0xffffffffULL;
		enum hw_status s = translate(c, va, kind, &pa[i], &hit[i], o, &err);
		if (err)
			return err;
		if (s == HW_EXIT)
			exit_describe_access(o, gva, len, write, buf);
		if (s != HW_DONE)
			return 0;
	}
	/* A TLB entry pointer is good until the TLB next changes: the second part's translation may
	 * have replaced the first part's entry, so only a one-part access passes its entry on. */
	if (nparts == 2)
		hit[0] = hit[1] = NULL;

move:;
	/* A part with no host memory behind it (-EFAULT) fails the whole access before any byte
	 * moves, as an MMU's exit for it does. Checked with read lookups: a write lookup makes the
	 * host page writable (a copy-on-write or KSM break, a new frame), which only a part about to
	 * be written may cause. */
	if (nparts == 2) {
		for (unsigned i = 0; i < nparts; i++) {
			uint8_t *p;
			bool log;
			int rc = final_host(c, pa[i], NULL, false, &p, &log);
			if (rc && rc != -ENOENT && rc != -EPERM)
				return rc;
		}
	}
	uint32_t off = 0;
	for (unsigned i = 0; i < nparts; i++) {
		uint8_t *p;
		bool log;
		int rc = final_host(c, pa[i], hit[i], write, &p, &log);
		if (rc == -ENOENT || rc == -EPERM) {
			mmio_access(c, pa[i], part[i], write, off, o);
			return 0;
		}
		if (rc)
			return rc;
		gva_t vpn = (i ? (gva & ~0xfffULL) + 4096 : gva) >> 12;
		c->pf_hint[vpn & (CPU_PF_HINTS - 1)] = cpu_pf_hint_make(vpn, p - (pa[i] & 0xfff));
		cpu_move_bytes(p, (char *)buf + off, part[i], write);
		if (log)
			c->phys->written(c->phys_opaque, pa[i] >> 12);
		off += part[i];
	}
	return 0;
}

VMMU_HOT
int cpu_access(struct cpu *c, gva_t gva, uint32_t len, unsigned kind, void *buf,
	       struct hw_outcome *o)
{
	return access(c, gva, len, kind, buf, o, false);
}

VMMU_HOT
int cpu_access_l1_missed(struct cpu *c, gva_t gva, uint32_t len, unsigned kind, void *buf,
			 struct hw_outcome *o)
{
	return access(c, gva, len, kind, buf, o, true);
}
