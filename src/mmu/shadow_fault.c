/* SPDX-License-Identifier: MIT */
/*
 * The soft MMU's page fault (KVM's FNAME(page_fault) and FNAME(fetch)), its emulated writes to
 * write-tracked guest tables (kvm_mmu_pte_write with flood detection) and its MMIO sptes.
 *
 * A #PF exit, in two phases:
 *   1. unlocked, inside one memslot read section: walk the guest tables for the page part(s) of
 *      the access (paging_walk: exact rights, A/D set by compare-and-swap as the CPU would); a
 *      guest fault is injected as it is. Then look the slot and host frame of each part up and
 *      resolve host pointers to every guest entry the walk read, having noted the MMU-notifier
 *      sequence first;
 *   2. under mmu_lock: give up (retry the access) if an invalidation ran meanwhile; follow the
 *      shadow from the root, creating the sp of each guest table (which write-tracks it) and
 *      checking each guest entry is still what the walk read (from then on a change of it would
 *      have to exit, and we hold the lock); install the leaf. Then: retry the access, or emulate
 *      a write the spte cannot allow (a write-tracked gfn; CR0.WP=0 with SMAP or PKE), or exit
 *      to MMIO.
 * No guest memory is touched through the memslots under mmu_lock (see shadow.h: lock order).
 * 32-bit guests: guest entries are 4 bytes (fault.gpte_size) and each guest table is shadowed
 * by quadrant sps (shadow.h: a PD by four level-2 sps, a PT by two level-1 sps); an emulated
 * store reaches the sp of each quadrant it touches.
 *
 * Rights (shadow.h, role): a leaf gets the guest's combined rights, W only once the guest leaf
 * is Dirty (the first write faults and sets it) and only if nothing forbids it (write tracking,
 * READONLY slot, dirty logging before the page is logged, a host page not asked for writing).
 * The hardware checks the guest's CPL, SMEP, SMAP, AC and PKRU against these bits itself with
 * CR0.WP forced to 1; every #PF exits, and this handler decides with the guest's real state, so
 * the guest sees exactly its native faults.
 *
 * Optimizations (env.opts, docs/soft-mmu.md): prefetch (prefetch_plan before the lock,
 * prefetch_install after the leaf: the aligned group of 8 around it); notrap (notrap_fill of new
 * sps, notrap_install after a not-present guest fault, pte_write's conversion: only faults with
 * P=1 exit, so guest-not-present entries whose sptes are 0 fault straight into the guest);
 * fastpf (fast_page_fault: W given back by one cmpxchg for dirty logging, no mmu_lock).
 */
#include <errno.h>
#include <string.h>

#include "hot.h"
#include "mmu/shadow.h"
#include "paging/slots_gmem.h"


/* ---- one fault ---- */

/* One page part of the faulting access, as the unlocked phase found it. */
struct fault_part {
	gva_t gva;                        /* first byte of the part */
	uint32_t off, len;                /* its bytes within the access */
	bool walked;
	enum walk_status ws;
	struct walk_result w;             /* the guest walk */
	struct mmu_faultin fi;            /* its gfn's slot and frame (fi.slot NULL: MMIO) */
	uint8_t *host;                    /* the page's bytes */
};

/* PTE prefetch (--opt prefetch): an aligned group of 8 entries around the faulting one, as KVM's
 * PTE_PREFETCH_NUM. */
#define PREFETCH_GROUP 8

/* The prefetch group of a fault, as phase 1 found it (--opt prefetch); phase 2 reads and judges
 * its guest entries under mmu_lock. */
struct prefetch_plan {
	bool on;                          /* the group is to be looked at */
	unsigned idx, first;              /* the faulting entry's index in the level-1 table, and
					   * the group's first */
	uint64_t rsvd;                    /* indirect: the guest entries' reserved bits */
};

/* A fault of the soft MMU: the core's (f.pf: the exit, write, sequence and generation snapshots,
 * steps), and the guest walk of each part. */
struct fault {
	struct mmu_page_fault *pf;
	struct shadow_mmu *sm;
	struct shadow_vcpu *sv;
	struct cpu *cpu;
	const struct hw_exit *e;
	unsigned access;                  /* PFERR_WRITE / PFERR_FETCH | WALK_IMPLICIT */
	bool write, user;
	unsigned nparts, fp;              /* parts; the one that faulted */
	struct fault_part part[2];
	void *gptep[PT_MAX_LEVELS + 1];   /* host address of each entry the fp walk read */
	unsigned gpte_size;               /* 4 (32-bit paging) or 8: bytes of a guest entry */
	struct prefetch_plan pre;         /* --opt prefetch */
	bool shared;                      /* phase 2 holds mmu_lock shared (VMMU_MMU_LOCK_FINE) */
	bool credited;                    /* the aging credit of this fault was added */
	struct shadow_page *trap_sp;      /* the level-1 sp whose trap spte an RSVD fault met
					   * (mmio_fault's walk; valid in the fault's read
					   * section), or NULL */
	uint64_t made_steps;              /* steps of sps made and linked under shared: kept if
					   * phase 2 starts over exclusive (it finds them made) */
};

/* The guest entry at @level the walk read, as it is now. */
static uint64_t fault_gpte_now(const struct fault *f, int level)
{
	return gpt_read(f->gptep[level], f->gpte_size, 0);
}

/* The host address of the guest table holding the entry at @level the walk read (tables are
 * whole 4 KiB pages, so the page holding the entry). */
static const void *fault_gpt(const struct fault *f, int level)
{
	return (const void *)((uintptr_t)f->gptep[level] & ~(uintptr_t)0xfff);
}

/*
 * A fault's state, which is not zeroed whole (some 600 bytes: a hundred instructions and a string
 * store a fault). Set here: what is read before it is written. Each part's walk (w) is written by
 * fault_walk before any reader (which looks at walked, or at ws of a part fault_walk reached);
 * its slot and frame (fi, host) by fault_resolve, for a part whose walk succeeded; the group of
 * the prefetch by prefetch_plan (pre.on false until then); the parts' number by fault_parts.
 */
static void fault_init(struct fault *f, struct mmu_page_fault *pf)
{
	const struct hw_exit *e = pf->e;

	f->pf = pf;
	f->sm = to_shadow(pf->mmu);
	f->sv = pf->mv->priv;
	f->cpu = pf->mv->cpu;
	f->e = e;
	f->access = e->access;
	f->write = e->access & PFERR_WRITE;
	f->user = !(e->access & WALK_IMPLICIT) && f->cpu->guest.cpl == 3;
	for (unsigned i = 0; i < 2; i++) {
		struct fault_part *p = &f->part[i];
		p->gva = 0;
		p->off = p->len = 0;
		p->walked = false;
		p->ws = WALK_ABORT;
		p->fi.slot = NULL;
		p->fi.pfn_err = 0;
		p->host = NULL;
	}
	memset(f->gptep, 0, sizeof(f->gptep));
	f->gpte_size = paging_mode_of(&f->cpu->guest) == PAGING_32 ? 4 : 8;
	f->pre.on = false;
	f->shared = false;
	f->credited = false;
	f->trap_sp = NULL;
	f->made_steps = 0;
}

