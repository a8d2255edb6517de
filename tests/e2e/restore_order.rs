//! A restore that brings the ApiTokens before their Secrets (not Velero's default order): the
//! operator waits a bounded minute for each Secret instead of minting a new value.

use std::time::Duration;

use apitoken_operator::api::ApiToken;
use apitoken_operator::restore::{AWAITING_RESTORE, RESTORE_LABEL, RESTORE_WAIT};
use jiff::Timestamp;
use kube::ResourceExt;
use serde_json::Value;

use crate::harness::*;
use crate::restore::*;

fn reconciling(t: &ApiToken) -> Option<(&str, &str)> {
    condition(t, "Reconciling")
}

/// Labels every exported object as Velero labels what it restores.
fn label_restored(list: &mut Value) {
    for item in list["items"].as_array_mut().unwrap() {
        let meta = item["metadata"].as_object_mut().unwrap();
        let labels = meta
            .entry("labels")
            .or_insert_with(|| serde_json::json!({}));
        labels[RESTORE_LABEL] = "nightly-20261122".into();
    }
}

async fn awaiting(ns: &TestNs, name: &str) -> ApiToken {
    wait_status(ns, name, "Reconciling=True AwaitingRestore", TIMEOUT, |t| {
        reconciling(t) == Some(("True", AWAITING_RESTORE))
    })
    .await
}

#[tokio::test]
async fn restore_with_apitokens_first_waits_for_their_secrets_and_keeps_every_value() {
    let ns = TestNs::new("e2e-restore-order").await;
    let mut op = Operator::start(&ns);
    for yaml in [PLAIN, ROTATING] {
        ns.apply_yaml(yaml).await;
    }
    let mut before = Vec::new();
    for name in ["billing-client", "rotating"] {
        before.push(ready_before(&ns, name).await);
    }
    let mut secrets = export(&ns.name, "secrets");
    let mut tokens = export(&ns.name, "apitokens");
    label_restored(&mut secrets);
    label_restored(&mut tokens);
    recreate_namespace(&ns).await;
    op.stop();
    op.spawn();

    restore(&ns.name, &tokens);
    for b in &before {
        awaiting(&ns, &b.token.name_any()).await;
    }
    // The Secrets are late (a few seconds, as a second restore pass is): no value is minted.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for b in &before {
        let name = b.token.secret_name();
        assert!(
            ns.secrets().get_opt(&name).await.unwrap().is_none(),
            "{name}: nothing issued while the Secret is on its way"
        );
    }
    restore(&ns.name, &secrets);

    for b in &before {
        let name = b.token.name_any();
        let old = b.token.status.clone().unwrap();
        let t = wait_status(&ns, &name, "Ready=True after restore", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued")) && reconciling(t).is_none()
        })
        .await;
        let status = t.status.clone().unwrap();
        assert_eq!(status.fingerprint, old.fingerprint, "{name}: same value");
        assert_eq!(status.revision, old.revision, "{name}: no new revision");
        assert_eq!(status.history[0].reason.as_str(), "Adopted");
        let secret = ns.secrets().get(&t.secret_name()).await.unwrap();
        assert_eq!(
            secret_value(&secret, "token").as_deref(),
            Some(b.value.as_str())
        );
        ns.single_event(&name, "Adopted").await;
        assert!(
            ns.events(&name)
                .await
                .iter()
                .all(|e| e.reason.as_deref() != Some("Issued")),
            "{name}: nothing issued"
        );
    }
    drop(op);
    ns.delete_namespace().await;
}

#[tokio::test]
async fn a_restored_apitoken_whose_secret_never_comes_is_issued_after_the_wait() {
    let ns = TestNs::new("e2e-restore-lone").await;
    let _op = Operator::start(&ns);
    ns.apply_yaml(&format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: lone, labels: {{{RESTORE_LABEL}: nightly}}}}\nspec: {{}}\n"
    ))
    .await;
    let t = awaiting(&ns, "lone").await;
    let created = t.metadata.creation_timestamp.clone().unwrap().0;
    assert!(ns.secrets().get_opt("lone").await.unwrap().is_none());
    let t = wait_status(
        &ns,
        "lone",
        "issued after the wait",
        RESTORE_WAIT.unsigned_abs() + TIMEOUT,
        |t| revision(t) == 1,
    )
    .await;
    let issued: Timestamp = t.status.as_ref().unwrap().issued_at.clone().unwrap().0;
    assert!(
        issued >= created + RESTORE_WAIT,
        "issued at {issued}, the wait ends at {}",
        created + RESTORE_WAIT
    );
    assert_eq!(last_reason(&t), "Created");
    assert_eq!(reconciling(&t), None, "the wait is over");
    ns.delete_namespace().await;
}
