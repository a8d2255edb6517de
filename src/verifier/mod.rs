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
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::api::{ApiToken, FIELD_MANAGER};
use crate::controller::Failures;
use crate::error::Error;
use api::ApiTokenVerifier;
use digests::DigestCache;

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    /// Every ApiToken in the watched namespaces, with labels, spec and status.
    pub tokens: Store<ApiToken>,
    pub digests: DigestCache,
    failures: Failures<ApiTokenVerifier>,
}

/// Runs the verifier controller until SIGTERM or Ctrl-C.
pub async fn run(client: Client, namespace: Option<String>, instance: Option<String>) {
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = namespace.as_deref();
    let (tokens_reader, tokens_writer) = reflector::store::<ApiToken>();
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        tokens: tokens_reader,
        digests: DigestCache::default(),
        failures: Failures::default(),
    });

    let config = watcher::Config::default().any_semantic();
    let controller = Controller::new(api::<ApiTokenVerifier>(&client, ns), config.clone());
    let by_namespace = controller.store();
    let by_secret = controller.store();
    // Any change of an ApiToken (labels, scopes, status, deletion) may change the key sets of
    // the verifiers in its namespace; the reflector updates the store before the event arrives.
    let token_events = reflector::reflector(
        tokens_writer,
        watcher(api::<ApiToken>(&client, ns), config.clone()),
    )
    .default_backoff()
    .touched_objects();
    // Every Secret's metadata: our key sets (edited or deleted) and foreign ones of the same
    // name, so a conflict clears as soon as the foreign Secret goes.
    let secret_events = watcher(api::<PartialObjectMeta<Secret>>(&client, ns), config)
        .default_backoff()
        .touched_objects();
    controller
        .watches_stream(token_events, move |token| {
            let ns = token.namespace();
            by_namespace
                .state()
                .into_iter()
                .filter(|v| v.namespace() == ns)
                .map(|v| ObjectRef::from_obj(v.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(secret_events, move |secret| {
            let (ns, name) = (secret.namespace(), secret.name_any());
            by_secret
                .state()
                .into_iter()
                .filter(|v| v.namespace() == ns && v.spec.secret_name == name)
                .map(|v| ObjectRef::from_obj(v.as_ref()))
                .collect::<Vec<_>>()
        })
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
    let key = ObjectRef::from_obj(verifier.as_ref());
    let action = reconcile::reconcile(verifier, ctx.clone()).await?;
    ctx.failures.clear(&key);
    Ok(action)
}

fn error_policy(verifier: Arc<ApiTokenVerifier>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.failures.retry(verifier.as_ref(), error)
}
