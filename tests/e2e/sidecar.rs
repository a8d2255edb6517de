//! The verifying proxy as a Pod sidecar on the node, with the key set mounted by kubelet: it
//! reloads when kubelet swaps the mounted files, keeps serving while it does, and its access log
//! and metrics hold no value. Also issue 9's revocation latency for a mounted key set
//! (`SIDECAR_TRIALS`, default 1 per kind; the README's numbers use more).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use serde_json::json;

use crate::harness::*;
use crate::keysets::*;
use crate::node::{kubectl_ok, run_pod, without_node};
use crate::proxy::{revocation_setup, revocation_trials, trials, wait_http};

/// busybox httpd upstream (a CGI that prints the request's headers) and our image's proxy in
/// front of it, the key set `keys` mounted as kubelet mounts a Secret volume.
fn api_pod() -> Pod {
    let upstream = r#"mkdir -p /www/cgi-bin && echo ok > /www/index.html &&
printf '#!/bin/sh\necho "Content-Type: text/plain"\necho\nenv | grep ^HTTP_ | sort\n' > /www/cgi-bin/headers &&
chmod +x /www/cgi-bin/headers && exec httpd -f -p 127.0.0.1:8080 -h /www"#;
    serde_json::from_value(json!({
        "metadata": {"name": "api"},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [
                {"name": "upstream", "image": crate::node::TEST_IMAGE, "imagePullPolicy": "Never",
                 "command": ["sh", "-c", upstream],
                 "volumeMounts": [{"name": "www", "mountPath": "/www"}]},
                {"name": "proxy", "image": "apitoken-operator:dev", "imagePullPolicy": "Never",
                 "args": ["proxy", "--listen=0.0.0.0:8000", "--upstream=http://127.0.0.1:8080",
                          "--keyset=/etc/apitoken/keyset", "--metrics-addr=0.0.0.0:9090"],
                 "readinessProbe": {"httpGet": {"path": "/readyz", "port": 9090}, "periodSeconds": 1},
                 "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                     "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                     "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
                 "volumeMounts": [{"name": "keyset", "mountPath": "/etc/apitoken/keyset", "readOnly": true}]}
            ],
            "volumes": [
                {"name": "www", "emptyDir": {}},
                {"name": "keyset", "secret": {"secretName": "keys"}}
            ]
        }
    }))
    .expect("a valid Pod")
}

#[tokio::test]
async fn the_proxy_sidecar_follows_kubelet_swaps_without_dropping_a_request() {
    if without_node() {
        return;
    }
    let ns = TestNs::new("e2e-sidecar").await;
    let _op = Operator::start(&ns);
    revocation_setup(&ns); // verifier v (key set `keys`) and the ApiToken `rotated`
    ns.kubectl_apply(&token_yaml(
        "steady",
        "api: orders",
        "{scopes: [orders:read]}",
    ));
    let steady = ns.value_of("steady").await;
    let pod = run_pod(&ns, &api_pod(), "Running").await;
    let ip = pod.status.and_then(|s| s.pod_ip).expect("a Pod IP");
    let proxy: SocketAddr = format!("{ip}:8000").parse().unwrap();
    let metrics: SocketAddr = format!("{ip}:9090").parse().unwrap();
    let http = Http::new();
    wait_http(&http, proxy, &steady, StatusCode::OK).await;

    // The identity reaches the upstream, the key does not.
    let (status, _, body) = http
        .get(proxy, "/cgi-bin/headers", &[("x-api-key", &steady)])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("HTTP_X_APITOKEN_NAME=steady"), "{body}");
    assert!(
        body.contains("HTTP_X_APITOKEN_SCOPES=orders:read"),
        "{body}"
    );
    assert!(
        !body.contains("HTTP_X_API_KEY"),
        "the key is stripped: {body}"
    );

    // While kubelet swaps the key set (each trial changes it twice), a client with a valid value
    // sends a request every 20 ms: every one is answered 200.
    let done = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let client = {
        let (done, sent, failed, steady) =
            (done.clone(), sent.clone(), failed.clone(), steady.clone());
        tokio::spawn(async move {
            let http = Http::new();
            let mut errors = Vec::new();
            while !done.load(Ordering::Relaxed) {
                sent.fetch_add(1, Ordering::Relaxed);
                match http.try_status_with_key(proxy, &steady).await {
                    Ok(StatusCode::OK) => {}
                    other => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        errors.push(format!("{other:?}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            errors
        })
    };
    let n = trials("SIDECAR_TRIALS", 1);
    let report = revocation_trials(&ns, proxy, "kubelet-mount", n).await;
    println!("{report}");
    done.store(true, Ordering::Relaxed);
    let errors = client.await.unwrap();
    let sent = sent.load(Ordering::Relaxed);
    eprintln!(
        "measured: {sent} requests across {} key-set swaps, {} not 200",
        4 * n,
        errors.len()
    );
    assert!(sent > 100, "the client ran throughout ({sent} requests)");
    assert!(
        errors.is_empty(),
        "requests failed during reloads: {errors:?}"
    );

    // No value in the access log or the metrics; the reloads were seen.
    let log = kubectl_ok(&ns.name, &["logs", "api", "-c", "proxy"]);
    keep_for_leak_check(&format!("{}.sidecar.log", ns.name), &log);
    let (_, _, scraped) = http.get(metrics, "/metrics", &[]).await;
    keep_for_leak_check(&format!("{}.sidecar.metrics", ns.name), &scraped);
    for text in [&log, &scraped] {
        assert!(!text.contains(&steady), "a value in the proxy's output");
    }
    assert!(
        scraped.contains("apitoken_verifications_total") && scraped.contains("name=\"steady\""),
        "{scraped}"
    );
    let pods: Api<Pod> = ns.api();
    let restarts: i32 = pods
        .get("api")
        .await
        .unwrap()
        .status
        .and_then(|s| s.container_statuses)
        .unwrap_or_default()
        .iter()
        .map(|c| c.restart_count)
        .sum();
    assert_eq!(restarts, 0, "the sidecar reloads in place");
    ns.delete_namespace().await;
}
