//! Projects and their user listing.

use super::permissions_config::admin_project;
use super::{member_ws, not_found, C, S};
use crate::api::{list_page, object_response, page_response, parse_q, render, Params};
use crate::bbql::FieldValue;
use crate::world::{ProjectLevel, User};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;

pub(super) async fn list_projects(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let q = or_respond!(parse_q(&p, &["key", "name", "uuid", "is_private"]));
    let w = s.read_world();
    let wsv = or_respond!(member_ws(&w, &c, &ws));
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

pub(super) async fn get_project(
    State(s): S,
    Extension(c): C,
    Path((ws, key)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = or_respond!(member_ws(&w, &c, &ws));
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

pub(super) async fn project_users(
    State(s): S,
    Extension(c): C,
    Path((ws, key)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let (wsv, pr) = or_respond!(admin_project(&w, &c, &ws, &key));
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
