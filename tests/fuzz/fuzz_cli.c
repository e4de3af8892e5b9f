/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the command lines of `vmmu run` (run_parse: every option, --opt lists, --cost
 * KEY=N lists, --param NAME=VALUE for the workload named), `vmmu compare` (compare_check: its
 * mode and opt-set lists, then each configuration's run line), `vmmu validate` (validate_parse)
 * and `vmmu check` (check_parse: --cpu, --features, --maxphyaddr). The first byte picks the
 * command, the rest is the arguments, NUL-separated. A parse must end in 0 with every field in range, or
 * in a refusal (EXIT_USAGE, the message on stderr); never a crash, never a read past the input.
 * Nothing is run and no file is written (compare's --plot file is opened only by cmd_compare).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ARGS 24

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *argv[MAX_ARGS + 2];
	int argc = 0;
	struct run_args ra;
	struct vmmu_workload_args wa;
	int rc;

	static const char *const cmd_names[] = { "run", "compare", "validate", "check" };
	unsigned cmd;

	if (size < 1 || size > 2048)
		return 0;
	cmd = data[0] & 3;
	data++;
	size--;
	buf = malloc(size + 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = (char *)cmd_names[cmd];
	for (size_t i = 0; i <= size && argc <= MAX_ARGS; i += strlen(buf + i) + 1)
		argv[argc++] = buf + i;
	argv[argc] = NULL;
	if (cmd == 1) {
		rc = compare_check(argc, argv);
		if (rc != 0 && rc != EXIT_USAGE)
			abort();
		free(buf);
		return 0;
	}
	if (cmd == 2) {
		struct validate_args va;
		rc = validate_parse(argc, argv, &va);
		/* Accepted: the counts in their documented ranges, probe options only with --probes. */
		if (rc == 0 && !va.help &&
		    (!va.count || va.count > 100000000 || va.seed > 100000000 || !va.reps ||
		     va.reps > 64 || (!va.probes && (va.golden || va.record || va.list))))
			abort();
		if (rc != 0 && rc != EXIT_USAGE)
			abort();
		free(buf);
		return 0;
	}
	if (cmd == 3) {
		struct check_args ca;
		rc = check_parse(argc, argv, &ca);
		if (rc == 0 && !ca.help && (ca.model.maxphyaddr < 36 || ca.model.maxphyaddr > 52))
			abort();
		if (rc != 0 && rc != EXIT_USAGE)
			abort();
		free(buf);
		return 0;
	}
	rc = run_parse(argc, argv, &ra, &wa);
	if (rc == 0) {
		/* Accepted: what a run would be given is in range. */
		if (!ra.workload || ra.mmu < 0 || ra.mmu > 3 || ra.host < 0 || ra.host > 1 ||
		    ra.vcpus > 64 || ra.vms > 16 || ra.thp < 0 || ra.thp > 2 ||
		    ra.nparams > MAX_PARAMS)
			abort();
	} else if (rc != -1 && rc != EXIT_USAGE) {
		abort();
	}
	free(buf);
	return 0;
}
