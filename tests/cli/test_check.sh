#!/usr/bin/env bash
# `vmmu check` end to end: exact outcome lines for known scenarios, echo of comments and blank
# lines, errors naming line and token with a non-zero exit while other lines are still answered,
# unsupported features, and bad options.
set -u
VMMU=$1
. "$(dirname "$0")/lib.sh"

cat > "$tmp/in" <<'IN'
# a comment
id=plain access=read

id=wr access=write
id=np pt=RW,US access=write
id=bad pt=P,FROB
id=user pd=P,RW cpl=3
IN
"$VMMU" check --cpu intel "$tmp/in" > "$tmp/out" 2> "$tmp/err"
rc=$?
cat > "$tmp/want" <<'OUT'
# a comment
id=plain access=read fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:A

id=wr access=write fault=0 ec=0x0 ad=pml4:A,pdpt:A,pd:A,pt:AD
id=np pt=RW,US access=write fault=1 ec=0x2 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-
id=bad pt=P,FROB error=token 'pt=P,FROB': bad value for 'pt'
id=user pd=P,RW cpl=3 fault=1 ec=0x5 cr2=0x8000000000 ad=pml4:-,pdpt:-,pd:-,pt:-
OUT
t "exit code 2 on a bad line" '[ $rc -eq 2 ]'
t "output lines" 'diff -u "$tmp/want" "$tmp/out"'
t "stderr names line 6 and the token" 'grep -q "line 6: token .pt=P,FROB." "$tmp/err"'

echo "cr4.pke=1" | "$VMMU" check --cpu amd --features -pku > "$tmp/out2"
t "unsupported feature" 'grep -q "^cr4.pke=1 unsupported=cr4.pke: the CPU has no PKU$" "$tmp/out2"'
echo "leaf=1g" | "$VMMU" check --cpu amd --features -1g > "$tmp/out3"
t "1g without 1G pages is a reserved-bit fault" 'grep -q "ec=0x9" "$tmp/out3"'
echo "pd=P,RW,US,b45" | "$VMMU" check --cpu intel --maxphyaddr 45 > "$tmp/out4"
t "--maxphyaddr" 'grep -q "ec=0x9" "$tmp/out4"'
echo "pd=P,RW,US,b45" | "$VMMU" check --cpu intel > "$tmp/out5"
t "bit 45 below MAXPHYADDR 46 is an address bit: the PT lies outside memory" 'grep -q "fault=1 ec=0x0 " "$tmp/out5"'
"$VMMU" check --cpu sparc < /dev/null 2> "$tmp/e1"; rc=$?
t "bad --cpu" '[ $rc -eq 2 ] && grep -q "sparc" "$tmp/e1"'
"$VMMU" check --cpu intel --features +warp < /dev/null 2> "$tmp/e2"; rc=$?
t "bad --features" '[ $rc -eq 2 ] && grep -q "warp" "$tmp/e2"'
for v in +40 " 40" 040x 0x28 35 53; do
	"$VMMU" check --cpu intel --maxphyaddr "$v" < /dev/null 2> "$tmp/e4"; rc=$?
	t "--maxphyaddr '$v' refused (decimal 36..52 only)" '[ $rc -eq 2 ] && grep -q "expected 36..52" "$tmp/e4"'
done
"$VMMU" check --cpu intel /nonexistent 2> "$tmp/e3"; rc=$?
t "missing file" '[ $rc -eq 2 ] && grep -q "/nonexistent" "$tmp/e3"'
printf 'access=read\n' | "$VMMU" check --cpu intel - > "$tmp/out6"; rc=$?
t "stdin with -" '[ $rc -eq 0 ] && grep -q "fault=0" "$tmp/out6"'
head -c 100000 /dev/urandom | "$VMMU" check --cpu intel > /dev/null 2>&1; rc=$?
t "random bytes: no crash" '[ $rc -eq 2 ] || [ $rc -eq 0 ]'
"$VMMU" frobnicate 2> /dev/null; rc=$?
t "unknown command" '[ $rc -eq 2 ]'

t_done
