//! Permission audits: the report identity teams and auditors use, with tamper-evident history.
//!
//! [`build`] reads the store (never Bitbucket) and assembles a [`Report`]: the effective access
//! matrix (from [`crate::access`], the domain's rules), administrators, identity findings, drift
//! since the previous report, grants, policy findings and the freshness of the facts. Every
//! finding has a stable snake_case [`FindingKind`], a [`Severity`] and its subjects. The report
//! names the previous stored report's SHA-256 and lists new and resolved findings;
//! [`history::record`] stores it. The renderers (`render_*`) turn one report into JSON, CSV (one
//! file per section), Markdown and a self-contained HTML page. [`verify`] checks the audit log's
//! hash chain and every stored report.
//!
//! Time comes only from the [`Clock`] passed in.

mod cells;
pub mod history;
mod model;
pub mod render_csv;
pub mod render_html;
pub mod render_json;
pub mod render_md;
mod sections_access;
mod sections_history;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::clock::Clock;
use crate::config::{AuditPolicy, GrantPolicy};
use crate::domain::{Identity, WorkspaceSlug};
use crate::store::{AuditFilter, AuditKind, GrantFilter, Store, StoreError};

pub use history::record;
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

/// Builds a sealed report from the store. Stores nothing: see [`record`].
pub async fn build(
    store: &dyn Store,
    clock: &dyn Clock,
    settings: &AuditSettings,
) -> Result<Report, AuditError> {
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

    let mut findings = Vec::new();
    let mut matrix = Vec::new();
    let mut administrators = Vec::new();
    let mut completeness = Vec::new();
    let mut facts_by_ws = BTreeMap::new();
    let mut interner = model::Interner::default();
    for ws in &slugs {
        let facts = store.workspace_facts(ws).await?;
        let answer = crate::access::for_workspace(store, ws, &facts, &names).await?;
        let section = sections_access::workspace_sections(
            ws,
            &facts,
            answer.rows,
            &names,
            &settings.policy,
            &mut interner,
        );
        matrix.extend(section.matrix);
        administrators.extend(section.administrators);
        findings.extend(section.findings);
        completeness.push((ws.clone(), answer.completeness));
        facts_by_ws.insert(ws.clone(), facts);
    }
    findings.extend(sections_access::identity_findings(
        &matrix,
        &identities,
        &settings.policy,
    ));

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
        sections_history::grants(&grants, previous_at, now, &policy, &facts_by_ws);
    findings.extend(grant_findings);
    drop(facts_by_ws);

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
    let summary = summary(&findings, &matrix);
    let mut report = Report {
        report_version: REPORT_VERSION,
        generated_at: now,
        workspaces: slugs.iter().map(ToString::to_string).collect(),
        policy,
        previous: previous.map(|p| p.report),
        summary,
        findings,
        changes,
        access_matrix: matrix,
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
    Ok(report)
}

fn summary(findings: &[Finding], matrix: &[MatrixRow]) -> Summary {
    let mut s = Summary {
        findings: findings.len() as u64,
        access_rows: matrix.len() as u64,
        accounts_with_access: matrix
            .iter()
            .map(|r| &*r.account_id)
            .collect::<BTreeSet<_>>()
            .len() as u64,
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
