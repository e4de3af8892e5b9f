/* SPDX-License-Identifier: MIT */
/*
 * `vmmu workloads [NAME]`: the guest model's workloads with their parameters, defaults and what
 * each means (from the registry in libvmmuguest, so the list cannot drift from the code).
 * Exit codes (cli.h): 0, or 2 for an unknown name or option.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "vmmu/guest.h"

static const char *type_name(enum vmmu_param_type t)
{
	switch (t) {
	case VMMU_PARAM_UINT: return "N";
	case VMMU_PARAM_SIZE: return "SIZE";
	case VMMU_PARAM_BOOL: return "on|off";
	case VMMU_PARAM_PATH: return "PATH";
	}
	return "?";
}

static void show(const struct vmmu_workload_info *w)
{
	printf("%-10s %s", w->name, w->summary);
	if (w->default_vms > 1)
		printf(" [%u VMs unless --vms]", w->default_vms);
	putchar('\n');
	for (unsigned i = 0; w->params[i].name; i++) {
		const struct vmmu_workload_param *p = &w->params[i];
		char lhs[64];
		snprintf(lhs, sizeof(lhs), "%s=%s", p->name, p->def ? p->def : type_name(p->type));
		printf("    %-18s %s%s\n", lhs, p->help, p->def ? "" : " (required)");
	}
}

int cmd_workloads(int argc, char **argv)
{
	const struct vmmu_workload_info *w;

	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		help_command("workloads");
		return 0;
	}
	if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
		fprintf(stderr, "vmmu workloads: unexpected '%s' (usage: vmmu workloads [NAME])\n", argv[argc - 1]);
		return EXIT_USAGE;
	}
	if (argc == 2) {
		w = vmmu_workload_find(argv[1]);
		if (!w) {
			fprintf(stderr, "vmmu workloads: unknown workload '%s'\n", argv[1]);
			return EXIT_USAGE;
		}
		show(w);
		return 0;
	}
	printf("workloads (vmmu run NAME --param KEY=VALUE; sizes take K, M, G, T):\n");
	for (unsigned i = 0; (w = vmmu_workload_at(i)); i++)
		show(w);
	return 0;
}
