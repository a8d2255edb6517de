#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, built from Go modules.
#
#   cluster.sh build   build etcd and the Kubernetes binaries (cached)
#   cluster.sh up      build if needed, then start everything and write .cluster/kubeconfig
#   cluster.sh down    stop exactly what `up` started, undo its host changes, prove nothing is left
#   cluster.sh bin     print the directory holding the cached binaries
#   cluster.sh stop-apiserver | start-apiserver | restart-etcd
#                      fault injection (tests/e2e/faults): same ports, flags and data on restart
#
# By default `up` also runs a node (node.sh: containerd, kubelet, kube-proxy, kube-scheduler on a
# network of its own), which needs root; CLUSTER_NODE=0 gives the control plane alone on loopback.
#
# Binaries are cached outside the clone, keyed by versions.env, go.mod and go.sum, so a second
# clone (or CI on the same machine) starts in seconds. State lives in $CLUSTER_DIR (default
# <repo>/.cluster, git-ignored).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
state=${CLUSTER_DIR:-$repo/.cluster}
cache_root=${APITOKEN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/apitoken-operator}
# shellcheck source=versions.env
. "$here/versions.env"
# shellcheck source=node.sh
. "$here/node.sh"

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

# Stamp the real version (go build alone reports v0.0.0-master, which helm's kubeVersion checks
# and kubectl version would show).
LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=${K8S_VERSION} \
-X k8s.io/component-base/version.gitMajor=$(cut -d. -f1 <<<"${K8S_VERSION#v}") \
-X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") \
-X k8s.io/component-base/version.gitTreeState=clean"

bin_dir() {
  local key
  key=$(cat "$here/versions.env" "$here/go.mod" "$here/go.sum" <(echo "$LDFLAGS") | sha256sum | cut -c1-12)
  echo "$cache_root/controlplane/${K8S_VERSION}-etcd${ETCD_VERSION}-${key}"
}

