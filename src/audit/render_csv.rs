//! The report as CSV, one file per section, each with a fixed header (tests hold them stable:
//! spreadsheets and scripts key on them). Lists in one cell are joined with `; `.

use std::io::Write;

use super::model::{MatrixRow, Report};
use super::Audit;

/// The section whose rows are streamed ([`write_matrix`]).
pub const MATRIX_SECTION: &str = "access_matrix";

/// The sections and their headers, in file order.
pub const SECTIONS: &[(&str, &[&str])] = &[
    ("report", &["field", "value"]),
    (
        "findings",
        &["id", "kind", "severity", "subjects", "message"],
    ),
    ("changes", &["change", "id", "kind", "severity", "subjects"]),
    (
        "access_matrix",
        &[
            "workspace",
            "repository",
            "account_id",
            "display_name",
            "email",
            "level",
            "sources",
        ],
    ),
    (
        "administrators",
        &[
            "scope",
            "workspace",
            "resource",
            "account_id",
            "display_name",
            "email",
            "via",
        ],
    ),
    (
        "drift",
        &[
            "audit_id",
            "observed_at",
            "subject",
            "before",
            "after",
            "actor_account_id",
            "actor_name",
            "actor_api_token",
            "event_id",
            "event_time",
        ],
    ),
    (
        "grants",
        &[
            "category",
            "id",
            "state",
            "principal",
            "resource_kind",
            "resource",
            "level",
            "baseline",
            "requested_by",
            "ticket",
            "starts_at",
            "expires_at",
            "updated_at",
        ],
    ),
    ("freshness", &["item", "name", "at", "detail"]),
];

fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

fn json_cell(value: &Option<serde_json::Value>) -> String {
    value.as_ref().map(|v| v.to_string()).unwrap_or_default()
}

/// The rows of one section (without the header).
fn rows(report: &Report, section: &str) -> Vec<Vec<String>> {
    match section {
        "report" => {
            let mut rows = vec![
                vec!["report_version".into(), report.report_version.to_string()],
                vec!["generated_at".into(), report.generated_at.to_rfc3339()],
                vec!["workspaces".into(), report.workspaces.join("; ")],
                vec!["sha256".into(), report.sha256.clone()],
                vec![
                    "access_matrix_sha256".into(),
                    report.access_matrix_sha256.clone(),
                ],
                vec![
                    "previous_sha256".into(),
                    opt(&report.previous.as_ref().map(|p| p.sha256.clone())),
                ],
                vec!["findings".into(), report.summary.findings.to_string()],
            ];
            if let Ok(serde_json::Value::Object(policy)) = serde_json::to_value(&report.policy) {
                for (key, value) in policy {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    rows.push(vec![format!("policy.{key}"), text]);
                }
            }
            rows
        }
        "findings" => report
            .findings
            .iter()
            .map(|f| {
                vec![
                    f.id.clone(),
                    f.kind.to_string(),
                    f.severity.as_str().into(),
                    f.subjects.join("; "),
                    f.message.clone(),
                ]
            })
            .collect(),
        "changes" => {
            let by_id: std::collections::HashMap<&str, &super::Finding> =
                report.findings.iter().map(|f| (f.id.as_str(), f)).collect();
            let mut rows: Vec<Vec<String>> = report
                .changes
                .new
                .iter()
                .filter_map(|id| by_id.get(id.as_str()))
                .map(|f| {
                    vec![
                        "new".into(),
                        f.id.clone(),
                        f.kind.to_string(),
                        f.severity.as_str().into(),
                        f.subjects.join("; "),
                    ]
                })
                .collect();
            rows.extend(report.changes.resolved.iter().map(|f| {
                vec![
                    "resolved".into(),
                    f.id.clone(),
                    f.kind.to_string(),
                    f.severity.as_str().into(),
                    f.subjects.join("; "),
                ]
            }));
            rows
        }
        "administrators" => report
            .administrators
            .iter()
            .map(|a| {
                vec![
                    a.scope.as_str().into(),
                    a.workspace.clone(),
                    a.resource.clone(),
                    a.account_id.clone(),
                    a.display_name.clone(),
                    opt(&a.email),
                    a.via.join("; "),
                ]
            })
            .collect(),
        "drift" => report
            .drift
            .entries
            .iter()
            .map(|d| {
                let by = |f: fn(&super::model::DriftActor) -> String| {
                    d.changed_by.as_ref().map(f).unwrap_or_default()
                };
                vec![
                    d.audit_id.to_string(),
                    d.observed_at.to_rfc3339(),
                    d.subject.clone(),
                    json_cell(&d.before),
                    json_cell(&d.after),
                    by(|a| a.account_id.clone()),
                    by(|a| a.name.clone()),
                    by(|a| a.api_token.to_string()),
                    by(|a| a.event_id.clone()),
                    by(|a| a.event_time.to_rfc3339()),
                ]
            })
            .collect(),
        "grants" => report
            .grants
            .iter()
            .map(|g| {
                vec![
                    g.category.as_str().into(),
                    g.id.to_string(),
                    g.state.clone(),
                    g.principal.clone(),
                    g.resource_kind.clone(),
                    g.resource.clone(),
                    g.level.clone(),
                    opt(&g.baseline),
                    g.requested_by.clone(),
                    opt(&g.ticket),
                    g.starts_at.to_rfc3339(),
                    opt(&g.expires_at.map(|t| t.to_rfc3339())),
                    g.updated_at.to_rfc3339(),
                ]
            })
            .collect(),
        "freshness" => {
            let f = &report.freshness;
            let mut rows = vec![vec![
                "oldest_read".into(),
                String::new(),
                opt(&f.oldest_read_at.map(|t| t.to_rfc3339())),
                opt(&f
                    .oldest_fact_age_seconds
                    .map(|s| format!("{s} seconds old"))),
            ]];
            rows.extend(f.sync_runs.iter().map(|r| {
                vec![
                    "sync_run".into(),
                    r.id.to_string(),
                    r.started_at.to_rfc3339(),
                    opt(&r.outcome),
                ]
            }));
            rows.extend(
                f.never_read
                    .iter()
                    .map(|l| vec!["never_read".into(), l.clone(), String::new(), String::new()]),
            );
            rows.extend(f.failed.iter().map(|l| {
                vec![
                    "failed".into(),
                    l.listing.clone(),
                    l.failed_at.to_rfc3339(),
                    l.message.clone(),
                ]
            }));
            rows
        }
        _ => Vec::new(),
    }
}

