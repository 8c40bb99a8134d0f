//! The store: one storage trait, [`Store`], with an SQLite and a PostgreSQL implementation on
//! sqlx, picked once from the URL scheme by [`open`].
//!
//! What it keeps: the facts read from Bitbucket (workspaces, projects, repositories, accounts,
//! groups and memberships, explicit permissions), identities, listing freshness, sync runs,
//! grants and an append-only audit log.
//!
//! Architecture invariants:
//! - No sqlx type leaves this module; [`StoreError`] carries driver messages as text, with any
//!   password removed.
//! - Facts change only through [`Store::replace_listing`], one complete listing at a time, in
//!   one transaction. A listing that is never passed in (because its read failed or was cut
//!   short) keeps its stored facts: a failed read deletes nothing.
//! - An unchanged listing writes no fact or audit row, only its freshness (kept in its own table).
//! - A sync run belongs to the owner that claimed it while its lease lasts; a workspace held by a
//!   live run is not read by another, and an unfinished run is resumed only after its lease has
//!   passed (see `runs.rs`).
//! - The audit log is append-only: the trait has no way to change or delete an entry, and a
//!   trigger refuses `UPDATE` and `DELETE` on both backends.
//!
//! Drift: every difference a replace finds is a drift event (written to the audit log as kind
//! `drift`, actor `bitbucket`) unless the caller names it in [`ReplaceListing::expected`] as a
//! change the connector made itself. The caller, not the store, knows which changes it made: the
//! grants module records its own changes and passes them along. The first complete read of a
//! listing is a baseline and records no drift (there is nothing to differ from).
//!
//! Deleting a repository, project or group from its workspace listing also removes its
//! permissions (or members) and their freshness, since Bitbucket removes them with it.
//!
//! Hardening: connecting gives up after [`CONNECT_TIMEOUT`]; read-only commands use
//! [`open_read_only`], which never writes or migrates; every SQLite open checks the file's
//! integrity; a replace fails once the SQLite path no longer names the file that was opened; a
//! [`MassChangeGuard`] on a replace holds back the removal of most of a listing.

mod audit_run;
pub mod chain;
mod dispatch;
mod error;
mod file;
mod grant_types;
mod health;
mod idempotency;
mod job_leases;
mod key;
mod listing;
mod open;
mod org_events;
mod postgres;
mod run_types;
mod sqlite;
mod types;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;

use crate::domain::{
    Account, AccountId, Grant, GrantId, GrantState, Group, GroupMembers, Identity, IdentityRefresh,
    NewGrant, Project, ProjectPermission, RepoSlug, Repository, RepositoryPermission, SlotKey,
    Workspace, WorkspaceFacts, WorkspaceMember, WorkspaceSlug,
};

pub use crate::config::{redact_url, Backend, DatabaseUrl};
pub use audit_run::{AuditRun, AuditRunId, ChainedAuditEntry, NewAuditRun, ReportFile};
pub use error::StoreError;
pub use grant_types::{GrantClaim, GrantFilter, GrantRecord, GrantSlot, GrantStep, SlotChange};
pub use health::{check_health, StoreHealth};
pub use idempotency::{IdempotencyClaim, IdempotencyKey};
pub use job_leases::{JobLease, JobLeaseRequest, LeaseClaim};
use open::Pool;
pub use open::{open, open_read_only, open_with, OpenMode, SqlStore, CONNECT_TIMEOUT};
pub use org_events::{CursorAdvance, OrgCursor};
pub use run_types::{ClaimOutcome, ClaimRequest, Heartbeat, HeldWorkspace, RunOwner};
pub use types::{
    AuditEntry, AuditFilter, AuditId, AuditKind, ExpectedChange, Fact, HeldChange, ListingFailure,
    ListingFreshness, ListingKey, ListingStatus, MassChangeGuard, NewAuditEntry, ReplaceListing,
    ReplaceOutcome, SweepRefusal, SyncOutcome, SyncRun, SyncRunFinish, SyncRunId,
};

