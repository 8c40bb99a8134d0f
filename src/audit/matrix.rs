//! The effective access matrix, streamed: never held whole.
//!
//! A large world's matrix is hundreds of thousands of rows, far more than every other section
//! together. [`Matrix`] keeps what the rows are computed from (each audited workspace's facts,
//! read from the store once per workspace, and the account names) and gives the rows a batch
//! of repositories at a time, computed by [`crate::access::for_repositories`] (the domain's
//! rules, the single place that computes effective access). The audit reads the batches twice:
//! once while building the report (its counts, administrators, findings and the matrix's hash),
//! once while writing the files. Both passes read the same facts, so the rows written are the
//! rows counted and hashed even when a sync changes the store in between.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use crate::access::{AccessRow, AccountNames};
use crate::domain::{RepoSlug, WorkspaceFacts, WorkspaceSlug};
use crate::store::chain::Sha256Writer;

use super::model::{MatrixRow, Text};

/// Repositories per batch by default: a few thousand rows at a time in a world where every
/// member reads every repository, so the memory a batch takes stays small.
pub const DEFAULT_REPOSITORIES_PER_BATCH: usize = 64;

/// The matrix's rows, computed a batch of repositories at a time from the facts behind them.
#[derive(Debug)]
pub struct Matrix {
    /// The audited workspaces in report order.
    order: Vec<WorkspaceSlug>,
    facts: BTreeMap<WorkspaceSlug, WorkspaceFacts>,
    names: AccountNames,
    per_batch: usize,
}

impl Matrix {
    pub(super) fn new(names: AccountNames, per_batch: usize) -> Matrix {
        Matrix {
            order: Vec::new(),
            facts: BTreeMap::new(),
            names,
            per_batch: per_batch.max(1),
        }
    }

    /// Adds the next workspace's facts.
    pub(super) fn push(&mut self, ws: WorkspaceSlug, facts: WorkspaceFacts) {
        self.order.push(ws.clone());
        self.facts.insert(ws, facts);
    }

    /// Every audited workspace's facts.
    pub(super) fn facts(&self) -> &BTreeMap<WorkspaceSlug, WorkspaceFacts> {
        &self.facts
    }

    /// The account names the rows show.
    pub(super) fn names(&self) -> &AccountNames {
        &self.names
    }

    /// One workspace's batches of repositories.
    pub(super) fn batches_of<'a>(
        &'a self,
        facts: &'a WorkspaceFacts,
    ) -> impl Iterator<Item = BTreeSet<RepoSlug>> + 'a {
        crate::access::repository_batches(facts, self.per_batch).into_iter()
    }

    /// The effective access of one batch of a workspace's repositories.
    pub(super) fn access_rows(
        &self,
        ws: &WorkspaceSlug,
        facts: &WorkspaceFacts,
        repositories: &BTreeSet<RepoSlug>,
    ) -> Vec<AccessRow> {
        crate::access::for_repositories(ws, facts, repositories, &self.names)
    }

    /// The rows a batch at a time, in report order (workspace, repository, account).
    pub fn batches(&self) -> impl Iterator<Item = Vec<MatrixRow>> + '_ {
        self.order.iter().flat_map(move |ws| {
            let facts = &self.facts[ws];
            self.batches_of(facts).map(move |repositories| {
                self.access_rows(ws, facts, &repositories)
                    .iter()
                    .map(matrix_row)
                    .collect()
            })
        })
    }

    /// The rows one at a time, in report order.
    pub fn rows(&self) -> impl Iterator<Item = MatrixRow> + '_ {
        self.batches().flatten()
    }
}

/// One row of the matrix as the report shows it.
pub(super) fn matrix_row(row: &AccessRow) -> MatrixRow {
    MatrixRow {
        workspace: Text::from(row.workspace.as_str()),
        repository: Text::from(row.repository.as_str()),
        account_id: Text::from(row.account_id.as_str()),
        display_name: Text::from(row.display_name.as_str()),
        email: row.email.as_deref().map(Text::from),
        level: Text::from(row.level.as_str()),
        sources: row.why().into_iter().map(Text::from).collect(),
    }
}

/// The SHA-256 of the matrix's compact JSON array, fed a row at a time.
pub(super) struct MatrixDigest {
    digest: Sha256Writer<std::io::Sink>,
    row: Vec<u8>,
    rows: u64,
}

impl MatrixDigest {
    pub(super) fn new() -> MatrixDigest {
        MatrixDigest {
            digest: Sha256Writer::new(std::io::sink()),
            row: Vec::new(),
            rows: 0,
        }
    }

    /// Adds the next row.
    pub(super) fn add(&mut self, row: &MatrixRow) {
        self.row.clear();
        self.row.push(if self.rows == 0 { b'[' } else { b',' });
        // Serialising plain strings into memory cannot fail.
        let _ = serde_json::to_writer(&mut self.row, row);
        // A sink takes every byte.
        let _ = self.digest.write_all(&self.row);
        self.rows += 1;
    }

    /// The hash of the whole array.
    pub(super) fn finish(mut self) -> String {
        let close: &[u8] = if self.rows == 0 { b"[]" } else { b"]" };
        let _ = self.digest.write_all(close);
        self.digest.finish().unwrap_or_default()
    }
}
