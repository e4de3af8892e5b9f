/* SPDX-License-Identifier: MIT */
/*
 * `vmmu sweep SPEC.json`: expand a spec (sweep_spec.c) and run it, here or on Slurm.
 *
 * Locally, each run is a child process of this same binary (/proc/self/exe run ... --json), at
 * most -j at once; a crash or a timeout is that child's alone. The parent is the only writer of
 * the results file: one line per finished run, appended with a single write(2) to an O_APPEND
 * descriptor, so a sweep killed at any moment leaves whole lines and at most one cut line, which
 * the reader skips. Resuming means skipping the ids already in the file.
 *
 * With --slurm DIR, the spec and a copy of this binary go to DIR (a folder every node sees), and
 * one `sbatch --array` job runs `DIR/vmmu sweep DIR/spec.json --task K --of N` in each array task:
 * the same runner on run K, K+N, K+2N, ... into DIR/results/task-K.jsonl. --status and --collect
 * read DIR. Exit codes (cli.h): 0 every run ok; 1 a run failed (recorded) or a job incomplete; 2
 * bad usage or a bad spec.
 */
#define _GNU_SOURCE   /* pipe2, sched_getaffinity */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/sweep.h"
#include "vmmu/vmmu.h"

#define TAIL 2048          /* bytes of a failed run's stderr kept in its line */
#define MAX_JOBS 256

