//! The next status, computed from the previous one and what the reconciler did. Pure.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{ApiTokenStatus, HistoryEntry, LastRotation, PreviousValue};
use crate::plan::IssueRecord;

pub const READY: &str = "Ready";
/// kstatus: the operator is working toward the spec (here: a write failed and is being retried).
pub const RECONCILING: &str = "Reconciling";
/// kstatus: the operator cannot make progress until someone changes something.
pub const STALLED: &str = "Stalled";
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

    /// Only a change of the ApiToken (or of the foreign Secret) can fix these: kstatus `Stalled`.
    fn stalls(self) -> bool {
        matches!(self, Self::SecretConflict | Self::InvalidSpec)
    }
}

/// The conditions of a finished reconcile, kstatus-style: `Ready` with its reason, `Stalled`
/// (True, same reason) only for a spec or Secret only a person can fix, and no `Reconciling`.
/// Transition times move only when a condition's status changes, so an unchanged outcome gives
/// an unchanged status and no write.
pub fn set_ready(
    status: &mut ApiTokenStatus,
    why: Readiness,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    let outcome = Outcome {
        ready: why == Readiness::Issued,
        stalled: why.stalls(),
        reason: why.as_str(),
        message,
        generation,
    };
    outcome.set(&mut status.conditions, now);
    status.observed_generation = generation;
}

/// How a reconcile of any of the operator's resources finished, as kstatus conditions.
pub struct Outcome<'a> {
    pub ready: bool,
    /// Only a change by someone can fix it.
    pub stalled: bool,
    pub reason: &'a str,
    pub message: String,
    pub generation: Option<i64>,
}

impl Outcome<'_> {
    /// Sets `Ready`, `Stalled` when stalled, and removes `Reconciling` (see [`set_ready`]).
    pub fn set(self, conditions: &mut Vec<Condition>, now: Timestamp) {
        let ready = if self.ready { "True" } else { "False" };
        if self.stalled {
            let stalled = condition(
                STALLED,
                "True",
                self.reason,
                self.message.clone(),
                self.generation,
            );
            put(conditions, stalled, now);
        } else {
            conditions.retain(|c| c.type_ != STALLED);
        }
        conditions.retain(|c| c.type_ != RECONCILING);
        let ready = condition(READY, ready, self.reason, self.message, self.generation);
        put(conditions, ready, now);
    }
}

/// `Reconciling=True`: a write this reconcile needed failed and is retried with backoff. Ready
/// and `observedGeneration` keep what was last achieved; the next finished reconcile removes it.
pub fn set_reconciling(
    status: &mut ApiTokenStatus,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Timestamp,
) {
    put(
        &mut status.conditions,
        condition(RECONCILING, "True", reason, message, generation),
        now,
    );
}

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

