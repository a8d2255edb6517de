//! Scenarios on tokens that exist: idle, restart, rotation (all at once), rotation lateness on
//! a schedule, revocation from the key set, and memory with unrelated Secrets around.

use std::path::Path;
use std::time::{Duration, Instant};

use apitoken_operator::api::ApiToken;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde_json::json;

use crate::Report;
use crate::counters::{self, Requests};
use crate::objects::{each, issued_event, secret, spread, token};
use crate::operator::Operator;
use crate::watch::{Tracker, percentiles};

/// Scenario 4: nothing changes for `secs`: the operator's requests and CPU seconds.
pub async fn idle(client: &Client, op: &Operator, secs: u64, r: &mut Report) -> anyhow::Result<()> {
    let before = counters::apiserver_requests(client).await?;
    let (_, cpu0) = counters::proc_stats(op.pid());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let after = counters::apiserver_requests(client).await?;
    let (_, cpu1) = counters::proc_stats(op.pid());
    let d = counters::delta(&before, &after, &Requests::new());
    let (reads, writes) = counters::reads_writes(&d);
    r.row(
        "idle",
        &format!("requests in {secs} s (GET + writes)"),
        reads + writes,
    );
    r.row("idle", &format!("CPU seconds in {secs} s"), cpu1 - cpu0);
    r.text(
        "idle",
        "requests by verb and resource (any client)",
        counters::describe(&d, 1.0),
    );
    Ok(())
}

