//! Fault injection: latency, 5xx, dropped connections, malformed JSON, pages cut short, and
//! the 1.0 group reads refused.

mod common;

use std::time::{Duration, Instant};

use bitbucket_sim::{Level, Role};
use serde_json::{json, Value};

#[tokio::test]
async fn latency_and_failures_before_processing() {
    let sim = common::start_tiny(31).await;
    let faults = sim.faults();
    faults.set_latency(Duration::from_millis(120));
    let t = Instant::now();
    assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(120));
    faults.set_latency(Duration::ZERO);

    faults.fail_next(2, 503);
    assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 503);
    assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 503);
    assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 200);

    faults.set_error_rate(1.0);
    for _ in 0..5 {
        assert!(common::admin_get(&sim, "/2.0/user")
            .await
            .status()
            .is_server_error());
    }
    faults.set_error_rate(0.0);
    assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 200);
}

#[tokio::test]
async fn a_dropped_connection_still_applies_the_change() {
    let sim = common::start_tiny(32).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let (repo, member) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let member = wsv
            .members
            .iter()
            .find(|(a, m)| m.role == Role::Member && **a != w.admin_account_id)
            .map(|(a, _)| a.clone())
            .expect("member");
        (
            wsv.repositories.keys().next().cloned().expect("repo"),
            member,
        )
    });
    sim.faults().drop_next_connections(1);
    let r = common::client()
        .put(format!(
            "{}/2.0/repositories/{ws}/{repo}/permissions-config/users/{member}",
            sim.bitbucket_url()
        ))
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .json(&json!({"permission": "admin"}))
        .send()
        .await;
    assert!(
        r.is_err(),
        "the client must see a transport error, got {r:?}"
    );
    let level = sim.with_world(|w| {
        w.workspaces[&ws].repositories[&repo]
            .user_permissions
            .get(&member)
            .copied()
    });
    assert_eq!(level, Some(Level::Admin));
    assert_eq!(common::admin_get(&sim, "/2.0/user").await.status(), 200);
}

#[tokio::test]
async fn malformed_and_truncated_bodies() {
    let sim = common::start_tiny(33).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    sim.faults().malformed_next(1);
    let r = common::admin_get(&sim, "/2.0/user").await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("complete body");
    assert!(serde_json::from_str::<Value>(&text).is_err());

    sim.faults().truncate_next_page(1);
    let r = common::admin_get(&sim, &format!("/2.0/workspaces/{ws}/permissions")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err(), "the body must end early");
    // Only one page was cut.
    let r = common::admin_get(&sim, &format!("/2.0/workspaces/{ws}/permissions")).await;
    assert!(r.json::<Value>().await.is_ok());
}

#[tokio::test]
async fn a_short_page_keeps_next_and_size_but_misses_items() {
    let sim = common::start_tiny(34).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let url = format!("{}/2.0/workspaces/{ws}/permissions", sim.bitbucket_url());
    let (_, whole) = common::admin_json(&sim, &url).await;
    sim.faults().short_next_page(1);
    let (_, short) = common::admin_json(&sim, &url).await;
    let n_whole = whole["values"].as_array().map(Vec::len).expect("values");
    let n_short = short["values"].as_array().map(Vec::len).expect("values");
    assert!(n_short < n_whole);
    assert_eq!(short["size"], whole["size"]);
    assert_eq!(short["next"], whole["next"]);
}

#[tokio::test]
async fn counters_count_requests_per_endpoint_template() {
    let sim = common::start_tiny(35).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    sim.reset_counters();
    for _ in 0..3 {
        common::admin_get(&sim, &format!("/2.0/repositories/{ws}")).await;
    }
    common::admin_get(&sim, "/2.0/user").await;
    assert_eq!(sim.request_count("GET", "/2.0/repositories/{workspace}"), 3);
    assert_eq!(sim.request_count("GET", "/2.0/user"), 1);
    assert_eq!(sim.total_requests(), 4);
    assert_eq!(sim.request_counts().len(), 2);
    sim.reset_counters();
    assert_eq!(sim.total_requests(), 0);
}

#[tokio::test]
async fn the_1_0_reads_can_be_refused_and_served_again() {
    let sim = common::start_tiny(27).await;
    let (ws, _) = common::owned_and_member_ws(&sim);
    let url = sim.bitbucket_url();
    let privileges = format!("{url}/1.0/group-privileges/{ws}");
    let groups = format!("{url}/1.0/groups/{ws}");

    sim.faults().refuse_group_privileges(410);
    let (status, body) = common::admin_json(&sim, &privileges).await;
    assert_eq!(status, 410);
    assert_eq!(body["type"], "error");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deprecated")),
        "{body}"
    );
    assert!(
        body["error"]["data"]["announcement_url"].is_string(),
        "{body}"
    );
    // The groups listing is a separate switch.
    assert_eq!(common::admin_json(&sim, &groups).await.0, 200);

    for status in [403u16, 404] {
        sim.faults().refuse_group_privileges(status);
        let (got, body) = common::admin_json(&sim, &privileges).await;
        assert_eq!(got, status);
        assert_eq!(body["type"], "error", "{body}");
    }
    // 200 with a body that is not the documented array.
    sim.faults().refuse_group_privileges(200);
    let (got, body) = common::admin_json(&sim, &privileges).await;
    assert_eq!(got, 200);
    assert!(body.is_object(), "{body}");

    sim.faults().refuse_groups_v1(410);
    assert_eq!(common::admin_json(&sim, &groups).await.0, 410);
    let (got, _) = common::admin_json(&sim, &format!("{groups}/any-group/members")).await;
    assert_eq!(got, 410);

    sim.faults().clear();
    let (status, body) = common::admin_json(&sim, &privileges).await;
    assert_eq!(status, 200);
    assert!(body.is_array(), "{body}");
    assert_eq!(common::admin_json(&sim, &groups).await.0, 200);
}
