//! The sync under the request budget, on SQLite and (when `TEST_POSTGRES_URL` is set)
//! PostgreSQL: a run that fits in what the rolling hour still allows is not paced at all; a run
//! larger than that reads what the hour allows in the planner's order and defers the rest
//! without waiting; `wait` waits for the window to free requests and completes it.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::bitbucket::{Auth, BitbucketClient, Budget, BudgetSettings, ClientSettings};
use bitbucket_access::domain::{RepoRef, RepoSlug};
use bitbucket_access::store::{open, ListingKey, Store, SyncOutcome};
use bitbucket_access::sync::{self, SyncOptions, SyncReport};
use bitbucket_sim::{NewRepository, Role, Sim, SimHandle, SimOptions, World, WorldSpec};
use secrecy::SecretString;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_support::*;
use url::Url;

on_both_backends!(
    a_run_that_fits_in_the_free_allowance_is_not_paced,
    a_run_beyond_the_free_allowance_defers_the_rest_in_the_planners_order,
    wait_completes_the_deferred_listings_once_the_window_frees,
);

/// A world whose owned workspace has about thirty repositories, served with Bitbucket's own
/// hourly allowance of 1,000 requests.
async fn thirty_repositories(seed: u64) -> SimHandle {
    let spec = WorldSpec {
        repositories: 60,
        ..WorldSpec::tiny(seed)
    };
    let options = SimOptions {
        rate_limit_per_hour: 1000,
        ..SimOptions::default()
    };
    let sim = Sim::start(World::generate(&spec), options)
        .await
        .expect("simulator starts");
    let ws = owned_workspaces(&sim).remove(0);
    let repos = sim.with_world(|w| w.workspaces[&ws].repositories.len());
    assert!((25..=35).contains(&repos), "{repos} repositories");
    sim
}

/// A client of the service account using `budget`.
fn client_with(sim: &SimHandle, budget: &Arc<Budget>) -> BitbucketClient {
    let settings = ClientSettings::new(
        Url::parse(&sim.bitbucket_url()).expect("simulator url"),
        Auth::ApiToken {
            email: sim.admin_email(),
            token: SecretString::from(sim.admin_token()),
        },
    );
    BitbucketClient::builder(settings)
        .retry_policy(quick_retries())
        .budget(Arc::clone(budget))
        .build()
        .expect("client")
}

fn budget_of(per_hour: u64, window: Duration) -> Arc<Budget> {
    let settings = BudgetSettings {
        requests_per_hour: u32::try_from(per_hour).expect("small"),
        reserve: 0,
        max_in_flight: 4,
    };
    Arc::new(Budget::with_window(settings, window))
}

/// Options for these tests. The group-privileges sweep is off, so every repository costs its two
/// permission listings and the planner's order shows in the group listings too.
fn options(ws: &str, cross_check: usize, wait: bool) -> SyncOptions {
    SyncOptions {
        workspaces: vec![ws.to_string()],
        cross_check_sample: cross_check,
        wait,
        group_privileges_sweep: false,
        ..SyncOptions::default()
    }
}

async fn sync_ok(store: &dyn Store, client: &BitbucketClient, options: &SyncOptions) -> SyncReport {
    sync::run(store, client, options).await.expect("sync runs")
}

fn permission_listings(sim: &SimHandle, ws: &str) -> u64 {
    sim.with_world(|w| 2 * (w.workspaces[ws].repositories.len() + w.workspaces[ws].projects.len()))
        as u64
}

// ----- 1. Not paced while the hour has room -----

