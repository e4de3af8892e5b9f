/*
 * Replay speed of valgrind lackey traces, records per second, both sides in one run:
 *   read            the trace reader alone (vmmu_lackey_next over every record, no read-ahead):
 *                   what reading and decoding the file costs, the floor of a replay on one thread
 *   read-ahead      the same with the reader's own thread (VMMU_LACKEY_READAHEAD)
 *   replay MODE     `vmmu run trace` through the library (vmmu_run, one vCPU): the records made
 *                   guest accesses by one guest process, as replayed by default (read-ahead,
 *                   the records of a time slice in one batch of accesses)
 *   replay MODE, one by one   the same with batch=off: one record a scheduler step, each access
 *                   its own call (the replay as it was before batches; the same run, digest and
 *                   counts)
 * Each figure is the best of R rounds (the median beside); the ratio is to `read` in the same run.
 * The trace is -f FILE (plain or gzip'd; `valgrind --tool=lackey --trace-mem=yes PROGRAM`), or
 * by default a synthetic one written to a temporary file: -n million records of a loop's
 * instruction fetches, stack loads and stores, and a walk of a 4 MiB heap, in lackey's layout
 * (with -z gzip'd, level 1).
 * Usage: bench_trace [-f FILE | -n MILLION_RECORDS [-z]] [-R ROUNDS] [-m MODE,...]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "vmmu/guest.h"
#include "vmmu/vmmu.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

__attribute__((noreturn)) static void die(const char *what, const char *why)
{
	fprintf(stderr, "bench_trace: %s: %s\n", what, why);
	exit(1);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* A program's trace in lackey's layout: a 48-instruction loop body with stack traffic, every
 * 16th iteration a stride through a 4 MiB heap, now and then a modify and a 16-byte load. */
static void synth(const char *path, uint64_t records, bool gz)
{
	gzFile z = gzopen(path, gz ? "wb1" : "wbT");
	uint64_t n = 0, it = 0, heap = 0;
	char line[64];

	if (!z)
		die(path, "cannot write");
	while (n < records) {
		for (unsigned i = 0; i < 48 && n < records; i++, n++) {
			uint64_t pc = 0x401000 + (it % 64) * 256 + i * 4;
			int len;

			if (i % 4 == 1)
				len = snprintf(line, sizeof(line), " L 1ffefff%03llx,8\n",
					       (unsigned long long)(0x800 + (i * 8) % 0x700));
			else if (i % 8 == 3)
				len = snprintf(line, sizeof(line), " S 1ffefff%03llx,8\n",
					       (unsigned long long)(0x800 + (i * 24) % 0x700));
			else if (i == 17 && it % 16 == 0)
				len = snprintf(line, sizeof(line), " L %llx,8\n",
					       (unsigned long long)(0x4b0000 + (heap++ * 72) % (4 << 20)));
			else if (i == 29 && it % 64 == 0)
				len = snprintf(line, sizeof(line), " M %llx,4\n",
					       (unsigned long long)(0x4b0000 + (it * 8) % (4 << 20)));
			else if (i == 41 && it % 32 == 0)
				len = snprintf(line, sizeof(line), " L %llx,16\n",
					       (unsigned long long)(0x4b0000 + (it * 64) % (4 << 20)));
			else
				len = snprintf(line, sizeof(line), "I  %08llx,%u\n",
					       (unsigned long long)pc, 1 + i % 7);
			if (gzwrite(z, line, (unsigned)len) != len)
				die(path, "write failed");
		}
		it++;
	}
	if (gzclose(z) != Z_OK)
		die(path, "write failed");
}

static double read_all(const char *path, unsigned flags, uint64_t *records)
{
	struct vmmu_lackey_reader *r;
	struct vmmu_lackey_rec rec;
	uint64_t n = 0, sum = 0;
	double t = now();
	int rc;

	if ((rc = vmmu_lackey_open_flags(path, flags, &r)))
		die(path, "cannot open");
	while ((rc = vmmu_lackey_next(r, &rec)) == 1) {
		n++;
		sum += rec.addr ^ rec.size;
	}
	if (rc < 0)
		die(path, vmmu_lackey_error(r));
	vmmu_lackey_close(r);
	t = now() - t;
	*records = n + (sum == 42);   /* sum keeps the loop */
	return t;
}

