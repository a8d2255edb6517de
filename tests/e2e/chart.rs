//! The Helm chart against the real API server, without a node: its manifests are accepted by a
//! server-side dry run, its Pod passes the restricted Pod Security level, and its RBAC grants
//! exactly the listed verbs (a `kubectl auth can-i` matrix).

use std::collections::BTreeSet;
use std::process::Command;

use crate::harness::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/apitoken-operator");
/// What `make chart-check` renders for; the control plane is 1.34 too.
const KUBE_VERSION: &str = "1.34.0";

/// `helm template` of the chart into `release_ns` with `--set` values, as parsed objects.
pub fn render(release_ns: &str, sets: &[String]) -> Vec<serde_json::Value> {
    let tools = output_ok(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/tools.sh")).arg("bin"),
    );
    let helm = format!("{}/helm", tools.trim());
    let mut cmd = Command::new(helm);
    cmd.args([
        "template",
        "apitoken-operator",
        CHART,
        "--namespace",
        release_ns,
    ])
    .args(["--kube-version", KUBE_VERSION]);
    for set in sets {
        cmd.args(["--set", set]);
    }
    let out = output_ok(&mut cmd);
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(&out)
        .map(|doc| serde_json::Value::deserialize(doc).expect("rendered YAML"))
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn kind(doc: &serde_json::Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

pub fn to_yaml(docs: &[&serde_json::Value]) -> String {
    docs.iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

fn namespaced_sets(namespaces: &[&str]) -> Vec<String> {
    namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| format!("watchNamespaces[{i}]={ns}"))
        .collect()
}

#[tokio::test]
async fn rendered_manifests_pass_a_server_side_dry_run() {
    let release = TestNs::new("e2e-chart").await;
    let (a, b) = (TestNs::new("e2e-team").await, TestNs::new("e2e-team").await);
    for sets in [vec![], namespaced_sets(&[&a.name, &b.name])] {
        let docs = render(&release.name, &sets);
        // The ServiceMonitor is prometheus-operator's kind, not installed here (off by default).
        let objects: Vec<_> = docs
            .iter()
            .filter(|d| kind(d) != "ServiceMonitor")
            .collect();
        let (ok, out) = kubectl_stdin(
            &["apply", "--dry-run=server", "-f", "-"],
            &to_yaml(&objects),
        );
        assert!(ok, "dry run with {sets:?} refused:\n{out}");
        for object in &objects {
            let name = object["metadata"]["name"].as_str().unwrap();
            assert!(
                out.contains(&format!("/{name} ")),
                "{} {name} missing from:\n{out}",
                kind(object)
            );
        }
    }
    for ns in [release, a, b] {
        ns.delete_namespace().await;
    }
}

/// The Deployment's Pod is admitted where `pod-security.kubernetes.io/enforce: restricted` is
/// enforced (a dry-run Pod from its template: no node needed), and the same Pod with one setting
/// loosened is refused, so the check is real.
#[tokio::test]
async fn the_operator_pod_meets_the_restricted_pod_security_level() {
    let ns = TestNs::new("e2e-restricted").await;
    let (ok, out) = kubectl()
        .args(["label", "namespace", &ns.name])
        .args(["pod-security.kubernetes.io/enforce=restricted"])
        .args(["pod-security.kubernetes.io/enforce-version=v1.34"])
        .output()
        .map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
        .unwrap();
    assert!(ok, "{out}");
    let docs = render(&ns.name, &[]);
    let account = docs.iter().find(|d| kind(d) == "ServiceAccount").unwrap();
    let (ok, out) = kubectl_stdin(&["apply", "-f", "-"], &to_yaml(&[account]));
    assert!(ok, "{out}");
    let deployment = docs.iter().find(|d| kind(d) == "Deployment").unwrap();
    let pod = |template: &serde_json::Value| {
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "operator", "namespace": ns.name},
            "spec": template["spec"],
        })
    };
    let template = &deployment["spec"]["template"];
    let (ok, out) = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &to_yaml(&[&pod(template)]),
    );
    assert!(ok, "restricted profile refused the operator Pod:\n{out}");

    let mut loose = template.clone();
    loose["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = true.into();
    let (ok, out) = kubectl_stdin(
        &["create", "--dry-run=server", "-f", "-"],
        &to_yaml(&[&pod(&loose)]),
    );
    assert!(!ok, "a Pod allowing privilege escalation was admitted");
    assert!(out.contains("violates PodSecurity \"restricted"), "{out}");
    ns.delete_namespace().await;
}

/// (resource, resource name, verb) triples from `kubectl auth can-i --list`.
type Grants = BTreeSet<(String, String, String)>;

/// What `user` may do in `namespace`, as `kubectl auth can-i --list --as` reports it.
pub fn can_i_list(user: &str, namespace: &str) -> Grants {
    let out = output_ok(kubectl().args(["auth", "can-i", "--list", "--as", user, "-n", namespace]));
    let mut grants = Grants::new();
    // Each row: resource, then [non-resource URLs] [resource names] [verbs].
    for line in out.lines().skip(1) {
        let Some(open) = line.find('[') else { continue };
        let resource = line[..open].trim().to_owned();
        let lists: Vec<Vec<String>> = line[open..]
            .split(']')
            .filter_map(|part| part.trim().strip_prefix('['))
            .map(|inner| inner.split_whitespace().map(str::to_owned).collect())
            .collect();
        let [urls, names, verbs] = &lists[..] else {
            panic!("unexpected can-i line: {line}")
        };
        let subjects: Vec<String> = if resource.is_empty() {
            urls.clone()
        } else {
            vec![resource]
        };
        let names = if names.is_empty() {
            vec![String::new()]
        } else {
            names.clone()
        };
        for subject in &subjects {
            for name in &names {
                for verb in verbs {
                    grants.insert((subject.clone(), name.clone(), verb.clone()));
                }
            }
        }
    }
    grants
}

