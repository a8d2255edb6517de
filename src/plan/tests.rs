//! `plan` with an injected clock: every test builds a policy the way the operator does
//! (`Policy::resolve`), a status and an observed Secret by hand, and checks the whole [`Plan`].

use super::*;
use crate::api::{ApiTokenSpec, PreviousValue, Rotation, TokenFormat};
use crate::token::fingerprint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// Fingerprints of three distinct values: the one in status, a newer one, an edited one.
fn fp_current() -> String {
    fingerprint(b"current-value")
}
fn fp_old() -> String {
    fingerprint(b"old-value")
}
fn fp_new() -> String {
    fingerprint(b"new-value")
}
fn fp_edited() -> String {
    fingerprint(b"hunter2")
}

fn policy_of(spec: ApiTokenSpec) -> Policy {
    Policy::resolve(&spec).expect("valid spec")
}

/// A policy with `expiresAfter` (or none) and a rotation block.
fn policy(expires_after: Option<&str>, rotation: Rotation) -> Policy {
    policy_of(ApiTokenSpec {
        expires_after: expires_after.map(Into::into),
        rotation: Some(rotation),
        ..Default::default()
    })
}

fn every(interval: &str) -> Rotation {
    Rotation {
        every: Some(interval.into()),
        ..Default::default()
    }
}

fn cron(expr: &str, zone: Option<&str>) -> Rotation {
    Rotation {
        schedule: Some(expr.into()),
        time_zone: zone.map(Into::into),
        ..Default::default()
    }
}

fn grace(rotation: Rotation, period: &str) -> Rotation {
    Rotation {
        grace_period: Some(period.into()),
        ..rotation
    }
}

/// An issue of `revision` with value `fingerprint` at `at`.
fn issue_of(revision: i64, fingerprint: String, at: &str, reason: IssueReason) -> IssueRecord {
    IssueRecord {
        revision,
        fingerprint,
        issued_at: ts(at),
        reason,
        previous_until: None,
        request: None,
    }
}

/// Records `issue` the way the reconciler does after writing the Secret: `status::record_issue`
/// (which opens the value's history entry and retires the one before), then the format.
/// `handed_over`: the fingerprint of the value kept as `token.previous` until `previous_until`.
fn record(
    status: &mut ApiTokenStatus,
    policy: &Policy,
    issue: &IssueRecord,
    handed_over: Option<String>,
) {
    crate::status::record_issue(status, issue, handed_over);
    policy.record_format(status);
}

/// Status of a healthy token as the operator writes it: revision 1, value `fp_current()`,
/// created at `at` in the policy's format, with its open history entry.
fn issued(policy: &Policy, at: &str) -> ApiTokenStatus {
    let mut status = ApiTokenStatus::default();
    let created = issue_of(1, fp_current(), at, IssueReason::Created);
    record(&mut status, policy, &created, None);
    status
}

/// The Secret as the operator left it for `status`: its token and annotations agree with status.
fn healthy(status: &ApiTokenStatus) -> SecretState {
    let fingerprint = status.fingerprint.clone().unwrap();
    SecretState::Ours(OwnedSecret {
        token_fingerprint: Some(fingerprint.clone()),
        previous_fingerprint: status.previous.as_ref().map(|p| p.fingerprint.clone()),
        record: Some(IssueRecord {
            revision: status.revision.unwrap(),
            fingerprint,
            issued_at: status.issued_at.as_ref().unwrap().0,
            reason: status.last_rotation.as_ref().unwrap().reason,
            previous_until: status.previous.as_ref().map(|p| p.valid_until.0),
            request: None,
        }),
    })
}

/// Our Secret holding a token with fingerprint `token`, annotated as written for `status`.
fn holding(status: &ApiTokenStatus, token: Option<String>) -> SecretState {
    let SecretState::Ours(mut owned) = healthy(status) else {
        unreachable!()
    };
    owned.token_fingerprint = token;
    SecretState::Ours(owned)
}

fn observe<'a>(status: Option<&'a ApiTokenStatus>, secret: SecretState, now: &str) -> Observed<'a> {
    Observed {
        status,
        rotate_request: None,
        invalidate_previous: false,
        secret,
        now: ts(now),
    }
}

fn issue(reason: IssueReason, previous_until: Option<&str>) -> Action {
    Action::Issue {
        reason,
        previous_until: previous_until.map(ts),
    }
}

fn keep(previous_until: Option<&str>) -> Action {
    Action::Keep {
        previous_until: previous_until.map(ts),
    }
}

fn expected(
    action: Action,
    next_rotation: Option<&str>,
    expires_at: Option<&str>,
    next_due: Option<&str>,
) -> Plan {
    Plan {
        action,
        next_rotation: next_rotation.map(ts),
        expires_at: expires_at.map(ts),
        next_due: next_due.map(ts),
    }
}

/// Plans for a healthy token issued at `issued_at`, observed at `now`.
fn plan_healthy(policy: &Policy, issued_at: &str, now: &str) -> Plan {
    let status = issued(policy, issued_at);
    plan(policy, &observe(Some(&status), healthy(&status), now))
}

// ---------------------------------------------------------------------------------------------
// What to do, by state of status and Secret
// ---------------------------------------------------------------------------------------------

