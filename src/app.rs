//! Starts the operator's parts and keeps them together: the kube Client with its write layers
//! (counted, fenced by leadership), leader election, the metrics and health endpoints, and the
//! controllers (ApiToken and ApiTokenVerifier). The process ends when they stop (SIGTERM) or the
//! election dies.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kube::client::ClientBuilder;
use kube::runtime::reflector;

use crate::api::ApiToken;
use crate::controller::{self, Settings};
use crate::health::{self, Readiness};
use crate::leader::{Election, Fence, Leadership};
use crate::metrics::Metrics;
use crate::{feed, verifier};

pub struct Options {
    /// Watched namespaces; all when empty.
    pub namespaces: Vec<String>,
    pub workers: u16,
    /// This replica's name (Pod name): Events' reportingInstance and the Lease holder's prefix.
    pub instance: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz; not served when None.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election; without it this process is the only writer.
    pub election: Option<ElectionOptions>,
}

pub struct ElectionOptions {
    pub lease_name: String,
    /// Default: the kubeconfig's namespace.
    pub lease_namespace: Option<String>,
    pub lease_duration: Duration,
}

/// The longest a graceful shutdown may take once the caches synced: in-flight reconciles finish
/// in well under a second; Kubernetes kills the Pod after 30 s anyway.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Resolves when a graceful shutdown (SIGTERM, Ctrl-C) will not finish by itself: at once when
/// the ApiToken caches never synced (kube's controller holds its runner until its store is ready,
/// so with the CRD missing it would never stop; no reconcile ran), else after [`SHUTDOWN_GRACE`].
async fn stuck_shutdown(readiness: Readiness) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    if readiness.is_ready() {
        tokio::time::sleep(SHUTDOWN_GRACE).await;
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "graceful shutdown did not finish in time; stopping");
    } else {
        tracing::info!("stopping before the caches synced (is the CRD installed?)");
    }
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let config = kube::Config::infer().await?;
    let election = options.election.map(|e| Election {
        lease_name: e.lease_name,
        namespace: e
            .lease_namespace
            .unwrap_or_else(|| config.default_namespace.clone()),
        // Unique per process, so a restarted replica never mistakes the old claim for its own.
        identity: format!(
            "{}_{:08x}",
            options.instance.as_deref().unwrap_or("apitoken-operator"),
            rand::random::<u32>()
        ),
        duration: e.lease_duration,
    });
    let leadership = match &election {
        Some(e) => Leadership::elected(e.identity.clone(), e.margin()),
        None => Leadership::sole(),
    };
    let (tokens, writer) = reflector::store::<ApiToken>();
    let is_leader = {
        let leadership = leadership.clone();
        move || leadership.is_current()
    };
    let metrics = Arc::new(Metrics::new(tokens.clone(), is_leader));
    // The controller's client: every write counted, and refused unless our claim is current.
    let client = ClientBuilder::try_from(config.clone())?
        .with_layer(&metrics.count_requests())
        .with_layer(&Fence::new(leadership.clone()))
        .build();

    let readiness = Readiness::default();
    if let Some(addr) = options.metrics_addr {
        let (bound, server) = health::bind(addr, metrics.clone(), readiness.clone()).await?;
        tracing::info!(metrics_addr = %bound, "serving metrics");
        tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "metrics server failed");
            }
        });
    }
    tracing::info!(
        namespaces = %if options.namespaces.is_empty() { "*".to_owned() } else { options.namespaces.join(",") },
        workers = options.workers,
        leader_election = election.is_some(),
        "starting"
    );
    let mut elector = match election {
        // The lease manager's own client: counted, never fenced (it renews to stay leader).
        Some(election) => {
            let lease_client = ClientBuilder::try_from(config)?
                .with_layer(&metrics.count_requests())
                .build();
            Some(election.start(lease_client, leadership.clone()).await?)
        }
        None => None,
    };
    let settings = Settings {
        namespaces: options.namespaces,
        workers: options.workers,
        instance: options.instance,
    };
    // The ApiTokenVerifier controller beside it, with the same fenced client and leadership.
    // Both controllers read one ApiToken store, filled by the ApiToken controller's watch.
    let (feed, changed) = feed::Feed::new();
    let verifiers = verifier::run(
        client.clone(),
        settings.namespaces.clone(),
        settings.instance.clone(),
        leadership.clone(),
        metrics.clone(),
        (tokens.clone(), changed.verifier),
    );
    let tokens = controller::run(
        client,
        settings,
        writer,
        (feed, changed.reconcile),
        readiness.clone(),
        metrics,
        leadership,
    );
    let controllers = async {
        tokio::select! {
            _ = async { tokio::join!(tokens, verifiers) } => {}
            () = stuck_shutdown(readiness) => {}
        }
    };
    match elector.as_mut() {
        None => controllers.await,
        Some(running) => tokio::select! {
            () = controllers => {}
            reason = running.stopped() => anyhow::bail!("leader election stopped: {reason}"),
        },
    }
    if let Some(elector) = elector {
        elector.release().await;
    }
    Ok(())
}
