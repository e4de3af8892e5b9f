/* SPDX-License-Identifier: MIT */
/*
 * The /dev/kvm side of differential testing: one VM with one vCPU and 4 MiB + 2 MiB of RAM
 * runs the guest of kvm_guest.S, one scenario per KVM_RUN sequence, and reads back what the
 * (virtual) CPU did: the #PF it took and the A/D bits it set.
 *
 * Invariants:
 *  - The host writes guest RAM only where no page table lives (the parameter block, and
 *    the harness image once, before the first run). Scenario tables are written by the guest
 *    itself: under shadow paging KVM tracks only guest writes to page tables, so host writes
 *    would leave stale shadow entries.
 *  - Every kvmv_run loads the complete register state (GPRs, segments, CR0/3/4, EFER), so no
 *    scenario depends on what ran before it, except the guest RAM the walk touched, which the
 *    next run's guest cleans (struct kvmv.stale) before installing its own entries.
 *  - No locking: a struct kvmv belongs to one thread.
 */
#include "validate/kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "validate/kvm_guest.h"
#include "validate/kvm_util.h"

/* The guest image and its landmarks (kvm_guest.S). */
extern const uint8_t kvmg_image[], kvmg_image_end[], kvmg_kdone[], kvmg_udone[],
	kvmg_exc_hlt[], kvmg_stubs[];

/* Guest address of a label inside the image (loaded at KVMG_KCODE). */
static uint64_t image_gva(const uint8_t *label)
{
	return KVMG_KCODE + (uint64_t)((uintptr_t)label - (uintptr_t)kvmg_image);
}

#define PTE_P   (1ULL << 0)
#define PTE_RW  (1ULL << 1)
#define PTE_US  (1ULL << 2)
#define PTE_A   (1ULL << 5)
#define PTE_D   (1ULL << 6)
#define PTE_PS  (1ULL << 7)
#define PTE_ADDR_MASK 0x000ffffffffff000ULL /* bits 51:12, the widest MAXPHYADDR */

#define CR0_PE  (1ULL << 0)
#define CR0_MP  (1ULL << 1)
#define CR0_ET  (1ULL << 4)
#define CR0_NE  (1ULL << 5)
#define CR0_WP  (1ULL << 16)
#define CR0_PG  (1ULL << 31)
#define CR4_PAE (1ULL << 5)
#define CR4_SMEP (1ULL << 20)
#define CR4_SMAP (1ULL << 21)
#define CR4_PKE (1ULL << 22)
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define EFER_NXE (1ULL << 11)
#define RFLAGS_FIXED (1ULL << 1)
#define RFLAGS_AC (1ULL << 18)

#define PF_VECTOR 14
#define BP_VECTOR 3
#define MAX_EXITS 64 /* MMIO exits per scenario; a correct run needs at most a few */

struct kvmv {
	int kvm_fd, vm_fd, vcpu_fd;
	struct kvm_run *run;
	size_t run_size;
	uint8_t *low;  /* host view of gpa [0, KVMG_LOW_SIZE) */
	uint8_t *data; /* host view of gpa [KVMG_DATA_BASE, +KVMG_DATA_SIZE) */
	struct cpu_model cpu;
	struct kvm_sregs sregs0; /* ring 0, paging on; CR0.WP/CR4/EFER.NXE added per scenario */
	uint64_t stale[4];       /* qwords the last walk may have set A/D in, outside its entries */
	bool reset_events;       /* the last run died mid-flight: clear pending events */
};

void kvmv_why(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------------------------- */
/* CPUID */

/* The supported-CPUID table; its size is not queryable, so grow until KVM stops saying E2BIG. */
int kvmv_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, char *why, size_t whylen)
{
	struct kvm_cpuid2 *c = NULL;
	unsigned n;
	int ret;

	for (n = 64; n <= 4096; n *= 2) {
		free(c);
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c) {
			ret = -ENOMEM;
			kvmv_why(why, whylen, "out of memory for the CPUID table");
			goto out;
		}
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			*out = c;
			return 0;
		}
		if (errno != E2BIG)
			break;
	}
	ret = -errno;
	kvmv_why(why, whylen, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
out:
	free(c);
	return ret;
}

