/* SPDX-License-Identifier: MIT */
/*
 * The scenario format and the model side of `vmmu check`: parsing every key and flag form,
 * errors that name the token, format->parse round trips over random scenarios, and model
 * outcomes for scenarios whose architectural answer is known.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "paging/paging.h"
#include "validate/scenario.h"

static void test_defaults(void **st)
{
	struct scenario s;
	char err[256];
	assert_int_equal(scn_parse("id=x", &s, err, sizeof(err)), 0);
	for (int l = 0; l < SCN_NLEVELS; l++)
		assert_int_equal(s.flags[l], PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK);
	assert_int_equal(s.leaf, SCN_LEAF_4K);
	assert_int_equal(s.access, SCN_READ);
	assert_int_equal(s.cpl, 0);
	assert_true(s.cr0_wp);
	assert_true(s.efer_nxe);
	assert_false(s.cr4_smep || s.cr4_smap || s.cr4_pke || s.ac);
	assert_string_equal(s.id, "x");
	assert_int_equal(scn_parse("", &s, err, sizeof(err)), 1);
	assert_int_equal(scn_parse("   # comment", &s, err, sizeof(err)), 1);
}

static void test_every_key(void **st)
{
	struct scenario s;
	char err[256];
	assert_int_equal(scn_parse("pml4=P pdpt=P,W,U pd=p,rw,us,pwt,pcd,a,d,g pt=AD,XD,b52,0x600 "
				   "leaf=2m access=write cpl=3 ac=1 cr0.wp=0 efer.nxe=0 cr4.smep=1 "
				   "cr4.smap=1 cr4.pke=1 pkru=0xdeadbeef pkey=15",
				   &s, err, sizeof(err)), 0);
	assert_int_equal(s.flags[0], PT_PRESENT_MASK);
	assert_int_equal(s.flags[1], PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK);
	assert_int_equal(s.flags[2], 0x11fULL | PT_ACCESSED_MASK | PT_DIRTY_MASK | PT_GLOBAL_MASK);
	assert_int_equal(s.flags[3], PT_ACCESSED_MASK | PT_DIRTY_MASK | PT64_NX_MASK | (1ULL << 52) | 0x600);
	assert_int_equal(s.leaf, SCN_LEAF_2M);
	assert_int_equal(s.access, SCN_WRITE);
	assert_int_equal(s.cpl, 3);
	assert_true(s.ac && !s.cr0_wp && !s.efer_nxe && s.cr4_smep && s.cr4_smap && s.cr4_pke);
	assert_int_equal(s.pkru, 0xdeadbeef);
	assert_int_equal(s.pkey, 15);
	assert_int_equal(scn_parse("pt=- pd=0 pdpt=none leaf=1g access=fetch", &s, err, sizeof(err)), 0);
	assert_int_equal(s.flags[3] | s.flags[2] | s.flags[1], 0);
	assert_int_equal(s.leaf, SCN_LEAF_1G);
	assert_int_equal(s.access, SCN_FETCH);
}

static void test_errors_name_the_token(void **st)
{
	static const struct {
		const char *line, *needle;
	} bad[] = {
		{ "pml4=P frob=1", "frob" },         { "pt=P,QQ", "pt=P,QQ" },
		{ "leaf=3m", "leaf=3m" },            { "cpl=1", "cpl=1" },
		{ "pkey=16", "pkey=16" },            { "pkru=0x100000000", "pkru" },
		{ "ac=2", "ac=2" },                  { "pt=b64", "b64" },
		{ "justaword", "justaword" },        { "=x", "=x" },
		{ "pt=P pt=P", "twice" },            { "access=exec", "access=exec" },
		{ "pt=P,,RW", "pt=P,,RW" },          { "pt=", "pt=" },
		{ "cr0.wp=yes", "cr0.wp" },          { "pkey=-1", "pkey=-1" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct scenario s;
		char err[256] = "";
		assert_int_equal(scn_parse(bad[i].line, &s, err, sizeof(err)), -EINVAL);
		if (!strstr(err, bad[i].needle))
			fail_msg("'%s': error '%s' does not name '%s'", bad[i].line, err, bad[i].needle);
	}
}

static void test_round_trip_random(void **st)
{
	struct cpu_model cpu;
	uint64_t rng = 42;
	cpu_model_fixed(&cpu, "amd");
	for (unsigned long i = 0; i < 20000; i++) {
		struct scenario s, t;
		char line[512], err[256];
		scn_random(&s, &rng, &cpu, i);
		scn_format(&s, line, sizeof(line));
		assert_int_equal(scn_parse(line, &t, err, sizeof(err)), 0);
		/* Levels below the leaf are not printed; they do not take part in the walk. */
		for (int l = scn_nlevels(&s); l < SCN_NLEVELS; l++)
			t.flags[l] = s.flags[l];
		if (memcmp(&s, &t, sizeof(s)))
			fail_msg("round trip changed '%s'", line);
	}
}

