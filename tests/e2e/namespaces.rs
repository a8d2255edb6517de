//! `--namespace a,b`: one operator watches exactly those namespaces, with namespaced Roles only.

use std::time::Duration;

use kube::ResourceExt;

use crate::harness::*;
use crate::rbac::{ALL_SECRET_VERBS, operator_kubeconfig, operator_rules};

const TOKEN: &str =
    "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: svc}\nspec: {}";

#[tokio::test]
async fn a_namespace_list_is_watched_exactly_with_namespaced_roles_only() {
    let (a, b, c) = (
        TestNs::new("e2e-ns-a").await,
        TestNs::new("e2e-ns-b").await,
        TestNs::new("e2e-ns-c").await,
    );
    // The operator's identity may do its work in a and b, and nothing anywhere else: no
    // cluster-wide list or watch is needed.
    for ns in [&a, &b] {
        ns.grant_operator(operator_rules(ALL_SECRET_VERBS)).await;
    }
    let watched = format!("{},{}", a.name, b.name);
    let kubeconfig = operator_kubeconfig();
    let op = Operator::launch(
        &format!("{}-multi", a.name),
        &[],
        &[("WATCH_NAMESPACES", &watched), ("KUBECONFIG", &kubeconfig)],
    );
    eventually("/readyz", TIMEOUT, || async {
        (op.http_get("/readyz").await.0 == 200).then_some(())
    })
    .await;

    let untouched = c.apply_yaml(TOKEN).await;
    for ns in [&a, &b] {
        ns.apply_yaml(TOKEN).await;
    }
    for ns in [&a, &b] {
        let t = wait_status(ns, "svc", "issued", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued"))
        })
        .await;
        assert_eq!(revision(&t), 1);
        assert!(ns.secrets().get_opt("svc").await.unwrap().is_some());
    }
    op.quiet_offset().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The token in the third namespace was never touched: no finalizer, status or Secret.
    let now = c.tokens().get("svc").await.unwrap();
    assert_eq!(now.resource_version(), untouched.resource_version());
    assert!(now.finalizers().is_empty() && now.status.is_none());
    assert!(c.secrets().get_opt("svc").await.unwrap().is_none());
    assert!(
        !op.logs().contains(&c.name),
        "the operator never even mentions {}",
        c.name
    );
    assert!(
        !op.logs().contains("forbidden"),
        "never asked for more than the Roles grant"
    );
    let m = op.scrape().await;
    let namespaces: Vec<&str> = m
        .series("apitoken_ready")
        .iter()
        .map(|s| s.labels["namespace"].as_str())
        .collect();
    assert_eq!(namespaces, [a.name.as_str(), b.name.as_str()]);
}