#[test]
fn first_issue_without_status_is_created() {
    let p = policy_of(ApiTokenSpec::default());
    let got = plan(
        &p,
        &observe(None, SecretState::Missing, "2026-11-22T10:00:00Z"),
    );
    assert_eq!(
        got,
        expected(issue(IssueReason::Created, None), None, None, None)
    );
}

#[test]
fn first_issue_schedules_the_next_rotation_one_interval_ahead() {
    let p = policy(Some("720h"), every("168h"));
    let got = plan(
        &p,
        &observe(None, SecretState::Missing, "2026-11-01T00:00:00Z"),
    );
    assert_eq!(
        got,
        expected(
            issue(IssueReason::Created, None),
            Some("2026-11-08T00:00:00Z"),
            Some("2026-12-01T00:00:00Z"),
            Some("2026-11-08T00:00:00Z"),
        )
    );
}

#[test]
fn status_without_revision_counts_as_no_status() {
    let p = policy_of(ApiTokenSpec::default());
    let status = ApiTokenStatus {
        secret_name: Some("billing".into()),
        ..Default::default()
    };
    let got = plan(
        &p,
        &observe(Some(&status), SecretState::Missing, "2026-11-22T10:00:00Z"),
    );
    assert_eq!(got.action, issue(IssueReason::Created, None));
}

#[test]
fn status_with_a_revision_but_no_fingerprint_counts_as_no_status() {
    // Nothing to compare the Secret with: issue as for a new ApiToken, not as a lost or
    // tampered value.
    let p = policy(None, every("1h"));
    let status = ApiTokenStatus {
        revision: Some(4),
        ..Default::default()
    };
    let emptied = SecretState::Ours(OwnedSecret::default());
    for secret in [SecretState::Missing, emptied] {
        let got = plan(&p, &observe(Some(&status), secret, "2026-11-22T10:00:00Z"));
        assert_eq!(
            got,
            expected(
                issue(IssueReason::Created, None),
                Some("2026-11-22T11:00:00Z"),
                None,
                Some("2026-11-22T11:00:00Z"),
            )
        );
    }
}

#[test]
fn a_token_as_the_operator_recorded_it_is_kept_on_every_reconcile() {
    // The status the operator writes has an open history entry for the current value: that
    // value is live, not retired, and reconciling it again never issues another.
    let p = policy(None, every("1h"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    assert_eq!(
        (status.history[0].revision, &status.history[0].retired_at),
        (1, &None)
    );
    for now in [
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:00:01Z",
        "2026-11-22T10:59:59Z",
    ] {
        assert_eq!(
            plan(&p, &observe(Some(&status), healthy(&status), now)),
            expected(
                keep(None),
                Some("2026-11-22T11:00:00Z"),
                None,
                Some("2026-11-22T11:00:00Z"),
            ),
            "at {now}"
        );
    }
}

#[test]
fn rotate_annotation_present_at_creation_issues_once_as_created() {
    let p = policy(None, every("1h"));
    let obs = Observed {
        rotate_request: Some("2026-11-22T10:00Z"),
        ..observe(None, SecretState::Missing, "2026-11-22T10:00:00Z")
    };
    assert_eq!(plan(&p, &obs).action, issue(IssueReason::Created, None));

    // The controller records the handled value; the same annotation never rotates again.
    let status = ApiTokenStatus {
        last_rotate_request: Some("2026-11-22T10:00Z".into()),
        ..issued(&p, "2026-11-22T10:00:00Z")
    };
    let obs = Observed {
        rotate_request: Some("2026-11-22T10:00Z"),
        ..observe(Some(&status), healthy(&status), "2026-11-22T10:00:01Z")
    };
    assert_eq!(plan(&p, &obs).action, keep(None));
}

#[test]
fn foreign_secret_without_status_is_a_conflict() {
    let p = policy(None, every("1h"));
    let got = plan(
        &p,
        &observe(None, SecretState::Foreign, "2026-11-22T10:00:00Z"),
    );
    assert_eq!(got, expected(Action::Conflict, None, None, None));
}

#[test]
fn foreign_secret_is_a_conflict_even_with_status_and_a_due_rotation() {
    let p = policy(Some("2h"), every("1h"));
    let status = issued(&p, "2026-11-22T08:00:00Z"); // rotation and expiry both past
    let obs = Observed {
        rotate_request: Some("please"),
        ..observe(Some(&status), SecretState::Foreign, "2026-11-22T11:00:00Z")
    };
    assert_eq!(plan(&p, &obs), expected(Action::Conflict, None, None, None));
}

#[test]
fn missing_secret_with_status_is_secret_lost_without_grace() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let got = plan(
        &p,
        &observe(Some(&status), SecretState::Missing, "2026-11-22T10:20:00Z"),
    );
    assert_eq!(
        got,
        expected(
            issue(IssueReason::SecretLost, None),
            Some("2026-11-22T11:20:00Z"),
            None,
            Some("2026-11-22T11:20:00Z"),
        )
    );
}

#[test]
fn edited_token_is_tampered_without_grace() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let got = plan(
        &p,
        &observe(
            Some(&status),
            holding(&status, Some(fp_edited())),
            "2026-11-22T10:20:00Z",
        ),
    );
    assert_eq!(
        got,
        expected(
            issue(IssueReason::Tampered, None),
            Some("2026-11-22T11:20:00Z"),
            None,
            Some("2026-11-22T11:20:00Z"),
        )
    );
}

