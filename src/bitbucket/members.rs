//! Resolving known e-mail addresses to accounts through the workspace member filter
//! (`user.email IN (...)`, workspace administrators only, at most 90 addresses per request).
//!
//! Bitbucket never lists other users' addresses, but it answers which members hold addresses
//! the caller already knows: an IdP export (`identities import`), or an address named in
//! `access user EMAIL`. The answer becomes domain values here, at the client boundary.

use std::collections::BTreeMap;

use super::client::BitbucketClient;
use super::error::ApiError;
use crate::domain::{Account, AccountId};

/// One address Bitbucket resolved to a member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMatch {
    /// The address as Bitbucket gave it back.
    pub email: String,
    /// The member's account.
    pub account: Account,
}

impl BitbucketClient {
    /// The members of `workspace` holding any of `emails`, keyed by the lower-cased address.
    /// Addresses no member holds are absent. Costs one request per 90 addresses (more only if
    /// one batch of matches spans pages).
    pub async fn resolve_member_emails(
        &self,
        workspace: &str,
        emails: &[String],
    ) -> Result<BTreeMap<String, EmailMatch>, ApiError> {
        let memberships = self
            .workspaces()
            .members_by_email(workspace, emails)
            .await?;
        let mut found = BTreeMap::new();
        for membership in memberships {
            let Some(email) = membership.user.email.clone() else {
                continue;
            };
            let Some(account) = membership.user.to_domain() else {
                continue;
            };
            found.insert(
                email.trim().to_ascii_lowercase(),
                EmailMatch { email, account },
            );
        }
        Ok(found)
    }
}

/// The account ids of the matches, keyed by account (for identity matching).
pub fn by_account(matches: &BTreeMap<String, EmailMatch>) -> BTreeMap<AccountId, String> {
    matches
        .values()
        .map(|m| (m.account.account_id.clone(), m.email.clone()))
        .collect()
}
