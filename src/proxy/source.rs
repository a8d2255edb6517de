//! Where the proxy's key set comes from: a mounted directory that kubelet updates (reloaded by
//! [`apitoken_verify::Reloader`]) or the key-set Secret watched through the API, which needs only
//! `get` and `watch` on that one Secret and sees a change as soon as the API server has it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use apitoken_verify::{KEYSET_FILE, KeySet, ReloadEvent, ReloadOptions, Reloader, SharedKeySet};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{WatchEvent, WatchParams};
use kube::{Api, ResourceExt};

use super::metrics::Metrics;

/// Starts keeping `shared` fresh from `dir`; the returned Reloader must be kept alive.
pub fn from_dir(
    dir: PathBuf,
    poll: Duration,
    shared: SharedKeySet,
    metrics: Arc<Metrics>,
) -> std::io::Result<Reloader> {
    let options = ReloadOptions { poll, watch: true };
    let on_event = move |event: &ReloadEvent| match event {
        ReloadEvent::Loaded { keys } => {
            tracing::info!(keys, "key set loaded");
            metrics.loaded(*keys);
        }
        ReloadEvent::Failed { error } => {
            tracing::warn!(%error, "key set reload failed");
            metrics.reload_failed();
        }
    };
    Reloader::start(&dir, shared, options, on_event)
}

/// Follows the Secret `name` until the process ends: one GET, then a watch on that name, again
/// from a fresh GET whenever the watch breaks. A deleted Secret leaves an empty key set.
pub async fn from_secret(
    api: Api<Secret>,
    name: String,
    shared: SharedKeySet,
    metrics: Arc<Metrics>,
) {
    let load = |secret: Option<&Secret>| {
        let bytes = secret
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(KEYSET_FILE))
            .map(|b| b.0.as_slice());
        let keys = match bytes.map(KeySet::from_json) {
            Some(Ok(keys)) => keys,
            Some(Err(error)) => {
                tracing::warn!(%error, secret = %name, "key set unusable; keeping the last good one");
                metrics.reload_failed();
                return;
            }
            None => KeySet::empty(), // gone: nothing verifies
        };
        tracing::info!(keys = keys.len(), secret = %name, "key set loaded");
        metrics.loaded(keys.len());
        shared.replace(keys);
    };
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(290);
    loop {
        let version = match api.get_opt(&name).await {
            Ok(secret) => {
                load(secret.as_ref());
                secret.map(|s| s.resource_version().unwrap_or_default())
            }
            Err(error) => {
                tracing::warn!(%error, secret = %name, "reading the key-set Secret failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // No Secret yet: watch from now on; the API server then reports its creation.
        let mut version = version.unwrap_or_default();
        'watch: loop {
            let stream = match api.watch(&params, &version).await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "watching the key-set Secret failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    break 'watch;
                }
            };
            let mut stream = stream.boxed();
            loop {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(s) | WatchEvent::Modified(s))) => {
                        version = s.resource_version().unwrap_or_default();
                        load(Some(&s));
                    }
                    Ok(Some(WatchEvent::Deleted(s))) => {
                        version = s.resource_version().unwrap_or_default();
                        load(None);
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => version = b.metadata.resource_version,
                    // Expired resource version (410) or another error: start over from a GET.
                    Ok(Some(WatchEvent::Error(error))) => {
                        tracing::debug!(code = error.code, "key-set watch error; re-reading");
                        break 'watch;
                    }
                    Ok(None) => break, // the server's timeout: watch again from `version`
                    Err(error) => {
                        tracing::warn!(%error, "key-set watch broke; re-reading");
                        break 'watch;
                    }
                }
            }
        }
    }
}
