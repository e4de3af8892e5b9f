/* SPDX-License-Identifier: MIT */
/*
 * The scenario line format (docs/check-format.md): parsing, printing, and running a scenario on
 * the model. Invariant: scn_format() output parses back to an equal scenario (tests hold this),
 * so a disagreement printed by `vmmu validate` can be fed to `vmmu check` as it is.
 * The model runner owns one small VM (two memslots) reused for every scenario; not thread-safe:
 * one struct scn_model per thread.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "paging/paging.h"
#include "validate/scenario.h"
#include "vm/vm.h"

static const char *const level_keys[SCN_NLEVELS] = { "pml4", "pdpt", "pd", "pt" };

void scn_default(struct scenario *s)
{
	memset(s, 0, sizeof(*s));
	for (int l = 0; l < SCN_NLEVELS; l++)
		s->flags[l] = PT_PRESENT_MASK | PT_WRITABLE_MASK | PT_USER_MASK;
	s->cr0_wp = true;
	s->efer_nxe = true;
}

static const struct {
	const char *name;
	uint64_t bits;
} flag_names[] = {
	{ "P", PT_PRESENT_MASK },  { "RW", PT_WRITABLE_MASK }, { "W", PT_WRITABLE_MASK },
	{ "US", PT_USER_MASK },    { "U", PT_USER_MASK },      { "PWT", PT_PWT_MASK },
	{ "PCD", PT_PCD_MASK },    { "A", PT_ACCESSED_MASK },  { "D", PT_DIRTY_MASK },
	{ "AD", PT_ACCESSED_MASK | PT_DIRTY_MASK },            { "PS", PT_PAGE_SIZE_MASK },
	{ "G", PT_GLOBAL_MASK },   { "NX", PT64_NX_MASK },     { "XD", PT64_NX_MASK },
};

static int parse_u64(const char *v, uint64_t max, uint64_t *out)
{
	char *end;

	if (!*v || *v == '-' || *v == '+' || isspace((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 0);
	if (errno || *end || x > max)
		return -EINVAL;
	*out = x;
	return 0;
}

static int parse_flags(const char *v, uint64_t *out)
{
	uint64_t bits = 0;
	char buf[256];
	char *save = NULL;

	if (strlen(v) >= sizeof(buf) || !*v)
		return -EINVAL;
	strcpy(buf, v);
	if (buf[strlen(buf) - 1] == ',' || strstr(buf, ",,") || buf[0] == ',')
		return -EINVAL;
	for (char *f = strtok_r(buf, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
		bool found = false;
		uint64_t x;

		if (!strcmp(f, "-") || !strcmp(f, "0") || !strcasecmp(f, "none"))
			continue;
		for (size_t i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]); i++) {
			if (!strcasecmp(f, flag_names[i].name)) {
				bits |= flag_names[i].bits;
				found = true;
				break;
			}
		}
		if (found)
			continue;
		if ((f[0] == 'b' || f[0] == 'B') && isdigit((unsigned char)f[1]) &&
		    !parse_u64(f + 1, 63, &x) && f[1] != '0') {
			bits |= 1ULL << x;
			continue;
		}
		if ((f[0] == 'b' || f[0] == 'B') && !strcmp(f + 1, "0")) {
			bits |= 1;
			continue;
		}
		if (f[0] == '0' && (f[1] == 'x' || f[1] == 'X') && f[2] && !parse_u64(f, UINT64_MAX, &x)) {
			bits |= x;
			continue;
		}
		return -EINVAL;
	}
	*out = bits;
	return 0;
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "0")) {
		*out = false;
		return 0;
	}
	if (!strcmp(v, "1")) {
		*out = true;
		return 0;
	}
	return -EINVAL;
}

int scn_parse(const char *line, struct scenario *s, char *err, size_t errlen)
{
	char buf[1024];
	char *save = NULL;
	unsigned seen = 0;     /* one bit per key, to refuse a key given twice */
	int rc = 0;

	while (isspace((unsigned char)*line))
		line++;
	if (!*line || *line == '#')
		return 1;
	if (strlen(line) >= sizeof(buf)) {
		snprintf(err, errlen, "line too long (max %zu characters)", sizeof(buf) - 1);
		return -EINVAL;
	}
	strcpy(buf, line);
	scn_default(s);

	for (char *tok = strtok_r(buf, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
		char *eq = strchr(tok, '=');
		const char *k, *v;
		unsigned key = 0;
		uint64_t x = 0;
		bool b = false;

		if (!eq || eq == tok) {
			snprintf(err, errlen, "token '%s': expected key=value", tok);
			return -EINVAL;
		}
		*eq = '\0';
		k = tok;
		v = eq + 1;
		rc = 0;

		static const char *const keys[] = {
			"pml4", "pdpt", "pd", "pt", "leaf", "access", "cpl", "ac", "cr0.wp",
			"efer.nxe", "cr4.smep", "cr4.smap", "cr4.pke", "pkru", "pkey", "id",
		};
		for (key = 0; key < sizeof(keys) / sizeof(keys[0]); key++)
			if (!strcmp(k, keys[key]))
				break;
		if (key == sizeof(keys) / sizeof(keys[0])) {
			snprintf(err, errlen, "token '%s=%s': unknown key '%s'", k, v, k);
			return -EINVAL;
		}
		if (seen & (1u << key)) {
			snprintf(err, errlen, "token '%s=%s': key '%s' given twice", k, v, k);
			return -EINVAL;
		}
		seen |= 1u << key;

		switch (key) {
		case 0: case 1: case 2: case 3:
			rc = parse_flags(v, &s->flags[key]);
			break;
		case 4:
			if (!strcasecmp(v, "4k"))
				s->leaf = SCN_LEAF_4K;
			else if (!strcasecmp(v, "2m"))
				s->leaf = SCN_LEAF_2M;
			else if (!strcasecmp(v, "1g"))
				s->leaf = SCN_LEAF_1G;
			else
				rc = -EINVAL;
			break;
		case 5:
			if (!strcmp(v, "read"))
				s->access = SCN_READ;
			else if (!strcmp(v, "write"))
				s->access = SCN_WRITE;
			else if (!strcmp(v, "fetch"))
				s->access = SCN_FETCH;
			else
				rc = -EINVAL;
			break;
		case 6:
			if (!strcmp(v, "0") || !strcmp(v, "3"))
				s->cpl = v[0] - '0';
			else
				rc = -EINVAL;
			break;
		case 7: rc = parse_bool(v, &b); s->ac = b; break;
		case 8: rc = parse_bool(v, &b); s->cr0_wp = b; break;
		case 9: rc = parse_bool(v, &b); s->efer_nxe = b; break;
		case 10: rc = parse_bool(v, &b); s->cr4_smep = b; break;
		case 11: rc = parse_bool(v, &b); s->cr4_smap = b; break;
		case 12: rc = parse_bool(v, &b); s->cr4_pke = b; break;
		case 13:
			rc = parse_u64(v, UINT32_MAX, &x);
			s->pkru = (uint32_t)x;
			break;
		case 14:
			rc = parse_u64(v, 15, &x);
			s->pkey = (unsigned)x;
			break;
		case 15:
			if (!*v || strlen(v) >= sizeof(s->id))
				rc = -EINVAL;
			else
				snprintf(s->id, sizeof(s->id), "%s", v);
			break;
		}
		if (rc) {
			snprintf(err, errlen, "token '%s=%s': bad value for '%s'", k, v, k);
			return -EINVAL;
		}
	}
	return 0;
}

