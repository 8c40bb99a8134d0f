//! Loading configs as a user would write them: the Entitle JSON unchanged, `${VAR}` secrets,
//! secret files, defaults, and every kind of mistake reported with its JSON pointer, without
//! ever showing a secret.

mod support_paths;

use bitbucket_access::config::{Backend, Config, ConfigError, ReportFormat};
use bitbucket_access::domain::ProjectLevel;
use secrecy::ExposeSecret;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every secret value used by the fixtures and the injected environment.
const SECRETS: &[&str] = &[
    "tok-ENTITLE-LITERAL-0001",
    "jira-LITERAL-0002",
    "tok-FROM-FILE-0003",
    "jira-FROM-FILE-0004",
    "legacy-PASSWORD-0005",
    "tok-BROKEN-0006",
    "db-PASSWORD-0007",
    "tok-ENV-SECRET-0008",
    "jira-ENV-SECRET-0009",
    "srv-ENV-SECRET-0010",
];

fn env(name: &str) -> Option<String> {
    match name {
        "BB_TOKEN" => Some("tok-ENV-SECRET-0008".into()),
        "JIRA_KEY" => Some("jira-ENV-SECRET-0009".into()),
        "SERVER_TOKEN" => Some("srv-ENV-SECRET-0010".into()),
        _ => None,
    }
}

fn fixtures() -> PathBuf {
    support_paths::package_root().join("tests/fixtures/configs")
}

fn load(rel: &str) -> Result<Config, ConfigError> {
    let path = fixtures().join(rel);
    let text = std::fs::read_to_string(&path).expect("fixture readable");
    Config::from_json_str(&text, &env, path.parent().expect("has a parent"))
}

fn assert_no_secret(text: &str, context: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{context} shows the secret {secret}:\n{text}"
        );
    }
}

fn expected() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    let v: Value = serde_json::from_str(&text).expect("json");
    let mut out = BTreeMap::new();
    for group in ["semantic", "invalid"] {
        for (name, pointers) in v[group].as_object().expect("object") {
            let list = pointers
                .as_array()
                .expect("array")
                .iter()
                .map(|p| p.as_str().expect("str").to_string())
                .collect();
            out.insert(name.clone(), list);
        }
    }
    out
}

#[test]
fn the_entitle_json_loads_unchanged() {
    let config = load("valid/entitle.json").expect("the Entitle shape is accepted");
    assert_eq!(config.bitbucket_email(), "svc@acme.com");
    assert_eq!(config.app_token.expose_secret(), "tok-ENTITLE-LITERAL-0001");
    let jira = config.jira.as_ref().expect("jira configured");
    assert_eq!(jira.url.host_str(), Some("acme.atlassian.net"));
    assert_eq!(jira.user, "svc@acme.com");
    assert_eq!(jira.key.expose_secret(), "jira-LITERAL-0002");
    assert_no_secret(&format!("{config:?}"), "Debug of Config");
}

#[test]
fn env_references_are_resolved_and_defaults_apply() {
    let config = load("valid/entitle_env.json").expect("valid");
    assert_eq!(config.app_token.expose_secret(), "tok-ENV-SECRET-0008");
    assert_eq!(
        config.jira.as_ref().expect("jira").key.expose_secret(),
        "jira-ENV-SECRET-0009"
    );
    assert!(
        config.workspaces.is_empty(),
        "no list means every administered workspace"
    );
    assert_eq!(config.database_url.backend(), Backend::Sqlite);
    let db = fixtures().join("valid/bitbucket-access.db");
    assert_eq!(
        config.database_url.expose_url(),
        format!("sqlite://{}", db.display())
    );
    assert_eq!(config.request_budget.requests_per_hour, 1000);
    assert_eq!(config.request_budget.reserve, 100);
    assert_eq!(config.request_budget.max_in_flight, 4);
    assert_eq!(
        config.api.bitbucket_url.as_str(),
        "https://api.bitbucket.org/"
    );
    assert_eq!(config.api.connect_timeout, Duration::from_secs(10));
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert!(config.server.api_token.is_none());
    assert_eq!(
        config.grant_policy.default_duration,
        Duration::from_secs(8 * 3600)
    );
    assert_eq!(
        config.grant_policy.allowed_levels,
        vec![
            ProjectLevel::Read,
            ProjectLevel::Write,
            ProjectLevel::CreateRepo
        ]
    );
    assert_eq!(config.schedules.sync.expression(), "0 0 * * * *");
    assert!(config
        .schedules
        .expiry
        .schedule()
        .upcoming(chrono::Utc)
        .next()
        .is_some());
    assert_no_secret(&format!("{config:?}"), "Debug of Config");
}

