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
if [ ! -f "$BUILD/build.ninja" ]; then
	meson setup "$BUILD" --buildtype=debugoptimized >/dev/null
fi
meson compile -C "$BUILD" >/dev/null
echo "bootstrap: built $BUILD/vmmu"
