#!/usr/bin/env bash
# Check that two builds of vmmu simulate the same thing: run a matrix of workloads and
# configurations with each `vmmu` binary and compare the `guest`, `stats` and `cost` objects of
# every `--json` result (the `host` object, wall-clock figures, is left out). For changes that
# must not change any simulated result (a faster hit path, say).
# Usage: scripts/stats_diff.sh [-i STAT,...] OLD_VMMU NEW_VMMU [TRACE_FILE]
#   -i: leave these `stats` keys out of the comparison (a change that redefines one on purpose)
# Prints one line per configuration and exits non-zero if any differs.
set -uo pipefail
ignore=""
if [ "${1:-}" = "-i" ]; then
	ignore=${2:?usage: stats_diff.sh [-i STAT,...] OLD_VMMU NEW_VMMU [TRACE_FILE]}
	shift 2
fi
old=${1:?usage: stats_diff.sh OLD_VMMU NEW_VMMU [TRACE_FILE]}
new=${2:?usage: stats_diff.sh OLD_VMMU NEW_VMMU [TRACE_FILE]}
trace=${3:-$(dirname "$0")/../tests/data/true.lackey.gz}

configs=()
for w in touch gups fork mmap ctxsw; do
	for m in native shadow ept npt; do
		configs+=("$w --mmu $m")
		configs+=("$w --mmu $m --vcpus 2 --interleave --seed 3")
		configs+=("$w --mmu $m --guest-thp on")
	done
done
configs+=("touch --mmu native --param write=off --param passes=3")
configs+=("touch --mmu native --param stride=64 --param size=4M")
configs+=("gups --mmu shadow --host svm")
configs+=("gups --mmu shadow --opt -notrap,-unsync,-prefetch,-fastpf")
configs+=("fork --mmu native --param exec=on")
configs+=("clone-vms --mmu native --ksm on")
configs+=("clone-vms --mmu ept --ksm on")
configs+=("clone-vms --mmu shadow --ksm on --thp never")
configs+=("ctxsw --mmu native --guest-pcid off")
configs+=("ctxsw --mmu shadow --guest-pcid off --cpu amd --host svm")
# Dirty logging turned on and off under the running guest (where it exists).
if "$old" workloads 2>/dev/null | grep -q '^migrate'; then
	for m in native shadow ept npt; do
		configs+=("migrate --mmu $m")
		configs+=("migrate --mmu $m --vcpus 2 --interleave --seed 5")
	done
fi
[ -f "$trace" ] && for m in native shadow ept npt; do configs+=("trace --mmu $m --param file=$trace"); done

filter='{guest: .guest, stats: .stats, cost: .cost}'
for k in ${ignore//,/ }; do
	filter="$filter | del(.stats.$k)"
done
bad=0
for c in "${configs[@]}"; do
	# shellcheck disable=SC2086
	a=$("$old" run $c --json 2>&1 | jq -S -c "$filter" 2>&1)
	# shellcheck disable=SC2086
	b=$("$new" run $c --json 2>&1 | jq -S -c "$filter" 2>&1)
	if [ "$a" = "$b" ] && [ -n "$a" ]; then
		echo "same    $c  $(jq -r '.guest.digest + " " + (.cost.sim_cycles|tostring)' <<<"$a")"
	else
		echo "DIFFERS $c"
		diff <(jq -S . <<<"$a" 2>/dev/null || echo "$a") <(jq -S . <<<"$b" 2>/dev/null || echo "$b") | head -20
		bad=1
	fi
done
exit $bad