#[test]
fn every_field_of_the_full_example_reaches_the_typed_config() {
    let config = load("valid/full.json").expect("valid");
    assert_eq!(config.workspaces, vec!["acme", "acme-labs"]);
    assert_eq!(config.database_url.backend(), Backend::Postgres);
    assert!(config
        .database_url
        .expose_url()
        .contains("db-PASSWORD-0007"));
    assert_eq!(config.schedules.audit.expression(), "0 0 6 * * Mon-Fri");
    let g = &config.grant_policy;
    assert_eq!(
        (g.default_duration, g.max_duration),
        (
            Duration::from_secs(4 * 3600),
            Duration::from_secs(7 * 86400)
        )
    );
    assert_eq!(
        g.allowed_levels,
        vec![ProjectLevel::Read, ProjectLevel::Write, ProjectLevel::Admin]
    );
    assert!(!g.allow_standing_grants && g.require_ticket);
    let a = &config.audit_policy;
    assert_eq!(a.allowed_email_domains, vec!["acme.com", "acme-labs.io"]);
    assert_eq!(
        (a.max_admins_per_repository, a.max_workspace_owners),
        (Some(3), Some(2))
    );
    assert!(a.flag_direct_user_permissions);
    assert_eq!(a.expired_grant_grace, Duration::from_secs(600));
    assert_eq!(a.report_formats.len(), 4);
    assert!(a.report_formats.contains(&ReportFormat::Html));
    assert_eq!(a.report_dir, fixtures().join("valid/audit-out"));
    assert_eq!(config.request_budget.requests_per_hour, 800);
    assert_eq!(config.request_budget.reserve, 150);
    assert_eq!(config.request_budget.max_in_flight, 2);
    assert_eq!(
        config.api.bitbucket_url.host_str(),
        Some("bitbucket-proxy.acme.com")
    );
    assert_eq!(config.api.read_timeout, Duration::from_secs(60));
    assert_eq!(config.server.listen.port(), 9090);
    assert_eq!(
        config
            .server
            .api_token
            .as_ref()
            .expect("token")
            .expose_secret(),
        "srv-ENV-SECRET-0010"
    );
    assert_eq!(
        config.identity.overrides_file,
        Some(fixtures().join("valid/../identity-overrides.csv"))
    );
    assert_no_secret(&format!("{config:?}"), "Debug of the full Config");
}

#[test]
fn secrets_can_come_from_files() {
    let config = load("valid/secret_files.json").expect("valid");
    assert_eq!(config.app_token.expose_secret(), "tok-FROM-FILE-0003");
    assert_eq!(
        config.jira.as_ref().expect("jira").key.expose_secret(),
        "jira-FROM-FILE-0004"
    );
}

#[test]
fn plain_http_is_accepted_for_loopback_hosts() {
    let config = load("valid/loopback_simulator.json").expect("valid");
    assert_eq!(config.api.bitbucket_url.as_str(), "http://127.0.0.1:18080/");
    assert_eq!(
        config.jira.as_ref().expect("jira").url.host_str(),
        Some("localhost")
    );
    for url in [
        "http://127.9.9.9:1",
        "http://[::1]:8080",
        "http://LOCALHOST",
    ] {
        let text = format!(
            r#"{{"email": "a@b.io", "app_token": "t", "api": {{"bitbucket_url": "{url}"}}}}"#
        );
        assert!(
            Config::from_json_str(&text, &env, Path::new("/")).is_ok(),
            "{url} should be accepted"
        );
    }
    for url in [
        "http://10.0.0.1",
        "http://localhost.evil.com",
        "http://[::2]",
    ] {
        let text = format!(
            r#"{{"email": "a@b.io", "app_token": "t", "api": {{"bitbucket_url": "{url}"}}}}"#
        );
        let err = Config::from_json_str(&text, &env, Path::new("/")).expect_err(url);
        assert_eq!(err.problems()[0].pointer, "/api/bitbucket_url", "{url}");
    }
}

#[test]
fn each_bad_example_names_exactly_its_pointers_and_no_secret() {
    let cases = expected();
    assert!(cases.len() >= 35);
    for (name, pointers) in cases {
        let err = load(&name).expect_err(&name);
        let mut got: Vec<String> = err.problems().iter().map(|p| p.pointer.clone()).collect();
        got.sort();
        got.dedup();
        assert_eq!(got, pointers, "{name}:\n{err}");
        let shown = format!("{err}\n{err:?}");
        assert_no_secret(&shown, &name);
        for line in err.to_string().lines().skip(1) {
            assert!(
                line.contains(": "),
                "{name}: each problem reads `<pointer>: <sentence>`: {line}"
            );
        }
    }
}

