/* SPDX-License-Identifier: MIT */
/*
 * Counter probes on real KVM (validate/probe.h says what a probe is): each run is a new VM with
 * one vCPU that runs the probe's operations between two HLTs, and the change of KVM's binary
 * statistics (KVM_GET_STATS_FD, Linux 5.14 and later) across them. No state between calls.
 */
#ifndef VMMU_VALIDATE_KVM_PROBE_H
#define VMMU_VALIDATE_KVM_PROBE_H

#include "validate/probe.h"

/* Run @p once. 0 and @out, or -errno with a one-line reason in @why (-ENOENT/-EACCES/-ENODEV:
 * no usable /dev/kvm; -EOPNOTSUPP: a counter this kernel lacks; -EPROTO: the guest misbehaved). */
int kvm_probe_run(const struct probe_prog *p, struct probe_counts *out, char *why,
		  size_t whylen);

/* @reps runs of probe @pr and of its baseline, alternating; each run's counts less its
 * baseline's; their median and spread (max - min). */
int kvm_probe_measure(const struct probe *pr, unsigned reps, struct probe_counts *med,
		      struct probe_counts *spread, char *why, size_t whylen);

/* What this host's KVM is (kernel, module, its MMU, CPU), for the goldens' header. */
void kvm_probe_host(struct probe_host *h);

#endif
