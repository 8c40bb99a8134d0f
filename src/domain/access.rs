//! Effective access: who can reach which repository, at what level, and why.
//!
//! The rules are the ones product.md states. The effective level of an account on a repository is
//! the highest of:
//! - the account's explicit permission on the repository ([`Source::Direct`]);
//! - the repository permission of each group the account is in ([`Source::Group`]);
//! - the account's explicit permission on the repository's project ([`Source::Project`]) and the
//!   project permission of each group the account is in ([`Source::ProjectGroup`]), where a
//!   project's `create-repo` gives `write`;
//! - `admin` when the account is a workspace owner ([`Source::WorkspaceOwner`]);
//! - `read` on a public repository for every workspace member ([`Source::PublicRepository`]).
//!
//! About public repositories: Bitbucket lets anyone, even anonymous visitors, read a public
//! repository. That set cannot be enumerated, so the model reports the part it can name (the
//! workspace's members, each with a `PublicRepository` source) and leaves "readable by anyone" to
//! the repository's `is_private` flag. Members of groups who are not workspace members get nothing
//! from a repository being public.
//!
//! Every effective entry keeps all its sources, each with the level it gives, so a report can say
//! "write because of group developers, and read directly" and a revoke can name what to remove.
//! This module does no IO: it works on [`WorkspaceFacts`], which the store fills.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::ids::{AccountId, GroupSlug, Principal, ProjectKey, RepoSlug};
use super::levels::{RepoLevel, WorkspaceRole};
use super::model::{ProjectPermission, Repository, RepositoryPermission, WorkspaceMember};

/// The members of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMembers {
    /// The group.
    pub slug: GroupSlug,
    /// Its members.
    pub members: Vec<AccountId>,
}

/// Everything known about one workspace's access, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WorkspaceFacts {
    /// The workspace's members with their roles.
    pub members: Vec<WorkspaceMember>,
    /// The repositories, with their project and visibility.
    pub repositories: Vec<Repository>,
    /// The groups with their members.
    pub groups: Vec<GroupMembers>,
    /// Explicit permissions on projects, for users and groups.
    pub project_permissions: Vec<ProjectPermission>,
    /// Explicit permissions on repositories, for users and groups.
    pub repository_permissions: Vec<RepositoryPermission>,
}

impl WorkspaceFacts {
    /// Every repository the facts name, listed or holding a permission, in slug order: the
    /// order [`effective_access`] sorts its entries in.
    pub fn repository_slugs(&self) -> BTreeSet<RepoSlug> {
        self.repositories
            .iter()
            .map(|r| r.slug.clone())
            .chain(
                self.repository_permissions
                    .iter()
                    .map(|p| p.repository.clone()),
            )
            .collect()
    }

    /// The facts that bear on these repositories only: every member, group and project
    /// permission (they apply through the repositories kept), the repositories and their own
    /// permissions. [`effective_access`] of the result is the part of the whole workspace's
    /// effective access on these repositories, so a large workspace can be computed a batch of
    /// repositories at a time.
    pub fn restricted_to(&self, repositories: &BTreeSet<RepoSlug>) -> WorkspaceFacts {
        WorkspaceFacts {
            members: self.members.clone(),
            repositories: self
                .repositories
                .iter()
                .filter(|r| repositories.contains(&r.slug))
                .cloned()
                .collect(),
            groups: self.groups.clone(),
            project_permissions: self.project_permissions.clone(),
            repository_permissions: self
                .repository_permissions
                .iter()
                .filter(|p| repositories.contains(&p.repository))
                .cloned()
                .collect(),
        }
    }
}

/// One reason an account can reach a repository.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    /// An explicit user permission on the repository.
    Direct,
    /// The repository permission of a group the account is in.
    Group {
        /// The group.
        slug: GroupSlug,
    },
    /// An explicit user permission on the repository's project.
    Project {
        /// The project.
        key: ProjectKey,
    },
    /// The project permission of a group the account is in.
    ProjectGroup {
        /// The project.
        key: ProjectKey,
        /// The group.
        group: GroupSlug,
    },
    /// The account is a workspace owner (administrator).
    WorkspaceOwner,
    /// The repository is public and the account is a workspace member.
    PublicRepository,
}