static int format_flags(uint64_t f, char *buf, size_t len)
{
	static const struct {
		const char *name;
		uint64_t bit;
	} named[] = {
		{ "P", PT_PRESENT_MASK }, { "RW", PT_WRITABLE_MASK }, { "US", PT_USER_MASK },
		{ "PWT", PT_PWT_MASK },   { "PCD", PT_PCD_MASK },     { "A", PT_ACCESSED_MASK },
		{ "D", PT_DIRTY_MASK },   { "PS", PT_PAGE_SIZE_MASK }, { "G", PT_GLOBAL_MASK },
		{ "NX", PT64_NX_MASK },
	};
	size_t n = 0;

	for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
		if (f & named[i].bit) {
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? "," : "", named[i].name);
			f &= ~named[i].bit;
		}
	}
	for (int b = 0; b < 64; b++)
		if (f & (1ULL << b))
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%sb%d", n ? "," : "", b);
	if (!n)
		n = (size_t)snprintf(buf, len, "-");
	return (int)n;
}

int scn_format(const struct scenario *s, char *buf, size_t len)
{
	static const char *const leaf[] = { "4k", "2m", "1g" };
	static const char *const acc[] = { "read", "write", "fetch" };
	size_t n = 0;
	char f[256];

#define OUT(...) (n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__))
	if (s->id[0])
		OUT("id=%s ", s->id);
	for (int l = 0; l < scn_nlevels(s); l++) {
		format_flags(s->flags[l], f, sizeof(f));
		OUT("%s=%s ", level_keys[l], f);
	}
	OUT("leaf=%s access=%s cpl=%d ac=%d cr0.wp=%d efer.nxe=%d cr4.smep=%d cr4.smap=%d cr4.pke=%d",
	    leaf[s->leaf], acc[s->access], s->cpl, s->ac, s->cr0_wp, s->efer_nxe, s->cr4_smep,
	    s->cr4_smap, s->cr4_pke);
	if (s->cr4_pke || s->pkru)
		OUT(" pkru=0x%" PRIx32, s->pkru);
	if (s->pkey)
		OUT(" pkey=%u", s->pkey);
#undef OUT
	return (int)n;
}

