//! The operator's own Secrets (label `app.kubernetes.io/managed-by: apitoken-operator`), watched
//! whole into a cache so that a reconcile decides without reading the Secret again.
//!
//! Like the ApiToken cache ([`crate::freshness`]), it can trail the operator's own last write to
//! a Secret: deciding on the Secret as it was before our last apply could issue a value twice.
//! So every Secret write records the resourceVersion it returned, and the cached copy decides
//! only when it is at least that new; otherwise, and for any Secret the cache does not hold (a
//! first issue, a foreign Secret of that name, a cache still listing), the Secret is read.
//! A restart with nothing due then reads no Secret at all.
//!
//! Other Secrets are watched by metadata only ([`crate::namespaces::secret_metadata`]): a
//! foreign Secret in the way of an ApiToken is read when it changes.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};

use crate::api::FIELD_MANAGER;
use crate::error::Error;
use crate::fields;
use crate::freshness::Freshness;
use crate::namespaces;
use crate::secret::{MANAGED_BY, MANAGED_BY_LABEL, OWN_SECTIONS};

/// How long the controller waits at startup for the first list of the operator's Secrets before
/// it starts anyway, reading Secrets one by one.
const LIST_WAIT: Duration = Duration::from_secs(30);

pub struct SecretCache {
    store: Store<Secret>,
    written: Freshness,
}

/// The label selector of the operator's own Secrets, and of all others.
pub fn selector(ours: bool) -> String {
    let op = if ours { "=" } else { "!=" };
    format!("{MANAGED_BY_LABEL}{op}{MANAGED_BY}")
}

/// Keeps only what decisions use: managedFields of other managers are dropped (they can be
/// larger than the Secret itself, and only our own entry is ever read), and of our own entry the
/// names of the data keys, labels and annotations we applied ([`crate::secret::needs_write`]).
pub fn trim(secret: &mut Secret) {
    if let Some(fields) = secret.metadata.managed_fields.as_mut() {
        fields.retain(|f| f.manager.as_deref() == Some(FIELD_MANAGER));
        for entry in fields {
            if let Some(tree) = entry.fields_v1.as_mut() {
                tree.0 = fields::names_under(&tree.0, OWN_SECTIONS);
            }
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
        impl Stream<Item = Result<Secret, watcher::Error>> + Send + use<>,
    ) {
        let (store, writer) = reflector::store();
        let config = || {
            watcher::Config::default()
                .labels(&selector(true))
                .any_semantic()
        };
        let watches = namespaces::apis::<Secret>(client, namespaces)
            .into_iter()
            .map(|(ns, api)| (ns, watcher(api, config()).default_backoff().modify(trim)))
            .collect();
        let merged = namespaces::merged(watches, store.clone());
        let events = reflector::reflector(writer, merged).touched_objects();
        let cache = Self {
            store,
            written: Freshness::default(),
        };
        (cache, events)
    }

    /// The Secret `name`: from the cache when it holds it at least as new as our last write to
    /// it, otherwise as stored.
    pub async fn get(
        &self,
        api: &Api<Secret>,
        ns: &str,
        name: &str,
    ) -> Result<Option<Secret>, Error> {
        let key = ObjectRef::new(name).within(ns);
        match self.store.get(&key) {
            Some(cached) if self.written.cache_is_current(cached.as_ref()) => {
                Ok(Some(Arc::unwrap_or_clone(cached)))
            }
            _ => Ok(api.get_opt(name).await?),
        }
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

    /// The ApiToken is gone: its Secret's last write need not be remembered.
    pub fn forget(&self, ns: &str, name: &str) {
        let mut gone = Secret::default();
        gone.metadata.namespace = Some(ns.to_owned());
        gone.metadata.name = Some(name.to_owned());
        self.written.forget(&gone);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

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
    fn only_our_own_managed_fields_entry_is_kept() {
        let entry = |manager: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            ..ManagedFieldsEntry::default()
        };
        let mut secret = Secret::default();
        secret.metadata.managed_fields = Some(vec![
            entry("kubectl"),
            entry(FIELD_MANAGER),
            entry("argocd"),
        ]);
        trim(&mut secret);
        let kept: Vec<_> = (secret.metadata.managed_fields.unwrap())
            .iter()
            .map(|f| f.manager.clone().unwrap())
            .collect();
        assert_eq!(kept, [FIELD_MANAGER]);
        let mut none = Secret::default();
        trim(&mut none);
        assert!(none.metadata.managed_fields.is_none());
    }
}
