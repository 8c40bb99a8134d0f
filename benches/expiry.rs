//! The expiry benchmark: how late 1,000 grants ending within one minute are ended by the watch
//! loop (`expire --watch`), against the target p99 ≤ 2 s.
//!
//! Run: `cargo bench --bench expiry` (SQLite; set `BENCH_POSTGRES_URL` to a database URL to
//! run on PostgreSQL too). The simulator runs in-process with an hourly allowance of 1,000,000
//! requests and the client's budget is raised to match (a real token's ~1,000 an hour could not
//! restore 1,000 grants in a minute: each restore is a GET and a PUT or DELETE). The grants are
//! made first (one PUT each), their ends spread evenly over one minute starting 45 s after the
//! first grant; then the watch loop runs on the real clock until every grant has ended.
//! Lateness is the time between a grant's end and the moment its restore was recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_access::bitbucket::{
    Auth, BitbucketClient, BudgetSettings, ClientSettings, RetryPolicy,
};
use bitbucket_access::clock::{Clock, SystemClock};
use bitbucket_access::domain::{
    AccountId, GrantLevel, GrantState, GrantTarget, Principal, RepoRef, RepoSlug, WorkspaceSlug,
};
use bitbucket_access::grants::{Engine, EngineSettings, GrantPlan};
use bitbucket_access::store::{GrantFilter, Store};
use bitbucket_sim::{Role, Sim, SimOptions, World, WorldSpec};
use futures::stream::{self, StreamExt};
use secrecy::SecretString;
use url::Url;

const GRANTS: usize = 1_000;
const REQUESTS_PER_HOUR: u32 = 1_000_000;
const TARGET_P99: Duration = Duration::from_secs(2);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut passed = true;
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = format!("sqlite://{}", dir.path().join("expiry.db").display());
    passed &= runtime.block_on(run("SQLite", &sqlite));
    if let Ok(url) = std::env::var("BENCH_POSTGRES_URL") {
        passed &= runtime.block_on(run("PostgreSQL", &url));
    }
    if !passed {
        std::process::exit(1);
    }
}

fn world() -> World {
    World::generate(&WorldSpec {
        repositories: 240,
        users: 40,
        ..WorldSpec::tiny(77)
    })
}

async fn run(backend: &str, url: &str) -> bool {
    let sim = Sim::start(
        world(),
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
        reserve: 0,
        max_in_flight: 8,
    };
    let client = BitbucketClient::builder(settings)
        .retry_policy(RetryPolicy::default())
        .build()
        .expect("client");
    let store: Arc<dyn Store> = bitbucket_access::store::open(url)
        .await
        .expect("store opens");
    let admin = sim.admin_account_id();
    let targets: Vec<(String, String, String)> = sim.with_world(|w| {
        let ws = w
            .workspaces
            .values()
            .find(|ws| w.is_owner(ws, &admin))
            .expect("an owned workspace");
        let members: Vec<&String> = ws
            .members
            .iter()
            .filter(|(_, m)| m.role == Role::Member)
            .map(|(id, _)| id)
            .collect();
        ws.repositories
            .keys()
            .flat_map(|repo| {
                members
                    .iter()
                    .map(move |m| (ws.slug.clone(), repo.clone(), (*m).clone()))
            })
            .take(GRANTS)
            .collect()
    });
    assert_eq!(targets.len(), GRANTS, "the world has enough slots");

    let clock = SystemClock;
    let mut engine_settings = EngineSettings::new("bench");
    engine_settings.max_in_flight = 8;
    let engine = Engine::new(store.as_ref(), &client, &clock, engine_settings);
    let first_end = clock.now() + chrono::Duration::seconds(45);
    let step = chrono::Duration::milliseconds(60_000 / GRANTS as i64);
    let started = Instant::now();
    let made: Vec<bool> = stream::iter(targets.iter().enumerate())
        .map(|(i, (ws, repo, account))| {
            let engine = &engine;
            async move {
                let plan = GrantPlan {
                    principal: Principal::User {
                        account_id: AccountId::parse(account.clone()).expect("id"),
                    },
                    target: GrantTarget::Repository {
                        repository: RepoRef {
                            workspace: WorkspaceSlug::parse(ws.clone()).expect("ws"),
                            slug: RepoSlug::parse(repo.clone()).expect("repo"),
                        },
                    },
                    level: GrantLevel::Admin,
                    expires_at: Some(first_end + step * i as i32),
                    requested_by: "bench@example.com".to_owned(),
                    reason: None,
                    ticket: None,
                };
                engine.grant(&plan).await.is_ok()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let granted = made.iter().filter(|ok| **ok).count();
    println!(
        "{backend}: {granted} grants made in {:.1} s; ends spread over 60 s from 45 s after the start",
        started.elapsed().as_secs_f64()
    );

    let store_ref = store.as_ref();
    let everything_ended = async {
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let open = store_ref
                .list_grants(&GrantFilter {
                    states: vec![GrantState::Active, GrantState::Ending, GrantState::Pending],
                    ..GrantFilter::default()
                })
                .await
                .map_or(1, |g| g.len());
            if open == 0 {
                break;
            }
        }
    };
    engine
        .watch(everything_ended)
        .await
        .expect("the watch loop runs");

    let grants = store
        .list_grants(&GrantFilter::default())
        .await
        .expect("grants");
    let mut lateness: Vec<Duration> = grants
        .iter()
        .filter(|g| g.state == GrantState::Ended)
        .filter_map(|g| (g.updated_at - g.expires_at?).to_std().ok())
        .collect();
    lateness.sort();
    let ended = lateness.len();
    let pick = |q: f64| {
        lateness
            .get(((ended as f64 * q).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or_default()
    };
    let (p50, p99, max) = (
        pick(0.5),
        pick(0.99),
        lateness.last().copied().unwrap_or_default(),
    );
    let pass = ended == GRANTS && p99 <= TARGET_P99;
    println!(
        "{backend}: {ended} of {GRANTS} grants ended; lateness p50 {} ms, p99 {} ms, max {} ms \
         (target p99 ≤ {} ms): {}",
        p50.as_millis(),
        p99.as_millis(),
        max.as_millis(),
        TARGET_P99.as_millis(),
        if pass { "PASS" } else { "FAIL" }
    );
    pass
}
