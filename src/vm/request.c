/* SPDX-License-Identifier: MIT */
/*
 * KVM's vCPU request protocol (virt/kvm/kvm_main.c, kvm_make_all_cpus_request): how one thread
 * gets work done on the hardware of vCPUs that other threads run. A vCPU's TLB, paging-structure
 * caches and guest-page cache are touched only by the thread running it; another thread (a remote
 * TLB flush after a zap, an MMU notifier, a memslot change) sets a request bit and, if the vCPU
 * is in guest mode, kicks it and waits until it has left guest mode. The vCPU takes its requests
 * at its next entry, before it uses any of its caches again.
 *
 * Modes (vcpu->mode): OUTSIDE between API calls and while the hypervisor handles an exit;
 * IN_GUEST while the hardware model runs an access (vcpu_enter .. vcpu_leave); EXITING after a
 * kick, until the vCPU leaves. A vCPU in guest mode never blocks on a lock (a lookup that may
 * block leaves guest mode first: vcpu.c's vcpu_phys_page), so a sender may wait for it while
 * holding mmu_lock, the mm lock or memslots.lock.
 *
 * Ordering (the Dekker pair of KVM's vcpu->mode and vcpu->requests): the sender sets the bit,
 * then reads the mode; the vCPU stores IN_GUEST, then reads the bits. Either the sender sees
 * IN_GUEST and waits for the vCPU to leave (the access it is running happened before the
 * request), or the vCPU sees the bit. The store-load order is made by membarrier(2) on the
 * sender's side (MEMBARRIER_CMD_PRIVATE_EXPEDITED runs a full barrier on every running thread of
 * the process), so an entry costs the vCPU two plain stores and a load; where the kernel lacks
 * it, vcpu_enter takes a full fence instead. The sender skips the membarrier when every vCPU was
 * last entered by its own thread (the interleaved runs: nothing can run concurrently); a vCPU
 * that changes threads takes a full fence first (vcpu_enter_slow), so a sender that read the old
 * owner is ordered against it.
 *
 * Accounting, so that a run's counters do not depend on the timing of requests: a remote flush
 * counts KVM_REQ_TLB_FLUSH on each target unless one is pending (KVM's count), and charges the
 * target's hardware one flush per request (cpu_flush_tlb_charge at its entry; vmmu_vm_stats folds
 * those still pending). The running vCPU (the one whose exit this thread handles) is flushed
 * directly, inside its handler, as before.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vm/vm.h"

VCPU_TLS uint64_t vcpu_thread_tag;   /* its address is the tag: 8-aligned, bit 0 free */
VCPU_TLS struct vmmu_vcpu *vcpu_running;
/* The kernel's membarrier lets a vCPU enter with a compiler barrier only. */
static bool asym_fence;

static pthread_once_t requests_once = PTHREAD_ONCE_INIT;

static void requests_init_once(void)
{
	/* Registration is per process; after it the expedited command never fails. */
	asym_fence = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

void vcpu_requests_init(void)
{
	pthread_once(&requests_once, requests_init_once);
}

/* The entry when the vCPU changes threads, or on every entry without membarrier: a full fence
 * orders the owner and mode stores before the request load, against a sender that read the old
 * owner and so skipped its membarrier. */
bool vcpu_enter_slow(struct vmmu_vcpu *v, uint32_t take)
{
	uintptr_t tag = (uintptr_t)&vcpu_thread_tag | (asym_fence ? 0 : VCPU_OWNER_FENCE);

	if (__atomic_load_n(&v->owner, __ATOMIC_RELAXED) != tag)
		__atomic_store_n(&v->owner, tag, __ATOMIC_RELAXED);
	__atomic_store_n(&v->mode, IN_GUEST_MODE, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if ((__atomic_load_n(&v->requests, __ATOMIC_RELAXED) & take) == 0)
		return false;
	vcpu_service_requests(v, take);
	return true;
}

void vcpu_service_requests(struct vmmu_vcpu *v, uint32_t take)
{
	uint32_t req = __atomic_fetch_and(&v->requests, ~take, __ATOMIC_ACQUIRE) & take;

	if (req & VCPU_REQ_PCACHE_FLUSH)
		cpu_flush_pcache(&v->cpu);
	if (req & VCPU_REQ_TLB_FLUSH) {
		/* flush_seq's write side: odd before the move, even after (vm.h); the flush itself
		 * after, so that a stats read retries only across the move. */
		__atomic_store_n(&v->flush_seq, v->flush_seq + 1, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		cpu_flush_tlb_charge(&v->cpu, __atomic_exchange_n(&v->remote_flushes, 0, __ATOMIC_RELAXED));
		__atomic_store_n(&v->flush_seq, v->flush_seq + 1, __ATOMIC_RELEASE);
		cpu_flush_tlb_uncharged(&v->cpu);
	}
}

void vcpu_request_flush(struct vmmu_vcpu *v)
{
	if (!(__atomic_fetch_or(&v->requests, VCPU_REQ_FLUSH_COUNTED, __ATOMIC_SEQ_CST) &
	      VCPU_REQ_FLUSH_COUNTED))
		__atomic_add_fetch(&v->kvm_st.tlb_flush, 1, __ATOMIC_RELAXED);
}

/* Wait until @v, kicked out of guest mode, has left it. It leaves within one access: nothing in
 * guest mode blocks. */
static void wait_for_exit(struct vmmu_vcpu *v)
{
	for (unsigned spins = 0; __atomic_load_n(&v->mode, __ATOMIC_ACQUIRE) == EXITING_GUEST_MODE; spins++) {
		if (spins > 64)
			sched_yield();   /* two cores: the vCPU's thread may be waiting for this one */
		else
			__builtin_ia32_pause();
	}
}

void vm_make_all_cpus_request(struct vmmu_vm *vm, uint32_t req)
{
	struct vmmu_vcpu *self = vcpu_running, *v;
	bool others_threads = false;
	unsigned kicked = 0;
	struct vmmu_vcpu *wait[VMMU_MAX_VCPUS];

	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		v = vm->vcpus[i];
		if (v == self)
			continue;
		if (req & VCPU_REQ_TLB_FLUSH)
			__atomic_add_fetch(&v->remote_flushes, 1, __ATOMIC_RELAXED);
		__atomic_fetch_or(&v->requests, req, __ATOMIC_SEQ_CST);
		uintptr_t owner = __atomic_load_n(&v->owner, __ATOMIC_SEQ_CST) & ~(uintptr_t)VCPU_OWNER_FENCE;
		if (owner && owner != (uintptr_t)&vcpu_thread_tag)
			others_threads = true;
	}
	/* Only a vCPU another thread runs can be in guest mode now. */
	if (others_threads && asym_fence)
		syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
	for (unsigned i = 0; others_threads && i < vm->nr_vcpus; i++) {
		uint32_t mode = IN_GUEST_MODE;
		v = vm->vcpus[i];
		if (v == self)
			continue;
		if (__atomic_compare_exchange_n(&v->mode, &mode, EXITING_GUEST_MODE, false,
						__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ||
		    mode == EXITING_GUEST_MODE)
			wait[kicked++] = v;
	}
	for (unsigned i = 0; i < kicked; i++)
		wait_for_exit(wait[i]);
	pthread_mutex_unlock(&vm->lock);
}
