//! Authentication, scope enforcement from the spec, and the exact bodies and content types of
//! 401, 403, 404, 410 and 429 answers.

mod common;

use std::time::Duration;

use serde_json::{json, Value};

fn spec_endpoints() -> Vec<Value> {
    let path = common::package_root().join("../schemas/bitbucket-endpoints.json");
    let text = std::fs::read_to_string(path).expect("endpoints file");
    let v: Value = serde_json::from_str(&text).expect("json");
    v["endpoints"].as_array().cloned().expect("endpoints")
}

#[tokio::test]
async fn missing_or_wrong_credentials_get_401_with_www_authenticate() {
    let sim = common::start_tiny(3).await;
    let url = format!("{}/2.0/user", sim.bitbucket_url());
    let cases = vec![
        common::client().get(&url),
        common::client()
            .get(&url)
            .basic_auth(sim.admin_email(), Some("not-a-token")),
        // A valid token with another email as username is refused: the username must be the
        // token owner's Atlassian email.
        common::client()
            .get(&url)
            .basic_auth("someone@else.example", Some(sim.admin_token())),
        common::client()
            .get(&url)
            .bearer_auth("unknown-access-token"),
    ];
    for req in cases {
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), 401);
        assert_eq!(
            r.headers()["www-authenticate"],
            "Basic realm=\"Bitbucket.org HTTP\""
        );
        assert_eq!(r.headers()["content-type"], "application/json");
        let v: Value = r.json().await.expect("json body");
        assert_eq!(v["type"], "error");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
}

#[tokio::test]
async fn every_endpoint_requires_the_scopes_the_spec_lists() {
    let sim = common::start_tiny(3).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let (repo, project, user) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        (
            wsv.repositories.keys().next().cloned().expect("repo"),
            wsv.projects.keys().next().cloned().expect("project"),
            w.admin_account_id.clone(),
        )
    });
    // A token with no scope at all: every documented endpoint must answer 403 and name exactly
    // the scopes the specification requires.
    let token = sim.issue_token(&sim.admin_email(), &[]);
    let mut checked = 0;
    for e in spec_endpoints() {
        if e["deprecated"].as_bool() == Some(true) {
            continue;
        }
        let path = e["path"]
            .as_str()
            .expect("path")
            .replace("{workspace}", &ws)
            .replace("{repo_slug}", &repo)
            .replace("{project_key}", &project)
            .replace("{selected_user_id}", &user)
            .replace("{selected_user}", &user)
            .replace("{member}", &user)
            .replace("{group_slug}", "developers")
            .replace("{uid}", "%7Bnone%7D");
        let method = e["method"].as_str().expect("method");
        let req = common::client()
            .request(
                method.parse().expect("method"),
                format!("{}/2.0{path}", sim.bitbucket_url()),
            )
            .basic_auth(sim.admin_email(), Some(&token))
            .json(&json!({"permission": "read"}));
        let r = req.send().await.expect("request");
        assert_eq!(r.status(), 403, "{method} {path}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(
            v["error"]["message"],
            "Your credentials lack one or more required privilege scopes."
        );
        assert_eq!(
            v["error"]["detail"]["granted"],
            json!([]),
            "{method} {path}"
        );
        assert_eq!(
            v["error"]["detail"]["required"], e["scopes"],
            "{method} {path}"
        );
        checked += 1;
    }
    assert!(checked >= 30, "only {checked} endpoints checked");

    // Scopes do not imply each other: write:permission without admin:repository is not enough.
    let partial = sim.issue_token(
        &sim.admin_email(),
        &["read:repository:bitbucket", "write:permission:bitbucket"],
    );
    let r = common::client()
        .put(format!(
            "{}/2.0/repositories/{ws}/{repo}/permissions-config/groups/developers",
            sim.bitbucket_url()
        ))
        .basic_auth(sim.admin_email(), Some(&partial))
        .json(&json!({"permission": "read"}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["error"]["detail"]["granted"],
        json!(["read:repository:bitbucket", "write:permission:bitbucket"])
    );
}

#[tokio::test]
async fn removed_endpoints_answer_410_change_2770() {
    let sim = common::start_tiny(3).await;
    for path in [
        "/2.0/workspaces",
        "/2.0/user/permissions/workspaces",
        "/2.0/user/permissions/repositories",
        "/2.0/repositories",
    ] {
        let r = common::admin_get(&sim, path).await;
        assert_eq!(r.status(), 410, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let v: Value = r.json().await.expect("json");
        let data = json!({"announcement_url": "https://developer.atlassian.com/cloud/bitbucket/changelog#CHANGE-2770"});
        assert_eq!(
            v,
            json!({"type": "error", "error": {"message": "CHANGE-2770 - Functionality has been deprecated",
                "detail": "Please read the changelog entry for more details.", "data": data}, "data": data})
        );
    }
}

#[tokio::test]
async fn app_passwords_answer_410_change_3222() {
    let sim = common::start_tiny(3).await;
    let (user, pass) = sim.legacy_app_password();
    let r = common::client()
        .get(format!("{}/2.0/user", sim.bitbucket_url()))
        .basic_auth(user, Some(pass))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 410);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        v["error"]["message"],
        "CHANGE-3222 - Functionality has been deprecated"
    );
}

