#!/usr/bin/env bash
# `make demo`: start the local control plane, run the operator, apply the examples, rotate one,
# and show what a user sees. Leaves the cluster and operator running; `make cluster-down` ends both.
set -euo pipefail
cd "$(dirname "$0")/.."
tests/cluster/cluster.sh up >/dev/null
export KUBECONFIG=$PWD/.cluster/kubeconfig
kubectl=$(tests/cluster/cluster.sh bin)/kubectl
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "install the CRD"
cargo build --quiet --bin apitoken-operator
operator=${CARGO_TARGET_DIR:-target}/debug/apitoken-operator
"$operator" crd | "$kubectl" apply --server-side -f -
"$kubectl" wait --for condition=Established crd/apitokens.apitoken.dev --timeout=30s

step "start the operator (logs: .cluster/logs/operator.log)"
setsid "$operator" run --log-format text >.cluster/logs/operator.log 2>&1 </dev/null &
echo $! >.cluster/operator.pid

step "apply examples/"
"$kubectl" apply -f examples/minimal.yaml -f examples/key-auth-gateway.yaml
"$kubectl" wait --for condition=Ready apitoken/billing-client apitoken/edge-gateway --timeout=30s
"$kubectl" get apitokens

step "the Secret (keys only; the value is for workloads, never printed by the operator)"
"$kubectl" get secret edge-gateway-key -o go-template='{{range $k, $v := .data}}{{$k}}{{"\n"}}{{end}}'

step "ask for a rotation the GitOps-safe way, then look again"
"$operator" rotate edge-gateway
sleep 2
"$kubectl" get apitoken edge-gateway -o wide
"$kubectl" get events --field-selector involvedObject.name=edge-gateway

cat <<EOT

The operator keeps running against this cluster. Try:
  export KUBECONFIG=$KUBECONFIG
  $kubectl describe apitoken edge-gateway
  $kubectl delete secret edge-gateway-key     # watch it come back (reason SecretLost)
Stop everything with: make cluster-down
EOT
