#!/usr/bin/env bash
# `vmmu compare` end to end: every configuration's digest equal (exit 0), the table, CSV and
# JSON forms, the SVG figure, and bad input refused with exit 2.
set -u
VMMU=$1
. "$(dirname "$0")/lib.sh"

"$VMMU" compare gups --mmu native,shadow,shadow-svm,ept,npt --opt-sets all/none \
	--param size=4M --param updates=20000 > "$tmp/table" 2> "$tmp/err"
rc=$?
t "all modes agree: exit 0" '[ $rc -eq 0 ]'
t "the table says the digests are equal" 'grep -q "^digests: all equal" "$tmp/table"'
t "one column per configuration (9)" '[ $(head -1 "$tmp/table" | grep -o "\[all\]\|\[none\]\|native" | wc -l) -eq 9 ]'
t "native has no exits, shadow has some" 'awk "/^VM exits/{exit !(\$3 == 0 && \$4 > 0)}" "$tmp/table"'

# Every CSV a compare prints must load with Python's csv module into rows of one length.
csv_ok() { python3 -c 'import csv,sys; rows = list(csv.reader(open(sys.argv[1]))); sys.exit(0 if len(rows) > 2 and len({len(r) for r in rows}) == 1 else 1)' "$1"; }
"$VMMU" compare touch --mmu native,ept --param size=2M --csv > "$tmp/csv"
t "csv header" 'head -1 "$tmp/csv" | grep -q "^metric,native,ept \[all\]$"'
t "csv digest row" 'grep -q "^guest digest," "$tmp/csv"'
t "csv loads into rows of one length" 'csv_ok "$tmp/csv"'
t "csv metric names have no leading spaces" '! cut -d, -f1 "$tmp/csv" | grep -q "^ "'
"$VMMU" compare touch --mmu native,shadow --opt-sets all/-unsync,-prefetch --param size=2M --csv > "$tmp/csv2"
t "csv: a label with a comma is quoted (RFC 4180)" 'head -1 "$tmp/csv2" | grep -q "\"shadow \[-unsync,-prefetch\]\"" && csv_ok "$tmp/csv2"'
"$VMMU" compare touch --mmu native,shadow --opt-sets all/-unsync,-prefetch --param size=2M --csv-long > "$tmp/csv3"
t "csv-long: config,metric,value rows" 'head -1 "$tmp/csv3" | grep -q "^config,metric,value$" && csv_ok "$tmp/csv3" && [ "$(python3 -c "import csv,sys; print(len(next(csv.reader(open(sys.argv[1])))))" "$tmp/csv3")" = 3 ]'

"$VMMU" compare touch --mmu native,npt --param size=2M --json > "$tmp/json"
t "json parses and says match" 'python3 -c "import json,sys; d=json.load(open(\"$tmp/json\")); sys.exit(0 if d[\"digests_match\"] and len(d[\"runs\"]) == 2 else 1)"'

if command -v gnuplot > /dev/null; then
	"$VMMU" compare touch --mmu native,shadow --param size=2M --plot "$tmp/f.svg" > /dev/null 2>&1
	t "plot writes an SVG" 'grep -q "<svg" "$tmp/f.svg"'
	"$VMMU" compare touch --mmu native,shadow --param size=2M --plot "$tmp/it's.png" > "$tmp/po" 2>&1
	t "plot writes a PNG, the file name passed to gnuplot safely (a quote in it)" 'head -c 8 "$tmp/it'"'"'s.png" | grep -q PNG'
	"$VMMU" compare touch --mmu native,shadow --param size=2M --plot /nonexistent/dir/x.svg > "$tmp/po2" 2> "$tmp/pe2"; rc=$?
	t "plot into a missing directory: exit 2 before any run, nothing on stdout" '[ $rc -eq 2 ] && [ ! -s "$tmp/po2" ] && grep -q "nonexistent" "$tmp/pe2" && ! grep -q "native\.\.\." "$tmp/pe2"'
else
	echo "ok - plot skipped: gnuplot not installed"
fi

"$VMMU" compare touch --mmu native,warp > /dev/null 2> "$tmp/e1"; rc=$?
t "unknown mode: exit 2 naming it" '[ $rc -eq 2 ] && grep -q warp "$tmp/e1"'
"$VMMU" compare touch > /dev/null 2>&1; rc=$?
t "--mmu required" '[ $rc -eq 2 ]'
"$VMMU" compare touch --mmu native --host svm > /dev/null 2>&1; rc=$?
t "--host refused (per configuration)" '[ $rc -eq 2 ]'
"$VMMU" compare touch --mmu native,shadow --opt-sets +bogus > /dev/null 2>&1; rc=$?
t "bad opt set: exit 2" '[ $rc -eq 2 ]'
"$VMMU" compare nosuch --mmu native > /dev/null 2>&1; rc=$?
t "unknown workload: exit 2" '[ $rc -eq 2 ]'

t_done
