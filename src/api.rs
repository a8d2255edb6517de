//! The `ApiToken` custom resource: spec as users write it, status as the operator reports it.
//!
//! Validation that the API server can do lives here as CEL rules, so `kubectl apply` rejects bad
//! input with a message a person understands. Defaults are applied by the operator (see
//! [`crate::policy`]), never by the schema, so GitOps tools see no drift between Git and the cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CEL: the field is a Go-style duration with whole numbers (`90s`, `10m`, `720h`, `1h30m`).
const IS_DURATION: &str = "self.matches('^([0-9]+(ms|s|m|h))+$')";
/// CEL: a duration field is at least one minute (checked only once it parses).
const AT_LEAST_A_MINUTE: &str =
    "!self.matches('^([0-9]+(ms|s|m|h))+$') || duration(self) >= duration('1m')";

#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "apitoken.dev",
    version = "v1alpha1",
    kind = "ApiToken",
    plural = "apitokens",
    shortname = "apitok",
    namespaced,
    status = "ApiTokenStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason","priority":1}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName"}"#,
    printcolumn = r#"{"name":"Revision","type":"integer","jsonPath":".status.revision"}"#,
    printcolumn = r#"{"name":"Expires","type":"date","jsonPath":".status.expiresAt"}"#,
    printcolumn = r#"{"name":"Next Rotation","type":"date","jsonPath":".status.nextRotationAt"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("size(self.metadata.name) <= 63")
        .message("ApiToken names are at most 63 characters: the name is a label value on its Secret")
)]
#[x_kube(
    validation = Rule::new("!has(self.rotation) || has(self.rotation.every) || has(self.rotation.schedule) || has(self.expiresAfter)")
        .message("rotation needs rotation.every or rotation.schedule (or expiresAfter, to renew before expiry)"),
    validation = Rule::new("!has(self.rotation) || !has(self.rotation.renewBefore) || (has(self.expiresAfter) && (!self.expiresAfter.matches('^([0-9]+(ms|s|m|h))+$') || !self.rotation.renewBefore.matches('^([0-9]+(ms|s|m|h))+$') || duration(self.expiresAfter) - duration(self.rotation.renewBefore) >= duration('1m')))")
        .message("rotation.renewBefore needs expiresAfter and must be at least 1m shorter than it"),
    validation = Rule::new("has(self.secretName) == has(oldSelf.secretName) && (!has(self.secretName) || self.secretName == oldSelf.secretName)")
        .message("secretName cannot be changed; create a new ApiToken instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenSpec {
    /// Free text describing the token's use. Editing it never issues a new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub display_name: Option<String>,

    /// What the token may do, e.g. `orders:read`: at most 32 distinct scopes of up to 64
    /// letters, digits and `_ . : / -`, starting with a letter or digit. Carried into verifier
    /// key sets for servers to enforce; changing them never issues a new value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend(
        "maxItems" = 32,
        "items" = {"type": "string", "minLength": 1, "maxLength": 64},
        "x-kubernetes-list-type" = "set"
    ))]
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[A-Za-z0-9][A-Za-z0-9_.:/-]*$'))")
        .message("scopes must be letters, digits, '_', '.', ':', '/' and '-', starting with a letter or digit, e.g. orders:read"))]
    pub scopes: Option<Vec<String>>,

    /// Name of the Secret holding the token, in the ApiToken's namespace. Default: the ApiToken's
    /// name. Cannot be changed after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("secretName must be a valid Secret name: lowercase letters, digits, '-' and '.'"))]
    pub secret_name: Option<String>,

    /// Shape of the generated value. Changing it issues a new value (reason SpecChanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TokenFormat>,

    /// Lifetime of each issued value, e.g. `720h`. Absent: values never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(IS_DURATION).message("expiresAfter must be a duration such as 90s, 10m or 720h"),
        validation = Rule::new(AT_LEAST_A_MINUTE).message("expiresAfter must be at least 1m"),
    )]
    pub expires_after: Option<String>,

    /// When to issue a new value automatically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<Rotation>,

    /// Extra labels, annotations and data keys for the Secret, for the workloads that read it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_template: Option<SecretTemplate>,

    /// What happens to the Secret when the ApiToken is deleted. Default: Delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// Workloads in this namespace whose Pods restart after each new value, for consumers that
    /// read the token from an environment variable (at most 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub rollout_restart: Option<Vec<RolloutTarget>>,
}

