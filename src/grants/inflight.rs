//! The changes of grants in flight (pending or ending), as the sync's expected changes: a sync
//! that reads a slot between the Bitbucket call and the step that records it must not report
//! the connector's own change as drift.

use std::collections::HashMap;

use crate::domain::{GrantLevel, GrantState, GrantTarget, Principal};
use crate::store::{ExpectedChange, GrantFilter, ListingKey, Store, StoreError};

/// The listing a slot's explicit level (or membership) is read in, and the item within it.
fn listing_of(principal: &Principal, target: &GrantTarget) -> (ListingKey, String) {
    let (id, user) = match principal {
        Principal::User { account_id } => (account_id.to_string(), true),
        Principal::Group { slug } => (slug.to_string(), false),
    };
    let key = match (target, user) {
        (GrantTarget::Repository { repository }, true) => {
            ListingKey::RepositoryUserPermissions(repository.clone())
        }
        (GrantTarget::Repository { repository }, false) => {
            ListingKey::RepositoryGroupPermissions(repository.clone())
        }
        (GrantTarget::Project { project }, true) => {
            ListingKey::ProjectUserPermissions(project.clone())
        }
        (GrantTarget::Project { project }, false) => {
            ListingKey::ProjectGroupPermissions(project.clone())
        }
        (GrantTarget::GroupMembership { workspace, group }, _) => ListingKey::GroupMembers {
            workspace: workspace.clone(),
            group: group.clone(),
        },
    };
    (key, id)
}

/// Every level a grant in flight may leave in Bitbucket, by listing: a pending grant its planned
/// level, an ending one the level it restores to at most (its baseline) or its planned level.
pub async fn expected_changes(
    store: &dyn Store,
) -> Result<HashMap<ListingKey, Vec<ExpectedChange>>, StoreError> {
    let grants = store
        .list_grants(&GrantFilter {
            states: vec![GrantState::Pending, GrantState::Ending],
            ..GrantFilter::default()
        })
        .await?;
    let mut out: HashMap<ListingKey, Vec<ExpectedChange>> = HashMap::new();
    for g in grants {
        let (key, item) = listing_of(&g.principal, &g.target);
        let mut levels = vec![g.planned];
        if g.state == GrantState::Ending {
            levels.push(g.baseline);
        }
        let entry = out.entry(key).or_default();
        for level in levels {
            entry.push(ExpectedChange {
                item: item.clone(),
                level: level.map(|l| GrantLevel::as_str(l).to_owned()),
            });
        }
    }
    Ok(out)
}
