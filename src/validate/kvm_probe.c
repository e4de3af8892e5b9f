/* SPDX-License-Identifier: MIT */
/*
 * The /dev/kvm side of a counter probe: a new VM per run (so KVM's MMU and counters start
 * empty, as vmmu's), guest RAM laid out by probe_layout, the interpreter of kvm_probe_guest.S,
 * and KVM's binary statistics (KVM_GET_STATS_FD on the VM and the vCPU) read at the guest's two
 * HLTs.
 *
 * Invariants:
 *  - The host writes guest memory only before the first KVM_RUN (harness, tables, operations),
 *    so no shadow page can go stale behind KVM's back; after that only the guest writes.
 *  - Every counter of enum probe_counter is found by name in one of the two stats files, or
 *    the run fails (a kernel without it cannot be compared).
 *  - No locking: a run owns everything it opens and closes it before returning.
 */
#include "validate/kvm_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "validate/kvm_guest.h"
#include "validate/kvm_util.h"

extern const uint8_t kvmp_image[], kvmp_image_end[], kvmp_stubs[], kvmp_start[], kvmp_done[];

static uint64_t image_gva(const uint8_t *label)
{
	return KVMG_KCODE + (uint64_t)((uintptr_t)label - (uintptr_t)kvmp_image);
}

#define MAX_RUNS 64 /* KVM_RUN calls a probe may take (HLTs, signals) */

/* Where each counter lives: which stats file and the byte offset of its value. */
struct stat_loc {
	int fd;
	off_t off;
};

struct kprobe {
	int kvm_fd, vm_fd, vcpu_fd, stats_fd[2];
	struct kvm_run *run;
	size_t run_size;
	uint8_t *low, *ram;
	struct stat_loc loc[PRB_C_NR];
	struct stat_loc irq_exits;   /* exits for host interrupts: not the guest's doing */
};

static void kprobe_close(struct kprobe *k)
{
	for (int i = 0; i < 2; i++)
		if (k->stats_fd[i] >= 0)
			close(k->stats_fd[i]);
	kvmv_release(k->run, k->run_size, k->vcpu_fd, k->vm_fd, k->kvm_fd);
	if (k->low)
		munmap(k->low, PRB_LOW_SIZE);
	if (k->ram)
		munmap(k->ram, PRB_RAM_SIZE);
}

static int host_write(void *opaque, uint64_t gpa, uint64_t val)
{
	struct kprobe *k = opaque;

	if (gpa + 8 <= PRB_LOW_SIZE)
		memcpy(k->low + gpa, &val, 8);
	else if (gpa >= PRB_RAM_GPA && gpa + 8 <= PRB_RAM_GPA + PRB_RAM_SIZE)
		memcpy(k->ram + (gpa - PRB_RAM_GPA), &val, 8);
	else
		return -EFAULT;
	return 0;
}

