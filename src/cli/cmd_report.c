/* SPDX-License-Identifier: MIT */
/*
 * `vmmu report RESULTS...`: the result lines of one or more sweeps merged (the last line of an id
 * wins: a retry replaces the failure before it), checked and summarised.
 *
 *  - Transparency: runs that differ only in MMU mode, host, option set, host THP or KSM must have
 *    the same guest.digest; runs are matched on the rest of their configuration (workload, every
 *    parameter resolved, vCPUs, VMs, memory, guest THP, seed, ...). A mismatch is printed loudly
 *    and the exit status is 1.
 *  - Tables: the runs grouped by any axes of the spec (--group-by), each metric the mean over
 *    the group's ok runs; markdown or CSV (RFC 4180).
 *  - Figures (--plot DIR): gnuplot scripts with their data inline, run at once, kept next to the
 *    figures so they can be edited and redrawn.
 * Exit codes (cli.h): 0; 1 a digest mismatch; 2 bad usage or an unreadable file. No global state
 * but the parsed options; no locking.
 */
#define _GNU_SOURCE   /* qsort_r, asprintf */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/sweep.h"

#define MAX_FIELDS 16

/* One run, the last line of its id. */
struct row {
	struct json_object *o;
	const char *id;
	bool ok;
	char *dkey;              /* what must give the same digest: the configuration less the modes */
	const char *digest;
	char *mode;              /* "shadow-svm [all]": the mode and the option set */
};

struct rows {
	struct row *r;
	size_t n, cap;
};

/* ---- reading ---- */

static void add_line(struct json_object *o, const char *line, void *opaque)
{
	struct rows *rs = opaque;
	struct json_object *id = json_path(o, "id");

	(void)line;
	if (!id || json_object_get_type(id) != json_type_string) {
		json_object_put(o);
		return;
	}
	if (rs->n == rs->cap) {
		rs->cap = rs->cap ? 2 * rs->cap : 256;
		rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
		if (!rs->r)
			abort();
	}
	struct row *r = &rs->r[rs->n++];
	memset(r, 0, sizeof(*r));
	r->o = o;
	r->id = json_object_get_string(id);
	struct json_object *st = json_path(o, "status");
	r->ok = st && !strcmp(json_object_get_string(st), "ok") && json_path(o, "guest.digest");
}

static int cmp_row_id(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	int k = strcmp(x->id, y->id);

	/* equal ids keep the order of their lines (the index rides in the digest field meanwhile) */
	return k ? k : (x->digest > y->digest) - (x->digest < y->digest);
}

/* Keep the last line of each id. */
static void dedupe(struct rows *rs)
{
	size_t out = 0;

	for (size_t i = 0; i < rs->n; i++)
		rs->r[i].digest = (const char *)(uintptr_t)(i + 1);
	qsort(rs->r, rs->n, sizeof(*rs->r), cmp_row_id);
	for (size_t i = 0; i < rs->n; i++) {
		if (i + 1 < rs->n && !strcmp(rs->r[i].id, rs->r[i + 1].id)) {
			json_object_put(rs->r[i].o);
			continue;
		}
		rs->r[out] = rs->r[i];
		rs->r[out++].digest = NULL;
	}
	rs->n = out;
}

static const char *str_of(struct json_object *v, char *buf, size_t len)
{
	if (!v)
		return "";
	switch (json_object_get_type(v)) {
	case json_type_string:
		return json_object_get_string(v);
	case json_type_int:
		snprintf(buf, len, "%" PRId64, json_object_get_int64(v));
		return buf;
	case json_type_boolean:
		return json_object_get_boolean(v) ? "on" : "off";
	default:
		snprintf(buf, len, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		return buf;
	}
}

/* The digest key and the mode label of an ok run. */
static void describe(struct row *r)
{
	char *key = NULL, *mode = NULL;
	size_t klen, mlen;
	FILE *f = open_memstream(&key, &klen);
	char b[64];

	if (!f)
		abort();
	fputs(json_object_to_json_string_ext(json_path(r->o, "workload"), JSON_C_TO_STRING_PLAIN), f);
	static const char *const same[] = { "vcpus", "vms", "mem_bytes", "guest_thp", "guest_1g", "seed", "cpu",
					    "guest_pcid", "guest_aging", "guest_khugepaged", "quantum" };
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		char path[64];
		snprintf(path, sizeof(path), "config.%s", same[i]);
		fprintf(f, " %s=%s", same[i], str_of(json_path(r->o, path), b, sizeof(b)));
	}
	fclose(f);
	r->dkey = key;
	r->digest = json_object_get_string(json_path(r->o, "guest.digest"));
	f = open_memstream(&mode, &mlen);
	if (!f)
		abort();
	const char *m = str_of(json_path(r->o, "axes.mmu"), b, sizeof(b));
	const char *opts = json_object_get_string(json_path(r->o, "axes.opts"));
	fprintf(f, "%s", *m ? m : json_object_get_string(json_path(r->o, "config.mmu")));
	if (opts && strcmp(opts, "-"))
		fprintf(f, " [%s]", opts);
	fclose(f);
	r->mode = mode;
}

/* ---- axes and metrics ---- */

/* A run's value on axis @name: an axis of the spec, a swept parameter, or "params" (all of them). */
static const char *axis_of(const struct row *r, const char *name, char *buf, size_t len)
{
	struct json_object *axes = json_path(r->o, "axes"), *v;

	if (!strcmp(name, "mode"))
		return r->mode ? r->mode : "";
	if (!strcmp(name, "params")) {
		size_t n = 0;
		buf[0] = 0;
		json_object_object_foreach(json_path(axes, "params"), k, pv) {
			char b[64];
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s=%s", n ? " " : "", k,
					      str_of(pv, b, sizeof(b)));
		}
		return buf;
	}
	if (json_object_object_get_ex(axes, name, &v))
		return str_of(v, buf, len);
	if ((v = json_path(axes, "params")) && json_object_object_get_ex(v, name, &v))
		return str_of(v, buf, len);
	return "";
}

