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
 * Locking: none; a reader belongs to its caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vmmu/guest.h"

#define READ_CHUNK (1u << 20)   /* also the longest line the reader accepts */

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

struct vmmu_lackey_reader {
	gzFile gz;
	char *buf;
	size_t len, pos;       /* unread bytes are buf[pos, len) */
	bool eof;
	uint64_t lineno;
	uint64_t file_bytes;
	char err[256];
};

int vmmu_lackey_open(const char *path, struct vmmu_lackey_reader **out)
{
	struct vmmu_lackey_reader *r;
	struct stat st;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) || S_ISDIR(st.st_mode)) {
		int e = S_ISDIR(st.st_mode) ? EISDIR : errno;
		close(fd);
		return -e;
	}
	r = calloc(1, sizeof(*r));
	if (r)
		r->buf = malloc(2 * READ_CHUNK);
	if (!r || !r->buf) {
		free(r);
		close(fd);
		return -ENOMEM;
	}
	r->gz = gzdopen(fd, "rb");
	if (!r->gz) {
		close(fd);
		free(r->buf);
		free(r);
		return -ENOMEM;
	}
	gzbuffer(r->gz, 256 * 1024);
	r->file_bytes = (uint64_t)st.st_size;
	*out = r;
	return 0;
}

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

static int fill(struct vmmu_lackey_reader *r)
{
	int n;

	if (r->pos) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	n = gzread(r->gz, r->buf + r->len, READ_CHUNK);
	if (n < 0 || (n == 0 && gz_failed(r->gz))) {
		int errnum;
		const char *msg = gzerror(r->gz, &errnum);

		/* zlib names the file by its descriptor ("<fd:3>: "): the caller names it. */
		if (!strncmp(msg, "<fd:", 4) && strstr(msg, ": "))
			msg = strstr(msg, ": ") + 2;
		if (errnum == Z_ERRNO) {
			snprintf(r->err, sizeof(r->err), "after line %" PRIu64 ": read error: %s",
				 r->lineno, strerror(errno));
			return -EIO;
		}
		/* Bad input: the data is damaged, not the reading. Where it broke is a byte of the
		 * compressed file (the lines before it may still sit in the buffer, unparsed). */
		snprintf(r->err, sizeof(r->err), "a truncated or corrupt gzip file: %s, at byte %lld of "
			 "the compressed file", msg, (long long)gzoffset(r->gz));
		return -EINVAL;
	}
	if (n == 0)
		r->eof = true;
	r->len += (size_t)n;
	return 0;
}

int vmmu_lackey_next(struct vmmu_lackey_reader *r, struct vmmu_lackey_rec *rec)
{
	for (;;) {
		char *line = r->buf + r->pos;
		char *nl = memchr(line, '\n', r->len - r->pos);
		size_t llen;
		int rc;

		if (!nl) {
			if (!r->eof && r->len - r->pos < READ_CHUNK) {
				rc = fill(r);
				if (rc)
					return rc;
				continue;
			}
			if (r->pos == r->len)
				return 0;
			if (!r->eof) {
				snprintf(r->err, sizeof(r->err), "line %" PRIu64 ": longer than %u bytes",
					 r->lineno + 1, READ_CHUNK);
				return -EINVAL;
			}
			llen = r->len - r->pos;   /* the last line, without a newline */
			r->pos = r->len;
		} else {
			llen = (size_t)(nl - line);
			r->pos += llen + 1;
		}
		r->lineno++;
		rc = vmmu_lackey_parse(line, llen, rec);
		if (rc > 0)
			return 1;
		if (rc < 0) {
			char q[80];
			quote_line(q, sizeof(q), line, llen);
			snprintf(r->err, sizeof(r->err), "line %" PRIu64 ": malformed: '%s'", r->lineno, q);
			return -EINVAL;
		}
	}
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
	double f = (double)gzoffset(r->gz) / (double)r->file_bytes;
	return f > 1.0 ? 1.0 : f;
}

void vmmu_lackey_close(struct vmmu_lackey_reader *r)
{
	if (!r)
		return;
	gzclose(r->gz);
	free(r->buf);
	free(r);
}
