//! The values of the tamper-evident history: stored audit reports and audit-log entries with
//! their place in the hash chain (see `chain.rs`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::types::AuditEntry;

/// The store's id of an audit report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuditRunId(pub i64);

/// A file a report was written to, with the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFile {
    /// The path as written (absolute when the output folder was).
    pub path: String,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
}

/// An audit report about to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditRun {
    /// When the report was generated.
    pub generated_at: DateTime<Utc>,
    /// The report's SHA-256 (over its canonical JSON without the `sha256` field).
    pub sha256: String,
    /// The previous report's SHA-256, `None` for the first report.
    pub previous_sha256: Option<String>,
    /// How many findings it holds.
    pub findings: u64,
    /// The report's canonical JSON, `sha256` field included (without the matrix's rows: they
    /// are in the files).
    pub content: String,
    /// The files it was written to.
    pub files: Vec<ReportFile>,
}

/// A stored audit report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRun {
    /// Its id.
    pub id: AuditRunId,
    /// The report.
    pub run: NewAuditRun,
}

/// An audit-log entry with its links in the hash chain; both `None` for entries written before
/// the chain began.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainedAuditEntry {
    /// The entry.
    pub entry: AuditEntry,
    /// The hash of the entry before it, as stored.
    pub prev_hash: Option<String>,
    /// Its own hash, as stored.
    pub hash: Option<String>,
}
