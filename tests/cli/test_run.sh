#!/usr/bin/env bash
# `vmmu run` and `vmmu workloads` end to end: every workload runs small with --json and gives
# every key docs/user-guide.md lists; one seed gives one digest, another seed another; every MMU mode built
# so far gives the native digest (Transparency); a trace of a real program replays (traced by
# valgrind here when valgrind is present, and the stored trace of /bin/true always); bad input
# gives a one-line error and exit code 2, never a crash.
# Usage: test_run.sh PATH/TO/vmmu [DATA_DIR]
set -u
VMMU=$1
DATA=${2:-$(dirname "$0")/../data}
. "$(dirname "$0")/lib.sh"

keys='"vmmu" "workload" "name" "params" "config" "mmu" "host" "opts" "vcpus" "vms" "mem_bytes"
"thp" "guest_thp" "ksm" "seed" "guest" "digest" "accesses" "page_faults" "stats" "pf_taken"
"pf_fixed" "pf_emulate" "pf_spurious" "pf_fast" "pf_guest" "pf_mmio_spte_created" "invlpg"
"tlb_flush" "exits" "mmu_shadow_zapped" "mmu_pte_write" "mmu_pde_zapped" "mmu_flooded"
"mmu_recycled" "mmu_cache_miss" "mmu_unsync" "pages_4k" "pages_2m" "pages_1g" "remote_tlb_flush"
"tlb_hits" "tlb_misses" "walk_refs" "shadow_pages" "tdp_pages" "exits_by_reason" "pf"
"ept_violation" "ept_misconfig" "npf" "cr3" "mmio" "ksm_pages_shared" "ksm_pages_sharing"
"ksm_full_scans" "host_frames" "cost" "sim_cycles" "cycles_per_access" "seconds"
"accesses_per_sec" "max_rss_bytes"'
has_keys() { # file
	for k in $keys; do grep -q "$k:" "$1" || { echo "  missing key $k" >&2; return 1; }; done
	[ "$(wc -l < "$1")" -eq 1 ]
}

# ---- every workload, small ----
for w in touch gups fork ctxsw mmap clone-vms trace migrate; do
	# shellcheck disable=SC2086
	"$VMMU" run "$w" ${SMALL[$w]} --seed 5 --json > "$tmp/$w.json" 2> "$tmp/$w.err"; rc=$?
	t "$w: exit 0" '[ $rc -eq 0 ]'
	t "$w: one JSON line with every key" 'has_keys "$tmp/$w.json"'
	t "$w: no task killed" '[ "$(field "$tmp/$w.json" kills)" = 0 ]'
	# shellcheck disable=SC2086
	"$VMMU" run "$w" ${SMALL[$w]} --seed 5 --json > "$tmp/$w.2.json" 2>/dev/null
	t "$w: one seed, one digest" '[ -n "$(digest "$tmp/$w.json")" ] && [ "$(digest "$tmp/$w.json")" = "$(digest "$tmp/$w.2.json")" ]'
	# shellcheck disable=SC2086
	"$VMMU" run "$w" ${SMALL[$w]} --seed 6 --json > "$tmp/$w.3.json" 2>/dev/null
	t "$w: another seed, another digest" '[ "$(digest "$tmp/$w.json")" != "$(digest "$tmp/$w.3.json")" ]'
	for m in "shadow --host vmx" "shadow --host svm" "ept" "npt"; do
		# shellcheck disable=SC2086
		"$VMMU" run "$w" ${SMALL[$w]} --seed 5 --mmu $m --json > "$tmp/$w.m.json" 2> "$tmp/$w.m.err"; rc=$?
		if [ $rc -eq 1 ] && grep -q "not available yet" "$tmp/$w.m.err"; then
			echo "ok - $w --mmu $m: not built yet (skip)"
			continue
		fi
		t "$w --mmu $m: the native digest" '[ $rc -eq 0 ] && [ "$(digest "$tmp/$w.json")" = "$(digest "$tmp/$w.m.json")" ]'
	done
done
"$VMMU" run touch --param size=4M --guest-thp on --json > "$tmp/thp.json"; rc=$?
t "--guest-thp on: 2M pages" '[ $rc -eq 0 ] && [ "$(field "$tmp/thp.json" thp_allocs)" -ge 2 ]'
"$VMMU" run clone-vms --param size=1M --vms 3 --json > "$tmp/vms.json"; rc=$?
t "--vms 3" '[ $rc -eq 0 ] && grep -q "\"vms\":3" "$tmp/vms.json"'
"$VMMU" run gups --param size=1M --param updates=1000 --opt -prefetch,+fastpf --ksm on --thp never \
	--guest-aging 4 --guest-pcid off --cost walk_ref=30 --json > "$tmp/opts.json"; rc=$?
