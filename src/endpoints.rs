//! The Bitbucket endpoints this connector and its simulator use, with the token scopes and
//! authentication types the official OpenAPI document requires for each.
//!
//! The table lives in `schemas/bitbucket-endpoints.json`, generated from the official document
//! by `tests/conformance.rs` (run it with `BLESS=1` to regenerate). It is compiled in, so the
//! program needs no reference file at run time.

use serde::Deserialize;
use std::sync::OnceLock;

/// The generated table, as JSON text.
pub const TABLE_JSON: &str = include_str!("../schemas/bitbucket-endpoints.json");

/// One operation of the Bitbucket 2.0 API.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Endpoint {
    /// HTTP method in upper case.
    pub method: String,
    /// Path template relative to `/2.0`, as the spec writes it (`/repositories/{workspace}`).
    pub path: String,
    /// API-token scopes, all required together.
    pub scopes: Vec<String>,
    /// `x-atlassian-auth-types`: `api-token`, `forge-oauth2`.
    pub auth_types: Vec<String>,
    /// Legacy OAuth 2.0 scopes (`security.oauth2`), which access tokens carry.
    pub legacy_oauth2_scopes: Vec<String>,
    /// Marked deprecated in the spec (Atlassian removed these in 2026; they answer 410).
    pub deprecated: bool,
    /// Status codes the spec documents for the operation.
    pub statuses: Vec<String>,
}

#[derive(Deserialize)]
struct Table {
    endpoints: Vec<Endpoint>,
}

/// Every endpoint in the table.
pub fn all() -> &'static [Endpoint] {
    static TABLE: OnceLock<Vec<Endpoint>> = OnceLock::new();
    TABLE.get_or_init(|| {
        serde_json::from_str::<Table>(TABLE_JSON)
            .expect("schemas/bitbucket-endpoints.json is valid (checked by tests)")
            .endpoints
    })
}

/// The endpoint with this method and path template, if the table has it.
pub fn find(method: &str, path: &str) -> Option<&'static Endpoint> {
    all()
        .iter()
        .find(|e| e.method.eq_ignore_ascii_case(method) && e.path == path)
}

/// The API-token scopes an endpoint requires, or an empty slice when the table lacks it.
pub fn scopes(method: &str, path: &str) -> &'static [String] {
    find(method, path)
        .map(|e| e.scopes.as_slice())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_writes_need_the_permission_scope() {
        let put = scopes(
            "PUT",
            "/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}",
        );
        assert!(put.contains(&"write:permission:bitbucket".to_string()));
        assert!(put.contains(&"admin:repository:bitbucket".to_string()));
    }
}
