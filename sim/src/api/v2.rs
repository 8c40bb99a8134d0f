//! Bitbucket 2.0 endpoints.
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

use std::collections::{btree_map, BTreeMap};
use std::ops::Bound;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::handler::Handler;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::render;
use super::{
    decode_cursor, encode_cursor, error, gone_2770, json_response, list_page, next_url,
    object_response, page_response, pagelen, parse_q, Page, Params,
};
use crate::bbql::{rank, Expr, FieldValue};
use crate::state::{Caller, Shared};
use crate::world::{
    Grantee, Group, Hook, Level, PermissionHolder, Project, ProjectLevel, Repository, Role, User,
    Workspace, World,
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

// ---------------------------------------------------------------------------------------------
// Users and workspaces.

async fn current_user(State(s): S, Extension(c): C, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    match &c {
        Caller::User { account_id } => match w.users.get(account_id) {
            Some(u) => object_response(StatusCode::OK, render::full_user(&s.bb_url, u), &p),
            None => super::unauthorized(),
        },
        Caller::AccessToken { id, workspace } => {
            object_response(StatusCode::OK, render::token_user(id, workspace), &p)
        }
        Caller::Anonymous => super::unauthorized(),
    }
}

async fn get_user(State(s): S, Path(id): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    match w.user(&id) {
        Some(u) => object_response(StatusCode::OK, render::full_user(&s.bb_url, u), &p),
        None => not_found("User"),
    }
}

async fn user_workspaces(State(s): S, Extension(c): C, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let Some(me) = c.account_id() else {
        return forbidden(super::NOT_ACCESSIBLE);
    };
    let q = match parse_q(&p, &["slug", "workspace.slug", "administrator"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let admin_filter = match p.get("administrator") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "administrator must be true or false",
            )
        }
    };
    let w = s.read_world();
    let mut items: Vec<(&Workspace, bool)> = w
        .workspaces
        .values()
        .filter_map(|ws| ws.members.get(me).map(|m| (ws, m.role == Role::Owner)))
        .filter(|(_, admin)| admin_filter.is_none_or(|f| f == *admin))
        .filter(|(ws, admin)| {
            q.as_ref().is_none_or(|q| {
                q.matches(&|f| match f {
                    "administrator" => FieldValue::Bool(*admin),
                    _ => FieldValue::Str(&ws.slug),
                })
            })
        })
        .collect();
    if p.get("sort") == Some("-slug") {
        items.reverse();
    }
    match list_page(&s, &uri, &p, &items, |(ws, admin)| {
        json!({"type": "workspace_access", "administrator": admin,
               "workspace": render::workspace_base(&s.bb_url, ws)})
    }) {
        Ok(page) => page_response(&s, page, &p, &[]),
        Err(r) => r,
    }
}

async fn user_workspace_permission(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let denied = || forbidden("The user does not have access to the workspace");
    let Some(me) = c.account_id() else {
        return denied();
    };
    let Some(wsv) = w.workspace(&ws) else {
        return denied();
    };
    let (Some(m), Some(u)) = (wsv.members.get(me), w.users.get(me)) else {
        return denied();
    };
    let v = render::membership(&s.bb_url, wsv, u, Some(m.role), Some(m.added_on), false);
    object_response(StatusCode::OK, v, &p)
}

async fn get_workspace(State(s): S, Extension(c): C, Path(ws): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    match member_ws(&w, &c, &ws) {
        Ok(wsv) => object_response(StatusCode::OK, render::workspace(&s.bb_url, wsv), &p),
        Err(r) => r,
    }
}

const MEMBER_FIELDS: &[&str] = &[
    "user.email",
    "user.account_id",
    "user.uuid",
    "user.display_name",
    "user.nickname",
    "permission",
];

fn member_field<'a>(u: &'a User, role: Role, f: &str) -> FieldValue<'a> {
    match f {
        "user.email" => FieldValue::CiStr(&u.email),
        "user.account_id" => FieldValue::Str(&u.account_id),
        "user.uuid" => FieldValue::Str(&u.uuid),
        "user.display_name" => FieldValue::Str(&u.display_name),
        "user.nickname" => FieldValue::Str(&u.nickname),
        "permission" => FieldValue::Str(role.as_str()),
        _ => FieldValue::Null,
    }
}

