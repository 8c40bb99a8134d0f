//! Parsing the config text into a JSON value, more strictly than `serde_json::from_str`.
//!
//! Two things differ from serde_json's own parser, both for the operator's sake:
//! - a key written twice in one object is a problem naming the key and its JSON pointer, where
//!   serde_json would silently keep the last value (a policy switched off by a stray copy);
//! - a UTF-8 byte order mark at the start, as some Windows editors write it, is accepted.
//!
//! Syntax errors name a line and column, never the text around them, which may hold a token.

use super::error::Problem;
use super::schema::child;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::cell::RefCell;
use std::fmt;

/// The longest key name a problem quotes; keys are not secret, but need not fill a screen.
const QUOTED_KEY_CHARS: usize = 64;

/// Parses `text` as one JSON document. Duplicate keys and syntax errors come back as problems.
pub fn parse(text: &str) -> Result<Value, Vec<Problem>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let duplicates = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed {
        pointer: String::new(),
        duplicates: &duplicates,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Err(e) => Err(vec![Problem::new(
            "",
            format!(
                "is not valid JSON: {} at line {} column {}",
                syntax_category(&e),
                e.line(),
                e.column()
            ),
        )]),
        Ok(_) if !duplicates.borrow().is_empty() => Err(duplicates.into_inner()),
        Ok(value) => Ok(value),
    }
}

fn syntax_category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Eof => "the text ends too early",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}

/// Builds a [`Value`] while remembering where it is, so a repeated key can be named.
struct ValueSeed<'a> {
    pointer: String,
    duplicates: &'a RefCell<Vec<Problem>>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, so every parsed float is finite.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed {
            pointer: format!("{}/{}", self.pointer, items.len()),
            duplicates: self.duplicates,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let pointer = child(&self.pointer, &key);
            let value = map.next_value_seed(ValueSeed {
                pointer: pointer.clone(),
                duplicates: self.duplicates,
            })?;
            if object.contains_key(&key) {
                self.duplicates
                    .borrow_mut()
                    .push(duplicate_key(pointer, &key));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

fn duplicate_key(pointer: String, key: &str) -> Problem {
    let shown: String = key.chars().take(QUOTED_KEY_CHARS).collect();
    let ellipsis = if shown.len() < key.len() { "…" } else { "" };
    Problem::new(
        pointer,
        format!(
            "the key \"{shown}{ellipsis}\" is written more than once in the same object; keep one (which one counts would otherwise be a guess)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_duplicates_are_named_by_pointer() {
        let problems =
            parse(r#"{"a": [{"b": 1, "b": 2}], "c": {"d/e": 1, "d/e": 1}}"#).unwrap_err();
        let pointers: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
        assert_eq!(pointers, ["/a/0/b", "/c/d~1e"]);
    }

    #[test]
    fn values_equal_serde_json_s_own() {
        let text =
            r#"{"n": -3, "u": 18446744073709551615, "f": 1.5, "s": "x", "z": null, "t": [true]}"#;
        let expected: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parse(text).unwrap(), expected);
        assert_eq!(parse(&format!("\u{feff}{text}")).unwrap(), expected);
    }
}
