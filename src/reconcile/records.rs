//! What an issue, rotation or expiry is recorded as: the Secret's issue annotations, and the
//! Event and audit line that report it once status is written.

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{ApiToken, ApiTokenStatus, IssueReason};
use crate::plan::IssueRecord;
use crate::report::{self, Audit, Reason};

/// The issue the status describes, as written into Secret annotations.
pub(super) fn current_issue(
    status: &ApiTokenStatus,
    previous_until: Option<Timestamp>,
) -> Option<IssueRecord> {
    Some(IssueRecord {
        revision: status.revision?,
        fingerprint: status.fingerprint.clone()?,
        issued_at: status.issued_at.as_ref()?.0,
        reason: status
            .last_rotation
            .as_ref()
            .map_or(IssueReason::Created, |r| r.reason),
        previous_until,
        request: status.last_rotate_request.clone(),
    })
}

pub(super) fn issue_report(
    token: &ApiToken,
    issue: &IssueRecord,
    old: Option<&str>,
) -> (Reason, String, Audit) {
    let secret = token.secret_name();
    let (rev, fp) = (issue.revision, &issue.fingerprint);
    let (reason, note, action) = match issue.reason {
        IssueReason::Created => (
            Reason::Issued,
            format!("issued revision {rev} ({fp}) into Secret {secret}"),
            "issue",
        ),
        IssueReason::SecretLost => (
            Reason::SecretLost,
            format!("Secret {secret} was deleted; issued revision {rev} ({fp})"),
            "rotate",
        ),
        IssueReason::Tampered => (
            Reason::Tampered,
            format!(
                "token in Secret {secret} was changed outside the operator; issued revision {rev} ({fp})"
            ),
            "rotate",
        ),
        trigger => (
            Reason::Rotated,
            format!(
                "rotated to revision {rev}: {} -> {fp} (trigger: {})",
                old.unwrap_or("-"),
                trigger.as_str()
            ),
            "rotate",
        ),
    };
    let actor = (issue.reason == IssueReason::Requested)
        .then(|| report::rotate_requester(token))
        .flatten();
    let audit = Audit {
        action,
        namespace: token.namespace().unwrap_or_default(),
        name: token.name_any(),
        revision: Some(rev),
        fingerprint: Some(fp.clone()),
        reason: issue.reason.as_str(),
        actor,
    };
    (reason, note, audit)
}

pub(super) fn audit_for(
    token: &ApiToken,
    action: &'static str,
    status: &ApiTokenStatus,
    reason: &'static str,
    actor: Option<String>,
) -> Audit {
    Audit {
        action,
        namespace: token.namespace().unwrap_or_default(),
        name: token.name_any(),
        revision: status.revision,
        fingerprint: status.fingerprint.clone(),
        reason,
        actor,
    }
}
