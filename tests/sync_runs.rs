//! Run ownership against the simulator, on SQLite and (when `TEST_POSTGRES_URL` is set)
//! PostgreSQL: two syncs started together split the work instead of both doing it, a run whose
//! owner is gone is resumed while a live one is left alone, and the resume window is measured
//! on the injected clock.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::clock::ManualClock;
use bitbucket_access::store::{
    open, ClaimRequest, Heartbeat, RunOwner, Store, SyncOutcome, SyncRunId,
};
use bitbucket_access::sync::{self, LeaseSettings, SyncOptions, SyncReport};
use bitbucket_sim::SimHandle;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use sync_support::*;

on_both_backends!(
    two_syncs_started_together_do_the_work_once,
    a_sync_started_during_another_waits_for_nothing_and_reads_nothing,
    a_stale_lease_is_resumed_and_a_live_one_is_not,
    the_resume_window_is_measured_on_the_clock,
    a_stalled_owner_loses_its_run,
);

fn options(ws: &str, clock: Option<&ManualClock>) -> SyncOptions {
    let mut options = SyncOptions {
        workspaces: vec![ws.to_string()],
        ..SyncOptions::default()
    };
    if let Some(clock) = clock {
        options.clock = Arc::new(clock.clone());
    }
    options
}

fn since_forever() -> DateTime<Utc> {
    DateTime::<Utc>::UNIX_EPOCH
}

/// One sync of the world into a fresh SQLite store: the facts and requests to compare with.
async fn reference(sim: &SimHandle, ws: &str) -> (Listings, u64) {
    let db = support_db::sqlite_db();
    let store = open(&db.url).await.expect("store opens");
    sim.reset_counters();
    let report = sync::run(store.as_ref(), &client(sim, 2), &options(ws, None))
        .await
        .expect("the reference sync runs");
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:#?}");
    (
        store_listings(store.as_ref(), ws).await,
        sim.total_requests(),
    )
}

/// Runs two syncs of `ws` on one store, each with its own client and budget, the second
/// started `delay` after the first; checks that the work was done once.
async fn two_syncs(url: &str, seed: u64, delay: Duration, lease: LeaseSettings) {
    let sim = start_sim(seed).await;
    let ws = owned_workspaces(&sim).remove(0);
    let store: Arc<dyn Store> = open(url).await.expect("store opens");
    // Latency stretches the run over several heartbeats and lets the second start mid-run.
    sim.faults().set_latency(Duration::from_millis(50));
    let opts = SyncOptions {
        lease,
        ..options(&ws, None)
    };
    let spawn = |wait: Duration| {
        let (store, client, opts) = (Arc::clone(&store), client(&sim, 2), opts.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            sync::run(store.as_ref(), &client, &opts).await
        })
    };
    let (first, second) = (spawn(Duration::ZERO), spawn(delay));
    let reports: Vec<SyncReport> = vec![
        first
            .await
            .expect("joins")
            .expect("the first sync ends cleanly"),
        second
            .await
            .expect("joins")
            .expect("the second sync ends cleanly"),
    ];
    sim.faults().clear();
    let served = sim.total_requests();

    // One run read the workspace; the other named the run holding it and read nothing.
    let readers: Vec<&SyncReport> = reports
        .iter()
        .filter(|r| !r.workspaces.is_empty())
        .collect();
    let skippers: Vec<&SyncReport> = reports.iter().filter(|r| !r.held.is_empty()).collect();
    assert_eq!((readers.len(), skippers.len()), (1, 1), "{reports:#?}");
    let (reader, skipper) = (readers[0], skippers[0]);
    assert_eq!(skipper.held[0].workspace, ws);
    assert_eq!(skipper.held[0].run, reader.run);
    assert!(!skipper.resumed && !reader.resumed);
    assert_eq!(skipper.requests_used, 0, "{skipper:#?}");
    for r in &reports {
        assert_eq!(r.outcome, SyncOutcome::Complete, "{r:#?}");
        assert!(r.failures.is_empty(), "{r:#?}");
    }

    // The requests counted in the store are the requests the simulator served.
    let counted = store
        .requests_since(since_forever(), None)
        .await
        .expect("requests");
    assert_eq!(counted, served);
    assert_eq!(reader.requests_used + skipper.requests_used, served);
    assert!(store.unfinished_sync_run().await.expect("runs").is_none());

    // The facts and the requests are those of a single sync.
    let stored = store_listings(store.as_ref(), &ws).await;
    let (single, single_requests) = reference(&sim, &ws).await;
    assert_eq!(differences(&stored, &single), Vec::<String>::new());
    assert_eq!(served, single_requests);
}

async fn two_syncs_started_together_do_the_work_once(url: String) {
    two_syncs(&url, 5301, Duration::ZERO, LeaseSettings::default()).await;
}

/// A lease shorter than the run: only the heartbeat keeps the run from being taken over by the
/// second sync, which starts after the first lease would have expired.
async fn a_sync_started_during_another_waits_for_nothing_and_reads_nothing(url: String) {
    let lease = LeaseSettings {
        lease: Duration::from_millis(300),
        heartbeat: Duration::from_millis(50),
    };
    two_syncs(&url, 5302, Duration::from_millis(450), lease).await;
}

