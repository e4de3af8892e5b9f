#!/usr/bin/env bash
# `vmmu run --ksm on`: every workload gives the digest of its native run without KSM in every MMU
# mode with ksmd merging aggressively (and the MMU and KSM audits on); the JSON carries the KSM
# counters and the RSS keys; clone-vms merges its VMs' pages and the process's RSS falls with it;
# all of it also with use_mmu_dirty=1 (ksmd takes "written" from the MMU's dirty state), which
# takes fewer checksums; bad --ksm-param input gives one line and exit 2.
# Usage: test_ksm.sh PATH/TO/vmmu [DATA_DIR]
set -u
VMMU=$1
DATA=${2:-$(dirname "$0")/../data}
. "$(dirname "$0")/lib.sh"

ksm="--ksm on --ksm-param pages_to_scan=400,sleep_millisecs=1 --ksm-param use_zero_pages=1 --audit 16"

for w in touch gups fork ctxsw mmap clone-vms trace migrate; do
	# shellcheck disable=SC2086
	"$VMMU" run "$w" ${SMALL[$w]} --seed 3 --json > "$tmp/$w.off.json" 2>/dev/null
	for m in "native" "shadow --host vmx" "shadow --host svm" "ept" "npt"; do
		for d in 0 1; do
			# shellcheck disable=SC2086
			"$VMMU" run "$w" ${SMALL[$w]} --seed 3 --mmu $m $ksm --ksm-param use_mmu_dirty=$d --json > "$tmp/$w.on$d.json" 2> "$tmp/$w.err"; rc=$?
			t "$w --mmu $m --ksm on, use_mmu_dirty=$d: exit 0, the digest without KSM" '[ $rc -eq 0 ] && [ -n "$(digest "$tmp/$w.off.json")" ] && [ "$(digest "$tmp/$w.off.json")" = "$(digest "$tmp/$w.on$d.json")" ]'
			[ $rc -eq 0 ] || cat "$tmp/$w.err"
		done
	done
done

# ---- the JSON ----
f=$tmp/clone-vms.on0.json
for k in ksm_pages_shared ksm_pages_sharing ksm_pages_unshared ksm_pages_volatile ksm_full_scans \
	ksm_cow_breaks general_profit rss_bytes max_rss_bytes ksm_mmu_unchanged ksm_mmu_written \
	ksm_mmu_harvests; do
	t "JSON: $k" 'grep -q "\"$k\":-\?[0-9]" "$f"'
done
t "JSON: config.ksm_params as given" 'grep -q "\"ksm_params\":\[\"pages_to_scan=400,sleep_millisecs=1\",\"use_zero_pages=1\",\"use_mmu_dirty=0\"\]" "$f"'
t "use_mmu_dirty=0: no harvest" '[ "$(field "$f" ksm_mmu_harvests)" = 0 ]'
f1=$tmp/clone-vms.on1.json
t "use_mmu_dirty=1: harvests, checksums reused or spared" '[ "$(field "$f1" ksm_mmu_harvests)" -gt 0 ] && [ "$(field "$f1" ksm_mmu_written)" -gt 0 ]'
t "use_mmu_dirty=1: fewer checksums ($(field "$f1" ksm_checksums) against $(field "$f" ksm_checksums))" '[ "$(field "$f1" ksm_checksums)" -lt "$(field "$f" ksm_checksums)" ]'
t "JSON: rss_samples" 'grep -q "\"rss_samples\":\[{\"accesses\":0,\"rss_bytes\":[1-9]" "$f"'
t "JSON: KSM merged clone-vms' pages" '[ "$(field "$f" ksm_pages_sharing)" -gt 100 ]'

# ---- the RSS falls: 2 VMs of 8M of the same data ----
cv="clone-vms --vms 2 --thp never --param size=8M --param dirty=0"
# shellcheck disable=SC2086
"$VMMU" run $cv --json > "$tmp/rss.off.json"
# shellcheck disable=SC2086
"$VMMU" run $cv --ksm on --ksm-param pages_to_scan=2000,sleep_millisecs=1 --json > "$tmp/rss.on.json"
off=$(field "$tmp/rss.off.json" rss_bytes) on=$(field "$tmp/rss.on.json" rss_bytes)
t "RSS at the end: $((off >> 20))M without KSM, $((on >> 20))M with, at least 6M less" '[ "$on" -lt $((off - (6 << 20))) ]'
"$VMMU" run $cv --ksm on --ksm-param pages_to_scan=2000,sleep_millisecs=1 > "$tmp/table.txt"
t "the run table has a KSM line" 'grep -q "^  KSM  .* sharing" "$tmp/table.txt"'
"$VMMU" run $cv --ksm on --ksm-param run=0 --json > "$tmp/run0.json"
t "run=0: nothing merged" '[ "$(field "$tmp/run0.json" ksm_pages_sharing)" = 0 ]'

# ---- bad input ----
bad "unknown knob" "no knob 'sleep'" run touch --ksm-param sleep=1
bad "hex value" "decimal" run touch --ksm-param pages_to_scan=0x10
bad "negative value" "decimal" run touch --ksm-param pages_to_scan=-1
bad "out of range" "from 0 to 1" run touch --ksm-param use_zero_pages=2
bad "use_mmu_dirty out of range" "from 0 to 1" run touch --ksm-param use_mmu_dirty=2
bad "max_page_sharing 1" "from 2" run touch --ksm-param max_page_sharing=1
bad "no value" "KEY=VALUE" run touch --ksm-param run
bad "empty element" "KEY=VALUE" run touch --ksm-param run=1,,pages_to_scan=3
bad "empty" "KEY=VALUE" run touch --ksm-param ''
bad "no argument" "needs a value" run touch --ksm-param
bad "--ksm maybe" "on or off" run touch --ksm maybe
t_done
