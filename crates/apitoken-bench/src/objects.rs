//! The objects the bench writes, built the way a user (or the operator) would write them.

use apitoken_operator::api::ApiToken;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

pub fn token(name: &str, label: &str, spec: serde_json::Value) -> ApiToken {
    serde_json::from_value(json!({
        "apiVersion": "apitoken.dev/v1alpha1", "kind": "ApiToken",
        "metadata": {"name": name, "labels": {"bench": label, "api": "bench"}},
        "spec": spec,
    }))
    .expect("a valid ApiToken")
}

/// A Secret about the size of an issued token's Secret (data and annotations).
pub fn secret(name: &str, label: &str, bytes: usize) -> Secret {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"bench": label},
                     "annotations": {"apitoken.dev/fingerprint": "sha256:000000000000"}},
        "type": "Opaque",
        "stringData": {"token": "x".repeat(bytes)},
    }))
    .expect("a valid Secret")
}

/// Applies both CRDs and waits until they are established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    use apitoken_operator::verifier::api::ApiTokenVerifier;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    use kube::runtime::wait::{await_condition, conditions};
    use kube::{CustomResourceExt, ResourceExt};
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in [ApiToken::crd(), ApiTokenVerifier::crd()] {
        let name = crd.name_any();
        crds.patch(
            &name,
            &PatchParams::apply("apitoken-bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
        await_condition(crds.clone(), &name, conditions::is_crd_established()).await?;
    }
    // Established comes a moment before the API server serves the new paths.
    let tokens: Api<ApiToken> = Api::all(client.clone());
    for _ in 0..100 {
        if tokens
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("the ApiToken API is not served")
}

pub async fn ensure_namespaces(client: &Client, names: &[String]) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(client.clone());
    for name in names {
        if api.get_opt(name).await?.is_none() {
            let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}}))?;
            api.create(&PostParams::default(), &ns).await?;
        }
    }
    Ok(())
}

/// `(namespace, index)` for `n` objects spread over `namespaces`.
/// Creates Secrets `{prefix}-{i}` for i in 0..n over `namespaces`, `concurrency` at a time, each
/// labelled `bench: label` with `bytes` of value.
pub async fn create_secrets(
    client: &Client,
    namespaces: &[String],
    n: usize,
    concurrency: usize,
    (prefix, label, bytes): (&str, &str, usize),
) -> anyhow::Result<()> {
    each(spread(n, namespaces), concurrency, |(ns, i)| async move {
        let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
        api.create(
            &PostParams::default(),
            &secret(&format!("{prefix}-{i}"), label, bytes),
        )
        .await?;
        Ok(())
    })
    .await
}

/// The Event the operator posts when it issues `regarding`'s first value.
pub fn issued_event(regarding: &ApiToken) -> Event {
    Event {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(format!("{}-", regarding.name_any())),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        reporting_controller: Some("apitoken-bench".into()),
        reporting_instance: Some("bench".into()),
        action: Some("Issued".into()),
        reason: Some("Issued".into()),
        type_: Some("Normal".into()),
        note: Some("revision 1".into()),
        regarding: Some(regarding.object_ref(&())),
        ..Default::default()
    }
}

pub fn spread(n: usize, namespaces: &[String]) -> Vec<(String, usize)> {
    (0..n)
        .map(|i| (namespaces[i % namespaces.len()].clone(), i))
        .collect()
}

/// Runs `f` over `items` with `concurrency` in flight; the first error stops it.
pub async fn each<T, F, Fut>(items: Vec<T>, concurrency: usize, f: F) -> anyhow::Result<()>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    futures::stream::iter(items.into_iter().map(f))
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
