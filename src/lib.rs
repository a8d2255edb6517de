//! apitoken-operator: API tokens as Kubernetes custom resources.
//!
//! Pure modules ([`token`], [`policy`], [`cron`], [`plan`], [`secret`], [`status`]) decide and
//! build; [`controller`] talks to Kubernetes; `main.rs` only parses flags and starts things.
#![forbid(unsafe_code)]

pub mod api;
pub mod controller;
pub mod cron;
pub mod error;
pub mod failpoint;
#[cfg(test)]
mod fuzz;
pub mod plan;
pub mod policy;
pub mod reconcile;
pub mod report;
pub mod rotate;
pub mod secret;
pub mod status;
pub mod token;

use kube::CustomResourceExt;

/// The CustomResourceDefinition as YAML, as committed in `crds/apitoken.yaml`.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&api::ApiToken::crd()).expect("the CRD serializes")
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
}
