//! The HTTP API (issue 15): grants, effective access, identities under `/v1`, and Bitbucket's
//! webhooks at `/webhooks/bitbucket`. Documented by `schemas/openapi.json`.
//!
//! - [`router`] builds the routes over one [`ApiState`]; `serve` merges them into its own
//!   router, so one listener carries health, metrics and the API.
//! - `auth.rs`: bearer tokens and roles; `errors.rs`: the one error shape; `grants.rs`,
//!   `access.rs`, `identities.rs`, `audits.rs`, `syncs.rs`: the endpoints; `webhooks.rs`: signed deliveries that
//!   schedule a targeted refresh.
//!
//! Limits: request bodies over [`BODY_LIMIT`] are refused with 413, and a request that takes
//! longer than [`REQUEST_TIMEOUT`] is cut off (408), so a slow client or a stuck call to
//! Bitbucket cannot hold a connection for ever.

pub mod access;
pub mod audits;
pub mod auth;
pub mod errors;
pub mod grants;
pub mod identities;
pub mod syncs;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

use crate::bitbucket::BitbucketClient;
use crate::clock::Clock;
use crate::config::Config;
use crate::store::Store;

pub use auth::{Caller, Tokens};
pub use errors::ApiError;
pub use syncs::{Syncs, TargetedSyncRefresh};
pub use webhooks::{Deliveries, RefreshTarget, TargetedRefresh};

/// The largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The longest a request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the endpoints share.
pub struct ApiState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The Bitbucket client (grants use its grant class).
    pub client: BitbucketClient,
    /// The config (grant policy, webhook secret).
    pub config: Arc<Config>,
    /// Where time comes from.
    pub clock: Arc<dyn Clock>,
    /// Where webhook deliveries send their refreshes.
    pub refresh: Arc<dyn TargetedRefresh>,
    /// The deliveries already seen (replay protection).
    pub deliveries: Deliveries,
    /// The syncs callers started.
    pub syncs: Arc<Syncs>,
}

/// The API's routes over `state`: `/v1/...` behind the bearer tokens, `/webhooks/bitbucket`
/// behind the webhook signature.
pub fn router(state: Arc<ApiState>) -> Router {
    let tokens = Arc::new(Tokens::new(&state.config.server.all_tokens()));
    let v1 = Router::new()
        .route("/v1/grants", post(grants::create).get(grants::list))
        .route("/v1/grants/{id}", get(grants::show).delete(grants::end))
        .route(
            "/v1/access/repositories/{workspace}/{repo}",
            get(access::repository),
        )
        .route("/v1/access/people/{who}", get(access::person))
        .route("/v1/identities", get(identities::list))
        .route("/v1/audits/latest", get(audits::latest))
        .route("/v1/syncs", post(syncs::start))
        .route("/v1/syncs/{id}", get(syncs::show))
        .fallback(errors::no_route)
        .route_layer(axum::middleware::from_fn_with_state(tokens, auth::require));
    Router::new()
        .merge(v1)
        .route("/webhooks/bitbucket", post(webhooks::receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}
