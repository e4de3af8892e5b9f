/* SPDX-License-Identifier: MIT */
/*
 * Goldens: real KVM's probe results as a text file, so a machine without /dev/kvm checks vmmu
 * against them (tests/data/kvm_probes.txt). The format, line by line ('#' starts a comment):
 *   kernel RELEASE | module NAME | tdp_mmu Y/N | mmu shadow|ept|npt | cpu MODEL |
 *   cpuid VENDOR family F model M stepping S | reps N
 *   probe NAME COUNTER=MEDIAN/SPREAD ...
 * Every counter of enum probe_counter appears on each probe line; unknown probes or counters are
 * errors (a golden from a newer catalogue must be re-recorded, not half read).
 *
 * Invariants: pure functions, no state; a read either fills the whole struct or fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate/probe.h"

#define MAX_LINE 4096

bool probe_agrees(int64_t k, int64_t s, int64_t v)
{
	int64_t d = v > k ? v - k : k - v, ak = k < 0 ? -k : k;

	/* d <= 10% of |k|, in integers */
	return 10 * d <= ak || d <= s || d <= 2;
}

int probe_host_mmu(const struct probe_host *h, enum vmmu_mmu *mmu, bool *pvm)
{
	*pvm = !strcmp(h->module, "kvm_pvm");
	if (!strcmp(h->mmu, "shadow"))
		*mmu = VMMU_MMU_SHADOW;
	else if (!strcmp(h->mmu, "ept"))
		*mmu = VMMU_MMU_EPT;
	else if (!strcmp(h->mmu, "npt"))
		*mmu = VMMU_MMU_NPT;
	else
		return -EINVAL;
	return 0;
}

static int field(char *dst, size_t len, const char *val)
{
	if (strlen(val) >= len)
		return -EINVAL;
	memcpy(dst, val, strlen(val) + 1);
	return 0;
}

static int parse_probe(char *rest, struct probe_golden *g)
{
	char *save = NULL, *tok = strtok_r(rest, " \t", &save);
	const struct probe *pr;
	bool seen[PRB_C_NR] = { false };
	size_t idx;

	if (!tok || !(pr = probe_find(tok)))
		return -ENOENT;
	idx = (size_t)(pr - probe_catalogue);
	if (idx >= 64)
		return -EINVAL;
	while ((tok = strtok_r(NULL, " \t", &save))) {
		char *eq = strchr(tok, '='), *slash, *end;
		long long m, s;
		int c;

		if (!eq)
			return -EINVAL;
		*eq = 0;
		for (c = 0; c < PRB_C_NR && strcmp(probe_counter_name[c], tok); c++)
			;
		if (c == PRB_C_NR)
			return -EINVAL;
		slash = strchr(eq + 1, '/');
		if (!slash)
			return -EINVAL;
		errno = 0;
		m = strtoll(eq + 1, &end, 10);
		if (end != slash || errno)
			return -EINVAL;
		s = strtoll(slash + 1, &end, 10);
		if (*end || errno || s < 0)
			return -EINVAL;
		g->med[idx].v[c] = m;
		g->spread[idx].v[c] = s;
		seen[c] = true;
	}
	for (int c = 0; c < PRB_C_NR; c++)
		if (!seen[c])
			return -EINVAL;
	g->have[idx] = true;
	return 0;
}

int probe_golden_read(const char *path, struct probe_golden *g, char *why, size_t whylen)
{
	FILE *f = fopen(path, "r");
	char line[MAX_LINE];
	unsigned n = 0, nprobes = 0;
	int rc = 0;

	memset(g, 0, sizeof(*g));
	if (!f) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return rc;
	}
	while (!rc && fgets(line, sizeof(line), f)) {
		char *key = line, *rest;

		n++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = -EINVAL;
			break;
		}
		line[strcspn(line, "\r\n")] = 0;
		key += strspn(key, " \t");
		if (!*key || *key == '#')
			continue;
		rest = key + strcspn(key, " \t");
		if (*rest)
			*rest++ = 0;
		rest += strspn(rest, " \t");
		if (!strcmp(key, "kernel"))
			rc = field(g->host.kernel, sizeof(g->host.kernel), rest);
		else if (!strcmp(key, "module"))
			rc = field(g->host.module, sizeof(g->host.module), rest);
		else if (!strcmp(key, "tdp_mmu"))
			rc = field(g->host.tdp_mmu, sizeof(g->host.tdp_mmu), rest);
		else if (!strcmp(key, "mmu"))
			rc = field(g->host.mmu, sizeof(g->host.mmu), rest);
		else if (!strcmp(key, "cpu"))
			rc = field(g->host.cpu, sizeof(g->host.cpu), rest);
		else if (!strcmp(key, "cpuid"))
			rc = field(g->host.cpuid, sizeof(g->host.cpuid), rest);
		else if (!strcmp(key, "reps")) {
			uint64_t r;

			rc = vmmu_parse_uint(rest, 64, &r);
			g->host.reps = (unsigned)r;
		} else if (!strcmp(key, "probe")) {
			rc = parse_probe(rest, g);
			nprobes += !rc;
		} else {
			rc = -EINVAL;
		}
	}
	if (!rc && ferror(f))
		rc = -EIO;
	fclose(f);
	if (rc) {
		snprintf(why, whylen, "%s:%u: %s", path, n,
			 rc == -ENOENT ? "a probe this vmmu does not have (re-record the goldens)" :
					 "malformed line");
		return rc == -ENOENT ? -EINVAL : rc;
	}
	enum vmmu_mmu mmu;
	bool pvm;
	if (!nprobes || probe_host_mmu(&g->host, &mmu, &pvm)) {
		snprintf(why, whylen, "%s: %s", path,
			 nprobes ? "no 'mmu shadow|ept|npt' line" : "no probe lines");
		return -EINVAL;
	}
	return 0;
}

int probe_golden_write(const char *path, const struct probe_golden *g, char *why, size_t whylen)
{
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (!f) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		return rc;
	}
	fprintf(f, "# Real KVM's counter probes (vmmu validate --probes --record): for each probe,\n"
		   "# each counter's median over the repetitions / its spread (max - min), the\n"
		   "# baseline run's counts subtracted. docs/fidelity.md explains the probes.\n");
	fprintf(f, "kernel %s\nmodule %s\ntdp_mmu %s\nmmu %s\ncpu %s\ncpuid %s\nreps %u\n",
		g->host.kernel, g->host.module, g->host.tdp_mmu, g->host.mmu, g->host.cpu,
		g->host.cpuid, g->host.reps);
	for (size_t i = 0; i < probe_count && i < 64; i++) {
		if (!g->have[i])
			continue;
		fprintf(f, "probe %s", probe_catalogue[i].name);
		for (int c = 0; c < PRB_C_NR; c++)
			fprintf(f, " %s=%" PRId64 "/%" PRId64, probe_counter_name[c], g->med[i].v[c],
				g->spread[i].v[c]);
		fprintf(f, "\n");
	}
	if (fclose(f)) {
		rc = -errno;
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
	}
	return rc;
}
