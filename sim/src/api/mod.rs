//! HTTP layer: error bodies, pagination and query helpers shared by the handlers; the Bitbucket
//! router and its gate middleware live in [`gate`], the handlers by resource in `v1`, `v2` and
//! `jira`.

// Handlers return ready-made error responses through `Result<_, Response>`; boxing them would
// only add noise, and error paths are not hot.
#![allow(clippy::result_large_err)]

mod gate;
pub mod hooks_out;
pub mod jira;
pub mod org;
pub mod render;
pub mod v1;
pub mod v2;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{json, Value};

use crate::state::{Faults, Shared};

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

pub use gate::{bitbucket_router, caller_of};
