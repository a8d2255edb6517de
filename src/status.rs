//! The next status, computed from the previous one and what the reconciler did. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ApiTokenStatus, HistoryEntry, LastRotation, PreviousValue};
use crate::plan::IssueRecord;

pub const READY: &str = "Ready";
pub const HISTORY_LEN: usize = 10;

/// Why Ready is what it is. The PascalCase names double as Event reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Issued,
    SecretConflict,
    InvalidSpec,
    Expired,
}

impl Readiness {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Issued => "Issued",
            Self::SecretConflict => "SecretConflict",
            Self::InvalidSpec => "InvalidSpec",
            Self::Expired => "Expired",
        }
    }
}

/// Sets the Ready condition, keeping its transition time while its status stays the same.
pub fn set_ready(
    status: &mut ApiTokenStatus,
    why: Readiness,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let ready = Ready {
        ok: why == Readiness::Issued,
        reason: why.as_str(),
        message,
        generation,
    };
    ready.set(&mut status.conditions, now);
    status.observed_generation = generation;
}

/// A Ready condition, for any of the operator's resources.
pub struct Ready<'a> {
    pub ok: bool,
    pub reason: &'a str,
    pub message: String,
    pub generation: Option<i64>,
}

impl Ready<'_> {
    /// Replaces the Ready condition, keeping its transition time while its status stays the same.
    pub fn set(self, conditions: &mut Vec<Condition>, now: Timestamp) {
        let value = if self.ok { "True" } else { "False" };
        let transition = conditions
            .iter()
            .find(|c| c.type_ == READY && c.status == value)
            .map_or(Time(now), |c| c.last_transition_time.clone());
        conditions.retain(|c| c.type_ != READY);
        conditions.push(Condition {
            type_: READY.into(),
            status: value.into(),
            reason: self.reason.into(),
            message: self.message,
            observed_generation: self.generation,
            last_transition_time: transition,
        });
    }
}

pub fn ready_reason(status: Option<&ApiTokenStatus>) -> Option<&str> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == READY)
        .map(|c| c.reason.as_str())
}

/// Records a newly issued value: revision, fingerprint, times, previous value and history.
pub fn record_issue(
    status: &mut ApiTokenStatus,
    issue: &IssueRecord,
    previous_fingerprint: Option<String>,
) {
    let issued = Time(issue.issued_at);
    for entry in status.history.iter_mut().filter(|e| e.retired_at.is_none()) {
        entry.retired_at = Some(issued.clone());
    }
    status.history.insert(
        0,
        HistoryEntry {
            revision: issue.revision,
            fingerprint: issue.fingerprint.clone(),
            issued_at: issued.clone(),
            reason: issue.reason,
            retired_at: None,
        },
    );
    status.history.truncate(HISTORY_LEN);
    status.revision = Some(issue.revision);
    status.fingerprint = Some(issue.fingerprint.clone());
    status.issued_at = Some(issued.clone());
    status.last_rotation = Some(LastRotation {
        time: issued,
        reason: issue.reason,
    });
    if issue.request.is_some() {
        status.last_rotate_request = issue.request.clone();
    }
    status.previous = match (previous_fingerprint, issue.previous_until) {
        (Some(fingerprint), Some(until)) => Some(PreviousValue {
            fingerprint,
            valid_until: Time(until),
        }),
        _ => None,
    };
}

/// Marks the current value as gone (expired): it leaves the history's open entry.
pub fn record_expiry(status: &mut ApiTokenStatus, at: Timestamp) {
    for entry in status.history.iter_mut().filter(|e| e.retired_at.is_none()) {
        entry.retired_at = Some(Time(at));
    }
    status.previous = None;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::IssueReason;

    fn issue(revision: i64, at: &str) -> IssueRecord {
        IssueRecord {
            revision,
            fingerprint: format!("sha256:{revision:012}"),
            issued_at: at.parse().unwrap(),
            reason: IssueReason::Schedule,
            previous_until: None,
            request: None,
        }
    }

    #[test]
    fn history_keeps_ten_newest_and_retires_the_old_current() {
        let mut s = ApiTokenStatus::default();
        for r in 1..=12 {
            record_issue(
                &mut s,
                &issue(r, &format!("2026-01-{r:02}T00:00:00Z")),
                None,
            );
        }
        assert_eq!(s.history.len(), HISTORY_LEN);
        assert_eq!(s.history[0].revision, 12);
        assert!(s.history[0].retired_at.is_none());
        assert_eq!(
            s.history[1].retired_at,
            Some(Time("2026-01-12T00:00:00Z".parse().unwrap()))
        );
        assert_eq!(s.history[9].revision, 3);
        assert_eq!(s.revision, Some(12));
    }

    #[test]
    fn previous_needs_both_fingerprint_and_deadline() {
        let mut s = ApiTokenStatus::default();
        let mut i = issue(2, "2026-01-01T00:00:00Z");
        record_issue(&mut s, &i, Some("sha256:aaa".into()));
        assert!(s.previous.is_none());
        i.previous_until = Some("2026-01-01T00:10:00Z".parse().unwrap());
        record_issue(&mut s, &i, Some("sha256:aaa".into()));
        assert_eq!(s.previous.unwrap().fingerprint, "sha256:aaa");
    }

    #[test]
    fn ready_transition_time_moves_only_on_status_change() {
        let mut s = ApiTokenStatus::default();
        let t1: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let t2: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
        set_ready(&mut s, Readiness::Issued, "a".into(), Some(1), t1);
        set_ready(&mut s, Readiness::Issued, "b".into(), Some(2), t2);
        assert_eq!(s.conditions[0].last_transition_time, Time(t1));
        set_ready(&mut s, Readiness::Expired, "c".into(), Some(2), t2);
        assert_eq!(s.conditions.len(), 1);
        assert_eq!(s.conditions[0].last_transition_time, Time(t2));
        assert_eq!(ready_reason(Some(&s)), Some("Expired"));
    }
}
