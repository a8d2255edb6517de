//! Time per verification against key sets of several sizes:
//! `cargo run --release -p apitoken-verify --example bench`.
use std::time::Instant;

use apitoken_verify::checksum::{Alphabet, encode};
use apitoken_verify::{Document, Entry, KeySet, State, sha256_hex};

fn value(i: usize) -> String {
    let body = format!("ak_{i:040}");
    let sum = encode(body.as_bytes(), Alphabet::Base62);
    body + &sum
}

fn main() {
    for size in [1, 10, 100, 1_000, 4_000] {
        let keys = (0..size)
            .map(|i| Entry {
                sha256: sha256_hex(value(i).as_bytes()),
                namespace: "ns".into(),
                name: format!("t{i}"),
                revision: 1,
                state: State::Current,
                expires_at: None,
                valid_until: None,
                scopes: vec!["orders:read".into()],
                checksum: true,
            })
            .collect();
        let set = KeySet::from_document(Document::new(keys)).unwrap();
        let rounds = 20_000;
        let probe = value(size / 2);
        let start = Instant::now();
        for _ in 0..rounds {
            assert!(set.verify(&probe, &["orders:read"]).is_valid());
        }
        let per = start.elapsed() / rounds;
        println!(
            "{size:>5} values: {:>8.2} µs per verification",
            per.as_secs_f64() * 1e6
        );
    }
}
