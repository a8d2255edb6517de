//! Building, observing and diffing the Secret, without a cluster.

use super::*;
use crate::api::{ApiTokenSpec, IssueReason, SecretTemplate};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, ManagedFieldsEntry, OwnerReference, Time,
};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const UID: &str = "0b6f1a2c-0000-4000-8000-000000000001";
const CURRENT: &str = "pay_CURRENTvalue0000000000000000000000000000";
const PREVIOUS: &str = "pay_PREVIOUSvalue000000000000000000000000000";

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn token(value: &str) -> Token {
    Token::from_bytes(value.as_bytes()).unwrap()
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// ApiToken `billing` in namespace `payments` with a UID, as read from the API server.
fn owner(spec: ApiTokenSpec) -> ApiToken {
    let mut t = ApiToken::new("billing", spec);
    t.metadata.namespace = Some("payments".into());
    t.metadata.uid = Some(UID.into());
    t
}

fn plain_owner() -> ApiToken {
    owner(ApiTokenSpec::default())
}

fn templated(template: SecretTemplate) -> ApiToken {
    owner(ApiTokenSpec {
        secret_template: Some(template),
        ..Default::default()
    })
}

fn revision(revision: i64) -> IssueRecord {
    IssueRecord {
        revision,
        fingerprint: crate::token::fingerprint(CURRENT.as_bytes()),
        issued_at: ts("2026-11-22T10:00:00Z"),
        reason: IssueReason::Schedule,
        previous_until: None,
        request: None,
    }
}

/// A Secret holding `CURRENT` for revision 3, expiring 1 Dec.
fn build(owner: &ApiToken) -> Secret {
    let current = token(CURRENT);
    secret_for(
        owner,
        &Desired {
            current: Some(&current),
            previous: None,
            issue: &revision(3),
            expires_at: Some(ts("2026-12-01T00:00:00Z")),
        },
    )
}

fn data(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .map(|b| String::from_utf8(b.0.clone()).unwrap())
}

fn data_keys(secret: &Secret) -> Vec<&str> {
    secret
        .data
        .as_ref()
        .map(|d| d.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn annotation<'a>(secret: &'a Secret, key: &str) -> Option<&'a str> {
    secret.annotations().get(key).map(String::as_str)
}

fn owner_ref(uid: &str, controller: Option<bool>) -> OwnerReference {
    OwnerReference {
        api_version: "apitoken.dev/v1alpha1".into(),
        kind: "ApiToken".into(),
        name: "billing".into(),
        uid: uid.into(),
        controller,
        block_owner_deletion: None,
    }
}

fn secret_owned_by(refs: Vec<OwnerReference>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("billing".into()),
            namespace: Some("payments".into()),
            owner_references: Some(refs),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    }
}

/// `{"f:a": {}, "f:b": {}}` for the keys of a map.
fn fields_of<V>(m: Option<&BTreeMap<String, V>>) -> Value {
    Value::Object(
        m.into_iter()
            .flatten()
            .map(|(k, _)| (format!("f:{k}"), json!({})))
            .collect::<Map<_, _>>(),
    )
}

fn managed(manager: &str, fields: Value) -> ManagedFieldsEntry {
    ManagedFieldsEntry {
        manager: Some(manager.into()),
        operation: Some("Apply".into()),
        api_version: Some("v1".into()),
        fields_type: Some("FieldsV1".into()),
        fields_v1: Some(FieldsV1(fields)),
        ..ManagedFieldsEntry::default()
    }
}

/// The Secret as the API server returns it after our field manager applied `secret`: the same
/// content, with managedFields naming exactly the keys we applied.
fn as_applied(mut secret: Secret) -> Secret {
    let fields = json!({
        "f:data": fields_of(secret.data.as_ref()),
        "f:metadata": {
            "f:labels": fields_of(secret.metadata.labels.as_ref()),
            "f:annotations": fields_of(secret.metadata.annotations.as_ref()),
            "f:ownerReferences": {},
        },
        "f:type": {},
    });
    secret.metadata.managed_fields = Some(vec![managed(FIELD_MANAGER, fields)]);
    secret.metadata.resource_version = Some("4711".into());
    secret.metadata.uid = Some("secret-uid".into());
    secret
}