/* @f is as fault_init made it. */
static void fault_parts(struct fault *f)
{
	const struct hw_exit *e = f->e;
	gva_t gva = e->access_len ? e->access_gva : e->gva;
	uint32_t len = e->access_len ? e->access_len : 1;
	bool lma = f->cpu->guest.efer & EFER_LMA;

	f->nparts = 1;
	f->fp = 0;
	f->part[0].gva = gva;
	f->part[0].len = len;
	if ((gva & 0xfff) + len > 4096) {
		uint32_t first = 4096 - (uint32_t)(gva & 0xfff);
		gva_t va = (gva & ~0xfffULL) + 4096;
		if (!lma && va > 0xffffffffULL)
			va &= 0xffffffffULL;
		f->part[0].len = first;
		f->part[1].gva = va;
		f->part[1].off = first;
		f->part[1].len = len - first;
		f->nparts = 2;
		if ((e->gva >> 12) == (va >> 12))
			f->fp = 1;
	}
	if (!lma)
		f->part[0].gva &= 0xffffffffULL;
	/* Without a description of the access (not a #PF of an access), the exit's gva alone. */
	if (!e->access_len) {
		f->part[0].gva = e->gva;
		f->nparts = 1;
	}
}

/* Slot and host frame of a walked part (the core's mmu_fault_slot and mmu_faultin_pfn). Inside
 * the read section. */
static int fault_resolve(struct fault *f, struct fault_part *p)
{
	int rc;

	if (!mmu_fault_slot(f->pf, &p->fi, p->w.gpa >> 12))
		return 0;
	/* A write looks the page up for writing (breaking a KSM page's COW); a read asks only, and
	 * the host says whether the page may be written (not a KSM page), as KVM's hva_to_pfn. */
	rc = mmu_faultin_pfn(f->pf, &p->fi, !slot_is_readonly(p->fi.slot) && f->write);
	if (rc || p->fi.pfn_err)
		return rc;
	p->host = host_pfn_to_ptr(f->sm->mmu.env.arena, p->fi.pfn);
	return p->host ? 0 : -EFAULT;
}

/*
 * Follow the shadow for @p's address from the root, making the sps the guest walk asks for, down
 * to the table of level @stop (1: the level-1 table; higher for a guest entry found not present
 * there, under notrap). At each indirect level the guest entry must still be what the walk read:
 * its table is write-tracked by then (sp_get flushed any TLB that still allowed writing it), so
 * the match holds until we drop mmu_lock. RET_PF_CONTINUE with *@leaf_sp, RET_PF_RETRY if an
 * entry changed, or -ENOMEM. Under f->shared a missing sp is made and linked under struct_lock
 * (sp_get_link_shared); a link to replace, or what only the exclusive lock may do, is
 * RET_PF_EXCLUSIVE (clearing a flooding count is no change).
 */
VMMU_HOT
static int fetch(struct fault *f, struct fault_part *p, struct shadow_page **leaf_sp,
		 struct zap_batch *z, int stop)
{
	struct shadow_mmu *sm = f->sm;
	struct shadow_page *sp = f->sv->root;
	const struct walk_result *w = &p->w;
	int level = sp->role.level;

	for (;;) {
		if (!sp->role.passthrough)
			sp_reset_flooding(sp);
		if (!sp->role.direct && !sp->role.passthrough) {
			uint64_t now = fault_gpte_now(f, level);
			f->pf->steps++;
			if (now != w->gpte[level])
				return RET_PF_RETRY;
		}
		if (level == stop)
			break;

		uint64_t *sptep = &sp->spt[spte_index(p->gva, level)];
		union sp_role role = sp->role;
		gfn_t gfn;

		role.level = level - 1;
		if (sp->role.passthrough && level == 4) {
			/* The vCPU's PAE PML4 page: entry 0 is its PDPT page, linked at load. */
			if (!is_shadow_present_pte(spte_read(sptep))) {
				if (f->shared)
					return RET_PF_EXCLUSIVE;
				int rc = sp_link(sm, sptep, f->sv->pae_pdpt);
				if (rc)
					return rc;
			}
			sp = f->sv->pae_pdpt;
			level--;
			continue;
		} else if (sp->role.passthrough) {
			/* The PDPT page: the PDPTE register the walk used (no rights, no A bit), or
			 * the quadrant of a 32-bit guest's page directory, as loaded. */
			unsigned i = spte_index(p->gva, level) & 3;
			role.word = f->sv->pae_role;
			if (role.has_4_byte_gpte)
				role.quadrant = i;
			gfn = (f->sv->pae_pdptrs[i] & rsvd_bits(12, 51)) >> 12;
		} else if (sp->role.direct) {
			gfn = sp->gfn + ((gfn_t)spte_index(p->gva, level) << (9 * (level - 1)));
		} else if (level > w->level) {
			gfn = (w->gpte[level] & rsvd_bits(12, 51)) >> 12;
			role.access = sp->role.access & gpte_access64(w->gpte[level], sp->role.efer_nx);
			/* A 32-bit page table (4 MiB) is two level-1 sps: the half of this 2 MiB. */
			if (role.has_4_byte_gpte)
				role.quadrant = (unsigned)(p->gva >> 21) & 1;
		} else {
			/* A guest large page: a direct sp maps it 4K by 4K. Its Dirty bit lives in
			 * this entry, not in the sptes' own entries: a clean page's sp must not be the
			 * one a dirty mapping of the same frames made writable, so a clean page gets
			 * a role without write access (as KVM's protect_clean_gpte), and a dirty one
			 * with CR0.WP=0 a role with it, whatever the entry says: the supervisor may
			 * write it (leaf_access), and its sp must not be the clean page's either
			 * (KVM puts that write right into the role too). */
			gfn = (w->gpa >> 12) & ~((1ULL << (9 * (level - 1))) - 1);
			role.direct = 1;
			role.access = w->access;
			if (!(w->gpte[level] & PT_DIRTY_MASK))
				role.access &= ~ACC_WRITE;
			else if (!role.cr0_wp)
				role.access |= ACC_WRITE;
			role.guest_global = !!(w->gpte[level] & PT_GLOBAL_MASK);
			role.guest_pkey = w->pkey & 0xf;
			/* It maps gfns (here the 2 MiB half of a 32-bit 4 MiB page that holds
			 * the address), whatever entry format made it. */
			role.has_4_byte_gpte = 0;
			role.quadrant = 0;
			role.cr4_pse = 0;
		}

		uint64_t spte = spte_read(sptep);
		struct shadow_page *child = NULL;
		if (is_shadow_present_pte(spte)) {
			/* A large leaf where a link goes now (a table inside its range is
			 * shadowed, or dirty logging began): a write splits it, as KVM's. */
			if (!is_last_spte(spte, level))
				child = pfn_to_sp(sm, spte_to_pfn(spte));
			if (!child || child->gfn != gfn || child->role.word != role.word) {
				/* Made from an older entry (a hostile rewrite raced us): replace. */
				if (f->shared)
					return RET_PF_EXCLUSIVE;
				spte_drop(sm, sp, sptep);
				z->flush = true;
				child = NULL;
			}
		}
		if (!child) {
			bool created;
			/* No-trap fill of a new indirect sp from the guest table it shadows. */
			const void *gtable = !role.direct && level - 1 >= w->level &&
					     f->gptep[level - 1] ? fault_gpt(f, level - 1) : NULL;
			int rc;
			if (f->shared) {
				uint64_t made = 0;
				rc = sp_get_link_shared(sm, sptep, gfn, role, gtable, &child,
							&created, &made);
				f->pf->steps += made;
				f->made_steps += made;
				if (rc)
					return rc;
			} else {
				rc = sp_get_new(sm, gfn, role, &child, &created);
				if (rc)
					return rc;
				if (created && gtable)
					f->pf->steps += sp_notrap_fill(sm, child, gtable);
				rc = sp_link(sm, sptep, child);
				if (rc)
					return rc;
				f->pf->steps++;
			}
		}
		sp = child;
		level--;
	}
	*leaf_sp = sp;
	return RET_PF_CONTINUE;
}

/*
 * The rights the leaf gets for this fault (ACC_*). CR0.WP=0 lets a supervisor write a read-only
 * page; the hardware runs with WP=1, so (as KVM) such a write gets a supervisor-only writable spte
 * (user cleared: user accesses fault and are decided again), not executable under SMEP (a user
 * page must stay non-executable to the supervisor). That spte would let the supervisor read a
 * user page that SMAP or a protection key must refuse: with CR4.SMAP or CR4.PKE the write is
 * emulated instead (*emulate).
 */