/* Find every counter's descriptor in the VM's and the vCPU's stats files. */
static int locate_stats(struct kprobe *k, char *why, size_t whylen)
{
	bool found[PRB_C_NR] = { false };

	for (int f = 0; f < 2; f++) {
		struct kvm_stats_header h;
		size_t dsz;
		char *d;

		if (pread(k->stats_fd[f], &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
			kvmv_why(why, whylen, "reading a KVM stats header: %s", strerror(errno));
			return -EIO;
		}
		dsz = sizeof(struct kvm_stats_desc) + h.name_size;
		d = calloc(h.num_desc, dsz);
		if (!d)
			return -ENOMEM;
		if (pread(k->stats_fd[f], d, dsz * h.num_desc, h.desc_offset) !=
		    (ssize_t)(dsz * h.num_desc)) {
			free(d);
			kvmv_why(why, whylen, "reading KVM stats descriptors: %s", strerror(errno));
			return -EIO;
		}
		for (uint32_t i = 0; i < h.num_desc; i++) {
			const struct kvm_stats_desc *x = (const void *)(d + i * dsz);

			if (!strncmp(x->name, "irq_exits", h.name_size))
				k->irq_exits = (struct stat_loc){
					k->stats_fd[f], (off_t)(h.data_offset + x->offset),
				};

			for (int c = 0; c < PRB_C_NR; c++)
				if (!found[c] && !strncmp(x->name, probe_counter_name[c], h.name_size)) {
					found[c] = true;
					k->loc[c] = (struct stat_loc){
						k->stats_fd[f], (off_t)(h.data_offset + x->offset),
					};
				}
		}
		free(d);
	}
	for (int c = 0; c < PRB_C_NR; c++)
		if (!found[c]) {
			kvmv_why(why, whylen, "this kernel's KVM has no '%s' statistic",
				 probe_counter_name[c]);
			return -EOPNOTSUPP;
		}
	return 0;
}

static int snapshot(const struct kprobe *k, struct probe_counts *c, char *why, size_t whylen)
{
	for (int i = 0; i < PRB_C_NR; i++) {
		uint64_t v;

		if (pread(k->loc[i].fd, &v, sizeof(v), k->loc[i].off) != (ssize_t)sizeof(v)) {
			kvmv_why(why, whylen, "reading KVM statistic %s: %s",
				 probe_counter_name[i], strerror(errno));
			return -EIO;
		}
		c->v[i] = (int64_t)v;
	}
	/* A host interrupt while the guest runs is an exit too (irq_exits): the host's timer
	 * and devices, more of them the longer a probe runs, none of which vmmu models. */
	if (k->irq_exits.fd > 0) {
		uint64_t v;

		if (pread(k->irq_exits.fd, &v, sizeof(v), k->irq_exits.off) == (ssize_t)sizeof(v))
			c->v[PRB_C_EXITS] -= (int64_t)v;
	}
	return 0;
}

static int setup(struct kprobe *k, const struct probe_prog *p, char *why, size_t whylen)
{
	struct kvm_cpuid2 *cpuid = NULL;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	size_t image_len = (size_t)(kvmp_image_end - kvmp_image);
	uint64_t *param;
	int ret;

	if (image_len != KVMG_USTACK_PAGE - KVMG_KCODE || image_gva(kvmp_done) >= KVMG_UCODE) {
		kvmv_why(why, whylen, "probe guest image layout is broken (%zu bytes)", image_len);
		return -EINVAL;
	}
	ret = kvmv_create_vm(&k->kvm_fd, &k->vm_fd, &cpuid, why, whylen);
	if (ret)
		goto out;
	k->low = kvmv_map_ram(PRB_LOW_SIZE);
	k->ram = kvmv_map_ram(PRB_RAM_SIZE);
	if (!k->low || !k->ram) {
		ret = -ENOMEM;
		kvmv_why(why, whylen, "cannot map guest RAM");
		goto out;
	}
	memcpy(k->low + KVMG_KCODE, kvmp_image, image_len);
	kvmv_build_tables(k->low, image_gva(kvmp_stubs));
	ret = probe_layout(p, host_write, k);
	if (ret) {
		kvmv_why(why, whylen, "%s: a table outside guest RAM", p->name);
		goto out;
	}
	memcpy(k->low + PRB_OPS, p->ops, (p->nops + 1) * sizeof(p->ops[0]));
	param = (uint64_t *)(void *)(k->low + KVMG_PARAM);
	param[PRB_P_CR3 / 8] = p->cr3;
	param[PRB_P_FIX / 8] = p->fix;
	param[PRB_P_PTBASE / 8] = p->pt_base;
	param[PRB_P_SPAN / 8] = p->span;
	/* Host memory made resident behind the data pages; otherwise they are untouched. */
	if (p->prepopulate)
		memset(k->ram + (PRB_DATA - PRB_RAM_GPA), 0, PRB_RAM_GPA + PRB_RAM_SIZE - PRB_DATA);

	ret = kvmv_add_slot(k->vm_fd, 0, 0, PRB_LOW_SIZE, k->low, why, whylen);
	ret = ret ? ret : kvmv_add_slot(k->vm_fd, 1, PRB_RAM_GPA, PRB_RAM_SIZE, k->ram, why, whylen);
	ret = ret ? ret : kvmv_create_vcpu(k->kvm_fd, k->vm_fd, &k->vcpu_fd, &k->run, &k->run_size,
					  why, whylen);
	if (ret)
		goto out;
	if (ioctl(k->vcpu_fd, KVM_SET_CPUID2, cpuid) < 0 ||
	    ioctl(k->vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_SET_CPUID2/KVM_GET_SREGS: %s", strerror(errno));
		goto out;
	}
	/* CR0.WP as an OS runs: ring-0 stores honour R/W. */
	kvmv_sregs64(&sregs, p->cr3, (1ULL << 0) | (1ULL << 1) | (1ULL << 4) | (1ULL << 5) |
				     (1ULL << 16) | (1ULL << 31));
	memset(&regs, 0, sizeof(regs));
	regs.rip = KVMG_KCODE;
	regs.rsp = KVMG_KSTACK_TOP;
	regs.rflags = 2;
	if (ioctl(k->vcpu_fd, KVM_SET_SREGS, &sregs) < 0 ||
	    ioctl(k->vcpu_fd, KVM_SET_REGS, &regs) < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_SET_SREGS/KVM_SET_REGS: %s", strerror(errno));
		goto out;
	}
	k->stats_fd[0] = ioctl(k->vm_fd, KVM_GET_STATS_FD, 0);
	k->stats_fd[1] = ioctl(k->vcpu_fd, KVM_GET_STATS_FD, 0);
	if (k->stats_fd[0] < 0 || k->stats_fd[1] < 0) {
		ret = -errno;
		kvmv_why(why, whylen, "KVM_GET_STATS_FD: %s (a kernel before 5.14?)",
			 strerror(errno));
		goto out;
	}
	ret = locate_stats(k, why, whylen);
out:
	free(cpuid);
	return ret;
}

/* Run to the next HLT; 0 and the guest's registers, or -errno with @why. */
static int run_to_hlt(struct kprobe *k, struct kvm_regs *g, const char *name, char *why,
		      size_t whylen)
{
	for (int n = 0; n < MAX_RUNS; n++) {
		if (ioctl(k->vcpu_fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			kvmv_why(why, whylen, "%s: KVM_RUN: %s", name, strerror(errno));
			return -errno;
		}
		if (k->run->exit_reason == KVM_EXIT_INTR)
			continue;
		if (k->run->exit_reason != KVM_EXIT_HLT) {
			kvmv_why(why, whylen, "%s: unexpected KVM exit %u (%s)", name,
				 k->run->exit_reason, kvmv_exit_name(k->run->exit_reason));
			return -EPROTO;
		}
		if (ioctl(k->vcpu_fd, KVM_GET_REGS, g) < 0) {
			kvmv_why(why, whylen, "KVM_GET_REGS: %s", strerror(errno));
			return -errno;
		}
		if ((g->r15 & ~0xffULL) == PRB_MARK_EXC) {
			kvmv_why(why, whylen,
				 "%s: guest took %s (error code %#llx, CR2 %#llx, RIP %#llx)", name,
				 kvmv_vector_name((unsigned)(g->r15 & 0xff)),
				 (unsigned long long)g->r14, (unsigned long long)g->r13,
				 (unsigned long long)g->r12);
			return -EPROTO;
		}
		if (g->r15 == PRB_MARK_BADOP) {
			kvmv_why(why, whylen, "%s: guest met an unknown operation", name);
			return -EPROTO;
		}
		return 0;
	}
	kvmv_why(why, whylen, "%s: the guest did not halt in %d entries", name, MAX_RUNS);
	return -EPROTO;
}

int kvm_probe_run(const struct probe_prog *p, struct probe_counts *out, char *why,
		  size_t whylen)
{
	struct kprobe k = { .kvm_fd = -1, .vm_fd = -1, .vcpu_fd = -1, .stats_fd = { -1, -1 } };
	struct probe_counts c0, c1;
	struct kvm_regs g;
	int ret = setup(&k, p, why, whylen);

	if (!ret)
		ret = run_to_hlt(&k, &g, p->name, why, whylen);
	if (!ret && g.r15 != PRB_MARK_START) {
		kvmv_why(why, whylen, "%s: guest halted before the probe (r15 %#llx)", p->name,
			 (unsigned long long)g.r15);
		ret = -EPROTO;
	}
	ret = ret ? ret : snapshot(&k, &c0, why, whylen);
	ret = ret ? ret : run_to_hlt(&k, &g, p->name, why, whylen);
	if (!ret && g.r15 != PRB_MARK_DONE) {
		kvmv_why(why, whylen, "%s: guest halted at %#llx, not the probe's end", p->name,
			 (unsigned long long)g.rip);
		ret = -EPROTO;
	}
	ret = ret ? ret : snapshot(&k, &c1, why, whylen);
	if (!ret)
		for (int i = 0; i < PRB_C_NR; i++)
			out->v[i] = c1.v[i] - c0.v[i];
	kprobe_close(&k);
	return ret;
}

int kvm_probe_measure(const struct probe *pr, unsigned reps, struct probe_counts *med,
		      struct probe_counts *spread, char *why, size_t whylen)
{
	struct probe_prog *p = malloc(sizeof(*p)), *b = malloc(sizeof(*b));
	struct probe_counts s[64];
	int ret;

	if (!p || !b) {
		ret = -ENOMEM;
		goto out;
	}
	if (reps > 64)
		reps = 64;
	ret = probe_prog_build(pr, false, p);
	if (!ret) {
		ret = probe_prog_build(pr, true, b);
		if (ret)
			probe_prog_free(p);
	}
	if (ret) {
		kvmv_why(why, whylen, "%s: cannot build the program: %s", pr->name, strerror(-ret));
		goto out;
	}
	for (unsigned i = 0; i < reps && !ret; i++) {
		struct probe_counts base;

		ret = kvm_probe_run(p, &s[i], why, whylen);
		ret = ret ? ret : kvm_probe_run(b, &base, why, whylen);
		for (int c = 0; !ret && c < PRB_C_NR; c++)
			s[i].v[c] -= base.v[c];
	}
	if (!ret)
		probe_median(s, reps, med, spread);
	probe_prog_free(p);
	probe_prog_free(b);
out:
	free(p);
	free(b);
	return ret;
}

static void read_param(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");

	snprintf(buf, len, "-");
	if (f) {
		if (fgets(buf, (int)len, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
}

void kvm_probe_host(struct probe_host *h)
{
	struct utsname u;
	char v[16];
	FILE *f;

	memset(h, 0, sizeof(*h));
	if (!uname(&u))
		snprintf(h->kernel, sizeof(h->kernel), "%s", u.release);
	read_param("/sys/module/kvm/parameters/tdp_mmu", h->tdp_mmu, sizeof(h->tdp_mmu));
	/* PVM always shadows (its guests run on shadow page tables); VMX/SVM use EPT/NPT when
	 * the module's parameter says so. */
	snprintf(h->mmu, sizeof(h->mmu), "shadow");
	if (!access("/sys/module/kvm_pvm", F_OK)) {
		snprintf(h->module, sizeof(h->module), "kvm_pvm");
	} else if (!access("/sys/module/kvm_intel", F_OK)) {
		snprintf(h->module, sizeof(h->module), "kvm_intel");
		read_param("/sys/module/kvm_intel/parameters/ept", v, sizeof(v));
		if (v[0] == 'Y' || v[0] == '1')
			snprintf(h->mmu, sizeof(h->mmu), "ept");
	} else if (!access("/sys/module/kvm_amd", F_OK)) {
		snprintf(h->module, sizeof(h->module), "kvm_amd");
		read_param("/sys/module/kvm_amd/parameters/npt", v, sizeof(v));
		if (v[0] == 'Y' || v[0] == '1')
			snprintf(h->mmu, sizeof(h->mmu), "npt");
	} else {
		snprintf(h->module, sizeof(h->module), "-");
	}
	snprintf(h->cpu, sizeof(h->cpu), "-");
	snprintf(h->cpuid, sizeof(h->cpuid), "-");
	f = fopen("/proc/cpuinfo", "r");
	if (f) {
		char line[256], vendor[32] = "-", fam[8] = "-", model[8] = "-", step[8] = "-";

		/* The first processor's block: its fields up to the first blank line. */
		while (fgets(line, sizeof(line), f) && line[0] != '\n') {
			char *val = strchr(line, ':');

			if (!val || !val[1])
				continue;
			val += 2;
			val[strcspn(val, "\n")] = 0;
			if (!strncmp(line, "model name", 10))
				snprintf(h->cpu, sizeof(h->cpu), "%s", val);
			else if (!strncmp(line, "vendor_id", 9))
				snprintf(vendor, sizeof(vendor), "%s", val);
			else if (!strncmp(line, "cpu family", 10))
				snprintf(fam, sizeof(fam), "%s", val);
			else if (!strncmp(line, "model", 5) && (line[5] == '\t' || line[5] == ' '))
				snprintf(model, sizeof(model), "%s", val);
			else if (!strncmp(line, "stepping", 8))
				snprintf(step, sizeof(step), "%s", val);
		}
		fclose(f);
		snprintf(h->cpuid, sizeof(h->cpuid), "%s family %s model %s stepping %s", vendor,
			 fam, model, step);
	}
}
