use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{FutureExt, StreamExt};
use http::{Request, Response};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::client::{Body, ClientBuilder};
use kube::{Api, api::PostParams};

use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn claim(holder: &str, renewed: &str) -> Claim {
    Claim {
        holder: Some(holder.into()),
        renewed_at: Some(ts(renewed)),
        duration: Some(SignedDuration::from_secs(15)),
    }
}

const MARGIN: SignedDuration = SignedDuration::from_secs(3);

#[test]
fn a_claim_lasts_from_its_last_renewal_for_the_duration_less_the_margin() {
    let c = claim("op-a", "2026-11-22T10:00:00Z");
    assert_eq!(c.deadline("op-a", MARGIN), Some(ts("2026-11-22T10:00:12Z")));
    assert_eq!(c.deadline("op-b", MARGIN), None, "not ours");
    let incomplete = Claim {
        renewed_at: None,
        ..c.clone()
    };
    assert_eq!(incomplete.deadline("op-a", MARGIN), None);
    let released = Claim::default();
    assert_eq!(released.deadline("op-a", MARGIN), None);
}

#[test]
fn only_a_release_before_the_claim_ends_is_an_early_release() {
    let held = claim("op-a", "2026-11-22T10:00:00Z");
    let free = Claim::default();
    let at = |s| ts(s);
    assert!(Claim::released_early(
        Some(&held),
        &free,
        at("2026-11-22T10:00:05Z")
    ));
    // A standby clearing a claim that had ended is not a graceful stop.
    assert!(!Claim::released_early(
        Some(&held),
        &free,
        at("2026-11-22T10:00:15Z")
    ));
    assert!(!Claim::released_early(
        Some(&free),
        &free,
        at("2026-11-22T10:00:05Z")
    ));
    assert!(!Claim::released_early(
        None,
        &free,
        at("2026-11-22T10:00:05Z")
    ));
    assert!(!Claim::released_early(
        Some(&held),
        &claim("op-b", "2026-11-22T10:00:05Z"),
        at("2026-11-22T10:00:05Z")
    ));
}

#[test]
fn a_claim_reads_holder_renewal_and_duration_from_the_lease() {
    let lease: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "apitoken-operator"},
        "spec": {"holderIdentity": "op-a", "renewTime": "2026-11-22T10:00:00.250000Z",
                 "leaseDurationSeconds": 15}
    }))
    .unwrap();
    assert_eq!(
        Claim::from_lease(&lease),
        Claim {
            renewed_at: Some(ts("2026-11-22T10:00:00.25Z")),
            ..claim("op-a", "2026-11-22T10:00:00Z")
        }
    );
}

#[test]
fn writes_are_allowed_only_while_elected_and_before_the_deadline() {
    let l = Leadership::elected("op-a".into(), MARGIN);
    let renewed = "2026-11-22T10:00:00Z";
    l.observe(Some(claim("op-a", renewed)));
    assert!(
        !l.is_current_at(ts("2026-11-22T10:00:01Z")),
        "lease manager has not said so yet"
    );
    l.set_elected(true);
    assert!(l.is_current_at(ts("2026-11-22T10:00:01Z")));
    assert!(l.is_current_at(ts("2026-11-22T10:00:11.999Z")));
    assert!(
        !l.is_current_at(ts("2026-11-22T10:00:12Z")),
        "deadline reached"
    );
    assert!(
        !l.is_current_at(ts("2026-11-22T10:00:20Z")),
        "renewal never came"
    );
    // Someone else holds it now, whatever the lease manager last said.
    l.observe(Some(claim("op-b", "2026-11-22T10:00:20Z")));
    assert!(!l.is_current_at(ts("2026-11-22T10:00:21Z")));
    l.observe(None);
    assert!(!l.is_current_at(ts("2026-11-22T10:00:21Z")));
}

#[test]
fn without_election_the_process_always_writes() {
    let l = Leadership::sole();
    assert!(l.is_current_at(ts("2026-11-22T10:00:00Z")));
    assert_eq!(l.identity(), None);
}

#[tokio::test]
async fn becoming_the_writer_is_signalled_once_per_gain() {
    let l = Leadership::elected("op-a".into(), MARGIN);
    let mut gained = Box::pin(l.gained());
    let renewed = (Timestamp::now() - SignedDuration::from_secs(1)).to_string();
    l.set_elected(true);
    assert!(
        gained.next().now_or_never().is_none(),
        "no claim observed yet"
    );
    l.observe(Some(claim("op-a", &renewed)));
    assert_eq!(gained.next().now_or_never(), Some(Some(())));
    // A renewal while current is no new gain.
    l.observe(Some(claim("op-a", &Timestamp::now().to_string())));
    assert!(gained.next().now_or_never().is_none());
    l.set_elected(false);
    l.set_elected(true);
    assert_eq!(gained.next().now_or_never(), Some(Some(())));
}

/// A kube Client whose transport answers every request with `{}` and counts them.
fn client_behind_fence(leadership: Leadership) -> (kube::Client, Arc<AtomicUsize>) {
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let transport = tower::service_fn(move |_request: Request<Body>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            Ok::<_, std::convert::Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Body::from(
                        br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}"#.to_vec(),
                    ))
                    .unwrap(),
            )
        }
    });
    let client = ClientBuilder::new(transport, "default")
        .with_layer(&Fence::new(leadership))
        .build();
    (client, sent)
}

#[tokio::test]
async fn the_fence_refuses_writes_but_not_reads_when_the_claim_is_not_current() {
    let leadership = Leadership::elected("op-a".into(), MARGIN);
    let (client, sent) = client_behind_fence(leadership.clone());
    let secrets: Api<Secret> = Api::namespaced(client, "ns1");

    secrets.get("s").await.expect("reads pass");
    assert_eq!(sent.load(Ordering::SeqCst), 1);
    let refused = secrets
        .create(&PostParams::default(), &Secret::default())
        .await
        .unwrap_err();
    assert!(NotLeader::is(&refused), "{refused:?}");
    assert_eq!(
        sent.load(Ordering::SeqCst),
        1,
        "the write never left the process"
    );

    leadership.set_elected(true);
    leadership.observe(Some(claim("op-a", &Timestamp::now().to_string())));
    secrets
        .create(&PostParams::default(), &Secret::default())
        .await
        .expect("the leader writes");
    assert_eq!(sent.load(Ordering::SeqCst), 2);
}
