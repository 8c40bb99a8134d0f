//! Stored reports: the previous report a new one names and compares with (new and resolved
//! findings), storing a report with its audit-log entry, and the newest stored report with the
//! files it was written to ([`latest`], for readers outside the audit such as the HTTP API).

use std::collections::BTreeSet;

use crate::store::{
    AuditKind, AuditRun, AuditRunId, NewAuditEntry, NewAuditRun, ReportFile, Store,
};

use super::model::{Changes, Finding, PreviousReport, Report};
use super::AuditError;

/// The previous report and its findings.
pub(super) struct Previous {
    pub report: PreviousReport,
    pub findings: Vec<Finding>,
}

/// Reads the newest stored report; its content must still parse (else `audit verify` tells
/// more).
pub(super) async fn previous(store: &dyn Store) -> Result<Option<Previous>, AuditError> {
    let Some(AuditRun { id, run }) = store.last_audit_run().await? else {
        return Ok(None);
    };
    // Only the findings are needed; the rest (the matrix above all) is skipped while parsing.
    #[derive(serde::Deserialize)]
    struct StoredFindings {
        findings: Vec<Finding>,
    }
    let findings = serde_json::from_str::<StoredFindings>(&run.content)
        .map_err(|e| AuditError::PreviousReport {
            id: id.0,
            detail: e.to_string(),
        })?
        .findings;
    Ok(Some(Previous {
        report: PreviousReport {
            id: id.0,
            generated_at: run.generated_at,
            sha256: run.sha256,
        },
        findings,
    }))
}

/// New findings (ids the previous report lacks) and resolved ones (previous findings whose id
/// is gone).
pub(super) fn changes(current: &[Finding], previous: Option<&[Finding]>) -> Changes {
    let before: BTreeSet<&str> = previous
        .unwrap_or_default()
        .iter()
        .map(|f| f.id.as_str())
        .collect();
    let now: BTreeSet<&str> = current.iter().map(|f| f.id.as_str()).collect();
    Changes {
        new: current
            .iter()
            .filter(|f| !before.contains(f.id.as_str()))
            .map(|f| f.id.clone())
            .collect(),
        resolved: previous
            .unwrap_or_default()
            .iter()
            .filter(|f| !now.contains(f.id.as_str()))
            .cloned()
            .collect(),
    }
}

/// The newest stored report: its content (every section but the matrix's rows) and the files
/// it was written to, where the matrix's rows are.
#[derive(Debug, Clone)]
pub struct LatestReport {
    /// Its store id.
    pub id: AuditRunId,
    /// The report as stored.
    pub report: Report,
    /// The files it was written to, each with the SHA-256 recorded for it (the file may have
    /// been moved or altered since: `audit verify` tells).
    pub files: Vec<ReportFile>,
}

impl LatestReport {
    /// The file whose name ends with `suffix`: `.json`, `.md`, `.html`, or `-<section>.csv`
    /// (one of [`super::render_csv::SECTIONS`]).
    pub fn file(&self, suffix: &str) -> Option<&ReportFile> {
        self.files.iter().find(|f| f.path.ends_with(suffix))
    }
}

/// Reads the newest stored report with its files; `None` when no audit was stored.
pub async fn latest(store: &dyn Store) -> Result<Option<LatestReport>, AuditError> {
    let Some(AuditRun { id, run }) = store.last_audit_run().await? else {
        return Ok(None);
    };
    let report = Report::parse(&run.content).map_err(|e| AuditError::PreviousReport {
        id: id.0,
        detail: e.to_string(),
    })?;
    Ok(Some(LatestReport {
        id,
        report,
        files: run.files,
    }))
}

/// Stores a sealed report with the files it was written to, and records it in the audit log.
pub async fn record(
    store: &dyn Store,
    report: &Report,
    files: Vec<ReportFile>,
) -> Result<AuditRunId, AuditError> {
    let run = NewAuditRun {
        generated_at: report.generated_at,
        sha256: report.sha256.clone(),
        previous_sha256: report.previous.as_ref().map(|p| p.sha256.clone()),
        findings: report.summary.findings,
        content: report.stored_form(),
        files,
    };
    let entry = NewAuditEntry {
        at: report.generated_at,
        actor: "audit".to_owned(),
        kind: AuditKind::Audit,
        subject: format!("audit report {}", report.sha256),
        before: None,
        after: None,
        details: serde_json::json!({
            "sha256": report.sha256,
            "previous_sha256": run.previous_sha256,
            "findings": report.summary.findings,
            "workspaces": report.workspaces,
            "files": run.files,
        }),
    };
    Ok(store.record_audit_run(&run, &entry).await?)
}
