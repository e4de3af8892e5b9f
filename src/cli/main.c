/* SPDX-License-Identifier: MIT */
/* vmmu: the command-line front end. Subcommands are a table of {name, function, help}. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "vmmu/vmmu.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv)
{
	printf("vmmu %s\n", VMMU_VERSION);
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *help;
} commands[] = {
	{ "check", cmd_check, "check [--cpu host|intel|amd] [--features +f,-f] [--maxphyaddr N] [FILE]\n"
			      "        answer page-walk scenarios, one a line (docs/check-format.md)" },
	{ "validate", cmd_validate, "validate [--count N] [--seed S] [--quiet]\n"
				    "        random scenarios on the model and on the real CPU via /dev/kvm" },
	{ "run", cmd_run, "run WORKLOAD [--mmu native|shadow|ept|npt] [--vcpus N] [--param KEY=VALUE]... [--json] ...\n"
			  "        run a workload on the guest model (docs/user-guide.md; 'vmmu run --help')" },
	{ "compare", cmd_compare, "compare WORKLOAD --mmu LIST [--opt-sets SET/SET...] [--csv|--json] [--plot FILE.svg] ...\n"
				  "        run one workload under several configurations, check the digests agree" },
	{ "workloads", cmd_workloads, "workloads [NAME]\n        list the workloads and their parameters" },
	{ "version", cmd_version, "version\n        print the version" },
	{ "help", cmd_help, "help\n        this text" },
};

static int cmd_help(int argc, char **argv)
{
	printf("usage: vmmu COMMAND [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		printf("  %s\n", commands[i].help);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		cmd_help(0, NULL);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
		return cmd_help(0, NULL);
	if (!strcmp(argv[1], "--version"))
		return cmd_version(0, NULL);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "vmmu: unknown command '%s' (try 'vmmu help')\n", argv[1]);
	return EXIT_USAGE;
}
