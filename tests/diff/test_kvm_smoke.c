/* SPDX-License-Identifier: MIT */
/*
 * Smoke test of the /dev/kvm scenario runner (src/validate/kvm.c): a handful of scenarios
 * whose outcome the architecture fixes, then random scenarios that must all run (or be
 * refused as unsupported) without an internal error, timed.
 *
 * Exit status: 0 all passed, 1 a check failed (the failed expression is printed), 77 (SKIP)
 * when /dev/kvm is absent or unusable. Scenarios needing a CPU feature the host lacks are
 * skipped individually, with their reason. Environment: KVM_SMOKE_N (random count, default
 * 2000), KVM_SMOKE_SEED.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "validate/kvm.h"

#define P   (1ULL << 0)
#define RW  (1ULL << 1)
#define US  (1ULL << 2)
#define PS  (1ULL << 7)
#define XD  (1ULL << 63)

#define EC_P    0x1u
#define EC_W    0x2u
#define EC_U    0x4u
#define EC_RSVD 0x8u
#define EC_I    0x10u

static int passed, failed;

#define CHECK(name, expr)                                                              \
	do {                                                                           \
		if (expr) {                                                            \
			passed++;                                                      \
		} else {                                                               \
			failed++;                                                      \
			printf("FAIL %s: %s (%s:%d)\n", (name), #expr, __FILE__, __LINE__); \
		}                                                                      \
	} while (0)

/* Every level P|RW|US, 4K leaf, CPL-0 read, CR0.WP=1, EFER.NXE=1 (when the host has NX). */
static struct scenario base(const struct cpu_model *cpu)
{
	struct scenario s;

	memset(&s, 0, sizeof(s));
	for (int l = 0; l < SCN_NLEVELS; l++)
		s.flags[l] = P | RW | US;
	s.cr0_wp = true;
	s.efer_nxe = cpu_has(cpu, CPU_FEAT_NX);
	return s;
}

static void print_outcome(const char *name, const struct scn_outcome *o)
{
	printf("  %-28s fault=%d ec=%#x cr2=%#" PRIx64 " ad=", name, o->fault, o->ec, o->cr2);
	for (int l = 0; l < o->nlevels; l++)
		printf("%s%s%s", l ? "," : "", o->ad[l] & SCN_AD_A ? "A" : "-",
		       o->ad[l] & SCN_AD_D ? "D" : "-");
	printf("\n");
}

/* Run @s; 0 with @o filled, 1 when the host cannot run it (reported as a skip). */
static int run(struct kvmv *k, const char *name, const struct scenario *s, struct scn_outcome *o)
{
	char why[256] = "";
	int ret = kvmv_run(k, s, o, why, sizeof(why));

	if (ret == -EOPNOTSUPP) {
		printf("  %-28s skipped: %s\n", name, why);
		return 1;
	}
	if (ret) {
		failed++;
		printf("FAIL %s: kvmv_run returned %d (%s)\n", name, ret, why);
		return -1;
	}
	print_outcome(name, o);
	return 0;
}