impl Source {
    /// A short human explanation (`group developers`, `project PAY via group devs`).
    pub fn describe(&self) -> String {
        match self {
            Source::Direct => "direct".to_owned(),
            Source::Group { slug } => format!("group {slug}"),
            Source::Project { key } => format!("project {key}"),
            Source::ProjectGroup { key, group } => format!("project {key} via group {group}"),
            Source::WorkspaceOwner => "workspace owner".to_owned(),
            Source::PublicRepository => "public repository".to_owned(),
        }
    }
}

/// A source with the level it gives on the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcedLevel {
    /// Why.
    pub source: Source,
    /// The level this source alone gives.
    pub level: RepoLevel,
}

/// The effective level of one account on one repository, with every source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectiveAccess {
    /// The repository.
    pub repository: RepoSlug,
    /// The account.
    pub account_id: AccountId,
    /// The highest level of all sources.
    pub level: RepoLevel,
    /// Every source, strongest first, then in [`Source`] order.
    pub sources: Vec<SourcedLevel>,
}

/// Computes the effective access of every account on every repository of one workspace.
///
/// The result is sorted by repository, then account. An account appears on a repository only when
/// at least one source applies.
pub fn effective_access(input: &WorkspaceFacts) -> Vec<EffectiveAccess> {
    compute(input, |_, _| true)
}

/// The effective access on one repository (who can reach it and why).
pub fn effective_access_for_repository(
    input: &WorkspaceFacts,
    repository: &RepoSlug,
) -> Vec<EffectiveAccess> {
    compute(input, |repo, _| repo == repository)
}

/// The effective access of one account (what it can reach and why).
pub fn effective_access_for_account(
    input: &WorkspaceFacts,
    account: &AccountId,
) -> Vec<EffectiveAccess> {
    compute(input, |_, acc| acc == account)
}

type Key = (RepoSlug, AccountId);