static const struct kvm_cpuid_entry2 *cpuid_find(const struct kvm_cpuid2 *c, uint32_t fn,
						 uint32_t idx)
{
	for (unsigned i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

static int fill_model(const struct kvm_cpuid2 *c, struct cpu_model *cpu, char *why,
		      size_t whylen)
{
	static const struct {
		uint32_t fn, reg, bit, feat; /* reg: 0 eax, 1 ebx, 2 ecx, 3 edx */
	} feats[] = {
		{ 0x80000001, 3, 20, CPU_FEAT_NX },
		{ 7, 1, 7, CPU_FEAT_SMEP },
		{ 7, 1, 20, CPU_FEAT_SMAP },
		{ 7, 2, 3, CPU_FEAT_PKU },
		{ 0x80000001, 3, 26, CPU_FEAT_1G },
		{ 7, 2, 16, CPU_FEAT_LA57 },
		{ 1, 3, 17, CPU_FEAT_PSE36 },
	};
	const struct kvm_cpuid_entry2 *e;
	char vendor[13];

	memset(cpu, 0, sizeof(*cpu));
	e = cpuid_find(c, 0, 0);
	if (!e) {
		kvmv_why(why, whylen, "KVM's supported CPUID has no leaf 0");
		return -ENODEV;
	}
	memcpy(vendor, &e->ebx, 4);
	memcpy(vendor + 4, &e->edx, 4);
	memcpy(vendor + 8, &e->ecx, 4);
	vendor[12] = '\0';
	if (!strcmp(vendor, "AuthenticAMD") || !strcmp(vendor, "HygonGenuine")) {
		cpu->vendor = CPU_VENDOR_AMD;
	} else if (!strcmp(vendor, "GenuineIntel")) {
		cpu->vendor = CPU_VENDOR_INTEL;
	} else {
		kvmv_why(why, whylen, "unknown CPU vendor \"%s\" in KVM's supported CPUID", vendor);
		return -ENODEV;
	}

	/* No 0x80000008 means a 36-bit MAXPHYADDR (SDM: CPUID.80000008 absent). */
	e = cpuid_find(c, 0x80000008, 0);
	cpu->maxphyaddr = e ? (int)(e->eax & 0xff) : 36;
	if (cpu->maxphyaddr < 32 || cpu->maxphyaddr > 52) {
		kvmv_why(why, whylen, "implausible MAXPHYADDR %d in KVM's supported CPUID",
			cpu->maxphyaddr);
		return -ENODEV;
	}

	for (size_t i = 0; i < sizeof(feats) / sizeof(feats[0]); i++) {
		uint32_t regs[4];

		e = cpuid_find(c, feats[i].fn, 0);
		if (!e)
			continue;
		regs[0] = e->eax;
		regs[1] = e->ebx;
		regs[2] = e->ecx;
		regs[3] = e->edx;
		if (regs[feats[i].reg] >> feats[i].bit & 1)
			cpu->features |= feats[i].feat;
	}
	snprintf(cpu->name, sizeof(cpu->name), "host");
	return 0;
}

/* Open /dev/kvm and check the API; on failure say why in words a user can act on. */
int kvmv_open_dev(int *fd_out, char *why, size_t whylen)
{
	int fd, ret;

	fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "cannot open /dev/kvm: %s", strerror(errno));
		return ret;
	}
	ret = ioctl(fd, KVM_GET_API_VERSION, 0);
	if (ret != KVM_API_VERSION) {
		if (ret < 0)
			kvmv_why(why, whylen, "/dev/kvm is not a KVM device: %s", strerror(errno));
		else
			kvmv_why(why, whylen, "/dev/kvm API version %d, need %d", ret,
				KVM_API_VERSION);
		close(fd);
		return -ENODEV;
	}
	*fd_out = fd;
	return 0;
}

