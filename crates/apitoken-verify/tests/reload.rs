//! Reloading a key set mounted the way kubelet mounts a Secret volume: `keyset.json` is a symlink
//! to `..data/keyset.json`, and an update swaps the `..data` symlink to a new directory.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use apitoken_verify::checksum::{Alphabet, encode};
use apitoken_verify::{
    Document, Entry, ReloadEvent, ReloadOptions, Reloader, SharedKeySet, State, sha256_hex,
};

/// Generous: these tests prove that a reload happens, not how fast (see the README for numbers).
const WAIT: Duration = Duration::from_secs(10);

fn value(seed: char) -> String {
    let body = format!("ak_{}", seed.to_string().repeat(40));
    let sum = encode(body.as_bytes(), Alphabet::Base62);
    body + &sum
}

fn keyset_json(values: &[char]) -> String {
    let keys = values
        .iter()
        .map(|&v| Entry {
            sha256: sha256_hex(value(v).as_bytes()),
            namespace: "ns".into(),
            name: format!("token-{v}"),
            revision: 1,
            state: State::Current,
            expires_at: None,
            valid_until: None,
            scopes: vec![],
            checksum: true,
        })
        .collect();
    Document::new(keys).render()
}

/// kubelet's atomic writer: a new timestamped directory, `..data_tmp` pointing at it, renamed
/// over `..data`, the old directory removed.
fn kubelet_write(dir: &Path, generation: u32, content: &str) {
    let ts = format!("..2026_11_22_10_00_00.{generation}");
    std::fs::create_dir(dir.join(&ts)).unwrap();
    std::fs::write(dir.join(&ts).join("keyset.json"), content).unwrap();
    let old = std::fs::read_link(dir.join("..data")).ok();
    symlink(&ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    if !dir.join("keyset.json").exists() {
        symlink("..data/keyset.json", dir.join("keyset.json")).unwrap();
    }
    if let Some(old) = old {
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

fn wait_for(shared: &SharedKeySet, what: &str, check: impl Fn(&SharedKeySet) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check(shared) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn verifies(shared: &SharedKeySet, v: char) -> bool {
    shared.get().verify(&value(v), &[] as &[&str]).is_valid()
}

fn start(dir: &Path, options: ReloadOptions) -> (Reloader, SharedKeySet, mpsc::Receiver<String>) {
    let shared = SharedKeySet::default();
    let (tx, rx) = mpsc::channel();
    let reloader = Reloader::start(dir, shared.clone(), options, move |event| {
        let _ = tx.send(match event {
            ReloadEvent::Loaded { keys } => format!("loaded {keys}"),
            ReloadEvent::Failed { error } => format!("failed {error}"),
        });
    })
    .unwrap();
    (reloader, shared, rx)
}

#[test]
fn follows_kubelet_symlink_swaps_through_the_directory_watch() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), 1, &keyset_json(&['a']));
    // A poll far beyond the test's patience: only the directory watch can bring the change.
    let options = ReloadOptions {
        poll: Duration::from_secs(3600),
        watch: true,
    };
    let (_reloader, shared, events) = start(dir.path(), options);
    assert_eq!(events.recv_timeout(WAIT).unwrap(), "loaded 1");
    assert!(verifies(&shared, 'a'));

    kubelet_write(dir.path(), 2, &keyset_json(&['a', 'b']));
    wait_for(&shared, "b to verify", |s| verifies(s, 'b'));
    kubelet_write(dir.path(), 3, &keyset_json(&['b']));
    wait_for(&shared, "a to stop verifying", |s| !verifies(s, 'a'));
    assert!(verifies(&shared, 'b'));
    assert_eq!(events.recv_timeout(WAIT).unwrap(), "loaded 2");
    assert_eq!(events.recv_timeout(WAIT).unwrap(), "loaded 1");
}

#[test]
fn unchanged_content_is_not_reloaded() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), 1, &keyset_json(&['a']));
    let options = ReloadOptions {
        poll: Duration::from_millis(20),
        watch: true,
    };
    let (_reloader, _shared, events) = start(dir.path(), options);
    assert_eq!(events.recv_timeout(WAIT).unwrap(), "loaded 1");
    // Same bytes swapped in again (kubelet does this on a resync), and many polls: no reload.
    kubelet_write(dir.path(), 2, &keyset_json(&['a']));
    assert!(events.recv_timeout(Duration::from_millis(500)).is_err());
}

#[test]
fn the_slow_poll_catches_changes_without_a_watch() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), 1, &keyset_json(&['a']));
    let options = ReloadOptions {
        poll: Duration::from_millis(50),
        watch: false,
    };
    let (_reloader, shared, _events) = start(dir.path(), options);
    kubelet_write(dir.path(), 2, &keyset_json(&['b']));
    wait_for(&shared, "b to verify by polling", |s| verifies(s, 'b'));
    assert!(!verifies(&shared, 'a'));
}

#[test]
fn invalid_content_keeps_the_last_good_set_and_a_missing_file_fails_closed() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_write(dir.path(), 1, &keyset_json(&['a']));
    let (_reloader, shared, events) = start(dir.path(), ReloadOptions::default());
    assert_eq!(events.recv_timeout(WAIT).unwrap(), "loaded 1");

    kubelet_write(dir.path(), 2, "{not json");
    let event = events.recv_timeout(WAIT).unwrap();
    assert!(
        event.starts_with("failed") && event.contains("keeping the last good key set"),
        "{event}"
    );
    assert!(verifies(&shared, 'a'), "the last good set stays in use");

    // The key removed from the Secret: the file goes, and nothing verifies any more.
    std::fs::remove_file(dir.path().join("keyset.json")).unwrap();
    let event = events.recv_timeout(WAIT).unwrap();
    assert!(event.contains("not found; no value verifies"), "{event}");
    assert!(!verifies(&shared, 'a'));
    assert_eq!(shared.get().len(), 0);
}

#[test]
fn a_directory_that_cannot_be_watched_is_an_error() {
    let missing = tempfile::tempdir().unwrap().path().join("nope");
    let result = Reloader::start(
        &missing,
        SharedKeySet::default(),
        ReloadOptions::default(),
        |_| {},
    );
    assert!(result.is_err());
}
