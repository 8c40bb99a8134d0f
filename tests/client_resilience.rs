//! The Bitbucket client against wiremock when things go wrong: 429 and 5xx retries, the request
//! budget, error hints, authentication rules, redirects, timeouts and secrecy.

mod client_support;

use bitbucket_access::bitbucket::{
    templates, ApiError, Auth, BitbucketClient, Budget, BudgetSettings, ErrorKind, PermissionLevel,
    PermissionTarget,
};
use client_support::*;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

#[tokio::test]
async fn retries_429_without_retry_after_then_succeeds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(ResponseTemplate::new(429).set_body_raw(
            b"Rate limit for this resource has been exceeded".to_vec(),
            "text/plain",
        ))
        .up_to_n_times(2)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "user", "account_id": "557058:x", "display_name": "Svc"
        })))
        .mount(&server)
        .await;
    let client = client(&server);
    let me = client.user().await.expect("third attempt succeeds");
    assert_eq!(me.account_id.as_deref(), Some("557058:x"));
    assert_eq!(requests_to(&server).await.len(), 3);
    // Every attempt counts against the budget.
    assert_eq!(client.requests_used(), 3);
    assert_eq!(client.request_counts()["GET /user"], 3);
}

#[tokio::test]
async fn gives_up_after_max_attempts_on_429_and_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(
            ResponseTemplate::new(429)
                .set_body_string("Rate limit for this resource has been exceeded"),
        )
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/workspaces/acme"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let client = BitbucketClient::builder(settings(&server, api_token()))
        .retry_policy(fast_retry(4))
        .build()
        .expect("client");

    let err = client.user().await.expect_err("always 429");
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.status, Some(429));
    assert!(err.hint.contains("4 attempts"), "{}", err.hint);
    let err = client
        .workspaces()
        .get("acme")
        .await
        .expect_err("always 503");
    assert_eq!(err.kind, ErrorKind::Server);
    let received = requests_to(&server).await;
    assert_eq!(
        received
            .iter()
            .filter(|r| r.url.path() == "/2.0/user")
            .count(),
        4
    );
    assert_eq!(
        received
            .iter()
            .filter(|r| r.url.path() == "/2.0/workspaces/acme")
            .count(),
        4
    );
}

#[tokio::test]
async fn retry_after_is_honoured_and_total_wait_is_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"type": "user"})))
        .mount(&server)
        .await;
    let start = Instant::now();
    client(&server)
        .user()
        .await
        .expect("succeeds after waiting");
    assert!(start.elapsed() >= Duration::from_millis(950));

    // A Retry-After beyond the total wait allowed ends the retries at once.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    let start = Instant::now();
    let err = client(&server).user().await.expect_err("gives up");
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(requests_to(&server).await.len(), 1);
}

#[tokio::test]
async fn idempotent_permission_writes_are_retried_on_5xx() {
    let server = MockServer::start().await;
    let user_path = "/2.0/repositories/atlassian_tutorial/geordi/permissions-config/users/557058:ba8948b2-49da-43a9-9e8b-e7249b8e324a";
    Mock::given(method("PUT"))
        .and(path(user_path))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(user_path))
        .and(body_json(json!({"permission": "write"})))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(fixture("repository_user_permission_put")),
        )
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path(user_path))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let granted = client
        .permissions()
        .put_user(
            repo(),
            "557058:ba8948b2-49da-43a9-9e8b-e7249b8e324a",
            PermissionLevel::Write,
        )
        .await
        .expect("grant");
    assert_eq!(granted.permission, PermissionLevel::Write);
    client
        .permissions()
        .delete_user(repo(), "557058:ba8948b2-49da-43a9-9e8b-e7249b8e324a")
        .await
        .expect("revoke");
    let counts = client.request_counts();
    assert_eq!(counts[&format!("PUT {}", templates::REPO_USER)], 2);
    assert_eq!(counts[&format!("DELETE {}", templates::REPO_USER)], 1);
}

#[tokio::test]
async fn other_4xx_are_never_retried() {
    for status in [400u16, 401, 402, 403, 404, 410] {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/2.0/repositories/acme/missing"))
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "type": "error", "error": {"message": "nope"}
            })))
            .mount(&server)
            .await;
        let err = client(&server)
            .repositories("acme")
            .get("missing")
            .await
            .expect_err("error status");
        assert_eq!(err.status, Some(status));
        assert_eq!(
            requests_to(&server).await.len(),
            1,
            "status {status} was retried"
        );
    }
}