static double num(struct json_object *o, const char *path, bool *ok)
{
	struct json_object *v = json_path(o, path);

	if (!v || (json_object_get_type(v) != json_type_int && json_object_get_type(v) != json_type_double)) {
		*ok = false;
		return 0;
	}
	return json_object_get_double(v);
}

/* A metric of an ok run: a derived one, or any number of the run's object by its path. */
static double metric(const struct row *r, const char *name, bool *ok)
{
	double acc;

	*ok = true;
	if (!strcmp(name, "cycles_per_access")) {
		acc = num(r->o, "guest.accesses", ok);
		return acc > 0 ? num(r->o, "cost.sim_cycles", ok) / acc : 0;
	}
	if (!strcmp(name, "exits_per_1k") || !strcmp(name, "tlb_misses_per_1k") ||
	    !strcmp(name, "pf_fixed_per_1k")) {
		acc = num(r->o, "guest.accesses", ok);
		const char *p = name[0] == 'e' ? "stats.exits" : name[0] == 't' ? "stats.tlb_misses" : "stats.pf_fixed";
		return acc > 0 ? 1000 * num(r->o, p, ok) / acc : 0;
	}
	if (!strcmp(name, "walk_refs_per_miss")) {
		double m = num(r->o, "stats.tlb_misses", ok);
		return m > 0 ? num(r->o, "stats.walk_refs", ok) / m : 0;
	}
	return num(r->o, name, ok);
}

static const char *metric_title(const char *m)
{
	static const struct { const char *k, *t; } t[] = {
		{ "cycles_per_access", "cycles/access" }, { "exits_per_1k", "exits/1k acc" },
		{ "tlb_misses_per_1k", "TLB misses/1k" }, { "walk_refs_per_miss", "walk refs/miss" },
		{ "pf_fixed_per_1k", "pf_fixed/1k" }, { "host.seconds", "host s" },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(t[i].k, m))
			return t[i].t;
	return m;
}

/* ---- grouping ---- */

struct grouping {
	const char *fields[MAX_FIELDS];
	unsigned nf;
	char **vals;      /* n * nf strings */
	size_t *order;    /* row indices, sorted by their fields */
	size_t n;
};

/* MMU modes in the order of the docs (native first, then the soft MMU, then the hard), else -1. */
static int mode_rank(const char *m)
{
	static const char *const order[] = { "native", "shadow", "shadow-vmx", "shadow-svm", "ept", "npt" };

	for (int i = 0; i < 6; i++)
		if (!strcmp(order[i], m))
			return i;
	return -1;
}

/* Numbers in numeric order, modes in mode order, the rest as strings. */
static int cmp_val(const char *a, const char *b)
{
	char *ea, *eb;
	double x = strtod(a, &ea), y = strtod(b, &eb);
	int ra = mode_rank(a), rb = mode_rank(b);

	if (*a && *b && !*ea && !*eb)
		return (x > y) - (x < y);
	if (ra >= 0 && rb >= 0)
		return (ra > rb) - (ra < rb);
	return strcmp(a, b);
}

/* Option sets: the baseline first, "all" last, the rest in name order. */
static const char *set_base;
static int cmp_set(const void *a, const void *b)
{
	const char *x = *(const char *const *)a, *y = *(const char *const *)b;
	int rx = !strcmp(x, set_base) ? 0 : !strcmp(x, "all") ? 2 : 1;
	int ry = !strcmp(y, set_base) ? 0 : !strcmp(y, "all") ? 2 : 1;

	return rx != ry ? rx - ry : strcmp(x, y);
}

static int cmp_mode(const void *a, const void *b)
{
	return cmp_val(*(const char *const *)a, *(const char *const *)b);
}

static int cmp_group(const void *a, const void *b, void *arg)
{
	const struct grouping *g = arg;
	size_t i = *(const size_t *)a, j = *(const size_t *)b;

	for (unsigned f = 0; f < g->nf; f++) {
		int k = cmp_val(g->vals[i * g->nf + f], g->vals[j * g->nf + f]);
		if (k)
			return k;
	}
	return (i > j) - (i < j);
}

static void group(const struct rows *rs, struct grouping *g, bool ok_only)
{
	char buf[1024];

	g->vals = calloc(rs->n * g->nf + 1, sizeof(char *));
	g->order = malloc((rs->n + 1) * sizeof(size_t));
	if (!g->vals || !g->order)
		abort();
	g->n = 0;
	for (size_t i = 0; i < rs->n; i++) {
		for (unsigned f = 0; f < g->nf; f++)
			if (!(g->vals[i * g->nf + f] = strdup(axis_of(&rs->r[i], g->fields[f], buf, sizeof(buf)))))
				abort();
		if (!ok_only || rs->r[i].ok)
			g->order[g->n++] = i;
	}
	qsort_r(g->order, g->n, sizeof(size_t), cmp_group, g);
}

static bool same_group(const struct grouping *g, size_t i, size_t j)
{
	for (unsigned f = 0; f < g->nf; f++)
		if (strcmp(g->vals[i * g->nf + f], g->vals[j * g->nf + f]))
			return false;
	return true;
}

static void grouping_free(struct grouping *g, size_t nrows)
{
	for (size_t i = 0; i < nrows * g->nf; i++)
		free(g->vals[i]);
	free(g->vals);
	free(g->order);
}

/* ---- output ---- */

static void md_field(FILE *f, const char *text)
{
	for (; *text; text++) {
		if (*text == '|')
			fputc('\\', f);
		fputc(*text, f);
	}
}

static void fmt_num(double v, char *buf, size_t len)
{
	if (v != 0 && (fabs(v) >= 1e7 || fabs(v) < 1e-3))
		snprintf(buf, len, "%.4g", v);
	else if (fabs(v - round(v)) < 1e-9 && fabs(v) >= 100)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.3f", v);
}

