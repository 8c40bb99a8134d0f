//! The Atlassian Organizations REST API subset (atlassian-org.md), served on the Jira listener,
//! which plays `api.atlassian.com`: under `/admin/v1/orgs/{org_id}`, the organization itself,
//! its linked workspaces, its managed users (`/users`, cursor pages), and the audit log's
//! polling stream (`/events-stream?cursor=&from=&to=&limit=`).
//!
//! Events are emitted for every change of the simulated world, out-of-band ones included: the
//! API compares the world with the snapshot it last saw whenever it is asked (and when a test
//! calls [`OrgState::observe`]), and records one event per difference. A change made through
//! the Bitbucket API is credited to the account whose credentials made it (the gate knows the
//! caller: [`OrgState::before_change`], [`OrgState::after_change`]); any other change (a test's
//! `with_world`) is out of band, credited to the configured actor (or the one a test names with
//! `SimHandle::with_world_as`). An event becomes visible [`OrgSettings::delay`] after it was recorded, as
//! Atlassian's events arrive minutes late. The machine-readable action names are in one table,
//! [`ACTIONS`], because Atlassian does not document them (see atlassian-org.md): correct them
//! there. Faults: the next answers fail with a status (500, 429 with `Retry-After`), and the
//! next change can be reported under an action nobody knows.

mod diff;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{json_response, Params};
use crate::state::Shared;
use crate::world::World;
use diff::diff;

/// What changed, by kind; the action strings of the audit log are looked up in [`ACTIONS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// A repository appeared.
    RepositoryCreated,
    /// A repository went away.
    RepositoryDeleted,
    /// A repository's name, project or visibility changed.
    RepositoryUpdated,
    /// A user was given a permission on a repository.
    RepositoryMemberAdded,
    /// A user's permission on a repository changed.
    RepositoryMemberUpdated,
    /// A user's permission on a repository was removed.
    RepositoryMemberRemoved,
    /// A group was given (or changed) a permission on a repository.
    RepositoryGroupAdded,
    /// A group's permission on a repository was removed.
    RepositoryGroupRemoved,
    /// A project appeared.
    ProjectCreated,
    /// A project went away.
    ProjectDeleted,
    /// A project's attributes changed.
    ProjectUpdated,
    /// A user's permission on a project was given or changed.
    ProjectMemberUpdated,
    /// A user's permission on a project was removed.
    ProjectMemberRemoved,
    /// A group's permission on a project was given or changed.
    ProjectGroupUpdated,
    /// A group's permission on a project was removed.
    ProjectGroupRemoved,
    /// A user joined the workspace (or changed role).
    WorkspaceUserAdded,
    /// A user left the workspace.
    WorkspaceUserRemoved,
    /// A user joined a group.
    GroupUserAdded,
    /// A user left a group.
    GroupUserRemoved,
    /// A group appeared.
    GroupCreated,
    /// A group went away.
    GroupDeleted,
}

/// The action string of each change: the one place that names them.
pub const ACTIONS: &[(Change, &str)] = &[
    (Change::RepositoryCreated, "bitbucket.repository.created"),
    (Change::RepositoryDeleted, "bitbucket.repository.deleted"),
    (Change::RepositoryUpdated, "bitbucket.repository.updated"),
    (
        Change::RepositoryMemberAdded,
        "bitbucket.repository.member.added",
    ),
    (
        Change::RepositoryMemberUpdated,
        "bitbucket.repository.member.updated",
    ),
    (
        Change::RepositoryMemberRemoved,
        "bitbucket.repository.member.removed",
    ),
    (
        Change::RepositoryGroupAdded,
        "bitbucket.repository.group-permission.added",
    ),
    (
        Change::RepositoryGroupRemoved,
        "bitbucket.repository.group-permission.removed",
    ),
    (Change::ProjectCreated, "bitbucket.project.created"),
    (Change::ProjectDeleted, "bitbucket.project.deleted"),
    (Change::ProjectUpdated, "bitbucket.project.updated"),
    (
        Change::ProjectMemberUpdated,
        "bitbucket.project.member.updated",
    ),
    (
        Change::ProjectMemberRemoved,
        "bitbucket.project.member.removed",
    ),
    (
        Change::ProjectGroupUpdated,
        "bitbucket.project.group-permission.updated",
    ),
    (
        Change::ProjectGroupRemoved,
        "bitbucket.project.group-permission.removed",
    ),
    (Change::WorkspaceUserAdded, "bitbucket.workspace.user.added"),
    (
        Change::WorkspaceUserRemoved,
        "bitbucket.workspace.user.removed",
    ),
    (Change::GroupUserAdded, "bitbucket.group.user.added"),
    (Change::GroupUserRemoved, "bitbucket.group.user.removed"),
    (Change::GroupCreated, "bitbucket.group.created"),
    (Change::GroupDeleted, "bitbucket.group.deleted"),
];

