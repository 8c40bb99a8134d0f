//! The cells people read, shared by the Markdown and HTML renderers: each section's columns and
//! each row as text, so both formats show the same thing.

use super::model::{AdminRow, DriftRow, Finding, GrantRow, MatrixRow, SyncRunRef};

fn opt(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn json(value: &Option<serde_json::Value>) -> String {
    value.as_ref().map_or("-".to_owned(), |v| v.to_string())
}

/// Columns of a finding.
pub(super) const FINDING: &[&str] = &["severity", "kind", "subjects", "message"];

/// A finding's cells.
pub(super) fn finding(f: &Finding) -> Vec<String> {
    vec![
        f.severity.as_str().to_owned(),
        f.kind.to_string(),
        f.subjects.join(", "),
        f.message.clone(),
    ]
}

/// Columns of an administrator.
pub(super) const ADMIN: &[&str] = &["scope", "workspace", "resource", "account", "email", "via"];

/// An administrator's cells.
pub(super) fn admin(a: &AdminRow) -> Vec<String> {
    vec![
        a.scope.as_str().to_owned(),
        a.workspace.clone(),
        a.resource.clone(),
        format!("{} ({})", a.display_name, a.account_id),
        opt(a.email.as_deref()),
        a.via.join(", "),
    ]
}

/// Columns of a grant.
pub(super) const GRANT: &[&str] = &[
    "category",
    "id",
    "state",
    "principal",
    "resource",
    "level",
    "ends",
];

/// A grant's cells.
pub(super) fn grant(g: &GrantRow) -> Vec<String> {
    vec![
        g.category.as_str().to_owned(),
        g.id.to_string(),
        g.state.clone(),
        g.principal.clone(),
        g.resource.clone(),
        g.level.clone(),
        g.expires_at
            .map_or("standing".to_owned(), |t| t.to_rfc3339()),
    ]
}

/// Columns of a drift entry.
pub(super) const DRIFT: &[&str] = &[
    "entry",
    "observed",
    "subject",
    "before",
    "after",
    "changed by",
];

/// A drift entry's cells.
pub(super) fn drift(d: &DriftRow) -> Vec<String> {
    vec![
        d.audit_id.to_string(),
        d.observed_at.to_rfc3339(),
        d.subject.clone(),
        json(&d.before),
        json(&d.after),
        changed_by(d),
    ]
}

/// Who made a drifted change, as people read it: name, account, how, and the event.
pub(super) fn changed_by(d: &DriftRow) -> String {
    d.changed_by.as_ref().map_or("-".to_owned(), |a| {
        format!(
            "{} ({}{}), event {} at {}",
            a.name,
            a.account_id,
            if a.api_token { ", API token" } else { "" },
            a.event_id,
            a.event_time.to_rfc3339()
        )
    })
}

/// Columns of a sync run.
pub(super) const SYNC_RUN: &[&str] = &["sync run", "started", "finished", "outcome"];

/// A sync run's cells.
pub(super) fn sync_run(s: &SyncRunRef) -> Vec<String> {
    vec![
        s.id.to_string(),
        s.started_at.to_rfc3339(),
        s.finished_at.map_or("-".to_owned(), |t| t.to_rfc3339()),
        opt(s.outcome.as_deref()),
    ]
}

/// Columns of the access matrix.
pub(super) const MATRIX: &[&str] = &[
    "workspace",
    "repository",
    "account",
    "email",
    "level",
    "sources",
];

/// A matrix row's cells.
pub(super) fn matrix(m: &MatrixRow) -> Vec<String> {
    vec![
        m.workspace.to_string(),
        m.repository.to_string(),
        format!("{} ({})", m.display_name, m.account_id),
        opt(m.email.as_deref()),
        m.level.to_string(),
        m.sources.join(", "),
    ]
}
