//! Grant creation through `POST /v1/grants` with the simulator behind it, against the same
//! Bitbucket calls made directly, and `/metrics` before and after.
//!
//! Each grant gives a workspace member (not an owner) `write` on a repository where they hold
//! no explicit permission, so each makes the same four Bitbucket calls: the repository (the
//! preflight's "target exists"), the member filter (member, not owner), the slot's permission
//! (404: none) and the PUT. The simulator's own time per grant is those four calls timed
//! directly, through the same client, on other slots of the same kind and at the same
//! concurrency; the API's overhead is its p99 less that p99.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_access::bitbucket::{BitbucketClient, PermissionLevel, PermissionTarget};
use bitbucket_sim::{Role, SimHandle};
use futures::TryStreamExt;

use super::metrics::{deltas, scrape};
use super::{percentile, verdict};

/// Grants made through the API (and as many slots timed directly).
const GRANTS: usize = 400;
/// Concurrent callers, in both phases.
const CALLERS: usize = 4;
/// The Bitbucket calls of one grant.
const CALLS_PER_GRANT: usize = 4;
/// The most the API may add to the simulator's p99.
const OVERHEAD_P99: Duration = Duration::from_millis(100);

/// A member and a repository they hold no explicit permission on.
#[derive(Debug, Clone)]
struct Slot {
    workspace: String,
    repo: String,
    account_id: String,
}

/// `2 * GRANTS` distinct slots in workspaces the service account owns.
fn slots(sim: &SimHandle) -> Vec<Slot> {
    let admin = sim.admin_account_id();
    sim.with_world(|w| {
        let mut out = Vec::new();
        for ws in w.workspaces.values() {
            if ws.members.get(&admin).map(|m| m.role) != Some(Role::Owner) {
                continue;
            }
            let members: Vec<&String> = ws
                .members
                .iter()
                .filter(|(id, m)| m.role == Role::Member && **id != admin)
                .map(|(id, _)| id)
                .collect();
            for (i, repo) in ws.repositories.values().enumerate() {
                let account = members[i % members.len()];
                if !repo.user_permissions.contains_key(account) {
                    out.push(Slot {
                        workspace: ws.slug.clone(),
                        repo: repo.slug.clone(),
                        account_id: account.clone(),
                    });
                }
            }
        }
        out.truncate(2 * GRANTS);
        out
    })
}

/// Runs `CALLERS` tasks over `slots`, each timing `work` per slot; returns the times and the
/// failures.
async fn timed<F, Fut>(slots: Vec<Slot>, work: F) -> (Vec<Duration>, Vec<String>)
where
    F: Fn(Slot) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let slots = Arc::new(slots);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let (slots, next, work) = (Arc::clone(&slots), Arc::clone(&next), work.clone());
        tasks.push(tokio::spawn(async move {
            let (mut times, mut failures) = (Vec::new(), Vec::new());
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = slots.get(i) else { break };
                let sent = Instant::now();
                if let Err(e) = work(slot.clone()).await {
                    failures.push(e);
                }
                times.push(sent.elapsed());
            }
            (times, failures)
        }));
    }
    let (mut times, mut failures) = (Vec::new(), Vec::new());
    for t in tasks {
        let (t, f) = t.await.expect("caller");
        times.extend(t);
        failures.extend(f);
    }
    times.sort();
    (times, failures)
}

/// The four calls of one grant, made directly.
async fn direct(client: BitbucketClient, slot: Slot) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    client
        .repositories(&slot.workspace)
        .get(&slot.repo)
        .await
        .map_err(|e| fail("repository", &e))?;
    let query = format!("user.account_id=\"{}\"", slot.account_id);
    let _: Vec<_> = client
        .workspaces()
        .permissions_filtered(&slot.workspace, Some(&query))
        .try_collect()
        .await
        .map_err(|e| fail("member filter", &e))?;
    let target = PermissionTarget::Repository {
        workspace: &slot.workspace,
        repo_slug: &slot.repo,
    };
    let permissions = client.permissions();
    if permissions.get_user(target, &slot.account_id).await.is_ok() {
        return Err(format!("{slot:?} already had a permission"));
    }
    permissions
        .put_user(target, &slot.account_id, PermissionLevel::Write)
        .await
        .map_err(|e| fail("put", &e))?;
    Ok(())
}

