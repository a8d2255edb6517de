//! Security 8: Secrets are encrypted at rest. The Secret's key is read straight from etcd (its
//! JSON gateway on the cluster's loopback port), bypassing the API server: no plaintext value,
//! and the API server's encryption envelope (`k8s:enc:`) in front of the ciphertext.

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::common::*;
use crate::harness::*;

/// The raw bytes etcd holds for `key`, through POST /v3/kv/range.
fn etcd_get(key: &str) -> Vec<u8> {
    let kubeconfig = std::env::var("KUBECONFIG").expect("KUBECONFIG");
    let ports = std::path::Path::new(&kubeconfig).with_file_name("ports");
    let ports = std::fs::read_to_string(&ports).expect("the cluster's ports file");
    let etcd_port = ports.split_whitespace().next().expect("etcd port");
    let body = serde_json::json!({ "key": STANDARD.encode(key) }).to_string();
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", "-d", &body])
        .arg(format!("http://127.0.0.1:{etcd_port}/v3/kv/range"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "etcd range request failed");
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("etcd JSON");
    let value = reply["kvs"][0]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is in etcd"));
    STANDARD.decode(value).expect("base64 value")
}

#[tokio::test]
async fn secrets_are_encrypted_in_etcd() {
    let ns = TestNs::new("f-at-rest").await;
    let _op = Operator::start(&ns);
    ns.apply_yaml(&manifest("sealed", "{}")).await;
    wait_status(&ns, "sealed", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let value = secret_value(&ns.secrets().get("sealed").await.unwrap(), "token").unwrap();

    let raw = etcd_get(&format!("/registry/secrets/{}/sealed", ns.name));
    assert!(
        raw.starts_with(b"k8s:enc:aescbc:v1:"),
        "stored with the encryption envelope"
    );
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(!contains(value.as_bytes()), "no plaintext value in etcd");
    assert!(
        !contains(STANDARD.encode(&value).as_bytes()),
        "no base64 of the value in etcd"
    );
    // The same read finds an unencrypted kind in the clear: the check can see plaintext.
    let raw_ns = etcd_get(&format!("/registry/namespaces/{}", ns.name));
    assert!(
        raw_ns
            .windows(ns.name.len())
            .any(|w| w == ns.name.as_bytes()),
        "namespaces are stored in the clear"
    );
    ns.delete_namespace().await;
}
