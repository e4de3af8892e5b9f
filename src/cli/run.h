/* SPDX-License-Identifier: MIT */
/*
 * What `vmmu run` shares with `vmmu compare`: its parsed options and one run collected without
 * printing. No state; no locking.
 */
#ifndef VMMU_CLI_RUN_H
#define VMMU_CLI_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

#define MAX_PARAMS 64
#define NR_OPTS 4   /* notrap, unsync, prefetch, fastpf: bit i of VMMU_OPT_* */

struct run_args {
	const char *workload;
	int mmu;                         /* enum vmmu_mmu */
	int host;                        /* enum vmmu_host, or -1: the mode's default */
	bool opts[NR_OPTS];
	unsigned vcpus, vms;
	uint64_t mem;
	int thp;
	int hugetlb;                     /* enum vmmu_hugetlb */
	bool guest_thp, guest_1g, ksm, pcid, json, report_exits;
	bool interleave;                 /* --interleave: every vCPU on one thread, deterministic */
	bool pin_vcpus;                  /* --pin-vcpus: vCPU thread i on the i-th allowed CPU */
	uint64_t seed;
	unsigned aging, quantum, audit;
	unsigned guest_khugepaged;       /* --guest-khugepaged N: rounds between passes */
	uint64_t max_shadow_pages;       /* 0: the MMU's default */
	int mmu_evict;                   /* enum vmmu_mmu_evict */
	int mmu_lock;                    /* enum vmmu_mmu_lock */
	const char *cpu;
	const char *params[MAX_PARAMS];
	unsigned nparams;
	const char *ksm_params[MAX_PARAMS];   /* --ksm-param values, "KEY=VALUE[,...]" each */
	unsigned nksm_params;
	bool khugepaged;
	const char *thp_params[MAX_PARAMS];   /* --thp-param values (khugepaged's knobs) */
	unsigned nthp_params;
	unsigned host_fragment;          /* --host-fragment PCT[:MS] */
	uint64_t host_fragment_ms;
	struct vmmu_cost cost;
};

/* Parse `vmmu run` arguments (argv[0] is the command name) and run the workload. 0; -1 when
 * --help was printed; an exit code (cli.h) after printing a one-line error. @quiet: no progress
 * line. */
/* `vmmu run`'s whole command line read and checked, the workload's parameters included, nothing
 * run: 0, -1 (help printed) or EXIT_USAGE with the message on stderr. */
int run_parse(int argc, char **argv, struct run_args *ra, struct vmmu_workload_args *wa);
/* `vmmu compare`'s command line read and checked, every configuration's run line included
 * (cmd_compare.c); nothing run, no file touched: 0 or EXIT_USAGE with the message on stderr. */
int compare_check(int argc, char **argv);
int run_collect(int argc, char **argv, bool quiet, struct run_args *ra,
		struct vmmu_workload_args *wa, struct vmmu_guest_result *res);
void run_print_json(const struct run_args *ra, const struct vmmu_workload_args *wa,
		    const struct vmmu_guest_result *res);
const char *run_mmu_name(const struct run_args *ra);
/* Is @spec a valid --opt value? 0, or EXIT_USAGE after printing why. */
int run_check_opts(const char *spec);
const char *run_host_name(const struct run_args *ra);

#endif
