/* SPDX-License-Identifier: MIT */
/*
 * The 2-D walk (see nested.h). The guest walker runs over nested_mem_ops (its own instance,
 * nested_walk64_addr, for 4- and 5-level guests), whose read translates the entry's gpa with
 * tdp_walk() (or a nested TLB or walk cache hit) and then reads the hpa, and whose cmpxchg reuses
 * that translation. A nested fault cannot be expressed in the ops' 0 / -ENOENT / -EACCES / -EAGAIN
 * vocabulary, so the ops stash it and return NESTED_EXIT, which aborts the guest walk;
 * nested_walk() then turns the stash into the exit.
 *
 * Invariants: every memory access goes through cpu/hostmem (only allocated arena frames), but a
 * walk cache hit's load, from the host page hostmem found allocated when the entry was filled
 * (nested.h: it stays allocated while the entry's generation is current); the memo holds
 * translations of entries this walk read since its last restart; the walk cache (nested.h) holds
 * only translations a walk would now give unchanged, writing nothing. No locking: per vCPU; the
 * tables generation is read once a walk, with acquire.
 */
#include <errno.h>
#include <string.h>

#include "hot.h"
#include "paging/hostmem.h"
#include "cpu/nested.h"

/* The ops' "a nested walk faulted" code: none of the codes the walker gives meaning to, and
 * nothing hostmem returns. */
#define NESTED_EXIT (-EFAULT)

/* Translations of the guest entries read since the walk (re)started: the walker reads one entry
 * a level and swaps only entries it read, so a few suffice; the oldest is dropped first. */
#define NESTED_MEMO 8

struct nested_memo {
	gfn_t gfn;              /* guest page holding the entry */
	hpa_t hpa;              /* its host page */
	unsigned rights;        /* TDP_R/W/X of the translation */
};

/* One 2-D walk's state, the opaque of nested_mem_ops. */
struct nested_state {
	const struct tdp_ctx *tdp;
	struct nested_tlb *ntlb;                /* NULL: no nested TLB */
	struct nested_wcache *wc;               /* NULL: no walk cache */
	uint64_t gen;                           /* the tables generation when the walk began */
	unsigned table_access;                  /* a guest table read, for tdp_walk() */
	unsigned table_need;                    /* tdp_needed(table_access) */
	struct nested_wcache *read_wc;          /* the walk cache nested_read's hit uses: wc
						 * without a nested TLB, not verifying; or NULL */
	unsigned refs;                          /* nested entries read so far */
	struct nested_memo memo[NESTED_MEMO];   /* ring, newest at (nmemo - 1) % NESTED_MEMO */
	unsigned nmemo;                         /* entries pushed since the last restart */
	bool exit;                              /* a nested fault ended the guest walk: */
	bool exit_in_read;                      /*   while reading an entry (not read, then) */
	gpa_t exit_gpa;                         /*   the gpa being translated */
	struct tdp_result exit_tdp;             /*   its nested walk */
};

void nested_tlb_flush(struct nested_tlb *t)
{
	if (t)
		memset(t->e, 0, sizeof(t->e));
}

static struct nested_tlb_entry *ntlb_slot(struct nested_tlb *t, gfn_t gfn)
{
	return &t->e[gfn & (NESTED_TLB_ENTRIES - 1)];
}

/* Whether entry @e serves @access. A refused access walks: the walk gives the precise fault, as
 * the hardware re-walks; so does a write through a clean leaf (the walk sets its D). */
static inline bool ntlb_allows(const struct nested_tlb_entry *e, unsigned access)
{
	return (e->rights & tdp_needed(access)) && (!(access & PFERR_WRITE) || e->dirty);
}

static bool ntlb_lookup(const struct nested_state *st, gpa_t gpa, unsigned access,
			struct tdp_result *tr)
{
	const gfn_t gfn = gpa >> VMMU_PAGE_SHIFT;
	struct nested_tlb_entry *e;

	if (!st->ntlb)
		return false;
	e = ntlb_slot(st->ntlb, gfn);
	if (!e->valid || e->gfn != gfn || !ntlb_allows(e, access)) {
		st->ntlb->misses++;
		return false;
	}
	st->ntlb->hits++;
	*tr = (struct tdp_result){
		.status = TDP_OK,
		.hpa = e->hpa | (gpa & (VMMU_PAGE_SIZE - 1)),
		.page_shift = e->page_shift,
		.rights = e->rights,
	};
	return true;
}

