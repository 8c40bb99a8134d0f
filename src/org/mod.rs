//! The Atlassian Organizations REST API client (atlassian-org.md): the organization, its linked
//! workspaces, its managed accounts with their emails, and the audit log's polling stream.
//!
//! It authenticates with the organization API key (Bearer) against `atlassian_admin.url`
//! (`https://api.atlassian.com/admin`), on the one HTTP layer ([`crate::http::Transport`]):
//! the configured timeouts, the retry policy (429 with `Retry-After` is waited for), bounded
//! bodies, same-origin `next` links only, and its **own** request budget: the organization's
//! limits are separate from Bitbucket's, so polling spends none of Bitbucket's requests.
//!
//! Only this module knows the Organizations API's JSON (`wire.rs`); callers see [`OrgEvent`],
//! [`ManagedUser`] and [`Organization`].

pub mod events;
mod wire;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use reqwest::Method;
use secrecy::SecretString;
use serde::Serialize;
use url::Url;

use crate::http::{
    Budget, BudgetSettings, Credentials, Failure, HttpError, Limits, Request, RetryPolicy,
    Scrubber, Transport, TransportSettings,
};

/// `GET /v1/orgs/{orgId}`.
pub const ORGANIZATION: &str = "/v1/orgs/{orgId}";
/// `GET /v1/orgs/{orgId}/workspaces`.
pub const WORKSPACES: &str = "/v1/orgs/{orgId}/workspaces";
/// `GET /v1/orgs/{orgId}/users`.
pub const USERS: &str = "/v1/orgs/{orgId}/users";
/// `GET /v1/orgs/{orgId}/events-stream`.
pub const EVENTS_STREAM: &str = "/v1/orgs/{orgId}/events-stream";

/// Pages a listing may take before the client stops (a server that never ends its links).
pub const MAX_PAGES: u64 = 10_000;

/// Why a request to the Organizations API failed.
#[derive(Debug, thiserror::Error)]
pub enum OrgError {
    /// The key was refused.
    #[error("the organization API key was refused ({endpoint}): check atlassian_admin.api_key (admin.atlassian.com > Settings > API keys; keys expire)")]
    Unauthorized {
        /// The endpoint template.
        endpoint: &'static str,
    },
    /// No such organization for this key.
    #[error("organization not found ({endpoint}): check atlassian_admin.org_id against the admin URL admin.atlassian.com/o/{{org_id}}")]
    NotFound {
        /// The endpoint template.
        endpoint: &'static str,
    },
    /// Any other failure, in the HTTP layer's words (scrubbed).
    #[error("Organizations API {endpoint}: {message}")]
    Other {
        /// The endpoint template.
        endpoint: &'static str,
        /// What happened.
        message: String,
    },
}

impl OrgError {
    fn from_http(e: HttpError) -> Self {
        match &e.failure {
            Failure::Status { status: 401, .. } | Failure::Status { status: 403, .. } => {
                OrgError::Unauthorized {
                    endpoint: e.endpoint,
                }
            }
            Failure::Status { status: 404, .. } => OrgError::NotFound {
                endpoint: e.endpoint,
            },
            Failure::Status { status, body, .. } => OrgError::Other {
                endpoint: e.endpoint,
                message: format!(
                    "HTTP {status}: {}",
                    body.chars().take(300).collect::<String>()
                ),
            },
            _ => OrgError::Other {
                endpoint: e.endpoint,
                message: e.describe(),
            },
        }
    }

    fn local(endpoint: &'static str, failure: Failure) -> Self {
        OrgError::from_http(HttpError::local(endpoint, Method::GET, failure))
    }
}

/// The organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
}

/// A managed account of the organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManagedUser {
    /// The Atlassian account id (shared with Bitbucket).
    pub account_id: String,
    /// The email, whatever the person's profile visibility.
    pub email: Option<String>,
    /// Whether the account is active.
    pub active: bool,
}

/// Who made an audited change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventActor {
    /// The Atlassian account id.
    pub account_id: String,
    /// The display name.
    pub name: String,
    /// Whether an API token made the change (else a session).
    pub api_token: bool,
}

/// One thing an event names: its kind (`workspace`, `project`, `repository`, `group`, `user`)
/// and identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventContext {
    /// The kind.
    pub kind: String,
    /// The identifier (`ws`, `ws/KEY`, `ws/slug`, `ws/group`, an account id).
    pub id: String,
}

/// One audit-log event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrgEvent {
    /// The event's id.
    pub id: String,
    /// When the change happened.
    pub time: DateTime<Utc>,
    /// The action name.
    pub action: String,
    /// Who made it.
    pub actor: EventActor,
    /// What it names.
    pub context: Vec<EventContext>,
    /// The container it happened in.
    pub container: Vec<EventContext>,
}

/// One page of the events stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsPage {
    /// The events, in processing order.
    pub events: Vec<OrgEvent>,
    /// The cursor to keep: the next poll starts after these events.
    pub cursor: Option<String>,
    /// Whether more events are ready now.
    pub more: bool,
}

/// Settings of an [`OrgClient`], from `atlassian_admin`.
#[derive(Clone)]
pub struct OrgSettings {
    /// The API's base, `https://api.atlassian.com/admin`.
    pub base_url: Url,
    /// The organization's id.
    pub org_id: String,
    /// The organization API key.
    pub api_key: SecretString,
    /// Longest wait for a connection.
    pub connect_timeout: std::time::Duration,
    /// Longest wait for any read.
    pub read_timeout: std::time::Duration,
    /// The organization's own request budget.
    pub budget: BudgetSettings,
}

