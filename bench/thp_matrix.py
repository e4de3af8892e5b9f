#!/usr/bin/env python3
"""Huge-page figures for docs/figures.md: guest page size x host page size x MMU mode, on gups
and touch, from `vmmu run --json`. Stdlib only.

  bench/thp_matrix.py [--vmmu build/vmmu] [--small]

Guest pages: 4K (--guest-thp off), 2M (--guest-thp on: the guest kernel maps the workload's
anonymous memory with 2M pages) and 1G (--guest-1g on: mappings of 1G or more in 1G pages, as
MAP_HUGETLB | MAP_HUGE_1GB; the workload's memory is then 1G, so those rows run a 1G table or
range and are compared among themselves). Host pages: 4K (--thp never), 2M and
1G (--hugetlb 2M, --hugetlb 1G: guest RAM backed like a hugetlbfs file). Per row: walk
references per TLB miss, TLB misses per 1,000 accesses, simulated cycles per access, the MMU's
own tables (shadow pages or EPT/NPT table pages, 4 KiB each) and the leaf mix the MMU built
(pages_4k/2m/1g). Every run of a workload with one guest page size must give the same
guest.digest: host pages are invisible to the guest.
"""
import argparse
import sys

from mmu_table import ratio
from vmmu_json import run

WORKLOADS = {
    # name: (params for the figures, params with --small, the same for 1G guest pages)
    "gups": (["size=64M", "updates=500000"], ["size=16M", "updates=50000"],
             ["size=1G", "updates=500000"], ["size=1G", "updates=50000"]),
    "touch": (["size=256M", "passes=2"], ["size=32M", "passes=2"],
              ["size=1G", "passes=2"], ["size=1G", "passes=1"]),
}
MODES = [("native", ["--mmu", "native"]), ("shadow", ["--mmu", "shadow", "--host", "vmx"]),
         ("ept", ["--mmu", "ept"]), ("npt", ["--mmu", "npt"])]
GUEST = [("4K", ["--guest-thp", "off"]), ("2M", ["--guest-thp", "on"]),
         ("1G", ["--guest-1g", "on"])]
HOST = [("4K", ["--thp", "never"]), ("2M", ["--thp", "never", "--hugetlb", "2M"]),
        ("1G", ["--thp", "never", "--hugetlb", "1G"])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmmu", default="build/vmmu")
    ap.add_argument("--small", action="store_true", help="smaller parameters, quicker")
    a = ap.parse_args()
    for wl, (params, small, params_1g, small_1g) in WORKLOADS.items():
        params = small if a.small else params
        params_1g = small_1g if a.small else params_1g
        print(f"### {wl} ({', '.join(params)}; 1G guest pages: {', '.join(params_1g)})\n")
        print("| guest pages | host pages | mode | walk refs / TLB miss | TLB misses / 1k accesses "
              "| cycles / access | MMU tables (KiB) | leaves 4K / 2M / 1G |")
        print("|" + " --- |" * 8)
        for gname, gargs in GUEST:
            digest = None
            for hname, hargs in HOST:
                for mname, margs in MODES:
                    r = run(a.vmmu, wl, params_1g if gname == "1G" else params,
                            gargs + hargs + margs)
                    st, acc = r["stats"], r["guest"]["accesses"]
                    if digest is None:
                        digest = r["guest"]["digest"]
                    elif r["guest"]["digest"] != digest:
                        sys.exit(f"thp_matrix: {wl} guest {gname} host {hname} {mname}: "
                                 f"the digest differs")
                    tables = (st["shadow_pages"] + st["tdp_pages"]) * 4
                    leaves = ("-" if mname == "native" else
                              f"{st['pages_4k']} / {st['pages_2m']} / {st['pages_1g']}")
                    print(f"| {gname} | {hname} | {mname} "
                          f"| {ratio(st['walk_refs'], st['tlb_misses']):.2f} "
                          f"| {1000.0 * ratio(st['tlb_misses'], acc):.1f} "
                          f"| {r['cost']['cycles_per_access']:.2f} | {tables} | {leaves} |")
                    sys.stdout.flush()
        print()


if __name__ == "__main__":
    main()
