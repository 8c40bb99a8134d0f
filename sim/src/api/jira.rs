//! The Jira Cloud user API subset used for identity matching (jira-identity.md), on its own
//! listener: `/rest/api/3/myself`, `/users/search`, `/user/bulk`, `/user`, `/user/search`.
//!
//! Auth is Basic `email:classic-token`; a scoped token on the site URL answers 401 with
//! "Unauthorized; scope does not match" (scoped tokens only work through api.atlassian.com).
//! The same listener also plays the API gateway: `/_edge/tenant_info` gives the site's cloud id
//! (no credentials), and every route is served again under `/ex/jira/{cloudId}`, where the
//! scoped token works.
//! Users whose profile hides the email get `"emailAddress": null`; Bitbucket accounts without a
//! Jira user are absent. Jira requests are counted with the Bitbucket ones but are not
//! rate-limited and not subject to faults.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine;
use serde_json::{json, Value};

use super::{json_response, Params};
use crate::state::Shared;
use crate::world::User;

/// Every Jira route the simulator serves.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/rest/api/3/myself"),
    ("GET", "/rest/api/3/users/search"),
    ("GET", "/rest/api/3/user/bulk"),
    ("GET", "/rest/api/3/user"),
    ("GET", "/rest/api/3/user/search"),
];

/// The simulated site's cloud id, as `/_edge/tenant_info` gives it.
pub const CLOUD_ID: &str = "5f1c3b2e-7d4a-4c1e-9b7a-51b0c0ffee01";

/// The gateway prefix of every route.
const GATEWAY_PREFIX: &str = "/ex/jira/{cloud_id}";

#[derive(Clone)]
struct JiraCaller(String);

fn jira_error(status: StatusCode, msg: &str) -> Response {
    json_response(status, &json!({"errorMessages": [msg], "errors": {}}))
}

/// What Jira's site answers to a scoped API token (one created with scopes, which only the
/// `api.atlassian.com/ex/jira/{cloudId}` gateway accepts): 401 with the gateway's own body shape,
/// `{"code":401,"message":"Unauthorized; scope does not match"}`, as reported by users of real
/// sites. Clients recognise a scoped token by this message.
pub const SCOPE_MISMATCH: &str = "Unauthorized; scope does not match";

fn scope_mismatch() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"code": 401, "message": SCOPE_MISMATCH}),
    )
}

fn unauthorized() -> Response {
    let mut r = jira_error(
        StatusCode::UNAUTHORIZED,
        "Client must be authenticated to access this resource.",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"protected-area\""),
    );
    r
}

async fn gate(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    s.count(format!("{} {template}", req.method()));
    let decoded = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| {
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
        })
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, token)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return unauthorized();
    };
    let through_gateway = template.starts_with(GATEWAY_PREFIX);
    if through_gateway
        && !req
            .uri()
            .path()
            .starts_with(&format!("/ex/jira/{CLOUD_ID}/"))
    {
        return jira_error(StatusCode::NOT_FOUND, "No site with this cloud id");
    }
    let email = {
        let creds = s.read_creds();
        if token == creds.jira_scoped && !through_gateway {
            return scope_mismatch();
        }
        // The gateway takes the scoped token as well as the classic one.
        let scoped_ok = through_gateway && token == creds.jira_scoped;
        if !scoped_ok && token != creds.jira_classic.1 {
            return unauthorized();
        }
        if !user.eq_ignore_ascii_case(&creds.jira_classic.0) {
            return unauthorized();
        }
        creds.jira_classic.0.clone()
    };
    req.extensions_mut().insert(JiraCaller(email));
    next.run(req).await
}

/// The Jira router.
pub fn router(s: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/rest/api/3/myself", get(myself))
        .route("/rest/api/3/users/search", get(users_search))
        .route("/rest/api/3/user/bulk", get(user_bulk))
        .route("/rest/api/3/user", get(user_one))
        .route("/rest/api/3/user/search", get(user_search));
    Router::new()
        .merge(api.clone())
        .nest(GATEWAY_PREFIX, api)
        .route_layer(axum::middleware::from_fn_with_state(s.clone(), gate))
        .merge(super::org::router(s.clone()))
        .route("/_edge/tenant_info", get(tenant_info))
        .fallback(|| async {
            jira_error(StatusCode::NOT_FOUND, "Resource not found").into_response()
        })
        .with_state(s)
}

async fn tenant_info(State(s): State<Arc<Shared>>) -> Response {
    s.count("GET /_edge/tenant_info".to_owned());
    json_response(StatusCode::OK, &json!({"cloudId": CLOUD_ID}))
}

fn user_json(base: &str, u: &User) -> Option<Value> {
    let kind = u.jira_account_type?;
    let avatar = |size: u32| {
        format!(
            "https://avatar-management--avatars.example/initials/{}.png?size={size}",
            u.account_id.len() % 7
        )
    };
    let email = if u.email_visible_in_jira {
        json!(u.email)
    } else {
        Value::Null
    };
    Some(json!({
        "self": format!("{base}/rest/api/3/user?accountId={}", u.account_id),
        "accountId": u.account_id,
        "accountType": kind.as_str(),
        "emailAddress": email,
        "avatarUrls": {"16x16": avatar(16), "24x24": avatar(24), "32x32": avatar(32), "48x48": avatar(48)},
        "displayName": u.display_name,
        "active": u.active,
        "timeZone": "Europe/Berlin",
        "locale": "en_US"
    }))
}

