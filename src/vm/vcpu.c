/* SPDX-License-Identifier: MIT */
/*
 * vCPUs: the public vCPU API over the hardware model (cpu/), and the memory callbacks the hardware
 * uses, through a per-vCPU gfn -> host-pointer cache in front of the memslots (vm.h has the
 * invariants). In native mode the final address of a translation is a gpa, under an MMU an hpa;
 * the access loop hands each VM exit to the MMU (mmu_handle_exit) and tries again. The
 * hypervisor's own KVM-named counters of a vCPU (kvm_st: flush requests serviced, INVLPG exits)
 * are relaxed atomics: a remote flush counts on the target vCPU.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "hot.h"
#include "host/host.h"
#include "paging/slots_gmem.h"
#include "vm/vm.h"

/* The host bytes of guest page @gfn (struct phys_ops). A write through a dirty-logging slot is
 * not cacheable, so every written page is logged: by vcpu_phys_written, once the bytes landed. */
VMMU_HOT
static int vcpu_phys_page(void *opaque, gfn_t gfn, bool write, uint8_t **host, bool *cacheable)
{
	struct vmmu_vcpu *v = opaque;
	const struct memslot *slot;
	void *p = NULL;
	int rc;

	/* The host page-table lookup may wait for the mm lock, which a sender of a request may
	 * hold while it waits for this vCPU: out of guest mode for it. Back in, a request taken
	 * meanwhile (a host invalidation) may have made the answer stale: look again. */
	uint32_t was = __atomic_load_n(&v->mode, __ATOMIC_RELAXED);
again:
	if (was != OUTSIDE_GUEST_MODE)
		vcpu_leave(v);
	vmmu_rcu_read_lock();
	slot = gfn_to_memslot_cached(v->vm->slots, &v->slots, gfn);
	if (!slot) {
		rc = -ENOENT;
	} else if (write && slot_is_readonly(slot)) {
		rc = -EPERM;
	} else {
		rc = memslots_gpa_to_ptr(v->vm->slots, gfn << VMMU_PAGE_SHIFT, VMMU_PAGE_SIZE, write, &p);
		*cacheable = !write || !slot_logs_dirty(slot);
		if (!*cacheable)
			v->logged_slot = slot;
	}
	vmmu_rcu_read_unlock();
	if (was != OUTSIDE_GUEST_MODE && vcpu_enter_take(v, VCPU_REQ_WORK))
		goto again;
	/* -EFAULT (a slot whose hva has no host memory behind it) goes up as it is: the access
	 * fails, as KVM_RUN does, in every mode. */
	*host = p;
	return rc;
}

/* After a write through a vcpu_phys_page() answer that was not cacheable (a dirty-logging slot):
 * its mark, in the slot that answered (logged_slot), not one looked up again: a slot moved
 * meanwhile keeps its bitmap but no longer holds the gfn, and its write must still be logged, as
 * KVM marks within the read section of its write. */
static void vcpu_phys_written(void *opaque, gfn_t gfn)
{
	struct vmmu_vcpu *v = opaque;

	slot_mark_written(v->logged_slot, gfn);
}

static const struct phys_ops vcpu_phys_ops = {
	.page = vcpu_phys_page,
	.written = vcpu_phys_written,
};

/* A guest instruction's effect on the hardware (it may use or flush the vCPU's caches): in guest
 * mode, so the work of requests made before it is done first. (Its flush count stays pending:
 * counted per access entry, as the figures have always been.) */
#define VCPU_HW(v, expr)                                   \
	({                                                  \
		vcpu_enter_take(v, VCPU_REQ_WORK);          \
		__auto_type hw_rc_ = (expr);       \
		vcpu_leave(v);                     \
		hw_rc_;                            \
	})

/* The hypervisor's handling of @v's exit or intercepted instruction: @v is the running vCPU, so a
 * remote flush it makes flushes @v at once (request.c). */
#define VCPU_HANDLE(v, expr)                      \
	({                                         \
		vcpu_running = (v);                \
		__auto_type h_rc_ = (expr);        \
		vcpu_running = NULL;               \
		h_rc_;                             \
	})

