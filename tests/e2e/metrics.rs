//! Metrics and health endpoints of a running operator, scraped as Prometheus would.

use std::collections::BTreeMap;
use std::time::Duration;

use apitoken_operator::api::ApiToken;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};

use crate::harness::*;
use crate::operator::Scrape;
use crate::rbac::{ALL_SECRET_VERBS, operator_kubeconfig, operator_rules};

const MINIMAL: &str = include_str!("../../examples/minimal.yaml");
const EXPIRING: &str = "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: expiring}\nspec: {expiresAfter: 720h, rotation: {every: 168h, gracePeriod: 1h}}";
const CONFLICTING: &str = "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: wants-taken}\nspec: {secretName: taken}";

fn writes(pairs: &[(&str, &str, f64)]) -> BTreeMap<(String, String), f64> {
    pairs
        .iter()
        .map(|(r, v, n)| ((r.to_string(), v.to_string()), *n))
        .collect()
}

async fn create_foreign_secret(ns: &TestNs, name: &str) {
    let foreign = Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some([("token".to_string(), ByteString(b"someone-elses".to_vec()))].into()),
        ..Default::default()
    };
    ns.secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
}

fn reconciles(scrape: &Scrape) -> f64 {
    scrape
        .get("apitoken_reconcile_duration_seconds_count", &[])
        .unwrap()
}

#[tokio::test]
async fn metrics_show_each_token_issues_by_reason_and_every_write_and_idle_means_no_writes() {
    let ns = TestNs::new("e2e-metrics").await;
    let op = Operator::start(&ns);
    assert_eq!(op.http_get("/healthz").await, (200, "ok\n".into()));
    eventually("/readyz", TIMEOUT, || async {
        (op.http_get("/readyz").await == (200, "ok\n".into())).then_some(())
    })
    .await;

    create_foreign_secret(&ns, "taken").await;
    for yaml in [MINIMAL, EXPIRING, CONFLICTING] {
        ns.apply_yaml(yaml).await;
    }
    let expiring = wait_status(&ns, "expiring", "issued", TIMEOUT, |t| revision(t) == 1).await;
    wait_status(&ns, "billing-client", "issued", TIMEOUT, |t| {
        revision(t) == 1
    })
    .await;
    wait_status(&ns, "wants-taken", "conflict", TIMEOUT, |t| {
        ready(t) == Some(("False", "SecretConflict"))
    })
    .await;
    ns.events_with_reason("wants-taken", "SecretConflict").await;
    op.quiet_offset().await;

    let m = op.scrape().await;
    let of = |name: &'static str| [("namespace", ns.name.as_str()), ("name", name)];
    let status = expiring.status.unwrap();
    assert_eq!(
        m.get("apitoken_expiration_timestamp_seconds", &of("expiring")),
        Some(status.expires_at.unwrap().0.as_second() as f64)
    );
    assert_eq!(
        m.get("apitoken_next_rotation_timestamp_seconds", &of("expiring")),
        Some(status.next_rotation_at.unwrap().0.as_second() as f64)
    );
    assert_eq!(m.get("apitoken_ready", &of("expiring")), Some(1.0));
    assert_eq!(m.get("apitoken_ready", &of("billing-client")), Some(1.0));
    assert_eq!(m.get("apitoken_ready", &of("wants-taken")), Some(0.0));
    assert_eq!(
        m.get(
            "apitoken_expiration_timestamp_seconds",
            &of("billing-client")
        ),
        None,
        "no expiry, no series"
    );
    for sample in m.series("apitoken_ready") {
        let keys: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["name", "namespace"],
            "labels namespace and name only"
        );
    }
    assert_eq!(
        m.get("apitoken_issues_total", &[("reason", "Created")]),
        Some(2.0)
    );
    assert_eq!(m.get("apitoken_leader", &[]), Some(1.0));
    // Every write, by resource and verb: a shell and an apply per issued Secret, a status per
    // ApiToken, one Event each. No finalizer: deletionPolicy Delete needs none (crate::deletion).
    // A first issue reads no Secret: the shell create is the check, so the conflicting token's
    // create was sent and refused (409), and then its Secret read.
    assert_eq!(
        m.writes(),
        writes(&[
            ("secrets", "create", 3.0),
            ("secrets", "patch", 2.0),
            ("apitokens/status", "patch", 3.0),
            ("events", "create", 3.0),
        ])
    );

    // A reconcile-triggering no-op: the same manifests re-applied by another field manager.
    for yaml in [MINIMAL, EXPIRING, CONFLICTING] {
        let token: ApiToken = serde_yaml::from_str(yaml).unwrap();
        ns.tokens()
            .patch(
                &token.name_any(),
                &PatchParams::apply("argocd-controller").force(),
                &Patch::Apply(&token),
            )
            .await
            .unwrap();
    }
    eventually("the re-apply to be reconciled", TIMEOUT, || async {
        let now = op.scrape().await;
        (reconciles(&now) >= reconciles(&m) + 3.0).then_some(())
    })
    .await;
    op.quiet_offset().await;
    let idle = op.scrape().await;
    assert_eq!(idle.writes(), m.writes(), "an idle operator writes nothing");
    assert_eq!(
        idle.series("apitoken_issues_total"),
        m.series("apitoken_issues_total")
    );

    apitoken_operator::rotate::request(&ns.client, &ns.name, "expiring", false)
        .await
        .unwrap();
    wait_status(&ns, "expiring", "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    let events = |m: &Scrape| {
        m.get(
            "apitoken_api_writes_total",
            &[("resource", "events"), ("verb", "create")],
        )
    };
    let before = eventually("the rotation's Event counted", TIMEOUT, || async {
        let m = op.scrape().await;
        (events(&m) == Some(4.0)).then_some(m)
    })
    .await;
    ns.tokens()
        .delete("billing-client", &DeleteParams::default())
        .await
        .unwrap();
    eventually("billing-client and its Secret gone", TIMEOUT, || async {
        let token = ns.tokens().get_opt("billing-client").await.unwrap();
        let secret = ns.secrets().get_opt("billing-client").await.unwrap();
        (token.is_none() && secret.is_none()).then_some(())
    })
    .await;
    // The revocation is one Event; the garbage collector, not the operator, deletes the Secret.
    let m = eventually("the request and the deletion counted", TIMEOUT, || async {
        let m = op.scrape().await;
        (events(&m) == Some(5.0)).then_some(m)
    })
    .await;
    let mut expected = before.writes();
    *expected
        .entry(("events".into(), "create".into()))
        .or_default() += 1.0;
    assert_eq!(m.writes(), expected, "one Event, nothing else");
    assert_eq!(
        m.get("apitoken_issues_total", &[("reason", "Requested")]),
        Some(1.0)
    );
    assert_eq!(
        m.get("apitoken_ready", &of("billing-client")),
        None,
        "the series went with the token"
    );
    assert!(!m.text.contains("billing-client"), "{}", m.text);
    assert!(reconciles(&m) > 0.0);
}

