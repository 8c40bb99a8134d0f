//! Bitbucket 2.0 endpoints, one file per resource: `workspaces` (users, workspaces, members),
//! `effective` (effective-permission listings), `projects`, `repositories`,
//! `permissions_config` (written once for projects and repositories) and `hooks`. This module
//! holds the route table and the access helpers they share.
//!
//! Access rules (the simulator's reading of the spec and bitbucket-api.md):
//! - workspace-scoped reads need workspace membership (404 otherwise, as for a private
//!   workspace); workspace access tokens reach only their own workspace (403 otherwise);
//! - `/workspaces/{ws}/permissions/repositories` needs a workspace owner, the per-repository
//!   variant and repository `permissions-config` need repository admin, project
//!   `permissions-config` needs project admin (403 otherwise);
//! - repository listings show what the caller can read, public repositories included; the
//!   effective-permission listings report explicit, group, project and owner access of members
//!   only, never the read that public visibility gives everyone;
//! - DELETE of an explicit permission that does not exist answers 404.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};

use super::{error, gone_2770};
use crate::state::{Caller, Shared};
use crate::world::{Level, Project, Repository, Role, Workspace, World};

/// Unwraps a `Result<T, Response>`, or returns its error response from the enclosing handler:
/// the step every handler repeats while it resolves the workspace, checks access and parses
/// `q=`. Defined before the submodules so that they can use it.
macro_rules! or_respond {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(response) => return response,
        }
    };
}

mod effective;
mod hooks;
mod permissions_config;
mod projects;
mod repositories;
mod workspaces;

use effective::{effective_all, effective_one};
use hooks::{create_hook, delete_hook, list_hooks};
use permissions_config::pc_routes;
use projects::{get_project, list_projects, project_users};
use repositories::{get_repository, list_repositories, repo_users};
use workspaces::{
    current_user, get_member, get_user, get_workspace, list_members, list_ws_permissions,
    user_workspace_permission, user_workspaces,
};

type S = State<Arc<Shared>>;
type C = Extension<Caller>;

