//! The connector's manifest, `connector.json` at the repository root: what the connector manages,
//! what it can grant, which capabilities it has and which Bitbucket token scopes each one needs.
//!
//! The file is compiled in, so `bitbucket-access manifest` and `doctor` need no file at run time.
//! Tests keep it true to the code: the version equals the crate's, the capability ids equal
//! [`CAPABILITIES`], and each capability's scopes are exactly those of the endpoints it lists.

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The manifest text as shipped.
pub const MANIFEST_JSON: &str = include_str!("../connector.json");

/// The capabilities the code provides, in manifest order. `connector.json` must list exactly these.
pub const CAPABILITIES: &[&str] = &[
    "sync",
    "effective_access_check",
    "grant_repository",
    "revoke_repository",
    "grant_project",
    "revoke_project",
    "group_membership",
    "identity_email_lookup",
    "drift_detection",
    "audit_reports",
    "time_bound_grants_with_restore",
];

/// The whole manifest.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Stable connector id, `bitbucket-access`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// The connector's version; equals the crate version.
    pub version: String,
    /// One-sentence summary.
    pub description: String,
    /// The vendor API the connector talks to.
    pub vendor_api: VendorApi,
    /// Path of the config schema, relative to the repository root.
    pub config_schema: String,
    /// The kinds of object the connector knows.
    pub resource_types: Vec<ResourceType>,
    /// The kinds of access it reads, and which it can grant.
    pub entitlements: Vec<Entitlement>,
    /// What the connector can do and what each needs.
    pub capabilities: Vec<Capability>,
    /// Known limits imposed by Bitbucket.
    pub limitations: Vec<Limitation>,
}

/// The vendor API and how the connector authenticates to it.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VendorApi {
    /// Base URL of the 2.0 API.
    pub base_url: String,
    /// How credentials are sent.
    pub authentication: String,
}

/// A kind of resource (workspace, project, repository, group, user).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceType {
    /// Resource type id.
    pub id: String,
    /// What it is.
    pub description: String,
    /// The resource type that contains it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// How a resource of this type is named.
    pub key: String,
}

/// A kind of access on a resource type.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    /// Entitlement id.
    pub id: String,
    /// The resource type it applies to.
    pub resource_type: String,
    /// Who can hold it (`user`, `group`).
    pub principal_types: Vec<String>,
    /// Its levels, lowest first.
    pub levels: Vec<String>,
    /// Whether this connector can grant it.
    pub grantable: bool,
    /// Whether this connector can revoke it.
    pub revocable: bool,
    /// Whether grants of it can be time-bound.
    pub time_bound: bool,
    /// The capability that grants it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_capability: Option<String>,
    /// The capability that revokes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_capability: Option<String>,
    /// What it is.
    pub description: String,
}

/// Something the connector can do.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capability {
    /// Capability id, one of [`CAPABILITIES`].
    pub id: String,
    /// What it does.
    pub description: String,
    /// API-token scopes it needs, all together.
    pub scopes: Vec<String>,
    /// The Bitbucket 2.0 endpoints it calls, as `METHOD /path-template` (relative to `/2.0`).
    pub endpoints: Vec<String>,
    /// The 1.0 endpoints it calls; the specification gives them no API-token scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub legacy_endpoints: Vec<String>,
    /// The Jira endpoints it calls with `jira_credentials`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jira_endpoints: Vec<String>,
    /// Identity-matching strategies, in the order they are tried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strategies: Vec<String>,
    /// Output formats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub formats: Vec<String>,
}

/// A limit imposed by Bitbucket that users should know about.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limitation {
    /// Limitation id.
    pub id: String,
    /// What it means for the user.
    pub description: String,
}

impl Manifest {
    /// The compiled-in manifest.
    pub fn get() -> &'static Manifest {
        static MANIFEST: OnceLock<Manifest> = OnceLock::new();
        MANIFEST.get_or_init(|| {
            serde_json::from_str(MANIFEST_JSON)
                .expect("connector.json matches the Manifest type (checked by tests)")
        })
    }

    /// The capability with this id.
    pub fn capability(&self, id: &str) -> Option<&Capability> {
        self.capabilities.iter().find(|c| c.id == id)
    }

    /// Every scope some capability needs, each once, in manifest order.
    pub fn all_scopes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for scope in self.capabilities.iter().flat_map(|c| &c.scopes) {
            if !out.contains(&scope.as_str()) {
                out.push(scope);
            }
        }
        out
    }

    /// For each capability that needs a scope missing from `granted`, the capability and the
    /// missing scopes. Capabilities that need nothing missing are left out.
    pub fn missing_scopes(&self, granted: &[String]) -> Vec<(&Capability, Vec<&str>)> {
        self.capabilities
            .iter()
            .filter_map(|c| {
                let missing: Vec<&str> = c
                    .scopes
                    .iter()
                    .filter(|s| !granted.contains(s))
                    .map(String::as_str)
                    .collect();
                (!missing.is_empty()).then_some((c, missing))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_scopes_names_each_capability_that_lacks_one() {
        let manifest = Manifest::get();
        let read_only: Vec<String> = [
            "read:user",
            "read:workspace",
            "read:project",
            "read:repository",
        ]
        .iter()
        .map(|s| format!("{s}:bitbucket"))
        .collect();
        let missing = manifest.missing_scopes(&read_only);
        let ids: Vec<&str> = missing.iter().map(|(c, _)| c.id.as_str()).collect();
        assert!(!ids.contains(&"sync"));
        assert!(ids.contains(&"grant_repository"));
        let (_, scopes) = missing
            .iter()
            .find(|(c, _)| c.id == "revoke_repository")
            .expect("listed");
        assert_eq!(
            scopes,
            &vec!["admin:repository:bitbucket", "delete:permission:bitbucket"]
        );
        let all: Vec<String> = manifest
            .all_scopes()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(manifest.missing_scopes(&all).is_empty());
    }
}
