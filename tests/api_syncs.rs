//! Syncs started through the HTTP API (issue 15, item 1): `POST /v1/syncs` answers 202 with an
//! id at once, the sync runs in the background through serve's job runner, and
//! `GET /v1/syncs/{id}` follows it to its end, after which the workspace is in the store.

#[macro_use]
mod support_db;
mod api_support;
mod grants_support;
mod sync_support;

use std::time::{Duration, Instant};

use api_support::*;
use bitbucket_access::domain::WorkspaceSlug;
use serde_json::json;

on_both_backends!(a_started_sync_runs_in_the_background_and_fills_the_store);

async fn a_started_sync_runs_in_the_background_and_fills_the_store(url: String) {
    let api = Api::start(1531, &url).await;
    let ws = grants_support::owned(&api.sim);
    let (status, started) = api
        .call(
            "POST",
            "/v1/syncs",
            Some(GRANTER),
            Some(&json!({"workspace": ws})),
            &[],
        )
        .await;
    assert_eq!(status, 202, "{started}");
    assert_eq!(started["requested_by"], "portal");
    let id = started["id"].as_u64().expect("id");
    let deadline = Instant::now() + Duration::from_secs(60);
    let finished = loop {
        let (status, now) = api
            .call("GET", &format!("/v1/syncs/{id}"), Some(READER), None, &[])
            .await;
        assert_eq!(status, 200, "{now}");
        if now["finished_at"].is_string() {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the sync did not end within 60 s: {now}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(finished["state"], "succeeded", "{finished}");
    let slug = WorkspaceSlug::parse(ws.clone()).expect("slug");
    let stored = api.store.repositories(&slug).await.expect("repositories");
    assert!(
        !stored.is_empty(),
        "the sync stored the workspace's repositories"
    );
    let (status, _) = api
        .call("GET", "/v1/syncs/424242", Some(READER), None, &[])
        .await;
    assert_eq!(status, 404);
    let (status, answer) = api
        .call(
            "POST",
            "/v1/syncs",
            Some(GRANTER),
            Some(&json!({"workspace": "Not A Slug!"})),
            &[],
        )
        .await;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (422, json!("workspace"))
    );
}
