//! The sync against the simulator, on SQLite and (when `TEST_POSTGRES_URL` is set) PostgreSQL:
//! a full read matches the world exactly, out-of-band changes and nothing else become drift, a
//! fault mid-listing deletes nothing, an interrupted run resumes, a budget smaller than a full
//! read refreshes in the documented order, and the requests used stay next to the minimum.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::clock::ManualClock;
use bitbucket_access::store::{open, AuditFilter, AuditKind, ListingKey, Store, SyncOutcome};
use bitbucket_access::sync::{self, SyncOptions, SyncReport};
use bitbucket_sim::{FaultControl, Level, NewRepository, Role, SimHandle, World, WorldSpec};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use sync_support::*;

on_both_backends!(
    full_sync_matches_the_world,
    drift_is_recorded_for_out_of_band_changes_only,
    a_short_page_deletes_nothing,
    a_truncated_page_deletes_nothing,
    a_server_error_deletes_nothing,
    an_interrupted_sync_resumes_where_it_stopped,
    a_small_budget_refreshes_in_the_stated_order,
    requests_used_are_the_minimum_plus_discovery_and_cross_check,
);

/// Options reading the given workspaces with a cross-check of `sample` repositories.
fn options(workspaces: &[String], sample: usize) -> SyncOptions {
    SyncOptions {
        workspaces: workspaces.to_vec(),
        max_requests: None,
        cross_check_sample: sample,
        ..SyncOptions::default()
    }
}

async fn sync_ok(
    store: &dyn Store,
    client: &bitbucket_access::bitbucket::BitbucketClient,
    options: &SyncOptions,
) -> SyncReport {
    sync::run(store, client, options).await.expect("sync runs")
}

async fn store_at(url: &str) -> Arc<dyn Store> {
    open(url).await.expect("store opens")
}

// ----- 1. A full sync matches the world -----

async fn full_sync_matches_the_world(url: String) {
    let sim = start_sim(5101).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let owned = owned_workspaces(&sim);
    assert_eq!(owned.len(), 1, "the tiny world has one owned workspace");

    // The default sync discovers the workspaces the account administers, and cross-checks
    // every repository of the tiny world against Bitbucket's effective permissions.
    let report = sync_ok(store.as_ref(), &client, &options(&[], 100)).await;
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:#?}");
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(!report.resumed);
    let ws = &owned[0];
    let repos = sim.with_world(|w| w.workspaces[ws].repositories.len()) as u64;
    assert_eq!(
        report.cross_checked, repos,
        "every repository cross-checked"
    );
    assert!(
        report.findings.is_empty(),
        "the cross-check disagrees: {:#?}",
        report.findings
    );
    assert_eq!(
        report
            .workspaces
            .iter()
            .map(|w| &w.workspace)
            .collect::<Vec<_>>(),
        vec![ws],
        "only the owned workspace is synced"
    );

    assert_store_matches_world(store.as_ref(), &sim, ws).await;
    // Effective levels agree with the simulator's own computation (which, like Bitbucket's
    // listing, leaves out the read a public repository gives everyone).
    let ours = stored_effective_levels(store.as_ref(), ws).await;
    let theirs = sim_effective_levels(&sim, ws);
    assert_eq!(
        ours.difference(&theirs).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "levels the store gives that the simulator does not"
    );
    assert_eq!(
        theirs.difference(&ours).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "levels the simulator gives that the store does not"
    );
    assert!(!ours.is_empty());
    // Every source agrees with an independent derivation from the world's data.
    let ours = stored_sources(store.as_ref(), ws).await;
    let theirs = world_sources(&sim, ws);
    assert_eq!(
        ours.symmetric_difference(&theirs).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "sources differ"
    );
    for kind in [
        "direct",
        "group ",
        "project ",
        "workspace owner",
        "public repository",
    ] {
        assert!(
            ours.iter().any(|l| l.contains(kind)),
            "the world exercises no {kind:?} source"
        );
    }
}

