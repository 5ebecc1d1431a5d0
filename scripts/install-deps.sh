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
need 'ls /usr/lib/llvm-*/lib/libclang*.so*' libclang-dev
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

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "install-deps: missing: ${missing[*]}" >&2
    exit 1
fi
if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "install-deps: the tests need these Debian packages, and installing them needs root:" >&2
    echo "    sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "install-deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
