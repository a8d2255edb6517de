//! The local node: Pods really run, with the images tests/cluster imports, and see what a
//! workload in a real cluster sees (mounted Secrets, the `kubernetes` Service, Pod Security).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::harness::{
    Operator, TIMEOUT, TestNs, eventually, kubectl, revision, secret_value, wait_status,
};

/// The test image tests/cluster/node.sh imports: busybox and `kubeget`.
pub const TEST_IMAGE: &str = "localhost/apitoken/busybox:1";
const POD_TIMEOUT: Duration = Duration::from_secs(90);

/// A Pod of the test image running `script` with `sh -c`, never pulled; `extra` is merged into
/// the Pod spec and `container` into its one container.
pub fn pod(
    name: &str,
    script: &str,
    extra: serde_json::Value,
    container: serde_json::Value,
) -> Pod {
    let mut c = json!({
        "name": "main", "image": TEST_IMAGE, "imagePullPolicy": "Never",
        "command": ["sh", "-c", script],
    });
    merge(&mut c, container);
    let mut spec = json!({"containers": [c], "terminationGracePeriodSeconds": 1});
    merge(&mut spec, extra);
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).expect("a valid Pod")
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

/// Creates the Pod once the namespace's default ServiceAccount exists, and waits for `phase`.
pub async fn run_pod(ns: &TestNs, pod: &Pod, phase: &str) -> Pod {
    let pods: Api<Pod> = ns.api();
    let accounts: Api<ServiceAccount> = ns.api();
    eventually("the default ServiceAccount", TIMEOUT, || async {
        accounts.get_opt("default").await.ok().flatten().map(|_| ())
    })
    .await;
    pods.create(&PostParams::default(), pod)
        .await
        .expect("create Pod");
    let name = pod.name_any();
    eventually(&format!("Pod {name} {phase}"), POD_TIMEOUT, || async {
        let p = pods.get(&name).await.ok()?;
        let now = p.status.as_ref()?.phase.clone()?;
        assert!(
            now != "Failed" || phase == "Failed",
            "Pod {name} failed: {:?}",
            p.status
        );
        (now == phase).then_some(p)
    })
    .await
}

