#!/usr/bin/env bash
# `make chart-check`: the Helm chart, offline, before any cluster starts.
#   - charts/apitoken-operator/files/crds is the same as crds/ (`make crds` writes both)
#   - helm lint --strict, and helm template, for the default values and each ci/*-values.yaml
#   - the rendered CRDs carry exactly the spec in crds/
#   - kubeconform: every rendered object against the Kubernetes 1.34 schemas (kubernetes-validate
#     wheel; the ServiceMonitor is prometheus-operator's kind and skipped), and examples/*.yaml
#     against our own CRD schema
#   - and that these checks do catch mistakes: a misspelt value, an unknown Deployment field and
#     a wrong example field must each fail.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
chart=$repo/charts/apitoken-operator
out=$repo/target/chart
K8S_VERSION=1.34.0

log() { printf 'chart-check: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

bin=$("$repo/tests/tools/tools.sh" bin)
schemas=$("$repo/tests/tools/tools.sh" schemas)
helm=$bin/helm
rm -rf "$out"
mkdir -p "$out/crd-schemas"

diff -r "$repo/crds" "$chart/files/crds" >&2 ||
  die "charts/apitoken-operator/files/crds differs from crds/: run \`make crds\`"

python3 "$(dirname "$0")/crd_schema.py" "$out/crd-schemas" "$repo"/crds/*.yaml
kubeconform() {
  "$bin/kubeconform" -strict -summary -kubernetes-version "$K8S_VERSION" \
    -schema-location "$schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -schema-location "$out/crd-schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
    -skip ServiceMonitor "$@"
}

cases=(default)
for f in "$chart"/ci/*-values.yaml; do cases+=("$(basename "$f" -values.yaml)"); done
for case in "${cases[@]}"; do
  args=()
  [[ $case == default ]] || args=(-f "$chart/ci/$case-values.yaml")
  "$helm" lint --strict --kube-version "$K8S_VERSION" "$chart" "${args[@]}" >"$out/$case.lint" 2>&1 ||
    { cat "$out/$case.lint" >&2; die "helm lint ($case)"; }
  "$helm" template apitoken-operator "$chart" --namespace apitoken-system \
    --kube-version "$K8S_VERSION" "${args[@]}" >"$out/$case.yaml" || die "helm template ($case)"
  kubeconform "$out/$case.yaml" >&2 || die "kubeconform ($case)"
  python3 - "$out/$case.yaml" "$repo"/crds/*.yaml <<'PY' || die "rendered CRDs ($case)"
import sys, yaml
rendered = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "CustomResourceDefinition"]
wanted = [d for p in sys.argv[2:] for d in yaml.safe_load_all(open(p)) if d]
key = lambda d: d["metadata"]["name"]
assert sorted(map(key, rendered)) == sorted(map(key, wanted)), "CRD names differ"
for r in rendered:
    w = next(d for d in wanted if key(d) == key(r))
    assert r["spec"] == w["spec"], f"{key(r)}: rendered spec differs from crds/"
PY
  log "$case: lint, template, $(grep -c '^kind:' "$out/$case.yaml") objects valid"
done

kubeconform "$repo"/examples/*.yaml >&2 || die "kubeconform examples/"

# The checks above must be able to fail.
"$helm" lint --strict "$chart" --set watchNamespace=x >/dev/null 2>&1 &&
  die "a misspelt value (watchNamespace) passed helm lint"
"$helm" lint --strict "$chart" --set logFormat=xml >/dev/null 2>&1 &&
  die "logFormat=xml passed helm lint"
sed 's/^  replicas: /  replica: /' "$out/default.yaml" >"$out/broken.yaml"
kubeconform "$out/broken.yaml" >/dev/null 2>&1 && die "an unknown Deployment field passed kubeconform"
sed 's/^    length: 40/    length: forty/' "$repo/examples/key-auth-gateway.yaml" >"$out/broken-example.yaml"
grep -q 'length: forty' "$out/broken-example.yaml" || die "broken example not made"
kubeconform "$out/broken-example.yaml" >/dev/null 2>&1 && die "a wrong ApiToken field passed kubeconform"
rm "$out/broken.yaml" "$out/broken-example.yaml"
log "ok: rendered manifests in ${out#"$repo"/}/"
