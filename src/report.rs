//! Kubernetes Events ([`Events`]) and the structured audit log (tracing target `audit`).
//!
//! Both carry revisions, fingerprints and reasons; neither ever sees a token value.

use std::borrow::Cow;

use k8s_openapi::api::core::v1::{ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
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

    /// Whether the same Event can be reported again about the same object, to be counted into
    /// one series: Warnings, reported on each retry while their cause lasts.
    fn repeats(self) -> bool {
        self.event_type() == EventType::Warning
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

/// Where a controller publishes its Events.
///
/// kube's [`Recorder`] keeps every Event it published for 6 minutes, to count a repeat of the
/// same reason about the same object into that Event's series instead of posting another. That
/// suits Warnings: a conflict reported on every retry becomes one Event with a count. A Normal
/// Event records an action that does not repeat (an issue at one Secret version, a revocation),
/// and keeping each of them cost about 2 KB per token (22 MiB at 10,000 tokens) plus a scan of
/// them all on every publish. So only Warnings share the Recorder; a Normal Event is published
/// through a Recorder of its own, dropped with what it kept.
#[derive(Clone)]
pub struct Events {
    client: Client,
    reporter: Reporter,
    warnings: Recorder,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        let warnings = Recorder::new(client.clone(), reporter.clone());
        Self {
            client,
            reporter,
            warnings,
        }
    }

    fn recorder(&self, reason: Reason) -> Cow<'_, Recorder> {
        if reason.repeats() {
            Cow::Borrowed(&self.warnings)
        } else {
            Cow::Owned(Recorder::new(self.client.clone(), self.reporter.clone()))
        }
    }
}

/// Publishes an Event about `object` (an ApiToken or ApiTokenVerifier). `related` is the Secret at
/// the version the Event concerns, which tells the reader which Secret changed. Failing to record
/// an Event never fails a reconcile: status and the audit log are the durable record.
#[mutants::skip] // only publishes event_for's Event; needs an API server (the e2e tests await them)
pub async fn event<K: Resource<DynamicType = ()>>(
    events: &Events,
    object: &K,
    reason: Reason,
    note: String,
    related: Option<&Secret>,
) {
    if let Err(error) = try_event(events, object, reason, note, related).await {
        tracing::warn!(%error, reason = reason.as_str(), "failed to publish event");
    }
}

/// [`event`], with the API server's refusal returned instead of logged.
#[mutants::skip] // only publishes event_for's Event; needs an API server
pub async fn try_event<K: Resource<DynamicType = ()>>(
    events: &Events,
    object: &K,
    reason: Reason,
    note: String,
    related: Option<&Secret>,
) -> Result<(), kube::Error> {
    let ev = event_for(reason, note, related);
    let recorder = events.recorder(reason);
    recorder.publish(&ev, &object.object_ref(&())).await
}