/// Someone else (`kubectl`) adds `fields` to the Secret, recorded under their own manager.
fn touched_by_kubectl(secret: &mut Secret, fields: Value) {
    secret
        .metadata
        .managed_fields
        .get_or_insert_with(Vec::new)
        .push(managed("kubectl-edit", fields));
}

// ---------------------------------------------------------------------------------------------
// secret_for: metadata
// ---------------------------------------------------------------------------------------------

#[test]
fn secret_is_opaque_in_the_owner_namespace_named_after_secret_name() {
    let s = build(&owner(ApiTokenSpec {
        secret_name: Some("billing-client-token".into()),
        ..Default::default()
    }));
    assert_eq!(s.metadata.name.as_deref(), Some("billing-client-token"));
    assert_eq!(s.metadata.namespace.as_deref(), Some("payments"));
    assert_eq!(s.type_.as_deref(), Some("Opaque"));
}

#[test]
fn secret_name_defaults_to_the_apitoken_name() {
    assert_eq!(
        build(&plain_owner()).metadata.name.as_deref(),
        Some("billing")
    );
}

#[test]
fn secret_has_a_controller_owner_reference_to_the_apitoken() {
    let s = build(&plain_owner());
    assert_eq!(
        s.metadata.owner_references,
        Some(vec![owner_ref(UID, Some(true))])
    );
}

#[test]
fn labels_are_ours_plus_the_template_and_ours_win() {
    let s = build(&templated(SecretTemplate {
        labels: Some(map(&[
            ("team", "billing"),
            ("app.kubernetes.io/managed-by", "helm"),
            ("apitoken.dev/name", "someone-else"),
        ])),
        ..Default::default()
    }));
    assert_eq!(
        s.metadata.labels,
        Some(map(&[
            ("app.kubernetes.io/managed-by", "apitoken-operator"),
            ("apitoken.dev/name", "billing"),
            ("team", "billing"),
        ]))
    );
}

#[test]
fn apitoken_labels_and_annotations_are_not_copied() {
    let mut o = plain_owner();
    o.metadata.labels = Some(map(&[("argocd.argoproj.io/instance", "payments")]));
    o.metadata.annotations = Some(map(&[("apitoken.dev/rotate", "now")]));
    let s = build(&o);
    assert!(!s.labels().contains_key("argocd.argoproj.io/instance"));
    assert!(!s.annotations().contains_key("apitoken.dev/rotate"));
    assert_eq!(s.labels().len(), 2);
}

#[test]
fn annotations_record_revision_fingerprint_issue_time_and_reason() {
    let s = build(&plain_owner());
    assert_eq!(
        s.metadata.annotations,
        Some(map(&[
            (
                "apitoken.dev/fingerprint",
                &crate::token::fingerprint(CURRENT.as_bytes())
            ),
            ("apitoken.dev/issued-at", "2026-11-22T10:00:00Z"),
            ("apitoken.dev/reason", "Schedule"),
            ("apitoken.dev/revision", "3"),
        ]))
    );
}

#[test]
fn display_name_is_an_annotation() {
    let s = build(&owner(ApiTokenSpec {
        display_name: Some("Billing service -> Payments API".into()),
        ..Default::default()
    }));
    assert_eq!(
        annotation(&s, "apitoken.dev/display-name"),
        Some("Billing service -> Payments API")
    );
}

#[test]
fn template_annotations_are_added_but_cannot_override_ours() {
    let s = build(&templated(SecretTemplate {
        annotations: Some(map(&[
            ("reloader.stakater.com/match", "true"),
            ("apitoken.dev/revision", "999"),
        ])),
        ..Default::default()
    }));
    assert_eq!(annotation(&s, "reloader.stakater.com/match"), Some("true"));
    assert_eq!(annotation(&s, "apitoken.dev/revision"), Some("3"));
}

// ---------------------------------------------------------------------------------------------
// secret_for: data
// ---------------------------------------------------------------------------------------------

fn gateway_template() -> ApiToken {
    templated(SecretTemplate {
        data: Some(map(&[
            ("key", "{{ token }}"),
            ("header", "X-API-KEY: {{ token }}"),
            ("basic", "{{ token }}:{{ token }}"),
            ("endpoint", "https://payments.example"),
        ])),
        ..Default::default()
    })
}

