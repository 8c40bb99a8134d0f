//! The 1.0 groups API Atlassian still keeps (bitbucket-api.md section 3.5): bare JSON arrays,
//! no pagination, workspace slug only (a `{uuid}` answers 403, as reported by
//! DrFaust92/terraform-provider-bitbucket #258), and membership writes refused (403) for
//! workspaces administered in admin.atlassian.com (`groups_admin_managed`).
//!
//! Also `GET /1.0/group-privileges/{workspace}` (bitbucket-api.md section 12): every
//! repository's group grants in one unpaginated array, for workspace owners.
//!
//! Simulator choices: reads need workspace membership, writes need a workspace owner; a PUT
//! for someone already in the group answers 200 again; a DELETE for someone not in it, 404.
//! Both reads can be switched to a refusal ([`crate::FaultControl::refuse_group_privileges`],
//! [`crate::FaultControl::refuse_groups_v1`]) so that the connector's fallbacks are tested; a
//! 410 carries the deprecation body Bitbucket sends for retired APIs (section 3.1).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::Value;

use super::render;
use super::{deprecation, error, json_response};
use crate::state::{Caller, Shared};
use crate::world::{Role, Workspace, World};

/// Every 1.0 route the simulator serves.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/1.0/groups/{workspace}"),
    ("GET", "/1.0/group-privileges/{workspace}"),
    ("GET", "/1.0/groups/{workspace}/{group_slug}"),
    ("GET", "/1.0/groups/{workspace}/{group_slug}/members"),
    (
        "PUT",
        "/1.0/groups/{workspace}/{group_slug}/members/{member}",
    ),
    (
        "DELETE",
        "/1.0/groups/{workspace}/{group_slug}/members/{member}",
    ),
];

/// The 1.0 router (without state).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/1.0/groups/{workspace}", get(list_groups))
        .route("/1.0/groups/{workspace}/{group_slug}", get(get_group))
        .route(
            "/1.0/groups/{workspace}/{group_slug}/members",
            get(list_members),
        )
        .route(
            "/1.0/groups/{workspace}/{group_slug}/members/{member}",
            axum::routing::put(put_member).delete(delete_member),
        )
        .route("/1.0/group-privileges/{workspace}", get(group_privileges))
}

/// The refusal a switched-on fault asks for, if any.
fn refused(switch: &AtomicU32) -> Option<Response> {
    let status = StatusCode::from_u16(u16::try_from(switch.load(Ordering::SeqCst)).ok()?).ok()?;
    Some(match status {
        // A body of another shape than the documented array (a page, as 2.0 would send).
        StatusCode::OK => json_response(
            status,
            &serde_json::json!({"pagelen": 10, "page": 1, "values": []}),
        ),
        StatusCode::GONE => json_response(status, &deprecation("CHANGE-1.0-GROUPS")),
        StatusCode::NOT_FOUND => error(status, "Resource not found"),
        _ => error(status, "This API is not available for this account"),
    })
}

async fn group_privileges(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path(ws): Path<String>,
) -> Response {
    if let Some(r) = refused(&s.faults.refuse_group_privileges) {
        return r;
    }
    let w = s.read_world();
    let wsv = match ws_for(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let owner = c
        .account_id()
        .is_some_and(|a| matches!(wsv.members.get(a), Some(m) if m.role == Role::Owner));
    if !owner {
        return error(
            StatusCode::FORBIDDEN,
            "You must be an administrator of this workspace",
        );
    }
    let owner_json = serde_json::json!({
        "display_name": wsv.name, "uuid": wsv.uuid, "is_team": true, "nickname": wsv.slug,
        "resource_uri": format!("/1.0/users/{}", wsv.slug)
    });
    let mut out = Vec::new();
    for r in wsv.repositories.values() {
        for (g, level) in &r.group_permissions {
            let Some(group) = wsv.groups.get(g) else {
                continue;
            };
            let members = members_json(&w, wsv, g).unwrap_or_default();
            out.push(serde_json::json!({
                "repo": format!("{}/{}", wsv.slug, r.slug),
                "privilege": level.as_str(),
                "group": {"name": group.name, "slug": group.slug, "owner": owner_json.clone(),
                          "members": members},
                "repository": {"name": r.name, "slug": r.slug, "owner": owner_json.clone()}
            }));
        }
    }
    json_response(StatusCode::OK, &Value::Array(out))
}

fn ws_for<'w>(w: &'w World, c: &Caller, slug: &str) -> Result<&'w Workspace, Response> {
    if slug.starts_with('{') {
        return Err(error(
            StatusCode::FORBIDDEN,
            "The 1.0 groups API needs the workspace slug, not its UUID",
        ));
    }
    let ws = w
        .workspaces
        .get(slug)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "Workspace not found"))?;
    match c {
        Caller::User { account_id } if ws.members.contains_key(account_id) => Ok(ws),
        Caller::AccessToken { workspace, .. } if *workspace == ws.slug => Ok(ws),
        _ => Err(error(StatusCode::FORBIDDEN, "Access denied")),
    }
}