#[tokio::test]
async fn budget_paces_requests_instead_of_bursting() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"type": "user"})))
        .mount(&server)
        .await;
    // 72,000 an hour is one request every 50 ms; with a burst of one, 20 requests need
    // at least 19 intervals.
    let budget = Arc::new(Budget::with_burst(
        BudgetSettings {
            requests_per_hour: 72_000,
            reserve: 0,
            max_in_flight: 8,
        },
        1,
    ));
    let client = BitbucketClient::builder(settings(&server, api_token()))
        .budget(Arc::clone(&budget))
        .build()
        .expect("client");
    // A clone shares the budget, as every task using the token must.
    let other = client.clone();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let c = if i % 2 == 0 {
            client.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move { c.user().await }));
    }
    for task in tasks {
        task.await.expect("task").expect("request");
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "20 requests took only {elapsed:?}"
    );
    assert_eq!(budget.requests_used(), 20);
    assert_eq!(requests_to(&server).await.len(), 20);
}

#[tokio::test]
async fn budget_limits_requests_in_flight() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "user"}))
                .set_delay(Duration::from_millis(200)),
        )
        .mount(&server)
        .await;
    let mut s = settings(&server, api_token());
    s.budget.max_in_flight = 2;
    let client = BitbucketClient::new(s).expect("client");
    let start = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.user().await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("request");
    }
    // Six 200 ms requests two at a time need three rounds.
    assert!(
        start.elapsed() >= Duration::from_millis(580),
        "{:?}",
        start.elapsed()
    );
}

async fn error_for(status: u16, body: Value, call: &str) -> ApiError {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(&server)
        .await;
    let client = client(&server);
    match call {
        "put_user" => client
            .permissions()
            .put_user(
                repo(),
                "{d301aafa-d676-4ee0-88be-962be7417567}",
                PermissionLevel::Write,
            )
            .await
            .map(|_| ()),
        "user" => client.user().await.map(|_| ()),
        "workspaces" => client.workspaces().list().collect_all().await.map(|_| ()),
        "repository" => client
            .repositories("acme")
            .get("payments-api")
            .await
            .map(|_| ()),
        other => panic!("unknown call {other}"),
    }
    .expect_err("error status")
}

#[tokio::test]
async fn error_hints_tell_the_person_what_to_fix() {
    let err = error_for(
        401,
        json!({"type": "error", "error": {"message": "Token is invalid, expired, or not supported for this endpoint."}}),
        "user",
    )
    .await;
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert!(err.hint.contains("e-mail"), "{}", err.hint);
    assert!(err.hint.contains("expired"), "{}", err.hint);

    let err = error_for(403, fixture("error_scopes"), "put_user").await;
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert_eq!(err.endpoint, templates::REPO_USER);
    assert_eq!(
        err.missing_scopes(),
        vec!["admin:repository:bitbucket", "write:permission:bitbucket"]
    );
    assert!(
        err.hint.contains("write:permission:bitbucket"),
        "{}",
        err.hint
    );
    assert!(err.to_string().contains("write:permission:bitbucket"));

    let err = error_for(
        403,
        json!({"type": "error", "error": {"message": "You must be an admin"}}),
        "put_user",
    )
    .await;
    assert!(
        err.hint.contains("administrator of the repository"),
        "{}",
        err.hint
    );
    // Without Bitbucket's scope list, the hint names what the spec requires for the call.
    assert!(
        err.hint.contains("write:permission:bitbucket"),
        "{}",
        err.hint
    );

    let err = error_for(
        404,
        json!({"type": "error", "error": {"message": "Repository acme/payments-api not found"}}),
        "repository",
    )
    .await;
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(
        err.hint.contains("workspace slug and repository slug"),
        "{}",
        err.hint
    );

    let err = error_for(
        410,
        json!({"type": "error", "error": {"message": "CHANGE-3222 - Functionality has been deprecated"}}),
        "user",
    )
    .await;
    assert_eq!(err.kind, ErrorKind::Gone);
    assert!(err.hint.contains("App passwords"), "{}", err.hint);
    assert!(err.hint.contains("API token"), "{}", err.hint);

    let err = error_for(410, fixture("error_gone_change_2770"), "workspaces").await;
    assert!(err.hint.contains("/2.0/user/workspaces"), "{}", err.hint);

    let err = error_for(
        402,
        json!({"type": "error", "error": {"message": "Plan limit reached"}}),
        "put_user",
    )
    .await;
    assert_eq!(err.kind, ErrorKind::PaymentRequired);
    assert!(err.hint.contains("user limit"), "{}", err.hint);
}

