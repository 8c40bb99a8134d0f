//! `serve` in-process against the simulator, on a manual clock: a scheduled sync and what
//! `/metrics`, `/readyz` and `/healthz` then say (the metrics parse as Prometheus text and
//! their request counters match the simulator's own), the expiry job counted as a success, and two instances on one PostgreSQL keeping the
//! token's hourly budget between them.

#[macro_use]
mod support_db;
mod serve_support;
mod sync_support;

use bitbucket_access::clock::ManualClock;
use bitbucket_access::serve::{self, Running, ServeOptions};
use bitbucket_access::store::Store;
use bitbucket_access::sync::LeaseSettings;
use serve_support::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_support::{owned_workspaces, start_sim};

/// Starts `serve` on `config` with the manual clock and hour-long leases (the clock jumps).
async fn start(
    config: bitbucket_access::config::Config,
    store: &Arc<dyn Store>,
    clock: &ManualClock,
) -> Running {
    let client = bitbucket_access::connect::bitbucket_client(&config).expect("client");
    let mut options = ServeOptions::for_config(&config);
    options.clock = dyn_clock(clock);
    options.lease = LeaseSettings {
        lease: Duration::from_secs(3600),
        heartbeat: Duration::from_secs(900),
    };
    serve::start(Arc::new(config), Arc::clone(store), client, options)
        .await
        .expect("serve starts")
}