#[test]
fn removed_token_key_is_tampered() {
    let p = policy(None, every("1h"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let got = plan(
        &p,
        &observe(
            Some(&status),
            holding(&status, None),
            "2026-11-22T10:20:00Z",
        ),
    );
    assert_eq!(got.action, issue(IssueReason::Tampered, None));
}

#[test]
fn format_change_is_spec_changed_and_hands_over_with_grace() {
    let old = policy(None, grace(every("1h"), "10m"));
    let status = issued(&old, "2026-11-22T10:00:00Z");
    let new = policy_of(ApiTokenSpec {
        format: Some(TokenFormat {
            length: Some(64),
            ..Default::default()
        }),
        rotation: Some(grace(every("1h"), "10m")),
        ..Default::default()
    });
    let got = plan(
        &new,
        &observe(Some(&status), healthy(&status), "2026-11-22T10:20:00Z"),
    );
    assert_eq!(
        got,
        expected(
            issue(IssueReason::SpecChanged, Some("2026-11-22T10:30:00Z")),
            Some("2026-11-22T11:20:00Z"),
            None,
            Some("2026-11-22T10:30:00Z"),
        )
    );
}

#[test]
fn changing_only_the_prefix_is_a_format_change() {
    let prefixed = |prefix: &str| {
        policy_of(ApiTokenSpec {
            format: Some(TokenFormat {
                prefix: Some(prefix.into()),
                ..Default::default()
            }),
            rotation: Some(every("1h")),
            ..Default::default()
        })
    };
    let pay = prefixed("pay_");
    let status = issued(&pay, "2026-11-22T10:00:00Z");
    let at = "2026-11-22T10:20:00Z";
    assert_eq!(
        plan(&pay, &observe(Some(&status), healthy(&status), at)).action,
        keep(None)
    );
    assert_eq!(
        plan(
            &prefixed("bill_"),
            &observe(Some(&status), healthy(&status), at)
        )
        .action,
        issue(IssueReason::SpecChanged, None)
    );
}

#[test]
fn spelling_out_the_default_format_is_not_a_change() {
    let implicit = policy(None, every("1h"));
    let status = issued(&implicit, "2026-11-22T10:00:00Z");
    let explicit = policy_of(ApiTokenSpec {
        format: Some(TokenFormat {
            prefix: None,
            length: Some(40),
            alphabet: Some(crate::api::Alphabet::Base62),
            checksum: Some(true),
        }),
        rotation: Some(every("1h")),
        ..Default::default()
    });
    let got = plan(
        &explicit,
        &observe(Some(&status), healthy(&status), "2026-11-22T10:20:00Z"),
    );
    assert_eq!(got.action, keep(None));
}

/// A release that changes a default (here the length) must not rotate a value whose spec leaves
/// the length out; the next scheduled rotation uses the new default.
#[test]
fn a_default_changed_by_a_new_release_rotates_nothing() {
    let issued_by_this_release = policy(None, every("1h"));
    let status = issued(&issued_by_this_release, "2026-11-22T10:00:00Z");
    let mut next_release = policy(None, every("1h"));
    next_release.format.length = 48;
    let got = plan(
        &next_release,
        &observe(Some(&status), healthy(&status), "2026-11-22T10:20:00Z"),
    );
    assert_eq!(got.action, keep(None));
    assert_eq!(
        got.next_rotation.map(|t| t.to_string()).as_deref(),
        Some("2026-11-22T11:00:00Z")
    );
}

#[test]
fn display_name_and_template_edits_do_not_rotate() {
    let before = policy(None, every("1h"));
    let status = issued(&before, "2026-11-22T10:00:00Z");
    let after = policy_of(ApiTokenSpec {
        display_name: Some("renamed".into()),
        secret_template: Some(crate::api::SecretTemplate {
            labels: Some([("team".to_owned(), "billing".to_owned())].into()),
            ..Default::default()
        }),
        rotation: Some(every("1h")),
        ..Default::default()
    });
    let got = plan(
        &after,
        &observe(Some(&status), healthy(&status), "2026-11-22T10:20:00Z"),
    );
    assert_eq!(
        got,
        expected(
            keep(None),
            Some("2026-11-22T11:00:00Z"),
            None,
            Some("2026-11-22T11:00:00Z"),
        )
    );
}

#[test]
fn healthy_token_is_kept_until_the_next_rotation() {
    let p = policy(None, every("1h"));
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T10:30:00Z"),
        expected(
            keep(None),
            Some("2026-11-22T11:00:00Z"),
            None,
            Some("2026-11-22T11:00:00Z"),
        )
    );
}

#[test]
fn without_schedule_or_expiry_nothing_is_ever_due() {
    let p = policy_of(ApiTokenSpec::default());
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2036-11-22T10:00:00Z"),
        expected(keep(None), None, None, None)
    );
}

// ---------------------------------------------------------------------------------------------
// Interval rotation
// ---------------------------------------------------------------------------------------------

#[test]
fn interval_is_not_due_one_second_before() {
    let p = policy(None, every("1h"));
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T10:59:59Z"),
        expected(
            keep(None),
            Some("2026-11-22T11:00:00Z"),
            None,
            Some("2026-11-22T11:00:00Z"),
        )
    );
}

