/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for src/mem/memslot.c: one test per KVM_SET_USER_MEMORY_REGION rule, lookups
 * against a linear-scan oracle, the slot cache, gfn -> hva -> pfn through a real host_mm, dirty
 * logs, the change hook, and lock-free readers racing an updater.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host/host.h"
#include "mem/memslot.h"
#include "paging/slots_gmem.h"

#define PG VMMU_PAGE_SIZE
#define HVA 0x10000000ULL          /* any aligned user address: memslots do not check VMAs */

/* ---- helpers ---- */

static int set(struct memslots *ms, uint32_t slot, uint32_t flags, gpa_t gpa, uint64_t size,
	       hva_t hva)
{
	struct vmmu_userspace_memory_region r = {
		.slot = slot, .flags = flags, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = hva,
	};

	return memslots_set_user_memory_region(ms, &r);
}

static struct memslots *new_ms(unsigned phys_bits)
{
	struct memslots *ms;

	assert_int_equal(memslots_create(NULL, phys_bits, &ms), 0);
	return ms;
}

/* A snapshot copy of the slot at @gfn, so tests need not hold the read lock. */
static bool lookup(struct memslots *ms, gfn_t gfn, struct memslot *out)
{
	const struct memslot *s;

	vmmu_rcu_read_lock();
	s = gfn_to_memslot(ms, gfn);
	if (s)
		*out = *s;
	vmmu_rcu_read_unlock();
	return s != NULL;
}

static bool id_exists(struct memslots *ms, uint32_t id)
{
	bool r;

	vmmu_rcu_read_lock();
	r = memslots_id_to_slot(ms, id) != NULL;
	vmmu_rcu_read_unlock();
	return r;
}

/* A change hook that records what it saw. */
struct hook_log {
	int calls;
	enum memslot_change change;
	struct memslot old, new;
	bool had_old, had_new;
	uint64_t gen_during;
	bool new_visible;          /* gfn_to_memslot(new base) found @new inside the hook */
	bool old_visible;          /* gfn_to_memslot(old base) still found @old */
	struct memslots *ms;
	int protect_calls;
	uint64_t protect_words[4];
	uint64_t protect_first;     /* first_word of the last call */
};

static void hook_change(void *opaque, const struct memslot *old, const struct memslot *new,
			enum memslot_change change)
{
	struct hook_log *h = opaque;

	h->calls++;
	h->change = change;
	h->had_old = old != NULL;
	h->had_new = new != NULL;
	if (old)
		h->old = *old;
	if (new)
		h->new = *new;
	h->gen_during = memslots_generation(h->ms);
	vmmu_rcu_read_lock();
	h->new_visible = new && gfn_to_memslot(h->ms, new->base_gfn) == new;
	h->old_visible = old && gfn_to_memslot(h->ms, old->base_gfn) == old;
	vmmu_rcu_read_unlock();
}

static void hook_protect(void *opaque, const struct memslot *slot, uint64_t first_word,
			 const uint64_t *harvested, uint64_t nwords)
{
	struct hook_log *h = opaque;

	(void)slot;
	h->protect_calls++;
	h->protect_first = first_word;
	for (uint64_t i = 0; i < nwords && i < 4; i++)
		h->protect_words[i] = harvested[i];
}

static const struct memslots_ops hook_ops = {
	.change = hook_change,
	.dirty_log_protect = hook_protect,
};

/* ---- argument checks (each -EINVAL, nothing changes) ---- */

static void test_bad_flags(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	assert_int_equal(set(ms, 0, 1u << 2, 0, PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 0, 1u << 31, 0, PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 0, VMMU_MEM_READONLY | VMMU_MEM_LOG_DIRTY_PAGES, 0, PG, HVA), 0);
	/* Checked before anything else, also for a delete. */
	assert_int_equal(set(ms, 0, 1u << 3, 0, 0, HVA), -EINVAL);
	assert_true(id_exists(ms, 0));
	assert_int_equal(memslots_generation(ms), 2);
	memslots_destroy(ms);
}

static void test_misaligned_size(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, PG + 1, HVA), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, 0x800, HVA), -EINVAL);
	assert_int_equal(memslots_count(ms), 0);
	assert_int_equal(memslots_generation(ms), 0);
	memslots_destroy(ms);
}

static void test_misaligned_gpa(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0x1800, PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 1, PG, HVA), -EINVAL);
	assert_int_equal(memslots_count(ms), 0);
	memslots_destroy(ms);
}

static void test_misaligned_hva(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, PG, HVA + 8), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, PG, HVA), 0);
	/* A delete still checks the hva (KVM's sanity checks precede the delete). */
	assert_int_equal(set(ms, 0, 0, 0, 0, HVA + 1), -EINVAL);
	assert_true(id_exists(ms, 0));
	memslots_destroy(ms);
}

static void test_hva_range(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	/* Ending exactly at 2^47 is inside the user address space. */
	assert_int_equal(set(ms, 0, 0, 0, 2 * PG, MEMSLOT_USER_ADDR_LIMIT - 2 * PG), 0);
	assert_int_equal(set(ms, 1, 0, 0x100000, 2 * PG, MEMSLOT_USER_ADDR_LIMIT - PG), -EINVAL);
	assert_int_equal(set(ms, 1, 0, 0x100000, PG, MEMSLOT_USER_ADDR_LIMIT), -EINVAL);
	/* Kernel half and wrap-around. */
	assert_int_equal(set(ms, 1, 0, 0x100000, PG, 0xffff800000000000ULL), -EINVAL);
	assert_int_equal(set(ms, 1, 0, 0x100000, 2 * PG, UINT64_MAX & ~(PG - 1)), -EINVAL);
	assert_int_equal(memslots_count(ms), 1);
	memslots_destroy(ms);
}

static void test_slot_id_and_as_id(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	assert_int_equal(set(ms, 1u << 16, 0, 0, PG, HVA), -EINVAL);      /* as_id 1 */
	assert_int_equal(set(ms, 0xffff0000u, 0, 0, PG, HVA), -EINVAL);
	assert_int_equal(set(ms, VMMU_USER_MEM_SLOTS, 0, 0, PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 0xffff, 0, 0, PG, HVA), -EINVAL);
	assert_int_equal(set(ms, VMMU_USER_MEM_SLOTS - 1, 0, 0, PG, HVA), 0);
	assert_true(id_exists(ms, VMMU_USER_MEM_SLOTS - 1));
	memslots_destroy(ms);
}

static void test_gpa_overflow(void **state)
{
	struct memslots *ms = new_ms(64);   /* no phys_bits limit: the overflow check alone */

	(void)state;
	assert_int_equal(set(ms, 0, 0, UINT64_MAX & ~(PG - 1), 2 * PG, HVA), -EINVAL);
	/* Ending exactly at 2^64 wraps to 0: refused, as KVM does; one page lower is fine. */
	assert_int_equal(set(ms, 0, 0, UINT64_MAX & ~(PG - 1), PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 0, 0, (UINT64_MAX & ~(PG - 1)) - PG, PG, HVA), 0);
	memslots_destroy(ms);
}

static void test_phys_bits_limit(void **state)
{
	struct memslots *ms = new_ms(0);   /* 52 bits */

	(void)state;
	assert_int_equal(set(ms, 0, 0, (1ULL << 52) - PG, PG, HVA), 0);
	assert_int_equal(set(ms, 1, 0, 1ULL << 52, PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 1, 0, (1ULL << 52) - PG, 2 * PG, HVA), -EEXIST);  /* overlap first */
	assert_int_equal(set(ms, 1, 0, (1ULL << 52) - 3 * PG, 3 * PG, HVA), -EEXIST);
	assert_int_equal(set(ms, 1, 0, (1ULL << 52) - 3 * PG, 2 * PG, HVA), 0);
	/* Moving beyond the limit is refused too. */
	assert_int_equal(set(ms, 0, 0, 1ULL << 52, PG, HVA), -EINVAL);
	assert_int_equal(memslots_create(NULL, 12, &(struct memslots *){ NULL }), -EINVAL);
	assert_int_equal(memslots_create(NULL, 65, &(struct memslots *){ NULL }), -EINVAL);
	memslots_destroy(ms);
}

static void test_too_many_pages(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	assert_int_equal(set(ms, 0, 0, 0, (VMMU_MEM_MAX_NR_PAGES + 1) * PG, 0), -EINVAL);
	assert_int_equal(set(ms, 0, 0, 0, VMMU_MEM_MAX_NR_PAGES * PG, 0), 0);
	assert_int_equal(memslots_count(ms), 1);
	memslots_destroy(ms);
}

