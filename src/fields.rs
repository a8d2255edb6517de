//! managedFields as the operator's caches keep them: only the field names it reads.
//!
//! A managedFields entry describes every field its manager set as a tree of JSON maps
//! (`{"f:metadata": {"f:labels": {"f:app": {}}}}`). Each non-empty map is a node of its own on
//! the heap (about 600 bytes), so a Secret's entry for a dozen field names cost about 7 KB in the
//! cache. Decisions read only the names under a few sections (which data keys, labels and
//! annotations a manager applied), so cached objects keep those sections and nothing under them.

use serde_json::{Map, Value};

/// The parts of `fields` (a `fieldsV1` tree) that name a field under one of `sections` (each a
/// path such as `["metadata", "labels"]`, without the `f:` prefixes): the same tree with every
/// other branch and everything below those names dropped.
pub fn names_under(fields: &Value, sections: &[&[&str]]) -> Value {
    let mut kept = Map::new();
    for section in sections {
        let names = section
            .iter()
            .try_fold(fields, |node, part| node.get(format!("f:{part}")))
            .and_then(Value::as_object);
        let Some(names) = names.filter(|n| !n.is_empty()) else {
            continue;
        };
        let mut node = &mut kept;
        for part in *section {
            node = node
                .entry(format!("f:{part}"))
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
                .expect("only maps are inserted on the path");
        }
        node.extend(
            names
                .keys()
                .map(|name| (name.clone(), Value::Object(Map::new()))),
        );
    }
    Value::Object(kept)
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

    #[test]
    fn keeps_the_names_under_each_section_and_nothing_else() {
        let kept = names_under(
            &applied_secret(),
            &[
                &["data"],
                &["metadata", "labels"],
                &["metadata", "annotations"],
            ],
        );
        assert_eq!(
            kept,
            json!({
                "f:data": {".": {}, "f:token": {}, "f:previous": {}},
                "f:metadata": {
                    "f:annotations": {".": {}, "f:apitoken.dev/fingerprint": {}},
                    "f:labels": {".": {}, "f:app.kubernetes.io/managed-by": {}, "f:team": {}},
                },
            })
        );
    }

    #[test]
    fn drops_what_is_below_a_name() {
        let fields = json!({"f:metadata": {"f:labels": {"f:a": {"f:deeper": {}}}}});
        assert_eq!(
            names_under(&fields, &[&["metadata", "labels"]]),
            json!({"f:metadata": {"f:labels": {"f:a": {}}}})
        );
    }

    #[test]
    fn a_section_the_entry_does_not_touch_adds_nothing() {
        let fields = json!({"f:metadata": {"f:labels": {}}, "f:spec": {"f:name": {}}});
        let sections: &[&[&str]] = &[&["data"], &["metadata", "labels"], &["spec", "name"]];
        assert_eq!(names_under(&fields, sections), json!({}));
        assert_eq!(names_under(&json!("not a map"), sections), json!({}));
    }
}
