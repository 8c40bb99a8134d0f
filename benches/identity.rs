//! The identity matching benchmark: the Jira requests it takes to match 5,000 Bitbucket
//! accounts against a 5,000-user Jira served by the simulator.
//!
//! Run: `cargo bench --bench identity`. Jira holds exactly 5,000 users; 50 of them are left
//! out of `users/search`, as real sites leave out some accounts, so the bulk look-up has work
//! to do. Prints the `users/search` and `user/bulk`
//! requests next to the target (at most 5 `users/search` requests, plus one bulk request per
//! 50 missing accounts) with PASS or FAIL, and exits non-zero when the target is missed.

use std::time::Instant;

use bitbucket_access::domain::{AccountId, IdentitySource};
use bitbucket_access::identity::sources::read_jira;
use bitbucket_access::jira::{JiraClient, JiraSettings, BULK_CHUNK};
use bitbucket_sim::{Sim, SimOptions, World, WorldSpec};
use secrecy::SecretString;
use url::Url;

const JIRA_USERS: usize = 5_000;
const UNLISTED: usize = 50;
const MAX_SEARCH_REQUESTS: u64 = 5;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let passed = runtime.block_on(run());
    if !passed {
        std::process::exit(1);
    }
}

async fn run() -> bool {
    let spec = WorldSpec {
        seed: 11,
        workspaces: 1,
        projects_per_workspace: 1,
        repositories: 10,
        users: JIRA_USERS,
        groups: 1,
        public_ratio: 0.0,
        hidden_email_ratio: 0.2,
        no_jira_ratio: 0.0,
        admin_managed_workspace: None,
    };
    let sim = Sim::start(World::generate(&spec), SimOptions::default())
        .await
        .expect("simulator starts");
    let accounts: Vec<AccountId> = sim.with_world(|w| {
        w.users
            .values()
            .filter(|u| u.jira_account_type.is_some())
            .map(|u| AccountId::parse(u.account_id.clone()).expect("account id"))
            .collect()
    });
    assert_eq!(accounts.len(), JIRA_USERS, "the Jira holds 5,000 users");
    let unlisted: Vec<String> = accounts
        .iter()
        .step_by(accounts.len() / UNLISTED)
        .take(UNLISTED)
        .map(|a| a.to_string())
        .collect();
    sim.hide_from_jira_listing(&unlisted);
    let (user, key) = sim.jira_credentials();
    let client = JiraClient::new(JiraSettings::new(
        Url::parse(&sim.jira_url()).expect("jira url"),
        user,
        SecretString::from(key),
    ))
    .expect("jira client");
    sim.reset_counters();
    let started = Instant::now();
    let facts = read_jira(&client, &accounts).await.expect("Jira is read");
    let elapsed = started.elapsed();
    let search = sim.request_count("GET", "/rest/api/3/users/search");
    let bulk = sim.request_count("GET", "/rest/api/3/user/bulk");
    let by_bulk = facts
        .values()
        .filter(|f| f.source == IdentitySource::JiraUserBulk)
        .count();
    let max_bulk = UNLISTED.div_ceil(BULK_CHUNK) as u64;
    let ok = search <= MAX_SEARCH_REQUESTS && bulk <= max_bulk && facts.len() == JIRA_USERS;
    println!(
        "identity matching: {} accounts against a {JIRA_USERS}-user Jira ({UNLISTED} left out of \
         users/search)",
        accounts.len()
    );
    println!(
        "  users/search requests: {search} (target at most {MAX_SEARCH_REQUESTS}); user/bulk \
         requests: {bulk} for {by_bulk} missing accounts (target at most {max_bulk}); {} \
         accounts answered in {} ms: {}",
        facts.len(),
        elapsed.as_millis(),
        if ok { "PASS" } else { "FAIL" }
    );
    ok
}
