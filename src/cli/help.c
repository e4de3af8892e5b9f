/* SPDX-License-Identifier: MIT */
/*
 * The one source of the command's documentation: a table of commands, each with its synopsis,
 * what it does and every option. `vmmu help [COMMAND]` and `vmmu COMMAND --help` print it as
 * text; `vmmu help --man` prints it as the vmmu(1) manual page (troff), which the build generates
 * and installs, so the two never disagree. Nothing here runs a command.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "vmmu/vmmu.h"

struct help_opt {
	const char *opt;
	const char *text;
};

struct help_cmd {
	const char *name;
	const char *synopsis;         /* after "vmmu " */
	const char *summary;
	const struct help_opt *opts;  /* NULL-terminated; NULL for none */
	const char *more;             /* a closing paragraph, or NULL */
};

static const struct help_opt run_opts[] = {
	{ "--mmu MODE", "native (no hypervisor), shadow (the soft MMU: shadow paging), ept or npt (the hard MMU); native by default" },
	{ "--host vmx|svm", "the host shadow paging runs on (ept implies vmx, npt svm); vmx by default" },
	{ "--opt +NAME,-NAME,...", "MMU optimizations on or off: notrap, unsync, prefetch, fastpf (all on where the host allows)" },
	{ "--vcpus N", "vCPUs of each VM, 1 to 64 (1); each on its own host thread" },
	{ "--interleave", "run every vCPU on one thread in fixed quanta: deterministic counts (threads by default)" },
	{ "--pin-vcpus", "threaded: pin vCPU thread i to the i-th CPU the process may run on (modulo their number), as vCPUs are pinned where a VM's speed is measured (unpinned by default)" },
	{ "--vms N", "VMs, 1 to 16 (the workload's default)" },
	{ "--mem SIZE", "guest RAM of each VM, a multiple of 4K (the workload's need)" },
	{ "--thp always|madvise|never", "host transparent huge pages (madvise)" },
	{ "--hugetlb 2M|1G", "back guest RAM with host hugetlbfs pages of that size; EPT/NPT map leaves that large (none)" },
	{ "--guest-thp on|off", "the guest kernel maps anonymous memory with 2M pages (off)" },
	{ "--ksm on|off", "mark the host memory behind every memslot mergeable (off)" },
	{ "--ksm-param KEY=VALUE[,...]", "ksmd knobs as in /sys/kernel/mm/ksm: pages_to_scan, sleep_millisecs (1 ms = 1000 guest accesses), use_zero_pages, max_page_sharing, run; use_mmu_dirty=1: 'written since the last look' from the MMU's dirty state, not a checksum (repeatable)" },
	{ "--khugepaged on|off", "khugepaged collapses 2M ranges of host memory that 4K pages map into THPs, between scheduler rounds on the run's clock (off)" },
	{ "--thp-param KEY=VALUE[,...]", "khugepaged knobs as in /sys/kernel/mm/transparent_hugepage/khugepaged: pages_to_scan, scan_sleep_millisecs, alloc_sleep_millisecs (1 ms = 1000 guest accesses), max_ptes_none, defrag" },
	{ "--host-fragment PCT[:MS]", "a fragmented host: one 4K frame held in PCT% of its free 2M blocks from boot, let go at MS ms of the run's clock (held to the end without :MS)" },
	{ "--seed N", "the run's seed (1): the same seed gives the same guest digest in every mode" },
	{ "--param KEY=VALUE", "a workload parameter, repeatable ('vmmu workloads' lists them); sizes take K, M, G, T" },
	{ "--cost KEY=CYCLES", "override one cost of the cost model (docs/hardware.md), repeatable" },
	{ "--cpu intel|amd", "the guest CPU model (intel)" },
	{ "--guest-pcid on|off", "the guest kernel uses PCIDs (on)" },
	{ "--guest-aging N", "page aging every N scheduler rounds (0: off)" },
	{ "--guest-1g on|off", "the workload's anonymous mappings of 1G or more in guest 1G pages, as MAP_HUGETLB | MAP_HUGE_1GB (off)" },
	{ "--guest-khugepaged N", "the guest kernel's khugepaged every N scheduler rounds: 2M of THP memory (--guest-thp on) that 4K pages map collapsed into 2M pages (0: off)" },
	{ "--quantum N", "workload steps a vCPU runs before the next one's turn (64)" },
	{ "--max-shadow-pages N", "soft MMU: shadow pages at most, 8 or more (2% of guest memory, at least 64)" },
	{ "--mmu-evict lru|fifo", "soft MMU: which shadow pages make room at the limit: least recently used by the Accessed bits of their links (lru), or oldest created as KVM (fifo)" },
	{ "--mmu-lock fine|shared|big", "how faults of vCPUs on different threads exclude each other: every fault takes the MMU lock shared, soft-MMU leaf installs under the shadow page's own lock (fine); EPT/NPT faults shared, soft-MMU faults exclusive (shared); every fault exclusive (big) (fine)" },
	{ "--audit N", "audit the MMU's tables every N scheduler rounds and at the end (0: never)" },
	{ "--json", "print one JSON object (docs/user-guide.md has its keys) instead of the table" },
	{ "--report exits", "print the VM exits by reason as perf kvm stat report does: samples, share, share of the exits' simulated cycles, mean" },
	{ NULL, NULL },
};

