//! Rotation, requests, grace, expiry, catch-up, history and the audit log, on the real control
//! plane with real waiting: `every: 1m` is the shortest interval the API allows.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use apitoken_operator::api::ApiToken;
use jiff::Timestamp;
use kube::ResourceExt;

use crate::harness::*;

/// A rotation may be at most this late (actual minus due time) in these tests.
const MAX_LATENESS: Duration = Duration::from_secs(5);

fn manifest(name: &str, spec: &str, annotations: &str) -> String {
    format!(
        "apiVersion: apitoken.dev/v1alpha1\nkind: ApiToken\nmetadata: {{name: {name}, annotations: {{{annotations}}}}}\nspec: {spec}\n"
    )
}

/// `actual` must be at or after `due`, and at most [`MAX_LATENESS`] after it.
/// Each measurement is also appended to target/tmp/e2e-logs/lateness.tsv for the record.
fn assert_on_time(what: &str, due: Timestamp, actual: Timestamp) {
    let late = actual.duration_since(due);
    let record = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-logs/lateness.tsv");
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(record)
    {
        use std::io::Write;
        let _ = writeln!(file, "{what}\t{:.3}", late.as_secs_f64());
    }
    assert!(
        late >= jiff::SignedDuration::ZERO,
        "{what} {:#} early",
        -late
    );
    assert!(
        late.as_secs_f64() <= MAX_LATENESS.as_secs_f64(),
        "{what} {late:#} late"
    );
}

fn issued_at(t: &ApiToken) -> Timestamp {
    t.status.as_ref().unwrap().issued_at.as_ref().unwrap().0
}

async fn token_value(ns: &TestNs, secret: &str, key: &str) -> Option<String> {
    secret_value(&ns.secrets().get(secret).await.ok()?, key)
}