static unsigned leaf_access(const struct fault *f, const struct shadow_page *sp,
			    const struct fault_part *p, bool *emulate)
{
	unsigned acc = p->w.access;

	*emulate = false;
	if (p->w.root_level == 0)    /* no paging: everything, user bit as the access is */
		return ACC_EXEC | ACC_WRITE | (f->user ? ACC_USER : 0);
	if (!sp->role.cr0_wp && f->write && !f->user && !(acc & ACC_WRITE)) {
		if (!(acc & ACC_USER)) {
			acc |= ACC_WRITE;
		} else if (sp->role.smap_andnot_wp || sp->role.pke_andnot_wp) {
			*emulate = true;
		} else {
			acc = (acc | ACC_WRITE) & ~ACC_USER;
			if (sp->role.smep_andnot_wp)
				acc &= ~ACC_EXEC;
		}
	}
	return acc;
}

/* Store @len bytes at @dst (inside one page): each aligned 8-byte word with one compare-and-swap,
 * so Accessed/Dirty bits other vCPUs set in the bytes around are never lost. */
static void store_atomic(uint8_t *dst, const uint8_t *src, uint32_t len)
{
	uintptr_t a = (uintptr_t)dst;

	while (len) {
		uint64_t *word = (uint64_t *)(a & ~(uintptr_t)7);
		unsigned off = (unsigned)(a & 7);
		unsigned n = 8 - off < len ? 8 - off : len;
		uint64_t old = __atomic_load_n(word, __ATOMIC_RELAXED), nv;
		do {
			nv = old;
			memcpy((uint8_t *)&nv + off, src, n);
		} while (!__atomic_compare_exchange_n(word, &old, nv, false, __ATOMIC_SEQ_CST,
						      __ATOMIC_RELAXED));
		a += n;
		src += n;
		len -= n;
	}
}

/* Writes to an sp with no fault through it in between before it is unshadowed (KVM's 3). */
#define FLOOD_WRITES 3

/*
 * A guest store of [off, off + len) into guest table page @gfn happened: every sp shadowing it
 * drops the sptes of the entries the bytes touch (a partial or misaligned store touches one or
 * two; in a 32-bit table 4-byte entries, found in the sp of their quadrant, a PDE's two sptes
 * together: KVM's get_written_sptes), or, written FLOOD_WRITES times without a fault through
 * it, is zapped: the page is probably no longer a page table. As KVM's detect_write_flooding, a
 * last-level table is exempt when it can go unsync instead (--opt unsync); without unsync it is
 * flooded like the others (KVM always has unsync). Counted as KVM's kvm_mmu_track_write:
 * mmu_pde_zapped for each written spte of a table above the last level whose new guest entry is
 * not zero, mmu_flooded for each sp zapped (mmu_pte_write is emulate_write's).
 * TLBs: any present spte dropped is a remote flush, as KVM's kvm_mmu_remote_flush_or_zap. A
 * dropped leaf would not need it (the translation the guest changed stays cached until the guest
 * invalidates it, as natively), but KVM flushes, and counts it (tlb_flush). A dropped link does
 * need it: below it a guest large page may be mapped by 4K sptes, whose TLB entries one guest
 * INVLPG (which natively drops the whole large entry) would not all remove.
 */
static void pte_write(struct shadow_mmu *sm, uint64_t *steps, gfn_t gfn, const uint8_t *page,
		      uint32_t off, uint32_t len, struct zap_batch *z)
{
	struct shadow_page *flooded[SHADOW_MAX_SPS_PER_GFN];
	unsigned nflood = 0;
	struct hnode *n;

	const bool unsync_ok = sm->mmu.env.opts & MMU_OPT_UNSYNC;

	htab_for_each_key(&sm->sp_hash, n, gfn) {
		struct shadow_page *sp = caa_container_of(n, struct shadow_page, hash);
		unsigned first, last;
		/* A 32-bit table's sp sees only the entries of its quadrant: a store elsewhere in
		 * the page is no write to it (nor counts towards flooding it). */
		if (sp->role.direct || !sp_sptes_of_bytes(sp, off, len, &first, &last))
			continue;
		if ((sp->role.level > 1 || !unsync_ok) &&
		    ++sp->write_flooding_count >= FLOOD_WRITES && !sp->root_count &&
		    nflood < SHADOW_MAX_SPS_PER_GFN) {
			flooded[nflood++] = sp;
			continue;
		}
		for (unsigned i = first; i <= last; i++) {
			uint64_t s = spte_read(&sp->spt[i]);
			/* No-trap: the entry's new value decides (the store is done, and further
			 * stores to it exit and wait for mmu_lock): not present, truly non-present;
			 * anything else trapping until a fault shadows it. */
			uint64_t want = sm->trap_spte, gpte = sp_read_gpte(sp, page, i);
			if (sp_notrap_ok(sm, sp) && !(gpte & PT_PRESENT_MASK))
				want = 0;
			if (sp->role.level > 1 && gpte)
				mmu_stat_inc(&sm->mmu, mmu_pde_zapped);
			if (s == want)
				continue;
			if (is_shadow_present_pte(s))
				z->flush = true;
			spte_drop(sm, sp, &sp->spt[i]);
			if (want != sm->trap_spte)
				spte_write(&sp->spt[i], want);
			(*steps)++;
		}
	}
	for (unsigned i = 0; i < nflood; i++) {
		sp_zap(sm, flooded[i], z);
		mmu_stat_inc(&sm->mmu, mmu_flooded);
	}
}

/* An emulated store of [off, off + len) into guest page @gfn (held at @page) was made: KVM's
 * kvm_mmu_track_write, which counts every emulated write once the VM has indirect sps. [L] */
static void track_write(struct shadow_mmu *sm, uint64_t *steps, gfn_t gfn, const uint8_t *page,
			uint32_t off, uint32_t len, struct zap_batch *z)
{
	if (sm->nr_indirect)
		mmu_stat_inc(&sm->mmu, mmu_pte_write);
	if (gfn_write_tracked(sm, gfn))
		pte_write(sm, steps, gfn, page, off, len, z);
}

/* The instruction emulator (vmmu_vcpu_emulate_access) wrote guest memory: the same tracking as a
 * store the fault path emulates. Takes mmu_lock; the caller holds no MMU lock. */
uint64_t shadow_track_write(struct mmu *m, gpa_t gpa, uint32_t len)
{
	struct shadow_mmu *sm = to_shadow(m);
	struct zap_batch z = { 0 };
	uint64_t steps = 0;
	void *page;

	vmmu_rcu_read_lock();
	if (!memslots_gpa_to_ptr(m->env.slots, gpa & ~0xfffULL, 4096, false, &page)) {
		mmu_vcpu_lock(m, true);
		track_write(sm, &steps, gpa >> 12, page, (uint32_t)(gpa & 0xfff), len, &z);
		zap_batch_commit(sm, &z);
		brlock_unlock(&m->mmu_lock);
	}
	vmmu_rcu_read_unlock();
	return steps;
}

/*
 * Stop shadowing @gfn (kvm_mmu_unprotect_page): the fallback for a write we cannot emulate (one
 * part is MMIO, read-only or not canonical), which then runs natively. A root in use is zapped
 * too (it reloads); a guest doing this to its own top-level table keeps exiting.
 */
static void unprotect_gfn(struct shadow_mmu *sm, gfn_t gfn, struct zap_batch *z)
{
	struct shadow_page *sps[SHADOW_MAX_SPS_PER_GFN];
	unsigned n = sps_of_gfn(sm, gfn, sps, SHADOW_MAX_SPS_PER_GFN);

	for (unsigned i = 0; i < n; i++)
		sp_zap(sm, sps[i], z);
}

