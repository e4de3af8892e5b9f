#!/usr/bin/env bash
# The local sweep runner's throughput, -j 1 against -j 2, side by side in one invocation: the
# same spec swept twice from empty results files, each timed; prints runs per second of each,
# the CPU time a run costs and how many CPUs the sweep kept busy (on a shared machine the
# scheduler's share, not -j, may be the limit), the ratio, and checks that both sweeps give the
# same results (every key but the host's timings).
# Usage: bench/sweep_throughput.sh [-s SPEC] [-b PATH/TO/vmmu] [-k DIR (keep the results there)]
set -euo pipefail
cd "$(dirname "$0")/.."
spec=bench/sweep-all.json vmmu=build/vmmu keep=""
while getopts "s:b:k:" o; do
	case $o in
	s) spec=$OPTARG ;;
	b) vmmu=$OPTARG ;;
	k) keep=$OPTARG ;;
	*) echo "usage: $0 [-s SPEC] [-b VMMU] [-k DIR]" >&2; exit 2 ;;
	esac
done
out=${keep:-$(mktemp -d)}
mkdir -p "$out"
[ -n "$keep" ] || trap 'rm -rf "$out"' EXIT
runs=$("$vmmu" sweep "$spec" --list -o /dev/null 2> /dev/null | wc -l)
echo "spec $spec: $runs runs; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A secs
TIMEFORMAT='%R %U %S'
for j in 1 2; do
	rm -f "$out/j$j.jsonl"
	# bash's time: wall, and user and system CPU of the sweep and its runs
	{ time "$vmmu" sweep "$spec" -j "$j" --quiet -o "$out/j$j.jsonl" 2> /dev/null || true; } 2> "$out/time$j"
	read -r wall user sys < "$out/time$j"
	secs[$j]=$wall
	awk -v j="$j" -v n="$(wc -l < "$out/j$j.jsonl")" -v s="$wall" -v c="$(awk -v u="$user" -v y="$sys" 'BEGIN { print u + y }')" \
		'BEGIN { printf "-j %d: %d runs in %.1f s, %.2f runs/s, %.1f CPU s (%.1f ms of CPU a run, %.2f CPUs busy)\n", j, n, s, n / s, c, 1000 * c / n, c / s }'
done
awk -v a="${secs[1]}" -v b="${secs[2]}" 'BEGIN { printf "ratio -j 2 / -j 1: %.2fx the throughput\n", a / b }'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out/j1.jsonl" "$out/j2.jsonl" <<'PY'
import json, sys
def load(p):
    d = {}
    for l in open(p):
        o = json.loads(l); o.pop("host", None); d[o["id"]] = o
    return d
a, b = load(sys.argv[1]), load(sys.argv[2])
print("results of -j 1 and -j 2:", "identical (but host timings)" if a == b else "DIFFER")
sys.exit(0 if a == b else 1)
PY
