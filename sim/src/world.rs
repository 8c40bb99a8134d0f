//! The simulator's in-memory world: workspaces, members, projects, repositories, users, groups
//! and explicit permissions, plus the effective-permission rule and the out-of-band helpers
//! tests use to change Bitbucket "behind the connector's back".
//!
//! Architecture invariant: the world is plain data with no IO. The HTTP layer reads it under a
//! lock and never clones it per request; every collection is an ordered map keyed by the value
//! used in URLs (slug, key, account id) so lookups and pagination are cheap.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A repository permission level, as Bitbucket reports it (`read` < `write` < `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Clone and browse.
    Read,
    /// Push.
    Write,
    /// Administer the repository, including its permissions.
    Admin,
}

impl Level {
    /// The wire name (`read`, `write`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Read => "read",
            Level::Write => "write",
            Level::Admin => "admin",
        }
    }

    /// Parses a wire name; `None` for anything else (including `none`).
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "read" => Some(Level::Read),
            "write" => Some(Level::Write),
            "admin" => Some(Level::Admin),
            _ => None,
        }
    }
}

/// A project permission level; `create-repo` lets a user create repositories in the project and
/// counts as `write` on the project's repositories.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProjectLevel {
    /// Read every repository of the project.
    #[serde(rename = "read")]
    Read,
    /// Write every repository of the project.
    #[serde(rename = "write")]
    Write,
    /// Write, plus create repositories in the project.
    #[serde(rename = "create-repo")]
    CreateRepo,
    /// Administer the project and its repositories.
    #[serde(rename = "admin")]
    Admin,
}

impl ProjectLevel {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProjectLevel::Read => "read",
            ProjectLevel::Write => "write",
            ProjectLevel::CreateRepo => "create-repo",
            ProjectLevel::Admin => "admin",
        }
    }

    /// Parses a wire name; `None` for anything else.
    pub fn parse(s: &str) -> Option<ProjectLevel> {
        match s {
            "read" => Some(ProjectLevel::Read),
            "write" => Some(ProjectLevel::Write),
            "create-repo" => Some(ProjectLevel::CreateRepo),
            "admin" => Some(ProjectLevel::Admin),
            _ => None,
        }
    }

    /// What this project level gives on each repository of the project (product.md:
    /// `create-repo` gives write).
    pub fn repo_level(self) -> Level {
        match self {
            ProjectLevel::Read => Level::Read,
            ProjectLevel::Write | ProjectLevel::CreateRepo => Level::Write,
            ProjectLevel::Admin => Level::Admin,
        }
    }
}

/// A member's workspace role as `/workspaces/{ws}/permissions` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Workspace administrator: admin on every repository.
    Owner,
    /// Ordinary member.
    Member,
}

impl Role {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Member => "member",
        }
    }
}

/// The Jira account type of a user (`accountType` in the Jira user object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JiraAccountType {
    /// A regular Atlassian account.
    Atlassian,
    /// A system account used by apps (bots, integrations).
    App,
    /// A Jira Service Management customer account.
    Customer,
}

impl JiraAccountType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JiraAccountType::Atlassian => "atlassian",
            JiraAccountType::App => "app",
            JiraAccountType::Customer => "customer",
        }
    }
}

/// An Atlassian account, seen by Bitbucket and (optionally) by Jira.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Atlassian account id, e.g. `557058:0f1e...`; the key across products.
    pub account_id: String,
    /// Bitbucket UUID with braces.
    pub uuid: String,
    /// Display name (Unicode).
    pub display_name: String,
    /// Non-unique nickname.
    pub nickname: String,
    /// The account's email address (never shown by Bitbucket except through the admin-only
    /// member email filter).
    pub email: String,
    /// Whether Jira shows `emailAddress` for this user (profile visibility).
    pub email_visible_in_jira: bool,
    /// The Jira account type, or `None` when the account has no Jira user at all.
    pub jira_account_type: Option<JiraAccountType>,
    /// Whether Bitbucket shows the account as an `app_user` (an app's own account) rather than
    /// a `user`.
    #[serde(default)]
    pub app_user: bool,
    /// Whether the account is active.
    pub active: bool,
    /// When the account was created.
    pub created_on: DateTime<Utc>,
}

