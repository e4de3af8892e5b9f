/* SPDX-License-Identifier: MIT */
/*
 * `vmmu run WORKLOAD [options]`: run one workload of the guest model (libvmmuguest) on a VM of
 * the chosen MMU mode and print what happened: a table of the main counters, or with --json one
 * object with the keys of docs/user-guide.md ("The JSON object"). A progress line goes to stderr when it is a
 * terminal and the run lasts over a second.
 *
 * Exit codes (cli.h): 0 done; 2 bad usage or input (an unknown workload, option or parameter, a
 * size that does not fit, a missing or malformed trace file); 1 the run failed (an MMU mode not
 * built yet, a guest kernel oops).
 * Only this file prints; the guest library returns errors with a one-line reason.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/run.h"
#include "cpu/cost.h"
#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

static const char *const opt_names[] = { "notrap", "unsync", "prefetch", "fastpf" };
_Static_assert(sizeof(opt_names) / sizeof(opt_names[0]) == NR_OPTS, "one name per option");
_Static_assert(VMMU_OPT_NOTRAP == 1 && VMMU_OPT_UNSYNC == 2 && VMMU_OPT_PREFETCH == 4 &&
	       VMMU_OPT_FASTPF == 8, "opt_names[i] is bit i");

static const char *const mmu_names[] = { "native", "shadow", "ept", "npt" };
static const char *const thp_names[] = { "never", "madvise", "always" };
/* enum vmmu_hugetlb order; "none" is the default, not a value --hugetlb takes. */
static const char *const hugetlb_names[] = { "none", "2M", "1G" };



static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = cli_vusage("run", fmt, ap);
	va_end(ap);
	return rc;
}

/* Why getopt refused @arg: a value given to an option that takes none, an abbreviation that
 * fits several options, or no such option. */
static int bad_option(const char *arg, const struct option *longopts)
{
	const char *name = arg + (arg[0] == '-' && arg[1] == '-' ? 2 : 0);
	size_t len = strcspn(name, "=");
	char fits[256] = "";
	unsigned n = 0;

	if (name == arg)
		return bad("unknown option '%s'", arg);
	for (const struct option *o = longopts; o->name; o++) {
		if (strlen(o->name) == len && !strncmp(o->name, name, len) && name[len] == '=' &&
		    o->has_arg == no_argument)
			return bad("option '--%s' takes no value ('%s')", o->name, arg);
		if (!strncmp(o->name, name, len) && strlen(fits) + strlen(o->name) + 4 < sizeof(fits)) {
			snprintf(fits + strlen(fits), sizeof(fits) - strlen(fits), "%s--%s",
				 n++ ? ", " : "", o->name);
		}
	}
	if (n > 1)
		return bad("ambiguous option '%s' (%s)", arg, fits);
	return bad("unknown option '%s' ('vmmu help run' lists the options)", arg);
}

static int pick(const char *v, const char *const *names, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(v, names[i]))
			return (int)i;
	return -1;
}

static int on_off(const char *v)
{
	if (!strcmp(v, "on"))
		return 1;
	if (!strcmp(v, "off"))
		return 0;
	return -1;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	return vmmu_parse_uint(s, max, out);
}

/* "+notrap,-unsync" over the current settings. */
static int parse_opts(const char *spec, bool *opts)
{
	char buf[256];
	char *save = NULL;

	if (strlen(spec) >= sizeof(buf))
		return bad("--opt '%s': too long", spec);
	/* An empty list or an empty element ("", ",", "a,,b") is a mistake, not "nothing". */
	if (!*spec || *spec == ',' || spec[strlen(spec) - 1] == ',' || strstr(spec, ",,"))
		return bad("--opt '%s': expected NAME or +NAME/-NAME, comma-separated", spec);
	strcpy(buf, spec);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		bool on = true;
		if (!strcmp(tok, "all") || !strcmp(tok, "none")) {
			for (unsigned k = 0; k < NR_OPTS; k++)
				opts[k] = tok[0] == 'a';
			continue;
		}
		if (*tok == '+' || *tok == '-')
			on = *tok++ == '+';
		int i = pick(tok, opt_names, NR_OPTS);
		if (i < 0)
			return bad("--opt: unknown '%s' (expected all, none, +/- notrap, unsync, prefetch, fastpf)", tok);
		opts[i] = on;
	}
	return 0;
}

enum {
	O_MMU = 256, O_HOST, O_OPT, O_VCPUS, O_VMS, O_MEM, O_THP, O_HUGETLB, O_GTHP, O_KSM,
	O_KSM_PARAM, O_SEED,
	O_PARAM,
	O_JSON, O_COST, O_CPU, O_PCID, O_AGING, O_QUANTUM, O_AUDIT, O_REPORT, O_HELP, O_MAX_SP,
	O_EVICT,
	O_MMU_LOCK, O_KHUGEPAGED, O_THP_PARAM, O_FRAGMENT, O_GKHUGEPAGED, O_G1G, O_INTERLEAVE, O_PIN,
};

