//! `schedules.time_zone`: fixed offsets and IANA names. On a manual clock, on both backends (the
//! scheduler's leases live in the store), a Paris schedule fires at its local times across both
//! changes of the clocks in 2026: a daily 02:30 job runs at the jump on the spring-forward day
//! and once on the fall-back day, while an hourly job keeps its rhythm through both. An unknown
//! zone is a config error naming `/schedules/time_zone` with an example, and `validate` shows
//! the zone.

#[macro_use]
mod support_db;
mod serve_support;

use assert_cmd::Command;
use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::{Config, ScheduleZone};
use bitbucket_access::serve::scheduler::next_after;
use bitbucket_access::serve::{Job, Lane, Metrics, Scheduler, SchedulerSettings};
use bitbucket_access::store::Store;
use chrono::{DateTime, Utc};
use serve_support::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

on_both_backends!(
    a_daily_job_in_paris_runs_at_the_jump_when_clocks_go_forward,
    a_daily_job_in_paris_runs_once_when_clocks_go_back,
);

/// An hourly sync lane and a daily 02:30 audit lane, read in Europe/Paris.
fn paris_lanes() -> Vec<Lane> {
    vec![
        Lane {
            lease: "sync".into(),
            schedule: cron("0 0 * * * *"),
            jobs: vec![Job::Sync {
                workspace: Some("acme".into()),
            }],
        },
        Lane {
            lease: "audit".into(),
            schedule: cron("0 30 2 * * *"),
            jobs: vec![Job::Audit],
        },
    ]
}

/// A running Paris scheduler on `clock`, with its recorder, board and stop signal.
struct Running {
    recorder: Arc<Recorder>,
    board: Arc<bitbucket_access::serve::scheduler::Board>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn start_in_paris(store: &Arc<dyn Store>, clock: &ManualClock) -> Running {
    let recorder = Recorder::new(clock.clone(), Behaviour::Succeed);
    let scheduler = Scheduler::new(
        paris_lanes(),
        Arc::new(Shared(Arc::clone(&recorder))),
        dyn_clock(clock),
        leases(store, clock),
        Arc::new(Metrics::default()),
        SchedulerSettings {
            zone: ScheduleZone::parse("Europe/Paris").expect("a zone"),
            ..SchedulerSettings::default()
        },
    );
    let board = scheduler.board();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move { scheduler.run(stopped).await });
    asleep(clock, 2).await;
    Running {
        recorder,
        board,
        stop,
        task,
    }
}

impl Running {
    fn next_run(&self, job: &str) -> Option<DateTime<Utc>> {
        self.board
            .snapshot()
            .into_iter()
            .find(|s| s.job == job)
            .and_then(|s| s.next_run)
    }

    /// Moves the clock to `time` and waits until `runs` runs in all were recorded and both
    /// lanes sleep again.
    async fn step(&self, clock: &ManualClock, time: &str, runs: usize) {
        clock.set(at(time));
        self.recorder.wait_for_runs(runs).await;
        asleep(clock, 2).await;
        // Nothing more than expected starts a moment later.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            self.recorder.runs().len(),
            runs,
            "at {time}: {:?}",
            self.recorder.runs()
        );
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("the scheduler stops");
    }
}

fn times(list: &[&str]) -> Vec<DateTime<Utc>> {
    list.iter().map(|t| at(t)).collect()
}

async fn a_daily_job_in_paris_runs_at_the_jump_when_clocks_go_forward(url: String) {
    let store = bitbucket_access::store::open(&url).await.expect("store");
    // 29 March 2026, 00:30 CET. At 01:00 UTC Paris goes from 02:00 CET to 03:00 CEST: 02:30
    // does not happen that day.
    let clock = ManualClock::new(at("2026-03-28T23:30:00Z"));
    let s = start_in_paris(&store, &clock).await;
    assert_eq!(s.next_run("sync:acme"), Some(at("2026-03-29T00:00:00Z")));
    assert_eq!(s.next_run("audit"), Some(at("2026-03-29T01:00:00Z")));

    s.step(&clock, "2026-03-29T00:00:00Z", 1).await;
    s.step(&clock, "2026-03-29T00:59:59Z", 1).await;
    // The jump: the hourly sync (03:00 CEST) and the skipped 02:30 audit, once each.
    s.step(&clock, "2026-03-29T01:00:00Z", 3).await;
    s.step(&clock, "2026-03-29T01:30:00Z", 3).await;
    s.step(&clock, "2026-03-29T02:00:00Z", 4).await;
    assert_eq!(
        s.recorder.times_of("sync:acme"),
        times(&[
            "2026-03-29T00:00:00Z",
            "2026-03-29T01:00:00Z",
            "2026-03-29T02:00:00Z"
        ])
    );
    assert_eq!(
        s.recorder.times_of("audit"),
        times(&["2026-03-29T01:00:00Z"])
    );
    // From the next day on, 02:30 is summer time: 00:30 UTC.
    assert_eq!(s.next_run("audit"), Some(at("2026-03-30T00:30:00Z")));
    s.stop().await;
}

