//! Pagination (pagelen clamping, absolute and opaque `next` links, optional `size`/`page`),
//! the BBQL subset and `fields=` partial responses.

mod common;

use std::collections::BTreeSet;

use bitbucket_sim::{Level, SimHandle, World, WorldSpec};
use serde_json::Value;

async fn start_medium() -> SimHandle {
    let spec = WorldSpec {
        repositories: 260,
        users: 40,
        ..WorldSpec::tiny(11)
    };
    common::start(World::generate(&spec), 100_000).await
}

#[tokio::test]
async fn repositories_page_with_opaque_absolute_next_links() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let expected: Vec<String> =
        sim.with_world(|w| w.workspaces[&ws].repositories.keys().cloned().collect());
    let first = format!("{}/2.0/repositories/{ws}?pagelen=25", sim.bitbucket_url());
    let (status, page) = common::admin_json(&sim, &first).await;
    assert_eq!(status, 200);
    assert_eq!(page["values"].as_array().map(Vec::len), Some(25));
    assert_eq!(page["size"].as_u64(), Some(expected.len() as u64));
    let next = page["next"].as_str().expect("next link");
    assert!(next.starts_with(&format!("{}/2.0/repositories/{ws}?", sim.bitbucket_url())));
    let token = url::Url::parse(next)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "page")
        .map(|(_, v)| v.into_owned())
        .expect("page param");
    assert!(
        token.parse::<u64>().is_err(),
        "next must not be a page number: {token}"
    );
    // A guessed page number is refused.
    let (status, _) = common::admin_json(
        &sim,
        &format!("{}/2.0/repositories/{ws}?page=2", sim.bitbucket_url()),
    )
    .await;
    assert_eq!(status, 400);

    let all = common::collect_all(&sim, &first).await;
    let slugs: Vec<String> = all
        .iter()
        .map(|r| r["slug"].as_str().expect("slug").to_string())
        .collect();
    assert_eq!(slugs, expected);
}

#[tokio::test]
async fn pagelen_defaults_to_10_and_is_clamped_to_10_through_100() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    for (asked, got) in [
        ("", 10),
        ("&pagelen=3", 10),
        ("&pagelen=100", 100),
        ("&pagelen=500", 100),
    ] {
        let (status, page) = common::admin_json(
            &sim,
            &format!(
                "{}/2.0/repositories/{ws}?sort=slug{asked}",
                sim.bitbucket_url()
            ),
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(
            page["values"].as_array().map(Vec::len),
            Some(got),
            "pagelen {asked}"
        );
        assert_eq!(page["pagelen"].as_u64(), Some(got as u64));
    }
}

#[tokio::test]
async fn explicit_user_permissions_page_with_opaque_cursor_and_no_size() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    // Give one repository 23 explicit grants out of band.
    let (repo, expected) = sim.with_world(|w| {
        let admin = w.admin_account_id.clone();
        let wsv = &w.workspaces[&ws];
        let repo = wsv.repositories.keys().next().cloned().expect("repo");
        let members: Vec<String> = wsv
            .members
            .iter()
            .filter(|(a, m)| **a != admin && m.role == bitbucket_sim::Role::Member)
            .map(|(a, _)| a.clone())
            .take(23)
            .collect();
        for m in &members {
            w.set_repo_user_permission(&ws, &repo, m, Some(Level::Write))
                .expect("grant");
        }
        let expected: BTreeSet<String> = w.workspaces[&ws].repositories[&repo]
            .user_permissions
            .keys()
            .cloned()
            .collect();
        (repo, expected)
    });
    assert!(expected.len() >= 20);
    let first = format!(
        "{}/2.0/repositories/{ws}/{repo}/permissions-config/users",
        sim.bitbucket_url()
    );
    let (_, page) = common::admin_json(&sim, &first).await;
    assert!(page.get("size").is_none());
    assert!(page.get("page").is_none());
    assert!(page["next"].as_str().is_some());
    let all = common::collect_all(&sim, &first).await;
    let got: BTreeSet<String> = all
        .iter()
        .map(|p| p["user"]["account_id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(got, expected);
    assert_eq!(all.len(), expected.len(), "no duplicates across pages");
}

#[tokio::test]
async fn list_based_listings_report_size_and_page() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let members = sim.with_world(|w| w.workspaces[&ws].members.len());
    let first = format!("{}/2.0/workspaces/{ws}/permissions", sim.bitbucket_url());
    let (_, page) = common::admin_json(&sim, &first).await;
    assert_eq!(page["size"].as_u64(), Some(members as u64));
    assert_eq!(page["page"].as_u64(), Some(1));
    let all = common::collect_all(&sim, &first).await;
    assert_eq!(all.len(), members);
    assert!(all
        .iter()
        .all(|m| matches!(m["permission"].as_str(), Some("owner" | "member"))));
}

