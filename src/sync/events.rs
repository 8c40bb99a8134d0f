//! Event-driven refresh: one pass over the Atlassian organization's audit-log events
//! (`atlassian_admin`), turned into one targeted refresh ([`super::targeted`]).
//!
//! A pass takes the `org-events` job lease (one instance polls at a time), reads the events
//! after the stored cursor (the organization's own budget, none of Bitbucket's), maps each to
//! the smallest refresh that covers it ([`crate::org::events::understand`]), merges them, reads
//! only those listings from Bitbucket, and then moves the stored cursor by compare-and-set from
//! the value it started at. So:
//! - a restart resumes after the last applied event: nothing is lost (the cursor moves only
//!   after the refresh stored everything the events named) and nothing is replayed;
//! - when the refresh could not read everything now (budget, a held workspace, a failure) the
//!   cursor stays, and the next pass reads the same events again (a refresh is idempotent:
//!   what was stored already shows no difference the second time);
//! - an instance that lost its lease midway cannot move the cursor over another's.
//!
//! Each drift record the refresh finds names the event that explains it (actor, time, id);
//! changes the connector's own account made are applied without being drift. The connector's
//! account id is learned once (`GET /user`, one Bitbucket request) and kept in the store.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tracing::{info, warn};

use super::targeted::{self, Target, TargetedOptions, TargetedReport};
use super::{LeaseSettings, SyncError};
use crate::bitbucket::{ApiError, BitbucketClient};
use crate::clock::{Clock, SystemClock};
use crate::domain::{Attribution, WorkspaceSlug};
use crate::org::events::{understand, Understood};
use crate::org::{OrgClient, OrgError, OrgEvent};
use crate::store::{
    CursorAdvance, JobLeaseRequest, LeaseClaim, MassChangeGuard, RunOwner, Store, StoreError,
};

/// The job lease under which one instance at a time polls the events.
pub const EVENTS_LEASE: &str = "org-events";

/// Events asked for per page of the stream.
const PAGE_LIMIT: u32 = 200;

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct EventsOptions {
    /// The workspaces the connector manages: events of others are left out. Empty: every
    /// workspace the store holds.
    pub managed: BTreeSet<WorkspaceSlug>,
    /// Where the pass reads the time.
    pub clock: Arc<dyn Clock>,
    /// The job lease's and the refresh run's lease.
    pub lease: LeaseSettings,
    /// Holds back a replace that would remove most of a listing.
    pub mass_change: MassChangeGuard,
    /// This instance, as the lease and the cursor name it.
    pub holder: String,
    /// Without a stored cursor, how far back the first pass starts.
    pub first_lookback: Duration,
    /// The most pages one pass reads (the rest waits for the next pass).
    pub max_pages: u32,
}

impl Default for EventsOptions {
    fn default() -> Self {
        EventsOptions {
            managed: BTreeSet::new(),
            clock: Arc::new(SystemClock),
            lease: LeaseSettings::default(),
            mass_change: MassChangeGuard::default(),
            holder: RunOwner::generate().to_string(),
            first_lookback: Duration::from_secs(3600),
            max_pages: 50,
        }
    }
}

/// An event whose action the connector does not know, refreshed conservatively.
#[derive(Debug, Clone, Serialize)]
pub struct UnknownAction {
    /// The event's id.
    pub event_id: String,
    /// Its action.
    pub action: String,
    /// What was refreshed for it.
    pub targets: Vec<Target>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventsReport {
    /// Another instance held the lease: this one did nothing.
    pub held_by: Option<String>,
    /// The stored cursor the pass started from.
    pub cursor_before: Option<String>,
    /// The stored cursor after the pass.
    pub cursor_after: Option<String>,
    /// Events read from the stream.
    pub events: u64,
    /// Events about managed Bitbucket workspaces, refreshed (own and unknown ones included).
    pub applied: u64,
    /// Of those, changes the connector's own account made (refreshed, never drift).
    pub own: u64,
    /// Events of actions the connector does not know.
    pub unknown: Vec<UnknownAction>,
    /// Events about other products or workspaces.
    pub elsewhere: u64,
    /// Targets the events came to, before merging.
    pub targets: Vec<Target>,
    /// The targeted refresh, when there was anything to read.
    pub refresh: Option<TargetedReport>,
    /// Bitbucket requests spent learning the connector's own account (once per store).
    pub own_account_requests: u64,
    /// Requests sent to the Organizations API.
    pub org_requests: u64,
    /// Whether the stored cursor moved.
    pub cursor_moved: bool,
    /// The refresh did not read everything: the cursor stays and the next pass tries again.
    pub retry: bool,
    /// Another instance moved the cursor meanwhile (this one's lease had lapsed).
    pub lost_race: bool,
}

impl EventsReport {
    /// Drift records the refresh wrote.
    pub fn drift(&self) -> u64 {
        self.refresh.as_ref().map_or(0, |r| r.drift)
    }