// ----- 2. Drift: out-of-band changes, and nothing else -----

/// The out-of-band changes of the drift scenario, and the audit subjects they must produce.
struct Changes {
    expected: BTreeMap<String, (Option<serde_json::Value>, Option<serde_json::Value>)>,
}

/// Makes six out-of-band changes in the world, as people in Bitbucket's UI would.
fn change_the_world(sim: &SimHandle, ws: &str) -> Changes {
    sim.with_world(|w| {
        let snapshot = w.workspaces[ws].clone();
        let plain_members: Vec<String> = snapshot
            .members
            .iter()
            .filter(|(_, m)| m.role == Role::Member)
            .map(|(id, _)| id.clone())
            .collect();
        let mut expected = BTreeMap::new();
        let level = |l: &str| Some(serde_json::json!({ "level": l }));

        // A repository user permission removed.
        let (removed_from, removed_user, removed_level) = snapshot
            .repositories
            .values()
            .find_map(|r| {
                let (u, l) = r.user_permissions.iter().next()?;
                Some((r.slug.clone(), u.clone(), *l))
            })
            .expect("a repository with a user permission");
        w.set_repo_user_permission(ws, &removed_from, &removed_user, None)
            .expect("remove a user permission");
        expected.insert(
            format!("repository_user_permission {ws}/{removed_from} {removed_user}"),
            (level(removed_level.as_str()), None),
        );

        // A repository group permission changed (on another repository).
        let (changed_on, group, old) = snapshot
            .repositories
            .values()
            .filter(|r| r.slug != removed_from)
            .find_map(|r| {
                let (g, l) = r.group_permissions.iter().next()?;
                Some((r.slug.clone(), g.clone(), *l))
            })
            .expect("another repository with a group permission");
        let new = if old == Level::Admin {
            Level::Read
        } else {
            Level::Admin
        };
        w.set_repo_group_permission(ws, &changed_on, &group, Some(new))
            .expect("change a group permission");
        expected.insert(
            format!("repository_group_permission {ws}/{changed_on} {group}"),
            (level(old.as_str()), level(new.as_str())),
        );

        // A user permission set for a plain member on a third repository.
        let (granted_on, grantee) = snapshot
            .repositories
            .values()
            .filter(|r| r.slug != removed_from && r.slug != changed_on)
            .find_map(|r| {
                let who = plain_members
                    .iter()
                    .find(|m| !r.user_permissions.contains_key(*m))?;
                Some((r.slug.clone(), who.clone()))
            })
            .expect("a repository and a member without a permission on it");
        w.set_repo_user_permission(ws, &granted_on, &grantee, Some(Level::Write))
            .expect("grant");
        expected.insert(
            format!("repository_user_permission {ws}/{granted_on} {grantee}"),
            (None, level("write")),
        );

        // A workspace member added to a group.
        let (joined, joiner) = snapshot
            .groups
            .values()
            .find_map(|g| {
                let who = plain_members.iter().find(|m| !g.members.contains(*m))?;
                Some((g.slug.clone(), who.clone()))
            })
            .expect("a group and a member outside it");
        w.add_group_member(ws, &joined, &joiner).expect("join");
        expected.insert(
            format!("group_member {ws}/{joined} {joiner}"),
            (None, Some(serde_json::json!({}))),
        );

        // A fourth repository removed.
        let gone = snapshot
            .repositories
            .keys()
            .find(|s| ![&removed_from, &changed_on, &granted_on].contains(s))
            .expect("a fourth repository")
            .clone();
        w.remove_repository(ws, &gone).expect("remove a repository");
        expected.insert(
            format!("repository {ws} {gone}"),
            (Some(serde_json::json!(null)), None),
        );

        // A repository added.
        let project = snapshot.projects.keys().next().expect("a project").clone();
        w.add_repository(
            ws,
            NewRepository {
                slug: "added-out-of-band".into(),
                name: "Added out of band".into(),
                project_key: project,
                is_private: true,
            },
        )
        .expect("add a repository");
        expected.insert(
            format!("repository {ws} added-out-of-band"),
            (None, Some(serde_json::json!(null))),
        );
        // ...with a permission given out of band: the first read of a repository that appeared
        // after the workspace's first sync is drift, not a baseline.
        w.set_repo_user_permission(ws, "added-out-of-band", &grantee, Some(Level::Read))
            .expect("grant on the new repository");
        expected.insert(
            format!("repository_user_permission {ws}/added-out-of-band {grantee}"),
            (None, level("read")),
        );
        Changes { expected }
    })
}

