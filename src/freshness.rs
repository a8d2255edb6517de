//! When the watch cache may decide a reconcile, and when the ApiToken must be read fresh.
//!
//! The cache can trail the operator's own last write to an object: deciding on a status older
//! than the one just written could issue a value twice. So each status write records the
//! resourceVersion the API server gave it, and a reconcile reads the object fresh only while the
//! cached copy is older than that (or is being deleted: cleanup must not run twice). Otherwise,
//! as after a restart or for a change someone else made, the cached copy is the newest there is
//! and no read is needed.

use std::collections::HashMap;
use std::sync::Mutex;

use kube::{Resource, ResourceExt};

/// One per kind of object (ApiTokens, the operator's Secrets): keys are namespace/name.
#[derive(Default)]
pub struct Freshness {
    /// namespace/name -> resourceVersion of the operator's last write to it.
    written: Mutex<HashMap<String, u64>>,
}

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
            Some(&written) => version(cached).is_some_and(|v| v >= written),
        }
    }

    /// Records the object a write of ours returned.
    pub fn wrote(&self, stored: &impl Resource) {
        if let Some(v) = version(stored) {
            self.written.lock().unwrap().insert(key(stored), v);
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
        // Nothing written by this process (a restart): the cache is the newest there is.
        assert!(f.cache_is_current(&at("100")));
        f.wrote(&at("120"));
        // The stale-status case: the cache still shows the object before our status write.
        assert!(!f.cache_is_current(&at("100")));
        assert!(!f.cache_is_current(&at("119")));
        assert!(f.cache_is_current(&at("120")));
        // Someone else's later change arrived through the watch.
        assert!(f.cache_is_current(&at("121")));
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
        // A write whose version cannot be read is not remembered (the next decision reads fresh
        // only if an earlier write was recorded).
        f.wrote(&at("x"));
        assert!(f.cache_is_current(&at("120")));
    }
}
