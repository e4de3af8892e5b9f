/* SPDX-License-Identifier: MIT */
/* Guest physical memory through the memslots for the walker; see slots_gmem.h. An A/D swap holds
 * the host page still (memslots_gpa_access, or for a page the reader's cache holds
 * memslots_gpa_cmpxchg_cached): a hypervisor walk's A/D write must not land in a frame a collapse
 * or merge has copied, or freed, meanwhile. A load needs only to have been made
 * while the frame backed the page: memslots_gpa_read_word, lockless where it can (the recording
 * walk's through the reader's cache, memslots_gpa_read_word_cached, where it has one). */
#include <errno.h>
#include <string.h>

#include "hot.h"
#include "paging/slots_gmem.h"

static int walker_err(int rc)
{
	if (rc == -EPERM)
		return -EACCES;
	/* -EFAULT (no host memory behind a slot's hva) aborts the walk: the access fails. */
	return rc;
}

/* Through @cache's way @way if the reader has a cache (NULL: none). */
VMMU_HOT
static int read_word(struct memslots *ms, struct memslots_wcache *cache, unsigned way, gpa_t gpa,
		     void *buf, unsigned len, uint8_t **ptr)
{
	uint64_t v;
	int rc = cache ? memslots_gpa_read_word_cached(ms, cache, way, gpa, len, &v, ptr) :
			 memslots_gpa_read_word(ms, gpa, len, &v, ptr);

	if (!rc) {
		if (len == 8)
			*(uint64_t *)buf = v;
		else
			*(uint32_t *)buf = (uint32_t)v;
	}
	return walker_err(rc);
}

static int slots_read(void *opaque, gpa_t gpa, void *buf, unsigned len)
{
	uint8_t *ptr;

	return read_word(opaque, NULL, 0, gpa, buf, len, &ptr);
}

/* One naturally aligned word compare-and-swapped (another vCPU may swap it at any time: the
 * hardware sets A/D so), with the host page held still; through the reader's cache if it has
 * one (NULL: none), a page just read through it needing no look-up. */
VMMU_HOT
static int swap_word(struct memslots *ms, struct memslots_wcache *cache, gpa_t gpa, uint64_t old,
		     uint64_t val, unsigned len)
{
	bool ok;
	int rc = memslots_gpa_cmpxchg_cached(ms, cache, gpa, len, old, val, &ok);

	if (rc)
		return walker_err(rc);
	return ok ? 0 : -EAGAIN;
}

static int slots_cmpxchg(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	return swap_word(opaque, NULL, gpa, old, val, len);
}

const struct guest_mem_ops slots_gmem_ops = {
	.read = slots_read,
	.cmpxchg = slots_cmpxchg,
};

VMMU_HOT
static int rec_read(void *opaque, gpa_t gpa, void *buf, unsigned len)
{
	struct slots_gmem_rec *r = opaque;
	uint8_t *ptr;
	/* Way n: a walk reads its levels in the same order every time. */
	int rc = read_word(r->ms, r->cache, r->n, gpa, buf, len, &ptr);

	if (!rc) {
		unsigned i = r->n++ % SLOTS_GMEM_REC_MAX;

		r->e[i].gfn = gpa >> 12;
		r->e[i].page = ptr - (gpa & 0xfff);
	}
	return rc;
}

VMMU_HOT
static int rec_cmpxchg(void *opaque, gpa_t gpa, uint64_t old, uint64_t val, unsigned len)
{
	const struct slots_gmem_rec *r = opaque;

	return swap_word(r->ms, r->cache, gpa, old, val, len);
}

const struct guest_mem_ops slots_gmem_rec_ops = {
	.read = rec_read,
	.cmpxchg = rec_cmpxchg,
};

/* The recording walk's own instance of the walker (walk_tmpl.h), rec_walk64_addr, for 4- and
 * 5-level guests: its reads call rec_read directly, which the compiler then inlines, where
 * through ops->read each was an indirect call. Every soft-MMU #PF walks so, four reads a walk. */
#define PTTYPE 64
#define WALK_INSTANCE rec_
#define WALK_READ(ops, opaque, gpa, buf, len) rec_read(opaque, gpa, buf, len)
#include "paging/walk_tmpl.h"
#undef WALK_INSTANCE
#undef PTTYPE

VMMU_HOT
enum walk_status slots_gmem_rec_walk(const struct paging_ctx *ctx, struct slots_gmem_rec *rec,
				     gva_t gva, unsigned access, struct walk_result *r)
{
	const enum paging_mode mode = paging_mode_of(ctx);

	if (mode >= PAGING_4LVL && paging_canonical(gva, mode))
		return rec_walk64_addr(ctx, &slots_gmem_rec_ops, rec, gva, access, NULL, r);
	return paging_walk(ctx, &slots_gmem_rec_ops, rec, gva, access, r);
}

VMMU_HOT
void *slots_gmem_rec_ptr(const struct slots_gmem_rec *r, gpa_t gpa, unsigned back)
{
	unsigned oldest = r->n > SLOTS_GMEM_REC_MAX ? r->n - SLOTS_GMEM_REC_MAX : 0;
	gfn_t gfn = gpa >> 12;

	if (back < r->n - oldest) {
		unsigned i = (r->n - 1 - back) % SLOTS_GMEM_REC_MAX;
		if (r->e[i].gfn == gfn)
			return r->e[i].page + (gpa & 0xfff);
	}
	/* Newest first: a page read again (the walk started over) is where it was last. */
	for (unsigned i = r->n; i-- > oldest;) {
		if (r->e[i % SLOTS_GMEM_REC_MAX].gfn == gfn)
			return r->e[i % SLOTS_GMEM_REC_MAX].page + (gpa & 0xfff);
	}
	return NULL;
}
