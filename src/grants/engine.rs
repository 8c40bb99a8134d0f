//! The grant engine: the store, a Bitbucket client whose requests use the grant class of the
//! budget, the clock, and the settings every step shares (who acts, leases, conflict rule).
//!
//! Only one process acts on a slot at a time: the engine takes the slot's lease (a compare-and-
//! set in the store) before reading or changing it, and gives it back afterwards. A crashed holder
//! blocks the slot only until its lease lapses.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};

use super::GrantError;
use crate::bitbucket::BitbucketClient;
use crate::clock::Clock;
use crate::config::OnConflict;
use crate::domain::{Grant, GrantLevel, SlotKey};
use crate::store::{AuditKind, NewAuditEntry, Store};

/// A point the test seam can stop at, as if the process died there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The intent (a pending grant) is stored; Bitbucket was not called.
    Intent,
    /// Bitbucket was changed for a new grant; the store does not know yet.
    Applied,
    /// A restore was made in Bitbucket; the store does not know yet.
    Restored,
}

/// What every step of the engine shares.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// This worker's name in leases and claims (unique per process).
    pub owner: String,
    /// The actor named in audit entries the engine writes on its own (expiry, reconcile).
    pub actor: String,
    /// How long a slot lease or a claim lasts before another worker may take over.
    pub lease: Duration,
    /// What a restore does with a level someone else changed.
    pub on_conflict: OnConflict,
    /// Restores run at once at most.
    pub max_in_flight: usize,
    /// The first wait after a failed restore; doubled per attempt up to `max_backoff`.
    pub backoff: Duration,
    /// The longest wait between restore attempts.
    pub max_backoff: Duration,
    /// Grants claimed per round of an expiry pass.
    pub batch: u32,
    /// Test seam: fail with [`GrantError::Stopped`] right after this step.
    pub stop_after: Option<Step>,
}

impl EngineSettings {
    /// Settings for a worker named `owner` (a random suffix keeps two processes apart).
    pub fn new(owner: impl Into<String>) -> Self {
        EngineSettings {
            owner: format!("{}-{:016x}", owner.into(), rand::random::<u64>()),
            actor: "bitbucket-access".to_owned(),
            lease: Duration::seconds(60),
            on_conflict: OnConflict::Keep,
            max_in_flight: 4,
            backoff: Duration::seconds(30),
            max_backoff: Duration::minutes(15),
            batch: 500,
            stop_after: None,
        }
    }
}

/// Grants, revokes and expires.
pub struct Engine<'a> {
    pub(super) store: &'a dyn Store,
    pub(super) client: BitbucketClient,
    pub(super) clock: &'a dyn Clock,
    pub(super) settings: EngineSettings,
}

/// How often and how long a worker tries for a slot another worker holds.
const SLOT_POLL: StdDuration = StdDuration::from_millis(10);
const SLOT_TRIES: u32 = 300;

impl<'a> Engine<'a> {
    /// An engine; the client's requests are sent as grant-class requests.
    pub fn new(
        store: &'a dyn Store,
        client: &BitbucketClient,
        clock: &'a dyn Clock,
        settings: EngineSettings,
    ) -> Self {
        Engine {
            store,
            client: client.for_grants(),
            clock,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(super) fn claim(&self) -> Option<(String, DateTime<Utc>)> {
        Some((
            self.settings.owner.clone(),
            self.now() + self.settings.lease,
        ))
    }

    pub(super) fn stop_after(&self, step: Step) -> Result<(), GrantError> {
        match self.settings.stop_after {
            Some(s) if s == step => Err(GrantError::Stopped(step)),
            _ => Ok(()),
        }
    }

    /// Runs `work` holding the slot's lease. The lease is kept (not given back) when the test
    /// seam stopped the work, as a crashed process would keep it.
    pub(super) async fn with_slot<T, F>(&self, slot: &SlotKey, work: F) -> Result<T, GrantError>
    where
        F: std::future::Future<Output = Result<T, GrantError>>,
    {
        let mut tries = 0;
        loop {
            let now = self.now();
            if self
                .store
                .lock_grant_slot(slot, &self.settings.owner, now, now + self.settings.lease)
                .await?
            {
                break;
            }
            tries += 1;
            if tries >= SLOT_TRIES {
                return Err(GrantError::SlotBusy(slot.to_string()));
            }
            tokio::time::sleep(SLOT_POLL).await;
        }
        let result = work.await;
        if !matches!(result, Err(GrantError::Stopped(_))) {
            self.store
                .unlock_grant_slot(slot, &self.settings.owner)
                .await?;
        }
        result
    }

    /// The wait before the next restore attempt after `attempts` failures.
    pub(super) fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1_i32 << attempts.min(10);
        (self.settings.backoff * factor).min(self.settings.max_backoff)
    }
}

/// An audit entry about a grant.
pub(super) fn audit(
    at: DateTime<Utc>,
    actor: &str,
    kind: AuditKind,
    grant: Option<&Grant>,
    slot: &SlotKey,
    (before, after): (Option<serde_json::Value>, Option<serde_json::Value>),
    mut details: serde_json::Value,
) -> NewAuditEntry {
    if let (Some(g), serde_json::Value::Object(map)) = (grant, &mut details) {
        map.insert("grant_id".to_owned(), serde_json::json!(g.id.0));
        map.insert("requested_by".to_owned(), serde_json::json!(g.requested_by));
        map.insert("ticket".to_owned(), serde_json::json!(g.ticket));
        map.insert("reason".to_owned(), serde_json::json!(g.reason));
    }
    if let serde_json::Value::Object(map) = &mut details {
        map.insert("slot".to_owned(), serde_json::json!(slot.as_key()));
    }
    NewAuditEntry {
        at,
        actor: actor.to_owned(),
        kind,
        subject: grant.map_or_else(|| slot.to_string(), |g| format!("grant {}", g.id)),
        before,
        after,
        details,
    }
}

/// A level as audit JSON (`null` for nothing).
pub(super) fn level_json(level: Option<GrantLevel>) -> Option<serde_json::Value> {
    Some(serde_json::json!({ "level": level.map(GrantLevel::as_str) }))
}