int kvmv_probe_cpu(struct cpu_model *cpu, char *why, size_t whylen)
{
	struct kvm_cpuid2 *c = NULL;
	int fd = -1, ret;

	ret = kvmv_open_dev(&fd, why, whylen);
	if (ret)
		goto out;
	ret = kvmv_supported_cpuid(fd, &c, why, whylen);
	if (ret)
		goto out;
	ret = fill_model(c, cpu, why, whylen);
out:
	free(c);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* The guest image */

/* A code/data segment descriptor covering 4 GiB (64-bit mode ignores base and limit). */
uint64_t kvmv_seg_desc(unsigned type, unsigned dpl, bool l, bool db)
{
	return 0xffffULL | 0xfULL << 48 |            /* limit 0xfffff, 4 KiB granular */
	       (uint64_t)type << 40 | 1ULL << 44 |   /* S: code/data */
	       (uint64_t)dpl << 45 | 1ULL << 47 |    /* present */
	       (uint64_t)l << 53 | (uint64_t)db << 54 | 1ULL << 55;
}

struct kvm_segment kvmv_kseg(uint16_t sel, unsigned type, bool l, bool db)
{
	return (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = (uint8_t)type,
		.present = 1, .dpl = (uint8_t)(sel & 3), .db = db, .s = 1, .l = l, .g = 1,
	};
}

static uint64_t *low_q(struct kvmv *k, uint64_t gpa)
{
	return (uint64_t *)(void *)(k->low + gpa);
}

/* GDT (Linux's 64-bit layout), a busy 64-bit TSS with RSP0 = KVMG_KSTACK_TOP and no I/O map,
 * and an IDT whose vector v enters @stubs + 16 v; INT3 and INTO may be raised from ring 3. */
void kvmv_build_tables(uint8_t *low, uint64_t stubs)
{
	uint64_t *gdt = (uint64_t *)(void *)(low + KVMG_GDT);
	uint64_t *idt = (uint64_t *)(void *)(low + KVMG_IDT);

	gdt[KVMG_KERNEL_CS >> 3] = kvmv_seg_desc(0xb, 0, true, false);
	gdt[KVMG_KERNEL_DS >> 3] = kvmv_seg_desc(0x3, 0, false, true);
	gdt[KVMG_USER32_CS >> 3] = kvmv_seg_desc(0xb, 3, false, true);
	gdt[KVMG_USER_DS >> 3] = kvmv_seg_desc(0x3, 3, false, true);
	gdt[KVMG_USER_CS >> 3] = kvmv_seg_desc(0xb, 3, true, false);
	/* 64-bit TSS, busy (TR is loaded through KVM_SET_SREGS, never by LTR); base < 16 MiB. */
	gdt[KVMG_TSS_SEL >> 3] = 103ULL | (uint64_t)KVMG_TSS << 16 | 0xbULL << 40 | 1ULL << 47;
	gdt[(KVMG_TSS_SEL >> 3) + 1] = 0;

	/* TSS: RSP0 for exceptions from ring 3; I/O bitmap offset past the limit = no I/O map. */
	memcpy(low + KVMG_TSS + 4, &(uint64_t){ KVMG_KSTACK_TOP }, 8);
	memcpy(low + KVMG_TSS + 102, &(uint16_t){ 104 }, 2);

	for (unsigned v = 0; v < KVMG_IDT_VECTORS; v++) {
		uint64_t h = stubs + (uint64_t)v * KVMG_STUB_SIZE;
		/* INT3 (and INTO) must be allowed from ring 3: the user code reports with INT3. */
		uint64_t dpl = (v == 3 || v == 4) ? 3 : 0;

		idt[2 * v] = (h & 0xffff) | (uint64_t)KVMG_KERNEL_CS << 16 |
			     (0x8eULL | dpl << 5) << 40 | (h >> 16 & 0xffff) << 48;
		idt[2 * v + 1] = h >> 32;
	}
}

/* Lay out GDT, IDT, TSS, harness page tables and code in the (zeroed) low slot. */
static int build_guest(struct kvmv *k, char *why, size_t whylen)
{
	size_t image_len = (size_t)((uintptr_t)kvmg_image_end - (uintptr_t)kvmg_image);
	uint64_t *pt = low_q(k, KVMG_PT_LOW);
	uint64_t stubs = image_gva(kvmg_stubs);

	if (image_len != KVMG_USTACK_PAGE - KVMG_KCODE ||
	    image_gva(kvmg_udone) < KVMG_UCODE || image_gva(kvmg_kdone) >= KVMG_UCODE) {
		kvmv_why(why, whylen, "guest image layout is broken (%zu bytes)", image_len);
		return -EINVAL;
	}
	memcpy(k->low + KVMG_KCODE, kvmg_image, image_len);
	kvmv_build_tables(k->low, stubs);

	/* Identity map of all RAM; A/D preset so the harness's own walks never write them. */
	*low_q(k, KVMG_PML4) = KVMG_PDPT_LOW | PTE_P | PTE_RW | PTE_US | PTE_A;
	*low_q(k, KVMG_PDPT_LOW) = KVMG_PD_LOW | PTE_P | PTE_RW | PTE_US | PTE_A;
	*low_q(k, KVMG_PDPT_LOW + 8) = KVMG_PD_DATA | PTE_P | PTE_RW | PTE_A;
	*low_q(k, KVMG_PD_LOW) = KVMG_PT_LOW | PTE_P | PTE_RW | PTE_US | PTE_A;
	for (uint64_t a = 0x200000; a < KVMG_LOW_SIZE; a += 0x200000)
		*low_q(k, KVMG_PD_LOW + a / 0x200000 * 8) =
			a | PTE_P | PTE_RW | PTE_PS | PTE_A | PTE_D;
	*low_q(k, KVMG_PD_DATA) = KVMG_DATA_BASE | PTE_P | PTE_RW | PTE_PS | PTE_A | PTE_D;
	/* Page 0 stays unmapped so a stray null access faults. */
	for (uint64_t i = 1; i < 512; i++)
		pt[i] = i << 12 | PTE_P | PTE_RW | PTE_A | PTE_D;
	pt[KVMG_UCODE >> 12] = KVMG_UCODE | PTE_P | PTE_US | PTE_A;
	pt[KVMG_USTACK_PAGE >> 12] |= PTE_US;

	/* The data page holds the RET even before a run asks for it (kvm_guest.h says why
	 * this byte reads as a not-present entry). */
	k->data[0] = KVMG_RET_OPCODE;
	return 0;
}

/* Ring 0 in 64-bit paging over the tables of kvmv_build_tables: flat segments, TR, GDTR, IDTR,
 * CR0 = @cr0, CR3 = @cr3, CR4.PAE, EFER.LME/LMA, nothing pending. */
void kvmv_sregs64(struct kvm_sregs *s, uint64_t cr3, uint64_t cr0)
{
	s->cs = kvmv_kseg(KVMG_KERNEL_CS, 0xb, true, false);
	s->ds = s->es = s->fs = s->gs = s->ss = kvmv_kseg(KVMG_KERNEL_DS, 0x3, false, true);
	s->tr = (struct kvm_segment){
		.base = KVMG_TSS, .limit = 103, .selector = KVMG_TSS_SEL, .type = 0xb,
		.present = 1,
	};
	s->gdt.base = KVMG_GDT;
	s->gdt.limit = KVMG_GDT_ENTRIES * 8 - 1;
	s->idt.base = KVMG_IDT;
	s->idt.limit = KVMG_IDT_VECTORS * 16 - 1;
	s->cr0 = cr0;
	s->cr2 = 0;
	s->cr3 = cr3;
	s->cr4 = CR4_PAE;
	s->efer = EFER_LME | EFER_LMA;
	memset(s->interrupt_bitmap, 0, sizeof(s->interrupt_bitmap));
}

static int init_sregs(struct kvmv *k, char *why, size_t whylen)
{
	struct kvm_sregs *s = &k->sregs0;
	int ret;

	if (ioctl(k->vcpu_fd, KVM_GET_SREGS, s) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_GET_SREGS: %s", strerror(-ret));
		return ret;
	}
	kvmv_sregs64(s, KVMG_PML4, CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_PG);
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Open / close */

void kvmv_release(struct kvm_run *run, size_t run_size, int vcpu_fd, int vm_fd, int kvm_fd)
{
	if (run && run != MAP_FAILED)
		munmap(run, run_size);
	if (vcpu_fd >= 0)
		close(vcpu_fd);
	if (vm_fd >= 0)
		close(vm_fd);
	if (kvm_fd >= 0)
		close(kvm_fd);
}

void kvmv_close(struct kvmv *k)
{
	if (!k)
		return;
	kvmv_release(k->run, k->run_size, k->vcpu_fd, k->vm_fd, k->kvm_fd);
	if (k->low)
		munmap(k->low, KVMG_LOW_SIZE);
	if (k->data)
		munmap(k->data, KVMG_DATA_SIZE);
	free(k);
}

int kvmv_create_vm(int *kvm_fd, int *vm_fd, struct kvm_cpuid2 **cpuid, char *why, size_t whylen)
{
	int ret = kvmv_open_dev(kvm_fd, why, whylen);

	ret = ret ? ret : kvmv_supported_cpuid(*kvm_fd, cpuid, why, whylen);
	if (ret)
		return ret;
	*vm_fd = ioctl(*kvm_fd, KVM_CREATE_VM, 0);
	if (*vm_fd < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_CREATE_VM: %s", strerror(errno));
	}
	return ret;
}

int kvmv_add_slot(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size, void *host, char *why,
		  size_t whylen)
{
	struct kvm_userspace_memory_region r = {
		.slot = slot, .guest_phys_addr = gpa, .memory_size = size,
		.userspace_addr = (uint64_t)(uintptr_t)host,
	};
	int ret;

	if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_SET_USER_MEMORY_REGION (gpa %#llx): %s",
			 (unsigned long long)gpa, strerror(-ret));
		return ret;
	}
	return 0;
}

int kvmv_create_vcpu(int kvm_fd, int vm_fd, int *vcpu_fd, struct kvm_run **run, size_t *run_size,
		     char *why, size_t whylen)
{
	int ret, sz;

	*vcpu_fd = ioctl(vm_fd, KVM_CREATE_VCPU, 0);
	if (*vcpu_fd < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_CREATE_VCPU: %s", strerror(errno));
		return ret;
	}
	sz = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run)) {
		ret = sz < 0 ? -errno : -EINVAL;
		kvmv_why(why, whylen, "KVM_GET_VCPU_MMAP_SIZE: %s",
			 sz < 0 ? strerror(errno) : "too small");
		return ret;
	}
	*run_size = (size_t)sz;
	*run = mmap(NULL, *run_size, PROT_READ | PROT_WRITE, MAP_SHARED, *vcpu_fd, 0);
	if (*run == MAP_FAILED) {
		ret = -errno;
		*run = NULL;
		kvmv_why(why, whylen, "mmap of the vCPU run area: %s", strerror(errno));
		return ret;
	}
	return 0;
}

