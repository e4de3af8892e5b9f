/* SPDX-License-Identifier: MIT */
/*
 * The soft MMU's audit: the Isolation invariant (docs/architecture.md) over every shadow table, and the
 * invariants of shadow.h that it rests on. Returns 0, or -EFAULT with the first violation in
 * @why. Callable at any time; meant for tests (after each step) and `vmmu run --audit`.
 *
 * Two phases, because guest memory and host mappings must not be read under mmu_lock (lock
 * order, shadow.h):
 *   1. under mmu_lock: the structure (hash, LRU and counts; frames; parents and links; rmap and
 *      leaves; write tracking; root references; MMIO spte format) is checked, and every spte
 *      whose check needs guest memory or the host mapping is recorded;
 *   2. unlocked, in a memslot read section: each record against the guest entry it shadows now
 *      (8 bytes, or for a 32-bit table's sp the 4-byte entry of its quadrant: role_gpte_index)
 *      and the host page that backs its gfn now (host_hva_lookup: nothing is faulted in).
 * If anything changed meanwhile (the MMU's change count, shadow_changes; the invalidation sequence;
 * the memslot generation), phase 2's findings are void and the audit starts over (a few times,
 * then -EAGAIN).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "mmu/shadow.h"

enum rec_kind { REC_LEAF, REC_LINK, REC_MMIO, REC_NONPRESENT };

struct audit_rec {
	enum rec_kind kind;
	gfn_t sp_gfn;              /* the sp holding the spte */
	union sp_role role;        /* its role */
	unsigned idx;              /* the spte's index */
	uint64_t spte;
	gfn_t gfn;                 /* leaf, MMIO: the gfn mapped; link: the child's gfn */
	union sp_role child_role;  /* link */
	bool child_writable;       /* link to a direct sp: a writable leaf below it */
	bool unsync;               /* leaf of an unsync sp: the guest entry may differ */
};

struct audit {
	struct shadow_mmu *sm;
	char *why;
	size_t whylen;
	struct audit_rec *rec;
	size_t n, cap;
	bool oom;
};

__attribute__((format(printf, 2, 3)))
static int fail(struct audit *a, const char *fmt, ...)
{
	va_list ap;

	if (a->why && a->whylen) {
		va_start(ap, fmt);
		vsnprintf(a->why, a->whylen, fmt, ap);
		va_end(ap);
	}
	return -EFAULT;
}

static void record(struct audit *a, const struct audit_rec *r)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 256;
		struct audit_rec *nr = realloc(a->rec, cap * sizeof(*nr));
		if (!nr) {
			a->oom = true;
			return;
		}
		a->rec = nr;
		a->cap = cap;
	}
	a->rec[a->n++] = *r;
}

#define SPF(sp) (uint64_t)(sp)->gfn, (int)(sp)->role.level, (sp)->role.word

/* Any writable leaf under direct sp @sp (a guest large page's sptes). [L] */
static bool direct_subtree_writable(struct shadow_mmu *sm, const struct shadow_page *sp)
{
	for (unsigned i = 0; i < SPTE_ENTRIES; i++) {
		uint64_t s = spte_read(&sp->spt[i]);
		if (!is_shadow_present_pte(s))
			continue;
		if (is_last_spte(s, sp->role.level)) {
			if (is_writable_pte(s))
				return true;
		} else {
			struct shadow_page *c = pfn_to_sp(sm, spte_to_pfn(s));
			if (c && direct_subtree_writable(sm, c))
				return true;
		}
	}
	return false;
}

static unsigned root_refs(struct shadow_mmu *sm, const struct shadow_page *sp)
{
	unsigned n = 0;

	struct shadow_vcpu *sv;

	cds_list_for_each_entry(sv, &sm->vcpus, link) {
		if (sp->role.passthrough) {      /* the vCPU's PAE root pages: its own */
			n += sv->pae_pml4 == sp || sv->pae_pdpt == sp;
			continue;
		}
		n += sv->root == sp;
		for (unsigned i = 0; i < SHADOW_PREV_ROOTS; i++)
			n += sv->prev[i] == sp;
	}
	return n;
}

/* Is any gfn of the range of a leaf at @level beginning at @gfn write-tracked? [L] */
static bool range_tracked(struct shadow_mmu *sm, gfn_t gfn, int level)
{
	return level == 1 ? gfn_write_tracked(sm, gfn) : shadow_lpage_level(sm, gfn, level, false) < level;
}

