//! A loaded key set and the check of a presented value against it.

use std::fmt;
use std::time::SystemTime;

use jiff::Timestamp;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use crate::checksum;
use crate::document::{Document, Entry, State, VERSION};

/// Values shorter than this were never issued (32 random characters at least).
pub const MIN_VALUE_LEN: usize = 32;
/// Longer values are refused before hashing (the longest issued is 32 + 256 + 8 characters).
pub const MAX_VALUE_LEN: usize = 512;

/// Who a value belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    /// The ApiToken.
    pub name: String,
    pub revision: i64,
    pub state: State,
    pub scopes: Vec<String>,
}

/// Why a value was refused without a lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    Empty,
    TooShort,
    TooLong,
    /// A character no token alphabet or prefix uses (only `A-Z a-z 0-9 _ -` do).
    Character,
    /// The key set holds only checksummed values and this one's checksum is wrong.
    Checksum,
}

impl Malformed {
    fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooShort => "too short",
            Self::TooLong => "too long",
            Self::Character => "a character no token uses",
            Self::Checksum => "wrong checksum",
        }
    }
}

/// The answer for one presented value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The current value.
    Valid(Identity),
    /// The previous value, within its grace window.
    ValidPrevious(Identity),
    /// A value of the key set whose expiry or grace window has passed (the operator removes it;
    /// this covers the time until the key set is rewritten and reloaded).
    Expired(Identity),
    /// Not in the key set: never issued, revoked, deleted, or of a token the set does not select.
    Unknown,
    Malformed(Malformed),
    /// Valid, but without every required scope; `missing` lists those it lacks.
    InsufficientScope {
        identity: Identity,
        missing: Vec<String>,
    },
}

impl Verdict {
    /// Valid or ValidPrevious: let the request through.
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid(_) | Self::ValidPrevious(_))
    }

    /// A fixed word for metrics and logs.
    pub fn result(&self) -> &'static str {
        match self {
            Self::Valid(_) => "valid",
            Self::ValidPrevious(_) => "valid_previous",
            Self::Expired(_) => "expired",
            Self::Unknown => "unknown",
            Self::Malformed(_) => "malformed",
            Self::InsufficientScope { .. } => "insufficient_scope",
        }
    }

    /// The token the value belongs to, when it is in the key set.
    pub fn identity(&self) -> Option<&Identity> {
        match self {
            Self::Valid(i) | Self::ValidPrevious(i) | Self::Expired(i) => Some(i),
            Self::InsufficientScope { identity, .. } => Some(identity),
            Self::Unknown | Self::Malformed(_) => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = |i: &Identity| {
            format!(
                "{}/{} revision {} ({})",
                i.namespace,
                i.name,
                i.revision,
                i.state.as_str()
            )
        };
        match self {
            Self::Valid(i) | Self::ValidPrevious(i) => {
                write!(
                    f,
                    "{}: {} scopes [{}]",
                    self.result(),
                    who(i),
                    i.scopes.join(" ")
                )
            }
            Self::Expired(i) => write!(f, "expired: {}", who(i)),
            Self::Unknown => write!(f, "unknown: not in the key set"),
            Self::Malformed(why) => write!(f, "malformed: {}", why.as_str()),
            Self::InsufficientScope { identity, missing } => write!(
                f,
                "insufficient_scope: {} lacks [{}]",
                who(identity),
                missing.join(" ")
            ),
        }
    }
}

/// A key set that cannot be loaded.
#[derive(Debug)]
pub enum LoadError {
    Json(serde_json::Error),
    Version(u32),
    /// An entry (by position) with a bad hash or time.
    Entry {
        index: usize,
        problem: &'static str,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "key set is not valid JSON: {e}"),
            Self::Version(v) => write!(f, "key set version {v} is not supported (want {VERSION})"),
            Self::Entry { index, problem } => write!(f, "key set entry {index}: {problem}"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Json(e) => Some(e),
            _ => None,
        }
    }
}

struct Key {
    /// The SHA-256 as four words, compared a word at a time.
    digest: [u64; 4],
    identity: Identity,
    /// The first instant the value no longer verifies: its expiry or the end of its grace.
    ends: Option<Timestamp>,
}

/// A loaded key set. Holds hashes only; checking a value costs one SHA-256 and a constant-time
/// comparison with every entry (see the README for measured costs).
pub struct KeySet {
    keys: Vec<Key>,
    /// No entry lacks a checksum: a value without a valid one can be refused before hashing.
    all_checksummed: bool,
}

impl KeySet {
    pub fn empty() -> Self {
        Self {
            keys: Vec::new(),
            all_checksummed: true,
        }
    }

