//! The request budget against the simulator's rate limit: what the rolling hour still allows
//! goes at once, a run that would exceed the hourly budget waits instead of being answered with
//! 429s, leaving the configured reserve to other tools using the same account, and a budget
//! built to pace spreads its requests over time.

use bitbucket_access::bitbucket::{
    Auth, BitbucketClient, Budget, BudgetSettings, ClientSettings, ErrorKind, RetryPolicy,
};
use bitbucket_sim::{Sim, SimHandle, SimOptions, World, WorldSpec};
use futures::future::join_all;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

const USER: &str = "/2.0/user";

async fn start_sim(seed: u64, rate_limit_per_hour: u32) -> SimHandle {
    let opts = SimOptions {
        rate_limit_per_hour,
        ..SimOptions::default()
    };
    Sim::start(World::generate(&WorldSpec::tiny(seed)), opts)
        .await
        .expect("simulator starts")
}

/// A client that never retries, so a single 429 from the simulator fails its call; with a
/// budget of its own unless one is given.
fn client(sim: &SimHandle, budget: Option<Arc<Budget>>) -> BitbucketClient {
    let settings = ClientSettings::new(
        Url::parse(&sim.bitbucket_url()).expect("url"),
        Auth::ApiToken {
            email: sim.admin_email(),
            token: SecretString::from(sim.admin_token()),
        },
    );
    let mut builder = BitbucketClient::builder(settings).retry_policy(RetryPolicy::immediate(1));
    if let Some(budget) = budget {
        builder = builder.budget(budget);
    }
    builder.build().expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_allowance_goes_at_once() {
    // Bitbucket's own allowance and the default budget (1,000 an hour, 100 in reserve).
    let sim = start_sim(80, 1000).await;
    let budget = Arc::new(Budget::new(BudgetSettings::default()));
    let c = client(&sim, Some(budget.clone()));
    const N: usize = 300;

    let results = join_all((0..N).map(|_| c.user())).await;

    assert!(results.iter().all(Result::is_ok), "a request was refused");
    assert_eq!(sim.request_count("GET", USER), N as u64);
    let stats = budget.stats();
    assert_eq!((stats.admitted, stats.delayed), (N as u64, 0), "{stats:?}");
    assert_eq!(budget.available(), 900 - N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_budget_spaces_requests_beyond_its_burst() {
    // 36,000 an hour is one every 100 ms; the simulator allows more than that.
    let sim = start_sim(81, 100_000).await;
    let settings = BudgetSettings {
        requests_per_hour: 36_000,
        reserve: 0,
        max_in_flight: 4,
    };
    let budget = Arc::new(Budget::with_burst(settings, 2));
    assert_eq!(budget.interval(), Duration::from_millis(100));
    let c = client(&sim, Some(budget.clone()));
    const N: usize = 20;

    let start = Instant::now();
    let results = join_all((0..N).map(|_| c.user())).await;
    let elapsed = start.elapsed();

    assert!(results.iter().all(Result::is_ok), "a request was refused");
    // Two go at once, the other 18 one interval apart.
    assert!(
        elapsed >= Duration::from_millis(1700),
        "took only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_millis(4000), "took {elapsed:?}");
    assert_eq!(sim.request_count("GET", USER), N as u64);
    assert_eq!(budget.request_counts()["GET /user"], N as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_would_exceed_the_hour_waits_and_leaves_the_reserve() {
    // Bitbucket allows 12 an hour; the connector keeps 2 in reserve for other tools.
    let sim = start_sim(82, 12).await;
    let settings = BudgetSettings {
        requests_per_hour: 12,
        reserve: 2,
        max_in_flight: 4,
    };
    let budget = Arc::new(Budget::new(settings));
    let c = client(&sim, Some(budget.clone()));

    for _ in 0..10 {
        c.user().await.expect("inside the budget");
    }
    assert_eq!(budget.available(), 0);
    // The 11th request is held back by the budget: it is not sent, so it cannot get a 429.
    let held = tokio::time::timeout(Duration::from_millis(400), c.user()).await;
    assert!(held.is_err(), "the 11th request was not held back");
    assert_eq!(sim.request_count("GET", USER), 10);

    // The reserve is still there for another tool using the same account.
    let other_tool = client(&sim, None);
    other_tool.user().await.expect("first reserved request");
    other_tool.user().await.expect("second reserved request");
    assert_eq!(sim.request_count("GET", USER), 12);
}

#[tokio::test]
async fn without_a_matching_budget_the_same_run_meets_429s() {
    // The control for the test above: a budget larger than Bitbucket's limit lets the 13th
    // request through, and Bitbucket refuses it.
    let sim = start_sim(83, 12).await;
    let c = client(&sim, None);
    for _ in 0..12 {
        c.user().await.expect("inside Bitbucket's limit");
    }
    let err = c.user().await.expect_err("over Bitbucket's limit");
    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(sim.request_count("GET", USER), 13);
}