fn int_param(p: &Params, key: &str, default: usize) -> Result<usize, Response> {
    match p.get(key) {
        None => Ok(default),
        Some(v) => v.parse::<usize>().map_err(|_| {
            jira_error(
                StatusCode::BAD_REQUEST,
                &format!("The value of '{key}' must be a non-negative integer."),
            )
        }),
    }
}

async fn myself(State(s): State<Arc<Shared>>, Extension(me): Extension<JiraCaller>) -> Response {
    let w = s.read_world();
    match w
        .user_by_email(&me.0)
        .and_then(|u| user_json(&s.jira_url, u))
    {
        Some(v) => json_response(StatusCode::OK, &v),
        None => unauthorized(),
    }
}

async fn users_search(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let (start, max) = match (int_param(&p, "startAt", 0), int_param(&p, "maxResults", 50)) {
        (Ok(a), Ok(b)) => (a, b.min(1000)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let w = s.read_world();
    let unlisted = s
        .jira_unlisted
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let arr: Vec<Value> = w
        .users
        .values()
        .filter(|u| !unlisted.contains(&u.account_id))
        .filter_map(|u| user_json(&s.jira_url, u))
        .skip(start)
        .take(max)
        .collect();
    json_response(StatusCode::OK, &Value::Array(arr))
}

async fn user_bulk(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let ids = p.all("accountId");
    if ids.is_empty() {
        return jira_error(
            StatusCode::BAD_REQUEST,
            "You must specify at least one accountId.",
        );
    }
    let (start, max) = match (int_param(&p, "startAt", 0), int_param(&p, "maxResults", 10)) {
        (Ok(a), Ok(b)) => (a, b.clamp(1, 1000)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let w = s.read_world();
    let found: Vec<Value> = ids
        .iter()
        .filter_map(|id| w.users.get(*id))
        .filter_map(|u| user_json(&s.jira_url, u))
        .collect();
    let total = found.len();
    let values: Vec<Value> = found.into_iter().skip(start).take(max).collect();
    let is_last = start + values.len() >= total;
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &p.0 {
        if k != "startAt" {
            ser.append_pair(k, v);
        }
    }
    let qs = ser.finish();
    let mut page = json!({
        "self": format!("{}/rest/api/3/user/bulk?{qs}&startAt={start}", s.jira_url),
        "maxResults": max,
        "startAt": start,
        "total": total,
        "isLast": is_last,
        "values": values
    });
    if !is_last {
        page["nextPage"] = json!(format!(
            "{}/rest/api/3/user/bulk?{qs}&startAt={}",
            s.jira_url,
            start + max
        ));
    }
    json_response(StatusCode::OK, &page)
}

async fn user_one(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let Some(id) = p.get("accountId") else {
        return jira_error(
            StatusCode::BAD_REQUEST,
            "The accountId parameter is required.",
        );
    };
    let w = s.read_world();
    match w.users.get(id).and_then(|u| user_json(&s.jira_url, u)) {
        Some(v) => json_response(StatusCode::OK, &v),
        None => jira_error(
            StatusCode::NOT_FOUND,
            "Specified user does not exist or you do not have required permissions",
        ),
    }
}

async fn user_search(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let p = Params::from_uri(&uri);
    let query = p.get("query").map(str::to_lowercase);
    let account = p.get("accountId");
    if query.as_deref().is_none_or(str::is_empty) && account.is_none() {
        return jira_error(
            StatusCode::BAD_REQUEST,
            "The query parameter 'query' or 'accountId' or 'property' is required.",
        );
    }
    let (start, max) = match (int_param(&p, "startAt", 0), int_param(&p, "maxResults", 50)) {
        (Ok(a), Ok(b)) => (a, b.min(1000)),
        (Err(r), _) | (_, Err(r)) => return r,
    };
    let w = s.read_world();
    let matches = |u: &User| -> bool {
        if let Some(a) = account {
            if u.account_id != a {
                return false;
            }
        }
        let Some(q) = query.as_deref().filter(|q| !q.is_empty()) else {
            return true;
        };
        // Hidden emails do not match, so privacy settings cannot be probed (simulator choice).
        let email_hit = u.email_visible_in_jira && u.email.to_lowercase().starts_with(q);
        if q.contains('@') {
            return email_hit;
        }
        email_hit
            || u.display_name
                .to_lowercase()
                .split_whitespace()
                .any(|w| w.starts_with(q))
            || u.display_name.to_lowercase().starts_with(q)
    };
    let arr: Vec<Value> = w
        .users
        .values()
        .filter(|u| u.jira_account_type.is_some() && matches(u))
        .take(1000)
        .filter_map(|u| user_json(&s.jira_url, u))
        .skip(start)
        .take(max)
        .collect();
    json_response(StatusCode::OK, &Value::Array(arr))
}