#[tokio::test]
async fn rate_limit_is_a_rolling_hour_per_user_with_plain_text_429() {
    let sim = common::start(
        bitbucket_sim::World::generate(&bitbucket_sim::WorldSpec::tiny(4)),
        5,
    )
    .await;
    for _ in 0..5 {
        assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 200);
    }
    let r = common::admin_get(&sim, "/2.0/user").await;
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["content-type"], "text/plain");
    assert!(r.headers().get("retry-after").is_none());
    assert!(r.headers().get("x-ratelimit-remaining").is_none());
    assert_eq!(
        r.text().await.expect("body"),
        "Rate limit for this resource has been exceeded"
    );

    // Another user has a window of their own.
    let (ws, _) = common::owned_and_member_ws(&sim);
    let other_email = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let id = wsv
            .members
            .keys()
            .find(|a| **a != w.admin_account_id)
            .expect("member")
            .clone();
        w.users[&id].email.clone()
    });
    let token = sim.issue_token(&other_email, &["read:user:bitbucket"]);
    let r = common::client()
        .get(format!("{}/2.0/user", sim.bitbucket_url()))
        .basic_auth(&other_email, Some(token))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);

    // After an hour the window has rolled.
    sim.advance_rate_clock(Duration::from_secs(3600));
    assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 200);
}

#[tokio::test]
async fn unknown_objects_answer_404_json() {
    let sim = common::start_tiny(3).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    for path in [
        format!("/2.0/repositories/{ws}/no-such-repo"),
        "/2.0/workspaces/no-such-workspace".to_string(),
        format!("/2.0/workspaces/{ws}/projects/NOPE"),
        "/2.0/users/557058:nobody".to_string(),
        "/2.0/not-an-endpoint".to_string(),
    ] {
        let r = common::admin_get(&sim, &path).await;
        assert_eq!(r.status(), 404, "{path}");
        assert_eq!(r.headers()["content-type"], "application/json");
        let v: Value = r.json().await.expect("json");
        assert_eq!(v["type"], "error");
    }
}

#[tokio::test]
async fn permission_endpoints_need_an_administrator() {
    let sim = common::start_tiny(3).await;
    let (_, member_ws) = common::owned_and_member_ws(&sim);
    let repo = sim.with_world(|w| {
        w.workspaces[&member_ws]
            .repositories
            .keys()
            .next()
            .cloned()
            .expect("repo")
    });
    for path in [
        format!("/2.0/workspaces/{member_ws}/permissions/repositories"),
        format!("/2.0/repositories/{member_ws}/{repo}/permissions-config/users"),
        format!("/2.0/repositories/{member_ws}/{repo}/permissions-config/groups"),
    ] {
        let r = common::admin_get(&sim, &path).await;
        assert_eq!(r.status(), 403, "{path}");
    }
}

#[tokio::test]
async fn access_tokens_are_refused_on_permission_and_cross_workspace_endpoints() {
    let sim = common::start_tiny(3).await;
    let (ws, other) = common::owned_and_member_ws(&sim);
    let repo = sim.with_world(|w| {
        w.workspaces[&ws]
            .repositories
            .keys()
            .next()
            .cloned()
            .expect("repo")
    });
    let token = sim.issue_access_token(&ws, &["repository:admin", "project:admin", "account"]);
    let get = |path: String| {
        common::client()
            .get(format!("{}{path}", sim.bitbucket_url()))
            .bearer_auth(&token)
            .send()
    };
    for path in [
        format!("/2.0/repositories/{ws}/{repo}/permissions-config/users"),
        format!("/2.0/workspaces/{ws}/permissions"),
        format!("/2.0/workspaces/{ws}/permissions/repositories"),
        "/2.0/user/workspaces".to_string(),
        format!("/2.0/repositories/{other}"),
    ] {
        let r = get(path.clone()).await.expect("request");
        assert_eq!(r.status(), 403, "{path}");
        let v: Value = r.json().await.expect("json");
        assert_eq!(
            v["error"]["message"], "This API is not accessible by this authentication mechanism",
            "{path}"
        );
    }
    // Allowed where the spec allows it, with legacy scopes implying their lesser forms.
    let r = get(format!("/2.0/repositories/{ws}"))
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    // Missing legacy scope: the scope error lists legacy names.
    let weak = sim.issue_access_token(&ws, &["account"]);
    let r = common::client()
        .get(format!("{}/2.0/repositories/{ws}", sim.bitbucket_url()))
        .bearer_auth(&weak)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["error"]["detail"]["required"], json!(["repository"]));
}
