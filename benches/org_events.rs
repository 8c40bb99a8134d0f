//! The organization events benchmark: the sync benchmark's world (5,000 repositories, 2,000
//! users, 200 groups; `support::FULL`), read once in full, then 100 out-of-band changes spread
//! over ten minutes, each found through the organization's audit-log events (polled every
//! minute) by a targeted refresh. Prints the Bitbucket requests spent per change (target at
//! most 3) and the median and p99 time from a change to its drift record (target: within two
//! poll intervals plus the refresh), then the same figures for full reads alone under the
//! default budget.
//!
//! Time is compressed 60 times: ten minutes of changes take ten seconds and the one-minute poll
//! interval one second. A change's time to its drift record is reported at full scale: the
//! wait for the next poll times 60, plus the refresh's own (uncompressed) duration.
//!
//! The full-read figures are computed, not run (reading 5,000 repositories at the default
//! 900 requests an hour takes hours): from the requests the first complete read cost and the
//! hourly allowance, with changes arriving uniformly and listings re-read oldest first.
//!
//! Run: `cargo bench --bench org_events`. The simulator runs in this process (the benchmark
//! changes its world out of band). Exit status non-zero when a target is missed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitbucket_access::bitbucket::{Auth, BitbucketClient, BudgetSettings, ClientSettings};
use bitbucket_access::http::{RetryPolicy, Scrubber};
use bitbucket_access::org::{OrgClient, OrgSettings};
use bitbucket_access::store::{self, AuditFilter, AuditKind};
use bitbucket_access::sync::events::{apply_pending, EventsOptions};
use bitbucket_access::sync::{self, SyncOptions};
use bitbucket_sim::api::org::Actor;
use bitbucket_sim::{Level, Sim, SimHandle, SimOptions, World, WorldSpec};
use secrecy::SecretString;
use url::Url;

#[path = "support/sim_process.rs"]
mod sim_process;
use sim_process::FULL;

/// Simulated seconds per real second.
const SCALE: u32 = 60;
/// The poll interval at full scale (the default `atlassian_admin.poll_interval`).
const POLL: Duration = Duration::from_secs(60);
/// The changes, and the span they are spread over at full scale.
const CHANGES: usize = 100;
const SPAN: Duration = Duration::from_secs(600);
/// The default budget's sync share: `requests_per_hour` 1,000 less the 100 reserved.
const DEFAULT_SYNC_PER_HOUR: f64 = 900.0;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The out-of-band changes: a repository and a member without an explicit permission there,
/// spread over the managed workspaces.
fn pick_changes(sim: &SimHandle, managed: &[String]) -> Vec<(String, String, String)> {
    sim.with_world(|w| {
        let mut out = Vec::new();
        let mut per_ws: Vec<Vec<(String, String, String)>> = managed
            .iter()
            .map(|ws| {
                let space = &w.workspaces[ws];
                let members: Vec<&String> = space.members.keys().collect();
                space
                    .repositories
                    .iter()
                    .step_by(37)
                    .filter_map(|(slug, r)| {
                        let m = members
                            .iter()
                            .find(|m| !r.user_permissions.contains_key(**m))?;
                        Some((ws.clone(), slug.clone(), (*m).clone()))
                    })
                    .collect()
            })
            .collect();
        while out.len() < CHANGES && per_ws.iter().any(|v| !v.is_empty()) {
            for v in &mut per_ws {
                if out.len() < CHANGES {
                    if let Some(c) = v.pop() {
                        out.push(c);
                    }
                }
            }
        }
        out
    })
}