async fn a_run_that_fits_in_the_free_allowance_is_not_paced(url: String) {
    let sim = thirty_repositories(7101).await;
    let store = open(&url).await.expect("store opens");
    let ws = owned_workspaces(&sim).remove(0);
    // The default budget: 1,000 an hour, 100 of them kept in reserve.
    let budget = Arc::new(Budget::new(BudgetSettings::default()));
    let client = client_with(&sim, &budget);

    let report = sync_ok(store.as_ref(), &client, &options(&ws, 3, false)).await;

    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:#?}");
    assert_eq!(report.workspaces[0].listings_deferred, 0);
    // Far more requests than the old pacing's burst of 45 let through at once...
    assert!(
        report.requests_used > 60,
        "{} requests",
        report.requests_used
    );
    // ...and not one of them waited for the budget.
    let stats = budget.stats();
    assert_eq!(stats.admitted, report.requests_used);
    assert_eq!(stats.delayed, 0, "{stats:?}");
    assert_eq!(stats.waited, Duration::ZERO);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

// ----- 2. Beyond it: the planner's order, the rest deferred -----

async fn a_run_beyond_the_free_allowance_defers_the_rest_in_the_planners_order(url: String) {
    let sim = thirty_repositories(7102).await;
    let store = open(&url).await.expect("store opens");
    let ws = owned_workspaces(&sim).remove(0);

    // Everything read once, then a repository appears and another one gets an active grant.
    let first = sync_ok(store.as_ref(), &client(&sim, 4), &options(&ws, 0, false)).await;
    assert_eq!(first.outcome, SyncOutcome::Complete);
    let before = read_times(store.as_ref(), &ws).await;
    let (granted, grantee) = sim.with_world(|w| {
        let space = &w.workspaces[&ws];
        let granted = space
            .repositories
            .keys()
            .next()
            .expect("a repository")
            .clone();
        let grantee = space
            .members
            .iter()
            .find(|(_, m)| m.role == Role::Member)
            .map(|(id, _)| id.clone())
            .expect("a member");
        let project = space.projects.keys().next().expect("a project").clone();
        w.add_repository(
            &ws,
            NewRepository {
                slug: "appeared-later".into(),
                name: "Appeared later".into(),
                project_key: project,
                is_private: true,
            },
        )
        .expect("add a repository");
        (granted, grantee)
    });
    let granted = repo_ref(&ws, &granted);
    grant_write_for_an_hour(store.as_ref(), &granted, grantee).await;

    // The hour allows what the first run spent (it counts, through the store), the five
    // structural listings, and seven permission listings: the new repository's two, the
    // granted repository's two, and the three read longest ago.
    let budget = budget_of(first.requests_used + 5 + 7, Duration::from_secs(3600));
    let client = client_with(&sim, &budget);
    let started = Instant::now();
    let second = sync_ok(store.as_ref(), &client, &options(&ws, 0, false)).await;

    assert_eq!(second.outcome, SyncOutcome::Partial);
    assert_eq!(second.requests_used, 5 + 7, "{second:#?}");
    let total = permission_listings(&sim, &ws);
    assert_eq!(second.workspaces[0].listings_deferred, total - 7);
    // The run did not sit waiting for the window.
    assert_eq!(budget.stats().delayed, 0);
    assert!(started.elapsed() < Duration::from_secs(30));

    let after = read_times(store.as_ref(), &ws).await;
    let read: BTreeSet<String> = after
        .iter()
        .filter(|(k, t)| is_permission(k) && **t != before.get(*k).copied().flatten())
        .map(|(k, _)| k.clone())
        .collect();
    let new_repo = repo_ref(&ws, "appeared-later");
    let first_class: BTreeSet<String> = [
        ListingKey::RepositoryUserPermissions(new_repo.clone()),
        ListingKey::RepositoryGroupPermissions(new_repo),
        ListingKey::RepositoryUserPermissions(granted.clone()),
        ListingKey::RepositoryGroupPermissions(granted.clone()),
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert!(read.is_superset(&first_class), "not read first: {read:?}");
    assert_eq!(read.len(), 7, "{read:?}");
    // The other three are the oldest: none of the deferred ones was read before them.
    let stale_read = read
        .difference(&first_class)
        .filter_map(|k| before.get(k).copied().flatten())
        .max()
        .expect("stale listings read");
    let deferred_oldest = after
        .iter()
        .filter(|(k, _)| is_permission(k) && !read.contains(*k))
        .filter_map(|(k, _)| before.get(k).copied().flatten())
        .min()
        .expect("deferred listings");
    assert!(
        stale_read <= deferred_oldest,
        "{stale_read} read, {deferred_oldest} deferred"
    );
}

fn repo_ref(ws: &str, repo: &str) -> RepoRef {
    RepoRef {
        workspace: slug(ws),
        slug: RepoSlug::parse(repo).expect("repository slug"),
    }
}

fn is_permission(key: &str) -> bool {
    is_permission_listing(&ListingKey::parse(key).expect("listing key"))
}

// ----- 3. --wait -----

async fn wait_completes_the_deferred_listings_once_the_window_frees(url: String) {
    let sim = thirty_repositories(7103).await;
    let store = open(&url).await.expect("store opens");
    let ws = owned_workspaces(&sim).remove(0);
    let needed = 5 + permission_listings(&sim, &ws);
    // A two-second window allowing a little over half of the complete read at once.
    let window = Duration::from_secs(2);
    let budget = budget_of(needed / 2 + 5, window);
    let client = client_with(&sim, &budget);

    let started = Instant::now();
    let report = sync_ok(store.as_ref(), &client, &options(&ws, 0, true)).await;

    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:#?}");
    assert_eq!(report.workspaces[0].listings_deferred, 0);
    assert_eq!(report.requests_used, needed);
    assert!(
        started.elapsed() >= window,
        "did not wait: {:?}",
        started.elapsed()
    );
    // The run waited between rounds, not inside the budget.
    assert_eq!(budget.stats().delayed, 0);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}
