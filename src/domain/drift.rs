//! Drift: a change observed in Bitbucket that the connector did not make.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ids::{AccountId, GroupSlug, ProjectRef, RepoRef, WorkspaceSlug};

/// The kind of fact that changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    /// A workspace's own attributes.
    Workspace,
    /// A workspace membership and its role.
    WorkspaceMember,
    /// A project.
    Project,
    /// A repository.
    Repository,
    /// A group.
    Group,
    /// A group membership.
    GroupMember,
    /// An explicit user permission on a project.
    ProjectUserPermission,
    /// An explicit group permission on a project.
    ProjectGroupPermission,
    /// An explicit user permission on a repository.
    RepositoryUserPermission,
    /// An explicit group permission on a repository.
    RepositoryGroupPermission,
}

impl EntityKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Workspace => "workspace",
            EntityKind::WorkspaceMember => "workspace_member",
            EntityKind::Project => "project",
            EntityKind::Repository => "repository",
            EntityKind::Group => "group",
            EntityKind::GroupMember => "group_member",
            EntityKind::ProjectUserPermission => "project_user_permission",
            EntityKind::ProjectGroupPermission => "project_group_permission",
            EntityKind::RepositoryUserPermission => "repository_user_permission",
            EntityKind::RepositoryGroupPermission => "repository_group_permission",
        }
    }
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which fact a drift event is about, typed so that a reader matches on it instead of parsing
/// text. Its `Display` is the text the audit log keeps (`acme/payments-api 557058:…`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FactKey {
    /// A workspace's own attributes.
    Workspace {
        /// The workspace.
        workspace: WorkspaceSlug,
    },
    /// A workspace membership.
    WorkspaceMember {
        /// The workspace.
        workspace: WorkspaceSlug,
        /// The member.
        account: AccountId,
    },
    /// A project.
    Project {
        /// The project.
        project: ProjectRef,
    },
    /// A repository.
    Repository {
        /// The repository.
        repository: RepoRef,
    },
    /// A group.
    Group {
        /// The workspace.
        workspace: WorkspaceSlug,
        /// The group.
        group: GroupSlug,
    },
    /// A group membership.
    GroupMember {
        /// The workspace.
        workspace: WorkspaceSlug,
        /// The group.
        group: GroupSlug,
        /// The member.
        account: AccountId,
    },
    /// A user's explicit permission on a project.
    ProjectUserPermission {
        /// The project.
        project: ProjectRef,
        /// The user.
        account: AccountId,
    },
    /// A group's explicit permission on a project.
    ProjectGroupPermission {
        /// The project.
        project: ProjectRef,
        /// The group.
        group: GroupSlug,
    },
    /// A user's explicit permission on a repository.
    RepositoryUserPermission {
        /// The repository.
        repository: RepoRef,
        /// The user.
        account: AccountId,
    },
    /// A group's explicit permission on a repository.
    RepositoryGroupPermission {
        /// The repository.
        repository: RepoRef,
        /// The group.
        group: GroupSlug,
    },
}

impl FactKey {
    /// The kind of fact.
    pub fn kind(&self) -> EntityKind {
        match self {
            FactKey::Workspace { .. } => EntityKind::Workspace,
            FactKey::WorkspaceMember { .. } => EntityKind::WorkspaceMember,
            FactKey::Project { .. } => EntityKind::Project,
            FactKey::Repository { .. } => EntityKind::Repository,
            FactKey::Group { .. } => EntityKind::Group,
            FactKey::GroupMember { .. } => EntityKind::GroupMember,
            FactKey::ProjectUserPermission { .. } => EntityKind::ProjectUserPermission,
            FactKey::ProjectGroupPermission { .. } => EntityKind::ProjectGroupPermission,
            FactKey::RepositoryUserPermission { .. } => EntityKind::RepositoryUserPermission,
            FactKey::RepositoryGroupPermission { .. } => EntityKind::RepositoryGroupPermission,
        }
    }
}

impl fmt::Display for FactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FactKey::Workspace { workspace } => write!(f, "{workspace}"),
            FactKey::WorkspaceMember { workspace, account } => write!(f, "{workspace} {account}"),
            FactKey::Project { project } => write!(f, "{} {}", project.workspace, project.key),
            FactKey::Repository { repository } => {
                write!(f, "{} {}", repository.workspace, repository.slug)
            }
            FactKey::Group { workspace, group } => write!(f, "{workspace} {group}"),
            FactKey::GroupMember {
                workspace,
                group,
                account,
            } => write!(f, "{workspace}/{group} {account}"),
            FactKey::ProjectUserPermission { project, account } => write!(f, "{project} {account}"),
            FactKey::ProjectGroupPermission { project, group } => write!(f, "{project} {group}"),
            FactKey::RepositoryUserPermission {
                repository,
                account,
            } => write!(f, "{repository} {account}"),
            FactKey::RepositoryGroupPermission { repository, group } => {
                write!(f, "{repository} {group}")
            }
        }
    }
}

/// One observed difference between the stored facts and Bitbucket.
///
/// `key` names the entity (`acme/payments-api 557058:…` for a user permission); `before` and
/// `after` are the entity's attributes as JSON, `None` when it did not exist on that side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEvent {
    /// What kind of fact changed.
    pub kind: EntityKind,
    /// Which one.
    pub key: FactKey,
    /// The stored value, `None` when the fact is new.
    pub before: Option<serde_json::Value>,
    /// The observed value, `None` when the fact disappeared.
    pub after: Option<serde_json::Value>,
    /// When the listing that showed it was read.
    pub observed_at: DateTime<Utc>,
}