/* @gpa is in a memslot whose hva has no host memory behind it (munmapped). */
static bool gpa_unbacked(struct vmmu_vcpu *v, gpa_t gpa)
{
	void *p;
	int rc;

	vmmu_rcu_read_lock();
	rc = memslots_gpa_to_ptr(v->vm->slots, gpa & ~(gpa_t)(VMMU_PAGE_SIZE - 1), VMMU_PAGE_SIZE,
				 false, &p);
	vmmu_rcu_read_unlock();
	return rc == -EFAULT;
}

/* The walker's access bits for a vmmu_vcpu_access @kind. */
static unsigned kind_access(unsigned kind)
{
	return (kind & VMMU_ACC_WRITE ? PFERR_WRITE : 0) | (kind & VMMU_ACC_FETCH ? PFERR_FETCH : 0) |
	       (kind & VMMU_ACC_IMPLICIT ? WALK_IMPLICIT : 0);
}

/* A #PF the hypervisor's software walk found, injected as KVM's emulator injects it
 * (kvm_inject_emulated_page_fault), and reported in @res. */
static void emulated_pf(struct vmmu_vcpu *vcpu, const struct walk_result *w,
			struct vmmu_access_result *res)
{
	cpu_inject_pf(&vcpu->cpu, w->addr, w->ec);
	if (vcpu->vm->mmu)
		mmu_count_injected_pf(vcpu->vm->mmu);
	res->status = VMMU_ACCESS_PF;
	res->pf_ec = w->ec;
	res->pf_addr = w->addr;
}

/* The exit at @exit_gva is for the first page of a page-crossing access at @gva. */
static bool cross_first(const struct vmmu_vcpu *v, gva_t gva, uint32_t len, gva_t exit_gva)
{
	gva_t va = (v->cpu.guest.efer & EFER_LMA) ? gva : gva & 0xffffffffULL;
	return (gva & 0xfff) + len > 4096 && (exit_gva >> 12) == (va >> 12);
}

/*
 * The first page of a crossing access exited and the hypervisor finishes the access (MMIO
 * emulation) or fails it (no host memory): the second page's translation comes first, in
 * software as KVM's emulator makes it. A #PF there is the guest's: injected, res->status PF
 * (KVM's emulator injects it; native mode faults before any byte moves). A walk that cannot read
 * a guest table fails with its error; with @check_memory, a second page with no host memory
 * behind its slot fails with -EFAULT (native mode fails before any byte moves). Else 0 and
 * @res untouched.
 */
static int second_part(struct vmmu_vcpu *vcpu, gva_t gva2, unsigned kind, bool check_memory,
		       struct vmmu_access_result *res)
{
	struct walk_result w;

	switch (paging_walk(&vcpu->cpu.guest, &slots_gmem_ops, vcpu->vm->slots, gva2,
			    kind_access(kind), &w)) {
	case WALK_PF:
		emulated_pf(vcpu, &w, res);
		return 0;
	case WALK_ABORT:
		return w.abort_err ? w.abort_err : -EIO;
	case WALK_OK:
		return check_memory && gpa_unbacked(vcpu, w.gpa) ? -EFAULT : 0;
	case WALK_GP:
		break;
	}
	return 0;
}

