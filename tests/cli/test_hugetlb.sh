#!/usr/bin/env bash
# `vmmu run --hugetlb 2M|1G`: host huge pages are invisible to the guest (every workload gives
# the digest of its 4K-backed native run, in every MMU mode, with the MMU audit on); EPT and NPT
# map 1G leaves over 1G host pages and then walk less per TLB miss; the soft MMU maps a guest's
# 2M and 1G pages with sptes of their size over host pages as large; the JSON names the backing;
# a bad size gives one line and exit 2.
# Usage: test_hugetlb.sh PATH/TO/vmmu
set -u
VMMU=$1
. "$(dirname "$0")/lib.sh"

for w in touch gups fork ctxsw mmap migrate; do
	# shellcheck disable=SC2086
	"$VMMU" run "$w" ${SMALL[$w]} --seed 5 --thp never --json > "$tmp/$w.ref.json" 2>/dev/null
	for b in "--thp always" "--hugetlb 2M" "--hugetlb 1G"; do
		for m in native shadow ept npt; do
			# shellcheck disable=SC2086
			"$VMMU" run "$w" ${SMALL[$w]} --seed 5 --mmu $m $b --audit 16 --json > "$tmp/$w.json" 2> "$tmp/$w.err"; rc=$?
			t "$w --mmu $m $b: exit 0, the digest of 4K host pages" '[ $rc -eq 0 ] && [ -n "$(digest "$tmp/$w.ref.json")" ] && [ "$(digest "$tmp/$w.ref.json")" = "$(digest "$tmp/$w.json")" ]'
			[ $rc -eq 0 ] || cat "$tmp/$w.err"
		done
	done
done

# ---- EPT/NPT map 1G leaves, and walk less for them ----
g="gups --param size=64M --param updates=50000 --mem 2G"
for m in ept npt; do
	# shellcheck disable=SC2086
	"$VMMU" run $g --mmu $m --thp never --json > "$tmp/4k.json"
	# shellcheck disable=SC2086
	"$VMMU" run $g --mmu $m --hugetlb 1G --audit 64 --json > "$tmp/1g.json"
	t "$m --hugetlb 1G: 1G leaves, no 2M or 4K ones" '[ "$(field "$tmp/1g.json" pages_1g)" -gt 0 ] && [ "$(field "$tmp/1g.json" pages_2m)" = 0 ] && [ "$(field "$tmp/1g.json" pages_4k)" = 0 ]'
	t "$m --thp never: 4K leaves only" '[ "$(field "$tmp/4k.json" pages_1g)" = 0 ] && [ "$(field "$tmp/4k.json" pages_4k)" -gt 0 ]'
	r4=$(( $(field "$tmp/4k.json" walk_refs) * 100 / $(field "$tmp/4k.json" tlb_misses) ))
	r1=$(( $(field "$tmp/1g.json" walk_refs) * 100 / $(field "$tmp/1g.json" tlb_misses) ))
	t "$m: walk refs per TLB miss $r1/100 with 1G host pages < $r4/100 with 4K" '[ "$r1" -lt "$r4" ]'
	t "$m: the JSON config says hugetlb 1G" 'grep -q "\"hugetlb\":\"1G\"" "$tmp/1g.json" && grep -q "\"hugetlb\":\"none\"" "$tmp/4k.json"'
done
# The guest's 1G memslot is the only one 1G can back: 2M host pages give 2M leaves.
# shellcheck disable=SC2086
"$VMMU" run $g --mmu ept --hugetlb 2M --json > "$tmp/2m.json"
t "ept --hugetlb 2M: 2M leaves, no 1G ones" '[ "$(field "$tmp/2m.json" pages_2m)" -gt 0 ] && [ "$(field "$tmp/2m.json" pages_1g)" = 0 ]'

# ---- the soft MMU maps guest 2M pages with 2M sptes where the host page is as large ----
gt="gups --param size=64M --param updates=50000 --guest-thp on"
# shellcheck disable=SC2086
"$VMMU" run $gt --mmu shadow --hugetlb 2M --audit 64 --json > "$tmp/s2m.json"
# shellcheck disable=SC2086
"$VMMU" run $gt --mmu shadow --thp never --json > "$tmp/s4k.json"
t "shadow, 2M guest pages on 2M host pages: 2M sptes, fewer TLB misses than on 4K host pages" '[ "$(field "$tmp/s2m.json" pages_2m)" -gt 0 ] && [ "$(field "$tmp/s4k.json" pages_2m)" = 0 ] && [ "$(field "$tmp/s2m.json" tlb_misses)" -lt "$(field "$tmp/s4k.json" tlb_misses)" ]'
t "shadow: the same digest either way" '[ "$(digest "$tmp/s2m.json")" = "$(digest "$tmp/s4k.json")" ]'