void *kvmv_map_ram(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

int kvmv_open(struct kvmv **out, char *why, size_t whylen)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct kvm_sregs probe_sregs;
	struct scenario s;
	struct scn_outcome o;
	struct kvmv *k;
	int ret;

	*out = NULL;
	k = calloc(1, sizeof(*k));
	if (!k) {
		kvmv_why(why, whylen, "out of memory");
		return -ENOMEM;
	}
	k->kvm_fd = k->vm_fd = k->vcpu_fd = -1;

	ret = kvmv_create_vm(&k->kvm_fd, &k->vm_fd, &cpuid, why, whylen);
	if (ret)
		goto out;
	ret = fill_model(cpuid, &k->cpu, why, whylen);
	if (ret)
		goto out;
	k->low = kvmv_map_ram(KVMG_LOW_SIZE);
	k->data = kvmv_map_ram(KVMG_DATA_SIZE);
	if (!k->low || !k->data) {
		ret = -ENOMEM;
		kvmv_why(why, whylen, "cannot map guest RAM");
		goto out;
	}
	ret = kvmv_add_slot(k->vm_fd, 0, 0, KVMG_LOW_SIZE, k->low, why, whylen);
	if (ret)
		goto out;
	ret = kvmv_add_slot(k->vm_fd, 1, KVMG_DATA_BASE, KVMG_DATA_SIZE, k->data, why, whylen);
	if (ret)
		goto out;

	ret = kvmv_create_vcpu(k->kvm_fd, k->vm_fd, &k->vcpu_fd, &k->run, &k->run_size, why,
			       whylen);
	if (ret)
		goto out;
	/* The guest sees exactly what kvmv_probe_cpu reports, so CR4 checks line up with it. */
	if (ioctl(k->vcpu_fd, KVM_SET_CPUID2, cpuid) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_SET_CPUID2: %s", strerror(errno));
		goto out;
	}
	ret = build_guest(k, why, whylen);
	if (ret)
		goto out;
	ret = init_sregs(k, why, whylen);
	if (ret)
		goto out;
	probe_sregs = k->sregs0;
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &probe_sregs) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_SET_SREGS refused 64-bit paging mode: %s",
			strerror(errno));
		goto out;
	}

	/* One known-good scenario, so a host that cannot run the guest fails here, clearly. */
	memset(&s, 0, sizeof(s));
	for (int l = 0; l < SCN_NLEVELS; l++)
		s.flags[l] = PTE_P | PTE_RW | PTE_US;
	ret = kvmv_run(k, &s, &o, why, whylen);
	if (!ret && o.fault) {
		kvmv_why(why, whylen, "self-test read faulted (ec %#x)", o.ec);
		ret = -EPROTO;
	}
	if (ret)
		goto out;

	*out = k;
	k = NULL;
