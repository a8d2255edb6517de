use std::time::{Duration, SystemTime};

use super::*;
use crate::checksum::{Alphabet, encode};

/// A value shaped like an issued one: prefix, 40 base62 characters, base62 checksum.
fn value(seed: char) -> String {
    let body = format!("ak_{}", seed.to_string().repeat(40));
    let sum = encode(body.as_bytes(), Alphabet::Base62);
    body + &sum
}

fn at(s: &str) -> SystemTime {
    SystemTime::from(s.parse::<Timestamp>().unwrap())
}

fn entry(value: &str, name: &str, revision: i64, state: State) -> Entry {
    Entry {
        sha256: sha256_hex(value.as_bytes()),
        namespace: "payments".into(),
        name: name.into(),
        revision,
        state,
        expires_at: None,
        valid_until: None,
        scopes: vec!["orders:read".into(), "orders:write".into()],
        checksum: true,
    }
}

fn identity(name: &str, revision: i64, state: State) -> Identity {
    Identity {
        namespace: "payments".into(),
        name: name.into(),
        revision,
        state,
        scopes: vec!["orders:read".into(), "orders:write".into()],
    }
}

/// billing: current (revision 7, expires 12:00) and previous (revision 6, grace until 10:10);
/// shipping: current, never expires.
fn keyset() -> KeySet {
    let mut current = entry(&value('a'), "billing", 7, State::Current);
    current.expires_at = Some("2026-11-22T12:00:00Z".into());
    let mut previous = entry(&value('b'), "billing", 6, State::Previous);
    previous.valid_until = Some("2026-11-22T10:10:00Z".into());
    let shipping = entry(&value('c'), "shipping", 1, State::Current);
    KeySet::from_document(Document::new(vec![current, previous, shipping])).unwrap()
}

const NONE: &[&str] = &[];

#[test]
fn current_and_previous_values_verify_with_their_identity() {
    let keys = keyset();
    let now = at("2026-11-22T10:00:00Z");
    assert_eq!(
        keys.verify_at(&value('a'), NONE, now),
        Verdict::Valid(identity("billing", 7, State::Current))
    );
    assert_eq!(
        keys.verify_at(&value('b'), NONE, now),
        Verdict::ValidPrevious(identity("billing", 6, State::Previous))
    );
    assert_eq!(
        keys.verify_at(&value('c'), NONE, now),
        Verdict::Valid(identity("shipping", 1, State::Current))
    );
    assert_eq!(keys.len(), 3);
}

#[test]
fn a_well_formed_value_not_in_the_set_is_unknown() {
    assert_eq!(
        keyset().verify_at(&value('z'), NONE, at("2026-11-22T10:00:00Z")),
        Verdict::Unknown
    );
}

#[test]
fn expiry_is_exclusive_at_the_instant() {
    let keys = keyset();
    let expiry = at("2026-11-22T12:00:00Z");
    assert!(
        keys.verify_at(&value('a'), NONE, expiry - Duration::from_nanos(1))
            .is_valid()
    );
    assert_eq!(
        keys.verify_at(&value('a'), NONE, expiry),
        Verdict::Expired(identity("billing", 7, State::Current))
    );
}

#[test]
fn grace_ends_exactly_at_valid_until() {
    let keys = keyset();
    let end = at("2026-11-22T10:10:00Z");
    assert_eq!(
        keys.verify_at(&value('b'), NONE, end - Duration::from_millis(1)),
        Verdict::ValidPrevious(identity("billing", 6, State::Previous))
    );
    assert_eq!(
        keys.verify_at(&value('b'), NONE, end),
        Verdict::Expired(identity("billing", 6, State::Previous))
    );
    // The current value is untouched by the previous one's grace end.
    assert!(keys.verify_at(&value('a'), NONE, end).is_valid());
}

#[test]
fn a_previous_value_never_outlives_its_own_expiry() {
    let mut previous = entry(&value('b'), "billing", 6, State::Previous);
    previous.valid_until = Some("2026-11-22T10:10:00Z".into());
    previous.expires_at = Some("2026-11-22T10:05:00Z".into());
    let keys = KeySet::from_document(Document::new(vec![previous])).unwrap();
    assert!(
        keys.verify_at(&value('b'), NONE, at("2026-11-22T10:04:59Z"))
            .is_valid()
    );
    assert_eq!(
        keys.verify_at(&value('b'), NONE, at("2026-11-22T10:05:00Z"))
            .result(),
        "expired"
    );
}

#[test]
fn a_wrong_checksum_is_malformed_before_any_lookup() {
    let keys = keyset();
    let now = at("2026-11-22T10:00:00Z");
    let good = value('a');
    // Same length, alphabet and prefix, last checksum digit changed.
    let mut bad = good[..good.len() - 1].to_owned();
    bad.push(if good.ends_with('0') { '1' } else { '0' });
    assert_eq!(
        keys.verify_at(&bad, NONE, now),
        Verdict::Malformed(Malformed::Checksum)
    );
    // A body edit is caught the same way.
    let edited = good.replacen("aaaa", "aaab", 1);
    assert_eq!(
        keys.verify_at(&edited, NONE, now),
        Verdict::Malformed(Malformed::Checksum)
    );
}

