//! `apitoken-operator proxy`: a verifying reverse proxy for any HTTP API. It checks `X-API-KEY`
//! against a key set, answers 401/403 itself, and forwards the rest with the token's identity.
//! One JSON access-log line per request on stdout; diagnostics on stderr.

mod forward;
pub mod metrics;
mod source;

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apitoken_verify::{SharedKeySet, Verdict};
use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Request, Response, StatusCode, Uri, header};
use kube::{Api, Client};

use forward::{API_KEY, Upstream};
use metrics::{Metrics, VerificationLabels};

/// The proxy's flags.
#[derive(clap::Args)]
pub struct Options {
    /// Address to accept requests on.
    #[arg(long, default_value = "0.0.0.0:8000", env = "LISTEN")]
    pub listen: SocketAddr,
    /// The API behind the proxy, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "UPSTREAM")]
    pub upstream: Uri,
    /// Where the key-set Secret is mounted (the directory holding keyset.json, as kubelet
    /// mounts it); reloaded when kubelet updates it.
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "keyset_secret",
        conflicts_with = "keyset_secret"
    )]
    pub keyset: Option<PathBuf>,
    /// Or the key-set Secret's name, watched through the API (needs get and watch on it).
    #[arg(long, value_name = "NAME")]
    pub keyset_secret: Option<String>,
    /// Namespace of --keyset-secret (default: the Pod's, else the kubeconfig's).
    #[arg(short, long, env = "POD_NAMESPACE")]
    pub namespace: Option<String>,
    /// A scope every request's token must hold (repeatable); otherwise 403.
    #[arg(long = "require-scope", value_name = "S")]
    pub require_scopes: Vec<String>,
    /// Serve /metrics, /healthz and /readyz here (default: off).
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Re-read a mounted key set this often even without a change event, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub poll_seconds: u64,
}

struct App {
    keys: SharedKeySet,
    upstream: Upstream,
    required: Vec<String>,
    metrics: Arc<Metrics>,
}

/// Runs until SIGTERM or Ctrl-C, then finishes the requests in flight.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new());
    let keys = SharedKeySet::default();
    let upstream = Upstream::new(options.upstream)?;
    // Kept alive for as long as the proxy runs.
    let _reloader = match (options.keyset, options.keyset_secret) {
        (Some(dir), None) => Some(source::from_dir(
            dir,
            Duration::from_secs(options.poll_seconds),
            keys.clone(),
            metrics.clone(),
        )?),
        (None, Some(name)) => {
            let client = Client::try_default().await?;
            let namespace = options
                .namespace
                .unwrap_or_else(|| client.default_namespace().to_owned());
            let api = Api::namespaced(client, &namespace);
            tokio::spawn(source::from_secret(
                api,
                name,
                keys.clone(),
                metrics.clone(),
            ));
            None
        }
        _ => anyhow::bail!("give exactly one of --keyset DIR and --keyset-secret NAME"),
    };

    if let Some(addr) = options.metrics_addr {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(metrics_addr = %listener.local_addr()?, "serving metrics");
        let router = metrics::router(metrics.clone());
        tokio::spawn(async move { axum::serve(listener, router).await });
    }
    let app = Arc::new(App {
        keys,
        upstream,
        required: options.require_scopes,
        metrics,
    });
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    tracing::info!(listen = %listener.local_addr()?, "proxy listening");
    let router = Router::new().fallback(handle).with_state(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await?;
    tracing::info!("proxy stopped");
    Ok(())
}

async fn shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// What the presented header amounts to.
enum Outcome {
    Missing,
    /// Several `X-API-KEY` headers, or one that is not text.
    Unreadable,
    Checked(Verdict),
}

impl Outcome {
    fn result(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Unreadable => "malformed",
            Self::Checked(verdict) => verdict.result(),
        }
    }
}

fn check(app: &App, headers: &HeaderMap) -> Outcome {
    let mut presented = headers.get_all(API_KEY).iter();
    let (Some(value), None) = (presented.next(), presented.next()) else {
        return if headers.contains_key(API_KEY) {
            Outcome::Unreadable
        } else {
            Outcome::Missing
        };
    };
    match value.to_str() {
        Ok(value) => Outcome::Checked(app.keys.get().verify(value, &app.required)),
        Err(_) => Outcome::Unreadable,
    }
}

async fn handle(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response<Body> {
    let started = Instant::now();
    let outcome = check(&app, request.headers());
    let identity = match &outcome {
        Outcome::Checked(verdict) => verdict.identity().cloned(),
        _ => None,
    };
    app.metrics.verified(
        VerificationLabels {
            namespace: identity
                .as_ref()
                .map(|i| i.namespace.clone())
                .unwrap_or_default(),
            name: identity
                .as_ref()
                .map(|i| i.name.clone())
                .unwrap_or_default(),
            result: outcome.result(),
        },
        started.elapsed(),
    );
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_owned(),
    );
    let response = match &outcome {
        Outcome::Checked(Verdict::Valid(who) | Verdict::ValidPrevious(who)) => {
            app.upstream.forward(request, who, remote.ip()).await
        }
        Outcome::Checked(Verdict::InsufficientScope { missing, .. }) => {
            let body = serde_json::json!({"error": "forbidden", "result": outcome.result(), "missing": missing});
            json(StatusCode::FORBIDDEN, &body)
        }
        _ => {
            let body = serde_json::json!({"error": "unauthorized", "result": outcome.result()});
            let mut response = json(StatusCode::UNAUTHORIZED, &body);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("ApiKey header=\"X-API-KEY\""),
            );
            response
        }
    };
    access_log(&AccessLine {
        method: &method,
        path: &path,
        remote,
        outcome: &outcome,
        status: response.status().as_u16(),
        took: started.elapsed(),
    });
    response
}

fn json(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

struct AccessLine<'a> {
    method: &'a str,
    /// The path only: a query string may carry anything, including a token.
    path: &'a str,
    remote: SocketAddr,
    outcome: &'a Outcome,
    status: u16,
    took: Duration,
}

/// One JSON line on stdout; the value is never part of it.
fn access_log(line: &AccessLine<'_>) {
    let identity = match line.outcome {
        Outcome::Checked(verdict) => verdict.identity(),
        _ => None,
    };
    let record = serde_json::json!({
        "time": jiff::Timestamp::now().to_string(),
        "method": line.method,
        "path": line.path,
        "remote": line.remote.to_string(),
        "result": line.outcome.result(),
        "status": line.status,
        "namespace": identity.map(|i| i.namespace.as_str()),
        "name": identity.map(|i| i.name.as_str()),
        "revision": identity.map(|i| i.revision),
        "state": identity.map(|i| i.state.as_str()),
        "durationMs": line.took.as_secs_f64() * 1000.0,
    });
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{record}");
}