/// The action the fault [`OrgState::unknown_action_next`] reports a change under.
pub const UNKNOWN_ACTION: &str = "bitbucket.repository.branch-restriction.changed";

fn action(change: Change) -> &'static str {
    ACTIONS
        .iter()
        .find(|(c, _)| *c == change)
        .map_or("bitbucket.unknown", |(_, a)| a)
}

/// Who the audit log says made a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Atlassian account id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether an API token made the change (else a browser session).
    pub api_token: bool,
}

/// How the organization looks.
#[derive(Debug, Clone)]
pub struct OrgSettings {
    /// The organization's id.
    pub org_id: String,
    /// The organization API key (Bearer).
    pub api_key: String,
    /// Whether the organization has Atlassian Guard: without it, no Bitbucket event is listed.
    pub guard: bool,
    /// Workspaces linked to the organization (`None`: every workspace of the world). Only
    /// their changes are events.
    pub linked: Option<BTreeSet<String>>,
    /// How long after a change its event becomes visible.
    pub delay: Duration,
    /// Who the changes are attributed to.
    pub actor: Actor,
}

/// One recorded event.
#[derive(Debug, Clone)]
struct Event {
    seq: u64,
    time: DateTime<Utc>,
    visible_at: std::time::Instant,
    action: String,
    actor: Actor,
    context: Vec<Value>,
}

/// The organization's state: settings, the world snapshot last compared, events, faults.
#[derive(Debug)]
pub struct OrgState {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: OrgSettings,
    snapshot: Option<World>,
    events: Vec<Event>,
    fail_next: Vec<u16>,
    unknown_next: u32,
}

impl Actor {
    /// The actor behind an API caller: a user's account (its API token), a workspace access
    /// token, or, for an anonymous caller, nobody known.
    pub fn of_caller(world: &World, caller: &crate::state::Caller) -> Option<Actor> {
        use crate::state::Caller;
        match caller {
            Caller::User { account_id } => Some(Actor {
                id: account_id.clone(),
                name: world
                    .users
                    .get(account_id)
                    .map_or_else(|| account_id.clone(), |u| u.display_name.clone()),
                api_token: true,
            }),
            Caller::AccessToken { id, workspace } => Some(Actor {
                id: format!("access-token:{id}"),
                name: format!("Access token of {workspace}"),
                api_token: true,
            }),
            Caller::Anonymous => None,
        }
    }
}

impl OrgState {
    /// An organization with the given settings and no events yet.
    pub fn new(settings: OrgSettings) -> Self {
        OrgState {
            inner: Mutex::new(Inner {
                settings,
                snapshot: None,
                events: Vec::new(),
                fail_next: Vec::new(),
                unknown_next: 0,
            }),
        }
    }

