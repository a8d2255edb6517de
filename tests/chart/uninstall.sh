#!/usr/bin/env bash
# `make chart-uninstall-check`: what `helm uninstall` does to the CRDs, on a control plane of its
# own (.cluster-chart/, no node) that starts without our CRDs, as a new user's cluster does:
#   - crds.keep=false: the CRDs are installed with the release and removed with it;
#   - crds.keep=true (the default): they stay, and so does an ApiToken created meanwhile.
# No node runs the operator here, so the releases are uninstalled with --no-hooks (the pre-delete
# hook that releases finalizers is proven on the node by `e2e helm::`).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
chart=$repo/charts/apitoken-operator
export CLUSTER_DIR=$repo/.cluster-chart CLUSTER_NODE=0 KUBECONFIG=$repo/.cluster-chart/kubeconfig
cluster=$repo/tests/cluster/cluster.sh
bin=$("$repo/tests/tools/tools.sh" bin)
helm=$bin/helm
kubectl=$("$cluster" bin)/kubectl

log() { printf 'chart-uninstall: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
crds() { "$kubectl" get crd -o name | grep -c 'apitoken.dev' || true; }

"$cluster" up >/dev/null
trap '"$cluster" down >/dev/null' EXIT

[[ $(crds) == 0 ]] || die "the cluster already serves our CRDs"
"$helm" install drop "$chart" -n ops --create-namespace --set crds.keep=false >/dev/null
[[ $(crds) == 2 ]] || die "crds.install: expected 2 CRDs after install, found $(crds)"
"$helm" uninstall drop -n ops --no-hooks --wait >/dev/null
for _ in $(seq 30); do [[ $(crds) == 0 ]] && break; sleep 1; done
[[ $(crds) == 0 ]] || die "crds.keep=false: $(crds) CRDs left after uninstall"
log "crds.keep=false: CRDs installed with the release and removed with it"

"$helm" install keep "$chart" -n ops >/dev/null
"$kubectl" wait --for condition=Established crd/apitokens.apitoken.dev --timeout 60s >/dev/null
printf 'apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: survivor, namespace: default}\nspec: {}\n' |
  "$kubectl" apply -f - >/dev/null
"$helm" uninstall keep -n ops --no-hooks --wait >/dev/null
sleep 3
[[ $(crds) == 2 ]] || die "crds.keep=true: expected both CRDs after uninstall, found $(crds)"
"$kubectl" get apitoken survivor -n default >/dev/null || die "crds.keep=true: the ApiToken is gone"
[[ -z $("$helm" list -A -q) ]] || die "a release is left"
log "crds.keep=true: CRDs and ApiTokens stay after uninstall"
