//! What the scope probes proved: which scopes the token has, which it lacks, and where the
//! account is not an administrator. Built from typed error kinds and statuses only, never from
//! the words of an error message.

use super::CapabilityState;
use crate::bitbucket::{ApiError, ErrorDetail, ErrorKind};
use crate::endpoints;
use std::collections::BTreeSet;

/// What one probe learned.
#[derive(Debug, Default)]
pub(super) struct ScopeKnowledge {
    /// Scopes proven present.
    granted: BTreeSet<String>,
    /// Scopes proven missing.
    missing: BTreeSet<String>,
    /// The complete list of the token's scopes, when a 403 told it.
    complete: Option<BTreeSet<String>>,
    /// Endpoints refused because the account is not an administrator.
    not_admin: BTreeSet<String>,
    /// Endpoints the doctor could not probe, with the reason.
    pub(super) unprobed: Vec<(String, String)>,
}

impl ScopeKnowledge {
    /// Records the outcome of a request to the endpoint `method path`.
    pub(super) fn record<T>(&mut self, method: &str, path: &str, outcome: &Result<T, ApiError>) {
        let required: Vec<String> = endpoints::scopes(method, path).to_vec();
        match outcome {
            Ok(_) => self.granted.extend(required),
            Err(e) if e.kind == ErrorKind::Forbidden => match &e.detail {
                Some(ErrorDetail::Scopes { granted, required }) => {
                    let granted: BTreeSet<String> = granted.iter().cloned().collect();
                    for scope in required {
                        if !granted.contains(scope) {
                            self.missing.insert(scope.clone());
                        }
                    }
                    self.granted.extend(granted.iter().cloned());
                    self.complete = Some(granted);
                }
                _ => {
                    self.not_admin.insert(format!("{method} {path}"));
                }
            },
            Err(e) if e.status.is_some_and(answered_after_scope_check) => {
                self.granted.extend(required)
            }
            // 401, 410, 429, 5xx and transport failures happen before (or instead of) the
            // scope check, so they prove nothing about the token's scopes.
            Err(e) => self
                .unprobed
                .push((format!("{method} {path}"), e.to_string())),
        }
    }

    /// What the doctor can say about a capability needing `scopes` and calling `calls`.
    pub(super) fn state_for(&self, scopes: &[String], calls: &[String]) -> CapabilityState {
        let mut missing: Vec<String> = scopes
            .iter()
            .filter(|s| {
                self.missing.contains(*s)
                    || self.complete.as_ref().is_some_and(|all| !all.contains(*s))
            })
            .cloned()
            .collect();
        missing.dedup();
        if !missing.is_empty() {
            return CapabilityState::MissingScopes { scopes: missing };
        }
        if calls.iter().any(|c| self.not_admin.contains(c)) {
            return CapabilityState::NotAdministrator;
        }
        let unknown: Vec<&String> = scopes
            .iter()
            .filter(|s| !self.granted.contains(*s))
            .collect();
        if unknown.is_empty() {
            CapabilityState::Ready
        } else {
            let why = self
                .unprobed
                .first()
                .map(|(call, why)| format!("{call} could not be probed: {why}"))
                .unwrap_or_else(|| "nothing in the managed workspaces to probe".to_string());
            CapabilityState::Unverified {
                reason: format!(
                    "{} not proven ({why})",
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
    }
}

/// Whether Bitbucket gives this status only after it has accepted the token's scopes: the
/// request was well-formed and authorised, and failed on its content (unknown account, bad
/// body, seat limit, conflict). 401, 403, 410, 429 and 5xx come earlier or say nothing.
fn answered_after_scope_check(status: u16) -> bool {
    matches!(status, 400 | 402 | 404 | 409 | 422)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitbucket::templates::REPO_USER;
    use crate::bitbucket::AuthMethod;

    fn answer(status: u16, body: &str, method: &str, path: &'static str) -> Result<(), ApiError> {
        Err(ApiError::from_response(
            status,
            body.as_bytes(),
            method,
            path,
            AuthMethod::ApiToken,
            1,
        ))
    }

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_404_to_a_write_probe_proves_its_scopes() {
        let mut k = ScopeKnowledge::default();
        k.record("PUT", REPO_USER, &answer(404, "", "PUT", REPO_USER));
        let needed = endpoints::scopes("PUT", REPO_USER).to_vec();
        assert!(!needed.is_empty());
        assert_eq!(k.state_for(&needed, &[]), CapabilityState::Ready);
    }

    #[test]
    fn rate_limits_and_server_errors_prove_nothing() {
        for status in [429, 500, 503, 401] {
            let mut k = ScopeKnowledge::default();
            k.record("PUT", REPO_USER, &answer(status, "", "PUT", REPO_USER));
            let needed = endpoints::scopes("PUT", REPO_USER).to_vec();
            assert!(
                matches!(
                    k.state_for(&needed, &[]),
                    CapabilityState::Unverified { .. }
                ),
                "HTTP {status}"
            );
        }
    }

    #[test]
    fn a_scope_403_names_what_is_missing_for_every_capability() {
        let mut k = ScopeKnowledge::default();
        let body = r#"{"type":"error","error":{"message":"Your credentials lack one or more required privilege scopes.","detail":{"granted":["read:repository:bitbucket","admin:repository:bitbucket"],"required":["admin:repository:bitbucket","write:permission:bitbucket"]}}}"#;
        k.record("PUT", REPO_USER, &answer(403, body, "PUT", REPO_USER));
        // The granted list is complete, so a scope no probe asked about is known missing too.
        assert_eq!(
            k.state_for(
                &scopes(&["read:repository:bitbucket", "delete:permission:bitbucket"]),
                &[]
            ),
            CapabilityState::MissingScopes {
                scopes: scopes(&["delete:permission:bitbucket"])
            }
        );
        assert_eq!(
            k.state_for(&scopes(&["read:repository:bitbucket"]), &[]),
            CapabilityState::Ready
        );
    }

    #[test]
    fn a_403_without_scopes_means_not_an_administrator() {
        let mut k = ScopeKnowledge::default();
        let body = r#"{"type":"error","error":{"message":"You must be an administrator of this repository"}}"#;
        k.record("PUT", REPO_USER, &answer(403, body, "PUT", REPO_USER));
        assert_eq!(
            k.state_for(&[], &[format!("PUT {REPO_USER}")]),
            CapabilityState::NotAdministrator
        );
    }
}