fn memberships(s: &Shared, c: &Caller, ws: &str, uri: &Uri, with_role: bool) -> Response {
    let p = Params::from_uri(uri);
    let allowed = if with_role {
        MEMBER_FIELDS
    } else {
        &MEMBER_FIELDS[..5]
    };
    let q = match parse_q(&p, allowed) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let w = s.read_world();
    let wsv = match member_ws(&w, c, ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let emails = q.as_ref().map_or(0, |q| q.count_values("user.email"));
    let by_email = q
        .as_ref()
        .is_some_and(|q| q.fields().contains(&"user.email"));
    if by_email {
        if !(is_owner(wsv, c) || matches!(c, Caller::AccessToken { .. })) {
            return forbidden("Only workspace administrators can filter members by email");
        }
        if emails > 90 {
            return error(
                StatusCode::BAD_REQUEST,
                "Too many email addresses in the query: at most 90 are allowed",
            );
        }
    }
    let items: Vec<(&User, Role, chrono::DateTime<chrono::Utc>)> = wsv
        .members
        .iter()
        .filter_map(|(id, m)| w.users.get(id).map(|u| (u, m.role, m.added_on)))
        .filter(|(u, role, _)| {
            q.as_ref()
                .is_none_or(|q| q.matches(&|f| member_field(u, *role, f)))
        })
        .collect();
    let hidden: &[&str] = &["values.user.email"];
    match list_page(s, uri, &p, &items, |(u, role, added)| {
        render::membership(
            &s.bb_url,
            wsv,
            u,
            with_role.then_some(*role),
            with_role.then_some(*added),
            by_email,
        )
    }) {
        Ok(page) => page_response(s, page, &p, hidden),
        Err(r) => r,
    }
}

async fn list_members(State(s): S, Extension(c): C, Path(ws): Path<String>, uri: Uri) -> Response {
    memberships(&s, &c, &ws, &uri, false)
}

async fn list_ws_permissions(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    memberships(&s, &c, &ws, &uri, true)
}

async fn get_member(
    State(s): S,
    Extension(c): C,
    Path((ws, member)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = match member_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(u) = w.user(&member) else {
        return not_found("Member");
    };
    if !wsv.members.contains_key(&u.account_id) {
        return not_found("Member");
    }
    object_response(
        StatusCode::OK,
        render::membership(&s.bb_url, wsv, u, None, None, false),
        &p,
    )
}

// ---------------------------------------------------------------------------------------------
// Effective permissions.

const EFFECTIVE_FIELDS: &[&str] = &[
    "repository.name",
    "repository.full_name",
    "repository.slug",
    "repository.uuid",
    "permission",
    "user.account_id",
    "user.uuid",
    "user.display_name",
];

fn effective_field<'a>(
    ws: &'a Workspace,
    r: &'a Repository,
    u: Option<&'a User>,
    l: Level,
    full_name: &'a str,
    f: &str,
) -> FieldValue<'a> {
    let _ = ws;
    match f {
        "repository.name" => FieldValue::Str(&r.name),
        "repository.full_name" => FieldValue::Str(full_name),
        "repository.slug" => FieldValue::Str(&r.slug),
        "repository.uuid" => FieldValue::Str(&r.uuid),
        "permission" => FieldValue::Rank(rank(l.as_str()).unwrap_or(0)),
        "user.account_id" => u.map_or(FieldValue::Null, |u| FieldValue::Str(&u.account_id)),
        "user.uuid" => u.map_or(FieldValue::Null, |u| FieldValue::Str(&u.uuid)),
        "user.display_name" => u.map_or(FieldValue::Null, |u| FieldValue::Str(&u.display_name)),
        _ => FieldValue::Null,
    }
}

/// The part of a query that only looks at the repository, to skip repositories cheaply.
fn repo_only(e: &Expr) -> Option<&Expr> {
    if e.fields().iter().all(|f| f.starts_with("repository.")) {
        return Some(e);
    }
    if let Expr::And(a, b) = e {
        return repo_only(a).or_else(|| repo_only(b));
    }
    None
}