VMMU_HOT
static void ntlb_fill(const struct nested_state *st, gpa_t gpa, unsigned access,
		      const struct tdp_result *tr)
{
	const struct tdp_ctx *c = st->tdp;
	struct nested_tlb_entry *e;

	/* A probe set no A bit, and the hardware caches only translations it marked accessed. */
	if (!st->ntlb || (access & WALK_NO_AD))
		return;
	e = ntlb_slot(st->ntlb, gpa >> VMMU_PAGE_SHIFT);
	e->gfn = gpa >> VMMU_PAGE_SHIFT;
	e->hpa = tr->hpa & ~(VMMU_PAGE_SIZE - 1);
	e->page_shift = (uint8_t)tr->page_shift;
	e->rights = (uint8_t)tr->rights;
	e->dirty = tdp_leaf_dirty(c, tr->entry);
	e->valid = true;
}

void nested_wcache_reset(struct nested_wcache *w)
{
	if (w) {
		memset(w->e, 0, sizeof(w->e));
		memset(w->data, 0, sizeof(w->data));
	}
}

/* info's low bits, below the host page: rights, the leaf's level, and the nested entries the walk
 * read (levels - level + 1, kept so that a hit need not work it out from the context). */
#define WC_INFO_RIGHTS 7u
#define WC_INFO_LEVEL_SHIFT 3
#define WC_INFO_REFS_SHIFT 6

static struct nested_wcache_entry *wc_slot(struct nested_wcache *w, gfn_t gfn)
{
	return &w->e[gfn & (NESTED_WCACHE_ENTRIES - 1)];
}

/* The entry for @gfn: of a guest table (@table), else of a final gpa. */
static struct nested_wcache_entry *wc_entry(struct nested_wcache *w, gfn_t gfn, bool table)
{
	return table ? wc_slot(w, gfn) : &w->data[gfn & (NESTED_WCACHE_DATA - 1)];
}

static int wc_level(const struct nested_wcache_entry *e)
{
	return (int)((e->info >> WC_INFO_LEVEL_SHIFT) & 7);
}

/* The nested entries the walk that @e stands for read: its levels down to its leaf. */
static unsigned wc_refs(const struct nested_wcache_entry *e)
{
	return (unsigned)((e->info >> WC_INFO_REFS_SHIFT) & 7);
}

/* Whether nested walk @tr for @access (just made, TDP_OK) may be kept: see nested.h. */
static bool wc_keeps(const struct nested_state *st, unsigned access, const struct tdp_result *tr)
{
	const struct tdp_ctx *c = st->tdp;

	if ((access & WALK_NO_AD) || tr->refs != (unsigned)(c->levels - tr->level + 1))
		return false;
	/* A walk that left D clear would set it for a write: keep only what serves any access. */
	return tdp_leaf_dirty(c, tr->entry);
}

static void wc_fill(struct nested_state *st, gpa_t gpa, unsigned access, bool table,
		    const struct tdp_result *tr)
{
	struct nested_wcache_entry *e;

	if (!wc_keeps(st, access, tr))
		return;
	e = wc_entry(st->wc, gpa >> VMMU_PAGE_SHIFT, table);
	e->gfn = gpa >> VMMU_PAGE_SHIFT;
	e->gen = st->gen;
	e->info = (tr->hpa & ~(hpa_t)(VMMU_PAGE_SIZE - 1)) |
		  ((uint64_t)tr->refs << WC_INFO_REFS_SHIFT) |
		  ((uint64_t)tr->level << WC_INFO_LEVEL_SHIFT) | (tr->rights & WC_INFO_RIGHTS);
	e->entry = tr->entry;
	/* Only a table's entry serves a load (nested_read): a final gpa's host page is the caller's. */
	e->host = table ? host_hpa_ptr(st->tdp->arena, tr->hpa & ~(hpa_t)(VMMU_PAGE_SIZE - 1)) : NULL;
}

/* The walk's result for a guest table access (@table) or a final one from the walk cache, if it
 * holds @gpa and its rights allow @access. With wc->verify the walk runs too, and its result is the
 * one given. */
static bool wc_lookup(struct nested_state *st, gpa_t gpa, unsigned access, bool table,
		      struct tdp_result *tr)
{
	struct nested_wcache *w = st->wc;
	const struct nested_wcache_entry *e = wc_entry(w, gpa >> VMMU_PAGE_SHIFT, table);
	const unsigned rights = (unsigned)(e->info & WC_INFO_RIGHTS);
	const int level = wc_level(e);

