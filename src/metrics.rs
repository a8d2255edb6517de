//! Prometheus metrics: one [`Metrics`] registry, shared through the controller's context.
//!
//! Every label is a fixed word (an issue reason, an error category, a resource and verb) or a
//! token's namespace and name; never error text, never a value. Per-token gauges are read from
//! the watch cache at scrape time ([`tokens`]), so they go when the ApiToken goes.

mod requests;
mod tokens;

use std::time::Instant;

use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::api::ApiToken;
use crate::report::Audit;

pub use requests::{CountRequests, Write, classify, classify_read};

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CategoryLabel {
    category: &'static str,
}

pub struct Metrics {
    registry: Registry,
    issues: Family<ReasonLabel, Counter>,
    reconcile_duration: Histogram,
    reconcile_errors: Family<CategoryLabel, Counter>,
    writes: Family<Write, Counter>,
    reads: Family<Write, Counter>,
}

impl Metrics {
    /// Registers everything; per-token gauges come from `tokens`, the ApiToken watch cache, and
    /// `apitoken_leader` from `is_leader` at scrape time.
    pub fn new(
        tokens: Store<ApiToken>,
        is_leader: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        let mut registry = Registry::with_prefix("apitoken");
        let issues = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "issues",
            "Token values issued, by reason (Created, Schedule, Requested, Expiring, SpecChanged, SecretLost, Tampered)",
            issues.clone(),
        );
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        registry.register_with_unit(
            "reconcile_duration",
            "Time one reconcile of one ApiToken took (reconciles on a standby replica are skipped, not timed)",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let reconcile_errors = Family::<CategoryLabel, Counter>::default();
        registry.register(
            "reconcile_errors",
            "Failed reconciles, by a fixed error category",
            reconcile_errors.clone(),
        );
        let writes = Family::<Write, Counter>::default();
        registry.register(
            "api_writes",
            "Write requests sent to the Kubernetes API (every method but GET), by resource and verb",
            writes.clone(),
        );
        let reads = Family::<Write, Counter>::default();
        registry.register(
            "api_reads",
            "Read requests sent to the Kubernetes API (get, list, watch), by resource and verb",
            reads.clone(),
        );
        registry.register_collector(Box::new(tokens::TokenGauges::new(tokens)));
        registry.register_collector(Box::new(tokens::LeaderGauge::new(is_leader)));
        Self {
            registry,
            issues,
            reconcile_duration,
            reconcile_errors,
            writes,
            reads,
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }

    /// A tower layer for the kube Client that counts every request it sends.
    pub fn count_requests(&self) -> CountRequests {
        CountRequests::new(self.writes.clone(), self.reads.clone())
    }

    /// Counts an issued value from its audit record (the durable record of each issue).
    pub fn record(&self, audit: &Audit) {
        if matches!(audit.action, "issue" | "rotate") {
            self.issues
                .get_or_create(&ReasonLabel {
                    reason: audit.reason,
                })
                .inc();
        }
    }

    pub fn reconcile_failed(&self, category: &'static str) {
        self.reconcile_errors
            .get_or_create(&CategoryLabel { category })
            .inc();
    }

    /// Observes the reconcile duration when the returned guard drops.
    pub fn time_reconcile(&self) -> ReconcileTimer<'_> {
        ReconcileTimer {
            histogram: &self.reconcile_duration,
            start: Instant::now(),
        }
    }
}

pub struct ReconcileTimer<'a> {
    histogram: &'a Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests;