fn compute(
    input: &WorkspaceFacts,
    keep: impl Fn(&RepoSlug, &AccountId) -> bool,
) -> Vec<EffectiveAccess> {
    let mut found: BTreeMap<Key, BTreeMap<Source, RepoLevel>> = BTreeMap::new();
    let mut add = |repo: &RepoSlug, account: &AccountId, source: Source, level: RepoLevel| {
        if !keep(repo, account) {
            return;
        }
        let sources = found.entry((repo.clone(), account.clone())).or_default();
        // The same source can be listed twice only through duplicated input rows; keep its highest.
        let entry = sources.entry(source).or_insert(level);
        *entry = (*entry).max(level);
    };

    let group_members: BTreeMap<&GroupSlug, BTreeSet<&AccountId>> = {
        let mut map: BTreeMap<&GroupSlug, BTreeSet<&AccountId>> = BTreeMap::new();
        for group in &input.groups {
            map.entry(&group.slug)
                .or_default()
                .extend(group.members.iter());
        }
        map
    };
    let members_of = |slug: &GroupSlug| -> Vec<&AccountId> {
        group_members
            .get(slug)
            .map(|set| set.iter().copied().collect())
            .unwrap_or_default()
    };

    for permission in &input.repository_permissions {
        match &permission.principal {
            Principal::User { account_id } => {
                add(
                    &permission.repository,
                    account_id,
                    Source::Direct,
                    permission.level,
                );
            }
            Principal::Group { slug } => {
                for account in members_of(slug) {
                    add(
                        &permission.repository,
                        account,
                        Source::Group { slug: slug.clone() },
                        permission.level,
                    );
                }
            }
        }
    }

    let mut repos_of_project: BTreeMap<&ProjectKey, Vec<&RepoSlug>> = BTreeMap::new();
    for repo in &input.repositories {
        if let Some(project) = &repo.project {
            repos_of_project
                .entry(project)
                .or_default()
                .push(&repo.slug);
        }
    }
    for permission in &input.project_permissions {
        let level = permission.level.repo_level();
        let Some(repos) = repos_of_project.get(&permission.project) else {
            continue;
        };
        for repo in repos {
            match &permission.principal {
                Principal::User { account_id } => {
                    let source = Source::Project {
                        key: permission.project.clone(),
                    };
                    add(repo, account_id, source, level);
                }
                Principal::Group { slug } => {
                    for account in members_of(slug) {
                        let source = Source::ProjectGroup {
                            key: permission.project.clone(),
                            group: slug.clone(),
                        };
                        add(repo, account, source, level);
                    }
                }
            }
        }
    }

    for member in &input.members {
        for repo in &input.repositories {
            if member.role == WorkspaceRole::Owner {
                add(
                    &repo.slug,
                    &member.account_id,
                    Source::WorkspaceOwner,
                    RepoLevel::Admin,
                );
            }
            if !repo.is_private {
                add(
                    &repo.slug,
                    &member.account_id,
                    Source::PublicRepository,
                    RepoLevel::Read,
                );
            }
        }
    }

    found
        .into_iter()
        .filter_map(|((repository, account_id), sources)| {
            let mut sources: Vec<SourcedLevel> = sources
                .into_iter()
                .map(|(source, level)| SourcedLevel { source, level })
                .collect();
            // Strongest first; the sort is stable, so equal levels keep Source order.
            sources.sort_by_key(|s| std::cmp::Reverse(s.level));
            let level = sources.first()?.level;
            Some(EffectiveAccess {
                repository,
                account_id,
                level,
                sources,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::levels::ProjectLevel;
    use crate::domain::WorkspaceSlug;
    use proptest::prelude::*;

    fn acc(s: &str) -> AccountId {
        AccountId::parse(s).expect("valid account id in test")
    }
    fn repo_slug(s: &str) -> RepoSlug {
        RepoSlug::parse(s).expect("valid slug in test")
    }
    fn group(s: &str) -> GroupSlug {
        GroupSlug::parse(s).expect("valid group in test")
    }
    fn key(s: &str) -> ProjectKey {
        ProjectKey::parse(s).expect("valid key in test")
    }
    fn repo(slug: &str, project: Option<&str>, is_private: bool) -> Repository {
        Repository {
            workspace: WorkspaceSlug::parse("acme").expect("valid ws in test"),
            slug: repo_slug(slug),
            uuid: None,
            name: slug.to_owned(),
            project: project.map(key),
            is_private,
        }
    }
    fn user(s: &str) -> Principal {
        Principal::User { account_id: acc(s) }
    }
    fn grp(s: &str) -> Principal {
        Principal::Group { slug: group(s) }
    }

    fn sample() -> WorkspaceFacts {
        WorkspaceFacts {
            members: vec![
                WorkspaceMember {
                    account_id: acc("alice"),
                    role: WorkspaceRole::Member,
                },
                WorkspaceMember {
                    account_id: acc("bob"),
                    role: WorkspaceRole::Member,
                },
                WorkspaceMember {
                    account_id: acc("olga"),
                    role: WorkspaceRole::Owner,
                },
            ],
            repositories: vec![
                repo("payments-api", Some("PAY"), true),
                repo("docs", None, false),
            ],
            groups: vec![GroupMembers {
                slug: group("devs"),
                members: vec![acc("alice"), acc("bob")],
            }],
            project_permissions: vec![
                ProjectPermission {
                    project: key("PAY"),
                    principal: user("bob"),
                    level: ProjectLevel::CreateRepo,
                },
                ProjectPermission {
                    project: key("PAY"),
                    principal: grp("devs"),
                    level: ProjectLevel::Read,
                },
            ],
            repository_permissions: vec![
                RepositoryPermission {
                    repository: repo_slug("payments-api"),
                    principal: user("alice"),
                    level: RepoLevel::Read,
                },
                RepositoryPermission {
                    repository: repo_slug("payments-api"),
                    principal: grp("devs"),
                    level: RepoLevel::Write,
                },
            ],
        }
    }

    fn find<'a>(
        all: &'a [EffectiveAccess],
        repo: &str,
        account: &str,
    ) -> Option<&'a EffectiveAccess> {
        all.iter()
            .find(|e| e.repository.as_str() == repo && e.account_id.as_str() == account)
    }

    #[test]
    fn highest_source_wins_and_every_source_is_kept() {
        let all = effective_access(&sample());
        let alice = find(&all, "payments-api", "alice").expect("alice reaches payments-api");
        assert_eq!(alice.level, RepoLevel::Write);
        let sources: Vec<_> = alice
            .sources
            .iter()
            .map(|s| (s.source.clone(), s.level))
            .collect();
        assert_eq!(
            sources,
            vec![
                (
                    Source::Group {
                        slug: group("devs")
                    },
                    RepoLevel::Write
                ),
                (Source::Direct, RepoLevel::Read),
                (
                    Source::ProjectGroup {
                        key: key("PAY"),
                        group: group("devs")
                    },
                    RepoLevel::Read
                ),
            ]
        );
    }

    #[test]
    fn create_repo_on_project_gives_write() {
        let all = effective_access(&sample());
        let bob = find(&all, "payments-api", "bob").expect("bob reaches payments-api");
        assert_eq!(bob.level, RepoLevel::Write);
        assert!(bob.sources.iter().any(
            |s| s.source == Source::Project { key: key("PAY") } && s.level == RepoLevel::Write
        ));
    }

    #[test]
    fn owners_get_admin_everywhere_and_public_repos_give_members_read() {
        let all = effective_access(&sample());
        for slug in ["payments-api", "docs"] {
            let olga = find(&all, slug, "olga").expect("owner reaches every repository");
            assert_eq!(olga.level, RepoLevel::Admin);
            assert_eq!(olga.sources[0].source, Source::WorkspaceOwner);
        }
        let alice_docs = find(&all, "docs", "alice").expect("public repo readable by members");
        assert_eq!(alice_docs.level, RepoLevel::Read);
        assert_eq!(alice_docs.sources[0].source, Source::PublicRepository);
        assert!(find(&all, "payments-api", "nobody").is_none());
    }

    #[test]
    fn per_repository_and_per_account_views_agree_with_the_whole() {
        let facts = sample();
        let all = effective_access(&facts);
        let docs = effective_access_for_repository(&facts, &repo_slug("docs"));
        assert_eq!(
            docs,
            all.iter()
                .filter(|e| e.repository.as_str() == "docs")
                .cloned()
                .collect::<Vec<_>>()
        );
        let bob = effective_access_for_account(&facts, &acc("bob"));
        assert_eq!(
            bob,
            all.iter()
                .filter(|e| e.account_id.as_str() == "bob")
                .cloned()
                .collect::<Vec<_>>()
        );
    }

    fn arb_facts() -> impl Strategy<Value = WorkspaceFacts> {
        let accounts = ["a", "b", "c", "d"];
        let groups = ["g1", "g2"];
        let repos = ["r1", "r2", "r3"];
        let projects = ["P1", "P2"];
        let repo_level = prop::sample::select(RepoLevel::ALL.to_vec());
        let project_level = prop::sample::select(ProjectLevel::ALL.to_vec());
        let role = prop::sample::select(WorkspaceRole::ALL.to_vec());
        let principal = prop_oneof![
            prop::sample::select(accounts.to_vec()).prop_map(user),
            prop::sample::select(groups.to_vec()).prop_map(grp),
        ];
        (
            prop::collection::vec((prop::sample::select(accounts.to_vec()), role), 0..4),
            prop::collection::vec(
                (
                    prop::sample::select(repos.to_vec()),
                    prop::option::of(prop::sample::select(projects.to_vec())),
                    any::<bool>(),
                ),
                0..3,
            ),
            prop::collection::vec(
                (
                    prop::sample::select(groups.to_vec()),
                    prop::collection::vec(prop::sample::select(accounts.to_vec()), 0..4),
                ),
                0..2,
            ),
            prop::collection::vec(
                (
                    prop::sample::select(projects.to_vec()),
                    principal.clone(),
                    project_level,
                ),
                0..4,
            ),
            prop::collection::vec(
                (prop::sample::select(repos.to_vec()), principal, repo_level),
                0..6,
            ),
        )
            .prop_map(|(members, repositories, groups, pp, rp)| WorkspaceFacts {
                members: members
                    .into_iter()
                    .map(|(a, role)| WorkspaceMember {
                        account_id: acc(a),
                        role,
                    })
                    .collect(),
                repositories: repositories
                    .into_iter()
                    .map(|(r, p, private)| repo(r, p, private))
                    .collect(),
                groups: groups
                    .into_iter()
                    .map(|(g, m)| GroupMembers {
                        slug: group(g),
                        members: m.into_iter().map(acc).collect(),
                    })
                    .collect(),
                project_permissions: pp
                    .into_iter()
                    .map(|(p, principal, level)| ProjectPermission {
                        project: key(p),
                        principal,
                        level,
                    })
                    .collect(),
                repository_permissions: rp
                    .into_iter()
                    .map(|(r, principal, level)| RepositoryPermission {
                        repository: repo_slug(r),
                        principal,
                        level,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn level_is_the_maximum_of_its_sources(facts in arb_facts()) {
            for entry in effective_access(&facts) {
                let max = entry.sources.iter().map(|s| s.level).max();
                prop_assert_eq!(Some(entry.level), max);
                prop_assert!(!entry.sources.is_empty());
            }
        }

        #[test]
        fn direct_permissions_always_count(facts in arb_facts()) {
            let all = effective_access(&facts);
            for permission in &facts.repository_permissions {
                if let Principal::User { account_id } = &permission.principal {
                    let entry = all.iter().find(|e| e.repository == permission.repository && &e.account_id == account_id);
                    prop_assert!(entry.is_some_and(|e| e.level >= permission.level
                        && e.sources.iter().any(|s| s.source == Source::Direct)));
                }
            }
        }

        #[test]
        fn adding_a_permission_never_lowers_access(
            facts in arb_facts(),
            extra_repo in prop::sample::select(vec!["r1", "r2", "r3"]),
            extra_account in prop::sample::select(vec!["a", "b", "c", "d"]),
            extra_level in prop::sample::select(RepoLevel::ALL.to_vec()),
        ) {
            let before = effective_access(&facts);
            let mut more = facts.clone();
            more.repository_permissions.push(RepositoryPermission {
                repository: repo_slug(extra_repo),
                principal: user(extra_account),
                level: extra_level,
            });
            let after = effective_access(&more);
            for entry in &before {
                let later = after.iter().find(|e| e.repository == entry.repository && e.account_id == entry.account_id);
                prop_assert!(later.is_some_and(|l| l.level >= entry.level));
            }
        }

        #[test]
        fn batches_of_repositories_add_up_to_the_whole(facts in arb_facts(), size in 1usize..4) {
            let slugs: Vec<RepoSlug> = facts.repository_slugs().into_iter().collect();
            let batched: Vec<EffectiveAccess> = slugs
                .chunks(size)
                .flat_map(|batch| effective_access(&facts.restricted_to(&batch.iter().cloned().collect())))
                .collect();
            prop_assert_eq!(batched, effective_access(&facts));
        }

        #[test]
        fn owners_are_admin_on_every_listed_repository(facts in arb_facts()) {
            let all = effective_access(&facts);
            for member in facts.members.iter().filter(|m| m.role == WorkspaceRole::Owner) {
                for repo in &facts.repositories {
                    let entry = all.iter().find(|e| e.repository == repo.slug && e.account_id == member.account_id);
                    prop_assert!(entry.is_some_and(|e| e.level == RepoLevel::Admin));
                }
            }
        }
    }
}
