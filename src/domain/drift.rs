//! Drift: a change observed in Bitbucket that the connector did not make.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

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

/// One observed difference between the stored facts and Bitbucket.
///
/// `key` names the entity (`acme/payments-api 557058:…` for a user permission); `before` and
/// `after` are the entity's attributes as JSON, `None` when it did not exist on that side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriftEvent {
    /// What kind of fact changed.
    pub kind: EntityKind,
    /// Which one.
    pub key: String,
    /// The stored value, `None` when the fact is new.
    pub before: Option<serde_json::Value>,
    /// The observed value, `None` when the fact disappeared.
    pub after: Option<serde_json::Value>,
    /// When the listing that showed it was read.
    pub observed_at: DateTime<Utc>,
}
