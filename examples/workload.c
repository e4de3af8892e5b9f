/* SPDX-License-Identifier: MIT */
/*
 * A custom workload driving the guest OS model (libvmmuguest): boot a guest kernel on a VM, spawn
 * a process, map anonymous memory, touch it, fork a child that writes half of it (copy on write),
 * and read what both observe, then the guest's digest and the VM's counters. The guest kernel
 * builds and changes its own page tables with guest stores, so under shadow paging the soft MMU
 * traps them; the digest is the same in every mode.
 *   cc workload.c $(pkg-config --cflags --libs vmmuguest) -o workload && ./workload [MODE]
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <vmmu/guest.h>

#include "example.h"

#define BASE  0x10000000ULL
#define PAGES 64

int main(int argc, char **argv)
{
	const char *mode;
	struct vmmu_guest_config cfg = { .vm = example_config(argc, argv, "shadow", &mode),
					 .vcpus = 1, .seed = 1 };
	struct vmmu_guest_result res;
	struct vmmu_guest *g;
	uint64_t v, addr, sum_parent = 0, sum_child = 0;
	int pid, child;

	if (vmmu_guest_create(&cfg, &g) || vmmu_guest_spawn(g, 0, &pid) ||
	    vmmu_guest_mmap(g, pid, BASE, PAGES * 4096ULL, VMMU_PROT_READ | VMMU_PROT_WRITE, 0,
			    &addr) || addr != BASE)
		return fprintf(stderr, "workload: cannot start the guest\n"), 1;
	for (uint64_t i = 0; i < PAGES; i++) {
		v = i;
		if (vmmu_guest_access(g, pid, BASE + i * 4096, 8, VMMU_ACC_WRITE, &v))
			return fprintf(stderr, "workload: a store failed\n"), 1;
	}
	if (vmmu_guest_fork(g, pid, 0, &child))
		return fprintf(stderr, "workload: fork failed\n"), 1;
	for (uint64_t i = 0; i < PAGES; i += 2) {
		v = 1000 + i;
		if (vmmu_guest_access(g, child, BASE + i * 4096, 8, VMMU_ACC_WRITE, &v))
			return fprintf(stderr, "workload: a child store failed\n"), 1;
	}
	for (uint64_t i = 0; i < PAGES; i++) {
		if (vmmu_guest_access(g, pid, BASE + i * 4096, 8, VMMU_ACC_READ, &v))
			return 1;
		sum_parent += v;
		if (vmmu_guest_access(g, child, BASE + i * 4096, 8, VMMU_ACC_READ, &v))
			return 1;
		sum_child += v;
	}
	if (vmmu_guest_result(g, &res))
		return 1;
	printf("%s: parent sum %" PRIu64 ", child sum %" PRIu64 ", guest page faults %" PRIu64
	       ", digest %016" PRIx64 ", VM exits %" PRIu64 "\n", mode, sum_parent, sum_child,
	       res.page_faults, res.digest, res.stats.exits);
	vmmu_guest_destroy(g);
	/* Copy on write: the parent still sees 0..63, the child 1000+i on even pages. */
	return sum_parent == PAGES * (PAGES - 1) / 2 && sum_child == sum_parent + 1000 * PAGES / 2 ? 0 : 1;
}
