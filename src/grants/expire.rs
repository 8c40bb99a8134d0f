//! Expiry: one pass claims the grants due now (ended by their time, or left pending or ending by
//! a crash or a failed restore) and finishes them concurrently; the watch loop runs passes until
//! told to stop, sleeping until the next end (at most a second, so a grant recorded meanwhile
//! by another process is not missed).

use std::future::Future;
use std::time::Duration as StdDuration;

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::engine::Engine;
use super::GrantError;
use crate::domain::{Grant, GrantState};
use crate::store::{Backend, GrantClaim, StoreError};

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Grants ended at their expiry, with what stood before put back.
    pub ended: u32,
    /// Grants ended by a revoke (finished here after a crash or a failed restore).
    pub revoked: u32,
    /// Pending grants finished (applied, or found applied).
    pub applied: u32,
    /// Grants left alone because their level was changed out of band.
    pub conflicts: u32,
    /// Grants whose restore failed this time; they stay due and are retried after a backoff.
    pub retry_later: u32,
    /// Grants that failed otherwise (the errors are logged).
    pub errors: u32,
}

impl PassReport {
    fn add(&mut self, outcome: &Result<Grant, GrantError>) {
        match outcome {
            Ok(g) => match g.state {
                GrantState::Ended => self.ended += 1,
                GrantState::Revoked => self.revoked += 1,
                GrantState::Active | GrantState::Satisfied => self.applied += 1,
                GrantState::Conflict => self.conflicts += 1,
                _ => {}
            },
            Err(GrantError::Bitbucket(_)) => self.retry_later += 1,
            Err(_) => self.errors += 1,
        }
    }

    /// Grants acted on.
    pub fn total(&self) -> u32 {
        self.ended + self.revoked + self.applied + self.conflicts + self.retry_later + self.errors
    }
}

/// Why the watch loop could not run.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// Another `expire --watch` uses this SQLite store.
    #[error(
        "another `expire --watch` ({0}) already runs on this SQLite store; SQLite allows one \
         watcher (stop it first, or use PostgreSQL to run several)"
    )]
    AlreadyWatching(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Engine<'_> {
    /// One expiry pass: claims and finishes every grant due now, `max_in_flight` at a time.
    pub async fn expire_pass(&self) -> Result<PassReport, StoreError> {
        let mut report = PassReport::default();
        loop {
            let now = self.now();
            let claimed = self
                .store
                .claim_grants(&GrantClaim {
                    owner: self.settings.owner.clone(),
                    now,
                    until: now + self.settings.lease,
                    limit: self.settings.batch,
                    actor: self.settings.actor.clone(),
                })
                .await?;
            let count = claimed.len();
            let outcomes: Vec<Result<Grant, GrantError>> = stream::iter(claimed)
                .map(|grant| self.finish_claimed(grant))
                .buffer_unordered(self.settings.max_in_flight.max(1))
                .collect()
                .await;
            for outcome in &outcomes {
                if let Err(e) = outcome {
                    tracing::warn!(error = %e, "a due grant was not finished");
                }
                report.add(outcome);
            }
            if count < self.settings.batch as usize {
                return Ok(report);
            }
        }
    }

    async fn finish_claimed(&self, grant: Grant) -> Result<Grant, GrantError> {
        let slot = grant.slot();
        self.with_slot(&slot, async {
            // Another worker may have finished it between the claim and the slot's lease.
            let grant = self.reread(&grant).await?;
            match grant.state {
                GrantState::Pending => self.apply_pending(&grant, None, false).await,
                GrantState::Ending => self.finish_ending(&grant).await,
                _ => Ok(grant),
            }
        })
        .await
    }

    /// Runs passes until `shutdown` completes. On SQLite only one watcher may run.
    pub async fn watch(&self, shutdown: impl Future<Output = ()>) -> Result<(), WatchError> {
        let single = self.store.backend() == Backend::Sqlite;
        if single {
            self.renew_watcher().await?;
        }
        tokio::pin!(shutdown);
        let result = loop {
            if single {
                if let Err(e) = self.renew_watcher().await {
                    break Err(e);
                }
            }
            if let Err(e) = self.expire_pass().await {
                // A store that failed once may answer the next time; the loop keeps going.
                tracing::warn!(error = %e, "an expiry pass failed");
            }
            let wait = match self.store.next_grant_event().await {
                Ok(Some(at)) => (at - self.now())
                    .to_std()
                    .unwrap_or(StdDuration::ZERO)
                    .min(StdDuration::from_secs(1)),
                _ => StdDuration::from_secs(1),
            };
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                () = tokio::time::sleep(wait.max(StdDuration::from_millis(20))) => {}
            }
        };
        if single {
            self.store
                .release_grant_watcher(&self.settings.owner)
                .await?;
        }
        result
    }

    async fn renew_watcher(&self) -> Result<(), WatchError> {
        let now = self.now();
        match self
            .store
            .acquire_grant_watcher(&self.settings.owner, now, now + self.settings.lease)
            .await?
        {
            Some(holder) => Err(WatchError::AlreadyWatching(holder)),
            None => Ok(()),
        }
    }
}
