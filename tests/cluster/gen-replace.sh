#!/usr/bin/env bash
# Regenerates the staging-module replace directives of go.mod from the go.mod of
# the pinned k8s.io/kubernetes release, so the list is never typed by hand.
# Usage: tests/cluster/gen-replace.sh   (run after changing K8S_VERSION in versions.env)
set -euo pipefail
cd "$(dirname "$0")"
. ./versions.env
modfile=$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
staging_version="v0.${K8S_VERSION#v1.}"
# Each "k8s.io/x => ./staging/src/k8s.io/x" line becomes "k8s.io/x => k8s.io/x v0.N.P".
replaces=$(sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*#\1#p' "$modfile")
args=()
for m in $replaces; do args+=("-replace=${m}=${m}@${staging_version}"); done
go mod edit "${args[@]}"
echo "wrote $(echo "$replaces" | wc -w) replace directives for ${K8S_VERSION} (staging ${staging_version})"
