//! Explicit user and group permissions on repositories and projects (`permissions-config`), and
//! the effective repository permissions of a workspace.
//!
//! Writes need a user API token of an administrator with `write:permission:bitbucket` (PUT) or
//! `delete:permission:bitbucket` (DELETE) plus `admin:repository|project:bitbucket`. Both are
//! idempotent, which is why the retry policy may repeat them.

use super::client::{Api, BitbucketClient, Call};
use super::error::ApiError;
use super::models::{GroupPermission, PermissionLevel, RepositoryPermission, UserPermission};
use super::pagination::{first_page, paginate, Paged};
use super::workspaces::failed;
use reqwest::Method;

/// Repository user permissions list.
pub const REPO_USERS: &str = "/repositories/{workspace}/{repo_slug}/permissions-config/users";
/// One repository user permission.
pub const REPO_USER: &str =
    "/repositories/{workspace}/{repo_slug}/permissions-config/users/{selected_user_id}";
/// Repository group permissions list.
pub const REPO_GROUPS: &str = "/repositories/{workspace}/{repo_slug}/permissions-config/groups";
/// One repository group permission.
pub const REPO_GROUP: &str =
    "/repositories/{workspace}/{repo_slug}/permissions-config/groups/{group_slug}";
/// Project user permissions list.
pub const PROJECT_USERS: &str =
    "/workspaces/{workspace}/projects/{project_key}/permissions-config/users";
/// One project user permission.
pub const PROJECT_USER: &str =
    "/workspaces/{workspace}/projects/{project_key}/permissions-config/users/{selected_user_id}";
/// Project group permissions list.
pub const PROJECT_GROUPS: &str =
    "/workspaces/{workspace}/projects/{project_key}/permissions-config/groups";
/// One project group permission.
pub const PROJECT_GROUP: &str =
    "/workspaces/{workspace}/projects/{project_key}/permissions-config/groups/{group_slug}";
/// Effective permissions on every repository of a workspace.
pub const WORKSPACE_REPO_PERMISSIONS: &str = "/workspaces/{workspace}/permissions/repositories";
/// Effective permissions on one repository.
pub const WORKSPACE_REPO_PERMISSION: &str =
    "/workspaces/{workspace}/permissions/repositories/{repo_slug}";

const USER_FIELDS: &str = "next,size,values.permission,values.user.type,values.user.uuid,\
values.user.account_id,values.user.display_name,values.user.nickname";
const GROUP_FIELDS: &str = "next,size,values.permission,values.group.slug,values.group.name,\
values.group.full_slug";
const EFFECTIVE_FIELDS: &str = "next,size,values.permission,values.user.type,values.user.uuid,\
values.user.account_id,values.user.display_name,values.user.nickname,values.repository.uuid,\
values.repository.full_name,values.repository.name";

/// What a permissions-config call addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionTarget<'a> {
    /// A repository of a workspace.
    Repository {
        /// Workspace slug.
        workspace: &'a str,
        /// Repository slug.
        repo_slug: &'a str,
    },
    /// A project of a workspace.
    Project {
        /// Workspace slug.
        workspace: &'a str,
        /// Project key.
        project_key: &'a str,
    },
}

#[derive(Clone, Copy)]
enum Principal {
    Users,
    Groups,
}

impl PermissionTarget<'_> {
    fn templates(&self, principal: Principal) -> (&'static str, &'static str) {
        match (self, principal) {
            (PermissionTarget::Repository { .. }, Principal::Users) => (REPO_USERS, REPO_USER),
            (PermissionTarget::Repository { .. }, Principal::Groups) => (REPO_GROUPS, REPO_GROUP),
            (PermissionTarget::Project { .. }, Principal::Users) => (PROJECT_USERS, PROJECT_USER),
            (PermissionTarget::Project { .. }, Principal::Groups) => {
                (PROJECT_GROUPS, PROJECT_GROUP)
            }
        }
    }

    fn segments(&self, principal: Principal) -> Vec<&str> {
        let mut segments = match *self {
            PermissionTarget::Repository {
                workspace,
                repo_slug,
            } => vec!["repositories", workspace, repo_slug],
            PermissionTarget::Project {
                workspace,
                project_key,
            } => vec!["workspaces", workspace, "projects", project_key],
        };
        segments.push("permissions-config");
        segments.push(match principal {
            Principal::Users => "users",
            Principal::Groups => "groups",
        });
        segments
    }
}

impl BitbucketClient {
    /// Permission handler.
    pub fn permissions(&self) -> PermissionsHandler<'_> {
        PermissionsHandler { client: self }
    }
}

/// Reads and changes explicit permissions.
#[derive(Debug)]
pub struct PermissionsHandler<'c> {
    client: &'c BitbucketClient,
}

