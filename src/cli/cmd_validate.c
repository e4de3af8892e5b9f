/* SPDX-License-Identifier: MIT */
/*
 * `vmmu validate`: random scenarios run both on the model and on the real CPU through /dev/kvm.
 * The model is configured as the host CPU that KVM reports. Prints every disagreement as a
 * `check` line carrying the CPU's outcome (feed it to `vmmu check` to see the model's), then
 * the agreement. Exit: 0 all agree, 1 a disagreement or a runner error, 2 usage, 77 when
 * /dev/kvm is unusable (nothing was compared).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "vmmu/vmmu.h"
#include "validate/kvm.h"
#include "validate/probe.h"
#include "validate/scenario.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int parse_count(const char *v, unsigned long *out)
{
	uint64_t x;
	int rc = vmmu_parse_uint(v, 100000000ULL, &x);

	if (!rc)
		*out = (unsigned long)x;
	return rc;
}

int validate_parse(int argc, char **argv, struct validate_args *va)
{
	static const struct option opts[] = {
		{ "count", required_argument, NULL, 'n' },
		{ "seed", required_argument, NULL, 's' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "probes", no_argument, NULL, 'P' },
		{ "probe", required_argument, NULL, 'p' },
		{ "reps", required_argument, NULL, 'r' },
		{ "golden", required_argument, NULL, 'g' },
		{ "record", required_argument, NULL, 'R' },
		{ "markdown", no_argument, NULL, 'm' },
		{ "list", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool scn_opt = false;
	int opt;

	*va = (struct validate_args){ .count = 1000, .seed = 1, .reps = 7 };
	optind = 0;   /* 0, not 1: glibc forgets a scan stopped inside "-abc" only so */
	while ((opt = getopt_long(argc, argv, "n:s:qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'P': va->probes = true; break;
		case 'p': va->probe_list = optarg; break;
		case 'g': va->golden = optarg; break;
		case 'R': va->record = optarg; break;
		case 'm': va->markdown = true; break;
		case 'l': va->list = true; break;
		case 'r':
			if (parse_count(optarg, &va->reps) || !va->reps || va->reps > 64) {
				fprintf(stderr, "vmmu validate: --reps '%s': expected 1..64\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'n':
			scn_opt = true;
			if (parse_count(optarg, &va->count) || !va->count) {
				fprintf(stderr, "vmmu validate: --count '%s': expected 1..100000000\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 's':
			scn_opt = true;
			if (parse_count(optarg, &va->seed)) {
				fprintf(stderr, "vmmu validate: --seed '%s': expected 0..100000000\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'q': va->quiet = true; break;
		case 'h':
			va->help = true;
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "vmmu validate: unexpected argument '%s'\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!va->probes && (va->probe_list || va->golden || va->record || va->markdown || va->list)) {
		fprintf(stderr, "vmmu validate: --probe, --reps, --golden, --record, --markdown and "
				"--list go with --probes\n");
		return EXIT_USAGE;
	}
	if (va->probes && scn_opt) {
		fprintf(stderr, "vmmu validate: --count and --seed are for scenarios, not --probes\n");
		return EXIT_USAGE;
	}
	if (va->probes && va->golden && va->record) {
		fprintf(stderr, "vmmu validate: --record needs a live run, not --golden\n");
		return EXIT_USAGE;
	}
	return 0;
}

int cmd_validate(int argc, char **argv)
{
	unsigned long run = 0, agree = 0, skipped = 0, errors = 0;
	struct validate_args va;
	struct cpu_model cpu;
	struct kvmv *k = NULL;
	struct scn_model *m = NULL;
	char why[256];
	int rc, status = 0;

	rc = validate_parse(argc, argv, &va);
	if (rc)
		return rc;
	if (va.help) {
		help_command("validate");
		return 0;
	}
	if (va.probes) {
		if (va.list) {
			for (size_t i = 0; i < probe_count; i++)
				printf("%-14s %s\n", probe_catalogue[i].name, probe_catalogue[i].what);
			return 0;
		}
		return cmd_probes(va.probe_list, (unsigned)va.reps, va.golden, va.record, va.markdown,
				  va.quiet);
	}
	unsigned long count = va.count, seed = va.seed;
	bool quiet = va.quiet;

	rc = kvmv_probe_cpu(&cpu, why, sizeof(why));
	if (!rc)
		rc = kvmv_open(&k, why, sizeof(why));
	if (rc) {
		fprintf(stderr, "vmmu validate: skipped: %s\n", why);
		return EXIT_SKIP;
	}
	rc = scn_model_create(&m);
	if (rc) {
		fprintf(stderr, "vmmu validate: cannot create the model VM: %s\n", strerror(-rc));
		kvmv_close(k);
		return 1;
	}
	if (!quiet)
		printf("# cpu: %s, maxphyaddr %d, features%s%s%s%s%s%s\n",
		       cpu.vendor == CPU_VENDOR_AMD ? "AMD" : "Intel", cpu.maxphyaddr,
		       cpu_has(&cpu, CPU_FEAT_NX) ? " nx" : "", cpu_has(&cpu, CPU_FEAT_SMEP) ? " smep" : "",
		       cpu_has(&cpu, CPU_FEAT_SMAP) ? " smap" : "", cpu_has(&cpu, CPU_FEAT_PKU) ? " pku" : "",
		       cpu_has(&cpu, CPU_FEAT_1G) ? " 1g" : "", cpu_has(&cpu, CPU_FEAT_LA57) ? " la57" : "");

	unsigned long by_ec[64] = { 0 }, no_fault = 0;   /* outcome mix of agreeing runs: the coverage */
	uint64_t rng = seed;
	double t0 = now(), last = t0;
	bool tty = isatty(STDERR_FILENO);
	for (unsigned long i = 0; i < count; i++) {
		struct scenario s;
		struct scn_outcome hw, model;
		char line[512], a[256], b[256];

		scn_random(&s, &rng, &cpu, i);
		if (scn_unsupported(&s, &cpu)) {
			skipped++;
			continue;
		}
		rc = kvmv_run(k, &s, &hw, why, sizeof(why));
		if (rc == -EOPNOTSUPP) {
			skipped++;
			continue;
		}
		scn_format(&s, line, sizeof(line));
		if (rc) {
			errors++;
			printf("%s error=cpu: %s\n", line, why);
			continue;
		}
		rc = scn_model_run(m, &s, &cpu, &model);
		if (rc) {
			errors++;
			printf("%s error=model: %s\n", line, strerror(-rc));
			continue;
		}
		run++;
		if (scn_outcome_equal(&hw, &model)) {
			agree++;
			if (hw.fault)
				by_ec[hw.ec & 63]++;
			else
				no_fault++;
		} else {
			scn_format_outcome(&hw, a, sizeof(a));
			scn_format_outcome(&model, b, sizeof(b));
			printf("# disagreement; model:%s\n%s%s\n", b, line, a);
		}
		if (tty && !quiet && now() - last > 1.0) {
			last = now();
			fprintf(stderr, "\r%lu/%lu scenarios, %lu disagree", i + 1, count, run - agree);
		}
	}
	if (tty && !quiet)
		fprintf(stderr, "\r\033[K");
	double secs = now() - t0;
	if (!quiet) {
		printf("# agreed outcomes: no fault %lu", no_fault);
		for (unsigned e = 0; e < 64; e++)
			if (by_ec[e])
				printf(", ec=0x%x %lu", e, by_ec[e]);
		printf("\n");
	}
	printf("vmmu validate: %lu scenarios (seed %lu): %lu run, %lu agree, %lu disagree, %lu skipped, %lu errors; "
	       "agreement %.2f%%; %.0f scenarios/s\n",
	       count, seed, run, agree, run - agree, skipped, errors,
	       run ? 100.0 * (double)agree / (double)run : 0.0, secs > 0 ? (double)count / secs : 0.0);
	if (run != agree || errors)
		status = 1;
	if (!run && !errors)
		status = EXIT_SKIP;
	scn_model_destroy(m);
	kvmv_close(k);
	return status;
}
