//! Day two: a namespace restored from backup, a Retain token re-created, and Secrets that only
//! look like the operator's (refused, never touched).

use std::time::Duration;

use apitoken_operator::api::ApiToken;
use apitoken_operator::token::{Format, fingerprint, generate};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};
use serde_json::Value;

use crate::harness::*;

pub const PLAIN: &str = include_str!("../../examples/minimal.yaml");
const TEMPLATED: &str = include_str!("../../examples/key-auth-gateway.yaml");
pub const ROTATING: &str = r#"
apiVersion: apitoken.dev/v1alpha1
kind: ApiToken
metadata:
  name: rotating
spec:
  rotation: {every: 1h, gracePeriod: 30m}
"#;

/// `kubectl get -o json` of `kinds`, stripped as Velero strips what a restore cannot keep.
pub fn export(ns: &str, kinds: &str) -> Value {
    let out = kubectl()
        .args(["get", kinds, "-n", ns, "-o", "json"])
        .output()
        .expect("kubectl get");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut list: Value = serde_json::from_slice(&out.stdout).unwrap();
    for item in list["items"].as_array_mut().unwrap() {
        let meta = item["metadata"].as_object_mut().unwrap();
        for key in [
            "uid",
            "resourceVersion",
            "ownerReferences",
            "finalizers",
            "creationTimestamp",
            "managedFields",
            "generation",
        ] {
            meta.remove(key);
        }
        item.as_object_mut().unwrap().remove("status");
    }
    list
}