/// One workspace membership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    /// Owner or member.
    pub role: Role,
    /// When the user joined (omitted on the wire for admin.atlassian.com workspaces).
    pub added_on: DateTime<Utc>,
}

/// A Bitbucket group (workspace-scoped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// ASCII slug used in URLs.
    pub slug: String,
    /// Display name (may be Unicode).
    pub name: String,
    /// Account ids of the members.
    pub members: BTreeSet<String>,
}

/// A project with its explicit permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    /// Project key (upper case).
    pub key: String,
    /// UUID with braces.
    pub uuid: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Private project.
    pub is_private: bool,
    /// Creation time.
    pub created_on: DateTime<Utc>,
    /// Last update.
    pub updated_on: DateTime<Utc>,
    /// Explicit user permissions, by account id.
    pub user_permissions: BTreeMap<String, ProjectLevel>,
    /// Explicit group permissions, by group slug.
    pub group_permissions: BTreeMap<String, ProjectLevel>,
}

/// A repository with its explicit permissions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    /// Slug used in URLs.
    pub slug: String,
    /// UUID with braces.
    pub uuid: String,
    /// Display name (may be Unicode).
    pub name: String,
    /// Key of the project holding the repository.
    pub project_key: String,
    /// Private repositories are visible only to those with access; public ones give read to all.
    pub is_private: bool,
    /// Description.
    pub description: String,
    /// Main language.
    pub language: String,
    /// Size in bytes.
    pub size: u64,
    /// Creation time.
    pub created_on: DateTime<Utc>,
    /// Last update.
    pub updated_on: DateTime<Utc>,
    /// Explicit user permissions, by account id.
    pub user_permissions: BTreeMap<String, Level>,
    /// Explicit group permissions, by group slug.
    pub group_permissions: BTreeMap<String, Level>,
}

/// Who an explicit permission is granted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grantee {
    /// A user, by account id.
    User,
    /// A group, by slug.
    Group,
}

/// A holder of explicit user and group permissions (a project or a repository), so that the
/// setters and the permissions-config endpoints are written once for both.
pub trait PermissionHolder: Sized {
    /// The level this holder grants.
    type Level: Copy;

    /// The key the workspace files the holder under (project key, repository slug).
    fn key(&self) -> &str;

    /// Looks the holder up by that key.
    fn find<'w>(ws: &'w Workspace, key: &str) -> Option<&'w Self>;

    /// Looks the holder up by that key for a change; a missing one is an error.
    fn find_mut<'w>(ws: &'w mut Workspace, key: &str) -> Result<&'w mut Self, WorldError>;

    /// Parses a level's wire name; `None` for anything the holder does not grant.
    fn parse_level(s: &str) -> Option<Self::Level>;

    /// A level's wire name.
    fn level_name(l: Self::Level) -> &'static str;

    /// The explicit grants to users (by account id) or to groups (by slug).
    fn grants(&self, to: Grantee) -> &BTreeMap<String, Self::Level>;

    /// The same grants, for a change.
    fn grants_mut(&mut self, to: Grantee) -> &mut BTreeMap<String, Self::Level>;
}

/// Projects and repositories keep their grants in the same two fields and live in a workspace
/// map keyed by one of their own fields; their impls differ only in those names.
macro_rules! permission_holder {
    ($holder:ty, $level:ty, $map:ident, $key:ident, $missing:ident) => {
        impl PermissionHolder for $holder {
            type Level = $level;

            fn key(&self) -> &str {
                &self.$key
            }

            fn find<'w>(ws: &'w Workspace, key: &str) -> Option<&'w Self> {
                ws.$map.get(key)
            }

            fn find_mut<'w>(ws: &'w mut Workspace, key: &str) -> Result<&'w mut Self, WorldError> {
                ws.$map
                    .get_mut(key)
                    .ok_or_else(|| WorldError::$missing(key.to_string()))
            }

            fn parse_level(s: &str) -> Option<$level> {
                <$level>::parse(s)
            }

            fn level_name(l: $level) -> &'static str {
                l.as_str()
            }

            fn grants(&self, to: Grantee) -> &BTreeMap<String, $level> {
                match to {
                    Grantee::User => &self.user_permissions,
                    Grantee::Group => &self.group_permissions,
                }
            }

            fn grants_mut(&mut self, to: Grantee) -> &mut BTreeMap<String, $level> {
                match to {
                    Grantee::User => &mut self.user_permissions,
                    Grantee::Group => &mut self.group_permissions,
                }
            }
        }
    };
}

