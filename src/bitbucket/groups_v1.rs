//! The 1.0 groups API, the only Bitbucket API that changes group membership.
//!
//! Atlassian keeps it "temporarily"; for workspaces administered in admin.atlassian.com it is
//! read-only (writes answer 403/405/410), and it needs the workspace *slug*. Listings are bare
//! arrays, not pages.

use super::client::{Api, BitbucketClient, Call};
use super::error::ApiError;
use super::models::{GroupV1, MemberV1};
use reqwest::Method;

/// `GET /1.0/groups/{workspace}`.
pub const GROUPS: &str = "/1.0/groups/{workspace}";
/// `GET /1.0/groups/{workspace}/{group_slug}/members`.
pub const GROUP_MEMBERS: &str = "/1.0/groups/{workspace}/{group_slug}/members";
/// `PUT|DELETE /1.0/groups/{workspace}/{group_slug}/members/{member}`.
pub const GROUP_MEMBER: &str = "/1.0/groups/{workspace}/{group_slug}/members/{member}";

impl BitbucketClient {
    /// 1.0 group handler for one workspace (by slug).
    pub fn groups_v1<'c>(&'c self, workspace: &'c str) -> GroupsV1Handler<'c> {
        GroupsV1Handler {
            client: self,
            workspace,
        }
    }
}

/// Reads groups and changes their membership through the 1.0 API.
#[derive(Debug)]
pub struct GroupsV1Handler<'c> {
    client: &'c BitbucketClient,
    workspace: &'c str,
}

impl GroupsV1Handler<'_> {
    /// Every group of the workspace, with members inline.
    pub async fn list(&self) -> Result<Vec<GroupV1>, ApiError> {
        let url = self
            .client
            .url(Api::V1, GROUPS, &["groups", self.workspace])?;
        self.client.get_json(GROUPS, url).await
    }

    /// The members of one group.
    pub async fn members(&self, group_slug: &str) -> Result<Vec<MemberV1>, ApiError> {
        let url = self.client.url(
            Api::V1,
            GROUP_MEMBERS,
            &["groups", self.workspace, group_slug, "members"],
        )?;
        self.client.get_json(GROUP_MEMBERS, url).await
    }

    /// Adds a member (`{uuid}` or account ID) to a group; adding an existing member is harmless.
    pub async fn add_member(
        &self,
        group_slug: &str,
        member: &str,
    ) -> Result<Option<MemberV1>, ApiError> {
        let url = self.client.url(
            Api::V1,
            GROUP_MEMBER,
            &["groups", self.workspace, group_slug, "members", member],
        )?;
        let answer = self
            .client
            .send(Call {
                method: Method::PUT,
                endpoint: GROUP_MEMBER,
                url,
                body: Some(serde_json::json!({})),
            })
            .await?;
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        self.client.decode(GROUP_MEMBER, &answer.body).map(Some)
    }

    /// Removes a member from a group.
    pub async fn remove_member(&self, group_slug: &str, member: &str) -> Result<(), ApiError> {
        let url = self.client.url(
            Api::V1,
            GROUP_MEMBER,
            &["groups", self.workspace, group_slug, "members", member],
        )?;
        self.client
            .send(Call {
                method: Method::DELETE,
                endpoint: GROUP_MEMBER,
                url,
                body: None,
            })
            .await?;
        Ok(())
    }
}
