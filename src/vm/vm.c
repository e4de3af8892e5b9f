/* SPDX-License-Identifier: MIT */
/*
 * The public VM API over host/ and mem/. See vm.h for invariants and locking.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <urcu/compiler.h>

#include "cpu/cost.h"
#include "vm/vm.h"

/* Every vCPU's guest-page cache: the memory map changed. The vCPU whose exit this thread
 * handles empties its own; the others take the request before they use the cache again, and
 * those in guest mode are waited for (request.c): when this returns, no vCPU holds a host
 * pointer from before the change. */
static void vm_flush_pcaches(struct vmmu_vm *vm)
{
	if (vcpu_running && vcpu_running->vm == vm)
		cpu_flush_pcache(&vcpu_running->cpu);
	vm_make_all_cpus_request(vm, VCPU_REQ_PCACHE_FLUSH);
}

static void vm_invalidate_range_start(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
	vm_flush_pcaches(caa_container_of(mn, struct vmmu_vm, mn));
}

/* Native mode: no MMU owns the memslot hooks, so the VM takes them to keep the caches true. */
static void vm_memslot_change(void *opaque, const struct memslot *old, const struct memslot *new,
			      enum memslot_change change)
{
	vm_flush_pcaches(opaque);
}

static const struct memslots_ops vm_memslots_ops = { .change = vm_memslot_change };

static void vm_invalidate_range_end(struct host_mmu_notifier *mn, hva_t start, hva_t end)
{
}

static const struct host_mmu_notifier_ops vm_mn_ops = {
	.invalidate_range_start = vm_invalidate_range_start,
	.invalidate_range_end = vm_invalidate_range_end,
};

/* kvm_flush_remote_tlbs: every vCPU's TLB, and each has flushed, or will before it uses its
 * TLB again, when this returns (request.c). The vCPU whose exit this thread handles flushes at
 * once, inside its handler. The other vCPUs count as running (in guest mode, to be interrupted)
 * as they would on their own CPUs, also when the run interleaves them on one thread, so the
 * count does not depend on the schedule. */
static bool vm_flush_remote_tlbs(void *opaque)
{
	struct vmmu_vm *vm = opaque;
	struct vmmu_vcpu *self = vcpu_running && vcpu_running->vm == vm ? vcpu_running : NULL;
	bool others;

	if (self) {
		cpu_flush_tlb(&self->cpu);
		vcpu_request_flush(self);
	}
	pthread_mutex_lock(&vm->lock);
	/* KVM counts the KVM_REQ_TLB_FLUSH each vCPU services. */
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i] != self)
			vcpu_request_flush(vm->vcpus[i]);
	others = vm->nr_vcpus > 1;
	pthread_mutex_unlock(&vm->lock);
	vm_make_all_cpus_request(vm, VCPU_REQ_TLB_FLUSH);
	return others;
}

uint32_t vmmu_vm_opts(const struct vmmu_vm *vm)
{
	return vm ? vm->opts : 0;
}

int vmmu_vm_audit(struct vmmu_vm *vm, char *why, size_t whylen)
{
	if (!vm)
		return -EINVAL;
	if (!vm->mmu)
		return 0;
	return mmu_audit(vm->mmu, why, whylen);
}

/* Check a configuration and fill its defaults. */
static int vm_config(const struct vmmu_vm_config *in, struct vmmu_vm_config *cfg,
		     struct cpu_model *model)
{
	struct tlb *t;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if (in)
		*cfg = *in;
	if (cfg->host_mem_bytes && cfg->host_mem_bytes < VMMU_HOST_MEM_MIN)
		return -EINVAL;
	if (cfg->thp < HOST_THP_NEVER || cfg->thp > HOST_THP_ALWAYS)
		return -EINVAL;
	if ((unsigned)cfg->hugetlb > VMMU_HUGETLB_1G)
		return -EINVAL;
	if ((unsigned)cfg->mmu > VMMU_MMU_NPT || (unsigned)cfg->host > VMMU_HOST_SVM)
		return -EINVAL;
	if ((cfg->mmu == VMMU_MMU_EPT && cfg->host != VMMU_HOST_VMX) ||
	    (cfg->mmu == VMMU_MMU_NPT && cfg->host != VMMU_HOST_SVM))
		return -EINVAL;
	if (cfg->mmu != VMMU_MMU_NATIVE && !mmu_mode_available(cfg->mmu))
		return -EOPNOTSUPP;
	if (cfg->opts_off & ~(uint32_t)MMU_OPT_ALL)
		return -EINVAL;
	if ((unsigned)cfg->mmu_evict > VMMU_EVICT_FIFO || (unsigned)cfg->mmu_lock > VMMU_MMU_LOCK_BIG)
		return -EINVAL;
	if (cpu_model_fixed(model, cfg->cpu ? cfg->cpu : "intel"))
		return -EINVAL;
	cfg->cpu = NULL;   /* the caller's string need not outlive the call */
	cost_fill_defaults(&cfg->cost);
	rc = tlb_create(&cfg->tlb, &t);   /* checks the geometry */
	if (rc)
		return rc;
	tlb_destroy(t);
	return 0;
}

