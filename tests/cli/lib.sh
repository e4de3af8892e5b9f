# Shared by the CLI test scripts (sourced): checks counted and reported TAP-style, a scratch
# directory removed at exit, and readers of `vmmu run --json` output (one object a line).
fails=0 passes=0
t() { # name, condition (evaluated)
	if eval "$2"; then
		echo "ok - $1"; passes=$((passes + 1))
	else
		echo "not ok - $1"; fails=$((fails + 1))
	fi
}
# The summary line, and the exit status of the script (call it last).
t_done() {
	echo "$passes passed, $fails failed"
	[ "$fails" -eq 0 ]
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
digest() { sed -n 's/.*"digest":"\([0-9a-f]*\)".*/\1/p' "$1"; }
field() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | head -1; }
# Every workload at a size that runs in a blink, for the scripts that run them all: ${SMALL[$w]}.
DATA=${DATA:-$(dirname "${BASH_SOURCE[0]}")/../data}
declare -A SMALL=(
	[touch]="--param size=4M --vcpus 2 --interleave"
	[gups]="--param size=2M --param updates=20000 --vcpus 2 --interleave"
	[fork]="--param iters=8 --param size=1M --vcpus 2 --interleave"
	[ctxsw]="--param procs=3 --param rounds=50"
	[mmap]="--param iters=20 --param size=256K --vcpus 2 --interleave"
	[clone-vms]="--param size=1M"
	[trace]="--param file=$DATA/true.lackey.gz"
	[migrate]="--param size=2M --param updates=20000 --param interval=2000 --param rounds=8 --vcpus 2 --interleave"
)
pf_exits() { sed -n 's/.*"exits_by_reason":{[^}]*"pf":\([0-9]*\).*/\1/p' "$1"; }
one_line_error() { # stderr file: exactly one line, starting "vmmu"
	[ "$(wc -l < "$1")" -eq 1 ] && grep -q '^vmmu' "$1"
}
# `$VMMU ARGS...` must fail with exit 2 and one line of error naming @want.
bad() { # name, expected-substring, args...
	local name=$1 want=$2; shift 2
	"$VMMU" "$@" > "$tmp/bad.out" 2> "$tmp/bad.err"; rc=$?
	t "$name: exit 2, one line naming '$want'" '[ $rc -eq 2 ] && one_line_error "$tmp/bad.err" && grep -q -- "$want" "$tmp/bad.err"'
}
