//! Namespace teardown with the operator running: quiet (no re-issue, no refused write) and every
//! revocation still recorded.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DeleteParams, ListParams};

use crate::harness::*;

const TOKENS: usize = 200;

#[tokio::test]
async fn deleting_a_namespace_of_apitokens_reissues_nothing_and_writes_nothing_refused() {
    let ns = TestNs::new("e2e-teardown").await;
    let op = Operator::start(&ns);
    let yaml: String = (0..TOKENS)
        .map(|i| {
            let policy = if i % 2 == 0 { "Delete" } else { "Retain" };
            format!("---\napiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: t{i}}}\nspec: {{deletionPolicy: {policy}}}\n")
        })
        .collect();
    let (ok, out) = kubectl_apply(&ns.name, &yaml);
    assert!(ok, "{out}");
    eventually("every ApiToken Ready", Duration::from_secs(240), || async {
        let list = ns.tokens().list(&ListParams::default()).await.ok()?;
        let ready = list
            .items
            .iter()
            .filter(|t| ready(t) == Some(("True", "Issued")));
        (ready.count() == TOKENS).then_some(())
    })
    .await;

    let from = op.line_offset();
    let started = Instant::now();
    let namespaces: Api<Namespace> = Api::all(ns.client.clone());
    namespaces
        .delete(&ns.name, &DeleteParams::default())
        .await
        .unwrap();
    eventually("namespace gone", Duration::from_secs(180), || async {
        namespaces
            .get_opt(&ns.name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    eprintln!(
        "teardown of {TOKENS} ApiTokens took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let log = op.logs_since(from);
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("reconcile failed"), 0, "no failed reconcile");
    assert_eq!(count("failed to publish event"), 0, "no refused Event");
    assert_eq!(
        count("\"action\":\"issue\"") + count("\"action\":\"rotate\""),
        0,
        "nothing re-issued"
    );
    // Deletion still records each revocation in the audit log (Events cannot be created in a
    // terminating namespace). Retain tokens whose Secret the namespace took have nothing to keep.
    assert_eq!(count("\"action\":\"revoke\""), TOKENS / 2);
}
