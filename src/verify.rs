//! `apitoken-operator verify --keyset DIR [--scope S]...`: checks the token on stdin against a
//! mounted key set and prints a one-line verdict. Never prints the value.

use std::io::Read;
use std::path::Path;

use apitoken_verify::{KEYSET_FILE, KeySet, Verdict};

/// Reads one token from `input` (surrounding whitespace, such as the newline of `echo`, is
/// ignored) and checks it against `dir/keyset.json`.
pub fn verify(dir: &Path, scopes: &[String], mut input: impl Read) -> anyhow::Result<Verdict> {
    let file = dir.join(KEYSET_FILE);
    let bytes =
        std::fs::read(&file).map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
    let keys = KeySet::from_json(&bytes)
        .map_err(|e| anyhow::anyhow!("loading {}: {e}", file.display()))?;
    let mut presented = String::new();
    // A value is ASCII; anything else is as malformed as an empty input.
    let _ = input.read_to_string(&mut presented);
    Ok(keys.verify(presented.trim(), scopes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apitoken_verify::{Document, Entry, State, sha256_hex};

    use crate::token::{Format, generate};

    fn keyset_dir(value: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let entry = Entry {
            sha256: sha256_hex(value.as_bytes()),
            namespace: "ns".into(),
            name: "t".into(),
            revision: 3,
            state: State::Current,
            expires_at: None,
            valid_until: None,
            scopes: vec!["orders:read".into()],
            checksum: true,
        };
        let text = Document::new(vec![entry]).render();
        std::fs::write(dir.path().join(KEYSET_FILE), text).unwrap();
        dir
    }

    #[test]
    fn reads_the_value_from_stdin_and_answers_with_a_verdict() {
        let token = generate(&Format::default()).unwrap();
        let dir = keyset_dir(token.expose());
        let input = format!("{}\n", token.expose());
        let verdict = verify(dir.path(), &[], input.as_bytes()).unwrap();
        assert_eq!(
            verdict.to_string(),
            "valid: ns/t revision 3 (current) scopes [orders:read]"
        );
        let scopes = ["orders:write".to_owned()];
        let verdict = verify(dir.path(), &scopes, input.as_bytes()).unwrap();
        assert_eq!(verdict.result(), "insufficient_scope");
        let other = generate(&Format::default()).unwrap();
        let verdict = verify(dir.path(), &[], other.expose().as_bytes()).unwrap();
        assert_eq!(verdict.to_string(), "unknown: not in the key set");
        let verdict = verify(dir.path(), &[], &[0xff, 0xfe][..]).unwrap();
        assert_eq!(verdict.result(), "malformed");
    }

    #[test]
    fn a_missing_key_set_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = verify(dir.path(), &[], &b"x"[..]).unwrap_err().to_string();
        assert!(err.contains("keyset.json"), "{err}");
    }
}