/* @leaves[level]: the leaves found, by level (1-3). */
static int check_sp_sptes(struct audit *a, struct shadow_page *sp, uint64_t *leaves)
{
	struct shadow_mmu *sm = a->sm;
	const int level = sp->role.level;

	for (unsigned i = 0; i < SPTE_ENTRIES; i++) {
		uint64_t *sptep = &sp->spt[i];
		uint64_t s = spte_read(sptep);

		if (s == sm->trap_spte)
			continue;                  /* empty (notrap: not yet shadowed, trapping) */
		struct audit_rec r = { .sp_gfn = sp->gfn, .role = sp->role, .idx = i, .spte = s };
		if (!s) {
			/* notrap: truly non-present, only where the guest entry is checked not present
			 * and the hardware's error code is the guest's. */
			if (sp->invalid || !sp_notrap_ok(sm, sp))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: spte %u truly "
					    "non-present where it must trap", SPF(sp), i);
			r.kind = REC_NONPRESENT;
			record(a, &r);
			continue;
		}
		if (sp->invalid)
			return fail(a, "invalid sp gfn %#" PRIx64 " level %d role %#x: spte %u present",
				    SPF(sp), i);
		if (is_mmio_spte(s)) {
			if (level != 1 || !sm->mmu.fmt.mmio_value ||
			    (s & ~SPTE_MMIO_GEN_MASK) != make_mmio_spte(&sm->mmu.fmt, mmio_spte_gfn(s), 0))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: malformed MMIO spte "
					    "%u = %#" PRIx64, SPF(sp), i, s);
			r.kind = REC_MMIO;
			r.gfn = mmio_spte_gfn(s);
			record(a, &r);
			continue;
		}
		if (!(s & PT_PRESENT_MASK) || !is_shadow_present_pte(s))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: spte %u = %#" PRIx64
				    " not present but not zero", SPF(sp), i, s);
		if (s & SPTE_RSVD_51)
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: spte %u = %#" PRIx64
				    " has a reserved bit", SPF(sp), i, s);
		if (!host_pfn_valid(sm->mmu.env.arena, spte_to_pfn(s)))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: spte %u = %#" PRIx64
				    " maps a frame not allocated", SPF(sp), i, s);
		if ((s & PT_PAGE_SIZE_MASK) && (level > 3 || sp->role.passthrough))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: large spte %u",
				    SPF(sp), i);
		if (!is_last_spte(s, level)) {
			struct shadow_page *c = pfn_to_sp(sm, spte_to_pfn(s));
			if (!c || c->invalid)
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: link %u = %#" PRIx64
					    " to no valid sp", SPF(sp), i, s);
			if (c->role.level != level - 1 || !sptep_vec_has(&c->parents, sptep))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: link %u to sp gfn %#"
					    PRIx64 " level %d role %#x without its parent link",
					    SPF(sp), i, SPF(c));
			const uint64_t link = sm->mmu.fmt.table_bits & ~PT_ACCESSED_MASK;
			if ((s & link) != link || (s & PT64_NX_MASK))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: link %u = %#" PRIx64
					    " restricts rights", SPF(sp), i, s);
			/* A flush syncs what the marks lead to: one missing would leave an unsync
			 * sp stale past the guest's flush. */
			if ((c->unsync || c->unsync_children) &&
			    !(sp->unsync_child_bitmap[i / 64] & (1ULL << (i % 64))))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: link %u leads to "
					    "unsync sps, unmarked", SPF(sp), i);
			if (sp->role.passthrough) {
				/* A PAE root page: its PML4 entry links its PDPT page, its PDPT entries
				 * the PD sps of the PDPTE registers (checked when loaded). */
				if ((level == 4 && !c->role.passthrough) ||
				    (level == 3 && ((!c->role.pae && !c->role.has_4_byte_gpte) ||
						    c->role.direct)))
					return fail(a, "PAE root page level %d: link %u to sp gfn %#" PRIx64
						    " level %d role %#x", level, i, SPF(c));
				continue;
			}
			if (sp->role.direct) {
				union sp_role want = sp->role;
				want.level = level - 1;
				if (!c->role.direct || c->role.word != want.word ||
				    c->gfn != sp->gfn + ((gfn_t)i << (9 * (level - 1))))
					return fail(a, "direct sp gfn %#" PRIx64 " level %d role %#x: link %u to "
						    "sp gfn %#" PRIx64 " level %d role %#x, not its range",
						    SPF(sp), i, SPF(c));
				continue;
			}
			r.kind = REC_LINK;
			r.gfn = c->gfn;
			r.child_role = c->role;
			r.child_writable = c->role.direct && direct_subtree_writable(sm, c);
			record(a, &r);
			continue;
		}
		/* A leaf (a large one: its first gfn, aligned, in that gfn's rmap). */
		gfn_t gfn = sp_leaf_gfn(sp, i);
		leaves[level]++;
		if (!rmap_has(gfn_rmap(sm, gfn), sptep))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: leaf %u (gfn %#" PRIx64
				    ") not in its rmap", SPF(sp), i, (uint64_t)gfn);
		if (gfn & (spte_level_pages(level) - 1) ||
		    spte_to_pfn(s) & (spte_level_pages(level) - 1))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: large leaf %u = %#" PRIx64
				    " for gfn %#" PRIx64 " not aligned", SPF(sp), i, s, (uint64_t)gfn);
		if (level == 3) {
			struct gfn_gig *g = gfn_gig_find(sm, gfn);
			if (!g)
				return fail(a, "1G leaf %u of sp gfn %#" PRIx64 " level %d role %#x "
					    "not counted in its GiB", i, SPF(sp));
			g->audit_leaves++;
		}
		bool tracked = range_tracked(sm, gfn, level);
		if ((s & SPTE_MMU_WRITABLE) && tracked)
			return fail(a, "gfn %#" PRIx64 " (level %d) is write-tracked but leaf %u of sp "
				    "gfn %#" PRIx64 " level %d role %#x is MMU-writable", (uint64_t)gfn,
				    level, i, SPF(sp));
		if (is_writable_pte(s)) {
			if (tracked)
				return fail(a, "gfn %#" PRIx64 " (level %d) is write-tracked but leaf %u "
					    "of sp gfn %#" PRIx64 " level %d role %#x maps it writable",
					    (uint64_t)gfn, level, i, SPF(sp));
			if ((s & (SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE)) !=
			    (SPTE_HOST_WRITABLE | SPTE_MMU_WRITABLE))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: writable leaf %u "
					    "without host/MMU-writable", SPF(sp), i);
		}
		if (sp->role.direct) {
			unsigned acc = sp->role.access;
			if (((s & PT_USER_MASK) && !(acc & ACC_USER)) ||
			    (!(s & PT64_NX_MASK) && !(acc & ACC_EXEC)) ||
			    (is_writable_pte(s) && !(acc & ACC_WRITE) &&
			     (sp->role.cr0_wp || (s & PT_USER_MASK))))
				return fail(a, "direct sp gfn %#" PRIx64 " level %d role %#x: leaf %u = %#"
					    PRIx64 " wider than its role", SPF(sp), i, s);
		}
		r.kind = REC_LEAF;
		r.gfn = gfn;
		/* An unsync sp's leaves may lag its guest table until the guest flushes: only the
		 * frame and the slot are checked (below, unlocked), not the guest entry. */
		r.unsync = sp->unsync;
		record(a, &r);
	}
	return 0;
}