	if (e->gen != st->gen || e->gfn != gpa >> VMMU_PAGE_SHIFT || !(rights & tdp_needed(access))) {
		w->misses++;
		return false;
	}
	w->hits++;
	w->data_hits += !table;
	*tr = (struct tdp_result){
		.status = TDP_OK,
		.hpa = (e->info & ~(hpa_t)(VMMU_PAGE_SIZE - 1)) | (gpa & (VMMU_PAGE_SIZE - 1)),
		.page_shift = 12 + 9 * (unsigned)(level - 1),
		.rights = rights,
		.level = level,
		.entry = e->entry,
		.refs = wc_refs(e),
	};
	if (w->verify) {
		struct tdp_result probe, real;

		/* First a walk that writes nothing: the entries as they are, so that an A or D bit
		 * the walk would set again (the cache missed a change) shows. Then the walk itself. */
		if (tdp_walk(st->tdp, gpa, access | WALK_NO_AD, &probe) ||
		    tdp_walk(st->tdp, gpa, access, &real)) {
			w->mismatches++;
			return false;
		}
		if (probe.status != tr->status || probe.hpa != tr->hpa ||
		    probe.page_shift != tr->page_shift || probe.rights != tr->rights ||
		    probe.level != tr->level || probe.entry != tr->entry || probe.refs != tr->refs ||
		    probe.qual != tr->qual || real.entry != tr->entry || real.refs != tr->refs)
			w->mismatches++;
		*tr = real;
	}
	return true;
}

/*
 * gpa -> hpa for @access through the nested TLB, the walk cache (its tables' part for a guest
 * table access, @table, else its final gpas') or a nested walk. 0 with the outcome in @tr.
 */
VMMU_HOT
static int nested_translate(struct nested_state *st, gpa_t gpa, unsigned access, bool table,
			    struct tdp_result *tr)
{
	int err;

	if (ntlb_lookup(st, gpa, access, tr))
		return 0;
	if (st->wc && wc_lookup(st, gpa, access, table, tr)) {
		st->refs += tr->refs;
		ntlb_fill(st, gpa, access, tr);
		return 0;
	}
	err = tdp_walk(st->tdp, gpa, access, tr);
	st->refs += tr->refs;
	if (err)
		return err;
	if (tr->status == TDP_OK) {
		ntlb_fill(st, gpa, access, tr);
		if (st->wc)
			wc_fill(st, gpa, access, table, tr);
	}
	return 0;
}

static int stash_exit(struct nested_state *st, gpa_t gpa, const struct tdp_result *tr,
		      bool in_read)
{
	st->exit = true;
	st->exit_in_read = in_read;
	st->exit_gpa = gpa;
	st->exit_tdp = *tr;
	return NESTED_EXIT;
}

static void memo_push(struct nested_state *st, gpa_t gpa, hpa_t hpa, unsigned rights)
{
	struct nested_memo *m = &st->memo[st->nmemo++ % NESTED_MEMO];

	m->gfn = gpa >> VMMU_PAGE_SHIFT;
	m->hpa = hpa & ~(VMMU_PAGE_SIZE - 1);
	m->rights = rights;
}

static const struct nested_memo *memo_find(const struct nested_state *st, gpa_t gpa)
{
	const unsigned n = st->nmemo < NESTED_MEMO ? st->nmemo : NESTED_MEMO;

	for (unsigned i = 1; i <= n; i++) {
		const struct nested_memo *m = &st->memo[(st->nmemo - i) % NESTED_MEMO];

		if (m->gfn == gpa >> VMMU_PAGE_SHIFT)
			return m;
	}
	return NULL;
}

/* A walk's read of a guest table entry: the translation of its gpa, then the load. The rest of
 * nested_read, out of line. */
VMMU_HOT
__attribute__((noinline)) static int nested_read_slow(struct nested_state *st, gpa_t gpa, void *buf,
						      unsigned len)
{
	struct tdp_result tr;
	int err;

	err = nested_translate(st, gpa, st->table_access, true, &tr);
	if (err)
		return err;
	if (tr.status != TDP_OK)
		return stash_exit(st, gpa, &tr, true);
	memo_push(st, gpa, tr.hpa, tr.rights);
	/* -ENOENT (the nested leaf maps no host frame) reaches the guest walker as "not memory". */
	return hostmem_read(st->tdp->arena, tr.hpa, buf, len);
}

/*
 * The same, inline for the usual case: the table's page in the nested TLB or, without one, in
 * the walk cache (not verifying). That is nested_translate's hit, counted as it counts it, with
 * no translation result built and copied: the walk's own instance (below) calls this directly,
 * four times a walk. Anything else, a miss included (counted there, once), is nested_read_slow.
 */
