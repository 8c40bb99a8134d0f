//! The state of one workspace's read within a run, shared by the structural listings, the
//! permission listings and the cross-check: where facts go, what was read fresh, what failed,
//! and what the run may still spend.

use std::collections::HashSet;

use indicatif::ProgressBar;
use tracing::warn;

use super::report::{Failure, Totals};
use crate::bitbucket::{ApiError, BitbucketClient};
use crate::clock::Clock;
use crate::domain::{FactKey, WorkspaceSlug};
use crate::store::{
    Fact, ListingKey, MassChangeGuard, ReplaceListing, ReplaceOutcome, Store, StoreError, SyncRunId,
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
}

impl WorkspaceRun<'_> {
    /// A replace of a listing read now by this run.
    pub fn request(&self, key: ListingKey, facts: Vec<Fact>, pages: u64) -> ReplaceListing {
        let mut request = ReplaceListing::new(key, facts, self.clock.now());
        request.cost_requests = pages;
        request.run = Some(self.run);
        request.baseline_is_drift = self.new_scopes.contains(&request.key);
        request.guard = Some(self.guard);
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
        let n = keys.len() as u64;
        let outcomes = self.store.replace_listings(requests).await?;
        for (key, outcome) in keys.into_iter().zip(outcomes) {
            self.totals.add(&key, &outcome);
            if outcome.held.is_none() {
                self.fresh.insert(key);
            }
        }
        Ok(n)
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

    /// Records a listing that could not be read; its stored facts stay.
    pub fn fail(&mut self, key: &ListingKey, error: &ApiError) {
        warn!(listing = %key, error = %error, "listing not read; its stored facts stay");
        self.failures.push(Failure {
            listing: key.to_string(),
            error: error.to_string(),
        });
    }
}