/* Phase 1. [L] */
/* One gfn's state (its entry in chunk @c): its write-tracking count is the indirect sps shadowing
 * it, its rmap entries are leaves mapping it. [L] */
static int audit_gfn(struct audit *a, const struct gfn_chunk *c, gfn_t gfn, uint64_t *tracked,
		     uint64_t *rmaps)
{
	struct shadow_mmu *sm = a->sm;
	const unsigned idx = gfn & (SPTE_ENTRIES - 1);
	const uintptr_t head = c->rmap[idx];
	const uint32_t wt = c->write_track[idx];
	struct hnode *h;
	uint32_t k = 0;

	htab_for_each_key(&sm->sp_hash, h, gfn) {
		struct shadow_page *s = caa_container_of(h, struct shadow_page, hash);
		k += !s->role.direct && !s->unsync;
	}
	if (k != wt)
		return fail(a, "gfn %#" PRIx64 ": write_track %u, %u sps shadow it", (uint64_t)gfn, wt, k);
	*tracked += wt;
	if ((head & 1) && rmap_count(head) < 2)
		return fail(a, "gfn %#" PRIx64 ": an rmap of %u entries kept out of line", (uint64_t)gfn,
			    rmap_count(head));
	for (uint32_t i = 0, n = rmap_count(head); i < n; i++) {
		uint64_t *sptep = rmap_at(head, i);
		struct shadow_page *sp = sptep_to_sp(sm, sptep);
		uint64_t s = spte_read(sptep);
		if (!sp || sp->invalid || sp->role.level > 3 || !is_shadow_present_pte(s) ||
		    !is_last_spte(s, sp->role.level) || sp_leaf_gfn(sp, sptep_index(sptep)) != gfn)
			return fail(a, "gfn %#" PRIx64 ": rmap entry %u is not a leaf mapping it",
				    (uint64_t)gfn, i);
		for (uint32_t j = 0; j < i; j++)
			if (rmap_at(head, j) == sptep)
				return fail(a, "gfn %#" PRIx64 ": rmap entry %u twice", (uint64_t)gfn, i);
	}
	*rmaps += rmap_count(head);
	return 0;
}