/// Waits (at most 20 s) until `job` has succeeded on `running`.
async fn wait_for_success(running: &Running, job: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = running.board().snapshot();
        let s = status.iter().find(|s| s.job == job).expect("a known job");
        if s.last_success.is_some() && !s.running {
            return;
        }
        assert!(s.last_error.is_none(), "{job} failed: {:?}", s.last_error);
        assert!(
            Instant::now() < deadline,
            "{job} did not succeed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get(running: &Running, path: &str) -> (u16, String) {
    let url = format!("http://{}{path}", running.local_addr());
    let response = reqwest::get(&url).await.expect("the endpoint answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

/// `GET /2.0/repositories/{workspace}` as the simulator counts it becomes the client's
/// `GET /repositories/{workspace}`; the 1.0 API keeps its prefix in both.
fn client_key(sim_key: &str) -> String {
    sim_key.replacen(" /2.0/", " /", 1)
}

async fn metrics_parse_and_match_what_happened(url: String) {
    let sim = start_sim(7101).await;
    let workspaces = owned_workspaces(&sim);
    let config = sim_config(&sim, &url, &workspaces, 100_000);
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T09:59:30Z"));
    let running = start(config, &store, &clock).await;
    asleep(&clock, 3).await;

    let (status, body) = get(&running, "/healthz").await;
    assert_eq!((status, body.trim()), (200, "ok"));
    // Just started and never synced: ready (the threshold has not passed since the start).
    let (status, _) = get(&running, "/readyz").await;
    assert_eq!(status, 200);

    // The hourly sync, the identity refresh after it, and the minutely expiry.
    clock.set(at("2026-12-02T10:00:00Z"));
    for ws in &workspaces {
        wait_for_success(&running, &format!("sync:{ws}")).await;
    }
    wait_for_success(&running, "identity-refresh").await;
    asleep(&clock, 3).await;

    let (status, text) = get(&running, "/metrics").await;
    assert_eq!(status, 200);
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));

    // Every request the simulator served, and only those, by endpoint and status.
    let requests = "bitbucket_access_http_requests_total";
    let bitbucket = [("service", "bitbucket")];
    assert_eq!(
        sum(&samples, requests, &bitbucket) as u64,
        sim.total_requests()
    );
    let served: BTreeMap<String, u64> = sim
        .request_counts()
        .into_iter()
        .map(|(k, n)| (client_key(&k), n))
        .collect();
    let mut counted: BTreeMap<String, u64> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == requests) {
        let key = format!("{} {}", s.labels["method"], s.labels["endpoint"]);
        *counted.entry(key).or_insert(0) += s.value as u64;
    }
    assert_eq!(counted, served);
    assert!(sum(&samples, requests, &[("status", "200")]) > 0.0);

    let used = sim.total_requests() as f64;
    assert_eq!(
        sum(&samples, "bitbucket_access_budget_used_requests", &[]),
        used
    );
    assert_eq!(
        sum(&samples, "bitbucket_access_budget_available_requests", &[]),
        100_000.0 - used
    );
    for ws in &workspaces {
        let w = [("workspace", ws.as_str())];
        let complete = [("workspace", ws.as_str()), ("outcome", "complete")];
        assert_eq!(
            sum(&samples, "bitbucket_access_sync_runs_total", &complete),
            1.0
        );
        assert_eq!(
            sum(&samples, "bitbucket_access_sync_duration_seconds_count", &w),
            1.0
        );
        assert_eq!(
            sum(
                &samples,
                "bitbucket_access_sync_last_finished_timestamp_seconds",
                &w
            ),
            at("2026-12-02T10:00:00Z").timestamp() as f64
        );
        // Everything was read at 10:00 by the manual clock, which still shows 10:00.
        assert_eq!(
            sum(&samples, "bitbucket_access_oldest_fact_age_seconds", &w),
            0.0
        );
    }
    let runs = "bitbucket_access_job_runs_total";
    // The expiry catch-up pass ran (no grant was due): a success, and nothing ended late.
    assert_eq!(
        sum(&samples, runs, &[("job", "expiry"), ("outcome", "success")]),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "bitbucket_access_expiry_lateness_seconds_count",
            &[]
        ),
        0.0
    );
    assert_eq!(
        sum(
            &samples,
            runs,
            &[("job", "identity-refresh"), ("outcome", "success")]
        ),
        1.0
    );
    assert_eq!(
        sum(
            &samples,
            "bitbucket_access_job_next_run_timestamp_seconds",
            &[("job", "audit")]
        ),
        at("2026-12-02T06:00:00Z").timestamp() as f64 + 86_400.0
    );
    assert_eq!(sum(&samples, "bitbucket_access_grants", &[]), 0.0);

    // Ready, with each workspace's last sync.
    let (status, body) = get(&running, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["store"], "ok");
    assert_eq!(
        ready["workspaces"].as_array().map(Vec::len),
        Some(workspaces.len())
    );
    assert_eq!(ready["workspaces"][0]["age_seconds"], 0);

    let report = running.shutdown().await;
    assert!(report.abandoned.is_empty());
}

