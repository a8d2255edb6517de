#!/usr/bin/env bash
# Release tooling built from Go modules: helm (v4), kubeconform and crane, pinned by this
# directory's go.mod/go.sum (`tool` lines), apart from tests/cluster so its Kubernetes stays pinned.
#
#   tools.sh build   build them (cached; a cold build takes a few minutes)
#   tools.sh bin     build if needed, then print the directory holding them
#   tools.sh schemas fetch if needed, then print the directory holding the Kubernetes JSON schemas
#                    (kubeconform's layout) from the kubernetes-validate wheel pinned in schemas.txt
#
# Cached outside the clone under <cache>/tools/<hash of go.mod and go.sum>, like the control plane.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${APITOKEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apitoken-operator}
TOOLS=(helm kubeconform crane)

log() { printf 'tools: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

bin_dir() {
  local key
  key=$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-12)
  echo "$cache_root/tools/$key"
}

cmd_build() {
  local dir tmp t missing=0
  dir=$(bin_dir)
  for t in "${TOOLS[@]}"; do [[ -x $dir/$t ]] || missing=1; done
  ((missing)) || return 0
  log "building ${TOOLS[*]} into $dir"
  rm -rf "$dir" # an incomplete copy from an older layout
  mkdir -p "$cache_root/tools"
  tmp=$(mktemp -d "$cache_root/tools/.build.XXXXXX")
  local start=$SECONDS
  # `tool` is every tool the go.mod lists; -trimpath keeps the binaries free of local paths.
  (cd "$here" && GOFLAGS=-buildvcs=false go build -trimpath -o "$tmp/" tool) ||
    { rm -rf "$tmp"; die "go build failed"; }
  for t in "${TOOLS[@]}"; do [[ -x $tmp/$t ]] || { rm -rf "$tmp"; die "go build made no $t"; }; done
  # Publish atomically so an interrupted build never leaves a half-filled cache; if a concurrent
  # build published first, keep its copy (same inputs) and drop ours.
  mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
  for t in "${TOOLS[@]}"; do [[ -x $dir/$t ]] || die "$dir has no $t"; done
  log "built in $((SECONDS - start)) s"
}

# The Kubernetes version the chart is validated against.
K8S_SCHEMA_VERSION=v1.34.0

schema_dir() {
  local key
  key=$(cat "$here/schemas.txt" | sha256sum | cut -c1-12)
  echo "$cache_root/schemas/$key/$K8S_SCHEMA_VERSION-local-strict"
}

# Downloads the wheel with pip (hash-pinned) and extracts one version's strict schemas. Their
# "$id"s are kubernetes.io URLs and their references "/api/_definitions.json", resolved by
# kubernetes-validate's own registry; kubeconform resolves references against the file, so the
# "$id"s are dropped and the references point at the sibling file.
cmd_schemas() {
  local dir top tmp
  dir=$(schema_dir)
  [[ -f $dir/deployment-apps-v1.json ]] && return 0
  top=$(dirname "$dir")
  mkdir -p "$top"
  tmp=$(mktemp -d "$top/.fetch.XXXXXX")
  python3 -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    -r "$here/schemas.txt" -d "$tmp/wheel" >&2 || { rm -rf "$tmp"; die "pip download failed"; }
  python3 - "$tmp"/wheel/*.whl "$K8S_SCHEMA_VERSION-local-strict" "$tmp/out" <<'PY' ||
import json, os, sys, zipfile
wheel, version, out = sys.argv[1:]
prefix = f"kubernetes_validate/kubernetes-json-schema/{version}/"
os.makedirs(out)
count = 0
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and name.endswith(".json"):
            schema = json.loads(z.read(name))
            schema.pop("$id", None)  # then references resolve against the file itself
            text = json.dumps(schema).replace('"/api/_definitions.json#', '"_definitions.json#')
            with open(os.path.join(out, name[len(prefix):]), "w") as f:
                f.write(text)
            count += 1
if count < 100:
    sys.exit(f"only {count} schemas for {version} in {wheel}")
PY
    { rm -rf "$tmp"; die "could not extract the schemas"; }
  mv -T "$tmp/out" "$dir" 2>/dev/null || true
  rm -rf "$tmp"
  [[ -f $dir/deployment-apps-v1.json ]] || die "no schemas in $dir"
}

case ${1:-} in
  build) cmd_build ;;
  bin) cmd_build && bin_dir ;;
  schemas) cmd_schemas && schema_dir ;;
  *) die "usage: $0 build|bin|schemas" ;;
esac