#[test]
fn interval_is_due_at_the_due_time() {
    let p = policy(None, every("1h"));
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z"),
        expected(
            issue(IssueReason::Schedule, None),
            Some("2026-11-22T12:00:00Z"),
            None,
            Some("2026-11-22T12:00:00Z"),
        )
    );
}

#[test]
fn issue_sets_next_rotation_one_interval_after_now_not_after_due_time() {
    // Reconciled 7 minutes late: the next value is due one interval after it was actually issued.
    let p = policy(None, every("1h"));
    let got = plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T11:07:00Z");
    assert_eq!(got.action, issue(IssueReason::Schedule, None));
    assert_eq!(got.next_rotation, Some(ts("2026-11-22T12:07:00Z")));
}

#[test]
fn next_rotation_is_reported_while_keeping() {
    // `Plan.next_rotation` feeds status.nextRotationAt; it is due-from-issue, not due-from-now.
    let p = policy(None, every("168h"));
    let got = plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-25T13:14:15Z");
    assert_eq!(got.next_rotation, Some(ts("2026-11-29T10:00:00Z")));
}

// ---------------------------------------------------------------------------------------------
// Cron schedules, through plan
// ---------------------------------------------------------------------------------------------

#[test]
fn cron_in_berlin_across_the_end_of_daylight_saving() {
    // 03:00 local daily. 24 Oct 2026 is CEST (UTC+2), 25 Oct CET (UTC+1): 25 hours apart.
    let p = policy(None, cron("0 3 * * *", Some("Europe/Berlin")));
    let issued_at = "2026-10-24T01:00:00Z";
    assert_eq!(
        plan_healthy(&p, issued_at, "2026-10-25T01:59:59Z"),
        expected(
            keep(None),
            Some("2026-10-25T02:00:00Z"),
            None,
            Some("2026-10-25T02:00:00Z"),
        )
    );
    assert_eq!(
        plan_healthy(&p, issued_at, "2026-10-25T02:00:00Z"),
        expected(
            issue(IssueReason::Schedule, None),
            Some("2026-10-26T02:00:00Z"),
            None,
            Some("2026-10-26T02:00:00Z"),
        )
    );
}

#[test]
fn cron_in_berlin_across_the_start_of_daylight_saving() {
    // 29 Mar 2026: CET (UTC+1) becomes CEST (UTC+2); 03:00 local is 23 hours after the day before.
    let p = policy(None, cron("0 3 * * *", Some("Europe/Berlin")));
    let got = plan_healthy(&p, "2026-03-28T02:00:00Z", "2026-03-29T00:59:59Z");
    assert_eq!(got.action, keep(None));
    assert_eq!(got.next_due, Some(ts("2026-03-29T01:00:00Z")));
    let got = plan_healthy(&p, "2026-03-28T02:00:00Z", "2026-03-29T01:00:00Z");
    assert_eq!(got.action, issue(IssueReason::Schedule, None));
    assert_eq!(got.next_rotation, Some(ts("2026-03-30T01:00:00Z")));
}

#[test]
fn cron_in_the_repeated_hour_rotates_once() {
    // 25 Oct 2026, 02:00-03:00 local happens twice in Berlin (00:00-01:00Z CEST, 01:00-02:00Z CET).
    // 02:30 fires at the first one; the repeat must not be a second rotation.
    let p = policy(None, cron("30 2 * * *", Some("Europe/Berlin")));
    let got = plan_healthy(&p, "2026-10-24T00:30:00Z", "2026-10-25T00:30:00Z");
    assert_eq!(got.action, issue(IssueReason::Schedule, None));
    assert_eq!(got.next_rotation, Some(ts("2026-10-26T01:30:00Z")));
}

#[test]
fn cron_on_leap_day_waits_for_the_next_leap_year() {
    let p = policy(None, cron("0 0 29 2 *", None));
    assert_eq!(
        plan_healthy(&p, "2024-02-29T00:00:00Z", "2026-03-01T00:00:00Z"),
        expected(
            keep(None),
            Some("2028-02-29T00:00:00Z"),
            None,
            Some("2028-02-29T00:00:00Z"),
        )
    );
}

#[test]
fn cron_on_leap_day_rotates_then_waits_four_years() {
    let p = policy(None, cron("0 0 29 2 *", None));
    assert_eq!(
        plan_healthy(&p, "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"),
        expected(
            issue(IssueReason::Schedule, None),
            Some("2032-02-29T00:00:00Z"),
            None,
            Some("2032-02-29T00:00:00Z"),
        )
    );
}

// ---------------------------------------------------------------------------------------------
// renewBefore against the schedule
// ---------------------------------------------------------------------------------------------

// Issued 1 Nov; expiresAfter 720h -> expires 1 Dec; renewBefore 240h -> renewal due 21 Nov.
const ISSUED: &str = "2026-11-01T00:00:00Z";
const RENEWAL: &str = "2026-11-21T00:00:00Z";
const EXPIRY: &str = "2026-12-01T00:00:00Z";

fn renewing(interval: &str) -> Policy {
    policy(
        Some("720h"),
        Rotation {
            renew_before: Some("240h".into()),
            ..every(interval)
        },
    )
}

#[test]
fn earlier_schedule_wins_over_renewal() {
    let p = renewing("168h"); // due 8 Nov, before the renewal
    let before = plan_healthy(&p, ISSUED, "2026-11-07T23:59:59Z");
    assert_eq!(before.action, keep(None));
    assert_eq!(before.next_rotation, Some(ts("2026-11-08T00:00:00Z")));
    assert_eq!(before.expires_at, Some(ts(EXPIRY)));
    assert_eq!(
        plan_healthy(&p, ISSUED, "2026-11-08T00:00:00Z").action,
        issue(IssueReason::Schedule, None)
    );
}

