//! The Bitbucket client against wiremock: pagination, retries, the budget, error hints,
//! authentication rules and secrecy. Bodies come from the official OpenAPI examples recorded in
//! `tests/resources/`.

use bitbucket_access::bitbucket::{
    templates, ApiError, Auth, BitbucketClient, Budget, BudgetSettings, ClientSettings, ErrorKind,
    PermissionLevel, PermissionTarget, RetryPolicy, WorkspaceRole,
};
use futures::StreamExt;
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_json, header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const EMAIL: &str = "svc@acme.com";
const TOKEN: &str = "ATATT3xFfGF0-super-secret-token";
const BEARER: &str = "access-token-very-secret";

fn fixture(name: &str) -> Value {
    let text = match name {
        "user_workspaces" => include_str!("resources/user_workspaces.json"),
        "workspace_permissions" => include_str!("resources/workspace_permissions.json"),
        "workspace_repository_permissions" => {
            include_str!("resources/workspace_repository_permissions.json")
        }
        "repository_user_permissions" => include_str!("resources/repository_user_permissions.json"),
        "repository_user_permission_put" => {
            include_str!("resources/repository_user_permission_put.json")
        }
        "repository_group_permissions" => {
            include_str!("resources/repository_group_permissions.json")
        }
        "project_user_permissions" => include_str!("resources/project_user_permissions.json"),
        "project_group_permissions" => include_str!("resources/project_group_permissions.json"),
        "error_scopes" => include_str!("resources/bitbucket_error_scopes.json"),
        "error_gone_change_2770" => include_str!("resources/bitbucket_error_gone_change_2770.json"),
        other => panic!("no fixture {other}"),
    };
    serde_json::from_str(text).expect("fixture is JSON")
}

/// A budget large enough never to pace, so only the tests about pacing see pacing.
fn roomy_budget() -> BudgetSettings {
    BudgetSettings {
        requests_per_hour: 3_600_000,
        reserve: 0,
        max_in_flight: 16,
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        max_total_wait: Duration::from_secs(2),
    }
}

fn settings(server: &MockServer, auth: Auth) -> ClientSettings {
    ClientSettings {
        base_url: server.uri().parse().expect("mock URL"),
        auth,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        budget: roomy_budget(),
    }
}

fn api_token() -> Auth {
    Auth::ApiToken {
        email: EMAIL.to_owned(),
        token: SecretString::from(TOKEN.to_owned()),
    }
}

fn client(server: &MockServer) -> BitbucketClient {
    BitbucketClient::builder(settings(server, api_token()))
        .retry_policy(fast_retry(3))
        .build()
        .expect("client")
}

fn basic_header() -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{EMAIL}:{TOKEN}"))
    )
}

fn repo() -> PermissionTarget<'static> {
    PermissionTarget::Repository {
        workspace: "atlassian_tutorial",
        repo_slug: "geordi",
    }
}

async fn requests_to(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test]
async fn follows_opaque_next_links_and_sends_basic_auth() {
    let server = MockServer::start().await;
    let mut first = fixture("user_workspaces");
    // The second page is reached through a cursor the client cannot guess.
    first["next"] = json!(format!(
        "{}/2.0/user/workspaces?cursor=Zm9vYmFy%3D&pagelen=100",
        server.uri()
    ));
    first.as_object_mut().expect("object").remove("size");
    Mock::given(method("GET"))
        .and(path("/2.0/user/workspaces"))
        .and(query_param("pagelen", "100"))
        .and(query_param_is_missing("cursor"))
        .and(header("authorization", basic_header().as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(first))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/user/workspaces"))
        .and(query_param("cursor", "Zm9vYmFy="))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"type": "workspace_access", "administrator": false,
                        "workspace": {"type": "workspace_base", "slug": "other", "uuid": "{1}"},
                        "unknown_field": {"nested": true}}]
        })))
        .expect(1)
        .mount(&server)
        .await;

    let workspaces = client(&server)
        .workspaces()
        .list()
        .collect_all()
        .await
        .expect("listing");
    assert_eq!(workspaces.len(), 2);
    assert_eq!(workspaces[0].workspace.slug, "bbworkspace1");
    assert!(workspaces[0].administrator);
    assert_eq!(workspaces[1].workspace.slug, "other");
    assert!(!workspaces[1].administrator);

    let first_url = requests_to(&server).await[0].url.clone();
    let fields = first_url
        .query_pairs()
        .find(|(k, _)| k == "fields")
        .map(|(_, v)| v.into_owned())
        .expect("fields= sent");
    assert!(
        fields.split(',').any(|f| f == "next"),
        "fields keeps next: {fields}"
    );
}

