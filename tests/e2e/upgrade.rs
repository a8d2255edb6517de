//! An upgrade changes no token: ApiTokens issued by the previous release
//! (`tests/upgrade/previous-release`, built and cached by `tests/upgrade/build.sh`) are taken
//! over by this build with no new value and no write at all.

use std::path::PathBuf;
use std::time::Duration;

use kube::ResourceExt;

use crate::harness::*;

const SHAPES: &str = r#"
apiVersion: apitoken.dev/v1alpha1
kind: ApiToken
metadata: {name: plain}
spec: {}
---
apiVersion: apitoken.dev/v1alpha1
kind: ApiToken
metadata: {name: shaped}
spec:
  format: {prefix: up_, length: 48, alphabet: base64url}
  secretTemplate: {labels: {team: up}, data: {key: "{{ token }}"}}
---
apiVersion: apitoken.dev/v1alpha1
kind: ApiToken
metadata: {name: rotating}
spec: {rotation: {every: 1h, gracePeriod: 30m}}
---
apiVersion: apitoken.dev/v1alpha1
kind: ApiToken
metadata: {name: expiring}
spec: {expiresAfter: 720h, rotation: {renewBefore: 240h}}
"#;
const NAMES: [&str; 4] = ["plain", "shaped", "rotating", "expiring"];

fn previous_release() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/upgrade/build.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .output()
        .expect("run tests/upgrade/build.sh");
    assert!(
        out.status.success(),
        "building the previous release: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

#[tokio::test]
async fn an_upgrade_from_the_previous_release_changes_no_token_and_writes_nothing() {
    let previous = previous_release();
    let ns = TestNs::new("e2e-upgrade").await;
    let mut op = Operator::start_binary(&ns, previous);
    let (ok, out) = kubectl_apply(&ns.name, SHAPES);
    assert!(ok, "{out}");
    // The rotating one also gets a value in its grace window.
    for name in NAMES {
        wait_status(&ns, name, "Ready", TIMEOUT, |t| {
            ready(t) == Some(("True", "Issued"))
        })
        .await;
    }
    let out = kubectl()
        .args([
            "annotate",
            "-n",
            &ns.name,
            "apitoken/rotating",
            "apitoken.dev/rotate=u1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    wait_status(&ns, "rotating", "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    op.quiet_offset().await;
    op.stop();

    let mut before = Vec::new();
    for name in NAMES {
        let token = ns.tokens().get(name).await.unwrap();
        let secret = ns.secrets().get(&token.secret_name()).await.unwrap();
        before.push((token, secret));
    }
    let events_before = ns.events("rotating").await.len();

    // This build takes over.
    op.bin = env!("CARGO_BIN_EXE_apitoken-operator").into();
    let from = op.line_offset();
    op.spawn();
    tokio::time::sleep(Duration::from_secs(2)).await;
    op.quiet_offset().await;
    for (token, secret) in &before {
        let name = token.name_any();
        let now = ns.tokens().get(&name).await.unwrap();
        let now_secret = ns.secrets().get(&secret.name_any()).await.unwrap();
        assert_eq!(now_secret.data, secret.data, "{name}: same values");
        assert_eq!(
            now_secret.resource_version(),
            secret.resource_version(),
            "{name}: Secret not written"
        );
        assert_eq!(
            now.resource_version(),
            token.resource_version(),
            "{name}: ApiToken not written"
        );
    }
    let log = op.logs_since(from);
    assert!(log.contains("\"reconciled\""), "the new build reconciled");
    assert!(
        !log.contains("\"target\":\"audit\""),
        "no action taken: {log}"
    );
    assert_eq!(ns.events("rotating").await.len(), events_before, "no Event");
    drop(op);
    ns.delete_namespace().await;
}
