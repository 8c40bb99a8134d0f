//! The report as Markdown, for people and tickets: the summary and the findings first, then
//! each section as a table, the effective access matrix last (its rows written as they come).

use std::io::Write;

use super::cells;
use super::model::{MatrixRow, Report};
use super::Audit;

/// A table cell: pipes escaped, line breaks flattened.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

fn table(
    out: &mut dyn Write,
    header: &[&str],
    rows: impl Iterator<Item = Vec<String>>,
) -> std::io::Result<()> {
    writeln!(out, "| {} |", header.join(" | "))?;
    writeln!(out, "|{}", "---|".repeat(header.len()))?;
    let mut any = false;
    for row in rows {
        any = true;
        let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
        writeln!(out, "| {} |", cells.join(" | "))?;
    }
    if !any {
        writeln!(out, "| {} |", vec!["-"; header.len()].join(" | "))?;
    }
    writeln!(out)?;
    Ok(())
}

/// The audit as Markdown text (for tests and small audits: the text is held whole).
pub fn render(audit: &Audit) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = write(&audit.report, audit.matrix.rows(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes the report as Markdown, the matrix's rows from `rows` (every row, in order).
pub fn write(
    r: &Report,
    rows: impl Iterator<Item = MatrixRow>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    writeln!(out, "# Permission audit, {}\n", r.generated_at.to_rfc3339())?;
    writeln!(out, "- Workspaces: {}", r.workspaces.join(", "))?;
    writeln!(out, "- Report SHA-256: `{}`", r.sha256)?;
    writeln!(
        out,
        "- Previous report: {}",
        r.previous.as_ref().map_or("none".to_owned(), |p| format!(
            "{} (`{}`)",
            p.generated_at.to_rfc3339(),
            p.sha256
        ))
    )?;
    writeln!(
        out,
        "- Findings: {} ({} new, {} resolved); {} access rows for {} accounts",
        r.summary.findings,
        r.changes.new.len(),
        r.changes.resolved.len(),
        r.summary.access_rows,
        r.summary.accounts_with_access
    )?;
    let f = &r.freshness;
    writeln!(
        out,
        "- Oldest fact: {}; sync runs: {}\n",
        f.oldest_read_at
            .map_or("never read".to_owned(), |t| format!(
                "{} ({} s old)",
                t.to_rfc3339(),
                f.oldest_fact_age_seconds.unwrap_or(0)
            )),
        if f.sync_runs.is_empty() {
            "none".to_owned()
        } else {
            f.sync_runs
                .iter()
                .map(|s| format!("#{}", s.id))
                .collect::<Vec<_>>()
                .join(", ")
        }
    )?;

    writeln!(out, "## Policy\n")?;
    if let Ok(serde_json::Value::Object(policy)) = serde_json::to_value(&r.policy) {
        table(
            out,
            &["setting", "value"],
            policy.into_iter().map(|(k, v)| vec![k, v.to_string()]),
        )?;
    }

    writeln!(out, "## Findings\n")?;
    table(out, cells::FINDING, r.findings.iter().map(cells::finding))?;

    writeln!(out, "## Changes since the previous report\n")?;
    table(
        out,
        &["change", "finding"],
        r.changes
            .new
            .iter()
            .map(|id| vec!["new".to_owned(), id.clone()])
            .chain(
                r.changes
                    .resolved
                    .iter()
                    .map(|f| vec!["resolved".to_owned(), f.id.clone()]),
            ),
    )?;

    writeln!(out, "## Administrators\n")?;
    table(out, cells::ADMIN, r.administrators.iter().map(cells::admin))?;

    writeln!(out, "## Grants\n")?;
    table(out, cells::GRANT, r.grants.iter().map(cells::grant))?;

    writeln!(
        out,
        "## Drift since {}\n",
        r.drift
            .since
            .map_or("the first sync".to_owned(), |t| t.to_rfc3339())
    )?;
    table(out, cells::DRIFT, r.drift.entries.iter().map(cells::drift))?;

    writeln!(out, "## Freshness\n")?;
    writeln!(
        out,
        "{} listings never read, {} whose last read failed.\n",
        f.never_read.len(),
        f.failed.len()
    )?;
    table(
        out,
        cells::SYNC_RUN,
        f.sync_runs.iter().map(cells::sync_run),
    )?;

    writeln!(out, "## Effective access\n")?;
    writeln!(
        out,
        "{} rows; SHA-256 of the matrix: `{}`\n",
        r.summary.access_rows, r.access_matrix_sha256
    )?;
    table(out, cells::MATRIX, rows.map(|row| cells::matrix(&row)))?;
    Ok(())
}
