//! The controller wiring: watches, concurrency, retries with backoff, shutdown, requeue timing.
//! What one reconcile does is in [`crate::reconcile`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

use crate::api::{ApiToken, FIELD_MANAGER, FINALIZER};
use crate::error::Error;
use crate::reconcile;

/// Longest single wait: far-future due times are re-checked (without writing) after this.
const MAX_REQUEUE: Duration = Duration::from_secs(24 * 3600);
/// First retry delay after a transient error (API unavailable, conflict); doubles per failure.
const RETRY_TRANSIENT: Duration = Duration::from_secs(1);
const RETRY_PERMANENT: Duration = Duration::from_secs(300);

pub struct Settings {
    /// Watch only this namespace; all namespaces when None.
    pub namespace: Option<String>,
    /// Reconciles that may run at once.
    pub workers: u16,
    /// Identity in Events (`reportingInstance`).
    pub instance: Option<String>,
}

pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    /// Consecutive failed reconciles per ApiToken, for exponential backoff.
    failures: Mutex<HashMap<ObjectRef<ApiToken>, u32>>,
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(client: Client, settings: Settings) {
    let (tokens, secrets): (Api<ApiToken>, Api<PartialObjectMeta<Secret>>) =
        match &settings.namespace {
            Some(ns) => (
                Api::namespaced(client.clone(), ns),
                Api::namespaced(client.clone(), ns),
            ),
            None => (Api::all(client.clone()), Api::all(client.clone())),
        };
    let reporter = Reporter {
        controller: FIELD_MANAGER.into(),
        instance: settings.instance,
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client, reporter),
        failures: Mutex::default(),
    });

    let controller = Controller::new(tokens, watcher::Config::default().any_semantic());
    let store = controller.store();
    // Every Secret, metadata only: ours to notice deletion and edits, foreign ones so a conflict
    // clears as soon as the foreign Secret goes. Mapped by name through the ApiToken cache.
    let secret_events = watcher(secrets, watcher::Config::default().any_semantic())
        .default_backoff()
        .touched_objects();
    controller
        .watches_stream(secret_events, move |s| {
            let (ns, name) = (s.namespace(), s.name_any());
            store
                .state()
                .into_iter()
                .filter(|t| t.namespace() == ns && t.secret_name() == name)
                .map(|t| ObjectRef::from_obj(t.as_ref()))
                .collect::<Vec<_>>()
        })
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
    tracing::info!("controller stopped");
}

fn error_policy(token: Arc<ApiToken>, error: &Error, ctx: Arc<Context>) -> Action {
    let attempt = {
        let mut failures = ctx
            .failures
            .lock()
            .expect("failure counts are never poisoned");
        let count = failures
            .entry(ObjectRef::from_obj(token.as_ref()))
            .or_default();
        *count = count.saturating_add(1);
        *count
    };
    tracing::warn!(
        namespace = token.namespace().as_deref(),
        name = %token.name_any(),
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
    let name = cached.name_any();
    let ns = cached.namespace();
    tracing::debug!(namespace = ns.as_deref(), name = %name, "reconcile start");
    let result = reconcile_stored(cached, ctx).await;
    tracing::debug!(namespace = ns.as_deref(), name = %name, ok = result.is_ok(), "reconcile end");
    result
}

async fn reconcile_stored(cached: Arc<ApiToken>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<ApiToken> = Api::namespaced(ctx.client.clone(), &ns);
    let key = ObjectRef::from_obj(cached.as_ref());
    // The watch cache can trail our own last write (a status, a removed finalizer); deciding on
    // it could issue twice or clean up twice. Decide on the object as stored.
    let Some(token) = api.get_opt(&cached.name_any()).await? else {
        ctx.failures
            .lock()
            .expect("failure counts are never poisoned")
            .remove(&key);
        return Ok(Action::await_change());
    };
    let action = finalizer(&api, FINALIZER, Arc::new(token), |event| async {
        match event {
            Finalizer::Apply(token) => reconcile::apply(&token, &ctx, &ns).await,
            Finalizer::Cleanup(token) => reconcile::cleanup(&token, &ctx, &ns).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))?;
    ctx.failures
        .lock()
        .expect("failure counts are never poisoned")
        .remove(&key);
    Ok(action)
}

/// Requeue at the next due time; a due time in the past runs again at once.
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