/* Fallbacks in a row for one address before the MMU gives up on it (see emulate_write). */
#define UNPROTECT_TRIES 4

/* The part can be stored by the MMU: guest memory, writable, its bytes at hand. */
static bool part_storable(const struct fault_part *p)
{
	/* map_writable, not only a writable slot: the host must let us write the page (a KSM
	 * page looked up for reading is not). */
	return p->walked && p->ws == WALK_OK && p->fi.slot && !p->fi.pfn_err &&
	       p->fi.map_writable && p->host;
}

/* Store @p's bytes of the access and account the write: dirty log, write tracking. [L] */
static void store_part(struct fault *f, const struct fault_part *p, struct zap_batch *z)
{
	gfn_t gfn = p->w.gpa >> 12;

	store_atomic(p->host + (p->w.gpa & 0xfff), f->e->data + p->off, p->len);
	if (slot_logs_dirty(p->fi.slot))
		slot_mark_dirty(p->fi.slot, gfn);
	track_write(f->sm, &f->pf->steps, gfn, p->host, (uint32_t)(p->w.gpa & 0xfff), p->len, z);
}

/*
 * Perform the faulting write ourselves: every part, then the sptes of tracked parts. [L]
 * A store crossing from such a page into MMIO (no slot, or a read-only slot) is done as KVM's
 * emulator does it, page by page: the first part stored here, the rest an MMIO exit
 * (RET_PF_MMIO with mmio_done; vm/ reports it), as natively. Any other store we cannot perform
 * (a part not canonical, no data) falls back to unshadowing the tracked page and running the
 * store natively; when the page is shadowed again on the way (a root in use, or a table on the
 * store's own path), after UNPROTECT_TRIES in a row the access fails with -EOPNOTSUPP rather than
 * spin. Returns RET_PF_EMULATE, RET_PF_MMIO, RET_PF_RETRY (unshadowed) or -EOPNOTSUPP.
 */
static int emulate_write(struct fault *f, struct zap_batch *z)
{
	struct shadow_mmu *sm = f->sm;
	const uint8_t *data = f->e->data;
	bool ok = data && f->e->access_len;

	for (unsigned i = 0; ok && i < f->nparts; i++)
		ok = part_storable(&f->part[i]);
	if (!ok && data && f->e->access_len && f->nparts == 2 && part_storable(&f->part[0])) {
		const struct fault_part *p1 = &f->part[1];
		if (p1->walked && p1->ws == WALK_OK &&
		    (!p1->fi.slot || slot_is_readonly(p1->fi.slot))) {
			store_part(f, &f->part[0], z);
			f->sv->unprotect_tries = 0;
			f->pf->mmio_gpa = p1->w.gpa;
			f->pf->mmio_done = f->part[0].len;
			return RET_PF_MMIO;
		}
	}
	if (!ok) {
		if (f->sv->unprotect_gva == f->e->gva && ++f->sv->unprotect_tries >= UNPROTECT_TRIES)
			return -EOPNOTSUPP;
		if (f->sv->unprotect_gva != f->e->gva) {
			f->sv->unprotect_gva = f->e->gva;
			f->sv->unprotect_tries = 0;
		}
		for (unsigned i = 0; i < f->nparts; i++)
			if (f->part[i].walked && f->part[i].ws == WALK_OK)
				unprotect_gfn(sm, f->part[i].w.gpa >> 12, z);
		return RET_PF_RETRY;
	}
	for (unsigned i = 0; i < f->nparts; i++)
		store_part(f, &f->part[i], z);
	f->sv->unprotect_tries = 0;
	return RET_PF_EMULATE;
}

/*
 * PTE prefetch, phase 1 (unlocked, in the read section): whether the faulting part's level-1
 * table has a group to look at, the aligned PREFETCH_GROUP entries around the faulting one. Its
 * guest entries are read in phase 2, under mmu_lock, as KVM's FNAME(pte_prefetch) reads them: the
 * table is write-tracked by then (an unsync table and other vCPUs' A/D bits apart: a stale
 * prefetch is harmless, as KVM's), and a fault where no neighbour is worth mapping (the usual
 * first touch) reads only the one that stops it.
 */
VMMU_HOT
static void prefetch_plan(struct fault *f, struct fault_part *p)
{
	const struct walk_result *w = &p->w;
	const struct paging_ctx *g = &f->cpu->guest;

	if (!(f->sm->mmu.env.opts & MMU_OPT_PREFETCH) || p->ws != WALK_OK || !p->fi.slot ||
	    p->fi.pfn_err || w->root_level == 0 || w->level < 1)
		return;
	f->pre.rsvd = 0;
	if (w->level == 1) {
		if (!f->gptep[1])
			return;
		/* 32-bit page tables have no reserved bits. */
		if (f->gpte_size == 8)
			f->pre.rsvd = paging_rsvd_mask64(g, paging_mode_of(g), 1, false);
		f->pf->steps++;             /* the group is one 64-byte line of the guest table */
	}
	f->pre.on = true;
	f->pre.idx = spte_index(p->gva, 1);
	f->pre.first = f->pre.idx & ~(PREFETCH_GROUP - 1u);
}

/* The leaf spte at @level for a guest page: @acc the rights (ACC_*), W only with @writable;
 * MMU-writable and host-writable as given; G and the protection key the guest leaf's. */
static uint64_t shadow_leaf_spte(const struct shadow_mmu *sm, int level, pfn_t pfn, unsigned acc,
				 bool writable, bool mmu_w, bool host_writable, bool global,
				 unsigned pkey)
{
	const struct spte_leaf l = {
		.pfn = pfn, .level = level, .access = acc, .writable = writable, .mmu_writable = mmu_w,
		.host_writable = host_writable, .dirty = writable, .global = global, .pkey = pkey,
	};

	return make_leaf_spte(&sm->mmu.fmt, &l);
}

/*
 * PTE prefetch, phase 2 (under mmu_lock, after the faulting leaf went in): the group in order,
 * skipping the faulting entry. A neighbour already mapped is skipped; the first one not worth
 * mapping stops it (as KVM's FNAME(prefetch_gpte) judges: for a guest 4K page, a guest entry
 * present, Accessed and without reserved bits; for a guest large page, a direct sp, every 4K piece
 * of it is), and so does one with no memslot or host page; the rest are mapped. Rights as a read
 * fault would give them: no CR0.WP=0 upgrade, no write in a dirty-logging slot.
 *
 * The host page is looked up here, as KVM's prefetch does under its mmu_lock, without the host
 * mm's lock (which comes before mmu_lock): a page it finds mapped stays so until a notifier,
 * which needs mmu_lock, zaps what we make of it; a change already under way there fails the
 * look-up (prefetch stops: it is only ever a guess, and never faults a host page in).
 */