impl OrgSettings {
    /// Settings with the default timeouts and budget.
    pub fn new(base_url: Url, org_id: impl Into<String>, api_key: SecretString) -> Self {
        OrgSettings {
            base_url,
            org_id: org_id.into(),
            api_key,
            connect_timeout: crate::config::DEFAULT_CONNECT_TIMEOUT,
            read_timeout: crate::config::DEFAULT_READ_TIMEOUT,
            budget: BudgetSettings::default(),
        }
    }
}

/// The Organizations API client; cheap to clone.
#[derive(Clone, Debug)]
pub struct OrgClient {
    transport: Arc<Transport>,
    org_id: String,
}

impl OrgClient {
    /// Builds the client with its own budget.
    pub fn new(
        settings: OrgSettings,
        retry: RetryPolicy,
        scrubber: Scrubber,
    ) -> Result<Self, OrgError> {
        let budget = Arc::new(Budget::new(settings.budget));
        let transport = Transport::new(TransportSettings {
            service: "Organizations API",
            base_url: settings.base_url,
            credentials: Credentials::Bearer(settings.api_key),
            connect_timeout: settings.connect_timeout,
            read_timeout: settings.read_timeout,
            retry,
            budget,
            limits: Limits::default(),
            scrubber,
        })
        .map_err(|f| OrgError::local(ORGANIZATION, f))?;
        Ok(OrgClient {
            transport: Arc::new(transport),
            org_id: settings.org_id,
        })
    }

    /// The organization's id.
    pub fn org_id(&self) -> &str {
        &self.org_id
    }

    /// Requests sent so far (none of them Bitbucket's).
    pub fn requests_used(&self) -> u64 {
        self.transport.budget().requests_used()
    }

    fn url(&self, rest: &[&str], query: &[(&str, &str)]) -> Result<Url, OrgError> {
        let mut segments = vec!["v1", "orgs", self.org_id.as_str()];
        segments.extend_from_slice(rest);
        self.transport
            .url(segments, query)
            .map_err(|f| OrgError::local(ORGANIZATION, f))
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        url: Url,
    ) -> Result<T, OrgError> {
        let body = self
            .transport
            .send(Request::get(endpoint, url))
            .await
            .map_err(OrgError::from_http)?;
        self.transport
            .decode(&body)
            .map_err(|f| OrgError::local(endpoint, f))
    }

    /// The organization (proves the key and the id).
    pub async fn organization(&self) -> Result<Organization, OrgError> {
        let raw: wire::Single<wire::OrgData> = self.get(ORGANIZATION, self.url(&[], &[])?).await?;
        Ok(Organization {
            id: raw.data.id,
            name: raw.data.attributes.name.unwrap_or_default(),
        })
    }

    /// The Bitbucket workspaces linked to the organization.
    pub async fn linked_workspaces(&self) -> Result<Vec<String>, OrgError> {
        let raw: wire::List<wire::WorkspaceData> = self
            .get(WORKSPACES, self.url(&["workspaces"], &[])?)
            .await?;
        Ok(raw
            .data
            .into_iter()
            .filter(|w| {
                w.attributes
                    .product
                    .as_deref()
                    .is_none_or(|p| p == "bitbucket")
            })
            .map(|w| w.attributes.slug.unwrap_or(w.id))
            .collect())
    }

    /// Every managed account, following the `next` links.
    pub async fn users(&self) -> Result<Vec<ManagedUser>, OrgError> {
        let mut url = self.url(&["users"], &[])?;
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page: wire::List<wire::User> = self.get(USERS, url.clone()).await?;
            out.extend(page.data.into_iter().map(|u| ManagedUser {
                account_id: u.account_id,
                email: u.email.filter(|e| !e.is_empty()),
                active: u.account_status.as_deref() != Some("inactive"),
            }));
            match page.links.next {
                Some(next) => url = self.next_url(USERS, &next)?,
                None => return Ok(out),
            }
        }
        Err(OrgError::Other {
            endpoint: USERS,
            message: format!("more than {MAX_PAGES} pages; stopped"),
        })
    }

    fn next_url(&self, endpoint: &'static str, next: &str) -> Result<Url, OrgError> {
        let url = Url::parse(next).map_err(|e| OrgError::Other {
            endpoint,
            message: format!("the next link is not a URL: {e}"),
        })?;
        if !self.transport.same_origin(&url) {
            return Err(OrgError::local(
                endpoint,
                Failure::CrossOrigin {
                    host: url.host_str().unwrap_or_default().to_owned(),
                },
            ));
        }
        Ok(url)
    }

    /// One page of the events stream after `cursor` (from the start, or from `from`, when
    /// there is none).
    pub async fn events(
        &self,
        cursor: Option<&str>,
        from: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<EventsPage, OrgError> {
        let limit = limit.to_string();
        let from = from.map(|f| f.timestamp_millis().to_string());
        let mut query = vec![("limit", limit.as_str()), ("sortOrder", "asc")];
        if let Some(c) = cursor {
            query.push(("cursor", c));
        } else if let Some(f) = &from {
            query.push(("from", f.as_str()));
        }
        let url = self.url(&["events-stream"], &query)?;
        let raw: wire::Events = self.get(EVENTS_STREAM, url).await?;
        let events = raw
            .data
            .into_iter()
            .filter_map(wire::Event::into_domain)
            .collect();
        Ok(EventsPage {
            events,
            cursor: raw.meta.next.or_else(|| cursor.map(str::to_owned)),
            more: raw.links.next.is_some(),
        })
    }
}
