//! Kubernetes Events (one shared Recorder) and the structured audit log (tracing target `audit`).
//!
//! Both carry revisions, fingerprints and reasons; neither ever sees a token value.

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde::Serialize;

use crate::api::{ApiToken, ROTATE_ANNOTATION};

/// Fixed PascalCase Event reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Reason {
    Issued,
    Rotated,
    Expired,
    Revoked,
    Retained,
    SecretConflict,
    InvalidSpec,
    SecretLost,
    Tampered,
    /// An ApiTokenVerifier's key set was written.
    KeySetUpdated,
    RolloutRestarted,
    RolloutTargetMissing,
    Adopted,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "Issued",
            Self::Rotated => "Rotated",
            Self::Expired => "Expired",
            Self::Revoked => "Revoked",
            Self::Retained => "Retained",
            Self::SecretConflict => "SecretConflict",
            Self::InvalidSpec => "InvalidSpec",
            Self::SecretLost => "SecretLost",
            Self::Tampered => "Tampered",
            Self::KeySetUpdated => "KeySetUpdated",
            Self::RolloutRestarted => "RolloutRestarted",
            Self::RolloutTargetMissing => "RolloutTargetMissing",
            Self::Adopted => "Adopted",
        }
    }

    fn event_type(self) -> EventType {
        match self {
            Self::Issued
            | Self::Rotated
            | Self::Revoked
            | Self::Retained
            | Self::Adopted
            | Self::RolloutRestarted
            | Self::KeySetUpdated => EventType::Normal,
            _ => EventType::Warning,
        }
    }
}

/// Publishes an Event about `object` (an ApiToken or ApiTokenVerifier). `related` is the Secret at the version the Event concerns:
/// besides telling the reader which Secret changed, it keeps the Recorder from folding two
/// rotations into one Event series with the first one's note. Failing to record an Event never
/// fails a reconcile: status and the audit log are the durable record.
pub async fn event<K: Resource<DynamicType = ()>>(
    recorder: &Recorder,
    object: &K,
    reason: Reason,
    note: String,
    related: Option<&Secret>,
) {
    let ev = Event {
        type_: reason.event_type(),
        reason: reason.as_str().into(),
        note: Some(note),
        action: reason.as_str().into(),
        secondary: related.map(|s| s.object_ref(&())),
    };
    if let Err(error) = recorder.publish(&ev, &object.object_ref(&())).await {
        tracing::warn!(%error, reason = reason.as_str(), "failed to publish event");
    }
}

/// One audit record: what happened to which token, never its value.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub action: &'static str,
    pub namespace: String,
    pub name: String,
    pub revision: Option<i64>,
    pub fingerprint: Option<String>,
    pub reason: &'static str,
    pub actor: Option<String>,
}

/// Writes one JSON line to the `audit` target.
pub fn audit(record: &Audit) {
    let time = jiff::Timestamp::now().to_string();
    tracing::info!(
        target: "audit",
        time = %time,
        action = record.action,
        namespace = %record.namespace,
        name = %record.name,
        revision = record.revision,
        fingerprint = record.fingerprint.as_deref(),
        reason = record.reason,
        actor = record.actor.as_deref(),
        "{}", record.action
    );
}

/// The field manager that last set the rotate annotation, from managedFields.
pub fn rotate_requester(token: &ApiToken) -> Option<String> {
    let key = format!("f:{ROTATE_ANNOTATION}");
    token
        .managed_fields()
        .iter()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:metadata")?.get("f:annotations")?.get(&key))
                .is_some()
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, Time};

    fn entry(manager: &str, annotation: Option<&str>, at: &str) -> ManagedFieldsEntry {
        let mut annotations = serde_json::Map::new();
        if let Some(a) = annotation {
            annotations.insert(format!("f:{a}"), serde_json::json!({}));
        }
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(
                serde_json::json!({"f:metadata": {"f:annotations": annotations}}),
            )),
            time: Some(Time(at.parse().unwrap())),
            ..Default::default()
        }
    }

    #[test]
    fn requester_is_the_latest_manager_of_the_rotate_annotation() {
        let mut t = ApiToken::new("a", Default::default());
        t.metadata.managed_fields = Some(vec![
            entry("argocd-controller", Some("other/x"), "2026-01-03T00:00:00Z"),
            entry(
                "kubectl-annotate",
                Some(ROTATE_ANNOTATION),
                "2026-01-02T00:00:00Z",
            ),
            entry(
                "old-script",
                Some(ROTATE_ANNOTATION),
                "2026-01-01T00:00:00Z",
            ),
        ]);
        assert_eq!(rotate_requester(&t).as_deref(), Some("kubectl-annotate"));
        t.metadata.managed_fields = None;
        assert_eq!(rotate_requester(&t), None);
    }
}
