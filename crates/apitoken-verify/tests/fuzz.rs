//! Property tests (proptest) of the key-set parser and the verifier: whatever bytes a mounted file
//! or a Secret holds, and whatever a client presents, loading and verifying never panic; a
//! document the operator renders always reads back as itself. Bounded case counts keep
//! `cargo test` within seconds.

use std::time::{Duration, SystemTime};

use apitoken_verify::{Document, Entry, KeySet, State};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// RFC 3339-ish times, mostly near misses.
fn time_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z",
        "[0-9TZ:+.-]{0,30}",
        ".{0,12}",
    ])
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        prop_oneof!["[0-9a-f]{64}", "[0-9a-fA-F]{0,70}", ".{0,8}"],
        "[a-z0-9-]{0,12}",
        "[a-z0-9-]{0,12}",
        any::<i64>(),
        prop_oneof![Just(State::Current), Just(State::Previous)],
        time_text(),
        time_text(),
        prop::collection::vec("[a-z:]{0,8}", 0..4),
        any::<bool>(),
    )
        .prop_map(
            |(
                sha256,
                namespace,
                name,
                revision,
                state,
                expires_at,
                valid_until,
                scopes,
                checksum,
            )| {
                Entry {
                    sha256,
                    namespace,
                    name,
                    revision,
                    state,
                    expires_at,
                    valid_until,
                    scopes,
                    checksum,
                }
            },
        )
}

/// Presented values: real-looking tokens, prefixes, empty, very long, non-ASCII.
fn presented() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_]{0,60}",
        "[a-z]{1,5}_[A-Za-z0-9]{30,60}",
        ".{0,40}",
        "[A-Za-z0-9]{200,400}",
    ]
}

fn verify_all(keys: &KeySet, value: &str, scopes: &[String], secs: u64) {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let _ = keys.verify_at(value, scopes, now);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_bytes_load_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = KeySet::from_json(&bytes);
    }

    #[test]
    fn json_near_misses_load_or_fail_cleanly(text in r#"\{"version":[0-9]{1,3},"keys":\[[{}\[\]",:a-z0-9 ]{0,80}\]\}"#) {
        let _ = KeySet::from_json(text.as_bytes());
    }

    #[test]
    fn rendered_documents_read_back_and_verify_without_panic(
        entries in prop::collection::vec(entry(), 0..6),
        value in presented(),
        scopes in prop::collection::vec("[a-z:]{0,8}", 0..3),
        secs in 0u64..4_000_000_000,
    ) {
        let doc = Document::new(entries);
        let rendered = doc.render();
        prop_assert_eq!(Document::parse(rendered.as_bytes()).unwrap(), doc.clone());
        if let Ok(keys) = KeySet::from_document(doc) {
            verify_all(&keys, &value, &scopes, secs);
        }
    }

    #[test]
    fn damaged_documents_load_or_fail_cleanly(
        entries in prop::collection::vec(entry(), 1..4),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        value in presented(),
    ) {
        let mut bytes = Document::new(entries).render().into_bytes();
        let at = flip.index(bytes.len());
        bytes[at] = byte;
        bytes.truncate(cut.index(bytes.len() + 1));
        if let Ok(keys) = KeySet::from_json(&bytes) {
            verify_all(&keys, &value, &[], 1_800_000_000);
        }
    }
}
