//! HTTP layer: the Bitbucket router (2.0 and 1.0 groups) with its gate middleware, the Jira
//! router, error bodies, pagination and query helpers.
//!
//! The gate runs for every matched Bitbucket route, in the order Bitbucket applies its checks:
//! count the request, inject faults, authenticate (401 / 410 for app passwords), rate-limit
//! (429), answer removed endpoints (410), check scopes (403), then run the handler.

// Handlers return ready-made error responses through `Result<_, Response>`; boxing them would
// only add noise, and error paths are not hot.
#![allow(clippy::result_large_err)]

pub mod jira;
pub mod render;
pub mod v1;
pub mod v2;

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

use crate::endpoints;
use crate::net::ConnHandle;
use crate::state::{Caller, Faults, Shared};

/// The `WWW-Authenticate` value Bitbucket sends with 401.
pub const WWW_AUTHENTICATE: &str = "Basic realm=\"Bitbucket.org HTTP\"";
/// The 429 body (text/plain).
pub const RATE_LIMIT_BODY: &str = "Rate limit for this resource has been exceeded";
/// The scope-failure message.
pub const SCOPE_MESSAGE: &str = "Your credentials lack one or more required privilege scopes.";
/// The access-token refusal message.
pub const NOT_ACCESSIBLE: &str = "This API is not accessible by this authentication mechanism";

/// Endpoints Atlassian removed in 2026 (CHANGE-2770): they answer 410.
pub const REMOVED: &[(&str, &str)] = &[
    ("GET", "/2.0/workspaces"),
    ("GET", "/2.0/user/permissions/workspaces"),
    ("GET", "/2.0/user/permissions/repositories"),
    ("GET", "/2.0/repositories"),
];

/// Routes anonymous callers may use (public repositories only).
const ANONYMOUS_OK: &[(&str, &str)] = &[
    ("GET", "/2.0/repositories/{workspace}"),
    ("GET", "/2.0/repositories/{workspace}/{repo_slug}"),
];

/// A response marker set by paginated listings, so page faults hit only pages.
#[derive(Clone, Copy, Debug)]
pub struct IsPage;

/// JSON response with a status.
pub fn json_response(status: StatusCode, v: &Value) -> Response {
    let body = serde_json::to_vec(v).unwrap_or_default();
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The standard error body `{"type":"error","error":{"message":...}}`.
pub fn error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"type": "error", "error": {"message": message}}),
    )
}

/// 401 with `WWW-Authenticate`.
pub fn unauthorized() -> Response {
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        "Token is invalid, expired, or not supported for this endpoint.",
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(WWW_AUTHENTICATE),
    );
    r
}

/// 429, `text/plain`, no `Retry-After`.
pub fn rate_limited() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"))],
        RATE_LIMIT_BODY,
    )
        .into_response()
}

/// Bitbucket's deprecation body (bitbucket-api.md section 3.1) for a changelog entry.
fn deprecation(change: &str) -> Value {
    let data = json!({"announcement_url": format!("https://developer.atlassian.com/cloud/bitbucket/changelog#{change}")});
    json!({
        "type": "error",
        "error": {
            "message": format!("{change} - Functionality has been deprecated"),
            "detail": "Please read the changelog entry for more details.",
            "data": data.clone()
        },
        "data": data
    })
}

/// 410 for the endpoints removed by CHANGE-2770 (body as recorded in bitbucket-api.md 3.1).
pub fn gone_2770() -> Response {
    json_response(StatusCode::GONE, &deprecation("CHANGE-2770"))
}

/// 410 for app passwords (CHANGE-3222; same shape as CHANGE-2770, message as recorded in
/// bitbucket-api.md 2.1).
pub fn gone_3222() -> Response {
    json_response(StatusCode::GONE, &deprecation("CHANGE-3222"))
}

/// 403 with the scope detail object.
pub fn scope_error(granted: Vec<String>, required: Vec<String>) -> Response {
    json_response(
        StatusCode::FORBIDDEN,
        &json!({"type": "error", "error": {"message": SCOPE_MESSAGE,
            "detail": {"granted": granted, "required": required}}}),
    )
}

