use std::collections::BTreeSet;

use futures::FutureExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher::Event;

use super::*;

fn cm(ns: &str, name: &str, version: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            resource_version: Some(version.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A merge feeding a real reflector store, as the controller uses it.
struct Harness {
    merge: Merge<ConfigMap>,
    writer: Writer<ConfigMap>,
    reader: Store<ConfigMap>,
}

impl Harness {
    fn new(sources: usize) -> Self {
        let (reader, writer) = reflector::store();
        Self {
            merge: Merge::new(sources),
            writer,
            reader,
        }
    }

    /// Feeds events of one source; returns what the merge passed on, as short names.
    fn feed(&mut self, source: usize, events: Vec<Event<ConfigMap>>) -> Vec<String> {
        let mut out = Vec::new();
        for event in events {
            for e in self.merge.push(source, event, &self.reader) {
                self.writer.apply_watcher_event(&e);
                out.push(match &e {
                    Event::Apply(o) => format!("apply {}", o.metadata.name.as_deref().unwrap()),
                    Event::Delete(o) => format!("delete {}", o.metadata.name.as_deref().unwrap()),
                    Event::Init => "init".into(),
                    Event::InitApply(o) => format!("list {}", o.metadata.name.as_deref().unwrap()),
                    Event::InitDone => "done".into(),
                });
            }
        }
        out
    }

    /// The store's content as `namespace/name@resourceVersion`.
    fn store(&self) -> BTreeSet<String> {
        self.reader
            .state()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}@{}",
                    o.metadata.namespace.as_deref().unwrap(),
                    o.metadata.name.as_deref().unwrap(),
                    o.metadata.resource_version.as_deref().unwrap()
                )
            })
            .collect()
    }

    fn ready(&self) -> bool {
        self.reader.wait_until_ready().now_or_never().is_some()
    }
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn one_source_passes_its_list_and_changes_through() {
    let mut h = Harness::new(1);
    let out = h.feed(
        0,
        vec![
            Event::Init,
            Event::InitApply(cm("a", "x", "1")),
            Event::InitDone,
        ],
    );
    assert_eq!(out, ["init", "list x", "done"]);
    assert!(h.ready());
    assert_eq!(
        h.feed(0, vec![Event::Apply(cm("a", "y", "2"))]),
        ["apply y"]
    );
    assert_eq!(
        h.feed(0, vec![Event::Delete(cm("a", "x", "1"))]),
        ["delete x"]
    );
    assert_eq!(h.store(), set(&["a/y@2"]));
}

#[test]
fn the_store_is_filled_and_ready_only_when_every_namespace_has_listed() {
    let mut h = Harness::new(2);
    let out = h.feed(
        0,
        vec![
            Event::Init,
            Event::InitApply(cm("a", "x", "1")),
            Event::InitDone,
        ],
    );
    assert!(out.is_empty(), "{out:?}");
    // Namespace a changes while b is still listing: kept, not yet passed on.
    h.feed(
        0,
        vec![
            Event::Apply(cm("a", "x", "2")),
            Event::Apply(cm("a", "z", "3")),
        ],
    );
    h.feed(
        0,
        vec![
            Event::Apply(cm("a", "gone", "4")),
            Event::Delete(cm("a", "gone", "4")),
        ],
    );
    assert!(
        h.feed(1, vec![Event::Init, Event::InitApply(cm("b", "y", "5"))])
            .is_empty()
    );
    assert!(!h.ready());
    assert!(h.store().is_empty());

    let out = h.feed(1, vec![Event::InitDone]);
    assert_eq!(
        (out.first().unwrap().as_str(), out.last().unwrap().as_str()),
        ("init", "done")
    );
    assert_eq!(out.len(), 5, "{out:?}");
    assert!(h.ready());
    assert_eq!(h.store(), set(&["a/x@2", "a/z@3", "b/y@5"]));
}

#[test]
fn a_relist_of_one_namespace_keeps_the_others_and_deletes_what_vanished() {
    let mut h = Harness::new(2);
    h.feed(
        0,
        vec![
            Event::Init,
            Event::InitApply(cm("a", "x", "1")),
            Event::InitApply(cm("a", "old", "2")),
            Event::InitDone,
        ],
    );
    h.feed(
        1,
        vec![
            Event::Init,
            Event::InitApply(cm("b", "y", "3")),
            Event::InitDone,
        ],
    );
    assert_eq!(h.store(), set(&["a/x@1", "a/old@2", "b/y@3"]));

    // a's watch broke; meanwhile "old" was deleted and x changed.
    let out = h.feed(
        0,
        vec![
            Event::Init,
            Event::InitApply(cm("a", "x", "7")),
            Event::InitDone,
        ],
    );
    assert_eq!(out, ["apply x", "delete old"]);
    assert_eq!(h.store(), set(&["a/x@7", "b/y@3"]));
}

