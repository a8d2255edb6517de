//! Two operator processes with `--leader-elect` on one namespace: one writes, the other keeps
//! its cache warm; a killed leader hands over within the lease duration without a rotation
//! twice or none.

use std::time::Duration;

use apitoken_operator::api::ApiToken;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use crate::harness::*;
use crate::rbac::{ALL_SECRET_VERBS, lease_rules, operator_kubeconfig, operator_rules};

/// The operator's default lease duration (`--lease-duration`).
const LEASE: SignedDuration = SignedDuration::from_secs(15);
const TOKENS: usize = 4;

fn elected(ns: &TestNs, suffix: &str, env: &[(&str, &str)]) -> Operator {
    let args = [
        "--namespace",
        &ns.name,
        "--leader-elect",
        "--lease-namespace",
        &ns.name,
    ];
    Operator::launch(&format!("{}-{suffix}", ns.name), &args, env)
}

async fn lease(ns: &TestNs) -> Option<Lease> {
    ns.api::<Lease>()
        .get_opt("apitoken-operator")
        .await
        .unwrap()
}

fn holder(lease: &Lease) -> Option<&str> {
    lease.spec.as_ref()?.holder_identity.as_deref()
}

/// Waits for a Lease holder that is one of `candidates` (by POD_NAME prefix); returns its index.
async fn wait_holder(ns: &TestNs, candidates: &[&Operator], timeout: Duration) -> (usize, Lease) {
    eventually("a leader", timeout, || async {
        let lease = lease(ns).await?;
        let h = holder(&lease)?.to_owned();
        let i = candidates
            .iter()
            .position(|op| h.starts_with(&format!("{}_", op.name)))?;
        Some((i, lease))
    })
    .await
}

/// Appends a measurement to target/tmp/e2e-logs/handover.tsv and prints it.
fn record(what: &str, seconds: f64) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs/handover.tsv");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        use std::io::Write;
        let _ = writeln!(file, "{what}\t{seconds:.3}");
    }
    eprintln!("measured: {what} {seconds:.3} s");
}

fn issued_at(t: &ApiToken) -> Timestamp {
    t.status.as_ref().unwrap().issued_at.as_ref().unwrap().0
}

