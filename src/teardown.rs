//! Namespace teardown: while a namespace is being deleted the API server refuses every create in
//! it (403, cause `NamespaceTerminating`). The namespace controller deletes Secrets before
//! ApiTokens, so without care each ApiToken would see its Secret lost, try to issue it again and
//! post an Event, all refused. Here: when to look at the namespace, and how to recognise that
//! refusal so it ends the reconcile instead of counting as a failure and being retried.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::finalizer;
use kube::{Api, Client};

use crate::api::IssueReason;
use crate::error::Error;
use crate::plan::Action;

/// The `reason` of the status cause the API server adds when it refuses content in a
/// terminating namespace (`v1.NamespaceTerminatingCause`).
const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";

/// Whether `action` would create again a Secret that existed (it is missing and a value is due
/// for a token that had one). Only then is the namespace read first: re-creating a Secret the
/// namespace controller just deleted is pointless. A first issue reads nothing more: in a
/// terminating namespace its create is refused (403 NamespaceTerminating), which is final.
pub fn would_create_secret(action: &Action, secret_exists: bool) -> bool {
    !secret_exists
        && matches!(action, Action::Issue { reason, .. } if *reason != IssueReason::Created)
}

/// True when `error` is the API server refusing a create because the namespace is terminating.
/// That is final for the object: the namespace and everything in it are going.
pub fn is_namespace_terminating(error: &Error) -> bool {
    let kube = match error {
        Error::Kube(e) => e,
        Error::Finalizer(inner) => match inner.as_ref() {
            finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                return is_namespace_terminating(e);
            }
            finalizer::Error::AddFinalizer(e) | finalizer::Error::RemoveFinalizer(e) => e,
            _ => return false,
        },
        _ => return false,
    };
    matches!(kube, kube::Error::Api(status)
        if status.code == 403
            && status
                .details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == NAMESPACE_TERMINATING)))
}

/// A delete or disown of a Secret that someone else deleted meanwhile (the namespace controller,
/// during teardown) has nothing left to do: 404 is success.
pub fn gone_is_done<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(drop),
    }
}