#[tokio::test]
async fn short_pages_are_followed_until_the_last() {
    let all = fixture("repository_user_permissions");
    let values = all["values"].as_array().expect("values").clone();
    assert!(values.len() >= 2);
    let path_str = "/2.0/repositories/atlassian_tutorial/geordi/permissions-config/users";
    // A first page of one item (far below its pagelen) with a `next` link, then a last page
    // without: with or without `size`, only the missing `next` ends the listing.
    for size in [Some(values.len()), None] {
        let server = MockServer::start().await;
        let page = |n: u64, items: Vec<Value>, next: Option<String>| {
            let mut body = json!({"pagelen": 100, "page": n, "values": items});
            if let Some(size) = size {
                body["size"] = json!(size);
            }
            if let Some(next) = next {
                body["next"] = json!(next);
            }
            ResponseTemplate::new(200).set_body_json(body)
        };
        let next = format!("{}{path_str}?page=2", server.uri());
        Mock::given(method("GET"))
            .and(path(path_str))
            .and(query_param_is_missing("page"))
            .respond_with(page(1, vec![values[0].clone()], Some(next)))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path(path_str))
            .and(query_param("page", "2"))
            .respond_with(page(2, values[1..].to_vec(), None))
            .mount(&server)
            .await;

        let permissions = client(&server)
            .permissions()
            .list_users(repo())
            .collect_all()
            .await
            .expect("listing");
        assert_eq!(permissions.len(), values.len(), "size {size:?}");
        assert_eq!(requests_to(&server).await.len(), 2, "size {size:?}");
        assert_eq!(permissions[0].permission, PermissionLevel::Admin);
        assert_eq!(
            permissions[0].user.account_id.as_deref(),
            Some("557058:ba8948b2-49da-43a9-9e8b-e7249b8e324a")
        );
    }
}

#[tokio::test]
async fn group_privileges_decode_and_fail_by_kind() {
    let server = MockServer::start().await;
    let body = json!([
        {"repo": "acme/api", "privilege": "write",
         "group": {"name": "Devs", "slug": "devs", "owner": {"display_name": "Acme"}},
         "repository": {"name": "API", "slug": "api", "owner": {"display_name": "Acme"}}},
        {"repo": "acme/web", "privilege": "admin",
         "group": {"name": "Ops", "slug": "ops"},
         "repository": {"name": "Web", "slug": "web"}}
    ]);
    Mock::given(method("GET"))
        .and(path("/1.0/group-privileges/acme"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(&server)
        .await;
    let entries = client(&server)
        .group_privileges("acme")
        .await
        .expect("decodes");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].repo, "acme/api");
    assert_eq!(entries[0].group.slug, "devs");
    assert_eq!(entries[1].privilege, PermissionLevel::Admin);
    assert_eq!(
        requests_to(&server).await[0].url.path(),
        templates::GROUP_PRIVILEGES.replace("{workspace}", "acme")
    );

    let kind_for = |status: u16, body: Value| async move {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        client(&server)
            .group_privileges("acme")
            .await
            .expect_err("an error")
            .kind
    };
    let gone = json!({"type": "error", "error": {"message": "Functionality has been deprecated",
        "data": {"announcement_url": "https://developer.atlassian.com/cloud/bitbucket/changelog"}}});
    assert_eq!(kind_for(410, gone).await, ErrorKind::Gone);
    let refused = json!({"type": "error", "error": {"message": "Access denied"}});
    assert_eq!(kind_for(403, refused.clone()).await, ErrorKind::Forbidden);
    assert_eq!(kind_for(404, refused).await, ErrorKind::NotFound);
    // A page instead of the documented array, and entries without their fields.
    assert_eq!(
        kind_for(200, json!({"pagelen": 10, "values": []})).await,
        ErrorKind::Decode
    );
    assert_eq!(
        kind_for(200, json!([{"repository": "acme/api"}])).await,
        ErrorKind::Decode
    );
}

