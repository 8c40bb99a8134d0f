//! The Bitbucket client against wiremock: pagination over opaque `next` links and short pages,
//! decoding of the recorded OpenAPI examples, the member email filter and path encoding.
//! Retries, the budget, error hints and secrecy are in `client_resilience.rs`.

mod client_support;

use bitbucket_access::bitbucket::{
    templates, ApiError, ErrorKind, PermissionLevel, PermissionTarget, WorkspaceRole,
};
use client_support::*;
use futures::StreamExt;
use serde_json::{json, Value};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

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
