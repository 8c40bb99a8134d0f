//! Validation against `schemas/config.schema.json`, the published contract.
//!
//! Messages are written here from the kind of each schema error, never taken from the validator's
//! own text, because that text may quote the offending value and the value may be a token.

use super::duration::DURATION_PATTERN;
use super::error::Problem;
use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value;
use std::sync::OnceLock;

/// The schema text, compiled into the binary so validation needs no file at run time.
pub const SCHEMA_JSON: &str = include_str!("../../schemas/config.schema.json");

/// The schema as a JSON value.
pub fn schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        serde_json::from_str(SCHEMA_JSON)
            .expect("schemas/config.schema.json is valid JSON (checked by tests)")
    })
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::draft202012::new(schema())
            .expect("schemas/config.schema.json is a valid 2020-12 schema (checked by tests)")
    })
}

/// Whether `instance` satisfies the schema (used by the agreement test).
pub fn is_valid(instance: &Value) -> bool {
    validator().is_valid(instance)
}

/// Escapes one property name for use in a JSON pointer (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Appends `name` to `pointer`.
pub fn child(pointer: &str, name: &str) -> String {
    format!("{pointer}/{}", escape(name))
}

/// Every schema violation in `instance`, as problems with pointers and plain sentences.
pub fn problems(instance: &Value) -> Vec<Problem> {
    let errors: Vec<_> = validator().iter_errors(instance).collect();
    // `oneOf`/`not` rules about required fields hold trivially for a value that is not an object
    // at all; once its type is reported, they would only add a confusing second complaint.
    let wrong_type: Vec<String> = errors
        .iter()
        .filter(|e| matches!(e.kind(), ValidationErrorKind::Type { .. }))
        .map(|e| e.instance_path().as_str().to_string())
        .collect();
    let mut out = Vec::new();
    for error in &errors {
        let at = error.instance_path().as_str().to_string();
        let about_shape = matches!(
            error.kind(),
            ValidationErrorKind::OneOfMultipleValid { .. }
                | ValidationErrorKind::OneOfNotValid { .. }
                | ValidationErrorKind::Not { .. }
        );
        if about_shape && wrong_type.contains(&at) {
            continue;
        }
        let schema_path = error.schema_path().as_str().to_string();
        describe(&at, &schema_path, error.kind(), &mut out);
    }
    out
}

/// The schema node at `pointer`, with the last `drop` segments removed.
fn schema_node(pointer: &str, drop: usize) -> Option<&'static Value> {
    let mut parts: Vec<&str> = pointer.split('/').collect();
    for _ in 0..drop {
        parts.pop();
    }
    schema().pointer(&parts.join("/"))
}