static void known_cases(struct kvmv *k, const struct cpu_model *cpu)
{
	struct scn_outcome o;
	struct scenario s;
	const char *n;

	n = "read cpl0";
	s = base(cpu);
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		CHECK(n, o.nlevels == 4);
		for (int l = 0; l < 4; l++)
			CHECK(n, o.ad[l] == SCN_AD_A);
	}

	n = "write cpl0";
	s = base(cpu);
	s.access = SCN_WRITE;
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		CHECK(n, o.ad[SCN_PT] == (SCN_AD_A | SCN_AD_D));
		for (int l = 0; l < 3; l++)
			CHECK(n, (o.ad[l] & SCN_AD_A) != 0);
	}

	n = "write, PTE not present";
	s = base(cpu);
	s.access = SCN_WRITE;
	s.flags[SCN_PT] &= ~P;
	if (!run(k, n, &s, &o)) {
		CHECK(n, o.fault);
		CHECK(n, o.ec == EC_W);
		CHECK(n, o.cr2 == SCN_GVA);
		for (int l = 0; l < 4; l++)
			CHECK(n, o.ad[l] == 0);
	}

	n = "read cpl3, PTE US=0";
	s = base(cpu);
	s.cpl = 3;
	s.flags[SCN_PT] &= ~US;
	if (!run(k, n, &s, &o)) {
		CHECK(n, o.fault);
		CHECK(n, o.ec == (EC_P | EC_U));
		CHECK(n, o.cr2 == SCN_GVA);
	}

	n = "read cpl3, all US=1";
	s = base(cpu);
	s.cpl = 3;
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		for (int l = 0; l < 4; l++)
			CHECK(n, o.ad[l] == SCN_AD_A);
	}

	n = "write cpl3";
	s = base(cpu);
	s.cpl = 3;
	s.access = SCN_WRITE;
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		CHECK(n, o.ad[SCN_PT] == (SCN_AD_A | SCN_AD_D));
	}

	n = "PDE bit 51 (reserved)";
	s = base(cpu);
	s.flags[SCN_PD] |= 1ULL << 51;
	if (cpu->maxphyaddr > 51) {
		printf("  %-28s skipped: MAXPHYADDR %d makes bit 51 an address bit\n", n,
		       cpu->maxphyaddr);
	} else if (!run(k, n, &s, &o)) {
		CHECK(n, o.fault);
		CHECK(n, (o.ec & (EC_RSVD | EC_P)) == (EC_RSVD | EC_P));
		CHECK(n, o.cr2 == SCN_GVA);
	}

	n = "fetch cpl0, NX leaf";
	s = base(cpu);
	s.efer_nxe = true;
	s.access = SCN_FETCH;
	s.flags[SCN_PT] |= XD;
	if (!run(k, n, &s, &o)) {
		CHECK(n, o.fault);
		CHECK(n, o.ec == (EC_I | EC_P));
		CHECK(n, o.cr2 == SCN_GVA);
	}

	n = "fetch cpl0";
	s = base(cpu);
	s.access = SCN_FETCH;
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		CHECK(n, o.ad[SCN_PT] == SCN_AD_A);
	}

	n = "fetch cpl3";
	s = base(cpu);
	s.access = SCN_FETCH;
	s.cpl = 3;
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		CHECK(n, o.ad[SCN_PT] == SCN_AD_A);
	}

	n = "PS in PDPTE";
	s = base(cpu);
	s.flags[SCN_PDPT] |= PS;
	if (cpu_has(cpu, CPU_FEAT_1G)) {
		/* With 1G pages, 0x11000 as a 1G frame has reserved bits 29:13 set anyway. */
		printf("  (host has 1G pages; PDPTE.PS still faults on the table address bits)\n");
	}
	if (!run(k, n, &s, &o)) {
		CHECK(n, o.fault);
		CHECK(n, (o.ec & (EC_RSVD | EC_P)) == (EC_RSVD | EC_P));
	}

	n = "2M leaf read";
	s = base(cpu);
	s.leaf = SCN_LEAF_2M;
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		CHECK(n, o.nlevels == 3);
		for (int l = 0; l < 3; l++)
			CHECK(n, o.ad[l] == SCN_AD_A);
	}

	n = "1G leaf read";
	s = base(cpu);
	s.leaf = SCN_LEAF_1G;
	if (!run(k, n, &s, &o)) {
		CHECK(n, o.nlevels == 2);
		if (cpu_has(cpu, CPU_FEAT_1G))
			CHECK(n, !o.fault);
		else
			CHECK(n, o.fault && (o.ec & EC_RSVD));
	}

	n = "write wp=1 cpl0, RW=0";
	s = base(cpu);
	s.access = SCN_WRITE;
	s.flags[SCN_PT] &= ~RW;
	if (!run(k, n, &s, &o)) {
		CHECK(n, o.fault);
		CHECK(n, o.ec == (EC_P | EC_W));
	}

	n = "write wp=0 cpl0, RW=0";
	s.cr0_wp = false;
	if (!run(k, n, &s, &o)) {
		CHECK(n, !o.fault);
		CHECK(n, o.ad[SCN_PT] == (SCN_AD_A | SCN_AD_D));
	}

	n = "leaf outside RAM (MMIO) read";
	s = base(cpu);
	s.flags[SCN_PT] |= 1ULL << 40;
	if (!run(k, n, &s, &o))
		CHECK(n, !o.fault);

	n = "leaf outside RAM (MMIO) write";
	s.access = SCN_WRITE;
	if (!run(k, n, &s, &o))
		CHECK(n, !o.fault);

	/* PML4E bit 12 points the PDPT at the PD page: every later level reads the next table's
	 * entry, the last one the data page's first qword, whose RET (0xc2) is not present. */
	for (int a = SCN_READ; a <= SCN_FETCH; a++) {
		static const char *const names[2][3] = {
			{ "shifted walk read cpl0", "shifted walk write cpl0", "shifted walk fetch cpl0" },
			{ "shifted walk read cpl3", "shifted walk write cpl3", "shifted walk fetch cpl3" },
		};

		for (int u = 0; u < 2; u++) {
			n = names[u][a];
			s = base(cpu);
			s.access = (enum scn_access)a;
			s.cpl = u ? 3 : 0;
			s.flags[SCN_PML4] |= 1ULL << 12;
			if (!run(k, n, &s, &o)) {
				CHECK(n, o.fault);
				CHECK(n, !(o.ec & EC_P));
				for (int l = 0; l < 4; l++)
					CHECK(n, !(o.ad[l] & SCN_AD_D));
			}
		}
	}

	/* A table outside guest RAM: no architectural answer, but it must run. */
	n = "PT outside RAM";
	s = base(cpu);
	s.flags[SCN_PD] |= 1ULL << 40;
	run(k, n, &s, &o);
}

