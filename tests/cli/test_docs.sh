#!/usr/bin/env bash
# Every runnable example of the documentation, run as written, so a wrong example fails the suite:
# each `sh` code block of docs/user-guide.md (as one script), and each ./build/vmmu command line
# of README.md (its indented commands and inline `./build/vmmu ...` spans; ./scripts/*.sh aside:
# the README's test command is what runs this). `vmmu` is a wrapper of the built binary that only
# makes sizes and counts smaller, so the page runs in seconds; an example whose output the guide
# shows right after it ("prints") must print exactly that. validate's documented exit 77 (no
# usable /dev/kvm) counts as success.
# Usage: test_docs.sh PATH/TO/vmmu SOURCE_DIR
set -u
VMMU=$(realpath "$1")
SRC=$(realpath "$2")
. "$SRC/tests/cli/lib.sh"

work="$tmp/work"
mkdir -p "$work/tests/data" "$tmp/bin"
ln -s "$SRC/examples" "$work/examples"
ln -s "$SRC/tests/data/true.lackey.gz" "$work/tests/data/true.lackey.gz"
ln -s "$SRC/tests/data/kvm_probes.txt" "$work/tests/data/kvm_probes.txt"
cat > "$tmp/bin/vmmu" <<WRAP
#!/usr/bin/env bash
# The documented command, smaller: the options and their spelling are kept.
args=()
for a in "\$@"; do
	# Only a well-formed value is made smaller: a malformed one must still be refused.
	if [[ \$a =~ ^size=[0-9]+[KMGT]\$ ]]; then a=size=8M
	elif [[ \$a =~ ^updates=[0-9]+\$ ]]; then a=updates=20000
	elif [[ \$a =~ ^iters=[0-9]+\$ ]]; then a=iters=8
	elif [[ \$a =~ ^rounds=[0-9]+\$ ]]; then a=rounds=4
	elif [[ \$a =~ ^interval=[0-9]+\$ ]]; then a=interval=2000
	elif [[ \$a =~ ^[0-9]+\$ && "\${prev:-}" = --count ]]; then a=200
	fi
	args+=("\$a")
	prev=\$a
done
"$VMMU" "\${args[@]}"
rc=\$?
[ "\${1:-}" = validate ] && [ \$rc -eq 77 ] && exit 0
exit \$rc
WRAP
chmod +x "$tmp/bin/vmmu"
export PATH="$tmp/bin:$PATH"

# The sh blocks of the user guide, one file each; a block followed by "prints" and a text block
# gets that text as its expected output.
awk -v dir="$tmp" '
	/^```sh$/ { n++; f = dir "/block" n ".sh"; inblk = 1; next }
	/^```text$/ && want { t = dir "/block" n ".expect"; intext = 1; next }
	/^```/ { if (inblk) { inblk = 0; want = 0 } else if (intext) { intext = 0; want = 0 }; next }
	inblk { print > f; next }
	intext { print > t; next }
	/^prints$/ { want = 1; next }
	/[^ ]/ { want = 0 }
' "$SRC/docs/user-guide.md"
nblocks=$(ls "$tmp"/block*.sh 2>/dev/null | wc -l)
t "the user guide has runnable examples" '[ "$nblocks" -ge 6 ]'
for b in "$tmp"/block*.sh; do
	name="docs/user-guide.md example $(basename "$b" .sh | tr -dc 0-9): $(head -1 "$b" | cut -c1-60)"
	t "$name" '(cd "$work" && timeout 300 bash -e -o pipefail "$b" > "$b.out" 2> "$b.err")'
	exp="${b%.sh}.expect"
	[ -f "$exp" ] && t "$name: prints what the guide shows" 'diff -q "$exp" "$b.out" > /dev/null'
done

# README: the indented command lines and the inline ./build/vmmu spans.
{ grep -E '^    .*\./build/vmmu ' "$SRC/README.md" | sed 's/.*\(\.\/build\/vmmu \)/\1/'
  grep -o '`\./build/vmmu [^`]*`' "$SRC/README.md" | tr -d '`'; } | sed 's|^\./build/vmmu |vmmu |' > "$tmp/readme"
t "README has runnable commands" '[ "$(wc -l < "$tmp/readme")" -ge 4 ]'
while IFS= read -r line; do
	t "README: $line" '(cd "$work" && timeout 300 bash -e -o pipefail -c "$line" > /dev/null 2> "$tmp/readme.err")'
done < "$tmp/readme"

# The help table is the documentation of every command: `vmmu help CMD` and `vmmu CMD --help`
# print it, and every long option a command's parser takes must be in it.
for c in run compare sweep report workloads check validate; do
	t "vmmu $c --help is vmmu help $c" '[ "$("$VMMU" $c --help)" = "$("$VMMU" help $c)" ]'
done
for c in run check validate sweep report; do
	for o in $(sed -n 's/^[[:space:]]*{ "\([a-z-]*\)", [a-z_]*_argument.*/\1/p' "$SRC/src/cli/cmd_$c.c"); do
		[ "$o" = help ] && continue
		t "vmmu help $c documents --$o" '"$VMMU" help $c | grep -q -- "^  --$o"'
	done
done
for o in $(grep -o '!strcmp(a, "--[a-z-]*")' "$SRC/src/cli/cmd_compare.c" | sed 's/.*"\(--[a-z-]*\)".*/\1/' | sort -u); do
	[ "$o" = --help ] && continue
	t "vmmu help compare documents $o" '"$VMMU" help compare | grep -q -- "^  $o"'
done
"$VMMU" > "$tmp/bare.out" 2> "$tmp/bare.err"; rc=$?
t "bare vmmu: the overview on stderr, exit 2" '[ $rc -eq 2 ] && [ ! -s "$tmp/bare.out" ] && grep -q "vmmu help COMMAND" "$tmp/bare.err"'

t_done