impl PermissionsHandler<'_> {
    fn list<T>(&self, target: PermissionTarget<'_>, principal: Principal, fields: &str) -> Paged<T>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        let (endpoint, _) = target.templates(principal);
        match self
            .client
            .url(Api::V2, endpoint, &target.segments(principal))
        {
            Ok(url) => paginate(self.client.clone(), endpoint, first_page(url, Some(fields))),
            Err(e) => failed(e),
        }
    }

    fn one_url(
        &self,
        target: PermissionTarget<'_>,
        principal: Principal,
        id: &str,
    ) -> Result<(&'static str, url::Url), ApiError> {
        let (_, endpoint) = target.templates(principal);
        let mut segments = target.segments(principal);
        segments.push(id);
        Ok((endpoint, self.client.url(Api::V2, endpoint, &segments)?))
    }

    async fn put<T: serde::de::DeserializeOwned>(
        &self,
        target: PermissionTarget<'_>,
        principal: Principal,
        id: &str,
        level: PermissionLevel,
    ) -> Result<T, ApiError> {
        let (endpoint, url) = self.one_url(target, principal, id)?;
        let answer = self
            .client
            .send(Call {
                method: Method::PUT,
                endpoint,
                url,
                body: Some(serde_json::json!({ "permission": level.as_str() })),
            })
            .await?;
        self.client.decode(endpoint, &answer.body)
    }

    async fn delete(
        &self,
        target: PermissionTarget<'_>,
        principal: Principal,
        id: &str,
    ) -> Result<(), ApiError> {
        let (endpoint, url) = self.one_url(target, principal, id)?;
        self.client
            .send(Call {
                method: Method::DELETE,
                endpoint,
                url,
                body: None,
            })
            .await?;
        Ok(())
    }

    /// Explicit user permissions on the target.
    pub fn list_users(&self, target: PermissionTarget<'_>) -> Paged<UserPermission> {
        self.list(target, Principal::Users, USER_FIELDS)
    }

    /// Explicit group permissions on the target.
    pub fn list_groups(&self, target: PermissionTarget<'_>) -> Paged<GroupPermission> {
        self.list(target, Principal::Groups, GROUP_FIELDS)
    }

    /// One user's explicit permission (`selected_user_id`: account ID or `{uuid}`); 404 when the
    /// user has none (or the target does not exist).
    pub async fn get_user(
        &self,
        target: PermissionTarget<'_>,
        user_id: &str,
    ) -> Result<UserPermission, ApiError> {
        let (endpoint, url) = self.one_url(target, Principal::Users, user_id)?;
        self.client.get_json(endpoint, url).await
    }

    /// One group's explicit permission.
    pub async fn get_group(
        &self,
        target: PermissionTarget<'_>,
        group_slug: &str,
    ) -> Result<GroupPermission, ApiError> {
        let (endpoint, url) = self.one_url(target, Principal::Groups, group_slug)?;
        self.client.get_json(endpoint, url).await
    }

    /// Sets a user's explicit level (creating or replacing it).
    pub async fn put_user(
        &self,
        target: PermissionTarget<'_>,
        user_id: &str,
        level: PermissionLevel,
    ) -> Result<UserPermission, ApiError> {
        self.put(target, Principal::Users, user_id, level).await
    }

    /// Sets a group's explicit level (creating or replacing it).
    pub async fn put_group(
        &self,
        target: PermissionTarget<'_>,
        group_slug: &str,
        level: PermissionLevel,
    ) -> Result<GroupPermission, ApiError> {
        self.put(target, Principal::Groups, group_slug, level).await
    }

    /// Removes a user's explicit permission. A 404 is returned as an error: it may mean the
    /// grant is already gone or that the target does not exist, and only the caller knows which.
    pub async fn delete_user(
        &self,
        target: PermissionTarget<'_>,
        user_id: &str,
    ) -> Result<(), ApiError> {
        self.delete(target, Principal::Users, user_id).await
    }

    /// Removes a group's explicit permission (404 as for [`Self::delete_user`]).
    pub async fn delete_group(
        &self,
        target: PermissionTarget<'_>,
        group_slug: &str,
    ) -> Result<(), ApiError> {
        self.delete(target, Principal::Groups, group_slug).await
    }

    /// Every user's effective (highest) permission on every repository of the workspace
    /// (workspace administrators only), optionally filtered with BBQL such as `permission>"read"`.
    pub fn workspace_repositories(
        &self,
        workspace: &str,
        q: Option<&str>,
    ) -> Paged<RepositoryPermission> {
        self.effective(
            WORKSPACE_REPO_PERMISSIONS,
            &["workspaces", workspace, "permissions", "repositories"],
            q,
        )
    }

    /// Every user's effective permission on one repository (repository administrators only).
    pub fn repository_effective(
        &self,
        workspace: &str,
        repo_slug: &str,
        q: Option<&str>,
    ) -> Paged<RepositoryPermission> {
        self.effective(
            WORKSPACE_REPO_PERMISSION,
            &[
                "workspaces",
                workspace,
                "permissions",
                "repositories",
                repo_slug,
            ],
            q,
        )
    }

    fn effective(
        &self,
        endpoint: &'static str,
        segments: &[&str],
        q: Option<&str>,
    ) -> Paged<RepositoryPermission> {
        match self.client.url(Api::V2, endpoint, segments) {
            Ok(url) => {
                let mut url = first_page(url, Some(EFFECTIVE_FIELDS));
                if let Some(q) = q {
                    url.query_pairs_mut().append_pair("q", q);
                }
                paginate(self.client.clone(), endpoint, url)
            }
            Err(e) => failed(e),
        }
    }
}
