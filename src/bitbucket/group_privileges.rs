//! The 1.0 group-privileges listing (`GET /1.0/group-privileges/{workspace}`): the explicit
//! group permissions of every repository of a workspace in one unpaginated JSON array, one of
//! the 1.0 endpoints Atlassian still keeps (bitbucket-api.md sections 3.5 and 12).
//!
//! One such request replaces a `permissions-config/groups` listing per repository, so the sync
//! uses it when Bitbucket answers it. Callers tell the answers apart by [`ErrorKind`]: 403, 404
//! and 410 (`Forbidden`, `NotFound`, `Gone`) mean Bitbucket refuses or retired the endpoint, and
//! a body of an unexpected shape is a `Decode` error, never a panic.
//!
//! [`ErrorKind`]: super::ErrorKind

use super::client::{Api, BitbucketClient};
use super::error::ApiError;
use super::models::GroupPrivilegeV1;

/// `GET /1.0/group-privileges/{workspace}`.
pub const GROUP_PRIVILEGES: &str = "/1.0/group-privileges/{workspace}";

impl BitbucketClient {
    /// Every explicit group permission on the repositories of a workspace (by slug), in one
    /// request.
    pub async fn group_privileges(
        &self,
        workspace: &str,
    ) -> Result<Vec<GroupPrivilegeV1>, ApiError> {
        let url = self.url(Api::V1, GROUP_PRIVILEGES, &["group-privileges", workspace])?;
        self.get_json(GROUP_PRIVILEGES, url).await
    }
}
