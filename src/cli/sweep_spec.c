/* SPDX-License-Identifier: MIT */
/*
 * A sweep spec (docs/sweeps.md) read with json-c and expanded into runs: the product of every
 * workload's parameter grid with the mmu, opt_sets, vcpus, thp, ksm, guest_thp and seeds axes,
 * less the exclusions. Each run's command line is checked by `vmmu run`'s own parser before
 * anything runs, so a bad spec fails at once, naming the run. No global state.
 */
#define _GNU_SOURCE   /* vasprintf, qsort_r */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cli/cli.h"
#include "cli/run.h"
#include "cli/sweep.h"

#define MAX_VALS 4096

/* One axis: its values as strings, as the spec wrote them (numbers printed, booleans on/off). */
struct axis {
	const char *name;
	const char **vals;      /* n of them, in the pool */
	unsigned n;
};

struct ctx {
	char *err;
	size_t errlen;
	const char *spec;
	struct json_object *root;
	struct sweep *sw;
	/* strings made while expanding, freed with the spec */
	char **pool;
	size_t npool, cappool;
};

static int fail(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(c->err, c->errlen, "%s: ", c->spec);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < c->errlen)
		vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	cli_clean(c->err);
	return EXIT_USAGE;
}

static char *keep(struct ctx *c, char *s)
{
	if (!s)
		abort();   /* out of memory: nothing sensible to do in a CLI */
	if (c->npool == c->cappool) {
		c->cappool = c->cappool ? 2 * c->cappool : 256;
		c->pool = realloc(c->pool, c->cappool * sizeof(*c->pool));
		if (!c->pool)
			abort();
	}
	return c->pool[c->npool++] = s;
}

static char *fmt_str(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *fmt_str(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return keep(c, s);
}

/* A scalar as the string a command line would carry; NULL for arrays, objects, null. */
static const char *scalar(struct ctx *c, struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return json_object_get_string(v);
	case json_type_int:
		return fmt_str(c, "%" PRId64, json_object_get_int64(v));
	case json_type_boolean:
		return json_object_get_boolean(v) ? "on" : "off";
	case json_type_double:
		return fmt_str(c, "%.17g", json_object_get_double(v));
	default:
		return NULL;
	}
}

/* @v, a scalar or an array of scalars, into @ax; @def when @v is NULL. */
static const char **vals_alloc(struct ctx *c, size_t n)
{
	return (const char **)(void *)keep(c, calloc(n + 1, sizeof(char *)));
}

static int axis_fill(struct ctx *c, const char *where, struct json_object *v, const char *def,
		     struct axis *ax)
{
	ax->n = 0;
	ax->vals = vals_alloc(c, v && json_object_get_type(v) == json_type_array ?
				 json_object_array_length(v) : 1);
	if (!v) {
		ax->vals[ax->n++] = def;
		return 0;
	}
	if (json_object_get_type(v) != json_type_array) {
		if (!(ax->vals[0] = scalar(c, v)))
			return fail(c, "%s: expected a value or a list of values", where);
		ax->n = 1;
		return 0;
	}
	size_t n = json_object_array_length(v);
	if (!n)
		return fail(c, "%s: an empty list (it would expand to no run)", where);
	if (n > MAX_VALS)
		return fail(c, "%s: more than %d values", where, MAX_VALS);
	for (size_t i = 0; i < n; i++) {
		const char *s = scalar(c, json_object_array_get_idx(v, i));
		if (!s)
			return fail(c, "%s[%zu]: expected a string, a number or a boolean", where, i);
		ax->vals[ax->n++] = s;
	}
	return 0;
}

