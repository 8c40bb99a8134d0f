//! From audit-log events to the smallest targeted refresh that covers them.
//!
//! Each known action names one listing (or a single repository or project with its two
//! permission listings); [`KNOWN_ACTIONS`] is the one table of them. An action not in it is
//! never ignored when it names Bitbucket: it refreshes conservatively what the event's
//! context and container name (a repository, a project, a group's workspace groups, else the
//! workspace's structural listings), and is counted so operators see new actions arrive.
//! Events of workspaces the connector does not manage are left out.

use std::collections::BTreeSet;

use crate::domain::{GroupSlug, ProjectKey, ProjectRef, RepoRef, RepoSlug, WorkspaceSlug};
use crate::sync::targeted::Target;

use super::{EventContext, OrgEvent};

/// What a known action refreshes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refresh {
    Repository,
    RepositoryUsers,
    RepositoryGroups,
    Project,
    ProjectUsers,
    ProjectGroups,
    WorkspaceMembers,
    GroupMembers,
    Groups,
}

/// The action names the connector knows (atlassian-org.md: the names are inferred, so this is
/// the one place to correct them), with what each refreshes.
const KNOWN_ACTIONS: &[(&str, Refresh)] = &[
    ("bitbucket.repository.created", Refresh::Repository),
    ("bitbucket.repository.deleted", Refresh::Repository),
    ("bitbucket.repository.updated", Refresh::Repository),
    ("bitbucket.repository.transferred", Refresh::Repository),
    (
        "bitbucket.repository.member.added",
        Refresh::RepositoryUsers,
    ),
    (
        "bitbucket.repository.member.updated",
        Refresh::RepositoryUsers,
    ),
    (
        "bitbucket.repository.member.removed",
        Refresh::RepositoryUsers,
    ),
    (
        "bitbucket.repository.group-permission.added",
        Refresh::RepositoryGroups,
    ),
    (
        "bitbucket.repository.group-permission.removed",
        Refresh::RepositoryGroups,
    ),
    ("bitbucket.project.created", Refresh::Project),
    ("bitbucket.project.deleted", Refresh::Project),
    ("bitbucket.project.updated", Refresh::Project),
    ("bitbucket.project.member.updated", Refresh::ProjectUsers),
    ("bitbucket.project.member.removed", Refresh::ProjectUsers),
    (
        "bitbucket.project.group-permission.updated",
        Refresh::ProjectGroups,
    ),
    (
        "bitbucket.project.group-permission.removed",
        Refresh::ProjectGroups,
    ),
    ("bitbucket.workspace.user.added", Refresh::WorkspaceMembers),
    (
        "bitbucket.workspace.user.removed",
        Refresh::WorkspaceMembers,
    ),
    ("bitbucket.group.user.added", Refresh::GroupMembers),
    ("bitbucket.group.user.removed", Refresh::GroupMembers),
    ("bitbucket.group.created", Refresh::Groups),
    ("bitbucket.group.deleted", Refresh::Groups),
    ("bitbucket.group.permissions.changed", Refresh::Groups),
];

/// Whether the connector knows `action` (an unknown one is refreshed conservatively).
pub fn is_known(action: &str) -> bool {
    KNOWN_ACTIONS.iter().any(|(a, _)| *a == action)
}

/// How one event was understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Understood {
    /// A known action: the listings it touched.
    Known(Vec<Target>),
    /// An action the connector does not know: a conservative refresh of its container.
    Unknown(Vec<Target>),
    /// Not about a managed Bitbucket workspace (another product, another workspace).
    Elsewhere,
}

/// What an event names, parsed.
#[derive(Default)]
struct Named {
    workspace: Option<WorkspaceSlug>,
    repository: Option<RepoRef>,
    project: Option<ProjectRef>,
    group: Option<GroupSlug>,
}

fn split(id: &str) -> Option<(WorkspaceSlug, &str)> {
    let (ws, rest) = id.split_once('/')?;
    Some((WorkspaceSlug::parse(ws.to_owned()).ok()?, rest))
}

fn named(items: &[EventContext]) -> Named {
    let mut out = Named::default();
    for c in items {
        match c.kind.as_str() {
            "workspace" => out.workspace = WorkspaceSlug::parse(c.id.clone()).ok(),
            "repository" => {
                out.repository = split(&c.id).and_then(|(workspace, slug)| {
                    Some(RepoRef {
                        workspace,
                        slug: RepoSlug::parse(slug.to_owned()).ok()?,
                    })
                })
            }
            "project" => {
                out.project = split(&c.id).and_then(|(workspace, key)| {
                    Some(ProjectRef {
                        workspace,
                        key: ProjectKey::parse(key.to_owned()).ok()?,
                    })
                })
            }
            "group" => {
                out.group = split(&c.id).and_then(|(_, g)| GroupSlug::parse(g.to_owned()).ok())
            }
            _ => {}
        }
    }
    if out.workspace.is_none() {
        out.workspace = out
            .repository
            .as_ref()
            .map(|r| r.workspace.clone())
            .or_else(|| out.project.as_ref().map(|p| p.workspace.clone()));
    }
    out
}

