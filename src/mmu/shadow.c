/* SPDX-License-Identifier: MIT */
/*
 * The soft MMU (shadow paging, layer 5 of docs/architecture.md): its ops table, creation and teardown, vCPUs,
 * roots with a cache of previous roots per vCPU, and the intercepted guest instructions (MOV
 * CR0/CR3/CR4, INVLPG, INVPCID). The design is in docs/soft-mmu.md; the shared structures and
 * invariants in shadow.h.
 *
 * Roots: the root of a guest address space is the sp of its top-level table (gfn of CR3, role
 * from CR0.WP, EFER.NXE, CR4.SMEP/SMAP/PKE), or a direct sp with paging off; for PAE and 32-bit
 * guests the vCPU's own PAE root pages, whose PDPT page links the level-2 sps of the PDPTE
 * registers or the four quadrant sps of the 32-bit page directory at CR3. A vCPU holds a
 * reference (root_count) on its current root and on up to SHADOW_PREV_ROOTS previous ones, so
 * switching back is a swap: no lookup, no rebuild, and cached roots are never recycled. Every
 * shadowed guest table is write-tracked, so the shadow is never behind the guest's tables, but
 * for unsync ones (--opt unsync), which may lag as a TLB may: a guest flush syncs what the
 * flushed roots reach (shadow_sync_root, through the unsync-children marks): a CR3 load without
 * PCID's no-flush bit the new root, a CR0/CR4 change or INVPCID of a whole context every root
 * of the vCPU, INVLPG the leaf of the address in each (KVM: kvm_mmu_sync_roots,
 * kvm_mmu_invalidate_addr). A root taken from the hash rather than the prev-root cache is synced
 * at load too: the guest cannot have cached through it on this vCPU. The hardware loads a new
 * root with a full TLB flush (cpu_set_shadow_root): more than PCID's no-flush needs, which the
 * architecture allows. With --opt notrap (VMX) only #PFs with P=1 exit (PFEC_MASK = PFEC_MATCH =
 * P): see shadow.h, SPTE_TRAP.
 *
 * Locking: mmu_lock (write) for every change of roots and sps; a vCPU's own fields are used by
 * its thread only. See shadow.h for the lock order.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "mmu/shadow.h"

VMMU_HOT
bool shadow_root_role(const struct paging_ctx *g, union sp_role *role, gfn_t *gfn, int *levels)
{
	role->word = 0;
	role->access = ACC_ALL;
	switch (paging_mode_of(g)) {
	case PAGING_OFF:
		role->direct = 1;
		role->level = 4;
		*gfn = 0;
		*levels = 4;
		return true;
	case PAGING_4LVL:
		role->level = 4;
		*levels = 4;
		break;
	case PAGING_5LVL:
		role->level = 5;
		*levels = 5;
		break;
	case PAGING_PAE:
		/* The role of the PD sps the PDPTEs point to; the root is the vCPU's own. */
		role->level = 2;
		role->pae = 1;
		*levels = 4;
		break;
	case PAGING_32:
		/* The role of the page directory's quadrant sps under the vCPU's PAE root (KVM's
		 * pae_root for a 32-bit guest). No NX, no protection keys in 32-bit paging. */
		role->level = 2;
		role->has_4_byte_gpte = 1;
		role->cr4_pse = !!(g->cr4 & X86_CR4_PSE);
		*levels = 4;
		*gfn = (g->cr3 & 0xfffff000ULL) >> 12;
		role->cr0_wp = !!(g->cr0 & X86_CR0_WP);
		if (!role->cr0_wp) {
			role->smep_andnot_wp = !!(g->cr4 & X86_CR4_SMEP);
			role->smap_andnot_wp = !!(g->cr4 & X86_CR4_SMAP);
		}
		return true;
	default:
		return false;
	}
	*gfn = (g->cr3 & rsvd_bits(12, g->cpu.maxphyaddr - 1)) >> 12;
	role->efer_nx = !!(g->efer & EFER_NXE);
	role->cr0_wp = !!(g->cr0 & X86_CR0_WP);
	if (!role->cr0_wp) {
		role->smep_andnot_wp = !!(g->cr4 & X86_CR4_SMEP);
		role->smap_andnot_wp = !!(g->cr4 & X86_CR4_SMAP);
		role->pke_andnot_wp = !!(g->cr4 & X86_CR4_PKE);
	}
	return true;
}

