//! Keeps `connector.json` true to the code and to Bitbucket: its version is the crate's, its
//! capabilities are the ones the code provides, each capability's scopes are exactly those the
//! endpoint table requires for the endpoints it lists, and every scope exists in the official
//! OpenAPI document (when `../shared/reference` is present; required when `REQUIRE_REFERENCE=1`).

mod support_paths;

use bitbucket_access::manifest::{Manifest, CAPABILITIES, MANIFEST_JSON};
use bitbucket_access::{config, endpoints};
use std::collections::BTreeSet;
use std::path::PathBuf;

#[test]
fn the_version_is_the_crate_version_and_the_id_is_stable() {
    let m = Manifest::get();
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.id, "bitbucket-access");
}

#[test]
fn the_capabilities_are_the_ones_the_code_provides() {
    let listed: Vec<&str> = Manifest::get()
        .capabilities
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(listed, CAPABILITIES);
}

#[test]
fn each_capability_needs_exactly_the_scopes_of_its_endpoints() {
    for capability in &Manifest::get().capabilities {
        let mut union = BTreeSet::new();
        for endpoint in &capability.endpoints {
            let (method, path) = endpoint
                .split_once(' ')
                .unwrap_or_else(|| panic!("{}: `{endpoint}` is not `METHOD /path`", capability.id));
            let entry = endpoints::find(method, path).unwrap_or_else(|| {
                panic!(
                    "{}: {endpoint} is not in schemas/bitbucket-endpoints.json",
                    capability.id
                )
            });
            assert!(
                !entry.deprecated,
                "{}: {endpoint} is deprecated (removed by Atlassian)",
                capability.id
            );
            union.extend(entry.scopes.iter().cloned());
        }
        let declared: BTreeSet<String> = capability.scopes.iter().cloned().collect();
        assert_eq!(
            declared.len(),
            capability.scopes.len(),
            "{}: a scope is listed twice",
            capability.id
        );
        assert_eq!(
            declared, union,
            "{}: declared scopes differ from its endpoints' scopes",
            capability.id
        );
        for legacy in &capability.legacy_endpoints {
            assert!(
                legacy.contains(" /1.0/"),
                "{}: legacy endpoint {legacy} is not a 1.0 path",
                capability.id
            );
        }
    }
}

#[test]
fn entitlements_and_resource_types_fit_together() {
    let m = Manifest::get();
    let types: Vec<&str> = m.resource_types.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        types,
        ["workspace", "project", "repository", "group", "user"]
    );
    for e in &m.entitlements {
        assert!(
            types.contains(&e.resource_type.as_str()),
            "{}: unknown resource type",
            e.id
        );
        for cap in [&e.grant_capability, &e.revoke_capability]
            .into_iter()
            .flatten()
        {
            assert!(
                m.capability(cap).is_some(),
                "{}: unknown capability {cap}",
                e.id
            );
        }
        assert_eq!(
            e.grantable,
            e.grant_capability.is_some(),
            "{}: grantable needs a capability",
            e.id
        );
    }
    let find = |id: &str| {
        m.entitlements
            .iter()
            .find(|e| e.id == id)
            .expect("entitlement listed")
    };
    assert_eq!(
        find("repository_permission").levels,
        ["read", "write", "admin"]
    );
    assert_eq!(
        find("project_permission").levels,
        ["read", "write", "create-repo", "admin"]
    );
    assert!(!find("workspace_membership").grantable);
    let audit = m.capability("audit_reports").expect("audit");
    assert_eq!(audit.formats, ["json", "csv", "markdown", "html"]);
}

#[test]
fn the_config_schema_it_names_is_the_one_the_program_uses() {
    let m = Manifest::get();
    let path = support_paths::package_root().join(&m.config_schema);
    let text = std::fs::read_to_string(&path).expect("the schema named by connector.json exists");
    assert_eq!(text, config::SCHEMA_JSON);
    let reparsed: serde_json::Value = serde_json::from_str(MANIFEST_JSON).expect("JSON");
    assert_eq!(
        reparsed,
        serde_json::to_value(m).expect("serialises"),
        "connector.json has fields the type drops"
    );
}

fn reference_dir() -> PathBuf {
    std::env::var_os("REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| support_paths::package_root().join("../shared/reference"))
}

/// Every `<action>:<resource>:bitbucket` scope name the official document mentions, from the
/// operations' `x-atlassian-oauth2-scopes` and the narrative list of API-token scopes.
fn spec_scopes(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(":bitbucket") {
        let start = text[..i]
            .rfind(|c: char| !(c.is_ascii_lowercase() || c == ':' || c == '-'))
            .map_or(0, |p| p + 1);
        let name = &text[start..i + ":bitbucket".len()];
        if name.split(':').count() == 3 {
            out.insert(name.to_string());
        }
    }
    out
}

#[test]
fn every_scope_exists_in_the_official_specification() {
    let path = reference_dir().join("bitbucket-cloud-openapi.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            if std::env::var("REQUIRE_REFERENCE").as_deref() == Ok("1") {
                panic!(
                    "REQUIRE_REFERENCE=1 but {} cannot be read ({e})",
                    path.display()
                );
            }
            eprintln!(
                "manifest scope check: DID NOT RUN: {} is absent; set REQUIRE_REFERENCE=1 to make this a failure",
                path.display()
            );
            return;
        }
    };
    let known = spec_scopes(&text);
    assert!(
        known.contains("write:permission:bitbucket") && known.len() > 20,
        "scope extraction broke: {known:?}"
    );
    for scope in Manifest::get().all_scopes() {
        assert!(
            known.contains(scope),
            "{scope} is not a scope of the official specification"
        );
    }
}
