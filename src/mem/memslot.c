/* SPDX-License-Identifier: MIT */
/*
 * Memslots: KVM_SET_USER_MEMORY_REGION rules, the sorted slot array and its RCU publication,
 * gfn -> slot -> hva -> pfn, dirty bitmaps.
 *
 * Two arrays, as KVM's active/inactive memslot sets: readers search ms->active; an update edits
 * ms->inactive (which no reader can see), publishes it with a store-release (rcu_assign_pointer),
 * waits for a grace period, runs the change hook, and then replays the same edit on the array
 * that was active, now unreachable, so both stay equal. An update thus costs O(log n) plus a
 * memmove of the entries after the edit point (nothing when slots are added in gfn order), with
 * no copy of the whole set.
 *
 * Invariants: both arrays hold the same slots, sorted by base gfn, non-overlapping, once an
 * update returns; ms->id_slot[id] is the published slot with that id; a struct memslot and its
 * bitmaps are freed only after a grace period that follows their unpublication. With
 * ms->ksm_track every slot has a ksm_bitmap.
 *
 * Locking: ms->lock serializes updaters and guards ms->inactive and ms->ops; ms->active,
 * ms->id_slot[] and array->gen are read lock-free (atomic loads, inside a read section).
 * Publication is a __atomic store-release, the read a load-acquire: the ordering of
 * rcu_assign_pointer/rcu_dereference, written so ThreadSanitizer sees it.
 */
#include "hot.h"
#include "mem/memslot.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <urcu-bp.h>

#include "host/rcu.h"


/* One slot in an array; base/end copied from the slot so a search touches only the array. */
struct slot_entry {
	gfn_t base;                 /* slot->base_gfn */
	gfn_t end;                  /* slot->base_gfn + slot->npages */
	struct memslot *slot;
};

struct memslot_array {
	uint64_t gen;               /* atomic; set before publication, made even after the grace period */
	uint32_t nr;                /* entries in use */
	uint32_t cap;               /* entries allocated */
	struct slot_entry e[];      /* sorted by base, non-overlapping */
};

/* Legend: [L] guarded by lock, [R] read lock-free by readers (atomics), [C] constant after create. */
struct memslots {
	pthread_mutex_t lock;
	struct memslot_array *active;      /* [L, R] the published set */
	struct memslot_array *inactive;    /* [L] the other one; no reader sees it */
	struct memslot **id_slot;          /* [L, R] VMMU_USER_MEM_SLOTS entries: id -> slot */
	struct host_mm *mm;                /* [C] the VMM address space the hvas live in */
	gfn_t max_gfn;                     /* [C] last gfn a slot may contain */
	const struct memslots_ops *ops;    /* [L] hooks, or NULL */
	void *opaque;                      /* [L] their argument */
	uint64_t gen;                      /* [L, R] the active set's generation, readable without a
					    * read section (every access checks it) */
	bool ksm_track;                    /* [L] slots get a ksm_bitmap */
};

#define ARRAY_MIN_CAP 8u

static struct memslot_array *array_alloc(uint32_t cap)
{
	struct memslot_array *a = malloc(sizeof(*a) + (size_t)cap * sizeof(a->e[0]));

	if (!a)
		return NULL;
	a->gen = 0;
	a->nr = 0;
	a->cap = cap;
	return a;
}

