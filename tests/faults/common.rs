//! Helpers shared by the fault tests: cluster fault injection and reading the operator's logs.

use apitoken_operator::api::ApiToken;

use crate::harness::Operator;

/// Audit lines (target `audit`) for `name` with `revision`.
pub fn audit_count(op: &Operator, name: &str, revision: i64) -> usize {
    op.json_lines("audit")
        .iter()
        .filter(|l| l["name"] == name && l["revision"] == revision)
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
