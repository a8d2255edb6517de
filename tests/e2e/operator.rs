//! The operator binary as a child process of a test: start, stop (SIGTERM), kill (SIGKILL),
//! its JSON log, and its HTTP endpoints (/metrics, /healthz, /readyz).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{TIMEOUT, TestNs, eventually, keep_for_leak_check};

/// The operator binary as a child process, logging JSON at debug level to a file and serving
/// metrics on a free loopback port (read from its "serving metrics" log line).
pub struct Operator {
    child: Option<Child>,
    pub log: PathBuf,
    /// Its POD_NAME (Events' reportingInstance, the Lease holder's prefix) and log file name.
    pub name: String,
    /// Arguments after `run` for the next [`Operator::spawn`] (e.g. `--workers`).
    pub args: Vec<String>,
    /// Extra environment for the next [`Operator::spawn`] (e.g. a failpoint).
    pub env: Vec<(String, String)>,
    /// The operator binary: this build, or another release's (upgrade tests).
    pub bin: PathBuf,
    /// Where the current process's log starts.
    started_at: usize,
}

impl Operator {
    /// Watching only the test's namespace.
    pub fn start(ns: &TestNs) -> Self {
        Self::launch(&ns.name, &["--namespace", &ns.name], &[])
    }

    /// Watching only the test's namespace, with the credentials in `kubeconfig` instead of the
    /// admin's (e.g. the chart's ServiceAccount).
    pub fn start_as(ns: &TestNs, kubeconfig: PathBuf) -> Self {
        let kubeconfig = kubeconfig.to_str().expect("a UTF-8 path").to_owned();
        Self::launch(
            &ns.name,
            &["--namespace", &ns.name],
            &[("KUBECONFIG", &kubeconfig)],
        )
    }

    /// Starts `bin` instead of this build (e.g. the previous release, for upgrade tests).
    pub fn start_binary(ns: &TestNs, bin: PathBuf) -> Self {
        let mut op = Self::new(&ns.name, &["--namespace", &ns.name], &[]);
        op.bin = bin;
        op.spawn();
        op
    }

    /// `args` follow `run`; `env` is added to the inherited environment.
    pub fn launch(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut op = Self::new(name, args, env);
        op.spawn();
        op
    }

    fn new(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            child: None,
            log: dir.join(format!("{name}.log")),
            name: name.to_owned(),
            args: args.iter().map(|a| a.to_string()).collect(),
            bin: env!("CARGO_BIN_EXE_apitoken-operator").into(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            started_at: 0,
        }
    }

    /// Starts the process (again, after [`Operator::stop`]).
    pub fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.started_at = self.logs().len();
        let mut command = Command::new(&self.bin);
        command
            .arg("run")
            .args(&self.args)
            .args(["--log-format", "json"]);
        if self.bin == Path::new(env!("CARGO_BIN_EXE_apitoken-operator")) {
            // This build serves metrics; an older release may not know the flag.
            command.args(["--metrics-addr", "127.0.0.1:0"]);
        }
        let child = command
            .env(
                "RUST_LOG",
                std::env::var("E2E_RUST_LOG").unwrap_or_else(|_| "debug".into()),
            )
            .env("POD_NAME", &self.name)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start operator");
        self.child = Some(child);
    }

    /// Stops with SIGTERM, as Kubernetes would, and returns how the process exited (killed
    /// after 10 s if it ignores the signal).
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        if let Some(exit) = child.try_wait().unwrap() {
            return Some(exit);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(exit) = child.try_wait().unwrap() {
                return Some(exit);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the process exits on its own (a failpoint), and returns how it exited.
    #[allow(dead_code)] // used by tests/faults
    pub async fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("operator running");
        eventually("the operator to exit", timeout, || {
            let exit = child.try_wait().unwrap();
            async move { exit }
        })
        .await
    }

    /// Kills with SIGKILL: no cleanup, no Lease release (a crashed node or OOM kill).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the operator");
            child.wait().unwrap();
        }
    }

    /// Pauses (SIGSTOP) or resumes (SIGCONT) the process: a stalled node or a long GC pause.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("a running operator");
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal}");
    }

    /// Whether the process has exited by itself.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Log written after `offset` (from [`Operator::line_offset`] or [`Operator::quiet_offset`]).
    pub fn logs_since(&self, offset: usize) -> String {
        self.logs().get(offset..).unwrap_or_default().to_owned()
    }

    /// The end of the last complete log line, so a line being written is never cut in two.
    pub fn line_offset(&self) -> usize {
        self.logs().rfind('\n').map_or(0, |i| i + 1)
    }

    /// Waits until the operator has finished reconciling (no new reconcile for 3 s, at most
    /// 30 s) and returns the offset to look for later activity from.
    pub async fn quiet_offset(&self) -> usize {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let offset = self.line_offset();
            tokio::time::sleep(Duration::from_secs(3)).await;
            if !self.logs_since(offset).contains("\"reconciled\"") || Instant::now() > deadline {
                return self.line_offset();
            }
        }
    }

    /// Parsed JSON log lines for a tracing target such as `audit`.
    pub fn json_lines(&self, target: &str) -> Vec<serde_json::Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == target)
            .collect()
    }

    /// The address the current process serves metrics on (waits for its log line).
    pub async fn metrics_addr(&self) -> std::net::SocketAddr {
        eventually("the operator to serve metrics", TIMEOUT, || async {
            self.logs_since(self.started_at)
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|v| v["message"] == "serving metrics")
                .and_then(|v| v["metrics_addr"].as_str()?.parse().ok())
        })
        .await
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Operator {
    /// GETs `path` from the metrics port: (status code, body).
    pub async fn http_get(&self, path: &str) -> (u16, String) {
        let addr = self.metrics_addr().await;
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the metrics port");
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        let code = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .expect("a status code");
        (code, body.to_owned())
    }

    /// The metrics, parsed.
    pub async fn scrape(&self) -> Scrape {
        let (code, text) = self.http_get("/metrics").await;
        assert_eq!(code, 200, "{text}");
        keep_for_leak_check(&format!("{}.metrics", self.name), &text);
        Scrape::parse(&text)
    }
}

/// One sample of the OpenMetrics text: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed /metrics response (label values here never contain `,` or `"`).
#[derive(Debug, Clone)]
pub struct Scrape {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Scrape {
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|line| {
                let (series, value) = line.rsplit_once(' ').expect("name and value");
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                let labels = labels
                    .split(',')
                    .filter(|kv| !kv.is_empty())
                    .map(|kv| {
                        let (k, v) = kv.split_once('=').expect("label=value");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                Sample {
                    name: name.to_owned(),
                    labels,
                    value: value.parse().expect("a number"),
                }
            })
            .collect();
        Self {
            text: text.to_owned(),
            samples,
        }
    }

    /// The value of the series `name` with exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
    }

    /// All series of `name`.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// `apitoken_api_writes_total` as {(resource, verb): count}.
    pub fn writes(&self) -> BTreeMap<(String, String), f64> {
        self.series("apitoken_api_writes_total")
            .into_iter()
            .map(|s| {
                (
                    (s.labels["resource"].clone(), s.labels["verb"].clone()),
                    s.value,
                )
            })
            .collect()
    }
}
