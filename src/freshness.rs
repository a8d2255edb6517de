//! When the watch cache may decide a reconcile, and when the ApiToken must be read fresh.
//!
//! The cache can trail the operator's own last write to an object: deciding on a status older
//! than the one just written could issue a value twice. So each status write records the
//! resourceVersion the API server gave it. While the cached copy is older than that, the ApiToken
//! controller decides nothing: the watch brings the write, and its event reconciles the token
//! again ([`Freshness::trails`]). That wait is bounded by [`TRAIL_WAIT`]: a write the watch has
//! not brought by then (a watch that lost it, versions gone backwards after an etcd restore) is
//! read fresh on the next reconcile instead of waited for. An object being deleted, or one whose
//! version cannot be compared, is read fresh too (cleanup must not run twice, nor wait).
//! Otherwise, as after a restart or for a change someone else made, the cached copy is the newest
//! there is and no read is needed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};

/// One per kind of object (ApiTokens, the operator's Secrets): keys are namespace/name.
#[derive(Default)]
pub struct Freshness {
    /// namespace/name -> the operator's last write to it.
    written: Mutex<HashMap<String, Written>>,
}

#[derive(Clone, Copy)]
struct Written {
    version: u64,
    at: Instant,
}

/// How long a reconcile waits for the watch to bring the operator's own write before reading the
/// object fresh. The watch brings it within milliseconds; seconds when the API server is loaded.
pub const TRAIL_WAIT: Duration = Duration::from_secs(10);

fn key(obj: &impl Resource) -> String {
    format!("{}/{}", obj.namespace().unwrap_or_default(), obj.name_any())
}

/// A resourceVersion as the number etcd gives it; None for anything else (then read fresh).
fn version(obj: &impl Resource) -> Option<u64> {
    obj.resource_version()?.parse().ok()
}

impl Freshness {
    /// Whether `cached` may be decided on without reading it again.
    pub fn cache_is_current(&self, cached: &impl Resource) -> bool {
        if cached.meta().deletion_timestamp.is_some() {
            return false;
        }
        match self.written.lock().unwrap().get(&key(cached)) {
            None => true,
            Some(written) => version(cached).is_some_and(|v| v >= written.version),
        }
    }

    /// Whether `cached` is older than our own last write to it (both versions known), made less
    /// than [`TRAIL_WAIT`] before `now`: the watch has yet to bring that write, and will soon.
    pub fn trails(&self, cached: &impl Resource, now: Instant) -> bool {
        let written = self.written.lock().unwrap().get(&key(cached)).copied();
        written
            .zip(version(cached))
            .is_some_and(|(w, v)| v < w.version && now.saturating_duration_since(w.at) < TRAIL_WAIT)
    }

    /// Records the object a write of ours returned.
    pub fn wrote(&self, stored: &impl Resource) {
        self.wrote_at(stored, Instant::now());
    }

    fn wrote_at(&self, stored: &impl Resource, at: Instant) {
        if let Some(version) = version(stored) {
            let written = Written { version, at };
            self.written.lock().unwrap().insert(key(stored), written);
        }
    }

    /// Whether this process wrote the object (and has not forgotten it).
    pub fn remembers(&self, obj: &impl Resource) -> bool {
        self.written.lock().unwrap().contains_key(&key(obj))
    }

    /// The object is gone: nothing to remember.
    pub fn forget(&self, obj: &impl Resource) {
        self.written.lock().unwrap().remove(&key(obj));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ApiToken;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(rv: &str) -> ApiToken {
        let mut t = ApiToken::new("billing", Default::default());
        t.metadata.namespace = Some("payments".into());
        t.metadata.resource_version = Some(rv.into());
        t
    }

    #[test]
    fn remembers_what_it_wrote_until_forgotten() {
        let f = Freshness::default();
        assert!(!f.remembers(&at("100")));
        f.wrote(&at("100"));
        assert!(f.remembers(&at("90")));
        let mut other = at("100");
        other.metadata.name = Some("other".into());
        assert!(!f.remembers(&other));
        f.forget(&at("100"));
        assert!(!f.remembers(&at("100")));
    }

    #[test]
    fn the_cache_decides_until_it_trails_our_own_write() {
        let f = Freshness::default();
        let now = Instant::now();
        // Nothing written by this process (a restart): the cache is the newest there is.
        assert!(f.cache_is_current(&at("100")));
        assert!(!f.trails(&at("100"), now));
        f.wrote_at(&at("120"), now);
        // The stale-status case: the cache still shows the object before our status write.
        for stale in ["100", "119"] {
            assert!(!f.cache_is_current(&at(stale)));
            assert!(f.trails(&at(stale), now));
        }
        assert!(f.cache_is_current(&at("120")));
        assert!(!f.trails(&at("120"), now));
        // Someone else's later change arrived through the watch.
        assert!(f.cache_is_current(&at("121")));
        assert!(!f.trails(&at("121"), now));
        // Other objects are not affected.
        let mut other = at("5");
        other.metadata.name = Some("other".into());
        assert!(f.cache_is_current(&other));
        f.forget(&at("120"));
        assert!(f.cache_is_current(&at("100")));
    }

    #[test]
    fn a_deleting_object_or_an_unreadable_version_is_read_fresh() {
        let f = Freshness::default();
        let mut deleting = at("100");
        deleting.metadata.deletion_timestamp = Some(Time("2026-11-22T10:00:00Z".parse().unwrap()));
        assert!(!f.cache_is_current(&deleting));
        f.wrote(&at("120"));
        assert!(!f.cache_is_current(&at("not-a-number")));
        // Neither is it taken to trail: waiting for a version that cannot be compared could
        // wait forever.
        assert!(!f.trails(&at("not-a-number"), Instant::now()));
        // A write whose version cannot be read is not remembered (the next decision reads fresh
        // only if an earlier write was recorded).
        f.wrote(&at("x"));
        assert!(f.cache_is_current(&at("120")));
    }

    #[test]
    fn a_write_the_watch_has_not_brought_in_time_is_read_fresh_instead() {
        let f = Freshness::default();
        let wrote = Instant::now();
        f.wrote_at(&at("120"), wrote);
        let stale = at("100");
        assert!(f.trails(&stale, wrote + TRAIL_WAIT - Duration::from_millis(1)));
        // From TRAIL_WAIT on, no more waiting: the cache still does not decide, a fresh read does.
        assert!(!f.trails(&stale, wrote + TRAIL_WAIT));
        assert!(!f.cache_is_current(&stale));
        // A clock read before the write (another thread's `now`) still waits.
        assert!(f.trails(&stale, wrote - Duration::from_millis(1)));
    }
}