int vmmu_vcpu_create(struct vmmu_vm *vm, unsigned id, struct vmmu_vcpu **out)
{
	struct vmmu_vcpu *v;
	int rc;

	if (!vm || !out || id > VMMU_MAX_VCPU_ID)
		return -EINVAL;
	v = host_zalloc_lines(sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->vm = vm;
	v->id = id;
	slot_cache_init(&v->slots);
	rc = cpu_init(&v->cpu, vm->cfg.mmu, &vm->cpu_model, &vm->cfg.tlb, &vm->cfg.cost,
		      &vcpu_phys_ops, v, vm->arena);
	if (rc)
		goto out_free;

	if (vm->mmu) {
		rc = mmu_vcpu_init(vm->mmu, &v->mmu, &v->cpu);
		if (rc)
			goto out_cpu;
	}

	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (vm->vcpus[i]->id == id) {
			rc = -EEXIST;
			break;
		}
	}
	if (!rc && vm->nr_vcpus == VMMU_MAX_VCPUS)
		rc = -EINVAL;          /* as KVM_CREATE_VCPU past max_vcpus */
	if (!rc)
		vm->vcpus[vm->nr_vcpus++] = v;
	pthread_mutex_unlock(&vm->lock);
	if (rc)
		goto out_mmu;
	*out = v;
	return 0;

out_mmu:
	if (vm->mmu)
		mmu_vcpu_destroy(&v->mmu);
out_cpu:
	cpu_destroy(&v->cpu);
out_free:
	free(v);
	return rc;
}

int vmmu_vcpu_get_regs(struct vmmu_vcpu *vcpu, struct vmmu_regs *regs)
{
	if (!vcpu || !regs)
		return -EINVAL;
	cpu_get_regs(&vcpu->cpu, regs);
	return 0;
}

int vmmu_vcpu_set_regs(struct vmmu_vcpu *vcpu, const struct vmmu_regs *regs)
{
	uint64_t old_cr3;
	int rc;

	if (!vcpu || !regs)
		return -EINVAL;
	old_cr3 = vcpu->cpu.guest.cr3;
	rc = VCPU_HW(vcpu, cpu_set_regs(&vcpu->cpu, regs));
	if (rc || !vcpu->vm->mmu)
		return rc;
	/* A whole new paging state (KVM's kvm_mmu_reset_context): the MMU reloads its root. */
	return VCPU_HANDLE(vcpu, mmu_guest_cr_changed(&vcpu->mmu, 3, old_cr3, regs->cr3));
}

int vmmu_vcpu_set_cpl(struct vmmu_vcpu *vcpu, unsigned cpl, bool ac)
{
	if (!vcpu)
		return -EINVAL;
	return cpu_set_cpl(&vcpu->cpu, cpl, ac);
}

int vmmu_vcpu_set_pkru(struct vmmu_vcpu *vcpu, uint32_t pkru)
{
	if (!vcpu)
		return -EINVAL;
	cpu_set_pkru(&vcpu->cpu, pkru);
	return 0;
}

/* VM exits one access may take before the MMU is judged stuck: each exit fixes one thing (a
 * level of a shadow chain, an unsync page, an EPT entry), so a real access needs a handful. */
#define MAX_EXITS_PER_ACCESS 1000

/* Charge the exit of @reason its round trip and what its handler cost since @c0. */
static void vcpu_exit_cycles(struct vmmu_vcpu *vcpu, enum vmmu_exit_reason reason, uint64_t c0)
{
	cpu_stat_add(&vcpu->cpu, exit_cycles[reason], vcpu->cpu.cost.vm_exit + (vcpu->cpu.st.sim_cycles - c0));
}

/* One try of the hardware (cpu_access_l1_missed() for the first try after cpu_access_l1() said
 * CPU_L1_MISS: @l1_missed). */
static int vcpu_hw_access(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len, unsigned kind, void *buf,
			  struct hw_outcome *o, bool l1_missed)
{
	return l1_missed ? cpu_access_l1_missed(&vcpu->cpu, gva, len, kind, buf, o) :
			   cpu_access(&vcpu->cpu, gva, len, kind, buf, o);
}

/*
 * The access after the hit path's first step (cpu.h): its second step, then everything the hit
 * path leaves out: the TLB miss and the walk, #PF, #GP, MMIO, and the VM exits, each handed to the
 * MMU and followed by a new try.
 */
