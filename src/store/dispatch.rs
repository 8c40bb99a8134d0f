//! `SqlStore`'s side of the [`Store`] contract: each operation handed to the backend module
//! (`sqlite` or `postgres`) that matches the pool the store was opened with. The contract itself,
//! with what each operation promises, is in `mod.rs`.

use super::*;

/// Calls the same function of the backend module that matches the pool.
macro_rules! dispatch {
    ($self:ident, $func:ident ( $($arg:expr),* )) => {
        Box::pin(async move {
            match &$self.pool {
                Pool::Sqlite(pool) => sqlite::$func(pool $(, $arg)*).await,
                Pool::Postgres(pool) => postgres::$func(pool $(, $arg)*).await,
            }
        })
    };
}

impl Store for SqlStore {
    fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrate(&self) -> StoreFuture<'_, ()> {
        let url = &self.url;
        Box::pin(async move {
            match &self.pool {
                Pool::Sqlite(pool) => sqlite::migrate(pool, url).await,
                Pool::Postgres(pool) => postgres::migrate(pool, url).await,
            }
        })
    }

    fn health(&self) -> StoreFuture<'_, StoreHealth> {
        Box::pin(async move { Ok(self.probe_health().await) })
    }

    fn check_file(&self) -> Result<(), StoreError> {
        self.file.as_ref().map_or(Ok(()), file::FileIdentity::check)
    }

    fn replace_listing(&self, request: ReplaceListing) -> StoreFuture<'_, ReplaceOutcome> {
        Box::pin(async move {
            // A replace into a file that is no longer the store would be lost without a trace.
            self.check_file()?;
            match &self.pool {
                Pool::Sqlite(pool) => sqlite::replace_listing(pool, request).await,
                Pool::Postgres(pool) => postgres::replace_listing(pool, request).await,
            }
        })
    }

    fn replace_listings(
        &self,
        requests: Vec<ReplaceListing>,
    ) -> StoreFuture<'_, Vec<ReplaceOutcome>> {
        Box::pin(async move {
            self.check_file()?;
            match &self.pool {
                Pool::Sqlite(pool) => sqlite::replace_listings(pool, requests).await,
                Pool::Postgres(pool) => postgres::replace_listings(pool, requests).await,
            }
        })
    }

    fn listing_freshness<'a>(
        &'a self,
        key: &'a ListingKey,
    ) -> StoreFuture<'a, Option<ListingFreshness>> {
        dispatch!(self, listing_freshness(key))
    }

    fn listings_by_age<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<ListingStatus>> {
        dispatch!(self, listings_by_age(workspace))
    }

    fn save_listing_cursor<'a>(
        &'a self,
        key: &'a ListingKey,
        cursor: Option<&'a str>,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, save_listing_cursor(key, cursor))
    }

    fn record_listing_failure<'a>(
        &'a self,
        key: &'a ListingKey,
        at: DateTime<Utc>,
        message: &'a str,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, record_listing_failure(key, at, message))
    }

    fn listing_failures<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<ListingFailure>> {
        dispatch!(self, listing_failures(workspace))
    }

    fn sweep_refusal<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Option<SweepRefusal>> {
        dispatch!(self, sweep_refusal(workspace))
    }

    fn set_sweep_refusal<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
        refusal: Option<&'a SweepRefusal>,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, set_sweep_refusal(workspace, refusal))
    }

    fn workspaces(&self) -> StoreFuture<'_, Vec<Workspace>> {
        dispatch!(self, workspaces())
    }

    fn projects<'a>(&'a self, workspace: &'a WorkspaceSlug) -> StoreFuture<'a, Vec<Project>> {
        dispatch!(self, projects(workspace))
    }

    fn repositories<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<Repository>> {
        dispatch!(self, repositories(workspace))
    }

    fn workspace_members<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<WorkspaceMember>> {
        dispatch!(self, workspace_members(workspace))
    }

    fn groups<'a>(&'a self, workspace: &'a WorkspaceSlug) -> StoreFuture<'a, Vec<Group>> {
        dispatch!(self, groups(workspace))
    }

    fn group_members<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<GroupMembers>> {
        dispatch!(self, group_members(workspace))
    }

    fn project_permissions<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<ProjectPermission>> {
        dispatch!(self, project_permissions(workspace))
    }

    fn repository_permissions<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, Vec<RepositoryPermission>> {
        dispatch!(self, repository_permissions(workspace))
    }

    fn workspace_facts<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
    ) -> StoreFuture<'a, WorkspaceFacts> {
        dispatch!(self, workspace_facts(workspace))
    }

    fn repository_facts<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
        repository: &'a RepoSlug,
    ) -> StoreFuture<'a, Option<WorkspaceFacts>> {
        dispatch!(self, repository_facts(workspace, repository))
    }

    fn account_facts<'a>(
        &'a self,
        workspace: &'a WorkspaceSlug,
        account: &'a AccountId,
    ) -> StoreFuture<'a, WorkspaceFacts> {
        dispatch!(self, account_facts(workspace, account))
    }

    fn accounts_with_emails<'a>(
        &'a self,
        ids: &'a [AccountId],
    ) -> StoreFuture<'a, Vec<(Account, Option<String>)>> {
        dispatch!(self, accounts_with_emails(ids))
    }

    fn listing_statuses<'a>(
        &'a self,
        keys: &'a [ListingKey],
    ) -> StoreFuture<'a, Vec<ListingStatus>> {
        dispatch!(self, listing_statuses(keys))
    }

    fn accounts(&self) -> StoreFuture<'_, Vec<Account>> {
        dispatch!(self, accounts())
    }

    fn account<'a>(&'a self, id: &'a AccountId) -> StoreFuture<'a, Option<Account>> {
        dispatch!(self, account(id))
    }

    fn account_by_email<'a>(&'a self, email: &'a str) -> StoreFuture<'a, Option<Account>> {
        dispatch!(self, account_by_email(email))
    }

    fn upsert_identity<'a>(&'a self, identity: &'a Identity) -> StoreFuture<'a, ()> {
        dispatch!(self, upsert_identity(identity))
    }

    fn identities(&self) -> StoreFuture<'_, Vec<Identity>> {
        dispatch!(self, identities())
    }

    fn replace_identities<'a>(
        &'a self,
        identities: &'a [Identity],
        changes: &'a [NewAuditEntry],
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, replace_identities(identities, changes))
    }

    fn record_identity_refresh<'a>(&'a self, refresh: &'a IdentityRefresh) -> StoreFuture<'a, ()> {
        dispatch!(self, record_identity_refresh(refresh))
    }

    fn last_identity_refresh(&self) -> StoreFuture<'_, Option<IdentityRefresh>> {
        dispatch!(self, last_identity_refresh())
    }

    fn start_sync_run<'a>(
        &'a self,
        started_at: DateTime<Utc>,
        workspaces: &'a [WorkspaceSlug],
    ) -> StoreFuture<'a, SyncRunId> {
        dispatch!(self, start_sync_run(started_at, workspaces))
    }

    fn claim_sync_run<'a>(&'a self, request: &'a ClaimRequest) -> StoreFuture<'a, ClaimOutcome> {
        dispatch!(self, claim_sync_run(request))
    }

    fn heartbeat_sync_run<'a>(&'a self, beat: &'a Heartbeat) -> StoreFuture<'a, bool> {
        dispatch!(self, heartbeat_sync_run(beat))
    }

    fn finish_sync_run<'a>(
        &'a self,
        run: SyncRunId,
        finish: &'a SyncRunFinish,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, finish_sync_run(run, finish))
    }

    fn last_sync_run(&self) -> StoreFuture<'_, Option<SyncRun>> {
        dispatch!(self, last_sync_run(false))
    }

    fn unfinished_sync_run(&self) -> StoreFuture<'_, Option<SyncRun>> {
        dispatch!(self, last_sync_run(true))
    }

    fn requests_since(
        &self,
        since: DateTime<Utc>,
        excluding: Option<SyncRunId>,
    ) -> StoreFuture<'_, u64> {
        dispatch!(self, requests_since(since, excluding))
    }

    fn completed_listings(&self, run: SyncRunId) -> StoreFuture<'_, Vec<ListingKey>> {
        dispatch!(self, completed_listings(run))
    }

    fn acquire_job_lease<'a>(
        &'a self,
        request: &'a JobLeaseRequest,
    ) -> StoreFuture<'a, LeaseClaim> {
        dispatch!(self, acquire_job_lease(request))
    }

    fn renew_job_lease<'a>(&'a self, request: &'a JobLeaseRequest) -> StoreFuture<'a, bool> {
        dispatch!(self, renew_job_lease(request))
    }

    fn release_job_lease<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, release_job_lease(job, holder, at))
    }

    fn job_leases(&self) -> StoreFuture<'_, Vec<JobLease>> {
        dispatch!(self, job_leases())
    }

    fn grant_counts(&self) -> StoreFuture<'_, BTreeMap<String, u64>> {
        dispatch!(self, grant_counts())
    }

    fn last_sync_by_workspace(&self) -> StoreFuture<'_, BTreeMap<WorkspaceSlug, DateTime<Utc>>> {
        dispatch!(self, last_sync_by_workspace())
    }

    fn oldest_read_by_workspace(&self) -> StoreFuture<'_, BTreeMap<WorkspaceSlug, DateTime<Utc>>> {
        dispatch!(self, oldest_read_by_workspace())
    }

    fn insert_grant<'a>(&'a self, grant: &'a NewGrant) -> StoreFuture<'a, Grant> {
        dispatch!(self, insert_grant(grant))
    }

    fn grant(&self, id: GrantId) -> StoreFuture<'_, Option<Grant>> {
        dispatch!(self, grant(id))
    }

    fn transition_grant(
        &self,
        id: GrantId,
        from: GrantState,
        to: GrantState,
        at: DateTime<Utc>,
    ) -> StoreFuture<'_, bool> {
        dispatch!(self, transition_grant(id, from, to, at))
    }

    fn active_grants(&self) -> StoreFuture<'_, Vec<Grant>> {
        dispatch!(self, grants_in_state(GrantState::IN_FORCE, None))
    }

    fn grants_due(&self, now: DateTime<Utc>) -> StoreFuture<'_, Vec<Grant>> {
        dispatch!(self, grants_in_state(GrantState::IN_FORCE, Some(now)))
    }

    fn record_grant<'a>(&'a self, record: &'a GrantRecord) -> StoreFuture<'a, Grant> {
        dispatch!(self, record_grant(record))
    }

    fn step_grant<'a>(&'a self, step: &'a GrantStep) -> StoreFuture<'a, bool> {
        dispatch!(self, step_grant(step))
    }

    fn record_slot_change<'a>(
        &'a self,
        change: &'a SlotChange,
        at: DateTime<Utc>,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, record_slot_change(change, at))
    }

    fn grant_slot<'a>(&'a self, slot: &'a SlotKey) -> StoreFuture<'a, Option<GrantSlot>> {
        dispatch!(self, grant_slot(slot))
    }

    fn lock_grant_slot<'a>(
        &'a self,
        slot: &'a SlotKey,
        owner: &'a str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreFuture<'a, bool> {
        dispatch!(self, lock_grant_slot(slot, owner, now, until))
    }

    fn unlock_grant_slot<'a>(&'a self, slot: &'a SlotKey, owner: &'a str) -> StoreFuture<'a, ()> {
        dispatch!(self, unlock_grant_slot(slot, owner))
    }

    fn slot_grants<'a>(&'a self, slot: &'a SlotKey) -> StoreFuture<'a, Vec<Grant>> {
        dispatch!(self, slot_grants(slot))
    }

    fn claim_grants<'a>(&'a self, claim: &'a GrantClaim) -> StoreFuture<'a, Vec<Grant>> {
        dispatch!(self, claim_grants(claim))
    }

    fn next_grant_event(&self) -> StoreFuture<'_, Option<DateTime<Utc>>> {
        dispatch!(self, next_grant_event())
    }

    fn list_grants<'a>(&'a self, filter: &'a GrantFilter) -> StoreFuture<'a, Vec<Grant>> {
        dispatch!(self, list_grants(filter))
    }

    fn claim_idempotency_key<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        fingerprint: &'a str,
        now: DateTime<Utc>,
    ) -> StoreFuture<'a, IdempotencyClaim> {
        dispatch!(self, claim_idempotency_key(key, fingerprint, now))
    }

    fn bind_idempotency_key<'a>(
        &'a self,
        key: &'a IdempotencyKey,
        grant: GrantId,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, bind_idempotency_key(key, grant))
    }

    fn release_idempotency_key<'a>(&'a self, key: &'a IdempotencyKey) -> StoreFuture<'a, ()> {
        dispatch!(self, release_idempotency_key(key))
    }

    fn org_cursor<'a>(&'a self, org_id: &'a str) -> StoreFuture<'a, Option<OrgCursor>> {
        dispatch!(self, org_cursor(org_id))
    }

    fn advance_org_cursor<'a>(&'a self, advance: &'a CursorAdvance) -> StoreFuture<'a, bool> {
        dispatch!(self, advance_org_cursor(advance))
    }

    fn set_org_own_account<'a>(
        &'a self,
        org_id: &'a str,
        account_id: &'a str,
        at: DateTime<Utc>,
        by: &'a str,
    ) -> StoreFuture<'a, ()> {
        dispatch!(self, set_org_own_account(org_id, account_id, at, by))
    }

    fn acquire_grant_watcher<'a>(
        &'a self,
        owner: &'a str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> StoreFuture<'a, Option<String>> {
        dispatch!(self, acquire_grant_watcher(owner, now, until))
    }

    fn release_grant_watcher<'a>(&'a self, owner: &'a str) -> StoreFuture<'a, ()> {
        dispatch!(self, release_grant_watcher(owner))
    }

    fn append_audit<'a>(&'a self, entry: &'a NewAuditEntry) -> StoreFuture<'a, AuditId> {
        dispatch!(self, append_audit(entry))
    }

    fn list_audit<'a>(&'a self, filter: &'a AuditFilter) -> StoreFuture<'a, Vec<AuditEntry>> {
        dispatch!(self, list_audit(filter))
    }

    fn audit_chain(
        &self,
        after: Option<AuditId>,
        limit: u64,
    ) -> StoreFuture<'_, Vec<ChainedAuditEntry>> {
        dispatch!(self, audit_chain(after, limit))
    }

    fn record_audit_run<'a>(
        &'a self,
        run: &'a NewAuditRun,
        entry: &'a NewAuditEntry,
    ) -> StoreFuture<'a, AuditRunId> {
        dispatch!(self, record_audit_run(run, entry))
    }

    fn audit_runs(&self) -> StoreFuture<'_, Vec<AuditRun>> {
        dispatch!(self, audit_runs(false))
    }

    fn last_audit_run(&self) -> StoreFuture<'_, Option<AuditRun>> {
        Box::pin(async move {
            let runs = match &self.pool {
                Pool::Sqlite(pool) => sqlite::audit_runs(pool, true).await?,
                Pool::Postgres(pool) => postgres::audit_runs(pool, true).await?,
            };
            Ok(runs.into_iter().next())
        })
    }

    fn sync_runs_behind<'a>(
        &'a self,
        workspaces: &'a [WorkspaceSlug],
    ) -> StoreFuture<'a, Vec<SyncRun>> {
        dispatch!(self, sync_runs_behind(workspaces))
    }
}
