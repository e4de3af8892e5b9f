#!/usr/bin/env bash
# Bad input from a user gets a one-line message naming what was wrong and exit 2, before anything
# runs (docs/hardening.md lists each input and what it gets): counts are decimal only, a cost of
# 0 cycles is refused rather than silently kept at the default, empty lists are refused, an
# endless line is refused as soon as it passes the limit, option errors say which kind they are.
# Usage: test_inputs.sh PATH/TO/vmmu DATA_DIR
set -u
VMMU=$1
SRC_DATA=$2
. "$(dirname "$0")/lib.sh"

refused() { # expected-message-part, vmmu args...: exit 2, nothing on stdout, the message on stderr
	local want=$1; shift
	timeout 20 "$VMMU" "$@" > "$tmp/out" 2> "$tmp/err"
	local rc=$?
	[ $rc -eq 2 ] && [ ! -s "$tmp/out" ] && grep -q -- "$want" "$tmp/err" && [ "$(wc -l < "$tmp/err")" -le 2 ]
}
small=(--param size=1M)

t "--vcpus 010 is ten (decimal), not eight" '[ "$("$VMMU" run touch "${small[@]}" --vcpus 010 --json | sed -n "s/.*\"vcpus\":\([0-9]*\).*/\1/p")" = 10 ]'
t "--vcpus 0x10 refused" 'refused "0x10" run touch "${small[@]}" --vcpus 0x10'
t "--vcpus with a leading tab refused" 'refused "expected 1 to 64" run touch "${small[@]}" --vcpus "	2"'
t "--seed 1e3 refused" 'refused "1e3" run touch "${small[@]}" --seed 1e3'
t "--param with a hex count refused" 'refused "updates" run gups --param updates=0x10'
t "--cost vm_exit=0 refused (0 would mean the default)" 'refused "at least 1" run touch "${small[@]}" --cost vm_exit=0'
t "--cost vm_exit=010 is ten cycles" '"$VMMU" run touch "${small[@]}" --cost vm_exit=010 --json | grep -q "\"vm_exit\":10"'
t "--json=x: the option takes no value" 'refused "takes no value" run touch --json=x'
t "--m: ambiguous, naming the options" 'refused "ambiguous option .--m. (--mmu, --mem, --max-shadow-pages, --mmu-evict, --mmu-lock)" run touch --m native'
t "an unknown option names itself" 'refused "unknown option .--bogus." run touch --bogus'
t "compare --mmu '' refused" 'refused "--mmu" compare touch --mmu ""'
t "compare --mmu ,, refused" 'refused "--mmu" compare touch --mmu ,,'
t "compare --opt-sets '' refused" 'refused "--opt-sets" compare touch --mmu native,shadow --opt-sets ""'
t "compare --opt-sets /// refused" 'refused "--opt-sets" compare touch --mmu native,shadow --opt-sets ///'
t "compare --opt-sets all/bogus refused before the first run" 'refused "bogus" compare touch --mmu native,shadow --opt-sets all/bogus'
t "compare: a bad run option is refused before the first run (no run started)" 'refused "no parameter .bogus." compare touch --mmu native,shadow --param bogus=1 && ! grep -q "vmmu compare: native" "$tmp/err"'
t "check /dev/zero: refused at the line limit, in bounded time and memory" 'refused "longer than 1023 characters" check /dev/zero'
t "validate --seed over the limit names the limit" 'refused "0..100000000" validate --seed 200000000'
# A trace whose guest runs out of memory: the run did not do what was asked, so it fails and says
# what --mem would let it finish (it used to stop early with exit 0).
awk 'BEGIN { x = 12345; for (i = 0; i < 20000; i++) { x = (x * 69069 + 1) % 4294967296; p = x % 17179869184;
	printf " L %x%08x,8\n", int(p / 1048576), (p % 1048576) * 4096 } }' > "$tmp/scatter.lackey"
"$VMMU" run trace --param file="$tmp/scatter.lackey" --mem 64M > "$tmp/out" 2> "$tmp/err"; rc=$?
t "trace out of guest memory: exit 1, naming --mem" '[ $rc -eq 1 ] && grep -q "ran out of memory at record" "$tmp/err" && grep -q -- "--mem 128M" "$tmp/err"'
# A damaged gzip trace is bad input (exit 2) and the message says where it broke.
gzip -c "$tmp/scatter.lackey" | head -c 300 > "$tmp/trunc.gz"
t "a truncated gzip trace: exit 2, the byte where it broke, no <fd:N>" 'refused "truncated or corrupt gzip file: .* at byte 300 of the compressed file" run trace --param file="$tmp/trunc.gz" && ! grep -q "<fd:" "$tmp/err"'

# Input echoed back: valid JSON whatever the bytes of a path, no control byte on the terminal.
cp "$SRC_DATA/true.lackey.gz" "$tmp/$(printf 'caf\xe9\x1b[31m').lackey.gz"
"$VMMU" run trace --param file="$tmp/$(printf 'caf\xe9\x1b[31m').lackey.gz" --json > "$tmp/j.json" 2> /dev/null
t "--json of a non-UTF-8 path with an escape byte parses" 'python3 -c "import json,sys; d=json.load(open(sys.argv[1], encoding=\"utf-8\")); sys.exit(0 if \"\\ufffd\" in d[\"workload\"][\"params\"][\"file\"] else 1)" "$tmp/j.json"'
"$VMMU" run touch --mmu "$(printf 'x\x1b[2J')" > /dev/null 2> "$tmp/err"
t "an escape sequence in an option is not echoed raw" '! grep -q "$(printf "\x1b")" "$tmp/err" && grep -q "x?\[2J" "$tmp/err"'
printf 'id=a pt=P,\x1b[31mUS\n' | "$VMMU" check > "$tmp/out" 2> "$tmp/err"
t "vmmu check echoes a bad line without its escape byte" '! grep -q "$(printf "\x1b")" "$tmp/out" "$tmp/err"'

"$VMMU" > "$tmp/out" 2> "$tmp/err"; rc=$?
t "bare vmmu: usage on stderr, exit 2" '[ $rc -eq 2 ] && [ ! -s "$tmp/out" ] && [ -s "$tmp/err" ]'
t_done
