//! Shared set-up of the sync tests: a fresh database per test on SQLite and (when configured)
//! PostgreSQL, a simulator with a generous hourly allowance, a client with a fast retry policy,
//! and the comparison of the store with the simulator's world.
//!
//! The database helpers follow the storage suite (tests/store_suite.rs): SQLite always, a new
//! PostgreSQL database per test when `TEST_POSTGRES_URL` is set, dropped afterwards, and a
//! failure rather than a skip when `REQUIRE_POSTGRES=1` and no server answers.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use bitbucket_access::bitbucket::{
    Auth, BitbucketClient, BudgetSettings, ClientSettings, RetryPolicy,
};
use bitbucket_access::domain::{
    effective_access, AccountId, GrantLevel, GrantState, GrantTarget, NewGrant, Principal, RepoRef,
    Source, WorkspaceSlug,
};
use bitbucket_access::store::{ListingKey, Store, SyncRunId};
use bitbucket_sim::{Sim, SimHandle, SimOptions, World, WorldSpec};
use secrecy::SecretString;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use url::Url;

/// The simulated account's hourly allowance and the client's budget: large enough that no test
/// is paced by the budget.
pub const REQUESTS_PER_HOUR: u32 = 100_000;

// ----- Simulator and client -----

/// Starts a tiny simulated world (two workspaces; the service account owns the first one)
/// with a large hourly allowance.
pub async fn start_sim(seed: u64) -> SimHandle {
    start_sim_with(World::generate(&WorldSpec::tiny(seed))).await
}

/// Starts the simulator on a given world with a large hourly allowance.
pub async fn start_sim_with(world: World) -> SimHandle {
    let options = SimOptions {
        rate_limit_per_hour: REQUESTS_PER_HOUR,
        ..SimOptions::default()
    };
    Sim::start(world, options).await.expect("simulator starts")
}

/// Short real delays: transient failures are retried (twice in all) without slowing the tests.
pub fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
        max_total_wait: Duration::from_secs(1),
    }
}

/// A client for the service account, as `connect::bitbucket_client` builds it, with a budget
/// matching the simulator's allowance.
pub fn client(sim: &SimHandle, max_in_flight: usize) -> BitbucketClient {
    let mut settings = ClientSettings::new(
        Url::parse(&sim.bitbucket_url()).expect("simulator url"),
        Auth::ApiToken {
            email: sim.admin_email(),
            token: SecretString::from(sim.admin_token()),
        },
    );
    settings.budget = BudgetSettings {
        requests_per_hour: REQUESTS_PER_HOUR,
        reserve: 0,
        max_in_flight,
    };
    BitbucketClient::builder(settings)
        .retry_policy(quick_retries())
        .build()
        .expect("client")
}

/// The workspaces the service account owns (those a default sync reads).
pub fn owned_workspaces(sim: &SimHandle) -> Vec<String> {
    let admin = sim.admin_account_id();
    sim.with_world(|w| {
        w.workspaces
            .values()
            .filter(|ws| w.is_owner(ws, &admin))
            .map(|ws| ws.slug.clone())
            .collect()
    })
}

/// The slug as the domain type.
pub fn slug(ws: &str) -> WorkspaceSlug {
    WorkspaceSlug::parse(ws.to_string()).expect("workspace slug")
}

// ----- What the store holds, as plain comparable text -----

/// One workspace's facts by listing (the [`ListingKey`] string form) as sorted lines of text,
/// so that a mismatch shows as a readable difference. Empty listings are left out on both
/// sides, so "never read" and "read empty" compare equal.
pub type Listings = BTreeMap<String, BTreeSet<String>>;

fn privacy(private: bool) -> &'static str {
    if private {
        "private"
    } else {
        "public"
    }
}

fn put(out: &mut Listings, key: String, line: String) {
    out.entry(key).or_default().insert(line);
}