/// Sets `new` in place of the condition of its type (Ready first, then the others as they
/// came), keeping the old transition time while the condition's status stays the same.
fn put(conditions: &mut Vec<Condition>, mut new: Condition, now: Timestamp) {
    let old = conditions.iter().position(|c| c.type_ == new.type_);
    new.last_transition_time = match old.map(|i| &conditions[i]) {
        Some(c) if c.status == new.status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    match old {
        Some(i) => conditions[i] = new,
        None if new.type_ == READY => conditions.insert(0, new),
        None => conditions.push(new),
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

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn cond(
        type_: &str,
        status: &str,
        reason: &str,
        message: &str,
        gen_: i64,
        t: &str,
    ) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(gen_),
            last_transition_time: Time(at(t)),
        }
    }

    const T1: &str = "2026-01-01T00:00:00Z";
    const T2: &str = "2026-01-02T00:00:00Z";
    const T3: &str = "2026-01-03T00:00:00Z";

    #[test]
    fn issued_is_ready_and_neither_stalled_nor_reconciling() {
        let mut s = ApiTokenStatus::default();
        set_ready(&mut s, Readiness::Issued, "rev 1".into(), Some(3), at(T1));
        assert_eq!(
            s.conditions,
            [cond(READY, "True", "Issued", "rev 1", 3, T1)]
        );
        assert_eq!(s.observed_generation, Some(3));
    }

    #[test]
    fn invalid_spec_and_conflict_stall_with_the_ready_reason() {
        for why in [Readiness::InvalidSpec, Readiness::SecretConflict] {
            let mut s = ApiTokenStatus::default();
            set_ready(&mut s, why, "bad".into(), Some(2), at(T1));
            assert_eq!(
                s.conditions,
                [
                    cond(READY, "False", why.as_str(), "bad", 2, T1),
                    cond(STALLED, "True", why.as_str(), "bad", 2, T1),
                ]
            );
        }
    }

    #[test]
    fn expired_is_not_ready_but_not_stalled() {
        let mut s = ApiTokenStatus::default();
        set_ready(&mut s, Readiness::Expired, "gone".into(), Some(1), at(T1));
        assert_eq!(
            s.conditions,
            [cond(READY, "False", "Expired", "gone", 1, T1)]
        );
    }

    #[test]
    fn fixing_the_spec_removes_stalled_and_moves_ready() {
        let mut s = ApiTokenStatus::default();
        set_ready(
            &mut s,
            Readiness::InvalidSpec,
            "bad cron".into(),
            Some(1),
            at(T1),
        );
        // A new message for the same stall keeps both transition times.
        set_ready(
            &mut s,
            Readiness::InvalidSpec,
            "bad zone".into(),
            Some(2),
            at(T2),
        );
        assert_eq!(
            s.conditions,
            [
                cond(READY, "False", "InvalidSpec", "bad zone", 2, T1),
                cond(STALLED, "True", "InvalidSpec", "bad zone", 2, T1),
            ]
        );
        set_ready(&mut s, Readiness::Issued, "rev 1".into(), Some(3), at(T3));
        assert_eq!(
            s.conditions,
            [cond(READY, "True", "Issued", "rev 1", 3, T3)]
        );
    }

    #[test]
    fn reconciling_keeps_what_was_achieved_until_a_reconcile_finishes() {
        let mut s = ApiTokenStatus::default();
        set_ready(&mut s, Readiness::Issued, "rev 1".into(), Some(1), at(T1));
        set_reconciling(&mut s, "Retrying", "writing failed".into(), Some(2), at(T2));
        assert_eq!(
            s.conditions,
            [
                cond(READY, "True", "Issued", "rev 1", 1, T1),
                cond(RECONCILING, "True", "Retrying", "writing failed", 2, T2),
            ]
        );
        assert_eq!(
            s.observed_generation,
            Some(1),
            "generation 2 is not achieved yet"
        );
        // The same failure again changes nothing, so nothing is written.
        let before = s.clone();
        set_reconciling(&mut s, "Retrying", "writing failed".into(), Some(2), at(T3));
        assert_eq!(s, before);
        set_ready(&mut s, Readiness::Issued, "rev 2".into(), Some(2), at(T3));
        assert_eq!(
            s.conditions,
            [cond(READY, "True", "Issued", "rev 2", 2, T1)]
        );
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn the_same_outcome_later_is_the_same_status() {
        for why in [
            Readiness::Issued,
            Readiness::InvalidSpec,
            Readiness::Expired,
        ] {
            let mut s = ApiTokenStatus::default();
            set_ready(&mut s, why, "m".into(), Some(4), at(T1));
            let before = s.clone();
            set_ready(&mut s, why, "m".into(), Some(4), at(T3));
            assert_eq!(s, before, "{why:?} rewritten");
        }
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
            let condition = |type_: &str, status: &str| Condition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.into(),
                message: "why".into(),
                observed_generation: Some(7),
                last_transition_time: Time(t),
            };
            let mut expected = vec![condition("Ready", status)];
            // kstatus: only a change of the object can fix these, so they also stall.
            if matches!(why, Readiness::SecretConflict | Readiness::InvalidSpec) {
                expected.push(condition("Stalled", "True"));
            }
            assert_eq!(s.conditions, expected);
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
        assert!(s.conditions.contains(&other), "{:?}", s.conditions);
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