/// The `required` names of each alternative of a `oneOf`/`not` node.
fn required_names(node: &Value) -> Vec<String> {
    let alternatives: Vec<&Value> = match node {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    alternatives
        .iter()
        .filter_map(|alt| alt.get("required").and_then(Value::as_array))
        .flatten()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect()
}

fn describe(at: &str, schema_path: &str, kind: &ValidationErrorKind, out: &mut Vec<Problem>) {
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let allowed: Vec<String> = schema_node(schema_path, 1)
                .and_then(|n| n.get("properties"))
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .keys()
                        .filter(|k| !k.starts_with('$'))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            for name in unexpected {
                out.push(Problem::new(
                    child(at, name),
                    unknown_field_message(at, name, &allowed),
                ));
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or("?");
            out.push(Problem::new(child(at, name), "is required"));
        }
        ValidationErrorKind::OneOfNotValid { .. } => {
            let names = schema_node(schema_path, 0)
                .map(required_names)
                .unwrap_or_default();
            match names.as_slice() {
                [first, second, ..] => out.push(Problem::new(
                    child(at, first),
                    format!("is required (or give `{second}` to read the value from a file)"),
                )),
                _ => out.push(Problem::new(at, "does not match any of the allowed shapes")),
            }
        }
        ValidationErrorKind::OneOfMultipleValid { .. } => {
            let names = schema_node(schema_path, 0)
                .map(required_names)
                .unwrap_or_default();
            match names.as_slice() {
                [first, second, ..] => out.push(Problem::new(
                    child(at, second),
                    format!("give only one of `{first}` and `{second}`"),
                )),
                _ => out.push(Problem::new(
                    at,
                    "matches more than one of the allowed shapes",
                )),
            }
        }
        ValidationErrorKind::Not { schema } => {
            let names = required_names(schema);
            match names.as_slice() {
                [first, second, ..] => out.push(Problem::new(
                    child(at, second),
                    format!("give only one of `{first}` and `{second}`"),
                )),
                _ => out.push(Problem::new(at, "has a shape this field does not allow")),
            }
        }
        ValidationErrorKind::Type { kind } => {
            let expected = match kind {
                TypeKind::Single(t) => with_article(&t.to_string()),
                TypeKind::Multiple(_) => "of another type".to_string(),
            };
            out.push(Problem::new(at, format!("must be {expected}")));
        }
        ValidationErrorKind::Enum { options } => {
            let names: Vec<String> = options
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|o| o.as_str().map_or_else(|| o.to_string(), str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            out.push(Problem::new(
                at,
                format!("must be one of: {}", names.join(", ")),
            ));
        }
        ValidationErrorKind::Pattern { pattern } if pattern == DURATION_PATTERN => {
            out.push(Problem::new(
                at,
                "is not a duration; write a number and a unit (s, m, h, d or w), such as 8h, 90m or 1h30m",
            ));
        }
        ValidationErrorKind::Pattern { pattern } => {
            out.push(Problem::new(
                at,
                format!("does not have the expected form (pattern {pattern})"),
            ));
        }
        ValidationErrorKind::MinLength { limit: 1 } => {
            out.push(Problem::new(at, "must not be empty"))
        }
        ValidationErrorKind::MinLength { limit } => out.push(Problem::new(
            at,
            format!("must be at least {limit} characters long"),
        )),
        ValidationErrorKind::Minimum { limit } => {
            out.push(Problem::new(at, format!("must be at least {limit}")))
        }
        ValidationErrorKind::Maximum { limit } => {
            out.push(Problem::new(at, format!("must be at most {limit}")))
        }
        _ => {
            let keyword = schema_path.rsplit('/').next().unwrap_or("?");
            out.push(Problem::new(
                at,
                format!("is not valid here (schema rule `{keyword}`)"),
            ));
        }
    }
}

fn with_article(type_name: &str) -> String {
    match type_name {
        "integer" | "array" | "object" => format!("an {type_name}"),
        "null" => "null".into(),
        other => format!("a {other}"),
    }
}

fn unknown_field_message(at: &str, name: &str, allowed: &[String]) -> String {
    if at.is_empty() && name == "user" {
        return "unknown field; name the account with `email` (the Atlassian account's email address, not a Bitbucket username)".into();
    }
    let mut message = "unknown field".to_string();
    if let Some(best) = closest(name, allowed) {
        message.push_str(&format!("; did you mean `{best}`?"));
    }
    if !allowed.is_empty() {
        message.push_str(&format!(" (allowed here: {})", allowed.join(", ")));
    }
    message
}

/// The allowed name nearest to a misspelt one, when it is near enough to be a likely typo.
fn closest<'a>(name: &str, allowed: &'a [String]) -> Option<&'a str> {
    allowed
        .iter()
        .map(|a| (edit_distance(name, a), a))
        .filter(|(d, a)| *d <= 2.max(a.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.as_str())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_compiles() {
        assert!(is_valid(
            &serde_json::json!({"email": "a@b.c", "app_token": "t"})
        ));
    }

    #[test]
    fn typos_get_a_suggestion() {
        let allowed = vec!["max_duration".to_string(), "default_duration".to_string()];
        assert_eq!(closest("max_duraton", &allowed), Some("max_duration"));
        assert_eq!(closest("colour", &allowed), None);
    }
}