/* ---- create, delete, move, flags, no-op ---- */

static void test_create(void **state)
{
	struct memslots *ms = new_ms(0);
	struct hook_log h = { .ms = ms };
	struct memslot s = { 0 };

	(void)state;
	memslots_set_ops(ms, &hook_ops, &h);
	assert_int_equal(memslots_generation(ms), 0);
	assert_int_equal(set(ms, 3, 0, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(memslots_generation(ms), 2);
	assert_int_equal(memslots_count(ms), 1);
	assert_true(lookup(ms, 0x100, &s));
	assert_int_equal(s.id, 3);
	assert_int_equal(s.base_gfn, 0x100);
	assert_int_equal(s.npages, 16);
	assert_int_equal(s.userspace_addr, HVA);
	assert_false(slot_logs_dirty(&s));
	assert_true(lookup(ms, 0x10f, &s));
	assert_false(lookup(ms, 0x110, &s));
	assert_false(lookup(ms, 0xff, &s));
	/* The hook ran once, after publication, with the generation in progress. */
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.change, MEMSLOT_CREATE);
	assert_false(h.had_old);
	assert_true(h.had_new);
	assert_true(h.new_visible);
	assert_int_equal(h.gen_during, 1);
	assert_true(memslot_gen_in_progress(h.gen_during));
	memslots_destroy(ms);
}

static void test_delete(void **state)
{
	struct memslots *ms = new_ms(0);
	struct hook_log h = { .ms = ms };
	struct memslot s = { 0 };

	(void)state;
	memslots_set_ops(ms, &hook_ops, &h);
	assert_int_equal(set(ms, 5, 0, 0x100000, 16 * PG, HVA), 0);
	/* A delete takes only the id: other fields need only pass the sanity checks. */
	assert_int_equal(set(ms, 5, 0, 0x7777000, 0, HVA + PG), 0);
	assert_int_equal(memslots_generation(ms), 4);
	assert_false(lookup(ms, 0x100, &s));
	assert_false(id_exists(ms, 5));
	assert_int_equal(memslots_count(ms), 0);
	assert_int_equal(h.calls, 2);
	assert_int_equal(h.change, MEMSLOT_DELETE);
	assert_true(h.had_old);
	assert_false(h.had_new);
	assert_int_equal(h.old.base_gfn, 0x100);
	assert_false(h.old_visible);   /* already unpublished when the hook runs */
	assert_int_equal(h.gen_during, 3);
	/* Deleting a slot that does not exist. */
	assert_int_equal(set(ms, 5, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(set(ms, 6, 0, 0, 0, 0), -EINVAL);
	assert_int_equal(memslots_generation(ms), 4);
	assert_int_equal(h.calls, 2);
	/* The id is free again. */
	assert_int_equal(set(ms, 5, 0, 0x200000, PG, HVA), 0);
	memslots_destroy(ms);
}

static void test_modify_rejected(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	assert_int_equal(set(ms, 1, 0, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(set(ms, 2, VMMU_MEM_READONLY, 0x200000, 16 * PG, HVA), 0);
	/* hva changed, size changed (bigger, smaller), READONLY toggled either way. */
	assert_int_equal(set(ms, 1, 0, 0x100000, 16 * PG, HVA + PG), -EINVAL);
	assert_int_equal(set(ms, 1, 0, 0x100000, 17 * PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 1, 0, 0x100000, 15 * PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 1, VMMU_MEM_READONLY, 0x100000, 16 * PG, HVA), -EINVAL);
	assert_int_equal(set(ms, 2, 0, 0x200000, 16 * PG, HVA), -EINVAL);
	/* Also when combined with a move. */
	assert_int_equal(set(ms, 1, 0, 0x900000, 16 * PG, HVA + PG), -EINVAL);
	assert_int_equal(memslots_generation(ms), 4);
	memslots_destroy(ms);
}

static void test_move(void **state)
{
	struct memslots *ms = new_ms(0);
	struct hook_log h = { .ms = ms };
	struct memslot s = { 0 };

	(void)state;
	memslots_set_ops(ms, &hook_ops, &h);
	assert_int_equal(set(ms, 1, 0, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(set(ms, 2, 0, 0x200000, 16 * PG, HVA), 0);
	/* Move slot 1 to 0x400000. */
	assert_int_equal(set(ms, 1, 0, 0x400000, 16 * PG, HVA), 0);
	assert_int_equal(memslots_generation(ms), 6);
	assert_false(lookup(ms, 0x100, &s));
	assert_true(lookup(ms, 0x405, &s));
	assert_int_equal(s.id, 1);
	assert_int_equal(s.userspace_addr, HVA);
	assert_int_equal(h.change, MEMSLOT_MOVE);
	assert_int_equal(h.old.base_gfn, 0x100);
	assert_int_equal(h.new.base_gfn, 0x400);
	assert_true(h.new_visible);
	assert_false(h.old_visible);
	/* Onto another slot: -EEXIST, nothing changes. */
	assert_int_equal(set(ms, 1, 0, 0x1f8000, 16 * PG, HVA), -EEXIST);
	assert_int_equal(set(ms, 1, 0, 0x208000, 16 * PG, HVA), -EEXIST);
	assert_true(lookup(ms, 0x400, &s));
	assert_int_equal(memslots_generation(ms), 6);
	/* Overlapping its own old range is fine. */
	assert_int_equal(set(ms, 1, 0, 0x408000, 16 * PG, HVA), 0);
	assert_true(lookup(ms, 0x417, &s));
	assert_false(lookup(ms, 0x407, &s));
	assert_int_equal(memslots_count(ms), 2);
	memslots_destroy(ms);
}

static void test_flags_only(void **state)
{
	struct memslots *ms = new_ms(0);
	struct hook_log h = { .ms = ms };
	struct memslot s = { 0 };

	(void)state;
	memslots_set_ops(ms, &hook_ops, &h);
	assert_int_equal(set(ms, 1, 0, 0x100000, 100 * PG, HVA), 0);
	assert_true(lookup(ms, 0x100, &s));
	assert_false(slot_logs_dirty(&s));
	/* Enable dirty logging: FLAGS_ONLY, a bitmap appears. */
	assert_int_equal(set(ms, 1, VMMU_MEM_LOG_DIRTY_PAGES, 0x100000, 100 * PG, HVA), 0);
	assert_int_equal(memslots_generation(ms), 4);
	assert_int_equal(h.change, MEMSLOT_FLAGS_ONLY);
	assert_true(h.had_old && h.had_new);
	assert_int_equal(h.old.flags, 0);
	assert_int_equal(h.new.flags, VMMU_MEM_LOG_DIRTY_PAGES);
	assert_true(lookup(ms, 0x100, &s));
	assert_true(slot_logs_dirty(&s));
	assert_int_equal(s.flags, VMMU_MEM_LOG_DIRTY_PAGES);
	/* Disable: FLAGS_ONLY again, the bitmap goes (ASan checks it is freed once). */
	assert_int_equal(set(ms, 1, 0, 0x100000, 100 * PG, HVA), 0);
	assert_int_equal(memslots_generation(ms), 6);
	assert_int_equal(h.calls, 3);
	assert_true(lookup(ms, 0x100, &s));
	assert_false(slot_logs_dirty(&s));
	memslots_destroy(ms);
}

static void test_noop(void **state)
{
	struct memslots *ms = new_ms(0);
	struct hook_log h = { .ms = ms };

	(void)state;
	memslots_set_ops(ms, &hook_ops, &h);
	assert_int_equal(set(ms, 1, VMMU_MEM_READONLY, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(set(ms, 1, VMMU_MEM_READONLY, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(set(ms, 1, VMMU_MEM_READONLY, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(memslots_generation(ms), 2);
	assert_int_equal(h.calls, 1);
	memslots_destroy(ms);
}

static void test_overlap_edges(void **state)
{
	struct memslots *ms = new_ms(0);

	(void)state;
	/* Slot 0 covers gfns [0x100, 0x200). */
	assert_int_equal(set(ms, 0, 0, 0x100000, 0x100 * PG, HVA), 0);
	/* Low edge: a new slot whose last page is 0x100. */
	assert_int_equal(set(ms, 1, 0, 0xf0000, 0x11 * PG, HVA), -EEXIST);
	/* High edge: a new slot whose first page is 0x1ff. */
	assert_int_equal(set(ms, 1, 0, 0x1ff000, 0x10 * PG, HVA), -EEXIST);
	/* Inside, enclosing, identical. */
	assert_int_equal(set(ms, 1, 0, 0x150000, PG, HVA), -EEXIST);
	assert_int_equal(set(ms, 1, 0, 0x0, 0x1000 * PG, HVA), -EEXIST);
	assert_int_equal(set(ms, 1, 0, 0x100000, 0x100 * PG, HVA), -EEXIST);
	assert_int_equal(memslots_generation(ms), 2);
	/* Adjacent on both sides is fine, and so is sharing the hva (aliasing). */
	assert_int_equal(set(ms, 1, 0, 0xf0000, 0x10 * PG, HVA), 0);
	assert_int_equal(set(ms, 2, 0, 0x200000, 0x10 * PG, HVA), 0);
	/* A slot squeezed between two adjacent ones overlaps both. */
	assert_int_equal(set(ms, 3, 0, 0x1ff000, 2 * PG, HVA), -EEXIST);
	assert_int_equal(memslots_count(ms), 3);
	memslots_destroy(ms);
}

static void test_max_slots(void **state)
{
	struct memslots *ms = new_ms(0);
	struct memslot s = { 0 };

	(void)state;
	for (uint32_t id = 0; id < VMMU_USER_MEM_SLOTS; id++)
		assert_int_equal(set(ms, id, 0, (gpa_t)id * 2 * PG, PG, HVA), 0);
	assert_int_equal(memslots_count(ms), VMMU_USER_MEM_SLOTS);
	assert_int_equal(memslots_generation(ms), 2ULL * VMMU_USER_MEM_SLOTS);
	/* The 32765th id does not exist. */
	assert_int_equal(set(ms, VMMU_USER_MEM_SLOTS, 0, 0x40000000, PG, HVA), -EINVAL);
	for (uint32_t id = 0; id < VMMU_USER_MEM_SLOTS; id += 997) {
		assert_true(lookup(ms, (gfn_t)id * 2, &s));
		assert_int_equal(s.id, id);
		assert_false(lookup(ms, (gfn_t)id * 2 + 1, &s));
	}
	/* Delete from the top, move one, delete one in the middle. */
	for (uint32_t id = VMMU_USER_MEM_SLOTS - 1; id >= VMMU_USER_MEM_SLOTS - 100; id--)
		assert_int_equal(set(ms, id, 0, 0, 0, 0), 0);
	assert_int_equal(set(ms, 7, 0, 0x80000000, PG, HVA), 0);
	assert_int_equal(set(ms, 500, 0, 0, 0, 0), 0);
	assert_int_equal(memslots_count(ms), VMMU_USER_MEM_SLOTS - 101);
	assert_true(lookup(ms, 0x80000, &s));
	assert_int_equal(s.id, 7);
	assert_false(lookup(ms, 14, &s));
	assert_false(lookup(ms, 1000, &s));
	memslots_destroy(ms);
}

/* ---- lookup against an oracle ---- */

struct ref_slot {
	bool used;
	gfn_t base;
	uint64_t npages;
};

static const struct ref_slot *ref_lookup(const struct ref_slot *ref, int n, gfn_t gfn, int *id)
{
	for (int i = 0; i < n; i++)
		if (ref[i].used && gfn >= ref[i].base && gfn < ref[i].base + ref[i].npages) {
			*id = i;
			return &ref[i];
		}
	return NULL;
}

static bool ref_overlaps(const struct ref_slot *ref, int n, int self, gfn_t base, uint64_t np)
{
	for (int i = 0; i < n; i++)
		if (i != self && ref[i].used && base < ref[i].base + ref[i].npages &&
		    ref[i].base < base + np)
			return true;
	return false;
}

static void test_lookup_random(void **state)
{
	enum { NSLOTS = 1500, SPACE = 1 << 20, OPS = 4000, PROBES = 2000 };
	static struct ref_slot ref[NSLOTS];
	struct memslots *ms = new_ms(0);
	struct slot_cache c;
	uint64_t gen = 0;

	(void)state;
	memset(ref, 0, sizeof(ref));
	slot_cache_init(&c);
	srandom(12345);
	for (int op = 0; op < OPS; op++) {
		int id = random() % NSLOTS, want;
		gfn_t base = random() % SPACE;
		uint64_t np = 1 + random() % 64;

		if (ref[id].used && random() % 3 == 0) {
			assert_int_equal(set(ms, id, 0, 0, 0, 0), 0);
			ref[id].used = false;
			gen += 2;
		} else {
			if (ref[id].used)
				np = ref[id].npages;   /* a move */
			want = ref_overlaps(ref, NSLOTS, id, base, np) ? -EEXIST : 0;
			assert_int_equal(set(ms, id, 0, base * PG, np * PG, HVA), want);
			if (want == 0) {
				ref[id] = (struct ref_slot){ true, base, np };
				gen += 2;
			}
		}
		assert_int_equal(memslots_generation(ms), gen);
		if (op % 400 != 399)
			continue;
		/* Probe: random gfns, and the edges of every slot. */
		vmmu_rcu_read_lock();
		for (int p = 0; p < PROBES; p++) {
			gfn_t gfn = random() % (SPACE + 64);
			const struct ref_slot *r;
			const struct memslot *s;
			int rid = -1;

			/* A quarter of the probes hit the first or last page of a slot. */
			if (p % 4 == 0 && ref[p % NSLOTS].used)
				gfn = ref[p % NSLOTS].base + (p & 4 ? ref[p % NSLOTS].npages - 1 : 0);
			r = ref_lookup(ref, NSLOTS, gfn, &rid);
			s = gfn_to_memslot(ms, gfn);
			if (!r) {
				assert_null(s);
				assert_null(gfn_to_memslot_cached(ms, &c, gfn));
				continue;
			}
			assert_non_null(s);
			assert_int_equal(s->id, rid);
			assert_int_equal(s->base_gfn, r->base);
			assert_int_equal(s->npages, r->npages);
			assert_ptr_equal(gfn_to_memslot_cached(ms, &c, gfn), s);
		}
		/* The iterator: every slot in order, and a window. */
		{
			struct memslot_iter it;
			const struct memslot *s;
			uint32_t n = 0;
			gfn_t prev_end = 0;

			memslots_for_each_in_gfn_range(s, &it, ms, 0, UINT64_MAX) {
				assert_true(s->base_gfn >= prev_end);
				prev_end = slot_end_gfn(s);
				assert_true(ref[s->id].used && ref[s->id].base == s->base_gfn);
				n++;
			}
			assert_int_equal(n, memslots_count(ms));
			for (int w = 0; w < 50; w++) {
				gfn_t a = random() % SPACE, b = a + random() % 4096;
				uint32_t expect = 0, got = 0;

				for (int i = 0; i < NSLOTS; i++)
					expect += ref[i].used && ref[i].base < b &&
						ref[i].base + ref[i].npages > a;
				memslots_for_each_in_gfn_range(s, &it, ms, a, b) {
					assert_true(s->base_gfn < b && slot_end_gfn(s) > a);
					got++;
				}
				assert_int_equal(got, expect);
			}
		}
		vmmu_rcu_read_unlock();
	}
	memslots_destroy(ms);
}

/* ---- the slot cache ---- */

static void test_slot_cache(void **state)
{
	struct memslots *ms = new_ms(0);
	struct slot_cache c;
	const struct memslot *s1, *s;

	(void)state;
	slot_cache_init(&c);
	assert_int_equal(set(ms, 1, 0, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(set(ms, 2, 0, 0x200000, 16 * PG, HVA), 0);

	vmmu_rcu_read_lock();
	s1 = gfn_to_memslot_cached(ms, &c, 0x100);
	assert_non_null(s1);
	assert_int_equal(c.misses, 1);
	for (gfn_t g = 0x100; g < 0x110; g++)
		assert_ptr_equal(gfn_to_memslot_cached(ms, &c, g), s1);
	assert_int_equal(c.hits, 16);
	/* Another slot misses and becomes the cached one; MMIO misses and keeps it. */
	s = gfn_to_memslot_cached(ms, &c, 0x205);
	assert_int_equal(s->id, 2);
	assert_int_equal(c.misses, 2);
	assert_null(gfn_to_memslot_cached(ms, &c, 0x300));
	assert_int_equal(c.misses, 3);
	assert_ptr_equal(gfn_to_memslot_cached(ms, &c, 0x200), s);
	assert_int_equal(c.hits, 17);
	vmmu_rcu_read_unlock();

	/* Any change of the set (here: an unrelated slot) changes the generation: a miss. */
	assert_int_equal(set(ms, 3, 0, 0x300000, PG, HVA), 0);
	vmmu_rcu_read_lock();
	assert_int_equal(gfn_to_memslot_cached(ms, &c, 0x200)->id, 2);
	assert_int_equal(c.hits, 17);
	assert_int_equal(c.misses, 4);
	assert_int_equal(gfn_to_memslot_cached(ms, &c, 0x201)->id, 2);
	assert_int_equal(c.hits, 18);
	vmmu_rcu_read_unlock();

	/* The cached slot is deleted: a stale cache must not return it. */
	assert_int_equal(set(ms, 2, 0, 0, 0, 0), 0);
	vmmu_rcu_read_lock();
	assert_null(gfn_to_memslot_cached(ms, &c, 0x200));
	vmmu_rcu_read_unlock();

	/* Moved: the old range is MMIO at once, the new one found. */
	vmmu_rcu_read_lock();
	assert_non_null(gfn_to_memslot_cached(ms, &c, 0x100));
	vmmu_rcu_read_unlock();
	assert_int_equal(set(ms, 1, 0, 0x500000, 16 * PG, HVA), 0);
	vmmu_rcu_read_lock();
	assert_null(gfn_to_memslot_cached(ms, &c, 0x100));
	assert_int_equal(gfn_to_memslot_cached(ms, &c, 0x500)->id, 1);
	vmmu_rcu_read_unlock();
	memslots_destroy(ms);
}

/* ---- gfn -> hva -> pfn through a real host ---- */

struct host_env {
	struct host_arena *arena;
	struct host_mm *mm;
	struct memslots *ms;
};

static void host_env_init(struct host_env *e)
{
	assert_int_equal(host_arena_create(1ULL << 30, &e->arena), 0);
	assert_int_equal(host_mm_create(e->arena, HOST_THP_NEVER, &e->mm), 0);
	assert_int_equal(memslots_create(e->mm, 0, &e->ms), 0);
	assert_ptr_equal(memslots_mm(e->ms), e->mm);
}

/* Slot 1: 64 pages at gpa 1 MiB; slot 2: 16 READONLY pages at 2 MiB; each on its own mapping. */
static void host_env_two_slots(struct host_env *e, hva_t *hva, hva_t *hva2)
{
	host_env_init(e);
	assert_int_equal(host_mmap(e->mm, 0, 64 * PG, 0, hva), 0);
	assert_int_equal(host_mmap(e->mm, 0, 16 * PG, 0, hva2), 0);
	assert_int_equal(set(e->ms, 1, 0, 0x100000, 64 * PG, *hva), 0);
	assert_int_equal(set(e->ms, 2, VMMU_MEM_READONLY, 0x200000, 16 * PG, *hva2), 0);
}

static void host_env_fini(struct host_env *e)
{
	memslots_destroy(e->ms);
	host_mm_destroy(e->mm);
	host_arena_destroy(e->arena);
}

static void test_gfn_to_hva(void **state)
{
	struct memslots *ms = new_ms(0);
	hva_t hva;

	(void)state;
	assert_int_equal(set(ms, 1, 0, 0x100000, 16 * PG, HVA), 0);
	assert_int_equal(set(ms, 2, VMMU_MEM_READONLY, 0x200000, 16 * PG, HVA + 0x100000), 0);
	assert_int_equal(gfn_to_hva(ms, 0x100, false, &hva), 0);
	assert_int_equal(hva, HVA);
	assert_int_equal(gfn_to_hva(ms, 0x10f, true, &hva), 0);
	assert_int_equal(hva, HVA + 15 * PG);
	assert_int_equal(gfn_to_hva(ms, 0x203, false, &hva), 0);
	assert_int_equal(hva, HVA + 0x100000 + 3 * PG);
	assert_int_equal(gfn_to_hva(ms, 0x203, true, &hva), -EPERM);
	assert_int_equal(gfn_to_hva(ms, 0x110, false, &hva), -ENOENT);
	assert_int_equal(gfn_to_hva(ms, 0, false, &hva), -ENOENT);
	memslots_destroy(ms);
}

static void test_gfn_to_pfn(void **state)
{
	struct host_env e;
	hva_t hva, hva2;
	pfn_t pfn, pfn2;
	bool huge = true;
	void *p;
	uint64_t *q;

	(void)state;
	host_env_two_slots(&e, &hva, &hva2);

	/* gfn -> pfn is hva -> pfn of the right page. */
	assert_int_equal(gfn_to_pfn(e.ms, 0x105, true, &pfn, &huge), 0);
	assert_false(huge);
	assert_int_equal(host_hva_to_pfn(e.mm, hva + 5 * PG, false, &pfn2, NULL), 0);
	assert_int_equal(pfn, pfn2);
	q = host_pfn_to_ptr(e.arena, pfn);
	q[3] = 0x1122334455667788ULL;

	/* The PTE pointer helper reaches the same bytes; across a page boundary is refused. */
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x105018, 8, false, &p), 0);
	assert_int_equal(*(uint64_t *)p, 0x1122334455667788ULL);
	assert_true(__atomic_compare_exchange_n((uint64_t *)p, &(uint64_t){ 0x1122334455667788ULL },
						0x1122334455667788ULL | 0x20, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST));
	assert_int_equal(q[3], 0x1122334455667788ULL | 0x20);
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x105ffc, 8, false, &p), -EINVAL);
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x105000, 0, false, &p), -EINVAL);
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x105000, PG, false, &p), 0);

	/* READONLY: reads work, writes are refused. */
	assert_int_equal(gfn_to_pfn(e.ms, 0x201, false, &pfn, NULL), 0);
	assert_int_equal(gfn_to_pfn(e.ms, 0x201, true, &pfn, NULL), -EPERM);
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x201000, 8, true, &p), -EPERM);
	/* No slot: -ENOENT (MMIO). */
	assert_int_equal(gfn_to_pfn(e.ms, 0x300, false, &pfn, NULL), -ENOENT);
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x300000, 8, false, &p), -ENOENT);

	/* A slot whose hva range is not mapped in the host: -EFAULT from the host. */
	assert_int_equal(set(e.ms, 3, 0, 0x400000, PG, 0x7f0000000000ULL), 0);
	assert_int_equal(gfn_to_pfn(e.ms, 0x400, false, &pfn, NULL), -EFAULT);

	/* read/write_guest across pages and into a neighbouring slot boundary. */
	{
		char buf[3 * 4096], out[3 * 4096];

		for (size_t i = 0; i < sizeof(buf); i++)
			buf[i] = (char)(i * 7 + 1);
		assert_int_equal(memslots_write_guest(e.ms, 0x100800, buf, sizeof(buf)), 0);
		memset(out, 0, sizeof(out));
		assert_int_equal(memslots_read_guest(e.ms, 0x100800, out, sizeof(out)), 0);
		assert_memory_equal(buf, out, sizeof(buf));
		assert_int_equal(host_hva_to_pfn(e.mm, hva + PG, false, &pfn, NULL), 0);
		assert_int_equal(((char *)host_pfn_to_ptr(e.arena, pfn))[0], buf[0x800]);
		/* Past the end of slot 1 into MMIO, or writing a READONLY slot: -EFAULT. */
		assert_int_equal(memslots_read_guest(e.ms, 0x13f800, out, 0x1000), -EFAULT);
		assert_int_equal(memslots_write_guest(e.ms, 0x200000, buf, 8), -EFAULT);
		assert_int_equal(memslots_read_guest(e.ms, 0x200000, out, 8), 0);
		assert_int_equal(memslots_read_guest(e.ms, UINT64_MAX - 3, out, 8), -EFAULT);
	}
	host_env_fini(&e);
}

/*
 * memslots_gpa_read_word (the software walk's load, lockless where the host page is mapped and
 * young) gives what memslots_gpa_to_ptr's pointer holds, with its errors; slots_gmem_rec_ops
 * notes where each read lay, newest first, the last SLOTS_GMEM_REC_MAX reads.
 */
static void test_read_word(void **state)
{
	struct host_env e;
	hva_t hva, hva2;
	uint64_t val = 0;
	uint8_t *ptr = NULL;
	void *p;

	(void)state;
	host_env_two_slots(&e, &hva, &hva2);
	assert_int_equal(set(e.ms, 3, 0, 0x400000, PG, 0x7f0000000000ULL), 0);

	/* First touch through the locked path; then the lockless one; both see the bytes. */
	for (int round = 0; round < 2; round++) {
		assert_int_equal(memslots_gpa_read_word(e.ms, 0x105018, 8, &val, &ptr), 0);
		assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x105018, 8, false, &p), 0);
		assert_ptr_equal(ptr, p);
		assert_int_equal(val, round ? 0x1122334455667788ULL : 0);
		*(uint64_t *)p = 0x1122334455667788ULL;
	}
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x10501c, 4, &val, &ptr), 0);
	assert_int_equal(val, 0x11223344ULL);
	/* Not young: the locked path, which makes it young. */
	assert_true(host_mm_clear_young(e.mm, hva, hva + 64 * PG));
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(val, 0x1122334455667788ULL);
	assert_true(host_mm_test_young(e.mm, hva + 5 * PG, hva + 6 * PG));
	/* A READONLY slot reads; errors as memslots_gpa_access. */
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x201000, 8, &val, &ptr), 0);
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x105014, 8, &val, &ptr), -EINVAL);
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x105018, 2, &val, &ptr), -EINVAL);
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x300000, 8, &val, &ptr), -ENOENT);
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x400000, 8, &val, &ptr), -EFAULT);

	/* The walk's reads, noted. */
	struct slots_gmem_rec rec = { .ms = e.ms };
	uint64_t buf;

	for (unsigned i = 0; i < SLOTS_GMEM_REC_MAX + 1; i++)
		assert_int_equal(slots_gmem_rec_ops.read(&rec, 0x100000 + i * PG + 8 * i, &buf, 8), 0);
	assert_int_equal(slots_gmem_rec_ops.read(&rec, 0x300000, &buf, 8), -ENOENT);  /* not noted */
	assert_int_equal(rec.n, SLOTS_GMEM_REC_MAX + 1);
	for (unsigned back = 0; back < 12; back++) {
		assert_null(slots_gmem_rec_ptr(&rec, 0x100000, back));  /* the oldest, dropped */
		assert_null(slots_gmem_rec_ptr(&rec, 0x300000, back));
		assert_null(slots_gmem_rec_ptr(&rec, 0x13f000, back));  /* never read */
	}
	for (unsigned i = 1; i < SLOTS_GMEM_REC_MAX + 1; i++) {
		gpa_t gpa = 0x100000 + i * PG + 0x7f8;                /* any entry of the page */
		assert_int_equal(memslots_gpa_to_ptr(e.ms, gpa, 8, false, &p), 0);
		/* Where the read was (page i was read SLOTS_GMEM_REC_MAX - i back), elsewhere, or
		 * past the reads kept: the same. */
		assert_ptr_equal(slots_gmem_rec_ptr(&rec, gpa, SLOTS_GMEM_REC_MAX - i), p);
		assert_ptr_equal(slots_gmem_rec_ptr(&rec, gpa, (SLOTS_GMEM_REC_MAX - i + 1) % 8), p);
		assert_ptr_equal(slots_gmem_rec_ptr(&rec, gpa, 1000), p);
	}
	/* A page read again is where it was last read, unless the caller names the older read. */
	assert_int_equal(slots_gmem_rec_ops.read(&rec, 0x102000, &buf, 8), 0);
	assert_int_equal(rec.e[(rec.n - 1) % SLOTS_GMEM_REC_MAX].gfn, 0x102);
	rec.e[(rec.n - 1) % SLOTS_GMEM_REC_MAX].page = (uint8_t *)0x1000;  /* marked */
	assert_ptr_equal(slots_gmem_rec_ptr(&rec, 0x102010, 1), (uint8_t *)0x1010);
	assert_ptr_equal(slots_gmem_rec_ptr(&rec, 0x102010, 0), (uint8_t *)0x1010);
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x102010, 8, false, &p), 0);
	assert_ptr_equal(slots_gmem_rec_ptr(&rec, 0x102010, SLOTS_GMEM_REC_MAX - 2 + 1), p);
	/* Swaps go to the slot's memory (and are not noted). */
	assert_int_equal(slots_gmem_rec_ops.cmpxchg(&rec, 0x105018, 0x1122334455667788ULL, 5, 8), 0);
	assert_int_equal(slots_gmem_rec_ops.cmpxchg(&rec, 0x105018, 0x1122334455667788ULL, 6, 8),
			 -EAGAIN);
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(val, 5);
	assert_int_equal(rec.n, SLOTS_GMEM_REC_MAX + 2);

	/* The same walk through a reader's cache (the soft MMU's): the same values, pointers and
	 * errors; the second walk of the same pages takes no look-up. */
	struct memslots_wcache c;
	memset(&c, 0, sizeof(c));
	for (int walk = 0; walk < 2; walk++) {
		struct slots_gmem_rec rc = { .ms = e.ms, .cache = &c };
		for (unsigned i = 0; i < 4; i++) {
			gpa_t gpa = 0x100000 + i * PG + 8 * i;
			uint64_t want;
			assert_int_equal(slots_gmem_rec_ops.read(&rc, gpa, &buf, 8), 0);
			assert_int_equal(memslots_gpa_read_word(e.ms, gpa, 8, &want, &ptr), 0);
			assert_int_equal(buf, want);
			assert_ptr_equal(slots_gmem_rec_ptr(&rc, gpa, 0), ptr);
		}
		assert_int_equal(slots_gmem_rec_ops.read(&rc, 0x300000, &buf, 8), -ENOENT);
		assert_null(slots_gmem_rec_ptr(&rc, 0x300000, 0));
		uint32_t w32;
		assert_int_equal(slots_gmem_rec_ops.read(&rc, 0x10501c, &w32, 4), 0);
		assert_int_equal(w32, 0);
	}
	/* Five hits: the failed read (not a read noted: the next one takes its way too) left one
	 * of way 4's two entries empty, and the word of page 0x105 kept the other. */
	assert_int_equal(c.hits, 5);
	assert_int_equal(c.misses, 7);
	host_env_fini(&e);
}