#[test]
fn earlier_renewal_wins_over_schedule() {
    let p = renewing("600h"); // due 26 Nov, after the renewal
    assert_eq!(
        plan_healthy(&p, ISSUED, "2026-11-20T23:59:59Z"),
        expected(keep(None), Some(RENEWAL), Some(EXPIRY), Some(RENEWAL))
    );
    let got = plan_healthy(&p, ISSUED, RENEWAL);
    assert_eq!(got.action, issue(IssueReason::Expiring, None));
    // The new value: renewal 20 days after 21 Nov beats the 600h (25 days) schedule.
    assert_eq!(got.next_rotation, Some(ts("2026-12-11T00:00:00Z")));
    assert_eq!(got.expires_at, Some(ts("2026-12-21T00:00:00Z")));
}

#[test]
fn schedule_names_a_rotation_that_ties_with_renewal() {
    let p = renewing("480h"); // due exactly at the renewal
    assert_eq!(
        plan_healthy(&p, ISSUED, RENEWAL).action,
        issue(IssueReason::Schedule, None)
    );
}

// ---------------------------------------------------------------------------------------------
// Grace window
// ---------------------------------------------------------------------------------------------

#[test]
fn rotation_hands_over_the_current_value_for_the_grace_period() {
    let p = policy(None, grace(every("1h"), "10m"));
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z"),
        expected(
            issue(IssueReason::Schedule, Some("2026-11-22T11:10:00Z")),
            Some("2026-11-22T12:00:00Z"),
            None,
            Some("2026-11-22T11:10:00Z"),
        )
    );
}

#[test]
fn grace_is_capped_at_the_old_value_expiry() {
    // expiresAfter 2h: renewal (default 1/3 = 40m before) at 11:20, expiry 12:00; grace 1h would
    // run to 12:20, beyond the old value's life.
    let p = policy(Some("2h"), grace(Rotation::default(), "1h"));
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T11:20:00Z"),
        expected(
            issue(IssueReason::Expiring, Some("2026-11-22T12:00:00Z")),
            Some("2026-11-22T12:40:00Z"),
            Some("2026-11-22T13:20:00Z"),
            Some("2026-11-22T12:00:00Z"),
        )
    );
}

#[test]
fn zero_grace_hands_nothing_over() {
    let p = policy(None, grace(every("1h"), "0s"));
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z").action,
        issue(IssueReason::Schedule, None)
    );
}

#[test]
fn renewal_after_expiry_hands_over_nothing() {
    // Operator down past the expiry: the renewed value must not keep the expired one alive.
    let p = policy(Some("2h"), grace(Rotation::default(), "1h"));
    let got = plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T12:30:00Z");
    assert_eq!(got.action, issue(IssueReason::Expiring, None));
    assert_eq!(got.expires_at, Some(ts("2026-11-22T14:30:00Z")));
}

/// Status right after a rotation at 11:00 with 10 minutes of grace for the old value.
fn in_grace(p: &Policy) -> ApiTokenStatus {
    let mut status = ApiTokenStatus::default();
    let created = issue_of(1, fp_old(), "2026-11-22T10:00:00Z", IssueReason::Created);
    record(&mut status, p, &created, None);
    let rotated = IssueRecord {
        previous_until: Some(ts("2026-11-22T11:10:00Z")),
        ..issue_of(
            2,
            fp_current(),
            "2026-11-22T11:00:00Z",
            IssueReason::Schedule,
        )
    };
    record(&mut status, p, &rotated, Some(fp_old()));
    assert_eq!(
        status.previous,
        Some(PreviousValue {
            fingerprint: fp_old(),
            valid_until: Time(ts("2026-11-22T11:10:00Z")),
        })
    );
    status
}

#[test]
fn keep_during_grace_keeps_previous_and_wakes_at_grace_end() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = in_grace(&p);
    assert_eq!(
        plan(
            &p,
            &observe(Some(&status), healthy(&status), "2026-11-22T11:05:00Z")
        ),
        expected(
            keep(Some("2026-11-22T11:10:00Z")),
            Some("2026-11-22T12:00:00Z"),
            None,
            Some("2026-11-22T11:10:00Z"),
        )
    );
}

#[test]
fn keep_after_grace_end_drops_previous() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = in_grace(&p);
    assert_eq!(
        plan(
            &p,
            &observe(Some(&status), healthy(&status), "2026-11-22T11:10:00Z")
        ),
        expected(
            keep(None),
            Some("2026-11-22T12:00:00Z"),
            None,
            Some("2026-11-22T12:00:00Z"),
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Requested rotation (apitoken.dev/rotate)
// ---------------------------------------------------------------------------------------------

fn requested<'a>(status: &'a ApiTokenStatus, request: &'a str, now: &str) -> Observed<'a> {
    Observed {
        rotate_request: Some(request),
        ..observe(Some(status), healthy(status), now)
    }
}

#[test]
fn new_annotation_value_requests_a_rotation_with_grace() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    assert_eq!(
        plan(
            &p,
            &requested(&status, "2026-11-22T10:15Z", "2026-11-22T10:20:00Z")
        ),
        expected(
            issue(IssueReason::Requested, Some("2026-11-22T10:30:00Z")),
            Some("2026-11-22T11:20:00Z"),
            None,
            Some("2026-11-22T10:30:00Z"),
        )
    );
}

#[test]
fn already_handled_annotation_value_does_not_rotate() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = ApiTokenStatus {
        last_rotate_request: Some("2026-11-22T10:15Z".into()),
        ..issued(&p, "2026-11-22T10:00:00Z")
    };
    assert_eq!(
        plan(
            &p,
            &requested(&status, "2026-11-22T10:15Z", "2026-11-22T10:20:00Z")
        ),
        expected(
            keep(None),
            Some("2026-11-22T11:00:00Z"),
            None,
            Some("2026-11-22T11:00:00Z"),
        )
    );
}

