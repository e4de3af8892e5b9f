#!/usr/bin/env python3
"""Figures for docs/: runs every workload under every MMU mode (and option set) with `vmmu run
--json` and prints markdown tables. Stdlib only.

  bench/mmu_table.py modes    exits / 1,000 accesses, walk refs / TLB miss, cycles / access per
                              workload and mode, host pages 4K and THP (issues 5 and 6)
  bench/mmu_table.py opts     for the soft MMU: each optimization off and on, per workload:
                              exits and simulated cycles (issue 7)

Every table also checks that all runs of a workload gave the same guest.digest as native.
Options: --vmmu PATH (default build/vmmu), --small (quicker, smaller parameters).
"""
import argparse
import sys

from vmmu_json import run

WORKLOADS = {
    # name: (params for the figures, params with --small)
    "touch": (["size=256M"], ["size=32M"]),
    "gups": (["size=64M", "updates=500000"], ["size=16M", "updates=50000"]),
    "fork": (["iters=50", "size=8M"], ["iters=10", "size=4M"]),
    "ctxsw": (["procs=4", "rounds=5000"], ["procs=4", "rounds=500"]),
    "mmap": (["iters=300", "size=1M"], ["iters=50", "size=1M"]),
    "clone-vms": (["size=16M"], ["size=8M"]),
    "trace": (["file=tests/data/true.lackey.gz"], ["file=tests/data/true.lackey.gz"]),
    # dirty logging: the only workload whose write faults fastpf can fix (its row shows pf_fast)
    "migrate": (["size=64M", "updates=500000", "interval=20000", "rounds=20"],
                ["size=16M", "updates=50000", "interval=2500", "rounds=16"]),
}
OPTS = ["notrap", "unsync", "prefetch", "fastpf"]


def slow_fixed(st):
    """Faults the slow path fixed: KVM's pf_fixed counts the fast page fault's fixes too."""
    return st["pf_fixed"] - st["pf_fast"]


def per_k(n, d):
    return 1000.0 * n / d if d else 0.0


def ratio(n, d):
    return n / d if d else 0.0