/// Writes one matrix row, borrowing its texts (the matrix is the section with the most rows).
fn matrix_record<W: Write>(w: &mut csv::Writer<W>, r: &MatrixRow) -> Result<(), String> {
    let sources = r.sources.join("; ");
    w.write_record([
        &*r.workspace,
        &*r.repository,
        &*r.account_id,
        &*r.display_name,
        r.email.as_deref().unwrap_or_default(),
        &*r.level,
        sources.as_str(),
    ])
    .map_err(|e| e.to_string())
}

fn header(section: &str) -> Result<&'static [&'static str], String> {
    SECTIONS
        .iter()
        .find(|(name, _)| *name == section)
        .map(|(_, header)| *header)
        .ok_or_else(|| format!("no CSV section {section:?}"))
}

/// Writes one section (one of [`SECTIONS`], but the matrix: see [`write_matrix`]) as CSV with
/// its header.
pub fn write(report: &Report, section: &str, out: &mut dyn Write) -> Result<(), String> {
    if section == MATRIX_SECTION {
        return Err(format!(
            "the CSV section {MATRIX_SECTION} is streamed: write it with write_matrix"
        ));
    }
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header(section)?)
        .map_err(|e| e.to_string())?;
    for row in rows(report, section) {
        w.write_record(&row).map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// Writes the matrix section as CSV with its header, the rows from `rows` as they come.
pub fn write_matrix(
    rows: impl Iterator<Item = MatrixRow>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record(header(MATRIX_SECTION)?)
        .map_err(|e| e.to_string())?;
    for row in rows {
        matrix_record(&mut w, &row)?;
    }
    w.flush().map_err(|e| e.to_string())
}

/// Every section of the audit as `(name, CSV text)`, in [`SECTIONS`] order (for tests and
/// small audits: the texts are held whole).
pub fn render(audit: &Audit) -> Result<Vec<(&'static str, String)>, String> {
    SECTIONS
        .iter()
        .map(|(name, _)| {
            let mut out = Vec::new();
            if *name == MATRIX_SECTION {
                write_matrix(audit.matrix.rows(), &mut out)?;
            } else {
                write(&audit.report, name, &mut out)?;
            }
            Ok((*name, String::from_utf8(out).map_err(|e| e.to_string())?))
        })
        .collect()
}
