#!/usr/bin/env bash
# Host time of the MMU fault paths, two builds side by side in one run: the handled shadow #PF
# (bench_shadow "fault": a first-touch write, and a read then a write of a page, two faults whose
# second finds the page mapped read-only) and the EPT violation / NPF (bench_tdp "fault"),
# OLD and NEW alternating round by round so both see the same machine load. Prints each round's
# figures (each the best of 3 inside the benchmark), then the median over the rounds and the
# ratio NEW / OLD (below 1: NEW is faster).
# Each run is of a fresh copy of the benchmark's binary (ab_lib.sh's fresh says why). CPU=N pins
# every run to CPU N (taskset): these VMs' CPUs are not alike, and which one is slow changes within
# minutes.
# Usage: [CPU=N] bench/fault_ab.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS]   (build dirs, bench/ built)
set -euo pipefail
old=${1:?usage: fault_ab.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS]}
new=${2:?usage: fault_ab.sh OLD_BUILD_DIR NEW_BUILD_DIR [ROUNDS]}
rounds=${3:-5}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pin=()
[ -n "${CPU:-}" ] && pin=(taskset -c "$CPU")

# shellcheck source=bench/ab_lib.sh
. "$(dirname "$0")/ab_lib.sh"   # fresh, median
shadow_ns() { # build dir: ns per handled shadow #PF, "WRITE RW" (write a page; read, then write, a page)
	# The best of 3: the last column, or the one before it where a build prints its first round's
	# figure beside it (a build that does names its columns "first round").
	local b
	b=$(fresh "$1" bench_shadow)
	"${pin[@]}" "$b" -f -r 3 | awk '/first round/ {fr = 1}
		/write a page/ {w = fr ? $(NF - 1) : $NF}
		/read, then write, a page/ {rw = fr ? $(NF - 1) : $NF}
		END {print w, rw}'
	rm -f "$b"
}
tdp_ns() { # build dir, mode: host ns per EPT violation / NPF handled
	# A difference of differences (each mode's first touch less its warm pass, the hard MMU's less
	# native's): negative where the machine's speed moved between the runs by more than the
	# handlers cost.
	local b
	b=$(fresh "$1" bench_tdp)
	"${pin[@]}" "$b" -m "$2" -r 3 -s 64 | sed -n 's/.*; \(-\?[0-9]*\) host ns per.*/\1/p'
	rm -f "$b"
}

declare -A fig
for r in $(seq "$rounds"); do
	for side in old new; do
		dir=${!side}
		read -r s rw < <(shadow_ns "$dir"); e=$(tdp_ns "$dir" ept); n=$(tdp_ns "$dir" npt)
		fig[$side.shadow]+="$s "; fig[$side.shadow_rw]+="$rw "; fig[$side.ept]+="$e "; fig[$side.npt]+="$n "
		printf 'round %d %-3s shadow #PF %6s ns (read then write %6s)   EPT violation %6s ns   NPF %6s ns\n' \
			"$r" "$side" "$s" "$rw" "$e" "$n"
	done
done
echo "median of $rounds rounds (host ns per handled fault; ratio new/old):"
for k in shadow shadow_rw ept npt; do
	o=$(tr ' ' '\n' <<<"${fig[old.$k]}" | grep . | median)
	n=$(tr ' ' '\n' <<<"${fig[new.$k]}" | grep . | median)
	awk -v k="$k" -v o="$o" -v n="$n" 'BEGIN {printf "  %-9s old %7.0f  new %7.0f  ratio %.2f\n", k, o, n, n / o}'
done