struct opts {
	const char *spec, *out, *base, *slurm, *status, *collect;
	const char *partition, *time, *mem;
	const char *sbatch_args[16];
	unsigned nsbatch;
	unsigned jobs, timeout, per_task;
	long task, of;
	bool list, retry_failed, quiet;
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_err(const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = cli_vusage("sweep", fmt, ap);
	va_end(ap);
	return rc;
}

/* ---- what the results file already holds ---- */

struct done {
	char (*ids)[17];
	bool *failed;
	size_t n, cap;
	bool ok_only;           /* --retry-failed: a failed line does not count as done */
};

static void done_add(struct json_object *o, const char *line, void *opaque)
{
	struct done *d = opaque;
	struct json_object *id = json_path(o, "id"), *st = json_path(o, "status");

	(void)line;
	if (id && json_object_get_type(id) == json_type_string && strlen(json_object_get_string(id)) == 16) {
		bool failed = !st || strcmp(json_object_get_string(st), "ok");
		if (d->n == d->cap) {
			d->cap = d->cap ? 2 * d->cap : 256;
			d->ids = realloc(d->ids, d->cap * sizeof(*d->ids));
			d->failed = realloc(d->failed, d->cap * sizeof(*d->failed));
			if (!d->ids || !d->failed)
				abort();
		}
		memcpy(d->ids[d->n], json_object_get_string(id), 17);
		d->failed[d->n++] = failed;
	}
	json_object_put(o);
}

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* The ids sorted and unique, each with the status of its last line: a retry that succeeded
 * overrides the failure before it. */
static void done_sort(struct done *d)
{
	char (*ids)[17] = malloc((d->n + 1) * sizeof(*ids));
	if (!ids)
		abort();
	if (d->n)
		memcpy(ids, d->ids, d->n * sizeof(*ids));
	qsort(ids, d->n, sizeof(*ids), cmp_id);
	size_t u = 0;
	for (size_t i = 0; i < d->n; i++)
		if (!u || strcmp(ids[u - 1], ids[i]))
			memcpy(ids[u++], ids[i], 17);
	bool *failed = calloc(u + 1, sizeof(bool));
	if (!failed)
		abort();
	for (size_t i = 0; i < d->n; i++) {
		char (*hit)[17] = bsearch(d->ids[i], ids, u, sizeof(*ids), cmp_id);
		failed[hit - ids] = d->failed[i];
	}
	free(d->ids);
	free(d->failed);
	d->ids = ids;
	d->failed = failed;
	d->n = u;
}

/* -1 not in the file; 0 done and ok; 1 done and failed. */
static int done_find(const struct done *d, const char *id)
{
	char (*hit)[17] = d->n ? bsearch(id, d->ids, d->n, sizeof(*d->ids), cmp_id) : NULL;

	return hit ? d->failed[hit - d->ids] : -1;
}

static int done_load(const char *path, struct done *d)
{
	unsigned bad = 0;
	int rc = results_read(path, done_add, d, &bad);

	if (rc && rc != -ENOENT) {
		fprintf(stderr, "vmmu sweep: %s: %s\n", path, strerror(-rc));
		return EXIT_USAGE;
	}
	if (bad)
		fprintf(stderr, "vmmu sweep: %s: %u unreadable line%s skipped (a run cut short is run again)\n",
			path, bad, bad == 1 ? "" : "s");
	done_sort(d);
	return 0;
}

/* ---- running children ---- */

struct slot {
	pid_t pid;
	int out, err;           /* pipe read ends, -1 once at EOF */
	size_t run;             /* index in the sweep */
	double start;
	bool timed_out;
	char *obuf;             /* the child's whole stdout */
	size_t olen, ocap;
	char tail[TAIL];        /* the last TAIL bytes of its stderr, a ring */
	size_t tlen;            /* bytes ever written to the ring */
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static char self_exe[PATH_MAX];

static int spawn(struct slot *s, const struct sweep_run *r)
{
	int po[2], pe[2];

	if (pipe2(po, O_CLOEXEC))
		return -errno;
	if (pipe2(pe, O_CLOEXEC)) {
		int e = -errno;
		close(po[0]);
		close(po[1]);
		return e;
	}
	pid_t pid = fork();
	if (pid < 0) {
		int e = -errno;
		for (int i = 0; i < 2; i++) {
			close(po[i]);
			close(pe[i]);
		}
		return e;
	}
	if (pid == 0) {
		/* Its own process group: a timeout kills the run and anything it started; the
		 * terminal's ^C reaches only the sweep, which then ends its runs itself. */
		setpgid(0, 0);
		int null = open("/dev/null", O_RDONLY);
		if (null >= 0)
			dup2(null, STDIN_FILENO);
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		char *argv[256];   /* a run's command line is a few dozen words (sweep_spec.c) */
		int n = r->argc < 254 ? r->argc : 254;
		argv[0] = "vmmu";
		for (int i = 0; i < n; i++)
			argv[i + 1] = r->argv[i];
		argv[n + 1] = NULL;
		execv(self_exe, argv);
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	memset(s, 0, sizeof(*s));
	s->pid = pid;
	s->out = po[0];
	s->err = pe[0];
	s->start = now();
	return 0;
}

static void slot_read(struct slot *s, int which)
{
	char buf[4096];
	ssize_t n = read(which ? s->err : s->out, buf, sizeof(buf));

	if (n <= 0) {
		if (n < 0 && errno == EINTR)
			return;
		close(which ? s->err : s->out);
		*(which ? &s->err : &s->out) = -1;
		return;
	}
	if (which) {
		for (ssize_t i = 0; i < n; i++)
			s->tail[s->tlen++ % TAIL] = buf[i];
		return;
	}
	if (s->olen + (size_t)n + 1 > s->ocap) {
		s->ocap = 2 * (s->olen + (size_t)n + 1);
		s->obuf = realloc(s->obuf, s->ocap);
		if (!s->obuf)
			abort();
	}
	memcpy(s->obuf + s->olen, buf, (size_t)n);
	s->olen += (size_t)n;
	s->obuf[s->olen] = 0;
}

/* The stderr tail in order, as a C string. */
static void slot_tail(const struct slot *s, char *out)
{
	size_t n = s->tlen < TAIL ? s->tlen : TAIL, first = s->tlen < TAIL ? 0 : s->tlen % TAIL;

	for (size_t i = 0; i < n; i++)
		out[i] = s->tail[(first + i) % TAIL];
	out[n] = 0;
}

static void print_argv(FILE *f, const struct sweep_run *r)
{
	fputc('[', f);
	cli_json_str(f, "vmmu");
	for (int i = 0; i < r->argc; i++) {
		fputc(',', f);
		cli_json_str(f, r->argv[i]);
	}
	fputc(']', f);
}

/* The result line of a finished child: ok (its --json object with id, status, axes, argv first)
 * or failed (why, with its stderr's tail). Returns whether it failed. */
static bool result_line(const struct slot *s, int status, const struct sweep_run *r, unsigned timeout,
			char **line, size_t *len)
{
	FILE *f = open_memstream(line, len);
	char reason[128] = "";
	char tail[TAIL + 1];

	if (!f)
		abort();
	if (s->timed_out)
		snprintf(reason, sizeof(reason), "timeout after %u s", timeout);
	else if (WIFSIGNALED(status))
		snprintf(reason, sizeof(reason), "killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else if (WEXITSTATUS(status))
		snprintf(reason, sizeof(reason), "exit status %d", WEXITSTATUS(status));
	const char *obj = NULL;
	if (!*reason) {
		/* One JSON object with a digest, on one line, or the output is not a result. */
		size_t n = s->olen;
		while (n && (s->obuf[n - 1] == '\n' || s->obuf[n - 1] == ' '))
			n--;
		struct json_object *o = n ? json_tokener_parse(s->obuf) : NULL;
		if (!o || json_object_get_type(o) != json_type_object || !json_path(o, "guest.digest") ||
		    memchr(s->obuf, '\n', n) || s->obuf[0] != '{')
			snprintf(reason, sizeof(reason), "no JSON result on its output");
		else {
			s->obuf[n] = 0;
			obj = s->obuf + 1;
		}
		json_object_put(o);
	}
	fprintf(f, "{\"id\":\"%s\",\"status\":\"%s\",\"axes\":%s,\"argv\":", r->id, obj ? "ok" : "failed", r->axes);
	print_argv(f, r);
	if (obj) {
		fprintf(f, ",%s\n", obj);
	} else {
		slot_tail(s, tail);
		fprintf(f, ",\"reason\":");
		cli_json_str(f, reason);
		fprintf(f, ",\"stderr_tail\":");
		cli_json_str(f, tail);
		fprintf(f, ",\"host\":{\"seconds\":%.6f}}\n", now() - s->start);
	}
	fclose(f);
	return !obj;
}

static void fmt_secs(double s, char *buf, size_t len)
{
	if (s < 60)
		snprintf(buf, len, "%.0fs", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* Run @todo (indices into @sw) with @jobs at once, appending each result to @fd. */
static int run_local(const struct sweep *sw, const size_t *todo, size_t ntodo, int fd,
		     const struct opts *o, size_t total, size_t before, size_t *nfailed, size_t *nrun)
{
	struct slot slots[MAX_JOBS];
	unsigned busy = 0, jobs = o->jobs;
	size_t next = 0, finished = 0;
	double t0 = now(), last_bar = 0;
	bool bar = !o->quiet && isatty(STDERR_FILENO);
	struct sigaction sa = { .sa_handler = on_signal }, old_int, old_term;

	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	for (unsigned i = 0; i < jobs; i++)
		slots[i].pid = 0;
	while ((next < ntodo || busy) && !interrupted) {
		/* Fill the free slots. */
		for (unsigned i = 0; i < jobs && next < ntodo; i++) {
			if (slots[i].pid)
				continue;
			int rc = spawn(&slots[i], &sw->runs[todo[next]]);
			if (rc) {
				fprintf(stderr, "vmmu sweep: cannot start a run: %s\n", strerror(-rc));
				interrupted = 1;
				break;
			}
			slots[i].run = todo[next++];
			busy++;
		}
		struct pollfd pfd[2 * MAX_JOBS];
		unsigned map[2 * MAX_JOBS], np = 0;
		for (unsigned i = 0; i < jobs; i++) {
			if (!slots[i].pid)
				continue;
			if (slots[i].out >= 0) {
				pfd[np] = (struct pollfd){ .fd = slots[i].out, .events = POLLIN };
				map[np++] = 2 * i;
			}
			if (slots[i].err >= 0) {
				pfd[np] = (struct pollfd){ .fd = slots[i].err, .events = POLLIN };
				map[np++] = 2 * i + 1;
			}
		}
		if (np && poll(pfd, np, 200) > 0)
			for (unsigned k = 0; k < np; k++)
				if (pfd[k].revents)
					slot_read(&slots[map[k] / 2], (int)(map[k] & 1));
		double t = now();
		for (unsigned i = 0; i < jobs; i++) {
			struct slot *s = &slots[i];
			if (!s->pid)
				continue;
			if (o->timeout && !s->timed_out && t - s->start > o->timeout) {
				kill(-s->pid, SIGKILL);
				s->timed_out = true;
			}
			if (s->out >= 0 || s->err >= 0)
				continue;
			int status;
			if (waitpid(s->pid, &status, 0) < 0)
				status = 0x7f00;
			char *line;
			size_t len;
			bool failed = result_line(s, status, &sw->runs[s->run], o->timeout, &line, &len);
			/* One write: the line lands whole or (a crash of this process) not at all. */
			if (write(fd, line, len) != (ssize_t)len) {
				fprintf(stderr, "vmmu sweep: writing the results: %s\n", strerror(errno));
				interrupted = 1;
			}
			free(line);
			free(s->obuf);
			*nfailed += failed;
			finished++;
			busy--;
			s->pid = 0;
			if (failed && !bar && !o->quiet)
				fprintf(stderr, "vmmu sweep: failed: %s\n", sw->runs[s->run].label);
		}
		if (bar && (t - last_bar > 0.25 || (next == ntodo && !busy))) {
			char el[32], eta[32] = "?";
			last_bar = t;
			fmt_secs(t - t0, el, sizeof(el));
			if (finished)
				fmt_secs((t - t0) / (double)finished * (double)(ntodo - finished), eta, sizeof(eta));
			fprintf(stderr, "\rvmmu sweep: %zu/%zu done, %zu failed, %u running, %s, ETA %s\033[K",
				before + finished, total, *nfailed, busy, el, eta);
		}
	}
	if (bar)
		fputc('\n', stderr);
	if (interrupted) {
		/* Runs cut short are not results: they run again on the next invocation. */
		for (unsigned i = 0; i < jobs; i++)
			if (slots[i].pid) {
				kill(-slots[i].pid, SIGKILL);
				waitpid(slots[i].pid, NULL, 0);
				if (slots[i].out >= 0)
					close(slots[i].out);
				if (slots[i].err >= 0)
					close(slots[i].err);
				free(slots[i].obuf);
			}
	}
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	*nrun = finished;
	return interrupted ? 130 : 0;
}

/* ---- the local runner (also what each Slurm array task runs) ---- */

static int sweep_local(const struct opts *o)
{
	struct sweep sw;
	struct done d = { 0 };
	char err[1024], outbuf[PATH_MAX];
	const char *out = o->out;
	int rc = sweep_load(o->spec, o->base, &sw, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "vmmu sweep: %s\n", err);
		return rc;
	}
	if (!out) {
		/* spec.json -> spec.results.jsonl, in the current directory */
		const char *b = strrchr(o->spec, '/');
		b = b ? b + 1 : o->spec;
		size_t n = strlen(b);
		if (n > 5 && !strcmp(b + n - 5, ".json"))
			n -= 5;
		snprintf(outbuf, sizeof(outbuf), "%.*s.results.jsonl", (int)n, b);
		out = outbuf;
	}
	if ((rc = done_load(out, &d)))
		goto out;

	size_t *todo = malloc((sw.n + 1) * sizeof(*todo)), ntodo = 0, total = 0, before = 0, failed_before = 0;
	if (!todo)
		abort();
	for (size_t i = 0; i < sw.n; i++) {
		if (o->of && (long)(i % (size_t)o->of) != o->task)
			continue;
		total++;
		int st = done_find(&d, sw.runs[i].id);
		if (st == 0 || (st == 1 && !o->retry_failed)) {
			before++;
			failed_before += st == 1;
			if (!o->list)
				continue;
		}
		if (o->list) {
			printf("%s\t%s\t%s", sw.runs[i].id, st < 0 ? "todo" : st ? "failed" : "done", "vmmu");
			for (int k = 0; k < sw.runs[i].argc; k++)
				printf(" %s", sw.runs[i].argv[k]);
			printf("\n");
			continue;
		}
		todo[ntodo++] = i;
	}
	if (o->list) {
		fprintf(stderr, "vmmu sweep: %zu runs, %zu in %s (%zu failed), %zu to run\n", total, before,
			out, failed_before, total - before);
		free(todo);
		rc = 0;
		goto out;
	}

	size_t nfailed = 0, nrun = 0;
	int fd = -1;
	if (ntodo) {
		fd = open(out, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			fprintf(stderr, "vmmu sweep: -o %s: %s\n", out, strerror(errno));
			free(todo);
			rc = EXIT_USAGE;
			goto out;
		}
		/* A line cut short by a crash gets its end, so the next line starts on its own. */
		struct stat stt;
		char last = '\n';
		int rfd = open(out, O_RDONLY | O_CLOEXEC);
		if (rfd >= 0 && !fstat(rfd, &stt) && stt.st_size > 0 &&
		    pread(rfd, &last, 1, stt.st_size - 1) == 1 && last != '\n' && write(fd, "\n", 1) != 1)
			fprintf(stderr, "vmmu sweep: %s: %s\n", out, strerror(errno));
		if (rfd >= 0)
			close(rfd);
		rc = run_local(&sw, todo, ntodo, fd, o, total, before, &nfailed, &nrun);
		close(fd);
	}
	free(todo);
	if (!o->quiet || nfailed || failed_before)
		fprintf(stderr, "vmmu sweep: %zu runs: %zu run now (%zu failed), %zu done before (%zu failed); results in %s\n",
			total, nrun, nfailed, before, failed_before, out);
	if (rc == 130)
		fprintf(stderr, "vmmu sweep: interrupted: run it again to finish the sweep\n");
	else
		rc = nfailed || failed_before ? 1 : 0;
out:
	free(d.ids);
	free(d.failed);
	sweep_free(&sw);
	return rc;
}

/* ---- Slurm ---- */

/* Run @argv (a program found on PATH), its standard output into @out (NUL-terminated). The
 * exit status, or -1 if it could not be started. */
static int capture(char *const *argv, char *out, size_t len)
{
	int p[2];

	if (pipe2(p, O_CLOEXEC))
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execvp(argv[0], argv);
		fprintf(stderr, "vmmu sweep: cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t k;
	char drain[4096];
	while (n < len - 1 && (k = read(p[0], out + n, len - 1 - n)) > 0)
		n += (size_t)k;
	/* What does not fit is read and dropped: the program must not die of a full pipe. */
	while (read(p[0], drain, sizeof(drain)) > 0)
		;
	out[n] = 0;
	close(p[0]);
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC), rc = 0;
	char tmp[PATH_MAX];

	if (in < 0)
		return -errno;
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", to, (int)getpid());
	int outfd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (outfd < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(outfd, buf, (size_t)n) != n) {
			rc = -EIO;
			break;
		}
	if (n < 0)
		rc = -errno;
	close(in);
	if (close(outfd) && !rc)
		rc = -errno;
	/* rename: a node starting a task meanwhile sees the old binary or the new, never half. */
	if (!rc && rename(tmp, to))
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

static bool same_file(const char *a, const char *b)
{
	FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
	bool same = fa && fb;
	int ca, cb;

	while (same && (ca = getc(fa)) == (cb = getc(fb)))
		if (ca == EOF)
			break;
	same = same && ca == cb;
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

/* @s single-quoted for sh. */
static void sh_quote(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++) {
		if (*s == '\'')
			fputs("'\\''", f);
		else
			fputc(*s, f);
	}
	fputc('\'', f);
}

static int sweep_slurm(const struct opts *o)
{
	struct sweep sw;
	char err[1024], dir[PATH_MAX], path[PATH_MAX + 64], specdir[PATH_MAX];
	int rc = sweep_load(o->spec, o->base, &sw, err, sizeof(err));

	if (rc) {
		fprintf(stderr, "vmmu sweep: %s\n", err);
		return rc;
	}
	size_t total = sw.n;
	if (!realpath(sw.spec_dir, specdir))
		snprintf(specdir, sizeof(specdir), "%s", sw.spec_dir);
	sweep_free(&sw);
	if (mkdir(o->slurm, 0755) && errno != EEXIST)
		return usage_err("--slurm: cannot create the folder: %s", strerror(errno));
	if (!realpath(o->slurm, dir))
		return usage_err("--slurm: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/results", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/logs", dir);
	mkdir(path, 0755);
	/* A folder holds one sweep: submitting again resumes it (each task skips its done runs). */
	snprintf(path, sizeof(path), "%s/spec.json", dir);
	if (!access(path, F_OK) && !same_file(path, o->spec)) {
		fprintf(stderr, "vmmu sweep: --slurm %s holds another sweep's spec (spec.json): use a new folder\n", dir);
		return EXIT_USAGE;
	}
	if ((rc = copy_file(o->spec, path, 0644))) {
		fprintf(stderr, "vmmu sweep: copying the spec to %s: %s\n", path, strerror(-rc));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/vmmu", dir);
	if ((rc = copy_file(self_exe, path, 0755))) {
		fprintf(stderr, "vmmu sweep: copying vmmu to %s: %s\n", path, strerror(-rc));
		return 1;
	}

	/* Slurm spends seconds on each task (scheduling, launch): 50 runs a task at least, more to
	 * keep the array within 1,000 tasks (the default MaxArraySize is 1001). */
	unsigned per = o->per_task ? o->per_task : (unsigned)((total + 999) / 1000);
	if (!o->per_task && per < 50)
		per = 50;
	size_t ntasks = (total + per - 1) / per;
	unsigned jobs = o->jobs ? o->jobs : 1;
	snprintf(path, sizeof(path), "%s/job.sh", dir);
	FILE *f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "vmmu sweep: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(f, "#!/bin/sh\n# One array task of a vmmu sweep (written by vmmu sweep --slurm): runs K, K+N, ...\n"
		   "# of the spec's runs into results/task-K.jsonl; run again, it skips what is done.\nexec ");
	char p2[PATH_MAX + 64];
	snprintf(p2, sizeof(p2), "%s/vmmu", dir);
	sh_quote(f, p2);
	fprintf(f, " sweep ");
	snprintf(p2, sizeof(p2), "%s/spec.json", dir);
	sh_quote(f, p2);
	fprintf(f, " --base ");
	sh_quote(f, specdir);
	fprintf(f, " --task \"$SLURM_ARRAY_TASK_ID\" --of %zu -j %u --quiet", ntasks, jobs);
	if (o->timeout)
		fprintf(f, " --timeout %u", o->timeout);
	fprintf(f, " -o ");
	snprintf(p2, sizeof(p2), "%s/results/task-", dir);
	sh_quote(f, p2);
	fprintf(f, "\"$SLURM_ARRAY_TASK_ID\".jsonl\n");
	if (fclose(f)) {
		fprintf(stderr, "vmmu sweep: %s: %s\n", path, strerror(errno));
		return 1;
	}
	chmod(path, 0755);

	char arr[64], outopt[PATH_MAX + 32], cpus[32], part[256], tim[128], mem[128], jobsh[PATH_MAX + 16];
	char *av[48];
	int ac = 0;
	snprintf(arr, sizeof(arr), "--array=0-%zu", ntasks - 1);
	snprintf(outopt, sizeof(outopt), "--output=%s/logs/task-%%a.out", dir);
	snprintf(cpus, sizeof(cpus), "--cpus-per-task=%u", jobs);
	snprintf(jobsh, sizeof(jobsh), "%s/job.sh", dir);
	av[ac++] = "sbatch";
	av[ac++] = "--parsable";
	av[ac++] = "--job-name=vmmu-sweep";
	av[ac++] = arr;
	av[ac++] = outopt;
	av[ac++] = cpus;
	if (o->partition) {
		snprintf(part, sizeof(part), "--partition=%s", o->partition);
		av[ac++] = part;
	}
	if (o->time) {
		snprintf(tim, sizeof(tim), "--time=%s", o->time);
		av[ac++] = tim;
	}
	if (o->mem) {
		snprintf(mem, sizeof(mem), "--mem=%s", o->mem);
		av[ac++] = mem;
	}
	for (unsigned i = 0; i < o->nsbatch; i++)
		av[ac++] = (char *)o->sbatch_args[i];
	av[ac++] = jobsh;
	av[ac] = NULL;
	char reply[256];
	int st = capture(av, reply, sizeof(reply));
	if (st) {
		fprintf(stderr, "vmmu sweep: sbatch %s (is Slurm's client installed and configured?)\n",
			st < 0 ? "could not run" : "refused the job");
		return 1;
	}
	reply[strcspn(reply, ";\n")] = 0;
	snprintf(path, sizeof(path), "%s/sweep.json", dir);
	f = fopen(path, "w");
	if (!f) {
		fprintf(stderr, "vmmu sweep: %s: %s\n", path, strerror(errno));
		return 1;
	}
	fprintf(f, "{\"job\":");
	cli_json_str(f, reply);
	fprintf(f, ",\"tasks\":%zu,\"runs\":%zu,\"runs_per_task\":%u,\"jobs_per_task\":%u}\n", ntasks,
		total, per, jobs);
	fclose(f);
	printf("vmmu sweep: submitted job %s: %zu runs in %zu array tasks; 'vmmu sweep --status %s', then 'vmmu sweep --collect %s'\n",
	       reply, total, ntasks, dir, dir);
	return 0;
}

/* A submitted sweep's folder: its job, its totals, and every result line of its tasks. */
struct collected {
	char job[64];
	size_t tasks, runs;
	struct json_object **lines;  /* parsed, for the ids */
	char **text;                 /* the lines as written */
	size_t n, cap;
};

static void collect_add(struct json_object *o, const char *line, void *opaque)
{
	struct collected *c = opaque;

	if (!json_path(o, "id")) {
		json_object_put(o);
		return;
	}
	if (c->n == c->cap) {
		c->cap = c->cap ? 2 * c->cap : 256;
		c->lines = realloc(c->lines, c->cap * sizeof(*c->lines));
		c->text = realloc(c->text, c->cap * sizeof(*c->text));
		if (!c->lines || !c->text)
			abort();
	}
	c->lines[c->n] = o;
	if (!(c->text[c->n++] = strdup(line)))
		abort();
}

static int collected_load(const char *dirarg, struct collected *c, unsigned *bad)
{
	char path[PATH_MAX + 64];
	struct json_object *meta, *v;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "%s/sweep.json", dirarg);
	if (!(meta = json_object_from_file(path))) {
		fprintf(stderr, "vmmu sweep: %s: not a submitted sweep's folder (no readable sweep.json)\n", dirarg);
		return EXIT_USAGE;
	}
	if ((v = json_path(meta, "job")))
		snprintf(c->job, sizeof(c->job), "%s", json_object_get_string(v));
	c->tasks = (v = json_path(meta, "tasks")) ? (size_t)json_object_get_int64(v) : 0;
	c->runs = (v = json_path(meta, "runs")) ? (size_t)json_object_get_int64(v) : 0;
	json_object_put(meta);
	for (size_t k = 0; k < c->tasks; k++) {
		snprintf(path, sizeof(path), "%s/results/task-%zu.jsonl", dirarg, k);
		int rc = results_read(path, collect_add, c, bad);
		if (rc && rc != -ENOENT) {
			fprintf(stderr, "vmmu sweep: %s: %s\n", path, strerror(-rc));
			return 1;
		}
	}
	return 0;
}

static void collected_free(struct collected *c)
{
	for (size_t i = 0; i < c->n; i++) {
		json_object_put(c->lines[i]);
		free(c->text[i]);
	}
	free(c->lines);
	free(c->text);
}

/* Keep the last line of each id (a task re-run after a failure wrote a newer one): @keep[i]. */
static size_t collected_last(const struct collected *c, bool *keep, size_t *failed)
{
	struct done d = { 0 };
	size_t n = 0;

	for (size_t i = 0; i < c->n; i++)
		done_add(json_object_get(c->lines[i]), NULL, &d);
	done_sort(&d);
	bool *seen = calloc(d.n + 1, 1);
	if (!seen)
		abort();
	*failed = 0;
	for (size_t i = c->n; i-- > 0;) {
		const char *id = json_object_get_string(json_path(c->lines[i], "id"));
		char (*hit)[17] = d.n ? bsearch(id, d.ids, d.n, sizeof(*d.ids), cmp_id) : NULL;
		keep[i] = hit && !seen[hit - d.ids];
		if (keep[i]) {
			seen[hit - d.ids] = true;
			n++;
			*failed += d.failed[hit - d.ids];
		}
	}
	free(seen);
	free(d.ids);
	free(d.failed);
	return n;
}

static int sweep_status(const char *dirarg)
{
	struct collected c;
	unsigned bad = 0;
	int rc = collected_load(dirarg, &c, &bad);

	if (rc)
		return rc;
	bool *keep = calloc(c.n + 1, 1);
	size_t failed, n = collected_last(&c, keep, &failed);
	free(keep);

	/* The queue's view: array tasks pending (PD) and running (R) now. */
	char out[65536], jobopt[80];
	size_t pending = 0, running = 0;
	snprintf(jobopt, sizeof(jobopt), "--jobs=%s", c.job);
	char *av[] = { "squeue", "-h", "-r", jobopt, "-o", "%t", NULL };
	int st = capture(av, out, sizeof(out));
	for (char *l = strtok(out, "\n"); st == 0 && l; l = strtok(NULL, "\n")) {
		pending += !strcmp(l, "PD");
		running += !strcmp(l, "R") || !strcmp(l, "CF") || !strcmp(l, "CG");
	}
	printf("job %s: %zu array tasks: ", c.job, c.tasks);
	if (st == 0)
		printf("%zu pending, %zu running, %zu finished", pending, running, c.tasks - pending - running);
	else
		printf("queue not readable (squeue failed)");
	printf("; runs: %zu of %zu done, %zu failed\n", n, c.runs, failed);
	collected_free(&c);
	return 0;
}

static int sweep_collect(const char *dirarg, const char *outarg)
{
	struct collected c;
	unsigned bad = 0;
	char out[PATH_MAX + 64], tmp[PATH_MAX + 80];
	int rc = collected_load(dirarg, &c, &bad);

	if (rc)
		return rc;
	if (outarg)
		snprintf(out, sizeof(out), "%s", outarg);
	else
		snprintf(out, sizeof(out), "%s/results.jsonl", dirarg);
	bool *keep = calloc(c.n + 1, 1);
	size_t failed, n = collected_last(&c, keep, &failed);
	snprintf(tmp, sizeof(tmp), "%s.tmp%d", out, (int)getpid());
	FILE *f = fopen(tmp, "w");
	if (!f) {
		fprintf(stderr, "vmmu sweep: --collect: %s: %s\n", out, strerror(errno));
		free(keep);
		collected_free(&c);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < c.n; i++)
		if (keep[i])
			fprintf(f, "%s\n", c.text[i]);
	if (fclose(f) || rename(tmp, out)) {
		fprintf(stderr, "vmmu sweep: --collect: %s: %s\n", out, strerror(errno));
		unlink(tmp);
		rc = 1;
	}
	free(keep);
	if (!rc) {
		printf("vmmu sweep: collected %zu of %zu runs (%zu failed) into %s\n", n, c.runs, failed, out);
		if (n < c.runs)
			fprintf(stderr, "vmmu sweep: %zu runs have no result yet ('vmmu sweep --status %s')\n",
				c.runs - n, dirarg);
		rc = n < c.runs || failed ? 1 : 0;
	}
	if (bad)
		fprintf(stderr, "vmmu sweep: %u unreadable lines skipped\n", bad);
	collected_free(&c);
	return rc;
}

/* ---- the command ---- */

enum {
	O_OUT = 256, O_TIMEOUT, O_LIST, O_RETRY, O_TASK, O_OF, O_BASE, O_SLURM, O_PART, O_TIME,
	O_MEM, O_PER, O_SBATCH, O_STATUS, O_COLLECT, O_QUIET, O_HELP,
};

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
	uint64_t v;

	if (vmmu_parse_uint(s, max, &v) || v < min)
		return -1;
	*out = (unsigned)v;
	return 0;
}

int cmd_sweep(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "jobs", required_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, O_TIMEOUT },
		{ "list", no_argument, NULL, O_LIST },
		{ "dry-run", no_argument, NULL, O_LIST },
		{ "retry-failed", no_argument, NULL, O_RETRY },
		{ "task", required_argument, NULL, O_TASK },
		{ "of", required_argument, NULL, O_OF },
		{ "base", required_argument, NULL, O_BASE },
		{ "slurm", required_argument, NULL, O_SLURM },
		{ "partition", required_argument, NULL, O_PART },
		{ "time", required_argument, NULL, O_TIME },
		{ "mem", required_argument, NULL, O_MEM },
		{ "runs-per-task", required_argument, NULL, O_PER },
		{ "sbatch-arg", required_argument, NULL, O_SBATCH },
		{ "status", required_argument, NULL, O_STATUS },
		{ "collect", required_argument, NULL, O_COLLECT },
		{ "quiet", no_argument, NULL, O_QUIET },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .task = -1 };
	unsigned v;
	int opt;

	optind = 0;   /* 0, not 1: glibc forgets a scan stopped inside "-abc" only so */
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":j:o:h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'j':
			if (parse_uint(optarg, 1, MAX_JOBS, &o.jobs))
				return usage_err("-j '%s': expected 1 to 256 runs at once", optarg);
			break;
		case 'o':
			o.out = optarg;
			break;
		case O_TIMEOUT:
			if (parse_uint(optarg, 1, 1u << 30, &o.timeout))
				return usage_err("--timeout '%s': expected seconds, at least 1", optarg);
			break;
		case O_LIST:
			o.list = true;
			break;
		case O_RETRY:
			o.retry_failed = true;
			break;
		case O_TASK:
			if (parse_uint(optarg, 0, 1u << 30, &v))
				return usage_err("--task '%s': expected a task number", optarg);
			o.task = v;
			break;
		case O_OF:
			if (parse_uint(optarg, 1, 1u << 30, &v))
				return usage_err("--of '%s': expected the number of tasks", optarg);
			o.of = v;
			break;
		case O_BASE:
			o.base = optarg;
			break;
		case O_SLURM:
			o.slurm = optarg;
			break;
		case O_PART:
			o.partition = optarg;
			break;
		case O_TIME:
			o.time = optarg;
			break;
		case O_MEM:
			o.mem = optarg;
			break;
		case O_PER:
			if (parse_uint(optarg, 1, 1u << 30, &o.per_task))
				return usage_err("--runs-per-task '%s': expected a number, at least 1", optarg);
			break;
		case O_SBATCH:
			if (o.nsbatch == 16)
				return usage_err("too many --sbatch-arg");
			o.sbatch_args[o.nsbatch++] = optarg;
			break;
		case O_STATUS:
			o.status = optarg;
			break;
		case O_COLLECT:
			o.collect = optarg;
			break;
		case O_QUIET:
			o.quiet = true;
			break;
		case 'h':
		case O_HELP:
			help_command("sweep");
			return 0;
		case ':':
			return usage_err("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_err("unknown option '%s' ('vmmu help sweep' lists the options)", argv[optind - 1]);
		}
	}
	if (o.status || o.collect) {
		if (o.status && o.collect)
			return usage_err("--status or --collect, not both");
		if (optind < argc)
			return usage_err("--status/--collect take a folder, not a spec ('%s')", argv[optind]);
		return o.status ? sweep_status(o.status) : sweep_collect(o.collect, o.out);
	}
	if (optind == argc)
		return usage_err("which spec? (vmmu sweep SPEC.json; docs/sweeps.md describes it)");
	if (argc - optind > 1)
		return usage_err("one spec at a time ('%s' is extra)", argv[optind + 1]);
	o.spec = argv[optind];
	if ((o.task >= 0) != (o.of > 0))
		return usage_err("--task K and --of N go together");
	if (o.of && o.task >= o.of)
		return usage_err("--task must be below --of");
	if (!o.slurm && (o.partition || o.time || o.mem || o.per_task || o.nsbatch))
		return usage_err("--partition, --time, --mem, --runs-per-task and --sbatch-arg go with --slurm DIR");
	if (o.slurm && (o.of || o.list || o.out))
		return usage_err("--slurm DIR: the tasks write their results in DIR (no -o, --task or --list)");
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
	if (n <= 0) {
		fprintf(stderr, "vmmu sweep: cannot find this program (/proc/self/exe): %s\n", strerror(errno));
		return 1;
	}
	self_exe[n] = 0;
	if (o.slurm)
		return sweep_slurm(&o);
	if (!o.jobs) {
		/* The CPUs this process may run on (taskset, a cgroup cpuset), not the machine's. */
		cpu_set_t set;
		long cpus = sched_getaffinity(0, sizeof(set), &set) ? sysconf(_SC_NPROCESSORS_ONLN) : CPU_COUNT(&set);
		o.jobs = cpus < 1 ? 1 : cpus > MAX_JOBS ? MAX_JOBS : (unsigned)cpus;
	}
	return sweep_local(&o);
}
