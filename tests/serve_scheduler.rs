//! The `serve` scheduler on a manual clock, on both backends (its leases live in the store):
//! jobs fire at their cron times and never early, a job runs on one instance at a time and is
//! not started again while it runs, failures are retried with backoff and three in a row make
//! `/readyz` fail, and a second instance on one SQLite store refuses to start.

#[macro_use]
mod support_db;
mod serve_support;

use bitbucket_access::clock::{Clock, ManualClock};
use bitbucket_access::http::{Budget, BudgetSettings};
use bitbucket_access::serve::health::{readiness, ServeState};
use bitbucket_access::serve::lease::LeaseError;
use bitbucket_access::serve::metrics::RunResult;
use bitbucket_access::serve::{Job, Lane, Metrics, Scheduler, SchedulerSettings};
use bitbucket_access::store::{Backend, LeaseClaim, Store};
use serve_support::*;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

fn sync_job(ws: &str) -> Job {
    Job::Sync {
        workspace: Some(ws.into()),
    }
}

fn scheduler(
    lanes: Vec<Lane>,
    recorder: &Arc<Recorder>,
    store: &Arc<dyn Store>,
    clock: &ManualClock,
) -> (Scheduler, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::default());
    let scheduler = Scheduler::new(
        lanes,
        Arc::new(Shared(Arc::clone(recorder))),
        dyn_clock(clock),
        leases(store, clock),
        Arc::clone(&metrics),
        SchedulerSettings::default(),
    );
    (scheduler, metrics)
}

async fn jobs_fire_at_their_cron_times(url: String) {
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T10:01:10Z"));
    let recorder = Recorder::new(clock.clone(), Behaviour::Succeed);
    let lanes = vec![
        Lane {
            lease: "sync".into(),
            schedule: cron("0 */5 * * * *"),
            jobs: vec![sync_job("acme"), Job::IdentityRefresh],
        },
        Lane {
            lease: "expiry".into(),
            schedule: cron("30 * * * * *"),
            jobs: vec![Job::Expiry],
        },
    ];
    let (scheduler, _) = scheduler(lanes, &recorder, &store, &clock);
    let board = scheduler.board();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { scheduler.run(stopped).await });

    asleep(&clock, 2).await;
    let next: Vec<_> = board
        .snapshot()
        .into_iter()
        .map(|s| (s.job, s.next_run))
        .collect();
    assert_eq!(
        next,
        vec![
            ("expiry".to_string(), Some(at("2026-12-02T10:01:30Z"))),
            (
                "identity-refresh".to_string(),
                Some(at("2026-12-02T10:05:00Z"))
            ),
            ("sync:acme".to_string(), Some(at("2026-12-02T10:05:00Z"))),
        ]
    );
    // One second before: nothing runs.
    clock.set(at("2026-12-02T10:01:29Z"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        recorder.runs().is_empty(),
        "ran early: {:?}",
        recorder.runs()
    );

    let mut expected = 0;
    for step in [
        "2026-12-02T10:01:30Z",
        "2026-12-02T10:02:30Z",
        "2026-12-02T10:03:30Z",
        "2026-12-02T10:04:30Z",
        "2026-12-02T10:05:00Z",
        "2026-12-02T10:05:30Z",
    ] {
        clock.set(at(step));
        expected += if step.ends_with("05:00Z") { 2 } else { 1 };
        recorder.wait_for_runs(expected).await;
        asleep(&clock, 2).await;
    }
    let _ = stop.send(true);
    task.await.expect("the scheduler stops");

    let expiry: Vec<_> = recorder.times_of("expiry");
    assert_eq!(
        expiry,
        ["10:01:30", "10:02:30", "10:03:30", "10:04:30", "10:05:30"]
            .iter()
            .map(|t| at(&format!("2026-12-02T{t}Z")))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        recorder.times_of("sync:acme"),
        vec![at("2026-12-02T10:05:00Z")]
    );
    assert_eq!(
        recorder.times_of("identity-refresh"),
        vec![at("2026-12-02T10:05:00Z")]
    );
    // In a lane, jobs run in order.
    let order: Vec<String> = recorder
        .runs()
        .into_iter()
        .filter(|(_, t)| *t == at("2026-12-02T10:05:00Z"))
        .map(|(j, _)| j)
        .collect();
    assert_eq!(order, vec!["sync:acme", "identity-refresh"]);
}