    /// The organization of a generated world: every workspace linked, Guard on, no delay, and
    /// changes attributed to a person who is not the connector's account (out of band).
    pub fn for_world(world: &World) -> Self {
        let person = world
            .users
            .values()
            .find(|u| u.account_id != world.admin_account_id && !u.app_user);
        OrgState::new(OrgSettings {
            org_id: format!("sim-org-{}", world.seed),
            api_key: format!(
                "ATCTT3xOrg{:016x}",
                world.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ),
            guard: true,
            linked: None,
            delay: Duration::ZERO,
            actor: Actor {
                id: person
                    .map_or_else(|| "557058:out-of-band".to_owned(), |u| u.account_id.clone()),
                name: person.map_or_else(
                    || "Out-of-band admin".to_owned(),
                    |u| u.display_name.clone(),
                ),
                api_token: false,
            },
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the settings (Guard, linked workspaces, delay, actor).
    pub fn configure(&self, f: impl FnOnce(&mut OrgSettings)) {
        f(&mut self.lock().settings);
    }

    /// The current settings.
    pub fn settings(&self) -> OrgSettings {
        self.lock().settings.clone()
    }

    /// The next answers of the Organizations API fail with these statuses, in order.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.lock().fail_next.extend_from_slice(statuses);
    }

    /// The next `n` changes are reported under [`UNKNOWN_ACTION`].
    pub fn unknown_action_next(&self, n: u32) {
        self.lock().unknown_next += n;
    }

    /// Events recorded so far (visible or not).
    pub fn event_count(&self) -> usize {
        self.lock().events.len()
    }

    /// Compares the world with the last snapshot and records an event for each difference,
    /// attributed to the configured actor (a change nobody made through the API: out of
    /// band). The first call only takes the snapshot.
    pub fn observe(&self, world: &World) {
        self.record(world, None, true);
    }

    /// Before a change made through the API: records what changed out of band since the last
    /// snapshot, so the change that follows is not mixed with it. Does nothing while nobody
    /// reads the events (no snapshot), so a simulator without an organization reader pays
    /// nothing for it.
    pub fn before_change(&self, world: &World) {
        self.record(world, None, false);
    }

    /// After a change made through the API: records its events, attributed to the account
    /// whose credentials made it (an anonymous caller's, to the configured actor).
    pub fn after_change(&self, world: &World, caller: &crate::state::Caller) {
        self.record(world, Actor::of_caller(world, caller), false);
    }

    /// Compares the world with the last snapshot and records the differences as `actor`'s
    /// (a test's out-of-band change made as a given account). The first call only takes the
    /// snapshot.
    pub fn observe_as(&self, world: &World, actor: Actor) {
        self.record(world, Some(actor), true);
    }

    fn record(&self, world: &World, actor: Option<Actor>, take_first: bool) {
        let mut inner = self.lock();
        if inner.snapshot.is_none() && !take_first {
            return;
        }
        let Some(before) = inner.snapshot.replace(world.clone()) else {
            return;
        };
        let now = Utc::now();
        let visible_at = std::time::Instant::now() + inner.settings.delay;
        let linked = inner.settings.linked.clone();
        for (change, context) in diff(&before, world) {
            let ws = context
                .first()
                .and_then(|c| c["id"].as_str())
                .unwrap_or_default()
                .to_owned();
            if linked.as_ref().is_some_and(|l| !l.contains(&ws)) {
                continue;
            }
            let action = if inner.unknown_next > 0 {
                inner.unknown_next -= 1;
                UNKNOWN_ACTION.to_owned()
            } else {
                action(change).to_owned()
            };
            let seq = inner.events.len() as u64 + 1;
            let actor = actor
                .clone()
                .unwrap_or_else(|| inner.settings.actor.clone());
            inner.events.push(Event {
                seq,
                time: now,
                visible_at,
                action,
                actor,
                context,
            });
        }
    }
}

fn org_error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({"errors": [{"status": status.as_u16().to_string(), "title": message}]}),
    )
}

async fn gate(
    State(s): State<Arc<Shared>>,
    Path(params): Path<BTreeMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    let org = &s.org;
    let (key, org_id) = {
        let inner = org.lock();
        (
            inner.settings.api_key.clone(),
            inner.settings.org_id.clone(),
        )
    };
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if bearer != Some(key.as_str()) {
        return org_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if params.get("org_id") != Some(&org_id) {
        return org_error(StatusCode::NOT_FOUND, "Organization not found");
    }
    let fault = {
        let mut inner = org.lock();
        (!inner.fail_next.is_empty()).then(|| inner.fail_next.remove(0))
    };
    if let Some(status) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = org_error(status, "Simulated fault");
        if status == StatusCode::TOO_MANY_REQUESTS {
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
        }
        return r;
    }
    next.run(req).await
}

/// The Organizations API routes, to merge into the router of the listener that plays
/// `api.atlassian.com`.
pub fn router(s: Arc<Shared>) -> Router<Arc<Shared>> {
    Router::new()
        .route("/admin/v1/orgs/{org_id}", get(organization))
        .route("/admin/v1/orgs/{org_id}/workspaces", get(workspaces))
        .route("/admin/v1/orgs/{org_id}/users", get(users))
        .route("/admin/v1/orgs/{org_id}/events-stream", get(events_stream))
        .route_layer(axum::middleware::from_fn_with_state(s, gate))
}

fn org_of(s: &Shared) -> &OrgState {
    &s.org
}

async fn organization(State(s): State<Arc<Shared>>) -> Response {
    s.count("GET /admin/v1/orgs/{org_id}".to_owned());
    let settings = org_of(&s).settings();
    json_response(
        StatusCode::OK,
        &json!({"data": {"id": settings.org_id, "type": "orgs",
            "attributes": {"name": "Simulated organization", "guard": settings.guard}}}),
    )
}

