//! Fault 6: the leader dies in the middle of a burst of due rotations, between a Secret write
//! and its status write; the standby takes over. No token is rotated twice, none is skipped,
//! and the value the dead leader wrote is the one that stays current.

use std::time::Duration;

use apitoken_operator::failpoint::AFTER_SECRET_WRITE;
use apitoken_operator::token;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;

use crate::common::*;
use crate::harness::*;

const TOKENS: usize = 12;
/// The leader aborts at the Secret write of this rotation of the burst (after its 12 issues).
const CRASH_AT_ROTATION: usize = 5;
/// The operator's default lease duration (`--lease-duration`).
const LEASE: Duration = Duration::from_secs(15);

fn elected(ns: &TestNs, suffix: &str, env: &[(&str, &str)]) -> Operator {
    let args = [
        "--namespace",
        &ns.name,
        "--leader-elect",
        "--lease-namespace",
        &ns.name,
        "--workers",
        "1",
    ];
    Operator::launch(&format!("{}-{suffix}", ns.name), &args, env)
}

async fn holder(ns: &TestNs) -> Option<String> {
    let lease = ns
        .api::<Lease>()
        .get_opt("apitoken-operator")
        .await
        .ok()??;
    lease.spec?.holder_identity
}

async fn wait_holder(ns: &TestNs, op: &Operator, timeout: Duration) {
    let prefix = format!("{}_", op.name);
    eventually("the lease holder", timeout, || async {
        holder(ns).await.filter(|h| h.starts_with(&prefix))
    })
    .await;
}

fn name(i: usize) -> String {
    format!("burst-{i}")
}

#[tokio::test]
async fn leader_killed_mid_burst_of_due_rotations_hands_over_without_a_double_or_missed_one() {
    let ns = TestNs::new("f-failover").await;
    // Leader first (armed), then the standby, so the armed process is the one that writes.
    let after = (TOKENS + CRASH_AT_ROTATION - 1).to_string();
    let mut leader = elected(
        &ns,
        "a",
        &[
            ("APITOKEN_FAILPOINT", AFTER_SECRET_WRITE),
            ("APITOKEN_FAILPOINT_AFTER", &after),
        ],
    );
    wait_holder(&ns, &leader, TIMEOUT).await;
    let standby = elected(&ns, "b", &[]);
    for i in 0..TOKENS {
        ns.apply_yaml(&manifest(
            &name(i),
            "{rotation: {every: 1m, gracePeriod: 10m}}",
        ))
        .await;
    }
    let mut due = Vec::new();
    for i in 0..TOKENS {
        let t = wait_status(&ns, &name(i), "revision 1", TIMEOUT, |t| revision(t) == 1).await;
        due.push(t.status.unwrap().next_rotation_at.unwrap().0);
    }

    // The burst starts at the first due time; the leader aborts at its fifth rotation.
    let exit = leader.wait_exit(Duration::from_secs(120)).await;
    assert!(!exit.success(), "the failpoint aborted the leader: {exit}");
    let crashed_at = Timestamp::now();
    assert!(
        crashed_at >= *due.iter().min().unwrap(),
        "the leader died during the burst, not before it"
    );
    wait_holder(&ns, &standby, LEASE * 3).await;

    for (i, due) in due.iter().enumerate() {
        let t = wait_status(&ns, &name(i), "revision 2", Duration::from_secs(90), |t| {
            revision(t) >= 2
        })
        .await;
        let status = t.status.clone().unwrap();
        let revisions: Vec<i64> = status.history.iter().map(|h| h.revision).collect();
        assert_eq!(
            revisions,
            [2, 1],
            "{}: one rotation, none skipped or doubled",
            name(i)
        );
        assert!(
            status.issued_at.unwrap().0 >= *due,
            "{} rotated early",
            name(i)
        );
        let secret = ns.secrets().get(&name(i)).await.unwrap();
        let value = secret_value(&secret, "token").expect("a current value");
        assert_eq!(
            fingerprint(&t),
            token::fingerprint(value.as_bytes()),
            "{}: status matches the Secret",
            name(i)
        );
        assert!(
            secret_value(&secret, "token.previous").is_some(),
            "{}: revision 1 stays valid for the grace period",
            name(i)
        );
        let audits = audit_count(&leader, &name(i), 2) + audit_count(&standby, &name(i), 2);
        assert_eq!(audits, 1, "{}: one audit line for revision 2", name(i));
    }
    // The dead leader rotated some of the burst, the standby the rest (and the one interrupted).
    let by_leader = (0..TOKENS)
        .filter(|i| audit_count(&leader, &name(*i), 2) == 1)
        .count();
    assert_eq!(
        by_leader,
        CRASH_AT_ROTATION - 1,
        "the leader recorded the rotations before its crash"
    );
    // Settled: nothing is due until the next minute, so the standby has nothing left to do.
    let offset = standby.quiet_offset().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let next_due = due
        .iter()
        .min()
        .unwrap()
        .checked_add(SignedDuration::from_mins(1))
        .unwrap();
    if Timestamp::now() < next_due {
        assert!(
            !standby.logs_since(offset).contains("\"reconcile start\""),
            "no reconcile after settling"
        );
    }
    ns.delete_namespace().await;
}