/// Every 2.0 route the simulator serves: (method, template).
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/2.0/user"),
    ("GET", "/2.0/users/{selected_user}"),
    ("GET", "/2.0/user/workspaces"),
    ("GET", "/2.0/user/workspaces/{workspace}/permission"),
    ("GET", "/2.0/workspaces/{workspace}"),
    ("GET", "/2.0/workspaces/{workspace}/members"),
    ("GET", "/2.0/workspaces/{workspace}/members/{member}"),
    ("GET", "/2.0/workspaces/{workspace}/permissions"),
    ("GET", "/2.0/workspaces/{workspace}/permissions/repositories"),
    ("GET", "/2.0/workspaces/{workspace}/permissions/repositories/{repo_slug}"),
    ("GET", "/2.0/workspaces/{workspace}/projects"),
    ("GET", "/2.0/workspaces/{workspace}/projects/{project_key}"),
    ("GET", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/users"),
    ("GET", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/users/{selected_user_id}"),
    ("PUT", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/users/{selected_user_id}"),
    ("DELETE", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/users/{selected_user_id}"),
    ("GET", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/groups"),
    ("GET", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/groups/{group_slug}"),
    ("PUT", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/groups/{group_slug}"),
    ("DELETE", "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config/groups/{group_slug}"),
    ("GET", "/2.0/repositories/{workspace}"),
    ("GET", "/2.0/repositories/{workspace}/{repo_slug}"),
    ("GET", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/users"),
    ("GET", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}"),
    ("PUT", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}"),
    ("DELETE", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}"),
    ("GET", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/groups"),
    ("GET", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/groups/{group_slug}"),
    ("PUT", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/groups/{group_slug}"),
    ("DELETE", "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/groups/{group_slug}"),
    ("GET", "/2.0/workspaces/{workspace}/hooks"),
    ("POST", "/2.0/workspaces/{workspace}/hooks"),
    ("DELETE", "/2.0/workspaces/{workspace}/hooks/{uid}"),
    ("GET", "/2.0/workspaces"),
    ("GET", "/2.0/user/permissions/workspaces"),
    ("GET", "/2.0/user/permissions/repositories"),
    ("GET", "/2.0/repositories"),
];

/// The 2.0 router (without state).
pub fn routes() -> Router<Arc<Shared>> {
    let router = Router::new()
        .route("/2.0/user", get(current_user))
        .route("/2.0/users/{selected_user}", get(get_user))
        .route("/2.0/user/workspaces", get(user_workspaces))
        .route(
            "/2.0/user/workspaces/{workspace}/permission",
            get(user_workspace_permission),
        )
        .route("/2.0/workspaces/{workspace}", get(get_workspace))
        .route("/2.0/workspaces/{workspace}/members", get(list_members))
        .route(
            "/2.0/workspaces/{workspace}/members/{member}",
            get(get_member),
        )
        .route(
            "/2.0/workspaces/{workspace}/permissions",
            get(list_ws_permissions),
        )
        .route(
            "/2.0/workspaces/{workspace}/permissions/repositories",
            get(effective_all),
        )
        .route(
            "/2.0/workspaces/{workspace}/permissions/repositories/{repo_slug}",
            get(effective_one),
        )
        .route("/2.0/workspaces/{workspace}/projects", get(list_projects))
        .route(
            "/2.0/workspaces/{workspace}/projects/{project_key}",
            get(get_project),
        )
        .route("/2.0/repositories/{workspace}", get(list_repositories))
        .route(
            "/2.0/repositories/{workspace}/{repo_slug}",
            get(get_repository),
        )
        .route(
            "/2.0/workspaces/{workspace}/hooks",
            get(list_hooks).post(create_hook),
        )
        .route(
            "/2.0/workspaces/{workspace}/hooks/{uid}",
            axum::routing::delete(delete_hook),
        )
        .route("/2.0/workspaces", get(removed))
        .route("/2.0/user/permissions/workspaces", get(removed))
        .route("/2.0/user/permissions/repositories", get(removed))
        .route("/2.0/repositories", get(removed));
    let router = pc_routes::<Project, _, _>(
        router,
        "/2.0/workspaces/{workspace}/projects/{project_key}/permissions-config",
        project_users,
    );
    pc_routes::<Repository, _, _>(
        router,
        "/2.0/repositories/{workspace}/{repo_slug}/permissions-config",
        repo_users,
    )
}

async fn removed() -> Response {
    gone_2770()
}

fn not_found(what: &str) -> Response {
    error(StatusCode::NOT_FOUND, &format!("{what} not found"))
}

fn forbidden(msg: &str) -> Response {
    error(StatusCode::FORBIDDEN, msg)
}

/// The workspace, visible to members and to its own access tokens.
fn member_ws<'w>(w: &'w World, c: &Caller, slug: &str) -> Result<&'w Workspace, Response> {
    let ws = w.workspace(slug).ok_or_else(|| not_found("Workspace"))?;
    match c {
        Caller::User { account_id } if ws.members.contains_key(account_id) => Ok(ws),
        Caller::AccessToken { workspace, .. } if *workspace == ws.slug => Ok(ws),
        Caller::AccessToken { .. } => Err(forbidden(super::NOT_ACCESSIBLE)),
        _ => Err(not_found("Workspace")),
    }
}

/// The workspace for repository routes, where non-members still see public repositories.
fn any_ws<'w>(w: &'w World, c: &Caller, slug: &str) -> Result<&'w Workspace, Response> {
    let ws = w.workspace(slug).ok_or_else(|| not_found("Workspace"))?;
    match c {
        Caller::AccessToken { workspace, .. } if *workspace != ws.slug => {
            Err(forbidden(super::NOT_ACCESSIBLE))
        }
        _ => Ok(ws),
    }
}

fn is_owner(ws: &Workspace, c: &Caller) -> bool {
    match c {
        Caller::User { account_id } => {
            matches!(ws.members.get(account_id), Some(m) if m.role == Role::Owner)
        }
        _ => false,
    }
}

/// The caller's level on a repository (`None`: cannot see it).
fn caller_level(ws: &Workspace, r: &Repository, c: &Caller) -> Option<Level> {
    match c {
        Caller::User { account_id } => World::user_repo_level(ws, r, account_id),
        Caller::AccessToken { workspace, .. } if *workspace == ws.slug => Some(Level::Read),
        _ => (!r.is_private).then_some(Level::Read),
    }
}

fn find_repo<'w>(ws: &'w Workspace, slug: &str) -> Option<&'w Repository> {
    ws.repositories.get(slug).or_else(|| {
        slug.starts_with('{')
            .then(|| {
                ws.repositories
                    .values()
                    .find(|r| r.uuid.eq_ignore_ascii_case(slug))
            })
            .flatten()
    })
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, false)
}
