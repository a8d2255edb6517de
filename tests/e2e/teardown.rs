//! Namespace teardown with the operator running: quiet (no re-issue, no refused write) and every
//! revocation still recorded.

use std::time::{Duration, Instant};

use kube::api::{DeleteParams, ListParams};

use kube::ResourceExt;

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
    ns.delete_namespace_and_wait(Duration::from_secs(180)).await;
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

/// After `helm uninstall` the operator is gone; the chart's pre-delete hook has run
/// `release-finalizers`. Nothing may be left stuck, and each deletionPolicy still holds.
#[tokio::test]
async fn released_finalizers_leave_nothing_stuck_once_the_operator_is_gone() {
    let (a, b) = (
        TestNs::new("e2e-release-a").await,
        TestNs::new("e2e-release-b").await,
    );
    let mut ops = [Operator::start(&a), Operator::start(&b)];
    for ns in [&a, &b] {
        for (name, policy) in [("gone", "Delete"), ("kept", "Retain")] {
            ns.apply_yaml(&format!("apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {{deletionPolicy: {policy}}}\n"))
                .await;
            wait_status(ns, name, "Ready", TIMEOUT, |t| {
                ready(t) == Some(("True", "Issued"))
            })
            .await;
        }
    }
    let kept_value = secret_value(&a.secrets().get("kept").await.unwrap(), "token");
    // Only Retain needs the operator at deletion; Delete is left to the garbage collector.
    for ns in [&a, &b] {
        let finalizers =
            |name| async move { ns.tokens().get(name).await.unwrap().finalizers().to_vec() };
        assert_eq!(finalizers("kept").await, ["apitoken.dev/cleanup"]);
        assert!(finalizers("gone").await.is_empty());
    }
    for op in &mut ops {
        op.stop();
    }
    for ns in [&a, &b] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_apitoken-operator"))
            .args(["release-finalizers", "--namespace", &ns.name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("/kept: finalizer released; Secret disowned, kept"),
            "{text}"
        );
        assert!(!text.contains("/gone"), "nothing to release: {text}");
    }

    // Namespace a: the ApiTokens deleted (as with the CRD): Retain keeps, Delete is collected.
    a.tokens()
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .unwrap();
    eventually("ApiTokens gone without the operator", TIMEOUT, || async {
        a.tokens()
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
            .then_some(())
    })
    .await;
    wait_gone(&a.secrets(), "gone", Duration::from_secs(60)).await;
    let kept = a
        .secrets()
        .get("kept")
        .await
        .expect("Retain keeps the Secret");
    assert!(kept.owner_references().is_empty());
    assert_eq!(secret_value(&kept, "token"), kept_value);

    // Namespace b: deleted whole, finishes well within 60 s.
    b.delete_namespace_and_wait(Duration::from_secs(60)).await;
    a.delete_namespace().await;
}
