//! Expiry inside `serve`, with the real binary against the simulator: the watch loop ends grants
//! as they fall due and the cron job catches up behind it.
//!
//! - SIGTERM in the middle of an expiry (a one-second grace, a slow Bitbucket) exits 0 and
//!   leaves no grant half-applied: every grant is ended with Bitbucket restored, or still in
//!   force with its level in Bitbucket, or ending (claimed); a later `expire` finishes them all,
//!   each with one expiry entry in the audit log (SQLite and PostgreSQL).
//! - Two `serve` processes on one PostgreSQL apply each of 200 expiries exactly once: 200
//!   DELETEs in the simulator, one expiry entry per grant, and their `/metrics` together show
//!   200 grants ended and 200 lateness observations. The lateness p99 is printed.
//! - The same when one of them is killed (SIGKILL) mid-way: the other takes over the grants the
//!   dead one had claimed once its claims lapse; the takeover time is printed.

#[macro_use]
mod support_db;
mod grants_support;
mod serve_support;
mod sync_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use bitbucket_access::clock::SystemClock;
use bitbucket_access::domain::{Grant, GrantId, GrantLevel, GrantState};
use bitbucket_access::grants::{Engine, EngineSettings};
use bitbucket_access::store::{AuditFilter, AuditKind, GrantFilter, Store};
use bitbucket_sim::{Level, SimHandle};
use chrono::{DateTime, Utc};
use futures::stream::{self, StreamExt};
use grants_support::{level_in_sim, slots, world, writes, Slot};
use serve_support::*;
use sync_support::*;
use tempfile::TempDir;

/// A cron expression that does not fire during a test: only the watch loop ends grants.
const NEVER_SOON: &str = "0 0 0 1 1 *";

/// A world with enough member × repository slots, and its owned workspace.
async fn sim_for(seed: u64) -> (SimHandle, Vec<String>) {
    let sim = start_sim_with(world(seed, 20)).await;
    let ws = vec![owned_workspaces(&sim).remove(0)];
    (sim, ws)
}

