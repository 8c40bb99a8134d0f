//! Helpers shared by the simulator's integration tests.
#![allow(dead_code)]

use bitbucket_sim::{Sim, SimHandle, SimOptions, World, WorldSpec};
use reqwest::{Client, Response};
use serde_json::Value;

/// The root of the simulator package, found at run time: `CARGO_MANIFEST_DIR` (cargo sets it for
/// every test process), or the current directory (cargo runs tests from the package root).
pub fn package_root() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// Starts a tiny world with a generous rate limit.
pub async fn start_tiny(seed: u64) -> SimHandle {
    start(World::generate(&WorldSpec::tiny(seed)), 100_000).await
}

/// Starts a world with a rate limit.
pub async fn start(world: World, rate_limit: u32) -> SimHandle {
    Sim::start(
        world,
        SimOptions {
            rate_limit_per_hour: rate_limit,
            ..SimOptions::default()
        },
    )
    .await
    .expect("simulator starts")
}

/// A fresh client (no connection reuse across tests).
pub fn client() -> Client {
    Client::builder().build().expect("client")
}

/// GET with the admin's Basic credentials.
pub async fn admin_get(sim: &SimHandle, path: &str) -> Response {
    client()
        .get(format!("{}{}", sim.bitbucket_url(), path))
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .send()
        .await
        .expect("request")
}

/// GET an absolute URL with the admin's credentials and parse JSON.
pub async fn admin_json(sim: &SimHandle, url: &str) -> (u16, Value) {
    let r = client()
        .get(url)
        .basic_auth(sim.admin_email(), Some(sim.admin_token()))
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let v = r.json::<Value>().await.unwrap_or(Value::Null);
    (status, v)
}

/// Follows `next` links from a first URL and collects every `values` item.
pub async fn collect_all(sim: &SimHandle, first: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = Some(first.to_string());
    while let Some(u) = url {
        let (status, page) = admin_json(sim, &u).await;
        assert_eq!(status, 200, "page {u} answered {status}: {page}");
        out.extend(page["values"].as_array().cloned().unwrap_or_default());
        url = page["next"].as_str().map(str::to_string);
    }
    out
}

/// The first workspace the admin owns and the one it only belongs to.
pub fn owned_and_member_ws(sim: &SimHandle) -> (String, String) {
    let admin = sim.admin_account_id();
    sim.with_world(|w| {
        let owned = w
            .workspaces
            .values()
            .find(|ws| matches!(ws.members.get(&admin), Some(m) if m.role == bitbucket_sim::Role::Owner))
            .map(|ws| ws.slug.clone())
            .expect("an owned workspace");
        let member = w
            .workspaces
            .values()
            .find(|ws| matches!(ws.members.get(&admin), Some(m) if m.role == bitbucket_sim::Role::Member))
            .map(|ws| ws.slug.clone())
            .expect("a workspace the admin does not own");
        (owned, member)
    })
}