async fn listing_error(body: ResponseTemplate) -> ApiError {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/workspaces/acme/projects"))
        .respond_with(body)
        .mount(&server)
        .await;
    client(&server)
        .projects("acme")
        .list()
        .collect_all()
        .await
        .expect_err("an incomplete listing must fail")
}

#[tokio::test]
async fn a_page_cut_short_is_an_error_not_a_shorter_list() {
    let truncated =
        r#"{"pagelen": 100, "size": 2, "values": [{"key": "PAY", "name": "Payments"}, {"key": "IN"#;
    let err = listing_error(
        ResponseTemplate::new(200).set_body_raw(truncated.as_bytes().to_vec(), "application/json"),
    )
    .await;
    assert_eq!(err.kind, ErrorKind::Incomplete);
    assert_eq!(err.endpoint, templates::PROJECTS);

    let err =
        listing_error(ResponseTemplate::new(200).set_body_json(json!({"pagelen": 100}))).await;
    assert_eq!(err.kind, ErrorKind::Incomplete);
    assert!(err.message.contains("values"));

    // Bitbucket announced three projects but the last page ended after one.
    let err = listing_error(ResponseTemplate::new(200).set_body_json(json!({
        "size": 3, "values": [{"key": "PAY"}]
    })))
    .await;
    assert_eq!(err.kind, ErrorKind::Incomplete);
    assert!(err.message.contains('3'), "{}", err.message);
}

#[tokio::test]
async fn streaming_yields_items_before_the_failure() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/workspaces/acme/projects"))
        .and(query_param_is_missing("page"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"key": "A"}],
            "next": format!("{}/2.0/workspaces/acme/projects?page=2", server.uri()),
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/2.0/workspaces/acme/projects"))
        .and(query_param("page", "2"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "type": "error", "error": {"message": "Invalid page"}
        })))
        .mount(&server)
        .await;
    let client = client(&server);
    let items: Vec<_> = client.projects("acme").list().collect().await;
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].as_ref().expect("first page").key, "A");
    assert_eq!(
        items[1].as_ref().expect_err("second page").kind,
        ErrorKind::BadRequest
    );
}

#[tokio::test]
async fn refuses_a_next_link_to_another_host() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/repositories/acme"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "values": [{"slug": "a", "full_name": "acme/a"}],
            "next": format!("{}/2.0/repositories/acme?page=2", elsewhere.uri()),
        })))
        .mount(&server)
        .await;
    let err = client(&server)
        .repositories("acme")
        .list(None)
        .collect_all()
        .await
        .expect_err("foreign next");
    assert_eq!(err.kind, ErrorKind::Incomplete);
    assert!(requests_to(&elsewhere).await.is_empty());
}

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

#[tokio::test]
async fn members_by_email_sends_at_most_90_addresses_per_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/2.0/workspaces/acme/members"))
        .respond_with(|req: &Request| {
            let q = req
                .url
                .query_pairs()
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            // Echo back a member for the first address of the filter.
            let first = q.split('"').nth(1).unwrap_or_default().to_owned();
            ResponseTemplate::new(200).set_body_json(json!({
                "values": [{"type": "workspace_membership",
                            "user": {"type": "user", "account_id": format!("id-{first}"), "email": first}}]
            }))
        })
        .mount(&server)
        .await;
    let emails: Vec<String> = (0..95).map(|i| format!("person{i}@acme.com")).collect();
    let found = client(&server)
        .workspaces()
        .members_by_email("acme", &emails)
        .await
        .expect("lookup");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].user.email.as_deref(), Some("person0@acme.com"));
    assert_eq!(found[1].user.email.as_deref(), Some("person90@acme.com"));
    let received = requests_to(&server).await;
    assert_eq!(received.len(), 2);
    for req in &received {
        let (q, fields) = (
            req.url
                .query_pairs()
                .find(|(k, _)| k == "q")
                .map(|(_, v)| v.into_owned()),
            req.url
                .query_pairs()
                .find(|(k, _)| k == "fields")
                .map(|(_, v)| v.into_owned()),
        );
        let q = q.expect("q sent");
        assert!(q.starts_with("user.email IN ("));
        assert!(q.matches('@').count() <= 90);
        assert!(fields.expect("fields sent").contains("values.user.email"));
    }
}