/// Runs kubectl with `args` in the namespace; returns stdout, asserting success.
pub fn kubectl_ok(ns: &str, args: &[&str]) -> String {
    let out = kubectl()
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `CLUSTER_NODE=0` runs a control plane without a node (for parallel development); the node
/// tests then say so and return. `make test` and CI always run with the node.
pub fn without_node() -> bool {
    let off = std::env::var("CLUSTER_NODE").is_ok_and(|v| v == "0");
    if off {
        eprintln!("CLUSTER_NODE=0: no node, test not run");
    }
    off
}

fn sha256_hex(value: &str) -> String {
    apitoken_operator::token::sha256_hex(value.as_bytes())
}

#[tokio::test]
async fn node_is_ready_and_runs_pods_with_logs_and_exec() {
    if without_node() {
        return;
    }
    let ns = TestNs::new("e2e-node").await;
    let nodes: Api<Node> = Api::all(ns.client.clone());
    let list = nodes.list(&ListParams::default()).await.unwrap().items;
    assert_eq!(list.len(), 1, "one node");
    let ready = list[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    assert_eq!(ready.as_deref(), Some("True"), "the node is Ready");
    let table = kubectl_ok(&ns.name, &["get", "nodes", "--no-headers"]);
    assert!(table.contains(" Ready "), "kubectl get nodes: {table}");

    let p = pod(
        "hello",
        "echo hello from the node; exec sleep 3600",
        json!({}),
        json!({}),
    );
    run_pod(&ns, &p, "Running").await;
    let logs = eventually("the Pod's log line", TIMEOUT, || async {
        let logs = kubectl_ok(&ns.name, &["logs", "hello"]);
        logs.contains("hello from the node").then_some(logs)
    })
    .await;
    assert_eq!(logs.trim(), "hello from the node");
    let hostname = kubectl_ok(&ns.name, &["exec", "hello", "--", "cat", "/etc/hostname"]);
    assert_eq!(hostname.trim(), "hello", "exec runs inside the Pod");
    ns.delete_namespace().await;
}

/// A Pod mounting an ApiToken's Secret sees a rotation in its files: the new `token`, and the
/// old value as `token.previous` during the grace window. Records how long kubelet took.
#[tokio::test]
async fn mounted_secret_follows_a_rotation_with_the_previous_value_in_grace() {
    if without_node() {
        return;
    }
    let ns = TestNs::new("e2e-mount").await;
    let _operator = Operator::start(&ns);
    ns.apply_yaml(
        "metadata: {name: mounted}\nspec:\n  rotation: {every: 720h, gracePeriod: 10m}\n",
    )
    .await;
    wait_status(&ns, "mounted", "issued", TIMEOUT, |t| revision(t) == 1).await;
    let secret = "mounted"; // spec.secretName defaults to the ApiToken's name
    let old = secret_value(&ns.secrets().get(secret).await.unwrap(), "token").unwrap();

    let p = pod(
        "reader",
        "exec sleep 3600",
        json!({"volumes": [{"name": "token", "secret": {"secretName": secret}}]}),
        json!({"volumeMounts": [{"name": "token", "mountPath": "/token", "readOnly": true}]}),
    );
    run_pod(&ns, &p, "Running").await;
    // Hashes only: the value never appears in a command line or a log.
    let hashes = || {
        kubectl_ok(
            &ns.name,
            &[
                "exec",
                "reader",
                "--",
                "sh",
                "-c",
                "sha256sum /token/* 2>/dev/null; true",
            ],
        )
    };
    assert!(hashes().contains(&format!("{}  /token/token", sha256_hex(&old))));

    let patch = json!({"metadata": {"annotations": {"apitoken.dev/rotate": "mount-test"}}});
    ns.tokens()
        .patch("mounted", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // The API write: the moment the Secret holds a new value, seen within 50 ms.
    let (new, written) = eventually("the rotated Secret", TIMEOUT, || async {
        let s = ns.secrets().get(secret).await.ok()?;
        let v = secret_value(&s, "token")?;
        (v != old).then(|| (v, Instant::now()))
    })
    .await;
    let seen = eventually("the new value in the mounted file", POD_TIMEOUT, || async {
        let h = hashes();
        h.contains(&format!("{}  /token/token", sha256_hex(&new)))
            .then_some((h, Instant::now()))
    })
    .await;
    let lag = seen.1 - written;
    assert!(
        seen.0
            .contains(&format!("{}  /token/token.previous", sha256_hex(&old))),
        "token.previous holds the old value during the grace window: {}",
        seen.0
    );
    record_mount_lag(lag);
    ns.delete_namespace().await;
}

fn record_mount_lag(lag: Duration) {
    use std::io::Write;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs");
    std::fs::create_dir_all(&dir).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("lateness.tsv"))
        .unwrap();
    writeln!(f, "mounted-secret-update\t{:.3}", lag.as_secs_f64()).unwrap();
    eprintln!(
        "mounted Secret file changed {:.3} s after the API write",
        lag.as_secs_f64()
    );
}

/// A workload's in-cluster configuration works: the `kubernetes` Service leads to the API server,
/// the ServiceAccount token authenticates, and RBAC refuses what its Role does not grant.
#[tokio::test]
async fn in_cluster_clients_reach_the_api_through_the_kubernetes_service() {
    if without_node() {
        return;
    }
    let ns = TestNs::new("e2e-incluster").await;
    let rbac = format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: reader}}\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: read-configmaps}}\n\
         rules: [{{apiGroups: [''], resources: [configmaps], verbs: [get, list]}}]\n---\n\
         apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: reader}}\n\
         roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}}\n\
         subjects: [{{kind: ServiceAccount, name: reader, namespace: {0}}}]\n",
        ns.name
    );
    let (ok, out) = crate::harness::kubectl_apply(&ns.name, &rbac);
    assert!(ok, "{out}");
    let script = format!(
        "echo service=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; \
         kubeget /api/v1/namespaces/{0}/configmaps | head -1; \
         kubeget /api/v1/namespaces/{0}/secrets | head -1",
        ns.name
    );
    let p = pod(
        "client",
        &script,
        json!({"serviceAccountName": "reader", "restartPolicy": "Never"}),
        json!({}),
    );
    run_pod(&ns, &p, "Succeeded").await;
    let logs = kubectl_ok(&ns.name, &["logs", "client"]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(
        lines,
        ["service=10.96.0.1:443", "200", "403"],
        "configmaps allowed, secrets refused, through the kubernetes Service"
    );
    ns.delete_namespace().await;
}

#[tokio::test]
async fn restricted_pod_security_rejects_privileged_pods_and_admits_compliant_ones() {
    if without_node() {
        return;
    }
    let ns = TestNs::new("e2e-psa").await;
    let label =
        json!({"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}});
    Api::<Namespace>::all(ns.client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .unwrap();
    let pods: Api<Pod> = ns.api();
    let privileged = pod(
        "privileged",
        "exec sleep 3600",
        json!({}),
        json!({"securityContext": {"privileged": true}}),
    );
    let refused = pods
        .create(&PostParams::default(), &privileged)
        .await
        .expect_err("a privileged Pod is refused");
    let message = refused.to_string();
    assert!(
        message.contains("violates PodSecurity \"restricted:latest\"")
            && message.contains("privileged"),
        "{message}"
    );

    let compliant = pod(
        "compliant",
        "id -u; exec sleep 3600",
        json!({"securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                   "seccompProfile": {"type": "RuntimeDefault"}}}),
        json!({"securityContext": {"allowPrivilegeEscalation": false,
                                   "capabilities": {"drop": ["ALL"]}, "readOnlyRootFilesystem": true}}),
    );
    let started = Instant::now();
    run_pod(&ns, &compliant, "Running").await;
    let uid = eventually("the Pod's uid in its log", TIMEOUT, || async {
        let l = kubectl_ok(&ns.name, &["logs", "compliant"]);
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(uid.trim(), "65532");
    eprintln!(
        "compliant Pod running {:.1} s after create",
        started.elapsed().as_secs_f64()
    );
    ns.delete_namespace().await;
}
