//! Shared set-up of the organization events tests: a store holding a first complete read of a
//! simulated workspace, the Organizations API client, a pass of the events, out-of-band changes
//! made as a named account, and the drift entries with their attribution.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use bitbucket_access::http::Scrubber;
use bitbucket_access::org::{OrgClient, OrgSettings};
use bitbucket_access::store::{open, AuditEntry, AuditFilter, AuditKind, Store, SyncOutcome};
use bitbucket_access::sync::events::{apply_pending, EventsOptions, EventsReport};
use bitbucket_access::sync::{self, SyncOptions};
use bitbucket_sim::api::org::Actor;
use bitbucket_sim::{Level, Role, SimHandle};
use secrecy::SecretString;
use url::Url;

use crate::sync_support::{client, owned_workspaces, quick_retries, slug, start_sim};

/// The Organizations API client of the simulator's organization.
pub fn org_client(sim: &SimHandle) -> OrgClient {
    let settings = sim.org().settings();
    OrgClient::new(
        OrgSettings::new(
            Url::parse(&sim.org_url()).expect("org url"),
            settings.org_id,
            SecretString::from(settings.api_key),
        ),
        quick_retries(),
        Scrubber::new(),
    )
    .expect("client")
}

/// The simulator, a store holding a complete first read of the owned workspace, and its slug.
pub async fn synced_world(url: &str, seed: u64) -> (SimHandle, Arc<dyn Store>, String) {
    let sim = start_sim(seed).await;
    let store = open(url).await.expect("store opens");
    let ws = owned_workspaces(&sim).remove(0);
    let report = sync::run(
        store.as_ref(),
        &client(&sim, 4),
        &SyncOptions {
            workspaces: vec![ws.clone()],
            ..SyncOptions::default()
        },
    )
    .await
    .expect("first sync");
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:#?}");
    (sim, store, ws)
}

/// Pass options for one managed workspace, as instance `holder`.
pub fn options(ws: &str, holder: &str) -> EventsOptions {
    EventsOptions {
        managed: BTreeSet::from([slug(ws)]),
        holder: holder.to_owned(),
        ..EventsOptions::default()
    }
}

/// One pass of the events as instance `holder`.
pub async fn pass(sim: &SimHandle, store: &dyn Store, ws: &str, holder: &str) -> EventsReport {
    apply_pending(
        store,
        &client(sim, 4),
        &org_client(sim),
        &options(ws, holder),
    )
    .await
    .expect("the events are applied")
}

/// Another administrator than the connector's account and the simulator's default actor.
pub fn other_admin(sim: &SimHandle) -> Actor {
    let default = sim.org().settings().actor.id;
    let admin = sim.admin_account_id();
    sim.with_world(|w| {
        let u = w
            .users
            .values()
            .rfind(|u| !u.app_user && u.account_id != admin && u.account_id != default)
            .expect("another person");
        Actor {
            id: u.account_id.clone(),
            name: u.display_name.clone(),
            api_token: true,
        }
    })
}

/// A repository of `ws` and a member of it without an explicit permission there.
pub fn repo_and_member(sim: &SimHandle, ws: &str, nth: usize) -> (String, String) {
    sim.with_world(|w| {
        let space = &w.workspaces[ws];
        let repo = space
            .repositories
            .keys()
            .nth(nth)
            .cloned()
            .expect("a repository");
        let member = space
            .members
            .iter()
            .find(|(m, membership)| {
                membership.role == Role::Member
                    && !space.repositories[&repo].user_permissions.contains_key(*m)
            })
            .map(|(m, _)| m.clone())
            .expect("a member without a permission there");
        (repo, member)
    })
}

/// Gives `member` admin on `repo` out of band, as `actor`.
pub fn grant_as(sim: &SimHandle, actor: Actor, ws: &str, repo: &str, member: &str) {
    sim.with_world_as(actor, |w| {
        w.set_repo_user_permission(ws, repo, member, Some(Level::Admin))
            .expect("an out-of-band grant");
    });
}

/// Bitbucket requests the simulator answered (the Organizations API's left out).
pub fn bitbucket_requests(sim: &SimHandle) -> u64 {
    sim.request_counts()
        .iter()
        .filter(|(k, _)| !k.contains("/admin/"))
        .map(|(_, n)| n)
        .sum()
}

/// Every drift entry of the audit log.
pub async fn drift_entries(store: &dyn Store) -> Vec<AuditEntry> {
    store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Drift],
            ..Default::default()
        })
        .await
        .expect("audit log")
}

/// The drift entries about `member` on `repo`.
pub async fn drift_of(store: &dyn Store, ws: &str, repo: &str, member: &str) -> Vec<AuditEntry> {
    let subject = format!("repository_user_permission {ws}/{repo} {member}");
    drift_entries(store)
        .await
        .into_iter()
        .filter(|e| e.entry.subject == subject)
        .collect()
}
