# apitoken-operator: every target a newcomer needs. `make test` is the one CI runs.
SHELL := bash
CLUSTER := tests/cluster/cluster.sh
export KUBECONFIG ?= $(CURDIR)/.cluster/kubeconfig

.PHONY: test lint unit e2e mutants cluster-up cluster-down cluster-build crds run demo

## test: format and lint checks, unit tests, then e2e tests against a fresh control plane of
## its own (.cluster-test/, so a `make cluster-up` cluster is left alone), always stopped after
test: lint unit
	export CLUSTER_DIR=$(CURDIR)/.cluster-test KUBECONFIG=$(CURDIR)/.cluster-test/kubeconfig; \
	rc=0; { $(CLUSTER) up && $(MAKE) --no-print-directory e2e; } || rc=$$?; $(CLUSTER) down; exit $$rc

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings

unit:
	cargo test --locked --lib --bins

## mutants: mutation testing of the decision modules, unit tests only, in copies of the tree
## (target/mutants); fails below MUTANTS_MIN percent. Not part of `make test` (it takes most of an
## hour). One file: `make mutants MUTANTS_FILES=src/cron.rs`; a change: `make mutants
## MUTANTS_ARGS="--in-diff my.diff"`; see CONTRIBUTING.md. Every new pure module joins this list.
MUTANTS_FILES := src/plan.rs src/policy.rs src/token.rs src/cron.rs src/status.rs src/secret.rs src/report.rs
MUTANTS_MIN := 95
mutants:
	MUTANTS_FILES="$(MUTANTS_FILES)" MUTANTS_MIN=$(MUTANTS_MIN) tests/mutants.sh $(MUTANTS_ARGS)

## e2e: against the control plane that $$KUBECONFIG points at (make cluster-up)
e2e:
	cargo test --locked --test e2e -- --test-threads=$${E2E_THREADS:-4}

cluster-build:
	$(CLUSTER) build

cluster-up:
	$(CLUSTER) up

cluster-down:
	$(CLUSTER) down

## crds: regenerate crds/ from the Rust types (a unit test fails when they drift)
crds:
	cargo run --quiet --bin crdgen > crds/apitoken.yaml

## run: the operator against $$KUBECONFIG, CRD applied first
run: crds
	$$($(CLUSTER) bin)/kubectl apply --server-side -f crds/
	RUST_LOG=$${RUST_LOG:-info} cargo run --bin apitoken-operator -- run

## demo: one command to see it work (cluster, operator, examples, a rotation)
demo:
	examples/demo.sh
