//! The `atlassian_admin` block: accepted with its defaults, every problem named by its JSON
//! pointer with what to do, and the organization API key never shown.

use bitbucket_access::config::{Config, ConfigError, DEFAULT_ORG_POLL_INTERVAL};
use secrecy::ExposeSecret;
use std::path::Path;
use std::time::Duration;

fn env(name: &str) -> Option<String> {
    (name == "ORG_KEY").then(|| "org-key-from-env".to_owned())
}

fn load(admin: &str) -> Result<Config, ConfigError> {
    let text =
        format!(r#"{{"email": "svc@acme.com", "app_token": "tok", "atlassian_admin": {admin}}}"#);
    Config::from_json_str(&text, &env, Path::new("/"))
}

fn problems(admin: &str) -> Vec<String> {
    match load(admin) {
        Ok(_) => panic!("accepted an atlassian_admin block that must be refused: {admin}"),
        Err(e) => e.problems().iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_minimal_block_gets_the_public_api_and_a_one_minute_poll() {
    let config = load(r#"{"org_id": "a1b2-c3", "api_key": "${ORG_KEY}"}"#).expect("loads");
    let admin = config.atlassian_admin.expect("configured");
    assert_eq!(admin.org_id, "a1b2-c3");
    assert_eq!(admin.api_key.expose_secret(), "org-key-from-env");
    assert_eq!(admin.url.as_str(), "https://api.atlassian.com/admin");
    assert_eq!(admin.poll_interval, DEFAULT_ORG_POLL_INTERVAL);
    assert_eq!(DEFAULT_ORG_POLL_INTERVAL, Duration::from_secs(60));
}

#[test]
fn the_key_never_shows_in_debug_output() {
    let config = load(r#"{"org_id": "org1", "api_key": "very-secret-org-key"}"#).expect("loads");
    let shown = format!("{config:?}");
    assert!(!shown.contains("very-secret-org-key"), "{shown}");
    assert!(shown.contains("[redacted]"));
}

#[test]
fn the_key_may_come_from_a_file_and_a_loopback_url_may_be_plain_http() {
    let dir = std::env::temp_dir().join(format!("org-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("org.key"), "file-org-key\n").expect("key file");
    let text = r#"{"email": "svc@acme.com", "app_token": "tok", "atlassian_admin":
        {"org_id": "org1", "api_key_file": "org.key", "url": "http://127.0.0.1:9/admin",
         "poll_interval": "30s"}}"#;
    let config = Config::from_json_str(text, &env, &dir).expect("loads");
    let admin = config.atlassian_admin.expect("configured");
    assert_eq!(admin.api_key.expose_secret(), "file-org-key");
    assert_eq!(admin.url.as_str(), "http://127.0.0.1:9/admin");
    assert_eq!(admin.poll_interval, Duration::from_secs(30));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn plain_http_to_another_host_is_refused() {
    let found =
        problems(r#"{"org_id": "org1", "api_key": "k", "url": "http://proxy.example.com/admin"}"#);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("/atlassian_admin/url: must use https://"),
        "{found:?}"
    );
}

#[test]
fn exactly_one_key_source_is_required() {
    let both = problems(r#"{"org_id": "org1", "api_key": "k", "api_key_file": "f"}"#);
    assert!(both.iter().any(|p| p.contains("api_key")), "{both:?}");
    let none = problems(r#"{"org_id": "org1"}"#);
    assert!(none.iter().any(|p| p.contains("api_key")), "{none:?}");
}

#[test]
fn an_org_id_that_is_not_an_id_is_refused_with_where_to_find_it() {
    let found = problems(r#"{"org_id": "acme/../x", "api_key": "k"}"#);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("/atlassian_admin/org_id:"),
        "{found:?}"
    );
    assert!(found[0].contains("admin.atlassian.com"), "{found:?}");
}

#[test]
fn a_zero_poll_interval_is_refused() {
    let found = problems(r#"{"org_id": "org1", "api_key": "k", "poll_interval": "0s"}"#);
    assert_eq!(
        found,
        ["/atlassian_admin/poll_interval: must be longer than zero"]
    );
}
