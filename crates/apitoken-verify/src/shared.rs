//! A key set shared between whatever keeps it fresh and the request handlers that read it.

use std::sync::{Arc, RwLock};

use crate::keyset::KeySet;

/// Cheap to clone; readers take a snapshot ([`SharedKeySet::get`]) and keep using it while a
/// reload swaps in the next one, so a reload never blocks or fails a request in flight.
#[derive(Clone)]
pub struct SharedKeySet(Arc<RwLock<Arc<KeySet>>>);

impl SharedKeySet {
    pub fn new(keys: KeySet) -> Self {
        Self(Arc::new(RwLock::new(Arc::new(keys))))
    }

    /// The key set as of now.
    pub fn get(&self) -> Arc<KeySet> {
        // A panic while holding the lock cannot leave the Arc half-written: use it anyway.
        let guard = self.0.read().unwrap_or_else(|e| e.into_inner());
        Arc::clone(&guard)
    }

    pub fn replace(&self, keys: KeySet) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        *guard = Arc::new(keys);
    }
}

impl Default for SharedKeySet {
    fn default() -> Self {
        Self::new(KeySet::empty())
    }
}
