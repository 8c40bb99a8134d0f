//! The one error shape of the HTTP API, `{"error": {"code", "message", "field"}}`, and the
//! mapping of every failure (bad JSON, a body too large, refusals, missing rows) onto it.
//!
//! Messages name the input and what to do; they never carry a secret: tokens are never echoed,
//! and errors from Bitbucket arrive already scrubbed by the HTTP layer.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::access::AccessError;
use crate::grants::GrantError;
use crate::store::StoreError;

/// An answer other than success, as the API sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A stable, machine-readable code (`unauthorized`, `validation`, `not_found`...).
    pub code: &'static str,
    /// What happened and what to do, for people.
    pub message: String,
    /// The request field at fault, when one is.
    pub field: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
    field: Option<&'a str>,
}

impl ApiError {
    /// An error without a field.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// A 422 naming the field at fault.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError {
            field: Some(field.to_owned()),
            ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", message)
        }
    }

    /// A 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// A 500 that says which part failed; details go to the log, not the client.
    pub fn internal(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "{what} failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{what} failed; the server log says why"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The code a status goes by when axum's own extractors refuse a request.
fn code_for(status: StatusCode) -> &'static str {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNPROCESSABLE_ENTITY => "validation",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        _ => "bad_request",
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        // A body over the limit surfaces here as a 413 from the body reader.
        ApiError::new(r.status(), code_for(r.status()), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::internal("the store", &e)
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        match e {
            AccessError::BadRepository(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string())
            }
            AccessError::UnknownRepository(_) | AccessError::UnknownAccount(_) => {
                ApiError::not_found(e.to_string())
            }
            AccessError::Store(e) => e.into(),
        }
    }
}

impl From<GrantError> for ApiError {
    fn from(e: GrantError) -> Self {
        match &e {
            GrantError::Refused(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "refused", e.to_string())
            }
            GrantError::NotFound(_) => ApiError::not_found(e.to_string()),
            GrantError::WrongState { .. }
            | GrantError::SlotBusy(_)
            | GrantError::Unfinished { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            GrantError::Bitbucket(_) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "bitbucket", e.to_string())
            }
            GrantError::Store(_) | GrantError::Stopped(_) => ApiError::internal("the grant", &e),
        }
    }
}

/// The 404 of a path no route serves.
pub async fn no_route() -> ApiError {
    ApiError::not_found("no such endpoint; schemas/openapi.json lists them")
}