t "options recorded" '[ $rc -eq 0 ] && grep -q "\"ksm\":true" "$tmp/opts.json" && grep -q "\"thp\":\"never\"" "$tmp/opts.json" && grep -q "\"walk_ref\":30" "$tmp/opts.json" && grep -q "\"guest_aging\":4" "$tmp/opts.json"'
"$VMMU" run touch --param size=1M > "$tmp/table" 2>&1; rc=$?
t "a table without --json" '[ $rc -eq 0 ] && grep -q "guest digest" "$tmp/table" && grep -q "page faults" "$tmp/table"'
"$VMMU" workloads > "$tmp/wl"; rc=$?
t "vmmu workloads lists them all" '[ $rc -eq 0 ] && for w in touch gups fork ctxsw mmap clone-vms trace migrate; do grep -q "^$w " "$tmp/wl" || exit 1; done'
"$VMMU" workloads fork > "$tmp/wl1"; rc=$?
t "vmmu workloads NAME" '[ $rc -eq 0 ] && grep -q "dirty=25" "$tmp/wl1"'
"$VMMU" workloads migrate > "$tmp/wl2"; rc=$?
t "vmmu workloads migrate: its parameters" '[ $rc -eq 0 ] && for p in size= updates= write= interval= rounds= threads= steal=; do grep -q " $p" "$tmp/wl2" || exit 1; done'
# migrate reports its harvests; its check fails the run when the log lacks a written page (a
# second harvester took round 2's bits: steal=2).
t "migrate: dirty-log figures in the JSON" 'grep -q "\"migrate\":{\"rounds\":8,\"dirty_pages\":[1-9]" "$tmp/migrate.json" && [ "$(field "$tmp/migrate.json" min_dirty_pages)" -ge 1 ]'
"$VMMU" run migrate ${SMALL[migrate]} --param steal=2 > /dev/null 2> "$tmp/steal.err"; rc=$?
t "migrate: a page missing from the log fails the run, naming round and page" '[ $rc -eq 1 ] && one_line_error "$tmp/steal.err" && grep -q "round 2: the guest wrote page 0x" "$tmp/steal.err"'

# ---- vCPU threads (the default with --vcpus > 1) and --interleave ----
"$VMMU" run touch --param size=8M --vcpus 2 --json > "$tmp/thr.json"; rc=$?
t "--vcpus 2: threads by default (config.schedule)" '[ $rc -eq 0 ] && grep -q "\"schedule\":\"threads\"" "$tmp/thr.json"'
"$VMMU" run touch --param size=8M --vcpus 2 --interleave --json > "$tmp/int.json"; rc=$?
t "--interleave: config.schedule interleave" '[ $rc -eq 0 ] && grep -q "\"schedule\":\"interleave\"" "$tmp/int.json"'
"$VMMU" run touch --param size=8M --json > "$tmp/one.json"
t "one vCPU: interleaved" 'grep -q "\"schedule\":\"interleave\"" "$tmp/one.json"'
"$VMMU" run touch --param size=8M --vcpus 2 --pin-vcpus --json > "$tmp/pin.json"; rc=$?
t "--pin-vcpus: config.pin_vcpus true, the interleaved digest" '[ $rc -eq 0 ] && grep -q "\"pin_vcpus\":true" "$tmp/pin.json" && grep -q "\"pin_vcpus\":false" "$tmp/thr.json" && [ "$(digest "$tmp/pin.json")" = "$(digest "$tmp/int.json")" ]'
t "touch threaded: the interleaved digest and page faults" '[ "$(digest "$tmp/thr.json")" = "$(digest "$tmp/int.json")" ] && [ "$(field "$tmp/thr.json" page_faults)" = "$(field "$tmp/int.json" page_faults)" ]'
for m in shadow ept npt; do
	"$VMMU" run gups --param size=4M --param updates=40000 --param slice=on --vcpus 4 --mmu $m --audit 8 --json > "$tmp/g$m.json" 2> "$tmp/g$m.err"; rc=$?
	t "gups slice=on, 4 vCPU threads, $m, audited: the digest of native interleaved" '[ $rc -eq 0 ] && [ "$(digest "$tmp/g$m.json")" = "$("$VMMU" run gups --param size=4M --param updates=40000 --param slice=on --vcpus 4 --interleave --json | sed -n "s/.*\"digest\":\"\([0-9a-f]*\)\".*/\1/p")" ]'
done
"$VMMU" compare gups --param size=2M --param updates=20000 --vcpus 2 --mmu native,ept --opt-sets all --threads --param slice=on > "$tmp/cmpt.out"; rc=$?
t "compare --threads: digests equal on disjoint data" '[ $rc -eq 0 ] && grep -q "all equal" "$tmp/cmpt.out"'

