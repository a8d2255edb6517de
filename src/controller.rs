//! The controller wiring: watches, concurrency, retries with backoff, shutdown, requeue timing.
//! What one reconcile does is in [`crate::reconcile`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{self, ObjectRef, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::api::{ApiToken, FIELD_MANAGER, FINALIZER};
use crate::deletion::{self, Revocations};
use crate::error::Error;
use crate::feed::Feed;
use crate::freshness::Freshness;
use crate::health::Readiness;
use crate::leader::Leadership;
use crate::metrics::Metrics;
use crate::naming::Naming;
use crate::report::{self, Audit, Events};
use crate::secret_cache::SecretCache;
use crate::{namespaces, reconcile, teardown};

/// Longest single wait: far-future due times are re-checked (without writing) after this.
const MAX_REQUEUE: Duration = Duration::from_secs(24 * 3600);
/// First retry delay after a transient error (API unavailable, conflict); doubles per failure.
const RETRY_TRANSIENT: Duration = Duration::from_secs(1);
const RETRY_PERMANENT: Duration = Duration::from_secs(300);

pub struct Settings {
    /// Watch only these namespaces; all namespaces when empty.
    pub namespaces: Vec<String>,
    /// Reconciles that may run at once.
    pub workers: u16,
    /// Identity in Events (`reportingInstance`).
    pub instance: Option<String>,
}

pub struct Context {
    pub client: Client,
    pub events: Events,
    pub metrics: Arc<Metrics>,
    /// Whether this replica may write; asked before each reconcile.
    pub leadership: Leadership,
    failures: Failures<ApiToken>,
    /// When the cached ApiToken may decide a reconcile (see [`crate::freshness`]).
    pub freshness: Freshness,
    /// Which namespaces are being torn down, remembered briefly.
    pub namespaces: teardown::NamespaceStates,
    /// The operator's own Secrets, and when the cached copy may decide.
    pub secrets: SecretCache,
}

impl Context {
    /// The ApiToken is gone: what was remembered of it and its Secret (our last writes, a
    /// refused create, failed reconciles) is dropped, so a long-running operator keeps nothing
    /// of deleted tokens.
    pub fn gone(&self, token: &ApiToken) {
        self.freshness.forget(token);
        if let Some(ns) = token.namespace() {
            self.secrets.forget(&ns, &token.secret_name());
        }
        self.failures.clear(&ObjectRef::from_obj(token));
    }

    /// Writes an audit line and counts an issued value from it.
    pub fn audit(&self, record: &Audit) {
        report::audit(record);
        self.metrics.record(record);
    }
}

/// Runs the controller until SIGTERM or Ctrl-C. `tokens` fills the ApiToken cache that
/// `metrics` reads; `readiness` is set once every watched namespace has been listed into it.
pub async fn run(
    client: Client,
    settings: Settings,
    tokens: Writer<ApiToken>,
    (mut feed, to_reconcile): (Feed, UnboundedReceiver<ObjectRef<ApiToken>>),
    readiness: Readiness,
    metrics: Arc<Metrics>,
    leadership: Leadership,
) {
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: settings.instance,
    };
    let (secrets, own_secret_events) = SecretCache::watch(&client, &settings.namespaces);
    let ctx = Arc::new(Context {
        client: client.clone(),
        events: Events::new(client.clone(), reporter),
        metrics,
        leadership: leadership.clone(),
        failures: Failures::default(),
        freshness: Freshness::default(),
        namespaces: teardown::NamespaceStates::default(),
        secrets,
    });
    let (revocations, record_revocations) = Revocations::start(ctx.clone());
    let gone = ctx.clone();

    let store = tokens.as_reader();
    let config = || watcher::Config::default().any_semantic();
    // One watcher per namespace, merged into one cache (see crate::namespaces).
    let token_watches = namespaces::apis::<ApiToken>(&client, &settings.namespaces)
        .into_iter()
        .map(|(ns, api)| {
            let watch = watcher(api, config()).default_backoff();
            (ns, watch.modify(report::trim_managed_fields))
        })
        .collect();
    // The merged stream has one list phase, ending when every namespace has been listed.
    let token_events =
        namespaces::merged(token_watches, store.clone()).inspect(move |event| match event {
            Ok(watcher::Event::InitDone) => {
                tracing::info!("caches synced");
                readiness.set_ready();
            }
            // A deleted ApiToken is not reconciled: its revocation is recorded from here.
            Ok(watcher::Event::Delete(token)) => {
                gone.gone(token);
                revocations.deleted(token);
            }
            _ => {}
        });
    let secret_changes = feed.secrets();
    // The watch fills the store that both controllers read, and tells them what changed (see
    // crate::feed); it runs beside the controller, which may be too busy to poll it.
    let naming = Naming::new(store.clone());
    let follows = naming.clone();
    let feed_tokens = reflector::reflector(tokens, token_events).for_each(move |event| {
        if let Ok(event) = event {
            follows.saw(&event);
            feed.saw(&event);
        }
        futures::future::ready(())
    });
    let in_store = store.clone();
    let token_triggers =
        to_reconcile.filter_map(move |key| futures::future::ready(in_store.get(&key)));
    // The operator's own Secrets whole (its cache), all others by metadata only so a conflict
    // clears as soon as the foreign Secret goes; mapped to the ApiTokens that name them, and
    // reported to the verifier controller. Followed beside the controller, not through it: a
    // controller with every worker busy stops polling its trigger streams, and reconciles must
    // not wait on a cache that only they would fill.
    let others = crate::secret_cache::selector(false);
    let other_secrets = namespaces::secret_metadata(&client, &settings.namespaces, Some(&others));
    let (to_tokens, secret_triggers) = futures::channel::mpsc::unbounded();
    let follow_secrets = futures::stream::select(
        own_secret_events.map_ok(|s| s.key()).boxed(),
        other_secrets.map_ok(|s| secret_key(&s)).boxed(),
    )
    .for_each(move |secret| {
        if let Ok(secret) = secret {
            secret_changes.changed(&secret);
            for token in naming.tokens(&secret) {
                let _ = to_tokens.unbounded_send(token);
            }
        }
        futures::future::ready(())
    });
    let controller = async move {
        // Decide on the Secrets as listed, not on one GET per token (a restart reads none).
        ctx.secrets.wait_listed().await;
        Controller::for_shared_stream(token_triggers, store.clone())
            .reconcile_on(secret_triggers)
            // A standby skips reconciles; when it becomes the leader it takes up every ApiToken.
            .reconcile_all_on(leadership.gained())
            .with_config(ControllerConfig::default().concurrency(settings.workers))
            .shutdown_on_signal()
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                match result {
                    Ok((obj, _)) => tracing::debug!(namespace = obj.namespace.as_deref(), name = %obj.name, "reconciled"),
                    Err(error) => tracing::debug!(error = %error, "reconcile stream"),
                }
            })
            .await;
    };
    // The watches never end by themselves: they are dropped when the controller has stopped,
    // and with the ApiToken watch the sender of deleted tokens, so the recording task ends.
    let running = async move {
        let watches = futures::future::join(feed_tokens, follow_secrets);
        futures::future::select(std::pin::pin!(controller), std::pin::pin!(watches)).await;
    };
    futures::future::join(running, record_revocations).await;
    tracing::info!("controller stopped");
}

