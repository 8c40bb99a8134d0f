//! Grants restore, never strip (issue 12, items 2 and 3), against the simulator on SQLite and
//! PostgreSQL: a grant on nothing deletes at expiry; over a standing read it restores read;
//! overlapping grants stand at the highest and fall back in order; a satisfied grant changes
//! nothing; a level changed out of band is left alone (keep) or put back (enforce); a sync after
//! a grant records no drift for it.

#[macro_use]
mod support_db;
mod grants_support;
mod sync_support;

use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::OnConflict;
use bitbucket_access::domain::{GrantLevel, GrantState};
use bitbucket_access::store::{open, AuditFilter, AuditKind, Store};
use bitbucket_access::sync::{self, SyncOptions};
use bitbucket_sim::Level;
use grants_support::*;
use std::sync::Arc;

on_both_backends!(
    a_grant_on_nothing_is_deleted_at_expiry,
    a_grant_over_a_standing_read_restores_read,
    overlapping_grants_give_the_highest_then_fall_back,
    a_satisfied_grant_changes_nothing_in_bitbucket,
    a_level_changed_out_of_band_is_kept_as_a_conflict,
    a_level_changed_out_of_band_is_put_back_under_enforce,
    a_sync_after_a_grant_records_no_drift_for_it,
    a_revoke_ends_a_grant_early_with_restore,
    a_sync_while_a_grant_is_unfinished_records_no_drift,
);

async fn store_at(url: &str) -> Arc<dyn Store> {
    open(url).await.expect("store opens")
}

async fn a_grant_on_nothing_is_deleted_at_expiry(url: String) {
    let f = Fixture::new(1201, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    let e = f.engine(OnConflict::Keep);

    let grant = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(60))))
        .await
        .expect("granted");
    assert_eq!(grant.state, GrantState::Active);
    assert_eq!(grant.baseline, None);
    assert_eq!(level_in_sim(sim, slot), Some(Level::Write));

    clock.set(at(59));
    assert_eq!(e.expire_pass().await.expect("pass").total(), 0);
    assert_eq!(level_in_sim(sim, slot), Some(Level::Write));

    clock.set(at(60));
    let report = e.expire_pass().await.expect("pass");
    assert_eq!(report.ended, 1);
    assert_eq!(
        level_in_sim(sim, slot),
        None,
        "nothing stood before: deleted"
    );
    let (puts, deletes) = writes(sim);
    assert_eq!((puts, deletes), (1, 1));
    let ended = store.grant(grant.id).await.expect("read").expect("exists");
    assert_eq!(ended.state, GrantState::Ended);
    let kinds: Vec<AuditKind> = audit_of(store, grant.id)
        .await
        .iter()
        .map(|e| e.entry.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            AuditKind::Grant,
            AuditKind::Grant,
            AuditKind::Expire,
            AuditKind::Expire
        ]
    );
}

async fn a_grant_over_a_standing_read_restores_read(url: String) {
    let f = Fixture::new(1202, &url).await;
    let (sim, _, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    set_in_sim(sim, slot, Some(Level::Read));
    let e = f.engine(OnConflict::Keep);

    let grant = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(60))))
        .await
        .expect("granted");
    assert_eq!(grant.baseline, Some(GrantLevel::Read));
    assert_eq!(level_in_sim(sim, slot), Some(Level::Write));
    clock.set(at(61));
    assert_eq!(e.expire_pass().await.expect("pass").ended, 1);
    assert_eq!(level_in_sim(sim, slot), Some(Level::Read), "read restored");
    assert_eq!(
        writes(sim),
        (2, 0),
        "a PUT to write, a PUT back to read, no DELETE"
    );
}

