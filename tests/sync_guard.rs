//! The sync's guards against one bad reading, on SQLite and (when `TEST_POSTGRES_URL` is set)
//! PostgreSQL: a complete but nearly empty listing is held back instead of wiping the stored
//! facts, and applied only when the operator accepts it; a failed read is remembered for the
//! answers that rest on it; a store file removed under a run never yields a Complete report.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::store::{
    open, AuditFilter, AuditKind, ListingKey, MassChangeGuard, Store, SyncOutcome,
};
use bitbucket_access::sync::{self, SyncOptions};
use std::sync::Arc;
use sync_support::*;

on_both_backends!(
    a_vanished_repositories_listing_is_held_until_accepted,
    a_failed_listing_is_remembered_until_read_again,
);

fn options(ws: &str, guard: MassChangeGuard) -> SyncOptions {
    SyncOptions {
        workspaces: vec![ws.to_string()],
        mass_change: guard,
        ..SyncOptions::default()
    }
}

/// A guard that holds the removal of more than half of a listing, from two facts on (the tiny
/// world has only a handful of repositories per workspace).
fn guard(accept: bool) -> MassChangeGuard {
    MassChangeGuard {
        max_percent: 50,
        min_count: 2,
        accept,
    }
}

async fn a_vanished_repositories_listing_is_held_until_accepted(url: String) {
    let sim = start_sim(7301).await;
    let store: Arc<dyn Store> = open(&url).await.expect("store opens");
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let first = sync::run(store.as_ref(), &client, &options(&ws, guard(false)))
        .await
        .expect("first sync");
    assert_eq!(first.outcome, SyncOutcome::Complete, "{first:#?}");
    let stored = store.repositories(&slug(&ws)).await.expect("repositories");
    assert!(stored.len() >= 2, "the tiny world has repositories");

    // Bitbucket answers a complete but empty repositories listing (a glitch, or a real loss).
    sim.with_world(|w| {
        w.workspaces
            .get_mut(&ws)
            .expect("workspace")
            .repositories
            .clear()
    });
    let held = sync::run(store.as_ref(), &client, &options(&ws, guard(false)))
        .await
        .expect("second sync");
    assert_eq!(
        held.outcome,
        SyncOutcome::Partial,
        "a held change is not Complete"
    );
    let repos_key = ListingKey::Repositories(slug(&ws)).to_string();
    let entry = held
        .mass_changes_held
        .iter()
        .find(|h| h.listing == repos_key)
        .unwrap_or_else(|| panic!("the repositories listing is held: {held:#?}"));
    assert_eq!(entry.would_remove, stored.len() as u64);
    assert_eq!(entry.stored, stored.len() as u64);
    assert_eq!(
        store
            .repositories(&slug(&ws))
            .await
            .expect("repositories")
            .len(),
        stored.len(),
        "the stored repositories stay"
    );
    let audit = store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::HeldChange],
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert!(!audit.is_empty(), "the held change is in the audit log");

    // The operator confirms: the removal is applied.
    let accepted = sync::run(store.as_ref(), &client, &options(&ws, guard(true)))
        .await
        .expect("accepted sync");
    assert!(accepted.mass_changes_held.is_empty(), "{accepted:#?}");
    assert!(store
        .repositories(&slug(&ws))
        .await
        .expect("repositories")
        .is_empty());
}

async fn a_failed_listing_is_remembered_until_read_again(url: String) {
    let sim = start_sim(7302).await;
    let store: Arc<dyn Store> = open(&url).await.expect("store opens");
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    // Every attempt of the run's first request fails (the client tries twice).
    sim.faults().fail_next(2, 500);
    let report = sync::run(store.as_ref(), &client, &options(&ws, guard(false)))
        .await
        .expect("sync runs");
    assert_eq!(report.outcome, SyncOutcome::Partial);
    let failed = report.failures.first().expect("a listing failed");
    let key = ListingKey::parse(&failed.listing).expect("a listing key");
    let failures = store.listing_failures(&slug(&ws)).await.expect("failures");
    assert!(
        failures.iter().any(|f| f.key == key),
        "the failed listing {key} is recorded: {failures:?}"
    );

    let report = sync::run(store.as_ref(), &client, &options(&ws, guard(false)))
        .await
        .expect("sync runs");
    assert_eq!(report.outcome, SyncOutcome::Complete, "{report:#?}");
    let failures = store.listing_failures(&slug(&ws)).await.expect("failures");
    assert!(
        failures.iter().all(|f| f.key != key),
        "a complete read clears the failure: {failures:?}"
    );
}

#[tokio::test]
async fn a_removed_store_file_never_reports_complete() {
    let db = support_db::sqlite_db();
    let sim = start_sim(7303).await;
    let store: Arc<dyn Store> = open(&db.url).await.expect("store opens");
    let client = client(&sim, 4);
    let ws = owned_workspaces(&sim).remove(0);
    let path = db.url.trim_start_matches("sqlite://").to_string();
    std::fs::remove_file(&path).expect("remove the store file");
    let outcome = sync::run(store.as_ref(), &client, &options(&ws, guard(false))).await;
    let error = outcome.expect_err("a sync into a removed file fails");
    assert!(
        error.to_string().contains("store.db"),
        "the error names the file: {error}"
    );
}
