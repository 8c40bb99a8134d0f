//! Workspace webhooks (`/workspaces/{workspace}/hooks`, owners only, the `webhook` scope): list,
//! create with a secret, delete. `webhook install` and `uninstall` use them.

use reqwest::Method;
use serde::Deserialize;

use super::client::{Api, BitbucketClient, Call};
use super::error::ApiError;
use super::pagination::{first_page, paginate, Paged};
use super::workspaces::failed;

/// `GET`/`POST /workspaces/{workspace}/hooks`.
pub const HOOKS: &str = "/workspaces/{workspace}/hooks";
/// `DELETE /workspaces/{workspace}/hooks/{uid}`.
pub const HOOK: &str = "/workspaces/{workspace}/hooks/{uid}";

/// A workspace webhook as Bitbucket lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct WebhookSubscription {
    /// Its id, with braces.
    pub uuid: String,
    /// Where deliveries go.
    pub url: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// The events it sends.
    #[serde(default)]
    pub events: Vec<String>,
}

impl BitbucketClient {
    /// Webhook handler for one workspace.
    pub fn hooks<'c>(&'c self, workspace: &'c str) -> HooksHandler<'c> {
        HooksHandler {
            client: self,
            workspace,
        }
    }
}

/// Lists, creates and deletes a workspace's webhooks.
#[derive(Debug)]
pub struct HooksHandler<'c> {
    client: &'c BitbucketClient,
    workspace: &'c str,
}

impl HooksHandler<'_> {
    /// Every webhook of the workspace.
    pub fn list(&self) -> Paged<WebhookSubscription> {
        match self
            .client
            .url(Api::V2, HOOKS, &["workspaces", self.workspace, "hooks"])
        {
            Ok(url) => paginate(self.client.clone(), HOOKS, first_page(url, None)),
            Err(e) => failed(e),
        }
    }

    /// Registers a webhook for `events` to `url`, signed with `secret`.
    pub async fn create(
        &self,
        url: &str,
        description: &str,
        events: &[&str],
        secret: &str,
    ) -> Result<WebhookSubscription, ApiError> {
        let endpoint = self
            .client
            .url(Api::V2, HOOKS, &["workspaces", self.workspace, "hooks"])?;
        let answer = self
            .client
            .send(Call {
                method: Method::POST,
                endpoint: HOOKS,
                url: endpoint,
                body: Some(serde_json::json!({
                    "url": url,
                    "description": description,
                    "active": true,
                    "events": events,
                    "secret": secret,
                })),
            })
            .await?;
        self.client.decode(HOOKS, &answer.body)
    }

    /// Removes a webhook.
    pub async fn delete(&self, uid: &str) -> Result<(), ApiError> {
        let url = self
            .client
            .url(Api::V2, HOOK, &["workspaces", self.workspace, "hooks", uid])?;
        self.client
            .send(Call {
                method: Method::DELETE,
                endpoint: HOOK,
                url,
                body: None,
            })
            .await?;
        Ok(())
    }
}