static const struct help_opt compare_opts[] = {
	{ "--mmu LIST", "comma-separated native, shadow, shadow-svm, ept, npt (required)" },
	{ "--opt-sets SET/SET/...", "each an --opt value (all, none, +notrap,-unsync, ...), run on every mode but native (all)" },
	{ "--csv", "the table as CSV (RFC 4180), one column per configuration" },
	{ "--csv-long", "CSV with one row per configuration and metric: config,metric,value" },
	{ "--json", "{workload, digests_match, runs: [one vmmu run --json object each]}" },
	{ "--plot FILE.svg|FILE.png", "gnuplot figures of cycles per access and exits per 1,000 accesses" },
	{ "--threads", "run each configuration's vCPUs on their own threads (runs are interleaved by default, so counts and digests compare exactly; threaded, only workloads on disjoint data keep their digest)" },
	{ "--host, --opt", "refused: each configuration chooses them (shadow-svm in --mmu, --opt-sets)" },
	{ "other options", "every vmmu run option but --mmu, --host, --opt and --json goes to each run" },
	{ NULL, NULL },
};

static const struct help_opt sweep_opts[] = {
	{ "--jobs N, -j N", "runs at once, each a vmmu run process (the number of CPUs vmmu may run on); with --slurm: runs at once in each array task, its --cpus-per-task (1)" },
	{ "--output FILE, -o FILE", "the results file, one JSON line per run, appended (SPEC.results.jsonl in the current folder); with --collect: the merged file (DIR/results.jsonl)" },
	{ "--timeout SECONDS", "a run still going after SECONDS is killed and recorded as failed (none)" },
	{ "--list", "print the expanded runs, one a line: id, done/failed/todo, the vmmu run command; run nothing" },
	{ "--dry-run", "the same as --list" },
	{ "--retry-failed", "run again the runs whose last line is a failure (by default a recorded failure counts as done)" },
	{ "--quiet", "no progress line, no summary unless a run failed" },
	{ "--task K", "with --of N: run only runs K, K+N, K+2N, ... of the spec (what each Slurm array task does)" },
	{ "--of N", "the number of shares --task K picks from" },
	{ "--base DIR", "resolve relative trace paths against DIR instead of the spec's folder" },
	{ "--slurm DIR", "submit the sweep as one Slurm job array instead (sbatch --array): the spec and a copy of this vmmu go to DIR, a folder every node sees; task K writes DIR/results/task-K.jsonl; submitting again resumes" },
	{ "--runs-per-task N", "with --slurm: runs per array task (50, or more to keep the array within 1,000 tasks)" },
	{ "--partition NAME", "with --slurm: passed to sbatch" },
	{ "--time LIMIT", "with --slurm: each task's time limit, passed to sbatch (e.g. 30 or 1:00:00)" },
	{ "--mem SIZE", "with --slurm: each task's memory, passed to sbatch (e.g. 1G)" },
	{ "--sbatch-arg ARG", "with --slurm: one more sbatch option, repeatable (e.g. --sbatch-arg=--account=lab)" },
	{ "--status DIR", "a submitted sweep's state: its array tasks in the queue (squeue) and its runs done and failed" },
	{ "--collect DIR", "merge the tasks' results into one file (-o, or DIR/results.jsonl), the last line of each run" },
	{ "SPEC.json", "the axes: workloads with parameter grids, traces, mmu, opt_sets, vcpus, thp, ksm, guest_thp, seeds, run_args, exclude (docs/sweeps.md)" },
	{ NULL, NULL },
};

