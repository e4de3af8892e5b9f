#!/usr/bin/env bash
# The soft MMU's optimizations (--opt notrap,unsync,prefetch,fastpf) end to end: every workload,
# small, gives the native guest.digest under --mmu shadow with each of the 16 option sets (VMX
# host; SVM with all on and all off), and each option lowers the counter it targets on the
# workload built to show it (notrap: #PF exits on touch and mmap; unsync: emulated page-table
# writes on fork and mmap; prefetch: pf_fixed on touch; fastpf: pf_fast on migrate, the workload
# that turns dirty logging on, under shadow paging and EPT/NPT alike; as KVM, a fast fix counts in
# pf_fixed too, so the slow path's share, pf_fixed - pf_fast, is what drops).
# Usage: test_opts.sh PATH/TO/vmmu [DATA_DIR]
set -u
VMMU=$1
DATA=${2:-$(dirname "$0")/../data}
. "$(dirname "$0")/lib.sh"

opts=(notrap unsync prefetch fastpf)
spec() { # mask of options on -> "+a,-b,..."
	local s="" i
	for i in 0 1 2 3; do
		if (( ($1 >> i) & 1 )); then s="$s,+${opts[$i]}"; else s="$s,-${opts[$i]}"; fi
	done
	echo "${s#,}"
}
for w in touch gups fork ctxsw mmap clone-vms trace migrate; do
	# shellcheck disable=SC2086
	"$VMMU" run "$w" ${SMALL[$w]} --seed 3 --mmu native --json > "$tmp/n.json" 2>/dev/null
	nat=$(digest "$tmp/n.json")
	bad=""
	for m in $(seq 0 15); do
		# shellcheck disable=SC2086
		"$VMMU" run "$w" ${SMALL[$w]} --seed 3 --mmu shadow --host vmx --opt "$(spec "$m")" \
			--json > "$tmp/$w.$m.json" 2>"$tmp/err" || bad="$bad $(spec "$m")(rc)"
		[ "$(digest "$tmp/$w.$m.json")" = "$nat" ] || bad="$bad $(spec "$m")"
	done
	for m in 0 15; do
		# shellcheck disable=SC2086
		"$VMMU" run "$w" ${SMALL[$w]} --seed 3 --mmu shadow --host svm --opt "$(spec "$m")" \
			--json > "$tmp/svm.json" 2>/dev/null || bad="$bad svm:$(spec "$m")(rc)"
		[ "$(digest "$tmp/svm.json")" = "$nat" ] || bad="$bad svm:$(spec "$m")"
	done
	[ -z "$bad" ] || echo "  differ from native ($nat):$bad" >&2
	t "$w: the native digest with all 16 option sets (VMX) and all on/off (SVM)" '[ -n "$nat" ] && [ -z "$bad" ]'
done

# Each option against the same run without it (the others on: masks 15 - bit vs 15).
t "touch: notrap cuts #PF exits" '[ "$(pf_exits "$tmp/touch.15.json")" -lt "$(pf_exits "$tmp/touch.14.json")" ]'
t "touch: prefetch cuts pf_fixed" '[ "$(field "$tmp/touch.15.json" pf_fixed)" -lt "$(field "$tmp/touch.11.json" pf_fixed)" ]'
t "touch: notrap and prefetch cut exits and cycles" '[ "$(field "$tmp/touch.15.json" exits)" -lt "$(field "$tmp/touch.0.json" exits)" ] && [ "$(field "$tmp/touch.15.json" sim_cycles)" -lt "$(field "$tmp/touch.0.json" sim_cycles)" ]'
t "fork: unsync cuts page-table write exits" '[ "$(field "$tmp/fork.15.json" mmu_pte_write)" -lt "$(field "$tmp/fork.13.json" mmu_pte_write)" ]'
t "mmap: unsync cuts page-table write exits" '[ "$(field "$tmp/mmap.15.json" mmu_pte_write)" -lt "$(field "$tmp/mmap.13.json" mmu_pte_write)" ]'
t "mmap: notrap cuts #PF exits" '[ "$(pf_exits "$tmp/mmap.15.json")" -lt "$(pf_exits "$tmp/mmap.14.json")" ]'
# fastpf: a write to a page write-protected by a harvest is fixed by one cmpxchg (pf_fast), not
# the slow path (pf_fixed). It saves the exit's work, not the exit: exits stay the same.
t "migrate: fastpf fixes write faults fast (shadow)" '[ "$(field "$tmp/migrate.15.json" pf_fast)" -gt 0 ] && [ "$(field "$tmp/migrate.7.json" pf_fast)" = 0 ] && [ $(( $(field "$tmp/migrate.15.json" pf_fixed) - $(field "$tmp/migrate.15.json" pf_fast) )) -lt "$(field "$tmp/migrate.7.json" pf_fixed)" ]'
t "migrate: fastpf cuts simulated cycles (shadow: no guest walk)" '[ "$(field "$tmp/migrate.15.json" sim_cycles)" -lt "$(field "$tmp/migrate.7.json" sim_cycles)" ]'
for m in ept npt; do
	# shellcheck disable=SC2086
	"$VMMU" run migrate ${SMALL[migrate]} --seed 3 --mmu $m --opt +fastpf --json > "$tmp/m1.json" 2>/dev/null
	# shellcheck disable=SC2086
	"$VMMU" run migrate ${SMALL[migrate]} --seed 3 --mmu $m --opt -fastpf --json > "$tmp/m0.json" 2>/dev/null
	t "migrate --mmu $m: the native digest, pf_fast with fastpf only" '[ "$(digest "$tmp/m1.json")" = "$(digest "$tmp/migrate.15.json")" ] && [ "$(digest "$tmp/m0.json")" = "$(digest "$tmp/m1.json")" ] && [ "$(field "$tmp/m1.json" pf_fast)" -gt 0 ] && [ "$(field "$tmp/m0.json" pf_fast)" = 0 ] && [ $(( $(field "$tmp/m1.json" pf_fixed) - $(field "$tmp/m1.json" pf_fast) )) -lt "$(field "$tmp/m0.json" pf_fixed)" ]'
done
# On SVM notrap is unavailable: the same exits with it asked for or not.
"$VMMU" run touch ${SMALL[touch]} --seed 3 --mmu shadow --host svm --opt +notrap --json > "$tmp/s1.json" 2>/dev/null
"$VMMU" run touch ${SMALL[touch]} --seed 3 --mmu shadow --host svm --opt -notrap --json > "$tmp/s0.json" 2>/dev/null
t "svm: notrap has no effect" '[ "$(pf_exits "$tmp/s1.json")" = "$(pf_exits "$tmp/s0.json")" ]'

t_done