#[tokio::test]
async fn one_replica_writes_and_a_killed_leader_hands_over_without_a_double_or_missed_rotation() {
    let ns = TestNs::new("e2e-ha").await;
    let mut ops = [elected(&ns, "a", &[]), elected(&ns, "b", &[])];
    let (first, _) = wait_holder(&ns, &[&ops[0], &ops[1]], TIMEOUT).await;
    let second = 1 - first;
    for op in &ops {
        eventually("/readyz on both replicas", TIMEOUT, || async {
            (op.http_get("/readyz").await.0 == 200).then_some(())
        })
        .await;
    }
    let names: Vec<String> = (0..TOKENS).map(|i| format!("tok-{i}")).collect();
    for name in &names {
        ns.apply_yaml(&format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {{rotation: {{every: 1m}}}}"
        ))
        .await;
    }
    let mut issued = Vec::new();
    for name in &names {
        issued.push(wait_status(&ns, name, "issued", TIMEOUT, |t| revision(t) == 1).await);
    }

    // Exactly one replica writes: its Events, its audit lines, its write counters.
    for name in &names {
        let event = &ns.events_with_reason(name, "Issued").await[0];
        assert_eq!(
            event.reporting_instance.as_deref(),
            Some(ops[first].name.as_str())
        );
    }
    let (leader, standby) = (ops[first].scrape().await, ops[second].scrape().await);
    assert_eq!(leader.get("apitoken_leader", &[]), Some(1.0));
    assert_eq!(standby.get("apitoken_leader", &[]), Some(0.0));
    assert_eq!(
        leader.get(
            "apitoken_api_writes_total",
            &[("resource", "secrets"), ("verb", "create")]
        ),
        Some(TOKENS as f64)
    );
    let standby_writes: Vec<_> = standby
        .writes()
        .into_keys()
        .filter(|(r, _)| r != "leases")
        .collect();
    assert!(
        standby_writes.is_empty(),
        "the standby wrote {standby_writes:?}"
    );
    assert!(ops[second].json_lines("audit").is_empty());
    assert_eq!(ops[first].json_lines("audit").len(), TOKENS);
    // The standby's cache is warm: it exports the same per-token gauges.
    assert_eq!(standby.series("apitoken_ready").len(), TOKENS);

    // Kill the leader three seconds before the first rotation is due.
    let due: Vec<Timestamp> = issued
        .iter()
        .map(|t| issued_at(t) + SignedDuration::from_mins(1))
        .collect();
    let first_due = *due.iter().min().unwrap();
    let wait = first_due.duration_since(Timestamp::now()) - SignedDuration::from_secs(3);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    let before_kill = lease(&ns).await.unwrap();
    ops[first].kill();
    let killed_at = Timestamp::now();
    let last_renewal = lease(&ns)
        .await
        .unwrap()
        .spec
        .unwrap()
        .renew_time
        .unwrap()
        .0;
    assert_eq!(
        holder(&before_kill),
        lease(&ns).await.as_ref().and_then(holder)
    );

    let (now_leader, taken) = wait_holder(&ns, &[&ops[second]], LEASE.unsigned_abs() * 2).await;
    assert_eq!(now_leader, 0);
    let acquired = taken.spec.unwrap().acquire_time.unwrap().0;
    record(
        "handover after SIGKILL (kill -> acquireTime)",
        acquired.duration_since(killed_at).as_secs_f64(),
    );
    record(
        "handover after the last renewal (renewTime -> acquireTime)",
        acquired.duration_since(last_renewal).as_secs_f64(),
    );
    // A standby may take over only once the claim expired, and takes over at once after that
    // (kube-lease-manager releases an expired claim and re-locks after up to 1 s).
    assert!(acquired >= last_renewal + LEASE, "took over a live claim");
    assert!(
        acquired <= last_renewal + LEASE + SignedDuration::from_secs(3),
        "handover took longer than the lease duration"
    );

    // Every rotation due during the handover happened, exactly once, as soon as allowed.
    for (name, due) in names.iter().zip(&due) {
        let t = wait_status(&ns, name, "revision 2", Duration::from_secs(60), |t| {
            revision(t) >= 2
        })
        .await;
        let status = t.status.clone().unwrap();
        let revisions: Vec<i64> = status.history.iter().map(|h| h.revision).collect();
        assert_eq!(
            revisions,
            [2, 1],
            "{name}: one rotation, none skipped or doubled"
        );
        let rotated = issued_at(&t);
        assert!(rotated >= *due, "{name} rotated early");
        // issuedAt is whole seconds.
        let allowed = (*due).max(Timestamp::from_second(acquired.as_second()).unwrap());
        record(
            "rotation lateness after handover (issuedAt - max(due, acquireTime))",
            rotated.duration_since(allowed).as_secs_f64(),
        );
        assert!(
            rotated <= allowed + SignedDuration::from_secs(3),
            "{name}: {rotated} vs due {due}, leader since {acquired}"
        );
        assert_eq!(last_reason(&t), "Schedule");
        assert_eq!(
            status.next_rotation_at.unwrap().0,
            rotated + SignedDuration::from_mins(1)
        );
        let secret = ns.secrets().get(name).await.unwrap();
        assert_eq!(secret.annotations()["apitoken.dev/revision"], "2");
        let rotations = ns.events_with_reason(name, "Rotated").await;
        assert_eq!(rotations.len(), 1);
        assert!(rotations[0].series.is_none());
        assert_eq!(
            rotations[0].reporting_instance.as_deref(),
            Some(ops[second].name.as_str())
        );
    }
    let m = ops[second].scrape().await;
    assert_eq!(m.get("apitoken_leader", &[]), Some(1.0));
    assert_eq!(
        m.get("apitoken_issues_total", &[("reason", "Schedule")]),
        Some(TOKENS as f64)
    );
}

