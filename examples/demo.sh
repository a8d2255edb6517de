#!/usr/bin/env bash
# `make demo`: start the local cluster (control plane and node), run the operator, apply the
# examples, mount a token into a Pod, rotate it, and show what a user and the
# workload see. Leaves the cluster and operator running; `make cluster-down` ends both.
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

step "a workload Pod on the node mounts the Secret (it prints the value's fingerprint, never the value)"
"$kubectl" apply -f - <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: gateway}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: gateway
    image: localhost/apitoken/busybox:1
    imagePullPolicy: Never
    command: [sh, -c, 'while true; do echo "token file: sha256:$(sha256sum /token/key | cut -c1-12)"; sleep 2; done']
    volumeMounts: [{name: token, mountPath: /token, readOnly: true}]
  volumes: [{name: token, secret: {secretName: edge-gateway-key}}]
EOF
"$kubectl" wait --for condition=Ready pod/gateway --timeout=90s
fingerprint() { "$kubectl" get apitoken edge-gateway -o jsonpath='{.status.fingerprint}'; }
sleep 1
echo "status.fingerprint: $(fingerprint)"
"$kubectl" logs gateway --tail=1

step "ask for a rotation the GitOps-safe way, then look again"
"$operator" rotate edge-gateway
sleep 2
"$kubectl" get apitoken edge-gateway -o wide
"$kubectl" get events --field-selector involvedObject.name=edge-gateway
echo "status.fingerprint: $(fingerprint); waiting for kubelet to update the mounted file (up to ~15 s)"
for _ in $(seq 60); do
  "$kubectl" logs gateway --tail=1 | grep -q "$(fingerprint)" && break
  sleep 1
done
"$kubectl" logs gateway --tail=1

cat <<EOT

The operator keeps running against this cluster. Try:
  export KUBECONFIG=$KUBECONFIG
  $kubectl describe apitoken edge-gateway
  $kubectl delete secret edge-gateway-key     # watch it come back (reason SecretLost)
Stop everything with: make cluster-down
EOT
