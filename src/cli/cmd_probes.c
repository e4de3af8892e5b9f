/* SPDX-License-Identifier: MIT */
/*
 * `vmmu validate --probes`: the counter probes (validate/probe.h) on real KVM and on vmmu, every
 * counter side by side: KVM's median of the repetitions with its spread, vmmu's count, the ratio
 * and whether they agree (probe_agrees). KVM's side comes from /dev/kvm (and can be recorded as
 * goldens with --record) or from a goldens file (--golden), so machines without /dev/kvm check
 * vmmu too. Exit: 0 every counter agrees, 1 one does not or a run failed, 2 bad usage or a bad
 * goldens file, 77 /dev/kvm unusable for a live run.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "validate/kvm_probe.h"
#include "validate/probe.h"
#include "vmmu/vmmu.h"

static const char *mmu_label(enum vmmu_mmu m)
{
	return m == VMMU_MMU_EPT ? "ept" : m == VMMU_MMU_NPT ? "npt" : "shadow";
}

/* Pick probes by a comma-separated list of names (NULL: all). */
static int select_probes(const char *list, bool sel[64])
{
	char buf[1024], *save = NULL, *tok;

	memset(sel, 0, 64 * sizeof(sel[0]));
	if (!list) {
		for (size_t i = 0; i < probe_count; i++)
			sel[i] = true;
		return 0;
	}
	if (strlen(list) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		const struct probe *pr = probe_find(tok);

		if (!pr) {
			cli_clean(tok);
			fprintf(stderr, "vmmu validate: no probe '%s' (vmmu validate --probes --list)\n",
				tok);
			return -EINVAL;
		}
		sel[pr - probe_catalogue] = true;
	}
	return 0;
}

static void ratio(char *buf, size_t len, int64_t k, int64_t v)
{
	if (k)
		snprintf(buf, len, "%.2f", (double)v / (double)k);
	else
		snprintf(buf, len, v ? "-" : "1.00");
}

/* One probe's table; returns the number of counters that disagree. */
static unsigned print_probe(size_t i, const struct probe_counts *k, const struct probe_counts *s,
			    const struct probe_counts *v, bool markdown)
{
	unsigned bad = 0;

	if (markdown)
		printf("\n#### %s: %s\n\n| counter | KVM (median) | spread | vmmu | vmmu/KVM | |\n"
		       "| --- | ---: | ---: | ---: | ---: | --- |\n",
		       probe_catalogue[i].name, probe_catalogue[i].what);
	else
		printf("\n%s: %s\n  %-18s %10s %8s %10s %8s\n", probe_catalogue[i].name,
		       probe_catalogue[i].what, "counter", "KVM", "spread", "vmmu", "ratio");
	for (int c = 0; c < PRB_C_NR; c++) {
		bool ok = probe_agrees(k->v[c], s->v[c], v->v[c]);
		char r[32];

		bad += !ok;
		/* Counters neither side moved say nothing: left out, as in the summary. */
		if (!k->v[c] && !v->v[c] && !s->v[c])
			continue;
		ratio(r, sizeof(r), k->v[c], v->v[c]);
		if (markdown)
			printf("| %s | %" PRId64 " | %" PRId64 " | %" PRId64 " | %s | %s |\n",
			       probe_counter_name[c], k->v[c], s->v[c], v->v[c], r,
			       ok ? "agrees" : "**differs**");
		else
			printf("  %-18s %10" PRId64 " %8" PRId64 " %10" PRId64 " %8s%s\n",
			       probe_counter_name[c], k->v[c], s->v[c], v->v[c], r,
			       ok ? "" : "  DIFFERS");
	}
	return bad;
}

