/* SPDX-License-Identifier: MIT */
/*
 * The guest kernel's physical frame allocator: a buddy allocator of orders 0 (4K) to 9 (2M) over
 * guest RAM, in kernel-private memory.
 *
 * Determinism is the point: the frame a request gets depends only on the sequence of requests,
 * never on the MMU mode or host options, so two runs of one workload put every page in the same
 * frame and the final memory can be hashed raw. Lists are LIFO (a freed block is reused first, as
 * Linux's per-CPU lists) and the initial lists hand out the lowest addresses first.
 *
 * The 2M blocks of the body of RAM are not put on a list at boot: they sit above a frontier that
 * moves up when every list is empty, so boot touches no metadata for memory never used (a 256 GiB
 * guest would otherwise touch 512 MiB of it). The order frames are handed out in is the same as
 * if every block had been listed: lists first, lowest blocks first.
 *
 * Invariants: a free block is aligned to its size, its head alone carries F_FREE and its order,
 * and it sits in exactly one list, or lies wholly above the frontier (untouched, all free);
 * buddies of the same order are never both listed (they merge).
 * Locking: the kernel lock in a threaded run (see guest.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "guest.h"

static void list_push(struct frames *fr, uint32_t pfn, unsigned order)
{
	struct frame *f = &fr->f[pfn];
	uint32_t h = fr->head[order];

	f->flags = (uint8_t)((f->flags & F_EVER) | F_FREE);
	f->order = (uint8_t)order;
	f->ref = 0;
	f->prev = FRAME_NONE;
	f->next = h;
	if (h != FRAME_NONE)
		fr->f[h].prev = pfn;
	fr->head[order] = pfn;
}

static void list_del(struct frames *fr, uint32_t pfn, unsigned order)
{
	struct frame *f = &fr->f[pfn];

	if (f->prev != FRAME_NONE)
		fr->f[f->prev].next = f->next;
	else
		fr->head[order] = f->next;
	if (f->next != FRAME_NONE)
		fr->f[f->next].prev = f->prev;
	f->flags &= (uint8_t)~F_FREE;
}

int frames_init(struct frames *fr, uint64_t nframes)
{
	size_t bytes = nframes * sizeof(struct frame);
	uint64_t pfn;

	memset(fr, 0, sizeof(*fr));
	if (nframes < 2 || nframes >= FRAME_NONE)
		return -EINVAL;
	/* NORESERVE and untouched until used: a 256 GiB guest that uses 1 GiB pays for 1 GiB. */
	fr->f = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		     -1, 0);
	if (fr->f == MAP_FAILED) {
		fr->f = NULL;
		return -ENOMEM;
	}
	fr->nframes = nframes;
	for (unsigned o = 0; o <= FRAME_MAX_ORDER; o++)
		fr->head[o] = FRAME_NONE;
	/*
	 * Frame 0 stays reserved (a null gpa is never a valid table or page). The rest is cut into
	 * maximal aligned blocks: the unaligned head and tail are listed, pushed from the highest
	 * down so each list's head is its lowest block; the 2M blocks between them wait above the
	 * frontier. Memory is handed out bottom-up.
	 */
	uint64_t starts[2 * (FRAME_MAX_ORDER + 1)];
	unsigned orders[2 * (FRAME_MAX_ORDER + 1)], nhead = 0;
	/* The unaligned head: blocks from frame 1 up to the first 2M boundary. */
	pfn = 1;
	while (pfn < nframes && (pfn & ((1u << FRAME_MAX_ORDER) - 1))) {
		unsigned o = (unsigned)__builtin_ctzll(pfn);
		while (pfn + (1ULL << o) > nframes)
			o--;
		starts[nhead] = pfn;
		orders[nhead++] = o;
		pfn += 1ULL << o;
	}
	uint64_t body_start = pfn;
	uint64_t body_end = body_start + ((nframes - body_start) & ~((1ULL << FRAME_MAX_ORDER) - 1));
	if (body_end < body_start)
		body_end = body_start;
	/* The tail after the last whole 2M block, pushed first (it is the highest). */
	pfn = body_end;
	uint64_t tail[FRAME_MAX_ORDER + 1];
	unsigned tord[FRAME_MAX_ORDER + 1], ntail = 0;
	for (int o = FRAME_MAX_ORDER - 1; o >= 0; o--) {
		if (pfn + (1ULL << o) <= nframes) {
			tail[ntail] = pfn;
			tord[ntail++] = (unsigned)o;
			pfn += 1ULL << o;
		}
	}
	while (ntail--)
		list_push(fr, (uint32_t)tail[ntail], tord[ntail]);
	fr->frontier = body_start;
	fr->body_end = body_end;
	while (nhead--)
		list_push(fr, (uint32_t)starts[nhead], orders[nhead]);
	fr->free = nframes - 1;
	return 0;
}

