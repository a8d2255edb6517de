//! Property tests (proptest) of everything that parses user input or decides from it: durations,
//! cron expressions and time zones, the policy built from a whole spec, and the plan. No input
//! may panic, and no plan may ask to run again at once without doing anything (a hot loop).
//! Case counts are bounded so `make unit` stays within seconds.

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use crate::api::{ApiTokenSpec, ApiTokenStatus, IssueReason, Rotation};
use crate::cron::CronSchedule;
use crate::plan::{self, Action, IssueRecord, Observed, OwnedSecret, SecretState};
use crate::policy::{Policy, parse_duration};
use crate::status;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Duration-like text: mostly near misses of the real syntax, including huge numbers.
fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,25}(ns|us|ms|s|m|h|d|)",
        "([0-9]{1,6}(\\.[0-9]{1,3})?(h|m|s|ms)){1,4}",
        "-?[0-9]{0,4}[hms.-]{0,3}",
        ".{0,12}",
    ]
}

/// Cron-like text: five fields from the characters cron uses, or anything.
fn cron_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "([0-9*/,LW#?-]{1,6} ){4}[0-9*/,LW#?-]{1,6}",
        "(@(yearly|monthly|weekly|daily|hourly|reboot)|[0-9]{1,3} [0-9]{1,3} 3[01] 2 \\*)",
        ".{0,24}",
    ]
}

fn zone_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        Just("Europe/Berlin".to_owned()),
        Just("America/St_Johns".to_owned()),
        Just("Australia/Lord_Howe".to_owned()),
        "[A-Za-z/_+-]{0,20}",
    ])
}

/// Any second between 1970 and 2300.
fn time() -> impl Strategy<Value = Timestamp> {
    (0i64..10_400_000_000).prop_map(|s| Timestamp::from_second(s).unwrap())
}

fn spec() -> impl Strategy<Value = ApiTokenSpec> {
    let d = || proptest::option::of(duration_text());
    (
        d(),
        d(),
        d(),
        d(),
        proptest::option::of(cron_text()),
        zone_text(),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(
                expires_after,
                every,
                renew_before,
                grace_period,
                schedule,
                time_zone,
                auto_renew,
            )| {
                ApiTokenSpec {
                    expires_after,
                    rotation: Some(Rotation {
                        every,
                        schedule,
                        time_zone,
                        renew_before,
                        grace_period,
                        auto_renew,
                    }),
                    ..ApiTokenSpec::default()
                }
            },
        )
}

/// Found by the properties below: kube's duration parser panicked on this.
#[test]
fn durations_too_large_for_any_clock_are_invalid_not_a_crash() {
    let error = parse_duration("rotation.gracePeriod", "18450000000000000000000ms").unwrap_err();
    assert!(error.0.starts_with("rotation.gracePeriod: "), "{error}");
    assert!(
        parse_duration("f", "999999999999h").is_ok(),
        "12 digits still parse"
    );
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn durations_never_panic_and_are_never_negative(text in duration_text()) {
        if let Ok(d) = parse_duration("f", &text) {
            prop_assert!(d >= SignedDuration::ZERO);
        }
    }

    #[test]
    fn cron_schedules_never_panic_and_always_answer(
        expression in cron_text(), zone in zone_text(), after in time()
    ) {
        if let Ok(schedule) = CronSchedule::parse(&expression, zone.as_deref()) {
            // Useless schedules (e.g. 31 February) answer None instead of searching forever.
            if let Some(next) = schedule.next_after(after) {
                prop_assert!(next > after);
            }
        }
    }

    #[test]
    fn any_spec_resolves_and_plans_without_a_hot_loop(
        spec in spec(), issued_at in time(), elapsed in 0i64..100_000_000, request in any::<bool>()
    ) {
        let (policy, _) = Policy::resolve_lenient(&spec);
        let now = issued_at.checked_add(SignedDuration::from_secs(elapsed)).unwrap();
        let fingerprint = "sha256:00".to_owned();
        let issue = IssueRecord {
            revision: 1,
            fingerprint: fingerprint.clone(),
            issued_at,
            reason: IssueReason::Created,
            previous_until: None,
            request: None,
        };
        let mut st = ApiTokenStatus::default();
        status::record_issue(&mut st, &issue, None);
        policy.record_format(&mut st);
        let secret = SecretState::Ours(OwnedSecret {
            token_fingerprint: Some(fingerprint),
            previous_fingerprint: None,
            record: Some(issue),
        });
        for status in [None, Some(&st)] {
            let p = plan::plan(&policy, &Observed {
                status,
                rotate_request: request.then_some("r1"),
                invalidate_previous: false,
                secret: secret.clone(),
                now,
            });
            // A plan that changes nothing must not ask to run again now.
            if matches!(p.action, Action::Keep { .. }) {
                prop_assert!(p.next_due.is_none_or(|due| due > now), "{p:?} at {now}");
            }
        }
    }
}