async fn bench() -> Result<Vec<String>, String> {
    let world = World::generate(&WorldSpec {
        workspaces: FULL.workspaces,
        projects_per_workspace: FULL.projects,
        repositories: FULL.repositories,
        users: FULL.users,
        groups: FULL.groups_per_workspace,
        ..WorldSpec::large(16)
    });
    let sim = Arc::new(
        Sim::start(
            world,
            SimOptions {
                rate_limit_per_hour: 1_000_000,
                ..SimOptions::default()
            },
        )
        .await
        .map_err(|e| format!("the simulator did not start: {e}"))?,
    );
    let admin = sim.admin_account_id();
    let managed: Vec<String> = sim.with_world(|w| {
        w.workspaces
            .values()
            .filter(|ws| w.is_owner(ws, &admin))
            .map(|ws| ws.slug.clone())
            .collect()
    });
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let store = store::open(&url).await.map_err(|e| e.to_string())?;
    let client = sim_client(&sim);
    let org = org_client(&sim)?;

    println!(
        "organization events benchmark: {} repositories, {} workspaces managed",
        FULL.repositories,
        managed.len()
    );
    let started = Instant::now();
    let full = sync::run(
        store.as_ref(),
        &client,
        &SyncOptions {
            workspaces: managed.clone(),
            ..SyncOptions::default()
        },
    )
    .await
    .map_err(|e| format!("the first full read failed: {e}"))?;
    println!(
        "  first full read: {} requests (minimum {}), {:.1} s",
        full.requests_used,
        full.minimum_requests,
        started.elapsed().as_secs_f64()
    );

    let options = EventsOptions::default();
    // The first pass learns the connector's account and where the stream stands.
    apply_pending(store.as_ref(), &client, &org, &options)
        .await
        .map_err(|e| format!("the first events pass failed: {e}"))?;
    let changes = pick_changes(&sim, &managed);
    if changes.len() < CHANGES {
        return Err(format!("only {} changes could be picked", changes.len()));
    }
    let actor = sim.with_world(|w| {
        let u = w
            .users
            .values()
            .find(|u| !u.app_user && u.account_id != admin)
            .expect("a person");
        Actor {
            id: u.account_id.clone(),
            name: u.display_name.clone(),
            api_token: false,
        }
    });

    let interval = POLL / SCALE;
    let spacing = SPAN / SCALE / CHANGES as u32;
    let begin = Instant::now();
    // The changes come from their own thread: the simulator compares its whole world with its
    // last snapshot on each one (to credit its events), which must not stall the polling.
    let changer = {
        let sim = Arc::clone(&sim);
        let changes = changes.clone();
        let actor = actor.clone();
        std::thread::spawn(move || {
            let mut made = BTreeMap::new();
            for (i, (ws, repo, member)) in changes.iter().enumerate() {
                let at = begin + spacing * i as u32;
                std::thread::sleep(at.saturating_duration_since(Instant::now()));
                sim.with_world_as(actor.clone(), |w| {
                    w.set_repo_user_permission(ws, repo, member, Some(Level::Admin))
                        .expect("an out-of-band change");
                });
                made.insert(
                    format!("repository_user_permission {ws}/{repo} {member}"),
                    Instant::now(),
                );
            }
            made
        })
    };
    let poll_task = async {
        let mut passes = Passes::default();
        let mut next = begin;
        let mut last_id = 0i64;
        // Generous: a slow pass (a debug build, a busy machine) must show in the figures, not
        // end the measurement early.
        let deadline = begin + SPAN / SCALE + Duration::from_secs(240);
        while Instant::now() < deadline && passes.found.len() < CHANGES {
            tokio::time::sleep_until(next.into()).await;
            let t0 = Instant::now();
            let report = apply_pending(store.as_ref(), &client, &org, &options)
                .await
                .map_err(|e| format!("an events pass failed: {e}"))?;
            let t1 = Instant::now();
            passes.requests += report.bitbucket_requests();
            passes.applied += report.applied;
            if report.refresh.is_some() {
                passes.refreshes.push((t1 - t0).as_secs_f64());
            }
            let entries = store
                .list_audit(&AuditFilter {
                    kinds: vec![AuditKind::Drift],
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())?;
            let since = last_id;
            for e in entries.into_iter().filter(|e| e.id.0 > since) {
                last_id = last_id.max(e.id.0);
                let by_actor =
                    e.entry.details["attribution"]["actor_account_id"] == actor.id.as_str();
                passes.found.push((e.entry.subject, t0, t1, by_actor));
            }
            next = t0 + interval;
        }
        Ok::<Passes, String>(passes)
    };
    let passes = poll_task.await?;
    let made = changer
        .join()
        .map_err(|_| "the change thread panicked".to_owned())?;

    let mut latencies: Vec<f64> = passes
        .found
        .iter()
        .filter_map(|(subject, t0, t1, _)| {
            let at = made.get(subject)?;
            let wait = t0.saturating_duration_since(*at).as_secs_f64() * f64::from(SCALE);
            Some(wait + (*t1 - *t0).as_secs_f64())
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let attributed = passes.found.iter().filter(|f| f.3).count();
    let per_change = passes.requests as f64 / CHANGES as f64;
    let longest_refresh = passes.refreshes.iter().copied().fold(0.0, f64::max);
    let (median, p99) = (percentile(&latencies, 0.5), percentile(&latencies, 0.99));
    let limit = 2.0 * POLL.as_secs_f64() + longest_refresh;

    let mut failed = Vec::new();
    let mut check = |what: String, ok: bool| {
        println!("  {} {what}", if ok { "PASS" } else { "FAIL" });
        if !ok {
            failed.push(what);
        }
    };
    println!("\nevent-driven refresh (time compressed {SCALE}x; figures at full scale):");
    println!(
        "  {} changes over {} min, poll every {} s: {} events applied, {} drift records ({} naming the actor)",
        CHANGES,
        SPAN.as_secs() / 60,
        POLL.as_secs(),
        passes.applied,
        latencies.len(),
        attributed
    );
    println!(
        "  Bitbucket requests: {} in all, {per_change:.2} per change; refreshes took at most {longest_refresh:.2} s",
        passes.requests
    );
    println!("  change -> drift record: median {median:.1} s, p99 {p99:.1} s");
    check(
        format!("every change recorded with its actor ({attributed}/{CHANGES})"),
        latencies.len() == CHANGES && attributed == CHANGES,
    );
    check(
        format!("requests per change {per_change:.2} <= 3"),
        per_change <= 3.0,
    );
    check(
        format!(
            "p99 change -> drift {p99:.1} s <= two poll intervals plus the refresh ({limit:.1} s)"
        ),
        p99 <= limit,
    );

    // Full reads alone, computed: every listing is re-read once per complete cycle, oldest
    // first, so a change waits for its listing's turn, uniformly within one cycle.
    let cycle_h = full.minimum_requests as f64 / DEFAULT_SYNC_PER_HOUR;
    let changes_per_hour = CHANGES as f64 * 3600.0 / SPAN.as_secs_f64();
    println!("\nfull reads alone under the default budget ({DEFAULT_SYNC_PER_HOUR:.0} sync requests/h; computed from the first read's {} minimum requests):", full.minimum_requests);
    println!(
        "  one complete cycle every {cycle_h:.2} h; change -> drift record: median {:.2} h, p99 {:.2} h",
        cycle_h * 0.5,
        cycle_h * 0.99
    );
    println!(
        "  Bitbucket requests: the whole budget whatever happens ({:.0}/h); at {changes_per_hour:.0} changes/h that is {:.2} per change, and seeing any one change needs a full cycle of {} requests",
        DEFAULT_SYNC_PER_HOUR,
        DEFAULT_SYNC_PER_HOUR / changes_per_hour,
        full.minimum_requests
    );
    Ok(failed)
}

/// What the passes found.
#[derive(Default)]
struct Passes {
    requests: u64,
    applied: u64,
    refreshes: Vec<f64>,
    /// Each drift record: its subject, the start and end of the pass that wrote it, and
    /// whether it names the actor who made the change.
    found: Vec<(String, Instant, Instant, bool)>,
}

fn sim_client(sim: &SimHandle) -> BitbucketClient {
    let mut settings = ClientSettings::new(
        Url::parse(&sim.bitbucket_url()).expect("simulator url"),
        Auth::ApiToken {
            email: sim.admin_email(),
            token: SecretString::from(sim.admin_token()),
        },
    );
    settings.budget = BudgetSettings {
        requests_per_hour: 1_000_000,
        reserve: 0,
        max_in_flight: 8,
    };
    BitbucketClient::builder(settings).build().expect("client")
}

fn org_client(sim: &SimHandle) -> Result<OrgClient, String> {
    let settings = sim.org().settings();
    OrgClient::new(
        OrgSettings::new(
            Url::parse(&sim.org_url()).map_err(|e| e.to_string())?,
            settings.org_id,
            SecretString::from(settings.api_key),
        ),
        RetryPolicy::default(),
        Scrubber::new(),
    )
    .map_err(|e| e.to_string())
}

fn main() {
    // `cargo bench` passes `--bench`; this harness takes no options.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(bench()) {
        Ok(failed) if failed.is_empty() => println!("\nall targets met"),
        Ok(failed) => {
            println!("\nFAILED targets:");
            for f in &failed {
                println!("  - {f}");
            }
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
