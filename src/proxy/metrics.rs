//! The proxy's Prometheus metrics. Labels are token names and fixed words, never values.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerificationLabels {
    pub namespace: String,
    pub name: String,
    /// valid, valid_previous, expired, unknown, malformed, insufficient_scope, missing.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// loaded or failed.
    pub result: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub verifications: Family<VerificationLabels, Counter>,
    pub verification_seconds: Histogram,
    pub keys: Gauge,
    pub reloads: Family<ReloadLabels, Counter>,
    /// A key set has been loaded at least once (readiness).
    pub loaded: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let verifications = Family::<VerificationLabels, Counter>::default();
        registry.register(
            "apitoken_verifications",
            "Presented tokens checked, by token and result",
            verifications.clone(),
        );
        // One SHA-256 and a scan of the key set: microseconds; buckets from 1 µs to 24 ms.
        let verification_seconds = Histogram::new(exponential_buckets(1e-6, 2.5, 12));
        registry.register(
            "apitoken_verification_duration_seconds",
            "Time to check one presented token against the key set",
            verification_seconds.clone(),
        );
        let keys = Gauge::default();
        registry.register(
            "apitoken_keyset_keys",
            "Values in the key set in use",
            keys.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "apitoken_keyset_reloads",
            "Key set (re)loads, by result",
            reloads.clone(),
        );
        Self {
            registry,
            verifications,
            verification_seconds,
            keys,
            reloads,
            loaded: AtomicBool::new(false),
        }
    }

    pub fn verified(&self, labels: VerificationLabels, took: Duration) {
        self.verifications.get_or_create(&labels).inc();
        self.verification_seconds.observe(took.as_secs_f64());
    }

    /// A key set with `keys` values is in use.
    pub fn loaded(&self, keys: usize) {
        self.keys.set(i64::try_from(keys).unwrap_or(i64::MAX));
        self.reloads
            .get_or_create(&ReloadLabels { result: "loaded" })
            .inc();
        self.loaded.store(true, Ordering::Relaxed);
    }

    pub fn reload_failed(&self) {
        self.reloads
            .get_or_create(&ReloadLabels { result: "failed" })
            .inc();
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// `/metrics`, `/healthz` and `/readyz` (ready once a key set was loaded).
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

async fn serve_metrics(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.loaded.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "no key set loaded yet")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposes_the_verification_counter_and_histogram() {
        let metrics = Metrics::new();
        let labels = VerificationLabels {
            namespace: "ns".into(),
            name: "t".into(),
            result: "valid",
        };
        metrics.verified(labels, Duration::from_micros(3));
        metrics.loaded(2);
        let text = metrics.encode();
        assert!(
            text.contains(
                r#"apitoken_verifications_total{namespace="ns",name="t",result="valid"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("apitoken_verification_duration_seconds_count 1"));
        assert!(text.contains("apitoken_keyset_keys 2"));
        assert!(text.contains(r#"apitoken_keyset_reloads_total{result="loaded"} 1"#));
    }
}
