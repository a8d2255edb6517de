//! GitOps health on the real control plane: the kstatus conditions the operator writes (Ready,
//! Stalled, Reconciling), what the chart's Argo CD health check makes of those live objects, and
//! the operator running as the chart's ServiceAccount with only the chart's namespaced RBAC.

use std::path::PathBuf;
use std::time::Duration;

use apitoken_operator::api::ApiToken;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::Role;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

use crate::argocd_lua;
use crate::chart::apply_rbac;
use crate::harness::*;

fn condition<'a>(t: &'a ApiToken, type_: &str) -> Option<(&'a str, &'a str)> {
    let c = t
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.as_str(), c.reason.as_str()))
}

fn condition_types(t: &ApiToken) -> Vec<&str> {
    let conditions = t.status.as_ref().map(|s| s.conditions.as_slice());
    conditions
        .unwrap_or_default()
        .iter()
        .map(|c| c.type_.as_str())
        .collect()
}

/// Argo CD's verdict on the object as stored; the object is also kept under
/// target/tmp/argocd-observed/ (the source of the chart's argocd/testdata).
fn argo_health(t: &ApiToken, case: &str) -> argocd_lua::Health {
    let mut object = serde_json::to_value(t).unwrap();
    let meta = object["metadata"].as_object_mut().unwrap();
    for noise in [
        "managedFields",
        "uid",
        "resourceVersion",
        "creationTimestamp",
        "finalizers",
    ] {
        meta.remove(noise);
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("argocd-observed");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{case}.yaml")),
        serde_yaml::to_string(&object).unwrap(),
    )
    .unwrap();
    argocd_lua::health(&object).expect("health.lua runs")
}

#[tokio::test]
async fn conditions_follow_kstatus_and_argo_cd_reads_them() {
    let ns = TestNs::new("e2e-kstatus").await;
    let mut op = Operator::start(&ns);
    let foreign = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("taken".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    ns.secrets()
        .create(&PostParams::default(), &foreign)
        .await
        .unwrap();
    let token = |name: &str, spec: &str| {
        format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {spec}\n"
        )
    };
    ns.apply_yaml(&token("healthy", "{rotation: {every: 24h}}"))
        .await;
    ns.apply_yaml(&token("bad-cron", "{rotation: {schedule: 'not a cron'}}"))
        .await;
    ns.apply_yaml(&token("conflict", "{secretName: taken}"))
        .await;

    let t = wait_status(&ns, "healthy", "Ready", TIMEOUT, |t| {
        ready(t) == Some(("True", "Issued"))
    })
    .await;
    assert_eq!(condition_types(&t), ["Ready"], "no Reconciling, no Stalled");
    assert_eq!(
        t.status.as_ref().unwrap().observed_generation,
        t.metadata.generation
    );
    let health = argo_health(&t, "healthy");
    assert_eq!(health.status, "Healthy");
    assert!(
        health
            .message
            .starts_with("Issued: revision 1 is current (sha256:"),
        "{health:?}"
    );

    for (name, reason) in [("bad-cron", "InvalidSpec"), ("conflict", "SecretConflict")] {
        let t = wait_status(&ns, name, reason, TIMEOUT, |t| {
            ready(t) == Some(("False", reason))
        })
        .await;
        assert_eq!(condition(&t, "Stalled"), Some(("True", reason)), "{name}");
        assert_eq!(condition_types(&t), ["Ready", "Stalled"], "{name}");
        let health = argo_health(&t, &format!("degraded-{name}"));
        assert_eq!(health.status, "Degraded", "{name}");
        assert!(
            health.message.starts_with(&format!("{reason}: ")),
            "{health:?}"
        );
    }

    // Fixing the spec clears Stalled; the token is healthy again.
    ns.apply_yaml(&token("bad-cron", "{rotation: {schedule: '0 3 * * *'}}"))
        .await;
    let t = wait_status(&ns, "bad-cron", "Ready", TIMEOUT, |t| {
        ready(t) == Some(("True", "Issued"))
    })
    .await;
    assert_eq!(condition_types(&t), ["Ready"]);
    assert_eq!(argo_health(&t, "fixed").status, "Healthy");

    // A generation the operator has not seen yet is in progress, before and after its first status.
    op.stop();
    ns.apply_yaml(&token("unseen", "{}")).await;
    ns.apply_yaml(&token("healthy", "{rotation: {every: 12h}}"))
        .await;
    let unseen = ns.tokens().get("unseen").await.unwrap();
    assert_eq!(
        argo_health(&unseen, "progressing-new").status,
        "Progressing"
    );
    let edited = ns.tokens().get("healthy").await.unwrap();
    let health = argo_health(&edited, "progressing-generation");
    assert_eq!(
        (health.status.as_str(), health.message.as_str()),
        (
            "Progressing",
            "Waiting for the operator to observe generation 2"
        )
    );
    op.spawn();
    let t = wait_status(&ns, "healthy", "generation 2 observed", TIMEOUT, |t| {
        t.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
    })
    .await;
    assert_eq!(argo_health(&t, "healthy-generation-2").status, "Healthy");
    drop(op);
    ns.delete_namespace().await;
}

