//! `GET /v1/access/repositories/{workspace}/{repo}` and `GET /v1/access/people/{who}`:
//! effective access with its sources and completeness, as `access` prints it in JSON.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;

use super::{ApiError, ApiState};
use crate::access::{for_account, for_repository, AccessAnswer};

/// The access of one person.
#[derive(Debug, Serialize)]
pub struct PersonAccess {
    /// The account the id or email named.
    pub account_id: String,
    /// Its access.
    #[serde(flatten)]
    pub answer: AccessAnswer,
}

/// Who can reach a repository, and why.
pub async fn repository(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Result<Json<AccessAnswer>, ApiError> {
    let Path((workspace, repo)) = path?;
    let answer = for_repository(state.store.as_ref(), &format!("{workspace}/{repo}")).await?;
    Ok(Json(answer))
}

/// What an account (by id, or by a matched email) can reach.
pub async fn person(
    State(state): State<Arc<ApiState>>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Json<PersonAccess>, ApiError> {
    let Path(who) = path?;
    let (account_id, answer) = for_account(state.store.as_ref(), &who).await?;
    Ok(Json(PersonAccess { account_id, answer }))
}