async fn a_job_runs_on_one_instance_at_a_time_and_never_twice_at_once(url: String) {
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T10:00:30Z"));
    let recorder = Recorder::new(clock.clone(), Behaviour::Gated);
    let lane = || Lane {
        lease: "sync".into(),
        schedule: cron("0 * * * * *"),
        jobs: vec![sync_job("acme")],
    };
    // Two instances: each its own holder, one store, one clock.
    let (first, first_metrics) = scheduler(vec![lane()], &recorder, &store, &clock);
    let (second, second_metrics) = scheduler(vec![lane()], &recorder, &store, &clock);
    let (stop, stopped) = watch::channel(false);
    let stopped2 = stopped.clone();
    let a = tokio::spawn(async move { first.run(stopped).await });
    let b = tokio::spawn(async move { second.run(stopped2).await });
    asleep(&clock, 2).await;

    let skipped = |m: &Metrics| m.runs("sync:acme", RunResult::Skipped);
    let skips = || skipped(&first_metrics) + skipped(&second_metrics);
    // Waits until the other instance has skipped `n` times and sleeps again (the one running
    // the job does not sleep), so that the next cron time finds it asleep.
    let skipped_and_asleep = |n: u64| {
        let clock = clock.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while skips() < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{} skips, {n} expected",
                    skips()
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            asleep(&clock, 1).await;
        }
    };

    clock.set(at("2026-12-02T10:01:00Z"));
    recorder.wait_for_runs(1).await;
    skipped_and_asleep(1).await;
    // Still running at the next two cron times: nobody starts it again.
    clock.set(at("2026-12-02T10:02:00Z"));
    skipped_and_asleep(2).await;
    clock.set(at("2026-12-02T10:03:00Z"));
    skipped_and_asleep(3).await;
    assert_eq!(
        recorder.runs().len(),
        1,
        "started again: {:?}",
        recorder.runs()
    );
    assert_eq!(skips(), 3);

    // Once it ends, the next cron time runs it again (the missed ones are not queued).
    recorder.gate.add_permits(1);
    asleep(&clock, 2).await;
    clock.set(at("2026-12-02T10:04:00Z"));
    recorder.wait_for_runs(2).await;
    recorder.gate.add_permits(1);
    asleep(&clock, 2).await;
    assert_eq!(recorder.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(recorder.runs().len(), 2);
    let _ = stop.send(true);
    a.await.expect("first stops");
    b.await.expect("second stops");
}

async fn failures_are_retried_with_backoff_and_three_in_a_row_make_readyz_fail(url: String) {
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T10:30:00Z"));
    let recorder = Recorder::new(clock.clone(), Behaviour::Fail);
    let lanes = vec![Lane {
        lease: "sync".into(),
        schedule: cron("0 0 * * * *"),
        jobs: vec![sync_job("acme")],
    }];
    let (scheduler, metrics) = scheduler(lanes, &recorder, &store, &clock);
    let board = scheduler.board();
    let state = ServeState {
        store: Arc::clone(&store),
        board: Arc::clone(&board),
        metrics: Arc::clone(&metrics),
        budget: Arc::new(Budget::new(BudgetSettings::default())),
        clock: dyn_clock(&clock),
        started: clock.now(),
        max_sync_age: Duration::from_secs(86_400),
        workspaces: Vec::new(),
    };
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { scheduler.run(stopped).await });
    asleep(&clock, 1).await;
    assert!(readiness(&state).await.ready);

    // The cron time, then retries after 30 s, 60 s, 120 s.
    let next_run = || board.snapshot()[0].next_run;
    let mut runs = 0;
    for (now, retry) in [
        ("2026-12-02T11:00:00Z", "2026-12-02T11:00:30Z"),
        ("2026-12-02T11:00:30Z", "2026-12-02T11:01:30Z"),
        ("2026-12-02T11:01:30Z", "2026-12-02T11:03:30Z"),
    ] {
        clock.set(at(now));
        runs += 1;
        recorder.wait_for_runs(runs).await;
        asleep(&clock, 1).await;
        assert_eq!(next_run(), Some(at(retry)), "after the failure at {now}");
    }
    let ready = readiness(&state).await;
    assert!(!ready.ready);
    assert!(
        ready
            .problems
            .iter()
            .any(|p| p.contains("sync:acme failed 3 times in a row")),
        "{:?}",
        ready.problems
    );
    assert_eq!(metrics.runs("sync:acme", RunResult::Failure), 3);

    // The next retry succeeds: ready again, and the cron time is next.
    recorder.set(Behaviour::Succeed);
    clock.set(at("2026-12-02T11:03:30Z"));
    recorder.wait_for_runs(4).await;
    asleep(&clock, 1).await;
    assert_eq!(next_run(), Some(at("2026-12-02T12:00:00Z")));
    assert!(readiness(&state).await.ready);
    assert_eq!(metrics.runs("sync:acme", RunResult::Success), 1);
    let _ = stop.send(true);
    task.await.expect("the scheduler stops");
}

