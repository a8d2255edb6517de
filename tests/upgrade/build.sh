#!/usr/bin/env bash
# Builds the operator of the release named in tests/upgrade/previous-release (a commit of this
# repository) and prints the binary's path. Cached under
# ~/.cache/apitoken-operator/upgrade/<commit>/ (override the root with APITOKEN_CACHE); the first
# build seeds its target directory from this checkout's target/debug, so only changed crates compile.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
commit=$(git -C "$root" rev-parse --verify "$(tr -d '[:space:]' < "$root/tests/upgrade/previous-release")^{commit}")
cache=${APITOKEN_CACHE:-$HOME/.cache/apitoken-operator}/upgrade/$commit
bin=$cache/target/debug/apitoken-operator
if [[ -x $bin ]]; then echo "$bin"; exit 0; fi
mkdir -p "$cache"
rm -rf "$cache/src.tmp" && mkdir "$cache/src.tmp"
git -C "$root" archive "$commit" | tar -x -C "$cache/src.tmp"
if [[ ! -d $cache/target/debug && -d $root/target/debug ]]; then
  mkdir -p "$cache/target/debug"
  for d in deps build .fingerprint; do
    [[ -d $root/target/debug/$d ]] && cp -a "$root/target/debug/$d" "$cache/target/debug/"
  done
fi
(cd "$cache/src.tmp" && CARGO_TARGET_DIR=$cache/target cargo build --locked --quiet --bin apitoken-operator >&2)
rm -rf "$cache/src.tmp"
echo "$bin"