#[test]
fn template_data_substitutes_every_token_placeholder() {
    let s = build(&gateway_template());
    assert_eq!(data(&s, "token").as_deref(), Some(CURRENT));
    assert_eq!(data(&s, "key").as_deref(), Some(CURRENT));
    assert_eq!(data(&s, "header"), Some(format!("X-API-KEY: {CURRENT}")));
    assert_eq!(data(&s, "basic"), Some(format!("{CURRENT}:{CURRENT}")));
    assert_eq!(
        data(&s, "endpoint").as_deref(),
        Some("https://payments.example")
    );
}

#[test]
fn expired_secret_drops_the_token_and_placeholder_keys_but_keeps_static_ones() {
    let s = secret_for(
        &gateway_template(),
        &Desired {
            current: None,
            previous: None,
            issue: &revision(3),
            expires_at: Some(ts("2026-12-01T00:00:00Z")),
        },
    );
    assert_eq!(data_keys(&s), ["endpoint", "expires-at"]);
    assert_eq!(
        data(&s, "endpoint").as_deref(),
        Some("https://payments.example")
    );
}

#[test]
fn expires_at_is_rfc3339() {
    let s = build(&plain_owner());
    assert_eq!(
        data(&s, "expires-at").as_deref(),
        Some("2026-12-01T00:00:00Z")
    );
}

#[test]
fn no_expires_at_key_for_a_value_that_never_expires() {
    let current = token(CURRENT);
    let s = secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: None,
            issue: &revision(3),
            expires_at: None,
        },
    );
    assert_eq!(data_keys(&s), ["token"]);
}

#[test]
fn previous_value_and_its_deadline_only_when_a_previous_value_is_given() {
    let (current, previous) = (token(CURRENT), token(PREVIOUS));
    let issue = IssueRecord {
        previous_until: Some(ts("2026-11-22T10:10:00Z")),
        ..revision(3)
    };
    let with = secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: Some(&previous),
            issue: &issue,
            expires_at: None,
        },
    );
    assert_eq!(data(&with, "token.previous").as_deref(), Some(PREVIOUS));
    assert_eq!(
        annotation(&with, "apitoken.dev/previous-valid-until"),
        Some("2026-11-22T10:10:00Z")
    );

    let without = secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: None,
            issue: &issue,
            expires_at: None,
        },
    );
    assert_eq!(data_keys(&without), ["token"]);
    assert_eq!(
        annotation(&without, "apitoken.dev/previous-valid-until"),
        None
    );
}

#[test]
fn reserved_keys_in_template_data_never_override_ours() {
    // The CRD rejects these keys, but an object stored before the rules existed may carry them.
    let o = templated(SecretTemplate {
        data: Some(map(&[
            ("token", "static"),
            ("token.previous", "static"),
            ("expires-at", "never"),
        ])),
        ..Default::default()
    });
    let s = build(&o);
    assert_eq!(data(&s, "token").as_deref(), Some(CURRENT));
    assert_eq!(data(&s, "token.previous"), None);
    assert_eq!(
        data(&s, "expires-at").as_deref(),
        Some("2026-12-01T00:00:00Z")
    );
}

// ---------------------------------------------------------------------------------------------
// shell_for: the first write of a new Secret
// ---------------------------------------------------------------------------------------------

#[test]
fn shell_is_an_empty_opaque_secret_named_for_the_apitoken_with_our_labels() {
    let shell = shell_for(&owner(ApiTokenSpec {
        secret_name: Some("billing-client-token".into()),
        display_name: Some("Billing".into()),
        ..Default::default()
    }));
    assert_eq!(shell.metadata.name.as_deref(), Some("billing-client-token"));
    assert_eq!(shell.metadata.namespace.as_deref(), Some("payments"));
    assert_eq!(shell.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        shell.metadata.labels,
        Some(map(&[
            ("app.kubernetes.io/managed-by", "apitoken-operator"),
            ("apitoken.dev/name", "billing"),
        ]))
    );
    // No value and nothing server-side apply would have to take over or remove.
    assert_eq!(shell.data, None);
    assert_eq!(shell.metadata.annotations, None);
}

