//! The config hardening catalogue (issue 9, item 6): duplicate keys, token and email bounds,
//! linear list checks, `${NAME}` inside strings, the README's examples as written, a byte order
//! mark, bounded secret files, and error messages that state the real bound. Each case asserts
//! the exact problem a user would read.

mod support_paths;

use bitbucket_access::config::{Config, ConfigError};
use secrecy::ExposeSecret;
use std::path::Path;
use std::time::{Duration, Instant};

fn env(name: &str) -> Option<String> {
    match name {
        "BITBUCKET_TOKEN" => Some("tok-from-env".into()),
        "JIRA_TOKEN" => Some("jira-from-env".into()),
        "PGPASSWORD" => Some("pg-secret".into()),
        "SERVER_TOKEN" => Some("srv-from-env".into()),
        "ORG_API_KEY" => Some("org-from-env".into()),
        _ => None,
    }
}

fn from_text(text: &str) -> Result<Config, ConfigError> {
    Config::from_json_str(text, &env, Path::new("/"))
}

/// The problems of a config that must be refused, as `<pointer>: <message>` lines.
fn problems(text: &str) -> Vec<String> {
    match from_text(text) {
        Ok(_) => panic!("accepted a config that must be refused: {text:.200}"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

/// A minimal valid config with one more field (written as JSON text after a comma).
fn with(extra: &str) -> String {
    format!(r#"{{"email": "svc@acme.com", "app_token": "tok", {extra}}}"#)
}

#[test]
fn a_duplicate_key_is_named_with_its_pointer() {
    assert_eq!(
        problems(&with(
            r#""grant_policy": {"require_ticket": true, "require_ticket": false}"#
        )),
        ["/grant_policy/require_ticket: the key \"require_ticket\" is written more than once in the same object; keep one (which one counts would otherwise be a guess)"]
    );
    assert_eq!(
        problems(r#"{"email": "a@acme.com", "app_token": "t", "email": "b@acme.com"}"#),
        ["/email: the key \"email\" is written more than once in the same object; keep one (which one counts would otherwise be a guess)"]
    );
}

#[test]
fn tokens_with_control_or_non_ascii_characters_are_refused() {
    let control = "/app_token: contains a line break, tab, space, NUL or other control character; a token is printable ASCII, so check for a stray newline or a copy from a terminal";
    for token in [r"tok\r\nen", r"tok\u0000en", r"tok\ten", "tok en"] {
        assert_eq!(
            problems(&format!(
                r#"{{"email": "svc@acme.com", "app_token": "{token}"}}"#
            )),
            [control],
            "{token}"
        );
    }
    assert_eq!(
        problems(r#"{"email": "svc@acme.com", "app_token": "tøken"}"#),
        ["/app_token: contains a non-ASCII character; a token is printable ASCII, so check for a typographic quote or a look-alike letter"]
    );
    assert_eq!(
        problems(&with(
            r#""jira_credentials": {"url": "https://acme.atlassian.net", "user": "svc@acme.com", "key": "a\nb"}"#
        )),
        [control.replace("/app_token", "/jira_credentials/key")]
    );
    assert_eq!(
        problems(&with(r#""server": {"api_token": "x\u0000y"}"#)),
        [control.replace("/app_token", "/server/api_token")]
    );
}

#[test]
fn a_bad_token_is_reported_together_with_a_schema_problem() {
    assert_eq!(
        problems(r#"{"email": "svc@acme.com", "app_token": "tok\r\n", "colour": "blue"}"#),
        [
            "/app_token: contains a line break, tab, space, NUL or other control character; a token is printable ASCII, so check for a stray newline or a copy from a terminal",
            "/colour: unknown field (allowed here: api, app_token, app_token_file, atlassian_admin, audit_policy, database_url, email, grant_policy, identity, jira_credentials, mass_change_guard, request_budget, schedules, server, workspaces)",
        ]
    );
}

#[test]
fn a_token_longer_than_1024_characters_is_refused_by_its_length() {
    let long = "t".repeat(1025);
    let found = problems(&format!(
        r#"{{"email": "svc@acme.com", "app_token": "{long}"}}"#
    ));
    assert_eq!(
        found,
        ["/app_token: is 1025 characters long; a token has at most 1024"]
    );
    let longest = "t".repeat(1024);
    assert!(from_text(&format!(
        r#"{{"email": "svc@acme.com", "app_token": "{longest}"}}"#
    ))
    .is_ok());
}

#[test]
fn a_ten_megabyte_email_is_refused_without_being_echoed() {
    let huge = format!("{}@acme.com", "a".repeat(10 * 1024 * 1024));
    let err = from_text(&format!(r#"{{"email": "{huge}", "app_token": "t"}}"#))
        .expect_err("a 10 MB email");
    assert_eq!(
        err.problems()[0].to_string(),
        "/email: is 10485769 characters long; an email address has at most 254"
    );
    let shown = format!("{err}\n{err:?}");
    assert!(shown.len() < 500, "the error is {} bytes long", shown.len());
    assert!(!shown.contains("aaaaaaaa"));
}

#[test]
fn emails_are_bounded_and_free_of_control_characters() {
    let at_most = format!("{}@acme.com", "a".repeat(254 - "@acme.com".len()));
    assert!(from_text(&format!(r#"{{"email": "{at_most}", "app_token": "t"}}"#)).is_ok());
    let one_more = format!("a{at_most}");
    assert_eq!(
        problems(&format!(r#"{{"email": "{one_more}", "app_token": "t"}}"#)),
        ["/email: is 255 characters long; an email address has at most 254"]
    );
    assert_eq!(
        problems(r#"{"email": "svc@acme.com\r\nBcc: x@evil.io", "app_token": "t"}"#),
        ["/email: contains a space, line break, tab, NUL or other control character; write the email address alone"]
    );
}

#[test]
fn a_64000_workspace_list_validates_in_well_under_a_second() {
    let slugs: Vec<String> = (0..64_000).map(|i| format!("\"ws-{i}\"")).collect();
    let text = with(&format!(r#""workspaces": [{}]"#, slugs.join(",")));
    let started = Instant::now();
    let config = from_text(&text).expect("64,000 distinct slugs are valid");
    let took = started.elapsed();
    assert_eq!(config.workspaces.len(), 64_000);
    assert!(took < Duration::from_secs(1), "took {took:?}");

    // A repeat at the very end is still found, and named by its own pointer.
    let repeated = with(&format!(r#""workspaces": [{},"ws-7"]"#, slugs.join(",")));
    assert_eq!(
        problems(&repeated),
        ["/workspaces/64000: lists the workspace ws-7 a second time"]
    );
}

#[test]
fn references_work_inside_strings_and_double_dollar_is_literal() {
    let config = from_text(&with(
        r#""database_url": "postgres://ba:${PGPASSWORD}@db.internal/ba""#,
    ))
    .expect("an embedded reference");
    assert_eq!(
        config.database_url.expose_url(),
        "postgres://ba:pg-secret@db.internal/ba"
    );
    let config =
        from_text(r#"{"email": "svc@acme.com", "app_token": "a$${B}c-${BITBUCKET_TOKEN}"}"#)
            .expect("an escaped reference");
    assert_eq!(config.app_token.expose_secret(), "a${B}c-tok-from-env");
    assert_eq!(
        problems(&with(
            r#""database_url": "postgres://ba:${PG_UNSET}@db.internal/ba""#
        )),
        ["/database_url: refers to the environment variable PG_UNSET, which is not set; set it, or write the value itself"]
    );
}

/// The ```json blocks of the README's sections about writing a config, exactly as written.
fn readme_config_examples() -> Vec<String> {
    let readme = std::fs::read_to_string(support_paths::package_root().join("README.md"))
        .expect("README.md");
    let mut blocks = Vec::new();
    let mut in_section = false;
    let mut block: Option<String> = None;
    for line in readme.lines() {
        if let Some(title) = line.strip_prefix("## ") {
            in_section = title == "Using it with your Bitbucket" || title == "Configuration";
            continue;
        }
        let fence = line.trim_start();
        match &mut block {
            Some(text) if fence.starts_with("```") => {
                blocks.push(std::mem::take(text));
                block = None;
            }
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
            None if in_section && fence == "```json" => block = Some(String::new()),
            None => {}
        }
    }
    blocks
}

#[test]
fn the_readme_config_examples_validate_as_written() {
    let examples = readme_config_examples();
    assert!(
        examples.len() >= 2,
        "expected the Entitle JSON and the full example, found {} blocks",
        examples.len()
    );
    // The files the full example names, relative to the config's folder as the README says.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("secrets")).expect("mkdir");
    std::fs::write(
        dir.path().join("secrets/bitbucket_token"),
        "tok-from-file\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("identity-overrides.csv"),
        "account_id,email\n",
    )
    .expect("write");
    for example in &examples {
        if let Err(e) = Config::from_json_str(example, &env, dir.path()) {
            panic!("the README example does not validate:\n{example}\n{e}");
        }
    }
}

#[test]
fn a_byte_order_mark_at_the_start_is_accepted() {
    let config = from_text(&format!("\u{feff}{}", with(r#""workspaces": ["acme"]"#)))
        .expect("a config saved with a BOM");
    assert_eq!(config.workspaces, ["acme"]);
}

fn with_token_file(path: &Path) -> Vec<String> {
    let text = format!(
        r#"{{"email": "svc@acme.com", "app_token_file": {}}}"#,
        serde_json::Value::from(path.to_str().expect("utf-8 path"))
    );
    problems(&text)
}

#[test]
fn secret_files_must_be_small_regular_files() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shown = dir.path().display();
    assert_eq!(
        with_token_file(dir.path()),
        [format!("/app_token_file: names {shown}, which is not a regular file (a directory, device or pipe); point it at a file that holds only the secret")]
    );
    assert_eq!(
        with_token_file(Path::new("/dev/zero")),
        ["/app_token_file: names /dev/zero, which is not a regular file (a directory, device or pipe); point it at a file that holds only the secret"]
    );
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 64 * 1024 + 1]).expect("write");
    assert_eq!(
        with_token_file(&big),
        [format!("/app_token_file: names {}, which holds 65537 bytes; a secret file may hold at most 65536 bytes (64 KiB), so check the path", big.display())]
    );
    let fine = dir.path().join("token");
    std::fs::write(&fine, "  tok-in-file \r\n").expect("write");
    let text = format!(
        r#"{{"email": "svc@acme.com", "app_token_file": {}}}"#,
        serde_json::Value::from(fine.to_str().expect("utf-8 path"))
    );
    let config = from_text(&text).expect("a trimmed token file");
    assert_eq!(config.app_token.expose_secret(), "tok-in-file");
}

#[cfg(unix)]
#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    assert_eq!(
        with_token_file(&fifo),
        [format!("/app_token_file: names {}, which is not a regular file (a directory, device or pipe); point it at a file that holds only the secret", fifo.display())]
    );
}

#[test]
fn cron_errors_state_the_real_range() {
    assert!(from_text(&with(r#""schedules": {"sync": "0 59 23 31 12 Sun"}"#)).is_ok());
    let cases = [
        ("0 60 * * * *", "minutes must be 0–59 (60 given)"),
        ("60 0 * * * *", "seconds must be 0–59 (60 given)"),
        ("0 0 24 * * *", "hours must be 0–23 (24 given)"),
        ("0 0 0 0 * *", "day of month must be 1–31 (0 given)"),
        ("0 0 0 * 13 *", "month must be 1–12 (13 given)"),
        (
            "0 0/61 * * * *",
            "the step of minutes must be 1–59 (61 given)",
        ),
        (
            "0 50-70 * * * *",
            "the minutes range 50-70 must lie within 0–59 and start at or before its end",
        ),
    ];
    for (expression, detail) in cases {
        assert_eq!(
            problems(&with(&format!(r#""schedules": {{"sync": "{expression}"}}"#))),
            [format!("/schedules/sync: is not a valid cron expression ({detail}); write six fields with seconds first, such as \"0 0 6 * * Mon-Fri\"")],
            "{expression}"
        );
    }
}

#[test]
fn the_mass_change_guard_is_configured_within_its_bounds() {
    let config = from_text(&with(
        r#""mass_change_guard": {"max_percent": 20, "min_count": 5}"#,
    ))
    .expect("a valid guard");
    assert_eq!(config.mass_change_guard.max_percent, 20);
    assert_eq!(config.mass_change_guard.min_count, 5);
    let defaults = from_text(&with(r#""workspaces": ["acme"]"#)).expect("valid");
    assert_eq!(defaults.mass_change_guard.max_percent, 50);
    assert_eq!(defaults.mass_change_guard.min_count, 10);
    let refused = problems(&with(r#""mass_change_guard": {"max_percent": 0}"#));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(
        refused,
        ["/mass_change_guard/max_percent: must be at least 1"],
        "the error names the field and the real bound"
    );
}

#[test]
fn grant_policy_on_conflict_defaults_to_keep_and_names_a_bad_value() {
    use bitbucket_access::config::OnConflict;
    let default = from_text(&with(r#""grant_policy": {}"#)).expect("accepted");
    assert_eq!(default.grant_policy.on_conflict, OnConflict::Keep);
    let enforce =
        from_text(&with(r#""grant_policy": {"on_conflict": "enforce"}"#)).expect("accepted");
    assert_eq!(enforce.grant_policy.on_conflict, OnConflict::Enforce);
    let refused = problems(&with(r#""grant_policy": {"on_conflict": "overwrite"}"#));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("/grant_policy/on_conflict:"),
        "{refused:?}"
    );
}

#[test]
fn the_direct_user_permissions_switch_is_a_boolean_off_by_default() {
    let on = from_text(&with(
        r#""audit_policy": {"flag_direct_user_permissions": true}"#,
    ))
    .expect("a valid switch");
    assert!(on.audit_policy.flag_direct_user_permissions);
    let defaults = from_text(&with(r#""workspaces": ["acme"]"#)).expect("valid");
    assert!(!defaults.audit_policy.flag_direct_user_permissions);
    let refused = problems(&with(
        r#""audit_policy": {"flag_direct_user_permissions": "yes"}"#,
    ));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("/audit_policy/flag_direct_user_permissions: "),
        "the error names the field: {refused:?}"
    );
}
