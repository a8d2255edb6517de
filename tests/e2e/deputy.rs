//! Security 9 and 10: no spec makes the operator write outside its object's namespace, touch a
//! Secret it did not create (whatever its type) or create anything but an Opaque Secret; and
//! hostile values the schema lets through end as Ready=False InvalidSpec, never a crash.

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::harness::*;

fn typed_secret(name: &str, type_: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: Some(
                [(
                    "kubernetes.io/service-account.name".to_string(),
                    "default".to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        type_: Some(type_.into()),
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

/// Whether the operator ever wrote `secret` (its field manager or its ownerReference).
fn touched_by_operator(secret: &Secret) -> bool {
    secret
        .managed_fields()
        .iter()
        .any(|f| f.manager.as_deref() == Some(apitoken_operator::api::FIELD_MANAGER))
        || !secret.owner_references().is_empty()
}

#[tokio::test]
async fn secrets_of_other_types_are_never_written_or_adopted() {
    let ns = TestNs::new("e2e-deputy").await;
    let _op = Operator::start(&ns);
    let targets = [
        typed_secret("sa-token", "kubernetes.io/service-account-token", &[]),
        typed_secret(
            "pull",
            "kubernetes.io/dockerconfigjson",
            &[(".dockerconfigjson", r#"{"auths":{}}"#)],
        ),
    ];
    // The token controller deletes a service-account-token Secret whose ServiceAccount does not
    // exist yet, and fills in the token once it does: start from a settled Secret.
    let accounts: Api<ServiceAccount> = ns.api();
    eventually("the default ServiceAccount", TIMEOUT, || async {
        accounts.get_opt("default").await.ok().flatten()
    })
    .await;
    for secret in &targets {
        ns.secrets()
            .create(&PostParams::default(), secret)
            .await
            .unwrap();
        let name = secret.name_any();
        let secret = &eventually(&format!("{name} settled"), TIMEOUT, || async {
            let s = ns.secrets().get(&name).await.ok()?;
            s.data.as_ref().is_some_and(|d| !d.is_empty()).then_some(s)
        })
        .await;
        ns.apply_yaml(&format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: wants-{name}}}\nspec: {{secretName: {name}}}"
        ))
        .await;
        wait_status(
            &ns,
            &format!("wants-{name}"),
            "SecretConflict",
            TIMEOUT,
            |t| ready(t) == Some(("False", "SecretConflict")),
        )
        .await;
        let after = ns.secrets().get(&name).await.unwrap();
        assert_eq!(after.type_, secret.type_, "{name} keeps its type");
        assert!(!touched_by_operator(&after), "{name} was never written");
        if name == "pull" {
            assert_eq!(after.data, secret.data, "{name} keeps its data");
        }
    }

    // Fields that would aim elsewhere do not exist: kubectl refuses them, naming the field.
    for (field, yaml, allowed) in [
        (
            "spec.secretName",
            "secretName: other-ns/x",
            "lowercase letters, digits",
        ),
        (
            "spec.secretTemplate.type",
            "secretTemplate: {type: kubernetes.io/dockerconfigjson}",
            "unknown field",
        ),
        (
            "spec.secretTemplate.namespace",
            "secretTemplate: {namespace: kube-system}",
            "unknown field",
        ),
        ("spec.namespace", "namespace: kube-system", "unknown field"),
    ] {
        let manifest = format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: aimed}}\nspec: {{{yaml}}}\n"
        );
        let (ok, out) = kubectl_apply(&ns.name, &manifest);
        assert!(!ok, "{field} refused: {out}");
        assert!(
            out.contains(field.rsplit('.').next().unwrap()),
            "{field} named: {out}"
        );
        assert!(
            out.contains(allowed),
            "{field}: says what is allowed: {out}"
        );
    }

    // What it creates is always an Opaque Secret in the object's own namespace.
    ns.apply_yaml("apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: plain}\nspec: {secretTemplate: {labels: {a: b}}}")
        .await;
    let owner = wait_status(&ns, "plain", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let owner = owner.uid().unwrap();
    let plain = ns.secrets().get("plain").await.unwrap();
    assert_eq!(plain.type_.as_deref(), Some("Opaque"));
    let everywhere: Api<Secret> = Api::all(ns.client.clone());
    let ours: Vec<String> = everywhere
        .list(
            &kube::api::ListParams::default()
                .labels("app.kubernetes.io/managed-by=apitoken-operator"),
        )
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.owner_references().iter().any(|r| r.uid == owner))
        .map(|s| format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any()))
        .collect();
    assert_eq!(
        ours,
        [format!("{}/plain", ns.name)],
        "one Secret, in its own namespace"
    );
    ns.delete_namespace().await;
}

#[tokio::test]
async fn a_grace_period_too_large_for_any_clock_is_invalid_spec_not_a_crash() {
    let ns = TestNs::new("e2e-hostile").await;
    let op = Operator::start(&ns);
    // Passes the schema (a well-formed duration of at most 32 characters) but overflows every
    // clock: before the fix, parsing it panicked and the operator crash-looped.
    ns.apply_yaml("apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: huge}\nspec: {rotation: {every: 1h, gracePeriod: 18450000000000000000000ms}}")
        .await;
    let t = wait_status(&ns, "huge", "InvalidSpec", TIMEOUT, |t| {
        ready(t) == Some(("False", "InvalidSpec"))
    })
    .await;
    let message = &t.status.as_ref().unwrap().conditions[0].message;
    assert!(message.contains("rotation.gracePeriod"), "{message}");
    let event = ns.single_event("huge", "InvalidSpec").await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(!op.logs().contains("panicked"), "no panic");
    ns.delete_namespace().await;
}
