//! Projects of a workspace.

use super::client::{Api, BitbucketClient};
use super::error::ApiError;
use super::models::Project;
use super::pagination::{first_page, paginate, Paged};
use super::workspaces::failed;

/// `GET /workspaces/{workspace}/projects`.
pub const PROJECTS: &str = "/workspaces/{workspace}/projects";
/// `GET /workspaces/{workspace}/projects/{project_key}`.
pub const PROJECT: &str = "/workspaces/{workspace}/projects/{project_key}";

const PROJECT_FIELDS: &str = "next,size,values.key,values.uuid,values.name,values.description,\
values.is_private,values.created_on,values.updated_on";

impl BitbucketClient {
    /// Project handler for one workspace.
    pub fn projects<'c>(&'c self, workspace: &'c str) -> ProjectsHandler<'c> {
        ProjectsHandler {
            client: self,
            workspace,
        }
    }
}

/// Reads the projects of one workspace.
#[derive(Debug)]
pub struct ProjectsHandler<'c> {
    client: &'c BitbucketClient,
    workspace: &'c str,
}

impl ProjectsHandler<'_> {
    /// Every project of the workspace.
    pub fn list(&self) -> Paged<Project> {
        match self.client.url(
            Api::V2,
            PROJECTS,
            &["workspaces", self.workspace, "projects"],
        ) {
            Ok(url) => paginate(
                self.client.clone(),
                PROJECTS,
                first_page(url, Some(PROJECT_FIELDS)),
            ),
            Err(e) => failed(e),
        }
    }

    /// One project by key.
    pub async fn get(&self, project_key: &str) -> Result<Project, ApiError> {
        let url = self.client.url(
            Api::V2,
            PROJECT,
            &["workspaces", self.workspace, "projects", project_key],
        )?;
        self.client.get_json(PROJECT, url).await
    }
}
