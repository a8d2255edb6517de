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
    let value = if why == Readiness::Issued {
        "True"
    } else {
        "False"
    };
    let transition = status
        .conditions
        .iter()
        .find(|c| c.type_ == READY && c.status == value)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    status.conditions.retain(|c| c.type_ != READY);
    status.conditions.push(Condition {
        type_: READY.into(),
        status: value.into(),
        reason: why.as_str().into(),
        message,
        observed_generation: generation,
        last_transition_time: transition,
    });
    status.observed_generation = generation;
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
    fn ready_is_true_only_for_an_issued_value_and_names_its_reason() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        for (why, status, reason) in [
            (Readiness::Issued, "True", "Issued"),
            (Readiness::SecretConflict, "False", "SecretConflict"),
            (Readiness::InvalidSpec, "False", "InvalidSpec"),
            (Readiness::Expired, "False", "Expired"),
        ] {
            let mut s = ApiTokenStatus::default();
            set_ready(&mut s, why, "why".into(), Some(7), t);
            assert_eq!(
                s.conditions,
                vec![Condition {
                    type_: "Ready".into(),
                    status: status.into(),
                    reason: reason.into(),
                    message: "why".into(),
                    observed_generation: Some(7),
                    last_transition_time: Time(t),
                }]
            );
            assert_eq!(s.observed_generation, Some(7));
            assert_eq!(ready_reason(Some(&s)), Some(reason));
        }
        assert_eq!(ready_reason(None), None);
        assert_eq!(ready_reason(Some(&ApiTokenStatus::default())), None);
    }

    #[test]
    fn setting_ready_keeps_conditions_of_other_types() {
        let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let other = Condition {
            type_: "example.com/Audited".into(),
            status: "True".into(),
            reason: "Checked".into(),
            message: String::new(),
            observed_generation: Some(1),
            last_transition_time: Time("2025-01-01T00:00:00Z".parse().unwrap()),
        };
        let mut s = ApiTokenStatus {
            conditions: vec![other.clone()],
            ..Default::default()
        };
        set_ready(&mut s, Readiness::Issued, "a".into(), Some(2), t);
        set_ready(&mut s, Readiness::Expired, "b".into(), Some(2), t);
        assert_eq!(s.conditions.len(), 2);
        assert_eq!(s.conditions[0], other);
        assert_eq!(ready_reason(Some(&s)), Some("Expired"));
    }

    #[test]
    fn expiry_retires_the_current_value_and_ends_any_grace() {
        let mut s = ApiTokenStatus::default();
        record_issue(&mut s, &issue(1, "2026-01-01T00:00:00Z"), None);
        let second = IssueRecord {
            previous_until: Some("2026-01-02T00:10:00Z".parse().unwrap()),
            ..issue(2, "2026-01-02T00:00:00Z")
        };
        record_issue(&mut s, &second, Some("sha256:000000000001".into()));
        assert!(s.previous.is_some());

        let at: Timestamp = "2026-01-02T00:05:00Z".parse().unwrap();
        record_expiry(&mut s, at);
        let retired: Vec<_> = s.history.iter().map(|h| h.retired_at.clone()).collect();
        let time = |t: &str| Some(Time(t.parse().unwrap()));
        // The current value leaves at the expiry; the older one keeps its own retirement.
        assert_eq!(
            retired,
            [time("2026-01-02T00:05:00Z"), time("2026-01-02T00:00:00Z")]
        );
        assert_eq!(s.previous, None);
        // Status still names the value that expired.
        assert_eq!(s.revision, Some(2));
        assert_eq!(s.fingerprint.as_deref(), Some("sha256:000000000002"));
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
