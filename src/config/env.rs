//! `${NAME}` references: any string value of the config may hold them, as the whole value or
//! inside a longer string (`postgres://ba:${PGPASSWORD}@db.internal/ba`). `$${` writes a
//! literal `${`.

use super::error::Problem;
use super::schema::child;
use serde_json::Value;

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why one string could not be expanded.
enum ExpandError {
    /// `${NAME}` names a variable that is not set.
    Unset(String),
    /// A `${` that neither starts a reference nor is escaped as `$${`.
    Malformed,
}

/// Expands every reference in `text`, or says why it cannot.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail.find('}').ok_or(ExpandError::Malformed)?;
            let name = &tail[..end];
            if !is_variable_name(name) {
                return Err(ExpandError::Malformed);
            }
            out.push_str(&env(name).ok_or_else(|| ExpandError::Unset(name.to_string()))?);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Replaces every `${NAME}` in the strings of `value` by the variable's value. Unset variables
/// and malformed references become problems; such a string is left as written so the schema
/// check can still run over the rest of the document.
pub fn substitute(
    value: &mut Value,
    pointer: &str,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<Problem>,
) {
    match value {
        Value::String(text) => {
            if !text.contains('$') {
                return;
            }
            match expand(text, env) {
                Ok(expanded) => *text = expanded,
                Err(ExpandError::Unset(name)) => problems.push(Problem::new(
                    pointer,
                    format!("refers to the environment variable {name}, which is not set; set it, or write the value itself"),
                )),
                Err(ExpandError::Malformed) => problems.push(Problem::new(
                    pointer,
                    "holds a \"${\" that is not a reference such as ${NAME} (letters, digits and _); write $${ for a literal ${",
                )),
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
    fn expands_whole_and_embedded_references_and_names_unset_ones() {
        let mut v = json!({
            "a": "${SET}",
            "b": ["${UNSET}"],
            "c": "x-${SET}-$${SET}",
            "d": "$5 {fine} $$",
            "e": "${not closed",
        });
        let env = |name: &str| (name == "SET").then(|| "value".to_string());
        let mut problems = Vec::new();
        substitute(&mut v, "", &env, &mut problems);
        assert_eq!(v["a"], "value");
        assert_eq!(v["c"], "x-value-${SET}");
        assert_eq!(v["d"], "$5 {fine} $$");
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/b/0", "/e"]);
        assert!(problems[0].message.contains("UNSET"));
    }
}
