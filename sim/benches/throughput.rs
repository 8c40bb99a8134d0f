//! Simulator throughput on loopback and the memory of a 20,000-repository world.
//!
//! Run: `cargo bench -p bitbucket-sim --bench throughput` (about 15 seconds). Prints requests
//! per second for small permission pages and for full pages of 100 repositories, with the
//! targets the connector's benchmarks rely on (5,000/s and 1,000/s), and the resident memory the
//! large world adds.

use std::time::{Duration, Instant};

use bitbucket_sim::{Sim, SimOptions, World, WorldSpec};

fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

async fn hammer(urls: Vec<String>, auth: (String, String), secs: f64, concurrency: usize) -> f64 {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut set = tokio::task::JoinSet::new();
    let start = Instant::now();
    for i in 0..concurrency {
        let client = client.clone();
        let urls = urls.clone();
        let auth = auth.clone();
        set.spawn(async move {
            let mut n = 0u64;
            let mut k = i;
            while Instant::now() < deadline {
                let url = &urls[k % urls.len()];
                k += 1;
                let r = client
                    .get(url)
                    .basic_auth(&auth.0, Some(&auth.1))
                    .send()
                    .await
                    .expect("request");
                assert!(r.status().is_success(), "{url}: {}", r.status());
                let _ = r.bytes().await.expect("body");
                n += 1;
            }
            n
        });
    }
    let mut total = 0;
    while let Some(n) = set.join_next().await {
        total += n.expect("worker");
    }
    total as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let before = rss_bytes().unwrap_or(0);
        let t = Instant::now();
        let world = World::generate(&WorldSpec::large(1));
        let gen_time = t.elapsed();
        let after = rss_bytes().unwrap_or(0);
        let repos: usize = world.workspaces.values().map(|w| w.repositories.len()).sum();
        let mib = (after.saturating_sub(before)) as f64 / (1024.0 * 1024.0);
        println!(
            "large world: {repos} repositories, {} users, generated in {:.2?}, +{mib:.1} MiB resident ({})",
            world.users.len() - 1,
            gen_time,
            if mib < 1024.0 { "ok: < 1 GiB" } else { "OVER 1 GiB" }
        );

        let ws = world.workspaces.keys().next().cloned().expect("workspace");
        let small_repos: Vec<String> = world.workspaces[&ws]
            .repositories
            .values()
            .filter(|r| r.user_permissions.len() <= 10)
            .take(200)
            .map(|r| r.slug.clone())
            .collect();
        let sim = Sim::start(
            world,
            SimOptions {
                rate_limit_per_hour: u32::MAX,
                ..SimOptions::default()
            },
        )
        .await
        .expect("sim");
        let auth = (sim.admin_email(), sim.admin_token());
        let base = sim.bitbucket_url();

        let small: Vec<String> = small_repos
            .iter()
            .map(|r| format!("{base}/2.0/repositories/{ws}/{r}/permissions-config/users"))
            .collect();
        let _ = hammer(small.clone(), auth.clone(), 0.5, 16).await;
        let rps = hammer(small, auth.clone(), 4.0, 32).await;
        println!(
            "small permission pages: {rps:.0} req/s (target 5000: {})",
            if rps >= 5000.0 { "met" } else { "NOT met" }
        );

        // Full pages: the first pages of the listing, following real cursors.
        let mut full = vec![format!("{base}/2.0/repositories/{ws}?pagelen=100")];
        let client = reqwest::Client::new();
        for _ in 0..9 {
            let last = full.last().cloned().expect("url");
            let v: serde_json::Value = client
                .get(&last)
                .basic_auth(&auth.0, Some(&auth.1))
                .send()
                .await
                .expect("request")
                .json()
                .await
                .expect("json");
            match v["next"].as_str() {
                Some(n) => full.push(n.to_string()),
                None => break,
            }
        }
        let rps = hammer(full, auth.clone(), 4.0, 16).await;
        println!(
            "full pages of 100 repositories: {rps:.0} req/s (target 1000: {})",
            if rps >= 1000.0 { "met" } else { "NOT met" }
        );
        println!(
            "requests served: {}; process resident memory now {:.1} MiB",
            sim.total_requests(),
            rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0)
        );
    });
}
