//! A grant request, independent of the CLI or an API, and its preflight: the policy, then the
//! account (a workspace member, not an owner: Bitbucket refuses others, and an owner's admin
//! cannot be narrowed) and the target. Every refusal names its reason; the preflight only reads.

use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use super::policy::check_policy;
use super::GrantError;
use crate::bitbucket::{BitbucketClient, ErrorKind, WorkspaceRole};
use crate::config::GrantPolicy;
use crate::domain::{GrantLevel, GrantTarget, Principal, SlotKey};

/// How long a grant lasts, as asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// For this long from now.
    For(std::time::Duration),
    /// Until this time.
    Until(DateTime<Utc>),
    /// No end.
    Permanent,
    /// The policy's default duration.
    PolicyDefault,
}

/// A grant as asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRequest {
    /// Who (an account id, already resolved from an email, or a group).
    pub principal: Principal,
    /// What.
    pub target: GrantTarget,
    /// Which level (`member` for a membership).
    pub level: GrantLevel,
    /// How long.
    pub duration: Duration,
    /// Why.
    pub reason: Option<String>,
    /// The ticket.
    pub ticket: Option<String>,
    /// Who asked.
    pub requested_by: String,
}

/// A grant that passed the preflight, with its end decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantPlan {
    /// Who.
    pub principal: Principal,
    /// What.
    pub target: GrantTarget,
    /// Which level.
    pub level: GrantLevel,
    /// When it ends (`None`: standing).
    pub expires_at: Option<DateTime<Utc>>,
    /// Who asked.
    pub requested_by: String,
    /// Why.
    pub reason: Option<String>,
    /// The ticket.
    pub ticket: Option<String>,
}

impl GrantPlan {
    /// The slot it acts on.
    pub fn slot(&self) -> SlotKey {
        SlotKey {
            principal: self.principal.clone(),
            target: self.target.clone(),
        }
    }
}

/// The outcome of a preflight.
pub type Preflight = Result<GrantPlan, GrantError>;

fn refused(message: String) -> GrantError {
    GrantError::Refused(message)
}

/// Checks a request against the policy and Bitbucket (reads only) and decides its end.
pub async fn preflight(
    client: &BitbucketClient,
    policy: &GrantPolicy,
    now: DateTime<Utc>,
    request: &GrantRequest,
) -> Preflight {
    let expires_at = match request.duration {
        Duration::For(d) => Some(
            now + chrono::Duration::from_std(d)
                .map_err(|_| refused(format!("the duration {d:?} is too long")))?,
        ),
        Duration::Until(at) => Some(at),
        Duration::Permanent => None,
        Duration::PolicyDefault => Some(
            now + chrono::Duration::from_std(policy.default_duration)
                .map_err(|_| refused("the policy's default duration is too long".to_owned()))?,
        ),
    };
    check_policy(
        policy,
        &request.target,
        request.level,
        now,
        expires_at,
        request.ticket.as_deref(),
    )
    .map_err(|e| refused(e.to_string()))?;
    if matches!(request.target, GrantTarget::GroupMembership { .. })
        && !matches!(request.principal, Principal::User { .. })
    {
        return Err(refused(
            "only a user can be put into a group; give --user".to_owned(),
        ));
    }
    let client = client.for_grants();
    let ws = request.target.workspace().as_str();
    check_target(&client, &request.target).await?;
    if let Principal::User { account_id } = &request.principal {
        let query = format!(
            "user.account_id=\"{}\"",
            account_id.as_str().replace('"', "")
        );
        let members: Vec<_> = client
            .workspaces()
            .permissions_filtered(ws, Some(&query))
            .try_collect()
            .await?;
        let Some(member) = members
            .iter()
            .find(|m| m.user.account_id.as_deref() == Some(account_id.as_str()))
        else {
            return Err(refused(format!(
                "the account {account_id} is not a member of the workspace {ws} (Bitbucket refuses \
                 permissions for non-members); invite them to the workspace first"
            )));
        };
        if member.permission == Some(WorkspaceRole::Owner)
            && !matches!(request.target, GrantTarget::GroupMembership { .. })
        {
            return Err(refused(format!(
                "the account {account_id} is an owner of the workspace {ws}: an owner is admin on \
                 every repository, and a grant could not narrow that"
            )));
        }
    }
    Ok(GrantPlan {
        principal: request.principal.clone(),
        target: request.target.clone(),
        level: request.level,
        expires_at,
        requested_by: request.requested_by.clone(),
        reason: request.reason.clone(),
        ticket: request.ticket.clone(),
    })
}

/// The target must exist: a 404 becomes a refusal that names it.
async fn check_target(client: &BitbucketClient, target: &GrantTarget) -> Result<(), GrantError> {
    let found = match target {
        GrantTarget::Repository { repository } => client
            .repositories(repository.workspace.as_str())
            .get(repository.slug.as_str())
            .await
            .map(|_| true),
        GrantTarget::Project { project } => client
            .projects(project.workspace.as_str())
            .get(project.key.as_str())
            .await
            .map(|_| true),
        GrantTarget::GroupMembership { workspace, group } => client
            .groups_v1(workspace.as_str())
            .list()
            .await
            .map(|groups| groups.iter().any(|g| g.slug == group.as_str())),
    };
    match found {
        Ok(true) => Ok(()),
        Ok(false) => Err(refused(format!("{target} does not exist"))),
        Err(e) if e.kind == ErrorKind::NotFound => Err(refused(format!(
            "{target} does not exist (Bitbucket answered 404)"
        ))),
        Err(e) => Err(e.into()),
    }
}
