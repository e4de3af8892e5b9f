/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the parsers of user input, on any bytes. The first byte picks one: a valgrind
 * lackey line (vmmu_lackey_parse), a page-walk scenario line (scn_parse, whose successes must
 * format and parse back to the same scenario), a count (vmmu_parse_uint: digits only, and the value
 * they spell), a size (vmmu_parse_size), a whole lackey trace file (the reader, which decodes
 * lackey's own layout in a pass of its own and reads ahead on a thread: it must give exactly the
 * records, line numbers and first error that vmmu_lackey_parse gives line by line). Each must
 * return a defined result on anything, never read past the input, never crash. CI runs it for a
 * fixed number of inputs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "validate/scenario.h"
#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The input after its selector byte as a C string (the parsers take NUL-terminated lines). */
static char *as_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

static void fuzz_scenario(const char *line)
{
	struct scenario s, s2;
	char err[256], buf[2048], buf2[2048];

	if (strlen(line) > 1023 || scn_parse(line, &s, err, sizeof(err)))
		return;
	/* What parses formats, and its formatting parses back to what formats the same. */
	if (scn_format(&s, buf, sizeof(buf)) < 0)
		return;
	if (scn_parse(buf, &s2, err, sizeof(err)) || scn_format(&s2, buf2, sizeof(buf2)) < 0 ||
	    strcmp(buf, buf2))
		abort();
}

static void fuzz_count(const char *s)
{
	uint64_t v, ref = 0;
	int rc = vmmu_parse_uint(s, UINT64_MAX, &v);
	bool digits = *s != '\0';

	for (const char *p = s; *p; p++)
		digits &= *p >= '0' && *p <= '9';
	if (!digits) {
		if (rc != -EINVAL)
			abort();
		return;
	}
	/* Digits: the value, unless it does not fit. */
	for (const char *p = s; *p && ref <= UINT64_MAX / 100; p++)
		ref = ref * 10 + (uint64_t)(*p - '0');
	if (!rc && strlen(s) < 18 && v != ref)
		abort();
	if (rc && rc != -ERANGE)
		abort();
}

/* The reader over a file of these bytes against vmmu_lackey_parse line by line. */
static void fuzz_trace_file(const char *text, size_t len, unsigned flags)
{
	struct vmmu_lackey_reader *r;
	struct vmmu_lackey_rec rec, want;
	char path[64];
	const char *p = text, *end = text + len;
	uint64_t line = 0;
	int fd = memfd_create("lackey", 0), rc;

	if (fd < 0 || write(fd, text, len) != (ssize_t)len)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (vmmu_lackey_open_flags(path, flags, &r))
		abort();
	for (;;) {
		/* The next line as the reader splits them: up to a newline, or the rest. */
		const char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		int want_rc;

		if (p == end) {
			want_rc = 0;
		} else {
			line++;
			want_rc = vmmu_lackey_parse(p, n, &want);
			p = nl ? nl + 1 : end;
			if (want_rc == 0)
				continue;
		}
		rc = vmmu_lackey_next(r, &rec);
		if (rc != want_rc)
			abort();
		if (rc <= 0)
			break;
		if (rec.kind != want.kind || rec.addr != want.addr || rec.size != want.size ||
		    vmmu_lackey_lineno(r) != line)
			abort();
	}
	if (rc < 0 && vmmu_lackey_lineno(r) != line)
		abort();
	vmmu_lackey_close(r);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmmu_lackey_rec rec;
	uint64_t v;
	char *s;

	if (!size)
		return 0;
	s = as_string(data + 1, size - 1);
	/* A whole file costs a file and a reader an input (and a thread with read-ahead): one
	 * selector in sixteen, read-ahead for one of those in eight. */
	if ((data[0] & 0x0f) == 0x0f) {
		fuzz_trace_file(s, size - 1, (data[0] & 0x70) == 0x70 ? VMMU_LACKEY_READAHEAD : 0);
		free(s);
		return 0;
	}
	switch (data[0] % 4) {
	case 0: {
		int rc = vmmu_lackey_parse(s, size - 1, &rec);
		if (rc != 0 && rc != 1 && rc != -EINVAL)
			abort();
		if (rc == 1 && (rec.size == 0 || rec.size > VMMU_LACKEY_MAX_SIZE))
			abort();
		break;
	}
	case 1:
		fuzz_scenario(s);
		break;
	case 2:
		fuzz_count(s);
		break;
	case 3:
		(void)vmmu_parse_size(s, &v);
		break;
	}
	free(s);
	return 0;
}