/* One chunk (2 MiB of gfns from @base): every gfn's state, the counts of used and tracked gfns
 * (what keeps a large leaf there read-only), and no empty chunk kept. [L] */
static int audit_chunk(struct audit *a, struct gfn_gig *g, const struct gfn_chunk *c, gfn_t base,
		       uint64_t *tracked, uint64_t *rmaps)
{
	uint32_t used = 0, wt = 0;
	int rc;

	for (unsigned i = 0; i < SPTE_ENTRIES; i++) {
		if (!gfn_used(c, i))
			continue;
		used++;
		wt += c->write_track[i] != 0;
		rc = audit_gfn(a, c, base + i, tracked, rmaps);
		if (rc)
			return rc;
	}
	if (used != c->used || wt != c->lpage_track || !used)
		return fail(a, "2 MiB at gfn %#" PRIx64 ": used %u, lpage_track %u; %u gfns mapped or "
			    "tracked, %u tracked", (uint64_t)base, c->used, c->lpage_track, used, wt);
	g->audit_tracked += wt;
	return 0;
}

static int audit_locked(struct audit *a)
{
	struct shadow_mmu *sm = a->sm;
	uint64_t nsps = 0, nlru = 0, indirect = 0, tracked = 0, leaves[4] = { 0 }, rmaps = 0;
	uint64_t with_gptes = 0, helpers = 0;
	struct gfn_chunk *c;
	struct gfn_gig *g;
	struct mmu_stats st;
	int rc;

	struct cds_list_head *l;
	struct shadow_vcpu *sv;

	cds_list_for_each(l, &sm->lru)
		nlru++;
	for (gfn_t b = 0; (g = gfn_gig_next(sm, &b, ~0ULL)); b += 1ULL << GIG_SHIFT)
		g->audit_tracked = g->audit_leaves = 0;
	/* Every sp, valid and invalid, is in sp_by_pfn. */
	for (uint64_t b = 0; b <= sm->sp_by_pfn.mask; b++) {
		for (struct hnode *n = sm->sp_by_pfn.b[b]; n; n = n->next) {
			struct shadow_page *sp = caa_container_of(n, struct shadow_page, by_pfn);
			unsigned refs = root_refs(sm, sp);

			if (sp->pfn != n->key || !host_pfn_valid(sm->mmu.env.arena, sp->pfn) ||
			    sp->spt != host_pfn_to_ptr(sm->mmu.env.arena, sp->pfn))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: bad frame %#" PRIx64,
					    SPF(sp), (uint64_t)sp->pfn);
			if (sp->role.level < 1 || sp->role.level > 5 ||
			    (sp->unsync && (sp->role.level != 1 || sp->root_count || !sp->unsync_gpt)))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: bad role", SPF(sp));
			/* 32-bit tables: a PD is four sps, a PT two; no NX, no keys, no PAE. The
			 * format bits mean nothing to a direct sp, which has none. */
			union sp_role r = sp->role;
			if ((r.has_4_byte_gpte &&
			     (r.level > 2 || r.direct || r.pae || r.efer_nx || r.pke_andnot_wp ||
			      r.quadrant >= (r.level == 2 ? 4u : 2u))) ||
			    (!r.has_4_byte_gpte && (r.quadrant || r.cr4_pse)))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: bad 32-bit role",
					    SPF(sp));
			if (refs != sp->root_count)
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: root_count %u, %u "
					    "references", SPF(sp), sp->root_count, refs);
			if (sp->invalid) {
				if (!sp->root_count || sp->parents.n)
					return fail(a, "invalid sp gfn %#" PRIx64 " level %d role %#x kept "
						    "without a root reference, or linked", SPF(sp));
			} else if (sp->role.passthrough) {
				helpers++;
			} else {
				nsps++;
				with_gptes += !sp->role.direct;
				if (!sp->role.direct && !sp->unsync)
					indirect++;
			}
			for (uint32_t i = 0; i < sp->parents.n; i++) {
				uint64_t *p = sp->parents.v[i];
				struct shadow_page *psp = sptep_to_sp(sm, p);
				uint64_t s = spte_read(p);
				if (!psp || psp->invalid || psp->role.level != sp->role.level + 1 ||
				    !is_shadow_present_pte(s) || spte_to_pfn(s) != sp->pfn)
					return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: parent link %u "
						    "does not point here", SPF(sp), i);
				for (uint32_t j = 0; j < i; j++)
					if (sp->parents.v[j] == p)
						return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: parent %u "
							    "twice", SPF(sp), i);
			}
			unsigned marks = 0;
			for (unsigned w = 0; w < SPTE_ENTRIES / 64; w++)
				marks += (unsigned)__builtin_popcountll(sp->unsync_child_bitmap[w]);
			if (marks != sp->unsync_children || (sp->role.level == 1 && marks))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: %u unsync-child "
					    "marks, count %u", SPF(sp), marks, sp->unsync_children);
			if (pfn_to_sp(sm, sp->pfn) != sp)
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: its frame's "
					    "private word does not point back", SPF(sp));
			rc = check_sp_sptes(a, sp, leaves);
			if (rc)
				return rc;
		}
	}
	/* shadow_pages and pages_4k/2m/1g change only under mmu_lock, held here. */
	mmu_get_stats(&sm->mmu, &st);
	if (nsps != sm->nr_sps || nsps != sm->sp_hash.n || nsps != nlru || helpers != sm->nr_helpers ||
	    nsps + helpers != st.shadow_pages)
		return fail(a, "accounting: %" PRIu64 " valid sps and %" PRIu64 " PAE root pages, nr_sps %"
			    PRIu64 ", hash %" PRIu64 ", LRU %" PRIu64 ", shadow_pages %" PRIu64, nsps,
			    helpers, sm->nr_sps, sm->sp_hash.n, nlru, st.shadow_pages);
	/* The hash holds exactly the valid sps (each found under its own gfn). */
	for (uint64_t b = 0; b <= sm->sp_hash.mask; b++)
		for (struct hnode *n = sm->sp_hash.b[b]; n; n = n->next) {
			struct shadow_page *sp = caa_container_of(n, struct shadow_page, hash);
			if (sp->invalid || n->key != sp->gfn || pfn_to_sp(sm, sp->pfn) != sp)
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: hashed wrongly",
					    SPF(sp));
		}
	/* Write tracking: each gfn counts exactly the indirect sps shadowing it; each chunk and
	 * GiB, its tracked gfns. */
	for (gfn_t b = 0; (c = gfn_chunk_next(sm, &b, ~0ULL)); b += SPTE_ENTRIES) {
		rc = audit_chunk(a, gfn_gig_find(sm, b), c, b, &tracked, &rmaps);
		if (rc)
			return rc;
	}
	for (gfn_t b = 0; (g = gfn_gig_next(sm, &b, ~0ULL)); b += 1ULL << GIG_SHIFT) {
		if (g->tracked != g->audit_tracked || g->leaves != g->audit_leaves)
			return fail(a, "GiB %#" PRIx64 ": %u tracked gfns and %u 1G leaves counted, "
				    "%u and %u found", (uint64_t)(b >> GIG_SHIFT), g->tracked, g->leaves,
				    g->audit_tracked, g->audit_leaves);
	}
	if (tracked != indirect)
		return fail(a, "write tracking counts %" PRIu64 " sps, %" PRIu64 " indirect sps",
			    tracked, indirect);
	if (with_gptes != sm->nr_indirect)
		return fail(a, "nr_indirect %" PRIu64 ", %" PRIu64 " valid sps shadow guest tables",
			    sm->nr_indirect, with_gptes);
	if (rmaps != leaves[1] + leaves[2] + leaves[3] || leaves[1] != st.pages_4k ||
	    leaves[2] != st.pages_2m || leaves[3] != st.pages_1g ||
	    leaves[2] + leaves[3] != sm->nr_large)
		return fail(a, "accounting: %" PRIu64 "/%" PRIu64 "/%" PRIu64 " leaves 4K/2M/1G, %"
			    PRIu64 " rmap entries, pages_4k/2m/1g %" PRIu64 "/%" PRIu64 "/%" PRIu64
			    ", nr_large %" PRIu64, leaves[1], leaves[2], leaves[3], rmaps,
			    st.pages_4k, st.pages_2m, st.pages_1g, sm->nr_large);
	/* Every vCPU root is alive. */
	cds_list_for_each_entry(sv, &sm->vcpus, link) {
		if (sv->root && (pfn_to_sp(sm, sv->root->pfn) != sv->root ||
				 sv->root->role.level != sv->root_levels))
			return fail(a, "a vCPU's root is not a live sp of its level");
	}
	return 0;
}

