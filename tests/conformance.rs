//! Keeps `schemas/bitbucket-endpoints.json` true to the official Bitbucket Cloud OpenAPI
//! document in `../shared/reference/`.
//!
//! The table is what the program and the simulator use at run time (scopes per endpoint); this
//! test recomputes every entry from the official document and fails on any difference. Run it
//! with `BLESS=1` to rewrite the table after the reference document changes. Without the
//! reference folder the test says plainly that it did not run, and fails when
//! `REQUIRE_REFERENCE=1` (as CI sets it).

mod support_paths;

use serde_json::{json, Value};
use std::path::PathBuf;

fn reference_dir() -> PathBuf {
    std::env::var_os("REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| support_paths::package_root().join("../shared/reference"))
}

/// The official document, or `None` (with a plain message) when it is absent and not required.
fn load_spec() -> Option<Value> {
    let path = reference_dir().join("bitbucket-cloud-openapi.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("the reference document is JSON")),
        Err(e) => {
            if std::env::var("REQUIRE_REFERENCE").as_deref() == Ok("1") {
                panic!(
                    "REQUIRE_REFERENCE=1 but {} cannot be read ({e}); put shared/reference beside the project",
                    path.display()
                );
            }
            eprintln!(
                "conformance: DID NOT RUN: {} is absent; set REQUIRE_REFERENCE=1 to make this a failure",
                path.display()
            );
            None
        }
    }
}

/// Recomputes one table entry from the operation in the official document.
fn entry_from_spec(spec: &Value, method: &str, path: &str) -> Value {
    let op = &spec["paths"][path][method.to_ascii_lowercase()];
    assert!(
        op.is_object(),
        "{method} {path} is in schemas/bitbucket-endpoints.json but not in the official document"
    );
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let scopes: Vec<String> = op["x-atlassian-oauth2-scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["state"] == "Current")
        .flat_map(|e| strings(&e["scopes"]))
        .collect();
    let legacy: Vec<String> = op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| strings(&s["oauth2"]))
        .collect();
    let mut statuses: Vec<String> = op["responses"]
        .as_object()
        .map(|r| r.keys().filter(|k| *k != "default").cloned().collect())
        .unwrap_or_default();
    statuses.sort();
    json!({
        "method": method,
        "path": path,
        "scopes": scopes,
        "auth_types": strings(&op["x-atlassian-auth-types"]),
        "legacy_oauth2_scopes": legacy,
        "deprecated": op["deprecated"].as_bool().unwrap_or(false),
        "statuses": statuses,
    })
}

#[test]
fn endpoint_table_matches_the_official_document() {
    let Some(spec) = load_spec() else { return };
    let table_path = support_paths::package_root().join("schemas/bitbucket-endpoints.json");
    let table: Value =
        serde_json::from_str(&std::fs::read_to_string(&table_path).unwrap()).unwrap();
    let expected: Vec<Value> = table["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            entry_from_spec(
                &spec,
                e["method"].as_str().unwrap(),
                e["path"].as_str().unwrap(),
            )
        })
        .collect();
    let revision = spec["x-revision"].as_str().unwrap_or("unknown");
    let regenerated = json!({
        "source": format!("bitbucket-cloud-openapi.json x-revision {revision}"),
        "note": table["note"],
        "endpoints": expected,
    });
    if std::env::var("BLESS").as_deref() == Ok("1") {
        let text = serde_json::to_string_pretty(&regenerated).unwrap() + "\n";
        std::fs::write(&table_path, text).unwrap();
        return;
    }
    for (have, want) in table["endpoints"].as_array().unwrap().iter().zip(&expected) {
        assert_eq!(
            have, want,
            "table entry differs from the official document; run with BLESS=1"
        );
    }
    assert_eq!(
        table["source"], regenerated["source"],
        "the table was generated from another revision"
    );
}

#[test]
fn every_endpoint_the_program_uses_requires_known_scopes() {
    let Some(spec) = load_spec() else { return };
    // The narrative lists every scope an API token can carry; a table scope outside it would be
    // a typo the program would then demand from users.
    let narrative = spec.to_string();
    for e in bitbucket_access::endpoints::all() {
        assert!(
            !e.scopes.is_empty() || e.deprecated,
            "{} {} requires no scope?",
            e.method,
            e.path
        );
        for s in &e.scopes {
            assert!(
                narrative.contains(s.as_str()),
                "scope {s} is not in the official document"
            );
        }
    }
}