async fn drift_is_recorded_for_out_of_band_changes_only(url: String) {
    let sim = start_sim(5102).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let opts = options(std::slice::from_ref(&ws), 0);

    let first = sync_ok(store.as_ref(), &client, &opts).await;
    assert_eq!(first.outcome, SyncOutcome::Complete);
    assert_eq!(first.drift, 0, "a first read is a baseline");
    assert!(first.rows_written > 0);
    assert!(drift_entries(store.as_ref()).await.is_empty());

    let changes = change_the_world(&sim, &ws);
    let second = sync_ok(store.as_ref(), &client, &opts).await;
    assert_eq!(second.outcome, SyncOutcome::Complete, "{second:#?}");
    let drift = drift_entries(store.as_ref()).await;
    let subjects: BTreeSet<&String> = drift.keys().collect();
    let expected: BTreeSet<&String> = changes.expected.keys().collect();
    assert_eq!(
        subjects, expected,
        "drift recorded for exactly the changes made"
    );
    assert_eq!(second.drift, changes.expected.len() as u64);
    for (subject, (before, after)) in &changes.expected {
        let (got_before, got_after) = &drift[subject];
        // `null` in the expectation means "some state", whatever its attributes.
        let matches = |want: &Option<serde_json::Value>, got: &Option<serde_json::Value>| match want
        {
            Some(serde_json::Value::Null) => got.is_some(),
            other => other == got,
        };
        assert!(
            matches(before, got_before) && matches(after, got_after),
            "{subject}: expected before {before:?} after {after:?}, recorded {got_before:?} -> {got_after:?}"
        );
    }
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;

    let third = sync_ok(store.as_ref(), &client, &opts).await;
    assert_eq!(third.outcome, SyncOutcome::Complete);
    assert_eq!(
        third.rows_written, 0,
        "an unchanged sync writes no rows: {third:#?}"
    );
    assert_eq!(third.drift, 0);
    assert_eq!(
        (third.inserted, third.updated, third.deleted),
        (0, 0, 0),
        "nothing changed"
    );
    assert_eq!(drift_entries(store.as_ref()).await.len(), drift.len());
}

/// The drift entries of the audit log by subject, with their before and after states.
async fn drift_entries(
    store: &dyn Store,
) -> BTreeMap<String, (Option<serde_json::Value>, Option<serde_json::Value>)> {
    let entries = store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Drift],
            ..Default::default()
        })
        .await
        .expect("audit log");
    let mut out = BTreeMap::new();
    for e in entries {
        assert_eq!(
            e.entry.actor, "bitbucket",
            "drift is attributed to Bitbucket"
        );
        let previous = out.insert(e.entry.subject.clone(), (e.entry.before, e.entry.after));
        assert!(
            previous.is_none(),
            "drift recorded twice for {}",
            e.entry.subject
        );
    }
    out
}

// ----- 3. A fault mid-listing deletes nothing -----