VMMU_HOT
static int prefetch_install(struct fault *f, struct shadow_page *sp)
{
	struct shadow_mmu *sm = f->sm;
	const struct walk_result *w = &f->part[f->fp].w;

	if (!f->pre.on)
		return 0;
	for (unsigned j = f->pre.first; j < f->pre.first + PREFETCH_GROUP; j++) {
		uint64_t *sptep = &sp->spt[j];
		uint64_t gpte = 0;
		unsigned acc, key;
		bool g, dirty_w;
		gfn_t gfn;

		if (j == f->pre.idx)
			continue;
		uint64_t old = spte_read(sptep);
		if (is_shadow_present_pte(old))
			continue;
		if (old != sm->trap_spte)
			break;                    /* an MMIO spte, a not-present guest entry (notrap) */
		if (!sp->role.direct) {
			gpte = sp_read_gpte(sp, fault_gpt(f, 1), j);
			if (!(gpte & PT_PRESENT_MASK) || !(gpte & PT_ACCESSED_MASK) ||
			    (gpte & f->pre.rsvd))
				break;
			gfn = (gpte & rsvd_bits(12, 51)) >> 12;
			dirty_w = (gpte & PT_DIRTY_MASK) && (gpte & PT_WRITABLE_MASK);
			acc = sp->role.access & gpte_access64(gpte, sp->role.efer_nx);
			g = gpte & PT_GLOBAL_MASK;
			key = (unsigned)((gpte & SPTE_PKEY_MASK) >> SPTE_PKEY_SHIFT);
		} else {
			gfn = (w->gpa >> 12) - f->pre.idx + j;
			dirty_w = (w->gpte[w->level] & PT_DIRTY_MASK) && (w->access & ACC_WRITE);
			acc = sp->role.access;
			g = sp->role.guest_global;
			key = sp->role.guest_pkey;
		}
		const struct memslot *slot = gfn_to_memslot(sm->mmu.env.slots, gfn);
		bool host_w = false;
		pfn_t pfn;
		if (!slot || host_hva_peek_prot(sm->mmu.env.mm, slot_gfn_to_hva(slot, gfn), &pfn,
						&host_w))
			break;
		bool ro = slot_is_readonly(slot);
		/* A KSM page is prefetched read-only. */
		bool host_writable = !ro && dirty_w && host_w;
		bool tracked = gfn_write_tracked_shared(sm, gfn, f->shared);
		bool dirty = sp->role.direct || (gpte & PT_DIRTY_MASK);
		bool mmu_w = (acc & ACC_WRITE) && dirty && host_writable && !tracked && !ro;
		bool writable = mmu_w && !slot_logs_dirty(slot);
		uint64_t spte = shadow_leaf_spte(sm, 1, pfn, acc, writable, mmu_w, host_writable, g,
						 key);
		int rc = leaf_set(sm, sp, sptep, gfn, spte, f->shared);
		if (rc)
			return rc;
		f->pf->steps++;
	}
	return 0;
}

/* Install the leaf for part @p in @sp and decide what the access does next. [L] Returns
 * RET_PF_FIXED, RET_PF_MMIO, RET_PF_EMULATE, RET_PF_RETRY or -errno. */
VMMU_HOT
static int fix_leaf(struct fault *f, struct fault_part *p, struct shadow_page *sp,
		    struct zap_batch *z)
{
	struct shadow_mmu *sm = f->sm;
	/* The leaf's level is its sp's: 1, or a large leaf (fault_goal). */
	const int level = sp->role.level;
	const uint64_t pages = spte_level_pages(level);
	uint64_t *sptep = &sp->spt[spte_index(p->gva, level)];
	const struct walk_result *w = &p->w;
	const struct memslot *slot = p->fi.slot;
	gfn_t gfn = (w->gpa >> 12) & ~(pages - 1);
	uint64_t old = spte_read(sptep);
	bool emulate;
	int rc;

	if (!slot) {
		if (f->shared)
			return RET_PF_EXCLUSIVE;
		/* MMIO: cache it, tagged with the generation read before the slot lookup. */
		if (is_mmio_spte(old) && mmio_spte_gfn(old) == gfn &&
		    mmio_spte_current(old, f->pf->mmu_gen))
			return RET_PF_MMIO;       /* still valid (a split access came this way) */
		if (old)
			spte_drop(sm, sp, sptep);
		if (sm->mmu.fmt.mmio_value && !memslot_gen_in_progress(f->pf->mmu_gen)) {
			spte_write(sptep, make_mmio_spte(&sm->mmu.fmt, gfn, f->pf->mmu_gen));
			shadow_changed(sm);
			mmu_stat_inc(&sm->mmu, pf_mmio_spte_created);
			f->pf->steps++;
		}
		return RET_PF_MMIO;
	}
	/* fault_goal judged the range before fetch shadowed the tables on the way: one of them may
	 * lie inside it (a directory inside the 2M page it maps). The refault maps smaller, as
	 * KVM's hugepage adjust after its walk of the guest tables. */
	if (level > 1 && shadow_lpage_level(sm, gfn, level, f->shared) < level)
		return RET_PF_RETRY;
	unsigned acc = leaf_access(f, sp, p, &emulate);
	bool leaf_d = w->level == 0 || (w->gpte[w->level] & PT_DIRTY_MASK);
	bool ro = slot_is_readonly(slot);
	/* A large leaf's range holds no tracked gfn (fault_goal; a shared fault's leaf_set looks
	 * again under the stripe lock). */
	bool tracked = level == 1 && gfn_write_tracked_shared(sm, gfn, f->shared);
	/* MMU-writable: only dirty logging keeps W off (the fast page fault gives it back). */
	bool mmu_w = (acc & ACC_WRITE) && leaf_d && p->fi.map_writable && !tracked && !ro;
	bool writable = mmu_w && (!slot_logs_dirty(slot) || f->write);
	/*
	 * Dirty only when writable. The TLB serves a write only from an entry cached dirty, and the
	 * hardware model checks a TLB hit against the guest's CR0.WP (a WP=0 supervisor write hits a
	 * read-only entry) where a real CPU running this shadow has WP=1: a clean read-only spte
	 * makes every write through it walk, fault and exit, as write tracking needs.
	 */
	uint64_t spte = shadow_leaf_spte(sm, level, p->fi.pfn & ~(pages - 1), acc, writable, mmu_w,
					 p->fi.map_writable,
					 w->level && (w->gpte[w->level] & PT_GLOBAL_MASK),
					 w->pkey & 0xf);

	/* Unsync and emulation (below) change more than this sp: decided before anything moves. */
	if (f->shared && f->write && ((!writable && !ro && (tracked || emulate)) ||
				      (f->e->ec & PFERR_PK)))
		return RET_PF_EXCLUSIVE;
	/* A level-2 sp's entries are linked under struct_lock by shared faults: its large leaves go
	 * in under the same lock. */
	uint32_t *lock = level == 1 ? &sp->lock : &sm->struct_lock;
	if (f->shared)
		shadow_spin_lock(sm, lock);
	old = spte_read(sptep);
	if (is_shadow_present_pte(old) && !is_last_spte(old, level)) {
		/* A link where the large leaf goes now (the range was mapped 4K by 4K: its table
		 * was shadowed, dirty logging ran, the host page was small): unlinked, the sp
		 * below kept for reuse until recycled, as KVM's. */
		if (f->shared) {
			shadow_spin_unlock(lock);
			return RET_PF_EXCLUSIVE;
		}
		spte_drop(sm, sp, sptep);
		z->flush = true;
		old = spte_read(sptep);
	}

	/* The same translation already there (another vCPU fixed it, or a stale TLB entry): the
	 * fault is spurious, unless it must still be emulated below (KVM's mmu_set_spte). */
	bool spurious = is_shadow_present_pte(old) &&
			(old & ~(PT_ACCESSED_MASK | PT_DIRTY_MASK)) ==
			(spte & ~(PT_ACCESSED_MASK | PT_DIRTY_MASK));
	rc = leaf_set(sm, sp, sptep, gfn, spte, f->shared);
	if (rc)
		goto out;
	f->pf->steps++;
	if (writable && slot_logs_dirty(slot))
		slot_mark_dirty(slot, gfn);
	if (f->shared) {
		/* What is left here for a shared fault: the READONLY exit, or the prefetch. */
		if (f->write && !writable && ro)
			rc = RET_PF_MMIO;
		else
			rc = (level == 1 ? prefetch_install(f, sp) : 0) ?:
			     spurious ? RET_PF_SPURIOUS : RET_PF_FIXED;
		goto out;
	}