/* Is the root of @role the vCPU's PAE root (PAE and 32-bit guests)? */
static bool role_uses_pae_root(union sp_role role)
{
	return role.pae || role.has_4_byte_gpte;
}

/* What the four entries of the vCPU's PDPT page stand for: a PAE guest's PDPTE registers, or a
 * 32-bit guest's page directory at CR3 four times (one quadrant each). False if the registers
 * were never loaded. */
static bool root_pdptrs(const struct paging_ctx *g, union sp_role role, uint64_t out[4])
{
	if (role.has_4_byte_gpte) {
		for (unsigned i = 0; i < 4; i++)
			out[i] = (g->cr3 & 0xfffff000ULL) | PT_PRESENT_MASK;
		return true;
	}
	if (!g->pdptrs_valid)
		return false;
	memcpy(out, g->pdptrs, 4 * sizeof(out[0]));
	return true;
}

/* The role of the level-2 sp PDPT entry @i links: a 32-bit guest's quadrant @i. */
static union sp_role pdpt_child_role(union sp_role role, unsigned i)
{
	if (role.has_4_byte_gpte)
		role.quadrant = i & 3;
	return role;
}

/* Atomic load of invalid: the lockless MMIO fault asks too (shadow_fault.c, mmio_fault). */
static bool root_matches(const struct shadow_page *sp, gfn_t gfn, union sp_role role)
{
	return sp && !__atomic_load_n(&sp->invalid, __ATOMIC_RELAXED) && sp->gfn == gfn &&
	       sp->role.word == role.word;
}

/* The PAE root as loaded still stands for these PDPTE registers (or this CR3) and role. [L] */
static bool pae_root_matches(const struct shadow_vcpu *sv, const struct paging_ctx *g,
			     union sp_role role)
{
	uint64_t want[4];

	return sv->root && sv->root == sv->pae_pml4 && sv->pae_role == role.word &&
	       root_pdptrs(g, role, want) && !memcmp(sv->pae_pdptrs, want, sizeof(want));
}

VMMU_HOT
bool shadow_root_current(struct shadow_vcpu *sv)
{
	const struct paging_ctx *g = &sv->mv->cpu->guest;
	struct shadow_page *root = sv->root;
	union sp_role role;
	gfn_t gfn;
	int levels;

	if (root && root == sv->root_memo.root && g->cr3 == sv->root_memo.cr3 &&
	    g->cr0 == sv->root_memo.cr0 && g->cr4 == sv->root_memo.cr4 &&
	    g->efer == sv->root_memo.efer)
		return !__atomic_load_n(&root->invalid, __ATOMIC_RELAXED);
	sv->root_memo.root = NULL;
	if (!shadow_root_role(g, &role, &gfn, &levels))
		return false;
	if (role_uses_pae_root(role))
		return pae_root_matches(sv, g, role);
	if (!root_matches(root, gfn, role) || sv->root_levels != levels)
		return false;
	sv->root_memo.cr0 = g->cr0;
	sv->root_memo.cr3 = g->cr3;
	sv->root_memo.cr4 = g->cr4;
	sv->root_memo.efer = g->efer;
	sv->root_memo.root = root;
	return true;
}

