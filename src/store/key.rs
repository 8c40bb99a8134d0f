//! The key of a listing: which complete read of Bitbucket it is, its stored text form, and the
//! typed key of each of its items.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::domain::{
    AccountId, EntityKind, FactKey, GroupSlug, ProjectKey, ProjectRef, RepoRef, RepoSlug,
    WorkspaceSlug,
};

use super::error::StoreError;

/// One complete listing the sync reads from Bitbucket: the unit of replacement and of freshness.
///
/// Its string form (`Display`, [`ListingKey::parse`]) is the scope key stored in the freshness
/// table, for example `repo:acme/payments-api:users`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ListingKey {
    /// The workspace's own attributes (`/workspaces/{ws}`): zero or one [`Fact::Workspace`].
    Workspace(WorkspaceSlug),
    /// Members and roles (`/workspaces/{ws}/permissions`): [`Fact::WorkspaceMember`].
    WorkspaceMembers(WorkspaceSlug),
    /// Projects (`/workspaces/{ws}/projects`): [`Fact::Project`].
    Projects(WorkspaceSlug),
    /// Repositories (`/repositories/{ws}`): [`Fact::Repository`].
    Repositories(WorkspaceSlug),
    /// Groups (`/1.0/groups/{ws}`): [`Fact::Group`].
    Groups(WorkspaceSlug),
    /// Members of one group: [`Fact::GroupMember`].
    GroupMembers {
        /// The workspace.
        workspace: WorkspaceSlug,
        /// The group.
        group: GroupSlug,
    },
    /// Explicit user permissions of a project: [`Fact::ProjectUserPermission`].
    ProjectUserPermissions(ProjectRef),
    /// Explicit group permissions of a project: [`Fact::ProjectGroupPermission`].
    ProjectGroupPermissions(ProjectRef),
    /// Explicit user permissions of a repository: [`Fact::RepositoryUserPermission`].
    RepositoryUserPermissions(RepoRef),
    /// Explicit group permissions of a repository: [`Fact::RepositoryGroupPermission`].
    RepositoryGroupPermissions(RepoRef),
}

impl ListingKey {
    /// The workspace the listing belongs to.
    pub fn workspace(&self) -> &WorkspaceSlug {
        match self {
            ListingKey::Workspace(ws)
            | ListingKey::WorkspaceMembers(ws)
            | ListingKey::Projects(ws)
            | ListingKey::Repositories(ws)
            | ListingKey::Groups(ws)
            | ListingKey::GroupMembers { workspace: ws, .. } => ws,
            ListingKey::ProjectUserPermissions(p) | ListingKey::ProjectGroupPermissions(p) => {
                &p.workspace
            }
            ListingKey::RepositoryUserPermissions(r)
            | ListingKey::RepositoryGroupPermissions(r) => &r.workspace,
        }
    }

    /// The kind of entity the listing's facts are.
    pub fn entity_kind(&self) -> EntityKind {
        match self {
            ListingKey::Workspace(_) => EntityKind::Workspace,
            ListingKey::WorkspaceMembers(_) => EntityKind::WorkspaceMember,
            ListingKey::Projects(_) => EntityKind::Project,
            ListingKey::Repositories(_) => EntityKind::Repository,
            ListingKey::Groups(_) => EntityKind::Group,
            ListingKey::GroupMembers { .. } => EntityKind::GroupMember,
            ListingKey::ProjectUserPermissions(_) => EntityKind::ProjectUserPermission,
            ListingKey::ProjectGroupPermissions(_) => EntityKind::ProjectGroupPermission,
            ListingKey::RepositoryUserPermissions(_) => EntityKind::RepositoryUserPermission,
            ListingKey::RepositoryGroupPermissions(_) => EntityKind::RepositoryGroupPermission,
        }
    }

    /// The scope as people read it: `acme`, `acme/PAY`, `acme/payments-api`, `acme/devs`.
    pub fn scope_label(&self) -> String {
        match self {
            ListingKey::Workspace(ws)
            | ListingKey::WorkspaceMembers(ws)
            | ListingKey::Projects(ws)
            | ListingKey::Repositories(ws)
            | ListingKey::Groups(ws) => ws.to_string(),
            ListingKey::GroupMembers { workspace, group } => format!("{workspace}/{group}"),
            ListingKey::ProjectUserPermissions(p) | ListingKey::ProjectGroupPermissions(p) => {
                p.to_string()
            }
            ListingKey::RepositoryUserPermissions(r)
            | ListingKey::RepositoryGroupPermissions(r) => r.to_string(),
        }
    }