#[test]
fn without_checksums_in_the_set_a_wrong_checksum_is_only_unknown() {
    let mut plain = entry(&"x".repeat(40), "legacy", 1, State::Current);
    plain.checksum = false;
    let keys = KeySet::from_document(Document::new(vec![plain])).unwrap();
    let now = at("2026-11-22T10:00:00Z");
    assert!(keys.verify_at(&"x".repeat(40), NONE, now).is_valid());
    assert_eq!(keys.verify_at(&"y".repeat(40), NONE, now), Verdict::Unknown);
}

#[test]
fn shape_checks() {
    let keys = keyset();
    let now = at("2026-11-22T10:00:00Z");
    let verdict = |v: &str| keys.verify_at(v, NONE, now);
    assert_eq!(verdict(""), Verdict::Malformed(Malformed::Empty));
    assert_eq!(
        verdict(&"a".repeat(MIN_VALUE_LEN - 1)),
        Verdict::Malformed(Malformed::TooShort)
    );
    assert_eq!(
        verdict(&"a".repeat(MAX_VALUE_LEN + 1)),
        Verdict::Malformed(Malformed::TooLong)
    );
    let spaced = format!("{} ", value('a'));
    assert_eq!(verdict(&spaced), Verdict::Malformed(Malformed::Character));
    assert_eq!(
        verdict(&"é".repeat(20)),
        Verdict::Malformed(Malformed::Character)
    );
    // The boundaries themselves are shapes a value may have (then the checksum decides).
    assert_eq!(
        verdict(&"a".repeat(MIN_VALUE_LEN)),
        Verdict::Malformed(Malformed::Checksum)
    );
    assert_eq!(
        verdict(&"a".repeat(MAX_VALUE_LEN)),
        Verdict::Malformed(Malformed::Checksum)
    );
}

#[test]
fn only_valid_verdicts_let_a_request_through_and_known_ones_name_their_token() {
    let keys = keyset();
    let now = at("2026-11-22T10:00:00Z");
    let later = at("2026-11-22T13:00:00Z");
    let billing = identity("billing", 7, State::Current);
    let cases = [
        (keys.verify_at(&value('a'), NONE, now), true, Some(&billing)),
        (
            keys.verify_at(&value('a'), &["x"], now),
            false,
            Some(&billing),
        ),
        (
            keys.verify_at(&value('a'), NONE, later),
            false,
            Some(&billing),
        ),
        (keys.verify_at(&value('z'), NONE, now), false, None),
        (keys.verify_at("", NONE, now), false, None),
    ];
    for (verdict, valid, who) in &cases {
        assert_eq!(verdict.is_valid(), *valid, "{verdict}");
        assert_eq!(verdict.identity(), *who, "{verdict}");
    }
    let previous = keys.verify_at(&value('b'), NONE, now);
    assert!(previous.is_valid());
    assert_eq!(
        previous.identity(),
        Some(&identity("billing", 6, State::Previous))
    );
}

#[test]
fn a_json_error_keeps_its_cause() {
    use std::error::Error as _;
    let err = KeySet::from_json(b"{not json").err().unwrap();
    assert!(err.source().is_some(), "{err}");
    let no_grace = entry(&value('a'), "billing", 1, State::Previous);
    let err = KeySet::from_document(Document::new(vec![no_grace]))
        .err()
        .unwrap();
    assert!(err.source().is_none(), "{err}");
}

#[test]
fn scopes_are_required_as_a_set() {
    let keys = keyset();
    let now = at("2026-11-22T10:00:00Z");
    let a = value('a');
    assert!(keys.verify_at(&a, &["orders:read"], now).is_valid());
    assert!(
        keys.verify_at(&a, &["orders:write", "orders:read"], now)
            .is_valid()
    );
    assert_eq!(
        keys.verify_at(&a, &["orders:read", "refunds:write", "admin", "admin"], now),
        Verdict::InsufficientScope {
            identity: identity("billing", 7, State::Current),
            missing: vec!["refunds:write".into(), "admin".into()],
        }
    );
    // Scopes match exactly: no prefixes, no case folding.
    assert_eq!(
        keys.verify_at(&a, &["orders"], now).result(),
        "insufficient_scope"
    );
    assert_eq!(
        keys.verify_at(&a, &["Orders:read"], now).result(),
        "insufficient_scope"
    );
}

#[test]
fn expiry_wins_over_scopes_and_unknown_values_reveal_no_scope_answer() {
    let keys = keyset();
    let late = at("2026-11-22T12:00:00Z");
    assert_eq!(
        keys.verify_at(&value('a'), &["admin"], late).result(),
        "expired"
    );
    assert_eq!(
        keys.verify_at(&value('z'), &["admin"], late),
        Verdict::Unknown
    );
}

