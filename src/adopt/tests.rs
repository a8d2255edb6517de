use k8s_openapi::ByteString;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::Resource;

use super::*;
use crate::api::{Alphabet, ApiTokenSpec, HistoryEntry, TokenFormat};
use crate::plan::IssueRecord;
use crate::secret::{Desired, secret_for};
use crate::token::{Token, generate};

fn format() -> Format {
    Format::from_spec(Some(&TokenFormat {
        prefix: Some("pay_".into()),
        ..TokenFormat::default()
    }))
}

fn token(name: &str, uid: &str) -> ApiToken {
    let mut t = ApiToken::new(name, ApiTokenSpec::default());
    t.metadata.namespace = Some("ns".into());
    t.metadata.uid = Some(uid.into());
    t
}

fn record(value: &Token, revision: i64) -> IssueRecord {
    IssueRecord {
        revision,
        fingerprint: value.fingerprint(),
        issued_at: "2026-11-20T10:00:00Z".parse().unwrap(),
        reason: IssueReason::Schedule,
        previous_until: None,
        request: None,
    }
}

/// The Secret the operator wrote for `name` (revision 3), as a restore brings it back: without
/// ownerReferences.
fn restored(name: &str) -> (Secret, Token) {
    let value = generate(&format()).unwrap();
    let issue = record(&value, 3);
    let desired = Desired {
        current: Some(&value),
        previous: None,
        issue: &issue,
        expires_at: None,
    };
    let mut s = secret_for(&token(name, "old-uid"), &desired);
    s.metadata.owner_references = None;
    (s, value)
}

fn set_token(s: &mut Secret, value: &str) {
    s.data
        .get_or_insert_default()
        .insert(TOKEN_KEY.into(), ByteString(value.as_bytes().to_vec()));
}

#[test]
fn the_operators_own_secret_for_this_name_is_adoptable() {
    let (s, _) = restored("billing");
    assert_eq!(check(&s, "billing", &format(), None), Ok(()));
}

#[test]
fn a_secret_controlled_by_something_else_is_refused() {
    let (mut s, _) = restored("billing");
    s.metadata.owner_references = Some(vec![OwnerReference {
        controller: Some(true),
        uid: "other".into(),
        ..OwnerReference::default()
    }]);
    assert_eq!(
        check(&s, "billing", &format(), None),
        Err(Refusal::Controlled)
    );
    // A non-controller owner (e.g. a backup tool's marker) does not block adoption.
    s.metadata.owner_references.as_mut().unwrap()[0].controller = None;
    assert_eq!(check(&s, "billing", &format(), None), Ok(()));
}

#[test]
fn only_opaque_secrets_are_adoptable() {
    let (mut s, _) = restored("billing");
    s.type_ = Some("example.com/token".into());
    assert_eq!(
        check(&s, "billing", &format(), None),
        Err(Refusal::NotOpaque)
    );
    s.type_ = None;
    assert_eq!(
        check(&s, "billing", &format(), None),
        Err(Refusal::NotOpaque)
    );
}

#[test]
fn labels_must_name_the_operator_and_this_apitoken() {
    let (s, _) = restored("billing");
    assert_eq!(
        check(&s, "payments", &format(), None),
        Err(Refusal::NotLabelled),
        "another ApiToken's Secret"
    );
    let mut other_manager = s.clone();
    other_manager
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(MANAGED_BY_LABEL.into(), "helm".into());
    assert_eq!(
        check(&other_manager, "billing", &format(), None),
        Err(Refusal::NotLabelled)
    );
    let mut unlabelled = s;
    unlabelled.metadata.labels = None;
    assert_eq!(
        check(&unlabelled, "billing", &format(), None),
        Err(Refusal::NotLabelled)
    );
}

#[test]
fn copied_labels_without_the_issue_annotations_are_refused() {
    let (mut s, _) = restored("billing");
    s.metadata.annotations = None;
    assert_eq!(
        check(&s, "billing", &format(), None),
        Err(Refusal::NoRecord)
    );
}

#[test]
fn a_value_that_does_not_match_its_fingerprint_annotation_is_refused() {
    let (mut s, _) = restored("billing");
    // Well-formed, but not the value the annotation names (edited after backup, or hand-made).
    set_token(&mut s, generate(&format()).unwrap().expose());
    assert_eq!(
        check(&s, "billing", &format(), None),
        Err(Refusal::FingerprintMismatch)
    );
    s.data.as_mut().unwrap().remove(TOKEN_KEY);
    assert_eq!(check(&s, "billing", &format(), None), Err(Refusal::NoValue));
}