/* seeds: a list, a number, or {"from": A, "count": N}. */
static int seeds_fill(struct ctx *c, struct json_object *v, struct axis *ax)
{
	struct json_object *from, *count;

	if (!v || json_object_get_type(v) != json_type_object)
		return axis_fill(c, "seeds", v, "1", ax);
	if (!json_object_object_get_ex(v, "from", &from) ||
	    !json_object_object_get_ex(v, "count", &count) ||
	    json_object_get_type(from) != json_type_int || json_object_get_type(count) != json_type_int ||
	    json_object_object_length(v) != 2)
		return fail(c, "seeds: expected a list, a number or {\"from\": N, \"count\": N}");
	int64_t f = json_object_get_int64(from), n = json_object_get_int64(count);
	if (f < 0 || n < 1 || n > MAX_VALS)
		return fail(c, "seeds: from must be at least 0 and count 1 to %d", MAX_VALS);
	ax->n = 0;
	ax->vals = vals_alloc(c, (size_t)n);
	for (int64_t i = 0; i < n; i++)
		ax->vals[ax->n++] = fmt_str(c, "%" PRId64, f + i);
	return 0;
}

/* ---- one workload entry: its parameter grid ---- */

struct wl {
	const char *name;
	unsigned nparams;
	struct axis params[VMMU_WORKLOAD_MAX_PARAMS];
};

static int wl_fill(struct ctx *c, unsigned idx, struct json_object *e, struct wl *w)
{
	struct json_object *name = NULL, *params = NULL;
	char where[128];

	memset(w, 0, sizeof(*w));
	if (json_object_get_type(e) == json_type_string) {
		w->name = json_object_get_string(e);
	} else if (json_object_get_type(e) == json_type_object) {
		json_object_object_foreach(e, k, v) {
			if (!strcmp(k, "name"))
				name = v;
			else if (!strcmp(k, "params"))
				params = v;
			else
				return fail(c, "workloads[%u]: unknown key '%s' (expected name, params)", idx, k);
		}
		if (!name || json_object_get_type(name) != json_type_string)
			return fail(c, "workloads[%u]: \"name\" (a string) is required", idx);
		w->name = json_object_get_string(name);
	} else {
		return fail(c, "workloads[%u]: expected a name or {\"name\": ..., \"params\": {...}}", idx);
	}
	const struct vmmu_workload_info *info = vmmu_workload_find(w->name);
	if (!info)
		return fail(c, "workloads[%u]: unknown workload '%s' ('vmmu workloads' lists them)", idx, w->name);
	if (!params)
		return 0;
	if (json_object_get_type(params) != json_type_object)
		return fail(c, "workloads[%u].params: expected an object", idx);
	json_object_object_foreach(params, k, v) {
		bool known = false;
		for (unsigned i = 0; info->params[i].name; i++)
			known |= !strcmp(info->params[i].name, k);
		if (!known)
			return fail(c, "workloads[%u]: %s has no parameter '%s' ('vmmu workloads %s')",
				    idx, w->name, k, w->name);
		snprintf(where, sizeof(where), "workloads[%u].params.%s", idx, k);
		w->params[w->nparams].name = k;
		int rc = axis_fill(c, where, v, NULL, &w->params[w->nparams]);
		if (rc)
			return rc;
		w->nparams++;
	}
	return 0;
}

/* ---- exclusions ---- */

static const char *const axis_names[] = { "workload", "mmu", "opts", "vcpus", "thp", "ksm",
					  "guest_thp", "seed" };
#define NAXES (sizeof(axis_names) / sizeof(axis_names[0]))

/* Does exclusion @ex match a run whose axis values are @vals (NAXES, in axis_names' order) and
 * whose workload parameters are @w's names with values @pv? */
static bool excluded(struct ctx *c, struct json_object *ex, const char *const *vals,
		     const struct wl *w, const char *const *pv)
{
	json_object_object_foreach(ex, k, v) {
		const char *have = NULL;
		for (unsigned i = 0; i < NAXES; i++)
			if (!strcmp(axis_names[i], k))
				have = vals[i];
		for (unsigned i = 0; !have && i < w->nparams; i++)
			if (!strcmp(w->params[i].name, k))
				have = pv[i];
		if (!have)
			return false;   /* a parameter this workload is not swept over */
		bool any = false;
		if (json_object_get_type(v) == json_type_array) {
			for (size_t i = 0; i < json_object_array_length(v); i++) {
				const char *s = scalar(c, json_object_array_get_idx(v, i));
				any |= s && !strcmp(s, have);
			}
		} else {
			const char *s = scalar(c, v);
			any = s && !strcmp(s, have);
		}
		if (!any)
			return false;
	}
	return true;
}

