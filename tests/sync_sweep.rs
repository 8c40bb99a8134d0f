//! The group-privileges sweep (issue 10), on SQLite and (when `TEST_POSTGRES_URL` is set)
//! PostgreSQL: one `/1.0/group-privileges` request stores the same facts as a
//! `permissions-config/groups` listing per repository; a refused sweep (410, 403, 404) or one of
//! an unexpected shape falls back to those listings and says so; a failed sweep deletes
//! nothing; an empty sweep does not remove stored group permissions unconfirmed; and when the
//! 1.0 groups API is unavailable the run says what to do.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::bitbucket::BitbucketClient;
use bitbucket_access::clock::{Clock, ManualClock};
use bitbucket_access::store::{open, Store, SyncOutcome};
use bitbucket_access::sync::{
    self, GroupPermissionsSource, SyncOptions, SyncReport, SWEEP_REFUSAL_KEPT,
};
use bitbucket_sim::{Level, SimHandle, World, WorldSpec};
use std::sync::Arc;
use std::time::Duration;
use sync_support::*;

on_both_backends!(
    the_sweep_stores_what_the_per_repository_listings_store,
    a_refused_sweep_falls_back_and_the_run_completes,
    a_failed_sweep_deletes_nothing,
    a_refused_sweep_is_asked_again_only_once_its_refusal_is_old,
    a_resumed_run_counts_the_sweep_once_in_its_minimum,
    an_empty_sweep_is_confirmed_per_repository,
    without_the_1_0_groups_api_the_run_says_what_to_do,
);

const SWEEP: &str = "/1.0/group-privileges/{workspace}";
const REPO_GROUPS: &str = "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/groups";

fn options(ws: &str, sweep: bool) -> SyncOptions {
    SyncOptions {
        workspaces: vec![ws.to_string()],
        group_privileges_sweep: sweep,
        ..SyncOptions::default()
    }
}

/// The sweep's options on a clock the test moves, past a remembered refusal when it must be
/// asked again.
fn options_at(ws: &str, clock: &ManualClock) -> SyncOptions {
    SyncOptions {
        clock: Arc::new(clock.clone()),
        ..options(ws, true)
    }
}

/// Moves the clock past the time a refusal of the sweep is remembered.
fn forget_refusals(clock: &ManualClock) {
    clock.advance(SWEEP_REFUSAL_KEPT + chrono::Duration::minutes(1));
}

async fn sync_ok(store: &dyn Store, client: &BitbucketClient, options: &SyncOptions) -> SyncReport {
    sync::run(store, client, options).await.expect("sync runs")
}

async fn store_at(url: &str) -> Arc<dyn Store> {
    open(url).await.expect("store opens")
}

/// A world whose owned workspace has about a hundred repositories.
async fn hundred_repositories(seed: u64) -> (SimHandle, String, u64) {
    let spec = WorldSpec {
        repositories: 200,
        users: 60,
        ..WorldSpec::tiny(seed)
    };
    let sim = start_sim_with(World::generate(&spec)).await;
    let ws = owned_workspaces(&sim).remove(0);
    let repos = sim.with_world(|w| w.workspaces[&ws].repositories.len()) as u64;
    (sim, ws, repos)
}

/// The group-permission listings of the workspace's repositories that were ever read.
async fn repo_group_listings_read(store: &dyn Store, ws: &str) -> usize {
    read_times(store, ws)
        .await
        .iter()
        .filter(|(k, t)| k.starts_with("repo:") && k.ends_with(":groups") && t.is_some())
        .count()
}

// ----- 1. The sweep's facts equal the per-repository listings' -----

