//! ApiTokenVerifier key sets on the real control plane: what they hold, when values leave, and
//! that they never hold a value and never churn.

use std::time::Duration;

use apitoken_operator::token::{Format, generate};
use apitoken_verify::{State, Verdict};
use jiff::Timestamp;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};

use crate::harness::*;
use crate::keysets::*;

const SELECTED: &str = "api: orders";

/// Orders API: two selected tokens with scopes, one unselected.
async fn three_tokens(ns: &TestNs) -> [String; 3] {
    let values = apply_orders(
        ns,
        &[
            ("writer", SELECTED, "{scopes: [orders:write, orders:read]}"),
            ("reader", SELECTED, "{scopes: [orders:read]}"),
            ("billing", "api: billing", "{scopes: [orders:read]}"),
        ],
    )
    .await;
    values.try_into().expect("three values")
}

#[tokio::test]
async fn two_selected_tokens_verify_and_nothing_else_does() {
    let ns = TestNs::new("e2e-keyset").await;
    let _op = Operator::start(&ns);
    let [writer, reader, billing] = three_tokens(&ns).await;
    let doc = ns
        .wait_keyset("orders-keys", "both selected tokens", |d| d.keys.len() == 2)
        .await;
    assert_eq!(entries(&doc), ["reader@1/current", "writer@1/current"]);

    match verdict(&doc, &writer, &[]) {
        Verdict::Valid(who) => {
            assert_eq!(
                (who.namespace.as_str(), who.name.as_str()),
                (ns.name.as_str(), "writer")
            );
            assert_eq!((who.revision, who.state), (1, State::Current));
            assert_eq!(who.scopes, ["orders:read", "orders:write"]);
        }
        other => panic!("writer: {other}"),
    }
    assert!(verdict(&doc, &reader, &["orders:read"]).is_valid());
    // Scopes are enforced.
    assert!(verdict(&doc, &writer, &["orders:write"]).is_valid());
    assert_eq!(
        verdict(&doc, &reader, &["orders:write"]).result(),
        "insufficient_scope"
    );
    // A well-formed value never issued, a wrong checksum, an unselected token.
    let random = generate(&Format::default()).unwrap();
    assert_eq!(verdict(&doc, random.expose(), &[]), Verdict::Unknown);
    let bad_sum = wrong_checksum(&writer);
    assert_eq!(verdict(&doc, &bad_sum, &[]).result(), "malformed");
    assert_eq!(verdict(&doc, &billing, &[]), Verdict::Unknown);

    // Status, the key-set Secret's shape, and no value anywhere in it.
    // Status is written after the key set: wait for it rather than racing it.
    let status = eventually("the verifier's status", TIMEOUT, || async {
        ns.verifiers().get("orders").await.ok()?.status
    })
    .await;
    assert_eq!((status.tokens, status.keys), (Some(2), Some(2)));
    assert_eq!(status.conditions[0].reason, "Synced");
    let secret = ns.secrets().get("orders-keys").await.unwrap();
    assert_eq!(secret.labels()["apitoken.dev/verifier"], "orders");
    assert_eq!(secret.owner_references()[0].kind, "ApiTokenVerifier");
    assert_eq!(secret.data.as_ref().unwrap().len(), 1, "only keyset.json");
    assert_no_plaintext(&secret, &[writer.clone(), reader.clone(), billing.clone()]);

    // The verify command on a copy of the mounted files.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keyset.json"), doc.render()).unwrap();
    let run = |value: &str, scopes: &[&str]| {
        use std::io::Write;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_apitoken-operator"))
            .arg("verify")
            .arg("--keyset")
            .arg(dir.path())
            .args(scopes.iter().flat_map(|s| ["--scope", s]))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{value}").unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, line) = run(&writer, &["orders:write"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        line,
        format!(
            "valid: {}/writer revision 1 (current) scopes [orders:read orders:write]\n",
            ns.name
        )
    );
    assert!(!line.contains(&writer));
    assert_eq!(run(&reader, &["orders:write"]).0, Some(1));
    let unreadable = std::process::Command::new(env!("CARGO_BIN_EXE_apitoken-operator"))
        .args(["verify", "--keyset", "/nonexistent"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(unreadable.status.code(), Some(2), "could not check");
    assert_eq!(
        run(&billing, &[]),
        (Some(1), "unknown: not in the key set\n".into())
    );
    ns.delete_namespace().await;
}

#[tokio::test]
async fn the_old_value_verifies_until_the_grace_ends_then_only_the_new_one() {
    let ns = TestNs::new("e2e-ks-grace").await;
    let _op = Operator::start(&ns);
    ns.kubectl_apply(&token_yaml(
        "t",
        SELECTED,
        "{rotation: {every: 1h, gracePeriod: 20s}}",
    ));
    ns.kubectl_apply(&verifier_yaml("v", "{matchLabels: {api: orders}}", "keys"));
    let old = ns.value_of("t").await;
    ns.wait_keyset("keys", "revision 1", |d| entries(d) == ["t@1/current"])
        .await;

    request_rotation(&ns, "t", "r1", false).await;
    let doc = ns
        .wait_keyset("keys", "revisions 1 and 2", |d| d.keys.len() == 2)
        .await;
    assert_eq!(entries(&doc), ["t@1/previous", "t@2/current"]);
    let new = ns.value_of("t").await;
    assert_eq!(verdict(&doc, &old, &[]).result(), "valid_previous");
    assert_eq!(verdict(&doc, &new, &[]).result(), "valid");
    let until: Timestamp = doc.keys[0].valid_until.as_deref().unwrap().parse().unwrap();

    ns.wait_keyset("keys", "the previous value gone", |d| d.keys.len() == 1)
        .await;
    let gone = Timestamp::now();
    assert!(
        gone >= until,
        "removed {:#} before the grace ended",
        until.duration_since(gone)
    );
    assert!(
        gone.duration_since(until).as_secs_f64() < 5.0,
        "removed late: {gone} vs {until}"
    );
    let doc = ns.wait_keyset("keys", "only revision 2", |_| true).await;
    assert_eq!(entries(&doc), ["t@2/current"]);
    assert_eq!(verdict(&doc, &old, &[]), Verdict::Unknown);
    assert!(verdict(&doc, &new, &[]).is_valid());
    ns.assert_keyset_clean("keys", &[old, new]).await;
    ns.delete_namespace().await;
}

#[tokio::test]
async fn invalidation_and_deletion_remove_the_value_at_once() {
    let ns = TestNs::new("e2e-ks-revoke").await;
    let _op = Operator::start(&ns);
    ns.kubectl_apply(&token_yaml(
        "leaked",
        SELECTED,
        "{rotation: {every: 1h, gracePeriod: 1h}}",
    ));
    ns.kubectl_apply(&token_yaml("gone", SELECTED, "{}"));
    ns.kubectl_apply(&verifier_yaml("v", "{matchLabels: {api: orders}}", "keys"));
    let (leaked, gone) = (ns.value_of("leaked").await, ns.value_of("gone").await);
    ns.wait_keyset("keys", "both tokens", |d| d.keys.len() == 2)
        .await;

    // A leaked value: rotate with invalidate-previous, despite the hour of grace.
    request_rotation(&ns, "leaked", "leak-1", true).await;
    let doc = ns
        .wait_keyset("keys", "revision 2 without revision 1", |d| {
            entries(d).contains(&"leaked@2/current".to_owned())
        })
        .await;
    assert_eq!(entries(&doc), ["gone@1/current", "leaked@2/current"]);
    assert_eq!(verdict(&doc, &leaked, &[]), Verdict::Unknown);
    let fresh = ns.value_of("leaked").await;

    ns.tokens()
        .delete("gone", &Default::default())
        .await
        .unwrap();
    let doc = ns
        .wait_keyset("keys", "the deleted token gone", |d| d.keys.len() == 1)
        .await;
    assert_eq!(verdict(&doc, &gone, &[]), Verdict::Unknown);
    assert!(verdict(&doc, &fresh, &[]).is_valid());
    ns.assert_keyset_clean("keys", &[leaked, gone, fresh]).await;
    ns.delete_namespace().await;
}

#[tokio::test]
async fn an_expired_value_without_renewal_leaves_at_its_expiry() {
    let ns = TestNs::new("e2e-ks-expiry").await;
    let _op = Operator::start(&ns);
    ns.kubectl_apply(&token_yaml(
        "once",
        SELECTED,
        "{expiresAfter: 1m, rotation: {autoRenew: false}}",
    ));
    ns.kubectl_apply(&verifier_yaml("v", "{matchLabels: {api: orders}}", "keys"));
    let value = ns.value_of("once").await;
    let doc = ns
        .wait_keyset("keys", "the value", |d| d.keys.len() == 1)
        .await;
    let expires: Timestamp = doc.keys[0].expires_at.as_deref().unwrap().parse().unwrap();
    assert!(verdict(&doc, &value, &[]).is_valid());

    let left = eventually("the value to leave", Duration::from_secs(90), || async {
        let doc = keyset_document(&ns.secrets().get("keys").await.ok()?)?;
        doc.keys.is_empty().then(Timestamp::now)
    })
    .await;
    assert!(left >= expires, "left before its expiry");
    assert!(
        left.duration_since(expires).as_secs_f64() < 5.0,
        "left late: {left} vs {expires}"
    );
    ns.assert_keyset_clean("keys", &[value]).await;
    ns.delete_namespace().await;
}

#[tokio::test]
async fn a_label_change_removes_entries_and_a_scope_change_keeps_the_value() {
    let ns = TestNs::new("e2e-ks-edit").await;
    let _op = Operator::start(&ns);
    let [writer, reader, _] = three_tokens(&ns).await;
    ns.wait_keyset("orders-keys", "both tokens", |d| d.keys.len() == 2)
        .await;

    // Scopes change: the entry follows, the value and revision do not change.
    ns.kubectl_apply(&token_yaml(
        "reader",
        SELECTED,
        "{scopes: [orders:read, refunds:read]}",
    ));
    let doc = ns
        .wait_keyset("orders-keys", "new scopes", |d| {
            d.keys
                .iter()
                .any(|e| e.scopes.contains(&"refunds:read".to_owned()))
        })
        .await;
    assert!(verdict(&doc, &reader, &["refunds:read"]).is_valid());
    assert_eq!(ns.value_of("reader").await, reader, "scopes never rotate");
    assert_eq!(revision(&ns.tokens().get("reader").await.unwrap()), 1);

    // Out of the selector: its entries go; the other token stays.
    ns.kubectl_apply(&token_yaml(
        "writer",
        "api: legacy",
        "{scopes: [orders:write, orders:read]}",
    ));
    let doc = ns
        .wait_keyset("orders-keys", "writer deselected", |d| d.keys.len() == 1)
        .await;
    assert_eq!(entries(&doc), ["reader@1/current"]);
    assert_eq!(verdict(&doc, &writer, &[]), Verdict::Unknown);
    // Status is written after the key set: wait for it rather than racing it.
    eventually(
        "the verifier's status to count one token",
        TIMEOUT,
        || async {
            let status = ns.verifiers().get("orders").await.ok()?.status?;
            (status.tokens == Some(1)).then_some(())
        },
    )
    .await;
    ns.assert_keyset_clean("orders-keys", &[writer, reader])
        .await;
    ns.delete_namespace().await;
}

#[tokio::test]
async fn reapplying_and_restarting_never_rewrite_the_key_set() {
    let ns = TestNs::new("e2e-ks-idem").await;
    let mut op = Operator::start(&ns);
    let values = three_tokens(&ns).await;
    ns.wait_keyset("orders-keys", "both tokens", |d| d.keys.len() == 2)
        .await;
    op.quiet_offset().await;
    let before = ns.secrets().get("orders-keys").await.unwrap();
    let verifier = ns.verifiers().get("orders").await.unwrap();
    let events = ns.events("orders").await.len();

    three_tokens(&ns).await; // the same manifests again
    op.stop();
    op.spawn();
    op.quiet_offset().await;

    let after = ns.secrets().get("orders-keys").await.unwrap();
    assert_eq!(
        after.resource_version(),
        before.resource_version(),
        "key set rewritten"
    );
    let again = ns.verifiers().get("orders").await.unwrap();
    assert_eq!(
        again.resource_version(),
        verifier.resource_version(),
        "verifier rewritten"
    );
    assert_eq!(ns.events("orders").await.len(), events, "no new Event");
    assert_no_plaintext(&after, &values);
    ns.delete_namespace().await;
}

/// The key set is the operator's own Secret: deleted by hand, it is written again at once (the
/// verifier watches it, with the operator's label, like any other Secret).
#[tokio::test]
async fn a_deleted_key_set_is_written_again() {
    let ns = TestNs::new("e2e-ks-deleted").await;
    let _op = Operator::start(&ns);
    let values = three_tokens(&ns).await;
    ns.wait_keyset("orders-keys", "both tokens", |d| d.keys.len() == 2)
        .await;
    let before = ns.secrets().get("orders-keys").await.unwrap();
    ns.secrets()
        .delete("orders-keys", &Default::default())
        .await
        .unwrap();
    let doc = ns
        .wait_keyset("orders-keys", "the key set written again", |d| {
            d.keys.len() == 2
        })
        .await;
    assert_eq!(entries(&doc), ["reader@1/current", "writer@1/current"]);
    let after = ns.secrets().get("orders-keys").await.unwrap();
    assert_ne!(after.uid(), before.uid(), "a new Secret");
    assert_no_plaintext(&after, &values);
    ns.delete_namespace().await;
}

#[tokio::test]
async fn a_foreign_secret_of_that_name_is_a_conflict_and_left_untouched() {
    let ns = TestNs::new("e2e-ks-conflict").await;
    let _op = Operator::start(&ns);
    let foreign: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "keys"}, "stringData": {"mine": "do not touch"}
    }))
    .unwrap();
    ns.secrets()
        .create(&Default::default(), &foreign)
        .await
        .unwrap();
    let rv = ns.secrets().get("keys").await.unwrap().resource_version();
    ns.kubectl_apply(&token_yaml("t", SELECTED, "{}"));
    ns.kubectl_apply(&verifier_yaml("v", "{matchLabels: {api: orders}}", "keys"));
    let conflict = ns.single_event("v", "SecretConflict").await;
    assert!(conflict.note.unwrap().contains("Secret keys exists"));
    let v = ns.verifiers().get("v").await.unwrap();
    let ready = &v.status.unwrap().conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "SecretConflict")
    );
    assert_eq!(
        ns.secrets().get("keys").await.unwrap().resource_version(),
        rv
    );

    ns.secrets()
        .delete("keys", &Default::default())
        .await
        .unwrap();
    ns.wait_keyset("keys", "the key set once the foreign Secret is gone", |d| {
        d.keys.len() == 1
    })
    .await;
    ns.assert_keyset_clean("keys", &[ns.value_of("t").await])
        .await;
    ns.delete_namespace().await;
}

