#!/bin/sh
# SPDX-License-Identifier: MIT
# The access and fault paths lie together in the library's text (VMMU_HOT, src/hot.h): a sample
# of the marked functions, one or more from each file that marks a global one, spans at most
# 96 KiB (about 49 KiB as built), and none of a sample of set-up, memslot and audit functions
# lies within that span. Without the marks the sample spreads over the text in link order (about
# 190 KiB); without those of one file (tlb.c, tried) it spans 98 KiB. GCC groups them at -O2,
# -O3 and -Os only: any other build skips (exit 77), and so does a profile-guided one, whose text
# the training's profile lays out (docs/architecture.md): there a function the training never ran,
# as the 32-bit walks' paging_walk_from, lies apart whatever its mark says.
# usage: test_layout.sh LIBRARY COMPILER OPTIMIZATION [PGO]   (meson's cc.get_id(), optimization
# and b_pgo)
set -eu
[ $# -eq 3 ] || [ $# -eq 4 ] || { echo "usage: $0 LIBRARY COMPILER OPTIMIZATION [PGO]"; exit 2; }
lib=$1
if [ "${4:-off}" = use ]; then
	echo "SKIP: a profile-guided build: its profile lays the text out, not VMMU_HOT"
	exit 77
fi
case "$2:$3" in
gcc:2 | gcc:3 | gcc:s) ;;
*)
	echo "SKIP: the grouping is checked on GCC builds at -O2, -O3 or -Os (this: $2, -O$3)"
	exit 77
	;;
esac
command -v nm >/dev/null || { echo "SKIP: no nm to read $lib"; exit 77; }
[ -r "$lib" ] || { echo "FAIL: no library $lib"; exit 1; }
# Global functions only: a static one may be inlined away.
hot="vmmu_vcpu_access vmmu_vcpu_access_batch cpu_access cpu_access_l1_missed tlb_lookup_l2
     nested_walk walk64_addr paging_walk_from tdp_walk hostmem_load
     slots_gmem_rec_ptr host_hpa_ptr host_hva_to_pfn_order
     memslots_gpa_read_word_cached slot_gfn_to_pfn_prot mmu_handle_exit mmu_faultin_pfn
     shadow_root_current shadow_page_fault leaf_set tdp_iter_start"
cold="vmmu_vm_create vmmu_vcpu_create host_arena_create host_mm_create host_mmap memslots_create
      memslots_set_user_memory_region shadow_audit"
syms=$(nm -n -S --defined-only "$lib" | awk '$3 == "t" || $3 == "T" { print $1, $2, $4 }')
fn() { # "address size" of function $1, a compiler's clone suffix allowed, or nothing
	echo "$syms" | awk -v f="$1" '($3 == f || index($3, f ".") == 1) && $3 !~ /\.cold/ {
		print $1, $2; exit }'
}
lo= hi=
for f in $hot; do
	set -- $(fn "$f")
	[ $# -eq 2 ] || { echo "FAIL: $f is not in $lib"; exit 1; }
	a=$((0x$1)) e=$((0x$1 + 0x$2))
	if [ -z "$lo" ] || [ "$a" -lt "$lo" ]; then lo=$a; fi
	if [ -z "$hi" ] || [ "$e" -gt "$hi" ]; then hi=$e; fi
done
span=$((hi - lo))
echo "hot functions span $span bytes ($(printf '%#x-%#x' "$lo" "$hi"))"
[ "$span" -le $((96 * 1024)) ] || { echo "FAIL: the hot functions span $span bytes"; exit 1; }
for f in $cold; do
	set -- $(fn "$f")
	[ $# -eq 2 ] || { echo "FAIL: $f is not in $lib"; exit 1; }
	a=$((0x$1))
	if [ "$a" -ge "$lo" ] && [ "$a" -lt "$hi" ]; then
		echo "FAIL: $f lies among the hot functions"
		exit 1
	fi
done
echo "ok"
