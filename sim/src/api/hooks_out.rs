//! Webhook deliveries the simulator sends itself, as Bitbucket does: when a repository or a
//! project of a workspace with an active hook is created, deleted or updated, every hook of
//! that workspace subscribed to the event receives a POST of the event's JSON, signed with the
//! hook's secret (`X-Hub-Signature: sha256=<HMAC-SHA256 of the body>`), with `X-Event-Key`,
//! `X-Hook-UUID`, `X-Request-UUID` and `X-Attempt-Number`.
//!
//! Changes are found by comparing the world with a snapshot taken when it last changed (the
//! world's generation tells when), like the Organizations API's events: a test changes the
//! world however it likes and the deliveries follow within [`POLL`]. Only workspaces with an
//! active hook are watched, from the moment a hook is created ([`watch`]), so a change made
//! before a hook existed is not delivered to it. Each delivery is tried once; its outcome is
//! kept for tests ([`crate::SimHandle::deliveries`]).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::state::Shared;
use crate::world::{Hook, Workspace};

/// How often the world is compared with its snapshot.
pub const POLL: Duration = Duration::from_millis(50);

/// One delivery attempt, as a test reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The hook's UUID.
    pub hook: String,
    /// The event key (`repo:created`...).
    pub event: String,
    /// The URL posted to.
    pub url: String,
    /// The receiver's status, `None` when it could not be reached.
    pub status: Option<u16>,
}

/// The deliveries made so far.
#[derive(Debug, Default)]
pub struct Deliveries(Mutex<Vec<Delivery>>);

impl Deliveries {
    /// Every delivery so far, oldest first.
    pub fn all(&self) -> Vec<Delivery> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn push(&self, d: Delivery) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(d);
    }
}

/// One workspace's repositories and projects as their events show them, by slug and key.
type Items = (BTreeMap<String, Value>, BTreeMap<String, Value>);

/// The watched workspaces' items, by workspace slug.
#[derive(Debug, Default)]
pub struct Snapshots(Mutex<BTreeMap<String, Items>>);

fn repository_json(ws: &Workspace, slug: &str) -> Option<Value> {
    let r = ws.repositories.get(slug)?;
    Some(json!({
        "type": "repository",
        "full_name": format!("{}/{}", ws.slug, r.slug),
        "name": r.name,
        "uuid": r.uuid,
        "is_private": r.is_private,
        "project": {"type": "project", "key": r.project_key},
        "workspace": {"type": "workspace", "slug": ws.slug, "uuid": ws.uuid},
    }))
}

fn project_json(ws: &Workspace, key: &str) -> Option<Value> {
    let p = ws.projects.get(key)?;
    Some(json!({
        "type": "project",
        "key": p.key,
        "name": p.name,
        "uuid": p.uuid,
        "is_private": p.is_private,
        "workspace": {"type": "workspace", "slug": ws.slug, "uuid": ws.uuid},
    }))
}

fn items(ws: &Workspace) -> Items {
    let repos = ws
        .repositories
        .keys()
        .filter_map(|s| Some((s.clone(), repository_json(ws, s)?)))
        .collect();
    let projects = ws
        .projects
        .keys()
        .filter_map(|k| Some((k.clone(), project_json(ws, k)?)))
        .collect();
    (repos, projects)
}

/// Starts watching `ws` (called by the hook's creation, with the world held) unless it is
/// watched already, so the next change of the world is compared with this state.
pub(crate) fn watch(shared: &Shared, ws: &Workspace) {
    let mut snapshots = shared
        .hook_snapshots
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    snapshots
        .entry(ws.slug.clone())
        .or_insert_with(|| items(ws));
}

/// The events between two snapshots of one workspace's items: `(key, payload member, item)`.
fn changes(
    kind: &str,
    before: &BTreeMap<String, Value>,
    after: &BTreeMap<String, Value>,
) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, now) in after {
        match before.get(id) {
            None => out.push((format!("{kind}:created"), now.clone())),
            Some(then) if then != now => out.push((format!("{kind}:updated"), now.clone())),
            Some(_) => {}
        }
    }
    for (id, then) in before {
        if !after.contains_key(id) {
            out.push((format!("{kind}:deleted"), then.clone()));
        }
    }
    out
}

/// The signature header of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

/// Watches the world and delivers its events until the simulator shuts down.
pub(crate) async fn run(shared: Arc<Shared>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    let mut seen_gen = shared.world_generation();
    let mut sequence = 0u64;
    while !shared.shutdown.load(Ordering::SeqCst) {
        tokio::time::sleep(POLL).await;
        let gen = shared.world_generation();
        if gen == seen_gen {
            continue;
        }
        seen_gen = gen;
        let mut deliveries = Vec::new();
        {
            let w = shared.read_world();
            let mut snapshots = shared
                .hook_snapshots
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (slug, last) in snapshots.iter_mut() {
                let Some(ws) = w.workspaces.get(slug) else {
                    continue;
                };
                let now = items(ws);
                let events = changes("repo", &last.0, &now.0)
                    .into_iter()
                    .map(|(k, v)| (k, json!({"repository": v})))
                    .chain(
                        changes("project", &last.1, &now.1)
                            .into_iter()
                            .map(|(k, v)| (k, json!({"project": v}))),
                    );
                for (event, payload) in events {
                    for hook in ws.hooks.values() {
                        if hook.active && hook.events.contains(&event) {
                            sequence += 1;
                            let id = format!("sim-delivery-{sequence}");
                            deliveries.push((hook.clone(), event.clone(), payload.clone(), id));
                        }
                    }
                }
                *last = now;
            }
        }
        for (hook, event, payload, id) in deliveries {
            tokio::spawn(deliver(
                http.clone(),
                Arc::clone(&shared),
                hook,
                event,
                payload,
                id,
            ));
        }
    }
}

async fn deliver(
    http: reqwest::Client,
    shared: Arc<Shared>,
    hook: Hook,
    event: String,
    payload: Value,
    id: String,
) {
    let body = serde_json::to_vec(&payload).unwrap_or_default();
    let mut request = http
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("user-agent", "Bitbucket-Webhooks/2.0")
        .header("x-event-key", &event)
        .header("x-hook-uuid", &hook.uuid)
        .header("x-request-uuid", &id)
        .header("x-attempt-number", "1");
    if let Some(secret) = &hook.secret {
        request = request.header("x-hub-signature", signature(secret, &body));
    }
    let status = match request.body(body).send().await {
        Ok(r) => Some(r.status().as_u16()),
        Err(e) => {
            tracing::debug!(error = %e, url = %hook.url, "webhook delivery failed");
            None
        }
    };
    shared.deliveries.push(Delivery {
        hook: hook.uuid,
        event,
        url: hook.url,
        status,
    });
}