cmd_build() {
  local dir tmp
  dir=$(bin_dir)
  local b missing=0
  for b in "${BINARIES[@]}"; do [[ -x $dir/$b ]] || missing=1; done
  ((missing)) || return 0
  log "building Kubernetes ${K8S_VERSION} + etcd ${ETCD_VERSION} into $dir (cold: about 15 min on 2 cores)"
  mkdir -p "$cache_root/controlplane"
  tmp=$(mktemp -d "$cache_root/controlplane/.build.XXXXXX")
  local start=$SECONDS
  (
    cd "$here"
    # One go build for all of them: the packages they share compile once.
    go build -ldflags "$LDFLAGS" -o "$tmp/" go.etcd.io/etcd/server/v3 \
      k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
    mv "$tmp/server" "$tmp/etcd" 2>/dev/null || mv "$tmp/v3" "$tmp/etcd"
  ) || { rm -rf "$tmp"; die "go build failed"; }
  # Publish atomically so a concurrent or interrupted build never leaves a half-filled cache.
  rm -rf "$dir"
  mv "$tmp" "$dir"
  log "built in $((SECONDS - start)) s"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

alive() { [[ -f $state/$1.pid ]] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null; }

running() {
  alive etcd && alive kube-apiserver && alive kube-controller-manager || return 1
  ! node_enabled || { alive containerd && alive kubelet && alive kube-proxy && alive kube-scheduler; }
}

gen_pki() {
  local pki=$state/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -keyout ca.key -out ca.crt \
      -subj "/CN=apitoken-test-ca" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    sign() { # name subject extensions
      openssl req -new -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
      printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" "$3" >"$1.ext"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -out "$1.crt" \
        -extfile "$1.ext" 2>/dev/null
      rm -f "$1.csr" "$1.ext"
    }
    sign apiserver "/CN=kube-apiserver" \
      "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
    sign admin "/O=system:masters/CN=admin" "extendedKeyUsage=clientAuth"
    # The operator's own identity: bound to nothing, so RBAC can be granted and proven sufficient.
    sign operator "/CN=apitoken-operator" "extendedKeyUsage=clientAuth"
    ! node_enabled || node_pki
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

write_kubeconfig() { # file user cert key
  local b64='base64 -w0'
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: apitoken-test
  cluster:
    server: https://$(cat "$state/apiserver.address")
    certificate-authority-data: $($b64 <"$state/pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $($b64 <"$3")
    client-key-data: $($b64 <"$4")
contexts:
- name: $2
  context: {cluster: apitoken-test, user: $2}
current-context: $2
EOF
  chmod 600 "$1"
}

start() { # name args...
  local name=$1
  shift
  # setsid: the processes outlive `make` and never get the terminal's signals.
  setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
}

wait_for() { # description seconds command...
  local what=$1 limit=$2
  shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { log "timed out waiting for $what"; tail -n 30 "$state"/logs/*.log >&2; return 1; }
    sleep 0.2
  done
}

print_env() {
  echo "export KUBECONFIG=$state/kubeconfig"
  [[ ! -f $state/containerd.address ]] || echo "export CONTAINERD_ADDRESS=$(cat "$state/containerd.address")"
}

# The cluster's ports and address, as `up` recorded them: a restart uses the very same ones.
read_ports() {
  read -r etcd_port peer_port api_port kcm_port <"$state/ports"
  host=$(cut -d: -f1 "$state/apiserver.address")
}

start_etcd() {
  local etcd_port peer_port api_port kcm_port host bin
  read_ports
  bin=$(bin_dir)
  start etcd "$bin/etcd" --name default --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
  wait_for etcd 30 curl -sf "http://127.0.0.1:$etcd_port/health"
}

# Secrets are encrypted at rest (aescbc, a key generated per cluster); `identity` last so
# anything written before encryption was on still reads.
write_encryption_config() {
  cat >"$state/pki/encryption.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers:
  - aescbc:
      keys:
      - name: key1
        secret: $(head -c 32 /dev/urandom | base64 -w0)
  - identity: {}
EOF
  chmod 600 "$state/pki/encryption.yaml"
}

start_apiserver() {
  local etcd_port peer_port api_port kcm_port host bin
  read_ports
  bin=$(bin_dir)
  local pki=$state/pki authz=(--authorization-mode RBAC)
  # shellcheck disable=SC2207
  ! node_enabled || authz=($(node_apiserver_flags))
  # With a node, the API server listens on the node's address, so Pods reach it through the
  # `kubernetes` Service; without one, on loopback only.
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address "$host" --advertise-address "$host" --secure-port "$api_port" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    "${authz[@]}" --anonymous-auth=false \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --service-cluster-ip-range "$SERVICE_CIDR" \
    --encryption-provider-config "$pki/encryption.yaml" \
    --cert-dir "$pki/apiserver-generated" \
    --profiling=false
}

wait_apiserver() {
  local etcd_port peer_port api_port kcm_port host pki=$state/pki
  read_ports
  wait_for "kube-apiserver /readyz" 60 curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://$host:$api_port/readyz"
}

# Fault injection for the faults suite: stop or restart one recorded process; it comes back with
# the same ports, flags and data. Restarting etcd leaves the API server running on top of it.
cmd_stop_apiserver() { running || die "not running"; stop_recorded kube-apiserver; log "kube-apiserver stopped"; }
cmd_start_apiserver() {
  ! alive kube-apiserver || die "kube-apiserver is running"
  start_apiserver
  wait_apiserver
  log "kube-apiserver started"
}
cmd_restart_etcd() {
  running || die "not running"
  stop_recorded etcd
  start_etcd
  log "etcd restarted"
}

cmd_up() {
  if running; then
    log "already running"
    print_env
    return 0
  fi
  [[ -d $state ]] && cmd_down
  ! node_enabled || node_preflight
  cmd_build
  local bin images start_time=$SECONDS host=127.0.0.1
  bin=$(bin_dir)
  ! node_enabled || { images=$(node_images); host=$NODE_IP; }
  mkdir -p "$state/logs" "$state/etcd"
  gen_pki
  write_encryption_config
  ! node_enabled || node_network_up
  local etcd_port peer_port api_port kcm_port
  etcd_port=$(free_port) peer_port=$(free_port) api_port=$(free_port) kcm_port=$(free_port)
  echo "$host:$api_port" >"$state/apiserver.address"
  echo "$etcd_port $peer_port $api_port $kcm_port" >"$state/ports"

  start_etcd
  local pki=$state/pki
  start_apiserver
  write_kubeconfig "$state/kubeconfig" admin "$pki/admin.crt" "$pki/admin.key"
  write_kubeconfig "$state/operator.kubeconfig" apitoken-operator "$pki/operator.crt" "$pki/operator.key"
  wait_apiserver

  local controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,root-ca-certificate-publisher-controller
  # What Pods on a node need: workloads, endpoints for Services, node health and its taints.
  ! node_enabled || controllers+=,deployment-controller,replicaset-controller,statefulset-controller,daemonset-controller,job-controller,endpoints-controller,endpointslice-controller,node-lifecycle-controller,pod-garbage-collector-controller,taint-eviction-controller
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$state/kubeconfig" --authentication-kubeconfig "$state/kubeconfig" \
    --authorization-kubeconfig "$state/kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$pki/kcm-generated" \
    --leader-elect=false --controllers "$controllers" --use-service-account-credentials=true \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --profiling=false
  wait_for "kube-controller-manager /healthz" 60 curl -skf "https://127.0.0.1:$kcm_port/healthz"
  wait_for "namespace default" 30 "$bin/kubectl" --kubeconfig "$state/kubeconfig" get namespace default
  if node_enabled; then
    node_containerd_up "$images"
    node_components_up "$bin"
    node_wait_ready "$bin/kubectl"
    log "node $NODE_NAME Ready at $NODE_IP; images $PAUSE_IMAGE, $TEST_IMAGE; containerd $(cat "$state/containerd.address")"
  fi
  log "up in $((SECONDS - start_time)) s: apiserver https://$host:$api_port, logs in $state/logs"
  print_env
}

port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("", int(sys.argv[1])))' "$1" 2>/dev/null
}

STOPPED=()
# Stops recorded processes together: SIGTERM to all, then SIGKILL to any still there after 10 s.
stop_recorded() {
  local name pid pids=()
  for name in "$@"; do
    [[ -f $state/$name.pid ]] || continue
    pid=$(cat "$state/$name.pid")
    pids+=("$pid")
    kill "$pid" 2>/dev/null || true
  done
  STOPPED+=("${pids[@]}")
  for pid in "${pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

cmd_down() {
  local pid ports=() left=() node_clean=0
  STOPPED=()
  [[ -f $state/ports ]] && read -r -a ports <<<"$(tr "\n" " " <"$state/ports")"
  stop_recorded operator
  node_down || node_clean=1
  stop_recorded kube-controller-manager kube-apiserver
  stop_recorded etcd
  # Prove it: none of our processes is left and every port we held is free again.
  for pid in "${STOPPED[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && left+=("pid $pid")
  done
  for port in "${ports[@]}"; do
    for _ in $(seq 50); do port_free "$port" && break; sleep 0.1; done
    port_free "$port" || left+=("port $port")
  done
  # Containers are gone with their cgroups (node_down checks); their shims must be gone too.
  pgrep -f -- "containerd-shim.* -address $state/" >/dev/null \
    && left+=("shims $(pgrep -f -- "containerd-shim.* -address $state/" | tr '\n' ' ')")
  ((node_clean == 0)) || left+=("node state (see above)")
  rm -rf "$state"
  ((${#left[@]} == 0)) || die "still held after stopping: ${left[*]}"
  log "down: ${#STOPPED[@]} processes stopped, ${#ports[@]} ports free$(node_enabled && echo ", host state as before")"
}

case ${1:-} in
  build) cmd_build ;;
  up) cmd_up ;;
  down) cmd_down ;;
  bin) bin_dir ;;
  env) print_env ;;
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  restart-etcd) cmd_restart_etcd ;;
  *) die "usage: $0 build|up|down|bin|env|stop-apiserver|start-apiserver|restart-etcd" ;;
esac