/// The targets of one event, for the workspaces in `managed`.
pub fn understand(event: &OrgEvent, managed: &BTreeSet<WorkspaceSlug>) -> Understood {
    if !event.action.starts_with("bitbucket.") {
        return Understood::Elsewhere;
    }
    let mut all = event.context.clone();
    all.extend(event.container.iter().cloned());
    let n = named(&all);
    let Some(ws) = n.workspace.clone().filter(|w| managed.contains(w)) else {
        return Understood::Elsewhere;
    };
    let known = KNOWN_ACTIONS
        .iter()
        .find(|(a, _)| *a == event.action)
        .map(|(_, r)| *r);
    let targets = known.and_then(|r| known_targets(r, &n, &ws));
    match (known, targets) {
        (Some(_), Some(t)) => Understood::Known(t),
        // A known action without what it should name, or an unknown one: be conservative.
        _ => Understood::Unknown(conservative(&n, ws)),
    }
}

fn known_targets(r: Refresh, n: &Named, ws: &WorkspaceSlug) -> Option<Vec<Target>> {
    let repo = || n.repository.clone();
    let project = || n.project.clone();
    Some(vec![match r {
        Refresh::Repository => Target::Repository(repo()?),
        Refresh::RepositoryUsers => Target::RepositoryUsers(repo()?),
        Refresh::RepositoryGroups => Target::RepositoryGroups(repo()?),
        Refresh::Project => Target::Project(project()?),
        Refresh::ProjectUsers => Target::ProjectUsers(project()?),
        Refresh::ProjectGroups => Target::ProjectGroups(project()?),
        Refresh::WorkspaceMembers => Target::WorkspaceMembers(ws.clone()),
        Refresh::GroupMembers => Target::GroupMembers {
            workspace: ws.clone(),
            group: n.group.clone()?,
        },
        Refresh::Groups => Target::Groups(ws.clone()),
    }])
}

/// What an unknown action refreshes: the most specific thing it names, whole.
fn conservative(n: &Named, ws: WorkspaceSlug) -> Vec<Target> {
    if let Some(r) = &n.repository {
        return vec![Target::Repository(r.clone())];
    }
    if let Some(p) = &n.project {
        return vec![Target::Project(p.clone())];
    }
    if n.group.is_some() {
        return vec![Target::Groups(ws)];
    }
    vec![
        Target::WorkspaceMembers(ws.clone()),
        Target::Projects(ws.clone()),
        Target::Repositories(ws.clone()),
        Target::Groups(ws),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::org::EventActor;

    fn event(action: &str, context: &[(&str, &str)]) -> OrgEvent {
        OrgEvent {
            id: "e1".into(),
            time: chrono::Utc::now(),
            action: action.into(),
            actor: EventActor {
                account_id: "a".into(),
                name: "A".into(),
                api_token: false,
            },
            context: context
                .iter()
                .map(|(k, i)| EventContext {
                    kind: (*k).into(),
                    id: (*i).into(),
                })
                .collect(),
            container: Vec::new(),
        }
    }

    fn managed() -> BTreeSet<WorkspaceSlug> {
        [WorkspaceSlug::parse("acme".to_owned()).unwrap()].into()
    }

    #[test]
    fn a_member_change_refreshes_one_listing() {
        let e = event(
            "bitbucket.repository.member.added",
            &[
                ("workspace", "acme"),
                ("repository", "acme/api"),
                ("user", "u1"),
            ],
        );
        let Understood::Known(t) = understand(&e, &managed()) else {
            panic!("known");
        };
        assert!(matches!(t.as_slice(), [Target::RepositoryUsers(r)] if r.slug.as_str() == "api"));
    }

    #[test]
    fn an_unknown_action_refreshes_what_it_names() {
        let e = event(
            "bitbucket.repository.branch-restriction.changed",
            &[("workspace", "acme"), ("repository", "acme/api")],
        );
        assert!(
            matches!(understand(&e, &managed()), Understood::Unknown(t) if matches!(t.as_slice(), [Target::Repository(_)]))
        );
        let bare = event("bitbucket.something.new", &[("workspace", "acme")]);
        let Understood::Unknown(t) = understand(&bare, &managed()) else {
            panic!("unknown");
        };
        assert_eq!(t.len(), 4, "the workspace's structural listings");
    }

    #[test]
    fn other_products_and_workspaces_are_left_out() {
        let jira = event("jira.issue.created", &[("workspace", "acme")]);
        assert_eq!(understand(&jira, &managed()), Understood::Elsewhere);
        let other = event(
            "bitbucket.repository.created",
            &[("workspace", "other"), ("repository", "other/x")],
        );
        assert_eq!(understand(&other, &managed()), Understood::Elsewhere);
    }
}