/* Whether one of the two entries of @c's way @way holds guest page @gfn. */
static bool way_holds(const struct memslots_wcache *c, unsigned way, gfn_t gfn)
{
	const struct memslots_wcache_ent *e = &c->e[(way % MEMSLOTS_WCACHE_WAYS) * 2];

	return (e[0].page && e[0].gfn == gfn) || (e[1].page && e[1].gfn == gfn);
}

/*
 * memslots_gpa_read_word_cached answers as memslots_gpa_read_word, value, pointer and young bit
 * alike, and takes no look-up while its entry holds: until a memslot change, a change of the host
 * mm (an unmap anywhere in it) or an aging. A page read through the lock (not young) is not kept.
 */
static void test_read_word_cached(void **state)
{
	struct host_env e;
	struct memslots_wcache c;
	hva_t hva, hva2, h;
	uint64_t val = 0, want;
	uint8_t *ptr = NULL, *ref;

	(void)state;
	memset(&c, 0, sizeof(c));
	host_env_two_slots(&e, &hva, &hva2);
	assert_int_equal(memslots_write_guest(e.ms, 0x105018, &(uint64_t){ 0x55aa }, 8), 0);
	/* The write made the page young: the first read peeks and keeps the page. */
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(val, 0x55aa);
	assert_int_equal(memslots_gpa_read_word(e.ms, 0x105018, 8, &want, &ref), 0);
	assert_ptr_equal(ptr, ref);
	assert_int_equal(c.misses, 1);
	/* Read again, any word of the page, through the way that kept it: no look-up. */
	*(uint64_t *)(ref + 8) = 0x77;
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105020, 8, &val, &ptr), 0);
	assert_int_equal(val, 0x77);
	assert_ptr_equal(ptr, ref + 8);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2 + MEMSLOTS_WCACHE, 0x10501c, 4,
						       &val, &ptr), 0);
	assert_int_equal(val, 0);
	assert_int_equal(c.hits, 2);
	/* Another page through that way replaces it; its errors are those of the uncached read. */
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x201000, 8, &val, &ptr), 0);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105014, 8, &val, &ptr), -EINVAL);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x300000, 8, &val, &ptr), -ENOENT);
	assert_false(way_holds(&c, 2, 0x105));
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(c.hits, 2);
	/* Each invalidating event drops it: a slot change elsewhere, ... */
	assert_int_equal(set(e.ms, 3, 0, 0x400000, PG, hva2), 0);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(c.hits, 2);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(c.hits, 3);
	/* ... an unmap of another mapping of the mm, ... */
	assert_int_equal(host_mmap(e.mm, 0, PG, 0, &h), 0);
	assert_int_equal(host_munmap(e.mm, h, PG), 0);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(c.hits, 3);
	assert_int_equal(val, 0x55aa);
	/* ... and an aging: the page, old now, is read through the lock, which makes it young
	 * again as the uncached read would, and not kept. */
	assert_true(host_mm_clear_young(e.mm, hva, hva + 64 * PG));
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(val, 0x55aa);
	assert_true(host_mm_test_young(e.mm, hva + 5 * PG, hva + 6 * PG));
	assert_false(way_holds(&c, 2, 0x105));
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(c.hits, 4);
	/* The slot deleted: the gpa has no memory, whatever was kept. */
	assert_int_equal(set(e.ms, 1, 0, 0x100000, 0, 0), 0);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 2, 0x105018, 8, &val, &ptr), -ENOENT);
	assert_false(way_holds(&c, 2, 0x105));
	host_env_fini(&e);
}

