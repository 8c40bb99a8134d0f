//! Black-box tests of `bitbucket-access validate`, `manifest` and the global options, running
//! the real binary as a user would. The cases are the "Done when" list of issue 2.

mod support_paths;

use assert_cmd::Command;
use std::path::Path;
use tempfile::TempDir;

const TOKEN: &str = "tok-CLI-SECRET-7f3a9c";
const JIRA_KEY: &str = "jira-CLI-SECRET-51b2";
const PASSWORD: &str = "legacy-CLI-PASSWORD-88d1";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary with a config file holding `json`, the secrets in the environment and the
/// most talkative logging, so any leak would show.
fn run_with_config(json: &str, args: &[&str]) -> (Run, TempDir) {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("bitbucket-access.json");
    std::fs::write(&path, json).expect("write config");
    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary built");
    cmd.current_dir(dir.path())
        .env_remove("BITBUCKET_ACCESS_CONFIG")
        .env("BB_TOKEN", TOKEN)
        .env("JIRA_KEY", JIRA_KEY)
        .env("RUST_LOG", "trace")
        .args(["--log-format", "json", "--config"])
        .arg(&path)
        .args(args);
    (finish(cmd), dir)
}

fn finish(mut cmd: Command) -> Run {
    let out = cmd.output().expect("runs");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn assert_no_secret(run: &Run) {
    for secret in [TOKEN, JIRA_KEY, PASSWORD] {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "the secret {secret} leaked:\nstdout: {}\nstderr: {}",
            run.stdout,
            run.stderr
        );
    }
}

const ENTITLE_WITH_ENV: &str = r#"{"email": "svc@acme.com", "app_token": "${BB_TOKEN}",
 "jira_credentials": {"url": "https://acme.atlassian.net", "key": "${JIRA_KEY}", "user": "svc@acme.com"}}"#;

