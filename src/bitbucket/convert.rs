//! Wire to domain: the one place where Bitbucket's JSON models become domain values.
//!
//! Every default the wire leaves open is decided here, once, so that the sync (and later the
//! grants) never guess:
//! - a missing `is_private` means **private**: the field disappears under `fields=` trimming and
//!   for workspaces administered in admin.atlassian.com, and treating an unknown repository as
//!   public would give every account a read it may not have;
//! - an unknown or missing workspace role means **member**, the least a listed member has (an
//!   unknown value is logged with the value, so a new role shows up in the logs);
//! - an account is keyed by its Atlassian account id, else by its UUID (rare app users have no
//!   account id; Bitbucket accepts the UUID in paths too); an account with neither is dropped;
//! - an account's kind is its `type` (`user`, `app_user`, `team`); a missing or unknown type is
//!   `unknown`, which never overwrites a kind the store already knows;
//! - a permission level the listing cannot hold (`none`, an unknown value) is no permission.

use super::models::{
    Account as WireAccount, GroupPrivilegeV1, GroupV1, MemberV1, PermissionLevel,
    Project as WireProject, Repository as WireRepository, Workspace as WireWorkspace,
    WorkspaceRole as WireRole,
};
use crate::domain::{
    Account, AccountId, AccountKind, Group, GroupSlug, Project, ProjectKey, ProjectLevel,
    RepoLevel, RepoSlug, Repository, Workspace, WorkspaceRole, WorkspaceSlug,
};
use tracing::warn;

/// Privacy when the wire does not say: private (see the module documentation).
pub fn privacy(is_private: Option<bool>) -> bool {
    is_private.unwrap_or(true)
}

/// The one account-id-or-uuid rule shared by 2.0 accounts and 1.0 group members.
fn account_from_parts(
    account_id: Option<&String>,
    uuid: Option<&String>,
    display_name: Option<&String>,
    nickname: Option<&String>,
    kind: AccountKind,
) -> Option<Account> {
    let id = account_id.or(uuid)?;
    Some(Account {
        account_id: AccountId::parse(id.clone()).ok()?,
        uuid: uuid.cloned(),
        display_name: display_name.cloned().unwrap_or_default(),
        nickname: nickname.cloned(),
        kind,
    })
}

impl WireAccount {
    /// The domain account, `None` when the account has neither an account id nor a UUID.
    pub fn to_domain(&self) -> Option<Account> {
        account_from_parts(
            self.account_id.as_ref(),
            self.uuid.as_ref(),
            self.display_name.as_ref(),
            self.nickname.as_ref(),
            AccountKind::parse(self.kind.as_deref()),
        )
    }
}

impl MemberV1 {
    /// The domain account of a 1.0 group member, by the same rule as [`WireAccount::to_domain`].
    pub fn to_domain(&self) -> Option<Account> {
        account_from_parts(
            self.account_id.as_ref(),
            self.uuid.as_ref(),
            self.display_name.as_ref(),
            self.nickname.as_ref(),
            // 1.0 group members carry no type.
            AccountKind::Unknown,
        )
    }
}

/// The domain role of a listed member: unknown or missing roles are plain membership.
pub fn workspace_role(role: Option<&WireRole>) -> WorkspaceRole {
    match role {
        Some(WireRole::Owner) => WorkspaceRole::Owner,
        Some(WireRole::CreateProject) => WorkspaceRole::CreateProject,
        Some(WireRole::Collaborator) => WorkspaceRole::Collaborator,
        Some(WireRole::Member) | None => WorkspaceRole::Member,
        Some(WireRole::Unknown(value)) => {
            warn!(
                role = %value,
                "a workspace role this connector does not know; counted as member"
            );
            WorkspaceRole::Member
        }
    }
}

impl PermissionLevel {
    /// The level on a repository; `create-repo` (a project level) means write there.
    pub fn repo_level(self) -> Option<RepoLevel> {
        match self {
            PermissionLevel::Read => Some(RepoLevel::Read),
            PermissionLevel::Write | PermissionLevel::CreateRepo => Some(RepoLevel::Write),
            PermissionLevel::Admin => Some(RepoLevel::Admin),
            PermissionLevel::None | PermissionLevel::Unknown => None,
        }
    }

    /// The level on a project.
    pub fn project_level(self) -> Option<ProjectLevel> {
        match self {
            PermissionLevel::Read => Some(ProjectLevel::Read),
            PermissionLevel::Write => Some(ProjectLevel::Write),
            PermissionLevel::CreateRepo => Some(ProjectLevel::CreateRepo),
            PermissionLevel::Admin => Some(ProjectLevel::Admin),
            PermissionLevel::None | PermissionLevel::Unknown => None,
        }
    }
}