async fn one_serve_per_sqlite_store_and_any_number_on_postgres(url: String) {
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T10:00:00Z"));
    let first = leases(&store, &clock).hold_instance().await.expect("first");
    let second = leases(&store, &clock).hold_instance().await;
    match store.backend() {
        Backend::Sqlite => {
            let err = second.expect_err("a second instance on SQLite");
            assert!(matches!(err, LeaseError::InstanceRunning { .. }));
            let text = err.to_string();
            assert!(text.contains("already runs on this SQLite store"), "{text}");
            assert!(text.contains("use PostgreSQL"), "{text}");
            // Once the first ends its lease, a new instance starts.
            first.release().await;
            let third = leases(&store, &clock).hold_instance().await;
            third.expect("after the first stopped").release().await;
        }
        Backend::Postgres => {
            second
                .expect("several instances on PostgreSQL")
                .release()
                .await;
            first.release().await;
        }
    }
}

/// The lease itself: taken by one holder at a time, free once released or passed, and not
/// taken again for a cron time another instance already ran the job at.
async fn a_lease_is_taken_by_one_holder_and_once_per_run_time(url: String) {
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T10:00:00Z"));
    let (a, b) = (leases(&store, &clock), leases(&store, &clock));
    let tick = Some(at("2026-12-02T10:00:00Z"));
    assert_eq!(
        a.try_acquire("sync", tick).await.expect("a"),
        LeaseClaim::Acquired
    );
    match b.try_acquire("sync", tick).await.expect("b") {
        LeaseClaim::Held(held) => assert_eq!(held.holder, a.holder()),
        other => panic!("held by a expected, got {other:?}"),
    }
    clock.set(at("2026-12-02T10:00:02Z"));
    a.release("sync").await;
    // b's clock is a little behind: it wakes for 10:00:00 after a has run the job.
    match b.try_acquire("sync", tick).await.expect("b") {
        LeaseClaim::AlreadyRan(done) => assert_eq!(done.holder, a.holder()),
        other => panic!("already ran expected, got {other:?}"),
    }
    let next = Some(at("2026-12-02T11:00:00Z"));
    clock.set(at("2026-12-02T11:00:00Z"));
    assert_eq!(
        b.try_acquire("sync", next).await.expect("b"),
        LeaseClaim::Acquired
    );
    // A holder that dies stops renewing: its lease passes and another takes it.
    clock.set(at("2026-12-02T12:00:01Z"));
    let later = Some(at("2026-12-02T12:00:00Z"));
    assert_eq!(
        a.try_acquire("sync", later).await.expect("a"),
        LeaseClaim::Acquired
    );
    let stored = store.job_leases().await.expect("leases");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].holder, a.holder());
}

on_both_backends!(
    a_lease_is_taken_by_one_holder_and_once_per_run_time,
    jobs_fire_at_their_cron_times,
    a_job_runs_on_one_instance_at_a_time_and_never_twice_at_once,
    failures_are_retried_with_backoff_and_three_in_a_row_make_readyz_fail,
    one_serve_per_sqlite_store_and_any_number_on_postgres,
);
