#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`vmmu run` on vCPU threads against the same run interleaved on one thread (the baseline,
measured in the same invocation): host seconds of the workload (best of R) per MMU mode, with
1 vCPU, 2 vCPUs interleaved, 2 and 4 vCPU threads, and the speed-up of threads over
interleaved at the same vCPU count. The digest of every row of a workload must agree (the
workloads are on disjoint data). The threaded rows pin their vCPU threads (--pin-vcpus: on these
nested machines a thread left to the scheduler runs at the speed of the CPU it lands on, and the
two are not always alike); -U leaves them unpinned.

usage: bench/run_threads.py [VMMU] [-R ROUNDS] [--small] [-U]
"""
import json
import subprocess
import sys

vmmu = "build/vmmu"
rounds = 3
small = False
pin = True
args = sys.argv[1:]
while args:
    a = args.pop(0)
    if a == "-R":
        rounds = int(args.pop(0))
    elif a == "--small":
        small = True
    elif a == "-U":
        pin = False
    else:
        vmmu = a

WORKLOADS = [
    ("touch", ["--param", "size=64M" if small else "size=512M"]),
    ("gups", ["--param", "size=16M" if small else "size=64M", "--param",
              "updates=200000" if small else "updates=2000000", "--param", "slice=on"]),
]
MODES = ["native", "shadow", "ept", "npt"]
SCHEDS = [("1", ["--vcpus", "1"]), ("2 interleaved", ["--vcpus", "2", "--interleave"]),
          ("2 threads", ["--vcpus", "2"]), ("4 interleaved", ["--vcpus", "4", "--interleave"]),
          ("4 threads", ["--vcpus", "4"])]
if pin:
    SCHEDS = [(n, a + ["--pin-vcpus"] if n.endswith("threads") else a) for n, a in SCHEDS]


def run(wl, extra, mode, sched):
    out = subprocess.run([vmmu, "run", wl, *extra, "--mmu", mode, *sched, "--json"],
                         check=True, capture_output=True, text=True).stdout
    o = json.loads(out)
    return o["host"]["seconds"], o["guest"]["digest"], o["guest"]["page_faults"]


print("| workload | MMU | vCPUs | host s (best of %d) | speed-up of threads over interleaved |" % rounds)
print("| --- | --- | --- | --- | --- |")
for wl, extra in WORKLOADS:
    for mode in MODES:
        best = {}
        digests = {}
        for _ in range(rounds):
            for name, sched in SCHEDS:
                s, d, _pf = run(wl, extra, mode, sched)
                best[name] = min(best.get(name, s), s)
                digests.setdefault(name.split()[0], set()).add(d)
        for n, ds in digests.items():
            if len(ds) != 1:
                sys.exit("%s %s: %s vCPUs gave digests %s" % (wl, mode, n, sorted(ds)))
        for name, _ in SCHEDS:
            sp = ""
            if name.endswith("threads"):
                base = best[name.split()[0] + " interleaved"]
                sp = "%.2fx" % (base / best[name])
            print("| %s | %s | %s | %.3f | %s |" % (wl, mode, name, best[name], sp))
        sys.stdout.flush()
