#!/usr/bin/env bash
# `make demo`: start the local cluster (control plane and node), build the operator's image and
# install it with the Helm chart as users do, apply the examples, mount a token into a Pod, rotate
# it, and show what a user and the workload see. Leaves everything running; `make cluster-down`
# ends it all.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(tests/cluster/cluster.sh up)"
kubectl=$(tests/cluster/cluster.sh bin)/kubectl
helm=$(tests/tools/tools.sh bin)/helm
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "build the image without Docker and import it into the node (make image; first time ~10 min)"
image/build.sh

step "helm install (chart charts/apitoken-operator, the image never pulled)"
"$helm" upgrade --install apitoken-operator charts/apitoken-operator \
  --namespace apitoken-system --create-namespace \
  -f charts/apitoken-operator/ci/local-values.yaml --wait --timeout 3m
"$kubectl" -n apitoken-system get pods -o wide

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

step "ask for a rotation the GitOps-safe way (what \`apitoken-operator rotate\` does), then look again"
"$kubectl" annotate apitoken edge-gateway --overwrite "apitoken.dev/rotate=demo-$(date +%s)"
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

The operator runs in the cluster (kubectl -n apitoken-system logs deploy/apitoken-operator). Try:
  export KUBECONFIG=$KUBECONFIG
  $kubectl describe apitoken edge-gateway
  $kubectl delete secret edge-gateway-key     # watch it come back (reason SecretLost)
Stop everything with: make cluster-down
EOT
