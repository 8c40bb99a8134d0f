//! The HTTP side of `serve`: `/healthz`, `/readyz` and `/metrics` on `server.listen`.
//!
//! [`router`] returns an axum `Router` over one shared [`ServeState`]; the HTTP API (issue 15)
//! merges its own routes into it, so one server and one listener carry both.
//!
//! - `/healthz`: 200 while the process serves requests.
//! - `/readyz`: 200 when the store answers, every workspace's last finished sync is younger than
//!   the threshold, and no job has failed [`FAILING_AFTER`] times in a row; else 503. Either way
//!   the JSON body lists each workspace's last sync and each job's next run and failures.
//! - `/metrics`: the Prometheus text format ([`super::metrics`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::metrics::{Metrics, Scrape, CONTENT_TYPE};
use super::scheduler::{Board, JobStatus, FAILING_AFTER};
use crate::clock::Clock;
use crate::http::Budget;
use crate::store::Store;

/// What the endpoints read.
#[derive(Debug)]
pub struct ServeState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The scheduler's board.
    pub board: Arc<Board>,
    /// What the jobs recorded.
    pub metrics: Arc<Metrics>,
    /// The Bitbucket client's budget (requests by endpoint and status, what is left).
    pub budget: Arc<Budget>,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
    /// When this instance started: a workspace never synced counts against readiness only once
    /// the instance has run longer than `max_sync_age`.
    pub started: DateTime<Utc>,
    /// The oldest a workspace's last finished sync may be while the instance is ready.
    pub max_sync_age: Duration,
    /// The configured workspaces (empty: those the store knows).
    pub workspaces: Vec<String>,
}

/// The routes of `serve`, over `state`.
pub fn router(state: Arc<ServeState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// One workspace in `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct WorkspaceReadiness {
    /// The workspace.
    pub workspace: String,
    /// When its last sync finished (any instance), if ever.
    pub last_sync: Option<DateTime<Utc>>,
    /// How old that is, in seconds.
    pub age_seconds: Option<i64>,
    /// Whether it is within the threshold.
    pub fresh: bool,
}

/// The `/readyz` body.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// Whether every check passed.
    pub ready: bool,
    /// `ok`, or why the store did not answer.
    pub store: String,
    /// The threshold on the last sync's age, in seconds.
    pub max_sync_age_seconds: u64,
    /// Each workspace's last sync.
    pub workspaces: Vec<WorkspaceReadiness>,
    /// Each job: next run, failures in a row.
    pub jobs: Vec<JobStatus>,
    /// What keeps the instance from being ready, in words.
    pub problems: Vec<String>,
}

/// Checks readiness.
pub async fn readiness(state: &ServeState) -> Readiness {
    let now = state.clock.now();
    let mut problems = Vec::new();
    let max_age = chrono::Duration::from_std(state.max_sync_age).unwrap_or(chrono::Duration::MAX);
    let (store, last) = match state.store.last_sync_by_workspace().await {
        Ok(last) => ("ok".to_owned(), last),
        Err(e) => {
            problems.push(format!("the store does not answer: {e}"));
            (e.to_string(), BTreeMap::new())
        }
    };
    let mut names: Vec<String> = state.workspaces.clone();
    if names.is_empty() {
        names = last.keys().map(|w| w.as_str().to_owned()).collect();
    }
    let mut workspaces = Vec::new();
    for name in names {
        let at = last
            .iter()
            .find(|(w, _)| w.as_str() == name)
            .map(|(_, at)| *at);
        let age = at.map(|t| now - t);
        let fresh = match age {
            Some(age) => age <= max_age,
            None => now - state.started <= max_age,
        };
        if !fresh {
            problems.push(match age {
                Some(age) => format!(
                    "workspace {name}: last sync finished {} ago, over the {} s threshold",
                    crate::sync::format_age(age.num_seconds()),
                    state.max_sync_age.as_secs()
                ),
                None => format!("workspace {name}: never synced"),
            });
        }
        workspaces.push(WorkspaceReadiness {
            workspace: name,
            last_sync: at,
            age_seconds: age.map(|a| a.num_seconds()),
            fresh,
        });
    }
    let jobs = state.board.snapshot();
    for job in &jobs {
        if job.consecutive_failures >= FAILING_AFTER {
            problems.push(format!(
                "job {} failed {} times in a row, last: {}",
                job.job,
                job.consecutive_failures,
                job.last_error.as_deref().unwrap_or("-")
            ));
        }
    }
    Readiness {
        ready: problems.is_empty(),
        store,
        max_sync_age_seconds: state.max_sync_age.as_secs(),
        workspaces,
        jobs,
        problems,
    }
}

async fn readyz(State(state): State<Arc<ServeState>>) -> Response {
    let readiness = readiness(&state).await;
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness)).into_response()
}

/// Gathers the figures read at scrape time; a store that does not answer leaves its families
/// empty rather than failing the scrape (the budget and job figures still matter then).
pub async fn scrape(state: &ServeState) -> Scrape {
    let now = state.clock.now();
    let store = state.store.as_ref();
    let text = |m: BTreeMap<crate::domain::WorkspaceSlug, DateTime<Utc>>| {
        m.into_iter()
            .map(|(w, t)| (w.as_str().to_owned(), t))
            .collect::<BTreeMap<_, _>>()
    };
    Scrape {
        bitbucket_requests: state.budget.outcome_counts(),
        budget_available: state.budget.available(),
        budget_used: state.budget.used_in_window(),
        grants: store.grant_counts().await.unwrap_or_default(),
        last_sync: store
            .last_sync_by_workspace()
            .await
            .map(text)
            .unwrap_or_default(),
        oldest_fact_age: store
            .oldest_read_by_workspace()
            .await
            .map(text)
            .unwrap_or_default()
            .into_iter()
            .map(|(w, t)| (w, (now - t).num_seconds().max(0)))
            .collect(),
        jobs: state.board.figures(),
    }
}

async fn metrics(State(state): State<Arc<ServeState>>) -> Response {
    let scrape = scrape(&state).await;
    let body = state.metrics.render(&scrape);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response()
}
