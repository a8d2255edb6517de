//! Test-only crash points for the fault suite (`cargo test --features failpoints --test faults`).
//!
//! Without the `failpoints` feature (every release build) [`hit`] is an empty inline function, so
//! nothing of this reaches a shipped binary. With it, `APITOKEN_FAILPOINT=<name>` makes the
//! process abort (as `kill -9` would: no destructors, no flush) the first time it reaches `name`.

/// The point right after the Secret holding a new value is written, before status records it.
pub const AFTER_SECRET_WRITE: &str = "after-secret-write";

#[cfg(feature = "failpoints")]
#[inline]
pub fn hit(name: &str) {
    if std::env::var("APITOKEN_FAILPOINT").is_ok_and(|armed| armed == name) {
        tracing::warn!(failpoint = name, "failpoint hit: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
