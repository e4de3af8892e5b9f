/* SPDX-License-Identifier: MIT */
/*
 * cli/: the `vmmu` command. One file per subcommand, dispatched from the table in main.c.
 * Only this layer prints to the user and chooses exit codes: 0 success, 1 a failed check or
 * a disagreement, 2 bad usage or input, 77 skipped (what a test needs is absent).
 */
#ifndef VMMU_CLI_H
#define VMMU_CLI_H

#include <stdbool.h>

#include "paging/cpu_model.h"

#define EXIT_USAGE 2
#define EXIT_SKIP  77

int cmd_check(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_workloads(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_sweep(int argc, char **argv);
int cmd_report(int argc, char **argv);
/* The option parsers, apart from what the commands do (so fuzz_cli can drive them): each
 * returns 0 with the arguments filled (help set for --help), or EXIT_USAGE with the message on
 * stderr. The strings point into argv. */
struct validate_args {
	unsigned long count, seed, reps;
	bool quiet, probes, markdown, list, help;
	const char *probe_list, *golden, *record;
};
int validate_parse(int argc, char **argv, struct validate_args *va);
struct check_args {
	const char *file;              /* NULL or "-": standard input */
	struct cpu_model model;
	bool help;
};
int check_parse(int argc, char **argv, struct check_args *ca);

/* cmd_probes.c: vmmu validate --probes (@list NULL: every probe; @golden NULL: live on KVM). */
int cmd_probes(const char *list, unsigned reps, const char *golden, const char *record,
	       bool markdown, bool quiet);

/* text.c: input echoed back safely. cli_clean turns control bytes into '?' (for the terminal);
 * cli_json_str prints a JSON string, invalid UTF-8 as U+FFFD. */
#include <stdio.h>
void cli_clean(char *s);
void cli_json_str(FILE *f, const char *s);
/* A CSV field (RFC 4180): quoted when it holds a comma, a quote or a line break, quotes doubled. */
void cli_csv_field(FILE *f, const char *text);
/* @s as a gnuplot single-quoted string: a quote inside is doubled, so no name can end the string
 * and inject a command. */
void cli_gp_quoted(FILE *f, const char *s);
/* "vmmu CMD: MESSAGE" on stderr, control bytes made harmless; returns EXIT_USAGE. */
#include <stdarg.h>
int cli_vusage(const char *cmd, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* help.c: the commands' documentation, one table for `vmmu help`, `--help` and vmmu(1). */
#include <stdio.h>
int help_main(int argc, char **argv);
int help_command(const char *name);   /* -1 if no such command */
void help_overview(FILE *f);

/* --cpu / --features / --maxphyaddr handling shared by check and validate. Returns 0 or
 * prints a one-line error and returns EXIT_USAGE. */
int cli_cpu_model(const char *cpu, const char *features, const char *maxphyaddr,
		  struct cpu_model *out);

#endif