static inline int vcpu_access_slow_body(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len,
					unsigned kind, void *buf, struct vmmu_access_result *res)
{
	enum cpu_l1 step2 = cpu_access_l1(&vcpu->cpu, gva, len, kind, buf);
	bool l1_missed = step2 == CPU_L1_MISS;
	struct hw_outcome o;
	struct mmu_outcome mo;
	unsigned exits = 0;
	int rc;

	if (step2 == CPU_L1_DONE) {
		res->status = VMMU_ACCESS_DONE;
		res->done = len;
		return 0;
	}
retry:
	vcpu_enter(vcpu);
	/* Under an MMU, the hardware walks tables the MMU frees only after an RCU grace period:
	 * the access is one read section (the MMU handler runs outside it: it opens its own, and
	 * takes mmu_lock, which a notifier may hold). */
	if (vcpu->vm->mmu) {
		vmmu_rcu_read_lock();
		rc = vcpu_hw_access(vcpu, gva, len, kind, buf, &o, l1_missed);
		vmmu_rcu_read_unlock();
	} else {
		rc = vcpu_hw_access(vcpu, gva, len, kind, buf, &o, l1_missed);
	}
	l1_missed = false;
	if (rc)
		return rc;
	if (o.status == HW_DONE) {
		/* The common case, kept short: the other fields mean nothing for a done access. */
		res->status = VMMU_ACCESS_DONE;
		res->done = len;
		return 0;
	}
	memset(res, 0, sizeof(*res));
	res->done = o.done;
	switch (o.status) {
	case HW_DONE:
		break;
	case HW_PF:
		res->status = VMMU_ACCESS_PF;
		res->pf_ec = o.pf_ec;
		res->pf_addr = o.pf_addr;
		break;
	case HW_GP:
		res->status = VMMU_ACCESS_GP;
		break;
	case HW_MMIO:
		res->status = VMMU_ACCESS_MMIO;
		res->mmio_gpa = o.mmio_pa;
		res->mmio_write = o.mmio_write;
		/* A page copy to or from MMIO is split into 8-byte device accesses by the caller. */
		res->mmio_len = o.mmio_len > 8 ? 8 : o.mmio_len;
		if (o.mmio_write)
			memcpy(&res->mmio_data, (const char *)buf + o.done, res->mmio_len);
		break;
	case HW_EXIT:
		if (!vcpu->vm->mmu)
			return -EIO;   /* native mode has no hypervisor to exit to */
		if (++exits > MAX_EXITS_PER_ACCESS)
			return -ELOOP;
		/* The hypervisor handles the exit out of guest mode: it takes locks, and may wait
		 * for other vCPUs (request.c). */
		vcpu_leave(vcpu);
		uint64_t c0 = vcpu->cpu.st.sim_cycles;
		vcpu_running = vcpu;
		rc = mmu_handle_exit(&vcpu->mmu, &o.exit, &mo);
		vcpu_running = NULL;
		vcpu_exit_cycles(vcpu, o.exit.reason, c0);
		if (rc == -EFAULT && cross_first(vcpu, gva, len, o.exit.gva)) {
			/* No host memory behind the first page: a #PF of the second still comes
			 * first, as native mode translates every part before memory is touched. */
			int rc2 = second_part(vcpu, gva + (4096 - (gva & 0xfff)), kind, false, res);
			if (rc2 || res->status == VMMU_ACCESS_PF)
				return rc2;
		}
		if (rc)
			return rc;
		switch (mo.action) {
		case MMU_RETRY:
			goto retry;
		case MMU_EMULATED:
			res->status = VMMU_ACCESS_DONE;
			res->done = len;
			break;
		case MMU_INJECT_PF:
			cpu_inject_pf(&vcpu->cpu, mo.pf_addr, mo.pf_ec);
			res->status = VMMU_ACCESS_PF;
			res->pf_ec = mo.pf_ec;
			res->pf_addr = mo.pf_addr;
			break;
		case MMU_MMIO: {
			/* The exit names the page part that is MMIO. For an access that crosses into
			 * it, the RAM part before it is done first (and reported in done). */
			uint32_t first = len;
			if ((gva & 0xfff) + len > 4096)
				first = 4096 - (uint32_t)(gva & 0xfff);
			uint32_t off = 0, part = first;
			/* Outside long mode the hardware cut the address to 32 bits: so must the
			 * comparison, or an address with bits 63:32 set never matches its exit. */
			uint64_t va = (vcpu->cpu.guest.efer & EFER_LMA) ? gva : gva & 0xffffffffULL;
			if (mo.mmio_done) {
				/* The MMU emulated the store's first part; the rest is MMIO. */
				off = mo.mmio_done;
				part = len - off;
			} else if (first < len && (o.exit.gva >> 12) == (va >> 12)) {
				/* The MMIO part is the first page of a crossing access: the
				 * hypervisor emulates the instruction, and the second page comes
				 * first (second_part). */
				rc = second_part(vcpu, gva + first, kind, true, res);
				if (rc || res->status == VMMU_ACCESS_PF)
					return rc;
			}
			if (!mo.mmio_done && (o.exit.gva >> 12) != (va >> 12)) {
				struct hw_outcome o2;
				vcpu_enter(vcpu);
				rc = cpu_access(&vcpu->cpu, gva, first, kind, buf, &o2);
				if (rc)
					return rc;
				if (o2.status != HW_DONE)
					goto retry;   /* the first page changed under us: start over */
				off = first;
				part = len - first;
			}
			cpu_stat_add(&vcpu->cpu, mmio, 1);
			cpu_stat_add(&vcpu->cpu, sim_cycles, vcpu->cpu.cost.mmio);
			cpu_stat_add(&vcpu->cpu, exit_cycles[o.exit.reason], vcpu->cpu.cost.mmio);
			res->status = VMMU_ACCESS_MMIO;
			res->done = off;
			res->mmio_gpa = mo.mmio_gpa;
			res->mmio_write = kind & VMMU_ACC_WRITE;
			res->mmio_len = part > 8 ? 8 : part;
			if (res->mmio_write)
				memcpy(&res->mmio_data, (const char *)buf + off, res->mmio_len);
			break;
		}
		}
		break;
	}
	return 0;
}