/// Every value the operator wrote into Secrets of `ns` (current and previous), as strings.
async fn token_values(ns: &TestNs) -> Vec<String> {
    let secrets = ns.secrets().list(&ListParams::default()).await.unwrap();
    secrets
        .items
        .iter()
        .flat_map(|s| ["token", "token.previous"].map(|k| secret_value(s, k)))
        .flatten()
        .collect()
}

#[tokio::test]
async fn no_token_value_ever_appears_in_the_metrics_or_health_output() {
    let ns = TestNs::new("e2e-novalue").await;
    let op = Operator::start(&ns);
    let specs = [
        ("plain", "{}"),
        (
            "hexed",
            "{format: {alphabet: hex, length: 64, prefix: hx_}}",
        ),
        (
            "urlsafe",
            "{format: {alphabet: base64url, checksum: false}, expiresAfter: 24h, rotation: {gracePeriod: 1h}}",
        ),
    ];
    for (name, spec) in specs {
        ns.apply_yaml(&format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {spec}"
        ))
        .await;
        wait_status(&ns, name, "issued", TIMEOUT, |t| revision(t) == 1).await;
    }
    // A rotation with a grace period: the old value is in token.previous, still valid.
    apitoken_operator::rotate::request(&ns.client, &ns.name, "urlsafe", false)
        .await
        .unwrap();
    wait_status(&ns, "urlsafe", "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    let values = token_values(&ns).await;
    assert_eq!(values.len(), 4, "three current values and one previous");

    let mut output = op.scrape().await.text;
    for path in ["/healthz", "/readyz", "/metrics"] {
        output += &op.http_get(path).await.1;
    }
    assert!(output.contains("apitoken_ready{namespace="), "{output}");
    // Not the value, nor any 12 characters of it (prefixes and checksums aside, that is random).
    for value in &values {
        for window in value.as_bytes().windows(12) {
            let piece = std::str::from_utf8(window).unwrap();
            assert!(
                !output.contains(piece),
                "a piece of a token value is in the output"
            );
        }
    }
}

#[tokio::test]
async fn reconcile_errors_are_counted_by_a_fixed_category_never_by_error_text() {
    let ns = TestNs::new("e2e-errors").await;
    // Everything the operator needs but creating Secrets: every first issue fails with 403.
    ns.grant_operator(operator_rules(&["get", "list", "watch", "patch", "delete"]))
        .await;
    let kubeconfig = operator_kubeconfig();
    let op = Operator::launch(
        &ns.name,
        &["--namespace", &ns.name],
        &[("KUBECONFIG", &kubeconfig)],
    );
    ns.apply_yaml(MINIMAL).await;
    let m = eventually("failed reconciles to be counted", TIMEOUT, || async {
        let m = op.scrape().await;
        let failed = m.get(
            "apitoken_reconcile_errors_total",
            &[("category", "kube_api")],
        )?;
        (failed >= 2.0).then_some(m)
    })
    .await;
    let categories = [
        "kube_api",
        "finalizer",
        "random",
        "invalid_object",
        "not_leader",
    ];
    for sample in m.series("apitoken_reconcile_errors_total") {
        let keys: Vec<&str> = sample.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["category"]);
        assert!(
            categories.contains(&sample.labels["category"].as_str()),
            "{sample:?}"
        );
    }
    // The refused requests were sent, so they count as writes; none succeeded.
    assert!(
        m.get(
            "apitoken_api_writes_total",
            &[("resource", "secrets"), ("verb", "create")]
        ) >= Some(2.0)
    );
    let of = [("namespace", ns.name.as_str()), ("name", "billing-client")];
    assert_eq!(m.get("apitoken_ready", &of), Some(0.0));
    assert!(
        ns.secrets()
            .get_opt("billing-client")
            .await
            .unwrap()
            .is_none()
    );
    assert!(op.logs().contains("forbidden"), "the log has the cause");

    // Granting the missing verb lets the retry (with backoff) through.
    ns.grant_operator(operator_rules(ALL_SECRET_VERBS)).await;
    wait_status(
        &ns,
        "billing-client",
        "issued",
        Duration::from_secs(60),
        |t| revision(t) == 1,
    )
    .await;
}