fn error_policy(token: Arc<ApiToken>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconcile_failed(error.category());
    ctx.failures.retry(token.as_ref(), error)
}

/// Consecutive failed reconciles per object, for exponential backoff.
pub(crate) struct Failures<K: Resource>(Mutex<HashMap<ObjectRef<K>, u32>>);

impl<K: Resource> Default for Failures<K> {
    fn default() -> Self {
        Self(Mutex::default())
    }
}

impl<K> Failures<K>
where
    K: Resource,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    /// Logs a failed reconcile and says when to retry: transient errors back off from 1 s,
    /// others wait five minutes (or for a change of the object).
    pub(crate) fn retry(&self, obj: &K, error: &Error) -> Action {
        let attempt = {
            let mut failures = self.0.lock().expect("failure counts are never poisoned");
            let count = failures.entry(ObjectRef::from_obj(obj)).or_default();
            *count = count.saturating_add(1);
            *count
        };
        tracing::warn!(
            kind = %K::kind(&K::DynamicType::default()),
            namespace = obj.meta().namespace.as_deref(),
            name = obj.meta().name.as_deref(),
            category = error.category(),
            error = %ErrorChain(error),
            "reconcile failed"
        );
        Action::requeue(if error.is_transient() {
            retry_delay(attempt)
        } else {
            RETRY_PERMANENT
        })
    }

    /// A reconcile of `obj` succeeded (or it is gone): the next failure starts from 1 s again.
    pub(crate) fn clear(&self, key: &ObjectRef<K>) {
        self.0
            .lock()
            .expect("failure counts are never poisoned")
            .remove(key);
    }
}

/// Exponential backoff for transient errors: 1 s, 2 s, 4 s, ... capped at 5 minutes.
fn retry_delay(attempt: u32) -> Duration {
    RETRY_TRANSIENT
        .saturating_mul(1 << attempt.saturating_sub(1).min(16))
        .min(RETRY_PERMANENT)
}

/// Formats an error with its sources, one per `: `.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(s) = source {
            write!(f, ": {s}")?;
            source = s.source();
        }
        Ok(())
    }
}

/// One reconcile, bracketed by `reconcile start`/`reconcile end` debug lines: the fault suite
/// counts reconciles in flight from them (never more than `--workers`).
async fn reconcile(cached: Arc<ApiToken>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.leadership.is_current() {
        tracing::debug!(name = %cached.name_any(), "standby: not reconciling");
        return Ok(Action::await_change());
    }
    let _timer = ctx.metrics.time_reconcile();
    let name = cached.name_any();
    let ns = cached.namespace();
    tracing::debug!(namespace = ns.as_deref(), name = %name, "reconcile start");
    let result = reconcile_stored(cached, ctx.clone()).await;
    tracing::debug!(namespace = ns.as_deref(), name = %name, ok = result.is_ok(), "reconcile end");
    result
}