# ---- the host's THP events ----
t "--thp always: thp_fault_alloc counts the guest RAM's 2M pages" '"$VMMU" run $g --mmu ept --thp always --json > "$tmp/thp.json" && [ "$(field "$tmp/thp.json" thp_fault_alloc)" -gt 0 ]'
t "--hugetlb 1G: hugetlb pages are no THP" '[ "$(field "$tmp/1g.json" thp_fault_alloc)" = 0 ]'
for k in thp_fault_alloc thp_fault_fallback thp_split_page thp_collapse_alloc; do
	t "JSON: $k" 'grep -q "\"$k\":[0-9]" "$tmp/thp.json"'
done

# ---- guest 1G pages (--guest-1g): the same digest in every mode over every host page size ----
g1="gups --param size=1G --param updates=20000 --guest-1g on --seed 5"
# shellcheck disable=SC2086
"$VMMU" run $g1 --thp never --json > "$tmp/g1.ref.json"
t "--guest-1g: one 1G page for the table, one #PF" '[ "$(field "$tmp/g1.ref.json" huge_1g_pages)" = 1 ] && [ "$(field "$tmp/g1.ref.json" page_faults)" = 1 ]'
t "JSON: config.guest_1g" 'grep -q "\"guest_1g\":true" "$tmp/g1.ref.json"'
for b in "--thp never" "--hugetlb 1G"; do
	for m in "shadow --host vmx" "shadow --host svm" ept npt; do
		# shellcheck disable=SC2086
		"$VMMU" run $g1 --mmu $m $b --audit 64 --json > "$tmp/g1.json" 2> "$tmp/g1.err"; rc=$?
		t "--guest-1g --mmu $m $b: the native digest" '[ $rc -eq 0 ] && [ "$(digest "$tmp/g1.ref.json")" = "$(digest "$tmp/g1.json")" ]'
		[ $rc -eq 0 ] || cat "$tmp/g1.err"
		case "$m $b" in
		"shadow --host vmx --hugetlb 1G")
			t "1G on 1G under shadow: a 1G spte, $(field "$tmp/g1.json" tlb_misses) TLB misses" '[ "$(field "$tmp/g1.json" pages_1g)" -ge 1 ] && [ "$(field "$tmp/g1.json" tlb_misses)" -lt 1000 ]' ;;
		"shadow --host vmx --thp never")
			t "1G on 4K under shadow: 4K sptes only" '[ "$(field "$tmp/g1.json" pages_1g)" = 0 ] && [ "$(field "$tmp/g1.json" pages_2m)" = 0 ]' ;;
		"ept --hugetlb 1G")
			t "1G on 1G under EPT: $(field "$tmp/g1.json" walk_refs) walk refs for $(field "$tmp/g1.json" tlb_misses) misses, at most 9 a miss" '[ "$(field "$tmp/g1.json" walk_refs)" -le $(( 9 * $(field "$tmp/g1.json" tlb_misses) )) ] && [ "$(field "$tmp/g1.json" pages_1g)" -ge 1 ]' ;;
		esac
	done
done
# Dirty logging finds the gfns behind a 1G guest page (the workload checks each harvest).
mg="migrate --param size=1G --param updates=40000 --param rounds=2 --guest-1g on --mem 3G --seed 5"
# shellcheck disable=SC2086
"$VMMU" run $mg --json > "$tmp/m1.json" 2> "$tmp/m1.err"; rc=$?
# shellcheck disable=SC2086
"$VMMU" run $mg --mmu ept --json > "$tmp/m2.json" 2>> "$tmp/m1.err"; rc2=$?
t "migrate with a 1G guest page: every write logged, EPT's digest native's" '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$(digest "$tmp/m1.json")" = "$(digest "$tmp/m2.json")" ] && [ "$(field "$tmp/m1.json" huge_1g_pages)" = 1 ]'
[ $rc -eq 0 ] && [ $rc2 -eq 0 ] || cat "$tmp/m1.err"
bad "--guest-1g value" "on or off" run touch --guest-1g yes

# ---- bad input ----
bad "--hugetlb 3M" "expected 2M or 1G" run touch --hugetlb 3M
bad "--hugetlb 4K" "expected 2M or 1G" run touch --hugetlb 4K
bad "--hugetlb without a value" "hugetlb" run touch --hugetlb
t_done
