use super::*;
use crate::api::{ApiTokenSpec, ApiTokenStatus};

fn token(policy: Option<DeletionPolicy>, revision: Option<i64>) -> ApiToken {
    let mut token = ApiToken::new(
        "billing",
        ApiTokenSpec {
            deletion_policy: policy,
            ..ApiTokenSpec::default()
        },
    );
    token.metadata.namespace = Some("shop".into());
    token.status = revision.map(|r| ApiTokenStatus {
        revision: Some(r),
        fingerprint: Some("sha256:ab12".into()),
        ..ApiTokenStatus::default()
    });
    token
}

#[test]
fn only_retain_or_an_existing_finalizer_needs_one() {
    assert!(
        !needs_finalizer(&token(None, Some(1))),
        "Delete is the default"
    );
    assert!(!needs_finalizer(&token(Some(DeletionPolicy::Delete), None)));
    assert!(needs_finalizer(&token(Some(DeletionPolicy::Retain), None)));
    // An earlier release's finalizer stays until its cleanup: removing it is a write for nothing.
    let mut legacy = token(Some(DeletionPolicy::Delete), Some(1));
    legacy.metadata.finalizers = Some(vec!["other.dev/x".into(), FINALIZER.into()]);
    assert!(needs_finalizer(&legacy));
    legacy.metadata.finalizers = Some(vec!["other.dev/x".into()]);
    assert!(
        !needs_finalizer(&legacy),
        "someone else's finalizer is not ours"
    );
}

#[test]
fn a_deleted_issued_delete_token_is_a_revocation_with_its_revision() {
    let audit = revocation(&token(None, Some(3))).expect("a revocation");
    assert_eq!(
        (
            audit.action,
            audit.namespace.as_str(),
            audit.name.as_str(),
            audit.revision,
            audit.fingerprint.as_deref(),
            audit.reason,
            audit.actor
        ),
        (
            "revoke",
            "shop",
            "billing",
            Some(3),
            Some("sha256:ab12"),
            "Deleted",
            None
        )
    );
    assert!(revocation(&token(Some(DeletionPolicy::Delete), Some(1))).is_some());
}

#[test]
fn nothing_issued_or_retained_is_no_revocation() {
    assert!(revocation(&token(None, None)).is_none(), "no status");
    let mut empty = token(None, Some(1));
    empty.status = Some(ApiTokenStatus::default());
    assert!(revocation(&empty).is_none(), "status without a revision");
    assert!(
        revocation(&token(Some(DeletionPolicy::Retain), Some(2))).is_none(),
        "Retain: its cleanup records it"
    );
}

#[test]
fn values_are_described_by_revision_and_fingerprint() {
    assert_eq!(
        describe_value(Some(4), Some("sha256:ab12")),
        "revision 4 (sha256:ab12)"
    );
    assert_eq!(describe_value(None, None), "revision 0 (-)");
}