#[test]
fn shell_is_controlled_by_the_apitoken_so_a_failed_follow_up_write_is_retried_not_a_conflict() {
    // Without the ownerReference, a shell left behind by a failed apply would look foreign
    // to the next reconcile: a permanent SecretConflict on the operator's own Secret.
    let o = plain_owner();
    let shell = shell_for(&o);
    assert_eq!(
        shell.metadata.owner_references,
        Some(vec![owner_ref(UID, Some(true))])
    );
    assert!(is_ours(&shell, &o));
    let observed = observe(Some(&shell), &o);
    assert_eq!(observed, SecretState::Ours(OwnedSecret::default()));
    let policy = crate::policy::Policy::resolve(&o.spec).unwrap();
    let next = crate::plan::plan(
        &policy,
        &crate::plan::Observed {
            status: None,
            rotate_request: None,
            invalidate_previous: false,
            secret: observed,
            now: ts("2026-11-22T10:00:00Z"),
        },
    );
    assert_eq!(
        next.action,
        crate::plan::Action::Issue {
            reason: IssueReason::Created,
            previous_until: None
        }
    );
}

// ---------------------------------------------------------------------------------------------
// is_ours and observe
// ---------------------------------------------------------------------------------------------

#[test]
fn secret_controlled_by_this_uid_is_ours() {
    let s = secret_owned_by(vec![owner_ref(UID, Some(true))]);
    assert!(is_ours(&s, &plain_owner()));
}

#[test]
fn same_name_with_another_uid_is_foreign() {
    // A recreated ApiToken of the same name must not adopt its predecessor's Secret.
    let s = secret_owned_by(vec![owner_ref("another-uid", Some(true))]);
    assert!(!is_ours(&s, &plain_owner()));
    assert_eq!(observe(Some(&s), &plain_owner()), SecretState::Foreign);
}

#[test]
fn non_controller_reference_is_not_ours() {
    for controller in [None, Some(false)] {
        let s = secret_owned_by(vec![owner_ref(UID, controller)]);
        assert!(!is_ours(&s, &plain_owner()), "controller: {controller:?}");
    }
}

#[test]
fn secret_without_owner_references_is_foreign() {
    let s = Secret::default();
    assert!(!is_ours(&s, &plain_owner()));
    assert_eq!(observe(Some(&s), &plain_owner()), SecretState::Foreign);
}

#[test]
fn owner_without_uid_owns_nothing() {
    let mut o = plain_owner();
    o.metadata.uid = None;
    let s = secret_owned_by(vec![owner_ref("", Some(true))]);
    assert!(!is_ours(&s, &o));
}

#[test]
fn observe_missing_secret() {
    assert_eq!(observe(None, &plain_owner()), SecretState::Missing);
}

#[test]
fn observe_reads_back_what_secret_for_wrote() {
    let (current, previous) = (token(CURRENT), token(PREVIOUS));
    let issue = IssueRecord {
        reason: IssueReason::Requested,
        previous_until: Some(ts("2026-11-22T10:10:00Z")),
        ..revision(7)
    };
    let s = secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: Some(&previous),
            issue: &issue,
            expires_at: None,
        },
    );
    assert_eq!(
        observe(Some(&s), &plain_owner()),
        SecretState::Ours(OwnedSecret {
            token_fingerprint: Some(crate::token::fingerprint(CURRENT.as_bytes())),
            previous_fingerprint: Some(crate::token::fingerprint(PREVIOUS.as_bytes())),
            record: Some(issue),
        })
    );
}

#[test]
fn observe_fingerprints_the_token_actually_in_the_secret() {
    let mut s = build(&plain_owner());
    s.data
        .as_mut()
        .unwrap()
        .insert("token".into(), ByteString(b"hunter2".to_vec()));
    let SecretState::Ours(owned) = observe(Some(&s), &plain_owner()) else {
        panic!("should be ours");
    };
    assert_eq!(
        owned.token_fingerprint,
        Some(crate::token::fingerprint(b"hunter2"))
    );
    assert_eq!(owned.record.unwrap().revision, 3);
}