/* Put @sp at the front of the prev-root cache; the oldest falls out. [L] */
static void prev_push(struct shadow_mmu *sm, struct shadow_vcpu *sv, struct shadow_page *sp)
{
	if (!sp || sp->role.passthrough)    /* the PAE root is the vCPU's, not cached */
		return;
	if (sp->invalid) {
		sp_put_root(sm, sp);
		return;
	}
	if (sv->prev[SHADOW_PREV_ROOTS - 1])
		sp_put_root(sm, sv->prev[SHADOW_PREV_ROOTS - 1]);
	memmove(&sv->prev[1], &sv->prev[0], (SHADOW_PREV_ROOTS - 1) * sizeof(sv->prev[0]));
	sv->prev[0] = sp;
}

/*
 * PAE: the four PDPTEs are registers, loaded at MOV CR3 (and CR0/CR4 changes), not entries the
 * MMU can write-track: the vCPU's PDPT page links the sp of each present PDPTE as the registers
 * hold it now, and is rewritten at every load. The PML4 page above it has one entry: a 32-bit
 * address always walks PML4[0].
 * 32-bit: the hardware walks 512-entry tables, so the guest's page directory (1024 entries, 4
 * GiB) is shadowed by four level-2 sps, one per GiB (quadrant), which the PDPT page links; the
 * guest's CR3 stands where the PDPTEs stand (KVM's pae_root for a 32-bit guest). [L]
 */
static int load_pae_root(struct shadow_mmu *sm, struct shadow_vcpu *sv, union sp_role role,
			 struct zap_batch *z)
{
	const struct paging_ctx *g = &sv->mv->cpu->guest;
	uint64_t pdptrs[4];
	int rc;

	if (!root_pdptrs(g, role, pdptrs))
		return -EOPNOTSUPP;
	if (!sv->pae_pml4) {
		rc = sp_alloc_helper(sm, 4, &sv->pae_pml4);
		if (rc)
			return rc;
	}
	if (!sv->pae_pdpt) {
		rc = sp_alloc_helper(sm, 3, &sv->pae_pdpt);
		if (rc)
			return rc;
	}
	if (!is_shadow_present_pte(spte_read(&sv->pae_pml4->spt[0]))) {
		rc = sp_link(sm, &sv->pae_pml4->spt[0], sv->pae_pdpt);
		if (rc)
			return rc;
	}
	make_mmu_pages_available(sm, 4, z, false);
	for (unsigned i = 0; i < 4; i++) {
		uint64_t *sptep = &sv->pae_pdpt->spt[i];
		uint64_t pdpte = pdptrs[i], old = spte_read(sptep);
		union sp_role crole = pdpt_child_role(role, i);
		struct shadow_page *child = NULL;
		gfn_t gfn = (pdpte & rsvd_bits(12, g->cpu.maxphyaddr - 1)) >> 12;

		if (is_shadow_present_pte(old)) {
			child = pfn_to_sp(sm, spte_to_pfn(old));
			if ((pdpte & PT_PRESENT_MASK) && child && child->gfn == gfn &&
			    child->role.word == crole.word)
				continue;
			spte_drop(sm, sv->pae_pdpt, sptep);
			z->flush = true;
		}
		if (!(pdpte & PT_PRESENT_MASK))
			continue;
		rc = sp_get(sm, gfn, crole, &child);
		if (!rc)
			rc = sp_link(sm, sptep, child);
		if (rc)
			return rc;
	}
	memcpy(sv->pae_pdptrs, pdptrs, sizeof(sv->pae_pdptrs));
	sv->pae_role = role.word;
	return 0;
}

