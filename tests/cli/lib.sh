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
