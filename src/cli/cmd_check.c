/* SPDX-License-Identifier: MIT */
/*
 * `vmmu check [FILE]`: answer page-walk scenarios, one a line, in the format of
 * docs/check-format.md. Every line is answered; a bad line gets " error=<why>" on stdout, a
 * one-line message with its number on stderr, and the exit code is 2 at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vmmu/vmmu.h"
#include "validate/kvm.h"
#include "validate/scenario.h"

int cli_cpu_model(const char *cpu, const char *features, const char *maxphyaddr,
		  struct cpu_model *out)
{
	char why[256], bad[64];

	if (!cpu || !strcmp(cpu, "host")) {
		if (kvmv_probe_cpu(out, why, sizeof(why))) {
			/* Documented fallback: without /dev/kvm the host model is the fixed intel one. */
			fprintf(stderr, "vmmu: --cpu host: %s; using the 'intel' model\n", why);
			cpu_model_fixed(out, "intel");
		}
	} else if (cpu_model_fixed(out, cpu)) {
		fprintf(stderr, "vmmu: --cpu '%s': expected host, intel or amd\n", cpu);
		return EXIT_USAGE;
	}
	if (features && cpu_model_adjust(out, features, bad, sizeof(bad))) {
		fprintf(stderr, "vmmu: --features: unknown '%s' (expected +/- nx, smep, smap, pku, 1g, la57, pse36)\n", bad);
		return EXIT_USAGE;
	}
	if (maxphyaddr) {
		uint64_t v;
		/* Decimal digits only, as every count (no sign, no blanks, no base prefix). */
		if (vmmu_parse_uint(maxphyaddr, 52, &v) || v < 36) {
			fprintf(stderr, "vmmu: --maxphyaddr '%s': expected 36..52\n", maxphyaddr);
			return EXIT_USAGE;
		}
		out->maxphyaddr = (int)v;
	}
	return 0;
}

/* The longest scenario line (the parser's limit too). */
#define LINE_MAX_CHARS 1023

/*
 * One line of @in into @buf (@size bytes: the line, its newline and the NUL), like getline but
 * bounded: a longer line sets *@too_long and reading stops there. The length, or -1 at the end
 * of the input.
 */
static ssize_t read_line(FILE *in, char *buf, size_t size, bool *too_long)
{
	size_t n = 0;
	int c;

	*too_long = false;
	while ((c = getc(in)) != EOF) {
		if (n == size - 1) {
			*too_long = true;     /* stop here: the line may never end (/dev/zero) */
			break;
		}
		buf[n++] = (char)c;
		if (c == '\n')
			break;
	}
	if (c == EOF && !n && !*too_long)
		return -1;
	buf[n] = '\0';
	return (ssize_t)n;
}

int check_parse(int argc, char **argv, struct check_args *ca)
{
	static const struct option opts[] = {
		{ "cpu", required_argument, NULL, 'c' },
		{ "features", required_argument, NULL, 'f' },
		{ "maxphyaddr", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cpu = "host", *features = NULL, *maxphy = NULL;
	int opt;

	memset(ca, 0, sizeof(*ca));
	optind = 0;   /* 0, not 1: glibc forgets a scan stopped inside "-abc" only so */
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': cpu = optarg; break;
		case 'f': features = optarg; break;
		case 'm': maxphy = optarg; break;
		case 'h':
			ca->help = true;
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "vmmu check: one FILE at most\n");
		return EXIT_USAGE;
	}
	if (optind < argc)
		ca->file = argv[optind];
	return cli_cpu_model(cpu, features, maxphy, &ca->model);
}

int cmd_check(int argc, char **argv)
{
	struct check_args ca;
	struct scn_model *m = NULL;
	FILE *in = stdin;
	static char line[LINE_MAX_CHARS + 2];
	long lineno = 0;
	int rc, status = 0;

	rc = check_parse(argc, argv, &ca);
	if (rc)
		return rc;
	if (ca.help) {
		help_command("check");
		return 0;
	}
	if (ca.file && strcmp(ca.file, "-")) {
		in = fopen(ca.file, "r");
		if (!in) {
			fprintf(stderr, "vmmu check: %s: %s\n", ca.file, strerror(errno));
			return EXIT_USAGE;
		}
	}
	rc = scn_model_create(&m);
	if (rc) {
		fprintf(stderr, "vmmu check: cannot create the model VM: %s\n", strerror(-rc));
		status = 1;
		goto out;
	}

	ssize_t n;
	bool too_long;
	while ((n = read_line(in, line, LINE_MAX_CHARS + 2, &too_long)) >= 0) {
		struct scenario s;
		struct scn_outcome o;
		char err[256], buf[512];

		lineno++;
		if (too_long) {
			/* Refused as soon as it passes the limit, and the input with it: the line
			 * may have no end (/dev/zero), and nothing of it is kept. */
			fprintf(stderr, "vmmu check: line %ld: longer than %d characters: not a scenario "
				"file\n", lineno, LINE_MAX_CHARS);
			status = EXIT_USAGE;
			break;
		}
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (memchr(line, '\0', (size_t)n)) {
			/* A NUL: the input is not text (/dev/zero, a binary file). */
			fprintf(stderr, "vmmu check: line %ld: a NUL byte in the line\n", lineno);
			printf("%s error=NUL byte in the line\n", line);
			status = EXIT_USAGE;
			continue;
		}
		rc = scn_parse(line, &s, err, sizeof(err));
		if (rc == 1) {
			printf("%s\n", line);
			continue;
		}
		if (rc) {
			cli_clean(line);        /* echoed: no escape sequence reaches the terminal */
			cli_clean(err);
			fprintf(stderr, "vmmu check: line %ld: %s\n", lineno, err);
			printf("%s error=%s\n", line, err);
			status = EXIT_USAGE;
			continue;
		}
		const char *why = scn_unsupported(&s, &ca.model);
		if (why) {
			printf("%s unsupported=%s\n", line, why);
			continue;
		}
		rc = scn_model_run(m, &s, &ca.model, &o);
		if (rc) {
			fprintf(stderr, "vmmu check: line %ld: the model failed: %s\n", lineno, strerror(-rc));
			printf("%s error=model failure (%s)\n", line, strerror(-rc));
			status = 1;
			continue;
		}
		scn_format_outcome(&o, buf, sizeof(buf));
		printf("%s%s\n", line, buf);
	}
	if (ferror(in)) {
		fprintf(stderr, "vmmu check: read error: %s\n", strerror(errno));
		status = EXIT_USAGE;
	}
out:
	scn_model_destroy(m);
	if (in != stdin)
		fclose(in);
	return status;
}
