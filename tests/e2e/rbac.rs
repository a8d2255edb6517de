//! The operator's own identity (user `apitoken-operator`, `operator.kubeconfig`, bound to
//! nothing by the cluster) and namespaced Roles for it, as a chart with `watchNamespaces` grants.

use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use apitoken_operator::api::ApiToken;

use crate::harness::{TIMEOUT, TestNs, eventually};

/// The kubeconfig of the operator's identity, next to the admin one.
pub fn operator_kubeconfig() -> String {
    let admin = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let path = std::path::Path::new(&admin).with_file_name("operator.kubeconfig");
    path.to_str().unwrap().to_owned()
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.into()]),
        resources: Some(resources.iter().map(|r| r.to_string()).collect()),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    }
}

/// Exactly what the operator uses in a watched namespace (the list in briefs/interfaces.md);
/// `secret_verbs` lets a test withhold one.
pub fn operator_rules(secret_verbs: &[&str]) -> Vec<PolicyRule> {
    vec![
        rule(
            "apitoken.dev",
            &["apitokens"],
            &["get", "list", "watch", "patch"],
        ),
        rule("apitoken.dev", &["apitokens/status"], &["patch"]),
        rule(
            "apitoken.dev",
            &["apitokenverifiers"],
            &["get", "list", "watch"],
        ),
        rule("apitoken.dev", &["apitokenverifiers/status"], &["patch"]),
        rule("", &["secrets"], secret_verbs),
        rule("events.k8s.io", &["events"], &["create", "patch"]),
        // Its own namespace, read before re-creating a lost Secret (as the chart grants).
        rule("", &["namespaces"], &["get"]),
    ]
}

pub const ALL_SECRET_VERBS: &[&str] = &["get", "list", "watch", "create", "patch", "delete"];

/// The Lease rules for leader election in the Lease's namespace.
pub fn lease_rules() -> Vec<PolicyRule> {
    vec![rule(
        "coordination.k8s.io",
        &["leases"],
        &["get", "list", "watch", "create", "patch"],
    )]
}

impl TestNs {
    /// Binds `rules` to the operator's identity in this namespace and waits until they apply.
    pub async fn grant_operator(&self, rules: Vec<PolicyRule>) {
        self.bind_operator(rules).await;
        let kubeconfig = Kubeconfig::read_from(operator_kubeconfig()).unwrap();
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
        let operator: Api<ApiToken> =
            Api::namespaced(Client::try_from(config).unwrap(), &self.name);
        eventually("the Role to take effect", TIMEOUT, || async {
            operator.list(&Default::default()).await.ok()
        })
        .await;
    }

    /// Binds `rules` to the operator's identity in this namespace (Role and RoleBinding
    /// `apitoken-operator`), without waiting.
    pub async fn bind_operator(&self, rules: Vec<PolicyRule>) {
        let meta = ObjectMeta {
            name: Some("apitoken-operator".into()),
            ..Default::default()
        };
        let role = Role {
            metadata: meta.clone(),
            rules: Some(rules),
        };
        let binding = RoleBinding {
            metadata: meta,
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "Role".into(),
                name: "apitoken-operator".into(),
            },
            subjects: Some(vec![Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "User".into(),
                name: "apitoken-operator".into(),
                ..Default::default()
            }]),
        };
        let apply = PatchParams::apply("e2e").force();
        self.api::<Role>()
            .patch("apitoken-operator", &apply, &Patch::Apply(&role))
            .await
            .expect("apply Role");
        self.api::<RoleBinding>()
            .patch("apitoken-operator", &apply, &Patch::Apply(&binding))
            .await
            .expect("apply RoleBinding");
    }
}