/* The guest entry spte @idx of an sp of @role shadows in guest table @gfn (4 or 8 bytes),
 * read without faulting anything in. Inside a read section. False if the table has no memory
 * behind it. */
static bool read_gpte(struct shadow_mmu *sm, gfn_t gfn, union sp_role role, unsigned idx,
		      uint64_t *gpte)
{
	const struct memslot *slot = gfn_to_memslot(sm->mmu.env.slots, gfn);
	pfn_t pfn;

	if (!slot || host_hva_lookup(sm->mmu.env.mm, slot_gfn_to_hva(slot, gfn), &pfn, NULL))
		return false;
	*gpte = gpt_read(host_pfn_to_ptr(sm->mmu.env.arena, pfn), role.has_4_byte_gpte ? 4 : 8,
			 role_gpte_index(role, idx));
	return true;
}

static int check_rec(struct audit *a, const struct audit_rec *r, uint64_t mgen)
{
	struct shadow_mmu *sm = a->sm;
	const int level = r->role.level;
	uint64_t gpte = 0;

	if (r->kind == REC_NONPRESENT) {
		if (!read_gpte(sm, r->sp_gfn, r->role, r->idx, &gpte))
			return fail(a, "sp gfn %#" PRIx64 " level %d: spte %u non-present for a table "
				    "with no memory", (uint64_t)r->sp_gfn, level, r->idx);
		if (gpte & PT_PRESENT_MASK)
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: spte %u truly non-present "
				    "but the guest entry %#" PRIx64 " is present (a stale no-trap entry)",
				    (uint64_t)r->sp_gfn, level, r->role.word, r->idx, gpte);
		return 0;
	}
	if (r->kind == REC_MMIO) {
		if (mmio_spte_current(r->spte, mgen) &&
		    gfn_to_memslot(sm->mmu.env.slots, r->gfn))
			return fail(a, "sp gfn %#" PRIx64 " level %d: current MMIO spte %u for gfn %#" PRIx64
				    ", which a memslot holds", (uint64_t)r->sp_gfn, level, r->idx,
				    (uint64_t)r->gfn);
		return 0;
	}

	/* The guest entry this spte shadows (indirect sps). */
	bool indirect = !r->role.direct && !r->unsync;
	if (indirect) {
		if (!read_gpte(sm, r->sp_gfn, r->role, r->idx, &gpte))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: spte %u shadows a table "
				    "with no memory", (uint64_t)r->sp_gfn, level, r->role.word, r->idx);
		if (!(gpte & PT_PRESENT_MASK) || !(gpte & PT_ACCESSED_MASK) ||
		    (gpte & sp_gpte_rsvd(&sm->mmu.env.cpu, r->role, level, gpte)))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: spte %u = %#" PRIx64
				    " but the guest entry %#" PRIx64 " allows no translation",
				    (uint64_t)r->sp_gfn, level, r->role.word, r->idx, r->spte, gpte);
	}
	unsigned allowed = indirect ? r->role.access & gpte_access64(gpte, r->role.efer_nx) : 0;

	if (r->kind == REC_LINK) {
		bool large = gpte_is_large(r->role, level, gpte);
		/* The child a link from this entry must be: the parent's role, one level down,
		 * the rights of the entries above; a 32-bit page table's half (spte 2k links the
		 * lower 2 MiB of PDE k's 4 MiB, 2k+1 the upper). */
		union sp_role want_child = r->role;
		want_child.level = (unsigned)(level - 1);
		want_child.access = allowed;
		if (r->role.has_4_byte_gpte)
			want_child.quadrant = r->idx & 1;
		if (r->child_role.direct) {
			unsigned shift = 12 + 9 * (unsigned)(level - 1);
			gfn_t base = (gpte & rsvd_bits((int)shift, 51)) >> 12;
			if (r->role.has_4_byte_gpte)
				base = gpte32_large_gfn(gpte) + (r->idx & 1) * SPTE_ENTRIES;
			/* Clean: no write access; dirty with CR0.WP=0: write access (the supervisor
			 * may write it). A page the MMU's own walk made dirty may still be linked to
			 * the clean sp (narrower): the next write fault relinks it. */
			unsigned want = !(gpte & PT_DIRTY_MASK) ? allowed & ~ACC_WRITE
				      : r->role.cr0_wp ? allowed : allowed | ACC_WRITE;
			if (!large || (level != 2 && level != 3) || base != r->gfn ||
			    (r->child_role.access != want &&
			     r->child_role.access != (want & ~ACC_WRITE)) ||
			    r->child_role.guest_global != !!(gpte & PT_GLOBAL_MASK) ||
			    r->child_role.guest_pkey != ((gpte >> 59) & 0xf) ||
			    (r->child_writable && !(gpte & PT_DIRTY_MASK)))
				return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: link %u to direct sp "
					    "gfn %#" PRIx64 " role %#x, guest entry %#" PRIx64,
					    (uint64_t)r->sp_gfn, level, r->role.word, r->idx,
					    (uint64_t)r->gfn, r->child_role.word, gpte);
		} else if (large || ((gpte & rsvd_bits(12, 51)) >> 12) != r->gfn ||
			   r->child_role.word != want_child.word) {
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: link %u to sp gfn %#"
				    PRIx64 " role %#x, guest entry %#" PRIx64, (uint64_t)r->sp_gfn,
				    level, r->role.word, r->idx, (uint64_t)r->gfn, r->child_role.word,
				    gpte);
		}
		return 0;
	}

	/* A leaf: no wider than the guest entry (a large one: a guest large page of its size,
	 * or for a 32-bit 4 MiB page the 2 MiB half the spte stands for)... */
	const uint64_t s = r->spte;
	if (indirect) {
		bool w_ok = (allowed & ACC_WRITE) || (!r->role.cr0_wp && !(s & PT_USER_MASK));
		gfn_t want = (gpte & rsvd_bits(12, 51)) >> 12;
		if (level > 1)
			want = r->role.has_4_byte_gpte ?
			       gpte32_large_gfn(gpte) + (r->idx & 1) * SPTE_ENTRIES :
			       (gpte & rsvd_bits(12 + 9 * (level - 1), 51)) >> 12;
		if (want != r->gfn || (level > 1 && !gpte_is_large(r->role, level, gpte)) ||
		    ((s & PT_USER_MASK) && !(allowed & ACC_USER)) ||
		    (!(s & PT64_NX_MASK) && !(allowed & ACC_EXEC)) ||
		    ((s & (PT_WRITABLE_MASK | SPTE_MMU_WRITABLE)) &&
		     (!w_ok || !(gpte & PT_DIRTY_MASK))) ||
		    ((s & PT_GLOBAL_MASK) && !(gpte & PT_GLOBAL_MASK)) ||
		    ((s & SPTE_PKEY_MASK) != (gpte & SPTE_PKEY_MASK)))
			return fail(a, "sp gfn %#" PRIx64 " level %d role %#x: leaf %u = %#" PRIx64
				    " wider than the guest entry %#" PRIx64, (uint64_t)r->sp_gfn,
				    level, r->role.word, r->idx, s, gpte);
	}
	/* ...mapping the frame that backs its gfn now, as the memslot allows; a large leaf: the
	 * first frame of a host page at least as large (aligned: the leaf's range is that page),
	 * its range inside the slot. */
	const struct memslot *slot = gfn_to_memslot(sm->mmu.env.slots, r->gfn);
	pfn_t pfn;
	unsigned order = 0;
	bool host_w = false;
	if (!slot || r->gfn + spte_level_pages(level) > slot_end_gfn(slot))
		return fail(a, "leaf %u of sp gfn %#" PRIx64 " level %d maps gfn %#" PRIx64
			    ", in no memslot (or beyond its end)", r->idx, (uint64_t)r->sp_gfn, level,
			    (uint64_t)r->gfn);
	if (host_hva_lookup_order(sm->mmu.env.mm, slot_gfn_to_hva(slot, r->gfn), &pfn, &order,
				  &host_w) ||
	    pfn != spte_to_pfn(s) || order < 9 * (unsigned)(level - 1))
		return fail(a, "leaf %u of sp gfn %#" PRIx64 " level %d maps gfn %#" PRIx64 " to pfn %#"
			    PRIx64 ", not the frame backing it", r->idx, (uint64_t)r->sp_gfn, level,
			    (uint64_t)r->gfn, (uint64_t)spte_to_pfn(s));
	/* A KSM frame: no writable spte, and none the fast page fault could make writable. */
	if (!host_w && (s & (PT_WRITABLE_MASK | SPTE_MMU_WRITABLE | SPTE_HOST_WRITABLE)))
		return fail(a, "gfn %#" PRIx64 ": spte %#" PRIx64 " maps KSM frame %#" PRIx64
			    " writable", (uint64_t)r->gfn, s, (uint64_t)pfn);
	if (is_writable_pte(s) && slot_is_readonly(slot))
		return fail(a, "gfn %#" PRIx64 " in a read-only slot mapped writable", (uint64_t)r->gfn);
	if (is_writable_pte(s) && slot_logs_dirty(slot) &&
	    (level > 1 || !slot_page_marked(slot, r->gfn)))
		return fail(a, "gfn %#" PRIx64 " mapped writable in a dirty-logging slot, not "
			    "marked dirty", (uint64_t)r->gfn);
	return 0;
}

