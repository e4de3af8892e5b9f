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
