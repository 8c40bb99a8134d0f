//! `audit verify`: checks the audit log's hash chain and every stored report.
//!
//! The chain: each chained entry's hash must be the hash of its own fields and its `prev_hash`,
//! and its `prev_hash` must be the hash of the entry before it (the genesis value for the first
//! chained entry). Entries written before the chain began (before migration
//! `20261202000005_audit_chain`) carry no hash; they are counted, and cannot be checked. Once
//! the chain has begun, an entry without a hash is a broken link.
//!
//! Reports: each stored report's content must end with its recorded SHA-256 as its last member,
//! hash without that member to it (the rule [`super::Report::seal`] follows; the matrix counts
//! through `access_matrix_sha256`, its rows being in the files), parse as a report, name the
//! report before it, and every file it was written to that
//! still exists must hash to the SHA-256 recorded for it. A missing file is reported, not
//! counted as tampering: reports are moved and archived.
//!
//! The module reads no file itself: the caller passes how to read one.

use serde::Serialize;

use std::io::Write;

use crate::store::chain::{entry_hash, sha256_hex, Sha256Writer, GENESIS};
use crate::store::{AuditId, Store, StoreError};

/// What every stored report has, whatever its version (the rest is skipped while parsing).
#[derive(serde::Deserialize)]
struct StoredShape {
    #[allow(dead_code)]
    report_version: u32,
    #[allow(dead_code)]
    sha256: String,
}

/// Entries read per page.
const PAGE: u64 = 2_000;

/// The first broken link found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum Broken {
    /// An audit-log entry.
    AuditEntry {
        /// Its id.
        id: i64,
        /// What does not hold.
        reason: String,
    },
    /// A stored report.
    Report {
        /// Its id.
        id: i64,
        /// What does not hold.
        reason: String,
    },
    /// A file a stored report was written to.
    ReportFile {
        /// The report's id.
        report: i64,
        /// The file.
        path: String,
        /// What does not hold.
        reason: String,
    },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::AuditEntry { id, reason } => write!(f, "audit log entry {id}: {reason}"),
            Broken::Report { id, reason } => write!(f, "audit report {id}: {reason}"),
            Broken::ReportFile {
                report,
                path,
                reason,
            } => write!(f, "file {path} of audit report {report}: {reason}"),
        }
    }
}

/// What `audit verify` found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Chained entries checked.
    pub entries_checked: u64,
    /// Entries written before the chain began (not checkable).
    pub entries_before_chain: u64,
    /// The id of the first chained entry.
    pub chain_starts_at: Option<i64>,
    /// Stored reports checked.
    pub reports_checked: u64,
    /// Report files checked.
    pub files_checked: u64,
    /// Report files no longer where they were written.
    pub files_missing: Vec<String>,
    /// The first broken link of the chain, then the first of the reports.
    pub broken: Vec<Broken>,
}

impl Verification {
    /// Whether everything checked holds.
    pub fn is_intact(&self) -> bool {
        self.broken.is_empty()
    }
}

/// Checks the chain and the reports; `read_file` returns a report file's bytes, `None` when it
/// is missing.
pub async fn verify(
    store: &dyn Store,
    read_file: &dyn Fn(&str) -> Option<Vec<u8>>,
) -> Result<Verification, StoreError> {
    let mut out = Verification::default();
    if let Some(broken) = check_chain(store, &mut out).await? {
        out.broken.push(broken);
    }
    if let Some(broken) = check_reports(store, read_file, &mut out).await? {
        out.broken.push(broken);
    }
    Ok(out)
}

async fn check_chain(
    store: &dyn Store,
    out: &mut Verification,
) -> Result<Option<Broken>, StoreError> {
    let mut after: Option<AuditId> = None;
    let mut last: Option<(i64, String)> = None;
    loop {
        let page = store.audit_chain(after, PAGE).await?;
        let Some(tail) = page.last() else {
            return Ok(None);
        };
        after = Some(tail.entry.id);
        for e in page {
            let id = e.entry.id.0;
            let broken = |reason: String| Ok(Some(Broken::AuditEntry { id, reason }));
            let (Some(prev), Some(hash)) = (e.prev_hash, e.hash) else {
                if let Some(first) = out.chain_starts_at {
                    return broken(format!(
                        "has no hash although the chain began at entry {first}: it was \
                         inserted or altered outside the program"
                    ));
                }
                out.entries_before_chain += 1;
                continue;
            };
            let expected_prev = last.as_ref().map_or(GENESIS, |(_, h)| h.as_str());
            if prev != expected_prev {
                return broken(match &last {
                    Some((before, _)) => format!(
                        "does not follow entry {before}: an entry between them was removed, \
                         or entry {before} was altered"
                    ),
                    None => "is the first chained entry but does not start the chain: an \
                             earlier entry was removed"
                        .to_owned(),
                });
            }
            if entry_hash(&e.entry.entry, &prev) != hash {
                return broken(
                    "its content does not match its hash: the entry was altered".to_owned(),
                );
            }
            out.chain_starts_at.get_or_insert(id);
            out.entries_checked += 1;
            last = Some((id, hash));
        }
    }
}

async fn check_reports(
    store: &dyn Store,
    read_file: &dyn Fn(&str) -> Option<Vec<u8>>,
    out: &mut Verification,
) -> Result<Option<Broken>, StoreError> {
    let mut previous: Option<String> = None;
    for stored in store.audit_runs().await? {
        let id = stored.id.0;
        let run = stored.run;
        let broken = |reason: String| Ok(Some(Broken::Report { id, reason }));
        // The documented rule, on the stored bytes themselves: without its last member,
        // `sha256`, the content hashes to the recorded hash. It holds for reports of every
        // version (the first version held the matrix's rows too) and reads no row twice.
        let member = format!(",\"sha256\":\"{}\"}}", run.sha256);
        let Some(body) = run.content.strip_suffix(&member) else {
            return broken(
                "its stored content does not end with its recorded hash: the report was altered"
                    .to_owned(),
            );
        };
        let mut digest = Sha256Writer::new(std::io::sink());
        // A sink takes every byte.
        let _ = digest.write_all(body.as_bytes());
        let _ = digest.write_all(b"}");
        let hash = digest.finish().unwrap_or_default();
        if hash != run.sha256 {
            return broken(format!(
                "its content hashes to {hash}, not to the recorded {}: the report was altered",
                run.sha256
            ));
        }
        if let Err(e) = serde_json::from_str::<StoredShape>(&run.content) {
            return broken(format!(
                "its stored content is not a report ({e}): the report was altered"
            ));
        }
        if run.previous_sha256 != previous {
            return broken(
                "it does not name the report before it: a report was removed or altered".to_owned(),
            );
        }
        for file in &run.files {
            match read_file(&file.path) {
                None => out.files_missing.push(file.path.clone()),
                Some(bytes) => {
                    out.files_checked += 1;
                    let actual = sha256_hex(&bytes);
                    if actual != file.sha256 {
                        return Ok(Some(Broken::ReportFile {
                            report: id,
                            path: file.path.clone(),
                            reason: format!(
                                "hashes to {actual}, not to the recorded {}: the file was altered",
                                file.sha256
                            ),
                        }));
                    }
                }
            }
        }
        out.reports_checked += 1;
        previous = Some(run.sha256);
    }
    Ok(None)
}
