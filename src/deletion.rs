//! What happens when an ApiToken goes, by `deletionPolicy`.
//!
//! - **Delete** (the default) carries no finalizer: Kubernetes' garbage collector deletes the
//!   Secret through its ownerReference, so a namespace holding ApiTokens is torn down as fast as
//!   one holding plain Secrets, and nothing is left stuck when the operator is not running. The
//!   revocation (audit line and `Revoked` Event) is recorded from the watch's delete event
//!   ([`Revocations`]), including the deletes a re-list reports after a lost watch
//!   ([`crate::namespaces::Merge`]). A token deleted while no operator runs is still revoked (its
//!   Secret goes), but not recorded.
//! - **Retain** keeps the `apitoken.dev/cleanup` finalizer: only the operator can drop its
//!   ownerReference before the garbage collector would act ([`cleanup`]).
//!
//! ApiTokens of a release before this one carry the finalizer whatever their policy; for those
//! the cleanup deletes the Secret and leaves the record to the delete event, so every revocation
//! is recorded exactly once. Their finalizer is not removed on upgrade (that would be a write per
//! token for nothing); it goes with the token.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};
use tokio::sync::mpsc;

use crate::api::{ApiToken, DeletionPolicy, FINALIZER};
use crate::controller::Context;
use crate::error::Error;
use crate::report::{self, Audit, Reason};
use crate::{release, secret, teardown};

/// Whether the operator must act before `token` may go: only a Retain token needs to (its
/// Secret's ownerReference must be dropped first); and one that already has the finalizer keeps
/// it until its cleanup has run.
pub fn needs_finalizer(token: &ApiToken) -> bool {
    token.spec.deletion_policy == Some(DeletionPolicy::Retain)
        || token.finalizers().iter().any(|f| f == FINALIZER)
}

/// The audit record of a gone ApiToken when it is a revocation to record from the delete event:
/// policy Delete and a value was issued (a token that never had one revokes nothing).
pub fn revocation(token: &ApiToken) -> Option<Audit> {
    let status = token.status.as_ref()?;
    status.revision?;
    (token.spec.deletion_policy.unwrap_or_default() == DeletionPolicy::Delete).then(|| Audit {
        action: "revoke",
        namespace: token.namespace().unwrap_or_default(),
        name: token.name_any(),
        revision: status.revision,
        fingerprint: status.fingerprint.clone(),
        reason: "Deleted",
        actor: None,
    })
}

/// "revision 3 (fingerprint)": how notes name a value without showing it.
pub fn describe_value(revision: Option<i64>, fingerprint: Option<&str>) -> String {
    format!(
        "revision {} ({})",
        revision.unwrap_or(0),
        fingerprint.unwrap_or("-")
    )
}

/// Deleted ApiTokens from the watch, recorded one at a time off the watch's path.
pub struct Revocations {
    sender: mpsc::UnboundedSender<ApiToken>,
}

impl Revocations {
    /// The sender for the watch, and the task that records what it sends until the watch ends.
    #[mutants::skip] // a channel and a loop; e2e apitoken::deletion_revokes_or_retains_the_secret proves it
    pub fn start(ctx: Arc<Context>) -> (Self, impl Future<Output = ()>) {
        let (sender, mut deleted) = mpsc::unbounded_channel::<ApiToken>();
        let task = async move {
            while let Some(token) = deleted.recv().await {
                record(&token, &ctx).await;
            }
        };
        (Self { sender }, task)
    }

    /// Hands a deleted ApiToken to the recording task (never blocks the watch).
    #[mutants::skip] // filters by `revocation` (unit-tested); e2e apitoken:: and teardown:: count the records
    pub fn deleted(&self, token: &ApiToken) {
        if revocation(token).is_some() {
            // Fails only once the task has ended, at shutdown.
            let _ = self.sender.send(token.clone());
        }
    }
}

/// Records the revocation of a deleted ApiToken: the audit line always, the Event unless the
/// namespace is being torn down (the API server would refuse it). Only the leader records. One at
/// a time, so a teardown costs at most one refused Event per namespace even without RBAC to read
/// namespaces.
#[mutants::skip] // writes an Event through the API server; e2e apitoken:: and teardown:: prove it
async fn record(token: &ApiToken, ctx: &Context) {
    let Some(audit) = revocation(token) else {
        return;
    };
    if !ctx.leadership.is_current() {
        return;
    }
    ctx.audit(&audit);
    let terminating = match ctx
        .namespaces
        .terminating(&ctx.client, &audit.namespace)
        .await
    {
        Ok(terminating) => terminating,
        Err(error) => {
            tracing::debug!(%error, namespace = %audit.namespace, "namespace state unknown");
            false
        }
    };
    if !terminating {
        let value = describe_value(audit.revision, audit.fingerprint.as_deref());
        let note = format!(
            "{value} is revoked; garbage collection deletes Secret {}",
            token.secret_name()
        );
        let published = report::try_event(&ctx.events, token, Reason::Revoked, note, None).await;
        match published.map_err(Error::Kube) {
            // Without RBAC to read namespaces, the first refusal tells: no more tries there.
            Err(error) if teardown::is_namespace_terminating(&error) => {
                ctx.namespaces.refused_as_terminating(&audit.namespace);
            }
            Err(error) => tracing::warn!(%error, "failed to publish event"),
            Ok(()) => {}
        }
    }
}

/// Finalizer cleanup: retain (disown) the Secret; for a token of an earlier release with policy
/// Delete, delete it (recorded by [`Revocations`] once the token is gone).
#[mutants::skip] // deletes or disowns through the API server; e2e apitoken::, teardown::, crd_removal prove it
pub async fn cleanup(token: &ApiToken, ctx: &Context, ns: &str) -> Result<Action, Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = token.secret_name();
    let ours = secrets
        .get_opt(&name)
        .await?
        .filter(|s| secret::is_ours(s, token));
    let Some(secret) = ours else {
        return Ok(Action::await_change());
    };
    match token.spec.deletion_policy.unwrap_or_default() {
        DeletionPolicy::Delete => {
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: secret.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            teardown::gone_is_done(secrets.delete(&name, &params).await)?;
        }
        DeletionPolicy::Retain => {
            // Only our ownerReference goes (the value stays valid); guarded by resourceVersion.
            let patch = release::disown_patch(&secret, &token.uid().unwrap_or_default());
            let patched = secrets
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
            teardown::gone_is_done(patched)?;
            let status = token.status.clone().unwrap_or_default();
            let value = describe_value(status.revision, status.fingerprint.as_deref());
            ctx.audit(&Audit {
                action: "retain",
                namespace: ns.to_owned(),
                name: token.name_any(),
                revision: status.revision,
                fingerprint: status.fingerprint.clone(),
                reason: "Retained",
                actor: None,
            });
            // Events cannot be created in a terminating namespace: the audit line is the record.
            if !ctx.namespaces.terminating(&ctx.client, ns).await? {
                let note = format!(
                    "kept Secret {name} with {value} and removed this ApiToken's ownership"
                );
                report::event(&ctx.events, token, Reason::Retained, note, None).await;
            }
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests;