#[test]
fn a_different_annotation_value_rotates_again() {
    let p = policy(None, every("1h"));
    let status = ApiTokenStatus {
        last_rotate_request: Some("first".into()),
        ..issued(&p, "2026-11-22T10:00:00Z")
    };
    assert_eq!(
        plan(&p, &requested(&status, "second", "2026-11-22T10:20:00Z")).action,
        issue(IssueReason::Requested, None)
    );
}

#[test]
fn invalidate_previous_drops_the_old_value_at_once() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let obs = Observed {
        invalidate_previous: true,
        ..requested(&status, "leaked", "2026-11-22T10:20:00Z")
    };
    let got = plan(&p, &obs);
    assert_eq!(got.action, issue(IssueReason::Requested, None));
    assert_eq!(got.next_due, Some(ts("2026-11-22T11:20:00Z")));
}

#[test]
fn request_after_expiry_without_autorenew_issues_a_fresh_value() {
    let p = policy(
        Some("1h"),
        grace(
            Rotation {
                auto_renew: Some(false),
                ..Default::default()
            },
            "10m",
        ),
    );
    let status = issued(&p, "2026-11-22T10:00:00Z");
    assert_eq!(
        plan(&p, &requested(&status, "again", "2026-11-22T12:00:00Z")),
        expected(
            issue(IssueReason::Requested, None), // the expired value is not handed over
            None,
            Some("2026-11-22T13:00:00Z"),
            Some("2026-11-22T13:00:00Z"),
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Catch-up after downtime
// ---------------------------------------------------------------------------------------------

#[test]
fn long_downtime_gives_exactly_one_catch_up_rotation() {
    let p = policy(None, every("1h"));
    let status = issued(&p, "2026-11-22T00:00:00Z");
    let now = "2026-11-22T10:17:00Z"; // ten intervals and then some
    let got = plan(&p, &observe(Some(&status), healthy(&status), now));
    assert_eq!(
        got,
        expected(
            issue(IssueReason::Schedule, None),
            Some("2026-11-22T11:17:00Z"),
            None,
            Some("2026-11-22T11:17:00Z"),
        )
    );

    // Apply it as the controller does; planning again at the same instant finds nothing due.
    let mut after = status.clone();
    record(
        &mut after,
        &p,
        &issue_of(2, fp_new(), now, IssueReason::Schedule),
        None,
    );
    for later in [now, "2026-11-22T10:17:01Z", "2026-11-22T11:16:59Z"] {
        let again = plan(&p, &observe(Some(&after), healthy(&after), later));
        assert_eq!(again.action, keep(None), "at {later}");
        assert_eq!(
            again.next_due,
            Some(ts("2026-11-22T11:17:00Z")),
            "at {later}"
        );
    }
}

#[test]
fn long_downtime_with_cron_schedules_the_next_future_occurrence() {
    let p = policy(None, cron("0 3 * * 0", None)); // Sundays 03:00 UTC
    let got = plan_healthy(&p, "2026-10-04T03:00:00Z", "2026-11-25T12:00:00Z");
    assert_eq!(got.action, issue(IssueReason::Schedule, None));
    assert_eq!(got.next_rotation, Some(ts("2026-11-29T03:00:00Z")));
}

// ---------------------------------------------------------------------------------------------
// Expiry
// ---------------------------------------------------------------------------------------------

fn one_shot() -> Policy {
    policy(
        Some("1h"),
        Rotation {
            auto_renew: Some(false),
            ..Default::default()
        },
    )
}

#[test]
fn without_autorenew_the_value_is_kept_until_expiry() {
    let p = one_shot();
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T10:59:59Z"),
        expected(
            keep(None),
            None,
            Some("2026-11-22T11:00:00Z"),
            Some("2026-11-22T11:00:00Z"),
        )
    );
}

#[test]
fn without_autorenew_the_value_expires_at_its_deadline() {
    let p = one_shot();
    for now in ["2026-11-22T11:00:00Z", "2026-11-23T00:00:00Z"] {
        assert_eq!(
            plan_healthy(&p, "2026-11-22T10:00:00Z", now),
            expected(Action::Expire, None, Some("2026-11-22T11:00:00Z"), None),
            "at {now}"
        );
    }
}

#[test]
fn expired_one_shot_value_is_not_reissued_when_its_secret_is_gone() {
    let p = one_shot();
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let got = plan(
        &p,
        &observe(Some(&status), SecretState::Missing, "2026-11-22T12:00:00Z"),
    );
    assert_eq!(got.action, Action::Expire);
}

#[test]
fn expired_value_with_a_schedule_but_without_autorenew_still_expires() {
    let p = policy(
        Some("1h"),
        Rotation {
            auto_renew: Some(false),
            ..every("2h")
        },
    );
    assert_eq!(
        plan_healthy(&p, "2026-11-22T10:00:00Z", "2026-11-22T12:00:00Z"),
        expected(Action::Expire, None, Some("2026-11-22T11:00:00Z"), None)
    );
}

#[test]
fn autorenew_by_default_renews_a_third_of_the_lifetime_before_expiry() {
    let p = policy_of(ApiTokenSpec {
        expires_after: Some("720h".into()),
        ..Default::default()
    });
    assert_eq!(
        plan_healthy(&p, ISSUED, "2026-11-20T23:59:59Z"),
        expected(keep(None), Some(RENEWAL), Some(EXPIRY), Some(RENEWAL))
    );
    assert_eq!(
        plan_healthy(&p, ISSUED, RENEWAL),
        expected(
            issue(IssueReason::Expiring, None),
            Some("2026-12-11T00:00:00Z"),
            Some("2026-12-21T00:00:00Z"),
            Some("2026-12-11T00:00:00Z"),
        )
    );
}

// ---------------------------------------------------------------------------------------------
// Far future
// ---------------------------------------------------------------------------------------------

#[test]
fn hundred_year_interval_from_year_2400_does_not_overflow() {
    // 876000h = 36500 days; 2400-2499 has 25 leap days, so 25 days short of 2500-01-01.
    let p = policy(Some("876000h"), every("876000h"));
    let got = plan_healthy(&p, "2400-01-01T00:00:00Z", "2450-06-01T00:00:00Z");
    assert_eq!(
        got,
        expected(
            keep(None),
            // renewal (1/3 before expiry) comes before the equal-length interval
            Some("2466-08-15T08:00:00Z"),
            Some("2499-12-07T00:00:00Z"),
            Some("2466-08-15T08:00:00Z"),
        )
    );
    let first = plan(
        &p,
        &observe(None, SecretState::Missing, "2400-01-01T00:00:00Z"),
    );
    assert_eq!(first.expires_at, Some(ts("2499-12-07T00:00:00Z")));
}

#[test]
fn due_times_beyond_the_representable_range_are_none() {
    let p = policy(Some("876000h"), grace(every("876000h"), "876000h"));
    let got = plan_healthy(&p, "9950-01-01T00:00:00Z", "9960-01-01T00:00:00Z");
    assert_eq!(got, expected(keep(None), None, None, None));
    let first = plan(
        &p,
        &observe(None, SecretState::Missing, "9990-01-01T00:00:00Z"),
    );
    assert_eq!(
        first,
        expected(issue(IssueReason::Created, None), None, None, None)
    );
}

// ---------------------------------------------------------------------------------------------
// Recovery of a lost status write
// ---------------------------------------------------------------------------------------------

/// What the operator wrote into the Secret for revision 2 at 10:30, before the status write was lost.
fn annotated_rev2() -> IssueRecord {
    IssueRecord {
        revision: 2,
        fingerprint: fp_new(),
        issued_at: ts("2026-11-22T10:30:00Z"),
        reason: IssueReason::Requested,
        previous_until: Some(ts("2026-11-22T10:40:00Z")),
        request: None,
    }
}

fn ahead(token: String) -> SecretState {
    SecretState::Ours(OwnedSecret {
        token_fingerprint: Some(token),
        previous_fingerprint: None,
        record: Some(annotated_rev2()),
    })
}

#[test]
fn secret_ahead_of_status_is_recovered() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z"); // revision 1
    assert_eq!(
        plan(
            &p,
            &observe(Some(&status), ahead(fp_new()), "2026-11-22T10:35:00Z")
        ),
        expected(
            Action::Recover(annotated_rev2()),
            Some("2026-11-22T11:30:00Z"),
            None,
            Some("2026-11-22T10:40:00Z"),
        )
    );
}

#[test]
fn recovery_after_the_grace_ended_wakes_at_the_next_rotation() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let got = plan(
        &p,
        &observe(Some(&status), ahead(fp_new()), "2026-11-22T10:50:00Z"),
    );
    assert_eq!(got.action, Action::Recover(annotated_rev2()));
    assert_eq!(got.next_due, Some(ts("2026-11-22T11:30:00Z")));
}

