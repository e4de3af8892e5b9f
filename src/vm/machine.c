/* SPDX-License-Identifier: MIT */
/*
 * The public host object (struct vmmu_machine, vm.h): the frame arena, ksmd and khugepaged
 * several VMs share, and their APIs over host/ksm.c and host/khugepaged.c. A VM counts itself on its host; the host goes only when none
 * is left. ksmd's clock is the caller's: vmmu_ksm_run() runs a pass when sleep_millisecs of
 * it have gone by (khugepaged's likewise, or its own thread). Locking: ksm.c's and
 * khugepaged.c's own; the run functions' wake-up times belong to their caller (the run loop),
 * nr_vms is atomic.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vm/vm.h"

#define DEFAULT_HOST_MEM (64ULL << 30)

int vmmu_machine_create(uint64_t mem_bytes, struct vmmu_machine **out)
{
	struct vmmu_machine *h;
	int rc;

	if (!out)
		return -EINVAL;
	if (!mem_bytes)
		mem_bytes = DEFAULT_HOST_MEM;
	if (mem_bytes < VMMU_HOST_MEM_MIN)
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	rc = host_arena_create(mem_bytes, &h->arena);
	if (rc)
		goto out_free;
	rc = host_ksm_create(h->arena, &h->ksm);
	if (rc)
		goto out_arena;
	rc = host_khugepaged_create(h->arena, &h->khugepaged);
	if (rc)
		goto out_ksm;
	*out = h;
	return 0;

out_ksm:
	host_ksm_destroy(h->ksm);
out_arena:
	host_arena_destroy(h->arena);
out_free:
	free(h);
	return rc;
}

int vmmu_machine_destroy(struct vmmu_machine *h)
{
	if (!h)
		return 0;
	if (__atomic_load_n(&h->nr_vms, __ATOMIC_ACQUIRE))
		return -EBUSY;
	vmmu_machine_unfragment(h);
	host_khugepaged_destroy(h->khugepaged);
	host_ksm_destroy(h->ksm);
	host_arena_destroy(h->arena);
	free(h);
	return 0;
}

struct vmmu_machine *vmmu_vm_machine(struct vmmu_vm *vm)
{
	return vm ? vm->host : NULL;
}

/* ksmd's use_mmu_dirty through the VM's memslots: the MMU keeps a second dirty log for it. */
static int vm_ksm_set_tracking(void *opaque, bool on)
{
	struct vmmu_vm *vm = opaque;

	return memslots_set_ksm_tracking(vm->slots, on);
}

static void vm_ksm_harvest(void *opaque, hva_t start, uint64_t *written, uint64_t *tracked)
{
	struct vmmu_vm *vm = opaque;

	memslots_ksm_harvest(vm->slots, start, ~0ULL, written, tracked);
}

static void vm_ksm_peek(void *opaque, hva_t start, uint64_t *written, uint64_t *tracked)
{
	struct vmmu_vm *vm = opaque;

	memslots_ksm_peek(vm->slots, start, ~0ULL, written, tracked);
}

static const struct host_ksm_tracker vm_ksm_tracker = {
	.set_tracking = vm_ksm_set_tracking,
	.harvest = vm_ksm_harvest,
	.peek = vm_ksm_peek,
};

int vmmu_vm_set_mergeable(struct vmmu_vm *vm, bool on)
{
	const struct memslot *slot;
	struct memslot_iter si;
	int rc = 0;

	if (!vm)
		return -EINVAL;
	__atomic_store_n(&vm->mergeable, on, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);   /* pairs with vmmu_set_user_memory_region's */
	vmmu_rcu_read_lock();
	memslots_for_each_in_gfn_range(slot, &si, vm->slots, 0, ~0ULL) {
		rc = host_madvise(vm->mm, slot->userspace_addr, slot->npages << VMMU_PAGE_SHIFT,
				  HOST_VMA_MERGEABLE, on);
		if (rc)
			break;
	}
	vmmu_rcu_read_unlock();
	if (rc)
		return rc;
	if (!on) {
		host_ksm_remove_mm(vm->host->ksm, vm->mm);
		return 0;
	}
	return host_ksm_add_mm(vm->host->ksm, vm->mm, &vm_ksm_tracker, vm);
}