/// The future every store method returns.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// The storage operations of the connector. Obtain one with [`open`].
pub trait Store: Send + Sync + fmt::Debug {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Applies the embedded migrations. Idempotent; [`open`] already calls it.
    fn migrate(&self) -> StoreFuture<'_, ()>;

    /// Whether the store answers, takes writes and has every migration of this program, each
    /// problem with what to do (for `doctor`).
    fn health(&self) -> StoreFuture<'_, StoreHealth>;

    /// Fails when the SQLite file the store opened was removed or replaced since (a long run
    /// calls it before it reports success). Always `Ok` on PostgreSQL and in memory.
    fn check_file(&self) -> Result<(), StoreError>;

    // ----- Facts -----

    /// Replaces the complete content of one listing, records drift, and marks it fresh, in one
    /// transaction. Writes no fact or audit row when nothing changed.
    fn replace_listing(&self, request: ReplaceListing) -> StoreFuture<'_, ReplaceOutcome>;

    /// Replaces several listings in one transaction (all or none), each exactly as
    /// [`Store::replace_listing`] would; the outcomes come back in the order of the requests.
    /// Batching saves a commit per listing, which matters on PostgreSQL for thousands of small
    /// permission listings.
    fn replace_listings(
        &self,
        requests: Vec<ReplaceListing>,
    ) -> StoreFuture<'_, Vec<ReplaceOutcome>>;

