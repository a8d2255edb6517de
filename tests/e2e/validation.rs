//! Bad input: rejected by `kubectl apply` with a clear message (one test per rule), or, where only
//! the operator can judge, Ready=False InvalidSpec with one Warning Event and no retry loop.

use std::time::Duration;

use kube::ResourceExt;

use crate::harness::*;

/// Applies an ApiToken with `spec` (YAML flow mapping) and asserts kubectl rejects it saying `message`.
fn assert_rejected(name: &str, spec: &str, message: &str) {
    let yaml = format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    );
    let (ok, out) = kubectl_apply("default", &yaml);
    if ok {
        let _ = kubectl()
            .args(["delete", "apitoken", name, "-n", "default", "--wait=false"])
            .output();
    }
    assert!(!ok, "kubectl apply accepted an invalid ApiToken: {spec}");
    assert!(
        out.contains(message),
        "expected {message:?} in kubectl output:\n{out}"
    );
}

macro_rules! rejected {
    ($($test:ident: $spec:expr => $message:expr;)*) => {$(
        #[tokio::test]
        async fn $test() {
            install_crd(&client().await).await;
            assert_rejected(&stringify!($test).replace('_', "-"), $spec, $message);
        }
    )*};
}

rejected! {
    rejects_short_length: "{format: {length: 16}}" => "format.length must be between 32 and 256 random characters";
    rejects_long_length: "{format: {length: 300}}" => "format.length must be between 32 and 256 random characters";
    rejects_bad_prefix: "{format: {prefix: '9lives'}}" => "format.prefix must start with a letter";
    rejects_prefix_with_symbols: "{format: {prefix: 'a b$'}}" => "format.prefix must start with a letter";
    rejects_unknown_alphabet: "{format: {alphabet: base32}}" => "supported values: \"base62\", \"hex\", \"base64url\"";
    rejects_every_and_schedule: "{rotation: {every: 24h, schedule: '0 3 * * *'}}" => "set either rotation.every or rotation.schedule, not both";
    rejects_rotation_without_trigger: "{rotation: {gracePeriod: 10m}}" => "rotation needs rotation.every or rotation.schedule";
    rejects_unparsable_every: "{rotation: {every: soon}}" => "rotation.every must be a duration such as 10m, 24h or 168h";
    rejects_too_frequent_rotation: "{rotation: {every: 30s}}" => "rotation.every must be at least 1m";
    rejects_unparsable_expiry: "{expiresAfter: forever}" => "expiresAfter must be a duration such as 90s, 10m or 720h";
    rejects_unparsable_grace: "{rotation: {every: 1h, gracePeriod: a-while}}" => "rotation.gracePeriod must be a duration";
    rejects_renew_before_past_lifetime: "{expiresAfter: 1h, rotation: {renewBefore: 2h}}" => "rotation.renewBefore needs expiresAfter and must be at least 1m shorter than it";
    rejects_renewal_right_after_issue: "{expiresAfter: 1h, rotation: {renewBefore: 59m30s}}" => "must be at least 1m shorter than it";
    rejects_renew_before_without_expiry: "{rotation: {every: 1h, renewBefore: 2h}}" => "rotation.renewBefore needs expiresAfter and must be at least 1m shorter than it";
    rejects_time_zone_without_schedule: "{rotation: {every: 1h, timeZone: Europe/Berlin}}" => "rotation.timeZone applies only to rotation.schedule";
    rejects_reserved_data_key: "{secretTemplate: {data: {token: x}}}" => "must not use the reserved keys token, token.previous or expires-at";
    rejects_reserved_previous_key: "{secretTemplate: {data: {token.previous: x}}}" => "must not use the reserved keys";
    rejects_bad_data_key: "{secretTemplate: {data: {'a/b': x}}}" => "secretTemplate.data keys must be valid Secret keys";
    rejects_unknown_placeholder: "{secretTemplate: {data: {k: '{{ user }}'}}}" => "may use only the placeholder {{ token }}";
    rejects_bad_secret_name: "{secretName: Bad_Name}" => "secretName must be a valid Secret name";
    rejects_bad_rollout_target_name: "{rolloutRestart: [{kind: Deployment, name: Web_App}]}" => "rolloutRestart[].name must be a valid workload name";
    rejects_unknown_rollout_kind: "{rolloutRestart: [{kind: Job, name: web}]}" => "supported values: \"Deployment\", \"StatefulSet\", \"DaemonSet\"";
    rejects_too_many_rollout_targets: "{rolloutRestart: [{kind: Deployment, name: a0}, {kind: Deployment, name: a1}, {kind: Deployment, name: a2}, {kind: Deployment, name: a3}, {kind: Deployment, name: a4}, {kind: Deployment, name: a5}, {kind: Deployment, name: a6}, {kind: Deployment, name: a7}, {kind: Deployment, name: a8}, {kind: Deployment, name: a9}, {kind: Deployment, name: b0}, {kind: Deployment, name: b1}, {kind: Deployment, name: b2}, {kind: Deployment, name: b3}, {kind: Deployment, name: b4}, {kind: Deployment, name: b5}, {kind: Deployment, name: b6}]}" => "must have at most 16 items";
    rejects_operator_labels: "{secretTemplate: {labels: {app.kubernetes.io/managed-by: me}}}" => "must not set app.kubernetes.io/managed-by or apitoken.dev/ keys";
    rejects_bad_label_value: "{secretTemplate: {labels: {team: 'not a label value'}}}" => "secretTemplate.labels values must be valid label values";
    rejects_bad_label_key: "{secretTemplate: {labels: {'-team': x}}}" => "secretTemplate.labels keys must be valid label keys";
    rejects_short_expiry: "{expiresAfter: 30s}" => "expiresAfter must be at least 1m";
    rejects_unparsable_renew_before: "{expiresAfter: 24h, rotation: {renewBefore: early}}" => "rotation.renewBefore must be a duration";
    rejects_reserved_expiry_key: "{secretTemplate: {data: {expires-at: x}}}" => "must not use the reserved keys";
    rejects_bad_annotation_key: "{secretTemplate: {annotations: {'bad key': x}}}" => "secretTemplate.annotations keys must be valid annotation keys";
    rejects_operator_annotations: "{secretTemplate: {annotations: {apitoken.dev/revision: '9'}}}" => "must not set apitoken.dev/ keys";
    rejects_scope_with_spaces: "{scopes: ['orders read']}" => "scopes must be letters, digits, '_', '.', ':', '/' and '-'";
    rejects_scope_starting_with_a_symbol: "{scopes: [':read']}" => "scopes must be letters, digits";
    rejects_repeated_scopes: "{scopes: [orders:read, orders:read]}" => "Duplicate value: \"orders:read\"";
    rejects_too_many_scopes: &format!("{{scopes: [{}]}}", (0..33).map(|i| format!("s{i}")).collect::<Vec<_>>().join(", ")) => "must have at most 32 items";
    rejects_long_scopes: &format!("{{scopes: [{}]}}", "s".repeat(65)) => "may not be more than 64 bytes";
}

