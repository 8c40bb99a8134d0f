//! The one place that reads and sets a slot's level in Bitbucket: permissions-config for users
//! and groups on repositories and projects, the 1.0 groups API for memberships. Every request
//! goes through a client handle of class [`crate::bitbucket::RequestClass::Grant`].

use crate::bitbucket::{ApiError, BitbucketClient, ErrorKind, PermissionLevel, PermissionTarget};
use crate::domain::{GrantLevel, GrantTarget, Principal, SlotKey};

/// One Bitbucket call a grant, revoke or restore would make, for `--dry-run`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedCall {
    /// `GET`, `PUT` or `DELETE`.
    pub method: &'static str,
    /// The path after the API host.
    pub path: String,
}

fn permission_target(target: &GrantTarget) -> Option<PermissionTarget<'_>> {
    match target {
        GrantTarget::Repository { repository } => Some(PermissionTarget::Repository {
            workspace: repository.workspace.as_str(),
            repo_slug: repository.slug.as_str(),
        }),
        GrantTarget::Project { project } => Some(PermissionTarget::Project {
            workspace: project.workspace.as_str(),
            project_key: project.key.as_str(),
        }),
        GrantTarget::GroupMembership { .. } => None,
    }
}

fn principal_id(principal: &Principal) -> &str {
    match principal {
        Principal::User { account_id } => account_id.as_str(),
        Principal::Group { slug } => slug.as_str(),
    }
}

/// The level a permission answer stands for (`none`, or a value this client does not know,
/// counts as nothing: the connector never sets either).
fn from_wire(level: PermissionLevel) -> Option<GrantLevel> {
    match level {
        PermissionLevel::Read => Some(GrantLevel::Read),
        PermissionLevel::Write => Some(GrantLevel::Write),
        PermissionLevel::CreateRepo => Some(GrantLevel::CreateRepo),
        PermissionLevel::Admin => Some(GrantLevel::Admin),
        PermissionLevel::None | PermissionLevel::Unknown => None,
    }
}

fn to_wire(level: GrantLevel) -> PermissionLevel {
    match level {
        GrantLevel::Read => PermissionLevel::Read,
        GrantLevel::Write => PermissionLevel::Write,
        GrantLevel::CreateRepo => PermissionLevel::CreateRepo,
        // Memberships never reach permissions-config; admin is the only other level.
        GrantLevel::Admin | GrantLevel::Member => PermissionLevel::Admin,
    }
}

/// The slot's explicit level in Bitbucket now (`None`: no explicit permission, not a member).
pub(super) async fn read_level(
    client: &BitbucketClient,
    slot: &SlotKey,
) -> Result<Option<GrantLevel>, ApiError> {
    let id = principal_id(&slot.principal);
    let Some(target) = permission_target(&slot.target) else {
        let GrantTarget::GroupMembership { workspace, group } = &slot.target else {
            unreachable!("only memberships have no permission target")
        };
        let members = client
            .groups_v1(workspace.as_str())
            .members(group.as_str())
            .await?;
        let member = members
            .iter()
            .any(|m| m.account_id.as_deref() == Some(id) || m.uuid.as_deref() == Some(id));
        return Ok(member.then_some(GrantLevel::Member));
    };
    let answer = match &slot.principal {
        Principal::User { .. } => client
            .permissions()
            .get_user(target, id)
            .await
            .map(|p| p.permission),
        Principal::Group { .. } => client
            .permissions()
            .get_group(target, id)
            .await
            .map(|p| p.permission),
    };
    match answer {
        Ok(level) => Ok(from_wire(level)),
        // No explicit permission: the target's existence was checked by the preflight.
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Makes Bitbucket hold `level` on the slot: PUT a level, or DELETE when `None` (a 404 on
/// DELETE means it is already gone, which is what was wanted).
pub(super) async fn set_level(
    client: &BitbucketClient,
    slot: &SlotKey,
    level: Option<GrantLevel>,
) -> Result<(), ApiError> {
    let id = principal_id(&slot.principal);
    let Some(target) = permission_target(&slot.target) else {
        let GrantTarget::GroupMembership { workspace, group } = &slot.target else {
            unreachable!("only memberships have no permission target")
        };
        let groups = client.groups_v1(workspace.as_str());
        let result = match level {
            Some(_) => groups.add_member(group.as_str(), id).await.map(|_| ()),
            None => match groups.remove_member(group.as_str(), id).await {
                Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
                other => other,
            },
        };
        return result.map_err(|mut e| {
            // 403, 405 and 410 are how Bitbucket says group writes are off for the workspace
            // (administered in admin.atlassian.com, or the 1.0 API retired).
            if matches!(e.kind, ErrorKind::Forbidden | ErrorKind::Gone) || e.status == Some(405) {
                e.hint = format!(
                    "Bitbucket refuses group membership changes in the workspace {workspace} \
                     (groups administered in admin.atlassian.com, or the 1.0 groups API \
                     disabled); change the membership in admin.atlassian.com instead"
                );
            }
            e
        });
    };
    let permissions = client.permissions();
    let result = match (&slot.principal, level) {
        (Principal::User { .. }, Some(level)) => permissions
            .put_user(target, id, to_wire(level))
            .await
            .map(|_| ()),
        (Principal::Group { .. }, Some(level)) => permissions
            .put_group(target, id, to_wire(level))
            .await
            .map(|_| ()),
        (Principal::User { .. }, None) => permissions.delete_user(target, id).await,
        (Principal::Group { .. }, None) => permissions.delete_group(target, id).await,
    };
    match result {
        Err(e) if level.is_none() && e.kind == ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The path of the slot's one permission (or membership), as `--dry-run` prints it.
fn slot_path(slot: &SlotKey) -> String {
    let id = principal_id(&slot.principal);
    let kind = match slot.principal {
        Principal::User { .. } => "users",
        Principal::Group { .. } => "groups",
    };
    match &slot.target {
        GrantTarget::Repository { repository } => format!(
            "/2.0/repositories/{}/{}/permissions-config/{kind}/{id}",
            repository.workspace, repository.slug
        ),
        GrantTarget::Project { project } => format!(
            "/2.0/workspaces/{}/projects/{}/permissions-config/{kind}/{id}",
            project.workspace, project.key
        ),
        GrantTarget::GroupMembership { workspace, group } => {
            format!("/1.0/groups/{workspace}/{group}/members/{id}")
        }
    }
}

/// The calls that read the slot and, when `set` is given, change it to that level
/// (`Some(None)`: remove it; `None`: no change would be made).
pub fn describe_calls(slot: &SlotKey, set: Option<Option<GrantLevel>>) -> Vec<PlannedCall> {
    let path = slot_path(slot);
    let read = match &slot.target {
        GrantTarget::GroupMembership { workspace, group } => PlannedCall {
            method: "GET",
            path: format!("/1.0/groups/{workspace}/{group}/members"),
        },
        _ => PlannedCall {
            method: "GET",
            path: path.clone(),
        },
    };
    let mut calls = vec![read];
    match set {
        Some(Some(_)) => calls.push(PlannedCall {
            method: "PUT",
            path,
        }),
        Some(None) => calls.push(PlannedCall {
            method: "DELETE",
            path,
        }),
        None => {}
    }
    calls
}