async fn overlapping_grants_give_the_highest_then_fall_back(url: String) {
    let f = Fixture::new(1203, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    set_in_sim(sim, slot, Some(Level::Read));
    let e = f.engine(OnConflict::Keep);

    let write = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(60))))
        .await
        .expect("write for an hour");
    let admin = e
        .grant(&slot.plan(GrantLevel::Admin, Some(at(10))))
        .await
        .expect("admin for ten minutes");
    assert_eq!(admin.state, GrantState::Active);
    assert_eq!(
        admin.baseline,
        Some(GrantLevel::Read),
        "the stored baseline, not the granted write Bitbucket shows now"
    );
    assert_eq!(level_in_sim(sim, slot), Some(Level::Admin));

    clock.set(at(10));
    e.expire_pass().await.expect("pass");
    assert_eq!(level_in_sim(sim, slot), Some(Level::Write), "then write");
    let still = store.grant(write.id).await.expect("read").expect("exists");
    assert_eq!(still.state, GrantState::Active);

    clock.set(at(60));
    e.expire_pass().await.expect("pass");
    assert_eq!(
        level_in_sim(sim, slot),
        Some(Level::Read),
        "then the baseline"
    );
    for id in [write.id, admin.id] {
        let g = store.grant(id).await.expect("read").expect("exists");
        assert_eq!(g.state, GrantState::Ended);
    }
}

async fn a_satisfied_grant_changes_nothing_in_bitbucket(url: String) {
    let f = Fixture::new(1204, &url).await;
    let (sim, _, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    set_in_sim(sim, slot, Some(Level::Admin));
    let e = f.engine(OnConflict::Keep);

    let grant = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(30))))
        .await
        .expect("granted");
    assert_eq!(grant.state, GrantState::Satisfied);
    clock.set(at(31));
    assert_eq!(e.expire_pass().await.expect("pass").ended, 1);
    assert_eq!(writes(sim), (0, 0), "no PUT and no DELETE");
    assert_eq!(level_in_sim(sim, slot), Some(Level::Admin));
}

async fn a_level_changed_out_of_band_is_kept_as_a_conflict(url: String) {
    let f = Fixture::new(1205, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    let e = f.engine(OnConflict::Keep);
    let grant = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(30))))
        .await
        .expect("granted");
    // Someone makes it admin in Bitbucket meanwhile.
    set_in_sim(sim, slot, Some(Level::Admin));

    clock.set(at(30));
    assert_eq!(e.expire_pass().await.expect("pass").conflicts, 1);
    assert_eq!(level_in_sim(sim, slot), Some(Level::Admin), "left alone");
    let g = store.grant(grant.id).await.expect("read").expect("exists");
    assert_eq!(g.state, GrantState::Conflict);
    let conflicts: Vec<_> = audit_of(store, grant.id)
        .await
        .into_iter()
        .filter(|e| e.entry.kind == AuditKind::Conflict)
        .collect();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].entry.details["expected"], "write");
    assert_eq!(conflicts[0].entry.details["observed"], "admin");
    assert_eq!(writes(sim).1, 0, "no DELETE");
}

