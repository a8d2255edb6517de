//! Fault 4: another client edits the ApiToken's labels and the Secret's own annotations in a
//! tight loop while rotations happen. The operator converges, keeps the other client's
//! annotations, and its reconciles and writes stay bounded (no hot loop, no write per edit).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::watcher;
use kube::{Api, Resource};

use apitoken_operator::rotate;
use apitoken_operator::token;

use crate::common::*;
use crate::harness::*;

/// How long the other client keeps editing: across one scheduled rotation.
const CONTENTION: Duration = Duration::from_secs(75);
/// The other client's pause between edits.
const EDIT_EVERY: Duration = Duration::from_millis(100);
/// Upper bound on the operator's own writes (Secret and ApiToken) per minute of contention: a
/// rotation is one Secret and one status write; an edit by someone else is none.
const MAX_WRITES_PER_MIN: f64 = 12.0;

/// Counts modifications of one object seen by a watch, from now on.
fn count_modifications<K>(api: Api<K>, name: &str) -> Arc<AtomicUsize>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    tokio::spawn(async move {
        let mut listed = false;
        let mut events = std::pin::pin!(watcher(api, config));
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone) => listed = true,
                Ok(watcher::Event::Apply(_)) if listed => {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                _ => {}
            }
        }
    });
    count
}

#[tokio::test]
async fn foreign_edits_in_a_tight_loop_during_rotations_converge_with_bounded_writes() {
    let ns = TestNs::new("f-conflict").await;
    let op = Operator::start(&ns);
    ns.apply_yaml(&manifest("busy", "{rotation: {every: 1m}}"))
        .await;
    wait_status(&ns, "busy", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let start = op.quiet_offset().await;
    let token_writes = count_modifications(ns.tokens(), "busy");
    let secret_writes = count_modifications(ns.secrets(), "busy");
    tokio::time::sleep(Duration::from_secs(2)).await; // both watches listed

    let (tokens, secrets) = (ns.tokens(), ns.secrets());
    let intruder = PatchParams {
        field_manager: Some("intruder".into()),
        ..PatchParams::default()
    };
    let began = Instant::now();
    let mut edits = 0usize;
    let mut requested = false;
    while began.elapsed() < CONTENTION {
        let n = edits.to_string();
        let label = serde_json::json!({"metadata": {"labels": {"touched": n}}});
        let note = serde_json::json!({"metadata": {"annotations": {"other.example/note": n}}});
        tokens
            .patch("busy", &intruder, &Patch::Merge(&label))
            .await
            .unwrap();
        secrets
            .patch("busy", &intruder, &Patch::Merge(&note))
            .await
            .unwrap();
        edits += 1;
        if !requested && began.elapsed() > Duration::from_secs(5) {
            rotate::request(&ns.client, &ns.name, "busy", false)
                .await
                .unwrap();
            requested = true;
        }
        tokio::time::sleep(EDIT_EVERY).await;
    }
    let minutes = began.elapsed().as_secs_f64() / 60.0;
    let end = op.line_offset();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Converged: the requested and the scheduled rotation, status and Secret agree.
    let t = wait_status(&ns, "busy", "revision 3", TIMEOUT, |t| revision(t) >= 3).await;
    op.quiet_offset().await;
    let t = ns.tokens().get("busy").await.unwrap_or(t);
    assert_eq!(revision(&t), 3, "one requested and one scheduled rotation");
    assert_eq!(ready(&t), Some(("True", "Issued")));
    let secret = ns.secrets().get("busy").await.unwrap();
    let value = secret_value(&secret, "token").unwrap();
    assert_eq!(fingerprint(&t), token::fingerprint(value.as_bytes()));
    let last = (edits - 1).to_string();
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()["other.example/note"],
        last,
        "the other client's annotation is kept"
    );

    // Every edit by the other client (and the one rotation request) is one modification; the
    // rest are the operator's.
    let ours = (token_writes.load(Ordering::SeqCst) + secret_writes.load(Ordering::SeqCst))
        .saturating_sub(2 * edits + 1);
    assert!(
        ours >= 4,
        "the two rotations each wrote the Secret and status"
    );
    let reconciles =
        count_messages(&op, start, "reconcile start") - count_messages(&op, end, "reconcile start");
    let per_min = |n: usize| n as f64 / minutes;
    eprintln!(
        "measured: {edits} foreign edits of each object in {minutes:.2} min; operator writes \
         {ours} ({:.1}/min), reconciles {reconciles} ({:.1}/min)",
        per_min(ours),
        per_min(reconciles)
    );
    assert!(
        per_min(ours) <= MAX_WRITES_PER_MIN,
        "{ours} operator writes in {minutes:.2} min"
    );
    // A reconcile per foreign edit at most (edits that arrive together share one), plus retries
    // of conflicting writes and the rotations: never a loop feeding itself.
    assert!(
        reconciles <= 2 * edits + 30,
        "{reconciles} reconciles for {edits} edits of each object"
    );
    ns.delete_namespace().await;
}
