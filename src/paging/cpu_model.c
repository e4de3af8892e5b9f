/* SPDX-License-Identifier: MIT */
/*
 * Fixed CPU models and "+feat,-feat" adjustment. The fixed models are documented in
 * docs/check-format.md: "intel" is a current Intel core (Ice Lake server class: MAXPHYADDR 46, NX,
 * SMEP, SMAP, PKU, 1G, LA57); "amd" a current AMD core (Zen 3 class: MAXPHYADDR 48, NX, SMEP,
 * SMAP, PKU, 1G, no LA57). No state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "paging/cpu_model.h"

static const struct {
	const char *name;
	uint32_t bit;
} feat_names[] = {
	{ "nx", CPU_FEAT_NX },     { "smep", CPU_FEAT_SMEP }, { "smap", CPU_FEAT_SMAP },
	{ "pku", CPU_FEAT_PKU },   { "1g", CPU_FEAT_1G },     { "la57", CPU_FEAT_LA57 },
	{ "pse36", CPU_FEAT_PSE36 },
};

int cpu_model_fixed(struct cpu_model *c, const char *name)
{
	const uint32_t common = CPU_FEAT_NX | CPU_FEAT_SMEP | CPU_FEAT_SMAP | CPU_FEAT_PKU |
				CPU_FEAT_1G | CPU_FEAT_PSE36;

	memset(c, 0, sizeof(*c));
	if (!strcmp(name, "intel")) {
		c->vendor = CPU_VENDOR_INTEL;
		c->maxphyaddr = 46;
		c->features = common | CPU_FEAT_LA57;
	} else if (!strcmp(name, "amd")) {
		c->vendor = CPU_VENDOR_AMD;
		c->maxphyaddr = 48;
		c->features = common;
	} else {
		return -EINVAL;
	}
	snprintf(c->name, sizeof(c->name), "%s", name);
	return 0;
}

int cpu_model_adjust(struct cpu_model *c, const char *spec, char *bad, unsigned badlen)
{
	const char *p = spec;

	while (*p) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		bool found = false;

		if (len >= 2 && (p[0] == '+' || p[0] == '-')) {
			for (size_t i = 0; i < sizeof(feat_names) / sizeof(feat_names[0]); i++) {
				if (strlen(feat_names[i].name) == len - 1 &&
				    !strncmp(feat_names[i].name, p + 1, len - 1)) {
					if (p[0] == '+')
						c->features |= feat_names[i].bit;
					else
						c->features &= ~feat_names[i].bit;
					found = true;
				}
			}
		}
		if (!found) {
			if (bad)
				snprintf(bad, badlen, "%.*s", (int)len, p);
			return -EINVAL;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}
