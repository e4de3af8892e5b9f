/* SPDX-License-Identifier: MIT */
/*
 * Sweeps (docs/sweeps.md): a JSON spec expanded into runs, and the results files that
 * `vmmu sweep` writes and `vmmu report` reads.
 *
 * Invariants: the expansion of a spec is a pure function of its text (the same runs in the same
 * order on every machine), which is what lets a Slurm array task K of N pick its share by index
 * alone; a run's id is the XXH64 of its canonical configuration (every workload parameter
 * resolved, defaults included, and every axis), so it survives reordering the spec, and two
 * specs that name the same configuration give it the same id.
 * No state outside the structs; no locking (the CLI is single-threaded).
 */
#ifndef VMMU_CLI_SWEEP_H
#define VMMU_CLI_SWEEP_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

struct sweep_run {
	char id[17];            /* 16 hex digits */
	char **argv;            /* "run", WORKLOAD, options..., "--json", NULL */
	int argc;
	char *axes;             /* JSON object: the run's value on every axis, as the spec wrote it */
	char *label;            /* one line for people: "gups size=4M shadow-svm [all] vcpus=1 seed=1" */
};

struct sweep {
	struct sweep_run *runs;
	size_t n, cap;
	char *spec_dir;         /* relative trace paths are resolved against it */
};

/* Read and expand @path. Relative trace paths resolve against @base (NULL: the spec's own
 * directory). 0, or EXIT_USAGE with a one-line reason in @err (the spec's problem named). */
int sweep_load(const char *path, const char *base, struct sweep *sw, char *err, size_t errlen);
void sweep_free(struct sweep *sw);

/* ---- results files: one JSON object a line ---- */

/* Each parsable line of @path, in order, to @fn with its text (no line break); @fn owns the
 * object's reference and must put or keep it.
 * A line that does not parse (a crash mid-write) is counted in *bad and skipped. 0 or -errno. */
int results_read(const char *path, void (*fn)(struct json_object *o, const char *line, void *opaque), void *opaque,
		 unsigned *bad);

/* A JSON path "a.b.c" in @o: the object there or NULL. */
struct json_object *json_path(struct json_object *o, const char *path);

#endif