out:
	free(cpuid);
	kvmv_close(k);
	return ret;
}

/* ---------------------------------------------------------------------------------------- */
/* Running one scenario */

static bool in_ram(uint64_t gpa)
{
	return (gpa >= SCN_PDPT_GPA && gpa < KVMG_LOW_SIZE) ||
	       (gpa >= KVMG_DATA_BASE && gpa < KVMG_DATA_BASE + KVMG_DATA_SIZE);
}

const char *kvmv_vector_name(unsigned v)
{
	static const char *const names[KVMG_IDT_VECTORS] = {
		"#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "vector 9",
		"#TS", "#NP", "#SS", "#GP", "#PF", "vector 15", "#MF", "#AC", "#MC", "#XM",
		"#VE", "#CP",
	};

	return v < KVMG_IDT_VECTORS && names[v] ? names[v] : "reserved vector";
}

const char *kvmv_exit_name(uint32_t r)
{
	switch (r) {
	case KVM_EXIT_UNKNOWN: return "KVM_EXIT_UNKNOWN";
	case KVM_EXIT_EXCEPTION: return "KVM_EXIT_EXCEPTION";
	case KVM_EXIT_IO: return "KVM_EXIT_IO";
	case KVM_EXIT_DEBUG: return "KVM_EXIT_DEBUG";
	case KVM_EXIT_MMIO: return "KVM_EXIT_MMIO";
	case KVM_EXIT_SHUTDOWN: return "KVM_EXIT_SHUTDOWN";
	case KVM_EXIT_FAIL_ENTRY: return "KVM_EXIT_FAIL_ENTRY";
	case KVM_EXIT_INTR: return "KVM_EXIT_INTR";
	case KVM_EXIT_INTERNAL_ERROR: return "KVM_EXIT_INTERNAL_ERROR";
	case KVM_EXIT_SYSTEM_EVENT: return "KVM_EXIT_SYSTEM_EVENT";
	case KVM_EXIT_X86_RDMSR: return "KVM_EXIT_X86_RDMSR";
	case KVM_EXIT_X86_WRMSR: return "KVM_EXIT_X86_WRMSR";
	default: return "unknown exit";
	}
}

