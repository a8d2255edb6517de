//! Helpers shared by the fault tests: cluster fault injection and reading the operator's logs.

use std::process::Command;

use apitoken_operator::api::ApiToken;

use crate::harness::Operator;

/// Runs `cluster.sh <command>` on the cluster $KUBECONFIG belongs to (its directory).
pub fn cluster(command: &str) {
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let dir = std::path::Path::new(&kubeconfig).parent().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cluster/cluster.sh");
    let status = Command::new("bash")
        .args([script, command])
        .env("CLUSTER_DIR", dir)
        .env(
            "CLUSTER_NODE",
            std::env::var("CLUSTER_NODE").unwrap_or("0".into()),
        )
        .status()
        .expect("run cluster.sh");
    assert!(status.success(), "cluster.sh {command} failed");
}

/// Audit lines (target `audit`) for `name` with `revision`.
pub fn audit_count(op: &Operator, name: &str, revision: i64) -> usize {
    op.json_lines("audit")
        .iter()
        .filter(|l| l["name"] == name && l["revision"] == revision)
        .count()
}

/// The largest number of reconciles in flight at once, from the `reconcile start`/`reconcile
/// end` debug lines written after `offset`.
pub fn max_in_flight(op: &Operator, offset: usize) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for line in op.logs_since(offset).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v["message"].as_str() {
            Some("reconcile start") => {
                now += 1;
                max = max.max(now);
            }
            Some("reconcile end") => now = now.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Reconciles that ended without an error after `offset`.
pub fn succeeded(op: &Operator, offset: usize) -> usize {
    op.logs_since(offset)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "reconcile end" && v["ok"] == true)
        .count()
}

/// Lines of each kind (`reconcile start`, `rotated`-style audit, warnings ...) after `offset`.
pub fn count_messages(op: &Operator, offset: usize, message: &str) -> usize {
    op.logs_since(offset)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == message)
        .count()
}

pub fn fingerprint(t: &ApiToken) -> String {
    t.status
        .as_ref()
        .and_then(|s| s.fingerprint.clone())
        .expect("status.fingerprint")
}

pub fn manifest(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {spec}\n"
    )
}
