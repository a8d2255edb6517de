//! Taking back a Secret the operator wrote for this ApiToken name that lost its owner reference:
//! a backup restore (Velero strips `ownerReferences`, the ApiToken comes back with a new UID) or
//! `deletionPolicy: Retain` followed by a re-create. Pure: decided from the Secret, the ApiToken's
//! name and format, and its status; nothing here talks to Kubernetes.
//!
//! Trust model: only a Secret that proves to be the operator's own for this name is taken back
//! (type Opaque, the operator's labels naming this ApiToken, its issue annotations, a value whose
//! fingerprint matches the annotation and that has the ApiToken's format). Whoever can write such
//! a Secret can already write any value into the ApiToken's Secret, so adoption gives nobody a
//! power they lacked; everything else stays a SecretConflict and is never touched.

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::api::{ApiToken, ApiTokenStatus, IssueReason};
use crate::report::{Audit, Reason};
use crate::secret::{self, MANAGED_BY, MANAGED_BY_LABEL, NAME_LABEL, TOKEN_KEY};
use crate::token::{Format, fingerprint, is_well_formed};

/// Why a Secret that is not ours is not taken back. The texts never carry a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Another object is its controller.
    Controlled,
    NotOpaque,
    /// Not labelled as the operator's Secret for this ApiToken name.
    NotLabelled,
    /// Lacks the revision, fingerprint, issue time or reason annotations.
    NoRecord,
    NoValue,
    /// The value is not the one its fingerprint annotation names (edited, or hand-made).
    FingerprintMismatch,
    /// The value does not have the ApiToken's format (prefix, length, alphabet, checksum).
    WrongFormat,
    /// Status (kept by a restore) names another value, and the Secret is not newer.
    StatusDisagrees,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Controlled => "another object controls it",
            Self::NotOpaque => "its type is not Opaque",
            Self::NotLabelled => "it does not carry this ApiToken's labels",
            Self::NoRecord => "it lacks the operator's revision and fingerprint annotations",
            Self::NoValue => "it has no token",
            Self::FingerprintMismatch => "its token does not match its fingerprint annotation",
            Self::WrongFormat => "its token does not have this ApiToken's format",
            Self::StatusDisagrees => "status records another value",
        }
    }
}

/// Whether `secret`, not controlled by this ApiToken, may be taken back by the ApiToken `name`
/// whose values have `format`. `status` is the ApiToken's status, if any (a restore may keep it).
pub fn check(
    secret: &Secret,
    name: &str,
    format: &Format,
    status: Option<&ApiTokenStatus>,
) -> Result<(), Refusal> {
    if secret
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true))
    {
        return Err(Refusal::Controlled);
    }
    if secret.type_.as_deref() != Some("Opaque") {
        return Err(Refusal::NotOpaque);
    }
    let labels = secret.labels();
    if labels.get(MANAGED_BY_LABEL).map(String::as_str) != Some(MANAGED_BY)
        || labels.get(NAME_LABEL).map(String::as_str) != Some(name)
    {
        return Err(Refusal::NotLabelled);
    }
    let record = secret::record(secret).ok_or(Refusal::NoRecord)?;
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(TOKEN_KEY))
        .ok_or(Refusal::NoValue)?;
    if fingerprint(&value.0) != record.fingerprint {
        return Err(Refusal::FingerprintMismatch);
    }
    let well_formed = std::str::from_utf8(&value.0).is_ok_and(|v| is_well_formed(v, format));
    if !well_formed {
        return Err(Refusal::WrongFormat);
    }
    if let Some((revision, fp)) = status.and_then(|s| Some((s.revision?, s.fingerprint.as_ref()?)))
        && *fp != record.fingerprint
        && record.revision <= revision
    {
        return Err(Refusal::StatusDisagrees);
    }
    Ok(())
}

/// The Secret the ApiToken may treat as its own: controlled by it, or adoptable.
pub fn trusted<'a>(
    observed: Option<&'a Secret>,
    token: &ApiToken,
    format: &Format,
) -> Result<Option<&'a Secret>, Refusal> {
    match observed {
        None => Ok(None),
        Some(s) if secret::is_ours(s, token) => Ok(Some(s)),
        Some(s) => check(s, &token.name_any(), format, token.status.as_ref()).map(|()| Some(s)),
    }
}

/// Marks the history entry the adoption recovered from the Secret (if it added one) as adopted,
/// so history tells a taken-back value from an issued one. `before` is the status as stored.
pub fn mark_history(status: &mut ApiTokenStatus, before: Option<&ApiTokenStatus>) {
    let known = |revision| before.is_some_and(|b| b.history.iter().any(|h| h.revision == revision));
    if let Some(head) = status.history.first_mut()
        && !known(head.revision)
    {
        head.reason = IssueReason::Adopted;
    }
}

/// Event reason, note and audit record for an adoption.
pub fn report(token: &ApiToken, status: &ApiTokenStatus) -> (Reason, String, Audit) {
    let (revision, fp) = (status.revision, status.fingerprint.clone());
    let note = format!(
        "adopted Secret {} with revision {} ({}) after it lost its owner (restore or re-create); no new value",
        token.secret_name(),
        revision.unwrap_or(0),
        fp.as_deref().unwrap_or("-"),
    );
    let audit = Audit {
        action: "adopt",
        namespace: token.namespace().unwrap_or_default(),
        name: token.name_any(),
        revision,
        fingerprint: fp,
        reason: IssueReason::Adopted.as_str(),
        actor: None,
    };
    (Reason::Adopted, note, audit)
}

#[cfg(test)]
mod tests;
