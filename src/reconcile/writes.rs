//! The reconciler's writes: the Secret (shell, then server-side apply) and the status, each
//! guarded by the resourceVersion it is based on and told to the caches' freshness.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};

use crate::api::{ApiToken, ApiTokenStatus, FIELD_MANAGER};
use crate::controller::Context;
use crate::error::Error;
use crate::secret::{self, Desired};
use crate::secret_cache::SecretCache;

/// Writes the Secret by server-side apply when it differs from what we observed. Every apply
/// carries the resourceVersion it is based on, so a Secret replaced meanwhile is never
/// overwritten; a new Secret is first created as a shell, which fails if one exists.
pub(super) async fn apply_secret(
    secrets: &Api<Secret>,
    cache: &SecretCache,
    token: &ApiToken,
    observed: Option<&Secret>,
    desired: &Desired<'_>,
) -> Result<Option<Secret>, Error> {
    let mut want = secret::secret_for(token, desired);
    want.metadata.resource_version = match observed {
        Some(observed) if !secret::needs_write(observed, &want) => return Ok(None),
        Some(observed) => observed.resource_version(),
        None => {
            let shell = match create_shell(secrets, token).await {
                Err(Error::Kube(kube::Error::Api(s))) if s.code == 409 => {
                    let ns = token.namespace().unwrap_or_default();
                    cache.refused(&ns, &token.secret_name());
                    return Err(Error::SecretExists);
                }
                shell => shell?,
            };
            cache.wrote(&shell);
            shell.resource_version()
        }
    };
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match secrets
        .patch(&token.secret_name(), &params, &Patch::Apply(&want))
        .await
    {
        Ok(written) => {
            cache.wrote(&written);
            Ok(Some(written))
        }
        // Invalid (e.g. template annotations too large): retrying cannot help.
        Err(kube::Error::Api(status)) if status.code == 422 => {
            Err(Error::SecretRejected(status.message))
        }
        Err(error) => Err(error.into()),
    }
}

/// Creates the new Secret's shell ([`secret::shell_for`]). Fails with 409 Conflict when any
/// Secret of that name exists; the next reconcile then reads it and reports SecretConflict (or
/// takes it back, see `adopt`).
pub async fn create_shell(secrets: &Api<Secret>, token: &ApiToken) -> Result<Secret, Error> {
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PostParams::default()
    };
    Ok(secrets.create(&params, &secret::shell_for(token)).await?)
}

/// Applies a changed status, guarded by the resourceVersion it was read at; true if it wrote.
pub(crate) async fn write_status(
    token: &ApiToken,
    ctx: &Context,
    status: &ApiTokenStatus,
) -> Result<bool, Error> {
    if token.status.as_ref() == Some(status) {
        return Ok(false);
    }
    let api: Api<ApiToken> = Api::namespaced(
        ctx.client.clone(),
        &token.namespace().ok_or(Error::NoNamespace)?,
    );
    let body = serde_json::json!({
        "apiVersion": ApiToken::api_version(&()), "kind": ApiToken::kind(&()),
        "metadata": {"resourceVersion": token.resource_version()},
        "status": status,
    });
    let stored = api
        .patch_status(
            &token.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await?;
    ctx.freshness.wrote(&stored);
    Ok(true)
}
