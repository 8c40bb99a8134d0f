//! [`Target`]: one thing that changed, named by what must be read again to see it (webhooks
//! and organization events name them; [`super::targeted`] reads them), and which listings a
//! target's refresh reads ([`Target::covers`]), so the events behind it reach each replace;
//! and [`merge`], the plan of a targeted refresh: many targets grouped by workspace into the
//! fewest reads that cover them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::permissions::{project_listings, repo_listings};

use crate::domain::{GroupSlug, ProjectRef, RepoRef, WorkspaceSlug};
use crate::store::ListingKey;

/// One thing that changed, named by what must be read again to see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// A repository itself (created, renamed, moved, deleted) and both its permission
    /// listings: three requests.
    Repository(RepoRef),
    /// A repository's explicit user permissions.
    RepositoryUsers(RepoRef),
    /// A repository's explicit group permissions.
    RepositoryGroups(RepoRef),
    /// A project itself and both its permission listings: three requests.
    Project(ProjectRef),
    /// A project's explicit user permissions.
    ProjectUsers(ProjectRef),
    /// A project's explicit group permissions.
    ProjectGroups(ProjectRef),
    /// One group's members.
    GroupMembers {
        /// The workspace.
        workspace: WorkspaceSlug,
        /// The group.
        group: GroupSlug,
    },
    /// The workspace's groups with every group's members (one request).
    Groups(WorkspaceSlug),
    /// The workspace's members and their roles.
    WorkspaceMembers(WorkspaceSlug),
    /// The workspace's repositories (and the permissions of those that are new).
    Repositories(WorkspaceSlug),
    /// The workspace's projects (and the permissions of those that are new).
    Projects(WorkspaceSlug),
}

impl Target {
    /// The workspace the target belongs to.
    pub fn workspace(&self) -> &WorkspaceSlug {
        match self {
            Target::Repository(r) | Target::RepositoryUsers(r) | Target::RepositoryGroups(r) => {
                &r.workspace
            }
            Target::Project(p) | Target::ProjectUsers(p) | Target::ProjectGroups(p) => &p.workspace,
            Target::GroupMembers { workspace, .. }
            | Target::Groups(workspace)
            | Target::WorkspaceMembers(workspace)
            | Target::Repositories(workspace)
            | Target::Projects(workspace) => workspace,
        }
    }
}

impl Target {
    /// Whether a refresh of this target reads `key` (so a change in it may be the target's
    /// event's): its own listings, the whole listing a single item is merged into, the groups
    /// listing a vanished group is settled by, and the permissions of the repositories or
    /// projects a whole listing finds new.
    pub fn covers(&self, key: &ListingKey) -> bool {
        if key.workspace() != self.workspace() {
            return false;
        }
        match (self, key) {
            (Target::Repository(_), ListingKey::Repositories(_))
            | (Target::Project(_), ListingKey::Projects(_))
            | (Target::Repositories(_), ListingKey::Repositories(_))
            | (Target::Projects(_), ListingKey::Projects(_))
            | (Target::Groups(_), ListingKey::Groups(_) | ListingKey::GroupMembers { .. })
            | (Target::GroupMembers { .. }, ListingKey::Groups(_))
            | (Target::WorkspaceMembers(_), ListingKey::WorkspaceMembers(_)) => true,
            (
                Target::Repository(r) | Target::RepositoryUsers(r),
                ListingKey::RepositoryUserPermissions(k),
            )
            | (
                Target::Repository(r) | Target::RepositoryGroups(r),
                ListingKey::RepositoryGroupPermissions(k),
            ) => r == k,
            (
                Target::Project(p) | Target::ProjectUsers(p),
                ListingKey::ProjectUserPermissions(k),
            )
            | (
                Target::Project(p) | Target::ProjectGroups(p),
                ListingKey::ProjectGroupPermissions(k),
            ) => p == k,
            (Target::GroupMembers { group, .. }, ListingKey::GroupMembers { group: g, .. }) => {
                group == g
            }
            (
                Target::Repositories(_),
                ListingKey::RepositoryUserPermissions(_)
                | ListingKey::RepositoryGroupPermissions(_),
            )
            | (
                Target::Projects(_),
                ListingKey::ProjectUserPermissions(_) | ListingKey::ProjectGroupPermissions(_),
            ) => true,
            _ => false,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Repository(r) => write!(f, "repository {r}"),
            Target::RepositoryUsers(r) => write!(f, "user permissions of {r}"),
            Target::RepositoryGroups(r) => write!(f, "group permissions of {r}"),
            Target::Project(p) => write!(f, "project {p}"),
            Target::ProjectUsers(p) => write!(f, "user permissions of project {p}"),
            Target::ProjectGroups(p) => write!(f, "group permissions of project {p}"),
            Target::GroupMembers { workspace, group } => {
                write!(f, "members of group {workspace}/{group}")
            }
            Target::Groups(ws) => write!(f, "groups of {ws}"),
            Target::WorkspaceMembers(ws) => write!(f, "members of {ws}"),
            Target::Repositories(ws) => write!(f, "repositories of {ws}"),
            Target::Projects(ws) => write!(f, "projects of {ws}"),
        }
    }
}

