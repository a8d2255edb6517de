//! Which values a key set holds: a pure function of the selected ApiTokens, the hashes of their
//! values and the clock. No client; the reconcile gathers the inputs and writes the result.

use apitoken_verify::{Document, Entry, State};
use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::ApiToken;

/// The full hash of one value, learnt from the token's Secret (see [`super::digests`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueDigest {
    /// `sha256:` + 12 hex digits, as status shows it.
    pub fingerprint: String,
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// The value ends with a CRC32 checksum.
    pub checksum: bool,
}

/// A selected ApiToken with the digests known for its values.
pub struct Selected<'a> {
    pub token: &'a ApiToken,
    pub digests: &'a [ValueDigest],
}

impl Selected<'_> {
    fn digest(&self, fingerprint: &str) -> Option<&ValueDigest> {
        self.digests.iter().find(|d| d.fingerprint == fingerprint)
    }
}

/// The key set to write, and when it next changes by itself.
#[derive(Debug, PartialEq)]
pub struct KeySetPlan {
    pub document: Document,
    /// ApiTokens with at least one value in the set.
    pub tokens: usize,
    /// The next expiry or grace end of a value in the set: rewrite then.
    pub next_due: Option<Timestamp>,
}

/// The values valid at `now`: each selected token's current value unless it expired, and its
/// previous value until the grace window ends. Tokens being deleted hold none (revoked).
pub fn plan(selected: &[Selected<'_>], now: Timestamp) -> KeySetPlan {
    let mut keys = Vec::new();
    let mut tokens = 0;
    let mut next_due: Option<Timestamp> = None;
    let mut due = |t: Timestamp| next_due = Some(next_due.map_or(t, |n| n.min(t)));
    for s in selected {
        let before = keys.len();
        for (entry, ends) in entries(s, now) {
            if let Some(ends) = ends {
                due(ends);
            }
            keys.push(entry);
        }
        tokens += usize::from(keys.len() > before);
    }
    KeySetPlan {
        document: Document::new(keys),
        tokens,
        next_due,
    }
}

/// A token's entries with the instant each stops being valid.
fn entries(s: &Selected<'_>, now: Timestamp) -> Vec<(Entry, Option<Timestamp>)> {
    let token = s.token;
    let Some(status) = token.status.as_ref() else {
        return Vec::new();
    };
    if token.metadata.deletion_timestamp.is_some() {
        return Vec::new();
    }
    let scopes = token.spec.scopes.clone().unwrap_or_default();
    let entry = |digest: &ValueDigest,
                 revision,
                 state,
                 expires: Option<Timestamp>,
                 until: Option<Timestamp>| Entry {
        sha256: digest.sha256.clone(),
        namespace: token.namespace().unwrap_or_default(),
        name: token.name_any(),
        revision,
        state,
        expires_at: expires.map(|t| t.to_string()),
        valid_until: until.map(|t| t.to_string()),
        scopes: scopes.clone(),
        checksum: digest.checksum,
    };
    let mut out = Vec::new();

    // After an expiry without renewal the value was retired (removed from the Secret).
    let retired = status
        .history
        .first()
        .is_some_and(|h| Some(h.revision) == status.revision && h.retired_at.is_some());
    let expires = status.expires_at.as_ref().map(|t| t.0);
    if let (Some(revision), Some(digest), false) = (
        status.revision,
        status.fingerprint.as_deref().and_then(|f| s.digest(f)),
        retired,
    ) && expires.is_none_or(|e| e > now)
    {
        out.push((
            entry(digest, revision, State::Current, expires, None),
            expires,
        ));
    }

    if let Some(previous) = status.previous.as_ref()
        && previous.valid_until.0 > now
        && let Some(digest) = s.digest(&previous.fingerprint)
    {
        let revision = status
            .history
            .iter()
            .find(|h| h.fingerprint == previous.fingerprint)
            .map_or(status.revision.unwrap_or(1) - 1, |h| h.revision);
        let until = previous.valid_until.0;
        out.push((
            entry(digest, revision, State::Previous, None, Some(until)),
            Some(until),
        ));
    }
    out
}

#[cfg(test)]
mod tests;
