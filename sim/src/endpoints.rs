//! Required scopes per endpoint, read at compile time from `schemas/bitbucket-endpoints.json`
//! (generated from the official OpenAPI document), so the simulator never retypes a scope.
//!
//! The 1.0 groups API is not in the 2.0 specification; its requirements live in
//! [`V1_GROUP_RULES`], documented there as the simulator's choice.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

const ENDPOINTS_JSON: &str = include_str!("../../schemas/bitbucket-endpoints.json");

/// One endpoint's requirements as the specification lists them.
#[derive(Debug, Clone, Deserialize)]
pub struct EndpointSpec {
    /// HTTP method, upper case.
    pub method: String,
    /// Path template relative to `/2.0`, with `{param}` segments.
    pub path: String,
    /// API-token scopes, all required together.
    pub scopes: Vec<String>,
    /// `x-atlassian-auth-types`.
    pub auth_types: Vec<String>,
    /// Legacy OAuth2 scopes (what workspace access tokens carry).
    pub legacy_oauth2_scopes: Vec<String>,
    /// Whether the spec marks the operation deprecated.
    pub deprecated: bool,
    /// Documented status codes.
    pub statuses: Vec<String>,
}

#[derive(Deserialize)]
struct File {
    endpoints: Vec<EndpointSpec>,
}

/// The 1.0 endpoints: (method, path template under `/1.0`, API-token scopes, legacy scopes).
/// Not in the 2.0 spec; the simulator requires `read:workspace:bitbucket` to read groups and
/// `admin:workspace:bitbucket` to change membership (the closest 2.0 scopes), the legacy
/// `account` / `account:write` scopes for access tokens (bitbucket-api.md section 3.5), and
/// `read:repository:bitbucket` / `repository` for group privileges (section 12).
pub const V1_GROUP_RULES: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "GET",
        "/groups/{workspace}",
        &["read:workspace:bitbucket"],
        &["account"],
    ),
    (
        "GET",
        "/groups/{workspace}/{group_slug}",
        &["read:workspace:bitbucket"],
        &["account"],
    ),
    (
        "GET",
        "/groups/{workspace}/{group_slug}/members",
        &["read:workspace:bitbucket"],
        &["account"],
    ),
    (
        "PUT",
        "/groups/{workspace}/{group_slug}/members/{member}",
        &["admin:workspace:bitbucket"],
        &["account:write"],
    ),
    (
        "DELETE",
        "/groups/{workspace}/{group_slug}/members/{member}",
        &["admin:workspace:bitbucket"],
        &["account:write"],
    ),
    (
        "GET",
        "/group-privileges/{workspace}",
        &["read:repository:bitbucket"],
        &["repository"],
    ),
];

/// All 2.0 endpoints from the generated file.
pub fn all() -> &'static [EndpointSpec] {
    static ALL: OnceLock<Vec<EndpointSpec>> = OnceLock::new();
    ALL.get_or_init(|| match serde_json::from_str::<File>(ENDPOINTS_JSON) {
        Ok(f) => f.endpoints,
        // The file is part of the repository and checked by a test; an unreadable file leaves
        // the simulator with no known endpoint, which every test notices at once.
        Err(_) => Vec::new(),
    })
}

/// Requirements of one request, resolved from its route template.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// API-token scopes.
    pub scopes: Vec<String>,
    /// Legacy scopes for Bearer access tokens.
    pub legacy: Vec<String>,
    /// Whether the spec allows only API tokens (no Forge/OAuth).
    pub api_token_only: bool,
}

/// Looks up the requirements of `METHOD /2.0/...` or `/1.0/...` route templates.
pub fn requirement(method: &str, template: &str) -> Option<&'static Requirement> {
    static MAP: OnceLock<HashMap<String, Requirement>> = OnceLock::new();
    let map = MAP.get_or_init(|| {
        let mut m = HashMap::new();
        for e in all() {
            m.insert(
                format!("{} /2.0{}", e.method, e.path),
                Requirement {
                    scopes: e.scopes.clone(),
                    legacy: e.legacy_oauth2_scopes.clone(),
                    api_token_only: !e.auth_types.iter().any(|a| a != "api-token"),
                },
            );
        }
        for (method, path, scopes, legacy) in V1_GROUP_RULES {
            m.insert(
                format!("{method} /1.0{path}"),
                Requirement {
                    scopes: scopes.iter().map(|s| s.to_string()).collect(),
                    legacy: legacy.iter().map(|s| s.to_string()).collect(),
                    api_token_only: false,
                },
            );
        }
        m
    });
    map.get(&format!("{method} {template}"))
}

/// Every scope the connector's endpoints need (the admin token carries all of them), plus
/// `read:permission:bitbucket` which the connector requests for forward compatibility.
pub fn connector_scopes() -> Vec<String> {
    let mut v: Vec<String> = all().iter().flat_map(|e| e.scopes.clone()).collect();
    for (_, _, s, _) in V1_GROUP_RULES {
        v.extend(s.iter().map(|x| x.to_string()));
    }
    v.push("read:permission:bitbucket".into());
    v.sort();
    v.dedup();
    v
}