/// What the store holds for a workspace.
pub async fn store_listings(store: &dyn Store, ws: &str) -> Listings {
    let slug_ = slug(ws);
    let mut out = Listings::new();
    for w in store.workspaces().await.expect("workspaces") {
        if w.slug == slug_ {
            put(
                &mut out,
                format!("workspace:{ws}"),
                format!("{} {}", w.name, w.uuid.unwrap_or_default()),
            );
        }
    }
    for m in store.workspace_members(&slug_).await.expect("members") {
        put(
            &mut out,
            format!("workspace:{ws}:members"),
            format!("{} {}", m.account_id, m.role),
        );
    }
    for p in store.projects(&slug_).await.expect("projects") {
        put(
            &mut out,
            format!("workspace:{ws}:projects"),
            format!("{} {} {}", p.key, p.name, privacy(p.is_private)),
        );
    }
    for r in store.repositories(&slug_).await.expect("repositories") {
        let project = r.project.map(|p| p.to_string()).unwrap_or_default();
        put(
            &mut out,
            format!("workspace:{ws}:repositories"),
            format!("{} {} {}", r.slug, project, privacy(r.is_private)),
        );
    }
    for g in store.groups(&slug_).await.expect("groups") {
        put(
            &mut out,
            format!("workspace:{ws}:groups"),
            format!("{} {}", g.slug, g.name),
        );
    }
    for g in store.group_members(&slug_).await.expect("group members") {
        for m in g.members {
            put(
                &mut out,
                format!("group:{ws}/{}:members", g.slug),
                m.to_string(),
            );
        }
    }
    for p in store
        .project_permissions(&slug_)
        .await
        .expect("project permissions")
    {
        let (part, who) = principal(&p.principal);
        put(
            &mut out,
            format!("project:{ws}/{}:{part}", p.project),
            format!("{who} {}", p.level),
        );
    }
    for p in store
        .repository_permissions(&slug_)
        .await
        .expect("repository permissions")
    {
        let (part, who) = principal(&p.principal);
        put(
            &mut out,
            format!("repo:{ws}/{}:{part}", p.repository),
            format!("{who} {}", p.level),
        );
    }
    out
}

fn principal(p: &Principal) -> (&'static str, String) {
    match p {
        Principal::User { account_id } => ("users", account_id.to_string()),
        Principal::Group { slug } => ("groups", slug.to_string()),
    }
}

/// What the simulator's world holds for a workspace, in the same form.
pub fn world_listings(sim: &SimHandle, ws: &str) -> Listings {
    sim.with_world(|w| {
        let w = &w.workspaces[ws];
        let mut out = Listings::new();
        put(
            &mut out,
            format!("workspace:{ws}"),
            format!("{} {}", w.name, w.uuid),
        );
        for (id, m) in &w.members {
            put(
                &mut out,
                format!("workspace:{ws}:members"),
                format!("{id} {}", m.role.as_str()),
            );
        }
        for p in w.projects.values() {
            put(
                &mut out,
                format!("workspace:{ws}:projects"),
                format!("{} {} {}", p.key, p.name, privacy(p.is_private)),
            );
            for (u, l) in &p.user_permissions {
                put(
                    &mut out,
                    format!("project:{ws}/{}:users", p.key),
                    format!("{u} {}", l.as_str()),
                );
            }
            for (g, l) in &p.group_permissions {
                put(
                    &mut out,
                    format!("project:{ws}/{}:groups", p.key),
                    format!("{g} {}", l.as_str()),
                );
            }
        }
        for r in w.repositories.values() {
            put(
                &mut out,
                format!("workspace:{ws}:repositories"),
                format!("{} {} {}", r.slug, r.project_key, privacy(r.is_private)),
            );
            for (u, l) in &r.user_permissions {
                put(
                    &mut out,
                    format!("repo:{ws}/{}:users", r.slug),
                    format!("{u} {}", l.as_str()),
                );
            }
            for (g, l) in &r.group_permissions {
                put(
                    &mut out,
                    format!("repo:{ws}/{}:groups", r.slug),
                    format!("{g} {}", l.as_str()),
                );
            }
        }
        for g in w.groups.values() {
            put(
                &mut out,
                format!("workspace:{ws}:groups"),
                format!("{} {}", g.slug, g.name),
            );
            for m in &g.members {
                put(
                    &mut out,
                    format!("group:{ws}/{}:members", g.slug),
                    m.clone(),
                );
            }
        }
        out
    })
}

