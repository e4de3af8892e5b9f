/* SPDX-License-Identifier: MIT */
/* vmmu: the command-line front end. Subcommands are a table of {name, function}; their
 * documentation is help.c's table. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "vmmu/vmmu.h"

static int cmd_version(int argc, char **argv)
{
	printf("vmmu %s\n", VMMU_VERSION);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
} commands[] = {
	{ "check", cmd_check },
	{ "validate", cmd_validate },
	{ "run", cmd_run },
	{ "compare", cmd_compare },
	{ "sweep", cmd_sweep },
	{ "report", cmd_report },
	{ "workloads", cmd_workloads },
	{ "version", cmd_version },
	{ "help", help_main },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		help_overview(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		help_overview(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vmmu: unknown command '%s' (try 'vmmu help')\n", argv[1]);
	return EXIT_USAGE;
}
