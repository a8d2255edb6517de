use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::runtime::reflector::{Lookup, ObjectRef};

use super::*;

const VALUE: &str = "atk_PackedValueThatMustNeverShow123";

fn secret() -> Secret {
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Secret {
        metadata: ObjectMeta {
            name: Some("billing".into()),
            namespace: Some("payments".into()),
            resource_version: Some("4711".into()),
            uid: Some("6239cc97-2f20-41dc-8e47-d4288d8311f7".into()),
            labels: Some(map(&[
                ("app.kubernetes.io/managed-by", "apitoken-operator"),
                ("apitoken.dev/name", "billing"),
            ])),
            annotations: Some(map(&[("apitoken.dev/revision", "3")])),
            owner_references: Some(vec![OwnerReference {
                api_version: "apitoken.dev/v1alpha1".into(),
                kind: "ApiToken".into(),
                name: "billing".into(),
                uid: "bb77cb19-ea38-4ab2-8b1f-209406c58eae".into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            ("token".to_owned(), ByteString(VALUE.into())),
            ("token.previous".to_owned(), ByteString(vec![0, 255, 10])),
        ])),
        type_: Some("Opaque".into()),
        ..Secret::default()
    }
}

#[test]
fn an_object_unpacks_to_exactly_what_was_packed() {
    let packed = Packed::pack(&secret());
    assert_eq!(packed.unpack(), Some(secret()));
    assert_eq!(packed.clone().unpack(), Some(secret()));
}

#[test]
fn a_packed_object_is_keyed_as_the_object_itself() {
    let packed = Packed::pack(&secret());
    assert_eq!(packed.name().as_deref(), Some("billing"));
    assert_eq!(packed.namespace().as_deref(), Some("payments"));
    assert_eq!(packed.resource_version().as_deref(), Some("4711"));
    assert_eq!(packed.uid(), None);
    assert_eq!(Packed::<Secret>::kind(&()), "Secret");
    assert_eq!(Packed::<Secret>::group(&()), "");
    assert_eq!(Packed::<Secret>::version(&()), "v1");
    assert_eq!(Packed::<Secret>::plural(&()), "secrets");
    type Token = Packed<crate::api::ApiToken>;
    assert_eq!(Token::group(&()), "apitoken.dev");
    assert_eq!(Token::api_version(&()), "apitoken.dev/v1alpha1");
    assert_eq!(
        ObjectRef::from_obj(&packed),
        ObjectRef::new("billing").within("payments")
    );
    assert_eq!(packed.key(), ObjectRef::new("billing").within("payments"));
    let mut cluster_wide = secret();
    cluster_wide.metadata.namespace = None;
    cluster_wide.metadata.resource_version = None;
    let packed = Packed::pack(&cluster_wide);
    assert_eq!(packed.namespace(), None);
    assert_eq!(packed.resource_version(), None);
    assert_eq!(packed.key(), ObjectRef::new("billing"));
}

#[test]
fn what_does_not_decode_is_none_not_a_panic() {
    let mut packed = Packed::pack(&secret());
    packed.json = b"{\"metadata\": 7}".as_slice().into();
    assert_eq!(packed.unpack(), None);
    packed.json = Box::default();
    assert_eq!(packed.unpack(), None);
}

#[test]
fn events_are_packed_variant_for_variant() {
    let unpacked = |event: Event<Packed<Secret>>| match event {
        Event::Apply(p) => ("apply", p.unpack()),
        Event::Delete(p) => ("delete", p.unpack()),
        Event::InitApply(p) => ("init-apply", p.unpack()),
        Event::Init => ("init", None),
        Event::InitDone => ("init-done", None),
    };
    let cases = [
        (Event::Apply(secret()), ("apply", Some(secret()))),
        (Event::Delete(secret()), ("delete", Some(secret()))),
        (Event::InitApply(secret()), ("init-apply", Some(secret()))),
        (Event::Init, ("init", None)),
        (Event::InitDone, ("init-done", None)),
    ];
    for (given, expected) in cases {
        assert_eq!(unpacked(event(given)), expected);
    }
}

#[test]
fn debug_names_the_object_and_never_shows_its_contents() {
    let shown = format!("{:?}", Packed::pack(&secret()));
    assert!(
        shown.contains("billing") && shown.contains("payments"),
        "{shown}"
    );
    assert!(shown.contains("4711") && shown.contains("bytes"), "{shown}");
    assert!(!shown.contains(VALUE), "{shown}");
    assert!(!shown.contains("YXRr"), "{shown}"); // base64 of the value's start
    assert!(!shown.contains("apitoken.dev/revision"), "{shown}");
}