/// The differences between two sets of listings, one line each.
pub fn differences(ours: &Listings, theirs: &Listings) -> Vec<String> {
    let empty = BTreeSet::new();
    let keys: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (a, b) = (
            ours.get(key).unwrap_or(&empty),
            theirs.get(key).unwrap_or(&empty),
        );
        for extra in a.difference(b) {
            out.push(format!("{key}: stored but not in the world: {extra}"));
        }
        for missing in b.difference(a) {
            out.push(format!("{key}: in the world but not stored: {missing}"));
        }
    }
    out
}

/// Fails, naming every difference, unless the store holds exactly the world's facts: every
/// member with its role, project, repository (slug, project, privacy), group, group member, and
/// explicit user and group permission on projects and repositories.
pub async fn assert_store_matches_world(store: &dyn Store, sim: &SimHandle, ws: &str) {
    let problems = differences(&store_listings(store, ws).await, &world_listings(sim, ws));
    assert!(
        problems.is_empty(),
        "the store of {ws} differs from the simulator's world:\n{}",
        problems.join("\n")
    );
}

/// Effective access as `repo account level` lines, from the stored facts through the domain
/// rules, leaving out what only a public repository gives (Bitbucket does not list it).
pub async fn stored_effective_levels(store: &dyn Store, ws: &str) -> BTreeSet<String> {
    let facts = store.workspace_facts(&slug(ws)).await.expect("facts");
    effective_access(&facts)
        .into_iter()
        .filter_map(|e| {
            let level = e
                .sources
                .iter()
                .filter(|s| s.source != Source::PublicRepository)
                .map(|s| s.level)
                .max()?;
            Some(format!("{} {} {level}", e.repository, e.account_id))
        })
        .collect()
}

/// The simulator's own effective permissions as `repo account level` lines.
pub fn sim_effective_levels(sim: &SimHandle, ws: &str) -> BTreeSet<String> {
    sim.effective_permissions(ws)
        .into_iter()
        .map(|p| format!("{} {} {}", p.repo_slug, p.account_id, p.level.as_str()))
        .collect()
}

/// Every source of every account on every repository, derived independently from the world's
/// data (a second implementation of product.md's rules), as `repo account source level` lines.
pub fn world_sources(sim: &SimHandle, ws: &str) -> BTreeSet<String> {
    sim.with_world(|w| {
        let w = &w.workspaces[ws];
        let mut out = BTreeSet::new();
        let members_of = |g: &str| -> Vec<String> {
            w.groups
                .get(g)
                .map(|g| g.members.iter().cloned().collect())
                .unwrap_or_default()
        };
        for r in w.repositories.values() {
            let mut add = |who: &str, source: String, level: &str| {
                out.insert(format!("{} {who} {source} {level}", r.slug));
            };
            for (u, l) in &r.user_permissions {
                add(u, "direct".into(), l.as_str());
            }
            for (g, l) in &r.group_permissions {
                for m in members_of(g) {
                    add(&m, format!("group {g}"), l.as_str());
                }
            }
            if let Some(p) = w.projects.get(&r.project_key) {
                for (u, l) in &p.user_permissions {
                    add(u, format!("project {}", p.key), l.repo_level().as_str());
                }
                for (g, l) in &p.group_permissions {
                    for m in members_of(g) {
                        add(
                            &m,
                            format!("project {} via group {g}", p.key),
                            l.repo_level().as_str(),
                        );
                    }
                }
            }
            for (u, m) in &w.members {
                if m.role == bitbucket_sim::Role::Owner {
                    add(u, "workspace owner".into(), "admin");
                }
                if !r.is_private {
                    add(u, "public repository".into(), "read");
                }
            }
        }
        out
    })
}

/// Every source the store's facts give, through the domain rules, in the same form.
pub async fn stored_sources(store: &dyn Store, ws: &str) -> BTreeSet<String> {
    let facts = store.workspace_facts(&slug(ws)).await.expect("facts");
    let mut out = BTreeSet::new();
    for e in effective_access(&facts) {
        for s in &e.sources {
            out.insert(format!(
                "{} {} {} {}",
                e.repository,
                e.account_id,
                s.source.describe(),
                s.level
            ));
        }
    }
    out
}

