//! A world built to hold every kind of audit finding, synced from the simulator into a store,
//! with identities and grants recorded through the store, and the settings that flag them.
#![allow(dead_code)]

use crate::sync_support::*;
use bitbucket_access::audit::{self, Audit, AuditSettings};
use bitbucket_access::clock::{Clock, ManualClock};
use bitbucket_access::config::{AuditPolicy, Config, DatabaseUrl, GrantPolicy};
use bitbucket_access::domain::{
    AccountId, AccountType, GrantId, GrantLevel, GrantState, GrantTarget, Identity, IdentitySource,
    NewGrant, Principal, RepoRef, RepoSlug,
};
use bitbucket_access::store::{open, ListingKey, Store};
use bitbucket_access::sync::{self, SyncOptions};
use bitbucket_sim::{Level, NewRepository, ProjectLevel as SimProjectLevel, Role, SimHandle};
use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use std::sync::Arc;

/// The allowed email domain of the audit policy.
pub const DOMAIN: &str = "acme.test";
/// The public repository added to the world.
pub const PUBLIC_REPO: &str = "public-site";

/// Everything a test needs to know about the world it audits.
pub struct AuditWorld {
    pub sim: SimHandle,
    pub store: Arc<dyn Store>,
    pub ws: String,
    /// A private repository with a direct admin (`direct_admin`) and a direct write
    /// (`leftover`, left behind by an ended grant).
    pub repo: String,
    /// Another private repository (an active grant, a failed listing).
    pub other_repo: String,
    /// Holds admin on `repo` directly; email outside the allowed domain.
    pub direct_admin: String,
    /// Holds write on `repo` after its grant ended; inactive in Jira.
    pub leftover: String,
    /// Gained read on `repo` out of band (drift); project admin; matches no person.
    pub drifter: String,
    /// Made a second workspace owner.
    pub second_owner: String,
    /// The project of `repo`.
    pub project: String,
    pub grant_active: GrantId,
    pub grant_failed: GrantId,
    pub grant_conflict: GrantId,
    pub grant_ended_present: GrantId,
    pub grant_too_long: GrantId,
    /// The time the report is generated at.
    pub clock: ManualClock,
    pub now: DateTime<Utc>,
}

/// The settings that flag every kind of finding in this world.
pub fn settings(ws: &str) -> AuditSettings {
    AuditSettings {
        workspaces: vec![ws.to_owned()],
        policy: AuditPolicy {
            allowed_email_domains: vec![DOMAIN.to_owned()],
            max_admins_per_repository: Some(1),
            max_workspace_owners: Some(1),
            flag_unmatched_accounts: true,
            flag_direct_user_permissions: true,
            ..default_policy()
        },
        grant_policy: GrantPolicy::default(),
    }
}

/// The config defaults of `audit_policy`.
pub fn default_policy() -> AuditPolicy {
    let url = DatabaseUrl::parse("sqlite://unused.db", std::path::Path::new(".")).expect("url");
    let config = Config::for_simulator(
        url::Url::parse("http://127.0.0.1:1").expect("url"),
        "svc@acme.test",
        SecretString::from("token".to_owned()),
        None,
        url,
    );
    config.audit_policy
}

/// Syncs the owned workspaces.
pub async fn sync_all(store: &dyn Store, sim: &SimHandle) {
    let options = SyncOptions {
        workspaces: owned_workspaces(sim),
        cross_check_sample: 0,
        ..SyncOptions::default()
    };
    sync::run(store, &client(sim, 4), &options)
        .await
        .expect("sync runs");
}

fn id(text: &str) -> AccountId {
    AccountId::parse(text.to_owned()).expect("account id")
}

fn identity(account: &str, email: Option<String>, active: Option<bool>) -> Identity {
    Identity {
        account_id: id(account),
        email: email.clone(),
        source: if email.is_some() {
            IdentitySource::Manual
        } else {
            IdentitySource::Unmatched
        },
        matched_at: Utc::now(),
        active,
        account_type: AccountType::Atlassian,
        conflicts: Vec::new(),
    }
}

async fn grant(
    store: &dyn Store,
    who: &str,
    repo: RepoRef,
    state: GrantState,
    starts_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
) -> GrantId {
    store
        .insert_grant(&NewGrant {
            principal: Principal::User {
                account_id: id(who),
            },
            target: GrantTarget::Repository { repository: repo },
            level: GrantLevel::Write,
            baseline: None,
            planned: Some(GrantLevel::Write),
            requested_by: "lead@acme.test".into(),
            reason: Some("incident".into()),
            ticket: Some("SEC-1".into()),
            created_at: starts_at,
            starts_at,
            expires_at,
            state,
        })
        .await
        .expect("grant recorded")
        .id
}

