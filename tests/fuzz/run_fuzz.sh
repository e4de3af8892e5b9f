#!/usr/bin/env bash
# Run a libFuzzer target and require that its coverage grew during the run: the library is built
# with coverage instrumentation (meson.build), so a target that stopped reaching vmmu's code (or a
# build that lost the instrumentation) fails here rather than fuzzing nothing.
# Usage: run_fuzz.sh TARGET [libFuzzer args...]
set -u
target=$1; shift
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$target" "$@" 2> "$log"
rc=$?
start=$(sed -n 's/.*INITED cov: \([0-9]*\).*/\1/p' "$log" | head -1)
end=$(sed -n 's/.*DONE *cov: \([0-9]*\).*/\1/p' "$log" | tail -1)
echo "$(basename "$target"): coverage $start -> $end, exit $rc"
[ $rc -eq 0 ] || { tail -30 "$log"; exit 1; }
[ -n "$start" ] && [ -n "$end" ] && [ "$end" -gt "$start" ] || { echo "coverage did not grow"; exit 1; }
# Instrumented, the walker alone has hundreds of branches; a few dozen means the library is not.
[ "$end" -ge 200 ] || { echo "coverage $end: is libvmmu instrumented?"; exit 1; }
