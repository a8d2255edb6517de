use http::Method;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;

use super::tokens::{TokenLabels, row};
use super::*;

fn write(resource: &str, verb: &'static str) -> Option<Write> {
    Some(Write {
        resource: resource.into(),
        verb,
    })
}

#[test]
fn writes_are_classified_by_resource_and_verb_and_reads_are_not() {
    let cases = [
        (
            Method::POST,
            "/api/v1/namespaces/ns1/secrets?fieldManager=apitoken-operator",
            write("secrets", "create"),
        ),
        (
            Method::PATCH,
            "/api/v1/namespaces/ns1/secrets/billing?fieldManager=x&force=true",
            write("secrets", "patch"),
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/ns1/secrets/billing",
            write("secrets", "delete"),
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/ns1/secrets",
            write("secrets", "deletecollection"),
        ),
        (
            Method::PATCH,
            "/apis/apitoken.dev/v1alpha1/namespaces/ns1/apitokens/a/status",
            write("apitokens/status", "patch"),
        ),
        (
            Method::PATCH,
            "/apis/apitoken.dev/v1alpha1/namespaces/ns1/apitokens/a",
            write("apitokens", "patch"),
        ),
        (
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/ns1/events",
            write("events", "create"),
        ),
        (
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases/apitoken-operator",
            write("leases", "update"),
        ),
        // The namespaces resource itself (cluster-scoped).
        (
            Method::POST,
            "/api/v1/namespaces",
            write("namespaces", "create"),
        ),
        (
            Method::DELETE,
            "/api/v1/namespaces/ns1",
            write("namespaces", "delete"),
        ),
        (Method::GET, "/api/v1/namespaces/ns1/secrets/billing", None),
        (
            Method::GET,
            "/apis/apitoken.dev/v1alpha1/apitokens?watch=true&resourceVersion=5",
            None,
        ),
        (Method::HEAD, "/api/v1/namespaces/ns1/secrets", None),
        (Method::POST, "/version", None),
    ];
    for (method, path, want) in cases {
        assert_eq!(classify(&method, path), want, "{method} {path}");
    }
}

#[test]
fn reads_are_classified_as_get_list_or_watch_and_writes_are_not() {
    let cases = [
        (
            "/api/v1/namespaces/ns1/secrets/billing",
            None,
            write("secrets", "get"),
        ),
        (
            "/apis/apitoken.dev/v1alpha1/namespaces/ns1/apitokens/a/status",
            None,
            write("apitokens/status", "get"),
        ),
        (
            "/api/v1/namespaces/ns1/secrets",
            Some("labelSelector=a%3Db&limit=500"),
            write("secrets", "list"),
        ),
        (
            "/apis/apitoken.dev/v1alpha1/apitokens",
            Some("resourceVersion=0&watch=true&timeoutSeconds=290"),
            write("apitokens", "watch"),
        ),
        ("/api/v1/namespaces/ns1", None, write("namespaces", "get")),
        (
            "/api/v1/namespaces",
            Some("watch=1"),
            write("namespaces", "watch"),
        ),
        ("/version", None, None),
        ("/apis", None, None),
    ];
    for (path, query, expected) in cases {
        assert_eq!(
            classify_read(&Method::GET, path, query),
            expected,
            "{path}?{query:?}"
        );
    }
    for method in [Method::POST, Method::PATCH, Method::PUT, Method::DELETE] {
        assert_eq!(
            classify_read(&method, "/api/v1/namespaces/ns1/secrets/b", None),
            None
        );
    }
}

fn token(ns: &str, name: &str, status: serde_json::Value) -> ApiToken {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apitoken.dev/v1alpha1",
        "kind": "ApiToken",
        "metadata": {"name": name, "namespace": ns},
        "spec": {},
        "status": status,
    }))
    .unwrap()
}

fn ready(status: &str) -> serde_json::Value {
    serde_json::json!([{"type": "Ready", "status": status, "reason": "Issued", "message": "",
        "lastTransitionTime": "2026-11-22T10:00:00Z"}])
}

#[test]
fn a_token_row_reads_expiry_next_rotation_and_readiness_from_status() {
    let t = token(
        "pay",
        "billing",
        serde_json::json!({"conditions": ready("True"),
            "expiresAt": "2026-12-22T10:00:00Z", "nextRotationAt": "2026-11-29T10:00:00Z"}),
    );
    let r = row(&t);
    assert_eq!(
        r.labels,
        TokenLabels {
            namespace: "pay".into(),
            name: "billing".into()
        }
    );
    assert_eq!(r.expires_at, Some(1_797_933_600));
    assert_eq!(r.next_rotation_at, Some(1_795_946_400));
    assert!(r.ready);

    let r = row(&token("pay", "fresh", serde_json::json!({})));
    assert_eq!(
        (r.expires_at, r.next_rotation_at, r.ready),
        (None, None, false)
    );
    let r = row(&token(
        "pay",
        "stuck",
        serde_json::json!({"conditions": ready("False")}),
    ));
    assert!(!r.ready);
}

#[test]
fn the_exposition_has_fixed_names_and_one_series_per_token_that_goes_with_it() {
    let (reader, mut writer) = reflector::store();
    let billing = token(
        "pay",
        "billing",
        serde_json::json!({"conditions": ready("True"), "expiresAt": "2026-12-22T10:00:00Z"}),
    );
    writer.apply_watcher_event(&Event::Apply(billing.clone()));
    writer.apply_watcher_event(&Event::Apply(token(
        "ops",
        "cron",
        serde_json::json!({
        "conditions": ready("False"), "nextRotationAt": "2026-11-29T10:00:00Z"}),
    )));
    let metrics = Metrics::new(reader, || false);
    let audit = |action, reason| Audit {
        action,
        namespace: "pay".into(),
        name: "billing".into(),
        revision: Some(2),
        fingerprint: None,
        reason,
        actor: None,
    };
    metrics.record(&audit("issue", "Created"));
    metrics.record(&audit("rotate", "Schedule"));
    metrics.record(&audit("rotate", "Schedule"));
    metrics.record(&audit("expire", "Expired"));
    metrics.record(&audit("revoke", "Deleted"));
    metrics.reconcile_failed("kube_api");
    drop(metrics.time_reconcile());

    let text = metrics.encode();
    for line in [
        "apitoken_expiration_timestamp_seconds{namespace=\"pay\",name=\"billing\"} 1797933600",
        "apitoken_next_rotation_timestamp_seconds{namespace=\"ops\",name=\"cron\"} 1795946400",
        "apitoken_ready{namespace=\"ops\",name=\"cron\"} 0",
        "apitoken_ready{namespace=\"pay\",name=\"billing\"} 1",
        "apitoken_issues_total{reason=\"Created\"} 1",
        "apitoken_issues_total{reason=\"Schedule\"} 2",
        "apitoken_reconcile_errors_total{category=\"kube_api\"} 1",
        "apitoken_reconcile_duration_seconds_count 1",
        "apitoken_leader 0",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(
        !text.contains("Expired") && !text.contains("Deleted"),
        "not issues:\n{text}"
    );
    assert!(
        !text.contains("expiration_timestamp_seconds{namespace=\"ops\""),
        "no expiry, no series"
    );

    writer.apply_watcher_event(&Event::Delete(billing));
    let text = metrics.encode();
    assert!(
        !text.contains("billing"),
        "series go with the token:\n{text}"
    );
}
