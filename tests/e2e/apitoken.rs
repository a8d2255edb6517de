//! ApiToken behaviour against the real control plane, each test in its own namespace with its own
//! operator process.

use std::time::Duration;

use apitoken_operator::token::{Format, fingerprint, is_well_formed};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::harness::*;

const GATEWAY: &str = include_str!("../../examples/key-auth-gateway.yaml");
const MINIMAL: &str = include_str!("../../examples/minimal.yaml");

#[tokio::test]
async fn create_issues_a_secret_with_status_and_event() {
    let ns = TestNs::new("e2e-create").await;
    let _op = Operator::start(&ns);
    let token = ns.apply_yaml(GATEWAY).await;
    let name = token.name_any();

    let token = wait_status(&ns, &name, "Ready=True", TIMEOUT, |t| {
        ready(t) == Some(("True", "Issued"))
    })
    .await;
    let status = token.status.clone().unwrap();
    assert_eq!(status.revision, Some(1));
    let secret = ns.secrets().get(&token.secret_name()).await.unwrap();

    // The value has the requested format and its fingerprint is in status.
    let value = secret_value(&secret, "token").unwrap();
    let format = Format::from_spec(token.spec.format.as_ref());
    assert!(value.starts_with("gw_"), "prefix");
    assert!(
        is_well_formed(&value, &format),
        "length, alphabet and checksum"
    );
    assert_eq!(
        status.fingerprint.as_deref(),
        Some(fingerprint(value.as_bytes()).as_str())
    );

    // Template keys, labels, annotations and the controller owner reference.
    assert_eq!(
        secret_value(&secret, "key").as_deref(),
        Some(value.as_str())
    );
    assert_eq!(
        secret_value(&secret, "header"),
        Some(format!("X-API-KEY: {value}"))
    );
    let labels = secret.labels();
    assert_eq!(labels["app.kubernetes.io/managed-by"], "apitoken-operator");
    assert_eq!(labels["apitoken.dev/name"], name);
    assert_eq!(labels["team"], "edge");
    assert!(
        !labels.contains_key("example.com/owned-by-argo"),
        "ApiToken labels are never copied"
    );
    assert_eq!(secret.annotations()["apitoken.dev/revision"], "1");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let owner = &secret.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("ApiToken", Some(true))
    );
    assert_eq!(Some(&owner.uid), token.uid().as_ref());

    let issued = ns.single_event(&name, "Issued").await;
    assert!(issued.note.as_deref().unwrap().contains("revision 1"));
}