#[test]
fn an_empty_key_set_refuses_everything() {
    let keys = KeySet::empty();
    assert!(keys.is_empty());
    assert_eq!(keys.len(), 0);
    assert!(!keyset().is_empty());
    let now = at("2026-11-22T10:00:00Z");
    assert_eq!(keys.verify_at(&value('a'), NONE, now), Verdict::Unknown);
    assert_eq!(
        keys.verify_at(&"a".repeat(40), NONE, now),
        Verdict::Malformed(Malformed::Checksum)
    );
}

#[test]
fn display_is_one_line_without_the_value() {
    let keys = keyset();
    let now = at("2026-11-22T10:00:00Z");
    let line = keys.verify_at(&value('a'), NONE, now).to_string();
    assert_eq!(
        line,
        "valid: payments/billing revision 7 (current) scopes [orders:read orders:write]"
    );
    assert_eq!(
        keys.verify_at(&value('b'), &["x"], now).to_string(),
        "insufficient_scope: payments/billing revision 6 (previous) lacks [x]"
    );
    assert_eq!(
        keys.verify_at(&value('z'), NONE, now).to_string(),
        "unknown: not in the key set"
    );
    // Each refusal says why in words (the proxy's log line), never with the value.
    let malformed = [
        (Malformed::Empty, "malformed: empty"),
        (Malformed::TooShort, "malformed: too short"),
        (Malformed::TooLong, "malformed: too long"),
        (Malformed::Character, "malformed: a character no token uses"),
        (Malformed::Checksum, "malformed: wrong checksum"),
    ];
    for (why, text) in malformed {
        assert_eq!(Verdict::Malformed(why).to_string(), text);
    }
}

#[test]
fn bad_documents_are_refused_with_the_entry_named() {
    let mut bad_hash = entry(&value('a'), "billing", 1, State::Current);
    bad_hash.sha256 = "xyz".into();
    let err = KeySet::from_document(Document::new(vec![bad_hash]))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "key set entry 0: sha256 is not 64 hex digits"
    );

    let no_grace = entry(&value('a'), "billing", 1, State::Previous);
    let err = KeySet::from_document(Document::new(vec![no_grace]))
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "key set entry 0: a previous value needs validUntil"
    );

    let mut bad_time = entry(&value('a'), "billing", 1, State::Current);
    bad_time.expires_at = Some("tomorrow".into());
    assert!(KeySet::from_document(Document::new(vec![bad_time])).is_err());

    let err = KeySet::from_json(br#"{"version":2,"keys":[]}"#)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "key set version 2 is not supported (want 1)"
    );
    assert!(KeySet::from_json(b"not json").is_err());
}

#[test]
fn a_hash_differing_in_any_one_word_is_not_a_match() {
    let hash = sha256_hex(value('a').as_bytes());
    let now = at("2026-11-22T10:00:00Z");
    // Change one hex digit in each 16-digit word (each u64 compared) in turn.
    for position in [0, 17, 40, 63] {
        let mut near = hash.clone().into_bytes();
        near[position] = if near[position] == b'0' { b'1' } else { b'0' };
        let mut e = entry(&value('a'), "near", 1, State::Current);
        e.sha256 = String::from_utf8(near).unwrap();
        let keys = KeySet::from_document(Document::new(vec![e])).unwrap();
        assert_eq!(
            keys.verify_at(&value('a'), NONE, now),
            Verdict::Unknown,
            "{position}"
        );
    }
    // Two words differing by the same bit (the lowest bit of their last byte: hex digits 15
    // and 31): differences are OR-ed, never cancelled out as they would be by XOR.
    let mut twice = hash.clone().into_bytes();
    for position in [15, 31] {
        let digit = (twice[position] as char).to_digit(16).unwrap() ^ 1;
        twice[position] = char::from_digit(digit, 16).unwrap() as u8;
    }
    let mut e = entry(&value('a'), "twice", 1, State::Current);
    e.sha256 = String::from_utf8(twice).unwrap();
    let keys = KeySet::from_document(Document::new(vec![e])).unwrap();
    assert_eq!(keys.verify_at(&value('a'), NONE, now), Verdict::Unknown);
    // Among many entries, the one that matches is found wherever it is.
    let mut entries: Vec<Entry> = (0..50)
        .map(|i| {
            let mut e = entry(&value('z'), &format!("other-{i:02}"), 1, State::Current);
            e.sha256 = format!("{i:064x}");
            e
        })
        .collect();
    entries.push(entry(&value('a'), "the-one", 9, State::Current));
    let keys = KeySet::from_document(Document::new(entries)).unwrap();
    match keys.verify_at(&value('a'), NONE, now) {
        Verdict::Valid(who) => assert_eq!((who.name.as_str(), who.revision), ("the-one", 9)),
        other => panic!("{other}"),
    }
}