async fn effective_all(State(s): S, Extension(c): C, Path(ws): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let q = match parse_q(&p, EFFECTIVE_FIELDS) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let w = s.read_world();
    let wsv = match member_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !is_owner(wsv, &c) {
        return forbidden("You must be an administrator of this workspace");
    }
    let len = pagelen(&p);
    let (start_repo, after_user) = match p.get("page") {
        None => (None, None),
        Some(tok) => match decode_cursor("effective", tok) {
            Some(parts) if parts.len() == 2 => (Some(parts[0].clone()), Some(parts[1].clone())),
            _ => return error(StatusCode::BAD_REQUEST, "Invalid page"),
        },
    };
    let pre = q.as_ref().and_then(repo_only);
    let range = match &start_repo {
        Some(r) => wsv
            .repositories
            .range::<String, _>((Bound::Included(r.clone()), Bound::Unbounded)),
        None => wsv
            .repositories
            .range::<String, (Bound<String>, Bound<String>)>((Bound::Unbounded, Bound::Unbounded)),
    };
    let mut values = Vec::with_capacity(len);
    let mut next: Option<(String, String)> = None;
    'outer: for (slug, r) in range {
        let full_name = format!("{}/{}", wsv.slug, r.slug);
        if let Some(pre) = pre {
            if !pre.matches(&|f| effective_field(wsv, r, None, Level::Read, &full_name, f)) {
                continue;
            }
        }
        let eff = World::repo_effective(wsv, r);
        for (account, level) in &eff {
            if start_repo.as_deref() == Some(slug.as_str())
                && after_user.as_deref().is_some_and(|a| account.as_str() <= a)
            {
                continue;
            }
            let u = w.users.get(account);
            if let Some(q) = &q {
                if !q.matches(&|f| effective_field(wsv, r, u, *level, &full_name, f)) {
                    continue;
                }
            }
            let Some(u) = u else { continue };
            if values.len() == len {
                // One more item exists: the page is full and has a successor.
                next = Some((slug.clone(), String::new()));
                break 'outer;
            }
            values.push((r, u, *level));
        }
    }
    // The cursor points after the last item served.
    let next_link = next.map(|_| {
        let (r, u, _) = values.last().copied().expect("page is full");
        next_url(
            &s,
            &uri,
            &p,
            &encode_cursor("effective", &[&r.slug, &u.account_id]),
        )
    });
    let page = Page {
        values: values
            .into_iter()
            .map(|(r, u, l)| render::effective(&s.bb_url, wsv, r, u, l.as_str()))
            .collect(),
        pagelen: len,
        next: next_link,
        size: None,
        page: None,
        previous: None,
    };
    page_response(&s, page, &p, &[])
}

async fn effective_one(
    State(s): S,
    Extension(c): C,
    Path((ws, repo)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let q = match parse_q(&p, EFFECTIVE_FIELDS) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let w = s.read_world();
    let wsv = match member_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(r) = find_repo(wsv, &repo) else {
        return not_found("Repository");
    };
    if caller_level(wsv, r, &c) != Some(Level::Admin) {
        return forbidden("You must be an administrator of this repository");
    }
    let full_name = format!("{}/{}", wsv.slug, r.slug);
    let eff = World::repo_effective(wsv, r);
    let items: Vec<(&User, Level)> = eff
        .iter()
        .filter_map(|(a, l)| w.users.get(a).map(|u| (u, *l)))
        .filter(|(u, l)| {
            q.as_ref()
                .is_none_or(|q| q.matches(&|f| effective_field(wsv, r, Some(u), *l, &full_name, f)))
        })
        .collect();
    match list_page(&s, &uri, &p, &items, |(u, l)| {
        render::effective(&s.bb_url, wsv, r, u, l.as_str())
    }) {
        Ok(page) => page_response(&s, page, &p, &[]),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------------------------------------
// Projects.

async fn list_projects(State(s): S, Extension(c): C, Path(ws): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let q = match parse_q(&p, &["key", "name", "uuid", "is_private"]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let w = s.read_world();
    let wsv = match member_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let items: Vec<_> = wsv
        .projects
        .values()
        .filter(|pr| {
            q.as_ref().is_none_or(|q| {
                q.matches(&|f| match f {
                    "key" => FieldValue::Str(&pr.key),
                    "name" => FieldValue::Str(&pr.name),
                    "uuid" => FieldValue::Str(&pr.uuid),
                    _ => FieldValue::Bool(pr.is_private),
                })
            })
        })
        .collect();
    match list_page(&s, &uri, &p, &items, |pr| {
        let has_public = wsv
            .repositories
            .values()
            .any(|r| !r.is_private && r.project_key == pr.key);
        render::project(&s.bb_url, wsv, pr, has_public)
    }) {
        Ok(page) => page_response(&s, page, &p, &[]),
        Err(r) => r,
    }
}

async fn get_project(
    State(s): S,
    Extension(c): C,
    Path((ws, key)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = match member_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(pr) = wsv.projects.get(&key) else {
        return not_found("Project");
    };
    let has_public = wsv
        .repositories
        .values()
        .any(|r| !r.is_private && r.project_key == pr.key);
    object_response(
        StatusCode::OK,
        render::project(&s.bb_url, wsv, pr, has_public),
        &p,
    )
}

/// Resolves workspace and project and checks the caller administers the project.
fn admin_project<'w>(
    w: &'w World,
    c: &Caller,
    ws: &str,
    key: &str,
) -> Result<(&'w Workspace, &'w crate::world::Project), Response> {
    let wsv = member_ws(w, c, ws)?;
    let pr = wsv.projects.get(key).ok_or_else(|| not_found("Project"))?;
    let ok = c
        .account_id()
        .is_some_and(|a| World::is_project_admin(wsv, pr, a));
    if !ok {
        return Err(forbidden("You must be an administrator of this project"));
    }
    Ok((wsv, pr))
}

/// Resolves workspace and repository and checks the caller administers the repository.
fn admin_repo<'w>(
    w: &'w World,
    c: &Caller,
    ws: &str,
    slug: &str,
) -> Result<(&'w Workspace, &'w Repository), Response> {
    let wsv = member_ws(w, c, ws)?;
    let r = find_repo(wsv, slug).ok_or_else(|| not_found("Repository"))?;
    if caller_level(wsv, r, c) != Some(Level::Admin) {
        return Err(forbidden("You must be an administrator of this repository"));
    }
    Ok((wsv, r))
}

/// Parses a PUT body `{"permission": "..."}` (no other keys allowed).
fn parse_permission(body: &Bytes) -> Result<String, Response> {
    let bad = |detail: &str| {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({"type": "error", "error": {"message": "Bad request", "detail": detail,
                    "fields": {"permission": ["A valid permission value is required."]}}}),
        )
    };
    let v: Value = serde_json::from_slice(body).map_err(|_| bad("The body must be JSON."))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("The body must be an object."))?;
    if obj.keys().any(|k| k != "permission") {
        return Err(bad("Only the permission field is allowed."));
    }
    obj.get("permission")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| bad("The permission field is required."))
}