    /// Bitbucket requests the pass spent (the refresh's and the own-account look-up's).
    pub fn bitbucket_requests(&self) -> u64 {
        self.own_account_requests + self.refresh.as_ref().map_or(0, |r| r.requests_used)
    }

    /// One line for people.
    pub fn summary(&self) -> String {
        if let Some(holder) = &self.held_by {
            return format!("held by {holder}");
        }
        format!(
            "{} event(s): {} applied ({} the connector's own, {} unknown action(s)), {} elsewhere; {} Bitbucket request(s), {} drift record(s){}",
            self.events,
            self.applied,
            self.own,
            self.unknown.len(),
            self.elsewhere,
            self.bitbucket_requests(),
            self.drift(),
            if self.retry {
                "; not everything could be read now: the same events are read again next time"
            } else {
                ""
            }
        )
    }
}

/// Why a pass failed; nothing was lost: the cursor did not move.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The Organizations API failed.
    #[error(transparent)]
    Org(#[from] OrgError),
    /// The refresh could not run.
    #[error(transparent)]
    Sync(#[from] SyncError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The connector's own account could not be learned.
    #[error("cannot learn the connector's own account (GET /2.0/user), needed to tell its own changes from drift: {0}; check the Bitbucket token (scope read:user:bitbucket)")]
    OwnAccount(ApiError),
}

/// Applies the pending events once (see the module docs).
pub async fn apply_pending(
    store: &dyn Store,
    client: &BitbucketClient,
    org: &OrgClient,
    options: &EventsOptions,
) -> Result<EventsReport, EventsError> {
    let clock = options.clock.as_ref();
    let now = clock.now();
    let request = JobLeaseRequest {
        job: EVENTS_LEASE.to_owned(),
        holder: options.holder.clone(),
        now,
        lease_until: now
            + chrono::Duration::from_std(options.lease.lease).unwrap_or(chrono::Duration::MAX),
        run_time: None,
    };
    if let LeaseClaim::Held(other) | LeaseClaim::AlreadyRan(other) =
        store.acquire_job_lease(&request).await?
    {
        return Ok(EventsReport {
            held_by: Some(other.holder),
            ..EventsReport::default()
        });
    }
    let org_before = org.requests_used();
    let result = pass(store, client, org, options).await;
    if let Err(e) = store
        .release_job_lease(EVENTS_LEASE, &options.holder, clock.now())
        .await
    {
        warn!(error = %e, "could not release the events lease; it passes by itself");
    }
    let mut report = result?;
    report.org_requests = org.requests_used() - org_before;
    info!(summary = %report.summary(), "organization events applied");
    Ok(report)
}

async fn own_account(
    store: &dyn Store,
    client: &BitbucketClient,
    org_id: &str,
    options: &EventsOptions,
    report: &mut EventsReport,
) -> Result<String, EventsError> {
    if let Some(own) = store
        .org_cursor(org_id)
        .await?
        .and_then(|c| c.own_account_id)
    {
        return Ok(own);
    }
    let before = client.requests_used();
    let me = client.user().await.map_err(EventsError::OwnAccount);
    report.own_account_requests = client.requests_used() - before;
    let id = me?
        .to_domain()
        .map(|a| a.account_id.to_string())
        .ok_or_else(|| {
            EventsError::OwnAccount(ApiError::local(
                crate::bitbucket::ErrorKind::Decode,
                "/user",
                "the answer names no account id".to_owned(),
            ))
        })?;
    store
        .set_org_own_account(org_id, &id, options.clock.now(), &options.holder)
        .await?;
    Ok(id)
}

async fn pass(
    store: &dyn Store,
    client: &BitbucketClient,
    org: &OrgClient,
    options: &EventsOptions,
) -> Result<EventsReport, EventsError> {
    let org_id = org.org_id().to_owned();
    let mut report = EventsReport::default();
    let own = own_account(store, client, &org_id, options, &mut report).await?;
    let before = store.org_cursor(&org_id).await?.and_then(|c| c.cursor);
    report.cursor_before = before.clone();
    let from = before.is_none().then(|| {
        options.clock.now() - chrono::Duration::from_std(options.first_lookback).unwrap_or_default()
    });
    let mut cursor = before.clone();
    let mut events: Vec<OrgEvent> = Vec::new();
    for _ in 0..options.max_pages.max(1) {
        let page = org.events(cursor.as_deref(), from, PAGE_LIMIT).await?;
        events.extend(page.events);
        cursor = page.cursor.or(cursor);
        if !page.more {
            break;
        }
    }
    report.events = events.len() as u64;
    let managed: BTreeSet<WorkspaceSlug> = if options.managed.is_empty() {
        store
            .workspaces()
            .await?
            .into_iter()
            .map(|w| w.slug)
            .collect()
    } else {
        options.managed.clone()
    };
    let mut attributions: Vec<(Target, Attribution)> = Vec::new();
    for event in &events {
        let (targets, unknown) = match understand(event, &managed) {
            Understood::Known(t) => (t, false),
            Understood::Unknown(t) => (t, true),
            Understood::Elsewhere => {
                report.elsewhere += 1;
                continue;
            }
        };
        report.applied += 1;
        let attribution = attribution(event, &own);
        if attribution.own {
            report.own += 1;
        }
        if unknown {
            warn!(event = %event.id, action = %event.action, targets = targets.len(),
                "an organization audit action the connector does not know: refreshing what it names");
            report.unknown.push(UnknownAction {
                event_id: event.id.clone(),
                action: event.action.clone(),
                targets: targets.clone(),
            });
        }
        for t in targets {
            report.targets.push(t.clone());
            attributions.push((t, attribution.clone()));
        }
    }
    if !report.targets.is_empty() {
        let refresh = targeted::refresh(
            store,
            client,
            &report.targets,
            &TargetedOptions {
                clock: Arc::clone(&options.clock),
                lease: options.lease,
                mass_change: options.mass_change,
                attributions,
            },
        )
        .await?;
        report.retry = !refresh.is_complete();
        report.refresh = Some(refresh);
    }
    report.cursor_after = before.clone();
    let Some(after) = cursor.filter(|c| Some(c) != before.as_ref()) else {
        return Ok(report);
    };
    if report.retry {
        return Ok(report);
    }
    let moved = store
        .advance_org_cursor(&CursorAdvance {
            org_id,
            expected: before,
            cursor: after.clone(),
            applied: report.applied,
            at: options.clock.now(),
            by: options.holder.clone(),
        })
        .await?;
    if moved {
        report.cursor_moved = true;
        report.cursor_after = Some(after);
    } else {
        warn!("another instance moved the events cursor while this one applied the same events (its lease had lapsed); the refresh was repeated, nothing was lost");
        report.lost_race = true;
    }
    Ok(report)
}

/// The attribution of an event: who, when, which event, whom it names, and whether the
/// connector's own account made it.
fn attribution(event: &OrgEvent, own: &str) -> Attribution {
    Attribution {
        event_id: event.id.clone(),
        event_time: event.time,
        actor_account_id: event.actor.account_id.clone(),
        actor_name: event.actor.name.clone(),
        api_token: event.actor.api_token,
        names: event
            .context
            .iter()
            .filter_map(|c| match c.kind.as_str() {
                "user" => Some(c.id.clone()),
                // Groups are named `ws/slug`; facts name the slug.
                "group" => Some(c.id.rsplit('/').next().unwrap_or(&c.id).to_owned()),
                _ => None,
            })
            .collect(),
        own: !own.is_empty() && event.actor.account_id == own,
    }
}
