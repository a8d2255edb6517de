//! Fault 5: the operator is down across a due time and across an expiry. (Two missed due times
//! give one catch-up too: tests/e2e/rotation.rs `one_catch_up_rotation_after_downtime...`.)

use std::time::Duration;

use crate::common::*;
use crate::harness::*;

#[tokio::test]
async fn down_across_a_due_time_and_an_expiry() {
    let ns = TestNs::new("f-down").await;
    let mut op = Operator::start(&ns);
    ns.apply_yaml(&manifest("due", "{rotation: {every: 1m}}"))
        .await;
    ns.apply_yaml(&manifest(
        "oneshot",
        "{expiresAfter: 1m, rotation: {autoRenew: false}}",
    ))
    .await;
    wait_status(&ns, "due", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let t = wait_status(&ns, "oneshot", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let expires = t.status.unwrap().expires_at.unwrap().0;
    op.stop();
    tokio::time::sleep(Duration::from_secs(75)).await;
    assert!(jiff::Timestamp::now() > expires, "expired while down");
    assert_eq!(
        revision(&ns.tokens().get("due").await.unwrap()),
        1,
        "nothing happens while the operator is down"
    );

    op.spawn();
    let due = wait_status(&ns, "due", "catch-up", TIMEOUT, |t| revision(t) >= 2).await;
    let t = wait_status(&ns, "oneshot", "Expired", TIMEOUT, |t| {
        ready(t) == Some(("False", "Expired"))
    })
    .await;
    ns.wait_key_gone("oneshot", "token", TIMEOUT).await;
    op.quiet_offset().await;
    assert_eq!(revision(&due), 2, "one catch-up rotation");
    assert_eq!(
        revision(&ns.tokens().get("due").await.unwrap()),
        2,
        "one catch-up rotation"
    );
    assert_eq!(revision(&t), 1, "the expired value is not renewed");
    ns.single_event("oneshot", "Expired").await;
    let expire = op
        .json_lines("audit")
        .into_iter()
        .filter(|l| l["name"] == "oneshot" && l["action"] == "expire")
        .count();
    assert_eq!(expire, 1, "one expire audit line");
    ns.delete_namespace().await;
}