/// Users who already count against a seat limit: owners and anyone with an explicit or group
/// permission anywhere in the workspace.
fn seated(ws: &Workspace, account_id: &str) -> bool {
    if matches!(ws.members.get(account_id), Some(m) if m.role == Role::Owner) {
        return true;
    }
    ws.repositories
        .values()
        .any(|r| r.user_permissions.contains_key(account_id))
        || ws
            .projects
            .values()
            .any(|p| p.user_permissions.contains_key(account_id))
        || ws.groups.values().any(|g| g.members.contains(account_id))
}

fn seat_count(ws: &Workspace) -> usize {
    ws.members.keys().filter(|a| seated(ws, a)).count()
}

/// Checks the PUT preconditions on a user: exists (404), member (400), not owner (400), seat
/// limit (402).
fn check_grantee(w: &World, wsv: &Workspace, id: &str) -> Result<String, Response> {
    let u = w.user(id).ok_or_else(|| not_found("User"))?;
    let Some(m) = wsv.members.get(&u.account_id) else {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "The user is not a member of the workspace.",
        ));
    };
    if m.role == Role::Owner {
        return Err(error(
            StatusCode::BAD_REQUEST,
            "The permissions of the workspace owner cannot be changed.",
        ));
    }
    if let Some(limit) = wsv.seat_limit {
        if !seated(wsv, &u.account_id) && seat_count(wsv) >= limit {
            return Err(error(
                StatusCode::PAYMENT_REQUIRED,
                "Your plan's user limit has been reached.",
            ));
        }
    }
    Ok(u.account_id.clone())
}

async fn project_users(
    State(s): S,
    Extension(c): C,
    Path((ws, key)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let (wsv, pr) = match admin_project(&w, &c, &ws, &key) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let items: Vec<(&User, ProjectLevel)> = pr
        .user_permissions
        .iter()
        .filter_map(|(a, l)| w.users.get(a).map(|u| (u, *l)))
        .collect();
    match list_page(&s, &uri, &p, &items, |(u, l)| {
        render::project_user_perm(&s.bb_url, wsv, pr, u, l.as_str())
    }) {
        Ok(page) => page_response(&s, page, &p, &[]),
        Err(r) => r,
    }
}

fn no_content() -> Response {
    axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------------------------------------
// Repositories.

const REPO_FIELDS: &[&str] = &[
    "name",
    "slug",
    "full_name",
    "uuid",
    "is_private",
    "language",
    "created_on",
    "updated_on",
    "project.key",
    "project.uuid",
    "project.name",
];

fn repo_field<'a>(
    ws: &'a Workspace,
    r: &'a Repository,
    full_name: &'a str,
    f: &str,
) -> FieldValue<'a> {
    match f {
        "name" => FieldValue::Str(&r.name),
        "slug" => FieldValue::Str(&r.slug),
        "full_name" => FieldValue::Str(full_name),
        "uuid" => FieldValue::Str(&r.uuid),
        "is_private" => FieldValue::Bool(r.is_private),
        "language" => FieldValue::Str(&r.language),
        "created_on" => FieldValue::Time(r.created_on),
        "updated_on" => FieldValue::Time(r.updated_on),
        "project.key" => FieldValue::Str(&r.project_key),
        "project.uuid" => ws
            .projects
            .get(&r.project_key)
            .map_or(FieldValue::Null, |p| FieldValue::Str(&p.uuid)),
        "project.name" => ws
            .projects
            .get(&r.project_key)
            .map_or(FieldValue::Null, |p| FieldValue::Str(&p.name)),
        _ => FieldValue::Null,
    }
}

