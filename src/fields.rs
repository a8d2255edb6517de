//! managedFields as the operator's caches keep them: only the field names it reads.
//!
//! A managedFields entry describes every field its manager set as a tree of JSON maps
//! (`{"f:metadata": {"f:labels": {"f:app": {}}}}`). Each non-empty map is a node of its own on
//! the heap (about 600 bytes), so even an entry trimmed to a few sections cost about 3.5 KB per
//! cached Secret (a third of the operator's peak heap at 10,000 tokens). Decisions read only the
//! names under a few sections (which data keys, labels and annotations a manager applied), so
//! cached objects keep those names and nothing else, as lines `section/name` in a single string
//! (`metadata.labels/app`): one allocation. [`names_in`] reads both forms, so an object read
//! from the API server decides the same as its cached copy.

use std::collections::BTreeSet;

use serde_json::Value;

/// The names that `fields` (a `fieldsV1` tree) sets under each of `sections` (a path such as
/// `["metadata", "labels"]`, without the `f:` prefixes), in the compact form: a string of lines
/// `metadata.labels/name`. Section paths never contain `/`, and field names never a line break.
pub fn names_under(fields: &Value, sections: &[&[&str]]) -> Value {
    let mut lines = String::new();
    for section in sections {
        let path = section.join(".");
        for name in tree_names(fields, section) {
            lines.push_str(&path);
            lines.push('/');
            lines.push_str(name);
            lines.push('\n');
        }
    }
    Value::String(lines)
}

/// The names `fields` sets under `section`: from a `fieldsV1` tree as the API server sends it,
/// or from its compact form ([`names_under`]).
pub fn names_in(fields: &Value, section: &[&str]) -> BTreeSet<String> {
    match fields {
        Value::String(lines) => {
            let path = section.join(".");
            lines
                .lines()
                .filter_map(|line| line.split_once('/'))
                .filter(|(at, _)| *at == path)
                .map(|(_, name)| name.to_owned())
                .collect()
        }
        tree => tree_names(tree, section).map(str::to_owned).collect(),
    }
}

/// The field names in a `fieldsV1` tree directly under `section` (`f:` prefix removed; the
/// `.` entry that marks the section itself is not a name).
fn tree_names<'a>(fields: &'a Value, section: &[&str]) -> impl Iterator<Item = &'a str> {
    let node = section
        .iter()
        .try_fold(fields, |node, part| node.get(format!("f:{part}")))
        .and_then(Value::as_object);
    node.into_iter()
        .flat_map(|map| map.keys())
        .filter_map(|key| key.strip_prefix("f:"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An entry as the API server writes it for the operator's apply of a Secret.
    fn applied_secret() -> Value {
        json!({
            "f:data": {".": {}, "f:token": {}, "f:previous": {}},
            "f:metadata": {
                "f:annotations": {".": {}, "f:apitoken.dev/fingerprint": {}},
                "f:labels": {".": {}, "f:app.kubernetes.io/managed-by": {}, "f:team": {}},
                "f:ownerReferences": {
                    ".": {},
                    "k:{\"uid\":\"0d2c\"}": {"f:apiVersion": {}, "f:controller": {}, "f:uid": {}},
                },
            },
            "f:type": {},
        })
    }

    const OWN: &[&[&str]] = &[
        &["data"],
        &["metadata", "labels"],
        &["metadata", "annotations"],
    ];

    #[test]
    fn keeps_the_names_under_each_section_and_nothing_else() {
        let kept = names_under(&applied_secret(), OWN);
        assert_eq!(
            kept,
            json!(
                "data/previous\ndata/token\n\
                 metadata.labels/app.kubernetes.io/managed-by\nmetadata.labels/team\n\
                 metadata.annotations/apitoken.dev/fingerprint\n"
            )
        );
    }

    #[test]
    fn both_forms_name_the_same_fields() {
        let tree = applied_secret();
        let compact = names_under(&tree, OWN);
        let names = |section: &[&str]| -> Vec<String> {
            let from_tree = names_in(&tree, section);
            assert_eq!(names_in(&compact, section), from_tree, "{section:?}");
            from_tree.into_iter().collect()
        };
        assert_eq!(names(&["data"]), ["previous", "token"]);
        assert_eq!(
            names(&["metadata", "labels"]),
            ["app.kubernetes.io/managed-by", "team"]
        );
        assert_eq!(
            names(&["metadata", "annotations"]),
            ["apitoken.dev/fingerprint"]
        );
        // Only the sections kept are there: not their parents, not a partial path.
        assert!(names_in(&compact, &["metadata"]).is_empty());
        assert!(names_in(&compact, &["labels"]).is_empty());
    }

    #[test]
    fn drops_what_is_below_a_name() {
        let fields = json!({"f:metadata": {"f:labels": {"f:a": {"f:deeper": {}}}}});
        assert_eq!(
            names_under(&fields, &[&["metadata", "labels"]]),
            json!("metadata.labels/a\n")
        );
    }

    #[test]
    fn a_section_the_entry_does_not_touch_adds_nothing() {
        let fields = json!({"f:metadata": {"f:labels": {}}, "f:spec": {"f:name": {}}});
        let sections: &[&[&str]] = &[&["data"], &["metadata", "labels"], &["spec", "name"]];
        assert_eq!(names_under(&fields, sections), json!(""));
        assert_eq!(names_under(&json!("not a map"), sections), json!(""));
        assert!(names_in(&json!(42), &["data"]).is_empty());
    }
}