struct ropts {
	const char *fields[MAX_FIELDS];
	unsigned nf;
	const char *metrics[MAX_FIELDS];
	unsigned nm;
	bool csv;
	const char *plot, *heat_x, *heat_y, *heat_metric, *baseline, *fmt;
};

static void print_table(FILE *f, const struct rows *rs, const struct ropts *o)
{
	struct grouping g = { .nf = o->nf };
	char cell[64];

	memcpy(g.fields, o->fields, sizeof(o->fields));
	group(rs, &g, false);
	/* header */
	for (unsigned k = 0; k < o->nf; k++) {
		if (o->csv)
			fprintf(f, "%s", k ? "," : "");
		else
			fprintf(f, "| ");
		(o->csv ? cli_csv_field : md_field)(f, o->fields[k]);
		if (!o->csv)
			fputc(' ', f);
	}
	fprintf(f, o->csv ? ",runs,failed" : "| runs | failed ");
	for (unsigned m = 0; m < o->nm; m++) {
		if (o->csv) {
			fputc(',', f);
			cli_csv_field(f, o->metrics[m]);
		} else {
			fprintf(f, "| ");
			md_field(f, metric_title(o->metrics[m]));
			fputc(' ', f);
		}
	}
	fprintf(f, o->csv ? "\n" : "|\n");
	if (!o->csv) {
		for (unsigned k = 0; k < o->nf; k++)
			fprintf(f, "| --- ");
		fprintf(f, "| ---: | ---: ");
		for (unsigned m = 0; m < o->nm; m++)
			fprintf(f, "| ---: ");
		fprintf(f, "|\n");
	}
	for (size_t a = 0; a < g.n;) {
		size_t b = a, ok = 0, failed = 0;
		double sum[MAX_FIELDS] = { 0 };
		size_t cnt[MAX_FIELDS] = { 0 };
		while (b < g.n && same_group(&g, g.order[a], g.order[b])) {
			const struct row *r = &rs->r[g.order[b]];
			if (r->ok) {
				ok++;
				for (unsigned m = 0; m < o->nm; m++) {
					bool good;
					double v = metric(r, o->metrics[m], &good);
					if (good) {
						sum[m] += v;
						cnt[m]++;
					}
				}
			} else {
				failed++;
			}
			b++;
		}
		for (unsigned k = 0; k < o->nf; k++) {
			const char *v = g.vals[g.order[a] * g.nf + k];
			if (o->csv) {
				fprintf(f, "%s", k ? "," : "");
				cli_csv_field(f, v);
			} else {
				fprintf(f, "| ");
				md_field(f, *v ? v : "-");
				fputc(' ', f);
			}
		}
		fprintf(f, o->csv ? ",%zu,%zu" : "| %zu | %zu ", ok, failed);
		for (unsigned m = 0; m < o->nm; m++) {
			if (cnt[m])
				fmt_num(sum[m] / (double)cnt[m], cell, sizeof(cell));
			else
				snprintf(cell, sizeof(cell), o->csv ? "" : "-");
			fprintf(f, o->csv ? ",%s" : "| %s ", cell);
		}
		fprintf(f, o->csv ? "\n" : "|\n");
		a = b;
	}
	grouping_free(&g, rs->n);
}

/* ---- the digest check ---- */

static int cmp_dkey(const void *a, const void *b, void *arg)
{
	const struct rows *rs = arg;
	const struct row *x = &rs->r[*(const size_t *)a], *y = &rs->r[*(const size_t *)b];
	int k = strcmp(x->dkey, y->dkey);

	return k ? k : strcmp(x->digest, y->digest);
}

/* Groups of runs that must agree; every disagreement printed to @f (and stderr). The number of
 * groups that disagree; *groups gets how many groups of two or more runs were checked. */
static size_t check_digests(FILE *f, const struct rows *rs, size_t *groups, bool md)
{
	size_t *idx = malloc((rs->n + 1) * sizeof(size_t)), n = 0, bad = 0;
	char b[1024];

	if (!idx)
		abort();
	for (size_t i = 0; i < rs->n; i++)
		if (rs->r[i].ok)
			idx[n++] = i;
	qsort_r(idx, n, sizeof(size_t), cmp_dkey, (void *)rs);
	*groups = 0;
	for (size_t a = 0; a < n;) {
		size_t e = a;
		while (e < n && !strcmp(rs->r[idx[e]].dkey, rs->r[idx[a]].dkey))
			e++;
		*groups += e - a > 1;
		if (strcmp(rs->r[idx[a]].digest, rs->r[idx[e - 1]].digest)) {
			const struct row *r0 = &rs->r[idx[a]];
			char *what = NULL;
			size_t wl;
			FILE *w = open_memstream(&what, &wl);
			if (!w)
				abort();
			fprintf(w, "DIGEST MISMATCH (a transparency bug): %s", axis_of(r0, "workload", b, sizeof(b)));
			fprintf(w, " %s", axis_of(r0, "params", b, sizeof(b)));
			fprintf(w, " seed=%s", str_of(json_path(r0->o, "config.seed"), b, sizeof(b)));
			fprintf(w, " vcpus=%s:", str_of(json_path(r0->o, "config.vcpus"), b, sizeof(b)));
			for (size_t k = a; k < e;) {
				size_t m = k;
				fprintf(w, " %s in", rs->r[idx[k]].digest);
				while (m < e && !strcmp(rs->r[idx[m]].digest, rs->r[idx[k]].digest)) {
					fprintf(w, "%s %s", m > k ? "," : "", rs->r[idx[m]].mode);
					m++;
				}
				fprintf(w, "%s", m < e ? ";" : "");
				k = m;
			}
			fclose(w);
			fprintf(stderr, "vmmu report: %s\n", what);
			if (f)
				fprintf(f, md ? "\n**%s**\n" : "%s\n", what);
			free(what);
			bad++;
		}
		a = e;
	}
	free(idx);
	return bad;
}

