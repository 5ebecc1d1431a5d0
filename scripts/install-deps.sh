#!/usr/bin/env bash
# Install what the tests need and a fresh machine lacks: the one list of packages, used by
# scripts/test.sh and .ci/run alike. Debian's packages, through apt-get (as root, or with sudo
# where it needs no password); otherwise it names the packages and exits 1.
#
#   scripts/install-deps.sh          install what is missing
#   scripts/install-deps.sh --check  only say what is missing (exit 1 if anything is)
set -euo pipefail

if ! command -v cargo >/dev/null 2>&1; then
    echo "install-deps: cargo is not installed; this project needs a Rust toolchain (1.91 or newer)" >&2
    exit 1
fi

# Each entry: a test that the thing is there, then the Debian package that brings it.
missing=()
need() { eval "$1" >/dev/null 2>&1 || missing+=("$2"); }
# Building: a C toolchain (the shim, test probes), MPI for the mpi feature (bindgen needs libclang).
need 'command -v cc' build-essential
need 'command -v mpicc.openmpi' libopenmpi-dev
need 'command -v mpirun.openmpi' openmpi-bin
need 'ls /usr/lib/llvm-*/lib/libclang.so /usr/lib/llvm-*/lib/libclang-*.so.1 2>/dev/null | grep -q .' libclang-dev
# Third-party programs the direct-host tests run under the shim (Debian's, unmodified).
need '[ -x /usr/bin/python3 ]' python3
need 'command -v socat' socat
need 'command -v nc.openbsd' netcat-openbsd
need 'command -v go' golang-go
need '[ -x /usr/bin/curl ]' curl
need '[ -x /usr/sbin/nginx ]' nginx
need '[ -x /usr/bin/iperf3 ]' iperf3
need '[ -x /usr/bin/openssl ]' openssl
need '[ -x /usr/bin/tcpdump ]' tcpdump
need '[ -x /usr/bin/node ]' nodejs
# Some Node.js builds bring npm and Node's headers themselves; Debian's split them out.
need 'command -v npm' npm
# Node's headers, for the native addons npm builds when the Lodestar test installs it.
need '[ -f /usr/include/node/node.h ]' libnode-dev
# A headless browser: tests/report.rs renders `thermocline report`'s page and screenshots it.
need '[ -x /usr/bin/chromium ]' chromium

# npm 11 or newer: older npm (Debian's 9, also 10) resolves the version-specific overrides of
# nodes/lodestar/package.json differently and refuses its lockfile. It comes from the npm registry.
npm_major() { npm --version 2>/dev/null | cut -d. -f1; }
old_npm=false
if command -v npm >/dev/null 2>&1 && [ "$(npm_major)" -lt 11 ]; then
    old_npm=true
fi

if [ ${#missing[@]} -eq 0 ] && ! $old_npm; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    [ ${#missing[@]} -eq 0 ] || echo "install-deps: missing: ${missing[*]}" >&2
    $old_npm && echo "install-deps: npm $(npm --version) is older than 11" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "install-deps: the tests need these, and installing them needs root:" >&2
    [ ${#missing[@]} -eq 0 ] || echo "    sudo apt-get install ${missing[*]}" >&2
    echo "    sudo npm install -g npm@11   (if npm is older than 11)" >&2
    exit 1
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
fi
if [ "$(npm_major)" -lt 11 ]; then
    echo "install-deps: npm $(npm --version) is older than 11: installing npm 11 from the npm registry"
    # npm 11 declares Node 20; it runs on Debian's Node 18 too (the Lodestar test passes there).
    "${sudo[@]}" npm install -g --force --no-fund --no-audit npm@11
    hash -r
fi