async fn a_daily_job_in_paris_runs_once_when_clocks_go_back(url: String) {
    let store = bitbucket_access::store::open(&url).await.expect("store");
    // 25 October 2026, 01:30 CEST. At 01:00 UTC Paris goes from 03:00 CEST back to 02:00 CET:
    // 02:30 happens twice, at 00:30 and at 01:30 UTC.
    let clock = ManualClock::new(at("2026-10-24T23:30:00Z"));
    let s = start_in_paris(&store, &clock).await;
    assert_eq!(s.next_run("sync:acme"), Some(at("2026-10-25T00:00:00Z")));
    assert_eq!(s.next_run("audit"), Some(at("2026-10-25T00:30:00Z")));

    s.step(&clock, "2026-10-25T00:00:00Z", 1).await;
    s.step(&clock, "2026-10-25T00:30:00Z", 2).await;
    // 02:00 CET, the repeated hour: the hourly sync runs again, it is an hour later.
    s.step(&clock, "2026-10-25T01:00:00Z", 3).await;
    // 02:30 CET: the audit already ran at 02:30 today and does not run again.
    s.step(&clock, "2026-10-25T01:30:00Z", 3).await;
    s.step(&clock, "2026-10-25T02:00:00Z", 4).await;
    assert_eq!(
        s.recorder.times_of("sync:acme"),
        times(&[
            "2026-10-25T00:00:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T02:00:00Z"
        ])
    );
    assert_eq!(
        s.recorder.times_of("audit"),
        times(&["2026-10-25T00:30:00Z"])
    );
    // The next day, 02:30 is winter time: 01:30 UTC.
    assert_eq!(s.next_run("audit"), Some(at("2026-10-26T01:30:00Z")));
    s.stop().await;
}

#[test]
fn cron_times_are_read_at_a_fixed_offset_or_in_a_named_zone() {
    let six_daily = cron("0 0 6 * * *");
    let zone = |text: &str| ScheduleZone::parse(text).expect("a zone");
    let next = |z: &str| next_after(&six_daily, zone(z), at("2026-12-02T03:00:00Z"));
    assert_eq!(next("+02:00"), Some(at("2026-12-02T04:00:00Z")));
    assert_eq!(next("UTC"), Some(at("2026-12-02T06:00:00Z")));
    // New York in December is five hours behind UTC, in July four.
    assert_eq!(next("America/New_York"), Some(at("2026-12-02T11:00:00Z")));
    assert_eq!(
        next_after(
            &six_daily,
            zone("America/New_York"),
            at("2026-07-01T00:00:00Z")
        ),
        Some(at("2026-07-01T10:00:00Z"))
    );
    assert!(ScheduleZone::parse("+25:00").is_err());
}

/// Writes a config whose schedules read in `zone`; returns its path.
fn config_with_zone(dir: &tempfile::TempDir, zone: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.json");
    let config = serde_json::json!({
        "email": "svc@example.com",
        "app_token": "tok-not-a-secret",
        "schedules": {"audit": "0 30 2 * * *", "time_zone": zone},
    });
    std::fs::write(&path, config.to_string()).expect("write");
    path
}

#[test]
fn a_config_names_its_time_zone_and_an_unknown_one_is_reported_by_pointer() {
    let dir = tempfile::tempdir().expect("temp dir");
    for zone in ["-05:30", "Europe/Paris"] {
        let config = Config::load(&config_with_zone(&dir, zone)).expect("valid");
        assert_eq!(config.schedules.time_zone.to_string(), zone);
    }
    let err = Config::load(&config_with_zone(&dir, "Europe/Pariss"))
        .expect_err("an unknown zone")
        .to_string();
    assert!(err.contains("/schedules/time_zone"), "{err}");
    assert!(err.contains("\"Europe/Paris\""), "an example: {err}");
}

#[test]
fn validate_shows_the_zone_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let validate = |zone: &str| {
        let out = Command::cargo_bin("bitbucket-access")
            .expect("binary built")
            .current_dir(dir.path())
            .env_remove("BITBUCKET_ACCESS_CONFIG")
            .arg("--config")
            .arg(config_with_zone(&dir, zone))
            .arg("validate")
            .output()
            .expect("runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (code, text) = validate("America/New_York");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("(time zone America/New_York, daylight-saving time followed)"),
        "{text}"
    );
    let (code, text) = validate("Moon/Tranquility");
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("/schedules/time_zone") && text.contains("\"Europe/Paris\""),
        "{text}"
    );
}