/// The entries of `map` after the keyset cursor of kind `kind` in `page` (all of them without
/// one); a cursor that does not decode is a 400.
fn after_cursor<'m, V>(
    map: &'m BTreeMap<String, V>,
    p: &Params,
    kind: &str,
) -> Result<btree_map::Range<'m, String, V>, Response> {
    let after = match p.get("page") {
        None => None,
        Some(t) => match decode_cursor(kind, t) {
            Some(mut v) if v.len() == 1 => v.pop(),
            _ => return Err(error(StatusCode::BAD_REQUEST, "Invalid page")),
        },
    };
    Ok(match after {
        Some(a) => map.range::<String, _>((Bound::Excluded(a), Bound::Unbounded)),
        None => map.range::<String, _>(..),
    })
}

async fn list_repositories(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let q = match parse_q(&p, REPO_FIELDS) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let min_role = match p.get("role") {
        None => None,
        Some("member") => Some(Level::Read),
        Some("contributor") => Some(Level::Write),
        Some("admin") | Some("owner") => Some(Level::Admin),
        Some(_) => return error(StatusCode::BAD_REQUEST, "Invalid role"),
    };
    let sort = p.get("sort").map(str::to_string);
    if let Some(so) = &sort {
        let key = so.trim_start_matches('-');
        if !["slug", "name", "updated_on", "created_on"].contains(&key) {
            return error(StatusCode::BAD_REQUEST, "Invalid sort field");
        }
    }
    let w = s.read_world();
    let wsv = match any_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let owner_or_token = is_owner(wsv, &c) || matches!(c, Caller::AccessToken { .. });
    let visible = |r: &Repository| -> bool {
        let level = if owner_or_token {
            Some(Level::Admin)
        } else {
            caller_level(wsv, r, &c)
        };
        match (level, min_role) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(_), Some(min)) => {
                let explicit = match &c {
                    Caller::User { account_id } => {
                        World::repo_effective(wsv, r).get(account_id).copied()
                    }
                    _ => None,
                };
                explicit.is_some_and(|l| l >= min)
            }
        }
    };
    let matches = |r: &Repository| -> bool {
        match &q {
            None => true,
            Some(q) => {
                let full = format!("{}/{}", wsv.slug, r.slug);
                q.matches(&|f| repo_field(wsv, r, &full, f))
            }
        }
    };
    let len = pagelen(&p);
    let mut values: Vec<&Repository> = Vec::with_capacity(len + 1);
    let size;
    let next_token;
    if let Some(so) = &sort {
        // Sorted listings are materialised and paged by an opaque offset cursor.
        let offset = match p.get("page") {
            None => 0,
            Some(t) => match decode_cursor("repositories-sorted", t)
                .and_then(|v| v.first().and_then(|x| x.parse::<usize>().ok()))
            {
                Some(o) => o,
                None => return error(StatusCode::BAD_REQUEST, "Invalid page"),
            },
        };
        let mut all: Vec<&Repository> = wsv
            .repositories
            .values()
            .filter(|r| visible(r) && matches(r))
            .collect();
        let desc = so.starts_with('-');
        match so.trim_start_matches('-') {
            "name" => all.sort_by(|a, b| a.name.cmp(&b.name)),
            "updated_on" => all.sort_by_key(|r| r.updated_on),
            "created_on" => all.sort_by_key(|r| r.created_on),
            _ => {}
        }
        if desc {
            all.reverse();
        }
        size = all.len();
        values.extend(all.iter().skip(offset).take(len));
        next_token = (offset + len < all.len())
            .then(|| encode_cursor("repositories-sorted", &[&(offset + len).to_string()]));
    } else {
        let range = match after_cursor(&wsv.repositories, &p, "repositories") {
            Ok(r) => r,
            Err(r) => return r,
        };
        let mut more = false;
        for (_, r) in range {
            if visible(r) && matches(r) {
                if values.len() == len {
                    more = true;
                    break;
                }
                values.push(r);
            }
        }
        size = if owner_or_token && q.is_none() && min_role.is_none() {
            wsv.repositories.len()
        } else {
            wsv.repositories
                .values()
                .filter(|r| visible(r) && matches(r))
                .count()
        };
        next_token = more.then(|| {
            let last = values.last().map(|r| r.slug.as_str()).unwrap_or_default();
            encode_cursor("repositories", &[last])
        });
    }
    let items: Vec<Arc<[u8]>> = values
        .iter()
        .map(|r| {
            s.cached_json(&format!("{}/{}", wsv.slug, r.slug), || {
                serde_json::to_vec(&render::repository(&s.bb_url, wsv, r)).unwrap_or_default()
            })
        })
        .collect();
    let page = Page {
        values: Vec::new(),
        pagelen: len,
        next: next_token.map(|t| next_url(&s, &uri, &p, &t)),
        size: Some(size),
        page: None,
        previous: None,
    };
    super::raw_page_response(&s, page, items, &p)
}