/*
 * A way keeps the last two pages read through it, as the soft MMU's walks of one fault read a
 * process's table and the kernel direct map's at one level in turn: both hit; a third page
 * replaces the one read less recently, whichever of the two entries holds it.
 */
static void test_read_word_cached_pair(void **state)
{
	struct host_env e;
	struct memslots_wcache c;
	hva_t hva, hva2;
	uint64_t val;
	uint8_t *ptr;

	(void)state;
	memset(&c, 0, sizeof(c));
	host_env_two_slots(&e, &hva, &hva2);
	/* Written first: a young page is kept at its first read. */
	for (gpa_t gpa = 0x101000; gpa <= 0x103000; gpa += PG)
		assert_int_equal(memslots_write_guest(e.ms, gpa, &gpa, 8), 0);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 1, 0x101000, 8, &val, &ptr), 0);
		assert_int_equal(val, 0x101000);
		assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 1, 0x102000, 8, &val, &ptr), 0);
		assert_int_equal(val, 0x102000);
	}
	assert_int_equal(c.misses, 2);
	assert_int_equal(c.hits, 4);
	assert_true(way_holds(&c, 1, 0x101) && way_holds(&c, 1, 0x102));
	/* A third page: 0x101, read less recently, goes; 0x102 stays. */
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 1, 0x103000, 8, &val, &ptr), 0);
	assert_int_equal(val, 0x103000);
	assert_true(way_holds(&c, 1, 0x103) && way_holds(&c, 1, 0x102) && !way_holds(&c, 1, 0x101));
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 1, 0x102000, 8, &val, &ptr), 0);
	assert_int_equal(c.hits, 5);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 1, 0x101000, 8, &val, &ptr), 0);
	assert_int_equal(c.misses, 4);
	/* ...and now 0x103 went, the pair being 0x102 and 0x101. */
	assert_true(way_holds(&c, 1, 0x101) && way_holds(&c, 1, 0x102) && !way_holds(&c, 1, 0x103));
	/* Other ways are untouched. */
	assert_false(way_holds(&c, 2, 0x101) || way_holds(&c, 0, 0x102));
	host_env_fini(&e);
}