#[test]
fn observe_expired_secret_has_no_token() {
    let s = secret_for(
        &plain_owner(),
        &Desired {
            current: None,
            previous: None,
            issue: &revision(3),
            expires_at: Some(ts("2026-12-01T00:00:00Z")),
        },
    );
    let SecretState::Ours(owned) = observe(Some(&s), &plain_owner()) else {
        panic!("should be ours");
    };
    assert_eq!(owned.token_fingerprint, None);
}

#[test]
fn observe_without_or_with_broken_annotations_has_nothing_to_recover_from() {
    let mut s = secret_owned_by(vec![owner_ref(UID, Some(true))]);
    let SecretState::Ours(owned) = observe(Some(&s), &plain_owner()) else {
        panic!("should be ours");
    };
    assert_eq!(owned, OwnedSecret::default());

    let mut good = build(&plain_owner()).metadata.annotations.unwrap();
    good.insert("apitoken.dev/revision".into(), "three".into());
    s.metadata.annotations = Some(good);
    let SecretState::Ours(owned) = observe(Some(&s), &plain_owner()) else {
        panic!("should be ours");
    };
    assert_eq!(owned.record, None);
}

#[test]
fn values_exposes_current_and_previous() {
    let (current, previous) = (token(CURRENT), token(PREVIOUS));
    let s = secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: Some(&previous),
            issue: &revision(3),
            expires_at: None,
        },
    );
    let v = values(&s);
    assert_eq!(v.current.as_ref().map(Token::expose), Some(CURRENT));
    assert_eq!(v.previous.as_ref().map(Token::expose), Some(PREVIOUS));
}

// ---------------------------------------------------------------------------------------------
// needs_write
// ---------------------------------------------------------------------------------------------

#[test]
fn identical_secret_needs_no_write() {
    let desired = build(&gateway_template());
    let observed = as_applied(desired.clone());
    assert!(!needs_write(&observed, &desired));
}

#[test]
fn data_key_added_by_someone_else_is_ignored() {
    let desired = build(&plain_owner());
    let mut observed = as_applied(desired.clone());
    observed
        .data
        .as_mut()
        .unwrap()
        .insert("ca.crt".into(), ByteString(b"---".to_vec()));
    touched_by_kubectl(&mut observed, json!({"f:data": {"f:ca.crt": {}}}));
    assert!(!needs_write(&observed, &desired));
}

#[test]
fn labels_and_annotations_added_by_someone_else_are_ignored() {
    let desired = build(&plain_owner());
    let mut observed = as_applied(desired.clone());
    observed
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("argocd.argoproj.io/instance".into(), "payments".into());
    observed.metadata.annotations.as_mut().unwrap().insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        "{}".into(),
    );
    assert!(!needs_write(&observed, &desired));
}

#[test]
fn data_key_we_applied_before_but_no_longer_want_needs_a_write() {
    // The template's `header` key was removed from the ApiToken.
    let observed = as_applied(build(&gateway_template()));
    let desired = build(&templated(SecretTemplate {
        data: Some(map(&[
            ("key", "{{ token }}"),
            ("basic", "{{ token }}:{{ token }}"),
            ("endpoint", "https://payments.example"),
        ])),
        ..Default::default()
    }));
    assert!(needs_write(&observed, &desired));
}

#[test]
fn label_we_applied_before_but_no_longer_want_needs_a_write() {
    let observed = as_applied(build(&templated(SecretTemplate {
        labels: Some(map(&[("team", "billing")])),
        ..Default::default()
    })));
    assert!(needs_write(&observed, &build(&plain_owner())));
}

#[test]
fn the_cached_copy_still_names_every_key_we_applied() {
    // The Secret cache keeps of our managedFields entry only the names needs_write reads.
    let template = |data: &[(&str, &str)], labels: &[(&str, &str)], notes: &[(&str, &str)]| {
        build(&templated(SecretTemplate {
            data: Some(map(data)),
            labels: Some(map(labels)),
            annotations: Some(map(notes)),
        }))
    };
    let (data, labels, notes) = (
        [("key", "{{ token }}"), ("endpoint", "https://x")],
        [("team", "billing"), ("tier", "gold")],
        [("owner", "payments"), ("ticket", "PAY-7")],
    );
    let mut cached = as_applied(template(&data, &labels, &notes));
    crate::secret_cache::trim(&mut cached);
    assert!(!needs_write(&cached, &template(&data, &labels, &notes)));
    assert!(needs_write(&cached, &template(&data[..1], &labels, &notes)));
    assert!(needs_write(&cached, &template(&data, &labels[..1], &notes)));
    assert!(needs_write(&cached, &template(&data, &labels, &notes[..1])));
}

