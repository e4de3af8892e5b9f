#!/usr/bin/env bash
# The library as an embedder gets it: `meson install` into a temporary DESTDIR, then every program
# of examples/ compiled with the compiler alone against that tree through pkg-config (vmmu.pc,
# vmmuguest.pc; no -DVMMU_INTERNAL, no path into the source tree but the example itself) and run
# under every MMU mode. Also checks what the install puts in place.
# Usage: test_install.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=${1:?usage: test_install.sh BUILD_DIR SOURCE_DIR}
SRC=${2:?usage: test_install.sh BUILD_DIR SOURCE_DIR}
. "$SRC/tests/cli/lib.sh"

D="$tmp/destdir"
t "meson install --destdir succeeds" 'meson install -C "$BUILD" --destdir "$D" --no-rebuild --quiet >"$tmp/install.log" 2>&1'
find "$D" -type f -o -type l | sed "s|^$D||" | sort > "$tmp/tree"
has() { grep -q -- "$1" "$tmp/tree"; }
t "installs the vmmu command" 'has "/bin/vmmu$"'
t "installs libvmmu, shared and static" 'has "/libvmmu\.so$" && has "/libvmmu\.a$"'
t "installs libvmmuguest, shared and static" 'has "/libvmmuguest\.so$" && has "/libvmmuguest\.a$"'
t "installs the public headers" 'has "/include/vmmu/vmmu\.h$" && has "/include/vmmu/guest\.h$" && has "/include/vmmu/types\.h$"'
t "installs vmmu.pc and vmmuguest.pc" 'has "/pkgconfig/vmmu\.pc$" && has "/pkgconfig/vmmuguest\.pc$"'
t "installs vmmu(1), libvmmu(3) and the bash completion" 'has "/man1/vmmu\.1$" && has "/man3/libvmmu\.3$" && has "/bash-completion/completions/vmmu$"'
t "vmmu(1) renders and documents vmmu run's options" 'man -l "$D$(grep "/man1/vmmu\.1$" "$tmp/tree")" 2>/dev/null | grep -q -- "--report exits"'
t "installs no internal header" '! grep -q "/include/vmmu/.*internal\|/include/.*/mmu/" "$tmp/tree"'

pc=$(dirname "$(grep "/pkgconfig/vmmu\.pc$" "$tmp/tree" | head -1)")
lib=$(dirname "$(grep "/libvmmu\.so$" "$tmp/tree" | head -1)")
export PKG_CONFIG_PATH="$D$pc" PKG_CONFIG_SYSROOT_DIR="$D"
export LD_LIBRARY_PATH="$D$lib"
build_ex() { # name, pkg
	cc -std=gnu11 -Wall -Wextra -Werror "$SRC/examples/$1.c" $(pkg-config --cflags --libs "$2") \
		-pthread -o "$tmp/$1" 2>"$tmp/$1.cc.log"
}
for ex in embed mmio dirty_log threads; do
	t "examples/$ex.c builds against the installed vmmu.pc" 'build_ex $ex vmmu'
	for m in native shadow ept npt; do
		t "examples/$ex runs ($m)" '"$tmp/$ex" $m >"$tmp/$ex.$m.out" 2>&1'
	done
done
t "examples/workload.c builds against the installed vmmuguest.pc" 'build_ex workload vmmuguest'
for m in native shadow ept npt; do
	t "examples/workload runs ($m)" '"$tmp/workload" $m >"$tmp/workload.$m.out" 2>&1'
done
t "the guest digest of examples/workload is the same in every mode" '[ "$(sed -n "s/.*digest \([0-9a-f]*\).*/\1/p" "$tmp"/workload.*.out | sort -u | wc -l)" = 1 ]'
gsolib=$(dirname "$(grep "/libvmmuguest\.so$" "$tmp/tree" | head -1)")
t "tests/install/dlopen.c builds with the installed headers alone (no library linked)" 'cc -std=gnu11 -Wall -Wextra -Werror "$SRC/tests/install/dlopen.c" $(pkg-config --cflags vmmu) -o "$tmp/dlopen" 2>"$tmp/dlopen.cc.log"'
t "libvmmu.so and libvmmuguest.so load with dlopen() and run a VM in every mode" '"$tmp/dlopen" "$D$lib/libvmmu.so" "$D$gsolib/libvmmuguest.so" >"$tmp/dlopen.out" 2>&1'
t "the public types carry the vmmu_ prefix (an embedder may have its own gpa_t)" 'printf "#include <vmmu/vmmu.h>\ntypedef int gpa_t; typedef int gva_t; typedef int pfn_t;\nint main(void) { vmmu_gpa_t a = 0; return (int)a; }\n" > "$tmp/clash.c" && cc -std=gnu11 -Werror "$tmp/clash.c" $(pkg-config --cflags --libs vmmu) -o "$tmp/clash"'
t_done
