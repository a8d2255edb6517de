//! Timing from watch events, never from polling: a watcher over the bench's ApiTokens records,
//! per token, when each revision was first seen Ready and the rotation time status announced.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apitoken_operator::api::ApiToken;
use futures::StreamExt;
use jiff::Timestamp;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};

#[derive(Default, Clone)]
pub struct Seen {
    /// revision -> (when first seen Ready at it, wall clock then)
    pub ready: HashMap<i64, (Instant, Timestamp)>,
    /// revision -> the nextRotationAt status gave at that revision
    pub next_rotation: HashMap<i64, Timestamp>,
}

#[derive(Clone, Default)]
pub struct Tracker(Arc<Mutex<HashMap<String, Seen>>>);

fn is_ready(t: &ApiToken) -> bool {
    t.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

impl Tracker {
    /// Watches ApiTokens labelled `selector` in all namespaces until the process ends.
    pub fn start(client: Client, selector: &str) -> Self {
        let tracker = Self::default();
        let seen = tracker.0.clone();
        let api: Api<ApiToken> = Api::all(client);
        let config = watcher::Config::default().labels(selector);
        tokio::spawn(async move {
            let mut stream = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(Ok(t)) = stream.next().await {
                let Some(status) = t.status.as_ref() else {
                    continue;
                };
                let Some(revision) = status.revision else {
                    continue;
                };
                let key = format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any());
                let mut map = seen.lock().unwrap();
                let entry = map.entry(key).or_default();
                if is_ready(&t) {
                    entry
                        .ready
                        .entry(revision)
                        .or_insert((Instant::now(), Timestamp::now()));
                }
                if let Some(next) = &status.next_rotation_at {
                    entry.next_rotation.entry(revision).or_insert(next.0);
                }
            }
        });
        tracker
    }

    pub fn snapshot(&self) -> HashMap<String, Seen> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until `n` tokens were seen Ready at `revision` or later; returns each one's time.
    pub async fn wait_ready(
        &self,
        n: usize,
        revision: i64,
        timeout: Duration,
    ) -> anyhow::Result<Vec<(String, Instant)>> {
        let deadline = Instant::now() + timeout;
        loop {
            let done: Vec<(String, Instant)> = self
                .0
                .lock()
                .unwrap()
                .iter()
                .filter_map(|(k, s)| {
                    let first = s
                        .ready
                        .iter()
                        .filter(|(r, _)| **r >= revision)
                        .map(|(_, t)| t.0)
                        .min()?;
                    Some((k.clone(), first))
                })
                .collect();
            if done.len() >= n {
                return Ok(done);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} of {n} tokens Ready at revision {revision} after {timeout:?}",
                done.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// p50, p99 and max of `values` (nearest rank).
pub fn percentiles(values: &mut [f64]) -> (f64, f64, f64) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    values.sort_by(f64::total_cmp);
    let at = |p: f64| {
        let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1]
    };
    (at(50.0), at(99.0), *values.last().unwrap())
}
