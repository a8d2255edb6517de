//! The Secret: what we observe of it (fingerprints, ownership) and what we want it to be.
//!
//! Built without a client; the controller applies it only when [`needs_write`] says the cluster
//! differs in a field the operator owns, so an unchanged ApiToken causes no write at all.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::{ApiToken, FIELD_MANAGER};
use crate::plan::{IssueRecord, OwnedSecret, SecretState};
use crate::token::Token;

pub const TOKEN_KEY: &str = "token";
pub const PREVIOUS_KEY: &str = "token.previous";
pub const EXPIRES_KEY: &str = "expires-at";
pub const PLACEHOLDER: &str = "{{ token }}";

pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "apitoken-operator";
pub const NAME_LABEL: &str = "apitoken.dev/name";

const REVISION_ANNOTATION: &str = "apitoken.dev/revision";
const FINGERPRINT_ANNOTATION: &str = "apitoken.dev/fingerprint";
const ISSUED_AT_ANNOTATION: &str = "apitoken.dev/issued-at";
const REASON_ANNOTATION: &str = "apitoken.dev/reason";
const PREVIOUS_UNTIL_ANNOTATION: &str = "apitoken.dev/previous-valid-until";
const DISPLAY_NAME_ANNOTATION: &str = "apitoken.dev/display-name";
const REQUEST_ANNOTATION: &str = "apitoken.dev/rotate-request";

/// True when `secret` is controlled by this very object (same UID), not merely one of the same name.
pub fn is_ours<K: Resource>(secret: &Secret, owner: &K) -> bool {
    let uid = owner.uid();
    secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && Some(&r.uid) == uid.as_ref())
}

/// The plaintext values currently in a Secret of ours.
pub struct Values {
    pub current: Option<Token>,
    pub previous: Option<Token>,
}

pub fn values(secret: &Secret) -> Values {
    let get = |key: &str| {
        secret
            .data
            .as_ref()?
            .get(key)
            .and_then(|b| Token::from_bytes(&b.0))
    };
    Values {
        current: get(TOKEN_KEY),
        previous: get(PREVIOUS_KEY),
    }
}

/// What the plan may know of the Secret: ownership and fingerprints, never values.
pub fn observe(secret: Option<&Secret>, owner: &ApiToken) -> SecretState {
    let Some(secret) = secret else {
        return SecretState::Missing;
    };
    if !is_ours(secret, owner) {
        return SecretState::Foreign;
    }
    observe_trusted(Some(secret))
}

/// What the plan may know of a Secret already judged the ApiToken's own (ours, or adoptable:
/// see [`crate::adopt`]).
pub fn observe_trusted(secret: Option<&Secret>) -> SecretState {
    let Some(secret) = secret else {
        return SecretState::Missing;
    };
    let values = values(secret);
    SecretState::Ours(OwnedSecret {
        token_fingerprint: values.current.map(|t| t.fingerprint()),
        previous_fingerprint: values.previous.map(|t| t.fingerprint()),
        record: record(secret),
    })
}

/// The issue the operator annotated the Secret with when it last wrote it.
pub fn record(secret: &Secret) -> Option<IssueRecord> {
    let a = secret.annotations();
    let parse_time = |key: &str| a.get(key).and_then(|v| v.parse::<Timestamp>().ok());
    Some(IssueRecord {
        revision: a.get(REVISION_ANNOTATION)?.parse().ok()?,
        fingerprint: a.get(FINGERPRINT_ANNOTATION)?.clone(),
        issued_at: parse_time(ISSUED_AT_ANNOTATION)?,
        reason: serde_json::from_value(serde_json::Value::String(
            a.get(REASON_ANNOTATION)?.clone(),
        ))
        .ok()?,
        previous_until: parse_time(PREVIOUS_UNTIL_ANNOTATION),
        request: a.get(REQUEST_ANNOTATION).cloned(),
    })
}

/// The Secret as the operator wants it.
pub struct Desired<'a> {
    pub current: Option<&'a Token>,
    pub previous: Option<&'a Token>,
    pub issue: &'a IssueRecord,
    pub expires_at: Option<Timestamp>,
}

