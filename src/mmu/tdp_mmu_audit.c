/* SPDX-License-Identifier: MIT */
/*
 * The hard MMU's audit (ops->audit, vmmu_vm_audit): every table entry against the Isolation and
 * Accounting invariants of tdp_mmu.h, the first violation described.
 *
 * Locking: a lockless walk inside an RCU read section (tables stay allocated), comparing each
 * leaf with host_hva_lookup(), which takes the host mm's lock: mmu_lock may not be held for that
 * (the mm's lock comes first). So the audit is exact only while nothing changes the tables; it
 * waits for a quiet moment (no invalidation in progress, an even memslot generation), and if an
 * invalidation or a memslot change ran during the walk it walks again (a few times, then -EAGAIN).
 * Faults running meanwhile install correct entries, but the leaf counts may then be off by the
 * ones in flight: audit a VM whose vCPUs are stopped.
 */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>

#include "mmu/tdp_mmu.h"

#define AUDIT_ATTEMPTS 16

struct audit {
	struct tdp_mmu *t;
	char *why;
	size_t whylen;
	uint64_t gen;                 /* the memslot generation during the walk */
	uint64_t leaves[4];           /* present leaves by level */
	uint64_t tables;              /* table frames reached, root included */
	int rc;
};

static void fail(struct audit *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct audit *a, const char *fmt, ...)
{
	va_list ap;

	if (a->rc)
		return;
	a->rc = -EFAULT;
	if (!a->why || !a->whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(a->why, a->whylen, fmt, ap);
	va_end(ap);
}

/* Record a violation and leave the checking function. */
#define FAIL(a, ...)                                                                               \
	do {                                                                                       \
		fail((a), __VA_ARGS__);                                                            \
		return;                                                                            \
	} while (0)

static void audit_mmio(struct audit *a, uint64_t s, int level, gfn_t gfn)
{
	const struct tdp_mmu *t = a->t;

	if (level != 1)
		FAIL(a, "gfn %#" PRIx64 ": MMIO spte %#" PRIx64 " at level %d", gfn, s, level);
	if (!t->head.fmt.mmio_value || mmio_spte_gfn(s) != gfn ||
	    (s & ~SPTE_MMIO_GEN_MASK) != make_mmio_spte(&t->head.fmt, gfn, 0))
		FAIL(a, "gfn %#" PRIx64 ": malformed MMIO spte %#" PRIx64, gfn, s);
	if (gfn_to_memslot(t->head.env.slots, gfn) && mmio_spte_current(s, a->gen))
		fail(a, "gfn %#" PRIx64 ": MMIO spte of the current generation over a memslot", gfn);
}

static void audit_leaf(struct audit *a, uint64_t s, int level, gfn_t gfn)
{
	const struct tdp_mmu *t = a->t;
	const struct memslot *slot = gfn_to_memslot(t->head.env.slots, gfn);
	const bool w = is_writable_pte(s);
	const uint64_t sw = SPTE_MMU_PRESENT_MASK | SPTE_MMU_WRITABLE | SPTE_HOST_WRITABLE;
	pfn_t pfn;
	unsigned order = HOST_ORDER_4K;
	bool host_w = false;

	a->leaves[level]++;
	if (t->ctx.fmt == TDP_EPT) {
		if (tdp_ept_misconfigured(&t->ctx, s, level) ||
		    (s & (EPT_READABLE_MASK | EPT_EXECUTABLE_MASK)) !=
		    (EPT_READABLE_MASK | EPT_EXECUTABLE_MASK) ||
		    (s & ~(SPTE_EPT_HW_MASK | sw)))
			FAIL(a, "gfn %#" PRIx64 ": malformed EPT leaf %#" PRIx64, gfn, s);
	} else if (!(s & PT_USER_MASK) || (s & PT64_NX_MASK) ||
		   (s & ~(SPTE_X86_HW_MASK | sw))) {
		FAIL(a, "gfn %#" PRIx64 ": malformed NPT leaf %#" PRIx64, gfn, s);
	}
	if (!slot)
		FAIL(a, "gfn %#" PRIx64 ": leaf %#" PRIx64 " in no memslot", gfn, s);
	if (gfn + spte_level_pages(level) > slot_end_gfn(slot))
		FAIL(a, "gfn %#" PRIx64 ": a level-%d leaf beyond its slot", gfn, level);
	if (level > 1 && slot_logs_dirty(slot))
		FAIL(a, "gfn %#" PRIx64 ": a huge leaf in a dirty-logging slot", gfn);
	if (host_hva_lookup_order(t->head.env.mm, slot_gfn_to_hva(slot, gfn), &pfn, &order, &host_w))
		FAIL(a, "gfn %#" PRIx64 ": leaf maps pfn %#" PRIx64 " but the host maps nothing "
			    "at its hva", gfn, spte_to_pfn(s));
	if (pfn != spte_to_pfn(s))
		FAIL(a, "gfn %#" PRIx64 ": leaf maps pfn %#" PRIx64 ", the host pfn %#" PRIx64,
			    gfn, spte_to_pfn(s), pfn);
	/* A leaf larger than the host page under it would reach frames that back other hvas. */
	if (level > 1 + (int)order / 9)
		FAIL(a, "gfn %#" PRIx64 ": a level-%d leaf over a smaller host page (order %u)", gfn,
		     level, order);
	if (slot_is_readonly(slot) && (w || is_mmu_writable_spte(s)))
		FAIL(a, "gfn %#" PRIx64 ": writable leaf %#" PRIx64 " in a read-only slot", gfn, s);
	if (!host_w && (w || (s & (SPTE_MMU_WRITABLE | SPTE_HOST_WRITABLE))))
		FAIL(a, "gfn %#" PRIx64 ": leaf %#" PRIx64 " maps KSM frame %#" PRIx64 " writable",
		     gfn, s, pfn);
	if (!slot_is_readonly(slot) && host_w && !is_mmu_writable_spte(s))
		FAIL(a, "gfn %#" PRIx64 ": leaf %#" PRIx64 " of a writable slot lacks "
			    "MMU_WRITABLE", gfn, s);
	if (!!(s & SPTE_MMU_WRITABLE) != !!(s & SPTE_HOST_WRITABLE))
		FAIL(a, "gfn %#" PRIx64 ": leaf %#" PRIx64 ": MMU_WRITABLE without HOST_WRITABLE "
			    "or the reverse", gfn, s);
	if (w && slot_logs_dirty(slot) &&
	    __atomic_load_n(&t->dirty_mode, __ATOMIC_RELAXED) == TDP_DIRTY_WRPROT &&
	    !slot_page_marked(slot, gfn))
		fail(a, "gfn %#" PRIx64 ": writable while dirty logging, not marked dirty", gfn);
}

static void audit_table(struct audit *a, hpa_t table, int level, gfn_t base)
{
	const struct tdp_mmu *t = a->t;

	a->tables++;
	for (unsigned i = 0; i < SPTE_ENTRIES && !a->rc; i++) {
		uint64_t s = spte_read(&spte_table(t->ctx.arena, table)[i]);
		gfn_t gfn = base + i * spte_level_pages(level);
		const struct tdp_page *tp;

		if (!s)
			continue;
		if (is_mmio_spte(s)) {
			audit_mmio(a, s, level, gfn);
		} else if (!is_shadow_present_pte(s) || !tdp_is_present(&t->ctx, s)) {
			fail(a, "gfn %#" PRIx64 ": not-present garbage %#" PRIx64 " at level %d", gfn, s,
			     level);
		} else if (is_last_spte(s, level)) {
			audit_leaf(a, s, level, gfn);
		} else if ((s & ~(TDP_ADDR_MASK | t->head.fmt.accessed_mask)) !=
			   (make_table_spte(&t->head.fmt, 0) & ~t->head.fmt.accessed_mask) ||
			   !host_pfn_valid(t->ctx.arena, spte_to_pfn(s))) {
			fail(a, "gfn %#" PRIx64 ": bad table entry %#" PRIx64 " at level %d", gfn, s,
			     level);
		} else if (!(tp = (const struct tdp_page *)host_frame_private(t->ctx.arena,
									       spte_to_pfn(s))) ||
			   tp->gfn != gfn || tp->level != level - 1) {
			fail(a, "gfn %#" PRIx64 ": the table at level %d has no tdp_page of its own", gfn,
			     level - 1);
		} else {
			audit_table(a, s & TDP_ADDR_MASK, level - 1, gfn);
		}
	}
}

static bool quiet(struct mmu *m, uint64_t *seq, uint64_t *gen)
{
	*seq = __atomic_load_n(&m->invalidate_seq, __ATOMIC_ACQUIRE);
	*gen = memslots_generation(m->env.slots);
	return !__atomic_load_n(&m->invalidate_in_progress, __ATOMIC_ACQUIRE) &&
	       !memslot_gen_in_progress(*gen);
}

int tdp_audit(struct mmu *m, char *why, size_t whylen)
{
	struct tdp_mmu *t = to_tdp(m);
	struct mmu_stats st;
	struct audit a;

	for (unsigned attempt = 0; attempt < AUDIT_ATTEMPTS; attempt++) {
		uint64_t seq, seq2, gen2;

		a = (struct audit){ .t = t, .why = why, .whylen = whylen };
		if (why && whylen)
			why[0] = '\0';
		vmmu_rcu_read_lock();
		if (!quiet(m, &seq, &a.gen)) {
			vmmu_rcu_read_unlock();
			sched_yield();
			continue;
		}
		audit_table(&a, t->ctx.root, t->ctx.levels, 0);
		vmmu_rcu_read_unlock();
		if (!quiet(m, &seq2, &gen2) || seq2 != seq || gen2 != a.gen) {
			sched_yield();
			continue;       /* the tables changed under the walk: walk again */
		}
		if (a.rc)
			return a.rc;
		mmu_get_stats(m, &st);
		if (st.pages_4k != a.leaves[1] || st.pages_2m != a.leaves[2] ||
		    st.pages_1g != a.leaves[3])
			fail(&a, "leaf counts 4k/2m/1g %" PRIu64 "/%" PRIu64 "/%" PRIu64 ", tables hold "
			     "%" PRIu64 "/%" PRIu64 "/%" PRIu64, st.pages_4k, st.pages_2m, st.pages_1g,
			     a.leaves[1], a.leaves[2], a.leaves[3]);
		else if (st.tdp_pages != a.tables)
			fail(&a, "tdp_pages %" PRIu64 ", tables reached %" PRIu64, st.tdp_pages,
			     a.tables);
		return a.rc;
	}
	if (why && whylen)
		snprintf(why, whylen, "the tables kept changing during the audit");
	return -EAGAIN;
}