/// Waits (at most 20 s) until `job` has failed `n` times in a row and its lane sleeps again.
async fn wait_for_failures(running: &Running, clock: &ManualClock, job: &str, n: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = running.board().snapshot();
        let s = status.iter().find(|s| s.job == job).expect("a known job");
        if s.consecutive_failures >= n && !s.running {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{job} did not fail {n} times: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    asleep(clock, 3).await;
}

/// Bitbucket refusing every request: the workspace's sync fails, is retried after 30 s
/// and 60 s, and after the third failure `/readyz` answers 503 naming it; the metrics count
/// three failed syncs and the store keeps nothing half-read.
async fn three_failed_syncs_of_a_workspace_make_readyz_fail(url: String) {
    let sim = start_sim(7103).await;
    let workspaces = vec![owned_workspaces(&sim).remove(0)];
    let ws = workspaces[0].clone();
    let config = sim_config(&sim, &url, &workspaces, 100_000);
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T09:59:30Z"));
    let running = start(config, &store, &clock).await;
    asleep(&clock, 3).await;
    // Refused (403, not retried): each sync ends at once with its listings unread.
    sim.faults().fail_next(100_000, 403);

    let job = format!("sync:{ws}");
    for (n, now) in ["10:00:00", "10:00:30", "10:01:30"].iter().enumerate() {
        clock.set(at(&format!("2026-12-02T{now}Z")));
        wait_for_failures(&running, &clock, &job, n as u32 + 1).await;
    }
    let (status, body) = get(&running, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let problems = ready["problems"].to_string();
    assert!(
        problems.contains(&format!("job {job} failed 3 times in a row")),
        "{problems}"
    );
    let next = ready["jobs"]
        .as_array()
        .and_then(|jobs| jobs.iter().find(|j| j["job"] == job.as_str()))
        .map(|j| j["next_run"].clone());
    assert_eq!(next, Some(serde_json::json!("2026-12-02T10:03:30Z")));

    let (_, text) = get(&running, "/metrics").await;
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let failed = [("workspace", ws.as_str()), ("outcome", "failed")];
    assert_eq!(
        sum(&samples, "bitbucket_access_sync_runs_total", &failed),
        3.0
    );
    let failures = [("job", job.as_str()), ("outcome", "failure")];
    assert_eq!(
        sum(&samples, "bitbucket_access_job_runs_total", &failures),
        3.0
    );
    assert_eq!(
        sum(
            &samples,
            "bitbucket_access_job_consecutive_failures",
            &[("job", job.as_str())]
        ),
        3.0
    );
    // Every attempt was refused, and each is counted by its status.
    let requests = "bitbucket_access_http_requests_total";
    let refused = sum(&samples, requests, &[("status", "403")]);
    assert!(refused > 0.0);
    assert_eq!(refused as u64, sim.total_requests());
    assert!(store
        .repositories(&sync_support::slug(&ws))
        .await
        .expect("read")
        .is_empty());
    running.shutdown().await;
}

on_both_backends!(
    metrics_parse_and_match_what_happened,
    three_failed_syncs_of_a_workspace_make_readyz_fail,
);

/// Two instances on one PostgreSQL, each with its own client and an hourly budget of 20
/// requests for a world that needs more: whichever syncs first spends the 20, and the other,
/// learning it from the store, spends nothing more within the hour.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_postgres_keep_within_one_budget() {
    let Some(db) = support_db::postgres_db().await else {
        return;
    };
    support_db::run_on(db, |url| async move {
        const BUDGET: u32 = 20;
        let sim = start_sim(7102).await;
        let workspaces = owned_workspaces(&sim);
        let clock = ManualClock::new(at("2026-12-02T09:59:50Z"));
        let store = bitbucket_access::store::open(&url).await.expect("store");
        let mut first = sim_config(&sim, &url, &workspaces, BUDGET);
        first.schedules.sync = cron("0 * * * * *");
        let mut second = sim_config(&sim, &url, &workspaces, BUDGET);
        second.schedules.sync = cron("30 * * * * *");
        let a = start(first, &store, &clock).await;
        let b = start(second, &store, &clock).await;
        asleep(&clock, 6).await;

        let ws = workspaces[0].clone();
        clock.set(at("2026-12-02T10:00:00Z"));
        wait_for_success(&a, &format!("sync:{ws}")).await;
        wait_for_success(&a, "identity-refresh").await;
        asleep(&clock, 6).await;
        let after_first = sim.total_requests();
        assert!(after_first > 0);

        clock.set(at("2026-12-02T10:00:30Z"));
        wait_for_success(&b, &format!("sync:{ws}")).await;
        // (Its identity refresh is skipped: the first instance's matching is fresh.)
        asleep(&clock, 6).await;
        let total = sim.total_requests();
        println!(
            "two instances, budget {BUDGET}/h: first spent {after_first}, second {}",
            total - after_first
        );
        assert!(
            total <= u64::from(BUDGET),
            "{total} requests for a budget of {BUDGET}"
        );
        // Without the store's accounting the second would have spent its own 20.
        assert!(
            after_first >= u64::from(BUDGET) - 5,
            "the first should spend its hour"
        );
        a.shutdown().await;
        b.shutdown().await;
    })
    .await;
}
