//! The operator under test: the release binary as a host process watching the bench namespaces,
//! with its log in the output directory and its /metrics on a loopback port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub struct Operator {
    child: Child,
    log: PathBuf,
    offset: usize,
    pub metrics: std::net::SocketAddr,
}

impl Operator {
    pub async fn start(
        bin: &Path,
        namespaces: &[String],
        workers: u16,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let offset = std::fs::metadata(log).map_or(0, |m| m.len() as usize);
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let child = Command::new(bin)
            .args([
                "run",
                "--log-format",
                "json",
                "--metrics-addr",
                "127.0.0.1:0",
            ])
            .args(["--workers", &workers.to_string()])
            .args(["--namespace", &namespaces.join(",")])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let mut waited = 0;
        let metrics = loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let found = text.get(offset..).unwrap_or("").lines().find_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).ok()?;
                (v["message"] == "serving metrics")
                    .then(|| v["metrics_addr"].as_str()?.parse().ok())?
            });
            if let Some(addr) = found {
                break addr;
            }
            anyhow::ensure!(
                waited < 300,
                "the operator did not start (see {})",
                log.display()
            );
            waited += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Ok(Self {
            child,
            log: log.to_owned(),
            offset,
            metrics,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops with SIGTERM and waits.
    pub fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        self.child.wait()?;
        Ok(())
    }

    /// One sample of the operator's own metrics (summed over labels).
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        self.metric_where(name, "").await
    }

    /// The sum of the series of metric `name` whose line contains `labels` (e.g. `verb="get"`).
    pub async fn metric_where(&self, name: &str, labels: &str) -> anyhow::Result<f64> {
        let mut stream = tokio::net::TcpStream::connect(self.metrics).await?;
        stream
            .write_all(
                format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.metrics).as_bytes(),
            )
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        Ok(text
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// GET requests this operator process sent (its `apitoken_api_reads_total`), every resource.
    pub async fn own_gets(&self) -> anyhow::Result<f64> {
        self.metric_where("apitoken_api_reads_total", "verb=\"get\"")
            .await
    }

    /// Log lines at WARN or ERROR since this process started.
    pub fn warnings(&self) -> usize {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.get(self.offset..)
            .unwrap_or("")
            .lines()
            .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
            .count()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
