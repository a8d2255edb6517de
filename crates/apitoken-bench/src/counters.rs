//! What the API server counted (`apiserver_request_total`, by verb and resource) and what the
//! operator process used (/proc: peak RSS, CPU seconds; its own /metrics).

use std::collections::BTreeMap;

use kube::Client;

/// Requests by (verb, resource[/subresource]) for the resources the operator touches.
pub type Requests = BTreeMap<(String, String), f64>;

const RESOURCES: [&str; 5] = [
    "apitokens",
    "apitokenverifiers",
    "secrets",
    "events",
    "namespaces",
];

fn labels(line: &str) -> BTreeMap<&str, &str> {
    let inner = line
        .split_once('{')
        .and_then(|(_, rest)| rest.rsplit_once('}'))
        .map_or("", |(l, _)| l);
    inner
        .split("\",")
        .filter_map(|kv| kv.split_once("=\""))
        .map(|(k, v)| (k.trim_start_matches(','), v.trim_end_matches('"')))
        .collect()
}

pub async fn apiserver_requests(client: &Client) -> anyhow::Result<Requests> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    let mut out = Requests::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let l = labels(line);
        let resource = l.get("resource").copied().unwrap_or("");
        if !RESOURCES.contains(&resource) {
            continue;
        }
        let sub = l.get("subresource").copied().unwrap_or("");
        let name = if sub.is_empty() {
            resource.to_owned()
        } else {
            format!("{resource}/{sub}")
        };
        let verb = l.get("verb").copied().unwrap_or("").to_owned();
        let value: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *out.entry((verb, name)).or_default() += value;
    }
    Ok(out)
}

/// 429s counted by the API server (any resource).
pub async fn throttled(client: &Client) -> anyhow::Result<f64> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("code=\"429\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// 403 answers counted by the API server for the resources the operator touches.
pub async fn refused(client: &Client) -> anyhow::Result<f64> {
    let req = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(req).await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("code=\"403\""))
        .filter(|l| {
            RESOURCES
                .iter()
                .any(|r| l.contains(&format!("resource=\"{r}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}

/// `after - before`, without the zero rows and without what the bench itself sent (`own`).
pub fn delta(before: &Requests, after: &Requests, own: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| {
            let d = v - before.get(k).unwrap_or(&0.0) - own.get(k).unwrap_or(&0.0);
            (k.clone(), d)
        })
        .filter(|(_, d)| d.abs() > 0.5)
        .collect()
}

pub fn is_write(verb: &str) -> bool {
    matches!(
        verb,
        "POST" | "PUT" | "PATCH" | "DELETE" | "APPLY" | "CREATE" | "UPDATE"
    )
}

/// (reads, writes) in `d`, watches and lists excluded from reads (they are the caches).
pub fn reads_writes(d: &Requests) -> (f64, f64) {
    let writes = d
        .iter()
        .filter(|((v, _), _)| is_write(v))
        .map(|(_, n)| n)
        .sum();
    let reads = d
        .iter()
        .filter(|((v, _), _)| v == "GET")
        .map(|(_, n)| n)
        .sum();
    (reads, writes)
}

pub fn describe(d: &Requests, per: f64) -> String {
    d.iter()
        .map(|((verb, res), n)| format!("{verb} {res} {:.2}", n / per))
        .collect::<Vec<_>>()
        .join(", ")
}

/// (peak RSS in MiB, CPU seconds) of process `pid`.
pub fn proc_stats(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm_kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the command name: state is field 0; utime 11, stime 12 (clock ticks, 100 per second).
    (hwm_kib / 1024.0, (ticks(11) + ticks(12)) / 100.0)
}

/// CPU seconds used so far by the processes named `comm` (e.g. `kube-apiserver`, `etcd`): the
/// control plane runs on this machine, so where a scenario's time goes can be told apart.
pub fn cpu_of(comm: &str) -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
        })
        .map(|pid| proc_stats(pid).1)
        .sum()
}
