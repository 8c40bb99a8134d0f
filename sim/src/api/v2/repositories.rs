//! Repositories: listing with cursors and `q=`, one repository, and its user listing.

use super::permissions_config::admin_repo;
use super::{any_ws, caller_level, find_repo, forbidden, is_owner, not_found, C, S};
use crate::api::{
    decode_cursor, encode_cursor, error, next_url, object_response, page_response, pagelen,
    parse_q, render, Page, Params,
};
use crate::bbql::FieldValue;
use crate::state::Caller;
use crate::world::{Level, Repository, User, Workspace, World};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use std::collections::{btree_map, BTreeMap};
use std::ops::Bound;
use std::sync::Arc;

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

pub(super) async fn list_repositories(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let q = or_respond!(parse_q(&p, REPO_FIELDS));
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
    let wsv = or_respond!(any_ws(&w, &c, &ws));
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
        let range = or_respond!(after_cursor(&wsv.repositories, &p, "repositories"));
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
    crate::api::raw_page_response(&s, page, items, &p)
}

pub(super) async fn get_repository(
    State(s): S,
    Extension(c): C,
    Path((ws, slug)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let wsv = or_respond!(any_ws(&w, &c, &ws));
    let Some(r) = find_repo(wsv, &slug) else {
        return not_found("Repository");
    };
    if caller_level(wsv, r, &c).is_none() {
        return forbidden("You do not have access to this repository");
    }
    object_response(StatusCode::OK, render::repository(&s.bb_url, wsv, r), &p)
}

pub(super) async fn repo_users(
    State(s): S,
    Extension(c): C,
    Path((ws, slug)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let w = s.read_world();
    let (wsv, r) = or_respond!(admin_repo(&w, &c, &ws, &slug));
    // Iterator-style paging with an opaque cursor; no size, no page number.
    let len = pagelen(&p);
    let range = or_respond!(after_cursor(&r.user_permissions, &p, "repo-users"));
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