/* Number of entries whose base is <= @gfn: the slot that may hold @gfn is the one before it. */
static uint32_t array_upper(const struct memslot_array *a, gfn_t gfn)
{
	uint32_t lo = 0, hi = a->nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (a->e[mid].base <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct memslot *array_lookup(const struct memslot_array *a, gfn_t gfn)
{
	uint32_t i = array_upper(a, gfn);

	if (i == 0 || gfn >= a->e[i - 1].end)
		return NULL;
	return a->e[i - 1].slot;
}

static struct slot_entry entry_of(struct memslot *s)
{
	return (struct slot_entry){ .base = s->base_gfn, .end = slot_end_gfn(s), .slot = s };
}

/* Replay one change on a quiescent array with room for it: remove @old, insert @new. */
static void array_apply(struct memslot_array *a, const struct memslot *old, struct memslot *new)
{
	uint32_t i;

	if (old) {
		i = array_upper(a, old->base_gfn);
		assert(i > 0 && a->e[i - 1].slot == old);
		i--;
		if (new && new->base_gfn == old->base_gfn) {   /* FLAGS_ONLY: in place */
			a->e[i] = entry_of(new);
			return;
		}
		memmove(&a->e[i], &a->e[i + 1], (a->nr - i - 1) * sizeof(a->e[0]));
		a->nr--;
	}
	if (new) {
		assert(a->nr < a->cap);
		i = array_upper(a, new->base_gfn);
		memmove(&a->e[i + 1], &a->e[i], (a->nr - i) * sizeof(a->e[0]));
		a->e[i] = entry_of(new);
		a->nr++;
	}
}

/* kvm_check_memslot_overlap(): does a slot other than @id intersect [start, end)? */
static bool array_overlaps(const struct memslot_array *a, uint16_t id, gfn_t start, gfn_t end)
{
	uint32_t i = array_upper(a, start);

	/* Entries before i-1 end at or before e[i-1].base <= start. */
	for (i = i ? i - 1 : 0; i < a->nr && a->e[i].base < end; i++)
		if (a->e[i].end > start && a->e[i].slot->id != id)
			return true;
	return false;
}

static struct memslot_array *active_array(struct memslots *ms)
{
	return __atomic_load_n(&ms->active, __ATOMIC_ACQUIRE);
}

/* ---- reader side ---- */

const uint64_t *memslots_generation_ptr(struct memslots *ms)
{
	return &ms->gen;
}

uint64_t memslots_generation(struct memslots *ms)
{
	return __atomic_load_n(&ms->gen, __ATOMIC_ACQUIRE);
}

VMMU_HOT
const struct memslot *gfn_to_memslot(struct memslots *ms, gfn_t gfn)
{
	return array_lookup(active_array(ms), gfn);
}

/*
 * The cache is valid iff the current set has the generation the cached slot was found under:
 * generations are never reused, so that set is the one the slot came from, and the slot is alive
 * until the caller's read section ends.
 */
VMMU_HOT
const struct memslot *gfn_to_memslot_cached(struct memslots *ms, struct slot_cache *c, gfn_t gfn)
{
	const struct memslot_array *a = active_array(ms);
	uint64_t gen = __atomic_load_n(&a->gen, __ATOMIC_ACQUIRE);
	const struct memslot *s = c->slot;

	if (s && c->gen == gen && slot_contains(s, gfn)) {
		c->hits++;
		return s;
	}
	c->misses++;
	s = array_lookup(a, gfn);
	if (s) {
		c->slot = s;
		c->gen = gen;
	}
	return s;
}

const struct memslot *memslots_id_to_slot(struct memslots *ms, uint32_t id)
{
	if (id >= VMMU_USER_MEM_SLOTS)
		return NULL;
	return __atomic_load_n(&ms->id_slot[id], __ATOMIC_ACQUIRE);
}

uint32_t memslots_count(struct memslots *ms)
{
	uint32_t n;

	vmmu_rcu_read_lock();
	n = active_array(ms)->nr;
	vmmu_rcu_read_unlock();
	return n;
}

const struct memslot *memslot_iter_first(struct memslot_iter *it, struct memslots *ms, gfn_t start,
					 gfn_t end)
{
	const struct memslot_array *a = active_array(ms);
	uint32_t i = array_upper(a, start);

	if (i > 0 && a->e[i - 1].end > start)
		i--;
	it->arr = a;
	it->idx = i;
	it->end = end;
	if (start >= end)
		it->idx = a->nr;
	return memslot_iter_next(it);
}

const struct memslot *memslot_iter_next(struct memslot_iter *it)
{
	const struct memslot_array *a = it->arr;

	if (it->idx >= a->nr || a->e[it->idx].base >= it->end)
		return NULL;
	return a->e[it->idx++].slot;
}

VMMU_HOT
int slot_gfn_to_pfn_prot(struct memslots *ms, const struct memslot *slot, gfn_t gfn, bool write,
			 pfn_t *pfn, unsigned *order, bool *writable)
{
	if (write && slot_is_readonly(slot))
		return -EPERM;
	if (!ms->mm)
		return -EFAULT;
	return host_hva_to_pfn_order(ms->mm, slot_gfn_to_hva(slot, gfn), write, pfn, order,
				     writable);
}

int slot_gfn_to_pfn(struct memslots *ms, const struct memslot *slot, gfn_t gfn, bool write,
		    pfn_t *pfn, bool *huge)
{
	unsigned order = HOST_ORDER_4K;
	int rc = slot_gfn_to_pfn_prot(ms, slot, gfn, write, pfn, &order, NULL);

	if (!rc && huge)
		*huge = order != HOST_ORDER_4K;
	return rc;
}

int gfn_to_hva(struct memslots *ms, gfn_t gfn, bool write, hva_t *hva)
{
	const struct memslot *slot;
	int r = 0;

	vmmu_rcu_read_lock();
	slot = gfn_to_memslot(ms, gfn);
	if (!slot)
		r = -ENOENT;
	else if (write && slot_is_readonly(slot))
		r = -EPERM;
	else
		*hva = slot_gfn_to_hva(slot, gfn);
	vmmu_rcu_read_unlock();
	return r;
}

int gfn_to_pfn(struct memslots *ms, gfn_t gfn, bool write, pfn_t *pfn, bool *huge)
{
	const struct memslot *slot;
	int r;

	vmmu_rcu_read_lock();
	slot = gfn_to_memslot(ms, gfn);
	r = slot ? slot_gfn_to_pfn(ms, slot, gfn, write, pfn, huge) : -ENOENT;
	vmmu_rcu_read_unlock();
	return r;
}

VMMU_HOT
int memslots_gpa_to_ptr(struct memslots *ms, gpa_t gpa, size_t len, bool write, void **ptr)
{
	uint64_t off = gpa & (VMMU_PAGE_SIZE - 1);
	gfn_t gfn = gpa >> VMMU_PAGE_SHIFT;
	const struct memslot *slot;
	pfn_t pfn;
	int r;

	if (len == 0 || len > VMMU_PAGE_SIZE - off)
		return -EINVAL;
	vmmu_rcu_read_lock();
	slot = gfn_to_memslot(ms, gfn);
	r = slot ? slot_gfn_to_pfn(ms, slot, gfn, write, &pfn, NULL) : -ENOENT;
	if (r == 0)
		*ptr = (char *)host_pfn_to_ptr(host_mm_arena(ms->mm), pfn) + off;
	vmmu_rcu_read_unlock();
	return r;
}

/* Copy between guest memory @g and the caller's @p as aligned 8-byte (else single-byte) relaxed
 * atomics: vCPU threads may access the same guest memory at the same time, and a VMM access
 * racing with them is allowed (each aligned word is single-copy atomic, as on x86). */
static void copy_relaxed(uint8_t *g, uint8_t *p, size_t n, bool write)
{
	while (n && ((uintptr_t)g & 7)) {
		if (write)
			__atomic_store_n(g, *p, __ATOMIC_RELAXED);
		else
			*p = __atomic_load_n(g, __ATOMIC_RELAXED);
		g++, p++, n--;
	}
	for (; n >= 8; g += 8, p += 8, n -= 8) {
		uint64_t w;
		if (write) {
			memcpy(&w, p, 8);
			__atomic_store_n((uint64_t *)g, w, __ATOMIC_RELAXED);
		} else {
			w = __atomic_load_n((uint64_t *)g, __ATOMIC_RELAXED);
			memcpy(p, &w, 8);
		}
	}
	for (; n; g++, p++, n--) {
		if (write)
			__atomic_store_n(g, *p, __ATOMIC_RELAXED);
		else
			*p = __atomic_load_n(g, __ATOMIC_RELAXED);
	}
}

int memslots_gpa_access(struct memslots *ms, gpa_t gpa, size_t len, bool write,
			void (*fn)(void *ptr, void *arg), void *arg)
{
	uint64_t off = gpa & (VMMU_PAGE_SIZE - 1);
	gfn_t gfn = gpa >> VMMU_PAGE_SHIFT;
	const struct memslot *slot;
	int r;

	if (len == 0 || len > VMMU_PAGE_SIZE - off)
		return -EINVAL;
	if (!ms->mm)
		return -EFAULT;
	vmmu_rcu_read_lock();
	slot = gfn_to_memslot(ms, gfn);
	if (!slot) {
		r = -ENOENT;
	} else if (write && slot_is_readonly(slot)) {
		r = -EPERM;
	} else {
		r = host_hva_access(ms->mm, slot_gfn_to_hva(slot, gfn) + off, write, fn, arg);
		/* After the write, as KVM's kvm_write_guest marks: marked before it, a harvest between
		 * the two could clear the bit and copy the page, and the write land unrecorded. */
		if (write && !r)
			slot_mark_written(slot, gfn);
	}
	vmmu_rcu_read_unlock();
	return r;
}

struct word_arg {
	unsigned len;
	uint64_t val;
	uint8_t *ptr;
};

static void word_fn(void *ptr, void *arg)
{
	struct word_arg *w = arg;

	w->ptr = ptr;
	w->val = host_word_load(ptr, w->len);
}

/* memslots_gpa_read_word; *@tok gets the peek's token, or an odd inval_seq (no peek's: never
 * matches) where the word came from the locked access. */
static int read_word_tok(struct memslots *ms, gpa_t gpa, unsigned len, uint64_t *val, uint8_t **ptr,
			 struct host_peek_tok *tok, const struct memslot **slotp)
{
	struct word_arg w = { .len = len };
	const struct memslot *slot;
	int r;

	tok->inval_seq = 1;
	if ((len != 4 && len != 8) || (gpa & (len - 1)))
		return -EINVAL;
	if (!ms->mm)
		return -EFAULT;
	vmmu_rcu_read_lock();
	slot = gfn_to_memslot(ms, gpa >> VMMU_PAGE_SHIFT);
	if (!slot) {
		r = -ENOENT;
	} else {
		hva_t hva = slot_gfn_to_hva(slot, gpa >> VMMU_PAGE_SHIFT) + (gpa & (VMMU_PAGE_SIZE - 1));

		r = host_hva_peek_word(ms->mm, hva, len, &w.val, &w.ptr, tok);
		if (r == -EAGAIN)   /* *tok untouched: still odd */
			r = host_hva_access(ms->mm, hva, false, word_fn, &w);
	}
	vmmu_rcu_read_unlock();
	if (!r) {
		*val = w.val;
		*ptr = w.ptr;
		*slotp = slot;
	}
	return r;
}

/* Not inlined: a walker's read that has a cache (memslots_gpa_read_word_cached) inlines its hit
 * and should not carry this look-up, which serves readers without one. */
__attribute__((noinline)) int memslots_gpa_read_word(struct memslots *ms, gpa_t gpa, unsigned len,
						     uint64_t *val, uint8_t **ptr)
{
	struct host_peek_tok tok;
	const struct memslot *slot;

	return read_word_tok(ms, gpa, len, val, ptr, &tok, &slot);
}

/* memslots_gpa_read_word_cached's miss, into entry @e, which a look-up made under generation
 * @gen refills. Out of line: the hit, a few loads and compares, then needs few registers, and
 * the walker's read inlines it. */
__attribute__((noinline)) static int read_word_cached_miss(struct memslots *ms,
							   struct memslots_wcache *c,
							   struct memslots_wcache_ent *e, gpa_t gpa,
							   unsigned len, uint64_t *val, uint8_t **ptr,
							   uint64_t gen)
{
	const unsigned off = gpa & (VMMU_PAGE_SIZE - 1);
	int r;

	c->misses++;
	r = read_word_tok(ms, gpa, len, val, ptr, &e->tok, &e->slot);
	if (!r && !(e->tok.inval_seq & 1) && !memslot_gen_in_progress(gen)) {
		e->ms = ms;
		e->gfn = gpa >> VMMU_PAGE_SHIFT;
		e->page = *ptr - off;
		e->gen = gen;
	} else {
		e->page = NULL;
	}
	return r;
}

VMMU_HOT
int memslots_gpa_read_word_cached(struct memslots *ms, struct memslots_wcache *c, unsigned way,
				  gpa_t gpa, unsigned len, uint64_t *val, uint8_t **ptr)
{
	/* Two entries a way: the walks of one soft-MMU fault go through two tables at one level
	 * (a process's and the kernel direct map's PDPT, and PD), which took the one entry of their
	 * way in turn and missed, four look-ups a fault. A miss replaces the older of the two. */
	struct memslots_wcache_ent *e = &c->e[(way % MEMSLOTS_WCACHE_WAYS) * 2];
	const gfn_t gfn = gpa >> VMMU_PAGE_SHIFT;
	const unsigned off = gpa & (VMMU_PAGE_SIZE - 1);
	int r = -EAGAIN;

	if (e->gfn != gfn || e->ms != ms || !e->page)
		if ((e[1].gfn == gfn && e[1].ms == ms && e[1].page) || e[1].used < e->used)
			e++;
	e->used = ++c->clock;

	/* The generation and the load in one read section, as the look-up's: a slot change that
	 * the check did not see waits for the load. */
	vmmu_rcu_read_lock();
	/* Before the look-up, as for an MMIO spte: a slot change completed after it moves it. */
	const uint64_t gen = memslots_generation(ms);
	if (e->page && e->ms == ms && e->gfn == gfn && e->gen == gen && !(off & (len - 1)) &&
	    (len == 4 || len == 8))
		r = host_peek_again(ms->mm, &e->tok, e->page + off, len, val);
	vmmu_rcu_read_unlock();
	if (!r) {
		c->hits++;
		*ptr = e->page + off;
		return 0;
	}
	return read_word_cached_miss(ms, c, e, gpa, len, val, ptr, gen);
}

/* A swap of one word through memslots_gpa_access (ok: it swapped). */
struct swap_arg {
	unsigned len;
	bool ok;
	uint64_t old, val;
};

static void swap_fn(void *ptr, void *arg)
{
	struct swap_arg *o = arg;

	o->ok = host_word_cmpxchg(ptr, o->len, o->old, o->val);
}

VMMU_HOT
int memslots_gpa_cmpxchg_cached(struct memslots *ms, struct memslots_wcache *c, gpa_t gpa,
				unsigned len, uint64_t old, uint64_t val, bool *ok)
{
	const gfn_t gfn = gpa >> VMMU_PAGE_SHIFT;
	const unsigned off = gpa & (VMMU_PAGE_SIZE - 1);
	int r = -EAGAIN;

	if ((len != 4 && len != 8) || (off & (len - 1)))
		return -EINVAL;
	/* As the cached read: the generation checked and the slot used inside one read section (a
	 * slot of the generation the entry was made in is the one a look-up would find, and stays
	 * allocated until the section ends). */
	vmmu_rcu_read_lock();
	const uint64_t gen = memslots_generation(ms);
	for (unsigned i = 0; c && i < MEMSLOTS_WCACHE; i++) {
		struct memslots_wcache_ent *e = &c->e[i];

		if (!e->page || e->ms != ms || e->gfn != gfn || e->gen != gen)
			continue;
		if (slot_is_readonly(e->slot))
			break;
		r = host_cmpxchg_again(ms->mm, &e->tok, e->page + off, len, old, val, ok);
		if (!r) {
			slot_mark_dirty(e->slot, gfn);
			c->swap_hits++;
		}
		break;
	}
	vmmu_rcu_read_unlock();
	if (r != -EAGAIN)
		return r;
	struct swap_arg o = { .len = len, .old = old, .val = val };
	r = memslots_gpa_access(ms, gpa, len, true, swap_fn, &o);
	if (!r)
		*ok = o.ok;
	return r;
}

struct copy_arg {
	uint8_t *buf;
	size_t len;
	bool write;
};

static void copy_fn(void *ptr, void *arg)
{
	struct copy_arg *c = arg;

	copy_relaxed(ptr, c->buf, c->len, c->write);
}

static int guest_copy(struct memslots *ms, gpa_t gpa, void *buf, size_t len, bool write)
{
	char *p = buf;

	if (gpa + len < gpa)
		return -EFAULT;
	while (len) {
		size_t chunk = VMMU_PAGE_SIZE - (gpa & (VMMU_PAGE_SIZE - 1));
		int r;

		if (chunk > len)
			chunk = len;
		struct copy_arg c = { .buf = (uint8_t *)p, .len = chunk, .write = write };

		r = memslots_gpa_access(ms, gpa, chunk, write, copy_fn, &c);
		if (r == -ENOENT || r == -EPERM)
			return -EFAULT;
		if (r)
			return r;
		gpa += chunk;
		p += chunk;
		len -= chunk;
	}
	return 0;
}

int memslots_read_guest(struct memslots *ms, gpa_t gpa, void *buf, size_t len)
{
	return guest_copy(ms, gpa, buf, len, false);
}

int memslots_write_guest(struct memslots *ms, gpa_t gpa, const void *buf, size_t len)
{
	return guest_copy(ms, gpa, (void *)buf, len, true);
}

VMMU_HOT
void slot_mark_dirty(const struct memslot *slot, gfn_t gfn)
{
	uint64_t rel = gfn - slot->base_gfn, bit = 1ULL << (rel % 64);
	uint64_t *word;

	assert(rel < slot->npages);
	for (int i = 0; i < 2; i++) {
		uint64_t *bm = i ? slot->ksm_bitmap : slot->dirty_bitmap;

		if (!bm)
			continue;
		word = &bm[rel / 64];
		/* Test first: a page written again and again costs no locked instruction. */
		if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & bit))
			__atomic_fetch_or(word, bit, __ATOMIC_RELAXED);
	}
}