/// A single repository or project read with one request and merged into its stored listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Item {
    Project(ProjectRef),
    Repository(RepoRef),
}

/// What one workspace's targets come to once merged.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Reads {
    /// Whole workspace listings (members, projects, repositories, groups with their members).
    pub(super) structural: BTreeSet<ListingKey>,
    /// Single projects and repositories.
    pub(super) items: BTreeSet<Item>,
    /// Members of single groups.
    pub(super) group_members: BTreeSet<GroupSlug>,
    /// Permission listings.
    pub(super) permissions: BTreeSet<ListingKey>,
}

/// Groups the targets by workspace and merges them: duplicates go, a single repository or
/// project is not read when its workspace's whole listing is, and a group's members are not
/// read alone when the groups listing (which carries every group's members) is.
pub(super) fn merge(targets: &[Target]) -> BTreeMap<WorkspaceSlug, Reads> {
    let mut out: BTreeMap<WorkspaceSlug, Reads> = BTreeMap::new();
    for target in targets {
        let reads = out.entry(target.workspace().clone()).or_default();
        let ws = target.workspace().clone();
        match target {
            Target::Repository(r) => {
                reads.items.insert(Item::Repository(r.clone()));
                reads.permissions.extend(repo_listings(r.clone()));
            }
            Target::Project(p) => {
                reads.items.insert(Item::Project(p.clone()));
                reads.permissions.extend(project_listings(p.clone()));
            }
            Target::RepositoryUsers(r) => {
                reads
                    .permissions
                    .insert(ListingKey::RepositoryUserPermissions(r.clone()));
            }
            Target::RepositoryGroups(r) => {
                reads
                    .permissions
                    .insert(ListingKey::RepositoryGroupPermissions(r.clone()));
            }
            Target::ProjectUsers(p) => {
                reads
                    .permissions
                    .insert(ListingKey::ProjectUserPermissions(p.clone()));
            }
            Target::ProjectGroups(p) => {
                reads
                    .permissions
                    .insert(ListingKey::ProjectGroupPermissions(p.clone()));
            }
            Target::GroupMembers { group, .. } => {
                reads.group_members.insert(group.clone());
            }
            Target::Groups(_) => {
                reads.structural.insert(ListingKey::Groups(ws));
            }
            Target::WorkspaceMembers(_) => {
                reads.structural.insert(ListingKey::WorkspaceMembers(ws));
            }
            Target::Repositories(_) => {
                reads.structural.insert(ListingKey::Repositories(ws));
            }
            Target::Projects(_) => {
                reads.structural.insert(ListingKey::Projects(ws));
            }
        }
    }
    for (ws, reads) in &mut out {
        let whole = |key: ListingKey| reads.structural.contains(&key);
        let (repos, projects, groups) = (
            whole(ListingKey::Repositories(ws.clone())),
            whole(ListingKey::Projects(ws.clone())),
            whole(ListingKey::Groups(ws.clone())),
        );
        reads.items.retain(|item| match item {
            Item::Repository(_) => !repos,
            Item::Project(_) => !projects,
        });
        if groups {
            reads.group_members.clear();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceSlug {
        WorkspaceSlug::parse("acme".to_owned()).unwrap()
    }

    fn repo(slug: &str) -> RepoRef {
        RepoRef {
            workspace: ws(),
            slug: crate::domain::RepoSlug::parse(slug.to_owned()).unwrap(),
        }
    }

    #[test]
    fn duplicates_merge_into_one_read() {
        let merged = merge(&[
            Target::RepositoryUsers(repo("api")),
            Target::Repository(repo("api")),
            Target::RepositoryUsers(repo("api")),
            Target::RepositoryGroups(repo("api")),
        ]);
        let reads = &merged[&ws()];
        assert_eq!(reads.items.len(), 1);
        assert_eq!(
            reads.permissions,
            repo_listings(repo("api")).into_iter().collect()
        );
    }

    #[test]
    fn a_whole_listing_covers_its_single_items_and_groups_cover_members() {
        let group = GroupSlug::parse("devs".to_owned()).unwrap();
        let merged = merge(&[
            Target::Repository(repo("api")),
            Target::Repositories(ws()),
            Target::GroupMembers {
                workspace: ws(),
                group,
            },
            Target::Groups(ws()),
        ]);
        let reads = &merged[&ws()];
        assert!(reads.items.is_empty(), "{reads:?}");
        assert!(reads.group_members.is_empty(), "{reads:?}");
        assert_eq!(reads.structural.len(), 2);
        // The repository's permissions are still read: the listing does not carry them.
        assert_eq!(reads.permissions.len(), 2);
    }
}
