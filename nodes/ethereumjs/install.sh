#!/usr/bin/env bash
# Install @ethereumjs/client 0.8.1 from this folder's lockfile into TARGET/ethereumjs-client-0.8.1
# (TARGET defaults to the workspace's target folder), with the devnet's scripts and genesis beside
# it: `npm ci` only when the folder holds no install of the same lockfile (the tests keep the same
# mark), the scripts every time. Prints the folder; experiment specs name its scripts as paths.
#
#   nodes/ethereumjs/install.sh          install into target/ethereumjs-client-0.8.1
#   nodes/ethereumjs/install.sh DIR      install into DIR/ethereumjs-client-0.8.1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${1:-$here/../../target}
mkdir -p "$target"
dir=$(cd "$target" && pwd)/ethereumjs-client-0.8.1
mkdir -p "$dir"
exec 9>"$dir.lock"
flock 9
if ! cmp -s "$here/package-lock.json" "$dir/node_modules/.installed-lock.json"; then
    command -v npm >/dev/null 2>&1 || { echo "install.sh: the client needs Node.js and npm (scripts/install-deps.sh)" >&2; exit 1; }
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    (cd "$dir" && npm ci --no-audit --no-fund >&2)
    cp "$here/package-lock.json" "$dir/node_modules/.installed-lock.json"
fi
for f in genesis.json engine_client.py devnet_el.py devnet_probe.py send_tx.cjs; do
    cp "$here/$f" "$dir/$f"
done
echo "$dir"
