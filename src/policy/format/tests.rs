//! Statuses built as the operator builds them: `Policy::resolve` of the spec at issue time, then
//! `record_format`; the spec (and the release's defaults) may differ at the next reconcile.

use super::*;
use crate::api::{Alphabet, ApiTokenSpec};

fn spec(format: Option<TokenFormat>) -> ApiTokenSpec {
    ApiTokenSpec {
        format,
        ..Default::default()
    }
}

fn resolve(format: Option<TokenFormat>) -> Policy {
    Policy::resolve(&spec(format)).unwrap()
}

/// The status this release writes when it issues under `format`.
fn issued_under(format: Option<TokenFormat>) -> ApiTokenStatus {
    let mut status = ApiTokenStatus::default();
    resolve(format).record_format(&mut status);
    status
}

/// The status a release before `requestedFormat` wrote: the effective format only.
fn issued_by_old_release(format: Option<TokenFormat>) -> ApiTokenStatus {
    let mut status = issued_under(format);
    status.requested_format = None;
    status
}

fn length(n: i32) -> Option<TokenFormat> {
    Some(TokenFormat {
        length: Some(n),
        ..Default::default()
    })
}

fn prefix(p: &str) -> Option<TokenFormat> {
    Some(TokenFormat {
        prefix: Some(p.into()),
        ..Default::default()
    })
}

#[test]
fn recording_keeps_the_spec_as_written_and_the_effective_format() {
    let status = issued_under(length(64));
    assert_eq!(status.requested_format, length(64));
    assert_eq!(
        status.format,
        Some(TokenFormat {
            prefix: None,
            length: Some(64),
            alphabet: Some(Alphabet::Base62),
            checksum: Some(true),
        })
    );
    assert_eq!(
        issued_under(None).requested_format,
        Some(TokenFormat::default())
    );
}

/// (format when issued, format now, whether that asks for a new value)
#[test]
fn edits_to_the_spec_format() {
    let hex = Some(TokenFormat {
        alphabet: Some(Alphabet::Hex),
        ..Default::default()
    });
    let no_checksum = Some(TokenFormat {
        checksum: Some(false),
        ..Default::default()
    });
    let cases = [
        (None, None, false),
        (None, Some(TokenFormat::default()), false),
        (None, length(64), true),
        (length(64), length(64), false),
        (length(64), length(65), true),
        // Removing a field asks for today's default.
        (length(64), None, true),
        // Spelling out the value's own default, or removing it again, changes nothing.
        (None, length(40), false),
        (length(40), None, false),
        (None, prefix("pay_"), true),
        (prefix("pay_"), prefix("pay_"), false),
        (prefix("pay_"), prefix("bil_"), true),
        (prefix("pay_"), None, true),
        (None, hex.clone(), true),
        (hex.clone(), None, true),
        (hex.clone(), hex, false),
        (None, no_checksum.clone(), true),
        (no_checksum.clone(), None, true),
        (no_checksum.clone(), no_checksum, false),
    ];
    for (then, now, changed) in cases {
        let status = issued_under(then.clone());
        assert_eq!(
            resolve(now.clone()).format_changed(&status),
            changed,
            "issued under {then:?}, spec now {now:?}"
        );
        // A status from an old release (effective format only) reads the same.
        let old = issued_by_old_release(then.clone());
        assert_eq!(
            resolve(now.clone()).format_changed(&old),
            changed,
            "old release: issued under {then:?}, spec now {now:?}"
        );
    }
}

/// A release whose defaults differ (here: 48 characters, hex, no checksum, a prefix) must not
/// rotate a value whose spec leaves those fields out, whichever release wrote its status.
#[test]
fn a_default_changed_by_a_new_release_issues_nothing() {
    let next_release = |format: Option<TokenFormat>| {
        let mut policy = resolve(format);
        policy.format.length = 48;
        policy.format.alphabet = Alphabet::Hex;
        policy.format.checksum = false;
        policy.format.prefix = "tok_".into();
        policy
    };
    for status in [issued_under(None), issued_by_old_release(None)] {
        assert!(!next_release(None).format_changed(&status), "{status:?}");
    }
    let status = issued_under(length(64));
    assert!(!next_release(length(64)).format_changed(&status));
    assert!(next_release(length(65)).format_changed(&status));
}

#[test]
fn no_recorded_format_counts_as_changed() {
    assert!(resolve(None).format_changed(&ApiTokenStatus::default()));
}

/// What the old release's defaults were is frozen: statuses it wrote are read against them.
#[test]
fn the_recorded_defaults_are_those_of_the_first_release() {
    assert_eq!(
        Format::recorded_defaults(),
        Format {
            prefix: String::new(),
            length: 40,
            alphabet: Alphabet::Base62,
            checksum: true,
        }
    );
}