async fn get_repository(
    State(s): S,
    Extension(c): C,
    Path((ws, slug)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = match any_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let Some(r) = find_repo(wsv, &slug) else {
        return not_found("Repository");
    };
    if caller_level(wsv, r, &c).is_none() {
        return forbidden("You do not have access to this repository");
    }
    object_response(StatusCode::OK, render::repository(&s.bb_url, wsv, r), &p)
}

async fn repo_users(
    State(s): S,
    Extension(c): C,
    Path((ws, slug)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let (wsv, r) = match admin_repo(&w, &c, &ws, &slug) {
        Ok(x) => x,
        Err(r) => return r,
    };
    // Iterator-style paging with an opaque cursor; no size, no page number.
    let len = pagelen(&p);
    let range = match after_cursor(&r.user_permissions, &p, "repo-users") {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut items: Vec<(&User, Level)> = Vec::with_capacity(len + 1);
    for (a, l) in range {
        if let Some(u) = w.users.get(a) {
            items.push((u, *l));
            if items.len() > len {
                break;
            }
        }
    }
    let more = items.len() > len;
    items.truncate(len);
    let next = more.then(|| {
        let last = items
            .last()
            .map(|(u, _)| u.account_id.as_str())
            .unwrap_or_default();
        next_url(&s, &uri, &p, &encode_cursor("repo-users", &[last]))
    });
    let page = Page {
        values: items
            .iter()
            .map(|(u, l)| render::repo_user_perm(&s.bb_url, wsv, r, u, l.as_str()))
            .collect(),
        pagelen: len,
        next,
        size: None,
        page: None,
        previous: None,
    };
    page_response(&s, page, &p, &[])
}

// ---------------------------------------------------------------------------------------------
// permissions-config, written once for projects and repositories.

/// Resolves workspace and target from a path and checks the caller administers the target.
type AdminFn<T> =
    for<'w> fn(&'w World, &Caller, &str, &str) -> Result<(&'w Workspace, &'w T), Response>;

/// Renders one grant of a target to a user or group, given the base URL and the level's name.
type RenderFn<T, G> = fn(&str, &Workspace, &T, &G, &str) -> Value;

/// A permissions-config target (project or repository): what differs between the two, as a
/// table of names and functions.
trait PermTarget: PermissionHolder + Send + Sync + 'static {
    /// What a 404 names when the target itself is missing.
    const NAME: &'static str;
    /// Whether the group listing reports `size`, `page` and `previous`; the project one does
    /// not, like the spec's example.
    const GROUP_PAGE_COUNTED: bool;
    /// Resolves workspace and target from the path and checks the caller administers it.
    const ADMIN: AdminFn<Self>;
    /// Renders a user grant.
    const RENDER_USER: RenderFn<Self, User>;
    /// Renders a group grant.
    const RENDER_GROUP: RenderFn<Self, Group>;
}

impl PermTarget for Project {
    const NAME: &'static str = "Project";
    const GROUP_PAGE_COUNTED: bool = false;
    const ADMIN: AdminFn<Self> = admin_project;
    const RENDER_USER: RenderFn<Self, User> = render::project_user_perm;
    const RENDER_GROUP: RenderFn<Self, Group> = render::project_group_perm;
}

impl PermTarget for Repository {
    const NAME: &'static str = "Repository";
    const GROUP_PAGE_COUNTED: bool = true;
    const ADMIN: AdminFn<Self> = admin_repo;
    const RENDER_USER: RenderFn<Self, User> = render::repo_user_perm;
    const RENDER_GROUP: RenderFn<Self, Group> = render::repo_group_perm;
}

/// Picks, at the type level, which grants a permissions-config route serves.
trait GranteeKind: Send + Sync + 'static {
    /// Users or groups.
    const TO: Grantee;
}

/// The `permissions-config/users` routes.
struct Users;

impl GranteeKind for Users {
    const TO: Grantee = Grantee::User;
}

/// The `permissions-config/groups` routes.
struct Groups;

impl GranteeKind for Groups {
    const TO: Grantee = Grantee::Group;
}

