//! The audit job inside `serve`, on a manual clock: at its cron time it writes the report in
//! the configured formats to the configured folder, stores it in the audit history, and
//! `/metrics` shows its findings by kind, the same count as the report it wrote.

#[macro_use]
mod support_db;
mod serve_support;
mod sync_support;

use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::ReportFormat;
use bitbucket_access::serve::{self, ServeOptions};
use bitbucket_access::sync::LeaseSettings;
use serve_support::*;
use std::sync::Arc;
use std::time::{Duration, Instant};
use sync_support::{owned_workspaces, start_sim};

/// Waits (at most 30 s) until `job` has succeeded on `running` and is not running.
async fn wait_until_done(running: &serve::Running, job: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let board = running.board().snapshot();
        let status = board.iter().find(|s| s.job == job).expect("a known job");
        assert!(
            status.last_error.is_none(),
            "{job}: {:?}",
            status.last_error
        );
        if status.last_success.is_some() && !status.running {
            return;
        }
        assert!(Instant::now() < deadline, "{job} did not finish: {board:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_scheduled_audit_writes_its_report_and_its_findings_reach_the_metrics(url: String) {
    let sim = start_sim(7301).await;
    let workspaces = owned_workspaces(&sim);
    let reports = tempfile::tempdir().expect("a report folder");
    let mut config = sim_config(&sim, &url, &workspaces, 100_000);
    config.audit_policy.report_dir = reports.path().to_path_buf();
    config.audit_policy.report_formats = vec![ReportFormat::Json];
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let clock = ManualClock::new(at("2026-12-02T04:59:30Z"));
    let client = bitbucket_access::connect::bitbucket_client(&config).expect("client");
    let mut options = ServeOptions::for_config(&config);
    options.clock = dyn_clock(&clock);
    options.lease = LeaseSettings {
        lease: Duration::from_secs(3600),
        heartbeat: Duration::from_secs(900),
    };
    let running = serve::start(Arc::new(config), Arc::clone(&store), client, options)
        .await
        .expect("serve starts");
    asleep(&clock, 3).await;
    assert!(
        store.last_audit_run().await.expect("history").is_none(),
        "no audit before its time"
    );

    // The 05:00 sync fills the store; 06:00 is the audit's cron time.
    clock.set(at("2026-12-02T05:00:00Z"));
    for ws in &workspaces {
        wait_until_done(&running, &format!("sync:{ws}")).await;
    }
    asleep(&clock, 3).await;
    clock.set(at("2026-12-02T06:00:00Z"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let run = loop {
        if let Some(run) = store.last_audit_run().await.expect("history") {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the audit job did not write a report"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.run.generated_at, at("2026-12-02T06:00:00Z"));
    let written: Vec<_> = std::fs::read_dir(reports.path())
        .expect("the folder")
        .map(|e| e.expect("an entry").path())
        .collect();
    assert_eq!(written.len(), 1, "one JSON file: {written:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&written[0]).expect("the report")).expect("JSON");
    let findings = report["findings"].as_array().expect("findings").len();
    assert_eq!(findings as u64, run.run.findings);

    // Nobody is matched to a person here (no Jira): the report has findings to count.
    assert!(findings > 0, "{report}");

    // The job's success reaches the board, then the metrics carry the report's findings.
    wait_until_done(&running, "audit").await;
    let url = format!("http://{}/metrics", running.local_addr());
    let text = reqwest::get(&url)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("a body");
    let samples = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        sum(&samples, "bitbucket_access_audit_findings", &[]) as usize,
        findings
    );
    running.shutdown().await;
}

on_both_backends!(the_scheduled_audit_writes_its_report_and_its_findings_reach_the_metrics);