/* A/D swaps through the cache: what memslots_gpa_access's swap does, with no look-up for a page
 * the cache holds and its token good; every other case the locked way. */
static void test_cmpxchg_cached(void **state)
{
	struct host_env e;
	struct memslots_wcache c;
	hva_t hva, hva2;
	uint64_t val = 0, bm[1];
	uint8_t *ptr = NULL;
	bool ok = false;

	(void)state;
	memset(&c, 0, sizeof(c));
	host_env_two_slots(&e, &hva, &hva2);
	assert_int_equal(set(e.ms, 1, VMMU_MEM_LOG_DIRTY_PAGES, 0x100000, 64 * PG, hva), 0);
	assert_int_equal(memslots_write_guest(e.ms, 0x105018, &(uint64_t){ 0x21 }, 8), 0);
	assert_int_equal(memslots_get_dirty_log(e.ms, 1, bm), 0);
	/* A page not in the cache: swapped the locked way, marked dirty. */
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x105018, 8, 0x21, 0x23, &ok), 0);
	assert_true(ok);
	assert_int_equal(c.swap_hits, 0);
	assert_int_equal(memslots_get_dirty_log(e.ms, 1, bm), 0);
	assert_int_equal(bm[0], 1ULL << 5);
	/* Read through the cache (any way), then swapped in it: the same answers, dirty marked. */
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 3, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(val, 0x23);
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x105018, 8, 0x23, 0x63, &ok), 0);
	assert_true(ok);
	assert_int_equal(*(uint64_t *)ptr, 0x63);
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x105018, 8, 0x23, 0x0, &ok), 0);
	assert_false(ok);
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x10501c, 4, 0, 0x8, &ok), 0);
	assert_true(ok);
	assert_int_equal(*(uint64_t *)ptr, 0x800000063ULL);
	assert_int_equal(c.swap_hits, 3);
	assert_int_equal(memslots_get_dirty_log(e.ms, 1, bm), 0);
	assert_int_equal(bm[0], 1ULL << 5);
	/* Errors as the locked way's. */
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x10501a, 8, 0, 1, &ok), -EINVAL);
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x105018, 2, 0, 1, &ok), -EINVAL);
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x300000, 8, 0, 1, &ok), -ENOENT);
	/* A read-only slot's page, even one the cache holds, is refused (read twice: the first
	 * read, through the lock, made it young; the second kept it). */
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 1, 0x201000, 8, &val, &ptr), 0);
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 1, 0x201000, 8, &val, &ptr), 0);
	assert_true(way_holds(&c, 1, 0x201));
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x201000, 8, val, val + 1, &ok),
			 -EPERM);
	assert_int_equal(*(uint64_t *)ptr, val);
	/* After an aging the token is gone: the locked way, which marks the page young again. */
	assert_true(host_mm_clear_young(e.mm, hva, hva + 64 * PG));
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x105018, 8, 0x800000063ULL, 0x1,
						     &ok), 0);
	assert_true(ok);
	assert_int_equal(c.swap_hits, 3);
	assert_true(host_mm_test_young(e.mm, hva + 5 * PG, hva + 6 * PG));
	/* A slot change: the kept page is not used either (here the slot is gone). */
	assert_int_equal(memslots_gpa_read_word_cached(e.ms, &c, 3, 0x105018, 8, &val, &ptr), 0);
	assert_int_equal(set(e.ms, 1, 0, 0x100000, 0, 0), 0);
	assert_int_equal(memslots_gpa_cmpxchg_cached(e.ms, &c, 0x105018, 8, 0x1, 0x3, &ok), -ENOENT);
	assert_int_equal(c.swap_hits, 3);
	host_env_fini(&e);
}

