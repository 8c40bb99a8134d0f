//! `/v1/grants`: make a grant, list them, show one, end one, through the same request type,
//! policy, preflight and engine as the `grant` and `revoke` commands. The caller's token name
//! is the requester.
//!
//! `Idempotency-Key`: the first request with a key claims it in the store (with a fingerprint
//! of its body) before anything else, and binds the grant it makes to it. A retry with the
//! same key and body answers that grant (200) and never makes a second one; a different body
//! under the key is a 422; a retry while the first is still running is a 409. A request that
//! is refused gives its key back, so a corrected request may reuse it.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ApiError, ApiState, Caller};
use crate::cli::grants::{target, GrantView, SlotArgs};
use crate::config::parse_duration;
use crate::domain::{
    AccountId, Grant, GrantId, GrantLevel, GrantState, GrantTarget, GroupSlug, Principal,
};
use crate::grants::{preflight, Engine, EngineSettings, GrantDuration, GrantRequest};
use crate::store::{GrantFilter, IdempotencyClaim, IdempotencyKey};

/// The longest `Idempotency-Key` accepted.
const MAX_KEY_LEN: usize = 200;

/// The body of `POST /v1/grants`: the `grant` command's flags.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GrantBody {
    /// An account id, or an email matched to an account.
    #[serde(default)]
    pub user: Option<String>,
    /// A group slug.
    #[serde(default)]
    pub group: Option<String>,
    /// `WORKSPACE/REPOSITORY`.
    #[serde(default)]
    pub repo: Option<String>,
    /// `WORKSPACE/PROJECT_KEY`.
    #[serde(default)]
    pub project: Option<String>,
    /// `WORKSPACE/GROUP` (membership).
    #[serde(default)]
    pub member_of: Option<String>,
    /// read, write, admin, create-repo (memberships need none).
    #[serde(default)]
    pub level: Option<String>,
    /// How long, such as 8h.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// Until when (RFC 3339).
    #[serde(default)]
    pub until: Option<String>,
    /// No end.
    #[serde(default)]
    pub permanent: bool,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
    /// The ticket.
    #[serde(default)]
    pub ticket: Option<String>,
}

/// A listing of grants.
#[derive(Debug, Serialize)]
pub struct GrantList {
    /// The grants, oldest first.
    pub grants: Vec<GrantView>,
}

/// The filters of `GET /v1/grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// One state.
    #[serde(default)]
    pub state: Option<String>,
    /// `user:ACCOUNT_ID` or `group:SLUG`.
    #[serde(default)]
    pub principal: Option<String>,
    /// A workspace, or `WORKSPACE/NAME` (repository, project key or group).
    #[serde(default)]
    pub target: Option<String>,
}

fn only_one(body: &GrantBody) -> Result<(), ApiError> {
    let whos = [body.user.is_some(), body.group.is_some()];
    if whos.iter().filter(|b| **b).count() != 1 {
        return Err(ApiError::invalid(
            "user",
            "give exactly one of user and group",
        ));
    }
    let targets = [
        body.repo.is_some(),
        body.project.is_some(),
        body.member_of.is_some(),
    ];
    if targets.iter().filter(|b| **b).count() != 1 {
        return Err(ApiError::invalid(
            "repo",
            "give exactly one of repo (WS/REPO), project (WS/PROJECT_KEY) and member_of (WS/GROUP)",
        ));
    }
    let ends = [body.for_.is_some(), body.until.is_some(), body.permanent];
    if ends.iter().filter(|b| **b).count() > 1 {
        return Err(ApiError::invalid(
            "for",
            "give at most one of for, until and permanent (none: the policy's default duration)",
        ));
    }
    Ok(())
}

fn target_field(body: &GrantBody) -> &'static str {
    if body.project.is_some() {
        "project"
    } else if body.member_of.is_some() {
        "member_of"
    } else {
        "repo"
    }
}

