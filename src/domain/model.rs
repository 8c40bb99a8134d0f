//! The entities the connector reads from Bitbucket: workspaces, projects, repositories, accounts,
//! groups, memberships and explicit permissions, as plain data.

use chrono::{DateTime, Utc};
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

/// The link between an account and a person's email, made by identity matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The account.
    pub account_id: AccountId,
    /// The person's email.
    pub email: String,
    /// How the match was made.
    pub source: IdentitySource,
    /// When the match was made.
    pub matched_at: DateTime<Utc>,
    /// Other emails or accounts that competed for the same match, if any.
    pub conflicts: Vec<String>,
}

/// How an account was matched to an email; stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// An operator's override in the config.
    Override,
    /// Jira's user API.
    Jira,
    /// Bitbucket's workspace member search by email.
    BitbucketEmailFilter,
    /// The Atlassian organization's user directory.
    AtlassianOrg,
    /// No match was found.
    Unmatched,
}

impl IdentitySource {
    /// Every source.
    pub const ALL: &'static [IdentitySource] = &[
        IdentitySource::Override,
        IdentitySource::Jira,
        IdentitySource::BitbucketEmailFilter,
        IdentitySource::AtlassianOrg,
        IdentitySource::Unmatched,
    ];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentitySource::Override => "override",
            IdentitySource::Jira => "jira",
            IdentitySource::BitbucketEmailFilter => "bitbucket_email_filter",
            IdentitySource::AtlassianOrg => "atlassian_org",
            IdentitySource::Unmatched => "unmatched",
        }
    }

    /// Parses the stored spelling; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == value)
    }
}