/// Makes the grants through the API, then times the same calls directly; checks the overhead
/// and the metrics. Returns whether every target was met.
pub async fn run(sim: &SimHandle, client: &BitbucketClient, base: &str, token: &str) -> bool {
    let mut slots = slots(sim);
    assert_eq!(slots.len(), 2 * GRANTS, "enough free slots in the world");
    let direct_slots = slots.split_off(GRANTS);
    let http = reqwest::Client::new();
    let before = scrape(&http, base).await;
    let sim_before = sim.request_counts();

    let (api_times, api_failures) = {
        let (http, base, token) = (http.clone(), base.to_owned(), token.to_owned());
        timed(slots, move |slot| {
            let (http, base, token) = (http.clone(), base.clone(), token.clone());
            async move {
                let body = serde_json::json!({
                    "user": slot.account_id,
                    "repo": format!("{}/{}", slot.workspace, slot.repo),
                    "level": "write",
                    "for": "1h",
                    "reason": "load test",
                    "ticket": "BENCH-1",
                });
                let r = http
                    .post(format!("{base}/v1/grants"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = r.status().as_u16();
                let text = r.text().await.map_err(|e| e.to_string())?;
                (status == 201)
                    .then_some(())
                    .ok_or_else(|| format!("{status}: {text}"))
            }
        })
        .await
    };
    let after = scrape(&http, base).await;
    let sim_after = sim.request_counts();

    let grants_client = client.for_grants();
    let (sim_times, direct_failures) = timed(direct_slots, move |slot| {
        direct(grants_client.clone(), slot)
    })
    .await;

    let api_p99 = percentile(&api_times, 0.99);
    let sim_p99 = percentile(&sim_times, 0.99);
    let overhead = api_p99.saturating_sub(sim_p99);
    println!(
        "grants through the API: {GRANTS} with {CALLERS} callers: p50 {:.1?}, p99 {api_p99:.1?}, failures {}",
        percentile(&api_times, 0.50),
        api_failures.len()
    );
    println!(
        "the same Bitbucket calls directly (the simulator's own time): p50 {:.1?}, p99 {sim_p99:.1?}, failures {}",
        percentile(&sim_times, 0.50),
        direct_failures.len()
    );
    for f in api_failures.iter().chain(&direct_failures).take(3) {
        println!("  failure: {f}");
    }
    let overhead_ok =
        overhead < OVERHEAD_P99 && api_failures.is_empty() && direct_failures.is_empty();
    println!(
        "grant p99 beyond the simulator's: {overhead:.1?} (target < {OVERHEAD_P99:?}): {}",
        verdict(overhead_ok)
    );
    metrics_consistent(&before, &after, &sim_before, &sim_after) && overhead_ok
}

/// The counters' deltas over the API phase against what was asked: `GRANTS` more active
/// grants, and each of the four Bitbucket calls `GRANTS` times, by endpoint and status, as
/// the simulator counted them too.
fn metrics_consistent(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    sim_before: &BTreeMap<String, u64>,
    sim_after: &BTreeMap<String, u64>,
) -> bool {
    let grown = deltas(before, after);
    let requests: BTreeMap<&String, f64> = grown
        .iter()
        .filter(|(k, _)| {
            k.starts_with("bitbucket_access_http_requests_total{")
                && k.contains("service=\"bitbucket\"")
        })
        .map(|(k, v)| (k, *v))
        .collect();
    let active = grown
        .get("bitbucket_access_grants{state=\"active\"}")
        .copied()
        .unwrap_or(0.0);
    let sim_grown: BTreeMap<&String, u64> = sim_after
        .iter()
        .map(|(k, v)| (k, v - sim_before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect();
    let n = GRANTS as f64;
    println!("/metrics deltas over the grant phase (series: delta):");
    for (k, v) in &requests {
        println!("  {k}: {v}");
    }
    println!("  bitbucket_access_grants{{state=\"active\"}}: {active}");
    println!("the simulator's counts over the same phase: {sim_grown:?}");
    let by_status_ok = requests.len() == CALLS_PER_GRANT
        && requests.values().all(|v| *v == n)
        && requests
            .keys()
            .filter(|k| k.contains("status=\"404\""))
            .count()
            == 1;
    let sim_ok =
        sim_grown.len() == CALLS_PER_GRANT && sim_grown.values().all(|v| *v == GRANTS as u64);
    let passed = by_status_ok && sim_ok && active == n;
    println!(
        "/metrics consistent ({CALLS_PER_GRANT} endpoint/status series of {GRANTS} each, one of them the 404 of no permission yet; the simulator saw the same; {GRANTS} more active grants): {}",
        verdict(passed)
    );
    passed
}