/// The Event for `reason`: its word as reason and action, the note, and the Secret it concerns
/// at its resourceVersion (`object_ref` leaves that out).
fn event_for(reason: Reason, note: String, related: Option<&Secret>) -> Event {
    Event {
        type_: reason.event_type(),
        reason: reason.as_str().into(),
        note: Some(note),
        action: reason.as_str().into(),
        secondary: related.map(|s| ObjectReference {
            resource_version: s.resource_version(),
            ..s.object_ref(&())
        }),
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
    token
        .managed_fields()
        .iter()
        .filter(|m| sets_rotate_annotation(m))
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
        .and_then(|m| m.manager.clone())
}

/// Keeps only the managedFields entries that [`rotate_requester`] reads. The others (every
/// field of spec and status, as JSON trees, per manager) were most of a cached ApiToken's
/// memory, and nothing reads them. Applied to the watch before anything caches the object.
/// Of those, only the annotation names are kept.
pub fn trim_managed_fields(token: &mut ApiToken) {
    if let Some(fields) = token.metadata.managed_fields.as_mut() {
        fields.retain(sets_rotate_annotation);
        for entry in fields {
            if let Some(tree) = entry.fields_v1.as_mut() {
                tree.0 = crate::fields::names_under(&tree.0, &[ANNOTATIONS]);
            }
        }
    }
}

fn sets_rotate_annotation(entry: &ManagedFieldsEntry) -> bool {
    entry
        .fields_v1
        .as_ref()
        .is_some_and(|f| crate::fields::names_in(&f.0, ANNOTATIONS).contains(ROTATE_ANNOTATION))
}

const ANNOTATIONS: &[&str] = &["metadata", "annotations"];

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

    const REASONS: [(Reason, &str, EventType); 9] = [
        (Reason::Issued, "Issued", EventType::Normal),
        (Reason::Rotated, "Rotated", EventType::Normal),
        (Reason::Revoked, "Revoked", EventType::Normal),
        (Reason::Retained, "Retained", EventType::Normal),
        (Reason::Expired, "Expired", EventType::Warning),
        (Reason::SecretConflict, "SecretConflict", EventType::Warning),
        (Reason::InvalidSpec, "InvalidSpec", EventType::Warning),
        (Reason::SecretLost, "SecretLost", EventType::Warning),
        (Reason::Tampered, "Tampered", EventType::Warning),
    ];

    /// Users filter and alert on these words (`kubectl get events --field-selector reason=...`,
    /// `type=Warning`): they are an interface. What needs attention is a Warning.
    #[test]
    fn events_carry_a_fixed_word_and_warn_about_what_needs_attention() {
        for (reason, word, type_) in REASONS {
            let ev = event_for(reason, format!("note for {word}"), None);
            assert_eq!(ev.reason, word);
            assert_eq!(ev.action, word);
            assert_eq!(ev.type_, type_, "{word}");
            // Only Warnings are kept to count their repeats.
            assert_eq!(reason.repeats(), type_ == EventType::Warning, "{word}");
            assert_eq!(
                ev.note.as_deref(),
                Some(format!("note for {word}").as_str())
            );
            assert!(ev.secondary.is_none());
        }
    }

    #[test]
    fn an_event_names_the_secret_version_it_concerns() {
        let mut secret = Secret::default();
        secret.metadata.name = Some("billing-token".into());
        secret.metadata.namespace = Some("payments".into());
        secret.metadata.uid = Some("6c1d0a52-0000-4000-8000-000000000002".into());
        secret.metadata.resource_version = Some("4711".into());
        let ev = event_for(Reason::Rotated, "rotated".into(), Some(&secret));
        assert_eq!(
            ev.secondary,
            Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                namespace: Some("payments".into()),
                name: Some("billing-token".into()),
                uid: Some("6c1d0a52-0000-4000-8000-000000000002".into()),
                resource_version: Some("4711".into()),
                field_path: None,
            })
        );
    }

    /// Collects what a subscriber writes, one JSON object per line.
    #[derive(Clone, Default)]
    struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn audit_is_one_json_line_on_the_audit_target() {
        let lines = Lines::default();
        let writer = lines.clone();
        // As main.rs logs with --log-format json.
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            audit(&Audit {
                action: "rotate",
                namespace: "payments".into(),
                name: "billing".into(),
                revision: Some(7),
                fingerprint: Some("sha256:1f3c9a0b7d2e".into()),
                reason: "Requested",
                actor: Some("kubectl-annotate".into()),
            })
        });
        let out = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(out.lines().count(), 1, "{out}");
        let mut line: serde_json::Value = serde_json::from_str(&out).unwrap();
        let time = line["time"].take();
        assert!(
            time.as_str()
                .is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok()),
            "{time}"
        );
        for (key, value) in [
            ("target", serde_json::json!("audit")),
            ("level", serde_json::json!("INFO")),
            ("message", serde_json::json!("rotate")),
            ("action", serde_json::json!("rotate")),
            ("namespace", serde_json::json!("payments")),
            ("name", serde_json::json!("billing")),
            ("revision", serde_json::json!(7)),
            ("fingerprint", serde_json::json!("sha256:1f3c9a0b7d2e")),
            ("reason", serde_json::json!("Requested")),
            ("actor", serde_json::json!("kubectl-annotate")),
        ] {
            assert_eq!(line[key], value, "{key} in {out}");
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

    #[test]
    fn trimming_keeps_only_the_entries_that_set_the_rotate_annotation() {
        let mut t = ApiToken::new("a", Default::default());
        t.metadata.managed_fields = Some(vec![
            entry("kubectl-client-side-apply", None, "2026-01-01T00:00:00Z"),
            entry(
                "kubectl-annotate",
                Some(ROTATE_ANNOTATION),
                "2026-01-02T00:00:00Z",
            ),
            entry("apitoken-operator", Some("other/x"), "2026-01-03T00:00:00Z"),
        ]);
        trim_managed_fields(&mut t);
        let kept: Vec<_> = t
            .managed_fields()
            .iter()
            .map(|m| m.manager.clone())
            .collect();
        assert_eq!(kept, [Some("kubectl-annotate".to_owned())]);
        assert_eq!(rotate_requester(&t).as_deref(), Some("kubectl-annotate"));
        let mut none = ApiToken::new("b", Default::default());
        trim_managed_fields(&mut none);
        assert_eq!(none.metadata.managed_fields, None);
    }
}