    /// The freshness of one listing, `None` if it was never read completely.
    fn listing_freshness<'a>(
        &'a self,
        key: &'a ListingKey,
    ) -> StoreFuture<'a, Option<ListingFreshness>>;

    /// Every listing of a workspace the store knows should exist (the five workspace listings,
    /// then the permission listings of each stored project and repository and the member
    /// listing of each stored group), never-read first, then oldest first.
    fn listings_by_age<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<ListingStatus>>;

    /// Saves (or clears) a resume cursor on a listing read before.
    fn save_listing_cursor<'a>(
        &'a self,
        key: &'a ListingKey,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, ()>;

    /// Records that a read of a listing failed (its stored facts stay, with their age); the
    /// next complete replace of the listing clears it. `message` must hold no secret.
    fn record_listing_failure<'a>(
        &'a self,
        key: &'a ListingKey,
        at: DateTime<Utc>,
        message: &'a str,
    ) -> StoreFuture<'a, ()>;

    /// The listings of a workspace whose last read failed.
    fn listing_failures<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<ListingFailure>>;

    /// The last refusal of the workspace's group-privileges sweep, if one is on record.
    fn sweep_refusal<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Option<SweepRefusal>>;

    /// Records (`Some`) or clears (`None`) the refusal of the workspace's group-privileges
    /// sweep. The reason must hold no secret.
    fn set_sweep_refusal<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
        refusal: Option<&'a SweepRefusal>,
    ) -> StoreFuture<'a, ()>;

    /// Every stored workspace.
    fn workspaces(&self) -> StoreFuture<'_, Vec<Workspace>>;

    /// The projects of a workspace.
    fn projects<'a>(&'a self, workspace: &'a WorkspaceSlug) -> StoreFuture<'a, Vec<Project>>;

    /// The repositories of a workspace.
    fn repositories<'a>(&'a self, workspace: &'a WorkspaceSlug)
        -> StoreFuture<'a, Vec<Repository>>;

    /// The members of a workspace with their roles.
    fn workspace_members<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<WorkspaceMember>>;

    /// The groups of a workspace.
    fn groups<'a>(&'a self, workspace: &'a WorkspaceSlug) -> StoreFuture<'a, Vec<Group>>;

    /// The members of each group of a workspace (groups without members are left out).
    fn group_members<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<GroupMembers>>;

    /// The explicit user and group permissions on the projects of a workspace.
    fn project_permissions<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<ProjectPermission>>;

    /// The explicit user and group permissions on the repositories of a workspace.
    fn repository_permissions<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<RepositoryPermission>>;

    /// Everything [`crate::domain::effective_access`] needs for one workspace.
    fn workspace_facts<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, WorkspaceFacts>;

    /// The part of [`Store::workspace_facts`] that one repository's effective access rests on
    /// (its permissions, its project's, the groups they name, the owners, every member when it
    /// is public), `None` when the repository is not stored. The domain's rules give the same
    /// answer for the repository on these as on the whole workspace.
    fn repository_facts<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
        repository: &'a RepoSlug,
    ) -> StoreFuture<'a, Option<WorkspaceFacts>>;

    /// The part of [`Store::workspace_facts`] that one account's effective access rests on (its
    /// membership, its groups, their and its own permissions, the repositories these reach).
    fn account_facts<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
        account: &'a AccountId,
    ) -> StoreFuture<'a, WorkspaceFacts>;

    /// The stored accounts among `ids`, each with the email its identity was matched to.
    fn accounts_with_emails<'a>(
        &'a self,
        ids: &'a [AccountId],
    ) -> StoreFuture<'a, Vec<(Account, Option<String>)>>;

    /// The status of each of these listings, ordered as [`Store::listings_by_age`] orders its
    /// answer (never read first, in the order given, then the oldest read first).
    fn listing_statuses<'a>(
        &'a self,
        keys: &'a [ListingKey],
    ) -> StoreFuture<'a, Vec<ListingStatus>>;

    /// Every known account.
    fn accounts(&self) -> StoreFuture<'_, Vec<Account>>;

    /// One account by its id.
    fn account<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, Option<Account>>;

    /// The account an email was matched to (case-insensitive), if any.
    fn account_by_email<'a>(&'a self, email: &'a str) -> StoreFuture<'a, Option<Account>>;

    // ----- Identities -----

    /// Records or replaces the identity match of an account.
    fn upsert_identity<'a>(&'a self, identity: &'a Identity) -> StoreFuture<'a, ()>;

    /// Every identity match.
    fn identities(&self) -> StoreFuture<'_, Vec<Identity>>;

    /// Records or replaces the identities of these accounts and appends the audit entries of
    /// their changes, in one transaction.
    fn replace_identities<'a>(
        &'a self,
        identities: &'a [Identity],
        changes: &'a [NewAuditEntry],
    ) -> StoreFuture<'a, ()>;

    /// Records that an identity refresh ran.
    fn record_identity_refresh<'a>(&'a self, refresh: &'a IdentityRefresh) -> StoreFuture<'a, ()>;

    /// The last identity refresh, if any ran.
    fn last_identity_refresh(&self) -> StoreFuture<'_, Option<IdentityRefresh>>;

    // ----- Sync runs -----

    /// Records the start of a sync run with no owner (its lease counts as expired at once).
    /// The sync itself uses [`Store::claim_sync_run`].
    fn start_sync_run<'a>(
        &'a self,
        started_at: DateTime<Utc>,
        workspaces: &'a [WorkspaceSlug],
    ) -> StoreFuture<'a, SyncRunId>;

    /// Atomically claims the requested workspaces that no run with a live lease holds: takes
    /// over the most recent interrupted run when its lease has passed, it covers exactly those
    /// workspaces and it started after `resume_after`; else starts a new run. Two claims never
    /// interleave, so two syncs started together never both resume a run or both hold a
    /// workspace.
    fn claim_sync_run<'a>(&'a self, request: &'a ClaimRequest) -> StoreFuture<'a, ClaimOutcome>;

    /// Renews a run's lease and adds the requests sent since the last heartbeat to the bucket
    /// of its minute. Returns `false`, changing nothing, when the caller no longer owns the run.
    fn heartbeat_sync_run<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, bool>;

    /// Records the end of a sync run, ends its lease, and counts the requests of
    /// `finish.requests_used` its heartbeats have not counted yet.
    fn finish_sync_run<'a>(
        &'a self,
        run: SyncRunId,
        finish: &'a SyncRunFinish,
    ) -> StoreFuture<'a, ()>;

    /// The most recent sync run, finished or not.
    fn last_sync_run(&self) -> StoreFuture<'_, Option<SyncRun>>;

    /// The most recent sync run that never finished (running, or interrupted).
    fn unfinished_sync_run(&self) -> StoreFuture<'_, Option<SyncRun>>;

    /// Requests counted by sync runs from the minute holding `since` on, except those of run
    /// `excluding`: what other runs and processes spent of the rolling hour.
    fn requests_since(
        &self,
        since: DateTime<Utc>,
        excluding: Option<SyncRunId>,
    ) -> StoreFuture<'_, u64>;

    /// The listings a run has completed (passed to `replace_listing` with `run` set), so a
    /// resumed run can skip them.
    fn completed_listings(&self, run: SyncRunId) -> StoreFuture<'_, Vec<ListingKey>>;

    // ----- Job leases (`serve`) -----

    /// Takes a job's lease when nobody holds it, its lease has passed, or the caller already
    /// holds it (compare-and-set: two processes never both take it); else says who holds it.
    fn acquire_job_lease<'a>(&'a self, request: &'a JobLeaseRequest)
        -> StoreFuture<'a, LeaseClaim>;

    /// Renews a lease the caller holds; `false`, changing nothing, when it holds it no more.
    fn renew_job_lease<'a>(&'a self, request: &'a JobLeaseRequest) -> StoreFuture<'a, bool>;

    /// Ends a lease the caller holds (at `at`), so another process may take it at once.
    fn release_job_lease<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;

    /// Every job lease, held or passed, by job name.
    fn job_leases(&self) -> StoreFuture<'_, Vec<JobLease>>;

    /// The number of grants in each state (states as stored, so a new state shows up as is).
    fn grant_counts(&self) -> StoreFuture<'_, BTreeMap<String, u64>>;

    /// When each workspace's last finished sync run ended (among the recent runs).
    fn last_sync_by_workspace(&self) -> StoreFuture<'_, BTreeMap<WorkspaceSlug, DateTime<Utc>>>;

    /// When each workspace's oldest stored listing was read.
    fn oldest_read_by_workspace(&self) -> StoreFuture<'_, BTreeMap<WorkspaceSlug, DateTime<Utc>>>;

    // ----- Grants -----

    /// Records a grant and returns it with its id.
    fn insert_grant<'a>(&'a self, grant: &'a NewGrant) -> StoreFuture<'a, Grant>;

    /// One grant by id.
    fn grant(&self, id: GrantId) -> StoreFuture<'_, Option<Grant>>;

    /// Moves a grant from `from` to `to` if it is still in `from`; returns whether it moved.
    /// Compare-and-set, so two instances cannot both apply the same expiry.
    fn transition_grant(
        &self,
        id: GrantId,
        from: GrantState,
        to: GrantState,
        at: DateTime<Utc>,
    ) -> StoreFuture<'_, bool>;

    /// Every grant in force (active or satisfied).
    fn active_grants(&self) -> StoreFuture<'_, Vec<Grant>>;

    /// Grants in force whose expiry is at or before `now`.
    fn grants_due(&self, now: DateTime<Utc>) -> StoreFuture<'_, Vec<Grant>>;

    /// Records a grant with its audit entries (and a freshly read slot baseline) in one
    /// transaction.
    fn record_grant<'a>(&'a self, record: &'a GrantRecord) -> StoreFuture<'a, Grant>;

    /// Applies one step of a grant if it is still in `step.from`: its state, the slot's level and
    /// explicit-permission fact, and its audit entries, in one transaction. Returns whether it
    /// moved.
    fn step_grant<'a>(&'a self, step: &'a GrantStep) -> StoreFuture<'a, bool>;

    /// Records a change to a slot made outside any grant, with its audit entries.
    fn record_slot_change<'a>(
        &'a self,
        change: &'a SlotChange,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()>;

    /// One slot's baseline, level and lease.
    fn grant_slot<'a>(&'a self, slot: &'a SlotKey) -> StoreFuture<'a, Option<GrantSlot>>;

    /// Takes the slot's lease if it is free, lapsed at `now`, or already `owner`'s.
    fn lock_grant_slot<'a>(
        &'a self,
        slot: &'a SlotKey,
        owner: &'a str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreFuture<'a, bool>;

    /// Gives the slot's lease back (if `owner` holds it).
    fn unlock_grant_slot<'a>(&'a self, slot: &'a SlotKey, owner: &'a str) -> StoreFuture<'a, ()>;

    /// The slot's grants that are not over (pending, in force, ending), oldest first.
    fn slot_grants<'a>(&'a self, slot: &'a SlotKey) -> StoreFuture<'a, Vec<Grant>>;

    /// Claims the grants to act on now (see [`GrantClaim`]); on PostgreSQL with
    /// `FOR UPDATE SKIP LOCKED`, so two workers never claim one grant.
    fn claim_grants<'a>(&'a self, claim: &'a GrantClaim) -> StoreFuture<'a, Vec<Grant>>;

    /// When the next grant falls due (an end, a lapsed claim, a retry), if any.
    fn next_grant_event(&self) -> StoreFuture<'_, Option<DateTime<Utc>>>;

    /// Grants matching the filter, oldest first.
    fn list_grants<'a>(&'a self, filter: &'a GrantFilter) -> StoreFuture<'a, Vec<Grant>>;

    /// Claims an idempotency key for a request whose body has `fingerprint`, or reports the
    /// earlier request that holds it.
    fn claim_idempotency_key<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        fingerprint: &'a str,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, IdempotencyClaim>;

    /// Records the grant a claimed key's request made.
    fn bind_idempotency_key<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        grant: GrantId,
    ) -> StoreFuture<'a, ()>;

    /// Gives back a claimed key whose request made no grant (it was refused), so a corrected
    /// retry may use it.
    fn release_idempotency_key<'a>(&'a self, key: &'a IdempotencyKey) -> StoreFuture<'a, ()>;

    /// The organization's events cursor and own account, if any poll stored them.
    fn org_cursor<'a>(&'a self, org_id: &'a str) -> StoreFuture<'a, Option<OrgCursor>>;

    /// Moves the organization's events cursor by compare-and-set; `false` when the stored
    /// cursor is no longer the one the poll started from (another instance moved it).
    fn advance_org_cursor<'a>(&'a self, advance: &'a CursorAdvance) -> StoreFuture<'a, bool>;

    /// Records the connector's own Bitbucket account for the organization's events.
    fn set_org_own_account<'a>(
        &'a self,
        org_id: &'a str,
        account_id: &'a str,
        at: DateTime<Utc>,
        by: &'a str,
    ) -> StoreFuture<'a, ()>;

    /// Registers `owner` as the expiry watcher until `until`; returns the other holder when one
    /// holds a lease that has not lapsed.
    fn acquire_grant_watcher<'a>(
        &'a self,
        owner: &'a str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreFuture<'a, Option<String>>;

    /// Removes `owner`'s watcher registration.
    fn release_grant_watcher<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, ()>;

    // ----- Audit -----

    /// Appends an entry to the audit log.
    fn append_audit<'a>(&'a self, entry: &'a NewAuditEntry) -> StoreFuture<'a, AuditId>;

    /// Lists audit entries, oldest first.
    fn list_audit<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Vec<AuditEntry>>;

    /// Up to `limit` audit entries after `after` (from the first when `None`), by id, each with
    /// its links in the hash chain (for `audit verify`).
    fn audit_chain(
        &self,
        after: Option<AuditId>,
        limit: u64,
    ) -> StoreFuture<'_, Vec<ChainedAuditEntry>>;

    // ----- Audit reports -----

    /// Stores an audit report and appends `entry` (its audit-log record), in one transaction.
    fn record_audit_run<'a>(
        &'a self,
        run: &'a NewAuditRun,
        entry: &'a NewAuditEntry,
    ) -> StoreFuture<'a, AuditRunId>;

    /// Every stored audit report, oldest first.
    fn audit_runs(&self) -> StoreFuture<'_, Vec<AuditRun>>;

    /// The newest stored audit report, if any.
    fn last_audit_run(&self) -> StoreFuture<'_, Option<AuditRun>>;

    /// The sync runs that last read a listing of these workspaces (all when empty), by id.
    fn sync_runs_behind<'a>(
        &'a self,
        workspaces: &'a [WorkspaceSlug],
    ) -> StoreFuture<'a, Vec<SyncRun>>;
}