/// The permissions-config routes of one target below `base`; only the user listing is the
/// target's own, since projects and repositories page it differently.
fn pc_routes<T: PermTarget, H, X>(
    router: Router<Arc<Shared>>,
    base: &str,
    list_users: H,
) -> Router<Arc<Shared>>
where
    H: Handler<X, Arc<Shared>>,
    X: 'static,
{
    router
        .route(&format!("{base}/users"), get(list_users))
        .route(
            &format!("{base}/users/{{selected_user_id}}"),
            pc_one::<T, Users>(),
        )
        .route(&format!("{base}/groups"), get(pc_groups::<T>))
        .route(
            &format!("{base}/groups/{{group_slug}}"),
            pc_one::<T, Groups>(),
        )
}

/// GET, PUT and DELETE on one grant of a target.
fn pc_one<T: PermTarget, G: GranteeKind>() -> MethodRouter<Arc<Shared>> {
    get(pc_get::<T, G>)
        .put(pc_put::<T, G>)
        .delete(pc_delete::<T, G>)
}

/// Resolves a path's grantee to the key its grants are filed under: a user given by account id
/// or `{uuid}` to the account id (404 when unknown), a group slug to itself.
fn grantee_key(w: &World, to: Grantee, who: &str) -> Result<String, Response> {
    match to {
        Grantee::User => w
            .user(who)
            .map(|u| u.account_id.clone())
            .ok_or_else(|| not_found("User")),
        Grantee::Group => Ok(who.to_string()),
    }
}

/// What a 404 names when the grantee holds no grant on the target.
fn missing_grant(to: Grantee) -> &'static str {
    match to {
        Grantee::User => "Permission",
        Grantee::Group => "Group permission",
    }
}

/// Renders one grant; `None` when the grantee does not exist.
fn render_grant<T: PermTarget>(
    base: &str,
    w: &World,
    (wsv, t): (&Workspace, &T),
    to: Grantee,
    key: &str,
    level: T::Level,
) -> Option<Value> {
    let level = T::level_name(level);
    match to {
        Grantee::User => w
            .users
            .get(key)
            .map(|u| (T::RENDER_USER)(base, wsv, t, u, level)),
        Grantee::Group => wsv
            .groups
            .get(key)
            .map(|g| (T::RENDER_GROUP)(base, wsv, t, g, level)),
    }
}

