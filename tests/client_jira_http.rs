//! The Jira client on the shared HTTP layer, built as the commands build it
//! (`connect::jira_client`): it spends its own budget, never Bitbucket's, and it keeps to the
//! configured `api` timeouts.

mod http_support;

use bitbucket_access::config::{Config, DatabaseUrl, JiraCredentials};
use bitbucket_access::connect;
use bitbucket_access::http::{Budget, BudgetSettings, RetryPolicy, Scrubber};
use bitbucket_access::jira::{JiraClient, JiraErrorKind, JiraSettings};
use http_support::{Reply, Server};
use secrecy::SecretString;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EMAIL: &str = "svc@acme.com";
const KEY: &str = "jira-key-for-http-tests";

fn myself() -> Reply {
    Reply::json(
        200,
        &json!({"accountId": "acc-1", "accountType": "atlassian", "active": true,
                "displayName": "Service"}),
    )
}

fn config(server: &Server) -> Config {
    Config::for_simulator(
        server.url.parse().expect("url"),
        EMAIL,
        SecretString::from("bitbucket-token".to_owned()),
        Some(JiraCredentials {
            url: server.url.parse().expect("url"),
            user: EMAIL.into(),
            key: SecretString::from(KEY.to_owned()),
            gateway_url: server.url.parse().expect("url"),
        }),
        DatabaseUrl::parse("sqlite::memory:", Path::new(".")).expect("database url"),
    )
}

#[tokio::test]
async fn jira_requests_spend_jiras_budget_not_bitbuckets() {
    let server = Server::start(|_, _| myself()).await;
    let config = config(&server);
    let bitbucket = connect::bitbucket_client(&config).expect("bitbucket client");
    let jira = connect::jira_client(&config)
        .expect("jira configured")
        .expect("jira client");
    for _ in 0..3 {
        jira.myself().await.expect("myself");
    }
    assert_eq!(jira.budget().requests_used(), 3);
    assert_eq!(jira.request_counts()["GET /rest/api/3/myself"], 3);
    assert_eq!(bitbucket.requests_used(), 0);
    assert!(!Arc::ptr_eq(jira.budget(), bitbucket.budget()));

    // A cap on Jira's budget stops Jira requests before they are sent.
    jira.budget().cap_requests(Some(1));
    jira.myself().await.expect("within the cap");
    let err = jira.myself().await.expect_err("past the cap");
    assert_eq!(err.kind, JiraErrorKind::Budget, "{err}");
    assert_eq!(server.received().len(), 4);
    assert_eq!(bitbucket.requests_used(), 0);
}

#[tokio::test]
async fn a_tiny_jira_budget_paces_its_requests() {
    let server = Server::start(|_, _| myself()).await;
    // 7,200 requests an hour is one every half second, with no burst beyond one.
    let budget = Arc::new(Budget::with_burst(
        BudgetSettings {
            requests_per_hour: 7_200,
            reserve: 0,
            max_in_flight: 4,
        },
        1,
    ));
    let settings = JiraSettings::new(
        server.url.parse().expect("url"),
        EMAIL,
        SecretString::from(KEY.to_owned()),
    );
    let jira = JiraClient::with_parts(
        settings,
        RetryPolicy::immediate(1),
        Arc::clone(&budget),
        Scrubber::new(),
    )
    .expect("client");
    let start = Instant::now();
    for _ in 0..3 {
        jira.myself().await.expect("myself");
    }
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(950), "{took:?}");
    assert_eq!(budget.requests_used(), 3);
}

#[tokio::test]
async fn a_slow_jira_times_out_per_the_configured_timeouts() {
    let server = Server::start(|_, _| Reply::Trickle {
        every: Duration::from_millis(100),
    })
    .await;
    let mut config = config(&server);
    config.api.connect_timeout = Duration::from_millis(500);
    config.api.read_timeout = Duration::from_secs(1);
    let jira = connect::jira_client_with(&config, RetryPolicy::immediate(1))
        .expect("jira configured")
        .expect("jira client");
    let start = Instant::now();
    let err = jira.myself().await.expect_err("times out");
    let took = start.elapsed();
    assert_eq!(err.kind, JiraErrorKind::Timeout, "{err}");
    // The attempt deadline is the read timeout (the whole-response timeout): one second.
    assert!(err.message.contains("1 s"), "{err}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn jira_echoing_its_key_is_scrubbed() {
    let server = Server::start(|req, _| {
        let auth = req.authorization().unwrap_or_default();
        Reply::json(
            401,
            &json!({"errorMessages": [format!("bad header {auth}, key {KEY}")]}),
        )
    })
    .await;
    let jira = connect::jira_client(&config(&server))
        .expect("jira configured")
        .expect("jira client");
    let err = jira.myself().await.expect_err("401");
    let text = format!("{err} {err:?}");
    assert!(!text.contains(KEY), "{text}");
    assert!(!text.contains("Basic "), "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}