int vmmu_vm_create(const struct vmmu_vm_config *cfg, struct vmmu_vm **out)
{
	struct vmmu_machine *h;
	struct vmmu_vm_config c;
	struct cpu_model model;
	int rc;

	if (!out)
		return -EINVAL;
	/* A bad configuration fails before any host memory is reserved. */
	rc = vm_config(cfg, &c, &model);
	if (rc)
		return rc;
	rc = vmmu_machine_create(c.host_mem_bytes, &h);
	if (rc)
		return rc;
	rc = vmmu_vm_create_on(h, cfg, out);
	if (rc) {
		vmmu_machine_destroy(h);
		return rc;
	}
	(*out)->own_host = true;
	return 0;
}

int vmmu_vm_create_on(struct vmmu_machine *h, const struct vmmu_vm_config *cfg, struct vmmu_vm **out)
{
	struct vmmu_vm *vm;
	int rc;

	if (!out || !h)
		return -EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	rc = vm_config(cfg, &vm->cfg, &vm->cpu_model);
	if (rc)
		goto out_free;
	vm->cfg.host_mem_bytes = host_arena_frames(h->arena) << HOST_PAGE_SHIFT;
	vcpu_requests_init();
	rc = -pthread_mutex_init(&vm->lock, NULL);
	if (rc)
		goto out_free;
	vm->host = h;
	vm->arena = h->arena;
	rc = host_mm_create(vm->arena, (enum host_thp)vm->cfg.thp, &vm->mm);
	if (rc)
		goto out_lock;
	rc = memslots_create(vm->mm, 0, &vm->slots);
	if (rc)
		goto out_mm;
	rc = host_khugepaged_add_mm(h->khugepaged, vm->mm);
	if (rc)
		goto out_slots_only;
	vm->mn.ops = &vm_mn_ops;
	host_mmu_notifier_register(vm->mm, &vm->mn);
	vm->opts = MMU_OPT_ALL & ~vm->cfg.opts_off;
	/* No-trap needs VMX's PFEC_MASK/MATCH; SVM intercepts every #PF or none. */
	if (vm->cfg.host == VMMU_HOST_SVM)
		vm->opts &= ~(uint32_t)MMU_OPT_NOTRAP;
	/* Only the soft MMU has no-trap, unsync and prefetch; the fast page fault serves both MMUs;
	 * native mode has none of them. */
	if (vm->cfg.mmu == VMMU_MMU_EPT || vm->cfg.mmu == VMMU_MMU_NPT)
		vm->opts &= MMU_OPT_FASTPF;
	else if (vm->cfg.mmu == VMMU_MMU_NATIVE)
		vm->opts = 0;
	if (vm->cfg.mmu == VMMU_MMU_NATIVE)
		memslots_set_ops(vm->slots, &vm_memslots_ops, vm);
	if (vm->cfg.mmu != VMMU_MMU_NATIVE) {
		struct mmu_env env = {
			.mode = vm->cfg.mmu, .host = vm->cfg.host, .opts = vm->opts,
			.arena = vm->arena, .mm = vm->mm, .slots = vm->slots, .cpu = vm->cpu_model,
			.max_shadow_pages = vm->cfg.max_shadow_pages, .evict = vm->cfg.mmu_evict,
			.lock = vm->cfg.mmu_lock, .flush_remote_tlbs = vm_flush_remote_tlbs, .opaque = vm,
		};
		rc = mmu_create(&env, &vm->mmu);
		if (rc)
			goto out_slots;
	}
	__atomic_add_fetch(&h->nr_vms, 1, __ATOMIC_RELEASE);
	*out = vm;
	return 0;

out_slots:
	host_mmu_notifier_unregister(vm->mm, &vm->mn);
	host_khugepaged_remove_mm(h->khugepaged, vm->mm);
out_slots_only:
	memslots_destroy(vm->slots);
out_mm:
	host_mm_destroy(vm->mm);
out_lock:
	pthread_mutex_destroy(&vm->lock);
out_free:
	free(vm);
	return rc;
}

