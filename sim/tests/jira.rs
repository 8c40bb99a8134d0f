//! The Jira user API used for identity matching.

mod common;

use bitbucket_sim::JiraAccountType;
use serde_json::Value;

async fn jira(sim: &bitbucket_sim::SimHandle, path: &str) -> (u16, Value) {
    let (user, token) = sim.jira_credentials();
    let r = common::client()
        .get(format!("{}{path}", sim.jira_url()))
        .basic_auth(user, Some(token))
        .send()
        .await
        .expect("request");
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn users_search_lists_jira_users_with_hidden_emails_as_null() {
    let sim = common::start_tiny(41).await;
    let (status, me) = jira(&sim, "/rest/api/3/myself").await;
    assert_eq!(status, 200);
    assert_eq!(me["emailAddress"], sim.admin_email().as_str());

    let (status, v) = jira(&sim, "/rest/api/3/users/search?maxResults=1000").await;
    assert_eq!(status, 200);
    let arr = v.as_array().expect("bare array");
    let (jira_users, hidden, without) = sim.with_world(|w| {
        let jira: Vec<_> = w
            .users
            .values()
            .filter(|u| u.jira_account_type.is_some())
            .collect();
        let hidden = jira.iter().filter(|u| !u.email_visible_in_jira).count();
        let without = w
            .users
            .values()
            .filter(|u| u.jira_account_type.is_none())
            .map(|u| u.account_id.clone())
            .collect::<Vec<_>>();
        (jira.len(), hidden, without)
    });
    assert_eq!(arr.len(), jira_users);
    assert!(
        hidden > 0 && !without.is_empty(),
        "the tiny world covers both cases"
    );
    assert_eq!(
        arr.iter().filter(|u| u["emailAddress"].is_null()).count(),
        hidden
    );
    assert!(arr
        .iter()
        .all(|u| !without.contains(&u["accountId"].as_str().expect("id").to_string())));
    assert!(arr.iter().any(|u| u["accountType"] == "app"));

    let (_, page) = jira(&sim, "/rest/api/3/users/search?startAt=2&maxResults=3").await;
    assert_eq!(page.as_array().map(Vec::len), Some(3));
    assert_eq!(page[0]["accountId"], arr[2]["accountId"]);
}

#[tokio::test]
async fn bulk_single_and_query_lookups() {
    let sim = common::start_tiny(41).await;
    let (visible, no_jira) = sim.with_world(|w| {
        let visible = w
            .users
            .values()
            .filter(|u| {
                u.email_visible_in_jira && u.jira_account_type == Some(JiraAccountType::Atlassian)
            })
            .map(|u| (u.account_id.clone(), u.email.clone()))
            .take(3)
            .collect::<Vec<_>>();
        let no = w
            .users
            .values()
            .find(|u| u.jira_account_type.is_none())
            .map(|u| u.account_id.clone())
            .expect("one");
        (visible, no)
    });
    let qs: String = visible
        .iter()
        .map(|(a, _)| format!("accountId={a}"))
        .chain([format!("accountId={no_jira}")])
        .collect::<Vec<_>>()
        .join("&");
    let (status, page) = jira(&sim, &format!("/rest/api/3/user/bulk?{qs}&maxResults=2")).await;
    assert_eq!(status, 200);
    assert_eq!(page["total"], 3);
    assert_eq!(page["values"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["isLast"], false);
    let next = page["nextPage"].as_str().expect("next page");
    let r = common::client()
        .get(next)
        .basic_auth(sim.jira_credentials().0, Some(sim.jira_credentials().1))
        .send()
        .await
        .expect("request");
    let page2: Value = r.json().await.expect("json");
    assert_eq!(page2["values"].as_array().map(Vec::len), Some(1));
    assert_eq!(page2["isLast"], true);

    let (status, u) = jira(
        &sim,
        &format!("/rest/api/3/user?accountId={}", visible[0].0),
    )
    .await;
    assert_eq!(
        (status, u["emailAddress"].as_str()),
        (200, Some(visible[0].1.as_str()))
    );
    let (status, _) = jira(&sim, &format!("/rest/api/3/user?accountId={no_jira}")).await;
    assert_eq!(status, 404);

    let q: String = url::form_urlencoded::byte_serialize(visible[1].1.as_bytes()).collect();
    let (status, found) = jira(&sim, &format!("/rest/api/3/user/search?query={q}")).await;
    assert_eq!(status, 200);
    assert_eq!(found.as_array().map(Vec::len), Some(1));
    assert_eq!(found[0]["accountId"], visible[1].0.as_str());
}

#[tokio::test]
async fn scoped_tokens_and_bad_credentials_get_401_on_the_site() {
    let sim = common::start_tiny(41).await;
    let (user, _) = sim.jira_credentials();
    for token in [sim.jira_scoped_token(), "wrong".to_string()] {
        let r = common::client()
            .get(format!("{}/rest/api/3/myself", sim.jira_url()))
            .basic_auth(&user, Some(token))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 401);
    }
}