#[test]
fn recovery_exactly_at_the_end_of_the_grace_waits_for_the_next_rotation() {
    // The annotated grace ends at 10:40: at 10:40 it is over, as in `keep_after_grace_end_drops_previous`.
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let at = |now| plan(&p, &observe(Some(&status), ahead(fp_new()), now));
    assert_eq!(
        at("2026-11-22T10:39:59Z").next_due,
        Some(ts("2026-11-22T10:40:00Z"))
    );
    assert_eq!(
        at("2026-11-22T10:40:00Z"),
        expected(
            Action::Recover(annotated_rev2()),
            Some("2026-11-22T11:30:00Z"),
            None,
            Some("2026-11-22T11:30:00Z"),
        )
    );
}

#[test]
fn secret_with_annotations_and_no_status_is_recovered() {
    let p = policy(None, every("1h"));
    let got = plan(&p, &observe(None, ahead(fp_new()), "2026-11-22T10:35:00Z"));
    assert_eq!(got.action, Action::Recover(annotated_rev2()));
}

#[test]
fn secret_ahead_with_an_edited_token_is_tampered_not_recovered() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let got = plan(
        &p,
        &observe(Some(&status), ahead(fp_edited()), "2026-11-22T10:35:00Z"),
    );
    assert_eq!(got.action, issue(IssueReason::Tampered, None));
}