void vmmu_vm_destroy(struct vmmu_vm *vm)
{
	if (!vm)
		return;
	/* ksmd first: its tracker reaches the memslots, whose hooks reach the MMU and the vCPUs. */
	host_ksm_remove_mm(vm->host->ksm, vm->mm);
	/* khugepaged too: a pass under way finishes first (it holds its lock meanwhile). */
	host_khugepaged_remove_mm(vm->host->khugepaged, vm->mm);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->mmu)
			mmu_vcpu_destroy(&vm->vcpus[i]->mmu);
		cpu_destroy(&vm->vcpus[i]->cpu);
		free(vm->vcpus[i]);
	}
	/* The MMU goes before the memory it maps; its notifier and memslot hooks with it. */
	mmu_destroy(vm->mmu);
	host_mmu_notifier_unregister(vm->mm, &vm->mn);
	memslots_destroy(vm->slots);
	host_mm_destroy(vm->mm);
	__atomic_sub_fetch(&vm->host->nr_vms, 1, __ATOMIC_RELEASE);
	if (vm->own_host)
		vmmu_machine_destroy(vm->host);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

int vmmu_vm_mmap(struct vmmu_vm *vm, uint64_t len, bool hugepage, uint64_t *hva)
{
	static const unsigned hugetlb_flags[] = {
		[VMMU_HUGETLB_2M] = HOST_VMA_HUGETLB_2M, [VMMU_HUGETLB_1G] = HOST_VMA_HUGETLB_1G,
	};
	unsigned flags = hugepage ? HOST_VMA_HUGEPAGE : 0;

	if (!vm || !hva)
		return -EINVAL;
	if (vm->cfg.hugetlb != VMMU_HUGETLB_NONE)
		flags = hugetlb_flags[vm->cfg.hugetlb];
	return host_mmap(vm->mm, 0, len, flags, hva);
}

int vmmu_vm_munmap(struct vmmu_vm *vm, uint64_t hva, uint64_t len)
{
	if (!vm)
		return -EINVAL;
	return host_munmap(vm->mm, hva, len);
}

int vmmu_set_user_memory_region(struct vmmu_vm *vm, const struct vmmu_userspace_memory_region *r)
{
	int rc;

	if (!vm)
		return -EINVAL;
	if (!r)
		return -EFAULT;        /* KVM: copy_from_user of the ioctl's argument fails */
	rc = memslots_set_user_memory_region(vm->slots, r);
	/* QEMU marks each RAM block mergeable as it comes; so does a VM made mergeable. The
	 * fence pairs with vmmu_vm_set_mergeable's: the slot published, then the flag read, there
	 * the reverse, so one of the two sees the other (a slot is never missed by both). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (rc == 0 && r->memory_size && __atomic_load_n(&vm->mergeable, __ATOMIC_RELAXED))
		rc = host_madvise(vm->mm, r->userspace_addr, r->memory_size, HOST_VMA_MERGEABLE,
				  true);
	return rc;
}

int vmmu_get_dirty_log(struct vmmu_vm *vm, uint32_t slot, uint64_t *bitmap)
{
	if (!vm)
		return -EINVAL;
	if (!bitmap)
		return -EFAULT;        /* KVM: copy_to_user of the bitmap fails */
	return memslots_get_dirty_log(vm->slots, slot, bitmap);
}

int vmmu_read_guest(struct vmmu_vm *vm, gpa_t gpa, void *buf, size_t len)
{
	if (!vm || (!buf && len))
		return -EINVAL;
	return memslots_read_guest(vm->slots, gpa, buf, len);
}

int vmmu_write_guest(struct vmmu_vm *vm, gpa_t gpa, const void *buf, size_t len)
{
	int rc;

	if (!vm || (!buf && len))
		return -EINVAL;
	rc = memslots_write_guest(vm->slots, gpa, buf, len);
	if (!rc && vm->mmu && len)
		mmu_guest_written(vm->mmu, gpa, len);
	return rc;
}