permission_holder!(Project, ProjectLevel, projects, key, NoProject);
permission_holder!(Repository, Level, repositories, slug, NoRepository);

/// A workspace webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hook {
    /// UUID with braces.
    pub uuid: String,
    /// Delivery URL.
    pub url: String,
    /// Description.
    pub description: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// Whether deliveries are on.
    pub active: bool,
    /// The secret deliveries are signed with, when one was given.
    #[serde(default)]
    pub secret: Option<String>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A workspace and everything inside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workspace {
    /// Slug used in URLs.
    pub slug: String,
    /// UUID with braces.
    pub uuid: String,
    /// Display name (may be Unicode).
    pub name: String,
    /// Creation time.
    pub created_on: DateTime<Utc>,
    /// Members by account id.
    pub members: BTreeMap<String, Membership>,
    /// Projects by key.
    pub projects: BTreeMap<String, Project>,
    /// Repositories by slug.
    pub repositories: BTreeMap<String, Repository>,
    /// Groups by slug.
    pub groups: BTreeMap<String, Group>,
    /// Webhooks by UUID.
    pub hooks: BTreeMap<String, Hook>,
    /// True for workspaces administered in admin.atlassian.com: 1.0 group writes are refused and
    /// memberships carry no `added_on`/`last_accessed`.
    pub groups_admin_managed: bool,
    /// Optional plan seat limit: a PUT that would give access to one more user than this answers
    /// 402.
    pub seat_limit: Option<usize>,
}

/// One effective permission as the simulator computes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EffectivePermission {
    /// The user's account id.
    pub account_id: String,
    /// The repository slug.
    pub repo_slug: String,
    /// The highest level the user holds.
    pub level: Level,
}

/// Everything an out-of-band change can get wrong.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WorldError {
    /// No workspace with that slug.
    #[error("no workspace {0}")]
    NoWorkspace(String),
    /// No repository with that slug in the workspace.
    #[error("no repository {0}")]
    NoRepository(String),
    /// No project with that key in the workspace.
    #[error("no project {0}")]
    NoProject(String),
    /// No user with that account id.
    #[error("no user {0}")]
    NoUser(String),
    /// No group with that slug in the workspace.
    #[error("no group {0}")]
    NoGroup(String),
    /// Something with that identifier already exists.
    #[error("{0} already exists")]
    Exists(String),
}

/// A repository to add out of band.
#[derive(Debug, Clone)]
pub struct NewRepository {
    /// Slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Project key (must exist).
    pub project_key: String,
    /// Private or public.
    pub is_private: bool,
}

/// The whole simulated state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct World {
    /// The seed the world was generated from.
    pub seed: u64,
    /// Workspaces by slug.
    pub workspaces: BTreeMap<String, Workspace>,
    /// Every Atlassian account by account id.
    pub users: BTreeMap<String, User>,
    /// The account id of the service account that administers every workspace but the last.
    pub admin_account_id: String,
    /// The "current time" of the world, used for generated timestamps and new objects.
    pub now: DateTime<Utc>,
}

impl World {
    /// Finds a user by account id or `{uuid}`.
    pub fn user(&self, id: &str) -> Option<&User> {
        if let Some(u) = self.users.get(id) {
            return Some(u);
        }
        if id.starts_with('{') {
            return self
                .users
                .values()
                .find(|u| u.uuid.eq_ignore_ascii_case(id));
        }
        None
    }

