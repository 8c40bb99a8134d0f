//! The current user and workspaces: discovery (`/user/workspaces`), members, roles, and the
//! admin-only lookup of members by e-mail address.

use super::client::{Api, BitbucketClient};
use super::error::{ApiError, ErrorKind};
use super::models::{Account, Workspace, WorkspaceAccess, WorkspaceMembership};
use super::pagination::{first_page, paginate, Paged};

/// `GET /user`.
pub const USER: &str = "/user";
/// `GET /user/workspaces`.
pub const USER_WORKSPACES: &str = "/user/workspaces";
/// `GET /user/workspaces/{workspace}/permission`.
pub const USER_WORKSPACE_PERMISSION: &str = "/user/workspaces/{workspace}/permission";
/// `GET /workspaces/{workspace}`.
pub const WORKSPACE: &str = "/workspaces/{workspace}";
/// `GET /workspaces/{workspace}/members`.
pub const WORKSPACE_MEMBERS: &str = "/workspaces/{workspace}/members";
/// `GET /workspaces/{workspace}/permissions`.
pub const WORKSPACE_PERMISSIONS: &str = "/workspaces/{workspace}/permissions";

/// Bitbucket refuses more addresses than this in one `user.email IN (...)` filter.
pub const MAX_EMAILS_PER_QUERY: usize = 90;

const ACCESS_FIELDS: &str =
    "next,size,values.administrator,values.workspace.uuid,values.workspace.slug,values.workspace.name";
const MEMBER_FIELDS: &str = "next,size,values.permission,values.added_on,values.last_accessed,\
values.user.type,values.user.uuid,values.user.account_id,values.user.display_name,values.user.nickname";
const EMAIL_FIELDS: &str = "next,size,values.user.email,values.user.type,values.user.uuid,\
values.user.account_id,values.user.display_name,values.user.nickname";

impl BitbucketClient {
    /// The account the credentials belong to (`GET /2.0/user`).
    pub async fn user(&self) -> Result<Account, ApiError> {
        let url = self.url(Api::V2, USER, &["user"])?;
        self.get_json(USER, url).await
    }

    /// Workspace handler.
    pub fn workspaces(&self) -> WorkspacesHandler<'_> {
        WorkspacesHandler { client: self }
    }
}

/// Reads workspaces and their members.
#[derive(Debug)]
pub struct WorkspacesHandler<'c> {
    client: &'c BitbucketClient,
}

impl WorkspacesHandler<'_> {
    /// Every workspace the caller can see, each with whether the caller administers it.
    pub fn list(&self) -> Paged<WorkspaceAccess> {
        self.list_filtered(None)
    }

    /// Like [`Self::list`], keeping only workspaces the caller does (`Some(true)`) or does not
    /// (`Some(false)`) administer.
    pub fn list_filtered(&self, administrator: Option<bool>) -> Paged<WorkspaceAccess> {
        self.paged(
            USER_WORKSPACES,
            &["user", "workspaces"],
            ACCESS_FIELDS,
            |url| {
                if let Some(admin) = administrator {
                    url.query_pairs_mut()
                        .append_pair("administrator", if admin { "true" } else { "false" });
                }
            },
        )
    }

    /// One workspace.
    pub async fn get(&self, workspace: &str) -> Result<Workspace, ApiError> {
        let url = self
            .client
            .url(Api::V2, WORKSPACE, &["workspaces", workspace])?;
        self.client.get_json(WORKSPACE, url).await
    }

    /// The caller's own role in a workspace.
    pub async fn my_permission(&self, workspace: &str) -> Result<WorkspaceMembership, ApiError> {
        let url = self.client.url(
            Api::V2,
            USER_WORKSPACE_PERMISSION,
            &["user", "workspaces", workspace, "permission"],
        )?;
        self.client.get_json(USER_WORKSPACE_PERMISSION, url).await
    }

    /// The members of a workspace (without their role).
    pub fn members(&self, workspace: &str) -> Paged<WorkspaceMembership> {
        self.paged(
            WORKSPACE_MEMBERS,
            &["workspaces", workspace, "members"],
            MEMBER_FIELDS,
            |_| {},
        )
    }

    /// The members of a workspace with their role (`owner`, `create-project`, `member`).
    pub fn permissions(&self, workspace: &str) -> Paged<WorkspaceMembership> {
        self.permissions_filtered(workspace, None)
    }

    /// Like [`Self::permissions`] with a BBQL filter such as `permission="owner"`.
    pub fn permissions_filtered(
        &self,
        workspace: &str,
        q: Option<&str>,
    ) -> Paged<WorkspaceMembership> {
        self.paged(
            WORKSPACE_PERMISSIONS,
            &["workspaces", workspace, "permissions"],
            MEMBER_FIELDS,
            |url| {
                if let Some(q) = q {
                    url.query_pairs_mut().append_pair("q", q);
                }
            },
        )
    }

    /// The members whose Atlassian e-mail is one of `emails`, with `user.email` filled in
    /// (workspace administrators only). Addresses are sent in chunks of at most
    /// [`MAX_EMAILS_PER_QUERY`]; addresses that match nobody are simply absent from the result.
    pub async fn members_by_email(
        &self,
        workspace: &str,
        emails: &[String],
    ) -> Result<Vec<WorkspaceMembership>, ApiError> {
        let mut found = Vec::new();
        for chunk in emails.chunks(MAX_EMAILS_PER_QUERY) {
            let q = email_filter(chunk)?;
            let page = self.paged(
                WORKSPACE_MEMBERS,
                &["workspaces", workspace, "members"],
                EMAIL_FIELDS,
                |url| {
                    url.query_pairs_mut().append_pair("q", &q);
                },
            );
            found.extend(page.collect_all().await?);
        }
        Ok(found)
    }

    fn paged<T, F>(
        &self,
        endpoint: &'static str,
        segments: &[&str],
        fields: &str,
        query: F,
    ) -> Paged<T>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
        F: FnOnce(&mut url::Url),
    {
        match self.client.url(Api::V2, endpoint, segments) {
            Ok(url) => {
                let mut url = first_page(url, Some(fields));
                query(&mut url);
                paginate(self.client.clone(), endpoint, url)
            }
            Err(e) => failed(e),
        }
    }
}

/// A stream that yields one error, for requests that could not even be built.
pub(crate) fn failed<T: Send + 'static>(error: ApiError) -> Paged<T> {
    Paged::from_error(error)
}

/// `user.email IN ("a@x.com","b@x.com")`, refusing addresses that would break the quoting.
fn email_filter(emails: &[String]) -> Result<String, ApiError> {
    let mut quoted = Vec::with_capacity(emails.len());
    for email in emails {
        if email.contains('"') || email.contains('\\') || !email.contains('@') {
            return Err(ApiError::local(
                ErrorKind::BadRequest,
                WORKSPACE_MEMBERS,
                format!("`{email}` is not an e-mail address that can be looked up"),
            ));
        }
        quoted.push(format!("\"{email}\""));
    }
    Ok(format!("user.email IN ({})", quoted.join(",")))
}