/// `kubectl create -f -` of a list as exported.
pub fn restore(ns: &str, list: &Value) {
    use std::io::Write;
    let mut child = kubectl()
        .args(["create", "-n", ns, "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let body = serde_json::to_vec(list).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Deletes the namespace, waits until it is gone (at most 60 s) and creates it again.
pub async fn recreate_namespace(ns: &TestNs) {
    ns.delete_namespace_and_wait(Duration::from_secs(60)).await;
    let fresh = Namespace {
        metadata: ObjectMeta {
            name: Some(ns.name.clone()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(ns.client.clone())
        .create(&PostParams::default(), &fresh)
        .await
        .unwrap();
}

pub struct Before {
    pub token: ApiToken,
    pub value: String,
    pub previous: Option<String>,
}

pub async fn ready_before(ns: &TestNs, name: &str) -> Before {
    let token = wait_status(ns, name, "Ready=True", TIMEOUT, |t| {
        ready(t) == Some(("True", "Issued"))
    })
    .await;
    let secret = ns.secrets().get(&token.secret_name()).await.unwrap();
    Before {
        value: secret_value(&secret, "token").unwrap(),
        previous: secret_value(&secret, "token.previous"),
        token,
    }
}

#[tokio::test]
async fn restore_with_secrets_first_keeps_every_value() {
    let ns = TestNs::new("e2e-restore").await;
    let mut op = Operator::start(&ns);
    for yaml in [PLAIN, TEMPLATED, ROTATING] {
        ns.apply_yaml(yaml).await;
    }
    let names = ["billing-client", "edge-gateway", "rotating"];
    for name in names {
        ready_before(&ns, name).await;
    }
    // A rotation, so the backup holds a value in its grace window too.
    let out = kubectl()
        .args([
            "annotate",
            "-n",
            &ns.name,
            "apitoken/rotating",
            "apitoken.dev/rotate=r1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_status(&ns, "rotating", "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    let mut before = Vec::new();
    for name in names {
        before.push(ready_before(&ns, name).await);
    }
    assert!(before[2].previous.is_some(), "token.previous in grace");

    let secrets = export(&ns.name, "secrets");
    let tokens = export(&ns.name, "apitokens");
    recreate_namespace(&ns).await;
    op.stop();
    op.spawn();
    let from = op.line_offset();
    restore(&ns.name, &secrets); // Velero's order: Secrets before custom resources
    restore(&ns.name, &tokens);

    for b in &before {
        let name = b.token.name_any();
        let old = b.token.status.clone().unwrap();
        let t = wait_status(&ns, &name, "Ready=True after restore", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued")) && t.status.as_ref().unwrap().revision.is_some()
        })
        .await;
        let status = t.status.clone().unwrap();
        assert_ne!(t.uid(), b.token.uid(), "a new object");
        assert_eq!(status.fingerprint, old.fingerprint, "{name}: same value");
        assert_eq!(status.revision, old.revision, "{name}: no new revision");
        assert_eq!(status.issued_at, old.issued_at);
        assert_eq!(status.next_rotation_at, old.next_rotation_at, "{name}");
        assert_eq!(status.previous, old.previous, "{name}: grace window kept");
        assert_eq!(status.history.len(), 1);
        assert_eq!(status.history[0].reason.as_str(), "Adopted");
        let secret = ns.secrets().get(&t.secret_name()).await.unwrap();
        assert_eq!(
            secret_value(&secret, "token").as_deref(),
            Some(b.value.as_str())
        );
        assert_eq!(secret_value(&secret, "token.previous"), b.previous);
        let owner = &secret.owner_references()[0];
        assert_eq!(
            (Some(&owner.uid), owner.controller),
            (t.uid().as_ref(), Some(true))
        );
        let adopted = ns.single_event(&name, "Adopted").await;
        assert!(adopted.note.unwrap().contains("no new value"));
        assert!(
            ns.events(&name)
                .await
                .iter()
                .all(|e| e.reason.as_deref() != Some("Issued")),
            "{name}: nothing issued after the restore"
        );
    }
    let adopt_lines = op
        .json_lines("audit")
        .into_iter()
        .filter(|l| l["action"] == "adopt")
        .count();
    assert_eq!(adopt_lines, 3);
    assert!(!op.logs_since(from).contains("\"action\":\"issue\""));
    // Once adopted, nothing more: no write and no further reconcile work.
    let quiet = op.quiet_offset().await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!op.logs_since(quiet).contains("\"reconciled\""));
    drop(op);
    ns.delete_namespace().await;
}

#[tokio::test]
async fn retain_then_recreate_keeps_the_value_and_retains_again() {
    let ns = TestNs::new("e2e-retain").await;
    let _op = Operator::start(&ns);
    let yaml = "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: kept}\nspec: {deletionPolicy: Retain, rotation: {every: 24h}}\n";
    ns.apply_yaml(yaml).await;
    let b = ready_before(&ns, "kept").await;
    for round in 0..2 {
        ns.tokens()
            .delete("kept", &DeleteParams::default())
            .await
            .unwrap();
        wait_gone(&ns.tokens(), "kept", TIMEOUT).await;
        let kept = ns
            .secrets()
            .get("kept")
            .await
            .expect("Retain keeps the Secret");
        assert!(kept.owner_references().is_empty());
        assert_eq!(
            secret_value(&kept, "token").as_deref(),
            Some(b.value.as_str())
        );
        if round == 1 {
            break;
        }
        ns.apply_yaml(yaml).await;
        let t = wait_status(&ns, "kept", "Ready=True again", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued"))
        })
        .await;
        let old = b.token.status.clone().unwrap();
        let status = t.status.clone().unwrap();
        assert_eq!(
            (status.revision, &status.fingerprint),
            (old.revision, &old.fingerprint)
        );
        assert_eq!(status.next_rotation_at, old.next_rotation_at);
        let secret = ns.secrets().get("kept").await.unwrap();
        assert_eq!(
            secret_value(&secret, "token").as_deref(),
            Some(b.value.as_str())
        );
        assert_eq!(secret.owner_references()[0].uid, t.uid().unwrap());
        ns.events_with_reason("kept", "Adopted").await;
    }
    ns.delete_namespace().await;
}

/// A Secret that copies what the operator writes for `token_name`, holding `value` and
/// annotated with `annotated_fp`, of type `type_`.
fn lookalike(
    name: &str,
    token_name: &str,
    value: &str,
    annotated_fp: Option<&str>,
    type_: &str,
) -> Secret {
    let labels = [
        (
            "app.kubernetes.io/managed-by".to_owned(),
            "apitoken-operator".to_owned(),
        ),
        ("apitoken.dev/name".to_owned(), token_name.to_owned()),
    ];
    let annotations = annotated_fp.map(|fp| {
        [
            ("apitoken.dev/revision", "4"),
            ("apitoken.dev/fingerprint", fp),
            ("apitoken.dev/issued-at", "2026-11-20T10:00:00Z"),
            ("apitoken.dev/reason", "Created"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into()
    });
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels.into()),
            annotations,
            ..ObjectMeta::default()
        },
        type_: Some(type_.into()),
        data: Some([("token".to_owned(), ByteString(value.as_bytes().to_vec()))].into()),
        ..Secret::default()
    }
}

#[tokio::test]
async fn secrets_that_only_look_like_ours_are_refused_and_untouched() {
    let ns = TestNs::new("e2e-refuse").await;
    let value = generate(&Format::default()).unwrap();
    let (v, fp) = (value.expose(), fingerprint(value.expose().as_bytes()));
    let other = generate(&Format::default()).unwrap();
    let cases = [
        // Hand-made: the operator's labels copied, another value, no issue annotations.
        (
            "copied",
            lookalike("copied", "copied", other.expose(), None, "Opaque"),
        ),
        // A genuine-looking Secret of another ApiToken's name.
        (
            "wrongname",
            lookalike("wrongname", "someone-else", v, Some(&fp), "Opaque"),
        ),
        // Restored, but its token was edited after the backup.
        (
            "edited",
            lookalike("edited", "edited", other.expose(), Some(&fp), "Opaque"),
        ),
        // Everything right but the type.
        (
            "typed",
            lookalike("typed", "typed", v, Some(&fp), "example.com/token"),
        ),
    ];
    let mut stored = Vec::new();
    for (_, secret) in &cases {
        stored.push(
            ns.secrets()
                .create(&PostParams::default(), secret)
                .await
                .unwrap(),
        );
    }
    let _op = Operator::start(&ns);
    for (name, _) in &cases {
        ns.apply_yaml(&format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {{}}\n"
        ))
        .await;
    }
    for ((name, _), before) in cases.iter().zip(&stored) {
        let t = wait_status(&ns, name, "SecretConflict", TIMEOUT, |t| {
            ready(t) == Some(("False", "SecretConflict"))
        })
        .await;
        let message = &t.status.as_ref().unwrap().conditions[0].message;
        assert!(message.contains("not adopted"), "{name}: {message}");
        ns.single_event(name, "SecretConflict").await;
        let after = ns.secrets().get(name).await.unwrap();
        assert_eq!(
            after.resource_version(),
            before.resource_version(),
            "{name}: untouched"
        );
        assert_eq!(
            (
                &after.data,
                &after.metadata.labels,
                &after.metadata.annotations
            ),
            (
                &before.data,
                &before.metadata.labels,
                &before.metadata.annotations
            )
        );
        assert!(after.owner_references().is_empty());
    }
    ns.delete_namespace().await;
}
