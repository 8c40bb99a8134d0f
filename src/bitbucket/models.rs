//! Typed shapes of the Bitbucket JSON the connector reads and writes.
//!
//! Everything the spec marks optional is an `Option` or has a default, unknown fields are
//! ignored, and unknown enum values decode to an `Unknown` variant, because the live service
//! deviates from its own spec (fields dropped for admin.atlassian.com workspaces, `fields=`
//! trimming, members listed without `permission`). Only identifiers the connector cannot work
//! without are required.

use serde::{Deserialize, Serialize};

/// A Bitbucket user (or app/team pseudo-user) as it appears inside other objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Account {
    /// `user`, `team`, `app_user`...
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Bitbucket UUID with braces, e.g. `{d301aafa-...}`.
    pub uuid: Option<String>,
    /// The Atlassian account ID, the cross-product key.
    pub account_id: Option<String>,
    /// Display name (not unique).
    pub display_name: Option<String>,
    /// Nickname (not unique, not usable in URLs).
    pub nickname: Option<String>,
    /// `active`, when present.
    pub account_status: Option<String>,
    /// Only filled by the admin-only e-mail lookup on workspace members.
    pub email: Option<String>,
}

/// A workspace as referenced inside other objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkspaceRef {
    /// Workspace UUID with braces.
    pub uuid: Option<String>,
    /// The workspace ID used in URLs.
    pub slug: String,
    /// Display name.
    pub name: Option<String>,
}

/// `GET /workspaces/{workspace}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Workspace {
    /// Workspace UUID with braces.
    pub uuid: Option<String>,
    /// The workspace ID used in URLs.
    pub slug: String,
    /// Display name.
    pub name: Option<String>,
    /// Whether the workspace is private.
    pub is_private: Option<bool>,
    /// ISO-8601 creation time.
    pub created_on: Option<String>,
}

/// An item of `GET /user/workspaces`: a workspace the caller can see and whether it is admin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkspaceAccess {
    /// Whether the caller administers the workspace.
    pub administrator: bool,
    /// The workspace.
    pub workspace: WorkspaceRef,
}

/// A workspace role, from `/workspaces/{ws}/permissions` and `/user/workspaces/{ws}/permission`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WorkspaceRole {
    /// Workspace administrator.
    Owner,
    /// May create projects.
    CreateProject,
    /// Removed in 2022, still listed by old data.
    Collaborator,
    /// Plain member.
    Member,
    /// A value this client does not know, kept so that it can be named in a warning.
    Unknown(String),
}

impl WorkspaceRole {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            WorkspaceRole::Owner => "owner",
            WorkspaceRole::CreateProject => "create-project",
            WorkspaceRole::Collaborator => "collaborator",
            WorkspaceRole::Member => "member",
            WorkspaceRole::Unknown(other) => other,
        }
    }
}

impl Serialize for WorkspaceRole {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WorkspaceRole {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(match value.as_str() {
            "owner" => WorkspaceRole::Owner,
            "create-project" => WorkspaceRole::CreateProject,
            "collaborator" => WorkspaceRole::Collaborator,
            "member" => WorkspaceRole::Member,
            _ => WorkspaceRole::Unknown(value),
        })
    }
}

/// An item of `/workspaces/{ws}/members` (no `permission`) or `/workspaces/{ws}/permissions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct WorkspaceMembership {
    /// The member.
    pub user: Account,
    /// The workspace, when not trimmed away.
    pub workspace: Option<WorkspaceRef>,
    /// The role; absent on `/members`.
    pub permission: Option<WorkspaceRole>,
    /// Absent for workspaces administered in admin.atlassian.com.
    pub added_on: Option<String>,
    /// Absent for workspaces administered in admin.atlassian.com.
    pub last_accessed: Option<String>,
}

/// A project as referenced inside a repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ProjectRef {
    /// Project key used in URLs.
    pub key: String,
    /// Project UUID with braces.
    pub uuid: Option<String>,
    /// Display name.
    pub name: Option<String>,
}

/// `GET /workspaces/{ws}/projects[/{key}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Project {
    /// Project key used in URLs.
    pub key: String,
    /// Project UUID with braces.
    pub uuid: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Whether the project is private.
    pub is_private: Option<bool>,
    /// ISO-8601 creation time.
    pub created_on: Option<String>,
    /// ISO-8601 last update time.
    pub updated_on: Option<String>,
}

/// A repository as referenced inside a permission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct RepositoryRef {
    /// Repository UUID with braces.
    pub uuid: Option<String>,
    /// `workspace/slug`.
    pub full_name: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Slug, when sent.
    pub slug: Option<String>,
}

