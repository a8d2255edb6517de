//! The namespaces the operator watches: all of them, or a list. With a list, every namespace gets
//! its own watcher (so namespaced Roles are enough RBAC) and their events are merged into one
//! stream that a single reflector store, and so a single controller, can follow.

use std::collections::HashMap;
use std::hash::Hash;

use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{Lookup, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};

use crate::list_turns::{Turns, in_turn};

/// The `--namespace` values as given (each may be a comma-separated list): trimmed, without
/// blanks and duplicates, in order. Empty means all namespaces.
pub fn parse(values: &[String]) -> Vec<String> {
    let mut namespaces: Vec<String> = Vec::new();
    for ns in values.iter().flat_map(|v| v.split(',')).map(str::trim) {
        if !ns.is_empty() && !namespaces.iter().any(|n| n == ns) {
            namespaces.push(ns.to_owned());
        }
    }
    namespaces
}

/// One Api per watched namespace, or a single cluster-wide one when `namespaces` is empty.
pub fn apis<K>(client: &Client, namespaces: &[String]) -> Vec<(String, Api<K>)>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    if namespaces.is_empty() {
        return vec![("*".to_owned(), Api::all(client.clone()))];
    }
    namespaces
        .iter()
        .map(|ns| (ns.clone(), Api::namespaced(client.clone(), ns)))
        .collect()
}

/// Every Secret in the watched namespaces (or those `selector` selects) that is added, changed or
/// relisted, metadata only
/// (`PartialObjectMeta`: the API server sends no data), listed in pages of 500 from etcd. With
/// 50,000 unrelated Secrets, a list served from the API server's cache (`any_semantic`, which
/// ignores the page size) came as one response and cost 680 MiB of peak memory at startup.
pub fn secret_metadata(
    client: &Client,
    namespaces: &[String],
    selector: Option<&str>,
) -> impl Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + use<> {
    let apis = apis::<PartialObjectMeta<Secret>>(client, namespaces);
    let selector = selector.map(str::to_owned);
    // Ten namespaces listed at once decoded ten pages side by side: they list in turn.
    let turns = Turns::default();
    stream::select_all(apis.into_iter().map(|(_, api)| {
        let mut config = watcher::Config::default().page_size(500);
        if let Some(selector) = &selector {
            config = config.labels(selector);
        }
        let watch = watcher::watcher(api, config).default_backoff();
        in_turn(watch, &turns).touched_objects().boxed()
    }))
}

/// Merges the watch streams of several namespaces into one whose events a reflector store can
/// apply as if they came from a single watcher. Errors are logged with their namespace and
/// dropped: each source retries by itself (give it a backoff) without pausing the others.
/// `store` is the reader of the store the merged stream fills: the merge keeps only keys, and
/// takes an object that a relist no longer contains from there to pass on its deletion.
pub fn merged<K, S>(
    sources: Vec<(String, S)>,
    store: Store<K>,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Lookup + Clone + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    let mut merge = Merge::new(sources.len());
    // The sources list in turn (see crate::list_turns), then watch side by side.
    let turns = Turns::default();
    let tagged = stream::select_all(
        sources
            .into_iter()
            .enumerate()
            .map(|(i, (ns, s))| in_turn(s, &turns).map(move |e| (i, ns.clone(), e)).boxed()),
    );
    tagged.flat_map(move |(i, ns, item)| {
        let events = match item {
            Ok(event) => merge.push(i, event, &store),
            Err(error) => {
                tracing::warn!(namespace = %ns, %error, "watch failed; retrying");
                Vec::new()
            }
        };
        stream::iter(events.into_iter().map(Ok))
    })
}

/// The merge as a pure state machine.
///
/// A store replaces its whole content at `InitDone`, so the sources' own list phases cannot be
/// passed on: one namespace's relist would wipe the others. Instead the merged stream has a
/// single list phase, emitted once every source has finished its first list (the store, and the
/// controller waiting on it, become ready only then). Later relists of one source become plain
/// `Apply` events plus a `Delete` for each object that vanished while its watch was down.
///
/// Objects are held only until they are passed on; after that the merge keeps their keys, and
/// the store downstream is the one copy (a copy here was a third of the operator's memory).
pub struct Merge<K: Lookup> {
    sources: Vec<Source<K>>,
}