static const struct help_opt report_opts[] = {
	{ "--group-by AXES", "comma-separated axes of the table's rows: workload, mmu, opts, vcpus, thp, ksm, guest_thp, seed, params, mode, or a swept parameter such as size (workload,mmu,opts)" },
	{ "--metrics LIST", "the table's columns, each a mean over the group's runs: cycles_per_access, exits_per_1k, tlb_misses_per_1k, walk_refs_per_miss, pf_fixed_per_1k, or any number of the run's JSON by its path, such as stats.pf_fixed or host.seconds" },
	{ "--csv", "the table as CSV (RFC 4180) instead of markdown, alone on standard output" },
	{ "--plot DIR", "draw the figures into DIR with gnuplot, each with its script (NAME.gp): cycles_per_access, exits_per_1k (by workload and mode, option set all), opt_speedup (each option set over the baseline, by mode), vcpu_scaling (when the runs have several vCPU counts), heatmap" },
	{ "--format svg|png", "the figures' format (svg)" },
	{ "--heatmap X,Y", "the heatmap's two axes (workload,mmu)" },
	{ "--heatmap-metric METRIC", "the heatmap's metric (cycles_per_access)" },
	{ "--baseline SET", "the option set speedups are measured against (none if the runs have it, else the first)" },
	{ "RESULTS", "results files of vmmu sweep (or --collect); the last line of each run id counts" },
	{ NULL, NULL },
};

static const struct help_opt check_opts[] = {
	{ "--cpu host|intel|amd", "the CPU model the walker follows (host: this machine's CPUID)" },
	{ "--features +f,-f", "CPU features on or off: smep, smap, pku, 1g, la57, nx, pse36" },
	{ "--maxphyaddr N", "physical address width, 32 to 52" },
	{ "FILE", "scenarios, one a line (docs/check-format.md); standard input if none" },
	{ NULL, NULL },
};

static const struct help_opt validate_opts[] = {
	{ "--count N", "random scenarios to run (1000)" },
	{ "--seed S", "the generator's seed" },
	{ "--quiet", "print only the summary (with --probes: and the counters that differ)" },
	{ "--probes", "run the counter probes instead: small guest programs on real KVM and on vmmu, every KVM counter side by side" },
	{ "--probe LIST", "with --probes: only these probes (comma-separated; --list names them)" },
	{ "--reps N", "with --probes: KVM repetitions per probe, 1 to 64 (7); the median is compared" },
	{ "--golden FILE", "with --probes: KVM's results from FILE (recorded with --record) instead of /dev/kvm" },
	{ "--record FILE", "with --probes: also write KVM's results to FILE, as goldens" },
	{ "--markdown", "with --probes: the tables in markdown" },
	{ "--list", "with --probes: list the probes" },
	{ NULL, NULL },
};