#[tokio::test]
async fn repository_queries_filter_by_project_and_updated_on() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let (key, by_project, cutoff, recent) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let key = wsv.projects.keys().next().cloned().expect("project");
        let by_project: BTreeSet<String> = wsv
            .repositories
            .values()
            .filter(|r| r.project_key == key)
            .map(|r| r.slug.clone())
            .collect();
        let cutoff = chrono::DateTime::parse_from_rfc3339("2026-06-01T00:00:00+00:00")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let recent: BTreeSet<String> = wsv
            .repositories
            .values()
            .filter(|r| r.updated_on > cutoff)
            .map(|r| r.slug.clone())
            .collect();
        (key, by_project, cutoff, recent)
    });
    let _ = cutoff;
    let q = url::form_urlencoded::byte_serialize(format!("project.key=\"{key}\"").as_bytes())
        .collect::<String>();
    let all = common::collect_all(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}?pagelen=100&q={q}",
            sim.bitbucket_url()
        ),
    )
    .await;
    let got: BTreeSet<String> = all
        .iter()
        .map(|r| r["slug"].as_str().expect("slug").to_string())
        .collect();
    assert_eq!(got, by_project);

    let q =
        url::form_urlencoded::byte_serialize(b"updated_on>2026-06-01T00:00:00").collect::<String>();
    let all = common::collect_all(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}?pagelen=100&q={q}",
            sim.bitbucket_url()
        ),
    )
    .await;
    let got: BTreeSet<String> = all
        .iter()
        .map(|r| r["slug"].as_str().expect("slug").to_string())
        .collect();
    assert_eq!(got, recent);

    let (status, v) = common::admin_json(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}?q=nonsense%3D%3D",
            sim.bitbucket_url()
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["type"], "error");
}