/* ---- dirty logging ---- */

static void test_dirty_log(void **state)
{
	struct memslots *ms = new_ms(0);
	struct hook_log h = { .ms = ms };
	uint64_t bm[3];
	struct memslot s = { 0 };

	(void)state;
	memslots_set_ops(ms, &hook_ops, &h);
	/* 130 pages: three words, the last partial. */
	assert_int_equal(set(ms, 1, VMMU_MEM_LOG_DIRTY_PAGES, 0x100000, 130 * PG, HVA), 0);
	assert_int_equal(set(ms, 2, 0, 0x200000, 16 * PG, HVA), 0);

	/* Nothing dirty yet: zeros, and no protect callback. */
	memset(bm, 0xff, sizeof(bm));
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	assert_true(bm[0] == 0 && bm[1] == 0 && bm[2] == 0);
	assert_int_equal(h.protect_calls, 0);

	assert_int_equal(memslots_mark_dirty(ms, 0x100), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x100), 0);    /* twice: one bit */
	assert_int_equal(memslots_mark_dirty(ms, 0x100 + 63), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x100 + 64), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x100 + 129), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x205), 0);     /* slot without logging: no-op */
	assert_int_equal(memslots_mark_dirty(ms, 0x300), -ENOENT);

	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	assert_int_equal(bm[0], 1ULL | (1ULL << 63));
	assert_int_equal(bm[1], 1ULL);
	assert_int_equal(bm[2], 2ULL);
	assert_int_equal(h.protect_calls, 1);
	assert_int_equal(h.protect_words[0], bm[0]);
	assert_int_equal(h.protect_words[2], bm[2]);
	/* Read again: cleared. */
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	assert_true(bm[0] == 0 && bm[1] == 0 && bm[2] == 0);
	assert_int_equal(h.protect_calls, 1);

	/* Errors: no logging, no slot (-ENOENT); bad as_id or id (-EINVAL). */
	assert_int_equal(memslots_get_dirty_log(ms, 2, bm), -ENOENT);
	assert_int_equal(memslots_get_dirty_log(ms, 9, bm), -ENOENT);
	assert_int_equal(memslots_get_dirty_log(ms, 1 | (1u << 16), bm), -EINVAL);
	assert_int_equal(memslots_get_dirty_log(ms, VMMU_USER_MEM_SLOTS, bm), -EINVAL);

	/* A move keeps the bitmap and its bits (kvm_prepare_memory_region). */
	assert_int_equal(memslots_mark_dirty(ms, 0x101), 0);
	assert_int_equal(set(ms, 1, VMMU_MEM_LOG_DIRTY_PAGES, 0x400000, 130 * PG, HVA), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x402), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	assert_int_equal(bm[0], 0x6ULL);

	/* Disabling frees it: -ENOENT; re-enabling starts clean. */
	assert_int_equal(memslots_mark_dirty(ms, 0x403), 0);
	assert_int_equal(set(ms, 1, 0, 0x400000, 130 * PG, HVA), 0);
	assert_true(lookup(ms, 0x400, &s));
	assert_false(slot_logs_dirty(&s));
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), -ENOENT);
	assert_int_equal(set(ms, 1, VMMU_MEM_LOG_DIRTY_PAGES, 0x400000, 130 * PG, HVA), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	assert_true(bm[0] == 0 && bm[1] == 0 && bm[2] == 0);

	/* A move that also disables logging, and a delete of a logging slot, free the bitmap. */
	assert_int_equal(set(ms, 1, 0, 0x500000, 130 * PG, HVA), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), -ENOENT);
	assert_int_equal(set(ms, 1, VMMU_MEM_LOG_DIRTY_PAGES, 0x600000, 130 * PG, HVA), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	assert_int_equal(set(ms, 1, 0, 0, 0, 0), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), -ENOENT);
	memslots_destroy(ms);
}