static const char *const evict_names[] = { "lru", "fifo" };
static const char *const mmu_lock_names[] = { "fine", "shared", "big" };   /* enum vmmu_mmu_lock */

static int parse_args(int argc, char **argv, struct run_args *ra)
{
	static const struct option longopts[] = {
		{ "mmu", required_argument, NULL, O_MMU },
		{ "host", required_argument, NULL, O_HOST },
		{ "opt", required_argument, NULL, O_OPT },
		{ "vcpus", required_argument, NULL, O_VCPUS },
		{ "vms", required_argument, NULL, O_VMS },
		{ "mem", required_argument, NULL, O_MEM },
		{ "thp", required_argument, NULL, O_THP },
		{ "hugetlb", required_argument, NULL, O_HUGETLB },
		{ "guest-thp", required_argument, NULL, O_GTHP },
		{ "ksm", required_argument, NULL, O_KSM },
		{ "ksm-param", required_argument, NULL, O_KSM_PARAM },
		{ "khugepaged", required_argument, NULL, O_KHUGEPAGED },
		{ "thp-param", required_argument, NULL, O_THP_PARAM },
		{ "host-fragment", required_argument, NULL, O_FRAGMENT },
		{ "seed", required_argument, NULL, O_SEED },
		{ "param", required_argument, NULL, O_PARAM },
		{ "json", no_argument, NULL, O_JSON },
		{ "cost", required_argument, NULL, O_COST },
		{ "cpu", required_argument, NULL, O_CPU },
		{ "guest-pcid", required_argument, NULL, O_PCID },
		{ "guest-aging", required_argument, NULL, O_AGING },
		{ "guest-khugepaged", required_argument, NULL, O_GKHUGEPAGED },
		{ "guest-1g", required_argument, NULL, O_G1G },
		{ "quantum", required_argument, NULL, O_QUANTUM },
		{ "audit", required_argument, NULL, O_AUDIT },
		{ "report", required_argument, NULL, O_REPORT },
		{ "max-shadow-pages", required_argument, NULL, O_MAX_SP },
		{ "mmu-evict", required_argument, NULL, O_EVICT },
		{ "mmu-lock", required_argument, NULL, O_MMU_LOCK },
		{ "interleave", no_argument, NULL, O_INTERLEAVE },
		{ "pin-vcpus", no_argument, NULL, O_PIN },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	int opt, i;

	memset(ra, 0, sizeof(*ra));
	ra->host = -1;
	ra->thp = 1;
	ra->pcid = true;
	ra->seed = 1;
	for (unsigned k = 0; k < NR_OPTS; k++)
		ra->opts[k] = true;
	optind = 0;   /* 0, not 1: glibc forgets a scan stopped inside "-abc" only so */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case O_MMU:
			if ((ra->mmu = pick(optarg, mmu_names, 4)) < 0)
				return bad("--mmu '%s': expected native, shadow, ept or npt", optarg);
			break;
		case O_HOST:
			if (!strcmp(optarg, "vmx"))
				ra->host = VMMU_HOST_VMX;
			else if (!strcmp(optarg, "svm"))
				ra->host = VMMU_HOST_SVM;
			else
				return bad("--host '%s': expected vmx or svm", optarg);
			break;
		case O_OPT:
			if ((i = parse_opts(optarg, ra->opts)))
				return i;
			break;
		case O_VCPUS:
			if (parse_u64(optarg, VMMU_GUEST_MAX_VCPUS, &v) || !v)
				return bad("--vcpus '%s': expected 1 to 64", optarg);
			ra->vcpus = (unsigned)v;
			break;
		case O_VMS:
			if (parse_u64(optarg, VMMU_GUEST_MAX_VMS, &v) || !v)
				return bad("--vms '%s': expected 1 to 16", optarg);
			ra->vms = (unsigned)v;
			break;
		case O_MEM:
			if (vmmu_parse_size(optarg, &ra->mem) || !ra->mem)
				return bad("--mem '%s': expected a size such as 512M or 2G", optarg);
			break;
		case O_THP:
			if ((ra->thp = pick(optarg, thp_names, 3)) < 0)
				return bad("--thp '%s': expected always, madvise or never", optarg);
			break;
		case O_HUGETLB:
			/* Case as the sizes are written elsewhere (--mem 2G), but one spelling each. */
			if (!strcasecmp(optarg, "2M"))
				ra->hugetlb = VMMU_HUGETLB_2M;
			else if (!strcasecmp(optarg, "1G"))
				ra->hugetlb = VMMU_HUGETLB_1G;
			else
				return bad("--hugetlb '%s': expected 2M or 1G (the host's hugetlbfs page size)",
					   optarg);
			break;
		case O_GTHP:
			if ((i = on_off(optarg)) < 0)
				return bad("--guest-thp '%s': expected on or off", optarg);
			ra->guest_thp = i;
			break;
		case O_G1G:
			if ((i = on_off(optarg)) < 0)
				return bad("--guest-1g '%s': expected on or off", optarg);
			ra->guest_1g = i;
			break;
		case O_KSM:
			if ((i = on_off(optarg)) < 0)
				return bad("--ksm '%s': expected on or off", optarg);
			ra->ksm = i;
			break;
		case O_KSM_PARAM: {
			char why[256];

			if (ra->nksm_params == MAX_PARAMS)
				return bad("too many --ksm-param");
			if (vmmu_ksm_set_params(NULL, optarg, why, sizeof(why)))
				return bad("%s", why);
			ra->ksm_params[ra->nksm_params++] = optarg;
			break;
		}
		case O_KHUGEPAGED:
			if ((i = on_off(optarg)) < 0)
				return bad("--khugepaged '%s': expected on or off", optarg);
			ra->khugepaged = i;
			break;
		case O_THP_PARAM: {
			char why[256];

			if (ra->nthp_params == MAX_PARAMS)
				return bad("too many --thp-param");
			if (vmmu_khugepaged_set_params(NULL, optarg, why, sizeof(why)))
				return bad("%s", why);
			ra->thp_params[ra->nthp_params++] = optarg;
			break;
		}
		case O_FRAGMENT: {
			char pct[16];
			size_t n = strcspn(optarg, ":");

			if (n >= sizeof(pct) || (memcpy(pct, optarg, n), pct[n] = '\0',
						 parse_u64(pct, 100, &v)) ||
			    (optarg[n] && parse_u64(optarg + n + 1, UINT64_MAX / 1000,
						    &ra->host_fragment_ms)))
				return bad("--host-fragment '%s': expected PCT[:MS], a percentage of the "
					   "host's free 2M blocks (0 to 100) and when to let them go in "
					   "milliseconds of the run's clock", optarg);
			ra->host_fragment = (unsigned)v;
			break;
		}
		case O_PCID:
			if ((i = on_off(optarg)) < 0)
				return bad("--guest-pcid '%s': expected on or off", optarg);
			ra->pcid = i;
			break;
		case O_SEED:
			if (parse_u64(optarg, UINT64_MAX, &ra->seed))
				return bad("--seed '%s': expected a number", optarg);
			break;
		case O_AGING:
			if (parse_u64(optarg, UINT32_MAX, &v))
				return bad("--guest-aging '%s': expected a number of rounds (0: off)", optarg);
			ra->aging = (unsigned)v;
			break;
		case O_GKHUGEPAGED:
			if (parse_u64(optarg, UINT32_MAX, &v))
				return bad("--guest-khugepaged '%s': expected a number of rounds (0: off)", optarg);
			ra->guest_khugepaged = (unsigned)v;
			break;
		case O_QUANTUM:
			if (parse_u64(optarg, 1u << 20, &v) || !v)
				return bad("--quantum '%s': expected 1 to 1048576 steps", optarg);
			ra->quantum = (unsigned)v;
			break;
		case O_AUDIT:
			if (parse_u64(optarg, UINT32_MAX, &v))
				return bad("--audit '%s': expected a number of rounds (0: off)", optarg);
			ra->audit = (unsigned)v;
			break;
		case O_PARAM:
			if (ra->nparams == MAX_PARAMS)
				return bad("too many --param");
			ra->params[ra->nparams++] = optarg;
			break;
		case O_COST:
			if (cost_set(&ra->cost, optarg))
				return bad("--cost '%s': expected KEY=CYCLES, KEY a cost of docs/hardware.md and CYCLES at least 1", optarg);
			break;
		case O_CPU:
			if (strcmp(optarg, "intel") && strcmp(optarg, "amd"))
				return bad("--cpu '%s': expected intel or amd", optarg);
			ra->cpu = optarg;
			break;
		case O_JSON:
			ra->json = true;
			break;
		case O_MAX_SP:
			/* Beyond 2^32 pages the limit is no limit: a typo, not a wish. */
			if (parse_u64(optarg, 1ULL << 32, &ra->max_shadow_pages) ||
			    ra->max_shadow_pages < 8)
				return bad("--max-shadow-pages '%s': expected 8 to 4294967296 shadow pages",
					   optarg);
			break;
		case O_EVICT:
			if ((ra->mmu_evict = pick(optarg, evict_names, 2)) < 0)
				return bad("--mmu-evict '%s': expected lru or fifo", optarg);
			break;
		case O_MMU_LOCK:
			if ((ra->mmu_lock = pick(optarg, mmu_lock_names, 3)) < 0)
				return bad("--mmu-lock '%s': expected fine, shared or big", optarg);
			break;
		case O_INTERLEAVE:
			ra->interleave = true;
			break;
		case O_PIN:
			ra->pin_vcpus = true;
			break;
		case O_REPORT:
			if (strcmp(optarg, "exits"))
				return bad("--report '%s': expected exits", optarg);
			ra->report_exits = true;
			break;
		case 'h':
		case O_HELP:
			help_command("run");
			return -1;
		case ':':
			return bad("option '%s' needs a value", argv[optind - 1]);
		default:
			return bad_option(argv[optind - 1], longopts);
		}
	}
	if (optind == argc)
		return bad("which workload? ('vmmu workloads' lists them)");
	if (argc - optind > 1)
		return bad("one workload at a time ('%s' is extra)", argv[optind + 1]);
	ra->workload = argv[optind];
	/* ept runs on VMX, npt on SVM; shadow on either (VMX unless told). */
	if (ra->mmu == VMMU_MMU_EPT && ra->host == VMMU_HOST_SVM)
		return bad("--mmu ept needs a VMX host, not --host svm");
	if (ra->mmu == VMMU_MMU_NPT && ra->host == VMMU_HOST_VMX)
		return bad("--mmu npt needs an SVM host, not --host vmx");
	if (ra->host < 0)
		ra->host = ra->mmu == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX;
	return 0;
}