async fn reconcile_stored(cached: Arc<ApiToken>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<ApiToken> = Api::namespaced(ctx.client.clone(), &ns);
    let key = ObjectRef::from_obj(cached.as_ref());
    // The watch cache can trail our own last write (a status, a removed finalizer); deciding on
    // it could issue twice or clean up twice. The watch brings that write soon, and its event
    // reconciles the token again: nothing to decide until then (another change in between comes
    // after it on the watch). Past freshness::TRAIL_WAIT, and for a token being deleted (its
    // cleanup must not wait for the watch), the token is decided on as stored.
    let deleting = cached.metadata.deletion_timestamp.is_some();
    if !deleting && ctx.freshness.trails(cached.as_ref(), Instant::now()) {
        tracing::debug!(namespace = %ns, name = %cached.name_any(), "cache trails our write");
        return Ok(Action::await_change());
    }
    let token = if ctx.freshness.cache_is_current(cached.as_ref()) {
        Some(cached.as_ref().clone())
    } else {
        api.get_opt(&cached.name_any()).await?
    };
    let Some(token) = token else {
        ctx.gone(&cached);
        return Ok(Action::await_change());
    };
    let deleting = token.metadata.deletion_timestamp.is_some();
    // Only Retain needs a finalizer (see crate::deletion); a Delete token is left to the
    // garbage collector and its revocation recorded from the watch.
    let action = if deleting || deletion::needs_finalizer(&token) {
        finalizer(&api, FINALIZER, Arc::new(token), |event| async {
            match event {
                Finalizer::Apply(token) => reconcile::apply(&token, &ctx, &ns).await,
                Finalizer::Cleanup(token) => deletion::cleanup(&token, &ctx, &ns).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)))
    } else {
        reconcile::apply(&token, &ctx, &ns).await
    };
    // A create refused because the namespace is terminating is final, not a failure to retry.
    let action = match action {
        Err(e) if teardown::is_namespace_terminating(&e) => {
            tracing::debug!(namespace = %ns, name = %cached.name_any(), "namespace terminating");
            Action::await_change()
        }
        // The Secret was taken as absent but one is there (someone else's, or one of ours
        // restored a moment ago): decide again at once, on the Secret as read.
        Err(e) if matches!(e.of_step(), Error::SecretExists) => {
            tracing::debug!(namespace = %ns, name = %cached.name_any(), "secret exists");
            Action::requeue(Duration::ZERO)
        }
        other => other?,
    };
    if deleting {
        ctx.freshness.forget(cached.as_ref());
    }
    ctx.failures.clear(&key);
    Ok(action)
}

/// A Secret's namespace and name, from the whole object or its metadata.
fn secret_key(secret: &impl Resource) -> ObjectRef<Secret> {
    let meta = secret.meta();
    let key = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    match meta.namespace.as_deref() {
        Some(ns) => key.within(ns),
        None => key,
    }
}

/// Requeue just after the next due time; a due time in the past runs again at once (50 ms).
pub(crate) fn requeue_at(next_due: Option<Timestamp>, now: Timestamp) -> Action {
    match next_due {
        None => Action::await_change(),
        Some(due) => {
            let wait = due.duration_since(now).max(SignedDuration::ZERO);
            // Sub-second rounding up so we never wake a hair before the due time.
            let wait =
                Duration::try_from(wait).unwrap_or(Duration::ZERO) + Duration::from_millis(50);
            Action::requeue(wait.min(MAX_REQUEUE))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn requeues_just_after_the_due_time() {
        let now = ts("2026-11-22T10:00:00Z");
        let due = ts("2026-11-22T10:01:00Z");
        assert_eq!(
            requeue_at(Some(due), now),
            Action::requeue(Duration::from_millis(60_050))
        );
    }

    #[test]
    fn a_past_due_time_runs_again_at_once() {
        let now = ts("2026-11-22T10:00:00Z");
        let due = ts("2026-11-22T09:00:00Z");
        assert_eq!(
            requeue_at(Some(due), now),
            Action::requeue(Duration::from_millis(50))
        );
    }

    #[test]
    fn far_future_due_times_are_rechecked_daily_without_overflow() {
        let now = ts("2026-11-22T10:00:00Z");
        assert_eq!(
            requeue_at(Some(ts("9999-12-30T00:00:00Z")), now),
            Action::requeue(MAX_REQUEUE)
        );
    }

    #[test]
    fn transient_retries_back_off_exponentially_to_five_minutes() {
        let delays: Vec<u64> = [1, 2, 3, 4, 9, 10, 1000]
            .map(|a| retry_delay(a).as_secs())
            .to_vec();
        assert_eq!(delays, [1, 2, 4, 8, 256, 300, 300]);
    }

    #[test]
    fn nothing_due_waits_for_a_change() {
        assert_eq!(
            requeue_at(None, ts("2026-11-22T10:00:00Z")),
            Action::await_change()
        );
    }
}