/// Scenario 6: a restarted operator with `n` tokens and nothing due: time until it has
/// reconciled every token once, and its reads and writes.
pub async fn restart<F, Fut>(
    client: &Client,
    op: Operator,
    start: F,
    n: usize,
    label: &str,
    r: &mut Report,
) -> anyhow::Result<Operator>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Operator>>,
{
    op.stop()?;
    let before = counters::apiserver_requests(client).await?;
    let t0 = Instant::now();
    let op = start().await?;
    loop {
        if op
            .metric("apitoken_reconcile_duration_seconds_count")
            .await?
            >= n as f64
        {
            break;
        }
        anyhow::ensure!(
            t0.elapsed() < Duration::from_secs(3600),
            "restart did not finish"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let looked = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = counters::apiserver_requests(client).await?;
    let d = counters::delta(&before, &after, &Requests::new());
    let (reads, writes) = counters::reads_writes(&d);
    r.row(label, "start to every token reconciled (s)", looked);
    r.row(label, "reads (GET)", reads);
    // The API server also counts other clients' reads (the garbage collector checks owners).
    r.row(label, "the operator's own GETs", op.own_gets().await?);
    r.row(label, "writes", writes);
    r.text(
        label,
        "requests by verb and resource",
        counters::describe(&d, 1.0),
    );
    let (rss, _) = counters::proc_stats(op.pid());
    r.row(label, "peak RSS after reconciling every token (MiB)", rss);
    Ok(op)
}

/// Scenario 3 (rotation) and 7 (all due at once): a rotate request on every token at once; time
/// until all are Ready at revision 2, requests per rotation, 429s and operator warnings.
pub async fn rotate_all(
    client: &Client,
    ns: &[String],
    n: usize,
    concurrency: usize,
    op: &Operator,
    tracker: &Tracker,
    r: &mut Report,
) -> anyhow::Result<()> {
    let before = counters::apiserver_requests(client).await?;
    let throttled = counters::throttled(client).await?;
    let errors = op.metric("apitoken_reconcile_errors_total").await?;
    let start = Instant::now();
    let rotate_all = async {
        each(spread(n, ns), concurrency, |(ns, i)| async move {
            let api: Api<ApiToken> = Api::namespaced(client.clone(), &ns);
            let patch = json!({"metadata": {"annotations": {"apitoken.dev/rotate": "bench-1"}}});
            api.patch(
                &format!("tok-{i}"),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
            Ok(())
        })
        .await?;
        tracker.wait_ready(n, 2, Duration::from_secs(3600)).await
    };
    let (_, [api_cpu, etcd_cpu, op_cpu]) = timed_cpu(op, rotate_all).await?;
    let total = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = counters::apiserver_requests(client).await?;
    let mut own = Requests::new();
    own.insert(("PATCH".into(), "apitokens".into()), n as f64);
    let d = counters::delta(&before, &after, &own);
    let (reads, writes) = counters::reads_writes(&d);
    r.row(
        "rotation",
        "N rotations requested at once, all done (s)",
        total,
    );
    // Which process the rotations wait for: a control plane near all of the machine's cores
    // is the limit, not the operator.
    r.row("rotation", "CPU (s) during it: kube-apiserver", api_cpu);
    r.row("rotation", "CPU (s) during it: etcd", etcd_cpu);
    r.row("rotation", "CPU (s) during it: operator", op_cpu);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    r.row(
        "rotation",
        "kube-apiserver + etcd, share of all cores",
        (api_cpu + etcd_cpu) / (total * cores),
    );
    r.row("rotation", "reads (GET) per rotation", reads / n as f64);
    r.row("rotation", "writes per rotation", writes / n as f64);
    r.text(
        "rotation",
        "per rotation, by verb and resource",
        counters::describe(&d, n as f64),
    );
    r.row(
        "rotation",
        "429 answers",
        counters::throttled(client).await? - throttled,
    );
    r.row(
        "rotation",
        "reconcile errors",
        op.metric("apitoken_reconcile_errors_total").await? - errors,
    );
    r.row(
        "rotation",
        "operator warnings and errors logged",
        op.warnings() as f64,
    );
    Ok(())
}

/// Scenario 7 (lateness): `m` tokens with `every: 1m` for `secs`: observed rotation time minus
/// the nextRotationAt status announced, over every rotation seen.
pub async fn lateness(
    client: &Client,
    ns: &str,
    m: usize,
    secs: u64,
    tracker: &Tracker,
    r: &mut Report,
) -> anyhow::Result<()> {
    each((0..m).collect(), 32, |i| async move {
        let api: Api<ApiToken> = Api::namespaced(client.clone(), ns);
        api.create(
            &PostParams::default(),
            &token(
                &format!("late-{i}"),
                "lateness",
                json!({"rotation": {"every": "1m"}}),
            ),
        )
        .await?;
        Ok(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let mut late = Vec::new();
    for seen in tracker.snapshot().values() {
        for (revision, (_, at)) in &seen.ready {
            if let Some(due) = seen.next_rotation.get(&(revision - 1)) {
                late.push(at.duration_since(*due).as_secs_f64() * 1000.0);
            }
        }
    }
    let count = late.len();
    let (p50, p99, max) = percentiles(&mut late);
    r.row(
        "lateness",
        &format!("rotations seen in {secs} s ({m} tokens, every 1m)"),
        count as f64,
    );
    r.row("lateness", "seen Ready minus due p50 (ms)", p50);
    r.row("lateness", "seen Ready minus due p99 (ms)", p99);
    r.row("lateness", "seen Ready minus due max (ms)", max);
    Ok(())
}

/// Scenario 9: a verifier over the tokens of `ns`; `k` of them deleted one by one, each timed
/// from the delete call until the key-set Secret no longer lists it (watch events).
pub async fn revocation(
    client: &Client,
    ns: &str,
    names: &[String],
    r: &mut Report,
) -> anyhow::Result<()> {
    let yaml = json!({"apiVersion": "apitoken.dev/v1alpha1", "kind": "ApiTokenVerifier",
        "metadata": {"name": "bench"}, "spec": {"selector": {"matchLabels": {"api": "bench"}}, "secretName": "bench-keyset"}});
    let verifiers: Api<apitoken_operator::verifier::api::ApiTokenVerifier> =
        Api::namespaced(client.clone(), ns);
    verifiers
        .create(&PostParams::default(), &serde_json::from_value(yaml)?)
        .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let listed = |s: &Secret, name: &str| {
        s.data
            .as_ref()
            .and_then(|d| d.get("keyset.json"))
            .is_some_and(|b| {
                String::from_utf8_lossy(&b.0).contains(&format!("\"name\":\"{name}\""))
            })
    };
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), ns);
    let mut ms = Vec::new();
    for name in names {
        let config = watcher::Config::default().fields("metadata.name=bench-keyset");
        let mut stream = watcher(secrets.clone(), config)
            .default_backoff()
            .applied_objects()
            .boxed();
        // Until the key set lists the token.
        loop {
            match tokio::time::timeout(Duration::from_secs(120), stream.next()).await? {
                Some(Ok(s)) if listed(&s, name) => break,
                Some(_) => {}
                None => anyhow::bail!("the key-set watch ended"),
            }
        }
        let start = Instant::now();
        tokens.delete(name, &DeleteParams::default()).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(120), stream.next()).await? {
                Some(Ok(s)) if !listed(&s, name) => break,
                Some(_) => {}
                None => anyhow::bail!("the key-set watch ended"),
            }
        }
        ms.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    let (p50, p99, max) = percentiles(&mut ms);
    r.row(
        "revocation",
        &format!("delete to hash gone, {} trials, p50 (ms)", names.len()),
        p50,
    );
    r.row("revocation", "p99 (ms)", p99);
    r.row("revocation", "max (ms)", max);
    Ok(())
}

/// Scenario 5 (second half): `count` unrelated Secrets of 4 KiB spread over the watched
/// namespaces (the operator watches every Secret there), created before the operator restarts.
pub async fn unrelated(client: &Client, ns: &[String], count: usize) -> anyhow::Result<()> {
    crate::objects::create_secrets(client, ns, count, 32, ("other", "unrelated", 4096)).await
}

pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(path.parent().unwrap())?;
    std::fs::write(path, text)?;
    Ok(())
}

/// Issue 13's teardown: N ApiTokens issued in namespaces of their own (`down`, watched by the
/// operator) and deleted with them, operator running, against as many namespaces holding N plain
/// Secrets; refused (403) writes counted.
pub async fn teardown(
    client: &Client,
    op: &Operator,
    down: &[String],
    n: usize,
    r: &mut Report,
) -> anyhow::Result<()> {
    crate::objects::ensure_namespaces(client, down).await?;
    let tracker = Tracker::start(client.clone(), "bench=teardown");
    each(spread(n, down), 32, |(ns, i)| async move {
        let api: Api<ApiToken> = Api::namespaced(client.clone(), &ns);
        let t = token(&format!("tok-{i}"), "teardown", json!({}));
        api.create(&PostParams::default(), &t).await?;
        Ok(())
    })
    .await?;
    tracker.wait_ready(n, 1, Duration::from_secs(3600)).await?;
    let bench = down;
    let plain: Vec<String> = (0..bench.len()).map(|i| format!("plain-{i}")).collect();
    crate::objects::ensure_namespaces(client, &plain).await?;
    crate::objects::create_secrets(client, &plain, n, 32, ("tok", "plain", 48)).await?;
    let secrets = delete_namespaces(client, &plain).await?;
    // The same objects (ApiTokens, their Secrets, one Event each) in namespaces the operator does
    // not watch: what deleting them costs the API server alone.
    let same: Vec<String> = (0..bench.len()).map(|i| format!("same-{i}")).collect();
    crate::objects::ensure_namespaces(client, &same).await?;
    each(spread(n, &same), 32, |(ns, i)| async move {
        let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &ns);
        let t = token(&format!("tok-{i}"), "same", json!({}));
        let t = tokens.create(&PostParams::default(), &t).await?;
        let mut s = secret(&format!("tok-{i}"), "same", 48);
        s.metadata.owner_references = Some(vec![t.controller_owner_ref(&()).unwrap()]);
        Api::<Secret>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &s)
            .await?;
        Api::<Event>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &issued_event(&t))
            .await?;
        Ok(())
    })
    .await?;
    let (same, same_cpu) = timed_cpu(op, delete_namespaces(client, &same)).await?;
    let refused_before = counters::refused(client).await?;
    let (tokens, tokens_cpu) = timed_cpu(op, delete_namespaces(client, bench)).await?;
    let refused = counters::refused(client).await? - refused_before;
    r.row(
        "teardown",
        "namespaces of N plain Secrets deleted (s)",
        secrets,
    );
    r.row(
        "teardown",
        "namespaces of N ApiTokens deleted, operator running (s)",
        tokens,
    );
    r.row(
        "teardown",
        "namespaces of the same objects without the operator (s)",
        same,
    );
    r.row("teardown", "ApiTokens / plain Secrets", tokens / secrets);
    r.row(
        "teardown",
        "ApiTokens / the same objects alone",
        tokens / same,
    );
    r.row("teardown", "refused (403) requests during it", refused);
    for (case, [api, etcd, operator]) in [
        ("operator running", tokens_cpu),
        ("same objects alone", same_cpu),
    ] {
        r.row("teardown", &format!("CPU (s), {case}: kube-apiserver"), api);
        r.row("teardown", &format!("CPU (s), {case}: etcd"), etcd);
        r.row("teardown", &format!("CPU (s), {case}: operator"), operator);
    }
    Ok(())
}

/// The result of `work`, and the CPU seconds kube-apiserver, etcd and the operator used while it
/// ran.
async fn timed_cpu<T>(
    op: &Operator,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, [f64; 3])> {
    let cpu = || {
        [
            counters::cpu_of("kube-apiserver"),
            counters::cpu_of("etcd"),
            counters::proc_stats(op.pid()).1,
        ]
    };
    let before = cpu();
    let done = work.await?;
    let after = cpu();
    Ok((done, std::array::from_fn(|i| after[i] - before[i])))
}

/// Deletes `names` and waits until all are gone; returns the seconds it took.
async fn delete_namespaces(client: &Client, names: &[String]) -> anyhow::Result<f64> {
    use k8s_openapi::api::core::v1::Namespace;
    let api: Api<Namespace> = Api::all(client.clone());
    let start = Instant::now();
    for name in names {
        api.delete(name, &DeleteParams::default()).await?;
    }
    for name in names {
        while api.get_opt(name).await?.is_some() {
            anyhow::ensure!(
                start.elapsed() < Duration::from_secs(3600),
                "namespace {name} not gone"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(start.elapsed().as_secs_f64())
}