/* ---- figures ---- */

static void gp_str(FILE *g, const char *s)
{
	fputc('"', g);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', g);
		fputc(*s, g);
	}
	fputc('"', g);
}

/* The head of a gnuplot data block @block: the first column's title, then @cols quoted. */
static void gp_data_head(FILE *g, const char *block, const char *first, const char *const *cols,
			 size_t n)
{
	fprintf(g, "%s << EOD\n", block);
	gp_str(g, first);
	for (size_t i = 0; i < n; i++) {
		fputc(' ', g);
		gp_str(g, cols[i]);
	}
	fputc('\n', g);
}

/* A figure's script at DIR/NAME.gp, its terminal and output set; NULL after a message. */
static FILE *fig_open(const struct ropts *o, const char *name, unsigned w, unsigned h, char *gp, size_t len)
{
	char out[4200];

	snprintf(gp, len, "%s/%s.gp", o->plot, name);
	FILE *g = fopen(gp, "w");
	if (!g) {
		fprintf(stderr, "vmmu report: %s: %s\n", gp, strerror(errno));
		return NULL;
	}
	snprintf(out, sizeof(out), "%s/%s.%s", o->plot, name, o->fmt);
	fprintf(g, "# %s: written by vmmu report; 'gnuplot %s.gp' redraws it\n", name, name);
	if (!strcmp(o->fmt, "png"))
		fprintf(g, "set terminal pngcairo size %u,%u noenhanced font 'sans,10'\n", w, h);
	else
		fprintf(g, "set terminal svg size %u,%u dynamic noenhanced font 'sans,11'\n", w, h);
	fprintf(g, "set output ");
	cli_gp_quoted(g, out);
	fprintf(g, "\n");
	return g;
}

static int fig_close(FILE *g, const char *gp)
{
	char cmd[4300];

	if (fclose(g)) {
		fprintf(stderr, "vmmu report: %s: %s\n", gp, strerror(errno));
		return 1;
	}
	/* The script's name is ours (DIR/NAME.gp) but DIR is the user's: pass it quoted. */
	snprintf(cmd, sizeof(cmd), "gnuplot %s", gp[0] == '-' ? "./" : "");
	size_t n = strlen(cmd) - (gp[0] == '-' ? 2 : 0);
	cmd[n++] = '\'';
	if (gp[0] == '-') {
		memcpy(cmd + n, "./", 2);
		n += 2;
	}
	for (const char *s = gp; *s && n + 6 < sizeof(cmd); s++) {
		if (*s == '\'') {
			memcpy(cmd + n, "'\\''", 4);
			n += 4;
		} else {
			cmd[n++] = *s;
		}
	}
	cmd[n++] = '\'';
	snprintf(cmd + n, sizeof(cmd) - n, " 2>&1");
	FILE *p = popen(cmd, "r");
	char line[512];
	int shown = 0;
	if (!p) {
		fprintf(stderr, "vmmu report: cannot run gnuplot: %s\n", strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), p))
		if (shown++ < 5)
			fprintf(stderr, "vmmu report: gnuplot: %s", line);
	int st = pclose(p);
	if (st) {
		fprintf(stderr, "vmmu report: gnuplot failed on %s (status %d)\n", gp, st);
		return 1;
	}
	return 0;
}

/* The mean of @metric over ok runs grouped by @fx then @fy (either may be NULL), restricted to
 * the runs whose option set is @opts ("" for any). Cells as "x\x1fy\x1fmean" lines in order. */
struct cell {
	char *x, *y;
	double v;
};

static size_t cells(const struct rows *rs, const char *fx, const char *fy, const char *metric_name,
		    const char *opts, bool geo, struct cell **out)
{
	struct grouping g = { .nf = 0 };
	size_t n = 0;

	g.fields[g.nf++] = fx;
	if (fy)
		g.fields[g.nf++] = fy;
	group(rs, &g, true);
	*out = calloc(g.n + 1, sizeof(**out));
	if (!*out)
		abort();
	for (size_t a = 0; a < g.n;) {
		size_t b = a, cnt = 0;
		double sum = 0;
		while (b < g.n && same_group(&g, g.order[a], g.order[b])) {
			const struct row *r = &rs->r[g.order[b++]];
			const char *ro = json_object_get_string(json_path(r->o, "axes.opts"));
			bool ok;
			double v = metric(r, metric_name, &ok);
			if (!ok || (*opts && ro && strcmp(ro, "-") && strcmp(ro, opts)))
				continue;
			if (geo && v <= 0)
				continue;
			sum += geo ? log(v) : v;
			cnt++;
		}
		if (cnt) {
			struct cell *c = &(*out)[n++];
			c->x = strdup(g.vals[g.order[a] * g.nf]);
			c->y = strdup(fy ? g.vals[g.order[a] * g.nf + 1] : "");
			c->v = geo ? exp(sum / (double)cnt) : sum / (double)cnt;
		}
		a = b;
	}
	grouping_free(&g, rs->n);
	return n;
}

static void cells_free(struct cell *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(c[i].x);
		free(c[i].y);
	}
	free(c);
}

/* Distinct values of one coordinate, in first-seen order (the cells are sorted already). */
static size_t distinct(struct cell *c, size_t n, bool y, const char **out, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const char *v = y ? c[i].y : c[i].x;
		bool seen = false;
		for (size_t j = 0; j < k; j++)
			seen |= !strcmp(out[j], v);
		if (!seen && k < max)
			out[k++] = v;
	}
	return k;
}

