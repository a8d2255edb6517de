//! Every limit of the ApiToken spec, tried at the limit (accepted by `kubectl apply` and issued
//! by the operator) and one step past it (refused by `kubectl apply`, the message naming the
//! field and what is allowed).

use crate::harness::*;

/// (name, spec at the limit, spec one step past it, what kubectl says about the latter)
fn table() -> Vec<(&'static str, String, String, &'static str)> {
    let targets = |n: usize| {
        let list: Vec<String> = (0..n)
            .map(|i| format!("{{kind: Deployment, name: web-{i}}}"))
            .collect();
        format!("{{rolloutRestart: [{}]}}", list.join(", "))
    };
    let scopes = |n: usize| {
        let list: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        format!("{{scopes: [{}]}}", list.join(", "))
    };
    vec![
        (
            "min-length",
            "{format: {length: 32}}".into(),
            "{format: {length: 31}}".into(),
            "format.length must be between 32 and 256 random characters",
        ),
        (
            "max-length",
            "{format: {length: 256}}".into(),
            "{format: {length: 257}}".into(),
            "format.length must be between 32 and 256 random characters",
        ),
        (
            "prefix",
            format!("{{format: {{prefix: p{}}}}}", "x".repeat(31)),
            format!("{{format: {{prefix: p{}}}}}", "x".repeat(32)),
            "spec.format.prefix: Too long",
        ),
        (
            "every",
            "{rotation: {every: 1m}}".into(),
            "{rotation: {every: 59s}}".into(),
            "rotation.every must be at least 1m",
        ),
        (
            "expiry",
            "{expiresAfter: 1m}".into(),
            "{expiresAfter: 59s}".into(),
            "expiresAfter must be at least 1m",
        ),
        (
            "renew",
            "{expiresAfter: 1h, rotation: {renewBefore: 59m}}".into(),
            "{expiresAfter: 1h, rotation: {renewBefore: 59m1s}}".into(),
            "rotation.renewBefore needs expiresAfter and must be at least 1m shorter than it",
        ),
        (
            "scopes",
            scopes(32),
            scopes(33),
            "must have at most 32 items",
        ),
        (
            "scope-length",
            format!("{{scopes: [{}]}}", "s".repeat(64)),
            format!("{{scopes: [{}]}}", "s".repeat(65)),
            "may not be more than 64 bytes",
        ),
        (
            "rollouts",
            targets(16),
            targets(17),
            "must have at most 16 items",
        ),
    ]
}

fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}

#[tokio::test]
async fn every_limit_is_accepted_at_the_limit_and_refused_one_step_past_it() {
    let ns = TestNs::new("e2e-limits").await;
    let _op = Operator::start(&ns);
    for (name, at, past, message) in table() {
        let (ok, out) = kubectl_apply(&ns.name, &manifest(name, &past));
        assert!(!ok, "{name}: one step past the limit was accepted: {past}");
        assert!(
            out.contains(message),
            "{name}: expected {message:?} in:\n{out}"
        );
        let (ok, out) = kubectl_apply(&ns.name, &manifest(name, &at));
        assert!(ok, "{name}: the limit itself was refused: {at}\n{out}");
    }
    for (name, ..) in table() {
        wait_status(&ns, name, "Ready=True", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued"))
        })
        .await;
    }
    ns.delete_namespace().await;
}