static double replay(const char *path, enum vmmu_mmu mmu, bool batch, uint64_t *records,
		     uint64_t *digest)
{
	char kv0[4200], err[256];
	const char *kv[2] = { kv0, batch ? "batch=on" : "batch=off" };
	struct vmmu_workload_args a;
	struct vmmu_guest_config cfg = {
		.vm = { .mmu = mmu, .host = mmu == VMMU_MMU_NPT ? VMMU_HOST_SVM : VMMU_HOST_VMX },
		.vcpus = 1, .seed = 1, .mem_bytes = 1ULL << 30,
	};
	struct vmmu_guest_result res;

	snprintf(kv0, sizeof(kv0), "file=%s", path);
	if (vmmu_workload_args("trace", kv, 2, &a, err, sizeof(err)) || vmmu_run(&cfg, &a, &res, err, sizeof(err)))
		die("vmmu_run", err);
	*records = res.trace_records;
	*digest = res.digest;
	return res.seconds;
}

int main(int argc, char **argv)
{
	static const struct { const char *name; enum vmmu_mmu mmu; } modes[] = {
		{ "native", VMMU_MMU_NATIVE }, { "shadow", VMMU_MMU_SHADOW },
		{ "ept", VMMU_MMU_EPT }, { "npt", VMMU_MMU_NPT },
	};
	const char *file = NULL, *want = "native,shadow,ept,npt";
	char tmp[] = "/tmp/bench_trace_XXXXXX";
	double millions = 20;
	unsigned rounds = 3;
	bool gz = false;
	int opt;

	while ((opt = getopt(argc, argv, "f:n:zR:m:")) != -1) {
		switch (opt) {
		case 'f': file = optarg; break;
		case 'n': millions = atof(optarg); break;
		case 'z': gz = true; break;
		case 'R': rounds = (unsigned)atoi(optarg); break;
		case 'm': want = optarg; break;
		default:
			fprintf(stderr, "usage: bench_trace [-f FILE | -n MILLION_RECORDS [-z]] [-R ROUNDS] [-m MODE,...]\n");
			return 2;
		}
	}
	if (!rounds || rounds > 50 || millions <= 0 || (file && strlen(file) > 4000)) {
		fprintf(stderr, "bench_trace: -R 1..50, -n > 0\n");
		return 2;
	}
	if (!file) {
		int fd = mkstemp(tmp);
		if (fd < 0)
			die(tmp, "mkstemp failed");
		close(fd);
		synth(tmp, (uint64_t)(millions * 1e6), gz);
		file = tmp;
	}

	struct row { char name[64]; double best, med; uint64_t records, digest; } rows[16];
	unsigned nrows = 0;
	double t[50];

	for (int side = 0; side < 2 + 2 * 4; side++) {
		struct row *w = &rows[nrows];
		unsigned m = (unsigned)(side - 2) / 2;
		bool batch = side % 2 == 0;

		if (side >= 2 && !strstr(want, modes[m].name))
			continue;
		for (unsigned k = 0; k < rounds; k++) {
			if (side < 2)
				t[k] = read_all(file, side ? VMMU_LACKEY_READAHEAD : 0, &w->records);
			else
				t[k] = replay(file, modes[m].mmu, batch, &w->records, &w->digest);
			t[k] = (double)w->records / t[k] / 1e6;
		}
		qsort(t, rounds, sizeof(t[0]), cmp_double);
		w->best = t[rounds - 1];
		w->med = t[rounds / 2];
		if (side < 2)
			snprintf(w->name, sizeof(w->name), "%s", side ? "read-ahead" : "read");
		else
			snprintf(w->name, sizeof(w->name), "replay %s%s", modes[m].name,
				 batch ? "" : ", one by one");
		nrows++;
	}
	printf("trace: %s, %llu records\n\n", file == tmp ? "synthetic" : file,
	       (unsigned long long)rows[0].records);
	printf("| side | M records/s (best of %u) | median | ratio to read | digest |\n", rounds);
	printf("| --- | --- | --- | --- | --- |\n");
	for (unsigned i = 0; i < nrows; i++) {
		char dg[24] = "-";
		if (i >= 2)
			snprintf(dg, sizeof(dg), "%016llx", (unsigned long long)rows[i].digest);
		printf("| %s | %.2f | %.2f | %.2fx | %s |\n", rows[i].name, rows[i].best, rows[i].med,
		       rows[i].best / rows[0].best, dg);
	}
	if (file == tmp)
		unlink(tmp);
	return 0;
}