/* Where the leaf maps the test address (its offset in every page size is 0). */
static uint64_t leaf_frame(const struct scenario *s, uint64_t leaf_entry)
{
	static const uint64_t frame_mask[] = {
		[SCN_LEAF_4K] = PTE_ADDR_MASK,
		[SCN_LEAF_2M] = PTE_ADDR_MASK & ~0x1fffffULL,
		[SCN_LEAF_1G] = PTE_ADDR_MASK & ~0x3fffffffULL,
	};

	return leaf_entry & frame_mask[s->leaf];
}

static int check_scenario(const struct kvmv *k, const struct scenario *s, char *why,
			  size_t whylen)
{
	if ((unsigned)s->leaf > SCN_LEAF_1G || (unsigned)s->access > SCN_FETCH ||
	    (s->cpl != 0 && s->cpl != 3) || s->pkey > 15) {
		kvmv_why(why, whylen, "malformed scenario (leaf %d, access %d, cpl %d, pkey %u)",
			(int)s->leaf, (int)s->access, s->cpl, s->pkey);
		return -EINVAL;
	}
	if (s->efer_nxe && !cpu_has(&k->cpu, CPU_FEAT_NX)) {
		kvmv_why(why, whylen, "EFER.NXE=1 but this host's KVM guest CPU has no NX");
		return -EOPNOTSUPP;
	}
	if (s->cr4_smep && !cpu_has(&k->cpu, CPU_FEAT_SMEP)) {
		kvmv_why(why, whylen, "CR4.SMEP=1 but this host's KVM guest CPU has no SMEP");
		return -EOPNOTSUPP;
	}
	if (s->cr4_smap && !cpu_has(&k->cpu, CPU_FEAT_SMAP)) {
		kvmv_why(why, whylen, "CR4.SMAP=1 but this host's KVM guest CPU has no SMAP");
		return -EOPNOTSUPP;
	}
	if (s->cr4_pke && !cpu_has(&k->cpu, CPU_FEAT_PKU)) {
		kvmv_why(why, whylen, "CR4.PKE=1 but this host's KVM guest CPU has no PKU");
		return -EOPNOTSUPP;
	}
	return 0;
}

/*
 * Fill the guest's parameter block for @s and remember, for the next run, which qwords
 * outside the four scenario entries this walk may dirty: entry 0 of any table that raw
 * address bits moved off its standard page, and the leaf frame's first qword.
 */
