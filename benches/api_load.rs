//! Load on the HTTP API over loopback (issue 15): a store holding the 5,000-repository
//! benchmark world (4 workspaces, 2,000 users, synced from the simulator), and `serve`'s
//! router (health, metrics and the API) on a loopback port.
//!
//! - Reads: 16 concurrent clients asking for repositories' effective access, grants and one
//!   grant, bounded to 20,000 requests or 30 s, whichever comes first. Targets: at least 1,000
//!   requests/s, p99 under 50 ms.
//! - Grants (`api_load/grants.rs`): grant creation through `POST /v1/grants` with the
//!   simulator behind it (budget raised), its p99 less the simulator's own p99 under 100 ms,
//!   and `/metrics` consistent with the requests made.
//!
//! Prints every figure with PASS or FAIL; exits non-zero when a target is missed.

#[path = "api_load/grants.rs"]
mod grants;
#[path = "api_load/metrics.rs"]
mod metrics;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_access::api::{router, ApiState, Deliveries, Syncs, TargetedSyncRefresh};
use bitbucket_access::bitbucket::{Auth, BitbucketClient, BudgetSettings, ClientSettings};
use bitbucket_access::clock::SystemClock;
use bitbucket_access::config::Config;
use bitbucket_access::serve::{Board, Metrics, ServeState};
use bitbucket_access::store::Store;
use bitbucket_access::sync::{self, SyncOptions};
use bitbucket_sim::{Sim, SimOptions, World, WorldSpec};
use secrecy::SecretString;
use url::Url;

const REQUESTS_PER_HOUR: u32 = 100_000_000;
const MAX_REQUESTS: usize = 20_000;
const MAX_TIME: Duration = Duration::from_secs(30);
const CLIENTS: usize = 16;
const TOKEN: &str = "bench-reader-token";
const GRANTER_TOKEN: &str = "bench-granter-token";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if !runtime.block_on(run()) {
        std::process::exit(1);
    }
}

async fn run() -> bool {
    let world = World::generate(&WorldSpec {
        workspaces: 4,
        projects_per_workspace: 10,
        repositories: 5_000,
        users: 2_000,
        groups: 50,
        ..WorldSpec::large(15)
    });
    let sim = Sim::start(
        world,
        SimOptions {
            rate_limit_per_hour: REQUESTS_PER_HOUR,
            ..SimOptions::default()
        },
    )
    .await
    .expect("simulator starts");
    let mut settings = ClientSettings::new(
        Url::parse(&sim.bitbucket_url()).expect("url"),
        Auth::ApiToken {
            email: sim.admin_email(),
            token: SecretString::from(sim.admin_token()),
        },
    );
    settings.budget = BudgetSettings {
        requests_per_hour: REQUESTS_PER_HOUR,
        // Grants spend the reserve; raised so that no grant waits for the budget.
        reserve: REQUESTS_PER_HOUR / 10,
        max_in_flight: 16,
    };
    let client = BitbucketClient::builder(settings).build().expect("client");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let store: Arc<dyn Store> = bitbucket_access::store::open(&url).await.expect("store");
    let synced = Instant::now();
    let options = SyncOptions {
        max_requests: None,
        cross_check_sample: 0,
        ..SyncOptions::default()
    };
    sync::run(store.as_ref(), &client, &options)
        .await
        .expect("sync");
    let repos: Vec<String> = sim.with_world(|w| {
        w.workspaces
            .values()
            .flat_map(|ws| {
                ws.repositories
                    .keys()
                    .map(move |r| format!("{}/{r}", ws.slug))
            })
            .collect()
    });
    println!(
        "store: {} repositories synced in {:.1?}",
        repos.len(),
        synced.elapsed()
    );
    let text = format!(
        r#"{{"email": "a@b.io", "app_token": "t", "server": {{"tokens": [{{"name": "bench", "token": "{TOKEN}", "role": "reader"}}, {{"name": "bench-granter", "token": "{GRANTER_TOKEN}", "role": "granter"}}]}}}}"#
    );
    let config = Arc::new(
        Config::from_json_str(&text, &|_| None, std::path::Path::new("/")).expect("config"),
    );
    let syncs = Syncs::new(None, Arc::new(SystemClock));
    let state = Arc::new(ApiState {
        store: Arc::clone(&store),
        client: client.clone(),
        config,
        clock: Arc::new(SystemClock),
        refresh: Arc::new(TargetedSyncRefresh {
            store: Arc::clone(&store),
            client: client.clone(),
            clock: Arc::new(SystemClock),
        }),
        deliveries: Deliveries::default(),
        syncs,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    // The router `serve` runs: health and metrics, merged with the API.
    let serve_state = Arc::new(ServeState {
        store: Arc::clone(&store),
        board: Arc::new(Board::default()),
        metrics: Arc::new(Metrics::default()),
        budget: Arc::clone(client.budget()),
        clock: Arc::new(SystemClock),
        started: chrono::Utc::now(),
        max_sync_age: Duration::from_secs(3600),
        workspaces: Vec::new(),
    });
    let app = bitbucket_access::serve::router(serve_state).merge(router(state));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let reads_ok = reads(&base, repos).await;
    let grants_ok = grants::run(&sim, &client, &base, GRANTER_TOKEN).await;
    reads_ok && grants_ok
}

/// The latency at quantile `q` of sorted `times` (zero when empty).
fn percentile(times: &[Duration], q: f64) -> Duration {
    if times.is_empty() {
        return Duration::ZERO;
    }
    times[((times.len() as f64 * q) as usize).min(times.len() - 1)]
}

/// How a target's line ends.
fn verdict(passed: bool) -> &'static str {
    if passed {
        "PASS"
    } else {
        "FAIL"
    }
}

/// The read load; whether it met its targets.
async fn reads(base: &str, repos: Vec<String>) -> bool {
    let http = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let repos = Arc::new(repos);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..CLIENTS {
        let (http, next, repos, base) = (
            http.clone(),
            Arc::clone(&next),
            Arc::clone(&repos),
            base.to_owned(),
        );
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= MAX_REQUESTS || started.elapsed() > MAX_TIME {
                    break;
                }
                let path = match i % 10 {
                    0 => "/v1/grants".to_owned(),
                    1 => "/v1/grants/1".to_owned(),
                    _ => format!("/v1/access/repositories/{}", repos[i % repos.len()]),
                };
                let sent = Instant::now();
                let ok = match http
                    .get(format!("{base}{path}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        r.bytes().await.is_ok() && (status == 200 || status == 404)
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                failures += usize::from(!ok);
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await.expect("worker");
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| percentile(&latencies, p);
    let rate = latencies.len() as f64 / elapsed.as_secs_f64();
    let p99 = pct(0.99);
    println!(
        "reads: {} requests in {:.1?} with {CLIENTS} clients: {rate:.0} req/s, p50 {:.1?}, p99 {p99:.1?}, max {:.1?}, failures {failures}",
        latencies.len(),
        elapsed,
        pct(0.50),
        latencies.last().copied().unwrap_or_default()
    );
    let passed = rate >= 1_000.0 && p99 < Duration::from_millis(50) && failures == 0;
    println!(
        "reads: targets (>= 1,000 req/s, p99 < 50 ms, no failures): {}",
        verdict(passed)
    );
    passed
}