/// A source's objects by [`key`]: `Some` while held (not yet passed on), `None` once passed on.
/// Boxed: a map stores its values inline, and an `Option<ApiToken>` is over a kilobyte even
/// when `None` (at 10,000 tokens the merges' tables were 58 MiB of the peak).
type Seen<K> = HashMap<Box<str>, Option<Box<K>>>;

/// An object's `namespace/name`, as one string: an `ObjectRef` key, with its own strings for the
/// resourceVersion and UID, took four times the room in tables that hold every object.
fn key<K: Lookup>(obj: &K) -> Box<str> {
    let (ns, name) = (obj.namespace(), obj.name());
    format!("{}/{}", ns.unwrap_or_default(), name.unwrap_or_default()).into()
}

/// The reference to look a [`key`] up by in a store.
fn object_ref<K: Lookup>(key: &str) -> ObjectRef<K>
where
    K::DynamicType: Default,
{
    match key.split_once('/') {
        Some(("", name)) => ObjectRef::new(name),
        Some((ns, name)) => ObjectRef::new(name).within(ns),
        None => ObjectRef::new(key),
    }
}

struct Source<K: Lookup> {
    /// The source's objects as last seen (to tell what a relist no longer contains).
    known: Seen<K>,
    /// A list in progress.
    listing: Option<Seen<K>>,
    listed: bool,
}

impl<K> Merge<K>
where
    K: Lookup + Clone,
    K::DynamicType: Default + Eq + Hash + Clone,
{
    pub fn new(sources: usize) -> Self {
        Self {
            sources: (0..sources)
                .map(|_| Source {
                    known: HashMap::new(),
                    listing: None,
                    listed: false,
                })
                .collect(),
        }
    }

    fn live(&self) -> bool {
        self.sources.iter().all(|s| s.listed)
    }

    /// Takes one event of source `index` and returns the events to pass on. `store` holds what
    /// was passed on before (see [`merged`]).
    pub fn push(&mut self, index: usize, event: Event<K>, store: &Store<K>) -> Vec<Event<K>> {
        let live = self.live();
        let source = &mut self.sources[index];
        // Live, an object is passed on at once and only its key kept; before, it is held.
        let see = |seen: &mut Seen<K>, obj: K| {
            let key = key(&obj);
            if live {
                seen.insert(key, None);
                vec![Event::Apply(obj)]
            } else {
                seen.insert(key, Some(Box::new(obj)));
                Vec::new()
            }
        };
        match event {
            Event::Init => {
                source.listing = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(obj) => see(source.listing.get_or_insert_default(), obj),
            Event::InitDone => {
                let listed = source.listing.take().unwrap_or_default();
                let gone = std::mem::replace(&mut source.known, listed);
                source.listed = true;
                if live {
                    // A relist: what it held (listed before the merge went live) goes on now.
                    let known = &mut source.known;
                    let mut events: Vec<_> = known
                        .values_mut()
                        .filter_map(Option::take)
                        .map(|held| Event::Apply(*held))
                        .collect();
                    events.extend(
                        gone.into_iter()
                            .filter(|(k, _)| !known.contains_key(k))
                            .filter_map(|(k, held)| {
                                held.map(|o| *o)
                                    .or_else(|| store.get(&object_ref(&k)).map(|o| K::clone(&o)))
                            })
                            .map(Event::Delete),
                    );
                    return events;
                }
                if !self.live() {
                    return Vec::new();
                }
                let mut events = vec![Event::Init];
                for s in &mut self.sources {
                    let held = s.known.values_mut().filter_map(Option::take);
                    events.extend(held.map(|o| Event::InitApply(*o)));
                }
                events.push(Event::InitDone);
                events
            }
            Event::Apply(obj) => see(&mut source.known, obj),
            Event::Delete(obj) => {
                source.known.remove(&key(&obj));
                if live {
                    vec![Event::Delete(obj)]
                } else {
                    Vec::new()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
