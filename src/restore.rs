//! ApiTokens restored before their Secrets. Velero restores Secrets first by default, and then
//! [`crate::adopt`] takes each one back; a restore in the other order (another tool, a
//! hand-written resource order, Secrets restored in a second pass) brings an ApiToken whose Secret
//! is still on its way. Issuing at once would mint a new value and make the Secret's restore fail
//! with `AlreadyExists`; so for a short, bounded while the operator waits for it instead.

use jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;
use kube::runtime::controller::Action;

use crate::api::{ApiToken, ApiTokenStatus};
use crate::controller::{Context, requeue_at};
use crate::error::Error;
use crate::reconcile::write_status;
use crate::status;

/// The label Velero puts on every object it restores.
pub const RESTORE_LABEL: &str = "velero.io/restore-name";
/// How long after a restore created the ApiToken its Secret may still be on its way.
pub const RESTORE_WAIT: SignedDuration = SignedDuration::from_secs(60);
/// The reason on `Reconciling=True` while waiting.
pub const AWAITING_RESTORE: &str = "AwaitingRestore";

/// Until when to wait before issuing a value for `token`: while its Secret is absent and a
/// restore created it less than [`RESTORE_WAIT`] ago. None: go on (issue if the plan says so).
pub fn awaiting_secret(token: &ApiToken, secret_exists: bool, now: Timestamp) -> Option<Timestamp> {
    if secret_exists || !token.labels().contains_key(RESTORE_LABEL) {
        return None;
    }
    let created = token.metadata.creation_timestamp.as_ref()?.0;
    let until = created.checked_add(RESTORE_WAIT).ok()?;
    (until > now).then_some(until)
}

/// Says so in status (`Reconciling=True`, reason [`AWAITING_RESTORE`]; Ready as it was) and looks
/// again at `until`; the Secret's arrival brings the ApiToken back sooner (the Secret watch).
#[mutants::skip] // writes status through the API server; e2e restore_order:: prove it
pub async fn wait(
    token: &ApiToken,
    ctx: &Context,
    mut status: ApiTokenStatus,
    until: Timestamp,
    now: Timestamp,
) -> Result<Action, Error> {
    let message = format!(
        "restored before its Secret {}: waiting until {until} for the Secret's restore before issuing a new value",
        token.secret_name()
    );
    status::set_reconciling(
        &mut status,
        AWAITING_RESTORE,
        message,
        token.metadata.generation,
        now,
    );
    write_status(token, ctx, &status).await?;
    tracing::debug!(namespace = token.namespace().as_deref(), name = %token.name_any(), %until, "awaiting the restored Secret");
    Ok(requeue_at(Some(until), now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn token(restored: bool, created: &str) -> ApiToken {
        let mut t = ApiToken::new("billing", Default::default());
        t.metadata.creation_timestamp = Some(Time(at(created)));
        if restored {
            t.labels_mut()
                .insert(RESTORE_LABEL.into(), "nightly-20261122".into());
        }
        t
    }

    #[test]
    fn a_restored_token_waits_a_minute_from_its_creation_for_its_secret() {
        let t = token(true, "2026-11-22T10:00:00Z");
        let until = Some(at("2026-11-22T10:01:00Z"));
        assert_eq!(
            awaiting_secret(&t, false, at("2026-11-22T10:00:00Z")),
            until
        );
        assert_eq!(
            awaiting_secret(&t, false, at("2026-11-22T10:00:59Z")),
            until
        );
        // Bounded: at the end of the wait the plan goes on (and issues).
        assert_eq!(awaiting_secret(&t, false, at("2026-11-22T10:01:00Z")), None);
        assert_eq!(awaiting_secret(&t, false, at("2026-11-22T11:00:00Z")), None);
    }

    #[test]
    fn nothing_waits_when_the_secret_is_there_or_nothing_was_restored() {
        let now = at("2026-11-22T10:00:10Z");
        assert_eq!(
            awaiting_secret(&token(true, "2026-11-22T10:00:00Z"), true, now),
            None
        );
        assert_eq!(
            awaiting_secret(&token(false, "2026-11-22T10:00:00Z"), false, now),
            None
        );
        let mut unknown_age = token(true, "2026-11-22T10:00:00Z");
        unknown_age.metadata.creation_timestamp = None;
        assert_eq!(awaiting_secret(&unknown_age, false, now), None);
    }
}
