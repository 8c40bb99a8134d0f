//! The Jira client against wiremock: paging of `users/search` and `user/bulk`, hidden e-mail
//! addresses, the scoped-token 401, retries and secrecy. Bodies come from the official Jira
//! OpenAPI examples recorded in `tests/resources/`.

use bitbucket_access::bitbucket::RetryPolicy;
use bitbucket_access::jira::{AccountType, JiraClient, JiraErrorKind, JiraSettings, JiraUser};
use futures::TryStreamExt;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::time::Duration;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const USER: &str = "svc@acme.com";
const KEY: &str = "jira-classic-token-secret";

fn fixture(name: &str) -> Value {
    let text = match name {
        "users_search" => include_str!("resources/jira_users_search.json"),
        "user_bulk" => include_str!("resources/jira_user_bulk.json"),
        "myself" => include_str!("resources/jira_myself.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture is JSON")
}

fn client_for(url: &str) -> JiraClient {
    let mut settings = JiraSettings::new(
        url.parse().expect("URL"),
        USER,
        SecretString::from(KEY.to_owned()),
    );
    settings.read_timeout = Duration::from_secs(5);
    JiraClient::with_retry(
        settings,
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_total_wait: Duration::from_secs(2),
        },
    )
    .expect("client")
}

fn user(i: usize, email: Option<&str>) -> Value {
    let mut u = json!({"accountId": format!("acc-{i}"), "accountType": "atlassian",
                       "active": true, "displayName": format!("User {i}")});
    if let Some(e) = email {
        u["emailAddress"] = json!(e);
    }
    u
}

async fn requests_to(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn myself_authenticates_with_basic_user_and_key() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{KEY}"))
    );
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .and(header("authorization", basic.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("myself")))
        .expect(1)
        .mount(&server)
        .await;
    let me = client_for(&server.uri()).myself().await.expect("myself");
    assert_eq!(me.account_id, "5b10a2844c20165700ede21g");
    assert_eq!(me.email.as_deref(), Some("mia@example.com"));
    assert_eq!(me.account_type, AccountType::Atlassian);
}

#[tokio::test]
async fn users_search_pages_until_a_short_page_and_hides_no_email_as_none() {
    let server = MockServer::start().await;
    // The recorded example has no emailAddress at all: hidden by privacy settings.
    let example = fixture("users_search");
    let example_len = example.as_array().expect("array").len();
    Mock::given(method("GET"))
        .and(path("/rest/api/3/users/search"))
        .and(query_param("startAt", "0"))
        .and(query_param("maxResults", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            user(0, Some("a@acme.com")),
            user(1, Some("")),
            user(2, None)
        ])))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/users/search"))
        .and(query_param("startAt", "3"))
        .respond_with(ResponseTemplate::new(200).set_body_json(example))
        .mount(&server)
        .await;
    assert!(
        example_len < 3,
        "the example page must be short for this test"
    );
    let users: Vec<JiraUser> = client_for(&server.uri())
        .users_search_paged(3)
        .try_collect()
        .await
        .expect("users");
    assert_eq!(users.len(), 3 + example_len);
    assert_eq!(users[0].email.as_deref(), Some("a@acme.com"));
    assert_eq!(users[1].email, None);
    assert_eq!(users[2].email, None);
    assert!(users[3..].iter().all(|u| u.email.is_none()));
    assert_eq!(users[3].display_name, "Mia Krystof");
    assert_eq!(requests_to(&server).await.len(), 2);
}

