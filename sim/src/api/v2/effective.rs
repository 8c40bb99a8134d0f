//! The effective-permission listings under `/workspaces/{ws}/permissions/repositories`.

use super::{caller_level, find_repo, forbidden, is_owner, member_ws, not_found, C, S};
use crate::api::{
    decode_cursor, encode_cursor, error, list_page, next_url, page_response, pagelen, parse_q,
    render, Page, Params,
};
use crate::bbql::{rank, Expr, FieldValue};
use crate::world::{Level, Repository, User, Workspace, World};
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::Extension;
use std::ops::Bound;

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

pub(super) async fn effective_all(
    State(s): S,
    Extension(c): C,
    Path(ws): Path<String>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let q = or_respond!(parse_q(&p, EFFECTIVE_FIELDS));
    let w = s.read_world();
    let wsv = or_respond!(member_ws(&w, &c, &ws));
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

pub(super) async fn effective_one(
    State(s): S,
    Extension(c): C,
    Path((ws, repo)): Path<(String, String)>,
    uri: Uri,
) -> Response {
    let p = Params::from_uri(&uri);
    let q = or_respond!(parse_q(&p, EFFECTIVE_FIELDS));
    let w = s.read_world();
    let wsv = or_respond!(member_ws(&w, &c, &ws));
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