#[test]
fn end_of_grace_removing_the_previous_value_needs_a_write() {
    let (current, previous) = (token(CURRENT), token(PREVIOUS));
    let issue = IssueRecord {
        previous_until: Some(ts("2026-11-22T10:10:00Z")),
        ..revision(3)
    };
    let during = as_applied(secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: Some(&previous),
            issue: &issue,
            expires_at: None,
        },
    ));
    let after = secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: None,
            issue: &revision(3),
            expires_at: None,
        },
    );
    assert!(needs_write(&during, &after));
}

#[test]
fn expiry_removing_the_token_needs_a_write() {
    let observed = as_applied(build(&plain_owner()));
    let expired = secret_for(
        &plain_owner(),
        &Desired {
            current: None,
            previous: None,
            issue: &revision(3),
            expires_at: Some(ts("2026-12-01T00:00:00Z")),
        },
    );
    assert!(needs_write(&observed, &expired));
}

#[test]
fn changed_annotation_needs_a_write() {
    let observed = as_applied(build(&plain_owner()));
    let renamed = build(&owner(ApiTokenSpec {
        display_name: Some("renamed".into()),
        ..Default::default()
    }));
    assert!(needs_write(&observed, &renamed));
}

#[test]
fn removed_display_name_needs_a_write() {
    let observed = as_applied(build(&owner(ApiTokenSpec {
        display_name: Some("old name".into()),
        ..Default::default()
    })));
    assert!(needs_write(&observed, &build(&plain_owner())));
}

#[test]
fn edited_token_needs_a_write() {
    let desired = build(&plain_owner());
    let mut observed = as_applied(desired.clone());
    observed
        .data
        .as_mut()
        .unwrap()
        .insert("token".into(), ByteString(b"hunter2".to_vec()));
    assert!(needs_write(&observed, &desired));
}

#[test]
fn missing_owner_reference_needs_a_write() {
    let desired = build(&plain_owner());
    let mut observed = as_applied(desired.clone());
    observed.metadata.owner_references = None;
    assert!(needs_write(&observed, &desired));
}

#[test]
fn other_owner_references_next_to_ours_need_no_write() {
    let desired = build(&plain_owner());
    let mut observed = as_applied(desired.clone());
    observed
        .metadata
        .owner_references
        .as_mut()
        .unwrap()
        .push(owner_ref("some-other-uid", None));
    assert!(!needs_write(&observed, &desired));
}

#[test]
fn changed_type_needs_a_write() {
    let desired = build(&plain_owner());
    let mut observed = as_applied(desired.clone());
    observed.type_ = Some("kubernetes.io/basic-auth".into());
    assert!(needs_write(&observed, &desired));
}

#[test]
fn secret_rebuilt_from_status_after_an_issue_needs_no_write() {
    // The controller issues at `Timestamp::now()` (sub-second) and writes the Secret from that;
    // the next reconcile rebuilds the Secret from status, whose metav1.Time has whole seconds.
    let issued_at = ts("2026-11-22T10:00:00.123456789Z");
    let lifetime = jiff::SignedDuration::from_hours(720);
    let current = token(CURRENT);
    let at_issue = IssueRecord {
        issued_at,
        ..revision(3)
    };
    let written = as_applied(secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: None,
            issue: &at_issue,
            expires_at: Some(issued_at + lifetime),
        },
    ));

    let stored: Time =
        serde_json::from_value(serde_json::to_value(Time(issued_at)).unwrap()).unwrap();
    let from_status = IssueRecord {
        issued_at: stored.0,
        ..revision(3)
    };
    let rebuilt = secret_for(
        &plain_owner(),
        &Desired {
            current: Some(&current),
            previous: None,
            issue: &from_status,
            expires_at: Some(stored.0 + lifetime),
        },
    );
    assert!(!needs_write(&written, &rebuilt));
}