/// Builds the world on the store at `url`: every kind of finding is present.
pub async fn build(url: &str, seed: u64) -> AuditWorld {
    let sim = start_sim(seed).await;
    let ws = owned_workspaces(&sim).remove(0);
    let admin = sim.admin_account_id();
    let (repo, other_repo, project, plain) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let mut private = wsv.repositories.values().filter(|r| r.is_private);
        let repo = private.next().expect("a private repository");
        let other = private.next().expect("a second private repository");
        let plain: Vec<String> = wsv
            .members
            .iter()
            .filter(|(id, m)| m.role == Role::Member && **id != admin)
            .map(|(id, _)| id.clone())
            .take(4)
            .collect();
        (
            repo.slug.clone(),
            other.slug.clone(),
            repo.project_key.clone(),
            plain,
        )
    });
    assert!(plain.len() >= 4, "the world needs four plain members");
    let (direct_admin, leftover, drifter, second_owner) = (
        plain[0].clone(),
        plain[1].clone(),
        plain[2].clone(),
        plain[3].clone(),
    );
    sim.with_world(|w| {
        w.add_repository(
            &ws,
            NewRepository {
                slug: PUBLIC_REPO.into(),
                name: "Public site".into(),
                project_key: project.clone(),
                is_private: false,
            },
        )?;
        w.add_workspace_member(&ws, &second_owner, Role::Owner)?;
        w.set_repo_user_permission(&ws, &repo, &direct_admin, Some(Level::Admin))?;
        w.set_repo_user_permission(&ws, &repo, &leftover, Some(Level::Write))?;
        w.set_project_user_permission(&ws, &project, &drifter, Some(SimProjectLevel::Admin))
    })
    .expect("world changes");

    let store = open(url).await.expect("store opens");
    sync_all(store.as_ref(), &sim).await;
    // Someone gives the drifter read on the repository in Bitbucket's UI.
    sim.with_world(|w| w.set_repo_user_permission(&ws, &repo, &drifter, Some(Level::Read)))
        .expect("out-of-band change");
    sync_all(store.as_ref(), &sim).await;

    store
        .replace_identities(
            &[
                identity(
                    &direct_admin,
                    Some("contractor@outside.example".into()),
                    Some(true),
                ),
                identity(&leftover, Some(format!("leaver@{DOMAIN}")), Some(false)),
                identity(&drifter, None, None),
                identity(&second_owner, Some(format!("owner@{DOMAIN}")), Some(true)),
                identity(&admin, Some(format!("svc@{DOMAIN}")), Some(true)),
            ],
            &[],
        )
        .await
        .expect("identities");

    // Microseconds, as the store keeps them, so that times read back equal.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now");
    let repo_ref = |name: &str| RepoRef {
        workspace: slug(&ws),
        slug: RepoSlug::parse(name.to_owned()).expect("slug"),
    };
    let s = store.as_ref();
    let hour = Some(now + Duration::hours(1));
    let grant_active = grant(
        s,
        &leftover,
        repo_ref(&other_repo),
        GrantState::Active,
        now,
        hour,
    )
    .await;
    let grant_failed = grant(
        s,
        &drifter,
        repo_ref(&other_repo),
        GrantState::Failed,
        now,
        hour,
    )
    .await;
    let grant_conflict = grant(
        s,
        &second_owner,
        repo_ref(&other_repo),
        GrantState::Conflict,
        now,
        hour,
    )
    .await;
    let ended_at = now - Duration::hours(2);
    let grant_ended_present = grant(
        s,
        &leftover,
        repo_ref(&repo),
        GrantState::Active,
        now - Duration::hours(6),
        Some(ended_at),
    )
    .await;
    assert!(s
        .transition_grant(
            grant_ended_present,
            GrantState::Active,
            GrantState::Ended,
            ended_at
        )
        .await
        .expect("end the grant"));
    let grant_too_long = grant(
        s,
        &direct_admin,
        repo_ref(&other_repo),
        GrantState::Active,
        now,
        Some(now + Duration::days(60)),
    )
    .await;
    let failed = ListingKey::RepositoryUserPermissions(repo_ref(&other_repo));
    s.record_listing_failure(&failed, now, "HTTP 500 from Bitbucket")
        .await
        .expect("record a failed read");

    let clock = ManualClock::new(now + Duration::minutes(1));
    AuditWorld {
        sim,
        store,
        ws,
        repo,
        other_repo,
        direct_admin,
        leftover,
        drifter,
        second_owner,
        project,
        grant_active,
        grant_failed,
        grant_conflict,
        grant_ended_present,
        grant_too_long,
        now: clock.now(),
        clock,
    }
}

/// Builds a report of the world with its settings.
pub async fn report(world: &AuditWorld) -> Audit {
    audit::build(world.store.as_ref(), &world.clock, &settings(&world.ws))
        .await
        .expect("the audit runs")
}