/// Applies an ApiTokenVerifier with `spec` and asserts kubectl rejects it saying `message`.
async fn assert_verifier_rejected(spec: &str, message: &str) {
    install_crd(&client().await).await;
    let yaml = format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiTokenVerifier\nmetadata: {{name: bad}}\nspec: {spec}\n"
    );
    let (ok, out) = kubectl_apply("default", &yaml);
    assert!(
        !ok,
        "kubectl apply accepted an invalid ApiTokenVerifier: {spec}"
    );
    assert!(out.contains(message), "expected {message:?} in:\n{out}");
}

#[tokio::test]
async fn rejects_verifier_without_selector() {
    assert_verifier_rejected("{secretName: keys}", "spec.selector: Required value").await;
}

#[tokio::test]
async fn rejects_verifier_with_an_unknown_operator() {
    let spec = "{secretName: keys, selector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}}";
    assert_verifier_rejected(spec, "operator must be In, NotIn, Exists or DoesNotExist").await;
}

#[tokio::test]
async fn rejects_verifier_with_in_and_no_values() {
    let spec = "{secretName: keys, selector: {matchExpressions: [{key: a, operator: In}]}}";
    assert_verifier_rejected(spec, "values must be non-empty for In and NotIn").await;
}

#[tokio::test]
async fn rejects_verifier_with_a_bad_secret_name() {
    let spec = "{secretName: Keys_1, selector: {}}";
    assert_verifier_rejected(spec, "secretName must be a valid Secret name").await;
}

#[tokio::test]
async fn rejects_changing_a_verifiers_secret_name() {
    let ns = TestNs::new("e2e-v-rename").await;
    let manifest = |secret: &str| {
        format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiTokenVerifier\nmetadata: {{name: v}}\nspec: {{selector: {{}}, secretName: {secret}}}\n"
        )
    };
    let (ok, out) = kubectl_apply(&ns.name, &manifest("first"));
    assert!(ok, "{out}");
    let (ok, out) = kubectl_apply(&ns.name, &manifest("second"));
    assert!(!ok);
    assert!(out.contains("secretName cannot be changed"), "{out}");
    ns.delete_namespace().await;
}

