//! `${ENV_VAR}` references: any string value of the config may be one, as the whole value.

use super::error::Problem;
use super::schema::child;
use serde_json::Value;

/// The variable name of a string that is exactly `${NAME}`.
fn whole_reference(text: &str) -> Option<&str> {
    let name = text.strip_prefix("${")?.strip_suffix('}')?;
    is_variable_name(name).then_some(name)
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text` holds a `${NAME}` somewhere inside a longer string.
fn embedded_reference(text: &str) -> bool {
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        if let Some(end) = after.find('}') {
            if is_variable_name(&after[..end]) {
                return true;
            }
        }
        rest = after;
    }
    false
}

/// Replaces every `${NAME}` string in `value` by the variable's value. Unset variables and
/// references embedded in longer strings become problems; the value is left as written so the
/// schema check can still run over the rest of the document.
pub fn substitute(
    value: &mut Value,
    pointer: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        Value::String(text) => {
            if let Some(name) = whole_reference(text) {
                match env(name) {
                    Some(resolved) => *text = resolved,
                    None => problems.push(Problem::new(
                        pointer,
                        format!("refers to the environment variable {name}, which is not set"),
                    )),
                }
            } else if embedded_reference(text) {
                problems.push(Problem::new(
                    pointer,
                    "holds a ${...} reference inside a longer string; only a whole value can be an environment reference, as in \"${NAME}\"",
                ));
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute(item, &format!("{pointer}/{i}"), env, problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                substitute(item, &child(pointer, key), env, problems);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replaces_whole_references_and_names_unset_ones() {
        let mut v = json!({"a": "${SET}", "b": ["${UNSET}"], "c": "x-${SET}", "d": "$5 {fine}"});
        let env = |name: &str| (name == "SET").then(|| "value".to_string());
        let mut problems = Vec::new();
        substitute(&mut v, "", &env, &mut problems);
        assert_eq!(v["a"], "value");
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].pointer, "/b/0");
        assert!(problems[0].message.contains("UNSET"));
        assert_eq!(problems[1].pointer, "/c");
    }
}
