//! Opt-in rollout restarts on the node: a Deployment that reads the token from an env var gets new
//! Pods with the new value after a rotation; an operator restart restarts nothing.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::harness::{Operator, TIMEOUT, TestNs, eventually, revision, wait_status};
use crate::node::{TEST_IMAGE, kubectl_ok, without_node};

const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(120);

fn env_reader() -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "env-reader"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "env-reader"}},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": {"app": "env-reader"}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "main", "image": TEST_IMAGE, "imagePullPolicy": "Never",
                        // The value's fingerprint as the operator computes it; never the value.
                        "command": ["sh", "-c",
                            "echo \"sha256:$(printf %s \"$TOKEN\" | sha256sum | cut -c1-12)\"; exec sleep 3600"],
                        "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "envtok", "key": "token"}}}]
                    }]
                }
            }
        }
    }))
    .expect("a valid Deployment")
}

/// The fingerprint printed by the running Pod started for `revision`.
async fn fingerprint_in_pod(ns: &TestNs, revision: i64) -> String {
    let pods: Api<Pod> = ns.api();
    eventually(
        &format!("a running Pod for revision {revision} with its log line"),
        ROLLOUT_TIMEOUT,
        || async {
            let list = pods
                .list(&ListParams::default().labels("app=env-reader"))
                .await
                .ok()?;
            let pod = list.items.into_iter().find(|p| {
                p.metadata.deletion_timestamp.is_none()
                    && p.annotations().get("apitoken.dev/restarted-for-revision")
                        == Some(&revision.to_string())
                    && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            })?;
            let log = kubectl_ok(&ns.name, &["logs", &pod.name_any()]);
            log.lines()
                .next()
                .filter(|l| l.starts_with("sha256:"))
                .map(str::to_owned)
        },
    )
    .await
}

#[tokio::test]
async fn rollout_restart_gives_env_var_consumers_the_new_value_and_restarts_nothing_on_operator_restart()
 {
    if without_node() {
        return;
    }
    let ns = TestNs::new("e2e-rollout").await;
    let deployments: Api<Deployment> = ns.api();
    deployments
        .create(&PostParams::default(), &env_reader())
        .await
        .expect("create Deployment");
    let mut operator = Operator::start(&ns);
    ns.apply_yaml(
        "metadata: {name: envtok}\nspec:\n  rolloutRestart:\n  - {kind: Deployment, name: env-reader}\n  - {kind: StatefulSet, name: not-there}\n",
    )
    .await;
    let first = wait_status(&ns, "envtok", "issued", TIMEOUT, |t| revision(t) == 1).await;
    let fp1 = first.status.unwrap().fingerprint.unwrap();
    assert_eq!(
        fingerprint_in_pod(&ns, 1).await,
        fp1,
        "the Pod runs with revision 1"
    );
    ns.events_with_reason("envtok", "RolloutTargetMissing")
        .await;

    let patch = json!({"metadata": {"annotations": {"apitoken.dev/rotate": "rollout"}}});
    ns.tokens()
        .patch("envtok", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let started = Instant::now();
    let second = wait_status(&ns, "envtok", "rotated", TIMEOUT, |t| revision(t) == 2).await;
    let fp2 = second.status.unwrap().fingerprint.unwrap();
    assert_ne!(fp1, fp2);
    assert_eq!(
        fingerprint_in_pod(&ns, 2).await,
        fp2,
        "new Pods hold revision 2"
    );
    eprintln!(
        "env-var consumer running with the new value {:.1} s after the request",
        started.elapsed().as_secs_f64()
    );
    ns.events_with_reason("envtok", "RolloutRestarted").await;

    // A restarted operator finds the annotation equal: no patch, no new ReplicaSet, no new Pod.
    let before = deployments.get("env-reader").await.unwrap();
    let offset = operator.line_offset();
    operator.stop();
    operator.spawn();
    operator.quiet_offset().await;
    assert!(
        operator.logs_since(offset).contains("\"reconciled\""),
        "the restarted operator looked at the token"
    );
    let after = deployments.get("env-reader").await.unwrap();
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "an operator restart must not restart the workload"
    );
    assert!(
        !operator.logs_since(offset).contains("rollout restart"),
        "no rollout after an operator restart"
    );
    let restarted = ns
        .events("envtok")
        .await
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("RolloutRestarted"))
        // kube's Recorder folds repeats of one reason into a series on the first Event.
        .map(|e| e.series.map_or(1, |s| s.count))
        .sum::<i32>();
    assert_eq!(
        restarted, 2,
        "one RolloutRestarted per value, none for the operator restart"
    );
    ns.delete_namespace().await;
}
