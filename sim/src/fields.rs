//! The `fields=` partial-response parameter (spec narrative "partial-response"):
//! `-path` removes, `+path` adds a field the endpoint hides by default, and a plain `path`
//! switches to "only these fields". Paths are dotted from the document root (`values.user.email`
//! on a page), `*` matches every key of a level, and arrays are walked transparently.
//!
//! As on Bitbucket, selecting fields on a page drops everything not named, `next` included:
//! a client that selects must also name `next`.

use serde_json::{Map, Value};

/// Applies a `fields` expression. `full` is the complete document including fields hidden by
/// default; `hidden` lists the dotted paths that are hidden unless asked for with `+` or named.
pub fn apply(full: Value, hidden: &[&str], fields: Option<&str>) -> Value {
    let terms: Vec<&str> = fields
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    // The full document is kept aside only when a term needs to copy from it.
    let needs_full = terms.iter().any(|t| !t.starts_with('-'));
    let (mut doc, full) = if needs_full {
        (full.clone(), full)
    } else {
        (full, Value::Null)
    };
    for h in hidden {
        let wanted = terms.iter().any(|t| {
            let p = t.trim_start_matches(['+', '-']);
            !t.starts_with('-') && (p == *h || p == "*" || h.starts_with(&format!("{p}.")))
        });
        if !wanted {
            remove(&mut doc, &split(h));
        }
    }
    if terms.is_empty() {
        return doc;
    }
    let mut selecting = false;
    for t in terms {
        if let Some(p) = t.strip_prefix('-') {
            remove(&mut doc, &split(p));
        } else if let Some(p) = t.strip_prefix('+') {
            copy(&full, &mut doc, &split(p));
        } else {
            if !selecting {
                selecting = true;
                doc = Value::Object(Map::new());
            }
            copy(&full, &mut doc, &split(t));
        }
    }
    doc
}

fn split(p: &str) -> Vec<&str> {
    p.split('.').filter(|s| !s.is_empty()).collect()
}

fn remove(doc: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match doc {
        Value::Array(items) => {
            for i in items {
                remove(i, path);
            }
        }
        Value::Object(map) => {
            if rest.is_empty() {
                if *first == "*" {
                    map.clear();
                } else {
                    map.remove(*first);
                }
            } else if *first == "*" {
                for v in map.values_mut() {
                    remove(v, rest);
                }
            } else if let Some(v) = map.get_mut(*first) {
                remove(v, rest);
            }
        }
        _ => {}
    }
}

fn copy(src: &Value, dst: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        *dst = src.clone();
        return;
    };
    match src {
        Value::Array(items) => {
            if !matches!(dst, Value::Array(d) if d.len() == items.len()) {
                *dst = Value::Array(vec![Value::Object(Map::new()); items.len()]);
            }
            if let Value::Array(d) = dst {
                for (s, t) in items.iter().zip(d.iter_mut()) {
                    copy(s, t, path);
                }
            }
        }
        Value::Object(map) => {
            if !dst.is_object() {
                *dst = Value::Object(Map::new());
            }
            let Value::Object(target) = dst else {
                return;
            };
            let keys: Vec<&String> = if *first == "*" {
                map.keys().collect()
            } else {
                map.keys().filter(|k| k.as_str() == *first).collect()
            };
            for k in keys {
                let s = &map[k];
                if rest.is_empty() {
                    target.insert(k.clone(), s.clone());
                } else {
                    let entry = target.entry(k.clone()).or_insert_with(|| match s {
                        Value::Array(_) => Value::Array(Vec::new()),
                        Value::Object(_) => Value::Object(Map::new()),
                        other => other.clone(),
                    });
                    copy(s, entry, rest);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page() -> Value {
        json!({"pagelen": 10, "next": "n", "values": [
            {"type": "workspace_membership", "user": {"account_id": "a", "email": "a@x", "display_name": "A"}, "links": {"self": {"href": "h"}}},
            {"type": "workspace_membership", "user": {"account_id": "b", "email": "b@x", "display_name": "B"}, "links": {"self": {"href": "h"}}}
        ]})
    }

    #[test]
    fn hidden_fields_need_a_plus() {
        let d = apply(page(), &["values.user.email"], None);
        assert!(d["values"][0]["user"].get("email").is_none());
        let d = apply(page(), &["values.user.email"], Some("+values.user.email"));
        assert_eq!(d["values"][1]["user"]["email"], "b@x");
        assert_eq!(d["next"], "n");
    }

    #[test]
    fn selection_keeps_only_named_paths() {
        let d = apply(
            page(),
            &["values.user.email"],
            Some("values.user.email,values.user.account_id"),
        );
        assert_eq!(
            d,
            json!({"values": [{"user": {"account_id": "a", "email": "a@x"}}, {"user": {"account_id": "b", "email": "b@x"}}]})
        );
    }

    #[test]
    fn minus_removes_and_wildcards_clear() {
        let d = apply(page(), &[], Some("-values.links"));
        assert!(d["values"][0].get("links").is_none());
        let d = apply(page(), &[], Some("-*,+pagelen"));
        assert_eq!(d, json!({"pagelen": 10}));
    }
}