/* ---- progress ---- */

struct progress {
	double start, last;
	bool shown;
	const char *name;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_progress(void *opaque, double fraction, uint64_t accesses)
{
	struct progress *p = opaque;
	double t = now();

	if (t - p->start < 1.0 || t - p->last < 0.25)
		return;
	p->last = t;
	p->shown = true;
	fprintf(stderr, "\rvmmu run %s: %3.0f%%  %.1fM accesses  %.1f s ", p->name, fraction * 100,
		(double)accesses / 1e6, t - p->start);
	fflush(stderr);
}

/* ---- output ---- */


static const char *host_name(const struct run_args *ra)
{
	if (ra->mmu == VMMU_MMU_NATIVE)
		return "none";
	return ra->host == VMMU_HOST_SVM ? "svm" : "vmx";
}

static uint64_t max_rss_bytes(void)
{
	struct rusage ru;
	return getrusage(RUSAGE_SELF, &ru) ? 0 : (uint64_t)ru.ru_maxrss * 1024;
}

#define STAT_FIELDS(X)                                                                             \
	X(pf_taken) X(pf_fixed) X(pf_emulate) X(pf_spurious) X(pf_fast) X(pf_guest)                \
	X(pf_mmio_spte_created) X(invlpg) X(tlb_flush) X(exits) X(mmu_shadow_zapped)               \
	X(mmu_pte_write) X(mmu_pde_zapped) X(mmu_flooded) X(mmu_recycled) X(mmu_cache_miss)        \
	X(mmu_unsync) X(pages_4k) X(pages_2m) X(pages_1g) X(remote_tlb_flush) X(tlb_hits)          \
	X(tlb_misses) X(walk_refs) X(shadow_pages) X(tdp_pages) X(ksm_pages_shared)                \
	X(ksm_pages_sharing) X(ksm_full_scans) X(host_frames) X(accesses) X(ksm_pages_unshared)    \
	X(ksm_pages_volatile) X(ksm_cow_breaks) X(ksm_zero_pages) X(ksm_passes) X(ksm_checksums)   \
	X(ksm_compares) X(ksm_merges) X(ksm_merge_scans) X(ksm_mmu_unchanged) X(ksm_mmu_written)   \
	X(ksm_mmu_harvests) X(thp_fault_alloc) X(thp_fault_fallback) X(thp_split_page)             \
	X(thp_collapse_alloc) X(mmu_lock_wait_ns) X(sp_lock_contended)                             \
	X(thp_collapse_alloc_failed) X(thp_underused_split_page) X(khugepaged_pages_collapsed)     \
	X(khugepaged_full_scans) X(khugepaged_passes) X(khugepaged_pages_scanned)

#define GUEST_FIELDS(X)                                                                            \
	X(user_accesses) X(kernel_accesses) X(kills) X(forks) X(execs) X(exits) X(ctx_switches)    \
	X(tlb_shootdowns) X(tlb_flushes) X(invlpgs) X(cow_copies) X(zero_fills) X(thp_allocs)      \
	X(thp_splits) X(thp_collapses) X(huge_1g_pages) X(young_pages) X(mmio_accesses) X(trace_records)            \
	X(trace_skipped) X(audits)

static const char *const exit_names[VMMU_EXIT_NR] = {
	"pf", "ept_violation", "ept_misconfig", "npf", "cr3", "invlpg", "mmio",
};

static void print_param_value(const struct vmmu_workload_args *a, unsigned i, bool json)
{
	const struct vmmu_workload_param *p = &a->w->params[i];
	char buf[32];

	switch (p->type) {
	case VMMU_PARAM_PATH:
		if (json)
			cli_json_str(stdout, a->s[i]);
		else
			fputs(a->s[i], stdout);
		break;
	case VMMU_PARAM_BOOL:
		fputs(a->u[i] ? (json ? "true" : "on") : (json ? "false" : "off"), stdout);
		break;
	case VMMU_PARAM_SIZE:
		if (!json) {
			vmmu_format_size(a->u[i], buf, sizeof(buf));
			fputs(buf, stdout);
			break;
		}
		/* fall through */
	case VMMU_PARAM_UINT:
		printf("%" PRIu64, a->u[i]);
		break;
	}
}

static void print_json(const struct run_args *ra, const struct vmmu_workload_args *a,
		       const struct vmmu_guest_result *r)
{
	const struct vmmu_stats *st = &r->stats;
	struct vmmu_cost cost = ra->cost;
	double cpa = r->accesses ? (double)st->sim_cycles / (double)r->accesses : 0;

	cost_fill_defaults(&cost);
	printf("{\"vmmu\":\"%s\",\"workload\":{\"name\":", VMMU_VERSION);
	cli_json_str(stdout, a->w->name);
	printf(",\"params\":{");
	for (unsigned i = 0; a->w->params[i].name; i++) {
		printf("%s\"%s\":", i ? "," : "", a->w->params[i].name);
		print_param_value(a, i, true);
	}
	printf("}},\"config\":{\"mmu\":\"%s\",\"host\":\"%s\",\"opts\":{", mmu_names[ra->mmu], host_name(ra));
	for (unsigned i = 0; i < NR_OPTS; i++)
		printf("%s\"%s\":%s", i ? "," : "", opt_names[i], (r->opts >> i) & 1 ? "true" : "false");
	printf("},\"opts_requested\":{");
	for (unsigned i = 0; i < NR_OPTS; i++)
		printf("%s\"%s\":%s", i ? "," : "", opt_names[i], ra->opts[i] ? "true" : "false");
	printf("},\"vcpus\":%u,\"vms\":%u,\"mem_bytes\":%" PRIu64 ",\"thp\":\"%s\",\"hugetlb\":\"%s\","
	       "\"guest_thp\":%s,\"guest_1g\":%s,"
	       "\"ksm\":%s,\"seed\":%" PRIu64 ",\"cpu\":\"%s\",\"guest_pcid\":%s,\"guest_aging\":%u,\"guest_khugepaged\":%u,"
	       "\"quantum\":%u,\"audit\":%u,\"max_shadow_pages\":%" PRIu64 ",\"mmu_evict\":\"%s\","
	       "\"mmu_lock\":\"%s\",\"schedule\":\"%s\",\"pin_vcpus\":%s,\"cost\":{",
	       r->vcpus, r->vms, r->mem_bytes, thp_names[ra->thp], hugetlb_names[ra->hugetlb],
	       ra->guest_thp ? "true" : "false", ra->guest_1g ? "true" : "false",
	       ra->ksm ? "true" : "false", ra->seed, ra->cpu ? ra->cpu : "intel",
	       ra->pcid ? "true" : "false", ra->aging, ra->guest_khugepaged, ra->quantum ? ra->quantum : 64, ra->audit,
	       ra->max_shadow_pages, evict_names[ra->mmu_evict], mmu_lock_names[ra->mmu_lock],
	       r->vcpus > 1 && !ra->interleave ? "threads" : "interleave",
	       ra->pin_vcpus ? "true" : "false");
	for (unsigned i = 0; cost_keys[i]; i++)
		printf("%s\"%s\":%u", i ? "," : "", cost_keys[i], cost_get(&cost, i));
	printf("},\"ksm_params\":[");
	for (unsigned i = 0; i < ra->nksm_params; i++) {
		printf("%s", i ? "," : "");
		cli_json_str(stdout, ra->ksm_params[i]);
	}
	printf("],\"khugepaged\":%s,\"thp_params\":[", ra->khugepaged ? "true" : "false");
	for (unsigned i = 0; i < ra->nthp_params; i++) {
		printf("%s", i ? "," : "");
		cli_json_str(stdout, ra->thp_params[i]);
	}
	printf("],\"host_fragment\":%u,\"host_fragment_ms\":%" PRIu64, ra->host_fragment,
	       ra->host_fragment_ms);
	printf("},\"guest\":{\"digest\":\"%016" PRIx64 "\",\"accesses\":%" PRIu64 ",\"page_faults\":%" PRIu64,
	       r->digest, r->accesses, r->page_faults);
#define X(f) printf(",\"" #f "\":%" PRIu64, r->f);
	GUEST_FIELDS(X)
#undef X
	printf("}");
	/* Dirty logging's own figures, for the workload that turns it on. */
	if (!strcmp(a->w->name, "migrate"))
		printf(",\"migrate\":{\"rounds\":%" PRIu64 ",\"dirty_pages\":%" PRIu64
		       ",\"written_pages\":%" PRIu64 ",\"min_dirty_pages\":%" PRIu64 "}",
		       r->dirty_rounds, r->dirty_pages, r->dirty_written, r->dirty_min_round);
	printf(",\"stats\":{");
	bool first = true;
#define X(f) printf("%s\"" #f "\":%" PRIu64, first ? "" : ",", st->f); first = false;
	STAT_FIELDS(X)
#undef X
	printf(",\"exits_by_reason\":{");
	for (unsigned i = 0; i < VMMU_EXIT_NR; i++)
		printf("%s\"%s\":%" PRIu64, i ? "," : "", exit_names[i], st->exits_by_reason[i]);
	printf("},\"exit_cycles\":{");
	for (unsigned i = 0; i < VMMU_EXIT_NR; i++)
		printf("%s\"%s\":%" PRIu64, i ? "," : "", exit_names[i], st->exit_cycles[i]);
	printf("},\"general_profit\":%" PRId64 "}", st->general_profit);
	printf(",\"cost\":{\"sim_cycles\":%" PRIu64 ",\"cycles_per_access\":%.3f}", st->sim_cycles, cpa);
	printf(",\"host\":{\"seconds\":%.6f,\"accesses_per_sec\":%.0f,\"max_rss_bytes\":%" PRIu64
	       ",\"rss_bytes\":%" PRIu64 ",\"rss_samples\":[",
	       r->seconds, r->seconds > 0 ? (double)r->accesses / r->seconds : 0, max_rss_bytes(),
	       r->rss_bytes);
	for (unsigned i = 0; i < r->nr_rss_samples; i++)
		printf("%s{\"accesses\":%" PRIu64 ",\"rss_bytes\":%" PRIu64 "}", i ? "," : "",
		       r->rss_samples[i].accesses, r->rss_samples[i].rss_bytes);
	printf("]}}\n");
}

static void print_table(const struct run_args *ra, const struct vmmu_workload_args *a,
			const struct vmmu_guest_result *r)
{
	const struct vmmu_stats *st = &r->stats;
	char mem[32];

	vmmu_format_size(r->mem_bytes, mem, sizeof(mem));
	printf("vmmu run %s: mmu %s%s%s, %u vCPU%s, %u VM%s, %s guest RAM, seed %" PRIu64 "\n",
	       a->w->name, mmu_names[ra->mmu], ra->mmu == VMMU_MMU_NATIVE ? "" : " on ",
	       ra->mmu == VMMU_MMU_NATIVE ? "" : host_name(ra), r->vcpus, r->vcpus == 1 ? "" : "s",
	       r->vms, r->vms == 1 ? "" : "s", mem, ra->seed);
	printf("  %-18s", "params");
	for (unsigned i = 0; a->w->params[i].name; i++) {
		printf(" %s=", a->w->params[i].name);
		print_param_value(a, i, false);
	}
	printf("\n  %-18s %016" PRIx64 "\n", "guest digest", r->digest);
	printf("  %-18s %" PRIu64 " (user %" PRIu64 ", kernel %" PRIu64 ")\n", "guest accesses",
	       r->accesses, r->user_accesses, r->kernel_accesses);
	printf("  %-18s %" PRIu64 "\n", "page faults", r->page_faults);
	printf("  %-18s %" PRIu64 " forks, %" PRIu64 " execs, %" PRIu64 " exits, %" PRIu64 " killed\n",
	       "processes", r->forks, r->execs, r->exits, r->kills);
	printf("  %-18s %" PRIu64 " zero-fill, %" PRIu64 " copy-on-write, %" PRIu64 " 2M\n", "pages",
	       r->zero_fills, r->cow_copies, r->thp_allocs);
	printf("  %-18s %" PRIu64 " switches, %" PRIu64 " full flushes, %" PRIu64 " invlpg, %" PRIu64 " shootdowns\n",
	       "guest TLB work", r->ctx_switches, r->tlb_flushes, r->invlpgs, r->tlb_shootdowns);
	if (r->trace_records)
		printf("  %-18s %" PRIu64 " records, %" PRIu64 " skipped\n", "trace", r->trace_records,
		       r->trace_skipped);
	if (r->dirty_rounds) {
		printf("  %-18s %" PRIu64 " harvests, %" PRIu64 " pages dirty (fewest in one %" PRIu64 "), %" PRIu64 " pages written, all logged\n",
		       "dirty log", r->dirty_rounds, r->dirty_pages, r->dirty_min_round, r->dirty_written);
		/* dirty_log_perf_test's figures: time per harvest round, pages per second. */
		if (r->seconds > 0)
			printf("  %-18s %.3f ms per round, %.0f dirty pages/s\n", "", r->seconds * 1e3 /
			       (double)r->dirty_rounds, (double)r->dirty_pages / r->seconds);
	}
	printf("  %-18s %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " walk refs\n", "TLB",
	       st->tlb_hits, st->tlb_misses, st->walk_refs);
	printf("  %-18s %" PRIu64, "VM exits", st->exits);
	for (unsigned i = 0, n = 0; i < VMMU_EXIT_NR; i++)
		printf("%s%s %" PRIu64, n++ ? ", " : " (", exit_names[i], st->exits_by_reason[i]);
	printf(")\n");
	printf("  %-18s %" PRIu64 " taken, %" PRIu64 " fixed (%" PRIu64 " fast), %" PRIu64
	       " spurious, %" PRIu64 " emulated, %" PRIu64 " injected\n", "MMU page faults",
	       st->pf_taken, st->pf_fixed, st->pf_fast, st->pf_spurious, st->pf_emulate, st->pf_guest);
	if (ra->mmu != VMMU_MMU_NATIVE)
		printf("  %-18s %" PRIu64 " 4K, %" PRIu64 " 2M, %" PRIu64 " 1G\n", "MMU leaves",
		       st->pages_4k, st->pages_2m, st->pages_1g);
	if (ra->hugetlb != VMMU_HUGETLB_NONE)
		printf("  %-18s hugetlb %s\n", "host pages", hugetlb_names[ra->hugetlb]);
	else
		printf("  %-18s THP %s: %" PRIu64 " 2M faulted, %" PRIu64 " fallbacks, %" PRIu64
		       " split\n", "host pages", thp_names[ra->thp], st->thp_fault_alloc,
		       st->thp_fault_fallback, st->thp_split_page);
	if (ra->khugepaged)
		printf("  %-18s %" PRIu64 " collapsed, %" PRIu64 " failed (no free 2M block), %" PRIu64
		       " passes, %" PRIu64 " full scans\n", "khugepaged", st->khugepaged_pages_collapsed,
		       st->thp_collapse_alloc_failed, st->khugepaged_passes, st->khugepaged_full_scans);
	/* demand_paging_test's figure, for a run that faulted its memory in. */
	if (st->pf_fixed && r->seconds > 0)
		printf("  %-18s %.0f pages/s per vCPU (%" PRIu64 " faults fixed, %u vCPU%s)\n",
		       "demand paging", (double)st->pf_fixed / r->seconds / (r->vcpus ? r->vcpus : 1),
		       st->pf_fixed, r->vcpus, r->vcpus == 1 ? "" : "s");
	if (r->audits)
		printf("  %-18s %" PRIu64 " passed\n", "MMU audits", r->audits);
	if (ra->ksm)
		printf("  %-18s %" PRIu64 " shared, %" PRIu64 " sharing, %" PRIu64 " unshared, %" PRIu64
		       " volatile, %" PRIu64 " full scans, %" PRIu64 " COW breaks, profit %" PRId64 "K\n",
		       "KSM", st->ksm_pages_shared, st->ksm_pages_sharing, st->ksm_pages_unshared,
		       st->ksm_pages_volatile, st->ksm_full_scans, st->ksm_cow_breaks,
		       st->general_profit / 1024);
	printf("  %-18s %" PRIu64 " (%.2f a guest access)\n", "simulated cycles", st->sim_cycles,
	       r->accesses ? (double)st->sim_cycles / (double)r->accesses : 0);
	printf("  %-18s %.3f s, %.2fM guest accesses/s, RSS %" PRIu64 "M at the end, max %" PRIu64
	       "M\n", "host", r->seconds, r->seconds > 0 ? (double)r->accesses / r->seconds / 1e6 : 0,
	       r->rss_bytes >> 20, max_rss_bytes() >> 20);
}

/*
 * `perf kvm stat report` for the model's exits: by reason, the samples, their share, the share of
 * the exits' simulated cycles (round trip and handler) and the mean. Rows by samples, as perf.
 */
static void print_exit_report(const struct vmmu_guest_result *r)
{
	const struct vmmu_stats *st = &r->stats;
	uint64_t cycles = 0;
	unsigned order[VMMU_EXIT_NR];

	for (unsigned i = 0; i < VMMU_EXIT_NR; i++) {
		cycles += st->exit_cycles[i];
		order[i] = i;
	}
	for (unsigned i = 1; i < VMMU_EXIT_NR; i++)
		for (unsigned j = i; j > 0 && st->exits_by_reason[order[j]] >
					      st->exits_by_reason[order[j - 1]]; j--) {
			unsigned k = order[j];
			order[j] = order[j - 1];
			order[j - 1] = k;
		}
	printf("Analyze events for all VMs, all VCPUs (simulated cycles):\n\n");
	printf("%16s %10s %9s %9s %14s\n\n", "VM-EXIT", "Samples", "Samples%", "Cycles%",
	       "Avg cycles");
	for (unsigned k = 0; k < VMMU_EXIT_NR; k++) {
		unsigned i = order[k];
		uint64_t n = st->exits_by_reason[i];

		if (!n)
			continue;
		printf("%16s %10" PRIu64 " %8.2f%% %8.2f%% %14.1f\n", exit_names[i], n,
		       100.0 * (double)n / (double)st->exits, cycles ? 100.0 *
		       (double)st->exit_cycles[i] / (double)cycles : 0, (double)st->exit_cycles[i] /
		       (double)n);
	}
	printf("\nTotal Samples:%" PRIu64 ", Total simulated cycles of exits:%" PRIu64 " (%.1f%% of %"
	       PRIu64 ")\n", st->exits, cycles, st->sim_cycles ? 100.0 * (double)cycles /
	       (double)st->sim_cycles : 0, st->sim_cycles);
}

int run_parse(int argc, char **argv, struct run_args *ra, struct vmmu_workload_args *wa)
{
	char err[512];
	int rc = parse_args(argc, argv, ra);

	if (rc)
		return rc < 0 ? -1 : rc;
	rc = vmmu_workload_args(ra->workload, ra->params, ra->nparams, wa, err, sizeof(err));
	if (rc) {
		cli_clean(err);
		fprintf(stderr, "vmmu run: %s\n", err);
		return EXIT_USAGE;
	}
	return 0;
}

int run_collect(int argc, char **argv, bool quiet, struct run_args *ra,
		struct vmmu_workload_args *wa, struct vmmu_guest_result *res)
{
	struct vmmu_guest_config cfg;
	struct progress prog = { 0 };
	char err[512];
	int rc = run_parse(argc, argv, ra, wa);

