/* SPDX-License-Identifier: MIT */
/*
 * `vmmu compare WORKLOAD --mmu LIST [--opt-sets SET/SET...] [--csv|--csv-long|--json]
 * [--plot FILE.svg|FILE.png] [run options]`: run one workload under several configurations with
 * the same seed, print a table with one column per configuration, check that every guest.digest
 * is the same (Transparency), and draw the figures with gnuplot. Every other option goes to each
 * run as `vmmu run` takes it. The runs are interleaved (--interleave: deterministic, so digests and
 * counts compare exactly); --threads runs vCPU threads instead, where only workloads on disjoint
 * data keep their digest. CSV is RFC 4180: one header, every row as long, a field with a comma,
 * quote or line break quoted. Exit: 0 all digests equal; 1 a digest differs or a run failed; 2
 * bad usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/run.h"

#define MAX_CONFIGS 32
#define MAX_ARGS 256

struct config {
	char mmu[16];
	char host[8];          /* "" = the mode's default */
	char opts[64];         /* "" = not given (native) */
	char label[96];
	struct run_args ra;
	struct vmmu_workload_args wa;
	struct vmmu_guest_result res;
};


static double per_k(uint64_t n, uint64_t d)
{
	return d ? 1000.0 * (double)n / (double)d : 0;
}

static double ratio(uint64_t n, uint64_t d)
{
	return d ? (double)n / (double)d : 0;
}

/* One table row: a name and a value per configuration. */
#define ROWS(X)                                                                                   \
	X("guest accesses", "%" PRIu64, r->accesses)                                              \
	X("guest page faults", "%" PRIu64, r->page_faults)                                        \
	X("VM exits", "%" PRIu64, st->exits)                                                      \
	X("exits / 1000 accesses", "%.3f", per_k(st->exits, r->accesses))                         \
	X("  pf", "%" PRIu64, st->exits_by_reason[VMMU_EXIT_PF])                                  \
	X("  ept_violation", "%" PRIu64, st->exits_by_reason[VMMU_EXIT_EPT_VIOLATION])            \
	X("  ept_misconfig", "%" PRIu64, st->exits_by_reason[VMMU_EXIT_EPT_MISCONFIG])            \
	X("  npf", "%" PRIu64, st->exits_by_reason[VMMU_EXIT_NPF])                                \
	X("  cr3", "%" PRIu64, st->exits_by_reason[VMMU_EXIT_CR3])                                \
	X("  invlpg", "%" PRIu64, st->exits_by_reason[VMMU_EXIT_INVLPG])                          \
	X("  mmio", "%" PRIu64, st->exits_by_reason[VMMU_EXIT_MMIO])                              \
	X("TLB misses", "%" PRIu64, st->tlb_misses)                                               \
	X("walk refs", "%" PRIu64, st->walk_refs)                                                 \
	X("walk refs / TLB miss", "%.2f", ratio(st->walk_refs, st->tlb_misses))                   \
	X("pf_fixed", "%" PRIu64, st->pf_fixed)                                                   \
	X("pf_fast", "%" PRIu64, st->pf_fast)                                                     \
	X("mmu_pte_write", "%" PRIu64, st->mmu_pte_write)                                         \
	X("mmu_unsync", "%" PRIu64, st->mmu_unsync)                                               \
	X("mmu_flooded", "%" PRIu64, st->mmu_flooded)                                             \
	X("shadow_pages", "%" PRIu64, st->shadow_pages)                                           \
	X("tdp_pages", "%" PRIu64, st->tdp_pages)                                                 \
	X("pages_4k", "%" PRIu64, st->pages_4k)                                                   \
	X("pages_2m", "%" PRIu64, st->pages_2m)                                                   \
	X("pages_1g", "%" PRIu64, st->pages_1g)                                                   \
	X("simulated cycles", "%" PRIu64, st->sim_cycles)                                         \
	X("cycles / access", "%.2f", ratio(st->sim_cycles, r->accesses))                          \
	X("host seconds", "%.3f", r->seconds)                                                     \
	X("accesses / s (M)", "%.2f", r->seconds > 0 ? (double)r->accesses / r->seconds / 1e6 : 0)