/// Decoded query parameters, in order, repeated keys kept.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Parses a URI's query.
    pub fn from_uri(uri: &Uri) -> Params {
        Params(
            uri.query()
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    /// First value of a key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a key.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// `pagelen`: default 10, clamped to 10..=100.
pub fn pagelen(p: &Params) -> usize {
    p.get("pagelen")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(10)
        .clamp(10, 100)
}

/// The absolute URL of the same listing with `page` replaced.
pub fn next_url(s: &Shared, uri: &Uri, p: &Params, page: &str) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in &p.0 {
        if k != "page" {
            ser.append_pair(k, v);
        }
    }
    ser.append_pair("page", page);
    format!("{}{}?{}", s.bb_url, uri.path(), ser.finish())
}

const CURSOR_KEY: &[u8] = b"bitbucket-sim-opaque-cursor";

/// Encodes an opaque cursor: the listing name and positions, scrambled and base64url-encoded,
/// so clients cannot build one from a page number.
pub fn encode_cursor(kind: &str, parts: &[&str]) -> String {
    let plain = format!("{kind}\u{1f}{}", parts.join("\u{1f}"));
    let bytes: Vec<u8> = plain
        .bytes()
        .enumerate()
        .map(|(i, b)| b ^ CURSOR_KEY[i % CURSOR_KEY.len()] ^ (i as u8).wrapping_mul(37))
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes a cursor made by [`encode_cursor`] for the same listing.
pub fn decode_cursor(kind: &str, token: &str) -> Option<Vec<String>> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let plain: Vec<u8> = bytes
        .into_iter()
        .enumerate()
        .map(|(i, b)| b ^ CURSOR_KEY[i % CURSOR_KEY.len()] ^ (i as u8).wrapping_mul(37))
        .collect();
    let text = String::from_utf8(plain).ok()?;
    let mut it = text.split('\u{1f}');
    if it.next()? != kind {
        return None;
    }
    Some(it.map(str::to_string).collect())
}

/// A page ready to send.
pub struct Page {
    /// Items.
    pub values: Vec<Value>,
    /// Effective page length.
    pub pagelen: usize,
    /// Absolute next link.
    pub next: Option<String>,
    /// Total, when the listing reports it.
    pub size: Option<usize>,
    /// Page number, when the listing is list-based.
    pub page: Option<usize>,
    /// Absolute previous link, when the listing is list-based.
    pub previous: Option<String>,
}

/// Renders a page, applying the `short_next_page` fault and `fields=`.
pub fn page_response(s: &Shared, mut page: Page, p: &Params, hidden: &[&str]) -> Response {
    if page.values.len() >= 2 && Faults::take(&s.faults.short_next) {
        // A page cut short: half the items are missing while `next` and `size` stay as if the
        // page were whole.
        let keep = page.values.len() / 2;
        page.values.truncate(keep);
    }
    let mut doc = serde_json::Map::new();
    if let Some(size) = page.size {
        doc.insert("size".into(), json!(size));
    }
    if let Some(n) = page.page {
        doc.insert("page".into(), json!(n));
    }
    doc.insert("pagelen".into(), json!(page.pagelen));
    if let Some(n) = page.next {
        doc.insert("next".into(), json!(n));
    }
    if let Some(prev) = page.previous {
        doc.insert("previous".into(), json!(prev));
    }
    doc.insert("values".into(), Value::Array(page.values));
    let v = crate::fields::apply(Value::Object(doc), hidden, p.get("fields"));
    let mut r = json_response(StatusCode::OK, &v);
    r.extensions_mut().insert(IsPage);
    r
}

/// Renders a page whose items are already serialized (the hot path of large listings). Falls
/// back to [`page_response`] when `fields=` or a page fault needs the parsed form.
pub fn raw_page_response(s: &Shared, page: Page, items: Vec<Arc<[u8]>>, p: &Params) -> Response {
    let short_pending = s
        .faults
        .short_next
        .load(std::sync::atomic::Ordering::SeqCst)
        > 0;
    if p.get("fields").is_some() || (short_pending && items.len() >= 2) {
        let values = items
            .iter()
            .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
            .collect();
        return page_response(s, Page { values, ..page }, p, &[]);
    }
    let mut head = serde_json::Map::new();
    if let Some(size) = page.size {
        head.insert("size".into(), json!(size));
    }
    if let Some(n) = page.page {
        head.insert("page".into(), json!(n));
    }
    head.insert("pagelen".into(), json!(page.pagelen));
    if let Some(n) = page.next {
        head.insert("next".into(), json!(n));
    }
    if let Some(prev) = page.previous {
        head.insert("previous".into(), json!(prev));
    }
    let mut body = serde_json::to_vec(&Value::Object(head)).unwrap_or_default();
    // Replace the closing brace with the values array.
    body.pop();
    body.extend_from_slice(b",\"values\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(item);
    }
    body.extend_from_slice(b"]}");
    let mut r = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    r.extensions_mut().insert(IsPage);
    r
}

/// Renders one object with `fields=`.
pub fn object_response(status: StatusCode, v: Value, p: &Params) -> Response {
    let v = crate::fields::apply(v, &[], p.get("fields"));
    json_response(status, &v)
}

/// List-based paging over an already filtered, ordered slice of items: `page=N`, with `size`,
/// `page` and `previous`.
pub fn list_page<T>(
    s: &Shared,
    uri: &Uri,
    p: &Params,
    items: &[T],
    render: impl Fn(&T) -> Value,
) -> Result<Page, Response> {
    let len = pagelen(p);
    let n = match p.get("page") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(error(StatusCode::BAD_REQUEST, "Invalid page")),
        },
    };
    let start = (n - 1).saturating_mul(len);
    if start > 0 && start >= items.len() {
        return Err(error(StatusCode::NOT_FOUND, "Invalid page"));
    }
    let end = (start + len).min(items.len());
    let values = items[start..end].iter().map(render).collect();
    Ok(Page {
        values,
        pagelen: len,
        next: (end < items.len()).then(|| next_url(s, uri, p, &(n + 1).to_string())),
        size: Some(items.len()),
        page: Some(n),
        previous: (n > 1).then(|| next_url(s, uri, p, &(n - 1).to_string())),
    })
}