/* Clustered bars: x = @fx's values, one bar per mode ("mmu" axis, option set @opts). */
static int fig_bars(const struct rows *rs, const struct ropts *o, const char *name, const char *metric_name,
		    const char *title, const char *opts)
{
	struct cell *c;
	size_t n = cells(rs, "workload", "mmu", metric_name, opts, false, &c);
	const char *xs[64], *ys[16];
	char gp[4200];

	if (!n) {
		cells_free(c, n);
		return 0;
	}
	size_t nx = distinct(c, n, false, xs, 64), ny = distinct(c, n, true, ys, 16);
	FILE *g = fig_open(o, name, 320 + 45 * (unsigned)(nx * ny > 40 ? 40 : nx * ny), 480, gp, sizeof(gp));
	if (!g) {
		cells_free(c, n);
		return 1;
	}
	gp_data_head(g, "$d", "workload", ys, ny);
	bool wide = false;
	double lo = 0, hi = 0;
	for (size_t i = 0; i < nx; i++) {
		gp_str(g, xs[i]);
		for (size_t j = 0; j < ny; j++) {
			double v = NAN;
			for (size_t k = 0; k < n; k++)
				if (!strcmp(c[k].x, xs[i]) && !strcmp(c[k].y, ys[j]))
					v = c[k].v;
			if (isnan(v)) {
				fprintf(g, " -");
				continue;
			}
			fprintf(g, " %.6g", v);
			if (v > 0) {
				lo = lo == 0 || v < lo ? v : lo;
				hi = v > hi ? v : hi;
			}
		}
		fputc('\n', g);
	}
	wide = lo > 0 && hi / lo >= 100;
	fprintf(g, "EOD\nset datafile missing '-'\nset title ");
	cli_gp_quoted(g, title);
	fprintf(g, "\nset style data histograms\nset style histogram clustered gap 1\n"
		   "set style fill solid 0.85 border -1\nset key outside right top\nset grid ytics\n"
		   "set xtics nomirror rotate by -30 font ',9'\n%s\n",
		wide ? "set logscale y\nset yrange [*:*]" : "set yrange [0:*]");
	fprintf(g, "plot for [i=2:%zu] $d using i:xtic(1) title columnheader(i)\n", ny + 1);
	cells_free(c, n);
	return fig_close(g, gp);
}

/* Speedup of each option set over the baseline set, per mode: the geometric mean, over runs
 * matched on everything but the option set, of cycles(baseline) / cycles(set). */
static int fig_speedup(const struct rows *rs, const struct ropts *o, FILE *tab)
{
	/* Pair each ok run with the baseline run of its configuration: key = dkey + mode name. */
	const char *sets[32], *modes[16];
	size_t nsets = 0, nmodes = 0;
	char b[256], gp[4200];

	for (size_t i = 0; i < rs->n; i++) {
		const struct row *r = &rs->r[i];
		const char *s = json_object_get_string(json_path(r->o, "axes.opts"));
		const char *m = str_of(json_path(r->o, "axes.mmu"), b, sizeof(b));
		if (!r->ok || !s || !strcmp(s, "-"))
			continue;
		bool seen = false;
		for (size_t k = 0; k < nsets; k++)
			seen |= !strcmp(sets[k], s);
		if (!seen && nsets < 32)
			sets[nsets++] = s;
		seen = false;
		for (size_t k = 0; k < nmodes; k++)
			seen |= !strcmp(modes[k], m);
		if (!seen && nmodes < 16)
			modes[nmodes++] = json_object_get_string(json_path(r->o, "axes.mmu"));
	}
	if (nsets < 2)
		return 0;
	const char *base = o->baseline;
	if (!base) {
		base = sets[0];
		for (size_t k = 0; k < nsets; k++)
			if (!strcmp(sets[k], "none"))
				base = sets[k];
	}
	set_base = base;
	qsort(sets, nsets, sizeof(*sets), cmp_set);
	qsort(modes, nmodes, sizeof(*modes), cmp_mode);
	double sp[32][16];
	size_t cnt[32][16];
	memset(cnt, 0, sizeof(cnt));
	memset(sp, 0, sizeof(sp));
	/* Runs that differ only in their option set share a pairing key; sorted, each key's runs sit
	 * together and each is paired with the baseline run among them. */
	struct grouping pg = { .nf = 0 };
	pg.fields[pg.nf++] = "_pair";
	pg.vals = calloc(rs->n + 1, sizeof(char *));
	pg.order = malloc((rs->n + 1) * sizeof(size_t));
	if (!pg.vals || !pg.order)
		abort();
	for (size_t i = 0; i < rs->n; i++) {
		const struct row *r = &rs->r[i];
		const char *s = json_object_get_string(json_path(r->o, "axes.opts"));
		char *k = NULL;
		if (r->ok && s && strcmp(s, "-")) {
			char t[128], u[128];
			if (asprintf(&k, "%s|%s|%s|%s", r->dkey, axis_of(r, "mmu", b, sizeof(b)),
				     axis_of(r, "thp", t, sizeof(t)), axis_of(r, "ksm", u, sizeof(u))) < 0)
				abort();
			pg.order[pg.n++] = i;
		}
		pg.vals[i] = k ? k : strdup("");
	}
	qsort_r(pg.order, pg.n, sizeof(size_t), cmp_group, &pg);
	for (size_t a = 0; a < pg.n;) {
		size_t e = a, bi = SIZE_MAX;
		while (e < pg.n && same_group(&pg, pg.order[a], pg.order[e])) {
			const char *s = json_object_get_string(json_path(rs->r[pg.order[e]].o, "axes.opts"));
			if (!strcmp(s, base))
				bi = pg.order[e];
			e++;
		}
		bool ok;
		double cb = bi == SIZE_MAX ? 0 : metric(&rs->r[bi], "cycles_per_access", &ok);
		for (size_t k = a; cb > 0 && k < e; k++) {
			const struct row *q = &rs->r[pg.order[k]];
			const char *qs = json_object_get_string(json_path(q->o, "axes.opts"));
			const char *qm = json_object_get_string(json_path(q->o, "axes.mmu"));
			double cq = metric(q, "cycles_per_access", &ok);
			size_t si = 0, mi = 0;
			while (si < nsets && strcmp(sets[si], qs))
				si++;
			while (mi < nmodes && qm && strcmp(modes[mi], qm))
				mi++;
			if (si == nsets || mi == nmodes || cq <= 0)
				continue;
			sp[si][mi] += log(cb / cq);
			cnt[si][mi]++;
		}
		a = e;
	}
	grouping_free(&pg, rs->n);
	if (tab) {
		fprintf(tab, "\nSpeedup of each option set over [%s] (geometric mean of cycles/access ratios over matched runs):\n\n| opts |", base);
		for (size_t mi = 0; mi < nmodes; mi++)
			fprintf(tab, " %s |", modes[mi]);
		fprintf(tab, "\n| --- |");
		for (size_t mi = 0; mi < nmodes; mi++)
			fprintf(tab, " ---: |");
		fprintf(tab, "\n");
		for (size_t si = 0; si < nsets; si++) {
			fprintf(tab, "| ");
			md_field(tab, sets[si]);
			fprintf(tab, " |");
			for (size_t mi = 0; mi < nmodes; mi++)
				if (cnt[si][mi])
					fprintf(tab, " %.3f |", exp(sp[si][mi] / (double)cnt[si][mi]));
				else
					fprintf(tab, " - |");
			fprintf(tab, "\n");
		}
	}
	if (!o->plot)
		return 0;
	FILE *g = fig_open(o, "opt_speedup", 300 + 70 * (unsigned)(nsets * nmodes > 60 ? 60 : nsets * nmodes), 480, gp, sizeof(gp));
	if (!g)
		return 1;
	gp_data_head(g, "$d", "opts", modes, nmodes);
	for (size_t si = 0; si < nsets; si++) {
		gp_str(g, sets[si]);
		for (size_t mi = 0; mi < nmodes; mi++)
			if (cnt[si][mi])
				fprintf(g, " %.6g", exp(sp[si][mi] / (double)cnt[si][mi]));
			else
				fprintf(g, " -");
		fputc('\n', g);
	}
	fprintf(g, "EOD\nset datafile missing '-'\nset title ");
	snprintf(b, sizeof(b), "speedup over [%s]: cycles per access, geometric mean over matched runs", base);
	cli_gp_quoted(g, b);
	fprintf(g, "\nset style data histograms\nset style histogram clustered gap 1\n"
		   "set style fill solid 0.85 border -1\nset key outside right top\nset grid ytics\n"
		   "set xtics nomirror rotate by -30 font ',9'\nset yrange [0:*]\n"
		   "plot for [i=2:%zu] $d using i:xtic(1) title columnheader(i), 1 with lines lc rgb 'black' dt 2 notitle\n",
		nmodes + 1);
	return fig_close(g, gp);
}