/* A metric's name in CSV: the table's indented exit reasons become "exits pf" and so on. */
static void csv_metric(const char *name)
{
	char buf[64];

	if (name[0] == ' ') {
		while (*name == ' ')
			name++;
		snprintf(buf, sizeof(buf), "exits %s", name);
		name = buf;
	}
	cli_csv_field(stdout, name);
}

/* One cell: padded in a table, a field in CSV. */
static void cell_out(bool csv, bool first, const char *text)
{
	if (csv) {
		if (!first)
			putchar(',');
		if (first)
			csv_metric(text);
		else
			cli_csv_field(stdout, text);
	} else if (first) {
		printf("%-24s", text);
	} else {
		printf("  %18s", text);
	}
}

/* The long CSV: config,metric,value, one row each. */
static void print_long(struct config *c, unsigned n)
{
	char cell[64];

	printf("config,metric,value\n");
	for (unsigned i = 0; i < n; i++) {
		snprintf(cell, sizeof(cell), "%016" PRIx64, c[i].res.digest);
		cli_csv_field(stdout, c[i].label);
		printf(",guest digest,%s\n", cell);
	}
#define X(name, fmt, expr)                                                                        \
	for (unsigned i = 0; i < n; i++) {                                                        \
		const struct vmmu_guest_result *r = &c[i].res;                                   \
		const struct vmmu_stats *st = &r->stats;                                          \
		(void)st;                                                                         \
		snprintf(cell, sizeof(cell), fmt, expr);                                          \
		cli_csv_field(stdout, c[i].label);                                                            \
		putchar(',');                                                                     \
		csv_metric(name);                                                                 \
		printf(",%s\n", cell);                                                            \
	}
	ROWS(X)
#undef X
}

static void print_table(struct config *c, unsigned n, bool csv)
{
	char cell[64];

	cell_out(csv, true, csv ? "metric" : "");
	for (unsigned i = 0; i < n; i++)
		cell_out(csv, false, c[i].label);
	printf("\n");
	cell_out(csv, true, "guest digest");
	for (unsigned i = 0; i < n; i++) {
		snprintf(cell, sizeof(cell), "%016" PRIx64, c[i].res.digest);
		cell_out(csv, false, cell);
	}
	printf("\n");
#define X(name, fmt, expr)                                                                        \
	cell_out(csv, true, name);                                                                \
	for (unsigned i = 0; i < n; i++) {                                                        \
		const struct vmmu_guest_result *r = &c[i].res;                                   \
		const struct vmmu_stats *st = &r->stats;                                          \
		(void)st;                                                                         \
		snprintf(cell, sizeof(cell), fmt, expr);                                          \
		cell_out(csv, false, cell);                                                       \
	}                                                                                         \
	printf("\n");
	ROWS(X)
#undef X
}

/* Does one panel's data span orders of magnitude (a log axis reads it better)? */
static bool wide_range(const double *v, unsigned n)
{
	double lo = 0, hi = 0;

	for (unsigned i = 0; i < n; i++) {
		if (v[i] <= 0)
			return false;
		lo = !i || v[i] < lo ? v[i] : lo;
		hi = !i || v[i] > hi ? v[i] : hi;
	}
	return n > 1 && hi / lo >= 100;
}

/* Two panels: simulated cycles per guest access, and VM exits per 1,000 accesses, each bar
 * labelled with its value; SVG or PNG by @file's extension. */
