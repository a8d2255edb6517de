//! Which ApiTokens name a Secret: the ApiToken of the Secret's own name (unless its
//! `spec.secretName` names another), and those whose `spec.secretName` names it.
//!
//! Every Secret event in the watched namespaces asks this (the operator's own Secrets and all
//! others, 50,000 unrelated ones or a namespace teardown alike), so it is two lookups, not a scan
//! of every ApiToken: at 10,000 ApiTokens a scan per Secret event was about a tenth of the
//! operator's CPU while they converged. The store answers for the ApiToken of the same name; an
//! index holds the few whose `secretName` differs from their name. `spec.secretName` cannot
//! change (a CEL rule), so an ApiToken's entry is written once and removed with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher::Event;

use crate::api::ApiToken;

/// ApiToken names by the Secret they name, for ApiTokens that name another than their own.
type Renamed = HashMap<ObjectRef<Secret>, Vec<String>>;

#[derive(Clone)]
pub struct Naming {
    tokens: Store<ApiToken>,
    index: Arc<Mutex<Index>>,
}

#[derive(Default)]
struct Index {
    current: Renamed,
    /// The index a relist is building; it replaces `current` when the list is complete, as the
    /// store swaps in its new copy then.
    listing: Option<Renamed>,
}

impl Naming {
    /// Answers from `tokens`, the store whose events [`Naming::saw`] is given.
    pub fn new(tokens: Store<ApiToken>) -> Self {
        Self {
            tokens,
            index: Arc::default(),
        }
    }

    /// Follows an event the store has just applied.
    pub fn saw(&self, event: &Event<ApiToken>) {
        let mut index = self
            .index
            .lock()
            .expect("the naming index is never poisoned");
        match event {
            Event::Apply(token) => {
                if let Some(listing) = index.listing.as_mut() {
                    add(listing, token);
                }
                add(&mut index.current, token);
            }
            Event::Delete(token) => {
                if let Some(listing) = index.listing.as_mut() {
                    remove(listing, token);
                }
                remove(&mut index.current, token);
            }
            Event::Init => index.listing = Some(Renamed::new()),
            Event::InitApply(token) => add(index.listing.get_or_insert_default(), token),
            Event::InitDone => {
                if let Some(listed) = index.listing.take() {
                    index.current = listed;
                }
            }
        }
    }

    /// The ApiTokens that name `secret`: usually one, more when they conflict.
    pub fn tokens(&self, secret: &ObjectRef<Secret>) -> Vec<ObjectRef<ApiToken>> {
        let Some(ns) = secret.namespace.as_deref() else {
            return Vec::new();
        };
        let mut found = Vec::new();
        let same_name = ObjectRef::new(&secret.name).within(ns);
        if (self.tokens.get(&same_name)).is_some_and(|t| t.secret_name() == secret.name) {
            found.push(same_name);
        }
        let index = self
            .index
            .lock()
            .expect("the naming index is never poisoned");
        if let Some(names) = index.current.get(secret) {
            found.extend(names.iter().map(|name| ObjectRef::new(name).within(ns)));
        }
        found
    }
}

/// The index key of `token`, when it names a Secret of another name than its own.
fn renamed(token: &ApiToken) -> Option<(ObjectRef<Secret>, String)> {
    let (name, secret) = (token.name_any(), token.secret_name());
    (secret != name).then(|| {
        let key = ObjectRef::new(&secret).within(&token.namespace().unwrap_or_default());
        (key, name)
    })
}

fn add(index: &mut Renamed, token: &ApiToken) {
    if let Some((secret, name)) = renamed(token) {
        let names = index.entry(secret).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
}

fn remove(index: &mut Renamed, token: &ApiToken) {
    if let Some((secret, name)) = renamed(token)
        && let Some(names) = index.get_mut(&secret)
    {
        names.retain(|n| *n != name);
        if names.is_empty() {
            index.remove(&secret);
        }
    }
}

#[cfg(test)]
mod tests;
