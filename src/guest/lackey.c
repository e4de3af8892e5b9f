/* SPDX-License-Identifier: MIT */
/*
 * valgrind lackey traces (`valgrind --tool=lackey --trace-mem=yes`): the parser of one line and a
 * buffered reader of plain or gzip'd files (zlib reads both: a file without the gzip magic is
 * passed through as is).
 *
 * The format, as lackey prints it (lk_main.c): "I  ADDR,SIZE" for an instruction fetch, " L",
 * " S" and " M" ADDR,SIZE for a load, a store and a modify (load then store); ADDR is hex without
 * 0x, SIZE decimal. Lines that begin "==PID==" or "--PID--" are valgrind's own messages and are
 * skipped. Spaces around the fields and a trailing CR are tolerated; anything else (an empty line
 * included) is malformed, and the reader reports its number and text.
 *
 * The reader decodes lines into batches of records; the caller takes them one at a time. A line
 * in lackey's own layout is decoded in one pass over its bytes (parse_fast); anything else goes
 * through vmmu_lackey_parse, so both accept exactly the same lines. With VMMU_LACKEY_READAHEAD a
 * thread of the reader's own reads, inflates and decodes batches ahead of the caller (a ring of
 * NR_BATCHES), so a replay pays neither zlib nor the parser on its own thread. A batch carries
 * how it ends (more, the end, or an error after its records), so the caller meets an error at
 * exactly the record where it would have without read-ahead. The line buffer starts small and
 * grows while reads fill it, so a small trace costs a small reader.
 * Locking: a reader belongs to its caller. With read-ahead, `mu` guards `filled` and `stop`; a
 * batch slot belongs to the thread until it is counted in `filled` (a release under mu), then to
 * the caller until the caller takes the next one; the zlib stream and the line buffer are the
 * thread's alone, the consumer fields (cur, ci, lineno, err, in_bytes) the caller's alone.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vmmu/guest.h"

#define READ_CHUNK (1u << 20)   /* also the longest line the reader accepts */
#define BUF_FIRST  (64u << 10)  /* the line buffer starts here (a small trace stays small)... */
#define BUF_MAX    (2 * READ_CHUNK)   /* ...and grows to this while reads fill it */