static int check_exclusions(struct ctx *c, struct json_object *exs, const struct wl *wls, unsigned nw)
{
	if (!exs)
		return 0;
	if (json_object_get_type(exs) != json_type_array)
		return fail(c, "exclude: expected a list of objects");
	for (size_t i = 0; i < json_object_array_length(exs); i++) {
		struct json_object *ex = json_object_array_get_idx(exs, i);
		if (json_object_get_type(ex) != json_type_object || !json_object_object_length(ex))
			return fail(c, "exclude[%zu]: expected a non-empty object of axis: value(s)", i);
		json_object_object_foreach(ex, k, v) {
			bool known = false;
			for (unsigned a = 0; a < NAXES; a++)
				known |= !strcmp(axis_names[a], k);
			for (unsigned w = 0; w < nw; w++)
				for (unsigned p = 0; p < wls[w].nparams; p++)
					known |= !strcmp(wls[w].params[p].name, k);
			if (!known)
				return fail(c, "exclude[%zu]: unknown axis '%s' (expected workload, mmu, opts, "
					    "vcpus, thp, ksm, guest_thp, seed or a swept parameter)", i, k);
			if (json_object_get_type(v) == json_type_object || json_object_get_type(v) == json_type_null)
				return fail(c, "exclude[%zu].%s: expected a value or a list of values", i, k);
		}
	}
	return 0;
}

/* ---- expansion ---- */

static void push_run(struct sweep *sw, const struct sweep_run *r)
{
	if (sw->n == sw->cap) {
		sw->cap = sw->cap ? 2 * sw->cap : 64;
		sw->runs = realloc(sw->runs, sw->cap * sizeof(*sw->runs));
		if (!sw->runs)
			abort();
	}
	sw->runs[sw->n++] = *r;
}

/* The JSON of a string, into a memory stream. */
static void js(FILE *f, const char *s)
{
	cli_json_str(f, s);
}

