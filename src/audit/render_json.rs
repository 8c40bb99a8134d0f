//! The report as JSON, validated by `schemas/audit-report.schema.json`: the stored form's
//! members, indented, with the matrix's rows (`access_matrix`) after `access_matrix_sha256`,
//! serialised as they come.

use std::cell::RefCell;
use std::io::Write;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::model::{MatrixRow, Report};
use super::Audit;

/// The matrix's rows, taken from the iterator while serde writes the array.
struct Rows<I>(RefCell<Option<I>>);

impl<I: Iterator<Item = MatrixRow>> Serialize for Rows<I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.borrow_mut().take() {
            Some(rows) => s.collect_seq(rows),
            None => s.collect_seq(std::iter::empty::<MatrixRow>()),
        }
    }
}

/// The whole report file: the report's members in schema order, the rows in their place.
struct File<'a, I> {
    report: &'a Report,
    rows: Rows<I>,
}

impl<I: Iterator<Item = MatrixRow>> Serialize for File<'_, I> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.report;
        let mut map = s.serialize_map(Some(15))?;
        map.serialize_entry("report_version", &r.report_version)?;
        map.serialize_entry("generated_at", &r.generated_at)?;
        map.serialize_entry("workspaces", &r.workspaces)?;
        map.serialize_entry("policy", &r.policy)?;
        map.serialize_entry("previous", &r.previous)?;
        map.serialize_entry("summary", &r.summary)?;
        map.serialize_entry("findings", &r.findings)?;
        map.serialize_entry("changes", &r.changes)?;
        map.serialize_entry("access_matrix_sha256", &r.access_matrix_sha256)?;
        map.serialize_entry("access_matrix", &self.rows)?;
        map.serialize_entry("administrators", &r.administrators)?;
        map.serialize_entry("drift", &r.drift)?;
        map.serialize_entry("grants", &r.grants)?;
        map.serialize_entry("freshness", &r.freshness)?;
        map.serialize_entry("sha256", &r.sha256)?;
        map.end()
    }
}

/// Writes the report as indented JSON, the matrix's rows from `rows` (every row, in order).
pub fn write(
    report: &Report,
    rows: impl Iterator<Item = MatrixRow>,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    let file = File {
        report,
        rows: Rows(RefCell::new(Some(rows))),
    };
    serde_json::to_writer_pretty(&mut *out, &file)?;
    out.write_all(b"\n")
}

/// The audit as indented JSON text (for tests and small audits: the text is held whole).
pub fn render(audit: &Audit) -> String {
    let mut out = Vec::new();
    // Writing into memory cannot fail.
    let _ = write(&audit.report, audit.matrix.rows(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
