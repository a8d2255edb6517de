//! Test-only crash points for the fault suite (`cargo test --features failpoints --test faults`).
//!
//! Without the `failpoints` feature (every release build) [`hit`] is an empty inline function, so
//! nothing of this reaches a shipped binary. With it, `APITOKEN_FAILPOINT=<name>` makes the
//! process abort (as `kill -9` would: no destructors, no flush) the first time it reaches `name`,
//! or, with `APITOKEN_FAILPOINT_AFTER=<n>`, the first time after passing it `n` times (a crash in
//! the middle of a burst of writes).

/// The point right after the Secret holding a new value is written, before status records it.
pub const AFTER_SECRET_WRITE: &str = "after-secret-write";

#[cfg(feature = "failpoints")]
#[inline]
pub fn hit(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static PASSED: AtomicU64 = AtomicU64::new(0);
    if std::env::var("APITOKEN_FAILPOINT").is_ok_and(|armed| armed == name) {
        let after = std::env::var("APITOKEN_FAILPOINT_AFTER")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if PASSED.fetch_add(1, Ordering::SeqCst) < after {
            return;
        }
        tracing::warn!(failpoint = name, "failpoint hit: aborting");
        std::process::abort();
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
