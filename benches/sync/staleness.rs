//! Staleness under the default budget (issue 10, item 4): how many hours a complete refresh of
//! the benchmark world takes, and how old the oldest fact gets at steady state, against the
//! optimum (the minimum requests divided by the hourly allowance).
//!
//! Simulated, not waited for: one sync an hour on a [`ManualClock`], each spending the hour's
//! usable requests the way `sync::run` does. The structural listings are read every run (the
//! sync always starts with them); the permission listings go through the real [`plan::plan`]
//! with what is left, each at the cost its last real read had in the store.

use chrono::{DateTime, Duration as Span, TimeZone, Utc};

use bitbucket_access::bitbucket::BudgetSettings;
use bitbucket_access::clock::{Clock, ManualClock};
use bitbucket_access::store::{ListingKey, Store};
use bitbucket_access::sync::plan::{self, Candidate, Priority};

/// Runs simulated after the first complete refresh, to reach and observe the steady state.
const STEADY_CYCLES: u32 = 3;
/// Gives up on a world that the budget can never refresh (the structural listings alone
/// would eat the hour).
const MAX_HOURS: u32 = 24 * 365;

/// What the simulation found.
pub struct Staleness {
    /// Requests one complete read needs: every listing at the cost of its last read.
    pub minimum: u64,
    /// Usable requests per hour (the default limit less the reserve).
    pub per_hour: u64,
    /// Requests the structural listings take in every run.
    pub structural: u64,
    /// Runs (hours) until every listing read at the start has been read again.
    pub refresh_hours: Option<u32>,
    /// The largest age of the oldest fact, seen at the start of a run at steady state.
    pub oldest_hours: Option<f64>,
}

impl Staleness {
    /// The optimum: the minimum divided by the hourly allowance, in hours.
    pub fn optimum_hours(&self) -> f64 {
        self.minimum as f64 / self.per_hour.max(1) as f64
    }
}

/// Whether the sync reads this listing at the start of every run, outside the planner (group
/// members come with the groups listing and cost nothing of their own).
fn is_structural(key: &ListingKey) -> bool {
    !matches!(
        key,
        ListingKey::ProjectUserPermissions(_)
            | ListingKey::ProjectGroupPermissions(_)
            | ListingKey::RepositoryUserPermissions(_)
            | ListingKey::RepositoryGroupPermissions(_)
    )
}

/// Every listing of the store with the cost of its last read, and the number of workspaces.
///
/// The group permissions of every repository come from one group-privileges sweep per
/// workspace, read at the start of every run like the structural listings: they are left out
/// here and counted as one request per workspace instead.
async fn listing_costs(store: &dyn Store) -> Result<(Vec<(ListingKey, u64)>, u64), String> {
    let mut out = Vec::new();
    let workspaces = store.workspaces().await.map_err(|e| e.to_string())?;
    for ws in &workspaces {
        for status in store
            .listings_by_age(&ws.slug)
            .await
            .map_err(|e| e.to_string())?
        {
            if !matches!(status.key, ListingKey::RepositoryGroupPermissions(_)) {
                out.push((status.key, status.cost_requests.unwrap_or(1)));
            }
        }
    }
    Ok((out, workspaces.len() as u64))
}

/// Simulates hourly syncs of the store's listings under the default budget.
pub async fn simulate(store: &dyn Store) -> Result<Staleness, String> {
    let (costs, sweeps) = listing_costs(store).await?;
    let settings = BudgetSettings::default();
    let per_hour = u64::from(settings.requests_per_hour.saturating_sub(settings.reserve));
    let structural: u64 = sweeps
        + costs
            .iter()
            .filter(|(k, _)| is_structural(k))
            .map(|(_, c)| c)
            .sum::<u64>();
    let minimum = sweeps + costs.iter().map(|(_, c)| c).sum::<u64>();
    let start: DateTime<Utc> = Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .ok_or("a valid start time")?;
    let clock = ManualClock::new(start);
    // Every permission listing was read completely by the benchmark's first sync, at `start`.
    let mut last_read: Vec<(ListingKey, u64, DateTime<Utc>)> = costs
        .into_iter()
        .filter(|(k, _)| !is_structural(k))
        .map(|(k, c)| (k, c, start))
        .collect();
    let mut result = Staleness {
        minimum,
        per_hour,
        structural,
        refresh_hours: None,
        oldest_hours: None,
    };
    if per_hour <= structural {
        return Ok(result);
    }
    let mut steady_until = None;
    for hour in 1..=MAX_HOURS {
        clock.advance(Span::hours(1));
        let now = clock.now();
        let oldest = last_read.iter().map(|(_, _, at)| *at).min().unwrap_or(now);
        if result.refresh_hours.is_some() {
            let age = (now - oldest).num_seconds() as f64 / 3600.0;
            result.oldest_hours = Some(result.oldest_hours.unwrap_or(0.0).max(age));
        }
        let candidates = last_read
            .iter()
            .map(|(key, cost, at)| Candidate {
                key: key.clone(),
                cost: (*cost).max(1),
                last_read: Some(*at),
                priority: Priority::Stale,
            })
            .collect();
        let planned = plan::plan(candidates, per_hour.saturating_sub(structural));
        let read: std::collections::HashSet<ListingKey> =
            planned.read.into_iter().map(|c| c.key).collect();
        for entry in last_read.iter_mut().filter(|(k, _, _)| read.contains(k)) {
            entry.2 = now;
        }
        if result.refresh_hours.is_none() && last_read.iter().all(|(_, _, at)| *at > start) {
            result.refresh_hours = Some(hour);
            steady_until = Some(hour + STEADY_CYCLES * hour);
        }
        if steady_until.is_some_and(|until| hour >= until) {
            break;
        }
    }
    Ok(result)
}

/// Staleness of the world just synced into `url` under the default budget (simulated hours).
pub async fn print(url: &str) -> Result<(), String> {
    let store = bitbucket_access::store::open(url)
        .await
        .map_err(|e| format!("cannot open the store: {e}"))?;
    let s = simulate(store.as_ref()).await?;
    println!(
        "\nStaleness under the default budget ({} usable requests an hour; simulated hourly syncs)",
        s.per_hour
    );
    println!(
        "    minimum           {} requests per complete read ({} of them structural, read every run)",
        s.minimum, s.structural
    );
    let optimum = s.optimum_hours();
    let versus = |hours: f64| {
        format!(
            "{hours:.1} h (optimum {optimum:.1} h, x{:.2})",
            hours / optimum.max(1e-9)
        )
    };
    match (s.refresh_hours, s.oldest_hours) {
        (Some(refresh), Some(oldest)) => {
            println!("    complete refresh  {}", versus(f64::from(refresh)));
            println!("    oldest fact       {} at steady state", versus(oldest));
        }
        _ => println!("    complete refresh  never: the structural listings take the whole hour"),
    }
    Ok(())
}