static int plot(struct config *c, unsigned n, const char *file)
{
	const char *dot = strrchr(file, '.');
	const bool png = dot && !strcmp(dot, ".png");
	double cpa[MAX_CONFIGS], epk[MAX_CONFIGS];
	FILE *g = popen("gnuplot 2>/dev/null", "w");
	if (!g) {
		fprintf(stderr, "vmmu compare: --plot: cannot run gnuplot: %s\n", strerror(errno));
		return 1;
	}
	for (unsigned i = 0; i < n; i++) {
		cpa[i] = ratio(c[i].res.stats.sim_cycles, c[i].res.accesses);
		epk[i] = per_k(c[i].res.stats.exits, c[i].res.accesses);
	}
	if (png)
		fprintf(g, "set terminal pngcairo size %u,480 noenhanced font 'sans,10'\n", 300 + 240 * n);
	else
		fprintf(g, "set terminal svg size %u,480 dynamic noenhanced font 'sans,11'\n", 300 + 240 * n);
	fprintf(g, "set output ");
	cli_gp_quoted(g, file);
	fprintf(g, "\n");
	fprintf(g, "$d << EOD\n");
	for (unsigned i = 0; i < n; i++) {
		const struct vmmu_guest_result *r = &c[i].res;
		fprintf(g, "\"%s\" %.4f %.4f\n", c[i].label, ratio(r->stats.sim_cycles, r->accesses),
			per_k(r->stats.exits, r->accesses));
	}
	fprintf(g, "EOD\n");
	fprintf(g, "set multiplot layout 1,2 title '%s (seed %" PRIu64 ")'\n", c[0].wa.w->name, c[0].ra.seed);
	fprintf(g, "set style data histograms\nset style fill solid 0.8 border -1\nset boxwidth 0.8\n"
		   "set xtics nomirror font ',9'\nset grid ytics\nunset key\nset yrange [0:*]\n");
	fprintf(g, "set title 'simulated cycles per guest access'\n%s\n",
		wide_range(cpa, n) ? "set logscale y\nset yrange [*:*]" : "unset logscale y");
	fprintf(g, "plot $d using 2:xtic(1) lc rgb '#4477aa', '' using 0:2:(sprintf('%%.1f', $2)) "
		   "with labels offset 0,0.8 notitle\n");
	fprintf(g, "set title 'VM exits per 1,000 accesses'\n%s\n",
		wide_range(epk, n) ? "set logscale y\nset yrange [*:*]" : "unset logscale y\nset yrange [0:*]");
	fprintf(g, "plot $d using 3:xtic(1) lc rgb '#cc6677', '' using 0:3:(sprintf('%%.1f', $3)) "
		   "with labels offset 0,0.8 notitle\n");
	fprintf(g, "unset multiplot\n");
	int st = pclose(g);
	if (st != 0) {
		fprintf(stderr, "vmmu compare: --plot: gnuplot failed (status %d)\n", st);
		return 1;
	}
	return 0;
}

/* A compare command line, read and checked: every configuration and the run options each gets.
 * Nothing runs and no file is touched. */
struct plan {
	struct config *cfgs;        /* MAX_CONFIGS of them */
	unsigned n;
	const char *pass[MAX_ARGS];
	unsigned npass;
	const char *workload, *plot_file;
	bool csv, csv_long, json, help;
};

/* The `vmmu run` command line of configuration @i into @av (MAX_ARGS + 10); its length. */
static int config_argv(const struct plan *pl, unsigned i, char **av)
{
	const struct config *c = &pl->cfgs[i];
	int ac = 0;

	av[ac++] = "run";
	av[ac++] = (char *)pl->workload;
	for (unsigned k = 0; k < pl->npass; k++)
		av[ac++] = (char *)pl->pass[k];
	av[ac++] = "--mmu";
	av[ac++] = (char *)c->mmu;
	if (*c->host) {
		av[ac++] = "--host";
		av[ac++] = (char *)c->host;
	}
	if (*c->opts) {
		av[ac++] = "--opt";
		av[ac++] = (char *)c->opts;
	}
	av[ac] = NULL;
	return ac;
}

