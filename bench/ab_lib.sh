# shellcheck shell=bash
# Shared by the A/B scripts (fault_ab.sh, gups_ab.sh); sourced, not run. The caller sets $tmp, a
# directory removed at its exit.
# shellcheck disable=SC2154

# fresh BUILD_DIR BENCHMARK: the path of a new copy of the benchmark's binary. On the nested VMs
# these scripts were written on, a binary's speed depends on where its pages lie in physical
# memory (a copy of one build's file, the same bytes, ran its #PF 20% faster than the file itself,
# for an hour), so a comparison of two files is one of placements unless each run places them anew.
fresh() {
	local c
	c=$(mktemp "$tmp/bin.XXXXXX")
	install -m 755 "$1/bench/$2" "$c"
	echo "$c"
}

# The median of the numbers on stdin, one a line.
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