#[tokio::test]
async fn users_search_stops_on_an_empty_page_and_uses_pages_of_1000() {
    let server = MockServer::start().await;
    let full: Vec<Value> = (0..1000).map(|i| user(i, None)).collect();
    Mock::given(method("GET"))
        .and(path("/rest/api/3/users/search"))
        .and(query_param("startAt", "0"))
        .and(query_param("maxResults", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(full))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/users/search"))
        .and(query_param("startAt", "1000"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let users: Vec<JiraUser> = client_for(&server.uri())
        .users_search()
        .try_collect()
        .await
        .expect("users");
    assert_eq!(users.len(), 1000);
    assert_eq!(requests_to(&server).await.len(), 2);
}

#[tokio::test]
async fn a_cut_short_users_page_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/users/search"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            br#"[{"accountId":"a","displayName":"A"},{"accountId":"#.to_vec(),
            "application/json",
        ))
        .mount(&server)
        .await;
    let err = client_for(&server.uri())
        .users_search()
        .try_collect::<Vec<_>>()
        .await
        .expect_err("truncated");
    assert_eq!(err.kind, JiraErrorKind::Incomplete);
}

#[tokio::test]
async fn users_bulk_asks_in_chunks_of_50_and_follows_next_page() {
    let server = MockServer::start().await;
    let next_page = format!("{}/rest/api/3/user/bulk?cursor=2", server.uri());
    Mock::given(method("GET"))
        .and(path("/rest/api/3/user/bulk"))
        .and(query_param("cursor", "2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "isLast": true, "values": [user(999, Some("late@acme.com"))]
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/user/bulk"))
        .and(query_param("maxResults", "50"))
        .respond_with(move |req: &Request| {
            let ids: Vec<String> = req
                .url
                .query_pairs()
                .filter(|(k, _)| k == "accountId")
                .map(|(_, v)| v.into_owned())
                .collect();
            let values: Vec<Value> = ids
                .iter()
                .map(|id| json!({"accountId": id, "accountType": "atlassian", "active": true, "displayName": id}))
                .collect();
            // The first chunk claims a second page.
            if ids.first().map(String::as_str) == Some("id-0") {
                ResponseTemplate::new(200).set_body_json(json!({
                    "isLast": false, "nextPage": next_page, "values": values
                }))
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"isLast": true, "values": values}))
            }
        })
        .mount(&server)
        .await;
    let ids: Vec<String> = (0..120).map(|i| format!("id-{i}")).collect();
    let users = client_for(&server.uri())
        .users_bulk(&ids)
        .await
        .expect("bulk");
    assert_eq!(users.len(), 121);
    // The second page of the first chunk comes right after that chunk.
    assert_eq!(users[50].email.as_deref(), Some("late@acme.com"));
    let received = requests_to(&server).await;
    assert_eq!(received.len(), 4);
    for req in &received {
        let count = req
            .url
            .query_pairs()
            .filter(|(k, _)| k == "accountId")
            .count();
        assert!(count <= 50, "{count} ids in one request");
    }
}

#[tokio::test]
async fn recorded_bulk_example_decodes() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/user/bulk"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("user_bulk")))
        .mount(&server)
        .await;
    let users = client_for(&server.uri())
        .users_bulk(&["5b10a2844c20165700ede21g".to_owned()])
        .await
        .expect("bulk");
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].email.as_deref(), Some("mia@example.com"));
    assert!(users[0].active);
}

#[tokio::test]
async fn scoped_token_401_is_recognised_and_explained() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(
            ResponseTemplate::new(401).set_body_json(
                json!({"code": 401, "message": "Unauthorized; scope does not match"}),
            ),
        )
        .mount(&server)
        .await;
    let err = client_for(&server.uri()).myself().await.expect_err("401");
    assert_eq!(err.kind, JiraErrorKind::ScopedToken);
    assert!(err.hint.contains("classic API token"), "{}", err.hint);
    assert!(
        err.hint.contains("api.atlassian.com/ex/jira"),
        "{}",
        err.hint
    );
    assert_eq!(requests_to(&server).await.len(), 1, "401 is not retried");

    // A plain 401 still mentions the scoped-token pitfall, next to the wrong-key case.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_string("Client must be authenticated to access this resource."),
        )
        .mount(&server)
        .await;
    let err = client_for(&server.uri()).myself().await.expect_err("401");
    assert_eq!(err.kind, JiraErrorKind::Unauthorized);
    assert!(err.hint.contains("classic API token"), "{}", err.hint);
}

#[tokio::test]
async fn retries_429_with_retry_after_and_gives_up_on_persistent_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/myself"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("myself")))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/rest/api/3/user"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    client.myself().await.expect("second attempt");
    let err = client.user("acc-1").await.expect_err("500");
    assert_eq!(err.kind, JiraErrorKind::Server);
    let counts = client.request_counts();
    assert_eq!(counts["GET /rest/api/3/myself"], 2);
    assert_eq!(counts["GET /rest/api/3/user"], 3);
}

#[tokio::test]
async fn no_secret_in_jira_errors_or_debug() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"errorMessages": ["Forbidden"], "errors": {}})),
        )
        .mount(&server)
        .await;
    let client = client_for(&server.uri());
    let err = client
        .search_by_email("alice@acme.com")
        .await
        .expect_err("403");
    assert_eq!(err.kind, JiraErrorKind::Forbidden);
    assert!(err.hint.contains("Browse users and groups"));
    for output in [err.to_string(), format!("{err:?}"), format!("{client:?}")] {
        assert!(!output.contains(KEY), "key leaked: {output}");
    }
}