/* Cycles per access and exits per 1,000 accesses against vCPUs, one line per mode. */
static int fig_vcpus(const struct rows *rs, const struct ropts *o, const char *opts)
{
	struct cell *c[2];
	size_t n[2];
	const char *vs[64], *ms[16];
	char gp[4200];

	n[0] = cells(rs, "mmu", "vcpus", "cycles_per_access", opts, true, &c[0]);
	n[1] = cells(rs, "mmu", "vcpus", "exits_per_1k", opts, false, &c[1]);
	size_t nv = distinct(c[0], n[0], true, vs, 64), nm = distinct(c[0], n[0], false, ms, 16);
	int rc = 0;
	if (nv >= 2) {
		/* vCPU counts in numeric order */
		for (size_t i = 1; i < nv; i++)
			for (size_t j = i; j > 0 && cmp_val(vs[j], vs[j - 1]) < 0; j--) {
				const char *t = vs[j];
				vs[j] = vs[j - 1];
				vs[j - 1] = t;
			}
		FILE *g = fig_open(o, "vcpu_scaling", 1000, 440, gp, sizeof(gp));
		if (!g) {
			rc = 1;
			goto out;
		}
		for (int p = 0; p < 2; p++) {
			gp_data_head(g, p ? "$d1" : "$d0", "vcpus", ms, nm);
			for (size_t v = 0; v < nv; v++) {
				fprintf(g, "%s", vs[v]);
				for (size_t m = 0; m < nm; m++) {
					double val = NAN;
					for (size_t k = 0; k < n[p]; k++)
						if (!strcmp(c[p][k].x, ms[m]) && !strcmp(c[p][k].y, vs[v]))
							val = c[p][k].v;
					if (isnan(val))
						fprintf(g, " -");
					else
						fprintf(g, " %.6g", val);
				}
				fputc('\n', g);
			}
			fprintf(g, "EOD\n");
		}
		fprintf(g, "set datafile missing '-'\nset multiplot layout 1,2 title 'scaling with vCPUs (option set %s)'\n"
			   "set key top left\nset grid\nset xlabel 'vCPUs'\nset xtics 1\n", *opts ? opts : "any");
		fprintf(g, "set title 'cycles per access (geometric mean)'\nset yrange [0:*]\n"
			   "plot for [i=2:%zu] $d0 using 1:i with linespoints title columnheader(i)\n", nm + 1);
		fprintf(g, "set title 'VM exits per 1,000 accesses (mean)'\n"
			   "plot for [i=2:%zu] $d1 using 1:i with linespoints title columnheader(i)\nunset multiplot\n", nm + 1);
		rc = fig_close(g, gp);
	}
out:
	cells_free(c[0], n[0]);
	cells_free(c[1], n[1]);
	return rc;
}