#[test]
fn secret_behind_status_is_tampered_not_recovered() {
    // E.g. restored from an old backup: annotations and token agree, but revision 2 < status 3.
    let p = policy(None, every("1h"));
    let mut status = issued(&p, "2026-11-22T10:00:00Z");
    for (revision, fingerprint, at) in [
        (2, fp_new(), "2026-11-22T10:30:00Z"),
        (3, fp_current(), "2026-11-22T10:31:00Z"),
    ] {
        let issue = issue_of(revision, fingerprint, at, IssueReason::Requested);
        record(&mut status, &p, &issue, None);
    }
    let got = plan(
        &p,
        &observe(Some(&status), ahead(fp_new()), "2026-11-22T10:35:00Z"),
    );
    assert_eq!(got.action, issue(IssueReason::Tampered, None));
}

#[test]
fn secret_at_the_same_revision_is_not_recovered() {
    let p = policy(None, every("1h"));
    let mut status = issued(&p, "2026-11-22T10:00:00Z");
    let second = issue_of(2, fp_new(), "2026-11-22T10:30:00Z", IssueReason::Requested);
    record(&mut status, &p, &second, None);
    let got = plan(
        &p,
        &observe(Some(&status), ahead(fp_new()), "2026-11-22T10:35:00Z"),
    );
    assert_eq!(got.action, keep(None));
}

// ---------------------------------------------------------------------------------------------
// A value edited outside the operator must never become `token.previous`
// ---------------------------------------------------------------------------------------------

#[test]
fn requested_rotation_never_hands_over_an_edited_token() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let obs = Observed {
        rotate_request: Some("rotate-now"),
        ..observe(
            Some(&status),
            holding(&status, Some(fp_edited())),
            "2026-11-22T10:20:00Z",
        )
    };
    let got = plan(&p, &obs);
    assert!(
        matches!(
            got.action,
            Action::Issue {
                previous_until: None,
                ..
            }
        ),
        "{:?}",
        got.action
    );
}

#[test]
fn format_change_never_hands_over_an_edited_token() {
    let old = policy(None, grace(every("1h"), "10m"));
    let status = issued(&old, "2026-11-22T10:00:00Z");
    let new = policy_of(ApiTokenSpec {
        format: Some(TokenFormat {
            prefix: Some("pay_".into()),
            ..Default::default()
        }),
        rotation: Some(grace(every("1h"), "10m")),
        ..Default::default()
    });
    let got = plan(
        &new,
        &observe(
            Some(&status),
            holding(&status, Some(fp_edited())),
            "2026-11-22T10:20:00Z",
        ),
    );
    assert!(
        matches!(
            got.action,
            Action::Issue {
                previous_until: None,
                ..
            }
        ),
        "{:?}",
        got.action
    );
}

#[test]
fn edited_previous_value_loses_its_grace_at_once() {
    let p = policy(None, grace(every("1h"), "10m"));
    let status = in_grace(&p);
    let SecretState::Ours(mut owned) = healthy(&status) else {
        unreachable!()
    };
    owned.previous_fingerprint = Some(fp_edited());
    let got = plan(
        &p,
        &observe(
            Some(&status),
            SecretState::Ours(owned),
            "2026-11-22T11:05:00Z",
        ),
    );
    assert_eq!(got.action, keep(None));
    assert_eq!(got.next_due, Some(ts("2026-11-22T12:00:00Z")));
}

#[test]
fn a_request_on_a_deleted_secret_is_reported_as_secret_lost() {
    let p = policy(None, every("1h"));
    let status = issued(&p, "2026-11-22T10:00:00Z");
    let mut observed = observe(Some(&status), SecretState::Missing, "2026-11-22T10:30:00Z");
    observed.rotate_request = Some("leak");
    assert_eq!(
        plan(&p, &observed).action,
        issue(IssueReason::SecretLost, None)
    );
}

#[test]
fn lifting_autorenew_off_after_expiry_issues_a_value_as_spec_changed() {
    let one_shot = policy(
        Some("1h"),
        Rotation {
            auto_renew: Some(false),
            ..Default::default()
        },
    );
    let mut status = issued(&one_shot, "2026-11-22T10:00:00Z");
    crate::status::record_expiry(&mut status, ts("2026-11-22T11:00:00Z"));
    let emptied = holding(&status, None);
    // Still expired and not renewed: stays expired, no Tampered.
    let got = plan(
        &one_shot,
        &observe(Some(&status), emptied.clone(), "2026-11-22T11:30:00Z"),
    );
    assert_eq!(got.action, Action::Expire);
    // A longer lifetime makes the retired value unexpired: a new value, for the spec change.
    let longer = policy(
        Some("24h"),
        Rotation {
            auto_renew: Some(false),
            ..Default::default()
        },
    );
    let got = plan(
        &longer,
        &observe(Some(&status), emptied, "2026-11-22T11:30:00Z"),
    );
    assert_eq!(got.action, issue(IssueReason::SpecChanged, None));
}
