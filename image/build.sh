#!/usr/bin/env bash
# `make image`: the operator's image without a Docker engine, the same one the Dockerfile builds.
#   1. a static release build (glibc's static libraries; only crates.io is reachable, so no musl
#      target is installed);
#   2. image/rootfs.sh, packed as one reproducible layer (sorted, owner 0, mtime of the commit);
#   3. crane (tests/tools): the layer appended onto an empty base and pushed to a registry that
#      crane serves on loopback for this build only, then `crane mutate` for entrypoint, user,
#      platform and labels, saved as target/image/apitoken-operator.tar (tag $IMAGE);
#   4. with CONTAINERD_ADDRESS set (a node's containerd socket), `ctr -n k8s.io images import`.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$repo/target/image
image=${IMAGE:-apitoken-operator:dev}
target=x86_64-unknown-linux-gnu
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { printf 'image: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ -s $ca ]] || die "no CA bundle at $ca (Debian: apt-get install ca-certificates)"
crane=$("$repo/tests/tools/tools.sh" bin)/crane

log "static release build ($target)"
(cd "$repo" && RUSTFLAGS='-C target-feature=+crt-static' \
  cargo build --locked --release --target "$target" --bin apitoken-operator)
bin=${CARGO_TARGET_DIR:-$repo/target}/$target/release/apitoken-operator
if readelf -l "$bin" | grep -q 'program interpreter'; then die "$bin is dynamically linked"; fi

rm -rf "$out"
mkdir -p "$out"
sh "$repo/image/rootfs.sh" "$bin" "$ca" "$out/rootfs"
epoch=$(git -C "$repo" log -1 --format=%ct 2>/dev/null || echo 0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
  -C "$out/rootfs" -cf "$out/layer.tar" etc home tmp usr

version=$(cd "$repo" && cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "apitoken-operator"))')
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)

# A registry on loopback, for this build only: crane mutate reads images from a registry.
"$crane" registry serve --address 127.0.0.1:0 2>"$out/registry.log" &
registry=$!
trap 'kill "$registry" 2>/dev/null || true; wait "$registry" 2>/dev/null || true' EXIT
port=
for _ in $(seq 50); do
  port=$(sed -n 's/.*serving on port \([0-9]*\).*/\1/p' "$out/registry.log")
  [[ -n $port ]] && break
  sleep 0.1
done
[[ -n $port ]] || die "crane registry did not start: $(cat "$out/registry.log")"
staging=127.0.0.1:$port/apitoken-operator:build

"$crane" append --insecure --oci-empty-base --new_layer "$out/layer.tar" --new_tag "$staging" >/dev/null
"$crane" mutate --insecure "$staging" \
  --entrypoint /usr/local/bin/apitoken-operator --cmd run \
  --user 65532:65532 --workdir / --set-platform linux/amd64 \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --label org.opencontainers.image.title=apitoken-operator \
  --label org.opencontainers.image.description="Manages API tokens as Kubernetes custom resources" \
  --label org.opencontainers.image.version="$version" \
  --label org.opencontainers.image.revision="$revision" \
  --tag "$image" --output "$out/apitoken-operator.tar" >/dev/null
log "$image: $(du -h "$out/apitoken-operator.tar" | cut -f1) in ${out#"$repo"/}/apitoken-operator.tar"

if [[ -n ${CONTAINERD_ADDRESS:-} ]]; then
  ctr --address "$CONTAINERD_ADDRESS" -n k8s.io images import --platform linux/amd64 \
    "$out/apitoken-operator.tar" >&2
  log "imported into containerd at $CONTAINERD_ADDRESS (namespace k8s.io)"
fi