/// Changes every listing of the workspace, so that any listing read shows a difference: the
/// workspace's name, a new member, a project's privacy, a removed repository, a new group
/// member, and every explicit permission removed.
fn change_every_listing(sim: &SimHandle, ws: &str) -> String {
    sim.with_world(|w| {
        let outsider = w
            .users
            .keys()
            .find(|u| !w.workspaces[ws].members.contains_key(*u))
            .expect("a user outside the workspace")
            .clone();
        w.add_workspace_member(ws, &outsider, Role::Member)
            .expect("new member");
        let wsv = w.workspaces.get_mut(ws).expect("workspace");
        wsv.name = format!("{} (renamed)", wsv.name);
        if let Some(p) = wsv.projects.values_mut().next() {
            p.is_private = !p.is_private;
        }
        for p in wsv.projects.values_mut() {
            p.user_permissions.clear();
            p.group_permissions.clear();
        }
        for r in wsv.repositories.values_mut() {
            r.user_permissions.clear();
            r.group_permissions.clear();
        }
        let gone = wsv
            .repositories
            .keys()
            .next()
            .expect("a repository")
            .clone();
        w.remove_repository(ws, &gone).expect("remove");
        let group = w.workspaces[ws]
            .groups
            .keys()
            .next()
            .expect("a group")
            .clone();
        let member = w.workspaces[ws]
            .members
            .keys()
            .find(|m| !w.workspaces[ws].groups[&group].members.contains(*m))
            .expect("a member outside the group")
            .clone();
        w.add_group_member(ws, &group, &member).expect("join");
        gone
    })
}

/// When the fault is switched on.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// Before the run: it hits one of the workspace listings.
    Start,
    /// Once the run has stored its repositories listing: it hits a permission listing.
    AfterStructure,
}