#[tokio::test]
async fn effective_permission_queries_by_repository_and_level() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let eff = sim.effective_permissions(&ws);
    let (repo_name, repo_slug) = sim.with_world(|w| {
        let r = w.workspaces[&ws]
            .repositories
            .values()
            .nth(3)
            .expect("repo");
        (r.name.clone(), r.slug.clone())
    });
    let q = url::form_urlencoded::byte_serialize(
        format!("repository.name=\"{repo_name}\" AND permission>\"read\"").as_bytes(),
    )
    .collect::<String>();
    let all = common::collect_all(
        &sim,
        &format!(
            "{}/2.0/workspaces/{ws}/permissions/repositories?q={q}",
            sim.bitbucket_url()
        ),
    )
    .await;
    let got: BTreeSet<(String, String)> = all
        .iter()
        .map(|p| {
            (
                p["user"]["account_id"].as_str().expect("id").to_string(),
                p["permission"].as_str().expect("level").to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = eff
        .iter()
        .filter(|e| e.repo_slug == repo_slug && e.level > Level::Read)
        .map(|e| (e.account_id.clone(), e.level.as_str().to_string()))
        .collect();
    assert!(!expected.is_empty(), "owners at least have admin");
    assert_eq!(got, expected);
}

#[tokio::test]
async fn member_email_filter_is_for_admins_and_needs_fields_to_show_emails() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let (emails, someone_email) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let emails: Vec<String> = wsv
            .members
            .keys()
            .take(3)
            .map(|a| w.users[a].email.clone())
            .collect();
        let someone = wsv
            .members
            .iter()
            .find(|(_, m)| m.role == bitbucket_sim::Role::Member)
            .map(|(a, _)| w.users[a].email.clone())
            .expect("member");
        (emails, someone)
    });
    let list = emails
        .iter()
        .map(|e| format!("\"{}\"", e.to_uppercase()))
        .collect::<Vec<_>>()
        .join(",");
    let q: String =
        url::form_urlencoded::byte_serialize(format!("user.email IN ({list})").as_bytes())
            .collect();
    let base = format!("{}/2.0/workspaces/{ws}/members?q={q}", sim.bitbucket_url());

    let (status, page) = common::admin_json(&sim, &base).await;
    assert_eq!(status, 200);
    assert_eq!(page["values"].as_array().map(Vec::len), Some(3));
    assert!(
        page["values"][0]["user"].get("email").is_none(),
        "emails hidden by default"
    );

    let (_, page) = common::admin_json(&sim, &format!("{base}&fields=%2Bvalues.user.email")).await;
    let got: BTreeSet<String> = page["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|m| m["user"]["email"].as_str().expect("email").to_string())
        .collect();
    assert_eq!(got, emails.iter().cloned().collect());

    let (_, page) = common::admin_json(
        &sim,
        &format!("{base}&fields=values.user.email,values.user.account_id"),
    )
    .await;
    let first = page["values"][0].as_object().expect("object");
    let user = first["user"].as_object().expect("user");
    assert_eq!(first.len(), 1);
    assert_eq!(user.len(), 2);
    assert!(page.get("next").is_none() && page.get("pagelen").is_none());

    // More than 90 addresses: 400.
    let many = (0..91)
        .map(|i| format!("\"u{i}@x.example\""))
        .collect::<Vec<_>>()
        .join(",");
    let q: String =
        url::form_urlencoded::byte_serialize(format!("user.email IN ({many})").as_bytes())
            .collect();
    let (status, _) = common::admin_json(
        &sim,
        &format!("{}/2.0/workspaces/{ws}/members?q={q}", sim.bitbucket_url()),
    )
    .await;
    assert_eq!(status, 400);

    // A non-administrator cannot filter by email.
    let token = sim.issue_token(&someone_email, &["read:workspace:bitbucket"]);
    let r = common::client()
        .get(&base)
        .basic_auth(&someone_email, Some(token))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn fields_minus_and_selection_shape_the_response() {
    let sim = start_medium().await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let (_, page) = common::admin_json(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}?fields=-values.links,-values.owner",
            sim.bitbucket_url()
        ),
    )
    .await;
    let r = page["values"][0].as_object().expect("repo");
    assert!(!r.contains_key("links") && !r.contains_key("owner") && r.contains_key("slug"));
    assert!(page["next"].is_string());

    let (_, page) = common::admin_json(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}?fields=next,values.slug,values.project.key",
            sim.bitbucket_url()
        ),
    )
    .await;
    let keys: Vec<&String> = page.as_object().expect("page").keys().collect();
    assert_eq!(keys, vec!["next", "values"]);
    let item: &Value = &page["values"][0];
    assert_eq!(item.as_object().map(|o| o.len()), Some(2));
    assert!(item["project"]["key"].is_string());

    let (_, repo) = common::admin_json(
        &sim,
        &format!(
            "{}/2.0/repositories/{ws}/{}?fields=-links",
            sim.bitbucket_url(),
            page["values"][0]["slug"].as_str().expect("slug")
        ),
    )
    .await;
    assert!(repo.get("links").is_none() && repo["type"] == "repository");
}