/* KSM's write tracking: a second log, harvested by hva window, that leaves the user's alone. */
static void test_ksm_tracking(void **state)
{
	struct memslots *ms = new_ms(0);
	struct hook_log h = { .ms = ms };
	uint64_t bm[3], written, tracked;
	struct memslot s = { 0 };

	(void)state;
	memslots_set_ops(ms, &hook_ops, &h);
	assert_int_equal(set(ms, 1, VMMU_MEM_LOG_DIRTY_PAGES, 0x100000, 130 * PG, HVA), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	memslots_ksm_harvest(ms, HVA, ~0ULL, &written, &tracked);
	assert_true(written == 0 && tracked == 0);   /* off: nothing tracked */

	h.calls = 0;
	assert_int_equal(memslots_set_ksm_tracking(ms, true), 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.change, MEMSLOT_FLAGS_ONLY);
	assert_true(h.had_old && h.had_new && !h.old.ksm_bitmap && h.new.ksm_bitmap);
	assert_true(slot_tracking_added(&h.old, &h.new));
	assert_int_equal(memslots_set_ksm_tracking(ms, true), 0);
	assert_int_equal(h.calls, 1);                /* already on: no change */
	assert_true(lookup(ms, 0x100, &s));
	assert_true(s.dirty_bitmap && s.ksm_bitmap && slot_logs_dirty(&s));

	/* A write marks both logs. Window from page 60: bits 0-63 are slot pages 60-123. */
	assert_int_equal(memslots_mark_dirty(ms, 0x100 + 61), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x100 + 64), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x100 + 100), 0);
	assert_true(slot_page_marked(&s, 0x100 + 61));
	assert_false(slot_page_marked(&s, 0x100 + 62));
	h.protect_calls = 0;
	/* Only the wanted pages are harvested: page 100 (bit 40) stays for later. */
	memslots_ksm_harvest(ms, HVA + 60 * PG, 0xffffULL, &written, &tracked);
	assert_int_equal(tracked, 0xffffULL);
	assert_int_equal(written, (1ULL << 1) | (1ULL << 4));
	assert_int_equal(h.protect_calls, 1);
	assert_int_equal(h.protect_first, 0);        /* pages 61 and 64: words 0 and 1 */
	assert_int_equal(h.protect_words[0], 1ULL << 61);
	assert_int_equal(h.protect_words[1], 1ULL << 0);
	memslots_ksm_harvest(ms, HVA + 60 * PG, ~0ULL, &written, &tracked);
	assert_int_equal(tracked, ~0ULL);
	assert_int_equal(written, 1ULL << 40);
	assert_int_equal(h.protect_first, 1);        /* page 100: word 1 alone */
	assert_int_equal(h.protect_words[0], 1ULL << 36);
	/* Pages past the slot's end are nobody's. */
	memslots_ksm_harvest(ms, HVA + 128 * PG, ~0ULL, &written, &tracked);
	assert_int_equal(tracked, 3ULL);
	assert_int_equal(written, 0);

	/* The user's log still has what KSM harvested, and the reverse. */
	assert_int_equal(memslots_mark_dirty(ms, 0x100 + 2), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 1, bm), 0);
	assert_int_equal(bm[0], (1ULL << 61) | (1ULL << 2));
	assert_int_equal(bm[1], (1ULL << 0) | (1ULL << 36));
	memslots_ksm_harvest(ms, HVA, ~0ULL, &written, &tracked);
	assert_int_equal(written, 1ULL << 2);

	/* A slot created while tracking is on starts all written (its hvas may have been written
	 * through a slot gone since), no bit past its end; a slot with no dirty log of its own logs
	 * for KSM alone. */
	assert_int_equal(set(ms, 2, 0, 0x200000, 16 * PG, HVA + 0x100000), 0);
	assert_true(lookup(ms, 0x200, &s));
	assert_true(!s.dirty_bitmap && s.ksm_bitmap && slot_logs_dirty(&s));
	assert_int_equal(s.ksm_bitmap[0], 0xffffULL);
	memslots_ksm_harvest(ms, HVA + 0x100000, ~0ULL, &written, &tracked);
	assert_int_equal(tracked, 0xffffULL);
	assert_int_equal(written, 0xffffULL);
	assert_int_equal(memslots_mark_dirty(ms, 0x203), 0);
	assert_int_equal(memslots_get_dirty_log(ms, 2, bm), -ENOENT);
	memslots_ksm_harvest(ms, HVA + 0x100000, ~0ULL, &written, &tracked);
	assert_int_equal(tracked, 0xffffULL);
	assert_int_equal(written, 1ULL << 3);

	/* A window that starts before a slot and covers two: slot 3 at +0x140 pages (3 pages),
	 * slot 4 right after it (2 pages); the window from +0x13e: bits 2-4 and 5-6. */
	assert_int_equal(set(ms, 3, 0, 0x300000, 3 * PG, HVA + 0x140000), 0);
	assert_int_equal(set(ms, 4, 0, 0x310000, 2 * PG, HVA + 0x143000), 0);
	memslots_ksm_harvest(ms, HVA + 0x13e000, ~0ULL, &written, &tracked);
	assert_int_equal(tracked, 0x7cULL);
	assert_int_equal(written, 0x7cULL);          /* new: all written */
	assert_int_equal(memslots_mark_dirty(ms, 0x301), 0);
	assert_int_equal(memslots_mark_dirty(ms, 0x311), 0);
	memslots_ksm_harvest(ms, HVA + 0x13e000, ~0ULL, &written, &tracked);
	assert_int_equal(written, (1ULL << 3) | (1ULL << 6));

	/* Off: the bitmaps go, the slots no longer track for KSM. */
	h.calls = 0;
	assert_int_equal(memslots_set_ksm_tracking(ms, false), 0);
	assert_int_equal(h.calls, 4);
	assert_true(lookup(ms, 0x200, &s));
	assert_false(slot_logs_dirty(&s));
	assert_true(lookup(ms, 0x100, &s));
	assert_true(s.dirty_bitmap && !s.ksm_bitmap);
	memslots_ksm_harvest(ms, HVA, ~0ULL, &written, &tracked);
	assert_true(written == 0 && tracked == 0);
	memslots_destroy(ms);
}