static int compare_plan(int argc, char **argv, struct plan *pl)
{
	const char *mmus = NULL, *sets = "all";
	unsigned n = 0;
	bool threads = false;

	pl->n = pl->npass = 0;
	pl->workload = pl->plot_file = NULL;
	pl->csv = pl->csv_long = pl->json = pl->help = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			pl->help = true;
			return 0;
		} else if (!strcmp(a, "--csv")) {
			pl->csv = true;
		} else if (!strcmp(a, "--csv-long")) {
			pl->csv = pl->csv_long = true;
		} else if (!strcmp(a, "--json")) {
			pl->json = true;
		} else if (!strcmp(a, "--threads")) {
			threads = true;
		} else if (!strcmp(a, "--mmu") || !strcmp(a, "--opt-sets") || !strcmp(a, "--plot")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "vmmu compare: option '%s' needs a value\n", a);
				return EXIT_USAGE;
			}
			const char **dst = a[2] == 'm' ? &mmus : a[3] == 'p' ? &sets : &pl->plot_file;
			*dst = argv[++i];
		} else if (!strcmp(a, "--host") || !strcmp(a, "--opt")) {
			fprintf(stderr, "vmmu compare: %s is chosen per configuration: use --mmu shadow-svm or --opt-sets\n", a);
			return EXIT_USAGE;
		} else if (a[0] != '-' && !pl->workload) {
			pl->workload = a;
		} else {
			if (pl->npass + 2 >= MAX_ARGS) {
				fprintf(stderr, "vmmu compare: too many arguments\n");
				return EXIT_USAGE;
			}
			pl->pass[pl->npass++] = a;
			/* An option that takes a value: keep the value with it. */
			if (a[0] == '-' && !strchr(a, '=') && i + 1 < argc && argv[i + 1][0] != '-')
				pl->pass[pl->npass++] = argv[++i];
		}
	}
	if (!pl->workload || !mmus) {
		fprintf(stderr, "vmmu compare: %s ('vmmu help compare' lists the options)\n",
			!pl->workload ? "which workload?" : "--mmu LIST is required");
		return EXIT_USAGE;
	}
	if (pl->csv && pl->json) {
		fprintf(stderr, "vmmu compare: --csv or --json, not both\n");
		return EXIT_USAGE;
	}

	/* Every configuration is checked before any runs: a list with an empty element ("", ",,",
	 * "all//none") is refused, and so is a bad opt set. */
	if (!*mmus || *mmus == ',' || mmus[strlen(mmus) - 1] == ',' || strstr(mmus, ",,")) {
		fprintf(stderr, "vmmu compare: --mmu '%s': expected a comma-separated list of native, "
			"shadow, shadow-svm, ept, npt\n", mmus);
		return EXIT_USAGE;
	}
	if (!*sets || *sets == '/' || sets[strlen(sets) - 1] == '/' || strstr(sets, "//")) {
		fprintf(stderr, "vmmu compare: --opt-sets '%s': expected --opt values separated by '/'\n",
			sets);
		return EXIT_USAGE;
	}

	/* The configurations: each mode of the list, times each opt set for the modes that have
	 * optimizations. */
	char mlist[256], slist[512];
	char *ms = NULL, *ss;
	snprintf(mlist, sizeof(mlist), "%s", mmus);
	for (char *m = strtok_r(mlist, ",", &ms); m; m = strtok_r(NULL, ",", &ms)) {
		const char *mode = m, *host = "";
		if (!strcmp(m, "shadow-svm") || !strcmp(m, "shadow:svm")) {
			mode = "shadow";
			host = "svm";
		} else if (!strcmp(m, "shadow-vmx") || !strcmp(m, "shadow:vmx")) {
			mode = "shadow";
			host = "vmx";
		} else if (strcmp(m, "native") && strcmp(m, "shadow") && strcmp(m, "ept") && strcmp(m, "npt")) {
			cli_clean(m);
			fprintf(stderr, "vmmu compare: --mmu: unknown '%s' (expected native, shadow, shadow-svm, ept, npt)\n", m);
			return EXIT_USAGE;
		}
		snprintf(slist, sizeof(slist), "%s", strcmp(mode, "native") ? sets : "");
		ss = NULL;
		char *set = strtok_r(slist, "/", &ss);
		do {
			if (n == MAX_CONFIGS) {
				fprintf(stderr, "vmmu compare: at most %d configurations\n", MAX_CONFIGS);
				return EXIT_USAGE;
			}
			if (set && run_check_opts(set))
				return EXIT_USAGE;
			struct config *c = &pl->cfgs[n++];
			memset(c, 0, sizeof(*c));
			snprintf(c->mmu, sizeof(c->mmu), "%s", mode);
			snprintf(c->host, sizeof(c->host), "%s", host);
			snprintf(c->opts, sizeof(c->opts), "%s", set ? set : "");
			snprintf(c->label, sizeof(c->label), "%s%s%s%s%s%s", mode, *host ? "/" : "", host,
				 set ? " [" : "", set ? set : "", set ? "]" : "");
		} while (set && (set = strtok_r(NULL, "/", &ss)));
	}
	pl->n = n;
	/* Each configuration's whole run command line, the options passed through included, is
	 * read now: a bad one is refused before the first run, not after it. */
	for (unsigned i = 0; i < n; i++) {
		char *av[MAX_ARGS + 10];
		int ac = config_argv(pl, i, av), rc;

		rc = run_parse(ac, av, &pl->cfgs[i].ra, &pl->cfgs[i].wa);
		if (rc)
			return rc < 0 ? EXIT_USAGE : rc;
		pl->cfgs[i].ra.interleave |= !threads;
	}
	return 0;
}