# ---- a real program, traced now ----
if command -v valgrind > /dev/null; then
	valgrind --tool=lackey --trace-mem=yes --log-file="$tmp/ls.lackey" ls -l / > /dev/null 2>&1
	gzip -k "$tmp/ls.lackey"
	"$VMMU" run trace --param "file=$tmp/ls.lackey" --json > "$tmp/ls.json"; rc=$?
	t "valgrind-traced 'ls -l /' replays" '[ $rc -eq 0 ] && [ "$(field "$tmp/ls.json" trace_records)" -gt 100000 ] && [ "$(field "$tmp/ls.json" kills)" = 0 ]'
	"$VMMU" run trace --param "file=$tmp/ls.lackey.gz" --json > "$tmp/lsz.json"; rc=$?
	t "the same trace gzip'd: the same digest" '[ $rc -eq 0 ] && [ "$(digest "$tmp/ls.json")" = "$(digest "$tmp/lsz.json")" ]'
else
	echo "ok - valgrind-traced program: valgrind not installed (skip)"
fi

# ---- a replay in batches is the replay record by record ----
# A trace with page faults everywhere, loads, stores, fetches, modifies, wide records and records
# above user space; replayed in batches (the default) and record by record (batch=off), with
# aging every round and odd time slices, every JSON field but the host's and the parameters is
# the same: the batches keep the scheduler's count of steps.
awk 'BEGIN { for (i = 0; i < 3000; i++) { a = 268435456 + i * 4096 + (i % 7) * 8;
	printf " S %x,8\n", a; if (i % 3 == 0) printf "I  %08x,4\n", 4194304 + (i % 97) * 4;
	if (i % 7 == 0) printf " M %x,4\n", a + 8; if (i % 11 == 0) printf " L %x,16\n", a + 16;
	if (i % 13 == 0) printf " L ffffffffff600000,8\n"; printf " L %x,%d\n", a - 4096, 1 + i % 8 } }' > "$tmp/mix.lackey"
