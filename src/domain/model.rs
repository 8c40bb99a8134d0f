//! The entities the connector reads from Bitbucket: workspaces, projects, repositories, accounts,
//! groups, memberships and explicit permissions, as plain data.

use serde::{Deserialize, Serialize};

use super::ids::{AccountId, GroupSlug, Principal, ProjectKey, RepoSlug, WorkspaceSlug};
use super::levels::{ProjectLevel, RepoLevel, WorkspaceRole};

/// A workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// The slug, used in every URL.
    pub slug: WorkspaceSlug,
    /// Bitbucket's UUID with braces, when known.
    pub uuid: Option<String>,
    /// The display name.
    pub name: String,
    /// Whether the workspace is private.
    pub is_private: bool,
}

/// A project of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    /// The workspace holding it.
    pub workspace: WorkspaceSlug,
    /// The key, unique in the workspace.
    pub key: ProjectKey,
    /// Bitbucket's UUID with braces, when known.
    pub uuid: Option<String>,
    /// The display name.
    pub name: String,
    /// Whether the project is private.
    pub is_private: bool,
}

/// A repository of a workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// The workspace holding it.
    pub workspace: WorkspaceSlug,
    /// The slug, unique in the workspace.
    pub slug: RepoSlug,
    /// Bitbucket's UUID with braces, when known.
    pub uuid: Option<String>,
    /// The display name.
    pub name: String,
    /// The project it belongs to (every repository has one in current Bitbucket; older data may not).
    pub project: Option<ProjectKey>,
    /// Whether the repository is private. A public repository is readable by anyone.
    pub is_private: bool,
}

/// An Atlassian account as Bitbucket shows it (no email: Bitbucket does not hand them out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// The Atlassian account id.
    pub account_id: AccountId,
    /// Bitbucket's UUID with braces, when known.
    pub uuid: Option<String>,
    /// The display name.
    pub display_name: String,
    /// The nickname (not unique).
    pub nickname: Option<String>,
    /// What Bitbucket says the account is (the `type` of its user object).
    #[serde(default)]
    pub kind: AccountKind,
}

/// The kind of account Bitbucket shows (its `type` discriminator): a person's `user`, an
/// `app_user` (an app's own account, no person behind it) or a legacy `team`. `unknown` when
/// the listing did not say (Bitbucket 1.0 group members carry no type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountKind {
    /// A user account.
    User,
    /// An app user: an app's account, never a person.
    AppUser,
    /// A team account (the pre-workspace model).
    Team,
    /// Not said.
    #[default]
    Unknown,
}

impl AccountKind {
    /// The wire and stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::User => "user",
            AccountKind::AppUser => "app_user",
            AccountKind::Team => "team",
            AccountKind::Unknown => "unknown",
        }
    }

    /// Parses the wire or stored spelling; anything else (or nothing) is `Unknown`.
    pub fn parse(value: Option<&str>) -> Self {
        match value {
            Some("user") => AccountKind::User,
            Some("app_user") => AccountKind::AppUser,
            Some("team") => AccountKind::Team,
            _ => AccountKind::Unknown,
        }
    }
}

/// A workspace group with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// The workspace holding it.
    pub workspace: WorkspaceSlug,
    /// The slug, unique in the workspace.
    pub slug: GroupSlug,
    /// The display name.
    pub name: String,
}

/// A member of a workspace with the role `/workspaces/{ws}/permissions` gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceMember {
    /// The member.
    pub account_id: AccountId,
    /// The member's role.
    pub role: WorkspaceRole,
}

/// An explicit permission on a project (`permissions-config` of the project).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ProjectPermission {
    /// The project.
    pub project: ProjectKey,
    /// The user or group holding it.
    pub principal: Principal,
    /// The level.
    pub level: ProjectLevel,
}

/// An explicit permission on a repository (`permissions-config` of the repository).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RepositoryPermission {
    /// The repository.
    pub repository: RepoSlug,
    /// The user or group holding it.
    pub principal: Principal,
    /// The level.
    pub level: RepoLevel,
}