/// The request a body asks for, or the field at fault.
async fn request(
    state: &ApiState,
    body: &GrantBody,
    caller: &Caller,
) -> Result<GrantRequest, ApiError> {
    only_one(body)?;
    let slot = SlotArgs {
        user: body.user.clone(),
        group: body.group.clone(),
        repo: body.repo.clone(),
        project: body.project.clone(),
        member_of: body.member_of.clone(),
    };
    // The command's parser names its flags (`--repo`); the API's fields drop the dashes.
    let target = target(&slot).map_err(|m| {
        ApiError::invalid(target_field(body), m.replace("--", "").replace('-', "_"))
    })?;
    let level = match (&body.level, &target) {
        (Some(l), _) => {
            GrantLevel::parse(l).map_err(|e| ApiError::invalid("level", e.to_string()))?
        }
        (None, GrantTarget::GroupMembership { .. }) => GrantLevel::Member,
        (None, _) => {
            return Err(ApiError::invalid(
                "level",
                "name the level: read, write, admin or create-repo",
            ))
        }
    };
    let duration = match (&body.for_, &body.until, body.permanent) {
        (Some(d), _, _) => GrantDuration::For(
            parse_duration(d).map_err(|e| ApiError::invalid("for", format!("{d:?}: {e}")))?,
        ),
        (_, Some(u), _) => GrantDuration::Until(
            DateTime::parse_from_rfc3339(u)
                .map_err(|e| {
                    ApiError::invalid(
                        "until",
                        format!("{u:?} is not an RFC 3339 time ({e}); write it like 2026-12-24T18:00:00Z"),
                    )
                })?
                .with_timezone(&Utc),
        ),
        (_, _, true) => GrantDuration::Permanent,
        _ => GrantDuration::PolicyDefault,
    };
    let principal = match (&body.user, &body.group) {
        (Some(user), _) if user.contains('@') => {
            let account = state.store.account_by_email(user).await?.ok_or_else(|| {
                ApiError::invalid(
                    "user",
                    format!("no stored account is matched to {user}; give the account id, or run `bitbucket-access identities import`"),
                )
            })?;
            Principal::User {
                account_id: account.account_id,
            }
        }
        (Some(user), _) => Principal::User {
            account_id: AccountId::parse(user.clone())
                .map_err(|e| ApiError::invalid("user", e.to_string()))?,
        },
        (None, Some(group)) => Principal::Group {
            slug: GroupSlug::parse(group.clone())
                .map_err(|e| ApiError::invalid("group", e.to_string()))?,
        },
        (None, None) => unreachable!("only_one checked that one is given"),
    };
    Ok(GrantRequest {
        principal,
        target,
        level,
        duration,
        reason: body.reason.clone(),
        ticket: body.ticket.clone(),
        requested_by: caller.name.clone(),
    })
}

fn engine<'a>(state: &'a ApiState, actor: &str) -> Engine<'a> {
    let mut settings = EngineSettings::new("api");
    settings.actor = actor.to_owned();
    settings.on_conflict = state.config.grant_policy.on_conflict;
    settings.max_in_flight = state.config.request_budget.max_in_flight.max(1);
    Engine::new(
        state.store.as_ref(),
        &state.client,
        state.clock.as_ref(),
        settings,
    )
}

/// Validates, preflights and gives the grant.
async fn make(state: &ApiState, body: &GrantBody, caller: &Caller) -> Result<Grant, ApiError> {
    let request = request(state, body, caller).await?;
    let plan = preflight(
        &state.client,
        &state.config.grant_policy,
        state.clock.now(),
        &request,
    )
    .await?;
    Ok(engine(state, &caller.name).grant(&plan).await?)
}

fn idempotency_key(
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("the Idempotency-Key header must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
            )
        })?;
    Ok(Some(IdempotencyKey {
        requester: caller.name.clone(),
        key: key.to_owned(),
    }))
}

