#!/usr/bin/env bash
# `vmmu sweep` run locally and `vmmu report`: expansion and stable ids, results lines, resume
# (a second invocation runs nothing; a line cut by a crash is run again), a failed run and a
# timeout recorded without stopping the sweep, --task/--of shares, bad specs refused with exit 2
# naming the problem, and the report's tables, figures and digest check (a doctored line caught).
# Usage: test_sweep.sh PATH/TO/vmmu DATA_DIR
set -u
VMMU=$(realpath "$1")
DATA=$(realpath "$2")
. "$(dirname "$0")/lib.sh"
cd "$tmp"
lines() { wc -l < "$1"; }
json_ok() { python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$1"; }

cat > spec.json <<'SPEC'
{
  "workloads": [ {"name": "gups", "params": {"size": "2M", "updates": [2000, 3000]}},
                 {"name": "touch", "params": {"size": "1M"}} ],
  "mmu": ["native", "shadow", "shadow-svm", "ept", "npt"],
  "opt_sets": ["all", "none"],
  "vcpus": [1, 2],
  "seeds": {"from": 1, "count": 2},
  "exclude": [ {"workload": "touch", "vcpus": 2}, {"mmu": "shadow-svm", "updates": 3000} ]
}
SPEC
# gups: 2 updates x 2 vcpus x 2 seeds x (native + 4 modes x 2 sets) = 72, less shadow-svm at
# updates=3000 (2 sets x 2 vcpus x 2 seeds = 8); touch: 1 vcpus x 2 seeds x 9 = 18.
"$VMMU" sweep spec.json --list > list 2> list.err
t "--list: 82 runs, all to do" '[ "$(lines list)" -eq 82 ] && [ "$(grep -c "	todo	" list)" -eq 82 ] && grep -q "82 to run" list.err'
t "--list: ids are 16 hex digits, all distinct" '[ "$(cut -f1 list | grep -cE "^[0-9a-f]{16}$")" -eq 82 ] && [ "$(cut -f1 list | sort -u | wc -l)" -eq 82 ]'
t "--list: each run is a vmmu run command line" 'grep -q "	vmmu run gups --param size=2M --param updates=2000 --mmu shadow --host svm --opt none --vcpus 2" list'
python3 -c '
import json
s = json.load(open("spec.json"))
s["mmu"].reverse(); s["workloads"].reverse(); s["opt_sets"].reverse()
s["workloads"][1]["params"]["size"] = "2048K"   # the same size, written otherwise
json.dump(s, open("spec2.json", "w"))'
"$VMMU" sweep spec2.json --list > list2 2> /dev/null
t "ids are the configuration's: reordering the spec or respelling a size keeps them" '[ "$(cut -f1 list | sort)" = "$(cut -f1 list2 | sort)" ]'

"$VMMU" sweep spec.json -j 2 -o res.jsonl 2> run.err
rc=$?
t "the sweep: exit 0, one line per run" '[ $rc -eq 0 ] && [ "$(lines res.jsonl)" -eq 82 ] && json_ok res.jsonl'
t "each line: the run's --json object plus id, status, axes" 'python3 -c "
import json, sys
for l in open(\"res.jsonl\"):
    o = json.loads(l)
    assert o[\"status\"] == \"ok\" and len(o[\"id\"]) == 16 and o[\"guest\"][\"digest\"] and o[\"stats\"] and o[\"cost\"]
    assert o[\"axes\"][\"workload\"] == o[\"workload\"][\"name\"] and o[\"axes\"][\"vcpus\"] == o[\"config\"][\"vcpus\"]
"'
t "the ids of the lines are the listed ids" '[ "$(python3 -c "import json; print(\"\n\".join(sorted(json.loads(l)[\"id\"] for l in open(\"res.jsonl\"))))")" = "$(cut -f1 list | sort)" ]'
t "no progress line when stderr is not a terminal" '! grep -q "ETA" run.err'

"$VMMU" sweep spec.json -j 2 -o res.jsonl 2> run2.err
rc=$?
t "resume: a second invocation runs nothing" '[ $rc -eq 0 ] && [ "$(lines res.jsonl)" -eq 82 ] && grep -q "0 run now (0 failed), 82 done before" run2.err'
"$VMMU" sweep spec.json --list -o res.jsonl > list3 2> /dev/null
t "--list after the sweep: every run done" '[ "$(grep -c "	done	" list3)" -eq 82 ]'

# A crash of the sweep: the last three lines lost, the line before them cut in the middle.
head -n 78 res.jsonl > cut.jsonl
tail -n 4 res.jsonl | head -n 1 | head -c 200 >> cut.jsonl
"$VMMU" sweep spec.json -j 2 -o cut.jsonl 2> cut.err
rc=$?
t "resume after a crash: the 4 missing runs run again" '[ $rc -eq 0 ] && grep -q "4 run now (0 failed), 78 done before" cut.err && grep -q "1 unreadable line" cut.err'
t "after it, every run has a whole line" '[ "$(python3 -c "
import json
ids = set()
for l in open(\"cut.jsonl\"):
    try: ids.add(json.loads(l)[\"id\"])
    except ValueError: pass
print(len(ids))")" -eq 82 ]'

# ^C: the runs in flight are killed and not recorded (exit 130); running again finishes it. The
# signal goes once the first run is recorded, so at least three runs are still to come.
cat > intr.json <<'SPEC'
{ "workloads": [ {"name": "gups", "params": {"size": "8M", "updates": 150000}} ], "seeds": {"from": 1, "count": 4} }
SPEC
"$VMMU" sweep intr.json -j 1 -o intr.jsonl 2> intr.err &
pid=$!
for _ in $(seq 1200); do [ -s intr.jsonl ] && break; sleep 0.05; done
kill -INT $pid
wait $pid
rc=$?
n=$(lines intr.jsonl 2> /dev/null || echo 0)
t "interrupted: exit 130, only whole lines, fewer than all" '[ $rc -eq 130 ] && json_ok intr.jsonl && [ "$n" -ge 1 ] && [ "$n" -lt 4 ] && grep -q "interrupted" intr.err'
"$VMMU" sweep intr.json -j 2 -o intr.jsonl 2> intr2.err
rc=$?
t "run again after ^C: the rest runs, 4 lines in all" '[ $rc -eq 0 ] && [ "$(lines intr.jsonl)" -eq 4 ] && grep -q "$((4 - n)) run now" intr2.err'

# --task K --of N: shares that cover the sweep, each run once.
for k in 0 1 2; do "$VMMU" sweep spec.json --task $k --of 3 --list -o none.jsonl 2> /dev/null | cut -f1; done | sort > shares
t "--task/--of: three shares cover every run once" '[ "$(cat shares)" = "$(cut -f1 list | sort)" ] && [ "$(uniq -d shares | wc -l)" -eq 0 ]'

# Failures: a missing trace file fails (exit 2 of vmmu run); the sweep goes on.
cat > fail.json <<SPEC
{ "traces": ["missing.lackey.gz", "$DATA/true.lackey.gz"], "mmu": ["native", "ept"] }
SPEC
"$VMMU" sweep fail.json -j 2 -o fail.jsonl 2> fail.err
rc=$?
t "a failing run: the sweep ends with exit 1, every run recorded" '[ $rc -eq 1 ] && [ "$(lines fail.jsonl)" -eq 4 ]'
t "the failed lines: reason and stderr tail" '[ "$(grep -c "\"status\":\"failed\",.*\"reason\":\"exit status 2\",\"stderr_tail\":\"vmmu run: trace: [^\"]*missing.lackey.gz: No such file" fail.jsonl)" -eq 2 ]'
t "the other runs succeeded" '[ "$(grep -c "\"status\":\"ok\"" fail.jsonl)" -eq 2 ]'
"$VMMU" sweep fail.json -o fail.jsonl 2> fail2.err
rc=$?
t "resume: failed runs are not run again (exit 1 still)" '[ $rc -eq 1 ] && [ "$(lines fail.jsonl)" -eq 4 ] && grep -q "0 run now" fail2.err'
"$VMMU" sweep fail.json --retry-failed -o fail.jsonl 2> /dev/null
t "--retry-failed runs them again" '[ "$(lines fail.jsonl)" -eq 6 ]'

# A timeout: the long run is killed and recorded; the short one runs.
cat > slow.json <<'SPEC'
{ "workloads": [ {"name": "gups", "params": {"size": "64M", "updates": [200000000, 1000]}} ] }
SPEC
start=$(date +%s)
"$VMMU" sweep slow.json -j 1 --timeout 1 -o slow.jsonl 2> slow.err
rc=$?
t "a timeout: exit 1, within seconds" '[ $rc -eq 1 ] && [ $(( $(date +%s) - start )) -lt 20 ]'
t "the run that timed out is a failed line" 'grep -q "\"status\":\"failed\".*\"reason\":\"timeout after 1 s\"" slow.jsonl'
t "the sweep went on: the other run is ok" 'grep -q "\"status\":\"ok\".*\"updates\":1000" slow.jsonl'

# Bad specs: exit 2 and a message naming the problem.
bad_spec() { # name, spec text, expected text in the message
	printf '%s' "$2" > bad.json
	"$VMMU" sweep bad.json --list > /dev/null 2> bad.err
	local rc=$? want=$3
	t "bad spec ($1): exit 2 naming it" '[ $rc -eq 2 ] && grep -q -- "$want" bad.err'
}
bad_spec "not JSON" '{"workloads": ["gups"],' "not valid JSON"
bad_spec "text after the object" '{"workloads": ["gups"]} x' "text after"
bad_spec "unknown key" '{"workloads": ["gups"], "modes": ["ept"]}' "unknown key 'modes'"
bad_spec "unknown workload" '{"workloads": ["gupz"]}' "unknown workload 'gupz'"
bad_spec "unknown parameter" '{"workloads": [{"name": "gups", "params": {"sise": "2M"}}]}' "no parameter 'sise'"
bad_spec "bad parameter value" '{"workloads": [{"name": "gups", "params": {"size": "lots"}}]}' "size"
bad_spec "unknown mode" '{"workloads": ["gups"], "mmu": ["warp"]}' "unknown mode 'warp'"
bad_spec "bad opt set" '{"workloads": ["gups"], "mmu": ["ept"], "opt_sets": ["+turbo"]}' "turbo"
bad_spec "empty list" '{"workloads": ["gups"], "seeds": []}' "seeds: an empty list"
bad_spec "vcpus 0" '{"workloads": ["gups"], "vcpus": [0]}' "vcpus"
bad_spec "unknown exclusion axis" '{"workloads": ["gups"], "exclude": [{"colour": 1}]}' "unknown axis 'colour'"
bad_spec "all excluded" '{"workloads": ["gups"], "exclude": [{"workload": "gups"}]}' "every run is excluded"
bad_spec "no workloads" '{"mmu": ["ept"]}' "workloads"
bad_spec "an axis in run_args" '{"workloads": ["gups"], "run_args": ["--mmu", "ept"]}' "axis of the spec"
"$VMMU" sweep missing.json > /dev/null 2> bad.err; rc=$?
t "a missing spec: exit 2" '[ $rc -eq 2 ] && grep -q "missing.json" bad.err'
"$VMMU" sweep spec.json -j 0 > /dev/null 2>&1; rc=$?
t "-j 0: exit 2" '[ $rc -eq 2 ]'
"$VMMU" sweep spec.json --task 3 --of 3 > /dev/null 2>&1; rc=$?
t "--task not below --of: exit 2" '[ $rc -eq 2 ]'

# report: tables, CSV, figures, the digest check.
"$VMMU" report res.jsonl > rep.md 2> rep.err
rc=$?
t "report: exit 0, digests all equal" '[ $rc -eq 0 ] && grep -q "^digests: .*all equal" rep.md'
t "report: one row per workload, mode and option set (2 x 9)" '[ "$(grep -c "^| \(gups\|touch\) |" rep.md)" -eq 18 ]'
t "report: the speedup table of option sets over none" 'grep -q "^| all | [0-9.]* |" rep.md'
"$VMMU" report res.jsonl --csv --group-by workload,vcpus --metrics cycles_per_access,stats.pf_fixed > rep.csv
t "report --csv --group-by: RFC 4180 rows of one length" 'python3 -c "
import csv, sys
rows = list(csv.reader(open(\"rep.csv\")))
assert rows[0] == [\"workload\", \"vcpus\", \"runs\", \"failed\", \"cycles_per_access\", \"stats.pf_fixed\"], rows[0]
assert len(rows) == 4 and len({len(r) for r in rows}) == 1
"'
"$VMMU" report res.jsonl fail.jsonl > rep2.md
t "report over several files lists the failed runs" 'grep -q "^failed runs:" rep2.md && grep -q "exit status 2" rep2.md'
python3 -c '
import json
ls = open("res.jsonl").read().splitlines()
for i, l in enumerate(ls):
    o = json.loads(l)
    if o["axes"]["mmu"] == "ept" and o["axes"]["opts"] == "none":
        o["guest"]["digest"] = "0123456789abcdef"; ls[i] = json.dumps(o); break
open("doctored.jsonl", "w").write("\n".join(ls) + "\n")'
"$VMMU" report doctored.jsonl > doc.md 2> doc.err
rc=$?
t "report: a doctored digest is caught (exit 1, loudly)" '[ $rc -eq 1 ] && grep -q "DIGEST MISMATCH" doc.err && grep -q "0123456789abcdef in ept \[none\]" doc.md'
"$VMMU" report nothing.jsonl > /dev/null 2>&1; rc=$?
t "report: a missing file, exit 2" '[ $rc -eq 2 ]'
"$VMMU" report res.jsonl --group-by colour > /dev/null 2>&1; rc=$?
t "report: an unknown axis, exit 2" '[ $rc -eq 2 ]'
if command -v gnuplot > /dev/null; then
	"$VMMU" report res.jsonl --plot figs --heatmap workload,vcpus > /dev/null 2> figs.err
	rc=$?
	t "report --plot: every figure drawn" '[ $rc -eq 0 ] && for f in cycles_per_access exits_per_1k opt_speedup vcpu_scaling heatmap; do grep -q "<svg" figs/$f.svg || exit 1; done'
	t "report --plot: the gnuplot scripts are kept" '[ -f figs/heatmap.gp ]'
else
	echo "ok - figures skipped: gnuplot not installed"
fi
t_done
