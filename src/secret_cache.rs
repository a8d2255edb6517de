//! The operator's own Secrets (label `app.kubernetes.io/managed-by: apitoken-operator`), watched
//! whole into a cache so that a reconcile decides without reading the Secret again.
//!
//! Each Secret is kept packed, as its JSON ([`crate::packed`]): decoded, the cache was the
//! largest part of the operator's memory.
//!
//! Like the ApiToken cache ([`crate::freshness`]), it can trail the operator's own last write to
//! a Secret: deciding on the Secret as it was before our last apply could issue a value twice.
//! So every Secret write records the resourceVersion it returned, and the cached copy decides
//! only when it is at least that new; otherwise the Secret is read. A Secret the cache does not
//! hold is taken as absent once the cache has listed, unless the operator wrote one of that name
//! (the cache trails) or was refused creating one (someone else's is there): a first issue reads
//! nothing, and the shell create, refused when any Secret of that name exists, is the check.
//! A restart with nothing due then reads no Secret at all.
//!
//! Other Secrets are watched by metadata only ([`crate::namespaces::secret_metadata`]): a
//! foreign Secret in the way of an ApiToken is read when it changes.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use futures::{FutureExt, Stream, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::api::FIELD_MANAGER;
use crate::error::Error;
use crate::fields;
use crate::freshness::Freshness;
use crate::namespaces;
use crate::packed::{self, Packed};
use crate::secret::{MANAGED_BY, MANAGED_BY_LABEL, OWN_SECTIONS};

/// How long the controller waits at startup for the first list of the operator's Secrets before
/// it starts anyway, reading Secrets one by one.
const LIST_WAIT: Duration = Duration::from_secs(30);

pub struct SecretCache {
    store: Store<Packed<Secret>>,
    written: Freshness,
    /// Secrets (namespace/name) whose shell create was refused because one exists that the
    /// cache does not hold (someone else's): read, not assumed absent, until the ApiToken goes.
    taken: Mutex<HashSet<String>>,
}

/// An empty Secret of that namespace and name, as a key.
fn named(ns: &str, name: &str) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.namespace = Some(ns.to_owned());
    secret.metadata.name = Some(name.to_owned());
    secret
}

/// The label selector of the operator's own Secrets, and of all others.
pub fn selector(ours: bool) -> String {
    let op = if ours { "=" } else { "!=" };
    format!("{MANAGED_BY_LABEL}{op}{MANAGED_BY}")
}

/// Keeps only what decisions use: managedFields of other managers are dropped (they can be
/// larger than the Secret itself, and only our own entry is ever read), and of our own entries
/// the manager and the names of the data keys, labels and annotations we applied
/// ([`crate::secret::needs_write`]), in the compact form of [`fields::names_under`].
pub fn trim(secret: &mut Secret) {
    if let Some(fields) = secret.metadata.managed_fields.as_mut() {
        fields.retain(|f| f.manager.as_deref() == Some(FIELD_MANAGER));
        for entry in fields {
            *entry = ManagedFieldsEntry {
                manager: entry.manager.take(),
                fields_v1: (entry.fields_v1.take())
                    .map(|tree| FieldsV1(fields::names_under(&tree.0, OWN_SECTIONS))),
                ..ManagedFieldsEntry::default()
            };
        }
    }
}

impl SecretCache {
    /// The cache, and the stream of changes to the operator's Secrets that fills it (the
    /// controller maps them to ApiTokens and must poll it).
    pub fn watch(
        client: &Client,
        namespaces: &[String],
    ) -> (
        Self,
        impl Stream<Item = Result<Packed<Secret>, watcher::Error>> + Send + use<>,
    ) {
        let (store, writer) = reflector::store();
        let config = || {
            watcher::Config::default()
                .labels(&selector(true))
                .any_semantic()
        };
        let watches = namespaces::apis::<Secret>(client, namespaces)
            .into_iter()
            .map(|(ns, api)| {
                let watch = watcher(api, config()).default_backoff().modify(trim);
                (ns, watch.map_ok(packed::event))
            })
            .collect();
        let merged = namespaces::merged(watches, store.clone());
        let events = reflector::reflector(writer, merged).touched_objects();
        let cache = Self {
            store,
            written: Freshness::default(),
            taken: Mutex::default(),
        };
        (cache, events)
    }

    /// The Secret `name`: from the cache when it holds it at least as new as our last write to
    /// it, none without a read when it is [`absent`](Self::absent), otherwise as stored.
    pub async fn get(
        &self,
        api: &Api<Secret>,
        ns: &str,
        name: &str,
    ) -> Result<Option<Secret>, Error> {
        let key = ObjectRef::new(name).within(ns);
        match self.store.get(&key).map(|packed| packed.unpack()) {
            Some(Some(cached)) if self.written.cache_is_current(&cached) => Ok(Some(cached)),
            None if self.absent(ns, name) => Ok(None),
            _ => Ok(api.get_opt(name).await?),
        }
    }