/* The access past the hit path, which leaves guest mode when it is done. */
VMMU_HOT
__attribute__((noinline)) int vcpu_access_slow(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len,
					       unsigned kind, void *buf, struct vmmu_access_result *res)
{
	int rc = vcpu_access_slow_body(vcpu, gva, len, kind, buf, res);
	vcpu_leave(vcpu);
	return rc;
}

/* The access when the vCPU enters the full way (vcpu_try_enter said no). */
VMMU_HOT
__attribute__((noinline)) int vcpu_access_entering(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len,
						   unsigned kind, void *buf, struct vmmu_access_result *res)
{
	vcpu_enter(vcpu);
	if (cpu_access_fast(&vcpu->cpu, gva, len, kind, buf)) {
		vcpu_leave(vcpu);
		res->status = VMMU_ACCESS_DONE;
		res->done = len;
		return 0;
	}
	return vcpu_access_slow(vcpu, gva, len, kind, buf, res);
}

int vmmu_vcpu_prefetch(struct vmmu_vcpu *vcpu, uint64_t gva, unsigned kind)
{
	if (!vcpu || !access_kind_ok(kind))
		return -EINVAL;
	cpu_prefetch(&vcpu->cpu, gva, kind & VMMU_ACC_WRITE);
	return 0;
}

/*
 * An access the hypervisor's instruction emulator makes for the guest (KVM's x86 emulator):
 * the walk in software over the memslots (A/D set by compare-and-swap, as KVM's walker), the
 * bytes copied, a write reported to write tracking (mmu_track_write) as KVM's emulator reports
 * it with kvm_page_track_write. Nothing of the hardware takes part: no TLB entry is made or
 * used, no exit is counted; the walk's references are charged.
 */
