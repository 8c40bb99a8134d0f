//! Shared set-up of the grant tests: a simulated world with an owned workspace, the slots
//! (member, repository) a test may grant on, the level the simulator holds, an engine on a
//! manual clock, and the audit entries of a grant.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use bitbucket_access::bitbucket::BitbucketClient;
use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::OnConflict;
use bitbucket_access::domain::{
    AccountId, GrantId, GrantLevel, GrantTarget, Principal, RepoRef, RepoSlug, WorkspaceSlug,
};
use bitbucket_access::grants::{Engine, EngineSettings, GrantPlan};
use bitbucket_access::store::{AuditEntry, AuditFilter, Store};
use bitbucket_sim::{Level, Role, SimHandle, World, WorldSpec};
use chrono::{DateTime, Duration, Utc};

// Not every test binary uses both.
#[allow(unused_imports)]
pub use crate::sync_support::{client, start_sim_with};

/// A world with one owned workspace holding `repositories` repositories and many members.
pub fn world(seed: u64, repositories: usize) -> World {
    World::generate(&WorldSpec {
        repositories: repositories * 2,
        users: 24,
        ..WorldSpec::tiny(seed)
    })
}

/// The owned workspace.
pub fn owned(sim: &SimHandle) -> String {
    crate::sync_support::owned_workspaces(sim)
        .into_iter()
        .next()
        .expect("an owned workspace")
}

/// A slot a test grants on: a plain member of the owned workspace and one of its repositories,
/// with no explicit permission to start with.
#[derive(Debug, Clone)]
pub struct Slot {
    pub ws: String,
    pub repo: String,
    pub account: String,
}

impl Slot {
    pub fn principal(&self) -> Principal {
        Principal::User {
            account_id: AccountId::parse(self.account.clone()).expect("account id"),
        }
    }

    pub fn target(&self) -> GrantTarget {
        GrantTarget::Repository {
            repository: RepoRef {
                workspace: WorkspaceSlug::parse(self.ws.clone()).expect("ws"),
                slug: RepoSlug::parse(self.repo.clone()).expect("repo"),
            },
        }
    }

    /// A plan for `level` until `ends`.
    pub fn plan(&self, level: GrantLevel, ends: Option<DateTime<Utc>>) -> GrantPlan {
        GrantPlan {
            principal: self.principal(),
            target: self.target(),
            level,
            expires_at: ends,
            requested_by: "lead@acme.com".to_owned(),
            reason: Some("incident".to_owned()),
            ticket: Some("SEC-1".to_owned()),
        }
    }
}

/// `n` distinct slots (members × repositories), their explicit user permissions cleared.
pub fn slots(sim: &SimHandle, n: usize) -> Vec<Slot> {
    let ws = owned(sim);
    sim.with_world(|w| {
        let workspace = &w.workspaces[&ws];
        let members: Vec<String> = workspace
            .members
            .iter()
            .filter(|(_, m)| m.role == Role::Member)
            .map(|(id, _)| id.clone())
            .collect();
        let repos: Vec<String> = workspace.repositories.keys().cloned().collect();
        let mut out = Vec::new();
        'outer: for repo in &repos {
            for account in &members {
                if out.len() == n {
                    break 'outer;
                }
                out.push(Slot {
                    ws: ws.clone(),
                    repo: repo.clone(),
                    account: account.clone(),
                });
            }
        }
        assert_eq!(out.len(), n, "the world has {n} slots");
        for s in &out {
            w.set_repo_user_permission(&s.ws, &s.repo, &s.account, None)
                .expect("clear");
        }
        out
    })
}

/// Sets a slot's level in the simulator, as someone would in Bitbucket's UI.
pub fn set_in_sim(sim: &SimHandle, slot: &Slot, level: Option<Level>) {
    sim.with_world(|w| {
        w.set_repo_user_permission(&slot.ws, &slot.repo, &slot.account, level)
            .expect("set")
    });
}

/// The slot's explicit level in the simulator.
pub fn level_in_sim(sim: &SimHandle, slot: &Slot) -> Option<Level> {
    sim.with_world(|w| {
        w.workspaces[&slot.ws].repositories[&slot.repo]
            .user_permissions
            .get(&slot.account)
            .copied()
    })
}

/// PUT and DELETE requests on repository user permissions so far.
pub fn writes(sim: &SimHandle) -> (u64, u64) {
    let path =
        "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}";
    (
        sim.request_count("PUT", path),
        sim.request_count("DELETE", path),
    )
}

/// The time the tests start at.
pub fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-02T09:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

/// Engine settings for a test worker.
pub fn settings(name: &str, on_conflict: OnConflict) -> EngineSettings {
    let mut s = EngineSettings::new(name);
    s.on_conflict = on_conflict;
    s.actor = "expiry".to_owned();
    s
}

/// An engine.
pub fn engine<'a>(
    store: &'a dyn Store,
    client: &BitbucketClient,
    clock: &'a ManualClock,
    settings: EngineSettings,
) -> Engine<'a> {
    Engine::new(store, client, clock, settings)
}

/// Every audit entry that names the grant.
pub async fn audit_of(store: &dyn Store, id: GrantId) -> Vec<AuditEntry> {
    store
        .list_audit(&AuditFilter::default())
        .await
        .expect("audit")
        .into_iter()
        .filter(|e| e.entry.details.get("grant_id") == Some(&serde_json::json!(id.0)))
        .collect()
}

/// `minutes` after `t0`.
pub fn at(minutes: i64) -> DateTime<Utc> {
    t0() + Duration::minutes(minutes)
}

/// What most grant tests start from: a simulator, a store, a client, a manual clock at `t0` and
/// one cleared slot.
pub struct Fixture {
    pub sim: SimHandle,
    pub store: std::sync::Arc<dyn Store>,
    pub client: BitbucketClient,
    pub clock: ManualClock,
    pub slot: Slot,
}

impl Fixture {
    /// A fixture on the store at `url`, the world from `seed`.
    pub async fn new(seed: u64, url: &str) -> Self {
        let sim = start_sim_with(world(seed, 4)).await;
        let store = bitbucket_access::store::open(url)
            .await
            .expect("store opens");
        let client = client(&sim, 4);
        let slot = slots(&sim, 1).remove(0);
        Fixture {
            sim,
            store,
            client,
            clock: ManualClock::new(at(0)),
            slot,
        }
    }

    /// An engine named `w` with the conflict rule.
    pub fn engine(&self, on_conflict: OnConflict) -> Engine<'_> {
        self.engine_with(settings("w", on_conflict))
    }

    /// An engine with these settings.
    pub fn engine_with(&self, settings: EngineSettings) -> Engine<'_> {
        Engine::new(&*self.store, &self.client, &self.clock, settings)
    }
}