static const struct help_cmd cmds[] = {
	{ "run", "run WORKLOAD [options]",
	  "Run a workload of the guest model on a VM under one MMU mode and report what the guest saw (its digest) and what it cost: VM exits by reason, the MMU's faults, TLB misses and walk references, shadow or EPT/NPT pages, simulated cycles, host time.",
	  run_opts, "Exit status: 0 done; 1 the run failed; 2 bad usage." },
	{ "compare", "compare WORKLOAD --mmu LIST [options]",
	  "Run one workload under several configurations with the same seed, print one column per configuration and check that every guest digest is the same.",
	  compare_opts, "Exit status: 0 every digest equal; 1 a digest differs or a run failed; 2 bad usage." },
	{ "sweep", "sweep SPEC.json [-j N] [-o FILE] [--timeout S] [--list] | sweep SPEC.json --slurm DIR [sbatch options] | sweep --status DIR | sweep --collect DIR",
	  "Expand a spec of axes (workloads and their parameters, modes, option sets, vCPUs, THP, KSM, seeds, traces, less exclusions) into runs, each with a stable id (a hash of its configuration), and run them as vmmu run processes, -j at once, with a progress line on a terminal (done, failed, ETA). Each result is a line of the results file: the run's --json object plus id, status, axes and argv. Running the sweep again skips the runs already in the file; a run that fails or times out is recorded as a failed line with the tail of its stderr and does not stop the sweep. With --slurm the sweep becomes a Slurm job array instead.",
	  sweep_opts, "Exit status: 0 every run ok; 1 a run failed (recorded), or --collect found runs missing; 2 bad usage or a bad spec (the message names the problem); 130 interrupted (run it again to finish)." },
	{ "report", "report RESULTS... [--group-by AXES] [--metrics LIST] [--csv] [--plot DIR]",
	  "Merge sweep results into a table grouped by any axes (markdown, or CSV), with the speedup of each option set and the failed runs; check that runs differing only in MMU mode, host, option set, host THP or KSM have the same guest digest (a mismatch is a transparency bug: it is printed loudly); draw the figures.",
	  report_opts, "Exit status: 0; 1 a digest mismatch (or a figure gnuplot could not draw); 2 bad usage or an unreadable file." },
	{ "workloads", "workloads [NAME]",
	  "List the workloads, or one, with every parameter, its default and its meaning.", NULL, NULL },
	{ "check", "check [options] [FILE]",
	  "Answer page-walk scenarios, one a line: each line is printed followed by the model's outcome (fault, error code, CR2, the A/D bits of each level).",
	  check_opts, "Exit status: 0; 2 a malformed line (its number and text on standard error)." },
	{ "validate", "validate [--count N] [--seed S] [--quiet] | validate --probes [--probe LIST] [--reps N] [--golden FILE | --record FILE] [--markdown]",
	  "Run random page-walk scenarios on the model and on the real CPU through /dev/kvm and report the agreement; every disagreement is printed as a check line. With --probes, run the counter probes on KVM (or read its recorded results) and on vmmu and compare every counter: they agree within 10%, within KVM's own spread, or within 2.",
	  validate_opts, "Exit status: 0 all agree; 1 a disagreement or a runner error; 2 bad usage or a bad goldens file; 77 /dev/kvm is unusable." },
	{ "version", "version", "Print the version.", NULL, NULL },
	{ "help", "help [COMMAND | --man]",
	  "Describe the commands, or one; --man prints this text as the vmmu(1) manual page.", NULL, NULL },
};

#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static const struct help_cmd *find(const char *name)
{
	for (size_t i = 0; i < NCMDS; i++)
		if (!strcmp(cmds[i].name, name))
			return &cmds[i];
	return NULL;
}