/// What the body says, independent of field order and spacing.
fn fingerprint(body: &GrantBody) -> String {
    let canonical = serde_json::to_vec(body).unwrap_or_default();
    Sha256::digest(canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /v1/grants`.
pub async fn create(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Result<Json<GrantBody>, JsonRejection>,
) -> Result<(StatusCode, Json<GrantView>), ApiError> {
    let Json(body) = body?;
    let Some(key) = idempotency_key(&headers, &caller)? else {
        let grant = make(&state, &body, &caller).await?;
        return Ok((StatusCode::CREATED, Json(GrantView::from(&grant))));
    };
    let print = fingerprint(&body);
    match state
        .store
        .claim_idempotency_key(&key, &print, state.clock.now())
        .await?
    {
        IdempotencyClaim::Seen { fingerprint, .. } if fingerprint != print => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with a different body; use a new key for a new request",
        )),
        IdempotencyClaim::Seen {
            grant: Some(id), ..
        } => {
            let grant = state.store.grant(id).await?.ok_or_else(|| {
                ApiError::internal("reading the grant of an idempotency key", &id)
            })?;
            Ok((StatusCode::OK, Json(GrantView::from(&grant))))
        }
        IdempotencyClaim::Seen { grant: None, .. } => Err(ApiError::new(
            StatusCode::CONFLICT,
            "in_progress",
            "a request with this Idempotency-Key is still being handled; retry in a moment",
        )),
        IdempotencyClaim::Claimed => match make(&state, &body, &caller).await {
            Ok(grant) => {
                state.store.bind_idempotency_key(&key, grant.id).await?;
                Ok((StatusCode::CREATED, Json(GrantView::from(&grant))))
            }
            Err(e) => {
                // Nothing was granted: the key goes back, so a corrected retry may use it.
                state.store.release_idempotency_key(&key).await?;
                Err(e)
            }
        },
    }
}

fn parse_state(text: &str) -> Result<GrantState, ApiError> {
    GrantState::ALL
        .iter()
        .copied()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            let known: Vec<&str> = GrantState::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::invalid(
                "state",
                format!("{text:?} is not a state; one of {}", known.join(", ")),
            )
        })
}

fn parse_principal(text: &str) -> Result<Principal, ApiError> {
    let bad = || {
        ApiError::invalid(
            "principal",
            format!("{text:?} is not user:ACCOUNT_ID or group:SLUG"),
        )
    };
    match text.split_once(':') {
        Some(("user", id)) => AccountId::parse(id.to_owned())
            .map(|account_id| Principal::User { account_id })
            .map_err(|_| bad()),
        Some(("group", slug)) => GroupSlug::parse(slug.to_owned())
            .map(|slug| Principal::Group { slug })
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `WORKSPACE/NAME` of a target.
fn target_path(target: &GrantTarget) -> String {
    match target {
        GrantTarget::Repository { repository } => repository.to_string(),
        GrantTarget::Project { project } => project.to_string(),
        GrantTarget::GroupMembership { workspace, group } => format!("{workspace}/{group}"),
    }
}

/// `GET /v1/grants`.
pub async fn list(
    State(state): State<Arc<ApiState>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<GrantList>, ApiError> {
    let Query(query) = query?;
    let states = query.state.as_deref().map(parse_state).transpose()?;
    let principal = query
        .principal
        .as_deref()
        .map(parse_principal)
        .transpose()?;
    let (workspace, path) = match query.target.as_deref() {
        None => (None, None),
        Some(t) => match t.split_once('/') {
            Some((ws, _)) => (Some(ws.to_owned()), Some(t.to_owned())),
            None => (Some(t.to_owned()), None),
        },
    };
    let grants = state
        .store
        .list_grants(&GrantFilter {
            states: states.into_iter().collect(),
            principal,
            workspace,
            changed_since: None,
        })
        .await?;
    let grants = grants
        .iter()
        .filter(|g| path.as_ref().is_none_or(|p| *p == target_path(&g.target)))
        .map(GrantView::from)
        .collect();
    Ok(Json(GrantList { grants }))
}

async fn find(state: &ApiState, id: i64) -> Result<Grant, ApiError> {
    state.store.grant(GrantId(id)).await?.ok_or_else(|| {
        ApiError::not_found(format!("no grant has id {id}; GET /v1/grants lists them"))
    })
}

/// `GET /v1/grants/{id}`.
pub async fn show(
    State(state): State<Arc<ApiState>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<GrantView>, ApiError> {
    let Path(id) = id?;
    Ok(Json(GrantView::from(&find(&state, id).await?)))
}

/// `DELETE /v1/grants/{id}`: ends the grant early and restores what stood before.
pub async fn end(
    State(state): State<Arc<ApiState>>,
    Extension(caller): Extension<Caller>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<GrantView>, ApiError> {
    let Path(id) = id?;
    find(&state, id).await?;
    let grant = engine(&state, &caller.name)
        .revoke(GrantId(id), &caller.name)
        .await?;
    Ok(Json(GrantView::from(&grant)))
}
