# shellcheck shell=bash
# The local node: a network of its own, containerd, kubelet, kube-proxy and kube-scheduler.
# Sourced by cluster.sh (uses its $state, $here, $cache_root, log, die, start, wait_for, free_port).
#
# Everything lives under $state except what the kernel keeps globally (interfaces, iptables rules,
# cgroups, sysctls, mounts). hoststate.py records those before the node starts; `down` undoes every
# difference and fails if anything is left. Only one node cluster can run on a machine at a time.

NODE_NAME=apitoken-node
NODE_IP=10.77.0.1
NODE_BRIDGE=apitok0     # holds the node address (no ports; the kernel here has no dummy links)
POD_BRIDGE=apitok-cni0  # the CNI bridge the Pods hang off
POD_CIDR=10.244.0.0/24
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1    # the `kubernetes` Service
PAUSE_IMAGE=localhost/apitoken/pause:1
TEST_IMAGE=localhost/apitoken/busybox:1
NODE_PACKAGES=(containerd runc containernetworking-plugins iptables conntrack nftables busybox-static)

node_enabled() { [[ ${CLUSTER_NODE:-1} != 0 ]]; }

# Debian's containerd, runc, CNI plugins and netfilter tools, installed when missing.
node_packages() {
  local missing=() cmd
  for cmd in containerd containerd-shim-runc-v2 runc ctr iptables conntrack nft; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  [[ -x /usr/lib/cni/bridge && -x /bin/busybox ]] || missing+=(cni-or-busybox)
  ((${#missing[@]} == 0)) && return 0
  ((EUID == 0)) || die "the node needs root and: ${NODE_PACKAGES[*]} (or run with CLUSTER_NODE=0)"
  log "installing ${NODE_PACKAGES[*]} (missing: ${missing[*]})"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${NODE_PACKAGES[@]}" >/dev/null
}

node_preflight() {
  ((EUID == 0)) || die "the node needs root (or run with CLUSTER_NODE=0 for a control plane only)"
  if ip link show "$NODE_BRIDGE" >/dev/null 2>&1; then
    local owner
    owner=$(ip -o link show "$NODE_BRIDGE" | sed -n 's/.*alias \(.*\)$/\1/p')
    die "a node cluster already runs on this machine (state: ${owner:-unknown}); stop it with
  CLUSTER_DIR=${owner:-<its dir>} $0 down   (or use CLUSTER_NODE=0 for a control plane only)"
  fi
  node_packages
}

# The pause image and the test image (busybox + kubeget), built once and cached.
node_images() {
  local key dir tmp
  key=$(cat "$here"/images/*/*.go "$here/images/mkimage.py" /bin/busybox <(go version) | sha256sum | cut -c1-12)
  dir=$cache_root/images/$key
  if [[ ! -f $dir/busybox.tar ]]; then
    mkdir -p "$cache_root/images"
    tmp=$(mktemp -d "$cache_root/images/.build.XXXXXX")
    mkdir -p "$tmp/pause/bin" "$tmp/busybox/bin" "$tmp/busybox/etc" "$tmp/busybox/tmp"
    (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$tmp/pause/bin/pause" ./images/pause \
      && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$tmp/busybox/bin/kubeget" ./images/kubeget) \
      || { rm -rf "$tmp"; die "building the image programs failed"; }
    cp /bin/busybox "$tmp/busybox/bin/busybox"
    local applet
    for applet in $(/bin/busybox --list); do
      [[ -e $tmp/busybox/bin/$applet ]] || ln -s busybox "$tmp/busybox/bin/$applet"
    done
    printf 'root:x:0:0:root:/:/bin/sh\nnonroot:x:65532:65532:nonroot:/:/bin/sh\n' >"$tmp/busybox/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$tmp/busybox/etc/group"
    chmod 1777 "$tmp/busybox/tmp"
    python3 "$here/images/mkimage.py" "$tmp/pause" "$tmp/pause.tar" "$PAUSE_IMAGE" --entrypoint /bin/pause
    python3 "$here/images/mkimage.py" "$tmp/busybox" "$tmp/busybox.tar" "$TEST_IMAGE" --entrypoint /bin/sh
    rm -rf "$tmp/pause" "$tmp/busybox" "$dir"
    mv "$tmp" "$dir"
  fi
  echo "$dir"
}

node_pki() { # run inside $state/pki, with cluster.sh's sign()
  sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
  sign kubelet-serving "/CN=$NODE_NAME" "extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
  sign kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
  sign kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
  sign scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
}

# Extra kube-apiserver flags when a node runs: Node authorization, kubelet credentials.
node_apiserver_flags() {
  local pki=$state/pki
  echo --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged=true \
    --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key" \
    --kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP
}

node_network_up() {
  hoststate snapshot
  ip link add "$NODE_BRIDGE" type bridge
  ip link set "$NODE_BRIDGE" alias "$state"
  ip addr add "$NODE_IP/32" dev "$NODE_BRIDGE"
  ip link set "$NODE_BRIDGE" up
  sysctl -qw net.ipv4.ip_forward=1
}

node_containerd_up() { # images dir
  local c=$state/containerd
  mkdir -p "$c" "$state/cni/net.d"
  cat >"$state/cni/net.d/10-apitoken.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "apitoken", "plugins": [
  {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$state/cni/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}
]}
EOF
  cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$c/containerd.sock"
[ttrpc]
  address = "$c/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$state/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
EOF
  start containerd containerd --config "$c/config.toml"
  wait_for containerd 30 ctr --address "$c/containerd.sock" version
  local tar
  for tar in "$1"/*.tar; do
    ctr --address "$c/containerd.sock" -n k8s.io images import --snapshotter overlayfs "$tar" >/dev/null \
      || die "importing $tar failed"
  done
  echo "$c/containerd.sock" >"$state/containerd.address"
}

node_components_up() { # bin dir
  local bin=$1 pki=$state/pki kubelet_port healthz_port proxy_healthz proxy_metrics sched_port
  kubelet_port=$(free_port) healthz_port=$(free_port) proxy_healthz=$(free_port)
  proxy_metrics=$(free_port) sched_port=$(free_port)
  echo " $kubelet_port $healthz_port $proxy_healthz $proxy_metrics $sched_port" >>"$state/ports"
  write_kubeconfig "$state/kubelet.kubeconfig" "system:node:$NODE_NAME" "$pki/kubelet.crt" "$pki/kubelet.key"
  write_kubeconfig "$state/kube-proxy.kubeconfig" system:kube-proxy "$pki/kube-proxy.crt" "$pki/kube-proxy.key"
  write_kubeconfig "$state/scheduler.kubeconfig" system:kube-scheduler "$pki/scheduler.crt" "$pki/scheduler.key"

  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port "$sched_port" --profiling=false

  local k=$state/kubelet
  mkdir -p "$k/root" "$k/pod-logs" "$k/volume-plugins"
  cat >"$k/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$state/containerd/containerd.sock
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
# Mounted Secrets follow API changes within ~10 s instead of ~1 min.
syncFrequency: 10s
podLogsDir: $k/pod-logs
volumePluginDir: $k/volume-plugins
staticPodPath: ""
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOF
  start kubelet "$bin/kubelet" --config "$k/config.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
    --root-dir "$k/root" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --v=1

  cat >"$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$proxy_healthz
metricsBindAddress: 127.0.0.1:$proxy_metrics
nodePortAddresses: ["$NODE_IP/32"]
iptables: {localhostNodePorts: false, syncPeriod: 30s, minSyncPeriod: 0s}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  start kube-proxy "$bin/kube-proxy" --config "$state/kube-proxy.yaml"
}

node_wait_ready() { # kubectl
  local kubectl=$1
  node_ready() {
    [[ $("$kubectl" --kubeconfig "$state/kubeconfig" get node "$NODE_NAME" \
      -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status} {.spec.taints}' 2>/dev/null) == "True " ]]
  }
  wait_for "node $NODE_NAME Ready and schedulable" 90 node_ready
  wait_for "ServiceAccount default/default" 30 "$kubectl" --kubeconfig "$state/kubeconfig" get serviceaccount default
}

hoststate() { python3 "$here/hoststate.py" "$1" "$state/host.json"; }

# Stops the node's processes and containers and undoes every host change; returns 1 if anything
# is left. The control plane is stopped by the caller.
node_down() {
  [[ -f $state/host.json ]] || return 0
  local left=0
  stop_recorded kube-proxy kubelet kube-scheduler
  # Containers: everything in the cgroups kubelet made, and the shims of our containerd.
  hoststate restore
  if [[ -f $state/containerd.address ]]; then
    pkill -9 -f -- "-address $(cat "$state/containerd.address")" 2>/dev/null || true
  fi
  stop_recorded containerd
  hoststate restore
  # Anything still mounted below the cluster directory (rootfs, shm, netns, Secret volumes).
  local m
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v s="$state/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo | sort -r)
  hoststate check || left=1
  if awk -v s="$state/" 'index($5, s) == 1' /proc/self/mountinfo | grep -q .; then
    log "left behind: mounts below $state"
    left=1
  fi
  return $left
}
