//! The ApiTokenVerifier controller: keeps a hash-only key set Secret exact for the ApiTokens a
//! verifier selects. [`api`] the resource; [`keys`] which values a set holds (pure);
//! [`digests`] learning the hashes; [`reconcile`] one reconcile; this module the wiring.
//!
//! It reacts to the ApiTokens themselves (labels, scopes, status, deletion), to its own key-set
//! Secret (edited or deleted), and requeues at the next expiry or grace end: no polling.

pub mod api;
pub mod digests;
pub mod keys;
pub mod reconcile;

use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};

use crate::api::{ApiToken, FIELD_MANAGER};
use crate::controller::Failures;
use crate::error::Error;
use crate::feed::VerifierReceivers;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::namespaces;
use crate::report::Events;
use api::ApiTokenVerifier;
use digests::DigestCache;

pub struct Context {
    pub client: Client,
    pub events: Events,
    /// Every ApiToken in the watched namespaces, with labels, spec and status.
    pub tokens: Store<ApiToken>,
    pub digests: DigestCache,
    pub metrics: Arc<Metrics>,
    /// Whether this replica may write; a standby does not reconcile.
    pub leadership: Leadership,
    failures: Failures<ApiTokenVerifier>,
}

/// Runs the verifier controller until SIGTERM or Ctrl-C, over `namespaces` (all when empty),
/// with the operator's (fenced, counted) client.
pub async fn run(
    client: Client,
    namespaces: Vec<String>,
    instance: Option<String>,
    leadership: Leadership,
    metrics: Arc<Metrics>,
    (tokens, changed): (Store<ApiToken>, VerifierReceivers),
) {
    let (verifiers_reader, verifiers_writer) = reflector::store::<ApiTokenVerifier>();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: Events::new(client.clone(), reporter),
        tokens,
        digests: DigestCache::default(),
        metrics,
        leadership: leadership.clone(),
        failures: Failures::default(),
    });

    let config = || watcher::Config::default().any_semantic();
    // One watcher per namespace (see crate::namespaces), each merged into one cache.
    fn merged<K>(
        client: &Client,
        namespaces: &[String],
        config: watcher::Config,
        store: Store<K>,
    ) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + use<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + std::fmt::Debug
            + serde::de::DeserializeOwned
            + Send
            + Sync
            + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone,
    {
        let sources = namespaces::apis::<K>(client, namespaces)
            .into_iter()
            .map(|(ns, api)| {
                let watch = watcher(api, config.clone()).default_backoff();
                // The verifier reads no managedFields: most of each cached object's memory.
                (
                    ns,
                    watch.modify(|o: &mut K| o.meta_mut().managed_fields = None),
                )
            })
            .collect();
        namespaces::merged(sources, store)
    }
    let verifier_events = reflector::reflector(
        verifiers_writer,
        merged::<ApiTokenVerifier>(&client, &namespaces, config(), verifiers_reader.clone()),
    )
    .applied_objects();
    // Any change of an ApiToken (labels, scopes, status, deletion) may change the key sets of
    // the verifiers in its namespace; a changed Secret may be a key set (edited or deleted) or
    // a foreign Secret in its way (a conflict clears as soon as it goes). The ApiToken
    // controller's watches report both once its stores hold the change (see crate::feed).
    let in_namespace = verifiers_reader.clone();
    let token_triggers = changed.namespaces.flat_map(move |ns| {
        futures::stream::iter(select(&in_namespace, |v| {
            v.namespace().as_deref() == Some(ns.as_str())
        }))
    });
    let by_secret = verifiers_reader.clone();
    let secret_triggers = changed.secrets.flat_map(move |secret| {
        futures::stream::iter(select(&by_secret, |v| {
            v.namespace() == secret.namespace && v.spec.secret_name == secret.name
        }))
    });
    Controller::for_stream(verifier_events, verifiers_reader)
        .reconcile_on(token_triggers)
        .reconcile_on(secret_triggers)
        // A standby skips reconciles; when it becomes the leader it takes up every verifier.
        .reconcile_all_on(leadership.gained())
        .shutdown_on_signal()
        .run(reconcile_counted, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((obj, _)) => tracing::debug!(namespace = obj.namespace.as_deref(), verifier = %obj.name, "reconciled"),
                Err(error) => tracing::debug!(error = %error, "verifier reconcile stream"),
            }
        })
        .await;
    tracing::info!("verifier controller stopped");
}

async fn reconcile_counted(
    verifier: Arc<ApiTokenVerifier>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    if !ctx.leadership.is_current() {
        tracing::debug!(verifier = %verifier.name_any(), "standby: not reconciling");
        return Ok(Action::await_change());
    }
    let key = ObjectRef::from_obj(verifier.as_ref());
    let action = reconcile::reconcile(verifier, ctx.clone()).await?;
    ctx.failures.clear(&key);
    Ok(action)
}

fn error_policy(verifier: Arc<ApiTokenVerifier>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.category());
    ctx.failures.retry(verifier.as_ref(), error)
}

/// The verifiers in `store` that `matches` accepts.
fn select(
    store: &Store<ApiTokenVerifier>,
    matches: impl Fn(&ApiTokenVerifier) -> bool,
) -> Vec<ObjectRef<ApiTokenVerifier>> {
    store
        .state()
        .into_iter()
        .filter(|v| matches(v))
        .map(|v| ObjectRef::from_obj(v.as_ref()))
        .collect()
}
