//! Which way the client reaches Jira: the site itself (classic API token) or Atlassian's API
//! gateway (`{gateway}/ex/jira/{cloudId}`, the only way a scoped token works).
//!
//! [`connect`] asks the site first; when the site answers that the token's scopes do not
//! match, it reads the site's cloud id from `/_edge/tenant_info` (no credentials needed) and
//! builds a client on the gateway, checked with `myself`. Both clients spend the same budget.

use std::fmt;
use std::sync::Arc;

use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::{JiraClient, JiraError, JiraErrorKind, JiraSettings};
use crate::domain::{AccountType as DomainAccountType, IdentitySource, JiraFact};
use crate::http::{Budget, HttpError, Request, RetryPolicy, Scrubber};

/// `GET /_edge/tenant_info` on the site: `{"cloudId": "..."}`.
pub const TENANT_INFO: &str = "/_edge/tenant_info";

/// Atlassian's API gateway, where scoped tokens work.
pub const DEFAULT_GATEWAY: &str = "https://api.atlassian.com";

/// How the client reaches Jira.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JiraRoute {
    /// The site URL with a classic API token.
    Site(Url),
    /// The API gateway with a scoped token, for the site with this cloud id.
    Gateway {
        /// The gateway base, e.g. `https://api.atlassian.com/ex/jira/{cloudId}`.
        base: Url,
        /// The site's cloud id.
        cloud_id: String,
    },
}

impl fmt::Display for JiraRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JiraRoute::Site(url) => write!(f, "the site {url} (classic API token)"),
            JiraRoute::Gateway { base, cloud_id } => {
                write!(
                    f,
                    "the API gateway {base} (scoped token, cloud id {cloud_id})"
                )
            }
        }
    }
}

/// A client that works with the configured token, and the route it takes.
pub async fn connect(
    settings: JiraSettings,
    gateway: &Url,
    retry: RetryPolicy,
    budget: Arc<Budget>,
    scrubber: Scrubber,
) -> Result<(JiraClient, JiraRoute), JiraError> {
    let site = settings.base_url.clone();
    let client = JiraClient::with_parts(settings.clone(), retry, budget.clone(), scrubber.clone())?;
    match client.myself().await {
        Ok(_) => return Ok((client, JiraRoute::Site(site))),
        Err(e) if e.kind == JiraErrorKind::ScopedToken => {}
        Err(e) => return Err(e),
    }
    let cloud_id = client.cloud_id().await?;
    let mut base = gateway.clone();
    base.path_segments_mut()
        .map_err(|_| {
            JiraError::local(
                JiraErrorKind::Config,
                TENANT_INFO,
                "the gateway URL cannot hold a path; fix jira_credentials.gateway_url",
            )
        })?
        .pop_if_empty()
        .extend(["ex", "jira", cloud_id.as_str()]);
    let gateway_settings = JiraSettings {
        base_url: base.clone(),
        ..settings
    };
    let client = JiraClient::with_parts(gateway_settings, retry, budget, scrubber)?;
    client.myself().await?;
    Ok((client, JiraRoute::Gateway { base, cloud_id }))
}

impl JiraClient {
    /// The site's cloud id, from `/_edge/tenant_info`.
    pub async fn cloud_id(&self) -> Result<String, JiraError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct TenantInfo {
            cloud_id: String,
        }
        let url = self.url(TENANT_INFO, &[])?;
        let body = self
            .inner
            .send(Request::get(TENANT_INFO, url))
            .await
            .map_err(|e| self.fail(e))?;
        let info: TenantInfo = self
            .inner
            .decode(&body)
            .map_err(|failure| self.fail(HttpError::local(TENANT_INFO, Method::GET, failure)))?;
        let id = info.cloud_id.trim();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(JiraError::local(
                JiraErrorKind::Decode,
                TENANT_INFO,
                "the site's tenant_info gave no usable cloud id; check jira_credentials.url",
            ));
        }
        Ok(id.to_owned())
    }
}

impl super::JiraUser {
    /// What this user tells identity matching, found by `source`.
    pub fn fact(&self, source: IdentitySource) -> JiraFact {
        JiraFact {
            email: self.email.clone(),
            active: self.active,
            account_type: match self.account_type {
                super::AccountType::Atlassian => DomainAccountType::Atlassian,
                super::AccountType::App => DomainAccountType::App,
                super::AccountType::Customer => DomainAccountType::Customer,
                super::AccountType::Unknown => DomainAccountType::Unknown,
            },
            source,
        }
    }
}
