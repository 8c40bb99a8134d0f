//! The report as JSON, validated by `schemas/audit-report.schema.json`.

use std::io::Write;

use super::model::Report;

/// Writes the report as indented JSON (the stored form's members, indented).
pub fn write(report: &Report, out: &mut dyn Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    out.write_all(b"\n")
}

/// The report as indented JSON text.
pub fn render(report: &Report) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = write(report, &mut out);
    String::from_utf8(out).unwrap_or_default()
}
