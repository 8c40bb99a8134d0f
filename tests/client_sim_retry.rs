//! The Bitbucket client's retry policy against the simulator: Bitbucket's 429 (plain text, no
//! `Retry-After`) and 5xx answers are retried within the policy's bounds, other 4xx answers
//! never. Attempts are counted by the simulator, which sees every one of them.

use bitbucket_access::bitbucket::{
    Auth, BitbucketClient, ClientSettings, ErrorKind, PermissionLevel, PermissionTarget,
    RetryPolicy,
};
use bitbucket_sim::{Role, Sim, SimHandle, SimOptions, World, WorldSpec};
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

fn client(sim: &SimHandle, token: &str, retry: RetryPolicy) -> BitbucketClient {
    let settings = ClientSettings::new(
        Url::parse(&sim.bitbucket_url()).expect("url"),
        Auth::ApiToken {
            email: sim.admin_email(),
            token: SecretString::from(token.to_string()),
        },
    );
    BitbucketClient::builder(settings)
        .retry_policy(retry)
        .build()
        .expect("client")
}

/// Short real delays, so the tests exercise the sleeping path and stay fast.
fn quick(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total_wait: Duration::from_secs(2),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_retried_until_the_rolling_window_frees_up() {
    let sim = Arc::new(start_sim(71, 5).await);
    let c = client(&sim, &sim.admin_token(), quick(12));
    for _ in 0..5 {
        c.user().await.expect("inside the limit");
    }

    // Once two attempts have been refused, the simulator's hour passes.
    let clock = {
        let sim = sim.clone();
        tokio::spawn(async move {
            while sim.request_count("GET", USER) < 7 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            sim.advance_rate_clock(Duration::from_secs(3600));
        })
    };
    let account = c.user().await.expect("succeeds after retrying the 429s");
    clock.await.expect("clock task");

    assert_eq!(account.account_id, Some(sim.admin_account_id()));
    let attempts = sim.request_count("GET", USER) - 5;
    assert!(
        (3..=12).contains(&attempts),
        "{attempts} attempts for one call"
    );
}

#[tokio::test]
async fn a_429_that_persists_stops_at_max_attempts() {
    let sim = start_sim(72, 3).await;
    let c = client(&sim, &sim.admin_token(), quick(4));
    for _ in 0..3 {
        c.user().await.expect("inside the limit");
    }

    let err = c.user().await.expect_err("the limit is spent");

    assert_eq!(err.kind, ErrorKind::RateLimited);
    assert_eq!(err.status, Some(429));
    // The simulator's plain-text body is kept as the message.
    assert_eq!(err.message, bitbucket_sim::api::RATE_LIMIT_BODY);
    assert!(err.hint.contains("4 attempts"), "{}", err.hint);
    assert_eq!(sim.request_count("GET", USER), 3 + 4);

    // Once the window has rolled, the same client works again.
    sim.reset_rate_limits();
    c.user().await.expect("window reset");
}

#[tokio::test]
async fn server_errors_are_retried_within_the_bounds() {
    let sim = start_sim(73, 1000).await;
    let c = client(&sim, &sim.admin_token(), quick(4));

    // Two failures, then success: three attempts.
    sim.faults().fail_next(2, 503);
    c.user().await.expect("third attempt succeeds");
    assert_eq!(sim.request_count("GET", USER), 3);

    // A failure that outlasts the attempts: exactly max_attempts, then the error.
    sim.reset_counters();
    sim.faults().fail_next(10, 500);
    let err = c.user().await.expect_err("still failing");
    assert_eq!(err.kind, ErrorKind::Server);
    assert_eq!(err.status, Some(500));
    assert!(err.hint.contains("4 attempts"), "{}", err.hint);
    assert_eq!(sim.request_count("GET", USER), 4);
    sim.faults().clear();

    // The total sleeping time bounds the retries too, whatever max_attempts says.
    sim.reset_counters();
    sim.faults().fail_next(1000, 502);
    let patient = client(
        &sim,
        &sim.admin_token(),
        RetryPolicy {
            max_attempts: 1000,
            base_delay: Duration::from_millis(40),
            max_delay: Duration::from_millis(40),
            max_total_wait: Duration::from_millis(200),
        },
    );
    let start = Instant::now();
    let err = patient.user().await.expect_err("still failing");
    let elapsed = start.elapsed();
    assert_eq!(err.status, Some(502));
    let attempts = sim.request_count("GET", USER);
    assert!(attempts >= 2, "{attempts}");
    assert!(attempts < 1000, "{attempts}");
    assert!(elapsed < Duration::from_millis(1500), "{elapsed:?}");
    sim.faults().clear();
}

#[tokio::test]
async fn permission_writes_are_retried_on_5xx_because_they_are_idempotent() {
    let sim = start_sim(74, 1000).await;
    let c = client(&sim, &sim.admin_token(), quick(4));
    let admin = sim.admin_account_id();
    // A plain member of an owned workspace and one of its repositories.
    let (ws, repo, member) = sim.with_world(|w| {
        let ws = w
            .workspaces
            .values()
            .find(|ws| matches!(ws.members.get(&admin), Some(m) if m.role == Role::Owner))
            .expect("owned workspace");
        let member = ws
            .members
            .iter()
            .find(|(_, m)| m.role == Role::Member)
            .map(|(id, _)| id.clone())
            .expect("a member");
        let repo = ws.repositories.keys().next().expect("a repository").clone();
        (ws.slug.clone(), repo, member)
    });
    let target = PermissionTarget::Repository {
        workspace: &ws,
        repo_slug: &repo,
    };
    const TEMPLATE: &str =
        "/2.0/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}";

    sim.faults().fail_next(1, 502);
    c.permissions()
        .put_user(target, &member, PermissionLevel::Write)
        .await
        .expect("second attempt applies the grant");
    assert_eq!(sim.request_count("PUT", TEMPLATE), 2);
    let level = sim.with_world(|w| {
        w.workspaces[&ws].repositories[&repo]
            .user_permissions
            .get(&member)
            .copied()
    });
    assert_eq!(level, Some(bitbucket_sim::Level::Write));

    sim.faults().fail_next(1, 503);
    c.permissions()
        .delete_user(target, &member)
        .await
        .expect("second attempt removes the grant");
    assert_eq!(sim.request_count("DELETE", TEMPLATE), 2);
}

#[tokio::test]
async fn client_errors_are_never_retried() {
    let sim = start_sim(75, 1000).await;
    let c = client(&sim, &sim.admin_token(), quick(5));

    // 404: a repository that does not exist.
    let ws = sim.with_world(|w| w.workspaces.keys().next().expect("workspace").clone());
    let err = c
        .repositories(&ws)
        .get("no-such-repository")
        .await
        .expect_err("absent");
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(
        sim.request_count("GET", "/2.0/repositories/{workspace}/{repo_slug}"),
        1
    );

    // 401: a token that authenticates nobody.
    let err = client(&sim, "not-a-token", quick(5))
        .user()
        .await
        .expect_err("refused");
    assert_eq!(err.kind, ErrorKind::Unauthorized);
    assert_eq!(sim.request_count("GET", USER), 1);

    // 403: a token without the scope.
    let token = sim.issue_token(&sim.admin_email(), &["read:repository:bitbucket"]);
    let err = client(&sim, &token, quick(5))
        .user()
        .await
        .expect_err("missing read:user");
    assert_eq!(err.kind, ErrorKind::Forbidden);
    assert_eq!(
        err.missing_scopes(),
        vec!["read:user:bitbucket".to_string()]
    );
    assert_eq!(sim.request_count("GET", USER), 2);

    // An injected 400 before any processing.
    sim.faults().fail_next(3, 400);
    let err = c.user().await.expect_err("bad request");
    assert_eq!(err.kind, ErrorKind::BadRequest);
    assert_eq!(sim.request_count("GET", USER), 3);
    sim.faults().clear();
}