async fn a_fault_mid_listing_deletes_nothing_with(
    url: &str,
    seed: u64,
    moment: Moment,
    inject: impl Fn(&FaultControl),
) {
    let sim = start_sim(seed).await;
    let store = store_at(url).await;
    // One request at a time, so a fault lasting two requests exhausts one listing's retries.
    let client = client(&sim, 1);
    let ws = owned_workspaces(&sim).remove(0);
    // Every repository is cross-checked when its facts allow. The group permissions are read
    // per repository, so that a fault after the structure hits a permission listing
    // (tests/sync_sweep.rs covers faults of the group-privileges sweep).
    let opts = SyncOptions {
        group_privileges_sweep: false,
        ..options(std::slice::from_ref(&ws), 100)
    };
    let first = sync_ok(store.as_ref(), &client, &opts).await;
    assert_eq!(first.outcome, SyncOutcome::Complete);
    let before = store_listings(store.as_ref(), &ws).await;
    let read_before = read_times(store.as_ref(), &ws).await;

    let gone = change_every_listing(&sim, &ws);
    let world = world_listings(&sim, &ws);
    let faults = sim.faults();
    let report = match moment {
        Moment::Start => {
            inject(&faults);
            sync_ok(store.as_ref(), &client, &opts).await
        }
        Moment::AfterStructure => {
            // Every request takes a little time, so the watcher sees the repositories listing
            // stored before the permission listings are done.
            faults.set_latency(Duration::from_millis(15));
            let watcher = async {
                let key = ListingKey::Repositories(slug(&ws));
                loop {
                    let fresh = store.listing_freshness(&key).await.expect("freshness");
                    if fresh.is_some_and(|f| f.last_run.is_some_and(|r| r.0 > first.run)) {
                        inject(&faults);
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            };
            let (report, ()) = tokio::join!(sync_ok(store.as_ref(), &client, &opts), watcher);
            report
        }
    };
    faults.clear();

    assert_eq!(report.outcome, SyncOutcome::Partial, "{report:#?}");
    // The facts the failed listing kept are older than Bitbucket's present state: the
    // cross-check leaves out what they touch rather than call the difference a finding.
    assert!(report.findings.is_empty(), "{:#?}", report.findings);
    let recorded = store.last_sync_run().await.expect("runs").expect("a run");
    assert_eq!(
        recorded.outcome,
        Some(SyncOutcome::Partial),
        "the store records the run partial"
    );
    assert_eq!(recorded.requests_used, report.requests_used);
    assert!(!report.failures.is_empty(), "the fault made a listing fail");
    let failed: BTreeSet<String> = report.failures.iter().map(|f| f.listing.clone()).collect();
    for f in &report.failures {
        ListingKey::parse(&f.listing).expect("a failure names its listing");
    }
    let after = store_listings(store.as_ref(), &ws).await;
    let read_after = read_times(store.as_ref(), &ws).await;
    let empty = BTreeSet::new();
    let keys: BTreeSet<&String> = after
        .keys()
        .chain(world.keys())
        .chain(before.keys())
        .collect();
    for key in keys {
        let stored = after.get(key).unwrap_or(&empty);
        if failed.contains(key) {
            assert_eq!(
                stored,
                before.get(key).unwrap_or(&empty),
                "{key} failed: its facts stay"
            );
            assert_ne!(
                stored,
                world.get(key).unwrap_or(&empty),
                "{key} did change in the world"
            );
            assert_eq!(
                read_after[key], read_before[key],
                "{key} failed: its age stays"
            );
        } else if !key.starts_with(&format!("repo:{ws}/{gone}:")) {
            assert_eq!(stored, world.get(key).unwrap_or(&empty), "{key} was read");
        } else if failed.contains(&format!("workspace:{ws}:repositories")) {
            // The listing of a repository removed from the world, still stored because the
            // repositories listing failed: kept as it was.
            assert!(
                failed.contains(&format!("workspace:{ws}:repositories")),
                "{key}"
            );
            assert_eq!(stored, &before[key], "{key} stays with its repository");
        }
    }
    if let Moment::Start = moment {
        let structural: BTreeSet<String> = ["members", "projects", "repositories"]
            .iter()
            .map(|l| format!("workspace:{ws}:{l}"))
            .collect();
        assert_eq!(
            failed, structural,
            "the three paginated workspace listings failed"
        );
        assert_eq!(
            report.cross_checked, 0,
            "no repository's facts are all fresh"
        );
    } else {
        assert!(
            failed.iter().all(|l| !l.starts_with("workspace:")),
            "the fault came after the workspace listings: {failed:?}"
        );
    }

    let clean = sync_ok(store.as_ref(), &client, &opts).await;
    assert_eq!(clean.outcome, SyncOutcome::Complete, "{clean:#?}");
    assert!(clean.failures.is_empty());
    assert!(clean.findings.is_empty(), "{:#?}", clean.findings);
    let repos = sim.with_world(|w| w.workspaces[&ws].repositories.len()) as u64;
    assert_eq!(clean.cross_checked, repos);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

async fn a_short_page_deletes_nothing(url: String) {
    a_fault_mid_listing_deletes_nothing_with(&url, 5131, Moment::Start, |f| {
        // The first three paginated answers of the run: members, projects and repositories.
        f.short_next_page(3)
    })
    .await;
}

async fn a_truncated_page_deletes_nothing(url: String) {
    a_fault_mid_listing_deletes_nothing_with(&url, 5132, Moment::AfterStructure, |f| {
        f.truncate_next_page(2)
    })
    .await;
}

async fn a_server_error_deletes_nothing(url: String) {
    a_fault_mid_listing_deletes_nothing_with(&url, 5133, Moment::AfterStructure, |f| {
        f.fail_next(2, 503)
    })
    .await;
}

// ----- 4. An interrupted sync resumes -----

/// Requests of the permission listings the simulator served since its counters were reset.
fn permission_requests(sim: &SimHandle) -> u64 {
    sim.request_counts()
        .iter()
        .filter(|(k, _)| k.contains("/permissions-config/"))
        .map(|(_, n)| n)
        .sum()
}

async fn an_interrupted_sync_resumes_where_it_stopped(url: String) {
    let sim = start_sim(5104).await;
    let store = store_at(&url).await;
    let client = client(&sim, 1);
    let ws = owned_workspaces(&sim).remove(0);
    let clock = ManualClock::starting_now();
    // Per-repository group listings, so that the run has many listings to be interrupted in.
    let opts = SyncOptions {
        clock: Arc::new(clock.clone()),
        group_privileges_sweep: false,
        ..options(std::slice::from_ref(&ws), 0)
    };
    let (groups, permission_listings) = sim.with_world(|w| {
        let w = &w.workspaces[&ws];
        (
            w.groups.len(),
            2 * (w.repositories.len() + w.projects.len()),
        )
    });
    // The five workspace listings and the members of each group come first.
    let structural = 5 + groups;

    // The run is stopped (its future dropped, as when the process is killed) once it has
    // stored three permission listings.
    sim.faults().set_latency(Duration::from_millis(20));
    let interrupted = tokio::select! {
        report = sync::run(store.as_ref(), &client, &opts) => {
            panic!("the run ended before it was interrupted: {report:?}")
        }
        run = completed_at_least(store.as_ref(), structural + 3) => run,
    };
    sim.faults().clear();
    let done: BTreeSet<ListingKey> = store
        .completed_listings(interrupted)
        .await
        .expect("completed")
        .into_iter()
        .collect();
    let done_permissions = done.iter().filter(|k| is_permission_listing(k)).count();
    assert!(
        done_permissions >= 3 && done_permissions < permission_listings,
        "{done:?}"
    );
    let last = store.last_sync_run().await.expect("runs").expect("a run");
    assert_eq!(last.id, interrupted);
    assert!(
        last.finished_at.is_none(),
        "the store shows the run unfinished"
    );
    let read_before = read_times(store.as_ref(), &ws).await;

    // The interrupted process is gone once its lease has passed.
    clock.advance(chrono::Duration::from_std(opts.lease.lease).expect("a lease") * 2);
    sim.reset_counters();
    let resumed = sync_ok(store.as_ref(), &client, &opts).await;
    assert!(resumed.resumed, "{resumed:#?}");
    assert_eq!(
        resumed.run, interrupted.0,
        "the interrupted run is taken over"
    );
    assert_eq!(resumed.outcome, SyncOutcome::Complete, "{resumed:#?}");
    // Nothing the interrupted run completed is read again: no workspace listing, and only
    // the permission listings it did not reach.
    let remaining = (permission_listings - done_permissions) as u64;
    assert_eq!(
        permission_requests(&sim),
        remaining,
        "{:?}",
        sim.request_counts()
    );
    assert_eq!(
        sim.total_requests(),
        remaining,
        "{:?}",
        sim.request_counts()
    );
    assert_eq!(resumed.requests_used, remaining);
    // The minimum still describes a complete read of everything.
    assert_eq!(resumed.minimum_requests, (5 + permission_listings) as u64);
    let read_after = read_times(store.as_ref(), &ws).await;
    for key in &done {
        let key = key.to_string();
        assert_eq!(
            read_after[&key], read_before[&key],
            "{key} was not read again"
        );
    }
    assert_eq!(resumed.never_read, 0);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
    assert!(store.unfinished_sync_run().await.expect("runs").is_none());

    // The next run starts afresh.
    let next = sync_ok(store.as_ref(), &client, &opts).await;
    assert!(!next.resumed);
    assert_ne!(next.run, interrupted.0);
    assert_eq!(next.rows_written, 0);
}

// ----- 5. A budget smaller than a full read -----

/// The listings whose read time changed between two observations.
fn read_between(
    before: &BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>>,
    after: &BTreeMap<String, Option<chrono::DateTime<chrono::Utc>>>,
) -> BTreeSet<String> {
    after
        .iter()
        .filter(|(k, t)| before.get(*k) != Some(*t))
        .map(|(k, _)| k.clone())
        .collect()
}

async fn a_small_budget_refreshes_in_the_stated_order(url: String) {
    let sim = start_sim(5105).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let permission_listings = sim.with_world(|w| {
        2 * (w.workspaces[&ws].repositories.len() + w.workspaces[&ws].projects.len())
    });
    assert!(
        permission_listings >= 14,
        "{permission_listings} permission listings"
    );
    let minimum = (5 + permission_listings) as u64;
    // Each run reads the five workspace listings (one page each here) and `k` permission
    // listings, the group permissions of repositories one listing each (tests/sync_sweep.rs
    // covers the group-privileges sweep).
    let capped = |k: usize| SyncOptions {
        max_requests: Some(5 + k as u64),
        group_privileges_sweep: false,
        ..options(std::slice::from_ref(&ws), 0)
    };
    let per_run = 6;

    // 1. Nothing stored yet: the workspace listings, then six permission listings.
    let first = sync_ok(store.as_ref(), &client, &capped(per_run)).await;
    assert_eq!(first.outcome, SyncOutcome::Partial);
    assert_eq!(first.requests_used, (5 + per_run) as u64);
    assert_eq!(first.minimum_requests, minimum);
    assert_eq!(first.never_read, (permission_listings - per_run) as u64);
    assert_eq!(
        first.workspaces[0].listings_deferred,
        (permission_listings - per_run) as u64
    );
    assert!(first.failures.is_empty());
    assert!(first.oldest_fact_age_seconds.is_some());
    let after_first = read_times(store.as_ref(), &ws).await;
    let never_read: BTreeSet<String> = after_first
        .iter()
        .filter(|(_, t)| t.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(never_read.len(), permission_listings - per_run);

    // 2. A second later: the never-read listings come before refreshing the first run's.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = sync_ok(store.as_ref(), &client, &capped(per_run)).await;
    let after_second = read_times(store.as_ref(), &ws).await;
    let read = read_between(&after_first, &after_second);
    let read_permissions: BTreeSet<&String> = read
        .iter()
        .filter(|k| !k.starts_with("workspace:") && !k.starts_with("group:"))
        .collect();
    assert_eq!(read_permissions.len(), per_run, "{read:?}");
    assert!(
        read_permissions.iter().all(|k| never_read.contains(*k)),
        "{read:?}"
    );
    assert_eq!(
        second.never_read,
        (permission_listings - 2 * per_run) as u64
    );
    assert_eq!(second.requests_used, (5 + per_run) as u64);
    assert_eq!(second.minimum_requests, minimum);
    assert!(
        second.oldest_fact_age_seconds.is_some_and(|age| age >= 1),
        "the first run's permission listings are a second old: {:?}",
        second.oldest_fact_age_seconds
    );

    // 3. The rest of the never-read listings.
    let rest = permission_listings - 2 * per_run;
    let third = sync_ok(store.as_ref(), &client, &capped(rest)).await;
    assert_eq!(third.never_read, 0);
    let after_third = read_times(store.as_ref(), &ws).await;
    assert!(after_third.values().all(Option::is_some));

    // 4. An active grant on a repository read most recently: its listings are refreshed
    // before older ones.
    let granted = read_between(&after_second, &after_third)
        .into_iter()
        .find_map(|k| match ListingKey::parse(&k).expect("key") {
            ListingKey::RepositoryUserPermissions(r)
            | ListingKey::RepositoryGroupPermissions(r) => Some(r),
            _ => None,
        })
        .expect("the third run read a repository's permissions");
    let grantee = sim.with_world(|w| {
        w.workspaces[&ws]
            .members
            .iter()
            .find(|(_, m)| m.role == Role::Member)
            .map(|(id, _)| id.clone())
            .expect("a member")
    });
    grant_write_for_an_hour(store.as_ref(), &granted, grantee).await;
    let fourth = sync_ok(store.as_ref(), &client, &capped(2)).await;
    let after_fourth = read_times(store.as_ref(), &ws).await;
    let read: BTreeSet<String> = read_between(&after_third, &after_fourth)
        .into_iter()
        .filter(|k| !k.starts_with("workspace:") && !k.starts_with("group:"))
        .collect();
    let expected: BTreeSet<String> = [
        ListingKey::RepositoryUserPermissions(granted.clone()).to_string(),
        ListingKey::RepositoryGroupPermissions(granted.clone()).to_string(),
    ]
    .into();
    assert_eq!(read, expected, "the granted repository first");
    assert_eq!(fourth.outcome, SyncOutcome::Partial);

    // 5. With two more requests, the two oldest listings follow the granted repository's.
    let mut by_age: Vec<(chrono::DateTime<chrono::Utc>, String)> = after_fourth
        .iter()
        .filter(|(k, _)| !expected.contains(*k))
        .filter(|(k, _)| k.starts_with("repo:") || k.starts_with("project:"))
        .map(|(k, t)| (t.expect("read"), k.clone()))
        .collect();
    by_age.sort();
    let fifth = sync_ok(store.as_ref(), &client, &capped(4)).await;
    let after_fifth = read_times(store.as_ref(), &ws).await;
    let read: BTreeSet<String> = read_between(&after_fourth, &after_fifth)
        .into_iter()
        .filter(|k| !k.starts_with("workspace:") && !k.starts_with("group:"))
        .collect();
    let mut want = expected.clone();
    want.extend(by_age.iter().take(2).map(|(_, k)| k.clone()));
    assert_eq!(read, want, "the granted repository, then the oldest facts");
    assert_eq!(fifth.requests_used, 9);
    assert_eq!(fifth.minimum_requests, minimum);

    // A run with enough budget reads everything and completes.
    let full = sync_ok(
        store.as_ref(),
        &client,
        &options(std::slice::from_ref(&ws), 0),
    )
    .await;
    assert_eq!(full.outcome, SyncOutcome::Complete);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

// ----- 6. Requests used next to the minimum -----

async fn requests_used_are_the_minimum_plus_discovery_and_cross_check(url: String) {
    // Large enough that the owned workspace's members and repositories need two pages each.
    let spec = WorldSpec {
        repositories: 260,
        users: 330,
        ..WorldSpec::tiny(5106)
    };
    let sim = start_sim_with(World::generate(&spec)).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let (members, repos, projects) = sim.with_world(|w| {
        let w = &w.workspaces[&ws];
        (
            w.members.len() as u64,
            w.repositories.len() as u64,
            w.projects.len() as u64,
        )
    });
    assert!(
        members > 100 && repos > 100,
        "two pages each: {members} members, {repos} repositories"
    );

    let first = sync_ok(store.as_ref(), &client, &options(&[], 0)).await;
    assert_eq!(first.outcome, SyncOutcome::Complete);

    // The minimum: the workspace, members, projects, repositories and groups listings at 100
    // per page, two permission listings per project and one per repository (one page each
    // here), and the one group-privileges request for every repository's group permissions.
    let pages = |n: u64| n.div_ceil(100).max(1);
    let minimum =
        1 + pages(members) + pages(projects) + pages(repos) + 1 + repos + 2 * projects + 1;

    // An unchanged world, discovering the workspaces: one request more than the minimum.
    let requests_before = sim.total_requests();
    let second = sync_ok(store.as_ref(), &client, &options(&[], 0)).await;
    assert_eq!(second.outcome, SyncOutcome::Complete);
    assert_eq!(second.minimum_requests, minimum);
    assert_eq!(
        second.requests_used,
        second.minimum_requests + 1,
        "discovery (/user/workspaces) is the only request above the minimum"
    );
    assert_eq!(
        sim.total_requests() - requests_before,
        second.requests_used,
        "the simulator saw as many"
    );

    // Naming the workspace saves discovery; a cross-check of three repositories costs one
    // page each on top.
    let third = sync_ok(
        store.as_ref(),
        &client,
        &options(std::slice::from_ref(&ws), 3),
    )
    .await;
    assert_eq!(third.cross_checked, 3);
    assert!(third.findings.is_empty(), "{:?}", third.findings);
    assert_eq!(third.minimum_requests, minimum);
    assert_eq!(
        third.requests_used,
        third.minimum_requests + third.cross_checked
    );
    eprintln!(
        "figures: minimum {minimum}; unchanged sync with discovery {} requests, named workspace with a 3-repository cross-check {}",
        second.requests_used, third.requests_used
    );
}