static uint64_t rng_state;

static uint64_t rnd(void)
{
	/* xorshift64*: deterministic for a seed, good enough to spread flag bits. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static uint64_t random_flags(void)
{
	/* Mostly-valid entries: P/RW/US usually set, so walks get deep and faults vary. */
	uint64_t f = 0;

	if (rnd() % 8)
		f |= P;
	if (rnd() % 4)
		f |= RW;
	if (rnd() % 4)
		f |= US;
	f |= rnd() & 0x118;        /* PWT, PCD, G */
	if (rnd() % 4 == 0)
		f |= XD;
	if (rnd() % 16 == 0)
		f |= PS;
	if (rnd() % 16 == 0)
		f |= 1ULL << (52 + rnd() % 7);          /* ignored/available high bits */
	if (rnd() % 16 == 0)
		f |= 1ULL << (12 + rnd() % 40);         /* raw address / reserved bits */
	return f;
}

static bool same_outcome(const struct scn_outcome *a, const struct scn_outcome *b)
{
	return a->fault == b->fault && a->ec == b->ec && a->cr2 == b->cr2 &&
	       a->nlevels == b->nlevels && !memcmp(a->ad, b->ad, sizeof(a->ad));
}

/* Random scenarios: none may fail internally, every #PF must be self-consistent, and running
 * them again in reverse order must give the same outcomes (no state leaks between runs). */
