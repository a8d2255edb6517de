//! apitoken-operator: API tokens as Kubernetes custom resources.
//!
//! Pure modules ([`token`], [`policy`], [`cron`], [`plan`], [`secret`], [`status`]) decide and
//! build; [`controller`] talks to Kubernetes; `main.rs` only parses flags and starts things.
#![forbid(unsafe_code)]

pub mod adopt;
pub mod api;
pub mod app;
pub mod controller;
pub mod cron;
pub mod deletion;
pub mod error;
pub mod failpoint;
pub mod feed;
pub mod fields;
pub mod freshness;
#[cfg(test)]
mod fuzz;
pub mod health;
pub mod leader;
pub mod list_turns;
pub mod metrics;
pub mod namespaces;
pub mod naming;
pub mod packed;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod proxy;
pub mod reconcile;
pub mod release;
pub mod report;
pub mod restore;
pub mod rollout;
pub mod rotate;
pub mod secret;
pub mod secret_cache;
pub mod status;
pub mod teardown;
pub mod token;
pub mod verifier;
pub mod verify;

use kube::CustomResourceExt;

/// The ApiToken CustomResourceDefinition as YAML, as committed in `crds/apitoken.yaml`.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&api::ApiToken::crd()).expect("the CRD serializes")
}

/// The ApiTokenVerifier CustomResourceDefinition, as committed in `crds/apitokenverifier.yaml`.
pub fn verifier_crd_yaml() -> String {
    serde_yaml::to_string(&verifier::api::ApiTokenVerifier::crd()).expect("the CRD serializes")
}

#[cfg(test)]
mod tests {
    /// crds/apitoken.yaml is generated from the types; regenerate with `make crds`.
    #[test]
    fn committed_crd_matches_the_types() {
        let committed = include_str!("../crds/apitoken.yaml");
        assert!(
            committed == super::crd_yaml(),
            "crds/apitoken.yaml is stale: run `make crds` and commit it"
        );
    }

    #[test]
    fn committed_verifier_crd_matches_the_types() {
        let committed = include_str!("../crds/apitokenverifier.yaml");
        assert!(
            committed == super::verifier_crd_yaml(),
            "crds/apitokenverifier.yaml is stale: run `make crds` and commit it"
        );
    }

    /// The Helm chart installs its own copy of crds/; `make crds` writes both.
    #[test]
    fn chart_crds_are_the_committed_crds() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let files = |dir: &str| -> Vec<(String, String)> {
            let mut found: Vec<_> = std::fs::read_dir(root.join(dir))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
                .map(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    (name, std::fs::read_to_string(&p).unwrap())
                })
                .collect();
            found.sort();
            found
        };
        let crds = files("crds");
        assert!(!crds.is_empty());
        assert!(
            crds == files("charts/apitoken-operator/files/crds"),
            "charts/apitoken-operator/files/crds differs from crds/: run `make crds` and commit it"
        );
    }
}