	if (f->write && !writable) {
		if (ro)
			return RET_PF_MMIO;       /* a write to a READONLY slot: as KVM, an MMIO exit */
		/* --opt unsync: a write to a last-level guest table shadowed nowhere else lets the
		 * table go unsync and the write run natively (the leaf is made again, writable). */
		if (tracked && !emulate && f->nparts == 1 && (acc & ACC_WRITE) && leaf_d &&
		    p->fi.map_writable && !(f->e->ec & PFERR_PK) &&
		    (sm->mmu.env.opts & MMU_OPT_UNSYNC) &&
		    sp_try_unsync(sm, gfn, p->host))
			return fix_leaf(f, p, sp, z);
		if (tracked || emulate)
			return emulate_write(f, z);
	}
	/* The hardware (CR0.WP=1) refused a write for a protection key that the guest (WP=0: PKRU.WD
	 * binds supervisor writes only with WP) allows: only emulation can perform it. */
	if (f->write && (f->e->ec & PFERR_PK))
		return emulate_write(f, z);
	rc = level == 1 ? prefetch_install(f, sp) : 0;
	return rc ? rc : spurious ? RET_PF_SPURIOUS : RET_PF_FIXED;
out:
	if (f->shared)
		shadow_spin_unlock(lock);
	return rc;
}

static int inject_pf(struct fault *f, const struct walk_result *w)
{
	f->pf->pf_ec = w->ec;
	f->pf->pf_addr = w->addr;
	return RET_PF_INJECT;
}

/* A present spte with a reserved bit: a cached MMIO translation, valid if its generation is (or,
 * under notrap, SPTE_TRAP somewhere on the path: not MMIO, the full path shadows it).
 * RET_PF_MMIO or RET_PF_INJECT if handled, RET_PF_CONTINUE for the full path, or -errno. */
static int mmio_fault(struct fault *f)
{
	struct shadow_mmu *sm = f->sm;
	struct shadow_page *sp;
	uint64_t spte = 0, *sptep = NULL;
	struct walk_result w;

	/* An access crossing pages translates both parts before anything moves: a #PF on the other
	 * part comes before this MMIO exit, and its walk sets A/D. The full path does that. */
	if (f->nparts > 1)
		return RET_PF_CONTINUE;
	/* The walk only reads, and a stale MMIO spte is replaced by compare-and-swap (a zap or a
	 * leaf install may have replaced it first): under VMMU_MMU_LOCK_FINE it runs without
	 * mmu_lock, as the hardware walks, inside an RCU read section (every table reached through
	 * the root stays allocated until it ends; the root is this vCPU's own); else under mmu_lock
	 * exclusive. */
	bool cached = false;
	if (sm->fine)
		vmmu_rcu_read_lock();
	else
		mmu_vcpu_lock(&sm->mmu, true);
	sp = shadow_root_current(f->sv) ? f->sv->root : NULL;
	for (int level = sp ? sp->role.level : 0; sp && level >= 1; level--) {
		sptep = &sp->spt[spte_index(f->e->gva, level)];
		spte = spte_read(sptep);
		if (level == 1 || !is_shadow_present_pte(spte) || is_last_spte(spte, level))
			break;
		sp = pfn_to_sp(sm, spte_to_pfn(spte));
	}
	if (sp && sp->role.level == 1 && spte == sm->trap_spte)
		f->trap_sp = sp;
	if (sp && is_mmio_spte(spte)) {
		cached = mmio_spte_current(spte, memslots_generation(sm->mmu.env.slots));
		/* Stale: a memslot changed since; look again. */
		if (!cached && spte_cmpxchg(sptep, &spte, sm->trap_spte))
			shadow_changed(sm);
	}
	if (sm->fine)
		vmmu_rcu_read_unlock();
	else
		brlock_unlock(&sm->mmu.mmu_lock);
	if (!cached)
		return RET_PF_CONTINUE;

	/* The guest's rights and A/D bits still apply to an MMIO access. */
	enum walk_status ws = paging_walk(&f->cpu->guest, &slots_gmem_ops, sm->mmu.env.slots, f->e->gva, f->access,
					  &w);
	f->pf->steps += w.refs;
	if (ws == WALK_PF)
		return inject_pf(f, &w);
	if (ws != WALK_OK)
		return ws == WALK_ABORT ? (w.abort_err ? w.abort_err : -EIO) : -EIO;
	if ((w.gpa >> 12) != mmio_spte_gfn(spte))
		return RET_PF_CONTINUE;    /* the guest entry changed: the full path decides */
	f->pf->mmio_gpa = w.gpa;
	return RET_PF_MMIO;
}

/* Walk the parts that need it. A guest fault on one (in order) is the outcome: RET_PF_INJECT;
 * else RET_PF_CONTINUE, or -errno. @rec notes where the faulting part's walk read its entries
 * (fault_gpteps). */
VMMU_HOT
static int fault_walk(struct fault *f, struct slots_gmem_rec *rec)
{
	for (unsigned i = 0; i < f->nparts; i++) {
		struct fault_part *p = &f->part[i];
		if (i == f->fp)
			p->ws = slots_gmem_rec_walk(&f->cpu->guest, rec, p->gva, f->access, &p->w);
		else
			p->ws = paging_walk(&f->cpu->guest, &slots_gmem_ops, f->sm->mmu.env.slots,
					    p->gva, f->access, &p->w);
		p->walked = true;
		f->pf->steps += p->w.refs;
		switch (p->ws) {
		case WALK_OK:
			break;
		case WALK_PF:
			return inject_pf(f, &p->w);
		case WALK_GP:
			/* The hardware raises #GP before any exit; a part the hardware did not reach
			 * yet is left to it (the emulation gives up on it). */
			if (i == f->fp)
				return -EIO;
			break;
		case WALK_ABORT:
			return p->w.abort_err ? p->w.abort_err : -EIO;
		}
	}
	return RET_PF_CONTINUE;
}

/*
 * The fast page fault (--opt fastpf, KVM's fast_page_fault for shadow paging): a write to a leaf
 * that is write-protected only for dirty logging (SPTE_MMU_WRITABLE set, W clear: the guest
 * entry is writable and Dirty, nothing tracks the gfn, the slot is not READONLY, the host page
 * is writable) gets W (and D) back with one compare-and-swap: no guest walk, no mmu_lock. An RCU
 * read section (the memslots') keeps every table reached from the root allocated, with its sp
 * (found through the frame's private word); a zap clears sptes by exchange, so a leaf it took
 * fails our compare-and-swap.
 *
 * Only a fault whose error code is P|W (|U) qualifies: anything else (RSVD, PK, a fetch) is not
 * a missing W. A leaf already writable goes to the slow path (it decides whether the guest must
 * see the fault: SMAP, say), never "spurious" here, so a fault the hardware repeats cannot loop.
 * Ordering against a harvest (bits cleared, then leaves protected): W is set first and the page
 * marked dirty after, as tdp_fast_page_fault. The gfn of an indirect sp's leaf is read before
 * and after the compare-and-swap: a change between (another vCPU re-made the leaf for another
 * gfn with the same frame and bits: two slots aliasing one host page) marks both. KVM keeps its
 * fast path to direct sps for this; only a change and a change back inside the window, with
 * identical sptes, could still mark the other alias, whose host page is the same. Write
 * tracking's protection takes MMU_WRITABLE away by compare-and-swap too, so a leaf we fix was
 * untracked at that instant; the tracker's flush follows. Returns RET_PF_FIXED (pf->fast set) if
 * fixed, else RET_PF_CONTINUE (the slow path decides).
 */