static void write_params(struct kvmv *k, const struct scenario *s, const uint64_t e[4])
{
	static const uint64_t std_table[SCN_NLEVELS - 1] = { SCN_PDPT_GPA, SCN_PD_GPA,
							     SCN_PT_GPA };
	uint64_t p[KVMG_P_SIZE / 8] = { 0 };
	int leaf = scn_nlevels(s) - 1, nstale = 0;
	uint64_t frame = leaf_frame(s, e[leaf]);

	memcpy(&p[KVMG_P_ENTRY / 8], e, 4 * sizeof(e[0]));
	memcpy(&p[KVMG_P_ZERO / 8], k->stale, sizeof(k->stale));
	p[KVMG_P_FRAME / 8] = in_ram(frame) ? frame : 0;
	p[KVMG_P_ACCESS / 8] = (uint64_t)s->access;
	p[KVMG_P_CPL / 8] = (uint64_t)s->cpl;
	p[KVMG_P_RFLAGS / 8] = RFLAGS_FIXED | (s->ac ? RFLAGS_AC : 0);
	p[KVMG_P_PKE / 8] = s->cr4_pke;
	p[KVMG_P_PKRU / 8] = s->pkru;
	memcpy(k->low + KVMG_PARAM, p, sizeof(p));

	memset(k->stale, 0, sizeof(k->stale));
	for (int l = 0; l < leaf; l++) {
		uint64_t t = e[l] & PTE_ADDR_MASK;

		if (t != std_table[l] && in_ram(t))
			k->stale[nstale++] = t;
	}
	/* The data page keeps its RET; any other frame goes back to zero. */
	if (frame != KVMG_DATA_BASE && in_ram(frame))
		k->stale[nstale++] = frame;
}

/* Enter the guest until it halts, serving MMIO with zeroes. */
static int run_to_halt(struct kvmv *k, const struct scenario *s, uint64_t frame, char *why,
		       size_t whylen)
{
	struct kvm_run *r = k->run;
	int ret;

	for (int exits = 0; exits < MAX_EXITS;) {
		if (ioctl(k->vcpu_fd, KVM_RUN, 0) < 0) {
			/* A signal to this process, not a guest exit: enter again. */
			if (errno == EINTR || errno == EAGAIN)
				continue;
			ret = -errno;
			kvmv_why(why, whylen, "KVM_RUN: %s", strerror(-ret));
			return ret;
		}
		switch (r->exit_reason) {
		case KVM_EXIT_HLT:
			return 0;
		case KVM_EXIT_MMIO:
			/* Only the leaf frame may be MMIO; anything else is a harness bug. */
			if (r->mmio.phys_addr != frame) {
				kvmv_why(why, whylen, "MMIO exit at gpa %#llx, not the leaf frame",
					(unsigned long long)r->mmio.phys_addr);
				return -EPROTO;
			}
			if (!r->mmio.is_write)
				memset(r->mmio.data, 0, sizeof(r->mmio.data));
			exits++;
			continue;
		case KVM_EXIT_INTERNAL_ERROR:
			/* KVM cannot fetch instructions from MMIO; the walk itself succeeded. */
			if (s->access == SCN_FETCH && !in_ram(frame) &&
			    r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION) {
				kvmv_why(why, whylen,
					"fetch from a leaf frame outside guest RAM (gpa %#llx): KVM "
					"cannot execute MMIO", (unsigned long long)frame);
				return -EOPNOTSUPP;
			}
			kvmv_why(why, whylen, "KVM_EXIT_INTERNAL_ERROR, suberror %u%s",
				r->internal.suberror,
				r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ?
					" (instruction emulation failed)" : "");
			return -EPROTO;
		case KVM_EXIT_SHUTDOWN:
			kvmv_why(why, whylen, "guest triple-faulted (KVM_EXIT_SHUTDOWN)");
			return -EPROTO;
		case KVM_EXIT_FAIL_ENTRY:
			kvmv_why(why, whylen, "KVM_EXIT_FAIL_ENTRY, hardware reason %#llx",
				(unsigned long long)r->fail_entry.hardware_entry_failure_reason);
			return -EPROTO;
		case KVM_EXIT_IO:
			kvmv_why(why, whylen, "unexpected KVM_EXIT_IO (port %#x)", r->io.port);
			return -EPROTO;
		default:
			kvmv_why(why, whylen, "unexpected KVM exit %u (%s)", r->exit_reason,
				kvmv_exit_name(r->exit_reason));
			return -EPROTO;
		}
	}
	kvmv_why(why, whylen, "guest made %d exits without halting", MAX_EXITS);
	return -EPROTO;
}

/* Turn the guest's final registers into a fault / no-fault verdict. */
static int decode_halt(const struct kvm_regs *g, const struct scenario *s,
		       struct scn_outcome *o, char *why, size_t whylen)
{
	uint64_t vec = g->r15 & 0xff;

