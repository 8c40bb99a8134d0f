//! Webhook deliveries (issue 15, item 4): a delivery signed with the secret schedules a
//! targeted refresh of the repository it names; unsigned, wrongly signed, replayed and too old
//! deliveries are refused and schedule nothing. End to end: with the webhook installed in the
//! simulator, a repository created there is delivered by the simulator itself, signed, and is
//! in the store within 5 s.

#[macro_use]
mod support_db;
mod api_support;
mod grants_support;
mod sync_support;

use api_support::*;
use bitbucket_access::api::webhooks::sign;
use bitbucket_access::api::RefreshTarget;
use bitbucket_access::cli::webhook::install;
use bitbucket_access::domain::{RepoSlug, WorkspaceSlug};
use bitbucket_sim::NewRepository;
use std::time::{Duration, Instant};

on_both_backends!(
    only_signed_fresh_deliveries_schedule_a_refresh,
    a_new_repository_is_in_the_store_within_seconds_of_its_delivery,
);

async fn deliver(api: &Api, body: &str, headers: &[(&str, &str)]) -> u16 {
    let mut request = api
        .http
        .post(format!("{}/webhooks/bitbucket", api.base))
        .header("content-type", "application/json")
        .header("x-event-key", "repo:created")
        .body(body.to_owned());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value = if text.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON")
    };
    check(&api.doc, "POST", "/webhooks/bitbucket", status, &value);
    status
}

async fn only_signed_fresh_deliveries_schedule_a_refresh(url: String) {
    let api = Api::start(1521, &url).await;
    let body = r#"{"repository": {"full_name": "acme/new-service"}}"#;
    let signature = sign(WEBHOOK_SECRET.as_bytes(), body.as_bytes());
    let wrong = sign(b"another secret", body.as_bytes());
    assert_eq!(
        deliver(&api, body, &[("x-request-uuid", "d-1")]).await,
        401,
        "unsigned"
    );
    assert_eq!(
        deliver(
            &api,
            body,
            &[("x-request-uuid", "d-1"), ("x-hub-signature", &wrong)]
        )
        .await,
        401,
        "signed with another secret"
    );
    let old = (t0() - chrono::Duration::hours(1)).to_rfc3339();
    assert_eq!(
        deliver(
            &api,
            body,
            &[
                ("x-request-uuid", "d-0"),
                ("x-hub-signature", &signature),
                ("x-event-time", &old)
            ]
        )
        .await,
        409,
        "too old"
    );
    assert!(api.refreshes.0.lock().expect("lock").is_empty());
    assert_eq!(
        deliver(
            &api,
            body,
            &[("x-request-uuid", "d-1"), ("x-hub-signature", &signature)]
        )
        .await,
        202
    );
    assert_eq!(
        deliver(
            &api,
            body,
            &[("x-request-uuid", "d-1"), ("x-hub-signature", &signature)]
        )
        .await,
        409,
        "replayed"
    );
    let refreshes = api.refreshes.0.lock().expect("lock").clone();
    assert_eq!(refreshes.len(), 1, "one refresh: {refreshes:?}");
    match &refreshes[0] {
        RefreshTarget::Repository(r) => assert_eq!(r.to_string(), "acme/new-service"),
        other => panic!("{other:?}"),
    }
}

async fn a_new_repository_is_in_the_store_within_seconds_of_its_delivery(url: String) {
    let api = Api::start_refreshing(1522, &url).await;
    let ws = grants_support::owned(&api.sim);
    // Installed as `webhook install` does; from here on the simulator delivers the events itself.
    let hook_url = format!("{}/webhooks/bitbucket", api.base);
    install(&client(&api.sim, 4), &ws, &hook_url, WEBHOOK_SECRET)
        .await
        .expect("webhook installed");
    let created = Instant::now();
    api.sim.with_world(|w| {
        let project = w.workspaces[&ws]
            .projects
            .keys()
            .next()
            .cloned()
            .expect("a project");
        w.add_repository(
            &ws,
            NewRepository {
                slug: "born-today".to_owned(),
                name: "born-today".to_owned(),
                project_key: project,
                is_private: true,
            },
        )
        .expect("created")
    });
    let slug = WorkspaceSlug::parse(ws.clone()).expect("slug");
    let wanted = RepoSlug::parse("born-today".to_owned()).expect("slug");
    let mut delivered = None;
    loop {
        if delivered.is_none() {
            let found = api
                .sim
                .deliveries()
                .into_iter()
                .find(|d| d.event == "repo:created");
            if let Some(d) = found {
                assert_eq!(
                    d.status,
                    Some(202),
                    "the signed delivery is accepted: {d:?}"
                );
                assert_eq!(d.url, hook_url);
                delivered = Some(Instant::now());
            }
        }
        let stored = api.store.repositories(&slug).await.expect("repositories");
        if stored.iter().any(|r| r.slug == wanted) {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(5),
            "the new repository is not in the store 5 s after its creation (delivered: {})",
            delivered.is_some()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "new repository stored {:?} after its creation in the simulator",
        created.elapsed()
    );
    // Every delivery the simulator made was signed and accepted: none was refused.
    let deliveries = api.sim.deliveries();
    assert!(
        deliveries.iter().all(|d| d.status == Some(202)),
        "{deliveries:?}"
    );
}