int shadow_load_root_locked(struct shadow_vcpu *sv, bool keep_tlb, bool *changed)
{
	struct shadow_mmu *sm = to_shadow(sv->mv->mmu);
	struct zap_batch z = { 0 };
	struct shadow_page *sp = NULL;
	bool cached = false;
	union sp_role role;
	gfn_t gfn;
	int levels, rc;

	*changed = false;
	if (!shadow_root_role(&sv->mv->cpu->guest, &role, &gfn, &levels))
		return -EOPNOTSUPP;
	if (role_uses_pae_root(role)) {
		if (pae_root_matches(sv, &sv->mv->cpu->guest, role))
			return 0;
		rc = load_pae_root(sm, sv, role, &z);
		zap_batch_commit(sm, &z);
		if (rc)
			return rc;
		if (sv->root != sv->pae_pml4) {
			prev_push(sm, sv, sv->root);
			sv->root_memo.root = NULL;
			sv->root = sv->pae_pml4;
			sv->root_levels = 4;
			cpu_set_shadow_root(sv->mv->cpu, sv->pae_pml4->pfn << 12, 4);
		}
		/* Else the same root page with new PDPT links: the hardware flushed the TLB for the
		 * MOV CR3 (or CR0/CR4 change) that reloaded the PDPTEs. */
		cpu_account_mmu_steps(sv->mv->cpu, 4);
		*changed = true;
		return 0;
	}
	if (root_matches(sv->root, gfn, role) && sv->root_levels == levels)
		return 0;

	/* A previous root: take it out of the cache (it keeps its reference). */
	for (unsigned i = 0; i < SHADOW_PREV_ROOTS; i++) {
		if (sv->prev[i] && sv->prev[i]->invalid) {
			sp_put_root(sm, sv->prev[i]);
			sv->prev[i] = NULL;
		}
		if (root_matches(sv->prev[i], gfn, role)) {
			sp = sv->prev[i];
			memmove(&sv->prev[i], &sv->prev[i + 1],
				(SHADOW_PREV_ROOTS - 1 - i) * sizeof(sv->prev[0]));
			sv->prev[SHADOW_PREV_ROOTS - 1] = NULL;
			sv->prev_hits++;
			cached = true;
			break;
		}
	}
	if (!sp) {
		make_mmu_pages_available(sm, 1, &z, false);
		rc = sp_get(sm, gfn, role, &sp);
		if (rc) {
			zap_batch_commit(sm, &z);
			return rc;
		}
		sp->root_count++;
		cpu_account_mmu_steps(sv->mv->cpu, shadow_sync_root(sm, sp));
	}
	sp_reset_flooding(sp);
	prev_push(sm, sv, sv->root);
	sv->root_memo.root = NULL;
	sv->root = sp;
	sv->root_levels = levels;
	zap_batch_commit(sm, &z);
	/* KVM's fast PGD switch: back to a cached root under a PCID the guest did not ask to flush,
	 * the TLB keeps that PCID's entries. They came from this root's sptes, and every right the
	 * MMU takes away for the host (write tracking, dirty logging, zaps) flushes every TLB; the
	 * rest, guest changes, the guest's own flushes cover as natively. */
	if (keep_tlb && cached)
		cpu_switch_shadow_root(sv->mv->cpu, sp->pfn << 12, levels);
	else
		cpu_set_shadow_root(sv->mv->cpu, sp->pfn << 12, levels);
	cpu_account_mmu_steps(sv->mv->cpu, 1);
	*changed = true;
	return 0;
}

int shadow_load_root(struct shadow_vcpu *sv)
{
	struct shadow_mmu *sm = to_shadow(sv->mv->mmu);
	bool changed;
	int rc;

	mmu_vcpu_lock(&sm->mmu, true);
	rc = shadow_load_root_locked(sv, false, &changed);
	brlock_unlock(&sm->mmu.mmu_lock);
	return rc;
}

/* ---- ops ---- */

