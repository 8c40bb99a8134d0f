//! The state of one workspace's read within a run, shared by the structural listings, the
//! permission listings and the cross-check: where facts go, what was read fresh, what failed,
//! and what the run may still spend.
//!
//! The permission listings are read in rounds ([`WorkspaceRun::read_within_budget`]): each
//! round reads, in the planner's order, what the rolling hour still allows right now, so the
//! budget never has to hold a request back. Without `--wait` the rest is deferred to a later
//! run; with it, the run sleeps until the window has freed enough requests and reads on.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use indicatif::ProgressBar;
use tracing::{info, warn};

use super::age::format_age;
use super::plan::{self, Candidate};
use super::report::{entity_counts, Failure, Totals, WorkspaceSummary};
use super::{SyncError, STRUCTURAL_LISTINGS};
use crate::bitbucket::{ApiError, BitbucketClient};
use crate::clock::Clock;
use crate::domain::{FactKey, WorkspaceSlug};
use crate::store::{
    ExpectedChange, Fact, ListingKey, MassChangeGuard, ReplaceListing, ReplaceOutcome, Store,
    StoreError, SyncRunId,
};

/// The requests this run may still send: the smaller of the client's budget (which leaves out
/// what other processes spent of the hour) and the run's cap.
pub(super) struct Limit {
    client: BitbucketClient,
}

impl Limit {
    pub fn new(client: &BitbucketClient) -> Self {
        Limit {
            client: client.clone(),
        }
    }

    /// The smaller of what the budget's hour and the run's `--max-requests` cap (set on the
    /// budget before discovery, so both count the same requests) still allow.
    pub fn left(&self) -> u64 {
        let budget = self.client.budget();
        let hour = budget.available();
        budget.cap_left().map_or(hour, |cap| hour.min(cap))
    }

    /// How long until the rolling hour allows `n` more requests (at most a full window's worth),
    /// or `None` when waiting cannot help: the run's cap is smaller.
    fn wait_for(&self, n: u64) -> Option<Duration> {
        let budget = self.client.budget();
        if budget.cap_left().is_some_and(|cap| cap < n.max(1)) {
            return None;
        }
        let n = n.min(u64::from(budget.settings().limit()));
        // Requests promised to another planner may keep `n` out of reach; a window from now
        // they have been spent or given back.
        Some(budget.time_until_available(n).unwrap_or(budget.window()))
    }
}

/// Listings written in one transaction, with their outcomes in the same order.
pub(super) struct Written {
    pub keys: Vec<ListingKey>,
    pub outcomes: Vec<ReplaceOutcome>,
}

/// What [`WorkspaceRun::read_within_budget`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct BudgetedRead {
    /// Listings read and stored.
    pub read: u64,
    /// Listings left for a later run.
    pub deferred: u64,
}

pub(super) struct WorkspaceRun<'a> {
    pub store: &'a dyn Store,
    pub client: &'a BitbucketClient,
    pub clock: &'a dyn Clock,
    pub ws: &'a WorkspaceSlug,
    pub run: SyncRunId,
    /// Listings the interrupted run this one resumes already stored.
    pub done: &'a HashSet<ListingKey>,
    pub totals: &'a mut Totals,
    pub failures: &'a mut Vec<Failure>,
    pub limit: &'a mut Limit,
    pub bar: &'a ProgressBar,
    pub max_in_flight: usize,
    /// Listings stored by this run (or by the interrupted run it resumes): the cross-check
    /// looks only at repositories whose facts all come from them.
    pub fresh: HashSet<ListingKey>,
    /// Listings of repositories, projects and groups that appeared since the workspace was
    /// first read: their first read is drift, not a baseline.
    pub new_scopes: HashSet<ListingKey>,
    /// The mass-change guard every replace of this run carries.
    pub guard: MassChangeGuard,
    /// Whether the group permissions of this workspace's repositories come from the
    /// group-privileges sweep in this run: its one request then stands for every repository's
    /// group listing in the run's minimum, those a resumed run found stored included.
    pub swept: bool,
    /// Complete listings read but not yet written (the sweep's): the next permission read
    /// writes them while it reads.
    pub pending: Vec<ReplaceListing>,
    /// Changes of grants in flight, by listing: the connector's own, not drift.
    pub expected: &'a HashMap<ListingKey, Vec<ExpectedChange>>,
    /// The organization events behind a targeted refresh, each with the target it asked for:
    /// a listing a target covers carries the event, so its drift names who made it. Empty in
    /// a full sync.
    pub attributions: &'a [(super::targeted::Target, crate::domain::Attribution)],
}

