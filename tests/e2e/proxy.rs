//! The verifying proxy as a host process in front of a loopback upstream: 401/403 semantics,
//! identity headers, access log and metrics without values, and revocation latency.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use apitoken_operator::token::{Format, generate};
use axum::http::StatusCode;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::PolicyRule;
use kube::api::{Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Api, ResourceExt};

use crate::harness::*;
use crate::keysets::*;
use crate::rbac::operator_kubeconfig;

/// Lets the restricted identity `get` and `watch` the one Secret `name`, as a proxy's RBAC does.
async fn grant_keyset_access(ns: &TestNs, name: &str) {
    let rule = PolicyRule {
        api_groups: Some(vec![String::new()]),
        resources: Some(vec!["secrets".into()]),
        resource_names: Some(vec![name.into()]),
        verbs: vec!["get".into(), "watch".into()],
        ..Default::default()
    };
    ns.bind_operator(vec![rule]).await;
}

async fn proxy_for_secret(ns: &TestNs, secret: &str, extra: &[&str]) -> Proxy {
    grant_keyset_access(ns, secret).await;
    let upstream = format!("http://{}", start_upstream().await);
    let mut args = vec![
        "--upstream",
        &upstream,
        "--keyset-secret",
        secret,
        "-n",
        &ns.name,
    ];
    args.extend_from_slice(extra);
    Proxy::start(ns, &args, Some(operator_kubeconfig().into())).await
}

