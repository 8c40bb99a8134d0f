//! Durable, exactly once (issue 12, items 4 and 5), against the simulator on SQLite and
//! PostgreSQL: a crash injected after storing the intent, after the PUT and after the restore is
//! reconciled by a fresh engine; a 5xx during a restore is retried and the grant stays due until
//! it succeeds; two expiry workers on one store act exactly once on 200 grants ending together;
//! a second watcher on SQLite refuses to start.

#[macro_use]
mod support_db;
mod grants_support;
mod sync_support;

use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::OnConflict;
use bitbucket_access::domain::{GrantLevel, GrantState};
use bitbucket_access::grants::{GrantError, Step};
use bitbucket_access::store::{open, AuditKind, Backend, Store};
use bitbucket_sim::Level;
use grants_support::*;
use std::sync::Arc;

on_both_backends!(
    a_crash_after_the_intent_is_reconciled,
    a_crash_after_the_put_is_reconciled_without_a_second_put,
    a_crash_after_the_restore_is_reconciled_without_a_second_delete,
    a_server_error_during_a_restore_keeps_the_grant_due_until_it_succeeds,
    two_workers_end_200_grants_exactly_once,
    a_second_watcher_on_sqlite_refuses_to_start,
);

async fn store_at(url: &str) -> Arc<dyn Store> {
    open(url).await.expect("store opens")
}

fn crashing(step: Step) -> bitbucket_access::grants::EngineSettings {
    let mut s = settings("crashing", OnConflict::Keep);
    s.stop_after = Some(step);
    s
}

async fn a_crash_after_the_intent_is_reconciled(url: String) {
    let f = Fixture::new(1301, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    let crashed = f.engine_with(crashing(Step::Intent));
    let err = crashed
        .grant(&slot.plan(GrantLevel::Write, Some(at(60))))
        .await
        .expect_err("stopped");
    assert!(matches!(err, GrantError::Stopped(Step::Intent)));
    assert_eq!(level_in_sim(sim, slot), None, "Bitbucket not called yet");
    let pending = store
        .list_grants(&Default::default())
        .await
        .expect("grants");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].state, GrantState::Pending);
    assert_eq!(
        audit_of(store, pending[0].id).await.len(),
        1,
        "the intent's entry"
    );

    // Before the crashed worker's claim lapses, nobody takes the grant over.
    let fresh = f.engine_with(settings("fresh", OnConflict::Keep));
    assert_eq!(fresh.expire_pass().await.expect("pass").total(), 0);
    clock.set(at(2));
    let report = fresh.expire_pass().await.expect("pass");
    assert_eq!(report.applied, 1);
    assert_eq!(level_in_sim(sim, slot), Some(Level::Write));
    let g = store
        .grant(pending[0].id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(g.state, GrantState::Active);
    assert_eq!(writes(sim), (1, 0));
}

async fn a_crash_after_the_put_is_reconciled_without_a_second_put(url: String) {
    let f = Fixture::new(1302, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    let crashed = f.engine_with(crashing(Step::Applied));
    crashed
        .grant(&slot.plan(GrantLevel::Write, Some(at(60))))
        .await
        .expect_err("stopped");
    assert_eq!(level_in_sim(sim, slot), Some(Level::Write));
    let id = store
        .list_grants(&Default::default())
        .await
        .expect("grants")[0]
        .id;
    assert_eq!(
        store.grant(id).await.expect("read").expect("exists").state,
        GrantState::Pending
    );

    // The next grant on the slot reconciles first (the crashed lease lapsed).
    clock.set(at(2));
    let fresh = f.engine_with(settings("fresh", OnConflict::Keep));
    let second = fresh
        .grant(&slot.plan(GrantLevel::Read, Some(at(30))))
        .await
        .expect("second grant");
    assert_eq!(second.state, GrantState::Satisfied);
    let first = store.grant(id).await.expect("read").expect("exists");
    assert_eq!(first.state, GrantState::Active, "found in place");
    assert_eq!(first.baseline, None);
    assert_eq!(writes(sim), (1, 0), "no second PUT");

    clock.set(at(60));
    fresh.expire_pass().await.expect("pass");
    assert_eq!(
        level_in_sim(sim, slot),
        None,
        "the original baseline, not write"
    );
}

async fn a_crash_after_the_restore_is_reconciled_without_a_second_delete(url: String) {
    let f = Fixture::new(1303, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    let normal = f.engine_with(settings("w", OnConflict::Keep));
    let grant = normal
        .grant(&slot.plan(GrantLevel::Write, Some(at(10))))
        .await
        .expect("granted");
    clock.set(at(10));
    let crashed = f.engine_with(crashing(Step::Restored));
    let report = crashed.expire_pass().await.expect("pass");
    assert_eq!(report.errors, 1);
    assert_eq!(level_in_sim(sim, slot), None, "restored in Bitbucket");
    let g = store.grant(grant.id).await.expect("read").expect("exists");
    assert_eq!(g.state, GrantState::Ending);

    clock.set(at(12));
    let fresh = f.engine_with(settings("fresh", OnConflict::Keep));
    assert_eq!(fresh.expire_pass().await.expect("pass").ended, 1);
    let g = store.grant(grant.id).await.expect("read").expect("exists");
    assert_eq!(g.state, GrantState::Ended);
    assert_eq!(writes(sim), (1, 1), "one DELETE");
}

async fn a_server_error_during_a_restore_keeps_the_grant_due_until_it_succeeds(url: String) {
    let f = Fixture::new(1304, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    let e = f.engine(OnConflict::Keep);
    let grant = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(10))))
        .await
        .expect("granted");

    // One failure: the HTTP layer's retry absorbs it.
    clock.set(at(10));
    sim.faults().fail_next(1, 503);
    assert_eq!(e.expire_pass().await.expect("pass").ended, 1);
    assert_eq!(level_in_sim(sim, slot), None);

    // Failures past every retry: the grant stays ending and due, the error is in the log.
    let second = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(20))))
        .await
        .expect("granted again");
    clock.set(at(20));
    sim.faults().fail_next(20, 503);
    let report = e.expire_pass().await.expect("pass");
    sim.faults().fail_next(0, 503);
    assert_eq!(report.retry_later, 1);
    assert_eq!(level_in_sim(sim, slot), Some(Level::Write));
    let g = store.grant(second.id).await.expect("read").expect("exists");
    assert_eq!(g.state, GrantState::Ending);
    assert_eq!(g.attempts, 1);
    let failed: Vec<_> = audit_of(store, second.id)
        .await
        .into_iter()
        .filter(|e| e.entry.details["outcome"] == "restore_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].entry.details["error"]
            .as_str()
            .is_some_and(|m| m.contains("503")),
        "{:?}",
        failed[0].entry.details
    );
    // Not before its backoff...
    assert_eq!(e.expire_pass().await.expect("pass").total(), 0);
    // ...then it succeeds.
    clock.set(at(21));
    assert_eq!(e.expire_pass().await.expect("pass").ended, 1);
    assert_eq!(level_in_sim(sim, slot), None);
    let _ = grant;
}