/// Expected grants from `(resource, names, verbs)` rows.
fn grants(rows: &[(&str, &[&str], &[&str])]) -> Grants {
    let mut set = Grants::new();
    for (resource, names, verbs) in rows {
        let names: Vec<&str> = if names.is_empty() {
            vec![""]
        } else {
            names.to_vec()
        };
        for name in names {
            for verb in *verbs {
                set.insert((resource.to_string(), name.to_owned(), verb.to_string()));
            }
        }
    }
    set
}

/// What the chart grants in each namespace it covers: the operator's verbs, nothing else.
fn operator_grants() -> Grants {
    grants(&[
        (
            "apitokens.apitoken.dev",
            &[],
            &["get", "list", "watch", "patch"],
        ),
        ("apitokens.apitoken.dev/status", &[], &["patch"]),
        ("apitokens.apitoken.dev/finalizers", &[], &["update"]),
        (
            "apitokenverifiers.apitoken.dev",
            &[],
            &["get", "list", "watch"],
        ),
        ("apitokenverifiers.apitoken.dev/status", &[], &["patch"]),
        (
            "secrets",
            &[],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        ("events.events.k8s.io", &[], &["create", "patch"]),
    ])
}

fn lease_grants() -> Grants {
    grants(&[
        ("leases.coordination.k8s.io", &[], &["create"]),
        (
            "leases.coordination.k8s.io",
            &["apitoken-operator"],
            &["get", "list", "watch", "patch"],
        ),
    ])
}

fn can_i(user: &str, args: &[&str]) -> bool {
    let out = kubectl()
        .args(["auth", "can-i", "--as", user])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

/// Applies the chart's ServiceAccount and RBAC (no Deployment) and returns the SA's user name.
pub fn apply_rbac(release_ns: &str, sets: &[String]) -> String {
    let docs = render(release_ns, sets);
    let rbac: Vec<_> = docs
        .iter()
        .filter(|d| {
            d["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("rbac."))
                || kind(d) == "ServiceAccount"
        })
        .collect();
    // Server-side, forced: re-applying restores whatever a test changed by hand.
    let args = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=e2e-chart",
        "-f",
        "-",
    ];
    let (ok, out) = kubectl_stdin(&args, &to_yaml(&rbac));
    assert!(ok, "{out}");
    format!("system:serviceaccount:{release_ns}:apitoken-operator")
}

/// Removes the cluster-wide objects a test applied (namespaced ones go with their namespace).
fn delete_cluster_rbac() {
    let _ = kubectl()
        .args([
            "delete",
            "clusterrole,clusterrolebinding",
            "apitoken-operator",
        ])
        .args(["--ignore-not-found"])
        .output();
}

#[tokio::test]
async fn rbac_grants_exactly_the_operators_verbs() {
    let release = TestNs::new("e2e-rbac").await;
    let (a, b) = (TestNs::new("e2e-team").await, TestNs::new("e2e-team").await);
    let other = TestNs::new("e2e-other").await;
    // Whatever any service account may do (discovery, self reviews) is not the chart's doing.
    let baseline = |ns: &str| can_i_list(&format!("system:serviceaccount:{ns}:nobody"), ns);
    let extra = |user: &str, ns: &str| -> Grants {
        can_i_list(user, ns)
            .difference(&baseline(ns))
            .cloned()
            .collect()
    };

    // Namespaced: Roles in the watched namespaces, the Lease Role at home, nothing cluster-wide.
    let user = apply_rbac(&release.name, &namespaced_sets(&[&a.name, &b.name]));
    for ns in [&a.name, &b.name] {
        assert_eq!(
            extra(&user, ns),
            operator_grants(),
            "in watched namespace {ns}"
        );
    }
    assert_eq!(
        extra(&user, &release.name),
        lease_grants(),
        "in the release namespace"
    );
    assert_eq!(
        extra(&user, &other.name),
        Grants::new(),
        "in another namespace"
    );
    for denied in [
        &["list", "secrets", "--all-namespaces"][..],
        &["get", "secrets", "-n", &other.name],
        &["watch", "apitokens.apitoken.dev", "--all-namespaces"],
        &["get", "customresourcedefinitions"],
        &["list", "namespaces"],
        &["patch", "leases/someone-else", "-n", &release.name],
    ] {
        assert!(!can_i(&user, denied), "namespaced mode allows {denied:?}");
    }
    assert!(can_i(&user, &["patch", "secrets", "-n", &a.name]));

    // Default: one ClusterRole for the operator's verbs, the Lease Role still only at home.
    let user = apply_rbac(&release.name, &[]);
    let cluster_wide = || {
        kubectl()
            .args(["get", "clusterrolebinding", "apitoken-operator"])
            .output()
    };
    assert!(cluster_wide().unwrap().status.success());
    let mut at_home = operator_grants();
    at_home.extend(lease_grants());
    assert_eq!(
        extra(&user, &release.name),
        at_home,
        "in the release namespace"
    );
    assert_eq!(
        extra(&user, &other.name),
        operator_grants(),
        "in another namespace"
    );
    assert!(can_i(&user, &["list", "secrets", "--all-namespaces"]));
    for denied in [
        &["get", "customresourcedefinitions"][..],
        &["list", "namespaces"],
        &["get", "nodes"],
        &["update", "secrets", "-n", &other.name],
        &["create", "leases", "-n", &other.name],
    ] {
        assert!(!can_i(&user, denied), "cluster mode allows {denied:?}");
    }
    delete_cluster_rbac();
    for ns in [release, a, b, other] {
        ns.delete_namespace().await;
    }
}