nobatch_json() { python3 -c 'import json, sys
d = json.load(sys.stdin); d.pop("host"); d["workload"].pop("params")
print(json.dumps(d, sort_keys=True))'; }
for m in native shadow ept npt; do
	for f in "$tmp/mix.lackey" "$DATA/true.lackey.gz"; do
		a=$("$VMMU" run trace --param "file=$f" --mmu $m --guest-aging 1 --quantum 13 --json | nobatch_json)
		b=$("$VMMU" run trace --param "file=$f" --param batch=off --mmu $m --guest-aging 1 --quantum 13 --json | nobatch_json)
		t "trace $(basename "$f"), $m: batches give the run of one record a step" '[ -n "$a" ] && [ "$a" = "$b" ]'
	done
done
"$VMMU" run trace --param "file=$tmp/mix.lackey" --json > "$tmp/mix.json"
t "  ... that trace faults, skips and replays every record" '[ "$(field "$tmp/mix.json" trace_records)" = 7933 ] && [ "$(field "$tmp/mix.json" trace_skipped)" = 231 ] && [ "$(field "$tmp/mix.json" page_faults)" -gt 3000 ]'

# A trace read from a pipe (valgrind's output streamed, never stored), plain or gzip'd: the run
# of the file.
"$VMMU" run trace --param "file=$DATA/true.lackey.gz" --json > "$tmp/tf.json"
"$VMMU" run trace --param file=/dev/stdin --json < "$DATA/true.lackey.gz" > "$tmp/tp.json"; rc=$?
zcat "$DATA/true.lackey.gz" | "$VMMU" run trace --param file=/dev/stdin --json > "$tmp/tpp.json"; rc2=$?
t "a trace from a pipe, gzip'd or plain: the file's digest" '[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ -n "$(digest "$tmp/tf.json")" ] && [ "$(digest "$tmp/tf.json")" = "$(digest "$tmp/tp.json")" ] && [ "$(digest "$tmp/tf.json")" = "$(digest "$tmp/tpp.json")" ]'

# ---- bad input: one line, exit 2, no crash ----
bad "unknown workload" "frob" run frob
bad "no workload" "workload" run
bad "two workloads" "gups" run touch gups
bad "unknown option" "--frobnicate" run touch --frobnicate
bad "option without its value" "--mem" run touch --mem
bad "unknown parameter" "colour" run touch --param colour=red
bad "parameter without =" "size" run touch --param size
bad "bad size" "12Q" run touch --param size=12Q
bad "bad number" "many" run gups --param updates=many
bad "size that does not fit" "--mem" run touch --param size=1G --mem 256M
bad "size beyond any guest" "largest" run touch --param size=1T
bad "bad --mem" "lots" run touch --mem lots
bad "--mem too small" "16M" run touch --mem 4K
bad "--vcpus 0" "--vcpus" run touch --vcpus 0
bad "--vcpus 65" "--vcpus" run touch --vcpus 65
bad "--mmu" "warp" run touch --mmu warp
bad "ept on svm" "ept" run touch --mmu ept --host svm
bad "npt on vmx" "npt" run touch --mmu npt --host vmx
bad "--opt" "turbo" run touch --opt +turbo
bad "--thp" "sometimes" run touch --thp sometimes
bad "--max-shadow-pages 7" "8 to" run touch --max-shadow-pages 7
bad "--max-shadow-pages hex" "8 to" run touch --max-shadow-pages 0x40
bad "--mmu-evict" "lru or fifo" run touch --mmu-evict random
bad "--mmu-lock" "fine, shared or big" run touch --mmu-lock giant
bad "--guest-thp" "maybe" run touch --guest-thp maybe
bad "--seed" "x" run touch --seed x
bad "--cost" "warp=1" run touch --cost warp=1
bad "migrate write over 100" "write=101" run migrate --param write=101
bad "migrate rounds beyond updates" "updates=1000" run migrate --param updates=1000
bad "migrate interval 0" "interval" run migrate --param interval=0
bad "migrate steal beyond rounds" "steal=30" run migrate --param steal=30
bad "trace without a file" "file" run trace
bad "missing trace file" "/nonexistent" run trace --param file=/nonexistent/t.lackey
printf ' L 1000,4\n S 2000,8\nI  40000,3\n L 3000;8\n' > "$tmp/badline.lackey"
bad "malformed trace line" "line 4" run trace --param "file=$tmp/badline.lackey"
t "  ... with its text" 'grep -q "3000;8" "$tmp/bad.err"'
head -c 200000 /dev/urandom > "$tmp/random.lackey"
"$VMMU" run trace --param "file=$tmp/random.lackey" > /dev/null 2> "$tmp/rnd.err"; rc=$?
t "random bytes as a trace: exit 2, no crash" '[ $rc -eq 2 ] && one_line_error "$tmp/rnd.err"'
head -c 5000 "$DATA/true.lackey.gz" > "$tmp/cut.lackey.gz"
"$VMMU" run trace --param "file=$tmp/cut.lackey.gz" > /dev/null 2> "$tmp/cut.err"; rc=$?
t "a truncated gzip trace: an error, no crash" '[ $rc -ne 0 ] && [ $rc -lt 128 ] && one_line_error "$tmp/cut.err"'
bad "workloads NAME unknown" "frob" workloads frob

# ---- the shadow page limit and its eviction order ----
ev="gups --param size=16M --param updates=20000 --mmu shadow --max-shadow-pages 12"
# shellcheck disable=SC2086
"$VMMU" run $ev --mmu-evict fifo --json > "$tmp/fifo.json"
# shellcheck disable=SC2086
"$VMMU" run $ev --json > "$tmp/lru.json"
t "JSON: config.max_shadow_pages, config.mmu_evict (lru by default)" 'grep -q "\"max_shadow_pages\":12,\"mmu_evict\":\"lru\"" "$tmp/lru.json" && grep -q "\"mmu_evict\":\"fifo\"" "$tmp/fifo.json"'
# shellcheck disable=SC2086
"$VMMU" run $ev --mmu-lock big --json > "$tmp/big.json"
t "JSON: config.mmu_lock (fine by default), stats.mmu_lock_wait_ns and sp_lock_contended (0 on one thread)" 'grep -q "\"mmu_lock\":\"fine\"" "$tmp/lru.json" && grep -q "\"mmu_lock\":\"big\"" "$tmp/big.json" && [ "$(field "$tmp/big.json" mmu_lock_wait_ns)" = 0 ] && [ "$(field "$tmp/lru.json" sp_lock_contended)" = 0 ]'
t "the lock design is invisible to the guest" '[ "$(digest "$tmp/lru.json")" = "$(digest "$tmp/big.json")" ]'
same_counts() {
	for k in exits pf_taken pf_fixed pf_spurious pf_emulate mmu_recycled mmu_shadow_zapped shadow_pages pages_4k walk_refs sim_cycles; do
		[ "$(field "$1" "$k")" = "$(field "$2" "$k")" ] || { echo "$k: $(field "$1" "$k") against $(field "$2" "$k")" >&2; return 1; }
	done
}
t "one vCPU thread: fine (shared faults, fallbacks) counts exactly what big does" 'same_counts "$tmp/lru.json" "$tmp/big.json"'
t "eviction is invisible to the guest" '[ "$(digest "$tmp/lru.json")" = "$(digest "$tmp/fifo.json")" ]'
t "over the limit: both recycle, lru less ($(field "$tmp/lru.json" mmu_recycled) against $(field "$tmp/fifo.json" mmu_recycled))" '[ "$(field "$tmp/fifo.json" mmu_recycled)" -gt 0 ] && [ "$(field "$tmp/lru.json" mmu_recycled)" -lt "$(field "$tmp/fifo.json" mmu_recycled)" ]'

t_done
