//! `POST /v1/syncs` and `GET /v1/syncs/{id}`: a sync of one workspace started by a caller,
//! run in the background by `serve`'s job runner.
//!
//! The API's syncs run one at a time (a queue behind one lock), and each is a sync run like the
//! scheduler's: the store's run claim keeps it apart from a scheduled sync of the same
//! workspace on this instance or another. The id answered is the request's, kept in memory
//! until the process ends (the sync's own run and its report are in the store).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, Caller};
use crate::clock::Clock;
use crate::domain::WorkspaceSlug;
use crate::serve::{Job, JobOutcome, JobRunner};

/// Where a requested sync stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Waiting for the sync before it.
    Queued,
    /// Reading Bitbucket.
    Running,
    /// Done.
    Succeeded,
    /// Did not run (another instance holds the workspace, say); not a failure.
    Skipped,
    /// Failed; `detail` says why.
    Failed,
}

/// A requested sync.
#[derive(Debug, Clone, Serialize)]
pub struct SyncStatus {
    /// The request's id.
    pub id: u64,
    /// The workspace.
    pub workspace: String,
    /// Where it stands.
    pub state: SyncState,
    /// What it did, or why it failed.
    pub detail: Option<String>,
    /// Who asked (the token's name).
    pub requested_by: String,
    /// When.
    pub requested_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The body of `POST /v1/syncs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncBody {
    /// The workspace slug.
    pub workspace: String,
}

/// The syncs the API started, and the runner that runs them.
pub struct Syncs {
    runner: Option<Arc<dyn JobRunner>>,
    clock: Arc<dyn Clock>,
    next: AtomicU64,
    runs: Mutex<BTreeMap<u64, SyncStatus>>,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl Syncs {
    /// Syncs run by `runner` (`None`: this process cannot run syncs; POST answers 409).
    pub fn new(runner: Option<Arc<dyn JobRunner>>, clock: Arc<dyn Clock>) -> Arc<Self> {
        Arc::new(Syncs {
            runner,
            clock,
            next: AtomicU64::new(1),
            runs: Mutex::new(BTreeMap::new()),
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// Queues a sync of `workspace` and runs it in the background; `None` when this process
    /// cannot run syncs.
    pub fn enqueue(
        self: &Arc<Self>,
        workspace: &WorkspaceSlug,
        requested_by: &str,
    ) -> Option<SyncStatus> {
        let runner = self.runner.clone()?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let status = SyncStatus {
            id,
            workspace: workspace.to_string(),
            state: SyncState::Queued,
            detail: None,
            requested_by: requested_by.to_owned(),
            requested_at: self.clock.now(),
            finished_at: None,
        };
        self.runs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, status.clone());
        let syncs = Arc::clone(self);
        let job = Job::Sync {
            workspace: Some(workspace.to_string()),
        };
        tokio::spawn(async move {
            let _turn = syncs.one_at_a_time.lock().await;
            syncs.update(id, |s| s.state = SyncState::Running);
            let result = runner.run(&job).await;
            let now = syncs.clock.now();
            syncs.update(id, |s| {
                s.finished_at = Some(now);
                (s.state, s.detail) = match result {
                    Ok(JobOutcome::Done { detail }) => (SyncState::Succeeded, Some(detail)),
                    Ok(JobOutcome::Skipped { reason }) => (SyncState::Skipped, Some(reason)),
                    Err(e) => (SyncState::Failed, Some(e.to_string())),
                };
            });
        });
        Some(status)
    }

    fn update(&self, id: u64, change: impl FnOnce(&mut SyncStatus)) {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(status) = runs.get_mut(&id) {
            change(status);
        }
    }

    fn get(&self, id: u64) -> Option<SyncStatus> {
        let runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        runs.get(&id).cloned()
    }
}

/// `POST /v1/syncs`: 202 with the request's id; the sync runs in the background.
pub async fn start(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    body: Result<Json<SyncBody>, JsonRejection>,
) -> Result<(StatusCode, HeaderMap, Json<SyncStatus>), ApiError> {
    let Json(body) = body?;
    let workspace = WorkspaceSlug::parse(body.workspace.clone())
        .map_err(|e| ApiError::invalid("workspace", e.to_string()))?;
    let configured = &state.config.workspaces;
    if !configured.is_empty() && !configured.iter().any(|w| w == workspace.as_str()) {
        return Err(ApiError::invalid(
            "workspace",
            format!(
                "{workspace} is not one of the config's workspaces ({})",
                configured.join(", ")
            ),
        ));
    }
    let Some(status) = state.syncs.enqueue(&workspace, &caller.name) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "unavailable",
            "this process does not run syncs; start `bitbucket-access serve`",
        ));
    };
    let id = status.id;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/syncs/{id}")) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::ACCEPTED, headers, Json(status)))
}

/// `GET /v1/syncs/{id}`.
pub async fn show(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<u64>, PathRejection>,
) -> Result<Json<SyncStatus>, ApiError> {
    let Path(id) = id?;
    state.syncs.get(id).map(Json).ok_or_else(|| {
        ApiError::not_found(format!(
            "no sync has id {id} in this process (ids last until it restarts)"
        ))
    })
}

/// The webhook refresh `serve` uses: a delivery reads only the repository or project it names
/// and that one's permission listings (`sync::targeted`, three requests), not the workspace.
pub struct TargetedSyncRefresh {
    /// The store the refresh writes.
    pub store: Arc<dyn crate::store::Store>,
    /// The process's one client (one budget).
    pub client: crate::bitbucket::BitbucketClient,
    /// Where the refresh reads the time.
    pub clock: Arc<dyn Clock>,
}

impl super::TargetedRefresh for TargetedSyncRefresh {
    fn schedule(&self, target: super::RefreshTarget) {
        use crate::sync::targeted::{refresh, Target, TargetedOptions};
        let wanted = match &target {
            super::RefreshTarget::Repository(r) => Target::Repository(r.clone()),
            super::RefreshTarget::Project(p) => Target::Project(p.clone()),
        };
        let store = Arc::clone(&self.store);
        let client = self.client.clone();
        let options = TargetedOptions {
            clock: Arc::clone(&self.clock),
            ..TargetedOptions::default()
        };
        tokio::spawn(async move {
            match refresh(store.as_ref(), &client, &[wanted], &options).await {
                Ok(report) => tracing::info!(
                    target = ?target,
                    requests = report.requests_used,
                    "webhook: targeted refresh done"
                ),
                Err(error) => {
                    tracing::warn!(target = ?target, %error, "webhook: targeted refresh failed; the next sync reads the change")
                }
            }
        });
    }
}