#[tokio::test]
async fn rejects_changing_secret_name() {
    let ns = TestNs::new("e2e-rename").await;
    let manifest = |secret: &str| {
        format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: t}}\nspec: {{secretName: {secret}}}\n"
        )
    };
    let (ok, out) = kubectl_apply(&ns.name, &manifest("first"));
    assert!(ok, "{out}");
    let (ok, out) = kubectl_apply(&ns.name, &manifest("second"));
    assert!(!ok);
    assert!(out.contains("secretName cannot be changed"), "{out}");
}

#[tokio::test]
async fn operator_only_checks_give_invalid_spec_without_a_retry_loop() {
    let ns = TestNs::new("e2e-invalid").await;
    let op = Operator::start(&ns);
    for (name, rotation, message) in [
        (
            "bad-cron",
            "{schedule: 'at dawn'}",
            "is not a 5-field cron expression",
        ),
        (
            "bad-zone",
            "{schedule: '0 3 * * *', timeZone: Mars/Olympus}",
            "is not an IANA time zone",
        ),
        // Parses, but 30 February never comes: no rotation would ever happen.
        ("never-cron", "{schedule: '0 0 30 2 *'}", "never fires"),
    ] {
        let yaml = format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {{rotation: {rotation}}}\n"
        );
        let (ok, out) = kubectl_apply(&ns.name, &yaml);
        assert!(
            ok,
            "accepted at apply time: only the operator can judge this: {out}"
        );
        let t = wait_status(&ns, name, "InvalidSpec", TIMEOUT, |t| {
            ready(t) == Some(("False", "InvalidSpec"))
        })
        .await;
        let condition = &t.status.as_ref().unwrap().conditions[0];
        assert!(condition.message.contains(message), "{}", condition.message);
        assert!(
            ns.secrets().get_opt(name).await.unwrap().is_none(),
            "no Secret for an invalid spec"
        );
    }
    // Settled: no further writes, one Warning each, and the operator is not retrying.
    let versions = |ns: &TestNs| {
        let api = ns.tokens();
        async move {
            (
                api.get("bad-cron").await.unwrap().resource_version(),
                api.get("bad-zone").await.unwrap().resource_version(),
                api.get("never-cron").await.unwrap().resource_version(),
            )
        }
    };
    let offset = op.quiet_offset().await;
    let before = versions(&ns).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(versions(&ns).await, before);
    let later = op.logs_since(offset);
    assert!(
        !later.contains("\"reconciled\"") && !later.contains("reconcile failed"),
        "no retry loop:\n{later}"
    );
    for name in ["bad-cron", "bad-zone", "never-cron"] {
        let warning = ns.single_event(name, "InvalidSpec").await;
        assert_eq!(warning.type_.as_deref(), Some("Warning"));
    }
}

#[tokio::test]
async fn a_secret_the_api_server_refuses_gives_invalid_spec_without_a_retry_loop() {
    let ns = TestNs::new("e2e-refused").await;
    let op = Operator::start(&ns);
    // Valid as an ApiToken, but annotations over 256 KiB make the Secret invalid.
    let big = "x".repeat(300 * 1024);
    let yaml = format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: huge}}\nspec: {{secretTemplate: {{annotations: {{note: {big}}}}}}}\n"
    );
    ns.apply_yaml(&yaml).await;
    let t = wait_status(&ns, "huge", "InvalidSpec", TIMEOUT, |t| {
        ready(t) == Some(("False", "InvalidSpec"))
    })
    .await;
    let message = &t.status.as_ref().unwrap().conditions[0].message;
    assert!(
        message.contains("the API server rejected the Secret"),
        "{message}"
    );
    assert!(message.contains("Too long"), "{message}");
    ns.single_event("huge", "InvalidSpec").await;
    // The status write above brings one more reconcile; after that, nothing.
    let offset = op.quiet_offset().await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let later = op.logs_since(offset);
    assert!(
        !later.contains("\"reconciled\"") && !later.contains("reconcile failed"),
        "no retry loop:\n{later}"
    );

    // Fixing the spec issues the value.
    ns.apply_yaml(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: huge}\nspec: {displayName: fixed}\n",
    )
    .await;
    wait_status(&ns, "huge", "Ready=True", TIMEOUT, |t| {
        ready(t) == Some(("True", "Issued"))
    })
    .await;
}