/// Grants write on each slot (on nothing before), the `i`th ending at `ends(i)`.
async fn grant_all(
    sim: &SimHandle,
    store: &dyn Store,
    slots: &[Slot],
    ends: impl Fn(usize) -> DateTime<Utc>,
) -> Vec<(GrantId, Slot)> {
    let client = client(sim, 8);
    let clock = SystemClock;
    let engine = Engine::new(store, &client, &clock, EngineSettings::new("test"));
    let plans: Vec<_> = slots
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), s.plan(GrantLevel::Write, Some(ends(i)))))
        .collect();
    let engine = &engine;
    stream::iter(plans)
        .map(|(slot, plan)| async move {
            let grant = engine.grant(&plan).await.expect("the grant is made");
            assert_eq!(grant.state, GrantState::Active);
            (grant.id, slot)
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// Every grant, by id.
async fn grants_by_id(store: &dyn Store) -> BTreeMap<GrantId, Grant> {
    store
        .list_grants(&GrantFilter::default())
        .await
        .expect("grants")
        .into_iter()
        .map(|g| (g.id, g))
        .collect()
}

/// How many grants are ended.
async fn ended(store: &dyn Store) -> u64 {
    store
        .grant_counts()
        .await
        .expect("counts")
        .get("ended")
        .copied()
        .unwrap_or(0)
}

/// Waits (at most `limit`) until at least `n` grants are ended.
async fn wait_ended(store: &dyn Store, n: u64, limit: Duration, logs: &[&ServeProcess]) {
    let deadline = Instant::now() + limit;
    while ended(store).await < n {
        let logs: Vec<String> = logs.iter().map(|p| p.log()).collect();
        assert!(
            Instant::now() < deadline,
            "{n} ended grants expected, {} seen:\n{}",
            ended(store).await,
            logs.join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The expiry entries of the audit log, counted by grant id.
async fn expiry_entries(store: &dyn Store) -> BTreeMap<i64, usize> {
    let filter = AuditFilter {
        kinds: vec![AuditKind::Expire],
        ..AuditFilter::default()
    };
    let mut by_grant = BTreeMap::new();
    for e in store.list_audit(&filter).await.expect("audit") {
        if e.entry.details.get("outcome") == Some(&serde_json::json!("ended")) {
            let id = e.entry.details["grant_id"].as_i64().expect("grant id");
            *by_grant.entry(id).or_insert(0) += 1;
        }
    }
    by_grant
}

/// Asserts every grant ended once: ended in the store, nothing left in Bitbucket, one expiry
/// entry each.
async fn assert_each_ended_once(store: &dyn Store, sim: &SimHandle, grants: &[(GrantId, Slot)]) {
    let stored = grants_by_id(store).await;
    let entries = expiry_entries(store).await;
    for (id, slot) in grants {
        assert_eq!(stored[id].state, GrantState::Ended, "grant {id}");
        assert_eq!(level_in_sim(sim, slot), None, "grant {id} left a level");
        assert_eq!(entries.get(&id.0), Some(&1), "expiry entries of grant {id}");
    }
    assert_eq!(entries.len(), grants.len(), "{entries:?}");
}

/// The address a `serve` process listens on, from its log.
fn listen_url(serve: &ServeProcess) -> String {
    let log = serve.log();
    let at = log.find("serving on http://").expect("serving line") + "serving on ".len();
    log[at..].lines().next().expect("a line").trim().to_owned()
}

/// The samples of a `serve` process's `/metrics`.
async fn scrape(serve: &ServeProcess) -> Vec<Sample> {
    let url = format!("{}/metrics", listen_url(serve));
    let text = reqwest::get(&url)
        .await
        .expect("/metrics answers")
        .text()
        .await
        .expect("a body");
    parse_prometheus(&text).expect("Prometheus text")
}

/// Each grant's lateness (when its end was recorded less its end), sorted, in seconds.
async fn lateness(store: &dyn Store, grants: &[(GrantId, Slot)]) -> Vec<f64> {
    let stored = grants_by_id(store).await;
    let mut late: Vec<f64> = grants
        .iter()
        .map(|(id, _)| {
            let g = &stored[id];
            (g.updated_at - g.expires_at.expect("an end")).num_milliseconds() as f64 / 1000.0
        })
        .collect();
    late.sort_by(f64::total_cmp);
    late
}

fn p99(sorted: &[f64]) -> f64 {
    sorted[(sorted.len() * 99).div_ceil(100) - 1]
}

fn spawn(sim: &SimHandle, dir: &Path, config: &Path, args: &[&str]) -> ServeProcess {
    ServeProcess::spawn(sim, dir, config, args)
}

/// SIGTERM while the watch loop restores 60 grants against a slow Bitbucket, with a one-second
/// grace: exit 0, no grant half-applied, and a later `expire` finishes the rest.
async fn sigterm_mid_expiry_leaves_no_grant_half_applied(url: String) {
    let (sim, ws) = sim_for(7301).await;
    let dir = TempDir::new().expect("temp dir");
    let store = bitbucket_access::store::open(&url).await.expect("store");
    let slots = slots(&sim, 60);
    let end = Utc::now() + chrono::Duration::seconds(4);
    let grants = grant_all(&sim, store.as_ref(), &slots, |_| end).await;
    let config = write_config(&sim, dir.path(), &url, &ws, NEVER_SOON);
    sim.faults().set_latency(Duration::from_millis(100));
    let mut serve = spawn(
        &sim,
        dir.path(),
        &config,
        &["--lease", "2s", "--shutdown-grace", "1s"],
    );
    wait_ended(store.as_ref(), 5, Duration::from_secs(30), &[&serve]).await;

    let asked = Instant::now();
    serve.signal("TERM");
    assert_eq!(
        serve.wait(Duration::from_secs(15)).await,
        Some(0),
        "{}",
        serve.log()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    let at_exit = ended(store.as_ref()).await;
    assert!(at_exit < 60, "the shutdown came after the last expiry");

    // Nothing half-applied: what the store says matches Bitbucket, grant by grant.
    let stored = grants_by_id(store.as_ref()).await;
    for (id, slot) in &grants {
        let in_sim = level_in_sim(&sim, slot);
        match stored[id].state {
            GrantState::Ended => assert_eq!(in_sim, None, "ended grant {id} left a level"),
            GrantState::Active => {
                assert_eq!(
                    in_sim,
                    Some(Level::Write),
                    "active grant {id} lost its level"
                )
            }
            // Claimed, its restore not recorded when the grace ran out: due again once the
            // claim lapses, and the next pass reads Bitbucket before acting.
            GrantState::Ending => {}
            other => panic!("grant {id} is {other}"),
        }
    }

    // Once the claims have lapsed, `expire` finishes every grant left.
    sim.faults().set_latency(Duration::ZERO);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let expire = run_cli(&sim, dir.path(), &config, &["expire"]).await;
    assert_eq!(expire.code, 0, "{}{}", expire.stdout, expire.stderr);
    assert_each_ended_once(store.as_ref(), &sim, &grants).await;
    let (puts, deletes) = writes(&sim);
    assert_eq!(puts, 60, "one PUT per grant, none at expiry");
    // The one restore in flight when the grace ran out may have reached the simulator and
    // been dropped there unanswered; every other grant was deleted once.
    assert!((60..=61).contains(&deletes), "{deletes} DELETEs");
}

on_both_backends!(sigterm_mid_expiry_leaves_no_grant_half_applied);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_processes_on_postgres_apply_each_of_200_expiries_once() {
    let Some(db) = support_db::postgres_db().await else {
        return;
    };
    support_db::run_on(db, |url| async move {
        let (sim, ws) = sim_for(7302).await;
        let dir = TempDir::new().expect("temp dir");
        let store = bitbucket_access::store::open(&url).await.expect("store");
        let slots = slots(&sim, 200);
        let config = write_config(&sim, dir.path(), &url, &ws, NEVER_SOON);
        let args = ["--lease", "2s"];
        let a = spawn(&sim, dir.path(), &config, &args);
        let b = spawn(&sim, dir.path(), &config, &args);
        for p in [&a, &b] {
            p.wait_for_log("expiry watch loop started", Duration::from_secs(20)).await;
        }
        // 200 ends spread over ten seconds, from five seconds on.
        let start = Utc::now() + chrono::Duration::seconds(5);
        let grants = grant_all(&sim, store.as_ref(), &slots, |i| {
            start + chrono::Duration::milliseconds(50 * i as i64)
        })
        .await;
        wait_ended(store.as_ref(), 200, Duration::from_secs(60), &[&a, &b]).await;

        assert_each_ended_once(store.as_ref(), &sim, &grants).await;
        assert_eq!(writes(&sim), (200, 200), "(PUTs, DELETEs)");
        let late = lateness(store.as_ref(), &grants).await;
        println!(
            "expiry lateness with two serve instances, 200 grants over 10 s: p50 {:.3} s, p99 {:.3} s, max {:.3} s",
            late[late.len() / 2],
            p99(&late),
            late[late.len() - 1]
        );
        // The lateness is a figure, printed above (a bound here would fail on a loaded machine,
        // not because of the code); what must hold is that no grant ended before its end.
        assert!(late[0] >= 0.0, "a grant ended {:.3} s early", -late[0]);

        // Both instances' /metrics together: 200 lateness observations, 200 grants ended.
        let mut observed = 0.0;
        for p in [&a, &b] {
            let samples = scrape(p).await;
            observed += sum(&samples, "bitbucket_access_expiry_lateness_seconds_count", &[]);
            assert_eq!(
                sum(&samples, "bitbucket_access_grants", &[("state", "ended")]),
                200.0
            );
            assert_eq!(
                sum(&samples, "bitbucket_access_grants", &[("state", "active")]),
                0.0
            );
        }
        assert_eq!(observed, 200.0);
    })
    .await;
}

/// The live claims on unfinished grants, by owner (who is restoring what right now).
async fn live_claims(url: &str) -> BTreeMap<String, Vec<i64>> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let rows = sqlx::query(
        "SELECT claimed_by, id FROM grants WHERE state = 'ending' AND claimed_until > now()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("claims");
    let mut by_owner: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for r in rows {
        by_owner.entry(r.get(0)).or_default().push(r.get(1));
    }
    by_owner
}

/// The watch loop's owner name of a `serve` process, from its log.
fn watch_owner(serve: &ServeProcess) -> String {
    let log = serve.log();
    let line = log
        .lines()
        .find(|l| l.contains("expiry watch loop started"))
        .expect("the watch loop started");
    let at = line.find("owner=").expect("an owner") + "owner=".len();
    line[at..]
        .split_whitespace()
        .next()
        .expect("a name")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_one_of_two_serve_processes_is_killed_the_other_finishes_its_expiries_once() {
    let Some(db) = support_db::postgres_db().await else {
        return;
    };
    support_db::run_on(db, |url| async move {
        let (sim, ws) = sim_for(7303).await;
        let dir = TempDir::new().expect("temp dir");
        let store = bitbucket_access::store::open(&url).await.expect("store");
        let slots = slots(&sim, 200);
        let config = write_config(&sim, dir.path(), &url, &ws, NEVER_SOON);
        let args = ["--lease", "2s"];
        let mut a = spawn(&sim, dir.path(), &config, &args);
        let mut b = spawn(&sim, dir.path(), &config, &args);
        for p in [&a, &b] {
            p.wait_for_log("expiry watch loop started", Duration::from_secs(20)).await;
        }
        let start = Utc::now() + chrono::Duration::seconds(5);
        let grants = grant_all(&sim, store.as_ref(), &slots, |i| {
            start + chrono::Duration::milliseconds(50 * i as i64)
        })
        .await;
        // A slow Bitbucket: the restores fall behind the ends, so each pass claims a batch.
        sim.faults().set_latency(Duration::from_millis(50));
        wait_ended(store.as_ref(), 40, Duration::from_secs(60), &[&a, &b]).await;

        // Kill the instance that holds the most claims at this moment.
        let (owner_a, owner_b) = (watch_owner(&a), watch_owner(&b));
        let deadline = Instant::now() + Duration::from_secs(30);
        let (victim, survivor, owner) = loop {
            let claims = live_claims(&url).await;
            let held = |o: &str| claims.get(o).map_or(0, Vec::len);
            if held(&owner_a).max(held(&owner_b)) > 0 {
                break if held(&owner_a) >= held(&owner_b) {
                    (&mut a, &mut b, owner_a.clone())
                } else {
                    (&mut b, &mut a, owner_b.clone())
                };
            }
            assert!(Instant::now() < deadline, "no claims seen");
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let killed = Instant::now();
        victim.signal("KILL");
        assert_eq!(victim.wait(Duration::from_secs(5)).await, None);
        let orphaned: Vec<GrantId> = live_claims(&url)
            .await
            .remove(&owner)
            .unwrap_or_default()
            .into_iter()
            .map(GrantId)
            .collect();
        assert!(!orphaned.is_empty(), "the killed instance held no claim");

        // The survivor ends the orphaned grants once their claims lapse, then all the rest.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let stored = grants_by_id(store.as_ref()).await;
            if orphaned.iter().all(|id| stored[id].state == GrantState::Ended) {
                break;
            }
            assert!(Instant::now() < deadline, "no takeover:\n{}", survivor.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let takeover = killed.elapsed();
        wait_ended(store.as_ref(), 200, Duration::from_secs(60), &[&*survivor]).await;
        println!(
            "takeover after SIGKILL (lease 2s): the {} grants the killed instance had claimed were ended by the other {:.1} s after the kill; all 200 {:.1} s after it",
            orphaned.len(),
            takeover.as_secs_f64(),
            killed.elapsed().as_secs_f64()
        );
        // A bound against a stalled takeover, not a speed target (a busy 2-core machine).
        assert!(takeover < Duration::from_secs(30), "takeover took {takeover:?}");

        assert_each_ended_once(store.as_ref(), &sim, &grants).await;
        let (puts, deletes) = writes(&sim);
        assert_eq!(puts, 200);
        // A DELETE the killed process had in flight may have reached the simulator and been
        // dropped there unanswered (max_in_flight is 1); every grant was restored once.
        assert!((200..=201).contains(&deletes), "{deletes} DELETEs");
        let samples = scrape(survivor).await;
        assert_eq!(
            sum(&samples, "bitbucket_access_grants", &[("state", "ended")]),
            200.0
        );
        // The survivor observed the lateness of every grant it ended, the orphans among them.
        let observed = sum(&samples, "bitbucket_access_expiry_lateness_seconds_count", &[]);
        assert!(observed >= orphaned.len() as f64, "{observed}");
    })
    .await;
}
