//! Helpers for verifier and proxy tests: key sets read back from the cluster, the plaintext scan,
//! a tiny upstream HTTP server and the proxy as a host process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use apitoken_operator::verifier::api::ApiTokenVerifier;
use apitoken_verify::{Document, KEYSET_FILE, KeySet, Verdict};
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;

use crate::harness::*;

pub fn verifier_yaml(name: &str, selector: &str, secret: &str) -> String {
    format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiTokenVerifier\nmetadata: {{name: {name}}}\nspec: {{selector: {selector}, secretName: {secret}}}\n"
    )
}

pub fn token_yaml(name: &str, labels: &str, spec: &str) -> String {
    format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}, labels: {{{labels}}}}}\nspec: {spec}\n"
    )
}

/// Applies ApiTokens `(name, labels, spec)` and the verifier `orders` (selecting `api: orders`,
/// key set `orders-keys`); returns the tokens' values in the same order.
pub async fn apply_orders(ns: &TestNs, tokens: &[(&str, &str, &str)]) -> Vec<String> {
    for (name, labels, spec) in tokens {
        ns.kubectl_apply(&token_yaml(name, labels, spec));
    }
    ns.kubectl_apply(&verifier_yaml(
        "orders",
        "{matchLabels: {api: orders}}",
        "orders-keys",
    ));
    let mut values = Vec::new();
    for (name, _, _) in tokens {
        values.push(ns.value_of(name).await);
    }
    values
}

/// `value` with its last checksum character changed: same shape, wrong checksum.
pub fn wrong_checksum(value: &str) -> String {
    let mut bad = value.to_owned();
    let last = bad.pop().expect("a value");
    bad.push(if last == 'A' { 'B' } else { 'A' });
    bad
}

impl TestNs {
    /// Fails if any of `values` appears anywhere in the key-set Secret `name`.
    pub async fn assert_keyset_clean(&self, name: &str, values: &[String]) {
        assert_no_plaintext(&self.secrets().get(name).await.unwrap(), values);
    }

    pub fn verifiers(&self) -> kube::Api<ApiTokenVerifier> {
        self.api()
    }

    /// `kubectl apply` as a user would; panics with kubectl's output when refused.
    pub fn kubectl_apply(&self, yaml: &str) {
        let (ok, out) = kubectl_apply(&self.name, yaml);
        assert!(ok, "kubectl apply failed:\n{out}");
    }

    /// The current value of an ApiToken's Secret (waits for it).
    pub async fn value_of(&self, secret: &str) -> String {
        eventually(&format!("a value in Secret {secret}"), TIMEOUT, || async {
            secret_value(&self.secrets().get(secret).await.ok()?, "token")
        })
        .await
    }

    /// The key-set document in Secret `name`, waiting until `check` holds.
    pub async fn wait_keyset<F>(&self, name: &str, what: &str, check: F) -> Document
    where
        F: Fn(&Document) -> bool,
    {
        eventually(what, TIMEOUT, || async {
            let doc = keyset_document(&self.secrets().get(name).await.ok()?)?;
            check(&doc).then_some(doc)
        })
        .await
    }
}

pub fn keyset_document(secret: &Secret) -> Option<Document> {
    let name = format!("{}.keysets", secret.namespace().unwrap_or_default());
    keep_for_leak_check(&name, &serde_json::to_string(secret).unwrap());
    let bytes = secret.data.as_ref()?.get(KEYSET_FILE)?;
    Some(Document::parse(&bytes.0).expect("the key set is valid JSON"))
}

pub fn load(doc: &Document) -> KeySet {
    KeySet::from_document(doc.clone()).expect("the key set loads")
}

pub fn verdict(doc: &Document, value: &str, scopes: &[&str]) -> Verdict {
    load(doc).verify(value, scopes)
}

/// Entry names (`name@revision/state`) of a key set, in its order.
pub fn entries(doc: &Document) -> Vec<String> {
    doc.keys
        .iter()
        .map(|e| format!("{}@{}/{}", e.name, e.revision, e.state.as_str()))
        .collect()
}

/// Fails if any of `values` appears anywhere in the Secret: data, labels, annotations.
pub fn assert_no_plaintext(secret: &Secret, values: &[String]) {
    let mut texts: Vec<String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(&v.0)))
        .collect();
    texts.push(serde_json::to_string(&secret.metadata).unwrap());
    for value in values {
        assert!(
            !texts.iter().any(|t| t.contains(value.as_str())),
            "a token value appears in Secret {}",
            secret.name_any()
        );
    }
}

/// A tiny upstream on loopback that answers every request with the headers it received (JSON).
pub async fn start_upstream() -> SocketAddr {
    async fn echo(request: Request<Body>) -> String {
        let headers: serde_json::Map<String, serde_json::Value> = request
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("?").into()))
            .collect();
        serde_json::json!({"path": request.uri().path(), "headers": headers}).to_string()
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = axum::Router::new().fallback(echo);
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// The proxy binary as a host process; stdout (access log) and stderr go to files.
pub struct Proxy {
    child: Child,
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub access_log: PathBuf,
    pub log: PathBuf,
}

impl Proxy {
    /// Starts `apitoken-operator proxy` with `args` (besides --listen and --metrics-addr),
    /// optionally as another kubeconfig's identity, and waits until it listens.
    pub async fn start(ns: &TestNs, args: &[&str], kubeconfig: Option<PathBuf>) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
        std::fs::create_dir_all(&dir).unwrap();
        let access_log = dir.join(format!("{}.proxy-access.log", ns.name));
        let log = dir.join(format!("{}.proxy.log", ns.name));
        let mut command = Command::new(env!("CARGO_BIN_EXE_apitoken-operator"));
        command
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&access_log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        let child = command.spawn().expect("start the proxy");
        let addr_of = |message: &str, field: &str| -> Option<SocketAddr> {
            let text = std::fs::read_to_string(&log).ok()?;
            text.lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message"] == message)?[field]
                .as_str()?
                .parse()
                .ok()
        };
        let (addr, metrics) = eventually("the proxy to listen", TIMEOUT, || async {
            Some((
                addr_of("proxy listening", "listen")?,
                addr_of("serving metrics", "metrics_addr")?,
            ))
        })
        .await;
        Self {
            child,
            addr,
            metrics,
            access_log,
            log,
        }
    }

    /// Access log lines, parsed.
    pub fn access_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.access_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("each access log line is JSON"))
            .collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1 client for loopback requests.
pub struct Http(HttpClient<HttpConnector, Body>);

impl Http {
    pub fn new() -> Self {
        Self(HttpClient::builder(TokioExecutor::new()).build(HttpConnector::new()))
    }

    /// GET `path` on `addr` with the given headers; returns status, headers and body text.
    pub async fn get(
        &self,
        addr: SocketAddr,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = Request::get(format!("http://{addr}{path}"));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self
            .0
            .request(request.body(Body::empty()).unwrap())
            .await
            .expect("request to a loopback server");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(Body::new(body), 1 << 20)
            .await
            .unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// Like [`Http::get`] of `/` with `key`, but a connection or protocol error is returned.
    pub async fn try_status_with_key(
        &self,
        addr: SocketAddr,
        key: &str,
    ) -> Result<StatusCode, String> {
        let request = Request::get(format!("http://{addr}/"))
            .header("x-api-key", key)
            .body(Body::empty())
            .unwrap();
        self.0
            .request(request)
            .await
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    }

    pub async fn status_with_key(&self, addr: SocketAddr, key: &str) -> StatusCode {
        self.get(addr, "/", &[("x-api-key", key)]).await.0
    }
}
