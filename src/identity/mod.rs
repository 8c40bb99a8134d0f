//! Identity matching: ties every Bitbucket account to a person's email, recording where each
//! match came from and when.
//!
//! `sources.rs` reads the organization's managed accounts (`atlassian_admin`), Jira
//! (`users/search`, then `user/bulk` for the rest), the override file and an IdP's list of
//! people; `refresh.rs` runs a matching pass over every stored account (after a sync when due,
//! or on demand); `lookup.rs` imports people through Bitbucket's member email filter and
//! resolves one email for `access user EMAIL`. The rules themselves are pure and
//! live in [`crate::domain::match_identities`].

mod lookup;
mod refresh;
pub mod sources;

pub use lookup::{import_people, resolve_email, ImportReport, Resolution};
pub use refresh::{is_due, refresh, RefreshReport, Sources};

use crate::bitbucket::ApiError;
use crate::store::StoreError;

/// Why identity matching could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The store failed.
    #[error("the store failed during identity matching: {0}")]
    Store(#[from] StoreError),
    /// Bitbucket's member filter failed.
    #[error(
        "Bitbucket's member email filter failed: {0} (it needs a workspace administrator's token)"
    )]
    Bitbucket(#[from] ApiError),
    /// An override or people file is unusable.
    #[error("{what} {problem}")]
    File {
        /// Which file (and entry).
        what: String,
        /// What is wrong and what to do.
        problem: String,
    },
}