	if (g->rip == image_gva(kvmg_kdone) + 1 && g->r15 == KVMG_MARK_DONE && s->cpl == 0)
		return 0;
	if (g->rip != image_gva(kvmg_exc_hlt) + 1 || (g->r15 & ~0xffULL) != KVMG_MARK_EXC) {
		kvmv_why(why, whylen, "guest halted at unexpected rip %#llx (r15 %#llx)",
			(unsigned long long)g->rip, (unsigned long long)g->r15);
		return -EPROTO;
	}
	/* Ring 3's INT3 right after its access = the access completed. */
	if (vec == BP_VECTOR && s->cpl == 3 && g->r12 == image_gva(kvmg_udone) &&
	    (g->r11 & 0xffff) == KVMG_USER_CS)
		return 0;
	if (vec == PF_VECTOR && g->r13 == SCN_GVA) {
		o->fault = true;
		o->ec = (uint32_t)g->r14;
		o->cr2 = g->r13;
		return 0;
	}
	kvmv_why(why, whylen, "guest took %s (vector %llu), error code %#llx, cr2 %#llx, "
		"at rip %#llx cs %#llx", kvmv_vector_name((unsigned)vec), (unsigned long long)vec,
		(unsigned long long)g->r14, (unsigned long long)g->r13,
		(unsigned long long)g->r12, (unsigned long long)(g->r11 & 0xffff));
	return -EPROTO;
}

int kvmv_run(struct kvmv *k, const struct scenario *s, struct scn_outcome *out, char *why,
	     size_t whylen)
{
	static const uint64_t entry_gpa[SCN_NLEVELS] = { SCN_PML4_GPA + 8, SCN_PDPT_GPA,
							 SCN_PD_GPA, SCN_PT_GPA };
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint64_t e[SCN_NLEVELS];
	int ret, n;

	ret = check_scenario(k, s, why, whylen);
	if (ret)
		return ret;
	n = scn_nlevels(s);
	for (int l = 0; l < SCN_NLEVELS; l++)
		e[l] = l < n ? scn_entry(s, l) : 0;

	sregs = k->sregs0;
	if (s->cr0_wp)
		sregs.cr0 |= CR0_WP;
	if (s->efer_nxe)
		sregs.efer |= EFER_NXE;
	sregs.cr4 |= (s->cr4_smep ? CR4_SMEP : 0) | (s->cr4_smap ? CR4_SMAP : 0) |
		     (s->cr4_pke ? CR4_PKE : 0);
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
		ret = errno == EINVAL ? -EOPNOTSUPP : -errno;
		kvmv_why(why, whylen, "KVM refused CR0 %#llx CR4 %#llx EFER %#llx: %s",
			(unsigned long long)sregs.cr0, (unsigned long long)sregs.cr4,
			(unsigned long long)sregs.efer, strerror(errno));
		return ret;
	}
	if (k->reset_events) {
		struct kvm_vcpu_events ev;

		memset(&ev, 0, sizeof(ev));
		if (ioctl(k->vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
			ret = -errno;
			kvmv_why(why, whylen, "KVM_SET_VCPU_EVENTS: %s", strerror(-ret));
			return ret;
		}
		k->reset_events = false;
	}
	memset(&regs, 0, sizeof(regs));
	regs.rip = KVMG_KCODE;
	regs.rsp = KVMG_KSTACK_TOP;
	regs.rflags = RFLAGS_FIXED;
	if (ioctl(k->vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_SET_REGS: %s", strerror(-ret));
		return ret;
	}

	write_params(k, s, e);
	/* From here the guest may have left events pending if we bail out. */
	k->reset_events = true;
	ret = run_to_halt(k, s, leaf_frame(s, e[n - 1]), why, whylen);
	if (ret)
		return ret;
	if (ioctl(k->vcpu_fd, KVM_GET_REGS, &regs) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_GET_REGS: %s", strerror(-ret));
		return ret;
	}
	memset(out, 0, sizeof(*out));
	out->nlevels = n;
	ret = decode_halt(&regs, s, out, why, whylen);
	if (ret)
		return ret;
	k->reset_events = false;

	for (int l = 0; l < n; l++) {
		uint64_t v = *low_q(k, entry_gpa[l]);

		out->ad[l] = (uint8_t)((v & PTE_A ? SCN_AD_A : 0) | (v & PTE_D ? SCN_AD_D : 0));
	}
	return 0;
}