    /// The typed key of one item of this listing, from the item's stored text (an account id,
    /// group slug, project key or repository slug; ignored for the workspace listing).
    pub fn fact_key(&self, item: &str) -> Result<FactKey, StoreError> {
        let bad = |e: String| StoreError::Corrupt {
            what: "listing item",
            detail: format!("{item:?} in {self}: {e}"),
        };
        let account = || AccountId::parse(item.to_owned()).map_err(|e| bad(e.to_string()));
        let group = || GroupSlug::parse(item.to_owned()).map_err(|e| bad(e.to_string()));
        Ok(match self {
            ListingKey::Workspace(ws) => FactKey::Workspace {
                workspace: ws.clone(),
            },
            ListingKey::WorkspaceMembers(ws) => FactKey::WorkspaceMember {
                workspace: ws.clone(),
                account: account()?,
            },
            ListingKey::Projects(ws) => FactKey::Project {
                project: ProjectRef {
                    workspace: ws.clone(),
                    key: ProjectKey::parse(item.to_owned()).map_err(|e| bad(e.to_string()))?,
                },
            },
            ListingKey::Repositories(ws) => FactKey::Repository {
                repository: RepoRef {
                    workspace: ws.clone(),
                    slug: RepoSlug::parse(item.to_owned()).map_err(|e| bad(e.to_string()))?,
                },
            },
            ListingKey::Groups(ws) => FactKey::Group {
                workspace: ws.clone(),
                group: group()?,
            },
            ListingKey::GroupMembers {
                workspace,
                group: slug,
            } => FactKey::GroupMember {
                workspace: workspace.clone(),
                group: slug.clone(),
                account: account()?,
            },
            ListingKey::ProjectUserPermissions(p) => FactKey::ProjectUserPermission {
                project: p.clone(),
                account: account()?,
            },
            ListingKey::ProjectGroupPermissions(p) => FactKey::ProjectGroupPermission {
                project: p.clone(),
                group: group()?,
            },
            ListingKey::RepositoryUserPermissions(r) => FactKey::RepositoryUserPermission {
                repository: r.clone(),
                account: account()?,
            },
            ListingKey::RepositoryGroupPermissions(r) => FactKey::RepositoryGroupPermission {
                repository: r.clone(),
                group: group()?,
            },
        })
    }

    /// Parses the stored string form.
    pub fn parse(value: &str) -> Result<Self, StoreError> {
        let bad = |why: &str| StoreError::Corrupt {
            what: "listing key",
            detail: format!("{value:?}: {why}"),
        };
        let mut parts = value.split(':');
        let (Some(kind), Some(scope)) = (parts.next(), parts.next()) else {
            return Err(bad("expected KIND:SCOPE[:PART]"));
        };
        let part = parts.next();
        if parts.next().is_some() {
            return Err(bad("too many ':'"));
        }
        let ws = |s: &str| WorkspaceSlug::parse(s).map_err(|e| bad(&e.to_string()));
        let pair = |s: &str| -> Result<(WorkspaceSlug, String), StoreError> {
            let (w, rest) = s.split_once('/').ok_or_else(|| bad("expected WS/NAME"))?;
            Ok((ws(w)?, rest.to_owned()))
        };
        let project = |s: &str| -> Result<ProjectRef, StoreError> {
            let (workspace, key) = pair(s)?;
            let key = ProjectKey::parse(key).map_err(|e| bad(&e.to_string()))?;
            Ok(ProjectRef { workspace, key })
        };
        let repo = |s: &str| -> Result<RepoRef, StoreError> {
            let (workspace, slug) = pair(s)?;
            let slug = RepoSlug::parse(slug).map_err(|e| bad(&e.to_string()))?;
            Ok(RepoRef { workspace, slug })
        };
        match (kind, part) {
            ("workspace", None) => Ok(ListingKey::Workspace(ws(scope)?)),
            ("workspace", Some("members")) => Ok(ListingKey::WorkspaceMembers(ws(scope)?)),
            ("workspace", Some("projects")) => Ok(ListingKey::Projects(ws(scope)?)),
            ("workspace", Some("repositories")) => Ok(ListingKey::Repositories(ws(scope)?)),
            ("workspace", Some("groups")) => Ok(ListingKey::Groups(ws(scope)?)),
            ("group", Some("members")) => {
                let (workspace, group) = pair(scope)?;
                let group = GroupSlug::parse(group).map_err(|e| bad(&e.to_string()))?;
                Ok(ListingKey::GroupMembers { workspace, group })
            }
            ("project", Some("users")) => Ok(ListingKey::ProjectUserPermissions(project(scope)?)),
            ("project", Some("groups")) => Ok(ListingKey::ProjectGroupPermissions(project(scope)?)),
            ("repo", Some("users")) => Ok(ListingKey::RepositoryUserPermissions(repo(scope)?)),
            ("repo", Some("groups")) => Ok(ListingKey::RepositoryGroupPermissions(repo(scope)?)),
            _ => Err(bad("unknown listing kind")),
        }
    }
}

impl fmt::Display for ListingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListingKey::Workspace(ws) => write!(f, "workspace:{ws}"),
            ListingKey::WorkspaceMembers(ws) => write!(f, "workspace:{ws}:members"),
            ListingKey::Projects(ws) => write!(f, "workspace:{ws}:projects"),
            ListingKey::Repositories(ws) => write!(f, "workspace:{ws}:repositories"),
            ListingKey::Groups(ws) => write!(f, "workspace:{ws}:groups"),
            ListingKey::GroupMembers { workspace, group } => {
                write!(f, "group:{workspace}/{group}:members")
            }
            ListingKey::ProjectUserPermissions(p) => write!(f, "project:{p}:users"),
            ListingKey::ProjectGroupPermissions(p) => write!(f, "project:{p}:groups"),
            ListingKey::RepositoryUserPermissions(r) => write!(f, "repo:{r}:users"),
            ListingKey::RepositoryGroupPermissions(r) => write!(f, "repo:{r}:groups"),
        }
    }
}

impl TryFrom<String> for ListingKey {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ListingKey> for String {
    fn from(value: ListingKey) -> Self {
        value.to_string()
    }
}
