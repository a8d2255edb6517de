//! The key-set file (`keyset.json`) as the operator writes it and servers read it.
//!
//! ```json
//! {"version":1,"keys":[
//! {"sha256":"<64 hex>","namespace":"payments","name":"billing","revision":6,"state":"previous","validUntil":"2026-11-22T10:10:00Z","scopes":["orders:read"],"checksum":true},
//! {"sha256":"<64 hex>","namespace":"payments","name":"billing","revision":7,"state":"current","expiresAt":"2026-12-22T10:00:00Z","scopes":["orders:read"],"checksum":true}
//! ]}
//! ```
//!
//! One entry per line, sorted by namespace, name and revision, scopes sorted and unique, times in
//! whole seconds: the same set always renders to the same bytes, so an unchanged set is never
//! rewritten. Only hashes: a key set never holds a value.

use serde::{Deserialize, Serialize};

/// The Secret key and file name of the key set.
pub const KEYSET_FILE: &str = "keyset.json";
/// The format version this crate writes and reads.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Document {
    pub version: u32,
    pub keys: Vec<Entry>,
}

/// One value that verifies.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Lowercase hex SHA-256 of the value.
    pub sha256: String,
    pub namespace: String,
    /// The ApiToken.
    pub name: String,
    pub revision: i64,
    pub state: State,
    /// When the value expires (RFC 3339); absent when it never does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// For a previous value: the end of its grace window (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Whether the value ends with a CRC32 checksum, so that a look-alike can be refused offline.
    pub checksum: bool,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// The value in the token Secret's `token` key.
    Current,
    /// The value before it, during its grace window.
    Previous,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Current => "current",
            Self::Previous => "previous",
        }
    }
}

impl Document {
    /// A document with its entries in canonical order (scopes sorted and deduplicated).
    pub fn new(mut keys: Vec<Entry>) -> Self {
        for entry in &mut keys {
            entry.scopes.sort();
            entry.scopes.dedup();
        }
        keys.sort_by(|a, b| {
            (&a.namespace, &a.name, a.revision, a.state, &a.sha256).cmp(&(
                &b.namespace,
                &b.name,
                b.revision,
                b.state,
                &b.sha256,
            ))
        });
        Self {
            version: VERSION,
            keys,
        }
    }

    /// The canonical bytes: one entry per line, as in the module documentation.
    pub fn render(&self) -> String {
        let mut out = format!("{{\"version\":{},\"keys\":[", self.version);
        for (i, entry) in self.keys.iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(&serde_json::to_string(entry).expect("entries serialize"));
        }
        out.push_str("\n]}\n");
        out
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, revision: i64, state: State, scopes: &[&str]) -> Entry {
        Entry {
            sha256: format!("{revision:064x}"),
            namespace: "ns".into(),
            name: name.into(),
            revision,
            state,
            expires_at: None,
            valid_until: (state == State::Previous).then(|| "2026-11-22T10:10:00Z".into()),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            checksum: true,
        }
    }

    #[test]
    fn renders_sorted_one_entry_per_line() {
        let doc = Document::new(vec![
            entry("b", 1, State::Current, &[]),
            entry("a", 7, State::Current, &["w", "r", "w"]),
            entry("a", 6, State::Previous, &[]),
        ]);
        let expected = format!(
            concat!(
                "{{\"version\":1,\"keys\":[\n",
                "{{\"sha256\":\"{}\",\"namespace\":\"ns\",\"name\":\"a\",\"revision\":6,\"state\":\"previous\",\"validUntil\":\"2026-11-22T10:10:00Z\",\"scopes\":[],\"checksum\":true}},\n",
                "{{\"sha256\":\"{}\",\"namespace\":\"ns\",\"name\":\"a\",\"revision\":7,\"state\":\"current\",\"scopes\":[\"r\",\"w\"],\"checksum\":true}},\n",
                "{{\"sha256\":\"{}\",\"namespace\":\"ns\",\"name\":\"b\",\"revision\":1,\"state\":\"current\",\"scopes\":[],\"checksum\":true}}\n",
                "]}}\n"
            ),
            "0".repeat(63) + "6",
            "0".repeat(63) + "7",
            "0".repeat(63) + "1",
        );
        assert_eq!(doc.render(), expected);
        assert_eq!(Document::parse(doc.render().as_bytes()).unwrap(), doc);
    }

    #[test]
    fn the_same_set_in_any_order_renders_the_same_bytes() {
        let a = entry("a", 2, State::Current, &["x", "y"]);
        let b = entry("b", 1, State::Previous, &["z"]);
        let mut a_shuffled = a.clone();
        a_shuffled.scopes.reverse();
        assert_eq!(
            Document::new(vec![a, b.clone()]).render(),
            Document::new(vec![b, a_shuffled]).render()
        );
    }

    #[test]
    fn an_empty_set_is_valid_json() {
        let text = Document::new(vec![]).render();
        assert_eq!(text, "{\"version\":1,\"keys\":[\n]}\n");
        assert!(Document::parse(text.as_bytes()).unwrap().keys.is_empty());
    }
}