int vmmu_vcpu_emulate_access(struct vmmu_vcpu *vcpu, uint64_t gva, uint32_t len, unsigned kind,
			     void *buf, struct vmmu_access_result *res)
{
	struct walk_result w;
	int rc;

	if (!vcpu || !buf || !res || !len || len > 8 || (gva & 0xfff) + len > 4096 ||
	    !access_kind_ok(kind))
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	paging_walk(&vcpu->cpu.guest, &slots_gmem_ops, vcpu->vm->slots, gva, kind_access(kind), &w);
	cpu_stat_add(&vcpu->cpu, sim_cycles, (uint64_t)w.refs * vcpu->cpu.cost.walk_ref);
	switch (w.status) {
	case WALK_OK:
		break;
	case WALK_PF:
		emulated_pf(vcpu, &w, res);
		return 0;
	case WALK_GP:
		res->status = VMMU_ACCESS_GP;
		return 0;
	default:
		return -EFAULT;   /* a guest table outside guest memory */
	}
	if (kind & VMMU_ACC_WRITE) {
		rc = memslots_write_guest(vcpu->vm->slots, w.gpa, buf, len);
		if (!rc && vcpu->vm->mmu)
			cpu_account_mmu_steps(&vcpu->cpu,
					      VCPU_HANDLE(vcpu, mmu_track_write(vcpu->vm->mmu, w.gpa, len)));
	} else {
		rc = memslots_read_guest(vcpu->vm->slots, w.gpa, buf, len);
	}
	if (rc)
		return -EFAULT;   /* MMIO: not emulated here */
	res->status = VMMU_ACCESS_DONE;
	res->done = len;
	return 0;
}

int vmmu_vcpu_complete_mmio(struct vmmu_vcpu *vcpu, struct vmmu_access_result *res, void *buf)
{
	if (!vcpu || !res || !buf || res->status != VMMU_ACCESS_MMIO || res->mmio_len > 8)
		return -EINVAL;
	if (!res->mmio_write)
		memcpy((char *)buf + res->done, &res->mmio_data, res->mmio_len);
	res->done += res->mmio_len;
	return 0;
}

/*
 * Guest instructions: the hardware applies the architectural effect (or refuses with #GP); then,
 * where the hypervisor intercepts the instruction (the exit controls the MMU set), it is an exit
 * to the MMU, counted by reason.
 */
/* The hypervisor serviced a flush request for @vcpu, or handled an INVLPG-like exit. */
static void vcpu_count(uint64_t *counter)
{
	__atomic_add_fetch(counter, 1, __ATOMIC_RELAXED);
}

int vmmu_vcpu_mov_cr(struct vmmu_vcpu *vcpu, int cr, uint64_t val)
{
	uint64_t old, hw_flushes;
	int rc;

	if (!vcpu)
		return -EINVAL;
	old = cr == 0 ? vcpu->cpu.guest.cr0 : cr == 3 ? vcpu->cpu.guest.cr3 : vcpu->cpu.guest.cr4;
	hw_flushes = vcpu->cpu.st.tlb_flush;
	rc = VCPU_HW(vcpu, cpu_mov_cr(&vcpu->cpu, cr, val));
	if (rc || !vcpu->vm->mmu)
		return rc;
	if (cr == 3 && vcpu->cpu.ctl.cr3_load_exiting)
		cpu_account_exit(&vcpu->cpu, VMMU_EXIT_CR3);
	/* Under shadow paging the hypervisor intercepts control-register writes and services the
	 * flush the architecture asks for (one request, however many parts it has); under nested
	 * paging the guest flushes its own TLB unseen. */
	if (vcpu->cpu.ctl.cr3_load_exiting && vcpu->cpu.st.tlb_flush != hw_flushes)
		vcpu_request_flush(vcpu);
	uint64_t c0 = vcpu->cpu.st.sim_cycles;
	rc = VCPU_HANDLE(vcpu, mmu_guest_cr_changed(&vcpu->mmu, cr, old, val));
	if (cr == 3 && vcpu->cpu.ctl.cr3_load_exiting)
		vcpu_exit_cycles(vcpu, VMMU_EXIT_CR3, c0);
	return rc;
}