static int fast_page_fault(struct mmu_vcpu *mv, const struct hw_exit *e, uint64_t *steps)
{
	struct shadow_vcpu *sv = mv->priv;
	struct shadow_mmu *sm = to_shadow(mv->mmu);
	uint32_t ec = e->ec;
	int ret = RET_PF_CONTINUE;

	if (!(sm->mmu.env.opts & MMU_OPT_FASTPF) ||
	    (ec & ~(uint32_t)PFERR_USER) != (PFERR_PRESENT | PFERR_WRITE))
		return RET_PF_CONTINUE;
	/* Only dirty logging leaves MMU-writable leaves read-only (no access tracking here): with
	 * no slot logging, every such fault is for the slow path (a racy read: the checks below
	 * are what make a fix correct). */
	if (!__atomic_load_n(&sm->nr_logging_slots, __ATOMIC_RELAXED))
		return RET_PF_CONTINUE;
	if (e->access_len && ((e->access_gva & 0xfff) + e->access_len > 4096))
		return RET_PF_CONTINUE;    /* a page-crossing store: the slow path orders its parts */
	vmmu_rcu_read_lock();
	/* The root the hardware runs on: only this vCPU's thread changes sv->root. */
	struct shadow_page *sp = sv->root;
	uint64_t *sptep = NULL, old = 0;
	for (int level = sp ? sp->role.level : 0; sp && level >= 1; level--) {
		sptep = &sp->spt[spte_index(e->gva, level)];
		old = spte_read(sptep);
		(*steps)++;
		if (!is_shadow_present_pte(old))
			goto out;
		if (level == 1)
			break;
		if (is_last_spte(old, level))
			goto out;          /* a large leaf: never writable in a logging slot */
		sp = pfn_to_sp(sm, spte_to_pfn(old));
	}
	if (!sp || !sptep || is_writable_pte(old) || !is_mmu_writable_spte(old) ||
	    !(old & SPTE_HOST_WRITABLE) ||
	    ((ec & PFERR_USER) && !(old & PT_USER_MASK)) ||
	    (!(ec & PFERR_USER) && (old & PT_USER_MASK) && (mv->cpu->guest.cr4 & X86_CR4_SMAP)))
		goto out;                  /* not only W missing: SMAP may refuse it too */
	unsigned idx = sptep_index(sptep);
	gfn_t gfn = sp->role.direct ? sp->gfn + idx : __atomic_load_n(&sp->gfns[idx], __ATOMIC_ACQUIRE);
	const struct memslot *slot = gfn_to_memslot(sm->mmu.env.slots, gfn);
	if (!slot || slot_is_readonly(slot))
		goto out;
	if (!mmu_fast_fix_write(sptep, old, PT_WRITABLE_MASK | PT_DIRTY_MASK, slot, gfn))
		goto out;
	(*steps)++;
	if (!sp->role.direct) {
		gfn_t now = __atomic_load_n(&sp->gfns[idx], __ATOMIC_ACQUIRE);
		const struct memslot *s2 = now != gfn ? gfn_to_memslot(sm->mmu.env.slots, now) : NULL;
		if (s2 && slot_logs_dirty(s2))
			slot_mark_dirty(s2, now);
	}
	shadow_changed(sm);
	ret = RET_PF_FIXED;
out:
	vmmu_rcu_read_unlock();
	return ret;
}

/*
 * No-trap: the guest walk found entry w.level not present (the #PF is injected as it is). Make
 * the spte of that entry truly non-present, so the guest's next fault there needs no exit: build
 * the chain down to the sp of the table holding it (checking each guest entry, as a fault does)
 * and turn its SPTE_TRAP into 0. Inside the read section; takes mmu_lock. Best effort: any
 * obstacle (a race, no memory) leaves the entry trapping, which is always correct.
 */
static bool table_is_unsync(struct shadow_mmu *sm, gfn_t gfn)
{
	struct hnode *n;

	if (!sm->nr_unsync)
		return false;
	htab_for_each_key(&sm->sp_hash, n, gfn)
		if (caa_container_of(n, struct shadow_page, hash)->unsync)
			return true;
	return false;
}

/* f->gptep[] for levels @top down to @bottom of the faulting part's walk: where its entries lie
 * in host memory, as the walk read them (one look-up of each table page, not two). The
 * invalidation sequence sampled before the walk guards them. 0, or -errno: a page gone. The walk
 * read its levels top down, @bottom's last: level l's read is looked for l - @bottom back first. */
VMMU_HOT
static int fault_gpteps(struct fault *f, const struct slots_gmem_rec *rec, int top, int bottom)
{
	const struct walk_result *w = &f->part[f->fp].w;
	bool pae = paging_mode_of(&f->cpu->guest) == PAGING_PAE;
	const int lo = bottom < 1 ? 1 : bottom;

	for (int l = lo; l <= top; l++) {
		void *ptr;
		int rc;

		if (l == 3 && pae)
			continue;              /* a PDPTE register: nothing in memory to re-check */
		ptr = slots_gmem_rec_ptr(rec, w->pte_gpa[l], (unsigned)(l - lo));
		if (!ptr) {
			rc = memslots_gpa_to_ptr(f->sm->mmu.env.slots, w->pte_gpa[l], f->gpte_size,
						 false, &ptr);
			if (rc)
				return rc;
		}
		f->gptep[l] = ptr;
	}
	return 0;
}

static void notrap_install(struct fault *f, struct fault_part *p, const struct slots_gmem_rec *rec)
{
	struct shadow_mmu *sm = f->sm;
	const struct walk_result *w = &p->w;
	enum paging_mode mode = paging_mode_of(&f->cpu->guest);
	struct zap_batch z = { 0 };
	struct shadow_page *sp;

	if (mode != PAGING_4LVL && mode != PAGING_5LVL)
		return;
	if (w->level < 1 || w->top_level != w->root_level)
		return;
	/* The link above must stand for entries the guest has marked Accessed: a faulting walk
	 * sets no A bit, and a link would let later accesses through without setting it. */
	for (int l = w->root_level; l > w->level; l--)
		if (!(w->gpte[l] & PT_ACCESSED_MASK))
			return;
	/* The entry was read and is not present (a table the walk could not read is no memory:
	 * its #PF stays with the MMU; the walk records its entry as 0, and @rec kept no read of
	 * its page). */
	gfn_t table = w->level == w->root_level ?
		      (f->cpu->guest.cr3 & rsvd_bits(12, 51)) >> 12 :
		      (w->gpte[w->level + 1] & rsvd_bits(12, 51)) >> 12;
	if ((w->gpte[w->level] & PT_PRESENT_MASK) || (w->pte_gpa[w->level] >> 12) != table ||
	    !slots_gmem_rec_ptr(rec, w->pte_gpa[w->level], 0))
		return;
	/* The trap this fault met is an unsync table's own, which the locked check below would
	 * find (an unsync sp is in the hash: sp_unsync_peek): spare the exclusive lock, which every
	 * first touch of a page in an unsync table would take for nothing. */
	if (w->level == 1 && f->trap_sp && f->trap_sp->gfn == table &&
	    sp_unsync_peek(f->trap_sp))
		return;
	if (fault_gpteps(f, rec, w->root_level, w->level))
		return;
	mmu_vcpu_lock(&sm->mmu, true);
	if (mmu_invalidate_retry(&sm->mmu, f->pf->mmu_seq, MMU_HVA_ANY) ||
	    !shadow_root_current(f->sv))
		goto out;
	/* An unsync table traps until it syncs (sp_notrap_ok): spare the chain walk. */
	if (w->level == 1 && table_is_unsync(sm, table))
		goto out;
	make_mmu_pages_available(sm, (unsigned)f->sv->root->role.level, &z, false);
	if (fetch(f, p, &sp, &z, w->level) == RET_PF_CONTINUE &&
	    sp->role.level == (unsigned)w->level && sp_notrap_ok(sm, sp)) {
		uint64_t *sptep = &sp->spt[spte_index(p->gva, w->level)];
		if (spte_read(sptep) == SPTE_TRAP) {
			spte_write(sptep, 0);
			shadow_changed(sm);
			f->pf->steps++;
		}
	}
out:
	zap_batch_commit(sm, &z);
	brlock_unlock(&sm->mmu.mmu_lock);
}