async fn a_level_changed_out_of_band_is_put_back_under_enforce(url: String) {
    let f = Fixture::new(1206, &url).await;
    let (sim, store, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    set_in_sim(sim, slot, Some(Level::Read));
    let e = f.engine(OnConflict::Enforce);
    let grant = e
        .grant(&slot.plan(GrantLevel::Write, Some(at(30))))
        .await
        .expect("granted");
    set_in_sim(sim, slot, Some(Level::Admin));

    clock.set(at(30));
    assert_eq!(e.expire_pass().await.expect("pass").ended, 1);
    assert_eq!(
        level_in_sim(sim, slot),
        Some(Level::Read),
        "the baseline enforced"
    );
    let entries = audit_of(store, grant.id).await;
    let conflict = entries
        .iter()
        .find(|e| e.entry.kind == AuditKind::Conflict)
        .expect("the conflict is recorded");
    assert_eq!(conflict.entry.details["observed"], "admin");
    assert_eq!(conflict.entry.details["on_conflict"], "enforce");
}

async fn a_sync_after_a_grant_records_no_drift_for_it(url: String) {
    let sim = start_sim_with(world(1207, 4)).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let slot = slots(&sim, 1).remove(0);
    let options = SyncOptions {
        workspaces: vec![slot.ws.clone()],
        max_requests: None,
        cross_check_sample: 0,
        ..SyncOptions::default()
    };
    sync::run(&*store, &client, &options)
        .await
        .expect("first sync");
    let drift = |store: Arc<dyn Store>| async move {
        store
            .list_audit(&AuditFilter {
                kinds: vec![AuditKind::Drift],
                ..AuditFilter::default()
            })
            .await
            .expect("audit")
            .len()
    };
    let before = drift(Arc::clone(&store)).await;
    let clock = ManualClock::new(chrono::Utc::now());
    let e = engine(&*store, &client, &clock, settings("w", OnConflict::Keep));
    let ends = clock_now_plus(&clock, 60);
    let grant = e
        .grant(&slot.plan(GrantLevel::Write, Some(ends)))
        .await
        .expect("granted");
    sync::run(&*store, &client, &options)
        .await
        .expect("second sync");
    assert_eq!(
        drift(Arc::clone(&store)).await,
        before,
        "the grant is no drift"
    );
    // `access repo` names the grant as the source of the write.
    let repo = format!("{}/{}", slot.ws, slot.repo);
    let answer = bitbucket_access::access::for_repository(&*store, &repo)
        .await
        .expect("access");
    let row = answer
        .rows
        .iter()
        .find(|r| r.account_id == slot.account)
        .expect("the grantee has access");
    let why = row.why().join("; ");
    let expected = format!(
        "direct: write [grant {} by lead@acme.com (SEC-1), ends",
        grant.id
    );
    assert!(why.contains(&expected), "{why}");
    // An out-of-band change still is.
    set_in_sim(&sim, &slot, Some(Level::Admin));
    sync::run(&*store, &client, &options)
        .await
        .expect("third sync");
    assert_eq!(drift(Arc::clone(&store)).await, before + 1);
}

fn clock_now_plus(clock: &ManualClock, minutes: i64) -> chrono::DateTime<chrono::Utc> {
    use bitbucket_access::clock::Clock;
    clock.now() + chrono::Duration::minutes(minutes)
}

async fn a_revoke_ends_a_grant_early_with_restore(url: String) {
    let f = Fixture::new(1208, &url).await;
    let (sim, _, clock, slot) = (&f.sim, &*f.store, &f.clock, &f.slot);
    set_in_sim(sim, slot, Some(Level::Read));
    let e = f.engine(OnConflict::Keep);
    let grant = e
        .grant(&slot.plan(GrantLevel::Admin, Some(at(60))))
        .await
        .expect("granted");
    clock.set(at(5));
    let revoked = e.revoke(grant.id, "lead@acme.com").await.expect("revoked");
    assert_eq!(revoked.state, GrantState::Revoked);
    assert_eq!(level_in_sim(sim, slot), Some(Level::Read));
    let again = e.revoke(grant.id, "lead@acme.com").await;
    assert!(again.is_err(), "a revoked grant cannot be revoked again");
    clock.set(at(61));
    assert_eq!(e.expire_pass().await.expect("pass").total(), 0);
}

async fn a_sync_while_a_grant_is_unfinished_records_no_drift(url: String) {
    let f = Fixture::new(1209, &url).await;
    let options = SyncOptions {
        workspaces: vec![f.slot.ws.clone()],
        max_requests: None,
        cross_check_sample: 0,
        ..SyncOptions::default()
    };
    sync::run(&*f.store, &f.client, &options)
        .await
        .expect("first sync");
    let drift_filter = AuditFilter {
        kinds: vec![AuditKind::Drift],
        ..AuditFilter::default()
    };
    let before = f
        .store
        .list_audit(&drift_filter)
        .await
        .expect("audit")
        .len();
    // The process dies after the PUT, before recording it: the grant stays pending.
    let mut crashing = settings("crashing", OnConflict::Keep);
    crashing.stop_after = Some(bitbucket_access::grants::Step::Applied);
    f.engine_with(crashing)
        .grant(&f.slot.plan(GrantLevel::Write, Some(at(60))))
        .await
        .expect_err("stopped");
    assert_eq!(level_in_sim(&f.sim, &f.slot), Some(Level::Write));
    sync::run(&*f.store, &f.client, &options)
        .await
        .expect("second sync");
    let after = f
        .store
        .list_audit(&drift_filter)
        .await
        .expect("audit")
        .len();
    assert_eq!(
        after, before,
        "the pending grant's PUT is expected, not drift"
    );
}