void frames_destroy(struct frames *fr)
{
	if (fr->f)
		munmap(fr->f, fr->nframes * sizeof(struct frame));
	fr->f = NULL;
}

uint32_t frames_alloc(struct frames *fr, unsigned order)
{
	unsigned k = order;

	uint32_t pfn;

	while (k <= FRAME_MAX_ORDER && fr->head[k] == FRAME_NONE)
		k++;
	if (k <= FRAME_MAX_ORDER) {
		pfn = fr->head[k];
		list_del(fr, pfn, k);
	} else if (fr->frontier < fr->body_end) {
		pfn = (uint32_t)fr->frontier;   /* the lowest untouched 2M block */
		fr->frontier += 1ULL << FRAME_MAX_ORDER;
		k = FRAME_MAX_ORDER;
	} else {
		return FRAME_NONE;
	}
	/* Split: keep the lower half, free the upper one. */
	while (k > order) {
		k--;
		list_push(fr, pfn + (1u << k), k);
	}
	for (uint32_t i = 0; i < (1u << order); i++) {
		struct frame *f = &fr->f[pfn + i];
		f->flags = F_EVER;
		f->ref = 0;
		f->order = 0;
	}
	fr->free -= 1ULL << order;
	if (pfn + (1ULL << order) > fr->hwm)
		fr->hwm = pfn + (1ULL << order);
	return pfn;
}

uint32_t frames_alloc_1g(struct frames *fr)
{
	const uint64_t n = 1ULL << FRAME_1G_ORDER;
	uint64_t start = (fr->frontier + n - 1) & ~(n - 1);

	if (start + n > fr->body_end)
		return FRAME_NONE;
	/* Highest first, so each list's head stays its lowest block. */
	for (uint64_t p = start; p > fr->frontier; p -= 1ULL << FRAME_MAX_ORDER)
		list_push(fr, (uint32_t)(p - (1ULL << FRAME_MAX_ORDER)), FRAME_MAX_ORDER);
	fr->frontier = start + n;
	for (uint64_t i = 0; i < n; i++) {
		struct frame *f = &fr->f[start + i];
		f->flags = F_EVER;
		f->ref = 0;
		f->order = 0;
	}
	fr->free -= n;
	if (start + n > fr->hwm)
		fr->hwm = start + n;
	return (uint32_t)start;
}

void frames_free(struct frames *fr, uint32_t pfn, unsigned order)
{
	if (order > FRAME_MAX_ORDER) {
		for (uint64_t i = 0; i < (1ULL << order); i += 1ULL << FRAME_MAX_ORDER)
			frames_free(fr, (uint32_t)(pfn + i), FRAME_MAX_ORDER);
		return;
	}
	fr->free += 1ULL << order;
	while (order < FRAME_MAX_ORDER) {
		uint32_t buddy = pfn ^ (1u << order);
		if (buddy >= fr->nframes || !(fr->f[buddy].flags & F_FREE) || fr->f[buddy].order != order)
			break;
		list_del(fr, buddy, order);
		pfn &= ~(1u << order);
		order++;
	}
	list_push(fr, pfn, order);
}