#define AUDIT_TRIES 16

int shadow_audit(struct mmu *m, char *why, size_t whylen)
{
	struct shadow_mmu *sm = to_shadow(m);
	struct audit a = { .sm = sm, .why = why, .whylen = whylen };
	int rc = 0;

	if (why && whylen)
		why[0] = 0;
	for (int attempt = 0; attempt < AUDIT_TRIES; attempt++) {
		uint64_t changes, seq, mgen;

		a.n = 0;
		a.oom = false;
		brlock_write(&m->mmu_lock);
		rc = audit_locked(&a);
		changes = shadow_changes(sm);
		seq = __atomic_load_n(&m->invalidate_seq, __ATOMIC_ACQUIRE);
		mgen = memslots_generation(m->env.slots);
		bool busy = __atomic_load_n(&m->invalidate_in_progress, __ATOMIC_ACQUIRE);
		brlock_unlock(&m->mmu_lock);
		if (rc)
			goto out;
		if (a.oom) {
			rc = -ENOMEM;
			goto out;
		}
		if (busy || memslot_gen_in_progress(mgen))
			continue;

		vmmu_rcu_read_lock();
		for (size_t i = 0; !rc && i < a.n; i++)
			rc = check_rec(&a, &a.rec[i], mgen);
		vmmu_rcu_read_unlock();

		if (shadow_changes(sm) == changes &&
		    __atomic_load_n(&m->invalidate_seq, __ATOMIC_ACQUIRE) == seq &&
		    !__atomic_load_n(&m->invalidate_in_progress, __ATOMIC_ACQUIRE) &&
		    memslots_generation(m->env.slots) == mgen)
			goto out;
		rc = 0;   /* the tables moved under the check: its findings do not count */
	}
	rc = -EAGAIN;
	if (why && whylen)
		snprintf(why, whylen, "the soft MMU kept changing during the audit");
out:
	free(a.rec);
	return rc;
}
