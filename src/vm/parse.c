/* SPDX-License-Identifier: MIT */
/*
 * vmmu_parse_uint: the one reading of a count for every user-facing parser (the CLI's options,
 * the workloads' parameters, --cost): decimal digits only, so no option takes "010" as octal or
 * "0x10" as hex, and no leading blank slips through. No state, no locks.
 */
#include <errno.h>

#include "vmmu/vmmu.h"

int vmmu_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (!s || !out || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return -EINVAL;     /* not a number, however long */
	for (; *s; s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	if (v > max)
		return -ERANGE;
	*out = v;
	return 0;
}