/* @text folded at @width columns, each line indented by @indent. */
static void fold(FILE *f, const char *text, int indent, int width)
{
	int col = indent;

	fprintf(f, "%*s", indent, "");
	while (*text) {
		const char *sp = strchr(text, ' ');
		int len = sp ? (int)(sp - text) : (int)strlen(text);

		if (col > indent && col + 1 + len > width) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (col > indent) {
			fputc(' ', f);
			col++;
		}
		fprintf(f, "%.*s", len, text);
		col += len;
		text += len;
		while (*text == ' ')
			text++;
	}
	fputc('\n', f);
}

static void print_cmd(FILE *f, const struct help_cmd *c)
{
	fprintf(f, "usage: vmmu %s\n\n", c->synopsis);
	fold(f, c->summary, 2, 96);
	if (c->opts) {
		fputc('\n', f);
		for (const struct help_opt *o = c->opts; o->opt; o++) {
			fprintf(f, "  %s\n", o->opt);
			fold(f, o->text, 6, 96);
		}
	}
	if (c->more) {
		fputc('\n', f);
		fold(f, c->more, 2, 96);
	}
}

int help_command(const char *name)
{
	const struct help_cmd *c = find(name);

	if (!c)
		return -1;
	print_cmd(stdout, c);
	return 0;
}

void help_overview(FILE *f)
{
	fprintf(f, "usage: vmmu COMMAND [options]   ('vmmu help COMMAND' for its options)\n\ncommands:\n");
	for (size_t i = 0; i < NCMDS; i++) {
		fprintf(f, "  %s\n", cmds[i].synopsis);
		fold(f, cmds[i].summary, 8, 96);
	}
}

/* troff: a leading dot or quote would be a request; backslashes are escapes. */
static void man_text(const char *s)
{
	if (*s == '.' || *s == '\'')
		fputs("\\&", stdout);
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\e", stdout);
		else if (*s == '-')
			fputs("\\-", stdout);
		else
			putchar(*s);
	}
}

static void print_man(void)
{
	printf(".TH VMMU 1 \"\" \"vmmu %s\" \"User Commands\"\n", VMMU_VERSION);
	printf(".SH NAME\nvmmu \\- x86\\-64 MMU virtualization in user space: shadow paging, EPT and NPT, measured\n");
	printf(".SH SYNOPSIS\n");
	for (size_t i = 0; i < NCMDS; i++) {
		printf(".B vmmu\n");
		man_text(cmds[i].synopsis);
		printf("\n.br\n");
	}
	printf(".SH DESCRIPTION\nvmmu models how a KVM\\-style hypervisor virtualizes the guest's MMU: "
	       "memslots, the guest page walker, the soft MMU (shadow paging) and the hard MMU (EPT, "
	       "NPT), over a model of the hardware (TLB, page walks, VM exits, a cost model) and a "
	       "guest OS model with workloads. Its library is libvmmu(3).\n");
	printf(".SH COMMANDS\n");
	for (size_t i = 0; i < NCMDS; i++) {
		const struct help_cmd *c = &cmds[i];

		printf(".SS \"");
		man_text(c->synopsis);
		printf("\"\n");
		man_text(c->summary);
		printf("\n");
		for (const struct help_opt *o = c->opts; o && o->opt; o++) {
			printf(".TP\n.B ");
			man_text(o->opt);
			printf("\n");
			man_text(o->text);
			printf("\n");
		}
		if (c->more) {
			printf(".PP\n");
			man_text(c->more);
			printf("\n");
		}
	}
	printf(".SH FILES\nThe user guide, the architecture and the figures are in the docs/ folder "
	       "of the source tree.\n.SH SEE ALSO\n.BR libvmmu (3)\n");
}

int help_main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--man")) {
		print_man();
		return 0;
	}
	if (argc > 1) {
		if (help_command(argv[1])) {
			fprintf(stderr, "vmmu help: unknown command '%s'\n", argv[1]);
			return EXIT_USAGE;
		}
		return 0;
	}
	help_overview(stdout);
	return 0;
}
