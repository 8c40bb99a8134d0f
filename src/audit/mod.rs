//! Permission audits: the report identity teams and auditors use, with tamper-evident history.
//!
//! [`build`] reads the store (never Bitbucket) and assembles an [`Audit`]: a [`Report`] with the
//! administrators, identity findings, drift since the previous report, grants, policy findings
//! and the freshness of the facts, and the effective access [`Matrix`] (from [`crate::access`],
//! the domain's rules), which is never held whole: its rows are computed a batch of
//! repositories at a time, once for the report's counts, findings and the matrix's hash, and
//! again while the files are written. Every finding has a stable snake_case [`FindingKind`], a
//! [`Severity`] and its subjects. The report names the previous stored report's SHA-256 and
//! lists new and resolved findings; [`history::record`] stores it (without the matrix's rows)
//! and [`history::latest`] reads the newest stored one back with its files. The renderers
//! (`render_*`) write an audit as JSON, CSV (one file per section), Markdown and a
//! self-contained HTML page, taking the matrix's rows as they come. [`verify`] checks the audit
//! log's hash chain and every stored report.
//!
//! Time comes only from the [`Clock`] passed in.

mod cells;
pub mod history;
mod matrix;
mod model;
pub mod render_csv;
pub mod render_html;
pub mod render_json;
pub mod render_md;
mod sections_access;
mod sections_history;
pub mod verify;

use std::collections::{BTreeSet, HashMap};

use crate::clock::Clock;
use crate::config::{AuditPolicy, GrantPolicy};
use crate::domain::{Identity, WorkspaceSlug};
use crate::store::{AuditFilter, AuditKind, GrantFilter, Store, StoreError};

pub use history::{latest, record, LatestReport};
pub use matrix::{Matrix, DEFAULT_REPOSITORIES_PER_BATCH};
pub use model::{
    AdminRow, AdminScope, Changes, DriftRow, DriftSection, FailedListing, Finding, FindingKind,
    Freshness, GrantCategory, GrantRow, MatrixRow, PolicyUsed, PreviousReport, Report, Severity,
    Summary, SyncRunRef, REPORT_VERSION,
};

/// Why an audit could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A workspace asked for is not in the store.
    #[error("workspace {workspace:?} is not in the store (stored: {known}); check the slug, or run `bitbucket-access sync` first")]
    UnknownWorkspace {
        /// The slug asked for.
        workspace: String,
        /// The stored workspaces, comma separated.
        known: String,
    },
    /// The previous stored report cannot be read.
    #[error("the stored audit report {id} cannot be read ({detail}); run `bitbucket-access audit verify`")]
    PreviousReport {
        /// Its id.
        id: i64,
        /// What is wrong.
        detail: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What to audit and by which rules.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The workspaces to audit; empty: every stored workspace.
    pub workspaces: Vec<String>,
    /// `audit_policy`.
    pub policy: AuditPolicy,
    /// `grant_policy` (for grants longer than it allows).
    pub grant_policy: GrantPolicy,
}

fn policy_used(settings: &AuditSettings) -> PolicyUsed {
    let p = &settings.policy;
    PolicyUsed {
        allowed_email_domains: p.allowed_email_domains.clone(),
        max_admins_per_repository: p.max_admins_per_repository,
        max_workspace_owners: p.max_workspace_owners,
        flag_unmatched_accounts: p.flag_unmatched_accounts,
        flag_direct_user_permissions: p.flag_direct_user_permissions,
        expired_grant_grace_seconds: p.expired_grant_grace.as_secs(),
        max_grant_duration_seconds: settings.grant_policy.max_duration.as_secs(),
        allow_standing_grants: settings.grant_policy.allow_standing_grants,
    }
}

