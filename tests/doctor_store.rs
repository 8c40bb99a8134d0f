//! `doctor` checks the configured store: a store that does not answer, or an SQLite file that
//! is damaged, is a problem with its fix; an SQLite file that the first sync will create is not.

mod doctor_support;

use bitbucket_access::config::DatabaseUrl;
use doctor_support::*;
use std::path::Path;

fn with_store(sim: &bitbucket_sim::SimHandle, url: &str) -> bitbucket_access::config::Config {
    let email = sim.admin_email();
    let token = sim.admin_token();
    let mut config = config(sim, &email, &token, None);
    config.database_url = DatabaseUrl::parse(url, Path::new(".")).expect("database url");
    config
}

#[tokio::test]
async fn an_unreachable_store_is_a_problem_with_its_fix() {
    let sim = start_sim(811).await;
    // Nothing listens on port 1 of the loopback: the connection is refused at once.
    let report = run_doctor(&with_store(&sim, "postgres://ba:pw@127.0.0.1:1/ba")).await;
    assert!(!report.store.health.reachable, "{:?}", report.store);
    assert!(!report.healthy());
    let problem = report
        .problems
        .iter()
        .find(|p| p.what.starts_with("store "))
        .unwrap_or_else(|| panic!("a store problem: {:?}", report.problems));
    assert!(
        !problem.what.contains("pw"),
        "no password: {}",
        problem.what
    );
    assert!(!report.store.url.contains("pw"), "{}", report.store.url);
}

#[tokio::test]
async fn a_damaged_sqlite_file_is_a_problem() {
    let sim = start_sim(812).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("store.db");
    std::fs::write(&path, vec![0x5a_u8; 8192]).expect("write junk");
    let report = run_doctor(&with_store(&sim, &format!("sqlite://{}", path.display()))).await;
    assert!(!report.store.health.is_ok(), "{:?}", report.store);
    assert!(
        report.problems.iter().any(|p| p.what.contains("store.db")),
        "the problem names the file: {:?}",
        report.problems
    );
}

#[tokio::test]
async fn a_store_the_first_sync_creates_is_fine() {
    let sim = start_sim(813).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("data").join("store.db");
    let report = run_doctor(&with_store(&sim, &format!("sqlite://{}", path.display()))).await;
    assert!(report.store.health.is_ok(), "{:?}", report.store);
    assert!(
        report
            .store
            .health
            .note
            .as_deref()
            .is_some_and(|n| n.contains("does not exist yet")),
        "{:?}",
        report.store
    );
    assert!(
        !report.problems.iter().any(|p| p.what.starts_with("store ")),
        "{:?}",
        report.problems
    );
    assert!(!path.exists(), "doctor creates nothing");
}
