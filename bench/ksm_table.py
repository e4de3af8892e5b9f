#!/usr/bin/env python3
"""KSM figures for docs/figures.md: clone-vms (every VM boots the same image and loads the same
data file) with 4 and with 8 VMs under shadow paging, EPT and NPT, KSM off and on, from
`vmmu run --json`. Stdlib only.

  bench/ksm_table.py [--vmmu build/vmmu] [--size 16M] [--thp never] [--small]

Per row: the process's RSS when the workload starts (KSM marked, nothing merged yet) and at its
end with KSM on, and at the end without KSM; the duplicate frames (the data file's pages in every
VM but one); the frames the RSS shows back with the OS (RSS without KSM less RSS with it, in 4K
frames) against the duplicates and against what ksmd says it saved (pages_sharing + zero pages);
pages_shared and pages_sharing; full scans until the last merge; COW breaks; and what the guests
paid: extra VM exits and simulated cycles. Every pair of runs must give the same guest.digest.

A second table compares ksmd's two ways of telling that a page held still since its last look:
its checksum (Linux's) against the MMU's dirty state (--ksm-param use_mmu_dirty=1): the checksums
and byte comparisons each takes, the merges and pages_sharing each reaches (lost or gained), the
harvests of the dirty state, and what the guests pay for the write tracking in exits and cycles.
"""
import argparse
import sys

from vmmu_json import run

MODES = [("shadow", ["--mmu", "shadow", "--host", "vmx"]), ("ept", ["--mmu", "ept"]),
         ("npt", ["--mmu", "npt"])]
KSM = ["--ksm", "on", "--ksm-param", "pages_to_scan=4000,sleep_millisecs=2"]
MMU_DIRTY = ["--ksm-param", "use_mmu_dirty=1"]


def run_clone(vmmu, args):
    return run(vmmu, "clone-vms", extra=args)


def mib(b):
    return f"{b / 2**20:.1f}"


def extra(base, new):
    """The exits and simulated cycles @new paid beyond @base, as two table cells."""
    exits = new["stats"]["exits"] - base["stats"]["exits"]
    cyc = new["cost"]["sim_cycles"] - base["cost"]["sim_cycles"]
    return f"| {exits:+d} | {cyc:+d} ({100.0 * cyc / base['cost']['sim_cycles']:+.1f}%) |"


def pct(new, old):
    return f"{100.0 * (new - old) / old:+.0f}%" if old else "n/a"


def dirty_table(rows):
    print("\nChecksums against the MMU's dirty state (`use_mmu_dirty=1`), the same runs; "
          "*checksum* / *MMU dirty* per cell, the change in parentheses.\n")
    print("| VMs | MMU | checksums | byte compares | merges | pages_sharing | RSS at end (MiB) "
          "| full scans to converge | COW breaks | harvests | unchanged / written | extra exits "
          "| extra cycles |")
    print("|" + " --- |" * 13)
    for vms, name, c, d in rows:
        sc, sd = c["stats"], d["stats"]
        print(f"| {vms} | {name} "
              f"| {sc['ksm_checksums']} / {sd['ksm_checksums']} "
              f"({pct(sd['ksm_checksums'], sc['ksm_checksums'])}) "
              f"| {sc['ksm_compares']} / {sd['ksm_compares']} "
              f"({pct(sd['ksm_compares'], sc['ksm_compares'])}) "
              f"| {sc['ksm_merges']} / {sd['ksm_merges']} "
              f"({sd['ksm_merges'] - sc['ksm_merges']:+d}) "
              f"| {sc['ksm_pages_sharing']} / {sd['ksm_pages_sharing']} "
              f"({sd['ksm_pages_sharing'] - sc['ksm_pages_sharing']:+d}) "
              f"| {mib(c['host']['rss_bytes'])} / {mib(d['host']['rss_bytes'])} "
              f"| {sc['ksm_merge_scans']} / {sd['ksm_merge_scans']} "
              f"| {sc['ksm_cow_breaks']} / {sd['ksm_cow_breaks']} "
              f"| {sd['ksm_mmu_harvests']} | {sd['ksm_mmu_unchanged']} / {sd['ksm_mmu_written']} "
              f"{extra(c, d)}")


def parse_size(s):
    mult = {"K": 2**10, "M": 2**20, "G": 2**30}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmmu", default="build/vmmu")
    ap.add_argument("--size", default="16M", help="clone-vms' data file (default 16M)")
    ap.add_argument("--thp", default="never", help="host THP (default never)")
    ap.add_argument("--small", action="store_true", help="4M data file, 4 VMs only")
    a = ap.parse_args()
    size = "4M" if a.small else a.size
    vm_counts = [4] if a.small else [4, 8]
    data_pages = parse_size(size) // 4096
    print(f"clone-vms, data file {size}, host THP {a.thp}, "
          f"`{' '.join(KSM)}`; RSS in MiB, cycles simulated.\n")
    print("| VMs | MMU | RSS at start | RSS at end, KSM on | RSS at end, KSM off | duplicate frames "
          "| frames back (RSS) | of the duplicates | of ksmd's saving | pages_shared "
          "| pages_sharing | full scans to converge | COW breaks | extra exits "
          "| extra cycles |")
    print("|" + " --- |" * 15)
    worst = 1.0
    rows = []
    for vms in vm_counts:
        for name, mode in MODES:
            base = ["--vms", str(vms), "--thp", a.thp, "--param", f"size={size}"] + mode
            off = run_clone(a.vmmu, base)
            on = run_clone(a.vmmu, base + KSM)
            dirty = run_clone(a.vmmu, base + KSM + MMU_DIRTY)
            if not off["guest"]["digest"] == on["guest"]["digest"] == dirty["guest"]["digest"]:
                sys.exit(f"ksm_table: {vms} VMs {name}: the digest differs with KSM on")
            rows.append((vms, name, on, dirty))
            sn = on["stats"]
            start = on["host"]["rss_samples"][0]["rss_bytes"]
            back = (off["host"]["rss_bytes"] - on["host"]["rss_bytes"]) // 4096
            dups = (vms - 1) * data_pages
            saved = sn["ksm_pages_sharing"] + sn["ksm_zero_pages"]
            worst = min(worst, back / dups, back / saved if saved else 0)
            print(f"| {vms} | {name} | {mib(start)} | {mib(on['host']['rss_bytes'])} "
                  f"| {mib(off['host']['rss_bytes'])} | {dups} | {back} "
                  f"| {100.0 * back / dups:.0f}% | {100.0 * back / saved if saved else 0:.0f}% "
                  f"| {sn['ksm_pages_shared']} | {sn['ksm_pages_sharing']} "
                  f"| {sn['ksm_merge_scans']} | {sn['ksm_cow_breaks']} {extra(off, on)}")
    print(f"\nEvery digest the same with KSM on and off. Lowest share of frames back: "
          f"{100.0 * worst:.0f}%.")
    dirty_table(rows)
    print("\nEvery digest the same with either.")
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