#[test]
fn the_entitle_json_with_env_secrets_validates() {
    let (run, dir) = run_with_config(ENTITLE_WITH_ENV, &["validate"]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    let path = dir.path().join("bitbucket-access.json");
    assert!(
        run.stdout
            .starts_with(&format!("config OK: {}", path.display())),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("svc@acme.com (API token set, hidden)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("https://acme.atlassian.net"),
        "{}",
        run.stdout
    );
    assert_no_secret(&run);
}

/// Each broken config exits 2 and names the pointer of its mistake.
fn assert_rejected(json: &str, pointer: &str, words: &[&str]) {
    let (run, _dir) = run_with_config(json, &["validate"]);
    assert_eq!(
        run.code, 2,
        "config {json} should exit 2; stderr: {}",
        run.stderr
    );
    let line = run
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{pointer}: ")))
        .unwrap_or_else(|| panic!("no line for {pointer} in:\n{}", run.stderr));
    for word in words {
        assert!(
            line.contains(word),
            "the line for {pointer} lacks {word:?}: {line}"
        );
    }
    assert!(
        run.stdout.is_empty(),
        "nothing on stdout for a bad config: {}",
        run.stdout
    );
    assert_no_secret(&run);
}

#[test]
fn a_missing_app_token_is_named() {
    assert_rejected(
        r#"{"email": "svc@acme.com", "jira_credentials": {"url": "https://acme.atlassian.net", "key": "${JIRA_KEY}", "user": "svc@acme.com"}}"#,
        "/app_token",
        &["required"],
    );
}

#[test]
fn jira_credentials_without_key_are_named() {
    assert_rejected(
        r#"{"email": "svc@acme.com", "app_token": "${BB_TOKEN}", "jira_credentials": {"url": "https://acme.atlassian.net", "user": "svc@acme.com"}}"#,
        "/jira_credentials/key",
        &["required"],
    );
}

#[test]
fn a_non_https_jira_url_is_named() {
    assert_rejected(
        r#"{"email": "svc@acme.com", "app_token": "${BB_TOKEN}", "jira_credentials": {"url": "http://acme.atlassian.net", "key": "${JIRA_KEY}", "user": "svc@acme.com"}}"#,
        "/jira_credentials/url",
        &["https://"],
    );
}

#[test]
fn the_legacy_app_password_shape_is_refused_with_advice() {
    let json = format!(r#"{{"user": "bob", "app_password": "{PASSWORD}"}}"#);
    assert_rejected(
        &json,
        "/app_password",
        &[
            "2026",
            "410",
            "API token",
            "id.atlassian.com",
            "read:workspace:bitbucket",
            "`email`",
        ],
    );
}

#[test]
fn an_unknown_field_is_named() {
    assert_rejected(
        r#"{"email": "svc@acme.com", "app_token": "${BB_TOKEN}", "grant_policy": {"max_duraton": "8h"}}"#,
        "/grant_policy/max_duraton",
        &["unknown field", "max_duration"],
    );
}

#[test]
fn a_bad_cron_expression_is_named() {
    assert_rejected(
        r#"{"email": "svc@acme.com", "app_token": "${BB_TOKEN}", "schedules": {"audit": "at dawn"}}"#,
        "/schedules/audit",
        &["cron"],
    );
}

#[test]
fn a_key_written_twice_is_named() {
    assert_rejected(
        r#"{"email": "svc@acme.com", "app_token": "${BB_TOKEN}", "app_token": "${BB_TOKEN}"}"#,
        "/app_token",
        &["\"app_token\"", "more than once"],
    );
}

#[test]
fn a_device_as_secret_file_is_refused_at_once() {
    assert_rejected(
        r#"{"email": "svc@acme.com", "app_token_file": "/dev/zero"}"#,
        "/app_token_file",
        &["/dev/zero", "not a regular file"],
    );
}

#[test]
fn a_config_saved_with_a_byte_order_mark_validates() {
    let (run, _dir) = run_with_config(&format!("\u{feff}{ENTITLE_WITH_ENV}"), &["validate"]);
    assert_eq!(run.code, 0, "stderr: {}", run.stderr);
    assert!(run.stdout.starts_with("config OK: "), "{}", run.stdout);
    assert_no_secret(&run);
}

#[test]
fn an_inline_token_does_not_leak_when_the_config_is_wrong() {
    let json = format!(
        r#"{{"email": "not-an-email", "app_token": "{TOKEN}", "app_token_file": "x", "unknown": 1}}"#
    );
    let (run, _dir) = run_with_config(&json, &["validate"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("/app_token_file: give only one of"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("/unknown: unknown field"),
        "{}",
        run.stderr
    );
    assert_no_secret(&run);
}

#[test]
fn all_problems_are_listed_at_once() {
    let json = r#"{"email": "svc@acme.com", "colour": "red",
      "jira_credentials": {"url": "http://acme.atlassian.net", "user": "svc@acme.com"},
      "schedules": {"sync": "0 * * * *"}}"#;
    let (run, _dir) = run_with_config(json, &["validate"]);
    assert_eq!(run.code, 2);
    for pointer in [
        "/app_token:",
        "/colour:",
        "/jira_credentials/key:",
        "/jira_credentials/url:",
        "/schedules/sync:",
    ] {
        assert!(
            run.stderr.contains(pointer),
            "missing {pointer} in:\n{}",
            run.stderr
        );
    }
    assert!(run.stderr.contains("has 5 problems"), "{}", run.stderr);
}

#[test]
fn a_missing_config_file_exits_2_and_says_how_to_name_one() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary");
    cmd.current_dir(dir.path())
        .env_remove("BITBUCKET_ACCESS_CONFIG")
        .arg("validate");
    let run = finish(cmd);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("bitbucket-access.json"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("BITBUCKET_ACCESS_CONFIG"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_config_path_can_come_from_the_environment() {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("elsewhere.json");
    std::fs::write(&path, ENTITLE_WITH_ENV).expect("write");
    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary");
    cmd.current_dir(Path::new("/"))
        .env("BITBUCKET_ACCESS_CONFIG", &path)
        .env("BB_TOKEN", TOKEN)
        .env("JIRA_KEY", JIRA_KEY)
        .arg("validate");
    let run = finish(cmd);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("elsewhere.json"), "{}", run.stdout);
}

#[test]
fn bad_usage_exits_2_and_help_exits_0() {
    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary");
    cmd.arg("no-such-command");
    assert_eq!(finish(cmd).code, 2);

    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary");
    cmd.args(["--log-format", "xml", "validate"]);
    assert_eq!(finish(cmd).code, 2);

    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary");
    cmd.arg("--help");
    let run = finish(cmd);
    assert_eq!(run.code, 0);
    for word in ["validate", "manifest", "--config", "--log-format"] {
        assert!(
            run.stdout.contains(word),
            "--help lacks {word}: {}",
            run.stdout
        );
    }
}

#[test]
fn manifest_prints_connector_json() {
    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary");
    cmd.arg("manifest");
    let run = finish(cmd);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let printed: serde_json::Value =
        serde_json::from_str(&run.stdout).expect("the manifest is JSON");
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(support_paths::package_root().join("connector.json"))
            .expect("connector.json"),
    )
    .expect("JSON");
    assert_eq!(printed, shipped);
    assert_eq!(printed["id"], "bitbucket-access");
}