fn members_json(w: &World, ws: &Workspace, slug: &str) -> Option<Vec<Value>> {
    let g = ws.groups.get(slug)?;
    Some(
        g.members
            .iter()
            .filter_map(|a| w.users.get(a))
            .map(render::v1_member)
            .collect(),
    )
}

async fn list_groups(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path(ws): Path<String>,
) -> Response {
    if let Some(r) = refused(&s.faults.refuse_groups_v1) {
        return r;
    }
    let w = s.read_world();
    let wsv = match ws_for(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let arr: Vec<Value> = wsv
        .groups
        .values()
        .map(|g| render::v1_group(wsv, g, members_json(&w, wsv, &g.slug).unwrap_or_default()))
        .collect();
    json_response(StatusCode::OK, &Value::Array(arr))
}

async fn get_group(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path((ws, g)): Path<(String, String)>,
) -> Response {
    if let Some(r) = refused(&s.faults.refuse_groups_v1) {
        return r;
    }
    let w = s.read_world();
    let wsv = match ws_for(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match (wsv.groups.get(&g), members_json(&w, wsv, &g)) {
        (Some(gr), Some(m)) => json_response(StatusCode::OK, &render::v1_group(wsv, gr, m)),
        _ => error(StatusCode::NOT_FOUND, "Group not found"),
    }
}

async fn list_members(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path((ws, g)): Path<(String, String)>,
) -> Response {
    if let Some(r) = refused(&s.faults.refuse_groups_v1) {
        return r;
    }
    let w = s.read_world();
    let wsv = match ws_for(&w, &c, &ws) {
        Ok(x) => x,
        Err(r) => return r,
    };
    match members_json(&w, wsv, &g) {
        Some(m) => json_response(StatusCode::OK, &Value::Array(m)),
        None => error(StatusCode::NOT_FOUND, "Group not found"),
    }
}

/// Checks a membership write and returns (workspace slug, account id).
fn check_write(
    w: &World,
    c: &Caller,
    ws: &str,
    g: &str,
    member: &str,
) -> Result<(String, String), Response> {
    let wsv = ws_for(w, c, ws)?;
    let owner = c
        .account_id()
        .is_some_and(|a| matches!(wsv.members.get(a), Some(m) if m.role == Role::Owner));
    if !owner {
        return Err(error(
            StatusCode::FORBIDDEN,
            "You must be an administrator of this workspace",
        ));
    }
    if wsv.groups_admin_managed {
        return Err(error(
            StatusCode::FORBIDDEN,
            "This workspace is administered in admin.atlassian.com: group membership can only be changed there",
        ));
    }
    if !wsv.groups.contains_key(g) {
        return Err(error(StatusCode::NOT_FOUND, "Group not found"));
    }
    let u = w
        .user(member)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, "User not found"))?;
    Ok((wsv.slug.clone(), u.account_id.clone()))
}

async fn put_member(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path((ws, g, member)): Path<(String, String, String)>,
    _uri: Uri,
) -> Response {
    let (ws_slug, account) = {
        let w = s.read_world();
        match check_write(&w, &c, &ws, &g, &member) {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
    let mut w = s.write_world();
    s.org.before_change(&w);
    let added = w.add_group_member(&ws_slug, &g, &account);
    s.org.after_change(&w, &c);
    if let Err(e) = added {
        return error(StatusCode::NOT_FOUND, &e.to_string());
    }
    match w.users.get(&account) {
        Some(u) => json_response(StatusCode::OK, &render::v1_member(u)),
        None => error(StatusCode::NOT_FOUND, "User not found"),
    }
}

async fn delete_member(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Caller>,
    Path((ws, g, member)): Path<(String, String, String)>,
) -> Response {
    let (ws_slug, account) = {
        let w = s.read_world();
        match check_write(&w, &c, &ws, &g, &member) {
            Ok(x) => x,
            Err(r) => return r,
        }
    };
    let mut w = s.write_world();
    let present = w
        .workspaces
        .get(&ws_slug)
        .and_then(|x| x.groups.get(&g))
        .is_some_and(|gr| gr.members.contains(&account));
    if !present {
        return error(
            StatusCode::NOT_FOUND,
            "The user is not a member of the group",
        );
    }
    s.org.before_change(&w);
    let removed = w.remove_group_member(&ws_slug, &g, &account);
    s.org.after_change(&w, &c);
    match removed {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, &e.to_string()),
    }
}