/// Starts a sync on `clock` and drops it (as a killed process would) once it has stored its
/// structural listings and a few permission listings; returns the interrupted run.
async fn interrupted_run(
    store: &dyn Store,
    sim: &SimHandle,
    ws: &str,
    clock: &ManualClock,
) -> SyncRunId {
    sim.faults().set_latency(Duration::from_millis(20));
    let client = client(sim, 1);
    let opts = options(ws, Some(clock));
    let run = tokio::select! {
        report = sync::run(store, &client, &opts) => {
            panic!("the run ended before it was interrupted: {report:?}")
        }
        run = completed_at_least(store, 8) => run,
    };
    sim.faults().clear();
    run
}

async fn a_stale_lease_is_resumed_and_a_live_one_is_not(url: String) {
    let sim = start_sim(5303).await;
    let ws = owned_workspaces(&sim).remove(0);
    let store = open(&url).await.expect("store opens");
    let clock = ManualClock::starting_now();
    let interrupted = interrupted_run(store.as_ref(), &sim, &ws, &clock).await;
    let lease = LeaseSettings::default().lease;

    // Within the lease the owner may still be working: the workspace is left to it.
    clock.advance(chrono::Duration::from_std(lease / 2).expect("a duration"));
    sim.reset_counters();
    let client = client(&sim, 2);
    let live = sync::run(store.as_ref(), &client, &options(&ws, Some(&clock)))
        .await
        .expect("a sync beside a live run ends cleanly");
    assert!(!live.resumed);
    assert_ne!(live.run, interrupted.0);
    assert!(live.workspaces.is_empty(), "{live:#?}");
    assert_eq!(live.held.len(), 1);
    assert_eq!(
        (live.held[0].run, live.held[0].workspace.as_str()),
        (interrupted.0, ws.as_str())
    );
    assert_eq!(live.outcome, SyncOutcome::Complete);
    assert_eq!(sim.total_requests(), 0, "{:?}", sim.request_counts());

    // Once the lease has passed the owner is gone: the next sync takes the run over.
    clock.advance(chrono::Duration::from_std(lease).expect("a duration"));
    let resumed = sync::run(store.as_ref(), &client, &options(&ws, Some(&clock)))
        .await
        .expect("the resuming sync runs");
    assert!(resumed.resumed, "{resumed:#?}");
    assert_eq!(resumed.run, interrupted.0);
    assert!(resumed.held.is_empty());
    assert_eq!(resumed.outcome, SyncOutcome::Complete, "{resumed:#?}");
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

async fn the_resume_window_is_measured_on_the_clock(url: String) {
    let sim = start_sim(5304).await;
    let ws = owned_workspaces(&sim).remove(0);
    let store = open(&url).await.expect("store opens");
    let clock = ManualClock::starting_now();
    let client = client(&sim, 2);

    // Interrupted a day and an hour ago: too old, so a new run reads everything again.
    let old = interrupted_run(store.as_ref(), &sim, &ws, &clock).await;
    clock.advance(chrono::Duration::hours(25));
    let fresh = sync::run(store.as_ref(), &client, &options(&ws, Some(&clock)))
        .await
        .expect("sync runs");
    assert!(!fresh.resumed, "{fresh:#?}");
    assert_ne!(fresh.run, old.0);
    assert_eq!(fresh.outcome, SyncOutcome::Complete);

    // Interrupted 23 hours ago: inside the window, so it is taken over.
    clock.advance(chrono::Duration::minutes(1));
    let recent = interrupted_run(store.as_ref(), &sim, &ws, &clock).await;
    clock.advance(chrono::Duration::hours(23));
    let resumed = sync::run(store.as_ref(), &client, &options(&ws, Some(&clock)))
        .await
        .expect("sync runs");
    assert!(resumed.resumed, "{resumed:#?}");
    assert_eq!(resumed.run, recent.0);
    assert_eq!(resumed.outcome, SyncOutcome::Complete);
}

/// A run whose lease passed while its owner was stalled is taken over; the stalled owner's next
/// heartbeat finds that out and its sync stops instead of writing beside the new owner.
async fn a_stalled_owner_loses_its_run(url: String) {
    let store = open(&url).await.expect("store opens");
    let ws = vec![slug("acme")];
    let now = Utc::now();
    let claim = |owner: &str, at: DateTime<Utc>| ClaimRequest {
        workspaces: ws.clone(),
        owner: RunOwner::named(owner),
        now: at,
        lease_until: at + chrono::Duration::seconds(60),
        resume_after: at - chrono::Duration::hours(24),
    };
    let first = store.claim_sync_run(&claim("a", now)).await.expect("claim");
    assert!(!first.resumed);
    let later = now + chrono::Duration::seconds(90);
    let second = store
        .claim_sync_run(&claim("b", later))
        .await
        .expect("claim");
    assert!(second.resumed, "the expired run is taken over: {second:?}");
    assert_eq!(second.run, first.run);
    let beat = |owner: &str| Heartbeat {
        run: first.run,
        owner: RunOwner::named(owner),
        at: later,
        lease_until: later + chrono::Duration::seconds(60),
        requests: 5,
    };
    assert!(!store.heartbeat_sync_run(&beat("a")).await.expect("beat"));
    assert!(store.heartbeat_sync_run(&beat("b")).await.expect("beat"));
    // Only the owner's requests were counted.
    let counted = store.requests_since(now, None).await.expect("requests");
    assert_eq!(counted, 5);
    assert_eq!(
        store
            .requests_since(now, Some(first.run))
            .await
            .expect("requests"),
        0
    );
}