#[test]
fn an_unset_variable_is_named_with_its_pointer() {
    let err = load("semantic/unset_env.json").expect_err("unset");
    assert_eq!(
        err.to_string().lines().nth(1),
        Some("/app_token: refers to the environment variable NOT_SET_ANYWHERE, which is not set; set it, or write the value itself")
    );
}

#[test]
fn the_legacy_shape_explains_app_passwords_and_the_scopes_to_ask_for() {
    let err = load("invalid/legacy_app_password.json").expect_err("legacy");
    let text = err.to_string();
    assert_eq!(
        err.problems().len(),
        1,
        "one clear message, not a list of schema complaints:\n{text}"
    );
    for needle in [
        "2026",
        "410",
        "CHANGE-3222",
        "id.atlassian.com",
        "API token",
        "`email`",
        "read:repository:bitbucket",
        "write:permission:bitbucket",
        "admin:project:bitbucket",
    ] {
        assert!(
            text.contains(needle),
            "the legacy message lacks {needle}:\n{text}"
        );
    }
}

#[test]
fn unknown_fields_suggest_the_intended_name() {
    let err = load("invalid/typo_in_policy.json").expect_err("typo");
    assert!(
        err.to_string().contains("did you mean `max_duration`?"),
        "{err}"
    );
}

#[test]
fn several_problems_are_reported_together_across_schema_and_semantic_checks() {
    let text = r#"{"email": "svc@acme.com", "app_token": "tok-ENTITLE-LITERAL-0001", "colour": 1,
        "schedules": {"sync": "bad cron"}, "jira_credentials": {"url": "http://acme.atlassian.net", "user": "svc@acme.com"}}"#;
    let err = Config::from_json_str(text, &env, Path::new("/")).expect_err("invalid");
    let pointers: Vec<&str> = err.problems().iter().map(|p| p.pointer.as_str()).collect();
    assert_eq!(
        pointers,
        vec![
            "/colour",
            "/jira_credentials/key",
            "/jira_credentials/url",
            "/schedules/sync"
        ]
    );
    assert_no_secret(&err.to_string(), "mixed errors");
}

#[test]
fn a_secret_of_the_wrong_type_is_described_without_its_value() {
    let text = r#"{"email": "svc@acme.com", "app_token": ["tok-ENTITLE-LITERAL-0001"], "jira_credentials": {"url": "https://a.atlassian.net", "user": "a@b.io", "key": {"v": "jira-LITERAL-0002"}}}"#;
    let err = Config::from_json_str(text, &env, Path::new("/")).expect_err("invalid");
    assert_no_secret(&format!("{err}{err:?}"), "type errors on secrets");
    assert!(
        err.to_string().contains("/app_token: must be a string"),
        "{err}"
    );
}

#[test]
fn broken_json_gives_a_position_and_no_content() {
    let err = load("broken/truncated.json").expect_err("broken");
    let text = err.to_string();
    assert!(
        text.contains("is not valid JSON") && text.contains("line 2"),
        "{text}"
    );
    assert_no_secret(&text, "JSON syntax error");
}

#[test]
fn database_url_debug_hides_the_password() {
    let config = load("valid/full.json").expect("valid");
    let shown = format!("{:?} {}", config.database_url, config.database_url);
    assert!(!shown.contains("db-PASSWORD-0007"), "{shown}");
    assert!(shown.contains("db.internal:5432"), "{shown}");
}

#[test]
fn for_simulator_builds_a_usable_config_with_defaults() {
    let url = url::Url::parse("http://127.0.0.1:9999").expect("url");
    let db = bitbucket_access::config::DatabaseUrl::parse("sqlite::memory:", Path::new("/"))
        .expect("db");
    let config = Config::for_simulator(
        url.clone(),
        "demo@example.com",
        "sim".to_string().into(),
        None,
        db,
    );
    assert_eq!(config.api.bitbucket_url, url);
    assert_eq!(config.bitbucket_email(), "demo@example.com");
    assert_eq!(config.request_budget.requests_per_hour, 1000);
    assert!(!format!("{config:?}").contains("\"sim\""));
}

#[test]
fn integers_written_as_whole_floats_and_huge_durations_are_handled_like_the_schema_says() {
    let text = r#"{"email": "a@b.io", "app_token": "t", "request_budget": {"reserve": 10.0}}"#;
    let config = Config::from_json_str(text, &env, Path::new("/")).expect("3.0 is an integer");
    assert_eq!(config.request_budget.reserve, 10);
    let text = r#"{"email": "a@b.io", "app_token": "t", "grant_policy": {"max_duration": "99999999999999999999w"}}"#;
    let err = Config::from_json_str(text, &env, Path::new("/")).expect_err("too long");
    assert_eq!(err.problems()[0].pointer, "/grant_policy/max_duration");
}