VMMU_HOT
static inline __attribute__((always_inline)) int nested_read(void *opaque, gpa_t gpa, void *buf,
							     unsigned len)
{
	struct nested_state *st = opaque;
	const gfn_t gfn = gpa >> VMMU_PAGE_SHIFT;
	const uint8_t *host = NULL;   /* the page's bytes, where a hit has them checked already */
	hpa_t hpa;
	unsigned rights;

	if (st->ntlb) {
		const struct nested_tlb_entry *e = ntlb_slot(st->ntlb, gfn);

		if (!e->valid || e->gfn != gfn || !ntlb_allows(e, st->table_access))
			return nested_read_slow(st, gpa, buf, len);
		st->ntlb->hits++;
		hpa = e->hpa;
		rights = e->rights;
	} else if (st->read_wc) {
		const struct nested_wcache_entry *e = wc_slot(st->read_wc, gfn);

		rights = (unsigned)(e->info & WC_INFO_RIGHTS);
		if (e->gen != st->gen || e->gfn != gfn || !(rights & st->table_need))
			return nested_read_slow(st, gpa, buf, len);
		st->read_wc->hits++;
		st->refs += wc_refs(e);
		hpa = e->info & ~(hpa_t)(VMMU_PAGE_SIZE - 1);
		host = e->host;
	} else {
		return nested_read_slow(st, gpa, buf, len);
	}
	memo_push(st, gpa, hpa, rights);
	if (host && len == 8 && !(gpa & 7)) {
		/* hostmem_load's, its checks made: an aligned word of an allocated page. */
		uint64_t v = __atomic_load_n((const uint64_t *)(host + (gpa & (VMMU_PAGE_SIZE - 1))),
					     __ATOMIC_ACQUIRE);

		memcpy(buf, &v, 8);
		return 0;
	}
	return hostmem_read(st->tdp->arena, hpa | (gpa & (VMMU_PAGE_SIZE - 1)), buf, len);
}

VMMU_HOT
static int nested_cmpxchg(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	struct nested_state *st = opaque;
	const struct nested_memo *m = memo_find(st, gpa);
	struct tdp_result tr;
	hpa_t hpa;
	int err;

	if (m) {
		/* EPT without A/D translated the read as a read: the update needs W too. */
		if (!tdp_check_access(st->tdp, m->rights, PFERR_WRITE, &tr))
			return stash_exit(st, gpa, &tr, false);
		hpa = m->hpa | (gpa & (VMMU_PAGE_SIZE - 1));
	} else {
		/* The walker only swaps entries it read: never here. A full walk keeps it right. */
		err = nested_translate(st, gpa, st->table_access | PFERR_WRITE, true, &tr);
		if (err)
			return err;
		if (tr.status != TDP_OK)
			return stash_exit(st, gpa, &tr, false);
		hpa = tr.hpa;
	}
	err = host_mem_ops.cmpxchg(st->tdp->arena, hpa, old, val, len);
	if (err == -EAGAIN)
		st->nmemo = 0;  /* the walker starts over and re-reads (and re-translates) each entry */
	return err;
}

static const struct guest_mem_ops nested_mem_ops = {
	.read = nested_read,
	.cmpxchg = nested_cmpxchg,
};

/* The 2-D walk's own instance of the walker (walk_tmpl.h), nested_walk64_addr, for 4- and
 * 5-level guests: its reads call nested_read directly and inline its nested TLB hit, where
 * through ops->read every entry of every walk was two calls and a translation result built and
 * copied. The other guest modes walk through paging_walk. */
#define PTTYPE 64
#define WALK_INSTANCE nested_
#define WALK_READ(ops, opaque, gpa, buf, len) nested_read(opaque, gpa, buf, len)
#include "paging/walk_tmpl.h"
#undef WALK_INSTANCE
#undef PTTYPE

/* How the nested walk sees a guest table access (nested.h). */
static unsigned table_access(const struct tdp_ctx *c)
{
	if (c->fmt == TDP_NPT || c->ad)
		return PFERR_WRITE;
	return 0;
}

/* Fill @r with the exit for nested walk @tr of @gpa; @final: the final access, else a guest
 * table access. */