/// Waits (up to [`REFUSED_WITHIN`], for a mounted key set) until `key` gets `want` from `proxy`.
pub async fn wait_http(http: &Http, proxy: SocketAddr, key: &str, want: StatusCode) {
    eventually(
        &format!("HTTP {want} from the proxy"),
        REFUSED_WITHIN,
        || async { (http.status_with_key(proxy, key).await == want).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_proxy_answers_401_and_403_itself_and_forwards_the_identity() {
    let ns = TestNs::new("e2e-proxy").await;
    let _op = Operator::start(&ns);
    let values = apply_orders(
        &ns,
        &[
            ("reader", "api: orders", "{scopes: [orders:read]}"),
            ("nobody", "api: orders", "{}"),
            ("billing", "api: billing", "{scopes: [orders:read]}"),
        ],
    )
    .await;
    let [reader, nobody, billing] = <[String; 3]>::try_from(values).unwrap();
    let proxy = proxy_for_secret(&ns, "orders-keys", &["--require-scope", "orders:read"]).await;
    let http = Http::new();
    wait_http(&http, proxy.addr, &reader, StatusCode::OK).await;
    let before = proxy.access_lines().len();

    let (status, headers, body) = http.get(proxy.addr, "/orders?page=2", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], "ApiKey header=\"X-API-KEY\"");
    assert_eq!(body, r#"{"error":"unauthorized","result":"missing"}"#);
    let random = generate(&Format::default()).unwrap();
    let bad_sum = wrong_checksum(&reader);
    for (key, result) in [
        (random.expose(), "unknown"),
        (&bad_sum, "malformed"),
        (&billing, "unknown"),
    ] {
        let (status, _, body) = http.get(proxy.addr, "/", &[("x-api-key", key)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{result}");
        assert!(body.contains(&format!("\"result\":\"{result}\"")), "{body}");
    }
    let (status, _, body) = http.get(proxy.addr, "/", &[("x-api-key", &nobody)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        r#"{"error":"forbidden","missing":["orders:read"],"result":"insufficient_scope"}"#
    );

    // Forwarded: the key is stripped, a client's own identity headers are replaced.
    let (status, _, body) = http
        .get(
            proxy.addr,
            "/orders/7",
            &[("x-api-key", &reader), ("x-apitoken-name", "admin")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let echoed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let seen = &echoed["headers"];
    assert_eq!(echoed["path"], "/orders/7");
    assert_eq!(seen["x-apitoken-namespace"], ns.name.as_str());
    assert_eq!(seen["x-apitoken-name"], "reader");
    assert_eq!(seen["x-apitoken-scopes"], "orders:read");
    assert!(
        seen.get("x-api-key").is_none(),
        "X-API-KEY reached the upstream"
    );

    // The access log: one JSON line per request, never a value.
    let lines = proxy.access_lines().split_off(before);
    assert_eq!(lines.len(), 6, "{lines:?}");
    let last = lines.last().unwrap();
    assert_eq!(
        (
            &last["method"],
            &last["path"],
            &last["result"],
            &last["status"]
        ),
        (
            &"GET".into(),
            &"/orders/7".into(),
            &"valid".into(),
            &200.into()
        )
    );
    assert_eq!(
        (&last["name"], &last["revision"]),
        (&"reader".into(), &1.into())
    );
    assert!(last["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(
        lines
            .iter()
            .any(|l| l["result"] == "missing" && l["path"] == "/orders")
    );
    let (_, _, metrics) = http.get(proxy.metrics, "/metrics", &[]).await;
    keep_for_leak_check(&format!("{}.proxy.metrics", ns.name), &metrics);
    let key = format!(
        r#"apitoken_verifications_total{{namespace="{}",name="reader",result="valid"}}"#,
        ns.name
    );
    assert!(metrics.contains(&key), "{metrics}");
    assert!(metrics.contains(r#"result="insufficient_scope""#));
    assert!(metrics.contains("apitoken_verification_duration_seconds_bucket"));
    let log = std::fs::read_to_string(&proxy.access_log).unwrap()
        + &std::fs::read_to_string(&proxy.log).unwrap();
    for value in [
        &reader,
        &nobody,
        &billing,
        &bad_sum,
        &random.expose().to_owned(),
    ] {
        assert!(
            !log.contains(value.as_str()) && !metrics.contains(value.as_str()),
            "a value leaked"
        );
    }
    assert_eq!(
        http.get(proxy.metrics, "/readyz", &[]).await.0,
        StatusCode::OK
    );

    ns.assert_keyset_clean("orders-keys", &[reader.clone(), nobody, billing])
        .await;

    // Revoked: the next request is refused.
    ns.tokens()
        .delete("reader", &Default::default())
        .await
        .unwrap();
    wait_http(&http, proxy.addr, &reader, StatusCode::UNAUTHORIZED).await;
    ns.delete_namespace().await;
}

/// kubelet's atomic update of a Secret volume, as in the library's reload tests.
fn kubelet_write(dir: &Path, generation: u32, content: &str) {
    let ts = format!("..2026_11_23_00_00_00.{generation}");
    std::fs::create_dir(dir.join(&ts)).unwrap();
    std::fs::write(dir.join(&ts).join("keyset.json"), content).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    std::os::unix::fs::symlink(&ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if !dir.join("keyset.json").exists() {
        std::os::unix::fs::symlink("..data/keyset.json", dir.join("keyset.json")).unwrap();
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

#[tokio::test]
async fn the_proxy_follows_a_mounted_key_set_through_symlink_swaps() {
    let ns = TestNs::new("e2e-proxy-dir").await;
    let _op = Operator::start(&ns);
    ns.kubectl_apply(&token_yaml("a", "api: orders", "{}"));
    ns.kubectl_apply(&verifier_yaml("v", "{matchLabels: {api: orders}}", "keys"));
    let value = ns.value_of("a").await;
    let with = ns
        .wait_keyset("keys", "the value", |d| d.keys.len() == 1)
        .await;
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), 1, &with.render());
    let upstream = format!("http://{}", start_upstream().await);
    let keyset = dir.path().to_str().unwrap();
    // A poll interval far beyond the test: only the directory watch can bring the change.
    let args = [
        "--upstream",
        upstream.as_str(),
        "--keyset",
        keyset,
        "--poll-seconds",
        "3600",
    ];
    let proxy = Proxy::start(&ns, &args, None).await;
    let http = Http::new();
    assert_eq!(
        http.status_with_key(proxy.addr, &value).await,
        StatusCode::OK
    );

    ns.tokens().delete("a", &Default::default()).await.unwrap();
    let without = ns
        .wait_keyset("keys", "no value", |d| d.keys.is_empty())
        .await;
    kubelet_write(dir.path(), 2, &without.render());
    wait_http(&http, proxy.addr, &value, StatusCode::UNAUTHORIZED).await;
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    assert_eq!(log.matches("\"key set loaded\"").count(), 2, "{log}");
    ns.assert_keyset_clean("keys", &[value]).await;
    ns.delete_namespace().await;
}

/// Waits on a watch (opened before the change) until the key set no longer holds `sha256`.
async fn hash_gone(secrets: Api<Secret>, name: String, version: String, sha256: String) -> Instant {
    let params = WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(60);
    let mut events = secrets.watch(&params, &version).await.unwrap().boxed();
    while let Some(event) = events.try_next().await.unwrap() {
        if let WatchEvent::Modified(s) | WatchEvent::Added(s) = event {
            let doc = keyset_document(&s).unwrap();
            if doc.keys.iter().all(|k| k.sha256 != sha256) {
                return Instant::now();
            }
        }
    }
    panic!("the watch ended before the hash left the key set");
}

/// Longest wait for the proxy to follow a change: a kubelet-mounted key set waits for kubelet.
const REFUSED_WITHIN: Duration = Duration::from_secs(150);

/// Polls the proxy every 2 ms until it refuses `value`.
async fn refused(http: &Http, proxy: SocketAddr, value: &str) -> Instant {
    let deadline = Instant::now() + REFUSED_WITHIN;
    loop {
        if http.status_with_key(proxy, value).await == StatusCode::UNAUTHORIZED {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the proxy kept accepting a revoked value"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Nearest-rank percentile of sorted milliseconds.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Point 5 of issue 9, with `--keyset-secret`: from the API call (delete, or rotate with
/// invalidate-previous) until (a) the key-set Secret no longer holds the hash and (b) the proxy
/// answers 401. `REVOCATION_TRIALS` sets the trials per kind (default 5; the README's numbers use
/// 50). Numbers go to target/tmp/e2e-logs/revocation-keyset-secret.tsv; nothing here asserts a
/// speed.
#[tokio::test]
async fn revocation_latency_with_the_watched_secret() {
    let ns = TestNs::new("e2e-revoke").await;
    let _op = Operator::start(&ns);
    revocation_setup(&ns);
    let proxy = proxy_for_secret(&ns, "keys", &[]).await;
    let n = trials("REVOCATION_TRIALS", 5);
    let report = revocation_trials(&ns, proxy.addr, "keyset-secret", n).await;
    println!("{report}");
    ns.delete_namespace().await;
}

/// The verifier `v` (key set `keys`) and the ApiToken `rotated` that [`revocation_trials`] uses.
pub fn revocation_setup(ns: &TestNs) {
    ns.kubectl_apply(&verifier_yaml("v", "{matchLabels: {api: orders}}", "keys"));
    ns.kubectl_apply(&token_yaml(
        "rotated",
        "api: orders",
        "{rotation: {every: 24h, gracePeriod: 1h}}",
    ));
}

/// The number of trials from the environment variable `var`, else `default`.
pub fn trials(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `trials` deletions and as many rotations with invalidate-previous, each timed from the API
/// call until the key set lacks the hash and until the proxy at `proxy` answers 401. Returns the
/// p50/p99 report, also written to e2e-logs/revocation-`label`.tsv.
pub async fn revocation_trials(
    ns: &TestNs,
    proxy: SocketAddr,
    label: &str,
    trials: usize,
) -> String {
    let http = Http::new();
    let mut samples: Vec<(&str, f64, f64)> = Vec::new();
    let mut seen = Vec::new();
    for trial in 0..trials * 2 {
        let delete = trial % 2 == 0;
        let name = if delete {
            format!("deleted-{trial}")
        } else {
            "rotated".to_owned()
        };
        if delete {
            ns.kubectl_apply(&token_yaml(&name, "api: orders", "{}"));
        }
        let value = ns.value_of(&name).await;
        seen.push(value.clone());
        wait_http(&http, proxy, &value, StatusCode::OK).await;
        let sha = apitoken_verify::sha256_hex(value.as_bytes());
        let version = ns
            .secrets()
            .get("keys")
            .await
            .unwrap()
            .resource_version()
            .unwrap();
        let watch = tokio::spawn(hash_gone(ns.secrets(), "keys".into(), version, sha));
        let start = Instant::now();
        if delete {
            ns.tokens()
                .delete(&name, &Default::default())
                .await
                .unwrap();
        } else {
            let patch = serde_json::json!({"metadata": {"annotations": {
                "apitoken.dev/rotate": format!("trial-{trial}"),
                "apitoken.dev/invalidate-previous": "true",
            }}});
            ns.tokens()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
        }
        let refused_at = refused(&http, proxy, &value).await;
        let gone_at = tokio::time::timeout(TIMEOUT, watch)
            .await
            .expect("hash left in time")
            .unwrap();
        let ms = |t: Instant| t.duration_since(start).as_secs_f64() * 1000.0;
        samples.push((
            if delete { "delete" } else { "invalidate" },
            ms(gone_at),
            ms(refused_at),
        ));
        if !delete {
            // The next trial needs the rotated value in the proxy first.
            eventually("the new value in the Secret", TIMEOUT, || async {
                let v = secret_value(&ns.secrets().get(&name).await.ok()?, "token")?;
                (v != value).then_some(())
            })
            .await;
        }
    }
    let record =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-logs/revocation-{label}.tsv"));
    let mut report = String::new();
    for kind in ["delete", "invalidate"] {
        for (column, what) in [(1, "keyset"), (2, "proxy")] {
            let mut ms: Vec<f64> = samples
                .iter()
                .filter(|s| s.0 == kind)
                .map(|s| if column == 1 { s.1 } else { s.2 })
                .collect();
            ms.sort_by(f64::total_cmp);
            report += &format!(
                "{kind}\t{what}\tn={}\tp50={:.1}ms\tp99={:.1}ms\tmax={:.1}ms\n",
                ms.len(),
                percentile(&ms, 50.0),
                percentile(&ms, 99.0),
                ms.last().unwrap()
            );
        }
    }
    ns.assert_keyset_clean("keys", &seen).await;
    std::fs::write(record, &report).unwrap();
    report
}