#[tokio::test]
async fn a_stopped_leader_releases_the_lease_and_a_deleted_lease_stops_the_process() {
    let ns = TestNs::new("e2e-release").await;
    // As the operator's own identity with exactly the namespaced RBAC the chart grants.
    ns.grant_operator([operator_rules(ALL_SECRET_VERBS), lease_rules()].concat())
        .await;
    let kubeconfig = operator_kubeconfig();
    let env = [("KUBECONFIG", kubeconfig.as_str())];
    let mut ops = [elected(&ns, "a", &env), elected(&ns, "b", &env)];
    let (first, _) = wait_holder(&ns, &[&ops[0], &ops[1]], TIMEOUT).await;
    let second = 1 - first;
    ns.apply_yaml(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {name: tok}\nspec: {}",
    )
    .await;
    wait_status(&ns, "tok", "issued", TIMEOUT, |t| revision(t) == 1).await;

    // SIGTERM: the leader finishes, gives the Lease up, and the standby takes it at once.
    let stopped_at = Timestamp::now();
    let exit = ops[first].stop().unwrap();
    assert!(exit.success(), "{exit}");
    assert!(ops[first].logs().contains("released the leader lease"));
    let (_, taken) = wait_holder(&ns, &[&ops[second]], TIMEOUT).await;
    let acquired = taken.spec.unwrap().acquire_time.unwrap().0;
    record(
        "handover after SIGTERM (stop -> acquireTime)",
        acquired.duration_since(stopped_at).as_secs_f64(),
    );
    assert!(acquired.duration_since(stopped_at) < SignedDuration::from_secs(5));

    // The new leader works: a deleted Secret is re-issued.
    ns.secrets()
        .delete("tok", &DeleteParams::default())
        .await
        .unwrap();
    wait_status(&ns, "tok", "revision 2", TIMEOUT, |t| revision(t) == 2).await;

    // The Lease deleted: the election cannot go on, so the process exits (a restart re-creates it).
    let leases: Api<Lease> = ns.api();
    leases
        .delete("apitoken-operator", &DeleteParams::default())
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    let exit = loop {
        if let Some(exit) = ops[second].exited() {
            break exit;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the operator did not exit"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!exit.success(), "{exit}");
    assert!(ops[second].logs().contains("leader election stopped"));
}

#[tokio::test]
async fn a_paused_leader_that_resumes_after_losing_its_claim_writes_nothing() {
    let ns = TestNs::new("e2e-pause").await;
    let ops = [elected(&ns, "a", &[]), elected(&ns, "b", &[])];
    let (first, _) = wait_holder(&ns, &[&ops[0], &ops[1]], TIMEOUT).await;
    let second = 1 - first;
    let names = ["tok-0", "tok-1"];
    for name in names {
        ns.apply_yaml(&format!(
            "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}}}\nspec: {{rotation: {{every: 1m}}}}"
        ))
        .await;
    }
    let mut due = Vec::new();
    for name in names {
        let t = wait_status(&ns, name, "issued", TIMEOUT, |t| revision(t) == 1).await;
        due.push(issued_at(&t) + SignedDuration::from_mins(1));
    }
    ops[first].quiet_offset().await;
    let before = ops[first].scrape().await.writes();
    let audit_before = ops[first].json_lines("audit").len();

    // Freeze the leader shortly before its rotations are due: its timers for them are set.
    let first_due = *due.iter().min().unwrap();
    let wait = first_due.duration_since(Timestamp::now()) - SignedDuration::from_secs(5);
    tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    ops[first].signal("-STOP");
    wait_holder(&ns, &[&ops[second]], LEASE.unsigned_abs() * 2).await;
    for name in names {
        wait_status(&ns, name, "revision 2", Duration::from_secs(60), |t| {
            revision(t) == 2
        })
        .await;
    }

    // It wakes up with overdue timers and a claim it still believes in: the deadline stops it.
    let resumed = ops[first].line_offset();
    ops[first].signal("-CONT");
    eventually(
        "the resumed replica to see it is a standby",
        TIMEOUT,
        || async {
            let m = ops[first].scrape().await;
            (m.get("apitoken_leader", &[]) == Some(0.0)).then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = ops[first].scrape().await.writes();
    let non_lease = |w: &std::collections::BTreeMap<(String, String), f64>| {
        w.iter()
            .filter(|((r, _), _)| r != "leases")
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        non_lease(&after),
        non_lease(&before),
        "the resumed replica wrote"
    );
    assert_eq!(ops[first].json_lines("audit").len(), audit_before);
    assert!(
        ops[first]
            .logs_since(resumed)
            .contains("standby: not reconciling"),
        "its overdue reconciles ran and were skipped"
    );
    for name in names {
        let t = ns.tokens().get(name).await.unwrap();
        let revisions: Vec<i64> = t
            .status
            .unwrap()
            .history
            .iter()
            .map(|h| h.revision)
            .collect();
        assert_eq!(revisions, [2, 1], "{name}");
        for event in ns.events_with_reason(name, "Rotated").await {
            assert_eq!(
                event.reporting_instance.as_deref(),
                Some(ops[second].name.as_str())
            );
        }
    }
}
