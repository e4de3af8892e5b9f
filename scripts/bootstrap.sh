#!/usr/bin/env bash
# Set up a fresh Debian 12 machine for vmmu and build it: installs the Debian packages the
# project needs (only those missing; as root, or through sudo), then configures and builds
# ./build (release-like: -O2 -g). Safe to run again: it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential pkg-config meson ninja-build liburcu-dev libcmocka-dev libxxhash-dev zlib1g-dev
      clang libclang-rt-14-dev gnuplot-nox valgrind python3 jq libjson-c-dev slurm-wlm munge)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}"
	SUDO=""
	[ "$(id -u)" -eq 0 ] || SUDO="sudo"
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -qq
	$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

BUILD=${BUILD:-build}
# VMMU_PGO=1: profile-guided: an instrumented build first, the training runs
# (scripts/pgo-train.sh), then the build itself with their profile, which lays the fault paths'
# code out by where the training ran (docs/architecture.md has what it gains and costs). Only a
# new build directory gets one; a later edit recompiles with the profile it has (GCC drops a
# changed function's counts and compiles it without).
# Markers in the build directory: pgo-started once meson set it up for the training, pgo-trained
# once the build uses the profile. A set-up cut short (a failure, an interrupt) leaves the first
# without the second, and the next run starts it again rather than take it for a finished one.
pgo_setup() {
	meson setup "$BUILD" --buildtype=debugoptimized -Db_pgo=generate >/dev/null &&
	touch "$BUILD/pgo-started" &&
	ninja -C "$BUILD" vmmu >/dev/null &&
	find "$BUILD" -name '*.gcda' -delete &&
	./scripts/pgo-train.sh "$BUILD/vmmu" &&
	meson configure "$BUILD" -Db_pgo=use >/dev/null &&
	touch "$BUILD/pgo-trained"
}
if [ -f "$BUILD/pgo-started" ] && [ ! -f "$BUILD/pgo-trained" ]; then
	echo "bootstrap: $BUILD: a profile-guided set-up that did not finish; starting it again"
	rm -rf "$BUILD"
fi
if [ ! -f "$BUILD/build.ninja" ]; then
	if [ "${VMMU_PGO:-0}" = 1 ]; then
		echo "bootstrap: a profile-guided build: instrumented, trained (scripts/pgo-train.sh), rebuilt"
		pgo_setup || {
			# Only a directory meson set up for the training is removed, never one it refused.
			[ -f "$BUILD/pgo-started" ] && rm -rf "$BUILD"
			echo "bootstrap: the profile-guided set-up failed" >&2
			exit 1
		}
	else
		meson setup "$BUILD" --buildtype=debugoptimized >/dev/null
	fi
elif [ "${VMMU_PGO:-0}" = 1 ] && [ ! -f "$BUILD/pgo-trained" ]; then
	echo "bootstrap: $BUILD is a plain build; VMMU_PGO=1 takes a new directory (BUILD=dir)" >&2
	exit 1
fi
meson compile -C "$BUILD" >/dev/null
echo "bootstrap: built $BUILD/vmmu"
