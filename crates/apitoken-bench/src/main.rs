//! `make bench`: the operator against the API server's own floor on the local control plane.
//! Timing comes from watch events; requests are counted by the API server
//! (`apiserver_request_total`); memory and CPU from /proc. Results: `results.md` and
//! `results.json` in `--out`. Nothing here asserts a speed.

mod counters;
mod life;
mod objects;
mod operator;
mod watch;
mod write;

use std::path::PathBuf;

use clap::Parser;
use kube::Client;

#[derive(Parser)]
struct Args {
    /// ApiTokens, spread over 10 namespaces.
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// Comma-separated: admission, floor, converge, idle, restart, rotation, revocation,
    /// unrelated, lateness, teardown; or all. Converge always runs (the others need its tokens).
    #[arg(long, default_value = "all")]
    scenarios: String,
    /// The operator binary (a release build).
    #[arg(long)]
    operator: PathBuf,
    /// Where results.md, results.json and operator.log go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The operator's --workers, and the floor's concurrency.
    #[arg(long, default_value_t = 8)]
    workers: u16,
    /// Creates and patches the bench sends at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 300)]
    idle_secs: u64,
    #[arg(long, default_value_t = 300)]
    lateness_secs: u64,
    /// Tokens in the lateness scenario (at most N).
    #[arg(long, default_value_t = 1000)]
    lateness_tokens: usize,
    #[arg(long, default_value_t = 50_000)]
    unrelated_secrets: usize,
    #[arg(long, default_value_t = 50)]
    revocation_trials: usize,
}

/// Result rows: (scenario, what, value) and (scenario, what, text).
#[derive(Default)]
pub struct Report {
    rows: Vec<(String, String, serde_json::Value)>,
}

impl Report {
    pub fn row(&mut self, scenario: &str, what: &str, value: f64) {
        let value = (value * 1000.0).round() / 1000.0 + 0.0; // + 0.0: no "-0"
        println!("{scenario:<11} {what:<55} {value}");
        self.rows.push((scenario.into(), what.into(), value.into()));
    }

    pub fn text(&mut self, scenario: &str, what: &str, text: String) {
        println!("{scenario:<11} {what:<55} {text}");
        self.rows.push((scenario.into(), what.into(), text.into()));
    }

    fn markdown(&self, title: &str) -> String {
        let mut out = format!("{title}\n\n| scenario | what | value |\n|---|---|---|\n");
        for (s, w, v) in &self.rows {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            out += &format!("| {s} | {w} | {v} |\n");
        }
        out
    }

    fn json(&self, meta: serde_json::Value) -> String {
        let rows: Vec<_> = self
            .rows
            .iter()
            .map(|(s, w, v)| serde_json::json!({"scenario": s, "what": w, "value": v}))
            .collect();
        serde_json::to_string_pretty(&serde_json::json!({"meta": meta, "results": rows})).unwrap()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let want = |s: &str| args.scenarios == "all" || args.scenarios.split(',').any(|x| x == s);
    let client = Client::try_default().await?;
    let bench: Vec<String> = (0..10).map(|i| format!("bench-{i}")).collect();
    let floor: Vec<String> = (0..10).map(|i| format!("floor-{i}")).collect();
    objects::install_crds(&client).await?;
    objects::ensure_namespaces(&client, &bench).await?;
    objects::ensure_namespaces(&client, &floor).await?;
    objects::ensure_namespaces(&client, &["lateness".to_owned()]).await?;
    let mut r = Report::default();
    let n = args.n;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = jiff::Timestamp::now();

    if want("admission") || want("floor") {
        write::admission(&client, &floor, n, args.concurrency, &mut r).await?;
    }
    let floor_time = if want("floor") {
        Some(write::floor(&client, &floor, n, args.workers.into(), &mut r).await?)
    } else {
        None
    };

    std::fs::create_dir_all(&args.out)?;
    let log = args.out.join("operator.log");
    let _ = std::fs::remove_file(&log);
    let down: Vec<String> = (0..10).map(|i| format!("down-{i}")).collect();
    let mut watched = bench.clone();
    watched.push("lateness".into());
    watched.extend(down.iter().cloned());
    let start = || operator::Operator::start(&args.operator, &watched, args.workers, &log);
    let mut op = start().await?;
    let tracker = watch::Tracker::start(client.clone(), "bench=converge");
    let converge =
        write::converge(&client, &bench, n, args.concurrency, &op, &tracker, &mut r).await?;
    if let Some(floor) = floor_time {
        r.row("converge", "operator time / floor time", converge / floor);
    }
    if want("idle") {
        life::idle(&client, &op, args.idle_secs, &mut r).await?;
    }
    if want("restart") {
        op = life::restart(&client, op, start, n, "restart", &mut r).await?;
    }
    if want("rotation") {
        life::rotate_all(&client, &bench, n, args.concurrency, &op, &tracker, &mut r).await?;
    }
    if want("revocation") {
        let names: Vec<String> = (0..args.revocation_trials.min(n / 10))
            .map(|k| format!("tok-{}", k * 10))
            .collect();
        life::revocation(&client, &bench[0], &names, &mut r).await?;
    }
    if want("unrelated") {
        life::unrelated(&client, &bench, args.unrelated_secrets).await?;
        let tokens = n;
        let label = "unrelated";
        r.text(
            label,
            "unrelated Secrets of 4 KiB in the watched namespaces",
            args.unrelated_secrets.to_string(),
        );
        op = life::restart(&client, op, start, tokens, label, &mut r).await?;
    }
    if want("lateness") {
        let late = watch::Tracker::start(client.clone(), "bench=lateness");
        let m = args.lateness_tokens.min(n);
        life::lateness(&client, "lateness", m, args.lateness_secs, &late, &mut r).await?;
    }
    if want("teardown") {
        life::teardown(&client, &op, &down, n, &mut r).await?;
    }
    op.stop()?;

    let meta = serde_json::json!({"n": n, "workers": args.workers, "concurrency": args.concurrency,
        "started": started.to_string(), "loadavg_at_start": load.trim(), "cores": std::thread::available_parallelism()?.get()});
    let title = format!(
        "# make bench N={n} ({started}; load at start {})",
        load.trim()
    );
    life::write_file(&args.out.join("results.md"), &r.markdown(&title))?;
    life::write_file(&args.out.join("results.json"), &r.json(meta))?;
    println!("bench: results in {}", args.out.display());
    Ok(())
}