int vmmu_vcpu_invlpg(struct vmmu_vcpu *vcpu, uint64_t gva)
{
	int rc;

	if (!vcpu)
		return -EINVAL;
	rc = VCPU_HW(vcpu, cpu_invlpg(&vcpu->cpu, gva));
	if (rc || !vcpu->vm->mmu || !vcpu->cpu.ctl.invlpg_exiting)
		return rc;
	cpu_account_exit(&vcpu->cpu, VMMU_EXIT_INVLPG);
	vcpu_count(&vcpu->kvm_st.invlpg);        /* KVM's kvm_mmu_invlpg */
	uint64_t c0 = vcpu->cpu.st.sim_cycles;
	rc = VCPU_HANDLE(vcpu, mmu_guest_invlpg(&vcpu->mmu, gva));
	vcpu_exit_cycles(vcpu, VMMU_EXIT_INVLPG, c0);
	return rc;
}

int vmmu_vcpu_invpcid(struct vmmu_vcpu *vcpu, unsigned type, uint16_t pcid, uint64_t gva)
{
	int rc;

	if (!vcpu)
		return -EINVAL;
	rc = VCPU_HW(vcpu, cpu_invpcid(&vcpu->cpu, type, pcid, gva));
	if (rc || !vcpu->vm->mmu || !vcpu->cpu.ctl.invpcid_exiting)
		return rc;
	/* INVPCID exits are counted with INVLPG's: both are the guest's TLB invalidations. KVM counts
	 * an address invalidation as invlpg (kvm_mmu_invpcid_gva) and services a context one as a
	 * flush request. */
	cpu_account_exit(&vcpu->cpu, VMMU_EXIT_INVLPG);
	if (type == 0)
		vcpu_count(&vcpu->kvm_st.invlpg);
	else
		vcpu_request_flush(vcpu);
	uint64_t c0 = vcpu->cpu.st.sim_cycles;
	rc = VCPU_HANDLE(vcpu, mmu_guest_invpcid(&vcpu->mmu, type, pcid, gva));
	vcpu_exit_cycles(vcpu, VMMU_EXIT_INVLPG, c0);
	return rc;
}

/* A counter of the hardware's, while its vCPU may be counting on another thread (cpu.h). */
#define cpu_stat(c, field) __atomic_load_n(&(c)->field, __ATOMIC_RELAXED)

static void add_vcpu_stats(struct vmmu_stats *st, struct vmmu_vcpu *vcpu)
{
	const struct cpu_stats *c = &vcpu->cpu.st;

	st->accesses += cpu_stat(c, accesses);
	st->tlb_hits += cpu_stat(c, tlb_hits);
	st->tlb_misses += cpu_stat(c, tlb_misses);
	st->walk_refs += cpu_stat(c, walk_refs);
	st->tlb_flush += __atomic_load_n(&vcpu->kvm_st.tlb_flush, __ATOMIC_RELAXED);
	st->invlpg += __atomic_load_n(&vcpu->kvm_st.invlpg, __ATOMIC_RELAXED);
	st->exits += cpu_stat(c, exits);
	for (unsigned i = 0; i < VMMU_EXIT_NR; i++) {
		st->exits_by_reason[i] += cpu_stat(c, exits_by_reason[i]);
		st->exit_cycles[i] += cpu_stat(c, exit_cycles[i]);
	}
	/* Remote flushes not taken yet are charged already (request.c): the figure does not
	 * depend on when the vCPU next enters. The two parts are read in one flush_seq section: the
	 * vCPU's thread may be moving the flushes from one to the other (vm.h). */
	uint64_t cycles, pending;
	for (unsigned spins = 0;; spins++) {
		uint32_t seq = __atomic_load_n(&vcpu->flush_seq, __ATOMIC_ACQUIRE);
		cycles = cpu_stat(c, sim_cycles);
		pending = __atomic_load_n(&vcpu->remote_flushes, __ATOMIC_RELAXED);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (!(seq & 1) && seq == __atomic_load_n(&vcpu->flush_seq, __ATOMIC_RELAXED))
			break;
		if (spins > 64)
			sched_yield();   /* two cores: the vCPU's thread may be waiting for this one */
	}
	st->sim_cycles += cycles + pending * vcpu->cpu.cost.tlb_flush;
}