    pub fn from_json(bytes: &[u8]) -> Result<Self, LoadError> {
        Self::from_document(Document::parse(bytes).map_err(LoadError::Json)?)
    }

    pub fn from_document(document: Document) -> Result<Self, LoadError> {
        if document.version != VERSION {
            return Err(LoadError::Version(document.version));
        }
        let all_checksummed = document.keys.iter().all(|e| e.checksum);
        let keys = document
            .keys
            .into_iter()
            .enumerate()
            .map(|(index, entry)| key(entry).map_err(|problem| LoadError::Entry { index, problem }))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            keys,
            all_checksummed,
        })
    }

    /// Number of values that verify (current and previous).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `value` now; `required` scopes must all be held.
    pub fn verify<S: AsRef<str>>(&self, value: &str, required: &[S]) -> Verdict {
        self.verify_at(value, required, SystemTime::now())
    }

    /// Checks `value` as at `now`. A value is valid strictly before its `expiresAt` and, when
    /// previous, strictly before its `validUntil`.
    pub fn verify_at<S: AsRef<str>>(
        &self,
        value: &str,
        required: &[S],
        now: SystemTime,
    ) -> Verdict {
        if let Err(why) = self.well_formed(value) {
            return Verdict::Malformed(why);
        }
        let digest = words(Sha256::digest(value.as_bytes()).into());
        // Index + 1 of the matching entry; every entry is compared, word by word without
        // branching, so the time taken does not depend on whether or where the value is found.
        let mut found = 0u32;
        for (i, key) in self.keys.iter().enumerate() {
            let difference = key
                .digest
                .iter()
                .zip(&digest)
                .fold(0u64, |acc, (a, b)| acc | (a ^ b));
            let position = u32::try_from(i + 1).unwrap_or(u32::MAX);
            found.conditional_assign(&position, difference.ct_eq(&0));
        }
        let Some(key) = found.checked_sub(1).and_then(|i| self.keys.get(i as usize)) else {
            return Verdict::Unknown;
        };
        let identity = key.identity.clone();
        let now = Timestamp::try_from(now).unwrap_or(Timestamp::MAX);
        if key.ends.is_some_and(|end| now >= end) {
            return Verdict::Expired(identity);
        }
        let mut missing: Vec<String> = Vec::new();
        for scope in required.iter().map(AsRef::as_ref) {
            if !identity.scopes.iter().any(|s| s == scope) && !missing.iter().any(|m| m == scope) {
                missing.push(scope.to_owned());
            }
        }
        if !missing.is_empty() {
            return Verdict::InsufficientScope { identity, missing };
        }
        match identity.state {
            State::Current => Verdict::Valid(identity),
            State::Previous => Verdict::ValidPrevious(identity),
        }
    }

    /// The checks that need no lookup: shape, and the checksum when every held value has one.
    fn well_formed(&self, value: &str) -> Result<(), Malformed> {
        let is_token_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b'-';
        match value.len() {
            0 => Err(Malformed::Empty),
            n if n > MAX_VALUE_LEN => Err(Malformed::TooLong),
            n if n < MIN_VALUE_LEN => Err(Malformed::TooShort),
            _ if !value.bytes().all(is_token_char) => Err(Malformed::Character),
            _ if self.all_checksummed && checksum::carried_by(value).is_none() => {
                Err(Malformed::Checksum)
            }
            _ => Ok(()),
        }
    }
}

fn key(entry: Entry) -> Result<Key, &'static str> {
    let digest = decode_hex(&entry.sha256).ok_or("sha256 is not 64 hex digits")?;
    let time = |t: &Option<String>| -> Result<Option<Timestamp>, &'static str> {
        t.as_deref()
            .map(|s| s.parse::<Timestamp>().map_err(|_| "a time is not RFC 3339"))
            .transpose()
    };
    let expires_at = time(&entry.expires_at)?;
    let valid_until = time(&entry.valid_until)?;
    if entry.state == State::Previous && valid_until.is_none() {
        return Err("a previous value needs validUntil");
    }
    let ends = match (expires_at, valid_until) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    Ok(Key {
        digest: words(digest),
        ends,
        identity: Identity {
            namespace: entry.namespace,
            name: entry.name,
            revision: entry.revision,
            state: entry.state,
            scopes: entry.scopes,
        },
    })
}

fn words(digest: [u8; 32]) -> [u64; 4] {
    let mut out = [0u64; 4];
    for (word, bytes) in out.iter_mut().zip(digest.chunks_exact(8)) {
        *word = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
    }
    out
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = 16 * nibble(pair[0])? + nibble(pair[1])?;
    }
    Some(out)
}

/// Lowercase hex SHA-256 of a value, as key-set entries hold it.
pub fn sha256_hex(value: &[u8]) -> String {
    Sha256::digest(value)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