int cmd_probes(const char *list, unsigned reps, const char *golden, const char *record,
	       bool markdown, bool quiet)
{
	struct probe_golden *g = calloc(1, sizeof(*g));
	enum vmmu_mmu mmu;
	bool pvm, sel[64];
	unsigned bad = 0, nprobes = 0, ncounters = 0;
	char why[512];
	int rc, status = 0;

	if (!g)
		return 1;
	if (select_probes(list, sel)) {
		free(g);
		return EXIT_USAGE;
	}
	if (golden) {
		rc = probe_golden_read(golden, g, why, sizeof(why));
		if (rc) {
			cli_clean(why);
			fprintf(stderr, "vmmu validate: %s\n", why);
			free(g);
			return EXIT_USAGE;
		}
	} else {
		struct probe_counts m, s;
		char w2[256];

		/* Usable at all? One run of the smallest probe says, before any other work. */
		kvm_probe_host(&g->host);
		g->host.reps = reps;
		/* As `vmmu validate` does: a /dev/kvm that cannot run the smallest probe (absent,
		 * no permission, no binary stats, a host refusing the guest) is unusable here. */
		rc = kvm_probe_measure(&probe_catalogue[0], 1, &m, &s, w2, sizeof(w2));
		if (rc) {
			fprintf(stderr, "vmmu validate: skipped: %s\n", w2);
			free(g);
			return EXIT_SKIP;
		}
		for (size_t i = 0; i < probe_count && i < 64; i++) {
			if (!sel[i])
				continue;
			rc = kvm_probe_measure(&probe_catalogue[i], reps, &g->med[i], &g->spread[i],
					       why, sizeof(why));
			if (rc) {
				fprintf(stderr, "vmmu validate: KVM: %s\n", why);
				free(g);
				return 1;
			}
			g->have[i] = true;
		}
		if (record) {
			rc = probe_golden_write(record, g, why, sizeof(why));
			if (rc) {
				fprintf(stderr, "vmmu validate: %s\n", why);
				free(g);
				return 1;
			}
		}
	}
	if (probe_host_mmu(&g->host, &mmu, &pvm)) {
		fprintf(stderr, "vmmu validate: unknown KVM MMU '%s'\n", g->host.mmu);
		free(g);
		return EXIT_USAGE;
	}
	if (!quiet)
		printf("%sKVM: kernel %s, %s, tdp_mmu %s, MMU %s, %s (%s); %u repetitions%s\n"
		       "%svmmu: %s%s; unsync, prefetch and fast page fault on, no-trap off\n",
		       markdown ? "" : "# ", g->host.kernel, g->host.module, g->host.tdp_mmu,
		       g->host.mmu, g->host.cpu, g->host.cpuid, g->host.reps, golden ? " (recorded)" : "",
		       markdown ? "\n" : "# ", mmu_label(mmu),
		       pvm ? ", guest ring 0 emulated as on PVM" : "");
	for (size_t i = 0; i < probe_count && i < 64; i++) {
		struct probe_counts v;
		unsigned b;

		if (!sel[i] || !g->have[i])
			continue;
		rc = probe_measure_vmmu(&probe_catalogue[i], mmu, pvm, &v, why, sizeof(why));
		if (rc) {
			fprintf(stderr, "vmmu validate: vmmu: %s\n", why);
			status = 1;
			continue;
		}
		nprobes++;
		ncounters += PRB_C_NR;
		if (quiet) {
			for (int c = 0; c < PRB_C_NR; c++)
				if (!probe_agrees(g->med[i].v[c], g->spread[i].v[c], v.v[c])) {
					printf("%s %s: KVM %" PRId64 " (spread %" PRId64 "), vmmu %" PRId64
					       "\n", probe_catalogue[i].name, probe_counter_name[c],
					       g->med[i].v[c], g->spread[i].v[c], v.v[c]);
					bad++;
				}
		} else {
			b = print_probe(i, &g->med[i], &g->spread[i], &v, markdown);
			bad += b;
		}
	}
	printf("%svmmu validate: %u probes, %u counters: %u agree, %u differ (within 10%%, KVM's "
	       "spread, or 2)\n", markdown ? "\n" : "", nprobes, ncounters, ncounters - bad, bad);
	if (!nprobes && list) {
		fprintf(stderr, "vmmu validate: the goldens have none of the probes asked for\n");
		status = 1;
	}
	free(g);
	return bad ? 1 : status;
}
