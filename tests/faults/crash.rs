//! Fault 1: the process dies between the Secret write and the status write.

use std::time::Duration;

use apitoken_operator::failpoint::AFTER_SECRET_WRITE;
use apitoken_operator::rotate;
use apitoken_operator::token;

use crate::common::*;
use crate::harness::*;

#[tokio::test]
async fn killed_between_secret_and_status_write_records_one_rotation_on_restart() {
    let ns = TestNs::new("f-crash").await;
    let mut op = Operator::start(&ns);
    ns.apply_yaml(&manifest(
        "crash",
        "{rotation: {every: 24h, gracePeriod: 10m}}",
    ))
    .await;
    wait_status(&ns, "crash", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let v1 = secret_value(&ns.secrets().get("crash").await.unwrap(), "token").unwrap();
    op.stop();

    // Armed: the next Secret write with a new value aborts the process before status is written.
    op.env = vec![("APITOKEN_FAILPOINT".into(), AFTER_SECRET_WRITE.into())];
    op.spawn();
    rotate::request(&ns.client, &ns.name, "crash", false)
        .await
        .unwrap();
    let exit = op.wait_exit(TIMEOUT).await;
    assert!(
        !exit.success(),
        "the failpoint aborted the operator: {exit}"
    );
    // The crash left the new value in the Secret and the old record in status.
    let secret = ns.secrets().get("crash").await.unwrap();
    let v2 = secret_value(&secret, "token").unwrap();
    assert_ne!(v2, v1, "the Secret holds the new value");
    let stale = ns.tokens().get("crash").await.unwrap();
    assert_eq!(
        revision(&stale),
        1,
        "status was not written before the crash"
    );

    op.env.clear();
    op.spawn();
    let t = wait_status(&ns, "crash", "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    let offset = op.quiet_offset().await;
    let t = ns.tokens().get("crash").await.unwrap_or(t);
    assert_eq!(revision(&t), 2, "exactly one rotation recorded");
    let secret = ns.secrets().get("crash").await.unwrap();
    assert_eq!(
        secret_value(&secret, "token").as_deref(),
        Some(v2.as_str()),
        "the value handed out before the crash stays current"
    );
    assert_eq!(
        secret_value(&secret, "token.previous").as_deref(),
        Some(v1.as_str()),
        "the value before it stays valid for the grace period"
    );
    assert_eq!(
        fingerprint(&t),
        token::fingerprint(v2.as_bytes()),
        "status matches the Secret"
    );
    let history: Vec<i64> = t
        .status
        .as_ref()
        .unwrap()
        .history
        .iter()
        .map(|h| h.revision)
        .collect();
    assert_eq!(
        history.iter().filter(|r| **r == 2).count(),
        1,
        "revision 2 in history once: {history:?}"
    );
    assert_eq!(
        audit_count(&op, "crash", 2),
        1,
        "one audit line for revision 2"
    );
    ns.single_event("crash", "Rotated").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !op.logs_since(offset).contains("\"reconcile start\""),
        "no reconcile after settling: nothing left to do"
    );
    ns.delete_namespace().await;
}
