//! Users, workspaces, members and workspace roles.

use super::{forbidden, is_owner, member_ws, not_found, C, S};
use crate::api::{error, list_page, object_response, page_response, parse_q, render, Params};
use crate::bbql::FieldValue;
use crate::state::{Caller, Shared};
use crate::world::{Role, User, Workspace};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use serde_json::json;

pub(super) async fn current_user(State(s): S, Extension(c): C, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    match &c {
        Caller::User { account_id } => match w.users.get(account_id) {
            Some(u) => object_response(StatusCode::OK, render::full_user(&s.bb_url, u), &p),
            None => crate::api::unauthorized(),
        },
        Caller::AccessToken { id, workspace } => {
            object_response(StatusCode::OK, render::token_user(id, workspace), &p)
        }
        Caller::Anonymous => crate::api::unauthorized(),
    }
}

pub(super) async fn get_user(State(s): S, Path(id): Path<String>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    match w.user(&id) {
        Some(u) => object_response(StatusCode::OK, render::full_user(&s.bb_url, u), &p),
        None => not_found("User"),
    }
}

pub(super) async fn user_workspaces(State(s): S, Extension(c): C, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let Some(me) = c.account_id() else {
        return forbidden(crate::api::NOT_ACCESSIBLE);
    };
    let q = or_respond!(parse_q(&p, &["slug", "workspace.slug", "administrator"]));
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

pub(super) async fn user_workspace_permission(
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

pub(super) async fn get_workspace(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
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
    let q = or_respond!(parse_q(&p, allowed));
    let w = s.read_world();
    let wsv = or_respond!(member_ws(&w, c, ws));
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

pub(super) async fn list_members(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    memberships(&s, &c, &ws, &uri, false)
}

pub(super) async fn list_ws_permissions(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    memberships(&s, &c, &ws, &uri, true)
}

pub(super) async fn get_member(
    State(s): S,
    Extension(c): C,
    Path((ws, member)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = or_respond!(member_ws(&w, &c, &ws));
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