impl WorkspaceRun<'_> {
    /// A replace of a listing read now by this run.
    pub fn request(&self, key: ListingKey, facts: Vec<Fact>, pages: u64) -> ReplaceListing {
        let mut request = ReplaceListing::new(key, facts, self.clock.now());
        request.cost_requests = pages;
        request.run = Some(self.run);
        request.baseline_is_drift = self.new_scopes.contains(&request.key);
        request.guard = Some(self.guard);
        request.expected = self.expected.get(&request.key).cloned().unwrap_or_default();
        request.attribution = self
            .attributions
            .iter()
            .filter(|(target, _)| target.covers(&request.key))
            .map(|(_, a)| a.clone())
            .collect();
        request
    }

    /// Stores one complete listing.
    pub async fn replace(
        &mut self,
        key: ListingKey,
        facts: Vec<Fact>,
        pages: u64,
    ) -> Result<ReplaceOutcome, StoreError> {
        let request = self.request(key.clone(), facts, pages);
        let outcome = self.store.replace_listing(request).await?;
        self.totals.add(&key, &outcome);
        // A held listing keeps its old facts: they are not this run's reading.
        if outcome.held.is_none() {
            self.fresh.insert(key);
        }
        Ok(outcome)
    }

    /// Stores several complete listings in one transaction.
    pub async fn replace_all(&mut self, requests: Vec<ReplaceListing>) -> Result<u64, StoreError> {
        if requests.is_empty() {
            return Ok(0);
        }
        let keys: Vec<ListingKey> = requests.iter().map(|r| r.key.clone()).collect();
        let outcomes = self.store.replace_listings(requests).await?;
        Ok(self.written(Written { keys, outcomes }))
    }

    /// Counts a written batch in the run's totals and notes its listings fresh (a held listing
    /// keeps its old facts: they are not this run's reading). Returns how many were written.
    pub fn written(&mut self, batch: Written) -> u64 {
        let n = batch.keys.len() as u64;
        for (key, outcome) in batch.keys.into_iter().zip(batch.outcomes) {
            self.totals.add(&key, &outcome);
            if outcome.held.is_none() {
                self.fresh.insert(key);
            }
        }
        n
    }

    /// Notes the repositories or projects a structural listing found new (drift with nothing
    /// before), so that the first read of their permissions records drift too.
    pub fn note_new(
        &mut self,
        outcome: &ReplaceOutcome,
        listings: fn(&FactKey) -> Option<[ListingKey; 2]>,
    ) {
        for event in outcome.drift.iter().filter(|e| e.before.is_none()) {
            if let Some(keys) = listings(&event.key) {
                self.new_scopes.extend(keys);
            }
        }
    }

    /// Reads the permission listings in the planner's order, as many as the rolling hour allows
    /// now. With `wait`, then waits for the window to free requests (logging how long) and reads
    /// the rest in further rounds; without it, defers the rest to a later run. A run's
    /// `--max-requests` cap ends the waiting: what it cannot pay for stays deferred.
    pub async fn read_within_budget(
        &mut self,
        candidates: Vec<Candidate<ListingKey>>,
        wait: bool,
    ) -> Result<BudgetedRead, SyncError> {
        let mut out = BudgetedRead::default();
        let mut pending = candidates;
        let mut round = 0u32;
        loop {
            let mut planned = plan::plan(pending, self.limit.left());
            if round > 0 && planned.read.is_empty() && !planned.deferred.is_empty() {
                // After a wait, the first listing still does not fit: it costs more than the
                // window frees at once. Read it anyway; the budget admits its pages as the
                // window frees, so it cannot pass the limit.
                planned.read.push(planned.deferred.remove(0));
            }
            out.read += self.read_permissions(planned.read).await?;
            pending = planned.deferred;
            if pending.is_empty() || !wait {
                break;
            }
            let cost: u64 = pending.iter().map(|c| c.cost).sum();
            let Some(pause) = self.limit.wait_for(cost) else {
                info!(workspace = %self.ws, deferred = pending.len(), "the run's request cap leaves the rest deferred");
                break;
            };
            round += 1;
            info!(
                workspace = %self.ws,
                deferred = pending.len(),
                requests = cost,
                wait = %format_age(pause.as_secs_f64().ceil() as i64),
                "waiting for the rolling hour to free requests for the deferred listings"
            );
            tokio::time::sleep(pause).await;
        }
        out.deferred = pending.len() as u64;
        Ok(out)
    }

    /// Defers a whole workspace, structural listings included, because the rolling hour cannot
    /// pay even for its structure now. Returns its summary and the cost of a complete read
    /// (its permission listings at their last cost, the structure at least a request each).
    pub async fn defer_workspace(
        &mut self,
        active: &HashSet<ListingKey>,
    ) -> Result<(WorkspaceSummary, u64), SyncError> {
        let (candidates, done_cost) = self.candidates(active).await?;
        let cost = done_cost + STRUCTURAL_LISTINGS + candidates.iter().map(|c| c.cost).sum::<u64>();
        info!(workspace = %self.ws, "the rolling hour's allowance is spent; workspace deferred");
        let summary = WorkspaceSummary {
            workspace: self.ws.to_string(),
            listings_deferred: STRUCTURAL_LISTINGS + candidates.len() as u64,
            // Not known to be unavailable: it was not asked.
            groups_available: true,
            entities: entity_counts(self.store, self.ws).await?,
            ..WorkspaceSummary::default()
        };
        Ok((summary, cost))
    }

    /// Records a listing that could not be read; its stored facts stay.
    pub fn fail(&mut self, key: &ListingKey, error: &ApiError) {
        warn!(listing = %key, error = %error, "listing not read; its stored facts stay");
        self.failures.push(Failure {
            listing: key.to_string(),
            error: error.to_string(),
        });
    }
}
