//! Gauges computed at scrape time: per-token timestamps and readiness from the ApiToken watch
//! cache (a token's series go with it, and every replica shows the same), and leadership.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

use kube::ResourceExt;
use kube::runtime::reflector::Store;

use crate::api::ApiToken;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct TokenLabels {
    pub namespace: String,
    pub name: String,
}

/// What the gauges show for one ApiToken, from its status.
#[derive(Debug, PartialEq, Eq)]
pub struct TokenRow {
    pub labels: TokenLabels,
    /// `status.expiresAt`, Unix seconds.
    pub expires_at: Option<i64>,
    /// `status.nextRotationAt`, Unix seconds.
    pub next_rotation_at: Option<i64>,
    /// The Ready condition is True.
    pub ready: bool,
}

pub fn row(token: &ApiToken) -> TokenRow {
    let status = token.status.as_ref();
    TokenRow {
        labels: TokenLabels {
            namespace: token.namespace().unwrap_or_default(),
            name: token.name_any(),
        },
        expires_at: status
            .and_then(|s| s.expires_at.as_ref())
            .map(|t| t.0.as_second()),
        next_rotation_at: status
            .and_then(|s| s.next_rotation_at.as_ref())
            .map(|t| t.0.as_second()),
        ready: status.is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        }),
    }
}

pub struct TokenGauges {
    store: Store<ApiToken>,
}

impl TokenGauges {
    pub fn new(store: Store<ApiToken>) -> Self {
        Self { store }
    }
}

impl std::fmt::Debug for TokenGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGauges")
            .field("tokens", &self.store.len())
            .finish()
    }
}

/// One gauge family: a series for each row that has a value.
fn encode_gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl Iterator<Item = (&'a TokenLabels, i64)>,
) -> std::fmt::Result {
    let mut metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        ConstGauge::new(value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for TokenGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let mut rows: Vec<TokenRow> = self.store.state().iter().map(|t| row(t)).collect();
        rows.sort_by(|a, b| a.labels.cmp(&b.labels));
        encode_gauges(
            &mut encoder,
            "expiration_timestamp",
            "When the current value of the ApiToken expires (status.expiresAt), Unix time.",
            Some(&Unit::Seconds),
            rows.iter().filter_map(|r| Some((&r.labels, r.expires_at?))),
        )?;
        encode_gauges(
            &mut encoder,
            "next_rotation_timestamp",
            "When the ApiToken is next rotated (status.nextRotationAt), Unix time.",
            Some(&Unit::Seconds),
            rows.iter()
                .filter_map(|r| Some((&r.labels, r.next_rotation_at?))),
        )?;
        encode_gauges(
            &mut encoder,
            "ready",
            "1 when the ApiToken's Ready condition is True, else 0.",
            None,
            rows.iter().map(|r| (&r.labels, i64::from(r.ready))),
        )
    }
}

/// `apitoken_leader`: 1 while this replica holds a current claim on the Lease (always 1
/// without leader election).
pub struct LeaderGauge<F> {
    is_leader: F,
}

impl<F> LeaderGauge<F> {
    pub fn new(is_leader: F) -> Self {
        Self { is_leader }
    }
}

impl<F> std::fmt::Debug for LeaderGauge<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LeaderGauge")
    }
}

impl<F: Fn() -> bool + Send + Sync + 'static> Collector for LeaderGauge<F> {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let gauge = ConstGauge::new(i64::from((self.is_leader)()));
        let metric = encoder.encode_descriptor(
            "leader",
            "1 while this replica may write (it holds the leader Lease, or runs without election).",
            None,
            gauge.metric_type(),
        )?;
        gauge.encode(metric)
    }
}
