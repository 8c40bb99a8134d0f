//! How complete an access answer is: the oldest read behind it, the listings behind it never
//! read, and those whose last read failed.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{ProjectKey, ProjectRef, RepoRef, RepoSlug, WorkspaceSlug};
use crate::store::{ListingFailure, ListingKey, ListingStatus, Store, StoreError};

/// How much of the store an answer rests on, and how old it is.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Completeness {
    /// The oldest complete read among the listings the answer rests on, `None` when none was read.
    pub oldest_read_at: Option<DateTime<Utc>>,
    /// The listings the answer rests on that were never read completely: their facts are
    /// missing, so the answer may lack rows.
    pub never_read: Vec<ListingKey>,
    /// The listings the answer rests on whose last read failed: their facts are those of an
    /// earlier read (or missing, when the listing is also never read).
    pub failed: Vec<ListingFailure>,
}

impl Completeness {
    /// Whether every listing behind the answer was read.
    pub fn is_complete(&self) -> bool {
        self.never_read.is_empty()
    }

    pub(super) fn add(&mut self, other: Completeness) {
        self.oldest_read_at = match (self.oldest_read_at, other.oldest_read_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.never_read.extend(other.never_read);
        self.failed.extend(other.failed);
    }
}

/// The completeness of a workspace's listings that `relevant` picks.
pub(super) async fn completeness(
    store: &dyn Store,
    ws: &WorkspaceSlug,
    relevant: impl Fn(&ListingKey) -> bool,
) -> Result<Completeness, StoreError> {
    let statuses = store.listings_by_age(ws).await?;
    summarize(store, ws, statuses, relevant).await
}

/// The completeness of `statuses` (listings in [`Store::listings_by_age`]'s order) with the
/// failed reads of the workspace's listings that `relevant` picks.
async fn summarize(
    store: &dyn Store,
    ws: &WorkspaceSlug,
    statuses: Vec<ListingStatus>,
    relevant: impl Fn(&ListingKey) -> bool,
) -> Result<Completeness, StoreError> {
    let mut out = Completeness {
        failed: store
            .listing_failures(ws)
            .await?
            .into_iter()
            .filter(|f| relevant(&f.key))
            .collect(),
        ..Completeness::default()
    };
    for status in statuses {
        if !relevant(&status.key) {
            continue;
        }
        match status.read_at {
            None => out.never_read.push(status.key),
            Some(at) => {
                out.oldest_read_at =
                    Some(out.oldest_read_at.map_or(at, |o: DateTime<Utc>| o.min(at)))
            }
        }
    }
    Ok(out)
}

/// The completeness of one repository's answer: it rests on the workspace's own listings,
/// every group's members, and the permissions of the repository and of its project.
pub(super) async fn repository_completeness(
    store: &dyn Store,
    ws: &WorkspaceSlug,
    repo: &RepoSlug,
    project: Option<&ProjectKey>,
) -> Result<Completeness, StoreError> {
    let mut keys = vec![
        ListingKey::Workspace(ws.clone()),
        ListingKey::WorkspaceMembers(ws.clone()),
        ListingKey::Projects(ws.clone()),
        ListingKey::Repositories(ws.clone()),
        ListingKey::Groups(ws.clone()),
    ];
    // A project's listings exist once the project itself is stored.
    if let Some(key) = project {
        if store.projects(ws).await?.iter().any(|p| &p.key == key) {
            let p = ProjectRef {
                workspace: ws.clone(),
                key: key.clone(),
            };
            keys.push(ListingKey::ProjectUserPermissions(p.clone()));
            keys.push(ListingKey::ProjectGroupPermissions(p));
        }
    }
    let r = RepoRef {
        workspace: ws.clone(),
        slug: repo.clone(),
    };
    keys.push(ListingKey::RepositoryUserPermissions(r.clone()));
    keys.push(ListingKey::RepositoryGroupPermissions(r));
    keys.extend(
        store
            .groups(ws)
            .await?
            .into_iter()
            .map(|g| ListingKey::GroupMembers {
                workspace: ws.clone(),
                group: g.slug,
            }),
    );
    let statuses = store.listing_statuses(&keys).await?;
    summarize(store, ws, statuses, |key| match key {
        ListingKey::RepositoryUserPermissions(r) | ListingKey::RepositoryGroupPermissions(r) => {
            &r.slug == repo
        }
        ListingKey::ProjectUserPermissions(p) | ListingKey::ProjectGroupPermissions(p) => {
            Some(&p.key) == project
        }
        _ => true,
    })
    .await
}
