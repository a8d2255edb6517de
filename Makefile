# apitoken-operator: every target a newcomer needs. `make test` is the one CI runs.
SHELL := bash
CLUSTER := tests/cluster/cluster.sh
export KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig

.PHONY: bench test test-faults faults deny lint unit chart-check chart-uninstall-check e2e mutants cluster-up cluster-down cluster-build crds run demo image image-import image-check

## test: format and lint checks, unit tests, the chart checks and the image, then a fresh cluster of
## its own (.cluster-test/, with a node): the image imported into the node and run, the e2e tests,
## always stopped after; `down` proves nothing is left on the host, and a second `up`/`down` proves
## the cluster starts again after it. CLUSTER_NODE=0: control plane only (node tests skip).
test: lint unit chart-check image
	export CLUSTER_DIR=$(CURDIR)/.cluster-test KUBECONFIG=$(CURDIR)/.cluster-test/kubeconfig; \
	rc=0; { $(CLUSTER) up && eval "$$($(CLUSTER) env)" && $(MAKE) --no-print-directory image-import image-check e2e; } || rc=$$?; \
	$(CLUSTER) down || rc=$$?; \
	[[ $$rc != 0 ]] || { $(CLUSTER) up >/dev/null && $(CLUSTER) down; } || rc=$$?; \
	[[ $$rc != 0 ]] || $(MAKE) --no-print-directory chart-uninstall-check || rc=$$?; exit $$rc

## chart-uninstall-check: helm install/uninstall on a control plane of its own without our CRDs
## (tests/chart/uninstall.sh): crds.keep=false removes the CRDs, crds.keep=true keeps them.
chart-uninstall-check:
	tests/chart/uninstall.sh

## bench: the operator against the API server's own floor (BENCHMARKS.md), on a control plane of
## its own (.cluster-bench/), always stopped after: `make bench N=10000 SCENARIO=converge,restart`.
## Results in target/bench/results.{md,json}; BENCH_ARGS passes more (e.g. --idle-secs 60).
N ?= 1000
SCENARIO ?= all
bench:
	cargo build --locked --release -p apitoken-operator -p apitoken-bench --bin apitoken-operator --bin apitoken-bench
	export CLUSTER_DIR=$(CURDIR)/.cluster-bench KUBECONFIG=$(CURDIR)/.cluster-bench/kubeconfig CLUSTER_NODE=0; \
	bin=$${CARGO_TARGET_DIR:-target}/release; \
	rc=0; { $(CLUSTER) up && $$bin/apitoken-bench --n $(N) --scenarios $(SCENARIO) \
	  --operator $$bin/apitoken-operator --out target/bench $(BENCH_ARGS); } || rc=$$?; \
	$(CLUSTER) down || rc=$$?; exit $$rc

## test-faults: the fault suite (tests/faults: crashes, API server and etcd outages, conflicts,
## downtime) against a fresh control plane of its own (.cluster-faults/), always stopped after.
## The outages stop parts of the cluster, so its tests run one at a time.
test-faults:
	export CLUSTER_DIR=$(CURDIR)/.cluster-faults KUBECONFIG=$(CURDIR)/.cluster-faults/kubeconfig CLUSTER_NODE=0; \
	rc=0; { $(CLUSTER) up && $(MAKE) --no-print-directory faults; } || rc=$$?; $(CLUSTER) down || rc=$$?; exit $$rc

## faults: the fault suite against the control plane that $$KUBECONFIG points at
faults:
	E2E_RUST_LOG=$${E2E_RUST_LOG:-trace} cargo test --locked --features failpoints --test faults -- --test-threads=1
	cargo test --locked --features failpoints --test faults leaks:: -- --ignored

## deny: supply-chain checks that need no network (deny.toml); advisories: see README
deny:
	cargo fetch --locked   # every platform's crates (e.g. notify's kqueue), so the check runs offline
	cargo deny --offline check bans licenses sources

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo clippy --all-targets --locked --features failpoints -- -D warnings

## unit: unit tests and the Argo CD health check's tests (no cluster)
unit:
	cargo test --locked --lib --bins --test argocd
	cargo test --locked -p apitoken-verify

## chart-check: helm lint/template and offline schema validation of the chart (tests/chart/check.sh)
chart-check:
	tests/chart/check.sh

## mutants: mutation testing of the decision modules, unit tests only, in copies of the tree
## (target/mutants); fails below MUTANTS_MIN percent. Not part of `make test` (it takes most of an
## hour). One file: `make mutants MUTANTS_FILES=src/cron.rs`; a change: `make mutants
## MUTANTS_ARGS="--in-diff my.diff"`; see CONTRIBUTING.md. Every new pure module joins this list.
MUTANTS_FILES := src/plan.rs src/policy.rs src/policy/format.rs src/token.rs src/cron.rs src/status.rs \
	src/secret.rs src/report.rs src/adopt.rs src/restore.rs src/teardown.rs src/rollout.rs \
	src/release/stop.rs src/verifier/keys.rs src/deletion.rs src/freshness.rs src/namespaces.rs \
	src/fields.rs src/feed.rs src/naming.rs src/list_turns.rs src/packed.rs \
	crates/apitoken-verify/src/keyset.rs crates/apitoken-verify/src/checksum.rs \
	crates/apitoken-verify/src/document.rs
MUTANTS_MIN := 95
mutants:
	MUTANTS_FILES="$(MUTANTS_FILES)" MUTANTS_MIN=$(MUTANTS_MIN) tests/mutants.sh $(MUTANTS_ARGS)

## e2e: against the control plane that $$KUBECONFIG points at (make cluster-up)
## The leak check (tests/e2e/leaks.rs) runs last, over everything the suite saw; the operator
## logs at trace level so it covers every line the operator can write.
e2e:
	E2E_RUST_LOG=$${E2E_RUST_LOG:-trace} cargo test --locked --test e2e -- --test-threads=$${E2E_THREADS:-4}
	cargo test --locked --test e2e leaks:: -- --ignored   # before the CRD goes: it lists ApiTokens
	cargo test --locked --test crd_removal

cluster-build:
	$(CLUSTER) build

cluster-up:
	$(CLUSTER) up

cluster-down:
	$(CLUSTER) down

## crds: regenerate crds/ from the Rust types, and the chart's copy (unit tests fail on drift)
crds:
	cargo run --quiet --bin crdgen > crds/apitoken.yaml
	cargo run --quiet --bin crdgen verifier > crds/apitokenverifier.yaml
	rm -f charts/apitoken-operator/files/crds/*.yaml
	cp crds/*.yaml charts/apitoken-operator/files/crds/

## run: the operator against $$KUBECONFIG, CRD applied first
run: crds
	$$($(CLUSTER) bin)/kubectl apply --server-side -f crds/
	RUST_LOG=$${RUST_LOG:-info} cargo run --bin apitoken-operator -- run

## image: the operator's image without Docker (image/build.sh): target/image/apitoken-operator.tar,
## tagged apitoken-operator:dev, imported into containerd when CONTAINERD_ADDRESS is set
image:
	image/build.sh

## image-import: the image built by `make image` into the node's containerd ($$CONTAINERD_ADDRESS,
## printed by `make cluster-up`); a no-op without a node
image-import:
	[[ -z $${CONTAINERD_ADDRESS:-} ]] || ctr --address "$$CONTAINERD_ADDRESS" -n k8s.io images import target/image/apitoken-operator.tar

## image-check: run the image's entrypoint as 65532 on a read-only root with runc (needs root)
image-check:
	image/check.sh

## demo: one command to see it work (cluster, image, helm install, examples, a Pod, a rotation)
demo:
	examples/demo.sh