    /// Finds a user by email, ignoring case.
    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.users
            .values()
            .find(|u| u.email.eq_ignore_ascii_case(email))
    }

    /// Finds a workspace by slug or `{uuid}`.
    pub fn workspace(&self, id: &str) -> Option<&Workspace> {
        if let Some(w) = self.workspaces.get(id) {
            return Some(w);
        }
        if id.starts_with('{') {
            return self
                .workspaces
                .values()
                .find(|w| w.uuid.eq_ignore_ascii_case(id));
        }
        None
    }

    /// The service account.
    pub fn admin(&self) -> Option<&User> {
        self.users.get(&self.admin_account_id)
    }

    fn ws_mut(&mut self, ws: &str) -> Result<&mut Workspace, WorldError> {
        self.workspaces
            .get_mut(ws)
            .ok_or_else(|| WorldError::NoWorkspace(ws.to_string()))
    }

    /// Sets (`Some`) or removes (`None`) one explicit grant on a project or repository: the one
    /// setter behind the four named ones below and the permissions-config endpoints. A missing
    /// user is reported before a missing workspace, a missing group after it, as Bitbucket does.
    pub fn set_permission<H: PermissionHolder>(
        &mut self,
        ws: &str,
        holder: &str,
        to: Grantee,
        name: &str,
        level: Option<H::Level>,
    ) -> Result<(), WorldError> {
        if to == Grantee::User && !self.users.contains_key(name) {
            return Err(WorldError::NoUser(name.to_string()));
        }
        let w = self.ws_mut(ws)?;
        if to == Grantee::Group && !w.groups.contains_key(name) {
            return Err(WorldError::NoGroup(name.to_string()));
        }
        let grants = H::find_mut(w, holder)?.grants_mut(to);
        match level {
            Some(l) => {
                grants.insert(name.to_string(), l);
            }
            None => {
                grants.remove(name);
            }
        }
        Ok(())
    }

    /// Sets (`Some`) or removes (`None`) a user's explicit repository permission.
    pub fn set_repo_user_permission(
        &mut self,
        ws: &str,
        repo: &str,
        account_id: &str,
        level: Option<Level>,
    ) -> Result<(), WorldError> {
        self.set_permission::<Repository>(ws, repo, Grantee::User, account_id, level)
    }

    /// Sets or removes a group's explicit repository permission.
    pub fn set_repo_group_permission(
        &mut self,
        ws: &str,
        repo: &str,
        group: &str,
        level: Option<Level>,
    ) -> Result<(), WorldError> {
        self.set_permission::<Repository>(ws, repo, Grantee::Group, group, level)
    }

    /// Sets or removes a user's explicit project permission.
    pub fn set_project_user_permission(
        &mut self,
        ws: &str,
        project: &str,
        account_id: &str,
        level: Option<ProjectLevel>,
    ) -> Result<(), WorldError> {
        self.set_permission::<Project>(ws, project, Grantee::User, account_id, level)
    }

    /// Sets or removes a group's explicit project permission.
    pub fn set_project_group_permission(
        &mut self,
        ws: &str,
        project: &str,
        group: &str,
        level: Option<ProjectLevel>,
    ) -> Result<(), WorldError> {
        self.set_permission::<Project>(ws, project, Grantee::Group, group, level)
    }

    /// Adds a user to a group; joining a group also makes the user a workspace member, as it does
    /// in Bitbucket.
    pub fn add_group_member(
        &mut self,
        ws: &str,
        group: &str,
        account_id: &str,
    ) -> Result<(), WorldError> {
        if !self.users.contains_key(account_id) {
            return Err(WorldError::NoUser(account_id.to_string()));
        }
        let now = self.now;
        let w = self.ws_mut(ws)?;
        let g = w
            .groups
            .get_mut(group)
            .ok_or_else(|| WorldError::NoGroup(group.to_string()))?;
        g.members.insert(account_id.to_string());
        w.members
            .entry(account_id.to_string())
            .or_insert(Membership {
                role: Role::Member,
                added_on: now,
            });
        Ok(())
    }

    /// Removes a user from a group (workspace membership stays).
    pub fn remove_group_member(
        &mut self,
        ws: &str,
        group: &str,
        account_id: &str,
    ) -> Result<(), WorldError> {
        let w = self.ws_mut(ws)?;
        let g = w
            .groups
            .get_mut(group)
            .ok_or_else(|| WorldError::NoGroup(group.to_string()))?;
        g.members.remove(account_id);
        Ok(())
    }

    /// Adds a repository.
    pub fn add_repository(&mut self, ws: &str, repo: NewRepository) -> Result<(), WorldError> {
        let now = self.now;
        let w = self.ws_mut(ws)?;
        if w.repositories.contains_key(&repo.slug) {
            return Err(WorldError::Exists(repo.slug));
        }
        if !w.projects.contains_key(&repo.project_key) {
            return Err(WorldError::NoProject(repo.project_key));
        }
        let uuid = derived_uuid(&format!("{ws}/{}", repo.slug));
        w.repositories.insert(
            repo.slug.clone(),
            Repository {
                slug: repo.slug,
                uuid,
                name: repo.name,
                project_key: repo.project_key,
                is_private: repo.is_private,
                description: String::new(),
                language: "rust".into(),
                size: 1024,
                created_on: now,
                updated_on: now,
                user_permissions: BTreeMap::new(),
                group_permissions: BTreeMap::new(),
            },
        );
        Ok(())
    }

    /// Removes a repository and its permissions.
    pub fn remove_repository(&mut self, ws: &str, slug: &str) -> Result<Repository, WorldError> {
        let w = self.ws_mut(ws)?;
        w.repositories
            .remove(slug)
            .ok_or_else(|| WorldError::NoRepository(slug.to_string()))
    }

    /// Adds a workspace member with a role (or changes the role of an existing member).
    pub fn add_workspace_member(
        &mut self,
        ws: &str,
        account_id: &str,
        role: Role,
    ) -> Result<(), WorldError> {
        if !self.users.contains_key(account_id) {
            return Err(WorldError::NoUser(account_id.to_string()));
        }
        let now = self.now;
        let w = self.ws_mut(ws)?;
        w.members
            .entry(account_id.to_string())
            .and_modify(|m| m.role = role)
            .or_insert(Membership {
                role,
                added_on: now,
            });
        Ok(())
    }

    /// Removes a member from a workspace; like Bitbucket, this also drops the user's groups and
    /// explicit permissions in that workspace.
    pub fn remove_workspace_member(
        &mut self,
        ws: &str,
        account_id: &str,
    ) -> Result<(), WorldError> {
        let w = self.ws_mut(ws)?;
        if w.members.remove(account_id).is_none() {
            return Err(WorldError::NoUser(account_id.to_string()));
        }
        for g in w.groups.values_mut() {
            g.members.remove(account_id);
        }
        for p in w.projects.values_mut() {
            p.user_permissions.remove(account_id);
        }
        for r in w.repositories.values_mut() {
            r.user_permissions.remove(account_id);
        }
        Ok(())
    }

    /// Whether the user is an owner (administrator) of the workspace.
    pub fn is_owner(&self, ws: &Workspace, account_id: &str) -> bool {
        matches!(ws.members.get(account_id), Some(m) if m.role == Role::Owner)
    }

    /// Effective levels on one repository, from explicit user and group permissions, the
    /// project's user and group permissions (create-repo counts as write) and workspace
    /// ownership. Public visibility is not included: it is read for everyone and Bitbucket's
    /// effective-permission listing does not report it.
    pub fn repo_effective(ws: &Workspace, repo: &Repository) -> BTreeMap<String, Level> {
        let mut out: HashMap<&str, Level> = HashMap::new();
        fn bump<'a>(out: &mut HashMap<&'a str, Level>, who: &'a str, l: Level) {
            out.entry(who)
                .and_modify(|cur| {
                    if l > *cur {
                        *cur = l
                    }
                })
                .or_insert(l);
        }
        for (u, l) in &repo.user_permissions {
            bump(&mut out, u, *l);
        }
        for (g, l) in &repo.group_permissions {
            if let Some(group) = ws.groups.get(g) {
                for m in &group.members {
                    bump(&mut out, m, *l);
                }
            }
        }
        if let Some(p) = ws.projects.get(&repo.project_key) {
            for (u, l) in &p.user_permissions {
                bump(&mut out, u, l.repo_level());
            }
            for (g, l) in &p.group_permissions {
                if let Some(group) = ws.groups.get(g) {
                    for m in &group.members {
                        bump(&mut out, m, l.repo_level());
                    }
                }
            }
        }
        for (u, m) in &ws.members {
            if m.role == Role::Owner {
                bump(&mut out, u, Level::Admin);
            }
        }
        // Only workspace members hold access: a stale grant for someone who left is ignored.
        out.into_iter()
            .filter(|(u, _)| ws.members.contains_key(*u))
            .map(|(u, l)| (u.to_string(), l))
            .collect()
    }

    /// One user's effective level on one repository, including public read, computed without
    /// building the repository's whole map (used on hot listing paths).
    pub fn user_repo_level(ws: &Workspace, repo: &Repository, account_id: &str) -> Option<Level> {
        let public = (!repo.is_private).then_some(Level::Read);
        let Some(m) = ws.members.get(account_id) else {
            return public;
        };
        if m.role == Role::Owner {
            return Some(Level::Admin);
        }
        let in_group = |g: &str| {
            ws.groups
                .get(g)
                .is_some_and(|g| g.members.contains(account_id))
        };
        let mut best = repo.user_permissions.get(account_id).copied();
        let mut raise = |l: Level| {
            if best.is_none_or(|b| l > b) {
                best = Some(l);
            }
        };
        for (g, l) in &repo.group_permissions {
            if in_group(g) {
                raise(*l);
            }
        }
        if let Some(p) = ws.projects.get(&repo.project_key) {
            if let Some(l) = p.user_permissions.get(account_id) {
                raise(l.repo_level());
            }
            for (g, l) in &p.group_permissions {
                if in_group(g) {
                    raise(l.repo_level());
                }
            }
        }
        match (best, public) {
            (Some(b), _) => Some(b),
            (None, p) => p,
        }
    }

    /// Every effective permission in a workspace, sorted by repository then account id: the
    /// same set `/workspaces/{ws}/permissions/repositories` reports.
    pub fn effective_permissions(&self, ws: &str) -> Vec<EffectivePermission> {
        let Some(w) = self.workspaces.get(ws) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for r in w.repositories.values() {
            for (u, l) in Self::repo_effective(w, r) {
                out.push(EffectivePermission {
                    account_id: u,
                    repo_slug: r.slug.clone(),
                    level: l,
                });
            }
        }
        out
    }

    /// Whether the user administers the project (workspace owner or project admin, directly or
    /// through a group).
    pub fn is_project_admin(ws: &Workspace, project: &Project, account_id: &str) -> bool {
        if matches!(ws.members.get(account_id), Some(m) if m.role == Role::Owner) {
            return true;
        }
        if project.user_permissions.get(account_id) == Some(&ProjectLevel::Admin) {
            return true;
        }
        project.group_permissions.iter().any(|(g, l)| {
            *l == ProjectLevel::Admin
                && ws
                    .groups
                    .get(g)
                    .is_some_and(|g| g.members.contains(account_id))
        })
    }
}

/// A stable UUID in braces derived from a name (FNV-1a based), for objects created out of band.
pub fn derived_uuid(name: &str) -> String {
    let mut h1: u64 = 0xcbf2_9ce4_8422_2325;
    let mut h2: u64 = 0x8422_2325_cbf2_9ce4;
    for b in name.bytes() {
        h1 = (h1 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        h2 = (h2 ^ u64::from(b))
            .wrapping_mul(0x100_0000_01b3)
            .rotate_left(7);
    }
    format_uuid(h1, h2)
}

/// Formats 128 bits as a braced version-4-looking UUID.
pub fn format_uuid(a: u64, b: u64) -> String {
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{{{:08x}-{:04x}-{:04x}-{:04x}-{:012x}}}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}
