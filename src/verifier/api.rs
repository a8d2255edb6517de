//! The `ApiTokenVerifier` custom resource: which ApiTokens a key set holds and where it is kept.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "apitoken.dev",
    version = "v1alpha1",
    kind = "ApiTokenVerifier",
    plural = "apitokenverifiers",
    shortname = "apitokv",
    namespaced,
    status = "ApiTokenVerifierStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".spec.secretName"}"#,
    printcolumn = r#"{"name":"Tokens","type":"integer","jsonPath":".status.tokens"}"#,
    printcolumn = r#"{"name":"Keys","type":"integer","jsonPath":".status.keys"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(
    validation = Rule::new("self.secretName == oldSelf.secretName")
        .message("secretName cannot be changed; create a new ApiTokenVerifier instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenVerifierSpec {
    /// Which ApiTokens of this namespace the key set holds, by label (`{}`: all of them).
    #[x_kube(
        validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, e.operator in ['In', 'NotIn', 'Exists', 'DoesNotExist'])")
            .message("selector.matchExpressions[].operator must be In, NotIn, Exists or DoesNotExist"),
        validation = Rule::new("!has(self.matchExpressions) || self.matchExpressions.all(e, (e.operator in ['In', 'NotIn']) == (has(e.values) && size(e.values) > 0))")
            .message("selector.matchExpressions[].values must be non-empty for In and NotIn and absent for Exists and DoesNotExist"),
    )]
    pub selector: LabelSelector,

    /// The Secret the operator writes the key set into (key `keyset.json`), in this namespace.
    /// Cannot be changed after creation.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("secretName must be a valid Secret name: lowercase letters, digits, '-' and '.'"))]
    pub secret_name: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenVerifierStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// ApiTokens with at least one value in the key set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<i64>,
    /// Values in the key set (current, and previous ones within their grace window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<i64>,
}

/// Label on the key-set Secret naming its ApiTokenVerifier.
pub const VERIFIER_LABEL: &str = "apitoken.dev/verifier";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_and_secret_name_are_required() {
        let crd =
            serde_json::to_value(<ApiTokenVerifier as kube::CustomResourceExt>::crd()).unwrap();
        let spec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["required"],
            serde_json::json!(["secretName", "selector"])
        );
    }
}
