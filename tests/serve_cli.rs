//! `bitbucket-access serve` as operators run it: the real binary against the simulator. It logs
//! each job's next run at start; a second one on the same SQLite file refuses to start; SIGTERM
//! in the middle of a sync exits 0 within the grace period and the next sync resumes the run;
//! two processes on one PostgreSQL never run one sync at once, and when the one syncing is
//! killed (SIGKILL) the other takes the run over once the lease has passed (the time is
//! printed).

#[macro_use]
mod support_db;
mod serve_support;
mod sync_support;

use serve_support::*;
use std::time::{Duration, Instant};
use sync_support::*;
use tempfile::TempDir;

/// A cron expression that does not fire during a test.
const NEVER_SOON: &str = "0 0 0 1 1 *";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_one_sqlite_file_refuses_to_start() {
    let sim = start_sim(7201).await;
    let dir = TempDir::new().expect("temp dir");
    let ws = owned_workspaces(&sim);
    let url = format!("sqlite://{}", dir.path().join("store.db").display());
    let config = write_config(&sim, dir.path(), &url, &ws, NEVER_SOON);
    let mut first = ServeProcess::spawn(&sim, dir.path(), &config, &[]);
    first
        .wait_for_log("serving on http://127.0.0.1:", Duration::from_secs(20))
        .await;
    // The next run of each job is in the log at start.
    let log = first.log();
    for job in ["audit", "expiry", "identity-refresh"] {
        assert!(
            log.contains(&format!("job={job} next_run=")),
            "{job} not in:\n{log}"
        );
    }
    assert!(
        log.contains(&format!("job=sync:{} next_run=", ws[0])),
        "{log}"
    );

    let second = run_cli(&sim, dir.path(), &config, &["serve"]).await;
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains("already runs on this SQLite store"),
        "{}",
        second.stderr
    );
    assert!(
        second.stderr.contains("use PostgreSQL"),
        "{}",
        second.stderr
    );

    first.signal("TERM");
    assert_eq!(first.wait(Duration::from_secs(10)).await, Some(0));
    assert!(first.log().contains("serve stopped"), "{}", first.log());
}

/// SIGTERM while a slow sync runs, with a one-second grace: exit 0 at once, the run left
/// unfinished, and the next `sync` resumes it and leaves the store equal to the world.
async fn sigterm_mid_sync_exits_zero_and_the_next_sync_resumes_the_run(url: String) {
    let sim = start_sim(7202).await;
    let dir = TempDir::new().expect("temp dir");
    let ws = vec![owned_workspaces(&sim).remove(0)];
    let config = write_config(&sim, dir.path(), &url, &ws, "* * * * * *");
    sim.faults().set_latency(Duration::from_millis(150));
    let mut serve = ServeProcess::spawn(
        &sim,
        dir.path(),
        &config,
        &["--lease", "2s", "--shutdown-grace", "1s"],
    );
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let run = completed_at_least(store.as_ref(), 2).await;

    let asked = Instant::now();
    serve.signal("TERM");
    assert_eq!(
        serve.wait(Duration::from_secs(15)).await,
        Some(0),
        "{}",
        serve.log()
    );
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    let log = serve.log();
    assert!(log.contains("abandoning the running job"), "{log}");
    let unfinished = store.unfinished_sync_run().await.expect("runs");
    assert_eq!(
        unfinished.map(|r| r.id),
        Some(run),
        "the run stays resumable"
    );

    // Once its lease has passed, the next sync takes the run over and completes it.
    sim.faults().set_latency(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let sync = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert_eq!(sync.code, 0, "{}{}", sync.stdout, sync.stderr);
    assert!(
        sync.stdout.contains("resumed an interrupted run"),
        "{}",
        sync.stdout
    );
    assert_store_matches_world(store.as_ref(), &sim, &ws[0]).await;
}

on_both_backends!(sigterm_mid_sync_exits_zero_and_the_next_sync_resumes_the_run);

/// (started, finished) of every sync run, by id.
async fn run_intervals(
    url: &str,
) -> Vec<(
    i64,
    chrono::DateTime<chrono::Utc>,
    Option<chrono::DateTime<chrono::Utc>>,
)> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let rows = sqlx::query("SELECT id, started_at, finished_at FROM sync_runs ORDER BY id")
        .fetch_all(&mut conn)
        .await
        .expect("sync runs");
    rows.iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_postgres_never_sync_at_once_and_one_takes_over_after_a_kill() {
    let Some(db) = support_db::postgres_db().await else {
        return;
    };
    support_db::run_on(db, |url| async move {
        let sim = start_sim(7203).await;
        let dir = TempDir::new().expect("temp dir");
        let ws = vec![owned_workspaces(&sim).remove(0)];
        let config = write_config(&sim, dir.path(), &url, &ws, "*/2 * * * * *");
        sim.faults().set_latency(Duration::from_millis(100));
        let args = ["--lease", "3s", "--retry-after", "1s"];
        let mut a = ServeProcess::spawn(&sim, dir.path(), &config, &args);
        let mut b = ServeProcess::spawn(&sim, dir.path(), &config, &args);
        let store = bitbucket_access::store::open(&url).await.expect("store");

        // Let a few syncs run, then kill whichever instance is in the middle of one.
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.last_sync_run().await.expect("runs").is_none_or(|r| r.id.0 < 2) {
            assert!(Instant::now() < deadline, "no syncs:\n{}\n{}", a.log(), b.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let run = completed_at_least(store.as_ref(), 2).await;
        let holder = store
            .job_leases()
            .await
            .expect("leases")
            .into_iter()
            .find(|l| l.job == "sync")
            .expect("the sync lease")
            .holder;
        let pid: u32 = holder.split('/').nth(1).and_then(|p| p.parse().ok()).expect("a pid");
        let (victim, survivor) = if pid == a.pid() { (&mut a, &mut b) } else { (&mut b, &mut a) };
        assert_eq!(victim.pid(), pid);
        let killed = Instant::now();
        victim.signal("KILL");
        assert_eq!(victim.wait(Duration::from_secs(5)).await, None);

        // The survivor resumes the killed run once the leases have passed, and completes it.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = run_intervals(&url)
                .await
                .into_iter()
                .any(|(id, _, finished)| id == run.0 && finished.is_some());
            if done {
                break;
            }
            assert!(Instant::now() < deadline, "no takeover:\n{}", survivor.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let takeover = killed.elapsed();
        println!("takeover after SIGKILL (lease 3s): run {} completed by the other instance {:.1} s after the kill", run.0, takeover.as_secs_f64());
        assert!(survivor.log().contains("resuming an interrupted sync run"), "{}", survivor.log());
        assert!(takeover < Duration::from_secs(20), "takeover took {takeover:?}");

        survivor.signal("TERM");
        assert_eq!(survivor.wait(Duration::from_secs(40)).await, Some(0), "{}", survivor.log());

        // No two runs ever overlapped: each started after the one before it finished.
        let runs = run_intervals(&url).await;
        assert!(runs.len() >= 2, "{runs:?}");
        for pair in runs.windows(2) {
            let (before, after) = (&pair[0], &pair[1]);
            let finished = before.2.expect("every run before the last finished");
            assert!(after.1 >= finished, "run {} started before run {} finished: {runs:?}", after.0, before.0);
        }
    })
    .await;
}