int vmmu_ksm_set_param(struct vmmu_machine *h, const char *key, uint64_t val)
{
	int rc;

	if (!h || !key)
		return -EINVAL;
	rc = host_ksm_param_check(key, val, NULL, NULL);
	return rc ? rc : host_ksm_set_param(h->ksm, key, val);
}

int vmmu_ksm_get_param(struct vmmu_machine *h, const char *key, uint64_t *val)
{
	if (!h || !key || !val)
		return -EINVAL;
	return host_ksm_get_param(h->ksm, key, val);
}

/* A daemon's knobs, "KEY=VALUE[,KEY=VALUE...]", checked by @check and set by @set (NULL: check
 * only); @opt names the option in errors, @knobs lists the names. */
static int set_params(const char *opt, const char *knobs,
		      int (*check)(const char *key, uint64_t val, uint64_t *min, uint64_t *max),
		      int (*set)(void *d, const char *key, uint64_t val), void *d, const char *spec,
		      char *err, size_t errlen)
{
	const char *p = spec;

	if (!spec || !*spec) {
		snprintf(err, errlen, "%s: expected KEY=VALUE[,KEY=VALUE...]", opt);
		return -EINVAL;
	}
	for (;;) {
		size_t len = strcspn(p, ","), klen = strcspn(p, "=,");
		char key[32], num[32];
		uint64_t val, lo = 0, hi = 0;
		int rc;

		if (klen >= len || klen == 0 || klen >= sizeof(key) || len - klen - 1 >= sizeof(num)) {
			snprintf(err, errlen, "%s '%.*s': expected KEY=VALUE", opt, (int)len, p);
			return -EINVAL;
		}
		memcpy(key, p, klen);
		key[klen] = '\0';
		memcpy(num, p + klen + 1, len - klen - 1);
		num[len - klen - 1] = '\0';
		if (check(key, 0, &lo, &hi) == -ENOENT) {
			snprintf(err, errlen, "%s: no knob '%s' (%s)", opt, key, knobs);
			return -EINVAL;
		}
		if (vmmu_parse_uint(num, UINT64_MAX, &val) || val < lo || val > hi) {
			snprintf(err, errlen, "%s %s='%s': expected a decimal number from "
				 "%llu to %llu", opt, key, num, (unsigned long long)lo,
				 (unsigned long long)hi);
			return -EINVAL;
		}
		rc = d ? set(d, key, val) : 0;
		if (rc) {
			snprintf(err, errlen, "%s %s: %s", opt, key, strerror(-rc));
			return -EINVAL;
		}
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

static int ksm_set(void *d, const char *key, uint64_t val)
{
	return host_ksm_set_param(d, key, val);
}

int vmmu_ksm_set_params(struct vmmu_machine *h, const char *spec, char *err, size_t errlen)
{
	return set_params("--ksm-param", "pages_to_scan, sleep_millisecs, use_zero_pages, "
			  "max_page_sharing, run, use_mmu_dirty", host_ksm_param_check, ksm_set,
			  h ? h->ksm : NULL, spec, err, errlen);
}

int vmmu_ksm_run(struct vmmu_machine *h, uint64_t now_ms, bool *ran)
{
	struct host_ksm_params p;

	if (ran)
		*ran = false;
	if (!h)
		return -EINVAL;
	if (h->ksm_ran && now_ms < h->ksm_next_ms)
		return 0;
	if (ran)
		*ran = true;
	host_ksm_get_params(h->ksm, &p);
	h->ksm_ran = true;
	h->ksm_next_ms = now_ms + p.sleep_millisecs;
	return host_ksm_scan(h->ksm);
}

int vmmu_ksm_audit(struct vmmu_machine *h, char *why, size_t whylen)
{
	if (!h)
		return -EINVAL;
	return host_ksm_audit(h->ksm, why, whylen) ? -EFAULT : 0;
}

/* The host's KSM figures into @st (vmmu_vm_stats). */
void vm_machine_ksm_stats(struct vmmu_machine *h, struct vmmu_stats *st)
{
	struct host_ksm_stats k;
	struct host_khugepaged_stats kh;

	host_ksm_get_stats(h->ksm, &k);
	st->ksm_pages_shared = k.pages_shared;
	st->ksm_pages_sharing = k.pages_sharing;
	st->ksm_full_scans = k.full_scans;
	st->ksm_pages_unshared = k.pages_unshared;
	st->ksm_pages_volatile = k.pages_volatile;
	st->ksm_cow_breaks = k.cow_breaks;
	st->ksm_zero_pages = k.zero_pages;
	st->general_profit = k.general_profit;
	st->ksm_passes = k.passes;
	st->ksm_checksums = k.checksums;
	st->ksm_compares = k.compares;
	st->ksm_merges = k.merges;
	st->ksm_merge_scans = k.merge_scans;
	st->ksm_mmu_unchanged = k.mmu_unchanged;
	st->ksm_mmu_written = k.mmu_written;
	st->ksm_mmu_harvests = k.mmu_harvests;
	host_khugepaged_get_stats(h->khugepaged, &kh);
	st->khugepaged_pages_collapsed = kh.pages_collapsed;
	st->khugepaged_full_scans = kh.full_scans;
	st->khugepaged_passes = kh.passes;
	st->khugepaged_pages_scanned = kh.pages_scanned;
}

/* ---- khugepaged ---- */

int vmmu_khugepaged_set_param(struct vmmu_machine *h, const char *key, uint64_t val)
{
	int rc;

	if (!h || !key)
		return -EINVAL;
	rc = host_khugepaged_param_check(key, val, NULL, NULL);
	return rc ? rc : host_khugepaged_set_param(h->khugepaged, key, val);
}

int vmmu_khugepaged_get_param(struct vmmu_machine *h, const char *key, uint64_t *val)
{
	if (!h || !key || !val)
		return -EINVAL;
	return host_khugepaged_get_param(h->khugepaged, key, val);
}

static int khugepaged_set(void *d, const char *key, uint64_t val)
{
	return host_khugepaged_set_param(d, key, val);
}

int vmmu_khugepaged_set_params(struct vmmu_machine *h, const char *spec, char *err, size_t errlen)
{
	return set_params("--thp-param", "pages_to_scan, scan_sleep_millisecs, "
			  "alloc_sleep_millisecs, max_ptes_none, defrag", host_khugepaged_param_check,
			  khugepaged_set, h ? h->khugepaged : NULL, spec, err, errlen);
}

int vmmu_khugepaged_run(struct vmmu_machine *h, uint64_t now_ms, bool *ran)
{
	uint64_t sleep_ms = 0;
	int rc;

	if (ran)
		*ran = false;
	if (!h)
		return -EINVAL;
	if (h->khugepaged_ran && now_ms < h->khugepaged_next_ms)
		return 0;
	if (ran)
		*ran = true;
	rc = host_khugepaged_scan(h->khugepaged, &sleep_ms);
	h->khugepaged_ran = true;
	h->khugepaged_next_ms = now_ms + sleep_ms;
	return rc;
}

int vmmu_khugepaged_start(struct vmmu_machine *h)
{
	return h ? host_khugepaged_start(h->khugepaged) : -EINVAL;
}

void vmmu_khugepaged_stop(struct vmmu_machine *h)
{
	if (h)
		host_khugepaged_stop(h->khugepaged);
}

/* ---- the fragmenter ---- */

int vmmu_machine_fragment(struct vmmu_machine *h, unsigned pct)
{
	if (!h || pct > 100 || h->frag_pins)
		return h && h->frag_pins ? -EBUSY : -EINVAL;
	return host_arena_fragment(h->arena, pct, &h->frag_pins, &h->nr_frag_pins);
}

uint64_t vmmu_machine_unfragment(struct vmmu_machine *h)
{
	uint64_t n = h ? h->nr_frag_pins : 0;

	if (!h || !h->frag_pins)
		return 0;
	host_arena_unfragment(h->arena, h->frag_pins, h->nr_frag_pins);
	h->frag_pins = NULL;
	h->nr_frag_pins = 0;
	return n;
}