static int shadow_create(const struct mmu_env *env, struct mmu **out)
{
	struct shadow_mmu *sm = host_zalloc_lines(sizeof(*sm));
	struct memslot_iter it;
	const struct memslot *slot;
	int rc;

	if (!sm)
		return -ENOMEM;
	rc = mmu_init(&sm->mmu, env);
	if (rc)
		goto out_free;
	rc = htab_init(&sm->sp_hash, 10);
	if (!rc)
		rc = htab_init(&sm->sp_by_pfn, 10);
	if (rc)
		goto out_hash;
	CDS_INIT_LIST_HEAD(&sm->lru);
	CDS_INIT_LIST_HEAD(&sm->vcpus);
	sm->arena_base = host_pfn_to_ptr(env->arena, 0);
	/* MMIO sptes and SPTE_TRAP need bit 51 reserved (an RSVD fault): below MAXPHYADDR 52. */
	spte_fmt_init(&sm->mmu.fmt, SPTE_FMT_SHADOW, env->cpu.maxphyaddr < 52);
	/* No-trap needs the VMX PFEC filter (vm/ drops it on SVM) and a reserved bit for SPTE_TRAP. */
	sm->notrap = (env->opts & MMU_OPT_NOTRAP) && env->host == VMMU_HOST_VMX &&
		     sm->mmu.fmt.mmio_value;
	sm->trap_spte = sm->notrap ? SPTE_TRAP : 0;
	sm->fine = env->lock == VMMU_MMU_LOCK_FINE;

	vmmu_rcu_read_lock();
	memslots_for_each_in_gfn_range(slot, &it, env->slots, 0, ~0ULL)
		sm->slot_pages += slot->npages;
	vmmu_rcu_read_unlock();
	memslots_set_ops(env->slots, &shadow_memslots_ops, sm);
	mmu_notifier_register(&sm->mmu);
	*out = &sm->mmu;
	return 0;

out_hash:
	htab_destroy(&sm->sp_hash);
	htab_destroy(&sm->sp_by_pfn);
	mmu_fini(&sm->mmu);
out_free:
	free(sm);
	return rc;
}

static void shadow_vcpu_drop_roots(struct shadow_mmu *sm, struct shadow_vcpu *sv)
{
	if (sv->root && !sv->root->role.passthrough)
		sp_put_root(sm, sv->root);
	sv->root_memo.root = NULL;
	sv->root = NULL;
	if (sv->pae_pml4)
		sp_free_helper(sm, sv->pae_pml4);
	if (sv->pae_pdpt)
		sp_free_helper(sm, sv->pae_pdpt);
	sv->pae_pml4 = sv->pae_pdpt = NULL;
	for (unsigned i = 0; i < SHADOW_PREV_ROOTS; i++) {
		if (sv->prev[i])
			sp_put_root(sm, sv->prev[i]);
		sv->prev[i] = NULL;
	}
}

static void shadow_destroy(struct mmu *m)
{
	struct shadow_mmu *sm = to_shadow(m);
	struct zap_batch z = { 0 };

	struct shadow_vcpu *sv, *tmp;

	mmu_notifier_unregister(m);
	memslots_set_ops(m->env.slots, NULL, NULL);
	brlock_write(&m->mmu_lock);
	cds_list_for_each_entry_safe(sv, tmp, &sm->vcpus, link) {
		shadow_vcpu_drop_roots(sm, sv);
		cds_list_del(&sv->link);
		sv->mv->priv = NULL;
		free(sv);
	}
	zap_all(sm, &z);
	brlock_unlock(&m->mmu_lock);
	/* The sps queued above are freed before the MMU struct: the callbacks read it. */
	vmmu_rcu_barrier();
	/* Nothing maps or tracks a gfn any more: every chunk went with its last user, and what
	 * is left of the radix tree are its directories and GiB nodes. */
	shadow_gfn_state_free(sm);
	htab_destroy(&sm->sp_hash);
	htab_destroy(&sm->sp_by_pfn);
	mmu_fini(m);
	free(sm);
}

/*
 * Exit controls (KVM's shadow-paging VMCS/VMCB setup): every #PF exits (VMX: bit 14 with
 * PFEC_MASK = PFEC_MATCH = 0; SVM: the intercept), and so do CR3 loads, INVLPG and INVPCID.
 * With no-trap (--opt notrap, VMX) PFEC_MASK = PFEC_MATCH = P: only faults with P=1 exit (a
 * trapping SPTE_TRAP faults with P|RSVD); a not-present fault on a truly non-present spte goes
 * to the guest directly.
 */