async fn workspaces(State(s): State<Arc<Shared>>) -> Response {
    s.count("GET /admin/v1/orgs/{org_id}/workspaces".to_owned());
    let settings = org_of(&s).settings();
    let world = s.read_world();
    let data: Vec<Value> = world
        .workspaces
        .keys()
        .filter(|w| settings.linked.as_ref().is_none_or(|l| l.contains(*w)))
        .map(|w| {
            json!({"id": w, "type": "workspace",
            "attributes": {"product": "bitbucket", "slug": w}})
        })
        .collect();
    json_response(StatusCode::OK, &json!({"data": data, "links": {}}))
}

/// Cursor pages: the cursor is the index of the first item.
fn page<T>(items: &[T], uri: &Uri, base: &str, default: usize) -> (usize, usize, Option<String>) {
    let p = Params::from_uri(uri);
    let start: usize = p.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = p
        .get("limit")
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
        .clamp(1, 1000);
    let end = (start + limit).min(items.len());
    let next = (end < items.len()).then(|| format!("{base}?cursor={end}&limit={limit}"));
    (start.min(items.len()), end, next)
}

async fn users(State(s): State<Arc<Shared>>, Path(org_id): Path<String>, uri: Uri) -> Response {
    s.count("GET /admin/v1/orgs/{org_id}/users".to_owned());
    let world = s.read_world();
    let users: Vec<&crate::world::User> = world.users.values().filter(|u| !u.app_user).collect();
    let base = format!("{}/admin/v1/orgs/{org_id}/users", s.jira_url);
    let (start, end, next) = page(&users, &uri, &base, 100);
    let data: Vec<Value> = users[start..end]
        .iter()
        .map(|u| {
            json!({"account_id": u.account_id, "account_type": "atlassian",
            "account_status": if u.active { "active" } else { "inactive" },
            "name": u.display_name, "email": u.email})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"data": data, "links": {"next": next}}),
    )
}

async fn events_stream(
    State(s): State<Arc<Shared>>,
    Path(org_id): Path<String>,
    uri: Uri,
) -> Response {
    s.count("GET /admin/v1/orgs/{org_id}/events-stream".to_owned());
    let org = org_of(&s);
    org.observe(&s.read_world());
    let p = Params::from_uri(&uri);
    let ms = |k: &str| p.get(k).and_then(|v| v.parse::<i64>().ok());
    let (from, to) = (ms("from"), ms("to"));
    let inner = org.lock();
    if !inner.settings.guard {
        // Without Guard the organization's audit log holds no Bitbucket activity.
        return json_response(
            StatusCode::OK,
            &json!({"data": [], "links": {}, "meta": {"next": null, "page_size": 0}}),
        );
    }
    let after: u64 = p.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let limit: usize = p
        .get("limit")
        .and_then(|c| c.parse().ok())
        .unwrap_or(200)
        .clamp(1, 1000);
    let now = std::time::Instant::now();
    let visible: Vec<&Event> = inner
        .events
        .iter()
        .filter(|e| e.seq > after && e.visible_at <= now)
        .filter(|e| from.is_none_or(|f| e.time.timestamp_millis() >= f))
        .filter(|e| to.is_none_or(|t| e.time.timestamp_millis() < t))
        .collect();
    // Events are in processing order: stop at the first one not yet visible, so the cursor
    // never passes an event that will appear later.
    let ready = inner
        .events
        .iter()
        .take_while(|e| e.visible_at <= now)
        .count() as u64;
    let page: Vec<&&Event> = visible
        .iter()
        .filter(|e| e.seq <= ready)
        .take(limit)
        .collect();
    let last = page.last().map_or(after, |e| e.seq);
    let more = visible.iter().any(|e| e.seq > last && e.seq <= ready);
    let data: Vec<Value> = page
        .iter()
        .map(|e| {
            let mut actor = json!({"id": e.actor.id, "name": e.actor.name});
            if e.actor.api_token {
                actor["auth"] = json!({"authType": "api-token"});
            }
            json!({"id": format!("evt-{}", e.seq), "type": "event", "attributes": {
                "time": e.time.to_rfc3339(), "action": e.action, "actor": actor,
                "context": e.context, "container": e.context.first().cloned().into_iter().collect::<Vec<_>>(),
                "location": {"ip": "203.0.113.7"}}})
        })
        .collect();
    let base = format!("{}/admin/v1/orgs/{org_id}/events-stream", s.jira_url);
    let next = format!("{base}?cursor={last}");
    json_response(
        StatusCode::OK,
        &json!({"data": data, "links": {"self": uri.to_string(), "next": if more { Some(next.clone()) } else { None }},
            "meta": {"next": last.to_string(), "page_size": data.len()}}),
    )
}
