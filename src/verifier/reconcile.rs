//! One reconcile of one ApiTokenVerifier: gather the selected tokens and their hashes, plan the
//! key set ([`super::keys`]), write the Secret only when its bytes differ, report.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use apitoken_verify::KEYSET_FILE;
use futures::{StreamExt, TryStreamExt};
use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use super::Context;
use super::api::{ApiTokenVerifier, ApiTokenVerifierStatus, VERIFIER_LABEL};
use super::keys::{self, Selected};
use crate::api::FIELD_MANAGER;
use crate::controller::requeue_at;
use crate::error::Error;
use crate::report::{self, Reason};
use crate::secret::{MANAGED_BY, MANAGED_BY_LABEL, is_ours};
use crate::status::Outcome;

pub async fn reconcile(cached: Arc<ApiTokenVerifier>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = cached.namespace().ok_or(Error::NoNamespace)?;
    let verifiers: Api<ApiTokenVerifier> = Api::namespaced(ctx.client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    // The verifier as stored (the cache can trail our own last status write) and its key set,
    // read together: secretName is immutable, so the cached one names the right Secret.
    let name = cached.name_any();
    let (verifier, observed) = tokio::try_join!(
        verifiers.get_opt(&name),
        secrets.get_opt(&cached.spec.secret_name)
    )?;
    let Some(verifier) = verifier else {
        return Ok(Action::await_change());
    };
    if verifier.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change()); // the key set goes with it (ownerReference)
    }
    let selector = match Selector::try_from(verifier.spec.selector.clone()) {
        Ok(selector) => selector,
        Err(e) => {
            let message = format!("spec.selector: {}", e.0);
            return stall(&verifier, &ctx, Reason::InvalidSpec, message).await;
        }
    };
    let name = &verifier.spec.secret_name;
    if observed.as_ref().is_some_and(|s| !is_ours(s, &verifier)) {
        let message =
            format!("Secret {name} exists and is not this verifier's; it is left untouched");
        return stall(&verifier, &ctx, Reason::SecretConflict, message).await;
    }

    // A key set written before the first list of ApiTokens completes would drop every value.
    ctx.tokens
        .wait_until_ready()
        .await
        .map_err(|_| Error::StoreClosed)?;
    let all = ctx.tokens.state();
    ctx.digests
        .retain(&all.iter().filter_map(|t| t.uid()).collect::<HashSet<_>>());
    let tokens: Vec<_> = all
        .into_iter()
        .filter(|t| t.namespace().as_deref() == Some(ns.as_str()))
        .filter(|t| selector.matches(t.labels()))
        .collect();
    // Usually all known; after a restart, a few token Secrets are read at a time.
    let reads: Vec<_> = tokens
        .iter()
        .map(|t| ctx.digests.digests(&secrets, t))
        .collect();
    let digests: Vec<_> = futures::stream::iter(reads)
        .buffered(8)
        .try_collect()
        .await?;
    let selected: Vec<_> = tokens
        .iter()
        .zip(&digests)
        .map(|(token, digests)| Selected { token, digests })
        .collect();
    let plan = keys::plan(&selected, Timestamp::now());
    let (held, tokens) = (plan.document.keys.len(), plan.tokens);
    let written = write_keyset(
        &secrets,
        &verifier,
        observed.as_ref(),
        &plan.document.render(),
    )
    .await?;

    let message = format!("the key set holds {held} values of {tokens} ApiTokens");
    let ready = Outcome {
        ready: true,
        stalled: false,
        reason: "Synced",
        message: message.clone(),
        generation: verifier.metadata.generation,
    };
    let mut status = verifier.status.clone().unwrap_or_default();
    ready.set(&mut status.conditions, Timestamp::now());
    status.observed_generation = verifier.metadata.generation;
    status.tokens = Some(tokens as i64);
    status.keys = Some(held as i64);
    write_status(&verifiers, &verifier, &status).await?;
    if let Some(secret) = written {
        tracing::info!(namespace = %ns, verifier = %verifier.name_any(), keys = held, tokens, "key set written");
        let note = format!("Secret {name}: {message}");
        report::event(
            &ctx.events,
            &verifier,
            Reason::KeySetUpdated,
            note,
            Some(&secret),
        )
        .await;
    }
    Ok(requeue_at(plan.next_due, Timestamp::now()))
}

/// Ready=False and Stalled for what only a change can fix: reported once, then wait for it.
async fn stall(
    verifier: &ApiTokenVerifier,
    ctx: &Context,
    reason: Reason,
    message: String,
) -> Result<Action, Error> {
    let mut status = verifier.status.clone().unwrap_or_default();
    let ready = Outcome {
        ready: false,
        stalled: true,
        reason: reason.as_str(),
        message: message.clone(),
        generation: verifier.metadata.generation,
    };
    ready.set(&mut status.conditions, Timestamp::now());
    status.observed_generation = verifier.metadata.generation;
    status.tokens = None;
    status.keys = None;
    let api = Api::namespaced(
        ctx.client.clone(),
        &verifier.namespace().unwrap_or_default(),
    );
    if write_status(&api, verifier, &status).await? {
        report::event(&ctx.events, verifier, reason, message, None).await;
    }
    Ok(Action::await_change())
}

/// The key-set Secret as the operator wants it.
fn keyset_secret(verifier: &ApiTokenVerifier, content: &str) -> Secret {
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_owned(), MANAGED_BY.to_owned()),
        (VERIFIER_LABEL.to_owned(), verifier.name_any()),
    ]);
    let data = BTreeMap::from([(
        KEYSET_FILE.to_owned(),
        ByteString(content.as_bytes().to_vec()),
    )]);
    Secret {
        metadata: ObjectMeta {
            name: Some(verifier.spec.secret_name.clone()),
            namespace: verifier.namespace(),
            labels: Some(labels),
            owner_references: verifier.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Whether `observed` (ours) lacks anything of `want`: the key set bytes, our labels, the type.
fn differs(observed: &Secret, want: &Secret) -> bool {
    let key = |s: &Secret| s.data.as_ref().and_then(|d| d.get(KEYSET_FILE)).cloned();
    let labels = observed.labels();
    key(observed) != key(want)
        || want.labels().iter().any(|(k, v)| labels.get(k) != Some(v))
        || observed.type_ != want.type_
}

/// Creates the Secret (failing if one appeared meanwhile) or applies it when it differs, guarded
/// by the resourceVersion it was compared with. Returns the Secret if it wrote.
async fn write_keyset(
    secrets: &Api<Secret>,
    verifier: &ApiTokenVerifier,
    observed: Option<&Secret>,
    content: &str,
) -> Result<Option<Secret>, Error> {
    let mut want = keyset_secret(verifier, content);
    let Some(observed) = observed else {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        return Ok(Some(secrets.create(&params, &want).await?));
    };
    if !differs(observed, &want) {
        return Ok(None);
    }
    want.metadata.resource_version = observed.resource_version();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = &verifier.spec.secret_name;
    Ok(Some(
        secrets.patch(name, &params, &Patch::Apply(&want)).await?,
    ))
}

/// Server-side applies the status when it changed. Returns whether it wrote.
async fn write_status(
    api: &Api<ApiTokenVerifier>,
    verifier: &ApiTokenVerifier,
    status: &ApiTokenVerifierStatus,
) -> Result<bool, Error> {
    if verifier.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let body = serde_json::json!({
        "apiVersion": ApiTokenVerifier::api_version(&()),
        "kind": ApiTokenVerifier::kind(&()),
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&verifier.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(true)
}
