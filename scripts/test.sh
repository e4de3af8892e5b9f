#!/usr/bin/env bash
# Run every test: the default build's suites (unit, cli, diff against /dev/kvm, slurm: a sweep on
# a single-node Slurm cluster the test starts and stops), the unit suite in a profile-guided build,
# then the unit and cli suites again under ASan+UBSan (clang), and the threaded unit tests under
# TSan.
# Tests that need /dev/kvm (or a Slurm that can start) skip with a message where it is absent. Ends with the line
# "N passed, N failed, N skipped" and a non-zero exit if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh || exit 1

pass=0 fail=0 skip=0
run_suite() { # build-dir, meson test args...
	local dir=$1; shift
	local log
	log=$(mktemp)
	meson test -C "$dir" --print-errorlogs "$@" 2>&1 | tee "$log" | grep -vE '^\s*$' | sed -n '/^ *[0-9]*\/[0-9]* /p;/^Ok:/,$p'
	local ok fl sk xf
	ok=$(awk '/^Ok:/{print $2}' "$log"); fl=$(awk '/^Fail:/{print $2}' "$log")
	sk=$(awk '/^Skipped:/{print $2}' "$log"); xf=$(awk '/^Timeout:/{print $2}' "$log")
	[ -n "$ok" ] || { echo "test.sh: no result from meson test in $dir"; fail=$((fail + 1)); rm -f "$log"; return; }
	pass=$((pass + ok)); fail=$((fail + ${fl:-0} + ${xf:-0})); skip=$((skip + ${sk:-0}))
	rm -f "$log"
}

echo "== default build"
run_suite build

# The opt-in profile-guided build (VMMU_PGO=1, docs/architecture.md): it builds, trains and
# passes the unit suite, whose runs must give what the default build's give.
echo "== profile-guided build"
if VMMU_PGO=1 BUILD=build-pgo ./scripts/bootstrap.sh >/dev/null; then
	run_suite build-pgo --suite unit
else
	echo "test.sh: the profile-guided build failed"; fail=$((fail + 1))
fi

san_build() { # dir, sanitize
	if [ ! -f "$1/build.ninja" ]; then
		CC=clang meson setup "$1" --buildtype=debug -Db_lto=false -Db_sanitize="$2" -Db_lundef=false >/dev/null || return 1
	fi
	meson compile -C "$1" >/dev/null
}
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan"
if san_build build-asan address,undefined; then
	run_suite build-asan --suite unit --suite cli --suite diff-quick
	# The fuzz targets on their own: once, beside the heaviest ASan tests, fuzz_parsers reached a
	# third of its usual coverage (not reproduced alone; the machine's memory for the targets'
	# VMs is the suspect), and its coverage floor failed.
	run_suite build-asan --suite fuzz
else
	echo "test.sh: the ASan build failed"; fail=$((fail + 1))
fi
echo "== TSan"
export TSAN_OPTIONS="halt_on_error=1 suppressions=$PWD/tests/tsan.supp"
if san_build build-tsan thread; then
	run_suite build-tsan --suite threads
else
	echo "test.sh: the TSan build failed"; fail=$((fail + 1))
fi

echo "$pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ]
