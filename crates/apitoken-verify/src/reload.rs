//! Keeps a [`SharedKeySet`] in step with a mounted key-set Secret.
//!
//! kubelet updates a Secret volume atomically: it writes a new timestamped directory, points a
//! `..data_tmp` symlink at it and renames that over `..data`; `keyset.json` itself is a symlink
//! through `..data`. A watch on the file would follow the old inode and miss the swap, so the
//! directory is watched, and every event (or, as a fallback, every poll interval) re-reads the
//! file; only content that differs from the last read (by SHA-256) is parsed and swapped in.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};

use crate::document::KEYSET_FILE;
use crate::keyset::KeySet;
use crate::shared::SharedKeySet;

#[derive(Clone, Debug)]
pub struct ReloadOptions {
    /// Re-read this often even without a directory event.
    pub poll: Duration,
    /// Watch the directory for changes (false: poll only).
    pub watch: bool,
}

impl Default for ReloadOptions {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(30),
            watch: true,
        }
    }
}

/// What a (re)load found. Unchanged content reports nothing.
#[derive(Debug)]
pub enum ReloadEvent {
    /// New content is in use.
    Loaded { keys: usize },
    /// The file could not be read or parsed. A file that is gone leaves an empty key set (fail
    /// closed); an unreadable or invalid one leaves the last good key set in use.
    Failed { error: String },
}

enum Signal {
    Changed,
    Stop,
}

/// Reloads in a background thread until dropped.
pub struct Reloader {
    stop: Sender<Signal>,
    thread: Option<JoinHandle<()>>,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl Reloader {
    /// Loads `dir/keyset.json` into `shared` now (reporting it to `on_event`), then keeps it fresh.
    /// Fails only when the directory cannot be watched.
    pub fn start<F>(
        dir: impl Into<PathBuf>,
        shared: SharedKeySet,
        options: ReloadOptions,
        mut on_event: F,
    ) -> io::Result<Self>
    where
        F: FnMut(&ReloadEvent) + Send + 'static,
    {
        let dir = dir.into();
        let (tx, rx) = mpsc::channel();
        let watcher = if options.watch {
            let events = tx.clone();
            let mut watcher =
                notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
                    let _ = events.send(Signal::Changed);
                })
                .map_err(io::Error::other)?;
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(io::Error::other)?;
            Some(watcher)
        } else {
            None
        };
        let mut state = State {
            file: dir.join(KEYSET_FILE),
            last: None,
            shared,
        };
        if let Some(event) = state.reload() {
            on_event(&event);
        }
        let thread = std::thread::Builder::new()
            .name("keyset-reload".into())
            .spawn(move || {
                loop {
                    match rx.recv_timeout(options.poll) {
                        Ok(Signal::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Signal::Changed) | Err(RecvTimeoutError::Timeout) => {}
                    }
                    // One swap raises several events: read once for all that are queued.
                    loop {
                        match rx.try_recv() {
                            Ok(Signal::Changed) => continue,
                            Ok(Signal::Stop) => return,
                            Err(_) => break,
                        }
                    }
                    if let Some(event) = state.reload() {
                        on_event(&event);
                    }
                }
            })?;
        Ok(Self {
            stop: tx,
            thread: Some(thread),
            _watcher: watcher,
        })
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        let _ = self.stop.send(Signal::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct State {
    file: PathBuf,
    /// SHA-256 of the content last read: None before the first read, Some(None) for no file.
    last: Option<Option<[u8; 32]>>,
    shared: SharedKeySet,
}

impl State {
    fn reload(&mut self) -> Option<ReloadEvent> {
        let content = match std::fs::read(&self.file) {
            Ok(content) => Some(content),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Some(failed(&self.file, &e)),
        };
        let hash: Option<[u8; 32]> = content.as_deref().map(|c| Sha256::digest(c).into());
        if self.last == Some(hash) {
            return None;
        }
        self.last = Some(hash);
        let Some(content) = content else {
            self.shared.replace(KeySet::empty());
            let error = format!("{} not found; no value verifies", self.file.display());
            return Some(ReloadEvent::Failed { error });
        };
        match KeySet::from_json(&content) {
            Ok(keys) => {
                let loaded = ReloadEvent::Loaded { keys: keys.len() };
                self.shared.replace(keys);
                Some(loaded)
            }
            Err(e) => Some(failed(&self.file, &e)),
        }
    }
}

fn failed(file: &Path, error: &dyn std::fmt::Display) -> ReloadEvent {
    ReloadEvent::Failed {
        error: format!("{}: {error}; keeping the last good key set", file.display()),
    }
}
