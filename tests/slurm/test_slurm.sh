#!/usr/bin/env bash
# `vmmu sweep --slurm` on a real single-node Slurm cluster started here: munged, slurmctld and
# slurmd on localhost, in the foreground of this script (no systemd, no cgroups: proctrack/linuxproc,
# task/none), with a configuration generated in a temporary folder and free ports. A small sweep is
# submitted as a job array, waited for, collected, and compared with the same sweep run locally:
# the same ids, and every key of every result equal but the host's timings. Skips (77) with the
# reason where Slurm is not installed or cannot start; scripts/bootstrap.sh installs it.
# Usage: test_slurm.sh PATH/TO/vmmu
set -u
VMMU=$(realpath "$1")
. "$(dirname "$0")/../cli/lib.sh"

skip() { echo "SKIP: $*"; exit 77; }
for p in munged munge slurmctld slurmd sbatch squeue sinfo python3; do
	command -v "$p" > /dev/null || PATH="$PATH:/usr/sbin" command -v "$p" > /dev/null ||
		skip "$p is not installed (scripts/bootstrap.sh installs slurm-wlm and munge)"
done
export PATH="$PATH:/usr/sbin"
[ "$(id -u)" -eq 0 ] || skip "slurmd must run as root to start jobs (run the tests as root)"