static int shadow_vcpu_init(struct mmu_vcpu *mv)
{
	struct shadow_mmu *sm = to_shadow(mv->mmu);
	struct shadow_vcpu *sv = host_zalloc_lines(sizeof(*sv));
	struct exit_controls ctl = {
		.host = sm->mmu.env.host,
		.exception_bitmap = 1u << EXC_PF_VECTOR,
		.pfec_mask = sm->notrap ? PFERR_PRESENT : 0,
		.pfec_match = sm->notrap ? PFERR_PRESENT : 0,
		.cr3_load_exiting = true,
		.invlpg_exiting = true,
		.invpcid_exiting = true,
	};
	bool changed;
	int rc;

	if (!sv)
		return -ENOMEM;
	sv->mv = mv;
	mv->priv = sv;
	cpu_set_exit_controls(mv->cpu, &ctl);
	brlock_write(&sm->mmu.mmu_lock);
	cds_list_add(&sv->link, &sm->vcpus);
	/* At reset paging is off: a direct root. A mode the soft MMU cannot shadow fails later,
	 * at the first access. */
	rc = shadow_load_root_locked(sv, false, &changed);
	brlock_unlock(&sm->mmu.mmu_lock);
	return rc == -EOPNOTSUPP ? 0 : rc;
}

static void shadow_vcpu_destroy(struct mmu_vcpu *mv)
{
	struct shadow_vcpu *sv = mv->priv;
	struct shadow_mmu *sm = to_shadow(mv->mmu);

	if (!sv)
		return;
	brlock_write(&sm->mmu.mmu_lock);
	shadow_vcpu_drop_roots(sm, sv);
	cds_list_del(&sv->link);
	brlock_unlock(&sm->mmu.mmu_lock);
	mv->priv = NULL;
	free(sv);
}

/* The guest flushed: sync the current root, and with @all the previous roots too. [L] */
static void sync_roots(struct shadow_mmu *sm, struct shadow_vcpu *sv, bool all)
{
	uint64_t steps = 0;

	if (!sm->nr_unsync)
		return;
	if (shadow_root_current(sv))
		steps += shadow_sync_root(sm, sv->root);
	for (unsigned i = 0; all && i < SHADOW_PREV_ROOTS; i++)
		steps += shadow_sync_root(sm, sv->prev[i]);
	cpu_account_mmu_steps(sv->mv->cpu, steps);
}

/*
 * MOV CR0/CR3/CR4 after the hardware applied it (and its TLB flush): find or build the root for
 * the new state. CR3 always (a new address space), CR0/CR4 when they change the role or the
 * paging mode (WP, PG, PAE, LA57, SMEP, SMAP, PKE); the role check covers both. Each is also a
 * guest TLB flush, but a CR3 load with PCID's no-flush bit: unsync sps sync (--opt unsync).
 */
static int shadow_cr_changed(struct mmu_vcpu *mv, int cr, uint64_t old, uint64_t val)
{
	struct shadow_mmu *sm = to_shadow(mv->mmu);
	struct shadow_vcpu *sv = mv->priv;
	bool noflush = cr == 3 && (mv->cpu->guest.cr4 & X86_CR4_PCIDE) && (val & (1ULL << 63));
	bool changed;
	int rc;

	if (!sv)
		return 0;
	mmu_vcpu_lock(&sm->mmu, true);
	rc = shadow_load_root_locked(sv, noflush, &changed);
	if (!rc && !noflush && (cr == 3 || old != val))
		sync_roots(sm, sv, cr != 3);
	brlock_unlock(&sm->mmu.mmu_lock);
	return rc;
}

