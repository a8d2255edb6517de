//! What one write of the operator costs the API server, by how it is sent: server-side apply
//! (what the operator does) against a JSON patch (status) or merge patch (Secret) of the same
//! change, one mode per run, 8 at a time, kube-apiserver and etcd CPU seconds from /proc (every
//! process of those names on the machine: run it where only the one control plane runs).
//!
//! Not part of `make bench`: it changes the tokens' status and values behind the operator's
//! back, so the operator must not run while it does. By hand, against a local control plane:
//!
//! ```sh
//! tests/cluster/cluster.sh up && eval "$(tests/cluster/cluster.sh env)"
//! kubectl apply -f crds/ && kubectl create namespace probe
//! for i in $(seq 0 999); do printf -- '---\napiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: t-%d, namespace: probe}\nspec: {rotation: {every: 720h}}\n' "$i"; done \
//!   | kubectl apply --server-side -f -
//! apitoken-operator run --namespace probe   # until all 1,000 are Ready, then Ctrl-C
//! cargo run --release -p apitoken-bench --example write_cost -- probe status-ssa
//! # modes: status-ssa, status-json, secret-ssa, secret-merge (alternate them, twice or more)
//! ```
use std::time::Instant;

use apitoken_operator::api::{ApiToken, FIELD_MANAGER};
use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

// The bench's own /proc reading (an example cannot import from the bench binary).
#[allow(dead_code)]
#[path = "../src/counters.rs"]
mod counters;
use counters::cpu_of as cpu;

async fn status_write(tokens: &Api<ApiToken>, token: ApiToken, apply: bool) -> kube::Result<()> {
    let mut status = serde_json::to_value(token.status.as_ref()).expect("a status");
    let revision = status["revision"].as_i64().unwrap_or(0) + 1;
    status["revision"] = json!(revision);
    status["fingerprint"] = json!(format!("sha256:{revision:012x}"));
    let rv = token.resource_version();
    if apply {
        let body = json!({
            "apiVersion": ApiToken::api_version(&()), "kind": ApiToken::kind(&()),
            "metadata": {"resourceVersion": rv}, "status": status,
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        tokens
            .patch_status(&token.name_any(), &params, &Patch::Apply(&body))
            .await?;
    } else {
        let patch = serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/status", "value": status},
        ]))
        .expect("a JSON patch");
        let params = PatchParams::default();
        tokens
            .patch_status(&token.name_any(), &params, &Patch::<()>::Json(patch))
            .await?;
    }
    Ok(())
}

async fn secret_write(secrets: &Api<Secret>, secret: Secret, apply: bool) -> kube::Result<()> {
    let mut data = secret.data.clone().unwrap_or_default();
    for value in data.values_mut() {
        value.0.iter_mut().for_each(|b| *b = b.wrapping_add(1));
    }
    let name = secret.name_any();
    if apply {
        let mut want = Secret {
            data: Some(data),
            type_: secret.type_.clone(),
            ..Secret::default()
        };
        want.metadata.name = Some(name.clone());
        want.metadata.labels = secret.metadata.labels.clone();
        want.metadata.annotations = secret.metadata.annotations.clone();
        want.metadata.owner_references = secret.metadata.owner_references.clone();
        want.metadata.resource_version = secret.metadata.resource_version.clone();
        let mut body = serde_json::to_value(&want).expect("a Secret");
        body["apiVersion"] = json!("v1");
        body["kind"] = json!("Secret");
        let params = PatchParams::apply(FIELD_MANAGER).force();
        secrets.patch(&name, &params, &Patch::Apply(&body)).await?;
    } else {
        let body = json!({
            "metadata": {"resourceVersion": secret.resource_version(),
                         "annotations": secret.metadata.annotations},
            "data": data,
        });
        secrets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(ns), Some(mode)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: write_cost NAMESPACE status-ssa|status-json|secret-ssa|secret-merge");
    };
    let client = Client::try_default().await?;
    let tokens: Api<ApiToken> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client, &ns);
    let listed_tokens = tokens.list(&ListParams::default()).await?.items;
    let ours = ListParams::default().labels(&apitoken_operator::secret_cache::selector(true));
    let listed_secrets = secrets.list(&ours).await?.items;
    let (api0, etcd0, start) = (cpu("kube-apiserver"), cpu("etcd"), Instant::now());
    let writes: Vec<_> = match mode.as_str() {
        "status-ssa" | "status-json" => (listed_tokens.into_iter())
            .map(|t| status_write(&tokens, t, mode == "status-ssa").boxed())
            .collect(),
        "secret-ssa" | "secret-merge" => (listed_secrets.into_iter())
            .map(|s| secret_write(&secrets, s, mode == "secret-ssa").boxed())
            .collect(),
        other => anyhow::bail!("unknown mode {other}"),
    };
    let results: Vec<kube::Result<()>> = futures::stream::iter(writes)
        .buffer_unordered(8)
        .collect()
        .await;
    let writes = results.len();
    results.into_iter().collect::<kube::Result<Vec<()>>>()?;
    let (api, etcd) = (cpu("kube-apiserver") - api0, cpu("etcd") - etcd0);
    println!(
        "{mode}: {writes} writes in {:.2} s; kube-apiserver {:.2} ms CPU per write, etcd {:.2}",
        start.elapsed().as_secs_f64(),
        api * 1000.0 / writes as f64,
        etcd * 1000.0 / writes as f64,
    );
    Ok(())
}
