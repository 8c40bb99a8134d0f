//! The organization events in the program, on SQLite and PostgreSQL: `serve` polls them every
//! `atlassian_admin.poll_interval` (on a manual clock) and an out-of-band change is in the
//! store, as drift naming its actor, after one interval, counted in `/metrics`; `sync --events`
//! applies them once from the command line and says what it did; the audit's drift section
//! shows who made the change in JSON, CSV, Markdown and HTML; without `atlassian_admin`,
//! `sync --events` says what to add.

#[macro_use]
mod support_db;
mod org_support;
mod serve_support;
mod sync_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::AtlassianAdmin;
use bitbucket_access::serve::{self, ServeOptions};
use bitbucket_access::sync::LeaseSettings;
use org_support::*;
use secrecy::SecretString;
use serve_support::{at, cron, dyn_clock, sim_config};
use sync_support::run_cli;
use url::Url;

on_both_backends!(
    serve_records_an_out_of_band_change_within_one_poll_interval,
    sync_events_applies_them_once_and_the_audit_shows_the_actor,
);

/// Waits (at most 20 s) until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn serve_records_an_out_of_band_change_within_one_poll_interval(url: String) {
    let (sim, store, ws) = synced_world(&url, 7311).await;
    let clock = ManualClock::new(at("2026-12-02T10:00:30Z"));
    let mut config = sim_config(&sim, &url, std::slice::from_ref(&ws), 100_000);
    // Full reads, audits and expiry passes stay out of the way of this test.
    config.schedules.sync = cron("0 0 0 1 1 *");
    config.schedules.audit = cron("0 0 0 1 1 *");
    config.schedules.expiry = cron("0 0 0 1 1 *");
    let interval = Duration::from_secs(60);
    let settings = sim.org().settings();
    config.atlassian_admin = Some(AtlassianAdmin {
        org_id: settings.org_id,
        api_key: SecretString::from(settings.api_key),
        url: Url::parse(&sim.org_url()).expect("org url"),
        poll_interval: interval,
    });
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
    let metrics = running.metrics();
    until("the first pass", || metrics.org_events("pass") >= 1).await;

    let actor = other_admin(&sim);
    let (repo, member) = repo_and_member(&sim, &ws, 0);
    grant_as(&sim, actor.clone(), &ws, &repo, &member);
    assert!(drift_of(store.as_ref(), &ws, &repo, &member)
        .await
        .is_empty());
    clock.advance(chrono::Duration::from_std(interval).expect("an interval"));
    until("the second pass", || metrics.org_events("pass") >= 2).await;

    let drift = drift_of(store.as_ref(), &ws, &repo, &member).await;
    assert_eq!(
        drift.len(),
        1,
        "recorded one poll interval after the change"
    );
    assert_eq!(
        drift[0].entry.details["attribution"]["actor_account_id"],
        actor.id.as_str()
    );
    assert_eq!(metrics.org_events("applied"), 1);
    assert!(metrics.org_events("bitbucket_requests") <= 3);
    let page = reqwest::get(format!("http://{}/metrics", running.local_addr()))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains("bitbucket_access_org_events_total{kind=\"applied\"} 1"),
        "{page}"
    );
    running.shutdown().await;
}

fn write_config(
    sim: &bitbucket_sim::SimHandle,
    dir: &std::path::Path,
    url: &str,
    ws: &str,
) -> std::path::PathBuf {
    let settings = sim.org().settings();
    let path = dir.join("bitbucket-access.json");
    let config = serde_json::json!({
        "email": sim.admin_email(),
        "app_token": "${BB_TOKEN}",
        "database_url": url,
        "workspaces": [ws],
        "request_budget": {"requests_per_hour": 100000, "reserve": 0, "max_in_flight": 2},
        "api": {"bitbucket_url": sim.bitbucket_url()},
        "atlassian_admin": {"org_id": settings.org_id, "api_key": settings.api_key, "url": sim.org_url()},
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

fn read_one(dir: &std::path::Path, suffix: &str) -> String {
    let file = std::fs::read_dir(dir)
        .expect("report dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap_or_else(|| panic!("a report file ending in {suffix}"));
    std::fs::read_to_string(file).expect("report file")
}

async fn sync_events_applies_them_once_and_the_audit_shows_the_actor(url: String) {
    let (sim, store, ws) = synced_world(&url, 7312).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(&sim, dir.path(), &url, &ws);
    let first = run_cli(&sim, dir.path(), &config, &["sync", "--events"]).await;
    assert_eq!(first.code, 0, "{}{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("0 event(s)"), "{}", first.stdout);

    let actor = other_admin(&sim);
    let (repo, member) = repo_and_member(&sim, &ws, 0);
    grant_as(&sim, actor.clone(), &ws, &repo, &member);
    let run = run_cli(&sim, dir.path(), &config, &["sync", "--events"]).await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("1 event(s): 1 applied"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1 drift record(s)"), "{}", run.stdout);
    let again = run_cli(&sim, dir.path(), &config, &["sync", "--events"]).await;
    assert!(
        again.stdout.contains("0 event(s)"),
        "not replayed: {}",
        again.stdout
    );
    assert_eq!(drift_of(store.as_ref(), &ws, &repo, &member).await.len(), 1);

    let out = dir.path().join("reports");
    let out_arg = out.to_string_lossy().into_owned();
    let audit = run_cli(
        &sim,
        dir.path(),
        &config,
        &[
            "audit", "--format", "json", "--format", "csv", "--format", "md", "--format", "html",
            "--output", &out_arg,
        ],
    )
    .await;
    assert!(audit.code <= 1, "{}{}", audit.stdout, audit.stderr);
    let json: serde_json::Value =
        serde_json::from_str(&read_one(&out, ".json")).expect("the JSON report");
    let row = json["drift"]["entries"]
        .as_array()
        .expect("drift entries")
        .iter()
        .find(|e| {
            e["subject"]
                .as_str()
                .is_some_and(|s| s.contains(&member) && s.contains(&repo))
        })
        .expect("the change's drift row")
        .clone();
    assert_eq!(row["changed_by"]["account_id"], actor.id.as_str(), "{row}");
    assert_eq!(row["changed_by"]["name"], actor.name.as_str(), "{row}");
    assert_eq!(row["changed_by"]["api_token"], true, "{row}");
    let csv = read_one(&out, "-drift.csv");
    assert!(
        csv.lines()
            .next()
            .expect("header")
            .contains("actor_account_id"),
        "{csv}"
    );
    assert!(csv.contains(&actor.id), "{csv}");
    assert!(read_one(&out, ".md").contains(&actor.name));
    assert!(read_one(&out, ".html").contains(&actor.id));

    let bare = dir.path().join("bare.json");
    let mut plain: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    plain
        .as_object_mut()
        .expect("object")
        .remove("atlassian_admin");
    std::fs::write(&bare, plain.to_string()).expect("write");
    let refused = run_cli(&sim, dir.path(), &bare, &["sync", "--events"]).await;
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("atlassian_admin"),
        "{}",
        refused.stderr
    );
}