/// Parses and validates `q` against the fields a listing supports.
pub fn parse_q(p: &Params, allowed: &[&str]) -> Result<Option<crate::bbql::Expr>, Response> {
    match p.get("q") {
        None => Ok(None),
        Some(q) if q.trim().is_empty() => Ok(None),
        Some(q) => {
            let e = crate::bbql::parse(q).map_err(|e| {
                json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"type": "error", "error": {"message": "Invalid query", "detail": e.0}}),
                )
            })?;
            e.check_fields(allowed).map_err(|e| {
                json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({"type": "error", "error": {"message": "Invalid query", "detail": e.0}}),
                )
            })?;
            Ok(Some(e))
        }
    }
}

enum Auth {
    Ok(Caller),
    Fail(Response),
}

fn decode_basic(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let h = headers.get(header::AUTHORIZATION)?;
    let Ok(h) = h.to_str() else {
        return Some(Err(()));
    };
    let Some(rest) = h
        .strip_prefix("Basic ")
        .or_else(|| h.strip_prefix("basic "))
    else {
        return Some(Err(()));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Some(
        decoded
            .and_then(|d| {
                d.split_once(':')
                    .map(|(u, p)| (u.to_string(), p.to_string()))
            })
            .ok_or(()),
    )
}

fn legacy_satisfied(granted: &std::collections::BTreeSet<String>, required: &str) -> bool {
    granted
        .iter()
        .any(|g| g == required || g.starts_with(&format!("{required}:")))
}

fn authenticate(s: &Shared, headers: &HeaderMap, method: &str, template: &str) -> Auth {
    let req = endpoints::requirement(method, template);
    let creds = s.read_creds();
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if let Some(token) = bearer {
        let Some(t) = creds.access_tokens.get(token.trim()) else {
            return Auth::Fail(unauthorized());
        };
        let refused = req.is_some_and(|r| r.api_token_only)
            || template.contains("/permissions")
            || template.starts_with("/2.0/user/");
        if refused {
            return Auth::Fail(error(StatusCode::FORBIDDEN, NOT_ACCESSIBLE));
        }
        if let Some(r) = req {
            let missing: Vec<&String> = r
                .legacy
                .iter()
                .filter(|x| !legacy_satisfied(&t.scopes, x))
                .collect();
            if !missing.is_empty() {
                return Auth::Fail(scope_error(
                    t.scopes.iter().cloned().collect(),
                    r.legacy.clone(),
                ));
            }
        }
        return Auth::Ok(Caller::AccessToken {
            id: t.id.clone(),
            workspace: t.workspace.clone(),
        });
    }
    match decode_basic(headers) {
        None => {
            if ANONYMOUS_OK.contains(&(method, template)) {
                Auth::Ok(Caller::Anonymous)
            } else {
                Auth::Fail(unauthorized())
            }
        }
        Some(Err(())) => Auth::Fail(unauthorized()),
        Some(Ok((user, pass))) => {
            if creds.app_password.0 == user && creds.app_password.1 == pass {
                return Auth::Fail(gone_3222());
            }
            let Some(t) = creds.api_tokens.get(&pass) else {
                return Auth::Fail(unauthorized());
            };
            if !t.email.eq_ignore_ascii_case(&user) {
                return Auth::Fail(unauthorized());
            }
            if let Some(r) = req {
                if !r.scopes.iter().all(|x| t.scopes.contains(x)) {
                    return Auth::Fail(scope_error(
                        t.scopes.iter().cloned().collect(),
                        r.scopes.clone(),
                    ));
                }
            }
            Auth::Ok(Caller::User {
                account_id: t.account_id.clone(),
            })
        }
    }
}

fn fault_response(status: u16) -> Response {
    let st = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if st == StatusCode::INTERNAL_SERVER_ERROR {
        error(st, "Something went wrong")
    } else {
        (
            st,
            [(header::CONTENT_TYPE, HeaderValue::from_static("text/html"))],
            format!("<html><body><h1>{}</h1></body></html>", st),
        )
            .into_response()
    }
}

async fn gate(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let method = req.method().as_str().to_owned();
    s.count(format!("{method} {template}"));
    let conn = req
        .extensions()
        .get::<ConnectInfo<ConnHandle>>()
        .map(|c| c.0.clone());

    let latency = s.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if Faults::take(&s.faults.fail_next) {
        let st = s
            .faults
            .fail_status
            .load(std::sync::atomic::Ordering::SeqCst);
        return fault_response(st as u16);
    }
    if let Some(st) = s.faults.roll_error() {
        return fault_response(st);
    }

    let caller = match authenticate(&s, req.headers(), &method, &template) {
        Auth::Ok(c) => c,
        Auth::Fail(r) => return r,
    };
    let (key, limit) = match &caller {
        Caller::User { account_id } => (format!("u:{account_id}"), s.opts.rate_limit_per_hour),
        Caller::AccessToken { id, .. } => (format!("t:{id}"), s.opts.rate_limit_per_hour),
        Caller::Anonymous => (
            format!(
                "ip:{}",
                conn.as_ref()
                    .map(|c| c.peer.ip().to_string())
                    .unwrap_or_default()
            ),
            s.opts.anonymous_rate_limit_per_hour,
        ),
    };
    if !s.admit(&key, limit) {
        return rate_limited();
    }
    if REMOVED.contains(&(method.as_str(), template.as_str())) {
        return gone_2770();
    }
    req.extensions_mut().insert(caller);
    let resp = next.run(req).await;

    if Faults::take(&s.faults.drop_next) {
        // The handler has run (a PUT is applied) but the client never sees the answer.
        if let Some(c) = conn {
            c.cut();
        }
        return resp;
    }
    let is_page = resp.extensions().get::<IsPage>().is_some();
    if is_page && Faults::take(&s.faults.truncate_next) {
        return cut_body(resp).await;
    }
    if resp.status().is_success() && Faults::take(&s.faults.malformed_next) {
        return malformed(resp).await;
    }
    resp
}

async fn body_bytes(resp: Response) -> (axum::http::response::Parts, Bytes) {
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    (parts, bytes)
}

/// Sends half the body under a `Content-Length` that promises all of it, then aborts.
async fn cut_body(resp: Response) -> Response {
    let (mut parts, bytes) = body_bytes(resp).await;
    let half = bytes.slice(0..bytes.len() / 2);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    // The pause lets hyper flush the head and the first half before the stream fails, so the
    // client sees a 200 whose body ends early rather than no response at all.
    let first = futures::stream::iter([Ok::<Bytes, std::io::Error>(half)]);
    let fail = futures::stream::once(async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        Err::<Bytes, std::io::Error>(std::io::Error::other("page cut short"))
    });
    Response::from_parts(
        parts,
        Body::from_stream(futures::StreamExt::chain(first, fail)),
    )
}

/// A complete HTTP response whose JSON body is cut in the middle.
async fn malformed(resp: Response) -> Response {
    let (mut parts, bytes) = body_bytes(resp).await;
    let half = bytes.slice(0..bytes.len() / 2);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(half))
}

async fn not_found(State(s): State<Arc<Shared>>, req: Request) -> Response {
    s.count(format!("{} (unmatched)", req.method()));
    error(
        StatusCode::NOT_FOUND,
        &format!("Resource not found: {}", req.uri().path()),
    )
}

/// The Bitbucket router (2.0 and 1.0).
pub fn bitbucket_router(s: Arc<Shared>) -> Router {
    v2::routes()
        .merge(v1::routes())
        .route_layer(axum::middleware::from_fn_with_state(s.clone(), gate))
        .fallback(not_found)
        .with_state(s)
}

/// The caller placed in the request by the gate.
pub fn caller_of(ext: &axum::http::Extensions) -> Caller {
    ext.get::<Caller>().cloned().unwrap_or(Caller::Anonymous)
}
