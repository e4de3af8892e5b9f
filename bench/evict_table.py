#!/usr/bin/env python3
"""Shadow-page eviction figures for docs/figures.md: the soft MMU at a shadow page limit its
workload's tables exceed, with `--mmu-evict lru` (the clock on the Accessed bits of the links to
each shadow page, the default) against `fifo` (oldest created first, KVM's order), from
`vmmu run --json`. Stdlib only.

  bench/evict_table.py [--vmmu build/vmmu] [--small]

Per row: the workload and the limit (`--max-shadow-pages`), then for fifo and lru the VM exits,
`mmu_recycled` (shadow pages zapped to make room) and simulated cycles, and lru's change
against fifo. Both runs of a row must give the same guest.digest (eviction is invisible to the
guest).
"""
import argparse
import sys

from vmmu_json import run

ROWS = [
    ("gups", ["size=64M", "updates=200000"], [16, 24, 32]),
    ("fork", ["iters=20", "size=8M"], [16, 24]),
    ("touch", ["size=64M", "passes=4"], [16, 24]),
]
SMALL = [("gups", ["size=16M", "updates=20000"], [12]), ("fork", ["iters=4", "size=4M"], [16])]


def run_evict(vmmu, workload, params, limit, evict):
    return run(vmmu, workload, params, ["--mmu", "shadow", "--max-shadow-pages", str(limit),
                                        "--mmu-evict", evict])


def pct(new, old):
    return f"{100.0 * (new - old) / old:+.1f}%" if old else "n/a"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vmmu", default="build/vmmu")
    ap.add_argument("--small", action="store_true", help="two quick rows")
    a = ap.parse_args()
    print("Shadow paging (VMX host), all optimizations on; `--max-shadow-pages N`, "
          "`--mmu-evict fifo` / `lru`.\n")
    print("| workload | limit | exits fifo | exits lru | recycled fifo | recycled lru "
          "| cycles fifo | cycles lru | lru: exits | lru: recycled | lru: cycles |")
    print("|" + " --- |" * 11)
    for workload, params, limits in SMALL if a.small else ROWS:
        for limit in limits:
            f = run_evict(a.vmmu, workload, params, limit, "fifo")
            l = run_evict(a.vmmu, workload, params, limit, "lru")
            if f["guest"]["digest"] != l["guest"]["digest"]:
                sys.exit(f"evict_table: {workload} limit {limit}: the digests differ")
            sf, sl = f["stats"], l["stats"]
            cf, cl = f["cost"]["sim_cycles"], l["cost"]["sim_cycles"]
            print(f"| {workload} {' '.join(params)} | {limit} | {sf['exits']} | {sl['exits']} "
                  f"| {sf['mmu_recycled']} | {sl['mmu_recycled']} | {cf} | {cl} "
                  f"| {pct(sl['exits'], sf['exits'])} "
                  f"| {pct(sl['mmu_recycled'], sf['mmu_recycled'])} | {pct(cl, cf)} |")
    print("\nEvery pair of runs gave the same digest.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
