//! Stopping the operator before its finalizers are released (the chart's `pre-delete` hook): a
//! running operator would put the finalizer back on every ApiToken it reconciles. The Deployment
//! is scaled to zero and the hook waits until the leader's Lease is free: the operator releases it
//! on SIGTERM, and no replica writes without a current claim (see [`crate::leader`]), so a free
//! Lease means no write can follow.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

/// Whether no replica holds `lease` at `now`: none, released (no holder), or expired.
pub fn lease_free(lease: Option<&Lease>, now: Timestamp) -> bool {
    let Some(spec) = lease.and_then(|l| l.spec.as_ref()) else {
        return true;
    };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let (Some(renewed), Some(seconds)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return false;
    };
    renewed
        .0
        .checked_add(SignedDuration::from_secs(seconds.into()))
        .is_ok_and(|end| end <= now)
}

/// Scales `deployment` in `ns` to zero (if it still exists) and waits, at most `timeout`, until
/// it runs no Pod and `lease` is free.
#[mutants::skip] // scales and polls through the API server; e2e helm:: (the hook) proves it
pub async fn stop_operator(
    client: &Client,
    ns: &str,
    deployment: &str,
    lease: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    let zero = serde_json::json!({"spec": {"replicas": 0}});
    match deployments
        .patch_scale(deployment, &PatchParams::default(), &Patch::Merge(&zero))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e.into()),
    }
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let running = deployments
            .get_opt(deployment)
            .await?
            .and_then(|d| d.status)
            .and_then(|s| s.replicas)
            .unwrap_or(0);
        let free = lease_free(leases.get_opt(lease).await?.as_ref(), Timestamp::now());
        if running == 0 && free {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "deployment {ns}/{deployment} still runs {running} Pod(s) or lease {lease} is held after {timeout:?}"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    fn lease(holder: Option<&str>, renewed: Option<&str>, seconds: Option<i32>) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: holder.map(Into::into),
                renew_time: renewed.map(|t| MicroTime(t.parse().unwrap())),
                lease_duration_seconds: seconds,
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        }
    }

    #[test]
    fn a_lease_is_free_when_absent_released_or_expired() {
        let now: Timestamp = "2026-11-22T10:00:15Z".parse().unwrap();
        let renewed = Some("2026-11-22T10:00:00Z");
        assert!(lease_free(None, now));
        assert!(lease_free(Some(&Lease::default()), now));
        assert!(lease_free(Some(&lease(None, renewed, Some(15))), now));
        assert!(lease_free(Some(&lease(Some(""), renewed, Some(15))), now));
        // Held: until exactly renewTime + leaseDurationSeconds.
        assert!(lease_free(
            Some(&lease(Some("op-1_ab"), renewed, Some(15))),
            now
        ));
        assert!(!lease_free(
            Some(&lease(Some("op-1_ab"), renewed, Some(16))),
            now
        ));
        // A holder without renewal time or duration is taken as holding.
        assert!(!lease_free(
            Some(&lease(Some("op-1_ab"), None, Some(15))),
            now
        ));
        assert!(!lease_free(
            Some(&lease(Some("op-1_ab"), renewed, None)),
            now
        ));
    }
}