	if (rc)
		return rc;
	memset(&cfg, 0, sizeof(cfg));
	cfg.vm.mmu = (enum vmmu_mmu)ra->mmu;
	cfg.vm.host = (enum vmmu_host)ra->host;
	cfg.vm.thp = ra->thp;
	cfg.vm.hugetlb = (enum vmmu_hugetlb)ra->hugetlb;
	cfg.vm.cost = ra->cost;
	cfg.vm.cpu = ra->cpu;
	cfg.vm.max_shadow_pages = ra->max_shadow_pages;
	cfg.vm.mmu_evict = (enum vmmu_mmu_evict)ra->mmu_evict;
	cfg.vm.mmu_lock = (enum vmmu_mmu_lock)ra->mmu_lock;
	cfg.mem_bytes = ra->mem;
	cfg.vcpus = ra->vcpus;
	cfg.interleave = ra->interleave;
	cfg.pin_vcpus = ra->pin_vcpus;
	cfg.vms = ra->vms;
	cfg.guest_thp = ra->guest_thp;
	cfg.guest_1g = ra->guest_1g;
	cfg.no_pcid = !ra->pcid;
	cfg.aging_period = ra->aging;
	cfg.khugepaged_period = ra->guest_khugepaged;
	cfg.quantum = ra->quantum;
	cfg.audit_period = ra->audit;
	for (unsigned i = 0; i < NR_OPTS; i++)
		if (!ra->opts[i])
			cfg.vm.opts_off |= 1u << i;   /* VMMU_OPT_* in opt_names' order */
	cfg.seed = ra->seed;
	cfg.ksm = ra->ksm;
	cfg.ksm_params = ra->ksm_params;
	cfg.nr_ksm_params = ra->nksm_params;
	cfg.khugepaged = ra->khugepaged;
	cfg.thp_params = ra->thp_params;
	cfg.nr_thp_params = ra->nthp_params;
	cfg.host_fragment_pct = ra->host_fragment;
	cfg.host_fragment_ms = ra->host_fragment_ms;
	if (!quiet && isatty(STDERR_FILENO)) {
		prog.start = now();
		prog.name = wa->w->name;
		cfg.progress = on_progress;
		cfg.progress_opaque = &prog;
	}
	rc = vmmu_run(&cfg, wa, res, err, sizeof(err));
	if (prog.shown)
		fputs("\r\033[K", stderr);
	if (rc == -EOPNOTSUPP) {
		fprintf(stderr, "vmmu run: --mmu %s: not available in this build\n", mmu_names[ra->mmu]);
		return 1;
	}
	if (rc) {
		cli_clean(err);
		fprintf(stderr, "vmmu run: %s\n", err);
		return rc == -EINVAL || rc == -E2BIG || rc == -ENOENT || rc == -EISDIR || rc == -EACCES ? EXIT_USAGE : 1;
	}
	return 0;
}

int run_check_opts(const char *spec)
{
	bool opts[NR_OPTS];

	return parse_opts(spec, opts);
}

const char *run_mmu_name(const struct run_args *ra)
{
	return mmu_names[ra->mmu];
}

const char *run_host_name(const struct run_args *ra)
{
	return host_name(ra);
}

void run_print_json(const struct run_args *ra, const struct vmmu_workload_args *wa,
		    const struct vmmu_guest_result *res)
{
	print_json(ra, wa, res);
}

int cmd_run(int argc, char **argv)
{
	struct run_args ra;
	struct vmmu_workload_args wa;
	struct vmmu_guest_result res;
	int rc = run_collect(argc, argv, false, &ra, &wa, &res);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (ra.json)
		print_json(&ra, &wa, &res);
	else if (ra.report_exits)
		print_exit_report(&res);
	else
		print_table(&ra, &wa, &res);
	return 0;
}