/// When each listing of a workspace was last read, by its string form (`None`: never).
pub async fn read_times(
    store: &dyn Store,
    ws: &str,
) -> BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>> {
    store
        .listings_by_age(&slug(ws))
        .await
        .expect("listings by age")
        .into_iter()
        .map(|s| (s.key.to_string(), s.read_at))
        .collect()
}

/// Whether a listing is one of the explicit-permission listings.
pub fn is_permission_listing(key: &ListingKey) -> bool {
    matches!(
        key,
        ListingKey::ProjectUserPermissions(_)
            | ListingKey::ProjectGroupPermissions(_)
            | ListingKey::RepositoryUserPermissions(_)
            | ListingKey::RepositoryGroupPermissions(_)
    )
}

// ----- Grants -----

/// Records an active grant of write access to `repository` for `account_id`, for an hour.
pub async fn grant_write_for_an_hour(store: &dyn Store, repository: &RepoRef, account_id: String) {
    let now = chrono::Utc::now();
    store
        .insert_grant(&NewGrant {
            principal: Principal::User {
                account_id: AccountId::parse(account_id).expect("id"),
            },
            target: GrantTarget::Repository {
                repository: repository.clone(),
            },
            level: GrantLevel::Write,
            baseline: None,
            planned: Some(GrantLevel::Write),
            requested_by: "test@example.com".into(),
            reason: None,
            ticket: None,
            created_at: now,
            starts_at: now,
            expires_at: Some(now + chrono::Duration::hours(1)),
            state: GrantState::Active,
        })
        .await
        .expect("grant recorded");
}

// ----- Runs -----

/// Waits until the unfinished run has completed at least `count` listings; returns its id.
pub async fn completed_at_least(store: &dyn Store, count: usize) -> SyncRunId {
    loop {
        if let Some(run) = store.unfinished_sync_run().await.expect("runs") {
            let done = store.completed_listings(run.id).await.expect("completed");
            if done.len() >= count {
                return run.id;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

// ----- The binary -----

/// What a run of the binary printed, and its exit code.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the binary with `--config CONFIG args...` in `dir`, the simulator's token in
/// `$BB_TOKEN` and its Jira key in `$JIRA_KEY` (for configs that name them).
pub async fn run_cli(sim: &SimHandle, dir: &Path, config: &Path, args: &[&str]) -> Run {
    let mut cmd = assert_cmd::Command::cargo_bin("bitbucket-access").expect("binary built");
    cmd.current_dir(dir)
        .env_remove("BITBUCKET_ACCESS_CONFIG")
        .env_remove("RUST_LOG")
        .env("BB_TOKEN", sim.admin_token())
        .env("JIRA_KEY", sim.jira_credentials().1)
        .arg("--config")
        .arg(config)
        .args(args);
    // The simulator runs on the test's runtime, so the blocking child process waits on
    // another thread.
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .expect("join");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

// ----- Identity matching -----

/// A store at `url` holding a complete sync of the simulator's owned workspaces.
pub async fn synced(url: &str, sim: &SimHandle) -> std::sync::Arc<dyn Store> {
    let store = bitbucket_access::store::open(url)
        .await
        .expect("store opens");
    let options = bitbucket_access::sync::SyncOptions {
        workspaces: owned_workspaces(sim),
        cross_check_sample: 0,
        ..bitbucket_access::sync::SyncOptions::default()
    };
    bitbucket_access::sync::run(store.as_ref(), &client(sim, 4), &options)
        .await
        .expect("sync runs");
    store
}

/// The world's users that are members of a synced workspace.
pub fn member_users(sim: &SimHandle) -> Vec<bitbucket_sim::User> {
    let owned = owned_workspaces(sim);
    sim.with_world(|w| {
        w.users
            .values()
            .filter(|u| {
                owned
                    .iter()
                    .any(|ws| w.workspaces[ws].members.contains_key(&u.account_id))
            })
            .cloned()
            .collect()
    })
}
