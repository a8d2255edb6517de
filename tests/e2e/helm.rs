//! The chart installed for real on the node, the way users install: `helm install` with the image
//! `make image` built and imported, two replicas under the restricted Pod Security level, the
//! core lifecycle, metrics scraped from the Pod, a leader handover with rotations due, and
//! `helm uninstall`.

use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::harness::*;
use crate::node::without_node;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/apitoken-operator");
const LOCAL_VALUES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/apitoken-operator/ci/local-values.yaml"
);
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

fn helm() -> Command {
    let tools = output_ok(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/tools.sh")).arg("bin"),
    );
    Command::new(format!("{}/helm", tools.trim()))
}

/// The operator Pods of the release, Ready or not.
async fn operator_pods(ns: &TestNs) -> Vec<Pod> {
    let pods: Api<Pod> = ns.api();
    pods.list(&ListParams::default().labels("app.kubernetes.io/name=apitoken-operator"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The Lease holder's Pod name.
async fn leader(ns: &TestNs, lease: &str) -> Option<String> {
    let leases: Api<Lease> = ns.api();
    let holder = leases.get_opt(lease).await.ok()??.spec?.holder_identity?;
    // The holder identity starts with the Pod name.
    operator_pods(ns)
        .await
        .into_iter()
        .map(|p| p.name_any())
        .find(|name| holder.starts_with(name.as_str()))
}

#[tokio::test]
async fn helm_install_runs_the_operator_on_the_node_with_leader_handover_and_uninstall() {
    if without_node() {
        return;
    }
    // The release and the tokens share one namespace, restricted, watched alone (the shared test
    // cluster has other tests' tokens that this operator must not touch).
    let ns = TestNs::new("e2e-helm").await;
    let label =
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(ns.client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let release = "apitok";
    output_ok(helm().args([
        "install",
        release,
        CHART,
        "--namespace",
        &ns.name,
        "-f",
        LOCAL_VALUES,
        "--set",
        "replicaCount=2",
        "--set",
        &format!("watchNamespaces[0]={}", ns.name),
        // The shared test cluster already serves the CRDs (other tests install them); the
        // chart's CRD templates and `crds.keep` are checked by `make chart-check`.
        "--set",
        "crds.install=false",
    ]));
    let deployment: Deployment = ns.api().get("apitok-apitoken-operator").await.unwrap();
    let sa = deployment
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.service_account_name)
        .unwrap();
    assert_eq!(
        sa, "apitok-apitoken-operator",
        "runs as the chart's ServiceAccount"
    );
    let started = Instant::now();
    eventually("two Ready operator Pods", INSTALL_TIMEOUT, || async {
        let pods = operator_pods(&ns).await;
        (pods.len() == 2 && pods.iter().all(is_ready)).then_some(())
    })
    .await;
    eprintln!(
        "helm install: 2 Pods Ready in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let lease = "apitok-apitoken-operator";
    let first_leader = eventually("a leader", TIMEOUT, || leader(&ns, lease)).await;

    // Core lifecycle through the installed operator.
    ns.apply_yaml("metadata: {name: life}\nspec: {}\n").await;
    let t = wait_status(&ns, "life", "issued", TIMEOUT, |t| revision(t) == 1).await;
    assert_eq!(ready(&t), Some(("True", "Issued")));
    let patch = json!({"metadata": {"annotations": {"apitoken.dev/rotate": "helm"}}});
    ns.tokens()
        .patch("life", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_status(&ns, "life", "rotated", TIMEOUT, |t| revision(t) == 2).await;
    let value = secret_value(&ns.secrets().get("life").await.unwrap(), "token").unwrap();

    // Metrics from the leader Pod, through the API server's Pod proxy: the token is there by
    // name, its value is not.
    let metrics = output_ok(kubectl().args([
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/{}/pods/{first_leader}:8080/proxy/metrics",
            ns.name
        ),
    ]));
    let ready_line = metrics
        .lines()
        .find(|l| l.starts_with("apitoken_ready{") && l.contains("name=\"life\""));
    assert!(
        ready_line.is_some_and(|l| l.contains(&ns.name) && l.ends_with(" 1")),
        "apitoken_ready for the token in:\n{metrics}"
    );
    assert!(!metrics.contains(&value[..16]), "a token value in /metrics");
    ns.tokens()
        .delete("life", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&ns.secrets(), "life", TIMEOUT).await;

    // Kept on uninstall, to see the hook honour Retain.
    ns.apply_yaml("metadata: {name: kept}\nspec: {deletionPolicy: Retain}\n")
        .await;
    wait_status(&ns, "kept", "issued", TIMEOUT, |t| revision(t) == 1).await;

    // Rotations due while the leader Pod is deleted: every token rotates exactly once.
    for i in 0..3 {
        ns.apply_yaml(&format!(
            "metadata: {{name: due-{i}}}\nspec: {{rotation: {{every: 1m}}}}\n"
        ))
        .await;
    }
    let mut due = Vec::new();
    for i in 0..3 {
        let t = wait_status(&ns, &format!("due-{i}"), "issued", TIMEOUT, |t| {
            revision(t) == 1
        })
        .await;
        due.push(t.status.unwrap().next_rotation_at.unwrap().0);
    }
    let first_due = *due.iter().min().unwrap();
    let wait = (first_due.as_second() - jiff::Timestamp::now().as_second() - 3).max(0);
    tokio::time::sleep(Duration::from_secs(wait as u64)).await;
    let pods: Api<Pod> = ns.api();
    pods.delete(&first_leader, &DeleteParams::default())
        .await
        .unwrap();
    let handover = Instant::now();
    let new_leader = eventually("a new leader", Duration::from_secs(30), || async {
        leader(&ns, lease).await.filter(|l| *l != first_leader)
    })
    .await;
    eprintln!(
        "leader Pod deleted: {new_leader} leads after {:.1} s",
        handover.elapsed().as_secs_f64()
    );
    for (i, due_at) in due.iter().enumerate() {
        let name = format!("due-{i}");
        let t = wait_status(&ns, &name, "rotated once", Duration::from_secs(60), |t| {
            revision(t) == 2
        })
        .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let t = ns.tokens().get(&t.name_any()).await.unwrap();
        let status = t.status.unwrap();
        let revisions: Vec<i64> = status.history.iter().map(|h| h.revision).collect();
        assert_eq!(revisions, [2, 1], "{name}: rotated exactly once");
        let issued = status.issued_at.unwrap().0;
        assert!(issued >= *due_at, "{name}: not before it was due");
    }

    // helm uninstall: the pre-delete hook stops the operator and releases every finalizer;
    // ApiTokens and Secrets stay, the CRDs too, the operator's Pods go.
    let uninstalled = Instant::now();
    output_ok(helm().args(["uninstall", release, "--namespace", &ns.name, "--wait"]));
    eprintln!(
        "helm uninstall with the pre-delete hook: {:.1} s",
        uninstalled.elapsed().as_secs_f64()
    );
    assert!(ns.secrets().get_opt("due-0").await.unwrap().is_some());
    let tokens = ns.tokens().list(&ListParams::default()).await.unwrap();
    assert_eq!(tokens.items.len(), 4, "due-0..2 and kept stay");
    for t in &tokens {
        assert!(
            t.finalizers().is_empty(),
            "{}: finalizer released by the hook",
            t.name_any()
        );
    }
    let kept = ns.secrets().get("kept").await.unwrap();
    assert!(
        kept.owner_references().is_empty(),
        "Retain: Secret disowned"
    );
    let hooks: Api<Job> = ns.api();
    assert!(
        hooks
            .get_opt("apitok-apitoken-operator-uninstall")
            .await
            .unwrap()
            .is_none(),
        "the hook Job is deleted once it succeeded"
    );
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    assert!(
        crds.get_opt("apitokens.apitoken.dev")
            .await
            .unwrap()
            .is_some()
    );
    eventually("the operator Pods gone", INSTALL_TIMEOUT, || async {
        operator_pods(&ns).await.is_empty().then_some(())
    })
    .await;
    // Nothing holds the namespace: it goes within a minute, and garbage collection takes the
    // Delete tokens' Secrets with their ApiTokens.
    ns.delete_namespace_and_wait(Duration::from_secs(60)).await;
}