/*
 * The level of the leaf for part @p (KVM's max_level and disallow_lpage): a guest large page gets
 * a leaf as large as it, the host page backing it (in a slot that holds the range, aligned, not
 * logging dirty pages: mmu_max_level) and write tracking allow (no guest table inside: its
 * writes must exit); 1 for everything else. A 1G leaf is made under mmu_lock exclusive only
 * (RET_PF_EXCLUSIVE: what a shared fault that shadows a table inside looks at is its GiB's
 * count, which [T] guards).
 */
static int fault_goal(const struct fault *f, const struct fault_part *p)
{
	const struct walk_result *w = &p->w;
	int max;

	if (w->root_level == 0 || w->level < 2 || !p->fi.slot || p->fi.pfn_err)
		return 1;
	max = mmu_max_level(p->fi.slot, w->gpa >> 12, p->fi.host_order);
	if (max > w->level)
		max = w->level;
	if (max < 2)
		return 1;
	if (max == 3 && f->shared)
		return RET_PF_EXCLUSIVE;
	return shadow_lpage_level(f->sm, w->gpa >> 12, max, f->shared);
}

/* The locked phase: the chain from the root, the leaf, what the access does next. [L], or under
 * f->shared mmu_lock shared: RET_PF_EXCLUSIVE then asks for the exclusive lock and a second
 * call, which does everything (the first changed nothing but sps it made and linked). */
VMMU_HOT
static int fault_locked(struct fault *f, struct fault_part *p, struct zap_batch *z)
{
	struct shadow_mmu *sm = f->sm;
	struct shadow_page *leaf_sp;
	unsigned need;
	int rc;

	/* A host page the walk or lookup used may have changed since: start over. */
	if (mmu_invalidate_retry(&sm->mmu, f->pf->mmu_seq, MMU_HVA_ANY))
		return RET_PF_RETRY;
	if (!shadow_root_current(f->sv)) {
		bool changed;
		if (f->shared)
			return RET_PF_EXCLUSIVE;
		rc = shadow_load_root_locked(f->sv, false, &changed);
		return rc ? rc : RET_PF_RETRY;
	}
	/*
	 * A store crossing into MMIO (or read-only memory) from a RAM page: vm/ stores
	 * the RAM part itself, then exits to MMIO. Building the chain for the MMIO part could
	 * shadow the RAM page again (if it is one of that part's guest tables) and make that store
	 * exit again, for ever: no chain, no MMIO spte then.
	 */
	if (f->write && f->nparts == 2 && f->fp == 1 && (!p->fi.slot || slot_is_readonly(p->fi.slot)))
		return RET_PF_MMIO;
	need = (unsigned)f->sv->root->role.level;
	if (!f->shared) {
		make_mmu_pages_available(sm, need, z, f->credited);
	} else {
		/* An MMIO spte replaces what it finds: exclusive before anything is counted. */
		if (!p->fi.slot)
			return RET_PF_EXCLUSIVE;
		f->credited = true;
		if (!mmu_pages_available_shared(sm, need))
			return RET_PF_EXCLUSIVE;
	}
	int goal = fault_goal(f, p);
	if (goal == RET_PF_EXCLUSIVE)
		return goal;
	rc = fetch(f, p, &leaf_sp, z, goal);
	if (rc != RET_PF_CONTINUE)
		return rc;
	return fix_leaf(f, p, leaf_sp, z);
}

/* A #PF exit: the two phases of the file comment. */
static int shadow_fault(struct fault *f)
{
	struct shadow_mmu *sm = f->sm;
	struct fault_part *p = &f->part[f->fp];
	struct slots_gmem_rec rec;
	struct zap_batch z = { 0 };
	int rc;

	if (f->e->ec & PFERR_RSVD) {
		rc = mmio_fault(f);
		if (rc != RET_PF_CONTINUE) {
			f->pf->mmio_fast = true;      /* KVM's handle_mmio_page_fault */
			return rc;
		}
	}
	/* KVM's kvm_mmu_page_fault: every fault the fast MMIO path did not take. */
	mmu_stat_inc(&sm->mmu, pf_taken);
	rc = fast_page_fault(f->pf->mv, f->e, &f->pf->steps);
	if (rc != RET_PF_CONTINUE) {
		f->pf->fast = true;
		return rc;
	}

	vmmu_rcu_read_lock();
	mmu_fault_begin(f->pf);
	rec.ms = sm->mmu.env.slots;
	rec.cache = &f->sv->gpt_cache;
	rec.n = 0;
	rc = fault_walk(f, &rec);
	if (rc == RET_PF_INJECT && sm->notrap && f->nparts == 1 && !(f->pf->pf_ec & PFERR_PRESENT))
		notrap_install(f, p, &rec);
	if (rc != RET_PF_CONTINUE)
		goto out_unlock_read;

	for (unsigned i = 0; i < f->nparts; i++) {
		if (f->part[i].ws != WALK_OK)
			continue;
		rc = fault_resolve(f, &f->part[i]);
		if (rc)
			goto out_unlock_read;
	}
	/* A part with no host memory behind its slot fails the whole access (-EFAULT) before any
	 * part is fixed: no spte made writable and nothing logged dirty for a store that will not
	 * happen, as native mode checks every part before a byte moves. The one place: nothing
	 * under fault_locked() sees a part with fi.pfn_err. */
	for (unsigned i = 0; i < f->nparts; i++) {
		if (f->part[i].ws == WALK_OK && f->part[i].fi.slot && f->part[i].fi.pfn_err) {
			rc = f->part[i].fi.pfn_err;
			goto out_unlock_read;
		}
	}
	if (fault_gpteps(f, &rec, p->w.root_level, p->w.level)) {
		rc = RET_PF_RETRY;             /* gone since the walk */
		goto out_unlock_read;
	}
	prefetch_plan(f, p);

	/* VMMU_MMU_LOCK_FINE: shared first; a fault that needs more starts phase 2 over under the
	 * exclusive lock, its steps as if it had gone there first (what the shared attempt made,
	 * the exclusive one finds made). */
	uint64_t steps = f->pf->steps;
	f->shared = sm->fine;
	mmu_vcpu_lock(&sm->mmu, !f->shared);
	rc = fault_locked(f, p, &z);
	if (rc == RET_PF_EXCLUSIVE) {
		brlock_unlock(&sm->mmu.mmu_lock);
		f->pf->steps = steps + f->made_steps;
		f->shared = false;
		mmu_vcpu_lock(&sm->mmu, true);
		rc = fault_locked(f, p, &z);
	}
	zap_batch_commit(sm, &z);
	brlock_unlock(&sm->mmu.mmu_lock);
	if (rc == RET_PF_MMIO && !f->pf->mmio_done)
		f->pf->mmio_gpa = p->w.gpa;
out_unlock_read:
	vmmu_rcu_read_unlock();
	return rc;
}

VMMU_HOT
int shadow_page_fault(struct mmu_page_fault *pf)
{
	const struct hw_exit *e = pf->e;
	struct fault f;

	if (e->reason != VMMU_EXIT_PF)
		return -EINVAL;
	fault_init(&f, pf);
	pf->write = f.write;
	fault_parts(&f);
	/* One read section for the whole fault: the fast path's, the walk's and the host
	 * look-ups' then nest in it, and only count (each outermost one is a liburcu-bp call). */
	vmmu_rcu_read_lock();
	int rc = shadow_fault(&f);
	vmmu_rcu_read_unlock();
	return rc;
}