/// A workload whose pod template gets `apitoken.dev/restarted-for-revision` after each new value.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutTarget {
    /// Deployment, StatefulSet or DaemonSet.
    pub kind: WorkloadKind,
    /// The workload's name, in the ApiToken's namespace.
    #[schemars(length(max = 253))]
    #[x_kube(validation = Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message("rolloutRestart[].name must be a valid workload name: lowercase letters, digits, '-' and '.'"))]
    pub name: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkloadKind {
    #[default]
    Deployment,
    StatefulSet,
    DaemonSet,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct TokenFormat {
    /// Fixed text before the random part, so secret scanners can recognise the token (like `ghp_`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[A-Za-z][A-Za-z0-9_-]*$')")
        .message("format.prefix must start with a letter and contain only letters, digits, '_' and '-' (at most 32 characters)"))]
    pub prefix: Option<String>,

    /// Number of random characters, 32 to 256. Default: 40.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 32 && self <= 256")
        .message("format.length must be between 32 and 256 random characters"))]
    pub length: Option<i32>,

    /// Characters the random part is drawn from. Default: base62.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alphabet: Option<Alphabet>,

    /// Append a CRC32 checksum so scanners can reject look-alikes offline. Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<bool>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Alphabet {
    /// `A-Z a-z 0-9`: about 5.95 bits a character.
    #[default]
    Base62,
    /// `0-9 a-f`: 4 bits a character.
    Hex,
    /// `A-Z a-z 0-9 - _`: 6 bits a character.
    Base64url,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(
    validation = Rule::new("!(has(self.every) && has(self.schedule))").message("set either rotation.every or rotation.schedule, not both"),
    validation = Rule::new("!has(self.timeZone) || has(self.schedule)").message("rotation.timeZone applies only to rotation.schedule"),
)]
#[serde(rename_all = "camelCase")]
pub struct Rotation {
    /// Issue a new value this long after the last one, e.g. `168h`. At least `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(
        validation = Rule::new(IS_DURATION).message("rotation.every must be a duration such as 10m, 24h or 168h"),
        validation = Rule::new(AT_LEAST_A_MINUTE).message("rotation.every must be at least 1m"),
    )]
    pub every: Option<String>,

    /// Standard 5-field cron expression, e.g. `0 3 * * 0` (Sundays at 03:00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub schedule: Option<String>,

    /// IANA time zone for `schedule`, e.g. `Europe/Berlin`. Default: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: Option<String>,

    /// With expiresAfter: issue a new value this long before the current one expires.
    /// Default: one third of expiresAfter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(IS_DURATION).message("rotation.renewBefore must be a duration such as 10m or 240h"))]
    pub renew_before: Option<String>,

    /// Replace a value before it expires. `false` lets it expire (one-shot credentials). Default: true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,

    /// How long the previous value stays valid (`token.previous`) after a rotation. Default: 0s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new(IS_DURATION).message("rotation.gracePeriod must be a duration such as 0s, 10m or 24h"))]
    pub grace_period: Option<String>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Labels added to the Secret. The operator's own labels cannot be overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64, "additionalProperties" = {"type": "string", "maxLength": 63}))]
    #[x_kube(
        validation = Rule::new("self.all(k, k != 'app.kubernetes.io/managed-by' && !k.startsWith('apitoken.dev/'))")
            .message("secretTemplate.labels must not set app.kubernetes.io/managed-by or apitoken.dev/ keys"),
        validation = Rule::new(r"self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))")
            .message("secretTemplate.labels keys must be valid label keys: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'"),
        validation = Rule::new("self.all(k, self[k].matches('^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$'))")
            .message("secretTemplate.labels values must be valid label values: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"),
    )]
    pub labels: Option<BTreeMap<String, String>>,

    /// Annotations added to the Secret. The operator's own annotations cannot be overridden.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 64))]
    #[x_kube(
        validation = Rule::new("self.all(k, !k.startsWith('apitoken.dev/'))")
            .message("secretTemplate.annotations must not set apitoken.dev/ keys"),
        validation = Rule::new(r"self.all(k, size(k) <= 317 && k.matches('^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$'))")
            .message("secretTemplate.annotations keys must be valid annotation keys: an optional DNS prefix and '/', then at most 63 letters, digits, '-', '_' or '.'"),
    )]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Extra Secret keys. `{{ token }}` in a value is replaced by the current token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("maxProperties" = 32, "additionalProperties" = {"type": "string", "maxLength": 4096}))]
    #[x_kube(
        validation = Rule::new("!('token' in self) && !('token.previous' in self) && !('expires-at' in self)")
            .message("secretTemplate.data must not use the reserved keys token, token.previous or expires-at"),
        validation = Rule::new("self.all(k, size(k) <= 253 && k.matches('^[-._a-zA-Z0-9]+$'))")
            .message("secretTemplate.data keys must be valid Secret keys: letters, digits, '-', '_' and '.'"),
        validation = Rule::new("self.all(k, !self[k].replace('{{ token }}', '').contains('{{'))")
            .message("secretTemplate.data values may use only the placeholder {{ token }}"),
    )]
    pub data: Option<BTreeMap<String, String>>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Delete the Secret with the ApiToken.
    #[default]
    Delete,
    /// Keep the Secret and drop the operator's ownership of it.
    Retain,
}