/// A kubeconfig for the chart's ServiceAccount in `release_ns`: the admin's cluster, a token from
/// the TokenRequest API, no other credentials.
fn service_account_kubeconfig(release_ns: &str) -> PathBuf {
    let token = output_ok(
        kubectl()
            .args(["create", "token", "apitoken-operator"])
            .args(["-n", release_ns, "--duration", "1h"]),
    );
    let token = token.trim();
    let admin = std::fs::read_to_string(std::env::var("KUBECONFIG").unwrap()).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    let cluster = config["clusters"][0]["name"].clone();
    config["users"] =
        serde_yaml::from_str(&format!("[{{name: sa, user: {{token: {token}}}}}]")).unwrap();
    config["contexts"] = serde_yaml::from_str(&format!(
        "[{{name: sa, context: {{cluster: {}, user: sa}}}}]",
        cluster.as_str().unwrap()
    ))
    .unwrap();
    config["current-context"] = "sa".into();
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{release_ns}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path
}

/// The chart's namespaced RBAC is enough for the whole lifecycle (issue, rotate on request,
/// delete), and a write it forbids shows as Reconciling=True until the grant is back.
#[tokio::test]
async fn the_operator_runs_on_the_charts_namespaced_rbac() {
    let release = TestNs::new("e2e-sa-home").await;
    let ns = TestNs::new("e2e-sa").await;
    let sets = vec![format!("watchNamespaces[0]={}", ns.name)];
    apply_rbac(&release.name, &sets);
    let op = Operator::start_as(&ns, service_account_kubeconfig(&release.name));
    let yaml =
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: app}\nspec: {}\n";
    ns.apply_yaml(yaml).await;
    wait_status(&ns, "app", "issued", TIMEOUT, |t| revision(t) == 1).await;
    let request = serde_json::json!({"metadata": {"annotations": {"apitoken.dev/rotate": "r1"}}});
    ns.tokens()
        .patch("app", &PatchParams::default(), &Patch::Merge(&request))
        .await
        .unwrap();
    wait_status(&ns, "app", "rotated", TIMEOUT, |t| revision(t) == 2).await;
    ns.events_with_reason("app", "Rotated").await;

    // Take `patch` on Secrets away: the new Secret's shell is created, filling it is forbidden.
    let roles: Api<Role> = ns.api();
    let mut role = roles.get("apitoken-operator").await.unwrap();
    let rules = role.rules.as_mut().unwrap();
    let secrets = rules
        .iter_mut()
        .find(|r| r.resources.as_deref() == Some(&["secrets".to_owned()][..]))
        .unwrap();
    secrets.verbs.retain(|v| v != "patch");
    roles
        .replace("apitoken-operator", &PostParams::default(), &role)
        .await
        .unwrap();
    ns.apply_yaml(&yaml.replace("name: app", "name: second"))
        .await;
    let t = wait_status(&ns, "second", "Reconciling", TIMEOUT, |t| {
        condition(t, "Reconciling") == Some(("True", "Retrying"))
    })
    .await;
    let health = argo_health(&t, "progressing-retrying");
    assert_eq!(health.status, "Progressing");
    assert_eq!(
        health.message,
        "Retrying: writing Secret second failed (kube_api); retrying"
    );

    apply_rbac(&release.name, &sets);
    let t = wait_status(
        &ns,
        "second",
        "issued after the grant",
        Duration::from_secs(90),
        |t| ready(t) == Some(("True", "Issued")),
    )
    .await;
    assert_eq!(condition_types(&t), ["Ready"], "Reconciling is gone");

    ns.tokens()
        .delete("app", &Default::default())
        .await
        .unwrap();
    wait_gone(&ns.secrets(), "app", TIMEOUT).await;
    let logs = op.logs();
    let forbidden = logs.lines().filter(|l| l.contains("forbidden")).count();
    assert!(forbidden > 0, "the withdrawn verb was used");
    assert!(
        logs.lines()
            .filter(|l| l.contains("forbidden"))
            .all(|l| l.contains("secrets")),
        "only the withdrawn Secret patch was forbidden:\n{logs}"
    );
    drop(op);
    for ns in [release, ns] {
        ns.delete_namespace().await;
    }
}
