//! `GET /v1/identities`: every stored account with its matched identity, as `identities
//! --format json` lists them.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::{ApiError, ApiState};
use crate::cli::identities::{identity_rows, IdentityRow};

/// The listing.
#[derive(Debug, Serialize)]
pub struct Identities {
    /// One row per account.
    pub identities: Vec<IdentityRow>,
}

/// Lists the identities.
pub async fn list(State(state): State<Arc<ApiState>>) -> Result<Json<Identities>, ApiError> {
    let identities = identity_rows(state.store.as_ref()).await?;
    Ok(Json(Identities { identities }))
}
