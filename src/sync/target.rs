//! [`Target`]: one thing that changed, named by what must be read again to see it (webhooks
//! and organization events name them; [`super::targeted`] reads them), and which listings a
//! target's refresh reads ([`Target::covers`]), so the events behind it reach each replace.

use serde::Serialize;

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
