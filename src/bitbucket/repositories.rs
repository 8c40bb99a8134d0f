//! Repositories of a workspace.

use super::client::{Api, BitbucketClient};
use super::error::ApiError;
use super::models::Repository;
use super::pagination::{first_page, paginate, Paged};
use super::workspaces::failed;

/// `GET /repositories/{workspace}`.
pub const REPOSITORIES: &str = "/repositories/{workspace}";
/// `GET /repositories/{workspace}/{repo_slug}`.
pub const REPOSITORY: &str = "/repositories/{workspace}/{repo_slug}";

const REPOSITORY_FIELDS: &str = "next,size,values.uuid,values.slug,values.full_name,values.name,\
values.is_private,values.project.key,values.project.uuid,values.project.name,\
values.created_on,values.updated_on";

impl BitbucketClient {
    /// Repository handler for one workspace.
    pub fn repositories<'c>(&'c self, workspace: &'c str) -> RepositoriesHandler<'c> {
        RepositoriesHandler {
            client: self,
            workspace,
        }
    }
}

/// Reads the repositories of one workspace.
#[derive(Debug)]
pub struct RepositoriesHandler<'c> {
    client: &'c BitbucketClient,
    workspace: &'c str,
}

impl RepositoriesHandler<'_> {
    /// Every repository of the workspace the caller can see, optionally filtered with BBQL
    /// (e.g. `updated_on>2026-01-01T00:00:00` or `project.key="PAY"`).
    pub fn list(&self, q: Option<&str>) -> Paged<Repository> {
        match self
            .client
            .url(Api::V2, REPOSITORIES, &["repositories", self.workspace])
        {
            Ok(url) => {
                let mut url = first_page(url, Some(REPOSITORY_FIELDS));
                if let Some(q) = q {
                    url.query_pairs_mut().append_pair("q", q);
                }
                paginate(self.client.clone(), REPOSITORIES, url)
            }
            Err(e) => failed(e),
        }
    }

    /// One repository by slug (or `{uuid}`).
    pub async fn get(&self, repo_slug: &str) -> Result<Repository, ApiError> {
        let url = self.client.url(
            Api::V2,
            REPOSITORY,
            &["repositories", self.workspace, repo_slug],
        )?;
        self.client.get_json(REPOSITORY, url).await
    }
}