#[tokio::test]
async fn interval_rotation_is_on_time_and_keeps_the_previous_value_for_the_grace_period() {
    let ns = TestNs::new("e2e-every").await;
    let _op = Operator::start(&ns);
    ns.apply_yaml(&manifest(
        "every",
        "{rotation: {every: 1m, gracePeriod: 15s}}",
        "",
    ))
    .await;
    let first = wait_status(&ns, "every", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let v1 = token_value(&ns, "every", "token").await.unwrap();
    let due = first
        .status
        .as_ref()
        .unwrap()
        .next_rotation_at
        .as_ref()
        .expect("nextRotationAt")
        .0;
    assert_eq!(due, issued_at(&first) + jiff::SignedDuration::from_mins(1));

    let second = wait_status(&ns, "every", "revision 2", Duration::from_secs(90), |t| {
        revision(t) == 2
    })
    .await;
    // The operator's own record of when it rotated.
    assert_on_time("rotation", due, issued_at(&second));
    let status = second.status.clone().unwrap();
    assert_eq!(
        status.last_rotation.as_ref().unwrap().reason.as_str(),
        "Schedule"
    );
    assert_eq!(
        token_value(&ns, "every", "token.previous").await.as_deref(),
        Some(v1.as_str()),
        "previous value kept"
    );
    let previous = status.previous.expect("status.previous during grace");
    assert_eq!(
        previous.fingerprint,
        first.status.unwrap().fingerprint.unwrap()
    );
    let grace_end = previous.valid_until.0;

    ns.wait_key_gone("every", "token.previous", Duration::from_secs(30))
        .await;
    // Observed within one 200 ms poll of the removal: neither before the grace end nor late.
    assert_on_time("removal of token.previous", grace_end, Timestamp::now());
    // Status is written just after the Secret (tens of milliseconds under load).
    let t = wait_status(&ns, "every", "status.previous cleared", TIMEOUT, |t| {
        t.status.as_ref().unwrap().previous.is_none()
    })
    .await;
    assert_eq!(revision(&t), 2, "grace end is not a rotation");
    let rotated = ns.events_with_reason("every", "Rotated").await;
    let note = rotated[0].note.clone().unwrap();
    assert!(
        note.contains("revision 2") && note.contains("trigger: Schedule"),
        "{note}"
    );
}

#[tokio::test]
async fn cron_schedule_rotates_at_the_local_time_of_its_zone() {
    let ns = TestNs::new("e2e-cron").await;
    let _op = Operator::start(&ns);
    // Two minutes ahead, as wall-clock time in Kolkata (UTC+05:30): the same "M H" read in UTC
    // or any whole-hour zone would be hours away.
    let zone = jiff::tz::TimeZone::get("Asia/Kolkata").unwrap();
    let local = (Timestamp::now() + jiff::SignedDuration::from_mins(2)).to_zoned(zone);
    let due = local.start_of_day().unwrap().timestamp()
        + jiff::SignedDuration::from_hours(local.hour().into())
        + jiff::SignedDuration::from_mins(local.minute().into());
    let schedule = format!("{} {} * * *", local.minute(), local.hour());
    let spec = format!("{{rotation: {{schedule: '{schedule}', timeZone: Asia/Kolkata}}}}");
    ns.apply_yaml(&manifest("cron", &spec, "")).await;
    let first = wait_status(&ns, "cron", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let next = first
        .status
        .as_ref()
        .unwrap()
        .next_rotation_at
        .as_ref()
        .expect("nextRotationAt")
        .0;
    assert_eq!(next, due, "{schedule} in Asia/Kolkata");

    let second = wait_status(&ns, "cron", "revision 2", Duration::from_secs(180), |t| {
        revision(t) == 2
    })
    .await;
    assert_on_time("cron rotation", due, issued_at(&second));
    let status = second.status.unwrap();
    assert_eq!(status.last_rotation.unwrap().reason.as_str(), "Schedule");
    assert_eq!(
        status.next_rotation_at.unwrap().0,
        due + jiff::SignedDuration::from_hours(24)
    );
}

#[tokio::test]
async fn rotate_annotation_rotates_once_per_value_and_can_invalidate_at_once() {
    let ns = TestNs::new("e2e-request").await;
    let op = Operator::start(&ns);
    let spec = "{rotation: {every: 720h, gracePeriod: 1h}}";
    // A request present at creation is part of the first issue, not a second rotation.
    ns.apply_yaml(&manifest("req", spec, "apitoken.dev/rotate: a"))
        .await;
    let t = wait_status(&ns, "req", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    assert_eq!(t.status.unwrap().last_rotate_request.as_deref(), Some("a"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        revision(&ns.tokens().get("req").await.unwrap()),
        1,
        "one value for create + request"
    );

    ns.apply_yaml(&manifest("req", spec, "apitoken.dev/rotate: b"))
        .await;
    let t = wait_status(&ns, "req", "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    let status = t.status.unwrap();
    assert_eq!(status.last_rotation.unwrap().reason.as_str(), "Requested");
    assert_eq!(status.last_rotate_request.as_deref(), Some("b"));
    assert!(
        token_value(&ns, "req", "token.previous").await.is_some(),
        "routine request keeps the old value for grace"
    );

    // Re-applying the same request (GitOps) does nothing; the annotation is never removed.
    ns.apply_yaml(&manifest("req", spec, "apitoken.dev/rotate: b"))
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t = ns.tokens().get("req").await.unwrap();
    assert_eq!(revision(&t), 2);
    assert_eq!(t.annotations()["apitoken.dev/rotate"], "b");

    // The CLI asks the GitOps-safe way; --invalidate-previous drops the old value at once.
    let out = Command::new(env!("CARGO_BIN_EXE_apitoken-operator"))
        .args(["rotate", "req", "-n", &ns.name, "--invalidate-previous"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = wait_status(&ns, "req", "revision 3", TIMEOUT, |t| revision(t) == 3).await;
    assert!(t.status.unwrap().previous.is_none());
    assert!(
        token_value(&ns, "req", "token.previous").await.is_none(),
        "leaked-token rotation leaves no previous value"
    );
    // Two rotations seconds apart are two Events, each with its own note: kube's Recorder would
    // fold the second into a series on the first if both named the same related object.
    let notes = eventually("two Rotated events for req", TIMEOUT, || async {
        let notes: Vec<String> = ns
            .events("req")
            .await
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("Rotated"))
            .filter_map(|e| e.note)
            .collect();
        (notes.len() == 2).then_some(notes)
    })
    .await;
    assert!(
        notes[0].contains("revision 2") && notes[1].contains("revision 3"),
        "{notes:?}"
    );

    // Audit: one line per issue with the requester (field manager) for requested rotations.
    let audit = op.json_lines("audit");
    let actors: Vec<_> = audit
        .iter()
        .filter(|l| l["reason"] == "Requested")
        .map(|l| l["actor"].clone())
        .collect();
    assert_eq!(
        actors,
        [
            serde_json::json!("e2e-user"),
            serde_json::json!("apitoken-operator-cli")
        ]
    );
}

#[tokio::test]
async fn without_auto_renew_the_value_expires_and_is_removed() {
    let ns = TestNs::new("e2e-expire").await;
    let op = Operator::start(&ns);
    ns.apply_yaml(&manifest(
        "oneshot",
        "{expiresAfter: 1m, rotation: {autoRenew: false}}",
        "",
    ))
    .await;
    let t = wait_status(&ns, "oneshot", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let expires = t.status.as_ref().unwrap().expires_at.as_ref().unwrap().0;
    assert_eq!(expires, issued_at(&t) + jiff::SignedDuration::from_mins(1));
    assert!(
        t.status.as_ref().unwrap().next_rotation_at.is_none(),
        "no automatic rotation"
    );
    assert_eq!(
        token_value(&ns, "oneshot", "expires-at").await,
        Some(expires.to_string())
    );

    let t = wait_status(&ns, "oneshot", "Expired", Duration::from_secs(90), |t| {
        ready(t) == Some(("False", "Expired"))
    })
    .await;
    assert_on_time("expiry", expires, Timestamp::now());
    assert!(
        token_value(&ns, "oneshot", "token").await.is_none(),
        "value removed from the Secret"
    );
    assert_eq!(revision(&t), 1, "not renewed");
    let warning = ns.events_with_reason("oneshot", "Expired").await;
    assert_eq!(warning[0].type_.as_deref(), Some("Warning"));
    assert!(t.status.unwrap().history[0].retired_at.is_some());
    let audit = op.json_lines("audit");
    let expire: Vec<_> = audit.iter().filter(|l| l["action"] == "expire").collect();
    assert_eq!(expire.len(), 1, "one expire audit line");
    assert_eq!(expire[0]["revision"], 1);
}

#[tokio::test]
async fn one_catch_up_rotation_after_downtime_across_two_due_times() {
    let ns = TestNs::new("e2e-catchup").await;
    let mut op = Operator::start(&ns);
    ns.apply_yaml(&manifest("catchup", "{rotation: {every: 1m}}", ""))
        .await;
    let t = wait_status(&ns, "catchup", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    op.stop();
    // Two due times pass (issuedAt + 1m, + 2m) while the operator is down.
    let second_due = issued_at(&t) + jiff::SignedDuration::from_mins(2);
    let wait = second_due.duration_since(Timestamp::now()) + jiff::SignedDuration::from_secs(5);
    tokio::time::sleep(Duration::try_from(wait).unwrap()).await;
    assert_eq!(revision(&ns.tokens().get("catchup").await.unwrap()), 1);

    op.spawn();
    let t = wait_status(&ns, "catchup", "revision 2", TIMEOUT, |t| revision(t) == 2).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        revision(&ns.tokens().get("catchup").await.unwrap()),
        2,
        "exactly one catch-up rotation"
    );
    let next = t.status.unwrap().next_rotation_at.unwrap().0;
    assert!(
        next > Timestamp::now(),
        "next rotation counts from the catch-up, not from the missed times"
    );
}

/// Values never reach status, Events or logs (debug level), across issue, requests with grace,
/// loss, tampering and revocation; not even a value someone else planted in the Secret.
#[tokio::test]
async fn token_values_never_appear_in_status_events_or_logs() {
    let ns = TestNs::new("e2e-secrecy").await;
    let op = Operator::start(&ns);
    let spec =
        "{rotation: {every: 720h, gracePeriod: 1h}, secretTemplate: {data: {key: '{{ token }}'}}}";
    let mut values = BTreeSet::new();
    ns.apply_yaml(&manifest("quiet", spec, "")).await;
    wait_status(&ns, "quiet", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    values.insert(token_value(&ns, "quiet", "token").await.unwrap());
    for (i, request) in ["r1", "r2"].iter().enumerate() {
        ns.apply_yaml(&manifest(
            "quiet",
            spec,
            &format!("apitoken.dev/rotate: {request}"),
        ))
        .await;
        wait_status(&ns, "quiet", "requested rotation", TIMEOUT, |t| {
            revision(t) == i as i64 + 2
        })
        .await;
        values.insert(token_value(&ns, "quiet", "token").await.unwrap());
    }
    ns.secrets()
        .delete("quiet", &Default::default())
        .await
        .unwrap();
    wait_status(&ns, "quiet", "SecretLost", TIMEOUT, |t| revision(t) == 4).await;
    values.insert(token_value(&ns, "quiet", "token").await.unwrap());
    let planted = "planted_value_that_must_not_echo_0123456789";
    ns.tamper("quiet", planted).await;
    wait_status(&ns, "quiet", "Tampered", TIMEOUT, |t| revision(t) == 5).await;
    values.insert(token_value(&ns, "quiet", "token").await.unwrap());
    assert_eq!(values.len(), 5);
    values.insert(planted.to_owned());
    let t = ns.tokens().get("quiet").await.unwrap();
    ns.tokens()
        .delete("quiet", &Default::default())
        .await
        .unwrap();
    ns.events_with_reason("quiet", "Revoked").await;

    let status = serde_json::to_string(&t.status).unwrap();
    let events = serde_json::to_string(&ns.events("quiet").await).unwrap();
    let logs = op.logs();
    assert!(logs.lines().count() > 20, "debug logs were captured");
    for value in &values {
        assert!(!status.contains(value.as_str()), "value in status");
        assert!(!events.contains(value.as_str()), "value in an Event");
        assert!(!logs.contains(value.as_str()), "value in the operator log");
    }

    // History and audit: durable, fingerprints only.
    let history = &t.status.as_ref().unwrap().history;
    assert_eq!(
        history.iter().map(|h| h.revision).collect::<Vec<_>>(),
        [5, 4, 3, 2, 1]
    );
    assert!(history[1..].iter().all(|h| h.retired_at.is_some()));
    let audit = op.json_lines("audit");
    assert_eq!(
        audit.len(),
        6,
        "one audit line per issued value, and one for the revocation"
    );
    for line in &audit {
        for field in [
            "time",
            "action",
            "namespace",
            "name",
            "revision",
            "fingerprint",
            "reason",
        ] {
            assert!(!line[field].is_null(), "audit field {field} in {line}");
        }
    }
    let reasons: Vec<_> = audit
        .iter()
        .map(|l| l["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "Created",
            "Requested",
            "Requested",
            "SecretLost",
            "Tampered",
            "Deleted"
        ]
    );
}

/// A spec that turns invalid after issuance pauses scheduled rotation but not expiry: the value is
/// still removed on time.
#[tokio::test]
async fn a_spec_made_invalid_after_issuance_still_expires_the_value() {
    let ns = TestNs::new("e2e-invalid-later").await;
    let _op = Operator::start(&ns);
    let valid = "{expiresAfter: 1m, rotation: {autoRenew: false}}";
    ns.apply_yaml(&manifest("later", valid, "")).await;
    let t = wait_status(&ns, "later", "revision 1", TIMEOUT, |t| revision(t) == 1).await;
    let expires = t.status.as_ref().unwrap().expires_at.as_ref().unwrap().0;

    let broken = "{expiresAfter: 1m, rotation: {autoRenew: false, schedule: 'at dawn'}}";
    ns.apply_yaml(&manifest("later", broken, "")).await;
    let t = wait_status(&ns, "later", "InvalidSpec", TIMEOUT, |t| {
        ready(t) == Some(("False", "InvalidSpec"))
    })
    .await;
    assert!(
        t.status.as_ref().unwrap().conditions[0]
            .message
            .contains("at dawn")
    );
    assert!(
        token_value(&ns, "later", "token").await.is_some(),
        "the issued value is kept meanwhile"
    );

    ns.wait_key_gone("later", "token", Duration::from_secs(90))
        .await;
    assert_on_time("expiry while invalid", expires, Timestamp::now());
    ns.events_with_reason("later", "Expired").await;
    assert_eq!(
        revision(&ns.tokens().get("later").await.unwrap()),
        1,
        "no new value"
    );
}