static void set_exit(const struct tdp_ctx *c, const struct tdp_result *tr, gpa_t gpa, bool final,
		     struct nested_result *r)
{
	r->gpa = gpa;
	r->tdp = *tr;
	r->table_fault = !final;
	if (c->fmt == TDP_NPT) {
		r->status = NESTED_NPF;
		r->exit_qual = tr->qual | (final ? NPF_INFO_FINAL : NPF_INFO_TABLE);
		return;
	}
	if (tr->status == TDP_MISCONFIG) {
		r->status = NESTED_EPT_MISCONFIG;
		r->exit_qual = 0;       /* the SDM leaves it undefined; keep it defined */
		return;
	}
	r->status = NESTED_EPT_VIOLATION;
	r->exit_qual = tr->qual | EPT_QUAL_GVA_VALID;
	if (final)
		r->exit_qual |= EPT_QUAL_GVA_TRANSLATED;
	else if (c->ad)
		/* SDM: a table access treated as a write sets both bit 0 and bit 1. */
		r->exit_qual |= EPT_QUAL_READ | EPT_QUAL_WRITE;
}

VMMU_HOT
int nested_walk(const struct paging_ctx *guest, const struct tdp_ctx *tdp, struct nested_tlb *ntlb,
		struct nested_wcache *wc, gva_t gva, unsigned access, struct nested_result *r)
{
	struct nested_state st;
	int err = 0;

	if (!r)
		return -EINVAL;
	/*
	 * Field by field, not memset: this runs on every TLB miss of a nested mode, and the two
	 * memsets of result and state (rep stos, 600 bytes) were 60% of walk_nested's time. The
	 * result's every field is defined but the guest walk's pte_gpa[] outside top_level..level,
	 * which paging.h says are not valid; the memo ring beyond nmemo is never read.
	 */
	r->status = NESTED_OK;
	r->gva = gva;
	r->gpa = r->hpa = 0;
	r->page_shift = r->access = r->tdp_rights = 0;
	r->pf_ec = 0;
	r->exit_qual = 0;
	r->table_fault = false;
	r->refs = r->guest_refs = r->nested_refs = 0;
	r->tdp = (struct tdp_result){ .status = TDP_OK };
	for (int l = 0; l <= PT_MAX_LEVELS; l++)
		r->guest.gpte[l] = 0;
	if (!guest || !tdp)
		return -EINVAL;
	st.tdp = tdp;
	st.ntlb = ntlb;
	st.wc = wc && wc->gen ? wc : NULL;
	st.gen = st.wc ? __atomic_load_n(wc->gen, __ATOMIC_ACQUIRE) : 0;
	st.table_access = table_access(tdp) | (access & WALK_NO_AD);
	st.table_need = tdp_needed(st.table_access);
	st.read_wc = !ntlb && st.wc && !st.wc->verify ? st.wc : NULL;
	st.refs = 0;
	st.nmemo = 0;
	st.exit = st.exit_in_read = false;
	st.exit_gpa = 0;

	const enum paging_mode mode = paging_mode_of(guest);
	if (mode >= PAGING_4LVL && paging_canonical(gva, mode))
		nested_walk64_addr(guest, &nested_mem_ops, &st, gva, access, NULL, &r->guest);
	else
		paging_walk(guest, &nested_mem_ops, &st, gva, access, &r->guest);
	r->guest_refs = r->guest.refs;

	switch (r->guest.status) {
	case WALK_OK:
		break;
	case WALK_PF:
		r->status = NESTED_GUEST_PF;
		r->pf_ec = r->guest.ec;
		goto out;
	case WALK_GP:
		r->status = NESTED_GUEST_GP;
		goto out;
	case WALK_ABORT:
		if (!st.exit) {
			err = r->guest.abort_err;
			goto out;
		}
		/* The walker counted the read whose gpa could not be translated. */
		if (st.exit_in_read && r->guest_refs)
			r->guest_refs--;
		set_exit(tdp, &st.exit_tdp, st.exit_gpa, false, r);
		goto out;
	}

	err = nested_translate(&st, r->guest.gpa, access & (PFERR_WRITE | PFERR_FETCH | WALK_NO_AD),
			       false, &r->tdp);
	if (err)
		goto out;
	if (r->tdp.status != TDP_OK) {
		set_exit(tdp, &r->tdp, r->guest.gpa, true, r);
		goto out;
	}
	r->status = NESTED_OK;
	r->gpa = r->guest.gpa;
	r->hpa = r->tdp.hpa;
	r->page_shift = r->guest.page_shift < r->tdp.page_shift ? r->guest.page_shift
								 : r->tdp.page_shift;
	r->access = r->guest.access;
	r->tdp_rights = r->tdp.rights;
out:
	r->nested_refs = st.refs;
	r->refs = r->guest_refs + r->nested_refs;
	return err;
}