async fn the_sweep_stores_what_the_per_repository_listings_store(url: String) {
    let (sim, ws, repos) = hundred_repositories(7201).await;
    assert!(repos >= 80, "{repos} repositories");
    let client = client(&sim, 4);

    // Per repository, into a fresh SQLite store: the reference.
    let reference_db = support_db::sqlite_db();
    let reference = store_at(&reference_db.url).await;
    sim.reset_counters();
    let per_repo = sync_ok(reference.as_ref(), &client, &options(&ws, false)).await;
    assert_eq!(per_repo.outcome, SyncOutcome::Complete, "{per_repo:#?}");
    assert_eq!(sim.request_count("GET", REPO_GROUPS), repos);
    assert_eq!(sim.request_count("GET", SWEEP), 0);
    assert_eq!(
        per_repo.workspaces[0].group_permissions_source,
        GroupPermissionsSource::PerRepository
    );

    // With the sweep, into the store under test.
    let store = store_at(&url).await;
    sim.reset_counters();
    let swept = sync_ok(store.as_ref(), &client, &options(&ws, true)).await;
    assert_eq!(swept.outcome, SyncOutcome::Complete, "{swept:#?}");
    assert_eq!(sim.request_count("GET", SWEEP), 1);
    assert_eq!(
        sim.request_count("GET", REPO_GROUPS),
        0,
        "no per-repository group listing"
    );
    let summary = &swept.workspaces[0];
    assert_eq!(
        summary.group_permissions_source,
        GroupPermissionsSource::Sweep
    );
    assert!(summary.group_permissions_note.is_none(), "{summary:?}");
    let json = serde_json::to_value(&swept).expect("report serialises");
    assert_eq!(json["workspaces"][0]["group_permissions_source"], "sweep");

    // The same facts, and every repository's group listing stored as read.
    let differences = differences(
        &store_listings(store.as_ref(), &ws).await,
        &store_listings(reference.as_ref(), &ws).await,
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
    assert_eq!(
        repo_group_listings_read(store.as_ref(), &ws).await as u64,
        repos
    );
    assert_eq!(swept.never_read, 0);

    // The requests: one sweep instead of one listing per repository, and the minimum says so.
    assert_eq!(swept.requests_used, per_repo.requests_used - repos + 1);
    assert_eq!(
        swept.minimum_requests,
        per_repo.minimum_requests - repos + 1
    );
    eprintln!(
        "figures ({repos} repositories): full read per repository {} requests (minimum {}), with the sweep {} (minimum {})",
        per_repo.requests_used, per_repo.minimum_requests, swept.requests_used, swept.minimum_requests
    );

    // Out-of-band changes reach the store through the next sweep: a grant removed, one added.
    let (gone_repo, gone_group, new_repo, new_group) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let (repo, group) = wsv
            .repositories
            .values()
            .find_map(|r| {
                r.group_permissions
                    .keys()
                    .next()
                    .map(|g| (r.slug.clone(), g.clone()))
            })
            .expect("a repository with a group permission");
        let group_slugs: Vec<String> = wsv.groups.keys().cloned().collect();
        let (new_repo, new_group) = wsv
            .repositories
            .values()
            .find_map(|r| {
                group_slugs
                    .iter()
                    .find(|g| !r.group_permissions.contains_key(*g))
                    .map(|g| (r.slug.clone(), g.clone()))
            })
            .expect("a repository without some group");
        (repo, group, new_repo, new_group)
    });
    sim.with_world(|w| {
        w.set_repo_group_permission(&ws, &gone_repo, &gone_group, None)
            .expect("removed");
        w.set_repo_group_permission(&ws, &new_repo, &new_group, Some(Level::Admin))
            .expect("added");
    });
    let next = sync_ok(store.as_ref(), &client, &options(&ws, true)).await;
    assert_eq!(next.outcome, SyncOutcome::Complete);
    assert!(next.drift >= 2, "{next:#?}");
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

// ----- 2. A refused sweep falls back -----

async fn a_refused_sweep_falls_back_and_the_run_completes(url: String) {
    let sim = start_sim(7202).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let repos = sim.with_world(|w| w.workspaces[&ws].repositories.len()) as u64;
    let clock = ManualClock::starting_now();

    for (status, words) in [
        (410u16, "retired"),
        (403, "refused"),
        (404, "does not offer"),
        (200, "unexpected shape"),
    ] {
        sim.faults().refuse_group_privileges(status);
        sim.reset_counters();
        // Each refusal is asked anew: the one before is old.
        forget_refusals(&clock);
        let report = sync_ok(store.as_ref(), &client, &options_at(&ws, &clock)).await;
        assert_eq!(
            report.outcome,
            SyncOutcome::Complete,
            "{status}: {report:#?}"
        );
        assert!(
            report.failures.is_empty(),
            "{status}: {:?}",
            report.failures
        );
        let summary = &report.workspaces[0];
        assert_eq!(
            summary.group_permissions_source,
            GroupPermissionsSource::PerRepository,
            "{status}"
        );
        let note = summary
            .group_permissions_note
            .as_deref()
            .unwrap_or_default();
        assert!(note.contains(words), "{status}: {note}");
        assert!(note.contains("per repository"), "{status}: {note}");
        let json = serde_json::to_value(&report).expect("report serialises");
        assert_eq!(
            json["workspaces"][0]["group_permissions_source"],
            "per_repository"
        );
        assert_eq!(sim.request_count("GET", SWEEP), 1, "{status}");
        assert_eq!(sim.request_count("GET", REPO_GROUPS), repos, "{status}");
        // The minimum counts the per-repository listings the run had to read.
        assert_eq!(
            report.requests_used,
            report.minimum_requests + 1,
            "{status}"
        );
        assert_store_matches_world(store.as_ref(), &sim, &ws).await;
    }

    // Once Bitbucket answers again, the sweep is back (when the refusal is old enough to ask).
    sim.faults().clear();
    forget_refusals(&clock);
    let report = sync_ok(store.as_ref(), &client, &options_at(&ws, &clock)).await;
    assert_eq!(
        report.workspaces[0].group_permissions_source,
        GroupPermissionsSource::Sweep
    );
}