#[test]
fn a_first_list_that_restarts_leaves_nothing_stale() {
    let mut h = Harness::new(2);
    h.feed(
        0,
        vec![Event::Init, Event::InitApply(cm("a", "stale", "1"))],
    );
    // The list failed part way and started again; "stale" is gone by now.
    h.feed(
        0,
        vec![
            Event::Init,
            Event::InitApply(cm("a", "x", "2")),
            Event::InitDone,
        ],
    );
    h.feed(1, vec![Event::Init, Event::InitDone]);
    assert_eq!(h.store(), set(&["a/x@2"]));
}

#[test]
fn namespace_flags_split_commas_and_drop_blanks_and_repeats() {
    let given = [
        "a,b".to_string(),
        " c ".into(),
        "".into(),
        "b".into(),
        "d,".into(),
    ];
    assert_eq!(parse(&given), ["a", "b", "c", "d"]);
    assert!(parse(&[]).is_empty());
}

/// A whole list of one source: Init, an InitApply per object, InitDone.
fn listed(objects: Vec<ConfigMap>) -> Vec<Event<ConfigMap>> {
    let mut events = vec![Event::Init];
    events.extend(objects.into_iter().map(Event::InitApply));
    events.push(Event::InitDone);
    events
}

#[test]
fn a_relist_that_began_before_the_merged_list_is_passed_on_when_it_ends() {
    let mut h = Harness::new(2);
    h.feed(0, listed(vec![cm("a", "x", "1"), cm("a", "old", "2")]));
    // a's watch broke while b was still listing; a lists again: x changed, old was deleted.
    h.feed(0, vec![Event::Init, Event::InitApply(cm("a", "x", "7"))]);
    h.feed(1, listed(vec![cm("b", "y", "3")]));
    assert_eq!(h.store(), set(&["a/x@1", "a/old@2", "b/y@3"]));
    let out = h.feed(0, vec![Event::InitDone]);
    assert_eq!(out, ["apply x", "delete old"]);
    assert_eq!(h.store(), set(&["a/x@7", "b/y@3"]));
}

#[test]
fn once_passed_on_the_merge_keeps_keys_only() {
    let mut h = Harness::new(1);
    h.feed(0, listed(vec![cm("a", "x", "1")]));
    h.feed(0, vec![Event::Apply(cm("a", "y", "2"))]);
    let source = &h.merge.sources[0];
    assert_eq!(source.known.len(), 2);
    assert!(source.known.values().all(Option::is_none));
}

#[tokio::test]
async fn one_api_per_listed_namespace_or_one_for_all() {
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = Client::try_from(config).unwrap();
    let urls = |namespaces: &[String]| -> Vec<(String, String)> {
        apis::<ConfigMap>(&client, namespaces)
            .into_iter()
            .map(|(ns, api)| (ns, api.resource_url().to_owned()))
            .collect()
    };
    let pair = |ns: &str, url: &str| (ns.to_owned(), url.to_owned());
    assert_eq!(
        urls(&["a".into(), "b".into()]),
        [
            pair("a", "/api/v1/namespaces/a/configmaps"),
            pair("b", "/api/v1/namespaces/b/configmaps")
        ]
    );
    assert_eq!(urls(&[]), [pair("*", "/api/v1/configmaps")]);
}

#[test]
fn a_key_is_namespace_and_name_and_leads_back_to_the_object() {
    let namespaced = cm("payments", "billing", "1");
    assert_eq!(&*key(&namespaced), "payments/billing");
    assert_eq!(
        object_ref::<ConfigMap>(&key(&namespaced)),
        ObjectRef::from_obj(&namespaced)
    );
    let mut cluster_wide = namespaced.clone();
    cluster_wide.metadata.namespace = None;
    assert_eq!(&*key(&cluster_wide), "/billing");
    assert_eq!(
        object_ref::<ConfigMap>("/billing"),
        ObjectRef::<ConfigMap>::new("billing")
    );
    assert_eq!(
        object_ref::<ConfigMap>("billing"),
        ObjectRef::<ConfigMap>::new("billing")
    );
}