pub fn secret_for(owner: &ApiToken, desired: &Desired) -> Secret {
    let template = owner.spec.secret_template.clone().unwrap_or_default();

    let mut labels = template.labels.unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    labels.insert(NAME_LABEL.into(), owner.name_any());

    let issue = desired.issue;
    let mut annotations = template.annotations.unwrap_or_default();
    annotations.insert(REVISION_ANNOTATION.into(), issue.revision.to_string());
    annotations.insert(FINGERPRINT_ANNOTATION.into(), issue.fingerprint.clone());
    annotations.insert(ISSUED_AT_ANNOTATION.into(), whole_seconds(issue.issued_at));
    annotations.insert(REASON_ANNOTATION.into(), issue.reason.as_str().into());
    if let (Some(until), Some(_)) = (issue.previous_until, desired.previous) {
        annotations.insert(PREVIOUS_UNTIL_ANNOTATION.into(), whole_seconds(until));
    }
    if let Some(request) = &issue.request {
        annotations.insert(REQUEST_ANNOTATION.into(), request.clone());
    }
    if let Some(name) = &owner.spec.display_name {
        annotations.insert(DISPLAY_NAME_ANNOTATION.into(), name.clone());
    }

    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let reserved = [TOKEN_KEY, PREVIOUS_KEY, EXPIRES_KEY];
    let mut data: BTreeMap<String, ByteString> = template
        .data
        .unwrap_or_default()
        .into_iter()
        // The schema forbids reserved keys; an object stored before the rule existed must
        // still never override the operator's keys.
        .filter(|(key, _)| !reserved.contains(&key.as_str()))
        .filter_map(|(key, value)| match desired.current {
            Some(current) => Some((key, bytes(&value.replace(PLACEHOLDER, current.expose())))),
            // No value (expired): keep only the extra keys that do not carry it.
            None => (!value.contains(PLACEHOLDER)).then(|| (key, bytes(&value))),
        })
        .collect();
    if let Some(current) = desired.current {
        data.insert(TOKEN_KEY.to_owned(), bytes(current.expose()));
    }
    if let Some(previous) = desired.previous {
        data.insert(PREVIOUS_KEY.to_owned(), bytes(previous.expose()));
    }
    if let Some(expires_at) = desired.expires_at {
        data.insert(EXPIRES_KEY.to_owned(), bytes(&whole_seconds(expires_at)));
    }

    Secret {
        metadata: ObjectMeta {
            name: Some(owner.secret_name()),
            namespace: owner.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: owner.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// RFC 3339 with whole seconds, as status (metav1.Time) stores times: the Secret and status must
/// agree, or rebuilding the Secret from status would differ and cause a write.
fn whole_seconds(t: Timestamp) -> String {
    Timestamp::from_second(t.as_second()).map_or_else(|_| t.to_string(), |t| t.to_string())
}

/// The first write of a new Secret: only what the operator never removes (its own labels, the
/// owner reference, the type). Created with POST, it fails if a Secret of that name exists, so one
/// someone else created meanwhile is never taken over; the content follows by server-side apply.
pub fn shell_for(owner: &ApiToken) -> Secret {
    let labels = [
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (NAME_LABEL.to_owned(), owner.name_any()),
    ];
    Secret {
        metadata: ObjectMeta {
            name: Some(owner.secret_name()),
            namespace: owner.namespace(),
            labels: Some(labels.into()),
            owner_references: owner.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

/// The sections of a Secret whose field names [`applied_by_us`] reads from our managedFields.
pub const OWN_SECTIONS: &[&[&str]; 3] = &[
    &["data"],
    &["metadata", "labels"],
    &["metadata", "annotations"],
];

/// Field names under `section` (`data`, `metadata.labels`, ...) that our field manager applied.
fn applied_by_us(secret: &Secret, section: &[&str]) -> BTreeSet<String> {
    secret
        .managed_fields()
        .iter()
        .filter(|m| m.manager.as_deref() == Some(FIELD_MANAGER))
        .filter_map(|entry| entry.fields_v1.as_ref())
        .flat_map(|fields| crate::fields::names_in(&fields.0, section))
        .collect()
}

/// Whether applying `desired` would change anything we own in `observed`. Keys someone else
/// added are theirs and ignored; keys we applied before but no longer want count as changes.
pub fn needs_write(observed: &Secret, desired: &Secret) -> bool {
    fn differs<V: PartialEq + Clone>(
        observed: Option<&BTreeMap<String, V>>,
        desired: Option<&BTreeMap<String, V>>,
        ours: BTreeSet<String>,
    ) -> bool {
        let (o, d) = (
            observed.cloned().unwrap_or_default(),
            desired.cloned().unwrap_or_default(),
        );
        d.keys().chain(ours.iter()).any(|k| o.get(k) != d.get(k))
    }
    let ours_ref = desired.owner_references().first();
    let [data, labels, annotations] = OWN_SECTIONS;
    differs(
        observed.data.as_ref(),
        desired.data.as_ref(),
        applied_by_us(observed, data),
    ) || differs(
        observed.metadata.labels.as_ref(),
        desired.metadata.labels.as_ref(),
        applied_by_us(observed, labels),
    ) || differs(
        observed.metadata.annotations.as_ref(),
        desired.metadata.annotations.as_ref(),
        applied_by_us(observed, annotations),
    ) || ours_ref.is_some_and(|r| !observed.owner_references().contains(r))
        || observed.type_ != desired.type_
}

#[cfg(test)]
mod tests;