#[test]
fn a_value_of_another_format_is_refused_even_with_a_matching_fingerprint() {
    for (bad, why) in [
        ("pay_short", "too short"),
        (
            "xyz_0123456789012345678901234567890123456789abcdef",
            "prefix",
        ),
    ] {
        let (mut s, _) = restored("billing");
        set_token(&mut s, bad);
        let fp = crate::token::fingerprint(bad.as_bytes());
        s.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("apitoken.dev/fingerprint".into(), fp);
        assert_eq!(
            check(&s, "billing", &format(), None),
            Err(Refusal::WrongFormat),
            "{why}"
        );
    }
    // A checksum that does not add up: the last character changed within the alphabet.
    let (mut s, value) = restored("billing");
    let mut forged = value.expose().to_owned();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    set_token(&mut s, &forged);
    s.metadata.annotations.as_mut().unwrap().insert(
        "apitoken.dev/fingerprint".into(),
        crate::token::fingerprint(forged.as_bytes()),
    );
    assert_eq!(
        check(&s, "billing", &format(), None),
        Err(Refusal::WrongFormat)
    );
    // The ApiToken's format now asks for hex: the base62 value no longer fits.
    let (s, _) = restored("billing");
    let hex = Format {
        alphabet: Alphabet::Hex,
        ..format()
    };
    assert_eq!(check(&s, "billing", &hex, None), Err(Refusal::WrongFormat));
}

#[test]
fn a_kept_status_must_agree_unless_the_secret_is_newer() {
    let (s, value) = restored("billing");
    let mut status = ApiTokenStatus {
        revision: Some(3),
        fingerprint: Some(value.fingerprint()),
        ..ApiTokenStatus::default()
    };
    assert_eq!(check(&s, "billing", &format(), Some(&status)), Ok(()));
    status.fingerprint = Some("sha256:000000000000".into());
    assert_eq!(
        check(&s, "billing", &format(), Some(&status)),
        Err(Refusal::StatusDisagrees)
    );
    // Backed up after a rotation the backed-up status had not recorded yet.
    status.revision = Some(2);
    assert_eq!(check(&s, "billing", &format(), Some(&status)), Ok(()));
}

#[test]
fn trusted_prefers_ownership_and_adopts_only_what_check_accepts() {
    let (s, _) = restored("billing");
    let owner = token("billing", "new-uid");
    assert!(matches!(trusted(Some(&s), &owner, &format()), Ok(Some(_))));
    assert!(matches!(trusted(None, &owner, &format()), Ok(None)));
    let mut owned = s.clone();
    owned.metadata.owner_references = owner.controller_owner_ref(&()).map(|r| vec![r]);
    owned.type_ = Some("example.com/token".into()); // ours by UID: never re-judged
    assert!(matches!(
        trusted(Some(&owned), &owner, &format()),
        Ok(Some(_))
    ));
    let other = token("payments", "new-uid-2");
    assert_eq!(
        trusted(Some(&s), &other, &format()).err(),
        Some(Refusal::NotLabelled)
    );
}

fn entry(revision: i64, reason: IssueReason) -> HistoryEntry {
    HistoryEntry {
        revision,
        fingerprint: format!("sha256:{revision:012}"),
        issued_at: Time("2026-11-20T10:00:00Z".parse().unwrap()),
        reason,
        retired_at: None,
    }
}

#[test]
fn history_says_adopted_only_for_an_entry_the_adoption_added() {
    let mut status = ApiTokenStatus {
        history: vec![entry(3, IssueReason::Schedule)],
        ..ApiTokenStatus::default()
    };
    mark_history(&mut status, None);
    assert_eq!(status.history[0].reason, IssueReason::Adopted);

    // A restore that kept status: the entry was already there and keeps its reason.
    let before = ApiTokenStatus {
        history: vec![entry(3, IssueReason::Schedule)],
        ..ApiTokenStatus::default()
    };
    let mut status = before.clone();
    mark_history(&mut status, Some(&before));
    assert_eq!(status.history[0].reason, IssueReason::Schedule);
}

#[test]
fn the_report_names_revision_and_fingerprint_and_never_says_issued() {
    let owner = token("billing", "new-uid");
    let status = ApiTokenStatus {
        revision: Some(3),
        fingerprint: Some("sha256:1f3c9a0b7d2e".into()),
        ..ApiTokenStatus::default()
    };
    let (reason, note, audit) = report(&owner, &status);
    assert_eq!(reason, Reason::Adopted);
    assert_eq!(
        note,
        "adopted Secret billing with revision 3 (sha256:1f3c9a0b7d2e) after it lost its owner (restore or re-create); no new value"
    );
    assert_eq!(
        (audit.action, audit.reason, audit.revision),
        ("adopt", "Adopted", Some(3))
    );
    assert_eq!(audit.namespace, "ns");
}

/// The words users read in the SecretConflict message (`not adopted: ...`), one per refusal.
#[test]
fn each_refusal_says_why_in_words() {
    let words = [
        (Refusal::Controlled, "another object controls it"),
        (Refusal::NotOpaque, "its type is not Opaque"),
        (
            Refusal::NotLabelled,
            "it does not carry this ApiToken's labels",
        ),
        (
            Refusal::NoRecord,
            "it lacks the operator's revision and fingerprint annotations",
        ),
        (Refusal::NoValue, "it has no token"),
        (
            Refusal::FingerprintMismatch,
            "its token does not match its fingerprint annotation",
        ),
        (
            Refusal::WrongFormat,
            "its token does not have this ApiToken's format",
        ),
        (Refusal::StatusDisagrees, "status records another value"),
    ];
    for (refusal, expected) in words {
        assert_eq!(refusal.as_str(), expected, "{refusal:?}");
    }
}