#[tokio::test]
async fn access_tokens_are_refused_permission_endpoints_without_a_request() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"values": []})))
        .mount(&server)
        .await;
    let client = BitbucketClient::new(settings(
        &server,
        Auth::AccessToken(SecretString::from(BEARER.to_owned())),
    ))
    .expect("client");
    let results = vec![
        client
            .permissions()
            .list_users(repo())
            .collect_all()
            .await
            .map(|_| ()),
        client
            .permissions()
            .put_user(repo(), "{x}", PermissionLevel::Read)
            .await
            .map(|_| ()),
        client
            .permissions()
            .delete_group(
                PermissionTarget::Project {
                    workspace: "acme",
                    project_key: "PAY",
                },
                "devs",
            )
            .await,
        client
            .workspaces()
            .permissions("acme")
            .collect_all()
            .await
            .map(|_| ()),
        client
            .permissions()
            .workspace_repositories("acme", None)
            .collect_all()
            .await
            .map(|_| ()),
        client.workspaces().list().collect_all().await.map(|_| ()),
    ];
    for result in results {
        let err = result.expect_err("refused");
        assert_eq!(err.kind, ErrorKind::UnsupportedAuth);
        assert!(err.hint.contains("API token"), "{}", err.hint);
    }
    assert!(requests_to(&server).await.is_empty());

    // Repositories are readable with an access token, sent as Bearer.
    client
        .repositories("acme")
        .list(None)
        .collect_all()
        .await
        .expect("allowed");
    let received = requests_to(&server).await;
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0]
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {BEARER}").as_str())
    );
}

#[tokio::test]
async fn redirects_to_another_host_are_not_followed() {
    let server = MockServer::start().await;
    let attacker = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"type": "user"})))
        .mount(&attacker)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", format!("{}/steal", attacker.uri()).as_str()),
        )
        .mount(&server)
        .await;
    let err = client(&server).user().await.expect_err("redirect refused");
    assert_eq!(err.kind, ErrorKind::Redirect);
    assert!(requests_to(&attacker).await.is_empty());
}

/// A `MakeWriter` collecting every log line in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn no_secret_in_errors_debug_output_or_logs() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "type": "error", "error": {"message": "Token is invalid, expired, or not supported for this endpoint."}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/workspaces/acme"))
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let client = client(&server);
    let unauthorized = client.user().await.expect_err("401");
    let limited = client.workspaces().get("acme").await.expect_err("429");
    let refused = BitbucketClient::new(settings(
        &server,
        Auth::AccessToken(SecretString::from(BEARER.to_owned())),
    ))
    .expect("client")
    .workspaces()
    .list()
    .collect_all()
    .await
    .expect_err("refused");

    let basic = basic_header();
    let encoded = basic.trim_start_matches("Basic ");
    let mut outputs = vec![
        unauthorized.to_string(),
        format!("{unauthorized:?}"),
        limited.to_string(),
        format!("{limited:?}"),
        refused.to_string(),
        format!("{refused:?}"),
        format!("{client:?}"),
        format!("{:?}", settings(&server, api_token())),
    ];
    let log_text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8 logs");
    assert!(
        log_text.contains("/user"),
        "spans name the endpoint template: {log_text}"
    );
    outputs.push(log_text);
    for output in outputs {
        assert!(!output.contains(TOKEN), "token leaked: {output}");
        assert!(
            !output.contains(encoded),
            "Basic credentials leaked: {output}"
        );
        assert!(!output.contains(BEARER), "access token leaked: {output}");
    }
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried_within_bounds() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/user"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"type": "user"}))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&server)
        .await;
    let mut s = settings(&server, api_token());
    s.read_timeout = Duration::from_millis(200);
    let client = BitbucketClient::builder(s)
        .retry_policy(fast_retry(2))
        .build()
        .expect("client");
    let start = Instant::now();
    let err = client.user().await.expect_err("timed out");
    assert_eq!(err.kind, ErrorKind::Timeout);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(client.requests_used(), 2);
}