#[tokio::test]
async fn recorded_examples_decode() {
    let server = MockServer::start().await;
    let routes = [
        ("/2.0/workspaces/acme/permissions", "workspace_permissions"),
        (
            "/2.0/workspaces/acme/permissions/repositories",
            "workspace_repository_permissions",
        ),
        (
            "/2.0/repositories/atlassian_tutorial/geordi/permissions-config/groups",
            "repository_group_permissions",
        ),
        (
            "/2.0/workspaces/acme/projects/PRJ/permissions-config/users",
            "project_user_permissions",
        ),
        (
            "/2.0/workspaces/acme/projects/PRJ/permissions-config/groups",
            "project_group_permissions",
        ),
    ];
    for (p, f) in routes {
        Mock::given(method("GET"))
            .and(path(p))
            .respond_with(ResponseTemplate::new(200).set_body_json(fixture(f)))
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/1.0/groups/acme"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"name": "Developers", "slug": "developers", "permission": "write", "auto_add": false,
             "email_forwarding_disabled": false, "owner": {"display_name": "Acme"},
             "members": [{"display_name": "Sean", "account_id": "557058:1", "uuid": "{1}", "is_active": true,
                          "resource_uri": "/1.0/users/x"}]}
        ])))
        .mount(&server)
        .await;
    let client = client(&server);
    let project = PermissionTarget::Project {
        workspace: "acme",
        project_key: "PRJ",
    };

    let members = client
        .workspaces()
        .permissions("acme")
        .collect_all()
        .await
        .expect("members");
    assert_eq!(members[0].permission, Some(WorkspaceRole::Owner));
    assert_eq!(members[1].permission, Some(WorkspaceRole::Member));
    assert_eq!(members[1].user.nickname.as_deref(), Some("seanaty"));
    assert_eq!(members[0].added_on, None);

    let effective = client
        .permissions()
        .workspace_repositories("acme", Some("permission>\"read\""))
        .collect_all()
        .await
        .expect("effective");
    assert_eq!(effective[0].repository.slug(), Some("geordi"));
    assert_eq!(effective[0].permission, PermissionLevel::Admin);

    let groups = client
        .permissions()
        .list_groups(repo())
        .collect_all()
        .await
        .expect("groups");
    assert_eq!(groups[0].group.slug, "administrators");
    let users = client
        .permissions()
        .list_users(project)
        .collect_all()
        .await
        .expect("users");
    assert_eq!(users[0].permission, PermissionLevel::Admin);
    let groups = client
        .permissions()
        .list_groups(project)
        .collect_all()
        .await
        .expect("groups");
    assert!(!groups.is_empty());

    let v1 = client.groups_v1("acme").list().await.expect("1.0 groups");
    assert_eq!(v1[0].slug, "developers");
    assert_eq!(v1[0].members[0].account_id.as_deref(), Some("557058:1"));
}

#[tokio::test]
async fn uuids_in_paths_are_percent_encoded() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(
            "/2.0/repositories/acme/%7B21fa9bf8-b5b2-4891-97ed-d590bad0f871%7D/permissions-config/users/%7Bd301aafa-d676-4ee0-88be-962be7417567%7D",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "type": "repository_user_permission", "user": {"uuid": "{d301aafa-d676-4ee0-88be-962be7417567}"},
            "permission": "read"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let found = client(&server)
        .permissions()
        .get_user(
            PermissionTarget::Repository {
                workspace: "acme",
                repo_slug: "{21fa9bf8-b5b2-4891-97ed-d590bad0f871}",
            },
            "{d301aafa-d676-4ee0-88be-962be7417567}",
        )
        .await
        .expect("found");
    assert_eq!(found.permission, PermissionLevel::Read);
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