static void test_dirty_via_guest_writes(void **state)
{
	struct host_env e;
	hva_t hva;
	uint64_t bm[1];
	void *p;
	char buf[PG + 16] = { 0 };

	(void)state;
	host_env_init(&e);
	assert_int_equal(host_mmap(e.mm, 0, 8 * PG, 0, &hva), 0);
	assert_int_equal(set(e.ms, 0, VMMU_MEM_LOG_DIRTY_PAGES, 0, 8 * PG, hva), 0);
	assert_int_equal(memslots_read_guest(e.ms, 0x1000, buf, 8), 0);
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x2000, 8, false, &p), 0);
	assert_int_equal(memslots_get_dirty_log(e.ms, 0, bm), 0);
	assert_int_equal(bm[0], 0);                      /* reads do not dirty */
	assert_int_equal(memslots_write_guest(e.ms, 0x3ff8, buf, sizeof(buf)), 0);  /* pages 3,4,5 */
	/* A pointer for a write logs nothing yet: its writer marks the page once the bytes have
	 * landed (a mark before them could be harvested before the write, and the write lost). */
	assert_int_equal(memslots_gpa_to_ptr(e.ms, 0x7000, 8, true, &p), 0);       /* page 7 */
	assert_int_equal(memslots_get_dirty_log(e.ms, 0, bm), 0);
	assert_int_equal(bm[0], 0x38ULL);
	assert_int_equal(memslots_mark_dirty(e.ms, 7), 0);
	assert_int_equal(memslots_get_dirty_log(e.ms, 0, bm), 0);
	assert_int_equal(bm[0], 0x80ULL);
	host_env_fini(&e);
}

/* ---- the change hook sees the old slot alive for DELETE and MOVE ---- */

struct move_check {
	struct memslots *ms;
	int calls;
	bool ok;
};

static void hook_move_check(void *opaque, const struct memslot *old, const struct memslot *new,
			    enum memslot_change change)
{
	struct move_check *m = opaque;

	m->calls++;
	/* The old slot and its bitmap are still readable (ASan would catch a use after free). */
	if (old && old->dirty_bitmap)
		m->ok &= __atomic_load_n(&old->dirty_bitmap[0], __ATOMIC_RELAXED) != UINT64_MAX;
	if (change == MEMSLOT_MOVE)
		m->ok &= old->base_gfn != new->base_gfn && old->id == new->id;
	if (change == MEMSLOT_DELETE)
		m->ok &= !new && old->npages == 4;
	m->ok &= memslot_gen_in_progress(memslots_generation(m->ms));
}

static void test_hook_lifetime(void **state)
{
	struct memslots *ms = new_ms(0);
	struct move_check m = { .ms = ms, .ok = true };
	const struct memslots_ops ops = { .change = hook_move_check };

	(void)state;
	memslots_set_ops(ms, &ops, &m);
	assert_int_equal(set(ms, 0, VMMU_MEM_LOG_DIRTY_PAGES, 0, 4 * PG, HVA), 0);
	assert_int_equal(set(ms, 0, VMMU_MEM_LOG_DIRTY_PAGES, 0x10000, 4 * PG, HVA), 0);
	assert_int_equal(set(ms, 0, 0, 0x10000, 4 * PG, HVA), 0);
	assert_int_equal(set(ms, 0, 0, 0, 0, 0), 0);
	assert_int_equal(m.calls, 4);
	assert_true(m.ok);
	assert_false(memslot_gen_in_progress(memslots_generation(ms)));
	memslots_set_ops(ms, NULL, NULL);
	assert_int_equal(set(ms, 0, 0, 0, PG, HVA), 0);
	assert_int_equal(m.calls, 4);
	memslots_destroy(ms);
}

/* ---- lock-free readers racing an updater ---- */

struct race {
	struct memslots *ms;
	int stop;                  /* atomic */
	int started;               /* atomic: readers that have begun */
};

struct race_reader {
	struct race *r;
	pthread_t thread;
	unsigned seed;
	long lookups;              /* atomic: read by the updater to pace itself */
	long hits, bad;
};

static void *race_reader_main(void *arg)
{
	struct race_reader *rd = arg;
	struct race *r = rd->r;
	struct slot_cache c;

	slot_cache_init(&c);
	__atomic_fetch_add(&r->started, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
		for (int i = 0; i < 64; i++) {
			gfn_t gfn = rand_r(&rd->seed) % 0x800;
			const struct memslot *s;
			uint64_t gen;

			vmmu_rcu_read_lock();
			gen = memslots_generation(r->ms);
			s = gfn_to_memslot_cached(r->ms, &c, gfn);
			if (s) {
				/* A slot found is consistent and alive: its fields, its bitmap. */
				rd->hits++;
				if (!slot_contains(s, gfn) || s->npages != 0x40 ||
				    s->userspace_addr != HVA + s->id * 0x40 * PG)
					rd->bad++;
				slot_mark_dirty(s, gfn);
			}
			if (memslots_generation(r->ms) < gen)
				rd->bad++;
			vmmu_rcu_read_unlock();
		}
		__atomic_fetch_add(&rd->lookups, 64, __ATOMIC_RELAXED);
		sched_yield();   /* a reader preempted inside a section stretches a grace period */
	}
	return NULL;
}

static void test_concurrent_readers(void **state)
{
	enum { READERS = 2, MIN_ROUNDS = 200, MAX_ROUNDS = 20000, MIN_LOOKUPS = 20000 };
	struct race r = { .ms = new_ms(0) };
	struct race_reader rd[READERS];
	uint64_t bm[1];
	long lookups = 0, hits = 0;
	int round;

	(void)state;
	for (uint32_t id = 0; id < 8; id++)
		assert_int_equal(set(r.ms, id, 0, id * 0x100 * PG, 0x40 * PG, HVA + id * 0x40 * PG), 0);
	for (int i = 0; i < READERS; i++) {
		rd[i] = (struct race_reader){ .r = &r, .seed = 7 + i };
		assert_int_equal(pthread_create(&rd[i].thread, NULL, race_reader_main, &rd[i]), 0);
	}
	while (__atomic_load_n(&r.started, __ATOMIC_ACQUIRE) < READERS)
		sched_yield();
	/* Move, toggle logging, delete and re-create, harvest: until the readers did enough. */
	for (round = 0; round < MAX_ROUNDS; round++) {
		uint32_t id = round % 8;
		gpa_t base = (id * 0x100 + (round & 8 ? 0x80 : 0)) * PG;
		uint32_t fl = round & 16 ? VMMU_MEM_LOG_DIRTY_PAGES : 0;

		assert_int_equal(set(r.ms, id, fl, base, 0x40 * PG, HVA + id * 0x40 * PG), 0);
		if (round % 5 == 0) {
			assert_int_equal(set(r.ms, id, 0, 0, 0, 0), 0);
			assert_int_equal(set(r.ms, id, fl, base, 0x40 * PG, HVA + id * 0x40 * PG), 0);
		}
		if (fl)
			assert_int_equal(memslots_get_dirty_log(r.ms, id, bm), 0);
		if (round < MIN_ROUNDS)
			continue;
		lookups = 0;
		for (int i = 0; i < READERS; i++)
			lookups += __atomic_load_n(&rd[i].lookups, __ATOMIC_RELAXED);
		if (lookups >= MIN_LOOKUPS)
			break;
	}
	__atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < READERS; i++) {
		pthread_join(rd[i].thread, NULL);
		assert_int_equal(rd[i].bad, 0);
		hits += rd[i].hits;
	}
	assert_true(round >= MIN_ROUNDS);
	assert_true(hits > 0);
	memslots_destroy(r.ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_flags),
		cmocka_unit_test(test_misaligned_size),
		cmocka_unit_test(test_misaligned_gpa),
		cmocka_unit_test(test_misaligned_hva),
		cmocka_unit_test(test_hva_range),
		cmocka_unit_test(test_slot_id_and_as_id),
		cmocka_unit_test(test_gpa_overflow),
		cmocka_unit_test(test_phys_bits_limit),
		cmocka_unit_test(test_too_many_pages),
		cmocka_unit_test(test_create),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_modify_rejected),
		cmocka_unit_test(test_move),
		cmocka_unit_test(test_flags_only),
		cmocka_unit_test(test_noop),
		cmocka_unit_test(test_overlap_edges),
		cmocka_unit_test(test_max_slots),
		cmocka_unit_test(test_lookup_random),
		cmocka_unit_test(test_slot_cache),
		cmocka_unit_test(test_gfn_to_hva),
		cmocka_unit_test(test_gfn_to_pfn),
		cmocka_unit_test(test_read_word), cmocka_unit_test(test_read_word_cached),
		cmocka_unit_test(test_read_word_cached_pair),
		cmocka_unit_test(test_cmpxchg_cached),
		cmocka_unit_test(test_dirty_log),
		cmocka_unit_test(test_ksm_tracking),
		cmocka_unit_test(test_dirty_via_guest_writes),
		cmocka_unit_test(test_hook_lifetime),
		cmocka_unit_test(test_concurrent_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
