#!/usr/bin/env bash
# The counter probes against real KVM's goldens (tests/data/kvm_probes.txt, recorded on a PVM
# host): every counter agrees; a golden that says otherwise is caught, naming probe and counter;
# a damaged goldens file or bad options are refused (exit 2). With `live`, the probes run on this
# machine's /dev/kvm too, where its KVM is the kind the goldens were verified on.
# Usage: test_probes.sh PATH/TO/vmmu DATA_DIR [live]
set -u
VMMU=$1
DATA=$2
. "$(dirname "$0")/lib.sh"
G=$DATA/kvm_probes.txt

if [ "${3:-}" = live ]; then
	if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
		echo "skipped: no usable /dev/kvm"; exit 77
	fi
	if [ ! -d /sys/module/kvm_pvm ]; then
		echo "skipped: the probes' harness model is verified on PVM hosts; this one runs" \
		     "$(ls -d /sys/module/kvm_intel /sys/module/kvm_amd 2>/dev/null | xargs -n1 basename)" \
		     "(vmmu validate --probes shows its table)"
		exit 77
	fi
	t "live: every counter agrees with this host's KVM" \
	  '"$VMMU" validate --probes --reps 3 --quiet > "$tmp/live" 2>&1; rc=$?; cat "$tmp/live"; [ $rc -eq 0 ] && grep -q " 0 differ" "$tmp/live"'
	t "live: --record writes goldens that read back and agree" \
	  '"$VMMU" validate --probes --reps 1 --probe touch_ad,holes --record "$tmp/g.txt" --quiet > /dev/null && "$VMMU" validate --probes --golden "$tmp/g.txt" --quiet | grep -q "2 probes, .* 0 differ"'
	t_done; exit $?
fi

refused() { # expected-message-part, vmmu args...: exit 2, the message on stderr
	local want=$1; shift
	"$VMMU" "$@" > "$tmp/out" 2> "$tmp/err"
	local rc=$?
	[ $rc -eq 2 ] && grep -q -- "$want" "$tmp/err"
}

t "goldens: every counter of every probe agrees" \
  '"$VMMU" validate --probes --golden "$G" > "$tmp/all"; [ $? -eq 0 ] && grep -q "11 probes, 209 counters: 209 agree, 0 differ" "$tmp/all"'
t "the table names the host the goldens come from" 'grep -q "kvm_pvm, tdp_mmu N, MMU shadow" "$tmp/all"'
t "the markdown table has a row per moved counter" \
  '"$VMMU" validate --probes --golden "$G" --markdown --probe holes | grep -q "^| pf_guest | 256 | 0 | 256 | 1.00 | agrees |$"'
# A golden twice vmmu's pf_fixed on one probe: caught, and only there.
sed 's/^\(probe touch_ad .*pf_fixed=\)\([0-9]*\)/\1256/' "$G" > "$tmp/bad.txt"
t "a disagreement fails (exit 1) and names probe and counter" \
  '"$VMMU" validate --probes --golden "$tmp/bad.txt" --quiet > "$tmp/q"; [ $? -eq 1 ] && grep -q "^touch_ad pf_fixed: KVM 256 (spread 0), vmmu 128$" "$tmp/q" && grep -q "1 differ" "$tmp/q"'
t "within KVM's spread is agreement" \
  'sed "s/^\(probe touch_ad .*pf_fixed=\)\([0-9]*\)\/0/\1256\/128/" "$G" > "$tmp/spread.txt" && "$VMMU" validate --probes --golden "$tmp/spread.txt" --quiet > /dev/null'
t "--probe selects" '"$VMMU" validate --probes --golden "$G" --probe fork_wp,dirty --quiet | grep -q "2 probes, 38 counters"'
t "--list lists the catalogue" '[ "$("$VMMU" validate --probes --list | wc -l)" -eq 11 ]'
sed 's/pf_fixed=/pf_fixd=/' "$G" > "$tmp/mal.txt"
t "an unknown counter: exit 2 with file and line" 'refused "mal.txt:[0-9]*: malformed line" validate --probes --golden "$tmp/mal.txt"'
sed 's/^probe touch_ad /probe touch_zz /' "$G" > "$tmp/unk.txt"
t "an unknown probe: exit 2, re-record" 'refused "re-record" validate --probes --golden "$tmp/unk.txt"'
sed "/^probe holes /s/ pf_guest=[0-9]*\/[0-9]*//" "$G" > "$tmp/miss.txt"
t "a probe line missing a counter: exit 2" 'refused "malformed" validate --probes --golden "$tmp/miss.txt"'
grep -v "^mmu " "$G" > "$tmp/nommu.txt"
t "no mmu line: exit 2" 'refused "mmu shadow|ept|npt" validate --probes --golden "$tmp/nommu.txt"'
t "a missing goldens file: exit 2" 'refused "No such file" validate --probes --golden "$tmp/none.txt"'
t "--reps 0 refused" 'refused "expected 1..64" validate --probes --reps 0'
t "--probe nosuch refused" 'refused "no probe .nosuch." validate --probes --probe nosuch --golden "$G"'
t "--golden without --probes refused" 'refused "go with --probes" validate --golden "$G"'
t "--record with --golden refused" 'refused "needs a live run" validate --probes --golden "$G" --record "$tmp/x"'
t "--count with --probes refused" 'refused "for scenarios" validate --probes --count 5'
t_done