/* A heatmap of @metric (mean) over two axes, each cell labelled with its value. */
static int fig_heatmap(const struct rows *rs, const struct ropts *o)
{
	struct cell *c;
	size_t n = cells(rs, o->heat_x, o->heat_y, o->heat_metric, "", false, &c);
	const char *xs[128], *ys[128];
	char gp[4200], title[256];

	size_t nx = distinct(c, n, false, xs, 128), ny = distinct(c, n, true, ys, 128);
	if (!n) {
		cells_free(c, n);
		return 0;
	}
	for (size_t i = 1; i < ny; i++)
		for (size_t j = i; j > 0 && cmp_val(ys[j], ys[j - 1]) < 0; j--) {
			const char *t = ys[j];
			ys[j] = ys[j - 1];
			ys[j - 1] = t;
		}
	FILE *g = fig_open(o, "heatmap", 220 + 110 * (unsigned)nx, 160 + 40 * (unsigned)ny, gp, sizeof(gp));
	if (!g) {
		cells_free(c, n);
		return 1;
	}
	fprintf(g, "$d << EOD\n");
	for (size_t i = 0; i < nx; i++)
		for (size_t j = 0; j < ny; j++)
			for (size_t k = 0; k < n; k++)
				if (!strcmp(c[k].x, xs[i]) && !strcmp(c[k].y, ys[j]))
					fprintf(g, "%zu %zu %.6g\n", i, j, c[k].v);
	fprintf(g, "EOD\nset xtics (");
	for (size_t i = 0; i < nx; i++) {
		fprintf(g, "%s", i ? ", " : "");
		gp_str(g, xs[i]);
		fprintf(g, " %zu", i);
	}
	fprintf(g, ") rotate by -30\nset ytics (");
	for (size_t j = 0; j < ny; j++) {
		fprintf(g, "%s", j ? ", " : "");
		gp_str(g, ys[j]);
		fprintf(g, " %zu", j);
	}
	snprintf(title, sizeof(title), "%s (mean) by %s and %s", o->heat_metric, o->heat_x, o->heat_y);
	fprintf(g, ")\nset title ");
	cli_gp_quoted(g, title);
	fprintf(g, "\nset xrange [-0.5:%zu.5]\nset yrange [-0.5:%zu.5]\nset palette defined (0 '#f7fbff', 1 '#6baed6', 2 '#08306b')\n"
		   "set logscale cb\nset tics nomirror out\nunset key\n"
		   "plot $d using 1:2:(0.5):(0.5):3 with boxxyerror fc palette fs solid 1.0 noborder, "
		   "'' using 1:2:(sprintf('%%.3g', $3)) with labels font ',9'\n",
		nx - 1, ny - 1);
	cells_free(c, n);
	return fig_close(g, gp);
}

/* ---- the command ---- */

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = cli_vusage("report", fmt, ap);
	va_end(ap);
	return rc;
}

/* "a,b,c" into @out (pointers into @buf). */
static int split(char *buf, const char **out, unsigned *n, const char *what)
{
	char *save = NULL;

	*n = 0;
	if (!*buf || *buf == ',' || buf[strlen(buf) - 1] == ',' || strstr(buf, ",,"))
		return bad("%s: expected a comma-separated list", what);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_FIELDS)
			return bad("%s: at most %d names", what, MAX_FIELDS);
		out[(*n)++] = t;
	}
	return 0;
}

static bool known_axis(const struct rows *rs, const char *name)
{
	static const char *const axes[] = { "workload", "mmu", "opts", "vcpus", "thp", "ksm",
					    "guest_thp", "seed", "params", "mode" };
	char b[256];

	for (size_t i = 0; i < sizeof(axes) / sizeof(axes[0]); i++)
		if (!strcmp(axes[i], name))
			return true;
	for (size_t i = 0; i < rs->n; i++)
		if (*axis_of(&rs->r[i], name, b, sizeof(b)))
			return true;
	return false;
}

