use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::api::{ApiTokenSpec, ApiTokenStatus, HistoryEntry, IssueReason, PreviousValue};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn digest(n: u8) -> ValueDigest {
    ValueDigest {
        fingerprint: format!("sha256:{n:012}"),
        sha256: format!("{n:064}"),
        checksum: true,
    }
}

fn history(revision: i64, n: u8, retired: Option<&str>) -> HistoryEntry {
    HistoryEntry {
        revision,
        fingerprint: digest(n).fingerprint,
        issued_at: Time(ts("2026-11-22T09:00:00Z")),
        reason: IssueReason::Schedule,
        retired_at: retired.map(|t| Time(ts(t))),
    }
}

/// Revision 7 (digest 7) is current, expiring at 12:00; revision 6 (digest 6) is previous until
/// 10:10. Scopes out of order and repeated, as a user might write them.
fn token(name: &str) -> ApiToken {
    let mut token = ApiToken::new(
        name,
        ApiTokenSpec {
            scopes: Some(vec!["orders:write".into(), "orders:read".into()]),
            ..ApiTokenSpec::default()
        },
    );
    token.metadata.namespace = Some("payments".into());
    token.status = Some(ApiTokenStatus {
        revision: Some(7),
        fingerprint: Some(digest(7).fingerprint),
        expires_at: Some(Time(ts("2026-11-22T12:00:00Z"))),
        previous: Some(PreviousValue {
            fingerprint: digest(6).fingerprint,
            valid_until: Time(ts("2026-11-22T10:10:00Z")),
        }),
        history: vec![
            history(7, 7, None),
            history(6, 6, Some("2026-11-22T10:00:00Z")),
        ],
        ..ApiTokenStatus::default()
    });
    token
}

fn run(tokens: &[&ApiToken], digests: &[ValueDigest], now: &str) -> KeySetPlan {
    let selected: Vec<_> = tokens
        .iter()
        .map(|&token| Selected { token, digests })
        .collect();
    plan(&selected, ts(now))
}

#[test]
fn holds_current_and_previous_with_identity_scopes_and_times() {
    let t = token("billing");
    let out = run(&[&t], &[digest(6), digest(7)], "2026-11-22T10:00:00Z");
    let expected = format!(
        concat!(
            "{{\"version\":1,\"keys\":[\n",
            "{{\"sha256\":\"{}\",\"namespace\":\"payments\",\"name\":\"billing\",\"revision\":6,\"state\":\"previous\",\"validUntil\":\"2026-11-22T10:10:00Z\",\"scopes\":[\"orders:read\",\"orders:write\"],\"checksum\":true}},\n",
            "{{\"sha256\":\"{}\",\"namespace\":\"payments\",\"name\":\"billing\",\"revision\":7,\"state\":\"current\",\"expiresAt\":\"2026-11-22T12:00:00Z\",\"scopes\":[\"orders:read\",\"orders:write\"],\"checksum\":true}}\n",
            "]}}\n"
        ),
        digest(6).sha256,
        digest(7).sha256
    );
    assert_eq!(out.document.render(), expected);
    assert_eq!(out.tokens, 1);
    assert_eq!(out.next_due, Some(ts("2026-11-22T10:10:00Z")));
}

#[test]
fn the_previous_value_leaves_exactly_at_the_grace_end() {
    let t = token("billing");
    let digests = [digest(6), digest(7)];
    let before = run(&[&t], &digests, "2026-11-22T10:09:59Z");
    assert_eq!(before.document.keys.len(), 2);
    let at = run(&[&t], &digests, "2026-11-22T10:10:00Z");
    assert_eq!(at.document.keys.len(), 1);
    assert_eq!(at.document.keys[0].state, State::Current);
    // Then the next change is the current value's expiry.
    assert_eq!(at.next_due, Some(ts("2026-11-22T12:00:00Z")));
}

#[test]
fn the_current_value_leaves_exactly_at_expiry() {
    let t = token("billing");
    let digests = [digest(6), digest(7)];
    let before = run(&[&t], &digests, "2026-11-22T11:59:59Z");
    assert_eq!(before.document.keys.len(), 1);
    let at = run(&[&t], &digests, "2026-11-22T12:00:00Z");
    assert!(at.document.keys.is_empty());
    assert_eq!((at.tokens, at.next_due), (0, None));
}

#[test]
fn a_retired_value_is_absent_even_before_its_recorded_expiry() {
    let mut t = token("billing");
    let status = t.status.as_mut().unwrap();
    status.previous = None;
    status.history[0].retired_at = Some(Time(ts("2026-11-22T10:00:00Z")));
    let out = run(&[&t], &[digest(6), digest(7)], "2026-11-22T10:00:01Z");
    assert!(out.document.keys.is_empty());
}

#[test]
fn a_token_being_deleted_holds_nothing() {
    let mut t = token("billing");
    t.metadata.deletion_timestamp = Some(Time(ts("2026-11-22T10:00:00Z")));
    let out = run(&[&t], &[digest(6), digest(7)], "2026-11-22T10:00:01Z");
    assert!(out.document.keys.is_empty());
}

#[test]
fn a_value_without_a_known_hash_is_left_out_never_guessed() {
    let t = token("billing");
    let out = run(&[&t], &[digest(7)], "2026-11-22T10:00:00Z");
    assert_eq!(out.document.keys.len(), 1);
    assert_eq!(out.document.keys[0].revision, 7);
    let none = run(&[&t], &[], "2026-11-22T10:00:00Z");
    assert!(none.document.keys.is_empty());
}

#[test]
fn never_issued_and_never_expiring_tokens() {
    let mut fresh = token("fresh");
    fresh.status = None;
    let mut forever = token("forever");
    let status = forever.status.as_mut().unwrap();
    status.expires_at = None;
    status.previous = None;
    let out = run(&[&fresh, &forever], &[digest(7)], "2030-01-01T00:00:00Z");
    assert_eq!(out.document.keys.len(), 1);
    assert_eq!(out.document.keys[0].name, "forever");
    assert_eq!(out.document.keys[0].expires_at, None);
    assert_eq!((out.tokens, out.next_due), (1, None));
}

#[test]
fn the_order_tokens_are_seen_in_does_not_change_the_bytes() {
    let (a, b) = (token("a"), token("b"));
    let digests = [digest(6), digest(7)];
    let ab = run(&[&a, &b], &digests, "2026-11-22T10:00:00Z");
    let ba = run(&[&b, &a], &digests, "2026-11-22T10:00:00Z");
    assert_eq!(ab.document.render(), ba.document.render());
    assert_eq!(ab.tokens, 2);
}

/// A previous value the history no longer lists (written by a release that kept no history, or
/// trimmed) is the revision before the current one; one the history lists keeps its own number.
#[test]
fn the_previous_revision_comes_from_history_or_is_the_one_before_current() {
    let digests = [digest(6), digest(7)];
    let revision_of_previous = |t: &ApiToken| {
        let out = run(&[t], &digests, "2026-11-22T10:00:00Z");
        let previous = out
            .document
            .keys
            .iter()
            .find(|k| k.state == State::Previous);
        previous.expect("the previous value is held").revision
    };
    let mut unlisted = token("billing");
    unlisted.status.as_mut().unwrap().history = vec![history(7, 7, None)];
    assert_eq!(revision_of_previous(&unlisted), 6);
    let mut renumbered = token("billing");
    renumbered.status.as_mut().unwrap().history = vec![history(7, 7, None), history(4, 6, None)];
    assert_eq!(revision_of_previous(&renumbered), 4);
}
