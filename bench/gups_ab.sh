#!/usr/bin/env bash
# Warm gups natively against the host's own loop, for one build or several side by side: issue
# 16's ratio (a fifth of the host's rate) as these machines let it be measured. Each round runs
# the host's loop once (from the first build's benchmark), then each build's native run, every run
# of a fresh copy of the binary (ab_lib.sh's fresh says why) and pinned to one CPU (CPU=N, default
# 0: the two CPUs are not alike, and which one is slow changes within minutes). Each figure is the
# best of RR rounds inside bench_scale (default 7: in one run of rounds, best of 3 of one build
# ranged 12.8-20.1 M/s, best of 7 19.2-20.0; a whole run now and then falls in one of the
# machine's slow phases, at 60-75% of its speed, and the host's run and the model's are not always
# slow together, so a round's ratio moves with either), in M accesses/s; then per build the median
# over rounds of its figure and of its share of the round's host figure.
# Usage: [CPU=N] [RR=R] bench/gups_ab.sh BUILD_DIR [BUILD_DIR ...] [-n ROUNDS]   (bench/ built)
set -euo pipefail
rounds=5
dirs=()
while [ $# -gt 0 ]; do
	case $1 in
	-n) rounds=${2:?-n ROUNDS}; shift 2 ;;
	*) dirs+=("$1"); shift ;;
	esac
done
[ ${#dirs[@]} -gt 0 ] || { echo "usage: gups_ab.sh BUILD_DIR [BUILD_DIR ...] [-n ROUNDS]" >&2; exit 2; }
for d in "${dirs[@]}"; do
	[ -x "$d/bench/bench_scale" ] || { echo "gups_ab.sh: no $d/bench/bench_scale" >&2; exit 2; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu=${CPU:-0}
rr=${RR:-7}

# shellcheck source=bench/ab_lib.sh
. "$(dirname "$0")/ab_lib.sh"   # fresh, median

rate() { # build dir, mode (host or native): the best of $rr rounds, M accesses/s
	local c
	c=$(fresh "$1" bench_scale)
	taskset -c "$cpu" "$c" -s 64 -u 10 -t 1 -p gups -m "$2" -R "$rr" |
		awk -F'|' -v m=" $2 " '$3 == m {print $6 + 0; exit}'
	rm -f "$c"
}

declare -A fig share
for r in $(seq "$rounds"); do
	h=$(rate "${dirs[0]}" host)
	line=$(printf 'round %d  host %7.2f' "$r" "$h")
	for i in "${!dirs[@]}"; do
		n=$(rate "${dirs[$i]}" native)
		fig[$i]+="$n "
		share[$i]+="$(awk -v n="$n" -v h="$h" 'BEGIN {print h / n}') "
		line+=$(printf '  |  %s %6.2f (1/%.2f)' "${dirs[$i]}" "$n" "$(awk -v n="$n" -v h="$h" 'BEGIN {print h / n}')")
	done
	echo "$line"
done
echo "median of $rounds rounds (native M accesses/s; the host's rate over it):"
for i in "${!dirs[@]}"; do
	m=$(tr ' ' '\n' <<<"${fig[$i]}" | grep . | median)
	s=$(tr ' ' '\n' <<<"${share[$i]}" | grep . | median)
	printf '  %s  %.2f  1/%.2f\n' "${dirs[$i]}" "$m" "$s"
done