static void run_line(struct scn_model *m, const char *cpu_name, const char *line, char *out, size_t len)
{
	struct scenario s;
	struct scn_outcome o;
	struct cpu_model cpu;
	char err[256];
	cpu_model_fixed(&cpu, cpu_name);
	assert_int_equal(scn_parse(line, &s, err, sizeof(err)), 0);
	assert_int_equal(scn_model_run(m, &s, &cpu, &o), 0);
	scn_format_outcome(&o, out, len);
}

static void test_model_outcomes(void **st)
{
	static const struct {
		const char *cpu, *line, *want;
	} cases[] = {
		{ "intel", "access=read", " fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:A" },
		{ "intel", "access=write", " fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:AD" },
		{ "intel", "pt=RW,US access=write", " fault=1 ec=0x2 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "pd=P,RW cpl=3", " fault=1 ec=0x5 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "pd=P,RW,US,b51", " fault=1 ec=0x9 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "pt=P,RW,US,NX access=fetch", " fault=1 ec=0x11 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "pt=P,US access=write", " fault=1 ec=0x3 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "pt=P,US access=write cr0.wp=0", " fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:AD" },
		{ "intel", "leaf=2m access=write", " fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:AD" },
		{ "intel", "leaf=1g", " fault=0 ec=0x0 ad=pml4:A,pdpt:A" },
		{ "intel", "pml4=P,RW,US,G", " fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:A" },
		{ "amd", "pml4=P,RW,US,G", " fault=1 ec=0x9 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "leaf=2m pd=P,RW,US,b13", " fault=1 ec=0x9 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-" },
		{ "intel", "cr4.smap=1 access=write", " fault=1 ec=0x3 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "cr4.smap=1 ac=1 access=write", " fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:AD" },
		{ "intel", "cr4.pke=1 pkru=0x4 pkey=1 cpl=3", " fault=1 ec=0x25 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-" },
		{ "intel", "pml4=P,RW,US,A pt=P,RW,US,AD", " fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:AD" },
	};
	struct scn_model *m;
	assert_int_equal(scn_model_create(&m), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[256];
		run_line(m, cases[i].cpu, cases[i].line, out, sizeof(out));
		if (strcmp(out, cases[i].want))
			fail_msg("%s [%s]:\n got '%s'\nwant '%s'", cases[i].line, cases[i].cpu, out, cases[i].want);
	}
	/* A 1G leaf on a CPU without 1G pages: PS in the PDPTE is reserved. */
	struct cpu_model cpu;
	struct scenario s;
	struct scn_outcome o;
	char err[256];
	cpu_model_fixed(&cpu, "amd");
	cpu.features &= ~CPU_FEAT_1G;
	assert_int_equal(scn_parse("leaf=1g", &s, err, sizeof(err)), 0);
	assert_int_equal(scn_model_run(m, &s, &cpu, &o), 0);
	assert_true(o.fault);
	assert_int_equal(o.ec, PFERR_PRESENT | PFERR_RSVD);
	/* A feature the CPU lacks is refused, not answered. */
	cpu.features &= ~CPU_FEAT_SMEP;
	assert_int_equal(scn_parse("cr4.smep=1", &s, err, sizeof(err)), 0);
	assert_non_null(scn_unsupported(&s, &cpu));
	assert_int_equal(scn_model_run(m, &s, &cpu, &o), -EOPNOTSUPP);
	scn_model_destroy(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_errors_name_the_token),
		cmocka_unit_test(test_round_trip_random),
		cmocka_unit_test(test_model_outcomes),
	};
	return cmocka_run_group_tests_name("scenario", tests, NULL, NULL);
}
