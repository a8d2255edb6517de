#!/usr/bin/env bash
# `make image-check`: proves the image `make image` saved runs as its config says, without a node:
# unpacks target/image/apitoken-operator.tar and runs its entrypoint with runc as UID/GID 65532,
# a read-only root filesystem, no capabilities and no_new_privs:
#   - `--version` and `crd` (the CRDs must equal crds/apitoken.yaml and crds/apitokenverifier.yaml);
#   - with $KUBECONFIG (a running cluster), a request to the API server over TLS (rustls, the
#     kubeconfig's CA) that must come back as the server's own "not found", and the controller
#     (`run`) started detached: /proc shows uid/gid 65532, no capabilities, no_new_privs and a
#     read-only root mount, and SIGTERM stops it.
# Needs root (runc).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tarball=$repo/target/image/apitoken-operator.tar
work=$repo/target/image/check

log() { printf 'image-check: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[[ -f $tarball ]] || die "no $tarball: run make image"
rm -rf "$work"
mkdir -p "$work/bundle"

# Unpack the layers in order and check the config: entrypoint, user, tag.
python3 - "$tarball" "$work" <<'PY'
import json, sys, tarfile
tarball, work = sys.argv[1:]
with tarfile.open(tarball) as t:
    manifest = json.load(t.extractfile("manifest.json"))[0]
    config = json.load(t.extractfile(manifest["Config"]))["config"]
    for layer in manifest["Layers"]:
        with tarfile.open(fileobj=t.extractfile(layer), mode="r:*") as l:
            # Our own image: trusted, extracted as is (modes and owners included).
            trusted = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
            l.extractall(f"{work}/bundle/rootfs", **trusted)
tags = manifest.get("RepoTags") or []
assert any(t.endswith("apitoken-operator:dev") for t in tags), tags
assert config["Entrypoint"] == ["/usr/local/bin/apitoken-operator"], config
assert config["Cmd"] == ["run"], config
assert config["User"] == "65532:65532", config
json.dump(config, open(f"{work}/config.json", "w"))
PY
grep -q '^nonroot:x:65532:65532:' "$work/bundle/rootfs/etc/passwd" || die "no nonroot user"
[[ -s $work/bundle/rootfs/etc/ssl/certs/ca-certificates.crt ]] || die "no CA certificates"

# A runc bundle: the image's root read-only, its user, nothing else (host network: the API server
# listens on loopback).
bundle() { # args...
  python3 - "$work" "$@" <<'PY'
import json, os, subprocess, sys
work, args = sys.argv[1], sys.argv[2:]
image = json.load(open(f"{work}/config.json"))
if os.path.exists(f"{work}/bundle/config.json"):
    os.remove(f"{work}/bundle/config.json")
subprocess.run(["runc", "spec", "--bundle", f"{work}/bundle"], check=True)
spec = json.load(open(f"{work}/bundle/config.json"))
uid, gid = (int(x) for x in image["User"].split(":"))
spec["process"].update(
    terminal=False,
    args=image["Entrypoint"] + args,
    user={"uid": uid, "gid": gid},
    env=image.get("Env", []) + ["KUBECONFIG=/etc/apitoken/kubeconfig"],
    cwd="/",
    noNewPrivileges=True,
    capabilities={k: [] for k in ("bounding", "effective", "inheritable", "permitted", "ambient")},
)
spec["root"] = {"path": "rootfs", "readonly": True}
spec["hostname"] = "apitoken-image-check"
spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "network"]
spec["mounts"].append({"destination": "/etc/apitoken", "type": "bind",
                       "source": f"{work}/secrets", "options": ["rbind", "ro"]})
json.dump(spec, open(f"{work}/bundle/config.json", "w"), indent=1)
PY
}
run() { # name args...
  local name=$1
  shift
  bundle "$@"
  runc run --bundle "$work/bundle" "apitoken-image-check-$$-$name"
}
mkdir -p "$work/secrets"
chmod 0755 "$work/secrets"

version=$(run version --version) || die "--version did not run"
log "runs as 65532 on a read-only root: $version"
[[ $version == apitoken-operator\ * ]] || die "unexpected --version output: $version"
run crd crd >"$work/crd.yaml" || die "crd did not run"
# `crd` prints both CRDs as one YAML stream, in this order.
{ cat "$repo/crds/apitoken.yaml"; echo ---; cat "$repo/crds/apitokenverifier.yaml"; } >"$work/crds.yaml"
cmp -s "$work/crd.yaml" "$work/crds.yaml" || die "the image's CRDs differ from crds/"

if [[ -n ${KUBECONFIG:-} && -f $KUBECONFIG ]]; then
  # The CRD, as the chart installs it with the operator; a copy of the kubeconfig the
  # unprivileged user can read, removed at the end.
  "$("$repo/tests/cluster/cluster.sh" bin)/kubectl" apply --server-side --field-manager=image-check \
    -f "$repo/crds/" >/dev/null
  install -m 0644 "$KUBECONFIG" "$work/secrets/kubeconfig"
  trap 'rm -f "$work/secrets/kubeconfig"' EXIT
  set +e
  out=$(run tls rotate image-check-no-such-token -n default 2>&1)
  rc=$?
  set -e
  ((rc != 0)) || die "rotate of a missing ApiToken succeeded"
  grep -q 'not found' <<<"$out" || die "no answer from the API server over TLS: $out"
  log "TLS to the API server works: it answered 404 for an ApiToken that does not exist"

  # The controller itself, detached; what the kernel says about the running process.
  id=apitoken-image-check-$$-run
  bundle run --namespace image-check
  runc run --detach --bundle "$work/bundle" "$id" >"$work/run.log" 2>&1 ||
    die "runc run --detach: $(cat "$work/run.log")"
  trap 'runc delete --force "$id" >/dev/null 2>&1 || true; rm -f "$work/secrets/kubeconfig"' EXIT
  pid=$(runc state "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
  sleep 1
  [[ -d /proc/$pid ]] || die "the operator exited: $(cat "$work/run.log")"
  status=$(cat "/proc/$pid/status")
  grep -qE '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || die "not uid 65532: $(grep Uid <<<"$status")"
  grep -qE '^Gid:\s+65532\s' <<<"$status" || die "not gid 65532"
  grep -qE '^CapEff:\s+0+$' <<<"$status" || die "has capabilities: $(grep CapEff <<<"$status")"
  grep -qE '^NoNewPrivs:\s+1$' <<<"$status" || die "no_new_privs is off"
  awk '$5 == "/" { print $6 }' "/proc/$pid/mountinfo" | grep -q '^ro' || die "the root filesystem is writable"
  runc kill "$id" TERM
  for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  [[ ! -d /proc/$pid ]] || die "the operator ignored SIGTERM"
  log "the controller ran as uid/gid 65532, no capabilities, no_new_privs, read-only root; SIGTERM stopped it"
fi
rm -rf "$work/bundle/rootfs"
log ok