/// Why a value was issued.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum IssueReason {
    /// The first value of a new ApiToken.
    Created,
    /// `rotation.every` or `rotation.schedule` came due.
    Schedule,
    /// The `apitoken.dev/rotate` annotation got a new value.
    Requested,
    /// The value was about to expire (`rotation.renewBefore`).
    Expiring,
    /// `spec.format` changed.
    SpecChanged,
    /// The Secret was deleted.
    SecretLost,
    /// The Secret's token was edited by someone else.
    Tampered,
    /// Not issued: the value was taken back from a Secret the operator had written for this
    /// ApiToken name that lost its owner (backup restore, deletionPolicy Retain and re-create).
    Adopted,
}

impl IssueReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "Created",
            Self::Schedule => "Schedule",
            Self::Requested => "Requested",
            Self::Expiring => "Expiring",
            Self::SpecChanged => "SpecChanged",
            Self::SecretLost => "SecretLost",
            Self::Tampered => "Tampered",
            Self::Adopted => "Adopted",
        }
    }
}

/// What the operator observed and did. Never holds a token value, only fingerprints.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The Secret the token lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Increments with every issued value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// `sha256:` and the first 12 hex digits of the SHA-256 of the current value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The format the current value was issued with, every default spelled out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<TokenFormat>,
    /// `spec.format` as it was written when the current value was issued (no defaults applied):
    /// a format change is a change to these fields, never a default that a new release changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_format: Option<TokenFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_rotation_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotation: Option<LastRotation>,
    /// The previous value while it is still valid (grace window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousValue>,
    /// The `apitoken.dev/rotate` annotation value already handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rotate_request: Option<String>,
    /// The last 10 issued values, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<HistoryEntry>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LastRotation {
    pub time: Time,
    pub reason: IssueReason,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreviousValue {
    pub fingerprint: String,
    pub valid_until: Time,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub revision: i64,
    pub fingerprint: String,
    pub issued_at: Time,
    pub reason: IssueReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_at: Option<Time>,
}

/// Annotation whose every new value asks for exactly one rotation.
pub const ROTATE_ANNOTATION: &str = "apitoken.dev/rotate";
/// Annotation that, set to "true" together with a rotate request, drops the previous value at once.
pub const INVALIDATE_ANNOTATION: &str = "apitoken.dev/invalidate-previous";
pub const FINALIZER: &str = "apitoken.dev/cleanup";
pub const FIELD_MANAGER: &str = "apitoken-operator";

impl ApiToken {
    /// The Secret this ApiToken writes: `spec.secretName` or the ApiToken's own name.
    pub fn secret_name(&self) -> String {
        self.spec
            .secret_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;

    /// Go-style duration with whole numbers: `90s`, `10m`, `720h`, `1h30m`.
    const DURATION_RE: &str = "^([0-9]+(ms|s|m|h))+$";

    #[test]
    fn an_empty_spec_serializes_as_an_empty_object() {
        let token = ApiToken::new("t", ApiTokenSpec::default());
        assert_eq!(
            serde_json::to_value(&token).unwrap()["spec"],
            serde_json::json!({})
        );
    }

    #[test]
    fn duration_pattern_in_rules_matches_constant() {
        // The CEL rules spell the pattern inline (attributes need literals); keep them in step.
        let crd = serde_json::to_string(&ApiToken::crd()).unwrap();
        assert!(crd.contains(DURATION_RE));
    }
}
