/* SPDX-License-Identifier: MIT */
/*
 * vCPUs on threads of their own and a monitor beside them: four vCPUs, each on its own thread,
 * write their own pages (the first touch of each faults through the MMU) and then read them
 * back, while the main thread reads the VM's counters as they run, as a VMM's monitor reads
 * KVM's binary stats. A counter read meanwhile is a value it had (never lower than the last
 * read's); once the threads are joined, every counter is exact.
 *   cc threads.c $(pkg-config --cflags --libs vmmu) -pthread -o threads && ./threads [MODE]
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <vmmu/vmmu.h>

#include "example.h"

#define MEM      (64ULL << 20)
#define TABLES   0x100000ULL          /* guest page tables from 1 MiB up */
#define DATA_GVA 0x400000ULL
#define DATA_GPA 0x800000ULL
#define VCPUS    4
#define PAGES    1024                 /* each vCPU's own */
#define READS    200000               /* each vCPU's, after its writes */

struct worker {
	struct vmmu_vcpu *vcpu;
	unsigned id;
	int done;                     /* set (atomically) when the thread ends */
	int rc;                       /* its first error, -errno; read once joined */
};

static void *run(void *arg)
{
	struct worker *w = arg;
	struct vmmu_access_result res;
	const vmmu_gva_t base = DATA_GVA + (vmmu_gva_t)w->id * PAGES * 4096;

	for (uint64_t i = 0; i < PAGES + READS && !w->rc; i++) {
		uint64_t page = i % PAGES, val = page ^ w->id, back = 0;
		bool write = i < PAGES;
		int rc = vmmu_vcpu_access(w->vcpu, base + page * 4096, 8,
					  write ? VMMU_ACC_WRITE : VMMU_ACC_READ, write ? &val : &back,
					  &res);
		if (rc || res.status != VMMU_ACCESS_DONE || (!write && back != val))
			w->rc = rc ? rc : -EIO;
	}
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

#define fail(what, rc) example_fail("threads", what, rc)

int main(int argc, char **argv)
{
	const char *mode;
	struct vmmu_vm_config cfg = example_config(argc, argv, "shadow", &mode);
	struct vmmu_regs regs = example_regs64(TABLES, 3);
	vmmu_gpa_t next_table = TABLES;
	struct worker w[VCPUS];
	pthread_t tid[VCPUS];
	struct vmmu_vm *vm;
	struct vmmu_stats st, last = { 0 };
	unsigned reads = 0, running;
	const char *what;
	int rc;

	if ((rc = example_vm(&cfg, MEM, &vm, &what)))
		return fail(what, rc);
	for (uint64_t p = 0; p < (uint64_t)VCPUS * PAGES; p++)
		if ((rc = vmmu_gpt_map(vm, TABLES, 4, DATA_GVA + p * 4096, DATA_GPA + p * 4096, 1,
				       VMMU_PTE_P | VMMU_PTE_RW | VMMU_PTE_US, example_alloc_table,
				       &next_table)))
			return fail("vmmu_gpt_map", rc);
	for (unsigned i = 0; i < VCPUS; i++) {
		w[i] = (struct worker){ .id = i };
		if ((rc = vmmu_vcpu_create(vm, i, &w[i].vcpu)) ||
		    (rc = vmmu_vcpu_set_regs(w[i].vcpu, &regs)))
			return fail("vmmu_vcpu_create", rc);
	}
	for (unsigned i = 0; i < VCPUS; i++)
		if ((rc = -pthread_create(&tid[i], NULL, run, &w[i])))
			return fail("pthread_create", rc);

	/* The monitor: the VM's counters while its vCPUs run. */
	bool monotonic = true;
	do {
		running = 0;
		for (unsigned i = 0; i < VCPUS; i++)
			running += !__atomic_load_n(&w[i].done, __ATOMIC_ACQUIRE);
		if ((rc = vmmu_vm_get_stats(vm, &st)))
			break;
		monotonic = monotonic && st.accesses >= last.accesses && st.exits >= last.exits &&
			    st.tlb_misses >= last.tlb_misses && st.sim_cycles >= last.sim_cycles;
		if (running && reads++ % 64 == 0)
			printf("%s: %u vCPUs running: %" PRIu64 " accesses, %" PRIu64 " exits, %"
			       PRIu64 " pf_fixed\n", mode, running, st.accesses, st.exits, st.pf_fixed);
		last = st;
		sched_yield();
	} while (running);

	for (unsigned i = 0; i < VCPUS; i++) {
		pthread_join(tid[i], NULL);
		if (!rc && w[i].rc)
			rc = w[i].rc;
	}
	if (rc)
		return fail("a vCPU thread or the monitor", rc);
	if ((rc = vmmu_vm_get_stats(vm, &st)))
		return fail("vmmu_vm_get_stats", rc);
	/* An access that exits runs again once its exit is handled: the hardware counts both. */
	const uint64_t made = (uint64_t)VCPUS * (PAGES + READS);
	if (!monotonic || st.accesses != made + st.exits) {
		fprintf(stderr, "threads: counters: %s, %" PRIu64 " accesses for %" PRIu64
			" made and %" PRIu64 " exits\n", monotonic ? "monotonic" : "went down",
			st.accesses, made, st.exits);
		return 1;
	}
	printf("%s: %u vCPU threads, %u reads of the counters while they ran; at the end %" PRIu64
	       " accesses, %" PRIu64 " exits, pf_fixed %" PRIu64 ", TLB misses %" PRIu64 "\n",
	       mode, VCPUS, reads, st.accesses, st.exits, st.pf_fixed, st.tlb_misses);
	vmmu_vm_destroy(vm);
	return 0;
}