/* Hex digit values, -1 for anything else: the parser's inner loop is a table lookup. */
static const int8_t hex_tab[256] = {
	['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
	['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15,
	['f'] = 16, ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};   /* value + 1, so that the zero-filled rest means "not a digit" */

static inline int hexval(char ch)
{
	return hex_tab[(unsigned char)ch] - 1;
}

int vmmu_lackey_parse(const char *line, size_t len, struct vmmu_lackey_rec *rec)
{
	const char *p = line, *e = line + len;
	uint64_t addr = 0, size = 0;
	unsigned nd;
	int d;

	while (e > p && (e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (e - p >= 2 && ((p[0] == '=' && p[1] == '=') || (p[0] == '-' && p[1] == '-')))
		return 0;
	while (p < e && *p == ' ')
		p++;
	if (p == e)
		return -EINVAL;
	switch (*p) {
	case 'I': rec->kind = VMMU_LACKEY_INSTR; break;
	case 'L': rec->kind = VMMU_LACKEY_LOAD; break;
	case 'S': rec->kind = VMMU_LACKEY_STORE; break;
	case 'M': rec->kind = VMMU_LACKEY_MODIFY; break;
	default: return -EINVAL;
	}
	p++;
	if (p == e || *p != ' ')
		return -EINVAL;
	while (p < e && *p == ' ')
		p++;
	for (nd = 0; p < e && (d = hexval(*p)) >= 0; p++, nd++) {
		if (nd == 16)
			return -EINVAL;
		addr = addr << 4 | (uint64_t)d;
	}
	if (!nd || p == e || *p != ',')
		return -EINVAL;
	p++;
	for (nd = 0; p < e && *p >= '0' && *p <= '9'; p++, nd++) {
		size = size * 10 + (uint64_t)(*p - '0');
		if (size > VMMU_LACKEY_MAX_SIZE)
			return -EINVAL;
	}
	if (!nd || p != e || !size)
		return -EINVAL;
	rec->addr = addr;
	rec->size = (uint32_t)size;
	return 1;
}

/* A record as the reader hands it over, with the line it came from. */
struct lk_rec {
	uint64_t addr;
	uint64_t lineno;
	uint32_t size;
	uint32_t kind;
};

#define BATCH_RECS 4096
#define NR_BATCHES 8

enum { BATCH_MORE, BATCH_END, BATCH_ERROR };

struct lk_batch {
	struct lk_rec rec[BATCH_RECS];
	unsigned n;
	int end;                 /* BATCH_*: what follows the records */
	int rc;                  /* BATCH_ERROR: the error */
	uint64_t lineno;         /* lines read when the batch was closed (an error's line) */
	uint64_t in_bytes;       /* bytes of the file consumed by then */
	char err[256];           /* BATCH_ERROR: the message */
};

struct vmmu_lackey_reader {
	/* The producer's (the read-ahead thread, or the caller without one). Each side's fields
	 * have their own cache lines: both write theirs once a record. */
	gzFile gz;
	char *buf;
	size_t len, pos;         /* unread bytes are buf[pos, len); buf[len] is a NUL sentinel */
	size_t cap;              /* bytes of buf, the sentinel's included */
	bool last_full;          /* the last read filled the buffer: the trace is larger */
	bool eof;
	uint64_t plineno;
	uint64_t file_bytes;
	struct lk_batch *b;      /* NR_BATCHES slots (1 without read-ahead) */
	/* Read-ahead. */
	_Alignas(64) bool threaded;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned filled;         /* mu: batches ready, the caller's current one included */
	bool stop;               /* mu: close asked the thread to end */
	bool waiting[2];         /* mu: the thread [0], the caller [1] waits on cv (a wake-up is a
				  * system call: made only for a side that waits) */
	/* The caller's. */
	_Alignas(64) struct lk_batch *cb;   /* the slots again: b's line is the producer's */
	struct lk_batch *cur;    /* cb[head], the caller's, once it took a first batch */
	unsigned head;           /* the batch being consumed */
	unsigned ci;             /* its next record */
	uint64_t lineno;
	uint64_t in_bytes;
	char err[256];
};

/* The line for an error message: at most 60 characters, unprintable ones as '?'. */
static void quote_line(char *dst, size_t cap, const char *line, size_t len)
{
	size_t n = len > 60 ? 60 : len, j = 0;

	for (size_t i = 0; i < n && j + 1 < cap; i++)
		dst[j++] = (line[i] >= 0x20 && line[i] < 0x7f) ? line[i] : '?';
	if (len > n && j + 3 < cap) {
		memcpy(dst + j, "...", 3);
		j += 3;
	}
	dst[j] = '\0';
}

/* Did the last gzread stop on damaged data rather than at the end? */
static bool gz_failed(gzFile gz)
{
	int errnum;

	gzerror(gz, &errnum);
	return errnum != Z_OK && errnum != Z_STREAM_END;
}

static int fill(struct vmmu_lackey_reader *r, char *err, size_t errlen)
{
	int n;

	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if ((r->last_full || r->len == r->cap - 1) && r->cap - 1 < BUF_MAX) {
		/* A large trace (the last read filled the buffer) or a long line: read more at once. */
		size_t cap = (r->cap - 1) * 4 > BUF_MAX ? BUF_MAX : (r->cap - 1) * 4;
		char *nb = realloc(r->buf, cap + 1);

		if (!nb) {
			snprintf(err, errlen, "after line %" PRIu64 ": out of memory", r->plineno);
			return -ENOMEM;
		}
		r->buf = nb;
		r->cap = cap + 1;
	}
	size_t room = r->cap - 1 - r->len;
	unsigned ask = room > READ_CHUNK ? READ_CHUNK : (unsigned)room;
	n = gzread(r->gz, r->buf + r->len, ask);
	r->last_full = n > 0 && (unsigned)n == ask;
	if (n < 0 || (n == 0 && gz_failed(r->gz))) {
		int errnum;
		const char *msg = gzerror(r->gz, &errnum);

		/* zlib names the file by its descriptor ("<fd:3>: "): the caller names it. */
		if (!strncmp(msg, "<fd:", 4) && strstr(msg, ": "))
			msg = strstr(msg, ": ") + 2;
		if (errnum == Z_ERRNO) {
			snprintf(err, errlen, "after line %" PRIu64 ": read error: %s",
				 r->plineno, strerror(errno));
			return -EIO;
		}
		/* Bad input: the data is damaged, not the reading. Where it broke is a byte of the
		 * compressed file (the lines before it may still sit in the buffer, unparsed). */
		snprintf(err, errlen, "a truncated or corrupt gzip file: %s, at byte %lld of "
			 "the compressed file", msg, (long long)gzoffset(r->gz));
		return -EINVAL;
	}
	if (n == 0)
		r->eof = true;
	r->len += (size_t)n;
	r->buf[r->len] = '\0';
	return 0;
}

/* A line exactly as lackey prints it, ending in a newline inside the buffer (the NUL sentinel
 * stops every loop at its end): 1 with the record and @*next past the newline; 0 anything
 * else, for vmmu_lackey_parse to judge. Every line this accepts, vmmu_lackey_parse accepts
 * with the same record. */
static inline int parse_fast(const char *p, struct lk_rec *rec, const char **next)
{
	uint64_t addr = 0;
	uint32_t size = 0;
	unsigned nd;
	int d;

	if (p[0] == 'I') {
		if (p[1] != ' ' || p[2] != ' ')
			return 0;
		rec->kind = VMMU_LACKEY_INSTR;
	} else if (p[0] == ' ') {
		switch (p[1]) {
		case 'L': rec->kind = VMMU_LACKEY_LOAD; break;
		case 'S': rec->kind = VMMU_LACKEY_STORE; break;
		case 'M': rec->kind = VMMU_LACKEY_MODIFY; break;
		default: return 0;
		}
		if (p[2] != ' ')
			return 0;
	} else {
		return 0;
	}
	p += 3;
	for (nd = 0; (d = hexval(*p)) >= 0; p++) {
		if (++nd > 16)
			return 0;
		addr = addr << 4 | (uint64_t)d;
	}
	if (!nd || *p != ',')
		return 0;
	p++;
	for (nd = 0; *p >= '0' && *p <= '9'; p++) {
		if (++nd > 6)
			return 0;
		size = size * 10 + (uint32_t)(*p - '0');
	}
	if (!nd || *p != '\n' || !size || size > VMMU_LACKEY_MAX_SIZE)
		return 0;
	rec->addr = addr;
	rec->size = size;
	*next = p + 1;
	return 1;
}

/* The next line through vmmu_lackey_parse: 1 a record, 0 the end, <0 an error in @b. */
static int read_slow(struct vmmu_lackey_reader *r, struct lk_rec *out, struct lk_batch *b)
{
	for (;;) {
		char *line = r->buf + r->pos;
		char *nl = memchr(line, '\n', r->len - r->pos);
		struct vmmu_lackey_rec rec;
		size_t llen;
		int rc;

		if (!nl) {
			if (!r->eof && r->len - r->pos < READ_CHUNK) {
				rc = fill(r, b->err, sizeof(b->err));
				if (rc)
					return rc;
				continue;
			}
			if (r->pos == r->len)
				return 0;
			if (!r->eof) {
				snprintf(b->err, sizeof(b->err), "line %" PRIu64 ": longer than %u bytes",
					 r->plineno + 1, READ_CHUNK);
				return -EINVAL;
			}
			llen = r->len - r->pos;   /* the last line, without a newline */
			r->pos = r->len;
		} else {
			llen = (size_t)(nl - line);
			r->pos += llen + 1;
		}
		r->plineno++;
		rc = vmmu_lackey_parse(line, llen, &rec);
		if (rc > 0) {
			out->addr = rec.addr;
			out->size = rec.size;
			out->kind = rec.kind;
			out->lineno = r->plineno;
			return 1;
		}
		if (rc < 0) {
			char q[80];
			quote_line(q, sizeof(q), line, llen);
			snprintf(b->err, sizeof(b->err), "line %" PRIu64 ": malformed: '%s'", r->plineno, q);
			return -EINVAL;
		}
	}
}

/* Decode the next batch into @b. */
static void produce(struct vmmu_lackey_reader *r, struct lk_batch *b)
{
	const char *next;
	int rc = 1;

	b->n = 0;
	b->end = BATCH_MORE;
	while (b->n < BATCH_RECS) {
		struct lk_rec *rec = &b->rec[b->n];

		if (parse_fast(r->buf + r->pos, rec, &next)) {
			r->pos = (size_t)(next - r->buf);
			rec->lineno = ++r->plineno;
			b->n++;
			continue;
		}
		rc = read_slow(r, rec, b);
		if (rc <= 0)
			break;
		b->n++;
	}
	if (rc == 0)
		b->end = BATCH_END;
	else if (rc < 0)
		b->end = BATCH_ERROR;
	b->rc = rc;
	b->lineno = r->plineno;
	b->in_bytes = (uint64_t)gzoffset(r->gz);
}

static void *readahead_main(void *arg)
{
	struct vmmu_lackey_reader *r = arg;
	unsigned tail = 0;

	for (;;) {
		pthread_mutex_lock(&r->mu);
		while (r->filled == NR_BATCHES && !r->stop) {
			r->waiting[0] = true;
			pthread_cond_wait(&r->cv, &r->mu);
			r->waiting[0] = false;
		}
		bool stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			return NULL;
		struct lk_batch *b = &r->b[tail];
		produce(r, b);
		pthread_mutex_lock(&r->mu);
		r->filled++;
		if (r->waiting[1])
			pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		if (b->end != BATCH_MORE)
			return NULL;
		tail = (tail + 1) % NR_BATCHES;
	}
}

int vmmu_lackey_open_flags(const char *path, unsigned flags, struct vmmu_lackey_reader **out)
{
	struct vmmu_lackey_reader *r;
	struct stat st;
	int fd;

	*out = NULL;
	if (flags & ~VMMU_LACKEY_READAHEAD)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || S_ISDIR(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
		close(fd);
		return -e;
	}
	r = aligned_alloc(64, sizeof(*r));   /* sizeof is a multiple of the alignment */
	if (r) {
		memset(r, 0, sizeof(*r));
		r->buf = malloc(BUF_FIRST + 1);
		r->cap = BUF_FIRST + 1;
		/* Not zeroed: a batch is read only after produce() filled it. */
		r->b = malloc(((flags & VMMU_LACKEY_READAHEAD) ? NR_BATCHES : 1) * sizeof(*r->b));
	}
	if (!r || !r->buf || !r->b) {
		if (r) {
			free(r->buf);
			free(r->b);
		}
		free(r);
		close(fd);
		return -ENOMEM;
	}
	r->buf[0] = '\0';
	r->cb = r->b;
	r->gz = gzdopen(fd, "rb");
	if (!r->gz) {
		close(fd);
		free(r->buf);
		free(r->b);
		free(r);
		return -ENOMEM;
	}
	gzbuffer(r->gz, st.st_size < (256 << 10) ? 16 * 1024 : 256 * 1024);
	r->file_bytes = (uint64_t)st.st_size;
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	if (flags & VMMU_LACKEY_READAHEAD) {
		int rc = pthread_create(&r->thread, NULL, readahead_main, r);
		if (rc) {
			vmmu_lackey_close(r);
			return -rc;
		}
		r->threaded = true;
	}
	*out = r;
	return 0;
}

int vmmu_lackey_open(const char *path, struct vmmu_lackey_reader **out)
{
	return vmmu_lackey_open_flags(path, 0, out);
}

/* The caller's next batch: decoded here, or waited for from the read-ahead thread. */
static struct lk_batch *next_batch(struct vmmu_lackey_reader *r)
{
	if (!r->threaded) {
		produce(r, &r->cb[0]);
		return &r->cb[0];
	}
	pthread_mutex_lock(&r->mu);
	if (r->cur) {
		r->filled--;   /* the slot goes back to the thread */
		r->head = (r->head + 1) % NR_BATCHES;
		if (r->waiting[0])
			pthread_cond_broadcast(&r->cv);
	}
	while (!r->filled) {
		r->waiting[1] = true;
		pthread_cond_wait(&r->cv, &r->mu);
		r->waiting[1] = false;
	}
	pthread_mutex_unlock(&r->mu);
	return &r->cb[r->head];
}

int vmmu_lackey_next(struct vmmu_lackey_reader *r, struct vmmu_lackey_rec *rec)
{
	struct lk_batch *b = r->cur;

	while (!b || r->ci == b->n) {
		if (b && b->end != BATCH_MORE) {
			r->lineno = b->lineno;
			if (b->end == BATCH_END)
				return 0;
			snprintf(r->err, sizeof(r->err), "%s", b->err);
			return b->rc;
		}
		b = r->cur = next_batch(r);
		r->ci = 0;
		r->in_bytes = b->in_bytes;
	}
	const struct lk_rec *x = &b->rec[r->ci++];
	/* The batch was written on the read-ahead thread's core: ask for its lines ahead. */
	__builtin_prefetch(x + 16);
	rec->kind = (enum vmmu_lackey_kind)x->kind;
	rec->addr = x->addr;
	rec->size = x->size;
	r->lineno = x->lineno;
	return 1;
}

const char *vmmu_lackey_error(const struct vmmu_lackey_reader *r)
{
	return r->err;
}

uint64_t vmmu_lackey_lineno(const struct vmmu_lackey_reader *r)
{
	return r->lineno;
}

double vmmu_lackey_progress(const struct vmmu_lackey_reader *r)
{
	if (!r->file_bytes)
		return 1.0;
	double f = (double)r->in_bytes / (double)r->file_bytes;
	return f > 1.0 ? 1.0 : f;
}

void vmmu_lackey_close(struct vmmu_lackey_reader *r)
{
	if (!r)
		return;
	if (r->threaded) {
		pthread_mutex_lock(&r->mu);
		r->stop = true;
		pthread_cond_broadcast(&r->cv);
		pthread_mutex_unlock(&r->mu);
		pthread_join(r->thread, NULL);
	}
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	gzclose(r->gz);
	free(r->buf);
	free(r->b);
	free(r);
}
