//! The Bitbucket client against servers that misbehave on purpose, on loopback: endless and
//! self-looping `next` links, links and redirects to another host, headers then silence, a
//! trickled body, a 10,000-item page, and answers that echo the credentials (the 50 MB body
//! has its own test binary, `hostile_memory.rs`, so that its memory is measured alone).
//! Each case must end with a clear error (or a complete answer) within its bounds; the time
//! each took is printed, and the slowest is the figure quoted for the hardening issue.

mod http_support;

use base64::Engine as _;
use bitbucket_access::bitbucket::{
    ApiError, Auth, BitbucketClient, BudgetSettings, ClientSettings, ErrorKind, Repository,
};
use bitbucket_access::http::{Limits, RetryPolicy};
use http_support::{Reply, Server};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const EMAIL: &str = "svc@acme.com";
const TOKEN: &str = "ATATT3xFf-hostile/test+token=";

/// Every form in which the token could come back.
fn secret_forms() -> Vec<String> {
    let pair = format!("{EMAIL}:{TOKEN}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pair);
    let url_token: String = url::form_urlencoded::byte_serialize(TOKEN.as_bytes()).collect();
    vec![TOKEN.to_owned(), pair, b64, url_token]
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in secret_forms() {
        assert!(!text.contains(&secret), "{what} contains {secret}: {text}");
    }
}

/// Small deadlines, so the slow cases end in seconds; up to three attempts per request.
fn test_limits() -> Limits {
    Limits {
        max_body_bytes: 16 * 1024 * 1024,
        attempt_timeout: Some(Duration::from_secs(1)),
        request_timeout: Duration::from_secs(4),
    }
}

fn client(server: &Server) -> BitbucketClient {
    let mut settings = ClientSettings::new(
        server.url.parse().expect("url"),
        Auth::ApiToken {
            email: EMAIL.into(),
            token: SecretString::from(TOKEN.to_owned()),
        },
    );
    // The per-read timeout is long on purpose: only the attempt deadline can stop a trickle.
    settings.read_timeout = Duration::from_secs(30);
    settings.budget = BudgetSettings {
        requests_per_hour: 3_600_000,
        reserve: 0,
        max_in_flight: 8,
    };
    BitbucketClient::builder(settings)
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
            max_total_wait: Duration::from_secs(1),
        })
        .limits(test_limits())
        .build()
        .expect("client")
}

fn repo(n: u64) -> Value {
    json!({"uuid": format!("{{00000000-0000-4000-8000-{n:012}}}"), "slug": format!("r{n}"),
           "full_name": format!("ws/r{n}"), "name": format!("r{n}"), "is_private": true})
}

