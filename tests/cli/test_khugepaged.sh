#!/usr/bin/env bash
# `vmmu run --khugepaged on` on a fragmented host (`--host-fragment`): every workload gives the
# digest of its run without either, in every MMU mode, with khugepaged collapsing as fast as it
# can and the MMU audited after every pass that collapsed; on gups the fragmented host falls back
# to 4K pages, khugepaged collapses them once the fragmenter lets go, and EPT/NPT map the new THPs
# with 2M leaves again (fewer walk references than staying 4K); the JSON and the run table carry
# the figures; bad input gives one line and exit 2.
# Usage: test_khugepaged.sh PATH/TO/vmmu [DATA_DIR]
set -u
VMMU=$1
DATA=${2:-$(dirname "$0")/../data}
. "$(dirname "$0")/lib.sh"

kh="--thp always --host-fragment 100:2 --khugepaged on --audit 16 --thp-param scan_sleep_millisecs=1,alloc_sleep_millisecs=1,pages_to_scan=100000"

for w in touch gups fork mmap clone-vms migrate; do
	# shellcheck disable=SC2086
	"$VMMU" run "$w" ${SMALL[$w]} --seed 5 --json > "$tmp/$w.off.json" 2>/dev/null
	for m in "native" "shadow --host vmx" "shadow --host svm" "ept" "npt"; do
		# shellcheck disable=SC2086
		"$VMMU" run "$w" ${SMALL[$w]} --seed 5 --mmu $m $kh --json > "$tmp/$w.on.json" 2> "$tmp/$w.err"; rc=$?
		t "$w --mmu $m, fragmented host, khugepaged: exit 0, the digest without them" '[ $rc -eq 0 ] && [ -n "$(digest "$tmp/$w.off.json")" ] && [ "$(digest "$tmp/$w.off.json")" = "$(digest "$tmp/$w.on.json")" ]'
		[ $rc -eq 0 ] || cat "$tmp/$w.err"
	done
done

# ---- collapse and the 2M leaves it gives back ----
g="gups --param size=16M --param updates=400000 --thp always --audit 64"
frag="--host-fragment 100:300"
# shellcheck disable=SC2086
"$VMMU" run $g --mmu ept $frag --json > "$tmp/frag.json"
# shellcheck disable=SC2086
"$VMMU" run $g --mmu ept $frag --khugepaged on --thp-param scan_sleep_millisecs=50,alloc_sleep_millisecs=50,pages_to_scan=100000 --json > "$tmp/kh.json"
# shellcheck disable=SC2086
"$VMMU" run $g --mmu ept $frag --khugepaged on --thp-param scan_sleep_millisecs=50,alloc_sleep_millisecs=50,pages_to_scan=100000 > "$tmp/kh.txt"
t "fragmented: THP faults fell back, nothing collapsed, no 2M leaf" '[ "$(field "$tmp/frag.json" thp_fault_fallback)" -gt 0 ] && [ "$(field "$tmp/frag.json" thp_collapse_alloc)" = 0 ] && [ "$(field "$tmp/frag.json" pages_2m)" = 0 ]'
t "khugepaged: $(field "$tmp/kh.json" thp_collapse_alloc) collapsed, $(field "$tmp/kh.json" pages_2m) 2M leaves" '[ "$(field "$tmp/kh.json" thp_collapse_alloc)" -ge 8 ] && [ "$(field "$tmp/kh.json" pages_2m)" -ge 8 ]'
t "khugepaged: the same digest" '[ "$(digest "$tmp/frag.json")" = "$(digest "$tmp/kh.json")" ]'
t "khugepaged: fewer walk references ($(field "$tmp/kh.json" walk_refs) against $(field "$tmp/frag.json" walk_refs))" '[ "$(field "$tmp/kh.json" walk_refs)" -lt "$(field "$tmp/frag.json" walk_refs)" ]'
t "khugepaged: failed allocations while fragmented" '[ "$(field "$tmp/kh.json" thp_collapse_alloc_failed)" -gt 0 ]'
t "khugepaged: its own counters" '[ "$(field "$tmp/kh.json" khugepaged_pages_collapsed)" = "$(field "$tmp/kh.json" thp_collapse_alloc)" ] && [ "$(field "$tmp/kh.json" khugepaged_passes)" -gt 1 ] && [ "$(field "$tmp/kh.json" khugepaged_pages_scanned)" -gt 0 ]'
t "JSON: config.khugepaged, thp_params, host_fragment" 'grep -q "\"khugepaged\":true,\"thp_params\":\[\"scan_sleep_millisecs=50,alloc_sleep_millisecs=50,pages_to_scan=100000\"\],\"host_fragment\":100,\"host_fragment_ms\":300" "$tmp/kh.json"'
t "JSON: khugepaged off by default" 'grep -q "\"khugepaged\":false" "$tmp/frag.json"'
t "the run table has a khugepaged line" 'grep -q "^  khugepaged .* collapsed, .* failed" "$tmp/kh.txt"'
# shellcheck disable=SC2086
"$VMMU" run $g --mmu ept --thp never --khugepaged on --thp-param scan_sleep_millisecs=1 --json > "$tmp/never.json"
t "--thp never: khugepaged collapses nothing" '[ "$(field "$tmp/never.json" thp_collapse_alloc)" = 0 ] && [ "$(field "$tmp/never.json" khugepaged_passes)" -gt 1 ]'