impl RepositoryRef {
    /// The repository slug: the `slug` field, else the part of `full_name` after the slash.
    pub fn slug(&self) -> Option<&str> {
        self.slug.as_deref().or_else(|| {
            self.full_name
                .as_deref()
                .and_then(|f| f.split_once('/'))
                .map(|(_, s)| s)
        })
    }
}

/// `GET /repositories/{ws}[/{slug}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Repository {
    /// Repository UUID with braces.
    pub uuid: Option<String>,
    /// Slug (not in the spec schema but sent by the live service).
    pub slug: Option<String>,
    /// `workspace/slug`.
    pub full_name: Option<String>,
    /// Display name.
    pub name: Option<String>,
    /// Whether the repository is private.
    pub is_private: Option<bool>,
    /// The project holding it.
    pub project: Option<ProjectRef>,
    /// The workspace holding it.
    pub workspace: Option<WorkspaceRef>,
    /// ISO-8601 creation time.
    pub created_on: Option<String>,
    /// ISO-8601 last update time.
    pub updated_on: Option<String>,
}

impl Repository {
    /// The repository slug: the `slug` field, else the part of `full_name` after the slash.
    pub fn slug(&self) -> Option<&str> {
        self.slug.as_deref().or_else(|| {
            self.full_name
                .as_deref()
                .and_then(|f| f.split_once('/'))
                .map(|(_, s)| s)
        })
    }
}

/// A permission level on a repository or project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PermissionLevel {
    /// No access (returned by some listings).
    None,
    /// Read.
    Read,
    /// Write.
    Write,
    /// Projects only: create repositories (and write on the project's repositories).
    CreateRepo,
    /// Admin.
    Admin,
    /// A value this client does not know.
    #[serde(other)]
    Unknown,
}

impl PermissionLevel {
    /// The wire value.
    pub fn as_str(&self) -> &'static str {
        match self {
            PermissionLevel::None => "none",
            PermissionLevel::Read => "read",
            PermissionLevel::Write => "write",
            PermissionLevel::CreateRepo => "create-repo",
            PermissionLevel::Admin => "admin",
            PermissionLevel::Unknown => "unknown",
        }
    }
}

/// A group as referenced inside a permission.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct GroupRef {
    /// Group slug used in URLs.
    pub slug: String,
    /// Display name.
    pub name: Option<String>,
    /// `workspace:slug`, when sent.
    pub full_slug: Option<String>,
}

/// An explicit user permission on a repository or project (permissions-config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct UserPermission {
    /// The user.
    #[serde(default)]
    pub user: Account,
    /// The level.
    pub permission: PermissionLevel,
}

/// An explicit group permission on a repository or project (permissions-config).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupPermission {
    /// The group.
    #[serde(default)]
    pub group: GroupRef,
    /// The level.
    pub permission: PermissionLevel,
}

/// An effective permission from `/workspaces/{ws}/permissions/repositories[/{slug}]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct RepositoryPermission {
    /// The user.
    #[serde(default)]
    pub user: Account,
    /// The repository.
    #[serde(default)]
    pub repository: RepositoryRef,
    /// The highest level the user has on it.
    pub permission: PermissionLevel,
}

/// A 1.0 group (`GET /1.0/groups/{workspace}`), an unpaginated array item.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct GroupV1 {
    /// Group slug.
    pub slug: String,
    /// Display name.
    pub name: Option<String>,
    /// The default repository permission of the group (`read|write|admin` or null).
    pub permission: Option<String>,
    /// Whether new workspace members join it automatically.
    pub auto_add: Option<bool>,
    /// Members, when listed inline.
    pub members: Vec<MemberV1>,
}

/// A 1.0 group member.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct MemberV1 {
    /// Atlassian account ID.
    pub account_id: Option<String>,
    /// Bitbucket UUID with braces.
    pub uuid: Option<String>,
    /// Display name.
    pub display_name: Option<String>,
    /// Nickname.
    pub nickname: Option<String>,
    /// Whether the account is active.
    pub is_active: Option<bool>,
}

/// One entry of `GET /1.0/group-privileges/{workspace}` (an unpaginated array): a group's
/// explicit permission on one repository. `repo`, `privilege` and the group's `slug` are
/// required, so a body of another shape fails to decode instead of reading as "no grants".
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupPrivilegeV1 {
    /// The repository as `workspace/repo-slug`.
    pub repo: String,
    /// The level (`read|write|admin`).
    pub privilege: PermissionLevel,
    /// The group.
    pub group: GroupPrivilegeGroupV1,
}

/// The group of a [`GroupPrivilegeV1`] (its owner and members are not needed and not read).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct GroupPrivilegeGroupV1 {
    /// Group slug.
    pub slug: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
}
