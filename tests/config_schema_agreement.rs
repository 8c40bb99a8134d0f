//! The published schema (`schemas/config.schema.json`) and the program's config types accept
//! exactly the same documents: checked on the example configs in `tests/fixtures/configs/` and on
//! systematic mutations of the fullest example (every field removed, nulled, retyped, emptied,
//! and an unknown field added to every object).

mod support_paths;

use bitbucket_access::config::{schema_accepts, RawConfig};
use serde_json::{json, Value};
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    support_paths::package_root().join("tests/fixtures/configs")
}

fn read(rel: &str) -> Value {
    let text = std::fs::read_to_string(fixtures().join(rel)).expect("fixture readable");
    serde_json::from_str(&text).expect("fixture is JSON")
}

fn json_files(dir: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join(dir))
        .expect("fixture dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".json"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    names.sort();
    names
}

fn types_accept(v: &Value) -> bool {
    serde_json::from_value::<RawConfig>(v.clone()).is_ok()
}

#[test]
fn good_examples_pass_both_and_bad_examples_fail_both() {
    let good: Vec<String> = json_files("valid")
        .into_iter()
        .chain(json_files("semantic"))
        .collect();
    let bad = json_files("invalid");
    assert!(
        good.len() >= 20 && bad.len() >= 20,
        "the example set shrank"
    );
    for name in &good {
        let v = read(name);
        assert!(schema_accepts(&v), "the schema refuses {name}");
        assert!(types_accept(&v), "the Rust types refuse {name}");
    }
    for name in &bad {
        let v = read(name);
        assert!(!schema_accepts(&v), "the schema accepts {name}");
        assert!(!types_accept(&v), "the Rust types accept {name}");
    }
}

/// Every JSON pointer in a document, with its value.
fn pointers(v: &Value, at: String, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push((p.clone(), child.clone()));
                pointers(child, p, out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push((p.clone(), child.clone()));
                pointers(child, p, out);
            }
        }
        _ => {}
    }
}

fn parent_and_key(pointer: &str) -> (&str, String) {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a segment");
    (parent, key.replace("~1", "/").replace("~0", "~"))
}

fn remove(doc: &mut Value, pointer: &str) {
    let (parent, key) = parent_and_key(pointer);
    match doc.pointer_mut(parent) {
        Some(Value::Object(map)) => {
            map.remove(&key);
        }
        Some(Value::Array(items)) => {
            let i: usize = key.parse().expect("array index");
            items.remove(i);
        }
        _ => unreachable!("parent of {pointer} is a container"),
    }
}

#[test]
fn schema_and_types_agree_on_every_mutation_of_the_full_example() {
    let mut bases = vec![read("valid/full.json"), read("valid/secret_files.json")];
    bases.push(read("valid/minimal.json"));
    let replacements = [
        Value::Null,
        json!(true),
        json!(0),
        json!(1),
        json!(-1),
        json!(4294967296u64),
        json!(4294967295u64),
        json!(1.0),
        json!(1.5),
        json!(1e300),
        json!(257),
        json!("99999999999999999999w"),
        json!(""),
        json!("x"),
        json!("8h"),
        json!("8 h"),
        json!("read"),
        json!("json"),
        json!([]),
        json!(["x"]),
        json!({}),
    ];
    let mut checked = 0;
    let mut both_ways = (0, 0);
    for base in &bases {
        let mut all = Vec::new();
        pointers(base, String::new(), &mut all);
        let mut mutants: Vec<(String, Value)> = Vec::new();
        for (pointer, value) in &all {
            let mut removed = base.clone();
            remove(&mut removed, pointer);
            mutants.push((format!("remove {pointer}"), removed));
            for r in &replacements {
                let mut changed = base.clone();
                *changed.pointer_mut(pointer).expect("pointer exists") = r.clone();
                mutants.push((format!("set {pointer} = {r}"), changed));
            }
            if value.is_object() {
                let mut extra = base.clone();
                extra
                    .pointer_mut(pointer)
                    .and_then(Value::as_object_mut)
                    .expect("object")
                    .insert("unexpected_field".into(), json!(1));
                mutants.push((format!("add unknown field in {pointer}"), extra));
            }
        }
        let mut extra = base.clone();
        extra
            .as_object_mut()
            .expect("object")
            .insert("unexpected_field".into(), json!(1));
        mutants.push(("add unknown top-level field".into(), extra));
        for (what, doc) in mutants {
            let by_schema = schema_accepts(&doc);
            let by_types = types_accept(&doc);
            assert_eq!(
                by_schema, by_types,
                "disagreement after `{what}`: schema accepts = {by_schema}, types accept = {by_types}"
            );
            checked += 1;
            if by_schema {
                both_ways.0 += 1;
            } else {
                both_ways.1 += 1;
            }
        }
    }
    assert!(checked > 500, "only {checked} mutations checked");
    assert!(
        both_ways.0 > 50 && both_ways.1 > 50,
        "mutations must exercise both outcomes: {both_ways:?}"
    );
}

#[test]
fn every_object_in_the_schema_refuses_unknown_fields() {
    let schema: Value =
        serde_json::from_str(bitbucket_access::config::SCHEMA_JSON).expect("schema is JSON");
    let mut all = Vec::new();
    pointers(&schema, String::new(), &mut all);
    all.push((String::new(), schema.clone()));
    let mut objects = 0;
    for (pointer, node) in all {
        if node.get("type") == Some(&json!("object")) {
            objects += 1;
            assert_eq!(
                node.get("additionalProperties"),
                Some(&json!(false)),
                "{pointer} must set additionalProperties: false"
            );
        }
        if node.get("properties").is_some() {
            for (name, prop) in node["properties"].as_object().expect("properties object") {
                assert!(
                    prop.get("description")
                        .and_then(Value::as_str)
                        .is_some_and(|d| d.len() > 20),
                    "{pointer}/properties/{name} needs a description"
                );
            }
        }
    }
    assert!(
        objects >= 9,
        "expected the root and its eight sections to be objects, found {objects}"
    );
}