/*
 * INVLPG's work on one root (KVM's __kvm_mmu_invalidate_addr): a leaf of an unsync sp goes, so
 * the next access takes the translation from the guest's entry as it is now. A leaf of a
 * write-tracked sp stays: write tracking kept it exact, and KVM keeps it too (dropping it cost
 * a fault per INVLPG that KVM does not take). A truly non-present spte (notrap) goes with
 * @notrap_too: the guest's INVLPG is its flush, and the VMM may have written the entry behind
 * its back. [L]
 */
static void drop_gva(struct shadow_mmu *sm, struct shadow_page *root, gva_t gva, bool notrap_too)
{
	struct shadow_page *sp = root;

	for (int level = sp ? sp->role.level : 0; sp && level >= 1; level--) {
		uint64_t *sptep = &sp->spt[spte_index(gva, level)];
		uint64_t spte = spte_read(sptep);
		bool present = is_shadow_present_pte(spte);

		if (spte == sm->trap_spte)
			return;
		if (level == 1 || !present) {
			if (sp->unsync || (notrap_too && !present))
				spte_drop(sm, sp, sptep);
			return;
		}
		if (is_last_spte(spte, level))
			return;                   /* a large leaf: its sp is write-tracked */
		sp = pfn_to_sp(sm, spte_to_pfn(spte));
	}
}

/*
 * INVLPG: the hardware dropped the TLB entries; an unsync leaf for the address goes in the
 * current root and, since INVLPG drops global translations of every PCID, in the previous
 * roots too.
 */
static void invlpg_roots(struct shadow_mmu *sm, struct shadow_vcpu *sv, gva_t gva, bool current)
{
	if (current && shadow_root_current(sv))
		drop_gva(sm, sv->root, gva, true);
	for (unsigned i = 0; sm->nr_unsync && i < SHADOW_PREV_ROOTS; i++)
		if (sv->prev[i] && !sv->prev[i]->invalid)
			drop_gva(sm, sv->prev[i], gva, false);
}

static int shadow_invlpg(struct mmu_vcpu *mv, gva_t gva)
{
	struct shadow_vcpu *sv = mv->priv;
	struct shadow_mmu *sm = to_shadow(mv->mmu);

	if (!sv)
		return 0;
	if (!(mv->cpu->guest.efer & EFER_LMA))
		gva &= 0xffffffffULL;
	mmu_vcpu_lock(&sm->mmu, true);
	invlpg_roots(sm, sv, gva, true);
	brlock_unlock(&sm->mmu.mmu_lock);
	cpu_account_mmu_steps(mv->cpu, 1);
	return 0;
}

/*
 * INVPCID: type 0 (one address of one PCID) drops the spte when the PCID is the current one (a
 * root serves one address space whatever its PCID), else where it may be stale in a previous
 * root. Types 1-3 invalidate whole contexts: the shadow is synced by write tracking but for
 * unsync sps, which sync for every root of the vCPU (KVM's kvm_mmu_sync_roots).
 */
static int shadow_invpcid(struct mmu_vcpu *mv, unsigned type, uint16_t pcid, gva_t gva)
{
	struct shadow_mmu *sm = to_shadow(mv->mmu);
	struct shadow_vcpu *sv = mv->priv;

	if (type == 0 && pcid == mv->cpu->pcid)
		return shadow_invlpg(mv, gva);
	if (!sv || !__atomic_load_n(&sm->nr_unsync, __ATOMIC_RELAXED))
		return 0;
	mmu_vcpu_lock(&sm->mmu, true);
	if (type == 0)
		invlpg_roots(sm, sv, gva, false);
	else
		sync_roots(sm, sv, true);
	brlock_unlock(&sm->mmu.mmu_lock);
	return 0;
}

const struct mmu_ops shadow_mmu_ops = {
	MMU_MODE_OPS(shadow),
	.cr_changed = shadow_cr_changed,
	.invlpg = shadow_invlpg,
	.invpcid = shadow_invpcid,
	.guest_written = shadow_guest_written,
	.track_write = shadow_track_write,
	.age_shared = false,
};
