//! The Bitbucket router (2.0 and 1.0 groups) and its gate middleware.
//!
//! The gate runs for every matched Bitbucket route, in the order Bitbucket applies its checks:
//! count the request, inject faults, authenticate (401 / 410 for app passwords), rate-limit
//! (429), answer removed endpoints (410), check scopes (403), then run the handler.

#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine;

use crate::endpoints;
use crate::net::ConnHandle;
use crate::state::{Caller, Faults, Shared};

use super::{
    error, gone_2770, gone_3222, rate_limited, scope_error, unauthorized, v1, v2, IsPage,
    ANONYMOUS_OK, NOT_ACCESSIBLE, REMOVED,
};

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