int scn_format_outcome(const struct scn_outcome *o, char *buf, size_t len)
{
	size_t n = 0;

#define OUT(...) (n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__))
	OUT(" fault=%d ec=0x%" PRIx32, o->fault, o->fault ? o->ec : 0);
	if (o->fault)
		OUT(" cr2=0x%" PRIx64, o->cr2);
	OUT(" ad=");
	for (int l = 0; l < o->nlevels; l++) {
		static const char *const ad[] = { "-", "A", "D", "AD" };
		OUT("%s%s:%s", l ? "," : "", level_keys[l], ad[o->ad[l] & 3]);
	}
#undef OUT
	return (int)n;
}

bool scn_outcome_equal(const struct scn_outcome *a, const struct scn_outcome *b)
{
	if (a->fault != b->fault || a->nlevels != b->nlevels)
		return false;
	if (a->fault && (a->ec != b->ec || a->cr2 != b->cr2))
		return false;
	for (int l = 0; l < a->nlevels; l++)
		if ((a->ad[l] & 3) != (b->ad[l] & 3))
			return false;
	return true;
}

const char *scn_unsupported(const struct scenario *s, const struct cpu_model *cpu)
{
	if (s->efer_nxe && !cpu_has(cpu, CPU_FEAT_NX))
		return "efer.nxe: the CPU has no NX";
	if (s->cr4_smep && !cpu_has(cpu, CPU_FEAT_SMEP))
		return "cr4.smep: the CPU has no SMEP";
	if (s->cr4_smap && !cpu_has(cpu, CPU_FEAT_SMAP))
		return "cr4.smap: the CPU has no SMAP";
	if (s->cr4_pke && !cpu_has(cpu, CPU_FEAT_PKU))
		return "cr4.pke: the CPU has no PKU";
	return NULL;
}

/* ---- the model side ---- */

struct scn_model {
	struct vmmu_vm *vm;
};

