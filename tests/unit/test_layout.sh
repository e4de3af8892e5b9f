#!/bin/sh
# SPDX-License-Identifier: MIT
# The access and fault paths lie together in the library's text (VMMU_HOT, src/hot.h): the
# functions one fault of each mode runs span at most 96 KiB, and none of the library's setup or
# audit functions lies among them. Without the grouping they spread over the whole text (the
# link order of their files), and a soft-MMU fault's code falls into L1i sets it then misses in
# on every fault (docs/figures.md, stop 45). Only an optimized GCC build groups them: any other
# build skips (exit 77).
# usage: test_layout.sh LIBRARY COMPILER OPTIMIZATION
set -eu
lib=$1
if [ "$2" != gcc ] || [ "$3" = 0 ] || [ "$3" = g ]; then
	echo "SKIP: the grouping is checked on an optimized GCC build ($2, -O$3)"
	exit 77
fi
hot="vmmu_vcpu_access vmmu_vcpu_access_batch cpu_access cpu_access_l1_missed walk64_addr
     host_hpa_ptr shadow_page_fault fault_locked tdp_page_fault nested_walk"
cold="vmmu_vm_create vmmu_vm_destroy vmmu_set_user_memory_region vmmu_vcpu_create shadow_audit"
syms=$(nm -n --defined-only "$lib" | awk '$2 == "t" || $2 == "T" { print $1, $3 }')
addr() { # the address of function $1 (a compiler's clone suffix allowed), or nothing
	echo "$syms" | awk -v f="$1" '($2 == f || index($2, f ".") == 1) && $2 !~ /\.cold/ { print $1; exit }'
}
lo= hi=
for f in $hot; do
	a=$(addr "$f")
	[ -n "$a" ] || { echo "FAIL: $f is not in $lib"; exit 1; }
	a=$((0x$a))
	[ -z "$lo" ] || [ "$a" -ge "$lo" ] || lo=$a
	[ -n "$lo" ] || lo=$a
	[ -z "$hi" ] || [ "$a" -le "$hi" ] || hi=$a
	[ -n "$hi" ] || hi=$a
done
span=$((hi - lo))
echo "hot functions span $span bytes ($(printf '%#x-%#x' "$lo" "$hi"))"
[ "$span" -le $((96 * 1024)) ] || { echo "FAIL: the hot functions span $span bytes"; exit 1; }
for f in $cold; do
	a=$(addr "$f")
	[ -n "$a" ] || { echo "FAIL: $f is not in $lib"; exit 1; }
	a=$((0x$a))
	if [ "$a" -ge "$lo" ] && [ "$a" -le "$hi" ]; then
		echo "FAIL: $f lies among the hot functions"
		exit 1
	fi
done
echo "ok"