#[tokio::test]
async fn reapply_restart_and_waiting_write_nothing() {
    let ns = TestNs::new("e2e-idem").await;
    let mut op = Operator::start(&ns);
    let token = ns.apply_yaml(MINIMAL).await;
    let name = token.name_any();
    wait_status(&ns, &name, "Ready=True", TIMEOUT, |t| {
        ready(t) == Some(("True", "Issued"))
    })
    .await;
    // Let the reconciles triggered by our own writes settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let secret_rv = ns.secrets().get(&name).await.unwrap().resource_version();
    let before = ns.tokens().get(&name).await.unwrap();
    let events = ns.events(&name).await.len();

    // Re-apply the same manifest (as GitOps does), also as a second field manager, whose new
    // managedFields entry is the only change to the object.
    ns.apply_yaml(MINIMAL).await;
    let token: apitoken_operator::api::ApiToken = serde_yaml::from_str(MINIMAL).unwrap();
    let reapplied = ns
        .tokens()
        .patch(
            &name,
            &PatchParams::apply("argocd-controller").force(),
            &Patch::Apply(&token),
        )
        .await
        .unwrap();
    assert_eq!(reapplied.metadata.generation, before.metadata.generation);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Restart: SIGTERM ends the operator cleanly, and the new process finds nothing to do.
    let exit = op.stop().expect("operator was running");
    assert!(exit.success(), "graceful shutdown on SIGTERM, got {exit}");
    assert!(op.logs().contains("controller stopped"));
    let offset = op.line_offset();
    op.spawn();
    // Wait until the new process has really looked at the ApiToken, then a little longer.
    eventually("the restarted operator to reconcile", TIMEOUT, || async {
        op.logs_since(offset)
            .contains("\"reconciled\"")
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    assert_eq!(
        ns.secrets().get(&name).await.unwrap().resource_version(),
        secret_rv,
        "Secret untouched"
    );
    let after = ns.tokens().get(&name).await.unwrap();
    assert_eq!(
        after.resource_version(),
        reapplied.resource_version(),
        "no write to the ApiToken after the re-apply"
    );
    assert_eq!(after.status, before.status, "status untouched");
    let operator_fields = |t: &apitoken_operator::api::ApiToken| {
        t.managed_fields()
            .iter()
            .filter(|m| m.manager.as_deref() == Some("apitoken-operator"))
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        operator_fields(&after),
        operator_fields(&before),
        "the operator wrote nothing"
    );
    assert_eq!(ns.events(&name).await.len(), events, "no new events");
}

#[tokio::test]
async fn metadata_edits_follow_without_a_new_value_but_format_edits_rotate() {
    let ns = TestNs::new("e2e-edit").await;
    let _op = Operator::start(&ns);
    let mut token = ns.apply_yaml(GATEWAY).await;
    let name = token.name_any();
    wait_status(&ns, &name, "Ready=True", TIMEOUT, |t| {
        ready(t) == Some(("True", "Issued"))
    })
    .await;
    let secret_name = token.secret_name();
    let before = secret_value(&ns.secrets().get(&secret_name).await.unwrap(), "token").unwrap();

    token.spec.display_name = Some("Edge gateway (renamed)".into());
    let template = token.spec.secret_template.as_mut().unwrap();
    template
        .labels
        .as_mut()
        .unwrap()
        .insert("tier".into(), "gold".into());
    template.data.as_mut().unwrap().remove("header");
    ns.apply(&token).await;
    let secret = eventually("the Secret to follow the template", TIMEOUT, || async {
        let s = ns.secrets().get(&secret_name).await.ok()?;
        (s.labels().get("tier").map(String::as_str) == Some("gold")
            && s.annotations()
                .get("apitoken.dev/display-name")
                .map(String::as_str)
                == Some("Edge gateway (renamed)")
            && !s.data.as_ref()?.contains_key("header"))
        .then_some(s)
    })
    .await;
    assert_eq!(
        secret_value(&secret, "token").unwrap(),
        before,
        "same value"
    );
    assert_eq!(revision(&ns.tokens().get(&name).await.unwrap()), 1);

    token.spec.format.as_mut().unwrap().length = Some(64);
    ns.apply(&token).await;
    let rotated = wait_status(&ns, &name, "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    let status = rotated.status.unwrap();
    assert_eq!(status.last_rotation.unwrap().reason.as_str(), "SpecChanged");
    let value = secret_value(&ns.secrets().get(&secret_name).await.unwrap(), "token").unwrap();
    assert_eq!(value.len(), "gw_".len() + 64 + 6);
    assert_ne!(value, before);
}

#[tokio::test]
async fn deleted_or_edited_secrets_are_replaced_with_a_warning() {
    let ns = TestNs::new("e2e-lost").await;
    let _op = Operator::start(&ns);
    let name = ns.apply_yaml(MINIMAL).await.name_any();
    wait_status(&ns, &name, "revision 1", TIMEOUT, |t| revision(t) == 1).await;

    ns.secrets()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    let t = wait_status(&ns, &name, "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    assert_eq!(last_reason(&t), "SecretLost");
    let secret = ns.secrets().get(&name).await.unwrap();
    assert_eq!(
        t.status.unwrap().fingerprint.unwrap(),
        fingerprint(secret_value(&secret, "token").unwrap().as_bytes())
    );
    let lost = ns.single_event(&name, "SecretLost").await;
    assert_eq!(lost.type_.as_deref(), Some("Warning"));

    // Someone edits the token by hand.
    ns.tamper(&name, "hand-written-value-that-is-not-ours")
        .await;
    let t = wait_status(&ns, &name, "revision 3", TIMEOUT, |t| revision(t) == 3).await;
    assert_eq!(last_reason(&t), "Tampered");
    let value = secret_value(&ns.secrets().get(&name).await.unwrap(), "token").unwrap();
    assert_ne!(value, "hand-written-value-that-is-not-ours");
    assert_eq!(
        ns.events_with_reason(&name, "Tampered").await[0]
            .type_
            .as_deref(),
        Some("Warning")
    );
}

#[tokio::test]
async fn foreign_secrets_are_never_touched() {
    let ns = TestNs::new("e2e-conflict").await;
    let _op = Operator::start(&ns);
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some("taken".into()),
            ..Default::default()
        },
        data: Some([("token".to_string(), ByteString(b"someone-elses".to_vec()))].into()),
        ..Default::default()
    };
    let foreign = ns
        .secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    ns.apply_yaml("apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: wants-taken}\nspec: {secretName: taken}")
        .await;
    let t = wait_status(&ns, "wants-taken", "SecretConflict", TIMEOUT, |t| {
        ready(t) == Some(("False", "SecretConflict"))
    })
    .await;
    assert!(
        t.status.as_ref().unwrap().conditions[0]
            .message
            .contains("taken")
    );
    // The guard behind every first write, even if the Secret appeared after the operator looked:
    // creating the shell fails on any existing Secret and changes nothing.
    let raced = apitoken_operator::reconcile::create_shell(&ns.secrets(), &t).await;
    assert!(
        matches!(&raced, Err(apitoken_operator::error::Error::Kube(kube::Error::Api(s))) if s.code == 409),
        "{:?}",
        raced.as_ref().err()
    );
    let after = ns.secrets().get("taken").await.unwrap();
    assert_eq!(
        after.resource_version(),
        foreign.resource_version(),
        "byte-for-byte unchanged"
    );
    assert_eq!(after.data, foreign.data);
    let warn = ns.events_with_reason("wants-taken", "SecretConflict").await;
    assert_eq!(warn[0].type_.as_deref(), Some("Warning"));

    // A second ApiToken pointing at a Secret another ApiToken owns gets the same conflict.
    ns.apply_yaml(MINIMAL).await;
    wait_status(&ns, "billing-client", "first issued", TIMEOUT, |t| {
        revision(t) == 1
    })
    .await;
    let owned = ns.secrets().get("billing-client").await.unwrap();
    ns.apply_yaml("apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: second}\nspec: {secretName: billing-client}")
        .await;
    wait_status(&ns, "second", "SecretConflict", TIMEOUT, |t| {
        ready(t) == Some(("False", "SecretConflict"))
    })
    .await;
    let warn = ns.events_with_reason("second", "SecretConflict").await;
    assert_eq!(warn[0].type_.as_deref(), Some("Warning"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        ns.secrets()
            .get("billing-client")
            .await
            .unwrap()
            .resource_version(),
        owned.resource_version()
    );

    // When the foreign Secret goes away, the conflict clears by itself (the Secret watch wakes us).
    ns.secrets()
        .delete("taken", &DeleteParams::default())
        .await
        .unwrap();
    wait_status(
        &ns,
        "wants-taken",
        "Ready=True after the conflict cleared",
        TIMEOUT,
        |t| ready(t) == Some(("True", "Issued")),
    )
    .await;
}

#[tokio::test]
async fn deletion_revokes_or_retains_the_secret() {
    let ns = TestNs::new("e2e-delete").await;
    let op = Operator::start(&ns);
    let name = ns.apply_yaml(MINIMAL).await.name_any();
    wait_status(&ns, &name, "issued", TIMEOUT, |t| revision(t) == 1).await;
    ns.tokens()
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    eventually("ApiToken and Secret gone", TIMEOUT, || async {
        let token_gone = ns.tokens().get_opt(&name).await.unwrap().is_none();
        let secret_gone = ns.secrets().get_opt(&name).await.unwrap().is_none();
        (token_gone && secret_gone).then_some(())
    })
    .await;
    let revoked = ns.single_event(&name, "Revoked").await;
    assert!(revoked.note.as_deref().unwrap().contains("revision 1"));

    ns.apply_yaml(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: keeper}\nspec: {deletionPolicy: Retain}",
    )
    .await;
    wait_status(&ns, "keeper", "issued", TIMEOUT, |t| revision(t) == 1).await;
    let value = secret_value(&ns.secrets().get("keeper").await.unwrap(), "token");
    ns.tokens()
        .delete("keeper", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&ns.tokens(), "keeper", TIMEOUT).await;
    // Give the garbage collector time to act if an owner reference had been left behind.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = ns.secrets().get("keeper").await.expect("Secret retained");
    assert!(kept.owner_references().is_empty(), "ownership dropped");
    assert_eq!(secret_value(&kept, "token"), value, "value kept");
    assert_eq!(ns.events_with_reason("keeper", "Retained").await.len(), 1);

    // The audit log has one line for each: revoke with the revision, retain likewise.
    let audit = op.json_lines("audit");
    let line = |action: &str, name: &str| {
        audit
            .iter()
            .find(|l| l["action"] == action && l["name"] == name)
            .cloned()
    };
    let revoke = line("revoke", "billing-client").expect("revoke audit line");
    assert_eq!(
        (revoke["revision"].as_i64(), revoke["namespace"].as_str()),
        (Some(1), Some(ns.name.as_str()))
    );
    assert!(line("retain", "keeper").is_some(), "retain audit line");
}

#[tokio::test]
async fn examples_apply_and_become_ready() {
    let ns = TestNs::new("e2e-examples").await;
    let _op = Operator::start(&ns);
    for yaml in [MINIMAL, GATEWAY] {
        let (ok, out) = kubectl_apply(&ns.name, yaml);
        assert!(ok, "{out}");
    }
    for name in ["billing-client", "edge-gateway"] {
        wait_status(&ns, name, "Ready=True", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued"))
        })
        .await;
    }
    let out = kubectl()
        .args(["get", "apitokens", "-n", &ns.name])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    for column in [
        "READY",
        "SECRET",
        "REVISION",
        "EXPIRES",
        "NEXT ROTATION",
        "AGE",
    ] {
        assert!(
            table.contains(column),
            "printer column {column} in:\n{table}"
        );
    }
}