pids=()
cleanup() {
	# Only the daemons this script started, by their process ids.
	for p in "${pids[@]}"; do kill "$p" 2> /dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2> /dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
chmod 755 "$tmp"

# munge: a key of our own and a socket in the temporary folder (-f: it would refuse a folder in /tmp).
mkdir -p "$tmp/munge" && chmod 700 "$tmp/munge"
head -c 1024 /dev/urandom > "$tmp/munge/key" && chmod 600 "$tmp/munge/key"
sock=$tmp/munge/sock
munged -F -f --socket="$sock" --key-file="$tmp/munge/key" --log-file="$tmp/munge/log" \
	--pid-file="$tmp/munge/pid" --seed-file="$tmp/munge/seed" > "$tmp/munge/out" 2>&1 &
pids+=($!)
for _ in $(seq 50); do munge -n -S "$sock" 2> /dev/null | unmunge -S "$sock" > /dev/null 2>&1 && break; sleep 0.1; done
munge -n -S "$sock" 2> /dev/null | unmunge -S "$sock" > /dev/null 2>&1 ||
	skip "munged did not start: $(tail -3 "$tmp/munge/out" | tr '\n' ' ')"

# Two free TCP ports for slurmctld and slurmd.
read -r p1 p2 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
host=$(hostname -s)
mkdir -p "$tmp/slurm/state" "$tmp/slurm/spool"
export SLURM_CONF=$tmp/slurm/slurm.conf
cat > "$SLURM_CONF" <<CONF
ClusterName=vmmutest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$p1
SlurmdPort=$p2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
StateSaveLocation=$tmp/slurm/state
SlurmdSpoolDir=$tmp/slurm/spool
SlurmctldPidFile=$tmp/slurm/slurmctld.pid
SlurmdPidFile=$tmp/slurm/slurmd.pid
SlurmctldLogFile=$tmp/slurm/slurmctld.log
SlurmdLogFile=$tmp/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MailProg=/bin/true
NodeName=vmmunode NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=512 State=UNKNOWN
PartitionName=vmmu Nodes=vmmunode Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -D -i -f "$SLURM_CONF" > "$tmp/slurm/ctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N vmmunode > "$tmp/slurm/d.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	sinfo -h -o %T 2> /dev/null | grep -q '^idle' && break
	sleep 0.2
done
sinfo -h -o %T 2> /dev/null | grep -q '^idle' ||
	skip "Slurm did not start on this machine: $(tail -2 "$tmp/slurm/ctld.out" "$tmp/slurm/d.out" | tr '\n' ' ')"
echo "ok - a single-node Slurm is up (slurmctld :$p1, slurmd :$p2)"

cat > "$tmp/spec.json" <<'SPEC'
{
  "name": "slurm test",
  "workloads": [ {"name": "gups", "params": {"size": "2M", "updates": [2000, 4000]}},
                 {"name": "touch", "params": {"size": "1M"}} ],
  "mmu": ["native", "shadow", "ept", "npt"],
  "opt_sets": ["all", "none"],
  "seeds": [1, 2],
  "exclude": [ {"workload": "touch", "seed": 2} ]
}
SPEC
total=$("$VMMU" sweep "$tmp/spec.json" --list -o "$tmp/none.jsonl" 2> /dev/null | wc -l)
t "the spec expands to 35 runs" '[ "$total" -eq 35 ]'

"$VMMU" sweep "$tmp/spec.json" --slurm "$tmp/shared" --runs-per-task 4 --partition vmmu --time 10 \
	--mem 64M > "$tmp/submit" 2> "$tmp/submit.err"
rc=$?
t "submitted (exit 0)" '[ $rc -eq 0 ] && grep -q "submitted job" "$tmp/submit"'
job=$(sed -n 's/.*submitted job \([0-9]*\).*/\1/p' "$tmp/submit")
t "an array of 9 tasks (35 runs, 4 a task)" 'grep -q "35 runs in 9 array tasks" "$tmp/submit"'
t "the folder holds the binary, the spec and the job script" '[ -x "$tmp/shared/vmmu" ] && cmp -s "$tmp/spec.json" "$tmp/shared/spec.json" && grep -q -- "--task" "$tmp/shared/job.sh"'

for _ in $(seq 300); do
	[ -n "$job" ] && [ -z "$(squeue -h -j "$job" 2> /dev/null)" ] && break
	sleep 0.5
done
t "the job left the queue" '[ -n "$job" ] && [ -z "$(squeue -h -j "$job" 2> /dev/null)" ]'
"$VMMU" sweep --status "$tmp/shared" > "$tmp/status"
t "--status: every run done" 'grep -q "runs: 35 of 35 done, 0 failed" "$tmp/status"'
t "one results file per task" '[ "$(ls "$tmp/shared/results" | wc -l)" -eq 9 ]'
"$VMMU" sweep --collect "$tmp/shared" -o "$tmp/slurm.jsonl" > "$tmp/collect"
rc=$?
t "--collect: exit 0, 35 results" '[ $rc -eq 0 ] && [ "$(wc -l < "$tmp/slurm.jsonl")" -eq 35 ]'

"$VMMU" sweep "$tmp/spec.json" -j 2 -o "$tmp/local.jsonl" 2> /dev/null
rc=$?
t "the same sweep run locally: exit 0" '[ $rc -eq 0 ]'
cat > "$tmp/same.py" <<'PY'
import json, sys
def load(p):
    out = {}
    for line in open(p):
        o = json.loads(line)
        o.pop("host", None)      # the host's timings and memory: the only keys that may differ
        out[o["id"]] = o
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
if a.keys() != b.keys():
    sys.exit("different runs: %d only on Slurm, %d only local" % (len(a.keys() - b.keys()), len(b.keys() - a.keys())))
for k in a:
    if a[k] != b[k]:
        diff = [x for x in a[k] if a[k].get(x) != b[k].get(x)]
        sys.exit("run %s differs in %s" % (k, diff))
    if a[k]["status"] != "ok":
        sys.exit("run %s failed" % k)
print("%d runs equal" % len(a))
PY
t "Slurm's results equal the local ones (digests and every counter)" 'python3 "$tmp/same.py" "$tmp/slurm.jsonl" "$tmp/local.jsonl"'
"$VMMU" report "$tmp/slurm.jsonl" > "$tmp/report"
t "report on the collected results: digests all equal" '[ $? -eq 0 ] && grep -q "all equal" "$tmp/report"'

# A second submission into the folder of another sweep is refused.
sed 's/"seeds": \[1, 2\]/"seeds": [3]/' "$tmp/spec.json" > "$tmp/other.json"
"$VMMU" sweep "$tmp/other.json" --slurm "$tmp/shared" > /dev/null 2> "$tmp/other.err"
rc=$?
t "another spec into the same folder: exit 2" '[ $rc -eq 2 ] && grep -q "another sweep" "$tmp/other.err"'
# Submitting the same spec again resumes: every task finds its runs done.
"$VMMU" sweep "$tmp/spec.json" --slurm "$tmp/shared" --runs-per-task 4 > "$tmp/submit2" 2>&1
job2=$(sed -n 's/.*submitted job \([0-9]*\).*/\1/p' "$tmp/submit2")
for _ in $(seq 200); do
	[ -n "$job2" ] && [ -z "$(squeue -h -j "$job2" 2> /dev/null)" ] && break
	sleep 0.5
done
t "resubmitted: each task skips its done runs (no line added)" '[ -n "$job2" ] && [ "$(cat "$tmp"/shared/results/*.jsonl | wc -l)" -eq 35 ]'

if [ "$fails" -ne 0 ]; then
	echo "--- slurmctld log"; tail -20 "$tmp/slurm/slurmctld.log" 2> /dev/null
	echo "--- task logs"; tail -5 "$tmp"/shared/logs/* 2> /dev/null | head -60
fi
t_done
