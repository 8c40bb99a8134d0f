//! `permissions-config`, written once for projects and repositories, with the admin and
//! seat checks a PUT makes.

use super::{caller_level, find_repo, forbidden, member_ws, not_found, C, S};
use crate::api::{error, json_response, list_page, object_response, page_response, render, Params};
use crate::state::{Caller, Shared};
use crate::world::{
    Grantee, Group, Level, PermissionHolder, Project, Repository, Role, User, Workspace, World,
};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::handler::Handler;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, MethodRouter};
use axum::{Extension, Router};
use serde_json::{json, Value};
use std::sync::Arc;

/// Resolves workspace and project and checks the caller administers the project.
pub(super) fn admin_project<'w>(
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
pub(super) fn admin_repo<'w>(
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

pub(super) fn no_content() -> Response {
    axum::response::IntoResponse::into_response(StatusCode::NO_CONTENT)
}

/// Resolves workspace and target from a path and checks the caller administers the target.
pub(super) type AdminFn<T> =
    for<'w> fn(&'w World, &Caller, &str, &str) -> Result<(&'w Workspace, &'w T), Response>;

/// Renders one grant of a target to a user or group, given the base URL and the level's name.
pub(super) type RenderFn<T, G> = fn(&str, &Workspace, &T, &G, &str) -> Value;

/// A permissions-config target (project or repository): what differs between the two, as a
/// table of names and functions.
pub(super) trait PermTarget: PermissionHolder + Send + Sync + 'static {
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
pub(super) fn pc_routes<T: PermTarget, H, X>(
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
    let (wsv, t) = or_respond!((T::ADMIN)(&w, &c, &ws, &id));
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
    let target = or_respond!((T::ADMIN)(&w, &c, &ws, &id));
    let key = or_respond!(grantee_key(&w, G::TO, &who));
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
        let (wsv, t) = or_respond!((T::ADMIN)(&w, &c, &ws, &id));
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
            Grantee::User => or_respond!(check_grantee(&w, wsv, &who)),
            Grantee::Group => who,
        };
        (wsv.slug.clone(), t.key().to_string(), key, level)
    };
    let mut w = s.write_world();
    s.org.before_change(&w);
    let set = w.set_permission::<T>(&ws_slug, &target_key, G::TO, &key, Some(level));
    s.org.after_change(&w, &c);
    if let Err(e) = set {
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
        let (wsv, t) = or_respond!((T::ADMIN)(&w, &c, &ws, &id));
        let key = or_respond!(grantee_key(&w, G::TO, &who));
        if !t.grants(G::TO).contains_key(&key) {
            return not_found(missing_grant(G::TO));
        }
        (wsv.slug.clone(), t.key().to_string(), key)
    };
    let mut w = s.write_world();
    s.org.before_change(&w);
    let set = w.set_permission::<T>(&ws_slug, &target_key, G::TO, &key, None);
    s.org.after_change(&w, &c);
    match set {
        Ok(()) => no_content(),
        Err(e) => not_found(&e.to_string()),
    }
}
