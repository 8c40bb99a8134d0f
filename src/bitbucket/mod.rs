//! The Bitbucket Cloud API client: the only code that knows Bitbucket's JSON.
//!
//! One [`BitbucketClient`] (cheap to clone; clones share the connection pool and the request
//! budget) with a handler per resource: [`BitbucketClient::user`],
//! [`BitbucketClient::workspaces`], [`BitbucketClient::projects`],
//! [`BitbucketClient::repositories`], [`BitbucketClient::permissions`] and
//! [`BitbucketClient::groups_v1`], with the one-request [`BitbucketClient::group_privileges`]. Listings are lazy [`Paged`] streams that follow Bitbucket's
//! `next` links as given and fail rather than return a shorter list.
//!
//! # Authentication
//! [`Auth::ApiToken`] sends Basic `email:token` (the e-mail must be the Atlassian account
//! e-mail). [`Auth::AccessToken`] sends Bearer; Bitbucket refuses such tokens permission data
//! and cross-workspace listings, so the client refuses those endpoints itself, without sending
//! anything, with an [`ErrorKind::UnsupportedAuth`] error. Redirects are followed only to the
//! same scheme, host and port, so credentials never travel to another host.
//!
//! # The HTTP layer
//! Every request goes through [`crate::http::Transport`], shared with the Jira client: budget
//! admission before every attempt, an attempt deadline over connect, headers and body, a total
//! deadline per request, bodies bounded in size, and every configured secret scrubbed from
//! what the server says before it reaches an [`ApiError`].
//!
//! # Retry policy
//! - **429** is retried for every method, with exponential backoff and full jitter: before retry
//!   `n` the client sleeps a random time in `[0, min(max_delay, base_delay * 2^(n-1))]`.
//!   `Retry-After` (which Bitbucket usually omits) replaces the computed delay when present.
//! - **5xx, connection errors and timeouts** are retried the same way for idempotent requests:
//!   every request this client makes is one (GETs, and PUT/DELETE on permissions and group
//!   members, which leave the same state when repeated).
//! - **Other 4xx answers are never retried.**
//! - At most [`RetryPolicy::max_attempts`] attempts in all, and no more than
//!   [`RetryPolicy::max_total_wait`] of sleeping per request. Every attempt passes through the
//!   [`Budget`] and counts against it.
//!
//! # Request budget
//! See [`budget`]: requests go at once while the rolling hour has room, never more than
//! `requests_per_hour - reserve` in any hour (grants may use the reserve), at most
//! `max_in_flight` at once, and counted per endpoint template.
//!
//! # Tracing
//! Each request runs in an `http_request` span (`service = "Bitbucket"`) with `endpoint` (the path template, never the
//! URL), `method`, `status` and `attempts`; retries log a warning. Credentials are never logged.

pub use crate::http::budget;
mod client;
pub mod convert;
pub mod error;
mod group_privileges;
mod groups_v1;
mod hooks;
pub mod members;
pub mod models;
pub mod pagination;
mod permissions;
mod projects;
mod repositories;
mod webhook_event;
pub use crate::http::retry;
mod workspaces;

pub use budget::{Budget, BudgetSettings, BudgetStats, RequestClass};
pub use client::{needs_user_api_token, Auth, BitbucketClient, ClientBuilder, ClientSettings};
pub use error::{ApiError, AuthMethod, ErrorDetail, ErrorKind, Removal};
pub use groups_v1::GroupsV1Handler;
pub use hooks::{HooksHandler, WebhookSubscription};
pub use models::*;
pub use pagination::Paged;
pub use permissions::{PermissionTarget, PermissionsHandler};
pub use projects::ProjectsHandler;
pub use repositories::RepositoriesHandler;
pub use retry::RetryPolicy;
pub use webhook_event::{webhook_subject, WebhookSubject};
pub use workspaces::{WorkspacesHandler, MAX_EMAILS_PER_QUERY};

/// The endpoint templates the client uses, as they appear in errors, spans and request counts.
pub mod templates {
    pub use super::group_privileges::GROUP_PRIVILEGES;
    pub use super::groups_v1::{GROUPS, GROUP_MEMBER, GROUP_MEMBERS};
    pub use super::permissions::{
        PROJECT_GROUP, PROJECT_GROUPS, PROJECT_USER, PROJECT_USERS, REPO_GROUP, REPO_GROUPS,
        REPO_USER, REPO_USERS, WORKSPACE_REPO_PERMISSION, WORKSPACE_REPO_PERMISSIONS,
    };
    pub use super::projects::{PROJECT, PROJECTS};
    pub use super::repositories::{REPOSITORIES, REPOSITORY};
    pub use super::workspaces::{
        USER, USER_WORKSPACES, USER_WORKSPACE_PERMISSION, WORKSPACE, WORKSPACE_MEMBERS,
        WORKSPACE_PERMISSIONS,
    };
}

#[cfg(test)]
mod tests {
    use super::templates::*;

    #[test]
    fn every_2_0_template_is_in_the_endpoint_table() {
        let used = [
            ("GET", USER),
            ("GET", USER_WORKSPACES),
            ("GET", USER_WORKSPACE_PERMISSION),
            ("GET", WORKSPACE),
            ("GET", WORKSPACE_MEMBERS),
            ("GET", WORKSPACE_PERMISSIONS),
            ("GET", WORKSPACE_REPO_PERMISSIONS),
            ("GET", WORKSPACE_REPO_PERMISSION),
            ("GET", PROJECTS),
            ("GET", PROJECT),
            ("GET", REPOSITORIES),
            ("GET", REPOSITORY),
            ("GET", REPO_USERS),
            ("GET", REPO_USER),
            ("PUT", REPO_USER),
            ("DELETE", REPO_USER),
            ("GET", REPO_GROUPS),
            ("GET", REPO_GROUP),
            ("PUT", REPO_GROUP),
            ("DELETE", REPO_GROUP),
            ("GET", PROJECT_USERS),
            ("GET", PROJECT_USER),
            ("PUT", PROJECT_USER),
            ("DELETE", PROJECT_USER),
            ("GET", PROJECT_GROUPS),
            ("GET", PROJECT_GROUP),
            ("PUT", PROJECT_GROUP),
            ("DELETE", PROJECT_GROUP),
        ];
        for (method, template) in used {
            let endpoint = crate::endpoints::find(method, template)
                .unwrap_or_else(|| panic!("{method} {template} is not in the endpoint table"));
            assert!(!endpoint.deprecated, "{method} {template} is deprecated");
        }
    }

    #[test]
    fn access_tokens_are_refused_exactly_the_permission_endpoints() {
        for template in [
            REPO_USERS,
            PROJECT_GROUP,
            WORKSPACE_PERMISSIONS,
            WORKSPACE_REPO_PERMISSION,
            USER_WORKSPACES,
        ] {
            assert!(super::needs_user_api_token(template), "{template}");
        }
        for template in [
            USER,
            WORKSPACE,
            WORKSPACE_MEMBERS,
            PROJECTS,
            REPOSITORIES,
            REPOSITORY,
        ] {
            assert!(!super::needs_user_api_token(template), "{template}");
        }
    }
}