/// Whether namespace `ns` is being deleted (or already gone). One read, no write.
/// Without permission to read it (RBAC that omits it), the answer is "not known to be": the
/// create that follows is then refused as `NamespaceTerminating`, which is also final.
#[mutants::skip] // one GET of the namespace; e2e teardown:: prove its use
pub async fn namespace_terminating(client: &Client, ns: &str) -> Result<bool, Error> {
    match Api::<Namespace>::all(client.clone()).get_opt(ns).await {
        Ok(namespace) => Ok(namespace.is_none_or(|n| n.metadata.deletion_timestamp.is_some())),
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// How long a namespace seen terminating is taken to still be: it never stops, but a namespace of
/// the same name may be created again once it is gone.
pub const TERMINATING_FOR: Duration = Duration::from_secs(30);
/// How long a namespace seen live is taken to still be: short, so a teardown that starts meanwhile
/// costs at most this long of refused Events.
const LIVE_FOR: Duration = Duration::from_secs(1);

/// Whether namespaces are terminating, remembered briefly: a teardown of N ApiTokens reads each
/// namespace about once instead of N times, and posts no Event the API server would refuse.
#[derive(Default)]
pub struct NamespaceStates(Mutex<HashMap<String, (bool, Instant)>>);

impl NamespaceStates {
    /// [`namespace_terminating`], answered from memory while the last answer is fresh.
    #[mutants::skip] // reads through the API server; known_at/remember_at are unit-tested
    pub async fn terminating(&self, client: &Client, ns: &str) -> Result<bool, Error> {
        if let Some(known) = self.known_at(ns, Instant::now()) {
            return Ok(known);
        }
        let terminating = namespace_terminating(client, ns).await?;
        self.remember_at(ns, terminating, Instant::now());
        Ok(terminating)
    }

    /// The API server refused a create in `ns` as terminating (where reading it is not allowed).
    pub fn refused_as_terminating(&self, ns: &str) {
        self.remember_at(ns, true, Instant::now());
    }

    fn known_at(&self, ns: &str, now: Instant) -> Option<bool> {
        let states = self.0.lock().expect("namespace states are never poisoned");
        let &(terminating, seen) = states.get(ns)?;
        let fresh_for = if terminating {
            TERMINATING_FOR
        } else {
            LIVE_FOR
        };
        (now.saturating_duration_since(seen) < fresh_for).then_some(terminating)
    }

    fn remember_at(&self, ns: &str, terminating: bool, now: Instant) {
        let mut states = self.0.lock().expect("namespace states are never poisoned");
        // Forget what has gone stale, so namespaces come and go without the map growing.
        states.retain(|_, (t, seen)| {
            now.saturating_duration_since(*seen) < if *t { TERMINATING_FOR } else { LIVE_FOR }
        });
        states.insert(ns.to_owned(), (terminating, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body kube-apiserver 1.34 returns for a create in a terminating namespace.
    fn refused(cause: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "secrets \"a\" is forbidden: unable to create new content in namespace t because it is being terminated",
            "reason": "Forbidden", "code": 403,
            "details": {"name": "a", "kind": "secrets", "causes": [{
                "reason": cause,
                "message": "namespace t is being terminated",
                "field": "metadata.namespace"
            }]}
        }))
        .unwrap();
        kube::Error::Api(status.boxed())
    }

    #[test]
    fn a_terminating_namespace_is_remembered_for_30_s_a_live_one_for_1_s() {
        let states = NamespaceStates::default();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(states.known_at("gone", t0), None, "never read");
        states.remember_at("gone", true, t0);
        states.remember_at("live", false, t0);
        assert_eq!(states.known_at("gone", at(29_999)), Some(true));
        assert_eq!(states.known_at("gone", at(30_000)), None, "read again");
        assert_eq!(states.known_at("live", at(999)), Some(false));
        assert_eq!(states.known_at("live", at(1_000)), None, "read again");
        assert_eq!(states.known_at("other", at(0)), None);
        // A later answer replaces the earlier one; stale entries are dropped when one is added.
        states.remember_at("live", true, at(500));
        assert_eq!(states.known_at("live", at(29_000)), Some(true));
        states.remember_at("x", false, at(30_000));
        let kept: Vec<_> = states.0.lock().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            kept.len(),
            2,
            "{kept:?}: gone (stale at 30 s) dropped, live and x kept"
        );
        assert!(!kept.contains(&"gone".to_owned()));
    }

    #[test]
    fn a_create_refused_as_terminating_makes_the_namespace_known_terminating() {
        let states = NamespaceStates::default();
        states.remember_at("t", false, Instant::now());
        states.refused_as_terminating("t");
        assert_eq!(states.known_at("t", Instant::now()), Some(true));
        assert_eq!(states.known_at("other", Instant::now()), None);
    }

    #[test]
    fn recognises_the_terminating_namespace_refusal_however_wrapped() {
        assert!(is_namespace_terminating(&Error::Kube(refused(
            NAMESPACE_TERMINATING
        ))));
        let wrapped = Error::Finalizer(Box::new(finalizer::Error::ApplyFailed(Error::Kube(
            refused(NAMESPACE_TERMINATING),
        ))));
        assert!(is_namespace_terminating(&wrapped));
        let removing = Error::Finalizer(Box::new(finalizer::Error::RemoveFinalizer(refused(
            NAMESPACE_TERMINATING,
        ))));
        assert!(is_namespace_terminating(&removing));
    }

    #[test]
    fn other_forbidden_errors_stay_errors() {
        // RBAC refusals are 403 without that cause: a real failure, retried and counted.
        assert!(!is_namespace_terminating(&Error::Kube(refused(
            "FieldValueForbidden"
        ))));
        assert!(!is_namespace_terminating(&Error::NoNamespace));
        let mut not_forbidden = refused(NAMESPACE_TERMINATING);
        if let kube::Error::Api(status) = &mut not_forbidden {
            status.code = 409;
        }
        assert!(!is_namespace_terminating(&Error::Kube(not_forbidden)));
    }

    #[test]
    fn a_secret_already_gone_is_done_other_errors_are_not() {
        let mut gone = refused("x");
        if let kube::Error::Api(status) = &mut gone {
            status.code = 404;
        }
        assert!(gone_is_done::<()>(Err(gone)).is_ok());
        assert!(gone_is_done::<()>(Err(refused(NAMESPACE_TERMINATING))).is_err());
        assert!(gone_is_done(Ok(1)).is_ok());
    }

    #[test]
    fn only_an_issue_into_a_missing_secret_reads_the_namespace() {
        let issue = Action::Issue {
            reason: IssueReason::SecretLost,
            previous_until: None,
        };
        assert!(would_create_secret(&issue, false));
        assert!(!would_create_secret(&issue, true));
        let keep = Action::Keep {
            previous_until: None,
        };
        assert!(!would_create_secret(&keep, false));
        let first = Action::Issue {
            reason: IssueReason::Created,
            previous_until: None,
        };
        assert!(
            !would_create_secret(&first, false),
            "a first issue reads nothing more"
        );
        assert!(!would_create_secret(&Action::Conflict, false));
    }
}