static bool is_number(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/*
 * One run: its command line, checked by run_parse; its canonical configuration and id; its axes
 * object. @vals are the axis values (axis_names' order), @pv the swept parameters' values.
 */
static int make_run(struct ctx *c, const struct wl *w, const char *const *vals, const char *const *pv,
		    const char *mode, const char *host, const char *const *extra, unsigned nextra)
{
	struct sweep_run r = { 0 };
	char *av[64 + MAX_PARAMS];
	int ac = 0;

	av[ac++] = "run";
	av[ac++] = (char *)w->name;
	for (unsigned i = 0; i < w->nparams; i++) {
		const char *v = pv[i];
		/* A relative trace path is relative to the spec's directory (or --base). */
		if (!strcmp(w->params[i].name, "file") && v[0] != '/' && c->sw->spec_dir)
			v = fmt_str(c, "%s/%s", c->sw->spec_dir, v);
		av[ac++] = "--param";
		av[ac++] = fmt_str(c, "%s=%s", w->params[i].name, v);
	}
	av[ac++] = "--mmu";
	av[ac++] = (char *)mode;
	if (*host) {
		av[ac++] = "--host";
		av[ac++] = (char *)host;
	}
	if (strcmp(mode, "native")) {
		av[ac++] = "--opt";
		av[ac++] = (char *)vals[2];
	}
	av[ac++] = "--vcpus";
	av[ac++] = (char *)vals[3];
	/* Sweeps run interleaved: every result reproducible, the report's digest check exact. */
	av[ac++] = "--interleave";
	av[ac++] = "--thp";
	av[ac++] = (char *)vals[4];
	av[ac++] = "--ksm";
	av[ac++] = (char *)vals[5];
	av[ac++] = "--guest-thp";
	av[ac++] = (char *)vals[6];
	av[ac++] = "--seed";
	av[ac++] = (char *)vals[7];
	for (unsigned i = 0; i < nextra; i++)
		av[ac++] = (char *)extra[i];
	av[ac++] = "--json";
	av[ac] = NULL;

	struct run_args ra;
	struct vmmu_workload_args wa;
	char *label = NULL, *canon = NULL, *axes = NULL;
	size_t llen, clen, alen;
	FILE *lf = open_memstream(&label, &llen);
	if (!lf)
		abort();
	fprintf(lf, "%s", w->name);
	for (unsigned i = 0; i < w->nparams; i++)
		fprintf(lf, " %s=%s", w->params[i].name, pv[i]);
	fprintf(lf, " %s", vals[1]);
	if (strcmp(mode, "native"))
		fprintf(lf, " [%s]", vals[2]);
	fprintf(lf, " vcpus=%s thp=%s ksm=%s guest_thp=%s seed=%s", vals[3], vals[4], vals[5], vals[6], vals[7]);
	fclose(lf);
	keep(c, label);
	/* run_parse prints its own one-line reason; the spec's context follows it. It is given a
	 * copy: getopt reorders the array it parses. */
	char *scratch[64 + MAX_PARAMS];
	memcpy(scratch, av, sizeof(char *) * ((size_t)ac + 1));
	int rc = run_parse(ac, scratch, &ra, &wa);
	if (rc)
		return fail(c, "the run '%s' is refused (the reason is above)", label);

	FILE *cf = open_memstream(&canon, &clen);
	if (!cf)
		abort();
	fprintf(cf, "workload=%s", w->name);
	for (unsigned i = 0; wa.w->params[i].name; i++) {
		fprintf(cf, ";%s=", wa.w->params[i].name);
		if (wa.w->params[i].type == VMMU_PARAM_PATH) {
			/* The path as the spec wrote it: an id must not depend on where the spec lives. */
			const char *as_written = "";
			for (unsigned k = 0; k < w->nparams; k++)
				if (!strcmp(w->params[k].name, wa.w->params[i].name))
					as_written = pv[k];
			fprintf(cf, "%s", as_written);
		} else {
			fprintf(cf, "%" PRIu64, wa.u[i]);
		}
	}
	fprintf(cf, ";mmu=%s;host=%s;opts=", run_mmu_name(&ra), run_host_name(&ra));
	for (unsigned i = 0; i < NR_OPTS; i++)
		fputc(ra.mmu == 0 ? '-' : ra.opts[i] ? '1' : '0', cf);
	fprintf(cf, ";vcpus=%u;thp=%s;ksm=%d;guest_thp=%d;seed=%" PRIu64 ";args=", ra.vcpus,
		vals[4], ra.ksm, ra.guest_thp, ra.seed);
	for (unsigned i = 0; i < nextra; i++)
		fprintf(cf, "%s\x1f", extra[i]);
	fclose(cf);
	snprintf(r.id, sizeof(r.id), "%016" PRIx64, (uint64_t)XXH64(canon, clen, 0));
	free(canon);

	FILE *af = open_memstream(&axes, &alen);
	if (!af)
		abort();
	fprintf(af, "{\"workload\":");
	js(af, w->name);
	fprintf(af, ",\"params\":{");
	for (unsigned i = 0; i < w->nparams; i++) {
		fprintf(af, "%s", i ? "," : "");
		js(af, w->params[i].name);
		fputc(':', af);
		js(af, pv[i]);
	}
	fprintf(af, "}");
	for (unsigned i = 1; i < NAXES; i++) {
		fprintf(af, ",\"%s\":", axis_names[i]);
		if (i == 2 && !strcmp(mode, "native"))
			js(af, "-");
		else if ((i == 3 || i == 7) && is_number(vals[i]))
			fprintf(af, "%s", vals[i]);
		else
			js(af, vals[i]);
	}
	fprintf(af, "}");
	fclose(af);

	r.argc = ac;
	r.argv = calloc((size_t)ac + 1, sizeof(char *));
	if (!r.argv)
		abort();
	for (int i = 0; i < ac; i++)
		if (!(r.argv[i] = strdup(av[i])))
			abort();
	r.axes = axes;
	r.label = strdup(label);
	if (!r.label)
		abort();
	push_run(c->sw, &r);
	return 0;
}

static int cmp_idx(const void *a, const void *b, void *runs)
{
	const struct sweep_run *r = runs;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;
	int k = strcmp(r[i].id, r[j].id);

	return k ? k : (i > j) - (i < j);
}

static void run_free(struct sweep_run *r)
{
	for (int i = 0; i < r->argc; i++)
		free(r->argv[i]);
	free(r->argv);
	free(r->axes);
	free(r->label);
}

/* The same configuration named twice (opt sets "all" and "+notrap" are one): the first stays. */
static void dedupe(struct sweep *sw)
{
	size_t *idx = malloc(sw->n * sizeof(*idx) + 1);
	bool *drop = calloc(sw->n + 1, 1);
	size_t out = 0;

	if (!idx || !drop)
		abort();
	for (size_t i = 0; i < sw->n; i++)
		idx[i] = i;
	qsort_r(idx, sw->n, sizeof(*idx), cmp_idx, sw->runs);
	for (size_t k = 1; k < sw->n; k++)
		if (!strcmp(sw->runs[idx[k]].id, sw->runs[idx[k - 1]].id))
			drop[idx[k]] = true;
	for (size_t i = 0; i < sw->n; i++) {
		if (drop[i])
			run_free(&sw->runs[i]);
		else
			sw->runs[out++] = sw->runs[i];
	}
	sw->n = out;
	free(idx);
	free(drop);
}

static const char *const top_keys[] = { "name", "comment", "workloads", "traces", "mmu", "opt_sets",
					"vcpus", "thp", "ksm", "guest_thp", "seeds", "run_args", "exclude" };

static struct json_object *get(struct json_object *o, const char *key)
{
	struct json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static int expand(struct ctx *c)
{
	static struct axis mmu, opts, vcpus, thp, ksm, gthp, seeds;
	static struct wl wls[256];   /* small: the values live in the pool */
	struct json_object *root = c->root, *v, *exs = NULL;
	const char *extra[32];
	unsigned nw = 0, nextra = 0;
	int rc;

	if (json_object_get_type(root) != json_type_object)
		return fail(c, "expected a JSON object");
	json_object_object_foreach(root, key, val) {
		bool known = false;
		for (size_t i = 0; i < sizeof(top_keys) / sizeof(top_keys[0]); i++)
			known |= !strcmp(top_keys[i], key);
		if (!known)
			return fail(c, "unknown key '%s' (expected workloads, traces, mmu, opt_sets, vcpus, "
				    "thp, ksm, guest_thp, seeds, run_args, exclude, name, comment)", key);
		(void)val;
	}
	if (json_object_object_get_ex(root, "workloads", &v)) {
		if (json_object_get_type(v) != json_type_array || !json_object_array_length(v))
			return fail(c, "workloads: expected a non-empty list");
		if (json_object_array_length(v) > 255)
			return fail(c, "workloads: at most 255 entries");
		for (size_t i = 0; i < json_object_array_length(v); i++)
			if ((rc = wl_fill(c, (unsigned)i, json_object_array_get_idx(v, i), &wls[nw++])))
				return rc;
	}
	if (json_object_object_get_ex(root, "traces", &v)) {
		struct wl *w = &wls[nw++];
		memset(w, 0, sizeof(*w));
		w->name = "trace";
		w->params[0].name = "file";
		if ((rc = axis_fill(c, "traces", v, NULL, &w->params[0])))
			return rc;
		w->nparams = 1;
	}
	if (!nw)
		return fail(c, "no runs: \"workloads\" (or \"traces\") is required");
	v = get(root, "mmu");
	if ((rc = axis_fill(c, "mmu", v, "native", &mmu)))
		return rc;
	for (unsigned i = 0; i < mmu.n; i++) {
		const char *m = mmu.vals[i];
		if (strcmp(m, "native") && strcmp(m, "shadow") && strcmp(m, "shadow-vmx") &&
		    strcmp(m, "shadow-svm") && strcmp(m, "ept") && strcmp(m, "npt"))
			return fail(c, "mmu: unknown mode '%s' (expected native, shadow, shadow-vmx, shadow-svm, ept, npt)", m);
	}
	v = get(root, "opt_sets");
	if ((rc = axis_fill(c, "opt_sets", v, "all", &opts)))
		return rc;
	v = get(root, "vcpus");
	if ((rc = axis_fill(c, "vcpus", v, "1", &vcpus)))
		return rc;
	v = get(root, "thp");
	if ((rc = axis_fill(c, "thp", v, "madvise", &thp)))
		return rc;
	v = get(root, "ksm");
	if ((rc = axis_fill(c, "ksm", v, "off", &ksm)))
		return rc;
	v = get(root, "guest_thp");
	if ((rc = axis_fill(c, "guest_thp", v, "off", &gthp)))
		return rc;
	v = get(root, "seeds");
	if ((rc = seeds_fill(c, v, &seeds)))
		return rc;
	if (json_object_object_get_ex(root, "run_args", &v)) {
		if (json_object_get_type(v) != json_type_array || json_object_array_length(v) > 32)
			return fail(c, "run_args: expected a list of at most 32 vmmu run options");
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			const char *s = scalar(c, json_object_array_get_idx(v, i));
			if (!s)
				return fail(c, "run_args[%zu]: expected a string", i);
			/* The axes are the spec's to set: a run option may not override them. */
			static const char *const owned[] = { "--mmu", "--host", "--opt", "--vcpus", "--thp",
							     "--ksm", "--guest-thp", "--seed", "--param", "--json" };
			for (size_t k = 0; k < sizeof(owned) / sizeof(owned[0]); k++)
				if (!strncmp(s, owned[k], strlen(owned[k])) &&
				    (!s[strlen(owned[k])] || s[strlen(owned[k])] == '='))
					return fail(c, "run_args: '%s' is an axis of the spec, not a run option here", s);
			extra[nextra++] = s;
		}
	}
	exs = get(root, "exclude");
	if ((rc = check_exclusions(c, exs, wls, nw)))
		return rc;

	for (unsigned wi = 0; wi < nw; wi++) {
		struct wl *w = &wls[wi];
		unsigned pos[VMMU_WORKLOAD_MAX_PARAMS] = { 0 };
		const char *pv[VMMU_WORKLOAD_MAX_PARAMS];
		for (;;) {   /* every point of the parameter grid, the last parameter fastest */
			for (unsigned p = 0; p < w->nparams; p++)
				pv[p] = w->params[p].vals[pos[p]];
			for (unsigned mi = 0; mi < mmu.n; mi++) {
				const char *m = mmu.vals[mi], *mode = m, *host = "";
				if (!strncmp(m, "shadow-", 7)) {
					mode = "shadow";
					host = m + 7;
				}
				bool native = !strcmp(mode, "native");
				for (unsigned oi = 0; oi < (native ? 1 : opts.n); oi++)
				for (unsigned vi = 0; vi < vcpus.n; vi++)
				for (unsigned ti = 0; ti < thp.n; ti++)
				for (unsigned ki = 0; ki < ksm.n; ki++)
				for (unsigned gi = 0; gi < gthp.n; gi++)
				for (unsigned si = 0; si < seeds.n; si++) {
					const char *vals[NAXES] = { w->name, m, native ? "-" : opts.vals[oi],
						vcpus.vals[vi], thp.vals[ti], ksm.vals[ki], gthp.vals[gi],
						seeds.vals[si] };
					bool skip = false;
					for (size_t e = 0; exs && !skip && e < json_object_array_length(exs); e++)
						skip = excluded(c, json_object_array_get_idx(exs, e), vals, w, pv);
					if (skip)
						continue;
					if (c->sw->n >= 10000000)
						return fail(c, "more than 10,000,000 runs");
					if ((rc = make_run(c, w, vals, pv, mode, host, extra, nextra)))
						return rc;
				}
			}
			unsigned p = w->nparams;
			while (p > 0 && ++pos[p - 1] == w->params[p - 1].n)
				pos[--p] = 0;
			if (p == 0)
				break;
		}
	}
	dedupe(c->sw);
	if (!c->sw->n)
		return fail(c, "every run is excluded");
	return 0;
}

int sweep_load(const char *path, const char *base, struct sweep *sw, char *err, size_t errlen)
{
	struct ctx c = { .err = err, .errlen = errlen, .spec = path, .sw = sw };
	int rc;

	memset(sw, 0, sizeof(*sw));
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0;
	if (!f)
		return fail(&c, "cannot read it: %s", strerror(errno));
	FILE *m = open_memstream(&text, &len);
	int ch;
	while (m && (ch = getc(f)) != EOF)
		putc(ch, m);
	fclose(f);
	if (!m || fclose(m))
		abort();
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		abort();
	c.root = json_tokener_parse_ex(tok, text, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_continue)
		jerr = json_tokener_error_parse_eof;
	if (!c.root || jerr != json_tokener_success) {
		size_t at = json_tokener_get_parse_end(tok), line = 1;
		for (size_t i = 0; i < at && i < len; i++)
			line += text[i] == '\n';
		json_object_put(c.root);
		json_tokener_free(tok);
		free(text);
		return fail(&c, "not valid JSON: %s (line %zu)", json_tokener_error_desc(jerr), line);
	}
	size_t end = json_tokener_get_parse_end(tok), line = 1;
	while (end < len && strchr(" \t\r\n", text[end]))
		end++;
	for (size_t i = 0; i < end; i++)
		line += text[i] == '\n';
	json_tokener_free(tok);
	free(text);
	if (end < len) {
		json_object_put(c.root);
		return fail(&c, "not valid JSON: text after the spec's object (line %zu)", line);
	}
	if (base) {
		sw->spec_dir = strdup(base);
	} else {
		/* Absolute, so a run's command line (and its result) is the same wherever the sweep
		 * was started from, and the same as a Slurm task's (which gets --base absolute). */
		char *dup = strdup(path), real[PATH_MAX];
		sw->spec_dir = dup ? strdup(realpath(dirname(dup), real) ? real : dup) : NULL;
		free(dup);
	}
	if (!sw->spec_dir)
		abort();
	rc = expand(&c);
	json_object_put(c.root);
	for (size_t i = 0; i < c.npool; i++)
		free(c.pool[i]);
	free(c.pool);
	if (rc)
		sweep_free(sw);
	return rc;
}

void sweep_free(struct sweep *sw)
{
	for (size_t i = 0; i < sw->n; i++)
		run_free(&sw->runs[i]);
	free(sw->runs);
	free(sw->spec_dir);
	memset(sw, 0, sizeof(*sw));
}

/* ---- results files ---- */

int results_read(const char *path, void (*fn)(struct json_object *o, const char *line, void *opaque), void *opaque,
		 unsigned *bad)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (!f)
		return -errno;
	while ((len = getline(&line, &cap, f)) > 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (!len)
			continue;
		struct json_tokener *tok = json_tokener_new();
		struct json_object *o = tok ? json_tokener_parse_ex(tok, line, (int)len) : NULL;
		/* The whole line must be one object: a line cut short by a crash is not a result. */
		if (!o || json_tokener_get_error(tok) != json_tokener_success ||
		    (size_t)json_tokener_get_parse_end(tok) != (size_t)len ||
		    json_object_get_type(o) != json_type_object) {
			json_object_put(o);
			(*bad)++;
		} else {
			fn(o, line, opaque);
		}
		if (tok)
			json_tokener_free(tok);
	}
	free(line);
	fclose(f);
	return 0;
}

struct json_object *json_path(struct json_object *o, const char *path)
{
	char key[128];

	while (o && *path) {
		size_t n = strcspn(path, ".");
		if (n >= sizeof(key) || json_object_get_type(o) != json_type_object)
			return NULL;
		memcpy(key, path, n);
		key[n] = 0;
		if (!json_object_object_get_ex(o, key, &o))
			return NULL;
		path += n + (path[n] == '.');
	}
	return o;
}
