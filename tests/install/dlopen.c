/* SPDX-License-Identifier: MIT */
/*
 * The shared library loaded at run time, as a plugin or a language binding (Python's ctypes) loads
 * it: dlopen() of the installed libvmmu.so, a VM under every MMU mode through the symbols it
 * exports, a store and a load in a paging-off guest (under the soft MMU, a fault handled inside a
 * read section), then libvmmuguest.so, which needs libvmmu. Not linked with either library.
 * A library whose thread-local storage must be placed at start-up (initial-exec) and does not fit
 * the few bytes glibc keeps for late loads fails the dlopen: "cannot allocate memory in static
 * TLS block".
 * Usage: dlopen LIBVMMU_SO LIBVMMUGUEST_SO
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <vmmu/vmmu.h>

#define SYM(h, name) ((__typeof__(&name))sym(h, #name))

static void *sym(void *h, const char *name)
{
	void *p = dlsym(h, name);

	if (!p)
		fprintf(stderr, "dlopen: no %s: %s\n", name, dlerror());
	return p;
}

static int one_vm(void *h, enum vmmu_mmu mode)
{
	__typeof__(&vmmu_vm_create) create = SYM(h, vmmu_vm_create);
	__typeof__(&vmmu_vm_destroy) destroy = SYM(h, vmmu_vm_destroy);
	__typeof__(&vmmu_vm_mmap) vm_mmap = SYM(h, vmmu_vm_mmap);
	__typeof__(&vmmu_set_user_memory_region) set_region = SYM(h, vmmu_set_user_memory_region);
	__typeof__(&vmmu_vcpu_create) vcpu_create = SYM(h, vmmu_vcpu_create);
	__typeof__(&vmmu_vcpu_set_regs) set_regs = SYM(h, vmmu_vcpu_set_regs);
	__typeof__(&vmmu_vcpu_access) vcpu_access = SYM(h, vmmu_vcpu_access);
	struct vmmu_vm_config cfg = { .mmu = mode, .host_mem_bytes = 64ULL << 20,
				      .host = mode == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX };
	struct vmmu_regs regs = { .cr0 = 1 };          /* protected mode, paging off */
	struct vmmu_vm *vm;
	struct vmmu_vcpu *vcpu;
	struct vmmu_access_result res;
	uint64_t hva, val = 0x1122334455667788ULL, back = 0;

	if (!create || !destroy || !vm_mmap || !set_region || !vcpu_create || !set_regs ||
	    !vcpu_access || create(&cfg, &vm))
		return 1;
	struct vmmu_userspace_memory_region slot = { .memory_size = 1ULL << 20 };
	int bad = vm_mmap(vm, slot.memory_size, false, &hva);
	slot.userspace_addr = hva;
	bad = bad || set_region(vm, &slot) || vcpu_create(vm, 0, &vcpu) || set_regs(vcpu, &regs) ||
	      vcpu_access(vcpu, 0x3008, 8, VMMU_ACC_WRITE, &val, &res) ||
	      res.status != VMMU_ACCESS_DONE ||
	      vcpu_access(vcpu, 0x3008, 8, VMMU_ACC_READ, &back, &res) ||
	      res.status != VMMU_ACCESS_DONE || back != val;
	destroy(vm);
	return bad;
}

int main(int argc, char **argv)
{
	static const enum vmmu_mmu modes[] = { VMMU_MMU_NATIVE, VMMU_MMU_SHADOW, VMMU_MMU_EPT,
					       VMMU_MMU_NPT };

	if (argc != 3) {
		fprintf(stderr, "usage: dlopen LIBVMMU_SO LIBVMMUGUEST_SO\n");
		return 2;
	}
	for (int i = 1; i < 3; i++) {
		void *h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			fprintf(stderr, "dlopen: %s\n", dlerror());
			return 1;
		}
		for (unsigned m = 0; i == 1 && m < sizeof(modes) / sizeof(modes[0]); m++) {
			if (one_vm(h, modes[m])) {
				fprintf(stderr, "dlopen: mode %u: the VM failed\n", (unsigned)modes[m]);
				return 1;
			}
		}
		if (i == 2 && !sym(h, "vmmu_run"))
			return 1;
		dlclose(h);
	}
	printf("dlopen: both libraries loaded; a store and a load in every mode\n");
	return 0;
}