/// The workspaces to audit, each checked against the store.
async fn workspaces(
    store: &dyn Store,
    wanted: &[String],
) -> Result<Vec<WorkspaceSlug>, AuditError> {
    let stored: Vec<WorkspaceSlug> = store
        .workspaces()
        .await?
        .into_iter()
        .map(|w| w.slug)
        .collect();
    if wanted.is_empty() {
        return Ok(stored);
    }
    wanted
        .iter()
        .map(|w| {
            stored
                .iter()
                .find(|s| s.as_str() == w)
                .cloned()
                .ok_or_else(|| AuditError::UnknownWorkspace {
                    workspace: w.clone(),
                    known: stored
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

/// A built audit: the sealed report (every section but the matrix's rows, with the matrix's
/// hash) and the matrix, whose rows are computed again, a batch at a time, as they are written.
/// Derefs to its [`Report`].
#[derive(Debug)]
pub struct Audit {
    /// The report.
    pub report: Report,
    /// The effective access matrix, streamed.
    pub matrix: Matrix,
}

impl std::ops::Deref for Audit {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.report
    }
}

/// Builds a sealed report from the store. Stores nothing: see [`record`].
pub async fn build(
    store: &dyn Store,
    clock: &dyn Clock,
    settings: &AuditSettings,
) -> Result<Audit, AuditError> {
    build_in_batches(store, clock, settings, DEFAULT_REPOSITORIES_PER_BATCH).await
}

/// [`build`] with the matrix computed `repositories_per_batch` repositories at a time. The
/// report does not depend on the batch size (a test holds this); only the memory a batch takes
/// does.
pub async fn build_in_batches(
    store: &dyn Store,
    clock: &dyn Clock,
    settings: &AuditSettings,
    repositories_per_batch: usize,
) -> Result<Audit, AuditError> {
    // Microseconds: the precision both backends keep, so the stored time equals the report's.
    let now = clock.now();
    let now = chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let policy = policy_used(settings);
    let slugs = workspaces(store, &settings.workspaces).await?;
    let previous = history::previous(store).await?;
    let previous_at = previous.as_ref().map(|p| p.report.generated_at);

    let names = crate::access::account_names(store).await?;
    let identities: HashMap<String, Identity> = store
        .identities()
        .await?
        .into_iter()
        .map(|i| (i.account_id.to_string(), i))
        .collect();

    // One store read per workspace; the facts stay for the matrix's second pass (the files)
    // and for the grants section.
    let mut matrix = Matrix::new(names, repositories_per_batch);
    let mut access = sections_access::AccessSections::new();
    let mut completeness = Vec::new();
    for ws in &slugs {
        let facts = store.workspace_facts(ws).await?;
        completeness.push((
            ws.clone(),
            crate::access::workspace_completeness(store, ws).await?,
        ));
        access.workspace(ws, &facts, matrix.names(), &settings.policy);
        for repositories in matrix.batches_of(&facts) {
            let rows = matrix.access_rows(ws, &facts, &repositories);
            access.batch(
                ws,
                &facts,
                &repositories,
                &rows,
                matrix.names(),
                &settings.policy,
            );
        }
        matrix.push(ws.clone(), facts);
    }
    let mut findings = std::mem::take(&mut access.findings);
    findings.extend(access.identity_findings(&identities, &settings.policy));

    let drift_entries = store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Drift],
            since: previous_at,
            ..AuditFilter::default()
        })
        .await?;
    let audited: BTreeSet<WorkspaceSlug> = slugs.iter().cloned().collect();
    let (drift_rows, drift_findings) = sections_history::drift(drift_entries, &audited);
    findings.extend(drift_findings);

    let grants = store.list_grants(&GrantFilter::default()).await?;
    let (grant_rows, grant_findings) =
        sections_history::grants(&grants, previous_at, now, &policy, matrix.facts());
    findings.extend(grant_findings);

    let runs = store.sync_runs_behind(&slugs).await?;
    let (freshness, freshness_findings) = sections_history::freshness(completeness, runs, now);
    findings.extend(freshness_findings);

    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.kind.cmp(&b.kind))
            .then(a.id.cmp(&b.id))
    });
    findings.dedup_by(|a, b| a.id == b.id);
    let changes = history::changes(&findings, previous.as_ref().map(|p| p.findings.as_slice()));
    let summary = summary(&findings, access.access_rows, access.accounts_with_access());
    let administrators = std::mem::take(&mut access.administrators);
    let mut report = Report {
        report_version: REPORT_VERSION,
        generated_at: now,
        workspaces: slugs.iter().map(ToString::to_string).collect(),
        policy,
        previous: previous.map(|p| p.report),
        summary,
        findings,
        changes,
        access_matrix_sha256: access.matrix_sha256(),
        administrators,
        drift: DriftSection {
            since: previous_at,
            entries: drift_rows,
        },
        grants: grant_rows,
        freshness,
        sha256: String::new(),
    };
    report.seal();
    Ok(Audit { report, matrix })
}

fn summary(findings: &[Finding], access_rows: u64, accounts_with_access: u64) -> Summary {
    let mut s = Summary {
        findings: findings.len() as u64,
        access_rows,
        accounts_with_access,
        ..Summary::default()
    };
    for f in findings {
        *s.by_kind.entry(f.kind.as_str().to_owned()).or_default() += 1;
        *s.by_severity
            .entry(f.severity.as_str().to_owned())
            .or_default() += 1;
    }
    s
}

/// Whether the report has a finding of any of these kinds (for `--fail-on`).
pub fn has_any(report: &Report, kinds: &[FindingKind]) -> Vec<FindingKind> {
    let present: BTreeSet<FindingKind> = report.findings.iter().map(|f| f.kind).collect();
    kinds
        .iter()
        .copied()
        .filter(|k| present.contains(k))
        .collect()
}
