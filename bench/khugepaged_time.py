#!/usr/bin/env python3
"""khugepaged's effect over time, for docs/figures.md: gups on a fragmented host (every other 4K
frame of the host held until RELEASE ms of the run's clock, so THP faults fall back to 4K pages),
under EPT and NPT, with khugepaged off and on. Stdlib only.

  bench/khugepaged_time.py [--vmmu build/vmmu] [--small]

Runs are deterministic, so the figures of the interval (k-1, k] are the difference of two runs
with k-1 and k steps of updates. Per interval and mode: walk references per TLB miss, simulated
cycles per access, the 2M leaves of the hard MMU at its end and the THPs collapsed so far. Every
run must give the digest of the same run on an unfragmented host without khugepaged.
"""
import argparse
import sys

from mmu_table import ratio
from vmmu_json import run

MODES = [("ept", ["--mmu", "ept"]), ("npt", ["--mmu", "npt"])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmmu", default="build/vmmu")
    ap.add_argument("--small", action="store_true", help="smaller parameters, quicker")
    a = ap.parse_args()
    size, step, steps, release = ("16M", 50000, 4, 60) if a.small else ("64M", 250000, 8, 1500)
    common = ["--thp", "always", "--host-fragment", f"100:{release}"]
    kh = ["--khugepaged", "on", "--thp-param",
          "scan_sleep_millisecs=100,alloc_sleep_millisecs=100,pages_to_scan=32768"]
    print(f"gups size={size}, {step} updates an interval; host fragmented until {release} ms "
          f"(1 ms = 1000 guest accesses); khugepaged: pages_to_scan=32768, "
          f"scan_sleep_millisecs=100\n")
    print("| interval (updates) | mode | khugepaged | walk refs / TLB miss | cycles / access "
          "| 2M leaves at its end | THPs collapsed so far |")
    print("|" + " --- |" * 7)
    for mname, margs in MODES:
        for kname, kargs in (("off", []), ("on", kh)):
            prev = None
            for k in range(1, steps + 1):
                params = [f"size={size}", f"updates={k * step}"]
                r = run(a.vmmu, "gups", params, margs + common + kargs)
                ref = run(a.vmmu, "gups", params, margs)
                if r["guest"]["digest"] != ref["guest"]["digest"]:
                    sys.exit(f"khugepaged_time: {mname} khugepaged {kname} k={k}: the digest "
                             f"differs from the unfragmented run's")
                st, acc, cyc = r["stats"], r["guest"]["accesses"], r["cost"]["sim_cycles"]
                if prev:
                    pst, pacc, pcyc = prev
                    d = {f: st[f] - pst[f] for f in ("walk_refs", "tlb_misses")}
                    dacc, dcyc = acc - pacc, cyc - pcyc
                else:
                    d = {f: st[f] for f in ("walk_refs", "tlb_misses")}
                    dacc, dcyc = acc, cyc
                print(f"| {(k - 1) * step}-{k * step} | {mname} | {kname} "
                      f"| {ratio(d['walk_refs'], d['tlb_misses']):.2f} "
                      f"| {ratio(dcyc, dacc):.1f} | {st['pages_2m']} "
                      f"| {st['thp_collapse_alloc']} |")
                sys.stdout.flush()
                prev = (st, acc, cyc)
    print()


if __name__ == "__main__":
    main()