int compare_check(int argc, char **argv)
{
	static struct config cfgs[MAX_CONFIGS];
	static struct plan pl = { .cfgs = cfgs };

	return compare_plan(argc, argv, &pl);
}

int cmd_compare(int argc, char **argv)
{
	static struct config cfgs[MAX_CONFIGS];
	static struct plan pl = { .cfgs = cfgs };
	int rc = compare_plan(argc, argv, &pl);
	unsigned n = pl.n;
	bool csv = pl.csv, csv_long = pl.csv_long, json = pl.json;
	const char *plot_file = pl.plot_file;

	if (rc)
		return rc;
	if (pl.help) {
		help_command("compare");
		return 0;
	}
	if (plot_file) {
		/* Before any run: gnuplot could not open it and would write the figure to stdout. */
		const char *dot = strrchr(plot_file, '.');
		FILE *out = dot && (!strcmp(dot, ".svg") || !strcmp(dot, ".png")) ? fopen(plot_file, "w") : NULL;

		if (!out) {
			fprintf(stderr, "vmmu compare: --plot %s: %s\n", plot_file,
				dot && (!strcmp(dot, ".svg") || !strcmp(dot, ".png")) ? strerror(errno)
				: "expected a file name ending in .svg or .png");
			return EXIT_USAGE;
		}
		fclose(out);
	}

	for (unsigned i = 0; i < n; i++) {
		struct config *c = &cfgs[i];
		char *av[MAX_ARGS + 10];
		int ac = config_argv(&pl, i, av);

		if (!json && !csv)
			fprintf(stderr, "vmmu compare: %s...\n", c->label);
		rc = run_collect(ac, av, true, &c->ra, &c->wa, &c->res);
		if (rc)
			return rc < 0 ? EXIT_USAGE : rc;
	}

	bool same = true;
	for (unsigned i = 1; i < n; i++)
		same &= cfgs[i].res.digest == cfgs[0].res.digest;

	if (json) {
		printf("{\"workload\":\"%s\",\"digests_match\":%s,\"runs\":[\n", cfgs[0].wa.w->name,
		       same ? "true" : "false");
		for (unsigned i = 0; i < n; i++) {
			if (i)
				printf(",");
			run_print_json(&cfgs[i].ra, &cfgs[i].wa, &cfgs[i].res);
		}
		printf("]}\n");
	} else if (csv_long) {
		print_long(cfgs, n);
	} else {
		print_table(cfgs, n, csv);
		if (!csv)
			printf("\ndigests: %s\n", same ? "all equal (the guest saw the same thing in every configuration)"
						  : "DIFFER: a configuration changed what the guest observes");
	}
	if (plot_file && (rc = plot(cfgs, n, plot_file)))
		return rc;
	if (!same)
		fprintf(stderr, "vmmu compare: guest digests differ\n");
	return same ? 0 : 1;
}
