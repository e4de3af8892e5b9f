#!/usr/bin/env bash
# The training runs of the profile-guided build (scripts/bootstrap.sh): VMMU (an instrumented
# build's vmmu) runs the guest model's main workloads at small sizes under every MMU mode, so that
# GCC sees where each mode's faults, walks and exits spend their time and lays that code out
# together, apart from what they never run. About 7 s. No benchmark runs here: the profile is
# of the workloads, and the benchmarks (bench/) measure what it gives.
set -euo pipefail
V=${1:?usage: pgo-train.sh VMMU}
for m in native shadow ept npt; do
	"$V" run touch --mmu "$m" --param size=16M
	"$V" run touch --mmu "$m" --param size=8M --thp always --guest-thp on
	"$V" run gups --mmu "$m" --param size=16M --param updates=200000
	"$V" run gups --mmu "$m" --param size=256K --param updates=400000
	"$V" run gups --mmu "$m" --vcpus 2 --param size=8M --param updates=100000
	"$V" run fork --mmu "$m" --param iters=8 --param size=1M
	"$V" run ctxsw --mmu "$m" --param procs=3 --param rounds=200
	"$V" run mmap --mmu "$m" --param iters=40 --param size=256K
	"$V" run clone-vms --mmu "$m" --param size=4M --ksm on
	"$V" run migrate --mmu "$m" --param size=4M --param updates=50000 --param interval=2000
done >/dev/null
