//! How the verifier learns the full SHA-256 of each value without storing a value anywhere.
//!
//! Status shows only a short fingerprint, and the operator's Secret watch is metadata-only. So
//! when a selected token's status names a fingerprint (current or previous) whose hash is not yet
//! known, its own Secret is read once, the values in it are hashed in memory, and only hashes of
//! values that match what status says are kept: a hand-edited Secret never puts its value into a
//! key set. Afterwards nothing is read again until status names a new fingerprint, so a rotation
//! costs one GET and a deletion none.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};

use super::keys::ValueDigest;
use crate::api::ApiToken;
use crate::secret;
use crate::token::Token;

/// Known digests per ApiToken (by UID); hashes only, in memory.
#[derive(Default)]
pub struct DigestCache {
    by_token: Mutex<HashMap<String, Vec<ValueDigest>>>,
}

impl DigestCache {
    /// The digests of the values `token`'s status names, reading its Secret only if one is new.
    pub async fn digests(
        &self,
        secrets: &Api<Secret>,
        token: &ApiToken,
    ) -> Result<Vec<ValueDigest>, kube::Error> {
        let wanted = wanted(token);
        let uid = token.uid().unwrap_or_default();
        let known = self.known(&uid);
        if wanted
            .iter()
            .all(|f| known.iter().any(|d| &d.fingerprint == f))
        {
            return Ok(keep(known, &wanted));
        }
        let read = match secrets.get_opt(&token.secret_name()).await? {
            Some(s) if secret::is_ours(&s, token) => from_values(&secret::values(&s)),
            _ => Vec::new(),
        };
        tracing::debug!(
            namespace = token.namespace().as_deref(),
            name = %token.name_any(),
            read = read.len(),
            "read the token Secret for new fingerprints"
        );
        let digests = keep(known.into_iter().chain(read).collect(), &wanted);
        self.lock().insert(uid, digests.clone());
        Ok(digests)
    }

    /// Forgets tokens that no longer exist.
    pub fn retain(&self, live: &HashSet<String>) {
        self.lock().retain(|uid, _| live.contains(uid));
    }

    fn known(&self, uid: &str) -> Vec<ValueDigest> {
        self.lock().get(uid).cloned().unwrap_or_default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<ValueDigest>>> {
        self.by_token.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Fingerprints of the values status says exist.
fn wanted(token: &ApiToken) -> Vec<String> {
    let Some(status) = token.status.as_ref() else {
        return Vec::new();
    };
    status
        .fingerprint
        .iter()
        .chain(status.previous.as_ref().map(|p| &p.fingerprint))
        .cloned()
        .collect()
}

/// The digests for `wanted`, one each, in `wanted`'s order.
fn keep(digests: Vec<ValueDigest>, wanted: &[String]) -> Vec<ValueDigest> {
    wanted
        .iter()
        .filter_map(|f| digests.iter().find(|d| &d.fingerprint == f).cloned())
        .collect()
}

fn from_values(values: &secret::Values) -> Vec<ValueDigest> {
    [&values.current, &values.previous]
        .into_iter()
        .flatten()
        .map(digest)
        .collect()
}

fn digest(value: &Token) -> ValueDigest {
    ValueDigest {
        fingerprint: value.fingerprint(),
        sha256: apitoken_verify::sha256_hex(value.expose().as_bytes()),
        checksum: apitoken_verify::checksum::carried_by(value.expose()).is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ApiTokenSpec, ApiTokenStatus, PreviousValue};
    use crate::token::{Format, generate};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn hashes_values_and_keeps_only_those_status_names() {
        let (a, b, c) = (
            generate(&Format::default()).unwrap(),
            generate(&Format::default()).unwrap(),
            generate(&Format::default()).unwrap(),
        );
        let mut token = ApiToken::new("t", ApiTokenSpec::default());
        token.status = Some(ApiTokenStatus {
            fingerprint: Some(a.fingerprint()),
            previous: Some(PreviousValue {
                fingerprint: b.fingerprint(),
                valid_until: Time("2026-11-22T10:00:00Z".parse().unwrap()),
            }),
            ..ApiTokenStatus::default()
        });
        // The Secret was edited: it holds c where status says a.
        let read = from_values(&secret::Values {
            current: Some(c.clone()),
            previous: Some(b.clone()),
        });
        let kept = keep(read, &wanted(&token));
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].fingerprint, b.fingerprint());
        assert_eq!(
            kept[0].sha256,
            apitoken_verify::sha256_hex(b.expose().as_bytes())
        );
        assert!(kept[0].checksum);
    }

    #[test]
    fn a_value_without_checksum_is_marked() {
        let format = Format {
            checksum: false,
            ..Format::default()
        };
        assert!(!digest(&generate(&format).unwrap()).checksum);
    }
}