async fn two_workers_end_200_grants_exactly_once(url: String) {
    let sim = start_sim_with(world(1305, 40)).await;
    let store = store_at(&url).await;
    let granting_client = client(&sim, 8);
    let clock = ManualClock::new(at(0));
    let all = slots(&sim, 200);
    let granting = engine(
        &*store,
        &granting_client,
        &clock,
        settings("granting", OnConflict::Keep),
    );
    for slot in &all {
        let g = granting
            .grant(&slot.plan(GrantLevel::Write, Some(at(10))))
            .await
            .expect("granted");
        assert_eq!(g.state, GrantState::Active);
    }
    assert_eq!(writes(&sim), (200, 0));

    clock.set(at(10));
    // Two processes: each its own store connection pool, client and worker name.
    let (store_a, store_b) = (store_at(&url).await, store_at(&url).await);
    let (client_a, client_b) = (client(&sim, 4), client(&sim, 4));
    // Small claims, so the two workers interleave rather than one claiming everything.
    let small = |name: &str| {
        let mut s = settings(name, OnConflict::Keep);
        s.batch = 20;
        s
    };
    let a = engine(&*store_a, &client_a, &clock, small("a"));
    let b = engine(&*store_b, &client_b, &clock, small("b"));
    let (ra, rb) = tokio::join!(a.expire_pass(), b.expire_pass());
    let (ra, rb) = (ra.expect("pass a"), rb.expect("pass b"));
    assert_eq!(ra.ended + rb.ended, 200, "{ra:?} {rb:?}");
    assert_eq!(ra.errors + rb.errors + ra.retry_later + rb.retry_later, 0);
    assert_eq!(writes(&sim), (200, 200), "one DELETE per grant");
    let entries = store.list_audit(&Default::default()).await.expect("audit");
    let ended = entries
        .iter()
        .filter(|e| e.entry.kind == AuditKind::Expire && e.entry.details["outcome"] == "ended")
        .count();
    let ending = entries
        .iter()
        .filter(|e| {
            e.entry.kind == AuditKind::Expire
                && e.entry
                    .after
                    .as_ref()
                    .is_some_and(|a| a["state"] == "ending")
        })
        .count();
    assert_eq!(
        (ended, ending),
        (200, 200),
        "one claim and one end per grant"
    );
    for slot in &all {
        assert_eq!(level_in_sim(&sim, slot), None);
    }
}

async fn a_second_watcher_on_sqlite_refuses_to_start(url: String) {
    let f = Fixture::new(1306, &url).await;
    let store = &*f.store;
    let first = f.engine_with(settings("first", OnConflict::Keep));
    let second = f.engine_with(settings("second", OnConflict::Keep));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watching = first.watch(async {
        let _ = stop_rx.await;
    });
    let other = async {
        // Let the first watcher register.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let outcome = second.watch(std::future::ready(())).await;
        let _ = stop_tx.send(());
        outcome
    };
    let (first_outcome, second_outcome) = tokio::join!(watching, other);
    first_outcome.expect("the first watcher stops cleanly");
    match store.backend() {
        Backend::Sqlite => {
            let err = second_outcome.expect_err("a second watcher on SQLite refuses");
            assert!(
                err.to_string()
                    .contains("already runs on this SQLite store"),
                "{err}"
            );
        }
        Backend::Postgres => second_outcome.expect("PostgreSQL allows several watchers"),
    }
    // Once the first has stopped, a watcher may start again.
    second
        .watch(std::future::ready(()))
        .await
        .expect("starts after the first stopped");
}
