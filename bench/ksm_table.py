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
"""
import argparse
import json
import subprocess
import sys

MODES = [("shadow", ["--mmu", "shadow", "--host", "vmx"]), ("ept", ["--mmu", "ept"]),
         ("npt", ["--mmu", "npt"])]
KSM = ["--ksm", "on", "--ksm-param", "pages_to_scan=4000,sleep_millisecs=2"]


def run(vmmu, args):
    cmd = [vmmu, "run", "clone-vms", "--json"] + args
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"ksm_table: {' '.join(cmd)} failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def mib(b):
    return f"{b / 2**20:.1f}"


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
    for vms in vm_counts:
        for name, mode in MODES:
            base = ["--vms", str(vms), "--thp", a.thp, "--param", f"size={size}"] + mode
            off = run(a.vmmu, base)
            on = run(a.vmmu, base + KSM)
            if off["guest"]["digest"] != on["guest"]["digest"]:
                sys.exit(f"ksm_table: {vms} VMs {name}: the digest differs with KSM on")
            so, sn = off["stats"], on["stats"]
            start = on["host"]["rss_samples"][0]["rss_bytes"]
            back = (off["host"]["rss_bytes"] - on["host"]["rss_bytes"]) // 4096
            dups = (vms - 1) * data_pages
            saved = sn["ksm_pages_sharing"] + sn["ksm_zero_pages"]
            worst = min(worst, back / dups, back / saved if saved else 0)
            exits = sn["exits"] - so["exits"]
            cyc = on["cost"]["sim_cycles"] - off["cost"]["sim_cycles"]
            print(f"| {vms} | {name} | {mib(start)} | {mib(on['host']['rss_bytes'])} "
                  f"| {mib(off['host']['rss_bytes'])} | {dups} | {back} "
                  f"| {100.0 * back / dups:.0f}% | {100.0 * back / saved if saved else 0:.0f}% "
                  f"| {sn['ksm_pages_shared']} | {sn['ksm_pages_sharing']} "
                  f"| {sn['ksm_merge_scans']} | {sn['ksm_cow_breaks']} | {exits:+d} "
                  f"| {cyc:+d} ({100.0 * cyc / off['cost']['sim_cycles']:+.1f}%) |")
    print(f"\nEvery digest the same with KSM on and off. Lowest share of frames back: "
          f"{100.0 * worst:.0f}%.")
    return 0 if worst >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