static void random_cases(struct kvmv *k, long count)
{
	long unsupported = 0, faults = 0, errors = 0, diverged = 0;
	struct scenario *sc = calloc((size_t)count, sizeof(*sc));
	struct scn_outcome *oc = calloc((size_t)count, sizeof(*oc));
	int *rc = calloc((size_t)count, sizeof(*rc));
	struct timespec t0, t1;
	double secs;

	if (!sc || !oc || !rc) {
		failed++;
		printf("FAIL random: out of memory\n");
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < count; i++) {
		struct scenario s;
		struct scn_outcome o;
		char why[256] = "", name[64];
		int ret;

		memset(&s, 0, sizeof(s));
		for (int l = 0; l < SCN_NLEVELS; l++)
			s.flags[l] = random_flags();
		s.leaf = (enum scn_leaf)(rnd() % 3);
		s.access = (enum scn_access)(rnd() % 3);
		s.cpl = rnd() % 2 ? 3 : 0;
		s.ac = rnd() % 2;
		s.cr0_wp = rnd() % 2;
		s.efer_nxe = rnd() % 4 != 0;
		s.cr4_smep = rnd() % 8 == 0;
		s.cr4_smap = rnd() % 8 == 0;
		s.cr4_pke = rnd() % 8 == 0;
		s.pkru = (uint32_t)rnd();
		s.pkey = (unsigned)(rnd() % 16);

		snprintf(name, sizeof(name), "random #%ld", i);
		memset(&o, 0, sizeof(o));
		ret = kvmv_run(k, &s, &o, why, sizeof(why));
		sc[i] = s;
		oc[i] = o;
		rc[i] = ret;
		if (ret == -EOPNOTSUPP) {
			unsupported++;
			continue;
		}
		if (ret) {
			if (errors++ < 10)
				printf("FAIL %s: kvmv_run returned %d (%s); flags %#llx %#llx %#llx "
				       "%#llx leaf %d access %d cpl %d\n", name, ret, why,
				       (unsigned long long)s.flags[0], (unsigned long long)s.flags[1],
				       (unsigned long long)s.flags[2], (unsigned long long)s.flags[3],
				       (int)s.leaf, (int)s.access, s.cpl);
			continue;
		}
		/* Architectural invariants of any #PF, whatever the walk found. */
		if (o.fault) {
			faults++;
			CHECK(name, o.cr2 == SCN_GVA);
			CHECK(name, !!(o.ec & EC_W) == (s.access == SCN_WRITE));
			CHECK(name, !!(o.ec & EC_U) == (s.cpl == 3));
			CHECK(name, !(o.ec & EC_I) || s.access == SCN_FETCH);
		}
		CHECK(name, o.nlevels == scn_nlevels(&s));
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	failed += (int)errors;
	passed += errors ? 0 : 1;
	printf("random: %ld scenarios (%ld faulted, %ld unsupported here, %ld errors) in %.2f s, "
	       "%.0f scenarios/second\n", count, faults, unsupported, errors, secs,
	       secs > 0 ? (double)count / secs : 0.0);

	for (long i = count - 1; i >= 0; i--) {
		struct scn_outcome o;
		char why[256] = "";
		int ret;

		memset(&o, 0, sizeof(o));
		ret = kvmv_run(k, &sc[i], &o, why, sizeof(why));
		if (ret != rc[i] || (!ret && !same_outcome(&o, &oc[i]))) {
			if (diverged++ < 10)
				printf("FAIL random #%ld: rerun in reverse order gave rc %d fault %d "
				       "ec %#x, first run rc %d fault %d ec %#x\n", i, ret, o.fault,
				       o.ec, rc[i], oc[i].fault, oc[i].ec);
		}
	}
	CHECK("random rerun in reverse order", diverged == 0);
out:
	free(sc);
	free(oc);
	free(rc);
}

int main(void)
{
	struct cpu_model cpu;
	struct kvmv *k = NULL;
	char why[256] = "";
	const char *env;
	long count = 2000;
	int ret;

	ret = kvmv_probe_cpu(&cpu, why, sizeof(why));
	if (ret) {
		printf("SKIP: %s\n", why);
		return 77;
	}
	printf("host guest CPU: %s, MAXPHYADDR %d, features%s%s%s%s%s%s%s\n",
	       cpu.vendor == CPU_VENDOR_AMD ? "AMD" : "Intel", cpu.maxphyaddr,
	       cpu_has(&cpu, CPU_FEAT_NX) ? " nx" : "", cpu_has(&cpu, CPU_FEAT_SMEP) ? " smep" : "",
	       cpu_has(&cpu, CPU_FEAT_SMAP) ? " smap" : "", cpu_has(&cpu, CPU_FEAT_PKU) ? " pku" : "",
	       cpu_has(&cpu, CPU_FEAT_1G) ? " 1g" : "", cpu_has(&cpu, CPU_FEAT_LA57) ? " la57" : "",
	       cpu_has(&cpu, CPU_FEAT_PSE36) ? " pse36" : "");

	ret = kvmv_open(&k, why, sizeof(why));
	if (ret == -EPROTO || ret == -EINVAL) {
		/* /dev/kvm works but our guest misbehaved: a harness bug, not a skip. */
		printf("FAIL: kvmv_open: %s\n0 passed, 1 failed\n", why);
		return 1;
	}
	if (ret) {
		printf("SKIP: /dev/kvm cannot run the test guest: %s\n", why);
		return 77;
	}

	known_cases(k, &cpu);

	env = getenv("KVM_SMOKE_N");
	if (env)
		count = strtol(env, NULL, 0);
	env = getenv("KVM_SMOKE_SEED");
	rng_state = env ? strtoull(env, NULL, 0) : 0x9e3779b97f4a7c15ULL;
	if (!rng_state)
		rng_state = 1;
	random_cases(k, count);

	kvmv_close(k);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