fn page_number(target: &str) -> u64 {
    target
        .split_once("page=")
        .and_then(|(_, rest)| rest.split('&').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

async fn list(client: &BitbucketClient) -> Result<Vec<Repository>, ApiError> {
    client.repositories("ws").list(None).collect_all().await
}

/// A text that repeats the request's credentials in every form: the header, its base64, the
/// decoded `email:token`, the token and its URL-encoded form.
fn echo_of(req: &http_support::Received) -> String {
    let auth = req.authorization().unwrap_or_default();
    let b64 = auth.trim_start_matches("Basic ").to_owned();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&b64)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let token = decoded
        .split_once(':')
        .map(|(_, t)| t.to_owned())
        .unwrap_or_default();
    let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    format!("you sent {auth} ({decoded}), b64 {b64}, token {token} / {encoded}")
}

/// Runs `case`, prints how long it took to end, and returns its result.
async fn timed<T>(name: &str, case: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = case.await;
    let took = start.elapsed();
    eprintln!("hostile case {name:<28} ended after {took:?}");
    (out, took)
}

#[tokio::test]
async fn an_endless_next_chain_stops_at_the_request_cap() {
    let server = Server::start(|req, base| {
        let n = page_number(&req.target);
        Reply::json(
            200,
            &json!({"values": [repo(n)], "pagelen": 100,
                    "next": format!("{base}/2.0/repositories/ws?page={}", n + 1)}),
        )
    })
    .await;
    let client = client(&server);
    client.budget().cap_requests(Some(150));
    let (result, took) = timed("endless next, cap 150", list(&client)).await;
    let err = result.expect_err("an endless listing is an error");
    assert_eq!(err.kind, ErrorKind::Budget, "{err}");
    assert!(err.to_string().contains("150"), "{err}");
    assert_eq!(server.received().len(), 150);
    assert_eq!(client.requests_used(), 150);
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[tokio::test]
async fn empty_pages_past_the_reported_size_end_the_listing() {
    let server = Server::start(|req, base| {
        let n = page_number(&req.target);
        Reply::json(
            200,
            &json!({"values": [], "size": 5, "pagelen": 100,
                    "next": format!("{base}/2.0/repositories/ws?page={}", n + 1)}),
        )
    })
    .await;
    let err = list(&client(&server)).await.expect_err("page limit");
    assert_eq!(err.kind, ErrorKind::Incomplete, "{err}");
    assert!(err.message.contains("5 items"), "{err}");
    // ceil(5 / 100) pages plus the slack of three.
    assert_eq!(server.received().len(), 4);
}

#[tokio::test]
async fn short_pages_with_a_next_link_do_not_end_the_listing() {
    let server = Server::start(|req, base| {
        let n = page_number(&req.target);
        let mut page = json!({"values": [repo(n)], "size": 3, "pagelen": 100, "unknown": {"x": 1}});
        if n < 3 {
            page["next"] = json!(format!("{base}/2.0/repositories/ws?page={}", n + 1));
        }
        Reply::json(200, &page)
    })
    .await;
    let repos = list(&client(&server)).await.expect("a complete listing");
    assert_eq!(repos.len(), 3);
}

#[tokio::test]
async fn a_self_looping_next_link_is_an_error_naming_the_repeat() {
    let server = Server::start(|req, base| {
        Reply::json(
            200,
            &json!({"values": [repo(1)], "next": format!("{base}{}", req.target)}),
        )
    })
    .await;
    let (result, _) = timed("self-looping next", list(&client(&server))).await;
    let err = result.expect_err("a loop");
    assert_eq!(err.kind, ErrorKind::Incomplete, "{err}");
    assert!(err.message.contains("repeats a page already read"), "{err}");
    assert!(err.message.contains("/2.0/repositories/ws"), "{err}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn a_next_link_to_another_host_is_refused_and_that_host_hears_nothing() {
    let other = Server::start(|_, _| Reply::json(200, &json!({"values": []}))).await;
    let other_url = other.url.clone();
    let server = Server::start(move |_, _| {
        Reply::json(
            200,
            &json!({"values": [repo(1)], "next": format!("{other_url}/2.0/repositories/ws?page=2")}),
        )
    })
    .await;
    let err = list(&client(&server)).await.expect_err("cross-host next");
    assert_eq!(err.kind, ErrorKind::Incomplete, "{err}");
    assert!(err.message.contains("another host"), "{err}");
    assert!(other.received().is_empty(), "{:?}", other.received());
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused_and_that_host_hears_nothing() {
    let other = Server::start(|_, _| Reply::json(200, &json!({"type": "user"}))).await;
    let location = format!("{}/2.0/user", other.url);
    let server = Server::start(move |_, _| Reply::redirect(&location)).await;
    let err = client(&server)
        .user()
        .await
        .expect_err("cross-host redirect");
    assert_eq!(err.kind, ErrorKind::Redirect, "{err}");
    assert!(err.message.contains("127.0.0.1"), "{err}");
    assert!(other.received().is_empty(), "{:?}", other.received());
}

#[tokio::test]
async fn headers_then_silence_times_out_at_the_attempt_deadline() {
    let server = Server::start(|_, _| Reply::HeadersThenNothing).await;
    let (result, took) = timed("headers then nothing", client(&server).user()).await;
    let err = result.expect_err("timeout");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err.message.contains("attempt deadline of 1 s"), "{err}");
    // An attempt that passed its deadline is retried once, not up to the policy's three
    // attempts: two attempts of one second each, and a short wait between them.
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn a_trickled_body_times_out_although_every_read_is_quick() {
    let server = Server::start(|_, _| Reply::Trickle {
        every: Duration::from_millis(100),
    })
    .await;
    let (result, took) = timed("trickled body", client(&server).user()).await;
    let err = result.expect_err("timeout");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err}");
    assert!(err.to_string().contains("/user"), "{err}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[tokio::test]
async fn a_page_of_10_000_items_is_read_whole() {
    let server = Server::start(|_, _| {
        let values: Vec<Value> = (0..10_000).map(repo).collect();
        Reply::json(
            200,
            &json!({"values": values, "size": 10_000, "pagelen": 100}),
        )
    })
    .await;
    let (result, _) = timed("10,000-item page", list(&client(&server))).await;
    assert_eq!(result.expect("one big page").len(), 10_000);
}

#[tokio::test]
async fn echoed_credentials_never_reach_the_error() {
    let server = Server::start(|req, _| {
        let echo = echo_of(req);
        if req.target.starts_with("/2.0/user") {
            Reply::json(
                400,
                &json!({"type": "error", "error": {"message": echo, "detail": echo}}),
            )
        } else {
            Reply::Full {
                status: 500,
                headers: vec![("Content-Type".into(), "text/plain".into())],
                body: echo.into_bytes(),
            }
        }
    })
    .await;
    let client = client(&server);
    let bad_request = client.user().await.expect_err("400");
    assert_eq!(bad_request.kind, ErrorKind::BadRequest);
    let server_error = list(&client).await.expect_err("500");
    assert_eq!(server_error.kind, ErrorKind::Server);
    for err in [bad_request, server_error] {
        assert!(err.message.contains("[redacted]"), "{err}");
        assert_no_secret("Display", &err.to_string());
        assert_no_secret("Debug", &format!("{err:?}"));
    }
}

/// The `doctor` command as a user runs it against a server that echoes every credential,
/// Bitbucket's and Jira's, in 400 and 500 answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_prints_no_echoed_credential() {
    const JIRA_KEY: &str = "jira-hostile-key-123";
    let server = Server::start(|req, _| {
        let auth = req.authorization().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim_start_matches("Basic "))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        let echo = format!("Authorization: {auth}; decoded {decoded}");
        let status = if req.target.contains("/rest/api/") {
            400
        } else {
            500
        };
        Reply::json(
            status,
            &json!({"error": {"message": echo}, "errorMessages": [echo]}),
        )
    })
    .await;
    let dir = tempfile::TempDir::new().expect("temp dir");
    let path = dir.path().join("config.json");
    let config = json!({
        "email": EMAIL,
        "app_token": "${BB_TOKEN}",
        "database_url": "sqlite::memory:",
        "api": {"bitbucket_url": server.url, "connect_timeout": "2s", "read_timeout": "2s"},
        "jira_credentials": {"url": server.url, "user": EMAIL, "key": "${JIRA_KEY}"},
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    for format in ["table", "json"] {
        let mut cmd = assert_cmd::Command::cargo_bin("bitbucket-access").expect("binary");
        cmd.current_dir(dir.path())
            .env_remove("BITBUCKET_ACCESS_CONFIG")
            .env("BB_TOKEN", TOKEN)
            .env("JIRA_KEY", JIRA_KEY)
            .env("RUST_LOG", "debug")
            .arg("--config")
            .arg(&path)
            .args(["doctor", "--format", format]);
        let start = Instant::now();
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("runs"))
            .await
            .expect("join");
        eprintln!(
            "hostile case doctor ({format}) ended after {:?}",
            start.elapsed()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(stdout.contains("[redacted]"), "{stdout}");
        for text in [&stdout, &stderr] {
            assert_no_secret("doctor output", text);
            assert!(!text.contains(JIRA_KEY), "{text}");
            let jira_pair = format!("{EMAIL}:{JIRA_KEY}");
            let jira_b64 = base64::engine::general_purpose::STANDARD.encode(jira_pair.as_bytes());
            assert!(!text.contains(&jira_b64), "{text}");
        }
        // The interactive retry policy keeps a person waiting seconds, not minutes.
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{:?}",
            start.elapsed()
        );
    }
}

/// The workspace `ws`, as `GET /2.0/workspaces/ws` answers it.
fn workspace_ws() -> Reply {
    Reply::json(
        200,
        &json!({"type": "workspace", "uuid": "{00000000-0000-4000-8000-000000000001}",
                "slug": "ws", "name": "WS"}),
    )
}

/// A sync of workspace `ws` on a fresh in-memory store, with an optional request cap.
async fn sync_ws(
    server: &Server,
    max_requests: Option<u64>,
) -> Result<bitbucket_access::sync::SyncReport, bitbucket_access::sync::SyncError> {
    let store = bitbucket_access::store::open("sqlite::memory:")
        .await
        .expect("store");
    let options = bitbucket_access::sync::SyncOptions {
        workspaces: vec!["ws".into()],
        max_requests,
        ..Default::default()
    };
    bitbucket_access::sync::run(store.as_ref(), &client(server), &options).await
}

/// `sync --max-requests 150` against a server whose every listing is an endless chain of
/// empty pages: the run ends, partial, having sent at most 150 requests.
#[tokio::test]
async fn a_sync_with_max_requests_stops_at_the_cap_on_endless_listings() {
    let server = Server::start(|req, base| {
        let path = req.target.split('?').next().unwrap_or_default().to_owned();
        if path == "/2.0/workspaces/ws" {
            return workspace_ws();
        }
        if path.starts_with("/1.0/") {
            return Reply::json(200, &json!([]));
        }
        let n = page_number(&req.target);
        Reply::json(
            200,
            &json!({"values": [], "pagelen": 100, "next": format!("{base}{path}?page={}", n + 1)}),
        )
    })
    .await;
    let (result, took) = timed("sync --max-requests 150", sync_ws(&server, Some(150))).await;
    let sent = server.received().len();
    eprintln!(
        "the sync sent {sent} requests; result: {:?}",
        result.as_ref().map(|r| &r.outcome)
    );
    assert!(sent <= 150, "{sent} requests sent");
    assert!(took < Duration::from_secs(60), "{took:?}");
    if let Ok(report) = result {
        assert!(
            !report.failures.is_empty(),
            "an endless listing cannot complete"
        );
    }
}

/// A sync whose listings answer 400 and 500 with the credentials echoed: the report, which
/// keeps each failure's message, holds none of them.
#[tokio::test]
async fn a_sync_report_keeps_no_echoed_credential() {
    let server = Server::start(|req, _| {
        let path = req.target.split('?').next().unwrap_or_default().to_owned();
        if path == "/2.0/workspaces/ws" {
            return workspace_ws();
        }
        let echo = echo_of(req);
        if path.contains("permissions") {
            Reply::json(400, &json!({"type": "error", "error": {"message": echo}}))
        } else {
            Reply::Full {
                status: 500,
                headers: Vec::new(),
                body: echo.into_bytes(),
            }
        }
    })
    .await;
    let report = sync_ws(&server, None)
        .await
        .expect("the run ends with a report");
    assert!(!report.failures.is_empty());
    let text = serde_json::to_string(&report).expect("report serializes");
    assert!(text.contains("[redacted]"), "{text}");
    assert_no_secret("sync report", &text);
    assert_no_secret("sync report (Debug)", &format!("{report:?}"));
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused() {
    let server = Server::start(|_, _| Reply::Full {
        status: 200,
        headers: Vec::new(),
        body: vec![b' '; 4096],
    })
    .await;
    let settings = ClientSettings::new(
        server.url.parse().expect("url"),
        Auth::AccessToken(SecretString::from(TOKEN.to_owned())),
    );
    let client = BitbucketClient::builder(settings)
        .limits(Limits {
            max_body_bytes: 1024,
            ..test_limits()
        })
        .build()
        .expect("client");
    let err = client.user().await.expect_err("too large");
    assert_eq!(err.kind, ErrorKind::TooLarge, "{err}");
    assert!(err.message.contains("1024 bytes"), "{err}");
    // Refusing an answer is not a transient failure: it is not asked for again.
    assert_eq!(server.received().len(), 1);
}
