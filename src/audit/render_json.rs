//! The report as JSON, validated by `schemas/audit-report.schema.json`.

use super::model::Report;

/// The report as indented JSON (the same fields as the stored canonical form, with its hash).
pub fn render(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_default() + "\n"
}