int cmd_report(int argc, char **argv)
{
	enum { O_GROUP = 256, O_METRICS, O_CSV, O_PLOT, O_HEAT, O_HEATM, O_BASE, O_FMT, O_HELP };
	static const struct option longopts[] = {
		{ "group-by", required_argument, NULL, O_GROUP },
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "csv", no_argument, NULL, O_CSV },
		{ "plot", required_argument, NULL, O_PLOT },
		{ "heatmap", required_argument, NULL, O_HEAT },
		{ "heatmap-metric", required_argument, NULL, O_HEATM },
		{ "baseline", required_argument, NULL, O_BASE },
		{ "format", required_argument, NULL, O_FMT },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	static char gbuf[1024], mbuf[1024], hbuf[256];
	struct ropts o = { .heat_metric = "cycles_per_access", .fmt = "svg" };
	struct rows rs = { 0 };
	int opt, rc = 0;

	optind = 0;   /* 0, not 1: glibc forgets a scan stopped inside "-abc" only so */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
		switch (opt) {
		case O_GROUP:
			snprintf(gbuf, sizeof(gbuf), "%s", optarg);
			if ((rc = split(gbuf, o.fields, &o.nf, "--group-by")))
				return rc;
			break;
		case O_METRICS:
			snprintf(mbuf, sizeof(mbuf), "%s", optarg);
			if ((rc = split(mbuf, o.metrics, &o.nm, "--metrics")))
				return rc;
			break;
		case O_CSV:
			o.csv = true;
			break;
		case O_PLOT:
			o.plot = optarg;
			break;
		case O_HEAT: {
			const char *xy[MAX_FIELDS];
			unsigned n;
			snprintf(hbuf, sizeof(hbuf), "%s", optarg);
			if ((rc = split(hbuf, xy, &n, "--heatmap")))
				return rc;
			if (n != 2)
				return bad("--heatmap '%s': expected two axes, X,Y", optarg);
			o.heat_x = xy[0];
			o.heat_y = xy[1];
			break;
		}
		case O_HEATM:
			o.heat_metric = optarg;
			break;
		case O_BASE:
			o.baseline = optarg;
			break;
		case O_FMT:
			if (strcmp(optarg, "svg") && strcmp(optarg, "png"))
				return bad("--format '%s': expected svg or png", optarg);
			o.fmt = optarg;
			break;
		case 'h':
		case O_HELP:
			help_command("report");
			return 0;
		case ':':
			return bad("option '%s' needs a value", argv[optind - 1]);
		default:
			return bad("unknown option '%s' ('vmmu help report' lists the options)", argv[optind - 1]);
		}
	}
	if (optind == argc)
		return bad("which results? (vmmu report RESULTS.jsonl...)");
	if (!o.nf) {
		o.fields[o.nf++] = "workload";
		o.fields[o.nf++] = "mmu";
		o.fields[o.nf++] = "opts";
	}
	if (!o.nm) {
		static const char *const def[] = { "cycles_per_access", "exits_per_1k", "tlb_misses_per_1k",
						   "walk_refs_per_miss", "pf_fixed_per_1k", "host.seconds" };
		for (size_t i = 0; i < sizeof(def) / sizeof(def[0]); i++)
			o.metrics[o.nm++] = def[i];
	}
	if (!o.heat_x) {
		o.heat_x = "workload";
		o.heat_y = "mmu";
	}
	unsigned bad_lines = 0;
	for (int i = optind; i < argc; i++) {
		int e = results_read(argv[i], add_line, &rs, &bad_lines);
		if (e) {
			rc = bad("%s: %s", argv[i], strerror(-e));
			goto out;
		}
	}
	if (bad_lines)
		fprintf(stderr, "vmmu report: %u unreadable line%s skipped\n", bad_lines, bad_lines == 1 ? "" : "s");
	if (!rs.n) {
		rc = bad("no results in %s%s", argv[optind], argc - optind > 1 ? " ..." : "");
		goto out;
	}
	dedupe(&rs);
	size_t nok = 0;
	for (size_t i = 0; i < rs.n; i++)
		if (rs.r[i].ok) {
			describe(&rs.r[i]);
			nok++;
		}
	for (unsigned k = 0; k < o.nf; k++)
		if (!known_axis(&rs, o.fields[k])) {
			rc = bad("--group-by: no run has an axis '%s' (axes: workload, mmu, opts, vcpus, thp, ksm, guest_thp, seed, params, mode, or a swept parameter)", o.fields[k]);
			goto out;
		}
	if (!known_axis(&rs, o.heat_x) || !known_axis(&rs, o.heat_y)) {
		rc = bad("--heatmap: no run has the axis '%s'", known_axis(&rs, o.heat_x) ? o.heat_y : o.heat_x);
		goto out;
	}
	for (unsigned m = 0; m < o.nm; m++) {
		bool any = false, ok;
		for (size_t i = 0; i < rs.n && !any; i++)
			if (rs.r[i].ok) {
				metric(&rs.r[i], o.metrics[m], &ok);
				any = ok;
			}
		if (!any && nok) {
			rc = bad("--metrics: '%s' is not a number of the results (a derived metric: cycles_per_access, exits_per_1k, tlb_misses_per_1k, walk_refs_per_miss, pf_fixed_per_1k; or a path such as stats.pf_fixed)", o.metrics[m]);
			goto out;
		}
	}
	if (o.plot && mkdir(o.plot, 0755) && errno != EEXIST) {
		rc = bad("--plot %s: %s", o.plot, strerror(errno));
		goto out;
	}

	size_t groups, mism;
	if (!o.csv)
		printf("vmmu report: %zu runs (%zu ok, %zu failed) from %d file%s\n\n", rs.n, nok, rs.n - nok,
		       argc - optind, argc - optind == 1 ? "" : "s");
	print_table(stdout, &rs, &o);
	mism = check_digests(o.csv ? NULL : stdout, &rs, &groups, true);
	if (!o.csv) {
		printf("\ndigests: %zu configurations run in several modes or option sets: %s\n", groups,
		       mism ? "MISMATCH (above)" : "all equal");
		fig_speedup(&rs, &(struct ropts){ .baseline = o.baseline }, stdout);
		if (rs.n > nok) {
			printf("\nfailed runs:\n");
			for (size_t i = 0; i < rs.n; i++)
				if (!rs.r[i].ok) {
					char b[1024];
					const char *why = json_object_get_string(json_path(rs.r[i].o, "reason"));
					printf("  %s %s %s %s seed=%s: %s\n", rs.r[i].id,
					       axis_of(&rs.r[i], "workload", b, 256), axis_of(&rs.r[i], "params", b + 256, 512),
					       axis_of(&rs.r[i], "mmu", b + 768, 128), axis_of(&rs.r[i], "seed", b + 896, 128),
					       why ? why : "?");
				}
		}
	}
	if (o.plot) {
		const char *set = "all";
		bool have_all = false;
		for (size_t i = 0; i < rs.n && !have_all; i++) {
			const char *s = json_object_get_string(json_path(rs.r[i].o, "axes.opts"));
			have_all = s && !strcmp(s, "all");
		}
		if (!have_all)
			set = "";
		int frc = fig_bars(&rs, &o, "cycles_per_access", "cycles_per_access",
				   have_all ? "simulated cycles per guest access (mean; option set all)"
					    : "simulated cycles per guest access (mean)", set);
		frc |= fig_bars(&rs, &o, "exits_per_1k", "exits_per_1k",
				have_all ? "VM exits per 1,000 guest accesses (mean; option set all)"
					 : "VM exits per 1,000 guest accesses (mean)", set);
		frc |= fig_speedup(&rs, &o, NULL);
		frc |= fig_vcpus(&rs, &o, set);
		frc |= fig_heatmap(&rs, &o);
		if (frc && !mism)
			rc = 1;
	}
	if (mism) {
		fprintf(stderr, "vmmu report: %zu digest mismatch%s: a configuration changed what the guest observes\n",
			mism, mism == 1 ? "" : "es");
		rc = 1;
	}
out:
	for (size_t i = 0; i < rs.n; i++) {
		json_object_put(rs.r[i].o);
		free(rs.r[i].dkey);
		free(rs.r[i].mode);
	}
	free(rs.r);
	return rc;
}
