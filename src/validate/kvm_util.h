/* SPDX-License-Identifier: MIT */
/*
 * What the two /dev/kvm runners share (kvm.c for page-walk scenarios, kvm_probe.c for counter
 * probes): opening the device, the supported CPUID, flat 64-bit segments, anonymous guest
 * RAM and the names of vectors and exits for messages. Stateless helpers: no locking.
 */
#ifndef VMMU_VALIDATE_KVM_UTIL_H
#define VMMU_VALIDATE_KVM_UTIL_H

#include <linux/kvm.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A one-line reason into @why (NULL or 0 length: nothing). */
void kvmv_why(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Open /dev/kvm and check its API version; 0 or -errno with the reason in @why. */
int kvmv_open_dev(int *fd_out, char *why, size_t whylen);
/* KVM_GET_SUPPORTED_CPUID into a malloc'd table (*out, free() it). */
int kvmv_supported_cpuid(int kvm_fd, struct kvm_cpuid2 **out, char *why, size_t whylen);
/* A 4 GiB code/data descriptor, and the matching KVM segment for a selector (DPL = RPL). */
uint64_t kvmv_seg_desc(unsigned type, unsigned dpl, bool l, bool db);
struct kvm_segment kvmv_kseg(uint16_t sel, unsigned type, bool l, bool db);
/* /dev/kvm opened, its supported CPUID (*cpuid, free() it) and a new VM; 0 or -errno with @why
 * (what was made is left to the caller's cleanup). */
int kvmv_create_vm(int *kvm_fd, int *vm_fd, struct kvm_cpuid2 **cpuid, char *why, size_t whylen);
/* KVM_SET_USER_MEMORY_REGION of @host at @gpa; 0 or -errno with @why. */
int kvmv_add_slot(int vm_fd, uint32_t slot, uint64_t gpa, uint64_t size, void *host, char *why,
		  size_t whylen);
/* vCPU 0 and its mapped run area; 0 or -errno with @why (what was made is left to the caller's
 * cleanup). */
int kvmv_create_vcpu(int kvm_fd, int vm_fd, int *vcpu_fd, struct kvm_run **run, size_t *run_size,
		     char *why, size_t whylen);
/* Unmap the run area and close the vCPU, VM and device (each only if it was made). */
void kvmv_release(struct kvm_run *run, size_t run_size, int vcpu_fd, int vm_fd, int kvm_fd);
/* Zeroed anonymous memory for guest RAM (NULL when the host refuses). */
void *kvmv_map_ram(size_t size);
/* The harness of validate/kvm_guest.h's layout, for both runners' guests: GDT, TSS and an IDT
 * whose vector v enters @stubs + KVMG_STUB_SIZE * v (INT3 allowed from ring 3), written into
 * @low (guest RAM from gpa 0); and the ring-0 64-bit state that goes with it. */
void kvmv_build_tables(uint8_t *low, uint64_t stubs);
void kvmv_sregs64(struct kvm_sregs *s, uint64_t cr3, uint64_t cr0);
const char *kvmv_vector_name(unsigned v);
const char *kvmv_exit_name(uint32_t r);

#endif