impl WireWorkspace {
    /// The domain workspace; `slug` is the one the caller asked for (the wire may trim it).
    pub fn to_domain(&self, slug: &WorkspaceSlug) -> Workspace {
        Workspace {
            slug: slug.clone(),
            uuid: self.uuid.clone(),
            name: self.name.clone().unwrap_or_else(|| slug.to_string()),
            is_private: privacy(self.is_private),
        }
    }
}

impl WireProject {
    /// The domain project, `None` when its key is not a valid project key.
    pub fn to_domain(&self, workspace: &WorkspaceSlug) -> Option<Project> {
        Some(Project {
            workspace: workspace.clone(),
            key: ProjectKey::parse(self.key.clone()).ok()?,
            uuid: self.uuid.clone(),
            name: self.name.clone().unwrap_or_else(|| self.key.clone()),
            is_private: privacy(self.is_private),
        })
    }
}

impl WireRepository {
    /// The domain repository, `None` without a valid slug.
    pub fn to_domain(&self, workspace: &WorkspaceSlug) -> Option<Repository> {
        let slug = RepoSlug::parse(self.slug()?.to_string()).ok()?;
        Some(Repository {
            workspace: workspace.clone(),
            name: self.name.clone().unwrap_or_else(|| slug.to_string()),
            slug,
            uuid: self.uuid.clone(),
            project: self
                .project
                .as_ref()
                .and_then(|p| ProjectKey::parse(p.key.clone()).ok()),
            is_private: privacy(self.is_private),
        })
    }
}

impl GroupV1 {
    /// The domain group, `None` when its slug is not a valid group slug.
    pub fn to_domain(&self, workspace: &WorkspaceSlug) -> Option<Group> {
        Some(Group {
            workspace: workspace.clone(),
            slug: GroupSlug::parse(self.slug.clone()).ok()?,
            name: self.name.clone().unwrap_or_else(|| self.slug.clone()),
        })
    }

    /// The members that have an account id or a UUID.
    pub fn domain_members(&self) -> Vec<Account> {
        self.members
            .iter()
            .filter_map(MemberV1::to_domain)
            .collect()
    }
}

/// A group's explicit permission on a repository, from the 1.0 group-privileges listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoGroupPrivilege {
    /// The repository (in the workspace asked for).
    pub repository: RepoSlug,
    /// The group.
    pub group: GroupSlug,
    /// The level; `None` for a level a repository cannot hold (no permission).
    pub level: Option<RepoLevel>,
}

