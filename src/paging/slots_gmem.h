/* SPDX-License-Identifier: MIT */
/*
 * Guest physical memory through the memslots, as the page walker reaches it from software (the
 * MMUs' walks of guest tables, the scenario model): struct guest_mem_ops whose opaque is a
 * struct memslots *. Reads are atomic loads (memslots_gpa_read_word: no host mm lock where the
 * page is mapped and young), A/D updates compare-and-swap under it, each in its own memslot read
 * section (sections nest, so callers already in one are fine). Errors in the
 * walker's vocabulary: no memory (no slot) is -ENOENT (the guest's #PF), a read-only slot
 * refuses a swap with -EACCES; a slot with no host memory behind its hva (munmapped) is -EFAULT,
 * which aborts the walk: the access fails, as KVM_RUN does. Beyond RCU, the host mm's read lock
 * for swaps and for the loads the lockless path refuses: never with mmu_lock held.
 */
#ifndef VMMU_PAGING_SLOTS_GMEM_H
#define VMMU_PAGING_SLOTS_GMEM_H

#include "mem/memslot.h"
#include "paging/paging.h"

extern const struct guest_mem_ops slots_gmem_ops;

/*
 * The same walk, noting where each entry it read lies in host memory: an MMU that re-reads the
 * entries of its walk later (has a guest entry changed since?) needs no second look-up of each
 * table page. Opaque: a struct slots_gmem_rec, ms and cache set and n zero before the walk. A pointer is
 * what memslots_gpa_to_ptr() would give at the read: it backs the gpa until the hva mapping
 * changes, so the caller's invalidation sequence, sampled before the walk, guards its use.
 */
#define SLOTS_GMEM_REC_MAX 8
struct slots_gmem_rec {
	struct memslots *ms;
	struct memslots_wcache *cache;     /* the reader's (NULL: none): the n-th read uses way n */
	unsigned n;                        /* reads so far; the last SLOTS_GMEM_REC_MAX kept */
	struct {
		gfn_t gfn;
		uint8_t *page;
	} e[SLOTS_GMEM_REC_MAX];
};

extern const struct guest_mem_ops slots_gmem_rec_ops;

/* paging_walk(@ctx, &slots_gmem_rec_ops, @rec, ...): the same walk and result, through an
 * instance of the walker whose reads are inline for 4- and 5-level guests. */
enum walk_status slots_gmem_rec_walk(const struct paging_ctx *ctx, struct slots_gmem_rec *rec,
				     gva_t gva, unsigned access, struct walk_result *r);

/* The host address of the entry at @gpa as the walk read its page: by the read @back reads
 * before the last (0: the last) if that one was of the page (a walker's caller knows which read
 * each level was), else by the page's last read kept; NULL if none is. */
void *slots_gmem_rec_ptr(const struct slots_gmem_rec *r, gpa_t gpa, unsigned back);

#endif