async fn pc_groups<T: PermTarget>(
    State(s): S,
    Extension(c): C,
    Path((ws, id)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let (wsv, t) = match (T::ADMIN)(&w, &c, &ws, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let items: Vec<_> = t
        .grants(Grantee::Group)
        .iter()
        .filter_map(|(g, l)| wsv.groups.get(g).map(|g| (g, *l)))
        .collect();
    match list_page(&s, &uri, &p, &items, |(g, l)| {
        (T::RENDER_GROUP)(&s.bb_url, wsv, t, g, T::level_name(*l))
    }) {
        Ok(mut page) => {
            if !T::GROUP_PAGE_COUNTED {
                page.size = None;
                page.page = None;
                page.previous = None;
            }
            page_response(&s, page, &p, &[])
        }
        Err(r) => r,
    }
}

async fn pc_get<T: PermTarget, G: GranteeKind>(
    State(s): S,
    Extension(c): C,
    Path((ws, id, who)): Path<(String, String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let target = match (T::ADMIN)(&w, &c, &ws, &id) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let key = match grantee_key(&w, G::TO, &who) {
        Ok(k) => k,
        Err(r) => return r,
    };
    match target
        .1
        .grants(G::TO)
        .get(&key)
        .and_then(|l| render_grant(&s.bb_url, &w, target, G::TO, &key, *l))
    {
        Some(v) => object_response(StatusCode::OK, v, &p),
        None => not_found(missing_grant(G::TO)),
    }
}

async fn pc_put<T: PermTarget, G: GranteeKind>(
    State(s): S,
    Extension(c): C,
    Path((ws, id, who)): Path<(String, String, String)>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let p = Params::from_uri(&uri);
    let (ws_slug, target_key, key, level) = {
        let w = s.read_world();
        let (wsv, t) = match (T::ADMIN)(&w, &c, &ws, &id) {
            Ok(x) => x,
            Err(r) => return r,
        };
        // An unknown group is reported before the body is looked at, a user only after.
        if G::TO == Grantee::Group && !wsv.groups.contains_key(&who) {
            return not_found("Group");
        }
        let level = match parse_permission(&body).map(|l| T::parse_level(&l)) {
            Ok(Some(l)) => l,
            Ok(None) => return error(StatusCode::BAD_REQUEST, "Invalid permission value."),
            Err(r) => return r,
        };
        let key = match G::TO {
            Grantee::User => match check_grantee(&w, wsv, &who) {
                Ok(a) => a,
                Err(r) => return r,
            },
            Grantee::Group => who,
        };
        (wsv.slug.clone(), t.key().to_string(), key, level)
    };
    let mut w = s.write_world();
    if let Err(e) = w.set_permission::<T>(&ws_slug, &target_key, G::TO, &key, Some(level)) {
        return not_found(&e.to_string());
    }
    let w = &*w;
    let Some(wsv) = w.workspaces.get(&ws_slug) else {
        return not_found("Workspace");
    };
    let Some(t) = T::find(wsv, &target_key) else {
        return not_found(T::NAME);
    };
    match render_grant(&s.bb_url, w, (wsv, t), G::TO, &key, level) {
        Some(v) => object_response(StatusCode::OK, v, &p),
        None => not_found(missing_grant(G::TO)),
    }
}

async fn pc_delete<T: PermTarget, G: GranteeKind>(
    State(s): S,
    Extension(c): C,
    Path((ws, id, who)): Path<(String, String, String)>,
) -> Response {
    let (ws_slug, target_key, key) = {
        let w = s.read_world();
        let (wsv, t) = match (T::ADMIN)(&w, &c, &ws, &id) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let key = match grantee_key(&w, G::TO, &who) {
            Ok(k) => k,
            Err(r) => return r,
        };
        if !t.grants(G::TO).contains_key(&key) {
            return not_found(missing_grant(G::TO));
        }
        (wsv.slug.clone(), t.key().to_string(), key)
    };
    let mut w = s.write_world();
    match w.set_permission::<T>(&ws_slug, &target_key, G::TO, &key, None) {
        Ok(()) => no_content(),
        Err(e) => not_found(&e.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Workspace hooks (owners only).

fn hook_json(base: &str, ws: &Workspace, h: &Hook) -> Value {
    json!({
        "type": "webhook_subscription",
        "uuid": h.uuid,
        "url": h.url,
        "description": h.description,
        "subject_type": "workspace",
        "subject": render::workspace_small(base, ws),
        "active": h.active,
        "created_at": ts(h.created_at),
        "events": h.events
    })
}

async fn list_hooks(State(s): S, Extension(c): C, Path(ws): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = match member_ws(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    if !is_owner(wsv, &c) {
        return forbidden("You must be an administrator of this workspace");
    }
    let items: Vec<&Hook> = wsv.hooks.values().collect();
    match list_page(&s, &uri, &p, &items, |h| hook_json(&s.bb_url, wsv, h)) {
        Ok(page) => page_response(&s, page, &p, &[]),
        Err(r) => r,
    }
}

async fn create_hook(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
    body: Bytes,
) -> Response {
    let p = Params::from_uri(&uri);
    let ws_slug = {
        let w = s.read_world();
        let wsv = match member_ws(&w, &c, &ws) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if !is_owner(wsv, &c) {
            return forbidden("You must be an administrator of this workspace");
        }
        wsv.slug.clone()
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return error(StatusCode::BAD_REQUEST, "The body must be JSON."),
    };
    let url = v.get("url").and_then(Value::as_str).unwrap_or_default();
    let events: Vec<String> = v
        .get("events")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if url.is_empty() || events.is_empty() {
        return error(StatusCode::BAD_REQUEST, "url and events are required.");
    }
    let mut w = s.write_world();
    let now = w.now;
    let Some(wsv) = w.workspaces.get_mut(&ws_slug) else {
        return not_found("Workspace");
    };
    let uuid = crate::world::derived_uuid(&format!("{ws_slug}/hook/{}/{url}", wsv.hooks.len()));
    let hook = Hook {
        uuid: uuid.clone(),
        url: url.to_string(),
        description: v
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        events,
        active: v.get("active").and_then(Value::as_bool).unwrap_or(true),
        created_at: now,
    };
    wsv.hooks.insert(uuid, hook.clone());
    let wsv = &*wsv;
    object_response(StatusCode::CREATED, hook_json(&s.bb_url, wsv, &hook), &p)
}

async fn delete_hook(
    State(s): S,
    Extension(c): C,
    Path((ws, uid)): Path<(String, String)>,
) -> Response {
    let ws_slug = {
        let w = s.read_world();
        let wsv = match member_ws(&w, &c, &ws) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if !is_owner(wsv, &c) {
            return forbidden("You must be an administrator of this workspace");
        }
        wsv.slug.clone()
    };
    let mut w = s.write_world();
    match w
        .workspaces
        .get_mut(&ws_slug)
        .and_then(|x| x.hooks.remove(&uid))
    {
        Some(_) => no_content(),
        None => not_found("Webhook"),
    }
}
