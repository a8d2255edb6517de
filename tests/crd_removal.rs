//! `kubectl delete crd apitokens.apitoken.dev` with the operator running. A test binary of its
//! own: removing the CRD would break the e2e tests running beside it, and cargo runs test
//! binaries one after another (`make e2e` runs this after `--test e2e`).

#[allow(dead_code)]
#[path = "e2e/harness.rs"]
mod harness;
#[allow(dead_code)]
#[path = "e2e/operator.rs"]
mod operator;

use std::collections::BTreeSet;
use std::time::Duration;

use apitoken_operator::api::ApiToken;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};

use harness::*;

#[tokio::test]
async fn deleting_the_crd_completes_and_honours_each_deletion_policy() {
    let ns = TestNs::new("e2e-crd").await;
    let op = Operator::start(&ns);
    for (name, policy) in [("gone", "Delete"), ("kept", "Retain")] {
        ns.apply_yaml(&format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {{deletionPolicy: {policy}}}\n"
        ))
        .await;
        wait_status(&ns, name, "Ready", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued"))
        })
        .await;
    }
    let value = secret_value(&ns.secrets().get("kept").await.unwrap(), "token");

    // The e2e suite before this leaves ApiTokens in namespaces whose operator has exited; the
    // CRD's deletion waits for every instance, so release those first, the documented way.
    let all: Api<ApiToken> = Api::all(ns.client.clone());
    let others: BTreeSet<String> = all
        .list(&ListParams::default())
        .await
        .unwrap()
        .iter()
        .filter_map(|t| t.namespace())
        .filter(|n| *n != ns.name)
        .collect();
    for other in others {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_apitoken-operator"))
            .args(["release-finalizers", "--namespace", &other])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let crds: Api<CustomResourceDefinition> = Api::all(ns.client.clone());
    crds.delete("apitokens.apitoken.dev", &DeleteParams::default())
        .await
        .unwrap();
    eventually("CRD deleted", Duration::from_secs(60), || async {
        crds.get_opt("apitokens.apitoken.dev")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    wait_gone(&ns.secrets(), "gone", TIMEOUT).await;
    let kept = ns
        .secrets()
        .get("kept")
        .await
        .expect("Retain keeps the Secret");
    assert!(kept.owner_references().is_empty());
    assert_eq!(secret_value(&kept, "token"), value);
    let audit = op.json_lines("audit");
    let actions: Vec<_> = audit
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"revoke") && actions.contains(&"retain"),
        "{actions:?}"
    );
    // SIGTERM stops the operator gracefully with the CRD gone, and also one that started without
    // it (its caches never sync, which kube's controller alone would wait for forever).
    let mut op = op;
    let exit = op.stop().expect("it was running");
    assert!(exit.success(), "stopped after the CRD went: {exit}");
    let mut late = Operator::launch(
        &format!("{}-late", ns.name),
        &["--namespace", &ns.name],
        &[],
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let asked = std::time::Instant::now();
    let exit = late.stop().expect("it was running");
    assert!(exit.success(), "stopped without the CRD: {exit}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?}",
        asked.elapsed()
    );
    assert!(late.logs().contains("stopping before the caches synced"));
    ns.delete_namespace().await;
}
