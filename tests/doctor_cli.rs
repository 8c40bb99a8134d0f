//! `bitbucket-access doctor` as a user runs it: the real binary, a config file in a temporary
//! directory whose `api.bitbucket_url` points at an in-process simulator, the token in the
//! environment, and the most talkative logging (`RUST_LOG=debug`, text and JSON), so that any
//! secret that reached stdout, stderr or a log line would be seen.

mod doctor_support;

use assert_cmd::Command;
use bitbucket_sim::SimHandle;
use doctor_support::*;
use serde_json::{json, Value};
use tempfile::TempDir;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Writes a config for `email` (token from `$BB_TOKEN`, Jira key from `$JIRA_KEY`) and runs
/// `doctor` with `args`, logging at debug level in `log_format`.
async fn doctor(
    sim: &SimHandle,
    email: &str,
    token: &str,
    jira: Option<(String, String)>,
    log_format: &str,
    args: &[&str],
) -> Run {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("bitbucket-access.json");
    let mut config = json!({
        "email": email,
        "app_token": "${BB_TOKEN}",
        "database_url": "sqlite::memory:",
        "api": {"bitbucket_url": sim.bitbucket_url()},
    });
    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary built");
    if let Some((user, key)) = jira {
        config["jira_credentials"] = json!({"url": sim.jira_url(), "user": user, "key": "${JIRA_KEY}", "gateway_url": sim.jira_url()});
        cmd.env("JIRA_KEY", key);
    }
    std::fs::write(&path, config.to_string()).expect("write config");
    cmd.current_dir(dir.path())
        .env_remove("BITBUCKET_ACCESS_CONFIG")
        .env("BB_TOKEN", token)
        .env("RUST_LOG", "debug")
        .args(["--log-format", log_format, "--config"])
        .arg(&path)
        .arg("doctor")
        .args(args);
    // The simulator runs on this test's runtime, so the blocking child process waits on
    // another thread.
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .expect("join");
    drop(dir);
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_run_has_no_secret(run: &Run, sim: &SimHandle) {
    let secrets = secrets(sim);
    assert_no_secret("standard output", &run.stdout, &secrets);
    assert_no_secret("standard error (logs)", &run.stderr, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_setup_exits_0_and_names_the_account() {
    let sim = start_sim(501).await;
    let admin_name = sim.with_world(|w| w.admin().expect("admin").display_name.clone());
    let jira = Some(sim.jira_credentials());

    for log_format in ["text", "json"] {
        let run = doctor(
            &sim,
            &sim.admin_email(),
            &sim.admin_token(),
            jira.clone(),
            log_format,
            &[],
        )
        .await;
        assert_eq!(
            run.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        assert!(run.stdout.contains(&admin_name), "{}", run.stdout);
        assert!(
            run.stdout.contains(&sim.admin_account_id()),
            "{}",
            run.stdout
        );
        assert!(run.stdout.contains("No problems"), "{}", run.stdout);
        assert!(
            run.stdout.contains("e-mail addresses visible for"),
            "{}",
            run.stdout
        );
        for (owned, line_end) in [(true, "yes    yes"), (false, "no     no")] {
            let (o, m) = owned_and_member_workspaces(&sim);
            let slug = if owned { &o[0] } else { &m[0] };
            assert!(
                run.stdout
                    .lines()
                    .any(|l| l.contains(slug.as_str()) && l.trim_end().ends_with(line_end)),
                "{slug} row wrong:\n{}",
                run.stdout
            );
        }
        assert!(!run.stderr.is_empty(), "debug logging printed nothing");
        if log_format == "json" {
            assert!(run
                .stderr
                .lines()
                .all(|l| serde_json::from_str::<Value>(l).is_ok()));
        }
        assert_run_has_no_secret(&run, &sim);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_missing_write_permission_exits_1_with_the_scope_to_add() {
    let sim = start_sim(502).await;
    let all = bitbucket_sim::endpoints::connector_scopes();
    let scopes: Vec<&str> = all
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "write:permission:bitbucket")
        .collect();
    let token = sim.issue_token(&sim.admin_email(), &scopes);

    let run = doctor(&sim, &sim.admin_email(), &token, None, "json", &[]).await;

    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let row = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("grant_repository "))
        .expect("grant_repository row");
    assert!(
        row.contains("missing scopes: add write:permission:bitbucket"),
        "{row}"
    );
    assert!(run.stdout.contains("Problems (1):"), "{}", run.stdout);
    assert!(
        run.stdout.contains("fix: create a new API token"),
        "{}",
        run.stdout
    );
    let secrets = [token.clone()];
    assert_no_secret("standard output", &run.stdout, &secrets);
    assert_no_secret("standard error (logs)", &run.stderr, &secrets);
    assert_run_has_no_secret(&run, &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_format_prints_the_report_for_a_wrong_email() {
    let sim = start_sim(503).await;

    let run = doctor(
        &sim,
        "not-the-owner@example.com",
        &sim.admin_token(),
        None,
        "text",
        &["--format", "json"],
    )
    .await;

    assert_eq!(
        run.code, 1,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    let report: Value = serde_json::from_str(&run.stdout).expect("stdout is one JSON document");
    assert_eq!(report["healthy"], false);
    assert_eq!(report["authentication"]["ok"], false);
    assert_eq!(
        report["authentication"]["email"],
        "not-the-owner@example.com"
    );
    let fix = report["problems"][0]["fix"].as_str().expect("a fix");
    assert!(fix.contains("Atlassian account e-mail"), "{fix}");
    assert_eq!(report["capabilities"].as_array().map(Vec::len), Some(11));
    assert_run_has_no_secret(&run, &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_jira_token_works_through_the_gateway_and_doctor_says_so() {
    // (The legacy app password cannot be written in a config file: the config refuses a
    // username in `email`, and says why. doctor_sim.rs covers the 410 it gets from Bitbucket.)
    let sim = start_sim(504).await;
    let (jira_user, _) = sim.jira_credentials();
    let scoped = (jira_user, sim.jira_scoped_token());

    let run = doctor(
        &sim,
        &sim.admin_email(),
        &sim.admin_token(),
        Some(scoped),
        "json",
        &[],
    )
    .await;

    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert!(run.stdout.contains("authentication  OK"), "{}", run.stdout);
    assert!(
        run.stdout.contains("reached through the API gateway"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("scoped token, cloud id"),
        "{}",
        run.stdout
    );
    assert_run_has_no_secret(&run, &sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_cannot_load_exits_2() {
    let sim = start_sim(505).await;
    // An empty token is refused by the config's rules before anything is sent.
    let run = doctor(&sim, "", &sim.admin_token(), None, "text", &[]).await;
    assert_eq!(
        run.code, 2,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(sim.total_requests(), 0);
    assert_run_has_no_secret(&run, &sim);
}
