//! Verify API tokens issued by apitoken-operator against the hash-only key set that an
//! `ApiTokenVerifier` maintains, without the plaintext and without Kubernetes.
//!
//! ```no_run
//! use apitoken_verify::{KeySet, Verdict};
//!
//! let keys = KeySet::from_json(&std::fs::read("/etc/apitoken/keyset/keyset.json")?)?;
//! match keys.verify("ak_presented-value", &["orders:read"]) {
//!     Verdict::Valid(who) | Verdict::ValidPrevious(who) => println!("hello {}/{}", who.namespace, who.name),
//!     other => println!("refused: {other}"),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With the default `watch` feature, [`Reloader`] keeps a [`SharedKeySet`] in step with the
//! mounted Secret. No async runtime, HTTP or Kubernetes dependency in any feature.
#![forbid(unsafe_code)]

pub mod checksum;
pub mod document;
mod keyset;
#[cfg(feature = "watch")]
mod reload;
mod shared;

pub use document::{Document, Entry, KEYSET_FILE, State};
pub use keyset::{
    Identity, KeySet, LoadError, MAX_VALUE_LEN, MIN_VALUE_LEN, Malformed, Verdict, sha256_hex,
};
#[cfg(feature = "watch")]
pub use reload::{ReloadEvent, ReloadOptions, Reloader};
pub use shared::SharedKeySet;