def modes_table(vmmu, small):
    configs = [
        ("native", ["--mmu", "native"]),
        ("shadow/vmx", ["--mmu", "shadow", "--host", "vmx"]),
        ("shadow/svm", ["--mmu", "shadow", "--host", "svm"]),
        ("ept", ["--mmu", "ept"]),
        ("npt", ["--mmu", "npt"]),
    ]
    ok = True
    for thp in ["never", "always"]:
        print(f"\n### Host pages: {'4K (--thp never)' if thp == 'never' else 'THP (--thp always)'}\n")
        print("| workload | mode | exits / 1k acc | walk refs / TLB miss | cycles / access | host s | digest |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for w, (big, little) in WORKLOADS.items():
            params = little if small else big
            base = None
            for name, extra in configs:
                d = run(vmmu, w, params, extra + ["--thp", thp])
                st, g = d["stats"], d["guest"]
                base = base or g["digest"]
                same = g["digest"] == base
                ok &= same
                print(f"| {w} | {name} | {per_k(st['exits'], g['accesses']):.2f} | "
                      f"{ratio(st['walk_refs'], st['tlb_misses']):.2f} | "
                      f"{d['cost']['cycles_per_access']:.1f} | {d['host']['seconds']:.2f} | "
                      f"{'= native' if same else 'DIFFERS'} |")
    return ok


def opts_table(vmmu, small):
    """Each option off and on, twice: with the other options on (their default) and alone (the
    others off). VMX host, 1 vCPU, seed 1. Then the fast page fault under EPT and NPT."""
    ok = True
    print("| workload | option | others | exits off -> on | #PF exits off -> on | sim cycles off -> on | change | target counter off -> on |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    # What each option is for: notrap, #PF exits (guest demand faults reach the guest);
    # unsync, emulated page-table writes; prefetch, faults fixed; fastpf, faults fixed fast
    # (only migrate logs dirty pages; a fast fix is still an exit, so exits stay, cycles drop).
    targets = {"notrap": ("pf", "exits_by_reason"), "unsync": ("mmu_pte_write", None),
               "prefetch": ("pf_fixed", None), "fastpf": ("pf_fast", None)}
    for w, (big, little) in WORKLOADS.items():
        params = little if small else big
        native = run(vmmu, w, params, ["--mmu", "native"])["guest"]["digest"]
        cache = {}

        def shadow(enabled):
            key = tuple(sorted(enabled))
            if key not in cache:
                spec = ",".join(("+" if o in enabled else "-") + o for o in OPTS)
                d = run(vmmu, w, params, ["--mmu", "shadow", "--host", "vmx", "--opt", spec])
                cache[key] = d
            return cache[key]

        for o in OPTS:
            for others in ("on", "off"):
                rest = set(OPTS) - {o} if others == "on" else set()
                r0, r1 = shadow(rest), shadow(rest | {o})
                ok &= r0["guest"]["digest"] == native and r1["guest"]["digest"] == native
                st0, st1 = r0["stats"], r1["stats"]
                c0, c1 = r0["cost"]["sim_cycles"], r1["cost"]["sim_cycles"]
                key, sub = targets[o]
                t0 = st0[sub][key] if sub else st0[key]
                t1 = st1[sub][key] if sub else st1[key]
                target = f"{key}: {t0:,} -> {t1:,}"
                if o == "fastpf":
                    # The faults it targets are the slow path's under dirty logging; as KVM's,
                    # pf_fixed counts the fast fixes too, so the slow path's are the rest.
                    target = (f"slow pf_fixed: {slow_fixed(st0):,} -> {slow_fixed(st1):,}, "
                              f"pf_fast: {t0:,} -> {t1:,}")
                cch = (c1 - c0) / c0 * 100 if c0 else 0.0
                pf0, pf1 = st0["exits_by_reason"]["pf"], st1["exits_by_reason"]["pf"]
                print(f"| {w} | {o} | {others} | {st0['exits']:,} -> {st1['exits']:,} | "
                      f"{pf0:,} -> {pf1:,} | {c0/1e6:,.1f}M -> {c1/1e6:,.1f}M | {cch:+.1f}% | "
                      f"{target} |", flush=True)

    print("\n### The fast page fault under the hard MMU (migrate)\n")
    print("| mode | exits | slow pf_fixed off -> on | pf_fast off -> on | sim cycles off -> on | change |")
    print("| --- | --- | --- | --- | --- | --- |")
    big, little = WORKLOADS["migrate"]
    params = little if small else big
    native = run(vmmu, "migrate", params, ["--mmu", "native"])["guest"]["digest"]
    for mode in ("ept", "npt"):
        r0 = run(vmmu, "migrate", params, ["--mmu", mode, "--opt", "-fastpf"])
        r1 = run(vmmu, "migrate", params, ["--mmu", mode, "--opt", "+fastpf"])
        ok &= r0["guest"]["digest"] == native and r1["guest"]["digest"] == native
        st0, st1 = r0["stats"], r1["stats"]
        c0, c1 = r0["cost"]["sim_cycles"], r1["cost"]["sim_cycles"]
        print(f"| {mode} | {st1['exits']:,} | {slow_fixed(st0):,} -> {slow_fixed(st1):,} | "
              f"{st0['pf_fast']:,} -> {st1['pf_fast']:,} | {c0/1e6:,.1f}M -> {c1/1e6:,.1f}M | "
              f"{(c1 - c0) / c0 * 100 if c0 else 0.0:+.1f}% |", flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", choices=["modes", "opts"])
    ap.add_argument("--vmmu", default="build/vmmu")
    ap.add_argument("--small", action="store_true")
    a = ap.parse_args()
    ok = modes_table(a.vmmu, a.small) if a.table == "modes" else opts_table(a.vmmu, a.small)
    print("\nall digests equal to native" if ok else "\nSOME DIGESTS DIFFER FROM NATIVE")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