# ---- the guest kernel's khugepaged ----
# gups with guard pages splits its guest THPs into 4K mappings; the guest's khugepaged collapses
# them again. That changes what the guest sees (fewer #PFs), so the digest is compared across
# modes, each with the audit on.
gg="gups --param size=16M --param updates=100000 --param guard=on --guest-thp on --audit 8"
for k in 0 4; do
	for m in "native" "shadow --host vmx" "shadow --host svm" "ept" "npt"; do
		# shellcheck disable=SC2086
		"$VMMU" run $gg --guest-khugepaged $k --mmu $m --json > "$tmp/g$k.$(echo $m | tr ' ' _).json" 2> "$tmp/g.err"; rc=$?
		[ $rc -eq 0 ] || cat "$tmp/g.err"
	done
	n=$tmp/g$k.native.json
	for m in shadow_--host_vmx shadow_--host_svm ept npt; do
		t "guest khugepaged every $k rounds, $m: the native digest" '[ -n "$(digest "$n")" ] && [ "$(digest "$n")" = "$(digest "$tmp/g$k.$m.json")" ]'
	done
done
t "guard pages split the guest's 8 THPs" '[ "$(field "$tmp/g0.native.json" thp_splits)" = 8 ] && [ "$(field "$tmp/g0.native.json" thp_collapses)" = 0 ]'
t "the guest's khugepaged collapses them again" '[ "$(field "$tmp/g4.native.json" thp_collapses)" = 8 ]'
t "and TLB misses fall ($(field "$tmp/g4.ept.json" tlb_misses) against $(field "$tmp/g0.ept.json" tlb_misses) under EPT)" '[ "$(field "$tmp/g4.ept.json" tlb_misses)" -lt $(( $(field "$tmp/g0.ept.json" tlb_misses) / 10 )) ]'
t "JSON: config.guest_khugepaged" 'grep -q "\"guest_khugepaged\":4," "$tmp/g4.native.json"'

# ---- bad input ----
bad "unknown knob" "no knob 'sleep_millisecs'" run touch --thp-param sleep_millisecs=1
bad "max_ptes_none range" "from 0 to 511" run touch --thp-param max_ptes_none=512
bad "hex value" "decimal" run touch --thp-param pages_to_scan=0x10
bad "--khugepaged value" "on or off" run touch --khugepaged yes-please
bad "--host-fragment over 100" "PCT\[:MS\]" run touch --host-fragment 101
bad "--host-fragment junk" "PCT\[:MS\]" run touch --host-fragment 50:soon
bad "--guest-khugepaged junk" "number of rounds" run touch --guest-khugepaged often
t_done