impl GroupPrivilegeV1 {
    /// The domain grant, or what is wrong with the entry: a `repo` that does not name a
    /// repository of `workspace` as `workspace/slug`, or an invalid slug. Such an entry means
    /// the listing is not what the connector understands, so the caller must not trust the
    /// rest of it either.
    pub fn to_domain(&self, workspace: &WorkspaceSlug) -> Result<RepoGroupPrivilege, String> {
        let slug = self
            .repo
            .split_once('/')
            .filter(|(ws, _)| *ws == workspace.as_str())
            .map(|(_, slug)| slug)
            .ok_or_else(|| {
                format!(
                    "entry names repository {:?}, not one of workspace {workspace}",
                    self.repo
                )
            })?;
        let repository = RepoSlug::parse(slug.to_string())
            .map_err(|_| format!("entry names an invalid repository slug {slug:?}"))?;
        let group = GroupSlug::parse(self.group.slug.clone())
            .map_err(|_| format!("entry names an invalid group slug {:?}", self.group.slug))?;
        Ok(RepoGroupPrivilege {
            repository,
            group,
            level: self.privilege.repo_level(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> WorkspaceSlug {
        WorkspaceSlug::parse("acme".to_string()).expect("slug")
    }

    #[test]
    fn an_unknown_role_is_plain_membership() {
        let role: WireRole = serde_json::from_str("\"galactic-overlord\"").expect("decodes");
        assert_eq!(role, WireRole::Unknown("galactic-overlord".to_string()));
        assert_eq!(workspace_role(Some(&role)), WorkspaceRole::Member);
        assert_eq!(workspace_role(None), WorkspaceRole::Member);
        assert_eq!(workspace_role(Some(&WireRole::Owner)), WorkspaceRole::Owner);
    }

    #[test]
    fn a_missing_is_private_means_private() {
        let repo: WireRepository =
            serde_json::from_str(r#"{"slug": "api", "name": "API"}"#).expect("decodes");
        assert!(repo.to_domain(&ws()).expect("valid").is_private);
        let public: WireRepository =
            serde_json::from_str(r#"{"slug": "api", "is_private": false}"#).expect("decodes");
        assert!(!public.to_domain(&ws()).expect("valid").is_private);
        let project: WireProject = serde_json::from_str(r#"{"key": "PRJ"}"#).expect("decodes");
        let project = project.to_domain(&ws()).expect("valid");
        assert!(project.is_private);
        assert_eq!(project.name, "PRJ");
        let workspace: WireWorkspace = serde_json::from_str(r#"{"slug": "acme"}"#).expect("ok");
        assert!(workspace.to_domain(&ws()).is_private);
    }

    #[test]
    fn an_account_with_a_uuid_only_is_keyed_by_its_uuid() {
        let wire: WireAccount =
            serde_json::from_str(r#"{"uuid": "{0f1e}", "display_name": "CI bot"}"#)
                .expect("decodes");
        let account = wire.to_domain().expect("an account");
        assert_eq!(account.account_id.as_str(), "{0f1e}");
        assert_eq!(account.uuid.as_deref(), Some("{0f1e}"));
        assert_eq!(account.display_name, "CI bot");
        let member: MemberV1 = serde_json::from_str(r#"{"uuid": "{0f1e}"}"#).expect("decodes");
        assert_eq!(
            member.to_domain().expect("an account").account_id.as_str(),
            "{0f1e}"
        );
        // The account id wins when both are there.
        let both: WireAccount =
            serde_json::from_str(r#"{"uuid": "{0f1e}", "account_id": "557058:abc"}"#)
                .expect("decodes");
        assert_eq!(
            both.to_domain().expect("an account").account_id.as_str(),
            "557058:abc"
        );
        assert!(WireAccount::default().to_domain().is_none());
    }

    #[test]
    fn an_account_keeps_the_type_bitbucket_gives_it() {
        let kind = |json: &str| {
            serde_json::from_str::<WireAccount>(json)
                .expect("decodes")
                .to_domain()
                .expect("an account")
                .kind
        };
        assert_eq!(
            kind(r#"{"type": "app_user", "account_id": "557058:bot"}"#),
            AccountKind::AppUser
        );
        assert_eq!(
            kind(r#"{"type": "user", "account_id": "557058:ada"}"#),
            AccountKind::User
        );
        // Trimmed away or a type this client does not know: not a guess.
        assert_eq!(kind(r#"{"account_id": "557058:x"}"#), AccountKind::Unknown);
        assert_eq!(
            kind(r#"{"type": "robot", "account_id": "557058:x"}"#),
            AccountKind::Unknown
        );
        let member: MemberV1 = serde_json::from_str(r#"{"uuid": "{0f1e}"}"#).expect("decodes");
        assert_eq!(
            member.to_domain().expect("an account").kind,
            AccountKind::Unknown
        );
    }

    #[test]
    fn a_group_privilege_must_name_a_repository_of_the_workspace() {
        let entry = |repo: &str| -> GroupPrivilegeV1 {
            serde_json::from_value(serde_json::json!({
                "repo": repo, "privilege": "write",
                "group": {"slug": "devs", "name": "Devs"},
                "repository": {"slug": "api"}
            }))
            .expect("decodes")
        };
        let grant = entry("acme/api").to_domain(&ws()).expect("valid");
        assert_eq!(grant.repository.as_str(), "api");
        assert_eq!(grant.group.as_str(), "devs");
        assert_eq!(grant.level, Some(RepoLevel::Write));
        let err = entry("other/api")
            .to_domain(&ws())
            .expect_err("another workspace");
        assert!(err.contains("other/api"), "{err}");
        assert!(entry("api").to_domain(&ws()).is_err(), "no workspace part");
        // A body of another shape does not decode at all.
        let wrong = serde_json::from_value::<GroupPrivilegeV1>(serde_json::json!({
            "repository": "acme/api", "permission": "write"
        }));
        assert!(wrong.is_err());
    }

    #[test]
    fn levels_map_to_what_each_resource_can_hold() {
        assert_eq!(
            PermissionLevel::CreateRepo.repo_level(),
            Some(RepoLevel::Write)
        );
        assert_eq!(
            PermissionLevel::CreateRepo.project_level(),
            Some(ProjectLevel::CreateRepo)
        );
        assert_eq!(PermissionLevel::Admin.repo_level(), Some(RepoLevel::Admin));
        assert_eq!(PermissionLevel::None.repo_level(), None);
        assert_eq!(PermissionLevel::Unknown.project_level(), None);
    }
}