/// Sets the rotate annotation (and invalidate-previous) as `apitoken-operator rotate` does.
async fn request_rotation(ns: &TestNs, name: &str, request: &str, invalidate: bool) {
    let patch = serde_json::json!({"metadata": {"annotations": {
        "apitoken.dev/rotate": request,
        "apitoken.dev/invalidate-previous": if invalidate { Some("true") } else { None },
    }}});
    ns.tokens()
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// examples/verifying-proxy.yaml is accepted as a whole and its key set holds its token.
/// (The proxy sidecar itself runs only on a cluster with a node.)
#[tokio::test]
async fn the_verifying_proxy_example_applies_and_fills_its_key_set() {
    let ns = TestNs::new("e2e-ks-example").await;
    let _op = Operator::start(&ns);
    ns.kubectl_apply(include_str!("../../examples/verifying-proxy.yaml"));
    let doc = ns
        .wait_keyset("orders-api-keyset", "the example's token", |d| {
            d.keys.len() == 1
        })
        .await;
    assert_eq!(entries(&doc), ["orders-client@1/current"]);
    assert_eq!(doc.keys[0].scopes, ["orders:read", "orders:write"]);
    let value = ns.value_of("orders-client").await;
    assert!(verdict(&doc, &value, &["orders:read"]).is_valid());
    ns.assert_keyset_clean("orders-api-keyset", &[value]).await;
    ns.delete_namespace().await;
}