int scn_model_create(struct scn_model **out)
{
	struct scn_model *m = calloc(1, sizeof(*m));
	struct vmmu_vm_config cfg = { .host_mem_bytes = 1ULL << 30 };
	uint64_t hva;
	int rc;

	if (!m)
		return -ENOMEM;
	rc = vmmu_vm_create(&cfg, &m->vm);
	if (rc)
		goto out_free;
	const struct { gpa_t gpa; uint64_t size; } slots[] = {
		{ 0, SCN_LOW_SLOT_SIZE }, { SCN_DATA_GPA, SCN_DATA_SLOT_SIZE },
	};
	for (unsigned i = 0; i < 2; i++) {
		rc = vmmu_vm_mmap(m->vm, slots[i].size, false, &hva);
		if (rc)
			goto out_vm;
		struct vmmu_userspace_memory_region r = {
			.slot = i, .guest_phys_addr = slots[i].gpa,
			.memory_size = slots[i].size, .userspace_addr = hva,
		};
		rc = vmmu_set_user_memory_region(m->vm, &r);
		if (rc)
			goto out_vm;
	}
	*out = m;
	return 0;

out_vm:
	vmmu_vm_destroy(m->vm);
out_free:
	free(m);
	return rc;
}

void scn_model_destroy(struct scn_model *m)
{
	if (!m)
		return;
	vmmu_vm_destroy(m->vm);
	free(m);
}

static const gpa_t table_gpa[SCN_NLEVELS] = {
	SCN_PML4_GPA + 8 /* PML4[1] */, SCN_PDPT_GPA, SCN_PD_GPA, SCN_PT_GPA,
};

int scn_model_run(struct scn_model *m, const struct scenario *s, const struct cpu_model *cpu,
		  struct scn_outcome *out)
{
	static const uint8_t zero[4096];
	struct paging_ctx ctx;
	struct walk_result r;
	int rc;

	if (scn_unsupported(s, cpu))
		return -EOPNOTSUPP;
	/* Fresh tables: the PML4, PDPT, PD and PT pages are zeroed, then the walked entries set. */
	for (gpa_t g = SCN_PML4_GPA; g <= SCN_PT_GPA; g += 4096) {
		rc = vmmu_write_guest(m->vm, g, zero, sizeof(zero));
		if (rc)
			return rc;
	}
	for (int l = 0; l < scn_nlevels(s); l++) {
		uint64_t e = scn_entry(s, l);
		rc = vmmu_write_guest(m->vm, table_gpa[l], &e, sizeof(e));
		if (rc)
			return rc;
	}

	memset(&ctx, 0, sizeof(ctx));
	ctx.cpu = *cpu;
	ctx.cr0 = X86_CR0_PG | X86_CR0_PE | (s->cr0_wp ? X86_CR0_WP : 0);
	ctx.cr4 = X86_CR4_PAE | (s->cr4_smep ? X86_CR4_SMEP : 0) | (s->cr4_smap ? X86_CR4_SMAP : 0) |
		  (s->cr4_pke ? X86_CR4_PKE : 0);
	ctx.efer = EFER_LME | EFER_LMA | (s->efer_nxe ? EFER_NXE : 0);
	ctx.cr3 = SCN_PML4_GPA;
	ctx.cpl = (uint8_t)s->cpl;
	ctx.ac = s->ac;
	ctx.pkru = s->pkru;

	static const unsigned access[] = { 0, PFERR_WRITE, PFERR_FETCH };
	paging_walk(&ctx, &slots_gmem_ops, m->vm->slots, SCN_GVA, access[s->access], &r);
	if (r.status != WALK_OK && r.status != WALK_PF)
		return r.status == WALK_ABORT && r.abort_err ? r.abort_err : -EIO;

	memset(out, 0, sizeof(*out));
	out->fault = r.status == WALK_PF;
	out->ec = out->fault ? r.ec : 0;
	out->cr2 = out->fault ? r.addr : 0;
	out->nlevels = scn_nlevels(s);
	for (int l = 0; l < out->nlevels; l++) {
		uint64_t e;
		rc = vmmu_read_guest(m->vm, table_gpa[l], &e, sizeof(e));
		if (rc)
			return rc;
		out->ad[l] = (uint8_t)(((e & PT_ACCESSED_MASK) ? SCN_AD_A : 0) |
				       ((e & PT_DIRTY_MASK) ? SCN_AD_D : 0));
	}
	return 0;
}
