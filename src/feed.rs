//! One set of watches for both controllers. The ApiToken controller and the verifier controller
//! read the same ApiToken store, filled by a single watch per namespace, and hear of Secrets
//! from the ApiToken controller's two Secret watches (its own Secrets whole, the others by
//! metadata). This feed tells each controller what changed once the store holds the change:
//! the ApiToken controller which tokens to reconcile, the verifier controller in which
//! namespaces ApiTokens changed and which Secrets did (a key set, or a foreign Secret in its way).
//!
//! Each controller polls its triggers only while it has a free worker. Fed through unbounded
//! channels of keys, a busy ApiToken controller does not hold up the store or the verifier (a
//! revoked token still leaves its key set at once), and what waits is a key, not an object.
//!
//! A relist fills the store's next copy and swaps it in when the list is complete, so the keys
//! it lists are passed on only then: a reconcile started earlier would find the old copy, or
//! none, in the store.

use std::collections::BTreeSet;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher::Event;

use crate::api::ApiToken;

/// What the two controllers are told, in the order the store applied it.
pub struct Feed {
    reconcile: UnboundedSender<ObjectRef<ApiToken>>,
    namespaces: UnboundedSender<String>,
    secrets: SecretChanges,
    listing: Vec<ObjectRef<ApiToken>>,
}

/// The receiving ends: ApiTokens to reconcile, and what the verifier controller hears.
pub struct Receivers {
    pub reconcile: UnboundedReceiver<ObjectRef<ApiToken>>,
    pub verifier: VerifierReceivers,
}

/// Namespaces whose ApiTokens changed, and Secrets that changed.
pub struct VerifierReceivers {
    pub namespaces: UnboundedReceiver<String>,
    pub secrets: UnboundedReceiver<ObjectRef<Secret>>,
}

/// Where the Secret watches report a changed (added, edited, deleted) Secret.
#[derive(Clone)]
pub struct SecretChanges(UnboundedSender<ObjectRef<Secret>>);

impl SecretChanges {
    pub fn changed(&self, secret: &ObjectRef<Secret>) {
        let _ = self.0.unbounded_send(secret.clone());
    }
}

impl Feed {
    pub fn new() -> (Self, Receivers) {
        let (reconcile, reconcile_rx) = unbounded();
        let (namespaces, namespaces_rx) = unbounded();
        let (secrets, secrets_rx) = unbounded();
        let feed = Self {
            reconcile,
            namespaces,
            secrets: SecretChanges(secrets),
            listing: Vec::new(),
        };
        let receivers = Receivers {
            reconcile: reconcile_rx,
            verifier: VerifierReceivers {
                namespaces: namespaces_rx,
                secrets: secrets_rx,
            },
        };
        (feed, receivers)
    }

    /// Passes on `event`, which the store has just applied. A deleted ApiToken is not
    /// reconciled (its revocation is recorded from the watch), but its namespace's key sets
    /// change. A receiver that is gone (its controller stopped) is ignored.
    pub fn saw(&mut self, event: &Event<ApiToken>) {
        match event {
            Event::Apply(token) => {
                let _ = self.reconcile.unbounded_send(ObjectRef::from_obj(token));
                self.changed_in(token);
            }
            Event::Delete(token) => self.changed_in(token),
            Event::Init => self.listing.clear(),
            Event::InitApply(token) => self.listing.push(ObjectRef::from_obj(token)),
            Event::InitDone => {
                let listed = std::mem::take(&mut self.listing);
                let namespaces: BTreeSet<_> =
                    listed.iter().filter_map(|r| r.namespace.clone()).collect();
                for key in listed {
                    let _ = self.reconcile.unbounded_send(key);
                }
                for ns in namespaces {
                    let _ = self.namespaces.unbounded_send(ns);
                }
            }
        }
    }

    /// The reporting end for the Secret watches.
    pub fn secrets(&self) -> SecretChanges {
        self.secrets.clone()
    }

    fn changed_in(&self, token: &ApiToken) {
        if let Some(ns) = token.namespace() {
            let _ = self.namespaces.unbounded_send(ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn token(ns: &str, name: &str) -> ApiToken {
        let mut t = ApiToken::new(name, Default::default());
        t.metadata.namespace = Some(ns.into());
        t
    }

    fn key(ns: &str, name: &str) -> ObjectRef<ApiToken> {
        ObjectRef::new(name).within(ns)
    }

    /// Everything sent so far, without waiting.
    fn drain<T>(rx: &mut UnboundedReceiver<T>) -> Vec<T> {
        let mut sent = Vec::new();
        while let Ok(item) = rx.try_recv() {
            sent.push(item);
        }
        sent
    }

    #[test]
    fn a_change_is_reconciled_and_a_deletion_only_tells_the_verifiers() {
        let (mut feed, mut rx) = Feed::new();
        feed.saw(&Event::Apply(token("a", "one")));
        feed.saw(&Event::Delete(token("b", "two")));
        assert_eq!(drain(&mut rx.reconcile), [key("a", "one")]);
        assert_eq!(drain(&mut rx.verifier.namespaces), ["a", "b"]);
    }

    #[test]
    fn a_list_is_passed_on_when_it_is_complete() {
        let (mut feed, mut rx) = Feed::new();
        feed.saw(&Event::Init);
        feed.saw(&Event::InitApply(token("b", "one")));
        feed.saw(&Event::InitApply(token("a", "two")));
        feed.saw(&Event::InitApply(token("b", "three")));
        assert!(drain(&mut rx.reconcile).is_empty());
        assert!(drain(&mut rx.verifier.namespaces).is_empty());
        feed.saw(&Event::InitDone);
        let listed = [key("b", "one"), key("a", "two"), key("b", "three")];
        assert_eq!(drain(&mut rx.reconcile), listed);
        assert_eq!(drain(&mut rx.verifier.namespaces), ["a", "b"]);
        // Nothing is passed on twice.
        feed.saw(&Event::InitDone);
        assert!(drain(&mut rx.reconcile).is_empty());
    }

    #[test]
    fn a_list_that_starts_over_passes_on_only_the_new_one() {
        let (mut feed, mut rx) = Feed::new();
        feed.saw(&Event::Init);
        feed.saw(&Event::InitApply(token("a", "gone")));
        feed.saw(&Event::Init);
        feed.saw(&Event::InitApply(token("a", "kept")));
        feed.saw(&Event::InitDone);
        assert_eq!(drain(&mut rx.reconcile), [key("a", "kept")]);
    }

    #[test]
    fn secret_changes_reach_the_verifiers_in_order() {
        let (feed, mut rx) = Feed::new();
        let (one, two) = (
            ObjectRef::new("keys").within("a"),
            ObjectRef::new("web").within("b"),
        );
        let changes = feed.secrets();
        changes.changed(&one);
        feed.secrets().changed(&two);
        assert_eq!(drain(&mut rx.verifier.secrets), [one, two]);
        assert!(drain(&mut rx.reconcile).is_empty());
    }

    #[tokio::test]
    async fn a_stopped_controller_does_not_stop_the_feed() {
        let (mut feed, rx) = Feed::new();
        let Receivers {
            reconcile,
            mut verifier,
        } = rx;
        drop(reconcile);
        feed.saw(&Event::Apply(token("a", "one")));
        assert_eq!(verifier.namespaces.next().await.as_deref(), Some("a"));
    }
}
