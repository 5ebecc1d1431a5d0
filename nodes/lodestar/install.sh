#!/usr/bin/env bash
# Install Lodestar 1.5.1 from this folder's lockfile into TARGET/lodestar-1.5.1 (TARGET defaults
# to the workspace's target folder), once: a later call only checks it is there. Writes
# TARGET/lodestar-1.5.1/lodestar, a launcher that experiment specs name as a process's `path`
# (the entry script's absolute path is written into it, so specs need no absolute paths).
#
#   nodes/lodestar/install.sh            install into target/lodestar-1.5.1
#   nodes/lodestar/install.sh DIR        install into DIR/lodestar-1.5.1
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
target=${1:-$here/../../target}
mkdir -p "$target"
dir=$(cd "$target" && pwd)/lodestar-1.5.1
entry=$dir/node_modules/@chainsafe/lodestar/lib/index.js
# Tests install it concurrently: one at a time.
exec 9>"$dir.lock"
flock 9
if [ ! -f "$entry" ]; then
    command -v npm >/dev/null 2>&1 || { echo "install.sh: Lodestar needs Node.js and npm (scripts/install-deps.sh)" >&2; exit 1; }
    mkdir -p "$dir"
    cp "$here/package.json" "$here/package-lock.json" "$dir/"
    # Native addons build against the installed headers instead of downloading them.
    if [ -f /usr/include/node/node.h ]; then
        export npm_config_nodedir=/usr
    fi
    (cd "$dir" && npm ci --no-audit --no-fund >&2)
    [ -f "$entry" ] || { echo "install.sh: npm ci did not install $entry" >&2; exit 1; }
fi
printf '#!/bin/sh\nexec /usr/bin/node %s "$@"\n' "$entry" >"$dir/lodestar.tmp"
chmod +x "$dir/lodestar.tmp"
mv "$dir/lodestar.tmp" "$dir/lodestar"
echo "$dir/lodestar"
