//! Opt-in rollout restarts (`spec.rolloutRestart`): after a new value, the pod template of each
//! listed Deployment, StatefulSet or DaemonSet gets `apitoken.dev/restarted-for-revision:
//! "<revision>"`, so workloads that read the token from an environment variable get new Pods.
//!
//! Keyed by revision, never by time: an operator restart, a relist or a leader change finds the
//! annotation already equal and writes nothing. Each reconcile of a token that has a current value
//! checks its targets (one GET each; only tokens that opted in pay for it), so a restart that was
//! lost to a crash after the status write is still made.

use kube::api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::{Api, ResourceExt};

use crate::api::{ApiToken, FIELD_MANAGER, RolloutTarget, WorkloadKind};
use crate::controller::Context;
use crate::error::Error;
use crate::report::{self, Reason};

/// The pod-template annotation that carries the revision the Pods were started for.
pub const RESTARTED_FOR_REVISION: &str = "apitoken.dev/restarted-for-revision";

/// Whether a workload whose pod template carries `annotation` must restart for `revision`.
pub fn needs_restart(annotation: Option<&str>, revision: i64) -> bool {
    annotation != Some(revision.to_string().as_str())
}

/// The merge patch that restarts a workload's Pods for `revision` (and touches nothing else).
pub fn restart_patch(revision: i64) -> serde_json::Value {
    serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
        RESTARTED_FOR_REVISION: revision.to_string()
    }}}}})
}

fn api_resource(kind: WorkloadKind) -> ApiResource {
    let kind = match kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::DaemonSet => "DaemonSet",
    };
    ApiResource::from_gvk(&GroupVersionKind::gvk("apps", "v1", kind))
}

fn template_annotation(workload: &DynamicObject) -> Option<&str> {
    workload.data["spec"]["template"]["metadata"]["annotations"][RESTARTED_FOR_REVISION].as_str()
}

/// Brings every target of `token` to `revision`. A missing target gets a Warning Event only when
/// `announce` (this reconcile issued the value), so it is reported once per value, never in a loop.
#[mutants::skip] // patches workloads through the API server; e2e rollout:: prove it
pub async fn restart_targets(
    ctx: &Context,
    token: &ApiToken,
    ns: &str,
    revision: i64,
    announce: bool,
) -> Result<(), Error> {
    let targets: &[RolloutTarget] = token.spec.rollout_restart.as_deref().unwrap_or_default();
    let mut restarted = Vec::new();
    for target in targets {
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), ns, &api_resource(target.kind));
        let Some(workload) = api.get_opt(&target.name).await? else {
            tracing::debug!(name = %token.name_any(), target = %target.name, "rollout target missing");
            if announce {
                let note = format!(
                    "{:?} {} does not exist; its Pods were not restarted for revision {revision}",
                    target.kind, target.name
                );
                report::event(&ctx.events, token, Reason::RolloutTargetMissing, note, None).await;
            }
            continue;
        };
        if !needs_restart(template_annotation(&workload), revision) {
            continue;
        }
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PatchParams::default()
        };
        api.patch(
            &target.name,
            &params,
            &Patch::Merge(restart_patch(revision)),
        )
        .await?;
        restarted.push(format!("{:?} {}", target.kind, workload.name_any()));
    }
    if !restarted.is_empty() {
        let targets = restarted.join(", ");
        tracing::info!(namespace = ns, name = %token.name_any(), revision, %targets, "rollout restart");
        let note = format!("restarted {targets} for revision {revision}");
        report::event(&ctx.events, token, Reason::RolloutRestarted, note, None).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_different_or_missing_revision_restarts() {
        assert!(needs_restart(None, 1));
        assert!(needs_restart(Some("1"), 2));
        assert!(needs_restart(Some("2 "), 2));
        assert!(!needs_restart(Some("2"), 2));
        assert!(!needs_restart(Some("12"), 12));
    }

    /// The revision a workload's Pods were started for, read where the patch writes it.
    #[test]
    fn the_revision_is_read_from_the_pod_template() {
        let workload = |template: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "annotations": {RESTARTED_FOR_REVISION: "9"}},
                "spec": {"template": template},
            }))
            .unwrap()
        };
        let patched = workload(restart_patch(3)["spec"]["template"].clone());
        assert_eq!(template_annotation(&patched), Some("3"));
        // Not the workload's own annotations, and nothing when the template has none.
        assert_eq!(template_annotation(&workload(serde_json::json!({}))), None);
    }

    #[test]
    fn the_patch_sets_only_the_revision_annotation() {
        assert_eq!(
            restart_patch(7),
            serde_json::json!({"spec": {"template": {"metadata": {"annotations": {
                "apitoken.dev/restarted-for-revision": "7"
            }}}}})
        );
    }

    #[test]
    fn targets_map_to_apps_v1_kinds() {
        let kinds = [
            (WorkloadKind::Deployment, "Deployment", "deployments"),
            (WorkloadKind::StatefulSet, "StatefulSet", "statefulsets"),
            (WorkloadKind::DaemonSet, "DaemonSet", "daemonsets"),
        ];
        for (kind, name, plural) in kinds {
            let ar = api_resource(kind);
            assert_eq!(
                (
                    ar.group.as_str(),
                    ar.version.as_str(),
                    ar.kind.as_str(),
                    ar.plural.as_str()
                ),
                ("apps", "v1", name, plural)
            );
        }
    }
}
