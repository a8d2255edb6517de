//! What is due now and when the next thing is due: a pure function of the ApiToken, what was
//! observed of its Secret, and the clock.
//!
//! The reconciler gathers [`Observed`], calls [`plan`], applies the [`Plan`] and requeues at
//! [`Plan::next_due`]. Nothing here talks to Kubernetes or reads the system clock.

use jiff::Timestamp;

use crate::api::{ApiTokenStatus, IssueReason};
use crate::policy::Policy;

/// What the reconciler saw of the Secret the ApiToken points at.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretState {
    Missing,
    /// Exists but is not controlled by this ApiToken: never touched.
    Foreign,
    Ours(OwnedSecret),
}

/// Fingerprints only: the plan never sees a value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnedSecret {
    /// Fingerprint of the `token` key, if present.
    pub token_fingerprint: Option<String>,
    /// Fingerprint of the `token.previous` key, if present.
    pub previous_fingerprint: Option<String>,
    /// Revision and fingerprint the operator annotated the Secret with when it last wrote it.
    pub record: Option<IssueRecord>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IssueRecord {
    pub revision: i64,
    pub fingerprint: String,
    pub issued_at: Timestamp,
    pub reason: IssueReason,
    /// Until when the Secret's `token.previous` is valid, if it has one.
    pub previous_until: Option<Timestamp>,
    /// The `apitoken.dev/rotate` value handled by this issue, so a recovery marks it handled.
    pub request: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Observed<'a> {
    pub status: Option<&'a ApiTokenStatus>,
    /// Value of the `apitoken.dev/rotate` annotation.
    pub rotate_request: Option<&'a str>,
    /// `apitoken.dev/invalidate-previous: "true"` next to the request.
    pub invalidate_previous: bool,
    pub secret: SecretState,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The Secret belongs to someone else: report, change nothing.
    Conflict,
    /// Issue a new value. `previous_until`: keep the current value as `token.previous` until then.
    Issue {
        reason: IssueReason,
        previous_until: Option<Timestamp>,
    },
    /// The Secret is ahead of status (a status write was lost): take the Secret's annotations as truth.
    Recover(IssueRecord),
    /// The value expired and is not renewed: remove it.
    Expire,
    /// Nothing to issue; keep `token.previous` only while `previous_until` lies ahead.
    Keep { previous_until: Option<Timestamp> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub action: Action,
    /// When the next automatic rotation happens (for `status.nextRotationAt`).
    pub next_rotation: Option<Timestamp>,
    /// When the value expires (for `status.expiresAt` and the Secret's `expires-at`).
    pub expires_at: Option<Timestamp>,
    /// When the reconciler must look again: the earliest of rotation, expiry and grace end.
    pub next_due: Option<Timestamp>,
}

/// Times derived from an issue: when it is renewed or rotated, when it expires.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Due {
    expires_at: Option<Timestamp>,
    /// Earliest automatic rotation and its reason.
    rotation: Option<(Timestamp, IssueReason)>,
}

fn due(policy: &Policy, issued_at: Timestamp) -> Due {
    let expires_at = policy
        .expires_after
        .and_then(|life| issued_at.checked_add(life).ok());
    let scheduled = policy
        .schedule
        .as_ref()
        .and_then(|s| s.next_after(issued_at))
        .map(|t| (t, IssueReason::Schedule));
    let renewal = match (policy.auto_renew, expires_at, policy.renew_before) {
        (true, Some(exp), Some(before)) => exp
            .checked_sub(before)
            .ok()
            .map(|t| (t, IssueReason::Expiring)),
        _ => None,
    };
    // Whichever comes first wins; on a tie the schedule names the rotation.
    let rotation = match (scheduled, renewal) {
        (Some(s), Some(r)) => Some(if r.0 < s.0 { r } else { s }),
        (s, r) => s.or(r),
    };
    Due {
        expires_at,
        rotation,
    }
}