// ----- 3. A failed sweep deletes nothing -----

async fn a_failed_sweep_deletes_nothing(url: String) {
    let sim = start_sim(7203).await;
    let store = store_at(&url).await;
    let client = client(&sim, 1);
    let ws = owned_workspaces(&sim).remove(0);
    let clock = ManualClock::starting_now();
    let first = sync_ok(store.as_ref(), &client, &options_at(&ws, &clock)).await;
    assert_eq!(first.outcome, SyncOutcome::Complete);

    // Every repository but one loses its group permissions in the world.
    sim.with_world(|w| {
        let repos = &mut w.workspaces.get_mut(&ws).expect("ws").repositories;
        let keep = repos
            .values()
            .find(|r| !r.group_permissions.is_empty())
            .expect("a repository with group permissions")
            .slug
            .clone();
        for r in repos.values_mut().filter(|r| r.slug != keep) {
            r.group_permissions.clear();
        }
    });
    let groups_of_repos = |l: &Listings| -> Listings {
        l.iter()
            .filter(|(k, _)| k.starts_with("repo:") && k.ends_with(":groups"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let before = groups_of_repos(&store_listings(store.as_ref(), &ws).await);
    assert!(
        !before.is_empty(),
        "the world has repository group permissions"
    );
    let read_before = read_times(store.as_ref(), &ws).await;

    // The five workspace listings and one request more: the sweep, or nothing after it.
    let capped = SyncOptions {
        max_requests: Some(6),
        ..options_at(&ws, &clock)
    };
    for status in [500u16, 200] {
        sim.faults().refuse_group_privileges(status);
        let report = sync_ok(store.as_ref(), &client, &capped).await;
        assert_eq!(
            report.outcome,
            SyncOutcome::Partial,
            "{status}: {report:#?}"
        );
        assert_eq!(
            report.workspaces[0].group_permissions_source,
            GroupPermissionsSource::PerRepository
        );
        let after = groups_of_repos(&store_listings(store.as_ref(), &ws).await);
        assert_eq!(
            after, before,
            "{status}: a failed sweep deleted group permissions"
        );
        let read_after = read_times(store.as_ref(), &ws).await;
        for (key, at) in &read_after {
            if key.starts_with("repo:") && key.ends_with(":groups") {
                assert_eq!(at, &read_before[key], "{status}: {key} keeps its age");
            }
        }
        // A server error passes; an answer of an unexpected shape is kept as a refusal.
        let refusal = store.sweep_refusal(&slug(&ws)).await.expect("refusal");
        assert_eq!(refusal.is_some(), status == 200, "{status}: {refusal:?}");
    }

    // The same budget with a working sweep replaces every repository's group permissions.
    sim.faults().clear();
    forget_refusals(&clock);
    let report = sync_ok(store.as_ref(), &client, &capped).await;
    assert_eq!(
        report.workspaces[0].group_permissions_source,
        GroupPermissionsSource::Sweep
    );
    let after = groups_of_repos(&store_listings(store.as_ref(), &ws).await);
    assert_eq!(after, groups_of_repos(&world_listings(&sim, &ws)));
    assert_eq!(after.len(), 1, "{after:?}");
}

// ----- 3b. A refusal is remembered -----

async fn a_refused_sweep_is_asked_again_only_once_its_refusal_is_old(url: String) {
    let sim = start_sim(7206).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let repos = sim.with_world(|w| w.workspaces[&ws].repositories.len()) as u64;
    let clock = ManualClock::starting_now();
    sim.faults().refuse_group_privileges(410);

    let first = sync_ok(store.as_ref(), &client, &options_at(&ws, &clock)).await;
    assert_eq!(first.outcome, SyncOutcome::Complete, "{first:#?}");
    let refusal = store
        .sweep_refusal(&slug(&ws))
        .await
        .expect("refusal")
        .expect("the refusal is kept");
    assert_eq!(
        refusal.refused_at.timestamp_micros(),
        clock.now().timestamp_micros(),
        "kept with the time of the refusal"
    );

    // An hour later Bitbucket is not asked: the run reads per repository and says why.
    clock.advance(chrono::Duration::hours(1));
    sim.reset_counters();
    let second = sync_ok(store.as_ref(), &client, &options_at(&ws, &clock)).await;
    assert_eq!(second.outcome, SyncOutcome::Complete, "{second:#?}");
    assert_eq!(
        sim.request_count("GET", SWEEP),
        0,
        "the refusal was asked again"
    );
    assert_eq!(sim.request_count("GET", REPO_GROUPS), repos);
    let summary = &second.workspaces[0];
    assert_eq!(
        summary.group_permissions_source,
        GroupPermissionsSource::PerRepository
    );
    let note = summary
        .group_permissions_note
        .as_deref()
        .unwrap_or_default();
    for words in ["not asked", "60m ago", "24h", "per repository"] {
        assert!(note.contains(words), "{words}: {note}");
    }
    // No request went to a known refusal: the run spent exactly its minimum.
    assert_eq!(second.requests_used, second.minimum_requests);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;

    // A day after the refusal the sweep is asked again; still refused, the refusal is renewed.
    forget_refusals(&clock);
    sim.reset_counters();
    let third = sync_ok(store.as_ref(), &client, &options_at(&ws, &clock)).await;
    assert_eq!(sim.request_count("GET", SWEEP), 1);
    assert_eq!(third.outcome, SyncOutcome::Complete, "{third:#?}");
    let renewed = store
        .sweep_refusal(&slug(&ws))
        .await
        .expect("refusal")
        .expect("still refused");
    assert!(renewed.refused_at > refusal.refused_at, "{renewed:?}");

    // Once it answers (and the refusal is old), the sweep is used and the refusal forgotten.
    sim.faults().clear();
    forget_refusals(&clock);
    sim.reset_counters();
    let fourth = sync_ok(store.as_ref(), &client, &options_at(&ws, &clock)).await;
    assert_eq!(
        fourth.workspaces[0].group_permissions_source,
        GroupPermissionsSource::Sweep
    );
    assert_eq!(sim.request_count("GET", REPO_GROUPS), 0);
    assert!(store
        .sweep_refusal(&slug(&ws))
        .await
        .expect("refusal")
        .is_none());
}

// ----- 3c. A resumed run after the sweep -----

async fn a_resumed_run_counts_the_sweep_once_in_its_minimum(url: String) {
    let sim = start_sim(7207).await;
    let store = store_at(&url).await;
    let client = client(&sim, 1);
    let ws = owned_workspaces(&sim).remove(0);
    let clock = ManualClock::starting_now();
    let opts = options_at(&ws, &clock);
    let (groups, repos, projects) = sim.with_world(|w| {
        let w = &w.workspaces[&ws];
        (w.groups.len(), w.repositories.len(), w.projects.len())
    });
    // A complete read: the five workspace listings, the sweep, a user listing per repository
    // and two listings per project (every listing of this world fits in one page).
    let minimum = (5 + 1 + repos + 2 * projects) as u64;

    // The run is stopped once the sweep has stored every repository's group permissions and
    // three more permission listings are stored.
    sim.faults().set_latency(Duration::from_millis(20));
    let interrupted = tokio::select! {
        report = sync::run(store.as_ref(), &client, &opts) => {
            panic!("the run ended before it was interrupted: {report:?}")
        }
        run = completed_at_least(store.as_ref(), 5 + groups + repos + 3) => run,
    };
    sim.faults().clear();
    let done = store.completed_listings(interrupted).await.expect("done");
    let swept = done
        .iter()
        .filter(|k| k.to_string().ends_with(":groups") && k.to_string().starts_with("repo:"))
        .count();
    assert_eq!(swept, repos, "the sweep stored every repository's groups");
    let done_users = done
        .iter()
        .filter(|k| k.to_string().ends_with(":users"))
        .count();
    assert!(done_users < repos + projects, "{done:?}");

    clock.advance(chrono::Duration::from_std(opts.lease.lease).expect("a lease") * 2);
    sim.reset_counters();
    let resumed = sync_ok(store.as_ref(), &client, &opts).await;
    assert!(resumed.resumed, "{resumed:#?}");
    assert_eq!(resumed.outcome, SyncOutcome::Complete, "{resumed:#?}");
    // Nothing swept is asked again, neither by the sweep nor per repository ...
    assert_eq!(sim.request_count("GET", SWEEP), 0);
    assert_eq!(sim.request_count("GET", REPO_GROUPS), 0);
    assert_eq!(
        resumed.workspaces[0].group_permissions_source,
        GroupPermissionsSource::Sweep
    );
    // ... and the minimum counts the sweep's one request for all of them, as a fresh run does.
    assert_eq!(resumed.minimum_requests, minimum, "{resumed:#?}");
    let next = sync_ok(store.as_ref(), &client, &opts).await;
    assert!(!next.resumed);
    assert_eq!(next.minimum_requests, minimum, "{next:#?}");
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

// ----- 4. An empty sweep against stored group permissions -----

async fn an_empty_sweep_is_confirmed_per_repository(url: String) {
    let sim = start_sim(7205).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let repos = sim.with_world(|w| w.workspaces[&ws].repositories.len()) as u64;
    sync_ok(store.as_ref(), &client, &options(&ws, true)).await;
    sim.with_world(|w| {
        let repos = &mut w.workspaces.get_mut(&ws).expect("ws").repositories;
        for r in repos.values_mut() {
            r.group_permissions.clear();
        }
    });

    // The sweep answers an empty array: the removal is read per repository, and stored.
    sim.reset_counters();
    let report = sync_ok(store.as_ref(), &client, &options(&ws, true)).await;
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:#?}");
    let summary = &report.workspaces[0];
    assert_eq!(
        summary.group_permissions_source,
        GroupPermissionsSource::PerRepository
    );
    let note = summary
        .group_permissions_note
        .as_deref()
        .unwrap_or_default();
    assert!(note.contains("came back empty"), "{note}");
    assert_eq!(sim.request_count("GET", REPO_GROUPS), repos);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;

    // With nothing stored any more, an empty sweep is taken as it is.
    sim.reset_counters();
    let report = sync_ok(store.as_ref(), &client, &options(&ws, true)).await;
    assert_eq!(
        report.workspaces[0].group_permissions_source,
        GroupPermissionsSource::Sweep
    );
    assert_eq!(sim.request_count("GET", REPO_GROUPS), 0);
}

// ----- 5. The 1.0 groups API unavailable -----

async fn without_the_1_0_groups_api_the_run_says_what_to_do(url: String) {
    let sim = start_sim(7204).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    sim.faults().refuse_groups_v1(410);
    let report = sync_ok(store.as_ref(), &client, &options(&ws, true)).await;
    assert_eq!(report.outcome, SyncOutcome::Partial, "{report:#?}");
    assert!(!report.workspaces[0].groups_available);
    let failure = report
        .failures
        .iter()
        .find(|f| f.listing == format!("workspace:{ws}:groups"))
        .expect("the groups listing is reported");
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    for words in [
        "groups unavailable",
        "To fix",
        "doctor",
        "read:workspace:bitbucket",
    ] {
        assert!(failure.error.contains(words), "{words}: {}", failure.error);
    }
    // Everything else was read: members, projects, repositories and every permission.
    let stored = store_listings(store.as_ref(), &ws).await;
    let world = world_listings(&sim, &ws);
    for (key, facts) in &world {
        if key.starts_with("group:") || key.ends_with(":groups") && key.starts_with("workspace:") {
            continue;
        }
        assert_eq!(stored.get(key), Some(facts), "{key}");
    }
    // When the API is back, the next run completes.
    sim.faults().clear();
    let next = sync_ok(store.as_ref(), &client, &options(&ws, true)).await;
    assert_eq!(next.outcome, SyncOutcome::Complete, "{next:#?}");
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}