void slot_mark_written(const struct memslot *slot, gfn_t gfn)
{
	/* The store being logged before the bit's test: x86 lets a load pass an earlier store, and a
	 * harvest that cleared a bit found set meanwhile would log neither the write nor it. Pairs
	 * with the fence after a harvest's exchanges (memslots_get_dirty_log, ksm_window). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	slot_mark_dirty(slot, gfn);
}

int memslots_mark_dirty(struct memslots *ms, gfn_t gfn)
{
	const struct memslot *slot;

	vmmu_rcu_read_lock();
	slot = gfn_to_memslot(ms, gfn);
	if (slot)
		slot_mark_dirty(slot, gfn);
	vmmu_rcu_read_unlock();
	return slot ? 0 : -ENOENT;
}

/* ---- update side ---- */

int memslots_create(struct host_mm *mm, unsigned phys_bits, struct memslots **out)
{
	struct memslots *ms;

	if (phys_bits == 0)
		phys_bits = MEMSLOT_DEFAULT_PHYS_BITS;
	if (phys_bits <= VMMU_PAGE_SHIFT || phys_bits > 64)
		return -EINVAL;
	ms = calloc(1, sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	ms->active = array_alloc(ARRAY_MIN_CAP);
	ms->inactive = array_alloc(ARRAY_MIN_CAP);
	/* 256 KiB of pointers, untouched (zero pages) until slots with those ids exist. */
	ms->id_slot = calloc(VMMU_USER_MEM_SLOTS, sizeof(ms->id_slot[0]));
	if (!ms->active || !ms->inactive || !ms->id_slot) {
		free(ms->active);
		free(ms->inactive);
		free(ms->id_slot);
		free(ms);
		return -ENOMEM;
	}
	pthread_mutex_init(&ms->lock, NULL);
	ms->mm = mm;
	ms->max_gfn = (1ULL << (phys_bits - VMMU_PAGE_SHIFT)) - 1;
	*out = ms;
	return 0;
}

static void slot_free(struct memslot *s)
{
	free(s->dirty_bitmap);
	free(s->ksm_bitmap);
	free(s);
}

void memslots_destroy(struct memslots *ms)
{
	if (!ms)
		return;
	for (uint32_t i = 0; i < ms->active->nr; i++)
		slot_free(ms->active->e[i].slot);
	free(ms->active);
	free(ms->inactive);
	free(ms->id_slot);
	pthread_mutex_destroy(&ms->lock);
	free(ms);
}

struct host_mm *memslots_mm(const struct memslots *ms)
{
	return ms->mm;
}

void memslots_set_ops(struct memslots *ms, const struct memslots_ops *ops, void *opaque)
{
	pthread_mutex_lock(&ms->lock);
	ms->ops = ops;
	ms->opaque = opaque;
	pthread_mutex_unlock(&ms->lock);
}

static uint64_t bitmap_words(uint64_t npages)
{
	return (npages + 63) / 64;
}

/* Every page's bit set, none past @npages. */
static void bitmap_fill(uint64_t *bm, uint64_t npages)
{
	uint64_t n = bitmap_words(npages);

	memset(bm, 0xff, n * sizeof(*bm));
	if (npages % 64)
		bm[n - 1] = (1ULL << (npages % 64)) - 1;
}

/* access_ok() on x86-64: [addr, addr+size) inside the user half, without wrapping. */
static bool user_range_ok(hva_t addr, uint64_t size)
{
	uint64_t sum = addr + size;

	return sum >= addr && sum <= MEMSLOT_USER_ADDR_LIMIT;
}

/*
 * Make a prepared change visible (kvm_set_memslot()). Nothing can fail after the first
 * publication, so everything that allocates happens before it.
 *
 *   1. Room for the change in both arrays: grow the inactive one in place, or allocate a spare
 *      for the active one (it cannot be resized while readers use it).
 *   2. Edit the inactive array; give it generation G+1 (odd: in progress); publish it and the
 *      id entry.
 *   3. Grace period: no reader still sees the old array or @old.
 *   4. The change hook.
 *   5. Generation G+2 (even: stable).
 *   6. Replay the edit on the old array (or rebuild it in the spare); free @old and a bitmap
 *      nobody uses any more.
 */
static int slots_commit(struct memslots *ms, struct memslot *old, struct memslot *new,
			enum memslot_change change)
{
	struct memslot_array *act = ms->active, *ina = ms->inactive, *spare = NULL;
	uint32_t need = act->nr + (change == MEMSLOT_CREATE);
	uint16_t id = old ? old->id : new->id;
	uint64_t gen;

	assert(ina->nr == act->nr);
	if (need > ina->cap || need > act->cap) {
		uint32_t cap = ina->cap > act->cap ? ina->cap : act->cap;

		while (cap < need)
			cap *= 2;
		if (cap > ina->cap) {
			struct memslot_array *grown = realloc(ina, sizeof(*ina) + (size_t)cap * sizeof(ina->e[0]));

			if (!grown)
				return -ENOMEM;
			ms->inactive = ina = grown;
			ina->cap = cap;
		}
		if (cap > act->cap) {
			spare = array_alloc(cap);
			if (!spare)
				return -ENOMEM;
		}
	}

	array_apply(ina, old, new);
	gen = __atomic_load_n(&act->gen, __ATOMIC_RELAXED) + 1;
	__atomic_store_n(&ina->gen, gen, __ATOMIC_RELAXED);
	__atomic_store_n(&ms->gen, gen, __ATOMIC_RELEASE);
	__atomic_store_n(&ms->active, ina, __ATOMIC_RELEASE);
	__atomic_store_n(&ms->id_slot[id], new, __ATOMIC_RELEASE);

	vmmu_synchronize_rcu();

	if (ms->ops && ms->ops->change)
		ms->ops->change(ms->opaque, old, new, change);

	__atomic_store_n(&ina->gen, gen + 1, __ATOMIC_RELEASE);
	__atomic_store_n(&ms->gen, gen + 1, __ATOMIC_RELEASE);

	if (spare) {
		spare->nr = ina->nr;
		memcpy(spare->e, ina->e, (size_t)ina->nr * sizeof(ina->e[0]));
		free(act);
		act = spare;
	} else {
		array_apply(act, old, new);
	}
	ms->inactive = act;

	if (old) {
		/* Bitmaps handed over to @new. */
		if (new && new->dirty_bitmap == old->dirty_bitmap)
			old->dirty_bitmap = NULL;
		if (new && new->ksm_bitmap == old->ksm_bitmap)
			old->ksm_bitmap = NULL;
		slot_free(old);
	}
	return 0;
}

/*
 * kvm_set_memory_region(), check for check. All -EINVAL checks on the arguments alone come
 * first, then the ones against the existing slot, then -EEXIST, then allocation.
 */
int memslots_set_user_memory_region(struct memslots *ms,
				    const struct vmmu_userspace_memory_region *r)
{
	uint16_t as_id = r->slot >> 16, id = (uint16_t)r->slot;
	enum memslot_change change;
	struct memslot *old, *new;
	uint64_t npages;
	gfn_t base_gfn;
	int ret;

	if (r->flags & ~MEMSLOT_VALID_FLAGS)
		return -EINVAL;
	/* General sanity checks. */
	if (r->memory_size & (VMMU_PAGE_SIZE - 1))
		return -EINVAL;
	if (r->guest_phys_addr & (VMMU_PAGE_SIZE - 1))
		return -EINVAL;
	if ((r->userspace_addr & (VMMU_PAGE_SIZE - 1)) ||
	    !user_range_ok(r->userspace_addr, r->memory_size))
		return -EINVAL;
	if (as_id != 0 || id >= VMMU_USER_MEM_SLOTS)
		return -EINVAL;
	if (r->guest_phys_addr + r->memory_size < r->guest_phys_addr)
		return -EINVAL;
	if ((r->memory_size >> VMMU_PAGE_SHIFT) > VMMU_MEM_MAX_NR_PAGES)
		return -EINVAL;

	assert(!rcu_read_ongoing());   /* the grace period would wait for ourselves */
	pthread_mutex_lock(&ms->lock);
	old = ms->id_slot[id];

	if (!r->memory_size) {
		ret = -EINVAL;
		if (!old)
			goto out;
		ret = slots_commit(ms, old, NULL, MEMSLOT_DELETE);
		goto out;
	}

	base_gfn = r->guest_phys_addr >> VMMU_PAGE_SHIFT;
	npages = r->memory_size >> VMMU_PAGE_SHIFT;

	if (!old) {
		/* KVM also checks that the total of pages fits an unsigned long: 32764 slots of
		 * < 2^31 pages cannot overflow 64 bits. */
		change = MEMSLOT_CREATE;
	} else {
		ret = -EINVAL;
		if (r->userspace_addr != old->userspace_addr || npages != old->npages ||
		    ((r->flags ^ old->flags) & VMMU_MEM_READONLY))
			goto out;
		if (base_gfn != old->base_gfn)
			change = MEMSLOT_MOVE;
		else if (r->flags != old->flags)
			change = MEMSLOT_FLAGS_ONLY;
		else {
			ret = 0;   /* nothing to change */
			goto out;
		}
	}

	ret = -EEXIST;
	if ((change == MEMSLOT_CREATE || change == MEMSLOT_MOVE) &&
	    array_overlaps(ms->active, id, base_gfn, base_gfn + npages))
		goto out;
	/* kvm_arch_prepare_memory_region() on x86: the slot must end below kvm_mmu_max_gfn(). */
	ret = -EINVAL;
	if ((change == MEMSLOT_CREATE || change == MEMSLOT_MOVE) &&
	    base_gfn + npages - 1 > ms->max_gfn)
		goto out;

	ret = -ENOMEM;
	new = calloc(1, sizeof(*new));
	if (!new)
		goto out;
	new->base_gfn = base_gfn;
	new->npages = npages;
	new->userspace_addr = r->userspace_addr;
	new->flags = r->flags;
	new->id = id;
	new->as_id = as_id;
	/* kvm_prepare_memory_region(): keep the bitmap across MOVE, allocate on enable. KSM's
	 * goes with the slot; a new slot's starts all written: its hvas may have been written
	 * through an earlier slot whose bits went with it, and ksmd may still hold a checksum of
	 * theirs (the frame unchanged), which only a written bit makes it forget. */
	if (r->flags & VMMU_MEM_LOG_DIRTY_PAGES) {
		new->dirty_bitmap = old ? old->dirty_bitmap : NULL;
		if (!new->dirty_bitmap)
			new->dirty_bitmap = calloc(bitmap_words(npages), sizeof(uint64_t));
		if (!new->dirty_bitmap)
			goto out_free;
	}
	if (ms->ksm_track) {
		new->ksm_bitmap = old ? old->ksm_bitmap : NULL;
		if (!new->ksm_bitmap) {
			new->ksm_bitmap = malloc(bitmap_words(npages) * sizeof(uint64_t));
			if (!new->ksm_bitmap)
				goto out_free;
			bitmap_fill(new->ksm_bitmap, npages);
		}
	}

	ret = slots_commit(ms, old, new, change);
	if (ret) {
out_free:
		if (!old || new->dirty_bitmap != old->dirty_bitmap)
			free(new->dirty_bitmap);
		if (!old || new->ksm_bitmap != old->ksm_bitmap)
			free(new->ksm_bitmap);
		free(new);
	}
out:
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

int memslots_get_dirty_log(struct memslots *ms, uint32_t slot, uint64_t *bitmap)
{
	uint16_t as_id = slot >> 16, id = (uint16_t)slot;
	const struct memslot *s;
	uint64_t n, any = 0;
	int ret = -ENOENT;

	if (as_id != 0 || id >= VMMU_USER_MEM_SLOTS)
		return -EINVAL;
	pthread_mutex_lock(&ms->lock);
	s = ms->id_slot[id];
	if (!s || !s->dirty_bitmap)
		goto out;
	n = bitmap_words(s->npages);
	if (ms->ops && ms->ops->sync_dirty_log)
		ms->ops->sync_dirty_log(ms->opaque, s, s->base_gfn, slot_end_gfn(s));
	for (uint64_t w = 0; w < n; w++) {
		bitmap[w] = __atomic_exchange_n(&s->dirty_bitmap[w], 0, __ATOMIC_ACQ_REL);
		any |= bitmap[w];
	}
	/* Pairs with slot_mark_written's: a write whose bit this harvest found set (and so did not
	 * set again) is seen by whoever copies the page after it. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (any && ms->ops && ms->ops->dirty_log_protect)
		ms->ops->dirty_log_protect(ms->opaque, s, 0, bitmap, n);
	ret = 0;
out:
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

/* Give every slot a KSM bitmap (@on) or take it away; stops at the first failure (-ENOMEM). */
static int ksm_bitmaps(struct memslots *ms, bool on)
{
	int ret = 0;

	/* By id: the id table, unlike the arrays, keeps its order while we commit. */
	for (uint32_t id = 0; id < VMMU_USER_MEM_SLOTS && !ret; id++) {
		struct memslot *old = ms->id_slot[id], *new;

		if (!old || !!old->ksm_bitmap == on)
			continue;
		ret = -ENOMEM;
		new = malloc(sizeof(*new));
		if (!new)
			break;
		*new = *old;
		new->ksm_bitmap = on ? calloc(bitmap_words(old->npages), sizeof(uint64_t)) : NULL;
		if (on && !new->ksm_bitmap) {
			free(new);
			break;
		}
		ret = slots_commit(ms, old, new, MEMSLOT_FLAGS_ONLY);
		if (ret) {
			free(new->ksm_bitmap);
			free(new);
		}
	}
	return ret;
}

int memslots_set_ksm_tracking(struct memslots *ms, bool on)
{
	int ret;

	assert(!rcu_read_ongoing());
	pthread_mutex_lock(&ms->lock);
	ms->ksm_track = on;
	ret = ksm_bitmaps(ms, on);
	/* Half on is off: the slots that got a bitmap lose it again (best effort: a bitmap left
	 * costs write faults, nothing else). Half off is off too. */
	if (ret && on) {
		ms->ksm_track = false;
		ksm_bitmaps(ms, false);
	}
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

/* The pages of [@start, @start + 64 pages) that @slot maps: its first page index and the bit
 * of @start's window it is at; false if none. */
static bool slot_window(const struct memslot *slot, hva_t start, uint64_t *rel0, unsigned *bit0,
			unsigned *n)
{
	hva_t lo = start, hi = start + 64 * VMMU_PAGE_SIZE;
	hva_t slo = slot->userspace_addr, shi = slo + (slot->npages << VMMU_PAGE_SHIFT);

	if (slo > lo)
		lo = slo;
	if (shi < hi)
		hi = shi;
	if (lo >= hi)
		return false;
	*rel0 = (lo - slo) >> VMMU_PAGE_SHIFT;
	*bit0 = (unsigned)((lo - start) >> VMMU_PAGE_SHIFT);
	*n = (unsigned)((hi - lo) >> VMMU_PAGE_SHIFT);
	return true;
}

/* memslots_ksm_harvest, or with !@harvest a look that changes nothing. */
static void ksm_window(struct memslots *ms, hva_t start, uint64_t want, uint64_t *written,
		       uint64_t *tracked, bool harvest)
{
	const struct memslot_array *a;

	*written = *tracked = 0;
	pthread_mutex_lock(&ms->lock);
	a = ms->active;
	for (uint32_t e = 0; e < a->nr; e++) {
		const struct memslot *s = a->e[e].slot;
		uint64_t rel0, fw, got[2] = { 0 }, mask[2] = { 0 };
		unsigned bit0, n;

		if (!s->ksm_bitmap || !slot_window(s, start, &rel0, &bit0, &n))
			continue;
		fw = rel0 / 64;
		for (unsigned i = 0; i < n; i++)
			if ((want >> (bit0 + i)) & 1)
				mask[(rel0 + i) / 64 - fw] |= 1ULL << ((rel0 + i) % 64);
		if (!mask[0] && !mask[1])
			continue;
		if (ms->ops && ms->ops->sync_dirty_log)
			ms->ops->sync_dirty_log(ms->opaque, s, s->base_gfn + rel0,
						s->base_gfn + rel0 + n);
		for (unsigned w = 0; w < 2; w++)
			if (mask[w] && harvest)
				got[w] = __atomic_fetch_and(&s->ksm_bitmap[fw + w], ~mask[w],
							    __ATOMIC_ACQ_REL) & mask[w];
			else if (mask[w])
				got[w] = __atomic_load_n(&s->ksm_bitmap[fw + w], __ATOMIC_ACQUIRE) &
					 mask[w];
		__atomic_thread_fence(__ATOMIC_SEQ_CST);   /* pairs with slot_mark_written's */
		for (unsigned i = 0; i < n; i++) {
			uint64_t r = rel0 + i, b = 1ULL << (bit0 + i);

			if (!((want >> (bit0 + i)) & 1))
				continue;
			*tracked |= b;
			if ((got[r / 64 - fw] >> (r % 64)) & 1)
				*written |= b;
		}
		if (harvest && (got[0] || got[1]) && ms->ops && ms->ops->dirty_log_protect) {
			unsigned lo = !got[0], hi = got[1] ? 2 : 1;

			ms->ops->dirty_log_protect(ms->opaque, s, fw + lo, &got[lo], hi - lo);
		}
	}
	pthread_mutex_unlock(&ms->lock);
}

void memslots_ksm_harvest(struct memslots *ms, hva_t start, uint64_t want, uint64_t *written,
			  uint64_t *tracked)
{
	ksm_window(ms, start, want, written, tracked, true);
}

void memslots_ksm_peek(struct memslots *ms, hva_t start, uint64_t want, uint64_t *written,
		       uint64_t *tracked)
{
	ksm_window(ms, start, want, written, tracked, false);
}