    /// Whether a Secret the cache does not hold can be taken as absent without reading it: the
    /// operator's Secrets have been listed, and it neither wrote one of that name nor was refused
    /// creating one. A Secret of someone else's may still be there (the cache holds only the
    /// operator's); the shell create, which fails when any Secret of that name exists, finds it
    /// ([`SecretCache::refused`]), and the next reconcile reads it. A first issue then costs no
    /// read at all.
    pub fn absent(&self, ns: &str, name: &str) -> bool {
        let listed = self.store.wait_until_ready().now_or_never().is_some();
        listed
            && !self.written.remembers(&named(ns, name))
            && !self.taken_lock().contains(&format!("{ns}/{name}"))
    }

    /// The shell create of `name` was refused (409): a Secret the cache does not hold is there.
    pub fn refused(&self, ns: &str, name: &str) {
        self.taken_lock().insert(format!("{ns}/{name}"));
    }

    fn taken_lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.taken
            .lock()
            .expect("the refused creates are never poisoned")
    }

    /// Waits until the first list of the operator's Secrets is in, at most LIST_WAIT (e.g. without
    /// RBAC to list Secrets: then every Secret is read when needed).
    pub async fn wait_listed(&self) {
        if tokio::time::timeout(LIST_WAIT, self.store.wait_until_ready())
            .await
            .is_err()
        {
            tracing::warn!(
                "the operator's Secrets were not listed in time; reading them one by one"
            );
        }
    }

    /// Whether the cache holds a Secret of that name (of the operator's, at some version).
    pub fn holds(&self, ns: &str, name: &str) -> bool {
        self.store.get(&ObjectRef::new(name).within(ns)).is_some()
    }

    /// Records a Secret as one of our writes returned it.
    pub fn wrote(&self, stored: &Secret) {
        self.written.wrote(stored);
    }

    /// The ApiToken is gone: its Secret's last write and a refused create need not be
    /// remembered.
    pub fn forget(&self, ns: &str, name: &str) {
        self.written.forget(&named(ns, name));
        self.taken_lock().remove(&format!("{ns}/{name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ours_and_the_others_are_told_apart_by_the_managed_by_label() {
        assert_eq!(
            selector(true),
            "app.kubernetes.io/managed-by=apitoken-operator"
        );
        assert_eq!(
            selector(false),
            "app.kubernetes.io/managed-by!=apitoken-operator"
        );
    }

    #[test]
    fn a_secret_is_taken_as_absent_only_once_listed_never_written_and_never_refused() {
        let (store, mut writer) = reflector::store::<Packed<Secret>>();
        let cache = SecretCache {
            store,
            written: Freshness::default(),
            taken: Mutex::default(),
        };
        // Before the first list nothing is known: read.
        assert!(!cache.absent("payments", "billing"));
        writer.apply_watcher_event(&watcher::Event::Init);
        writer.apply_watcher_event(&watcher::Event::InitDone);
        assert!(cache.absent("payments", "billing"));
        // Written by us but not yet in the cache: read.
        let mut ours = named("payments", "billing");
        ours.metadata.resource_version = Some("7".into());
        cache.wrote(&ours);
        assert!(!cache.absent("payments", "billing"));
        assert!(cache.absent("payments", "other"));
        // Someone else's Secret refused our create: read.
        cache.refused("payments", "other");
        assert!(!cache.absent("payments", "other"));
        assert!(cache.absent("other-namespace", "other"));
        // The ApiTokens are gone: nothing is remembered.
        cache.forget("payments", "billing");
        cache.forget("payments", "other");
        assert!(cache.absent("payments", "billing"));
        assert!(cache.absent("payments", "other"));
    }

    #[test]
    fn only_the_names_in_our_own_managed_fields_entry_are_kept() {
        let entry = |manager: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(serde_json::json!({
                "f:data": {"f:token": {}},
                "f:metadata": {"f:labels": {"f:team": {}}, "f:ownerReferences": {}},
                "f:type": {},
            }))),
            ..ManagedFieldsEntry::default()
        };
        let mut secret = Secret::default();
        secret.metadata.managed_fields = Some(vec![
            entry("kubectl"),
            entry(FIELD_MANAGER),
            entry("argocd"),
        ]);
        trim(&mut secret);
        assert_eq!(
            secret.metadata.managed_fields.unwrap(),
            [ManagedFieldsEntry {
                manager: Some(FIELD_MANAGER.into()),
                fields_v1: Some(FieldsV1(serde_json::json!(
                    "data/token\nmetadata.labels/team\n"
                ))),
                ..ManagedFieldsEntry::default()
            }]
        );
        let mut none = Secret::default();
        trim(&mut none);
        assert!(none.metadata.managed_fields.is_none());
    }
}