/* Give the caller the first @size bytes of @full (a caller built against an older, shorter struct
 * gets the fields it knows), with the version and the size filled. */
static int stats_out(struct vmmu_stats *full, struct vmmu_stats *st, size_t size)
{
	if (size < offsetof(struct vmmu_stats, size) + sizeof(st->size))
		return -EINVAL;
	full->version = VMMU_STATS_VERSION;
	full->size = (uint32_t)(size < sizeof(*full) ? size : sizeof(*full));
	memcpy(st, full, full->size);
	return 0;
}

int vmmu_vcpu_stats(struct vmmu_vcpu *vcpu, struct vmmu_stats *out, size_t size)
{
	struct vmmu_stats s = { 0 }, *st = &s;

	if (!vcpu || !out)
		return -EINVAL;
	add_vcpu_stats(st, vcpu);
	return stats_out(st, out, size);
}

int vmmu_vm_stats(struct vmmu_vm *vm, struct vmmu_stats *out, size_t size)
{
	struct vmmu_stats s = { 0 }, *st = &s;
	struct host_thp_stats thp;

	if (!vm || !out)
		return -EINVAL;
	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < vm->nr_vcpus; i++)
		add_vcpu_stats(st, vm->vcpus[i]);
	pthread_mutex_unlock(&vm->lock);
	if (vm->mmu) {
		struct mmu_stats m;
		mmu_get_stats(vm->mmu, &m);
		st->pf_taken += m.pf_taken;
		st->pf_fixed += m.pf_fixed;
		st->pf_emulate += m.pf_emulate;
		st->pf_spurious += m.pf_spurious;
		st->pf_fast += m.pf_fast;
		st->pf_guest += m.pf_guest;
		st->pf_mmio_spte_created += m.pf_mmio_spte_created;
		st->mmu_shadow_zapped += m.mmu_shadow_zapped;
		st->mmu_pte_write += m.mmu_pte_write;
		st->mmu_pde_zapped += m.mmu_pde_zapped;
		st->mmu_flooded += m.mmu_flooded;
		st->mmu_recycled += m.mmu_recycled;
		st->mmu_cache_miss += m.mmu_cache_miss;
		st->mmu_unsync += m.mmu_unsync;
		st->pages_4k += m.pages_4k;
		st->pages_2m += m.pages_2m;
		st->pages_1g += m.pages_1g;
		st->remote_tlb_flush += m.remote_tlb_flush;
		st->shadow_pages += m.shadow_pages;
		st->tdp_pages += m.tdp_pages;
		/* The gauges are counted up and down in whichever block counts (a page made on one
		 * vCPU's exit may be zapped on another's): read while vCPUs run, the blocks summed one
		 * after the other can hold a decrease without its increase, a sum below zero. Never
		 * so once they stop; meanwhile such a sum reads as 0 rather than as 2^64 less a few.
		 * Here only: the audits' reads of the same sums, made with the MMU quiet, must see an
		 * underflow if there is one. */
		uint64_t *gauges[] = { &st->pages_4k, &st->pages_2m, &st->pages_1g,
				       &st->shadow_pages, &st->tdp_pages };
		for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
			if ((int64_t)*gauges[i] < 0)
				*gauges[i] = 0;
		st->mmu_lock_wait_ns += m.mmu_lock_wait_ns;
		st->sp_lock_contended += m.sp_lock_contended;
	}
	st->host_frames = host_arena_frames_used(vm->arena);
	vm_machine_ksm_stats(vm->host, st);
	host_mm_thp_stats(vm->mm, &thp);
	st->thp_fault_alloc = thp.thp_fault_alloc;
	st->thp_fault_fallback = thp.thp_fault_fallback;
	st->thp_split_page = thp.thp_split_page;
	st->thp_collapse_alloc = thp.thp_collapse_alloc;
	st->thp_collapse_alloc_failed = thp.thp_collapse_alloc_failed;
	st->thp_underused_split_page = thp.thp_underused_split_page;
	return stats_out(st, out, size);
}
