//! Scenarios that create: admission cost (ApiTokens against Secrets of a similar size, the
//! operator not watching), the floor (the operator's writes for each token, done by a plain
//! client with the operator's concurrency), and converge (the operator issuing N new tokens).

use std::time::Instant;

use apitoken_operator::api::ApiToken;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, Resource};
use serde_json::json;

use crate::Report;
use crate::counters::{self, Requests};
use crate::objects::{each, issued_event, secret, spread, token};
use crate::operator::Operator;
use crate::watch::{Tracker, percentiles};

/// Scenario 8: N Secrets, then N ApiTokens (minimal spec), created with `concurrency`.
pub async fn admission(
    client: &Client,
    ns: &[String],
    n: usize,
    concurrency: usize,
    r: &mut Report,
) -> anyhow::Result<()> {
    let start = Instant::now();
    crate::objects::create_secrets(client, ns, n, concurrency, ("adm", "admission", 48)).await?;
    let secrets = start.elapsed().as_secs_f64();
    let start = Instant::now();
    each(spread(n, ns), concurrency, |(ns, i)| async move {
        let api: Api<ApiToken> = Api::namespaced(client.clone(), &ns);
        let spec =
            json!({"rotation": {"every": "720h", "gracePeriod": "10m"}, "scopes": ["orders:read"]});
        api.create(
            &PostParams::default(),
            &token(&format!("adm-{i}"), "floor", spec),
        )
        .await?;
        Ok(())
    })
    .await?;
    let tokens = start.elapsed().as_secs_f64();
    r.row("admission", "N Secrets created (s)", secrets);
    r.row("admission", "N ApiTokens created (s)", tokens);
    r.row(
        "admission",
        "ApiToken / Secret create time",
        tokens / secrets,
    );
    r.row(
        "admission",
        "mean ApiToken create latency at that concurrency (ms)",
        tokens * 1000.0 / n as f64 * concurrency as f64,
    );
    Ok(())
}

/// Scenario 2: for each ApiToken `adm-i` the writes an issue costs the operator (deletionPolicy
/// Delete, so no finalizer): Secret create (shell), Secret apply, status apply, Event; `workers`
/// tokens at a time. The ApiTokens are listed first, as the operator has them in its cache.
pub async fn floor(
    client: &Client,
    ns: &[String],
    n: usize,
    workers: usize,
    r: &mut Report,
) -> anyhow::Result<f64> {
    let mut cached = std::collections::HashMap::new();
    for ns in ns {
        for t in Api::<ApiToken>::namespaced(client.clone(), ns)
            .list(&Default::default())
            .await?
        {
            cached.insert((ns.clone(), t.metadata.name.clone().unwrap_or_default()), t);
        }
    }
    let cached = &cached;
    let start = Instant::now();
    each(spread(n, ns), workers, |(ns, i)| async move {
        let name = format!("adm-{i}");
        let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &ns);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
        let events: Api<Event> = Api::namespaced(client.clone(), &ns);
        let t = cached.get(&(ns.clone(), name.clone())).ok_or_else(|| anyhow::anyhow!("{ns}/{name} not listed"))?;
        let mut shell = secret(&format!("fl-{i}"), "floor", 0);
        shell.string_data = None;
        shell.metadata.owner_references = Some(vec![t.controller_owner_ref(&()).unwrap()]);
        secrets.create(&PostParams::default(), &shell).await?;
        let apply = PatchParams::apply("apitoken-bench").force();
        let body = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": format!("fl-{i}"),
            "annotations": {"apitoken.dev/revision": "1", "apitoken.dev/fingerprint": "sha256:000000000000"}},
            "type": "Opaque", "stringData": {"token": "x".repeat(48)}});
        secrets.patch(&format!("fl-{i}"), &apply, &Patch::Apply(&body)).await?;
        let status = json!({"apiVersion": "apitoken.dev/v1alpha1", "kind": "ApiToken",
            "status": {"revision": 1, "fingerprint": "sha256:000000000000", "conditions": [{
                "type": "Ready", "status": "True", "reason": "Issued", "message": "revision 1 is current",
                "lastTransitionTime": "2026-11-22T10:00:00Z"}]}});
        tokens.patch_status(&name, &apply, &Patch::Apply(&status)).await?;
        events.create(&PostParams::default(), &issued_event(t)).await?;
        Ok(())
    })
    .await?;
    let total = start.elapsed().as_secs_f64();
    r.row(
        "floor",
        &format!("4 writes per token, {workers} at a time (s)"),
        total,
    );
    Ok(total)
}

/// Scenario 1 and 3 (issue): N new ApiTokens for the running operator; create-to-Ready per
/// token from watch events, and the API requests per issue counted by the API server.
pub async fn converge(
    client: &Client,
    ns: &[String],
    n: usize,
    concurrency: usize,
    op: &Operator,
    tracker: &Tracker,
    r: &mut Report,
) -> anyhow::Result<f64> {
    let before = counters::apiserver_requests(client).await?;
    let own_gets = op.own_gets().await?;
    let created = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashMap::new()));
    let start = Instant::now();
    each(spread(n, ns), concurrency, |(ns, i)| {
        let created = created.clone();
        async move {
            let api: Api<ApiToken> = Api::namespaced(client.clone(), &ns);
            let name = format!("tok-{i}");
            let spec = json!({"rotation": {"every": "720h", "gracePeriod": "10m"}, "scopes": ["orders:read"]});
            let sent = Instant::now();
            api.create(&PostParams::default(), &token(&name, "converge", spec)).await?;
            created.lock().unwrap().insert(format!("{ns}/{name}"), sent);
            Ok(())
        }
    })
    .await?;
    let ready = tracker
        .wait_ready(n, 1, std::time::Duration::from_secs(3600))
        .await?;
    let total = ready
        .iter()
        .map(|(_, t)| *t)
        .max()
        .unwrap()
        .duration_since(start)
        .as_secs_f64();
    let created = created.lock().unwrap().clone();
    let mut latencies: Vec<f64> = ready
        .iter()
        .filter_map(|(k, t)| Some(t.duration_since(*created.get(k)?).as_secs_f64() * 1000.0))
        .collect();
    let (p50, p99, max) = percentiles(&mut latencies);
    r.row("converge", "N tokens created to all Ready (s)", total);
    r.row("converge", "create-to-Ready p50 (ms)", p50);
    r.row("converge", "create-to-Ready p99 (ms)", p99);
    r.row("converge", "create-to-Ready max (ms)", max);
    // Settle, then count: the issue is done when the operator is quiet.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let after = counters::apiserver_requests(client).await?;
    let mut own = Requests::new();
    own.insert(("POST".into(), "apitokens".into()), n as f64);
    let d = counters::delta(&before, &after, &own);
    let (reads, writes) = counters::reads_writes(&d);
    r.row("cost", "reads (GET) per issue", reads / n as f64);
    let own_gets = op.own_gets().await? - own_gets;
    r.row(
        "cost",
        "the operator's own GETs per issue",
        own_gets / n as f64,
    );
    r.row("cost", "writes per issue", writes / n as f64);
    r.text(
        "cost",
        "per issue, by verb and resource",
        counters::describe(&d, n as f64),
    );
    let (rss, cpu) = counters::proc_stats(op.pid());
    r.row("memory", "peak RSS after converge (MiB)", rss);
    r.row("converge", "operator CPU during converge (s)", cpu);
    Ok(total)
}