/// Decides what to do. Order matters: ownership, then recovery of a lost status write, then
/// safety (lost or edited values, reported as such even when a request coincides; any issue
/// marks the pending request handled), then explicit user intent, then time-driven work.
pub fn plan(policy: &Policy, observed: &Observed) -> Plan {
    let now = observed.now;
    let status = observed
        .status
        .filter(|s| s.revision.is_some() && s.fingerprint.is_some());
    let issue = |reason, previous_until| Action::Issue {
        reason,
        previous_until,
    };

    let owned = match &observed.secret {
        SecretState::Foreign => {
            return Plan {
                action: Action::Conflict,
                next_rotation: None,
                expires_at: None,
                next_due: None,
            };
        }
        SecretState::Ours(o) => Some(o),
        SecretState::Missing => None,
    };

    // A Secret written by us but newer than status: the status write after it was lost.
    if let Some(annotated) = owned.and_then(|o| recoverable(o, status)) {
        let grace_end = annotated.previous_until.filter(|&t| t > now);
        return finish(
            policy,
            now,
            Action::Recover(annotated.clone()),
            annotated.issued_at,
            grace_end,
        );
    }

    let Some(status) = status else {
        return finish(policy, now, issue(IssueReason::Created, None), now, None);
    };
    let issued_at = status.issued_at.as_ref().map_or(now, |t| t.0);
    let current = due(policy, issued_at);
    let expired = current.expires_at.is_some_and(|e| e <= now);
    let grace_end = status
        .previous
        .as_ref()
        .map(|p| p.valid_until.0)
        .filter(|&t| t > now);
    // The value leaving now may serve as `token.previous` until the grace ends, never past its
    // own expiry: no grace, or an expired value, hands nothing over. Reasons that distrust the
    // old value pass `false`.
    let hand_over = |keep: bool| {
        let until = now.checked_add(policy.grace).ok()?;
        let until = current.expires_at.map_or(until, |e| until.min(e));
        (keep && until > now).then_some(until)
    };

    let requested = observed
        .rotate_request
        .is_some_and(|r| status.last_rotate_request.as_deref() != Some(r));
    let format_changed = policy.format_changed(status);
    let token_in_secret = owned.and_then(|o| o.token_fingerprint.as_deref());
    // After an expiry without renewal the Secret holds no value on purpose.
    let retired = status
        .history
        .first()
        .is_some_and(|h| Some(h.revision) == status.revision && h.retired_at.is_some());
    let expected = if retired {
        None
    } else {
        status.fingerprint.as_deref()
    };
    // `token.previous` keeps its grace only while it is the value we handed over.
    let previous_in_secret = owned.and_then(|o| o.previous_fingerprint.as_deref());
    let previous_intact =
        previous_in_secret == status.previous.as_ref().map(|p| p.fingerprint.as_str());
    let grace_end = grace_end.filter(|_| previous_intact);

    let action = if expired && !policy.auto_renew && !requested && !format_changed {
        Action::Expire
    } else if owned.is_none() {
        issue(IssueReason::SecretLost, None)
    } else if token_in_secret != expected {
        issue(IssueReason::Tampered, None)
    } else if requested {
        let keep = !observed.invalidate_previous && token_in_secret.is_some();
        issue(IssueReason::Requested, hand_over(keep))
    } else if format_changed {
        issue(
            IssueReason::SpecChanged,
            hand_over(token_in_secret.is_some()),
        )
    } else if retired && !expired {
        // The spec changed so that the retired value would no longer be expired: issue anew.
        issue(IssueReason::SpecChanged, None)
    } else if let Some((_, reason)) = current.rotation.filter(|&(t, _)| t <= now) {
        issue(reason, hand_over(true))
    } else if expired {
        // Renewal is on but had no earlier due time (cannot happen with a renewBefore): renew now.
        issue(IssueReason::Expiring, None)
    } else {
        return finish(
            policy,
            now,
            Action::Keep {
                previous_until: grace_end,
            },
            issued_at,
            grace_end,
        );
    };
    let (issued_at, grace_end) = match &action {
        Action::Issue { previous_until, .. } => (now, *previous_until),
        _ => (issued_at, None),
    };
    finish(policy, now, action, issued_at, grace_end)
}

fn recoverable<'a>(
    secret: &'a OwnedSecret,
    status: Option<&ApiTokenStatus>,
) -> Option<&'a IssueRecord> {
    let annotated = secret.record.as_ref()?;
    let ahead = status
        .and_then(|s| s.revision)
        .is_none_or(|r| annotated.revision > r);
    (ahead && secret.token_fingerprint.as_deref() == Some(annotated.fingerprint.as_str()))
        .then_some(annotated)
}

/// Fills in the due times that follow from the action.
fn finish(
    policy: &Policy,
    now: Timestamp,
    action: Action,
    issued_at: Timestamp,
    grace_end: Option<Timestamp>,
) -> Plan {
    let Due {
        expires_at,
        rotation,
    } = due(policy, issued_at);
    let next_rotation = match action {
        Action::Expire => None,
        _ => rotation.map(|(t, _)| t),
    };
    let expiry_due = expires_at.filter(|&e| e > now && !policy.auto_renew);
    let next_due = [next_rotation, expiry_due, grace_end]
        .into_iter()
        .flatten()
        .min();
    Plan {
        action,
        next_rotation,
        expires_at,
        next_due,
    }
}

#[cfg(test)]
mod tests;
