/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the command lines of `vmmu run` (run_parse: every option, --opt lists, --cost
 * KEY=N lists, --param NAME=VALUE for the workload named) and `vmmu compare` (compare_check: its
 * mode and opt-set lists, then each configuration's run line). The first byte picks the command,
 * the rest is the arguments, NUL-separated. A parse must end in 0 with every field in range, or
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

	bool compare;

	if (size < 1 || size > 2048)
		return 0;
	compare = data[0] & 1;
	data++;
	size--;
	buf = malloc(size + 1);
	if (!buf)
		abort();
	memcpy(buf, data, size);
	buf[size] = '\0';
	argv[argc++] = (char *)(compare ? "compare" : "run");
	for (size_t i = 0; i <= size && argc <= MAX_ARGS; i += strlen(buf + i) + 1)
		argv[argc++] = buf + i;
	argv[argc] = NULL;
	if (compare) {
		rc = compare_check(argc, argv);
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
