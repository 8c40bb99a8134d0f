//! Deterministic, realistic world generation.

use std::collections::BTreeSet;

use bitbucket_sim::{JiraAccountType, Role, World, WorldSpec};

#[test]
fn the_same_seed_gives_the_same_world_and_another_seed_another() {
    let a = World::generate(&WorldSpec::tiny(7));
    let b = World::generate(&WorldSpec::tiny(7));
    let c = World::generate(&WorldSpec::tiny(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let demo = World::generate(&WorldSpec::demo());
    assert_eq!(demo, World::generate(&WorldSpec::demo()));
}

#[test]
fn worlds_look_like_real_workspaces() {
    let w = World::generate(&WorldSpec::demo());
    let spec = WorldSpec::demo();
    assert_eq!(w.workspaces.len(), spec.workspaces);
    assert_eq!(
        w.workspaces
            .values()
            .map(|x| x.repositories.len())
            .sum::<usize>(),
        spec.repositories
    );
    assert_eq!(
        w.users.len(),
        spec.users + 1,
        "users plus the service account"
    );
    // Unicode names, public and private repositories, owners, unique emails.
    assert!(w.users.values().any(|u| !u.display_name.is_ascii()));
    let repos: Vec<_> = w
        .workspaces
        .values()
        .flat_map(|x| x.repositories.values())
        .collect();
    assert!(repos.iter().any(|r| r.is_private) && repos.iter().any(|r| !r.is_private));
    assert!(repos.iter().any(|r| !r.name.is_ascii()));
    let emails: BTreeSet<_> = w.users.values().map(|u| u.email.to_lowercase()).collect();
    assert_eq!(emails.len(), w.users.len());
    for ws in w.workspaces.values() {
        assert!(ws.members.values().any(|m| m.role == Role::Owner));
        // Explicit permissions never target the workspace owner or a non-member.
        for r in ws.repositories.values() {
            for a in r.user_permissions.keys() {
                assert_eq!(ws.members.get(a).map(|m| m.role), Some(Role::Member));
            }
        }
    }
    // The service account administers every workspace but the last.
    let last = w
        .workspaces
        .values()
        .filter(|ws| ws.members[&w.admin_account_id].role == Role::Member)
        .count();
    assert_eq!(last, 1);
    assert!(w.workspaces.values().any(|ws| ws.groups_admin_managed));
    // Jira: some hidden emails, some app and customer accounts, some users without Jira.
    assert!(w.users.values().any(|u| u.jira_account_type.is_none()));
    assert!(w
        .users
        .values()
        .any(|u| u.jira_account_type == Some(JiraAccountType::App)));
    assert!(w
        .users
        .values()
        .any(|u| !u.email_visible_in_jira && u.jira_account_type.is_some()));
}

#[test]
fn grants_are_skewed() {
    let w = World::generate(&WorldSpec {
        repositories: 2000,
        users: 400,
        ..WorldSpec::demo()
    });
    let mut counts: Vec<usize> = w
        .workspaces
        .values()
        .flat_map(|x| x.repositories.values())
        .map(|r| r.user_permissions.len())
        .collect();
    counts.sort_unstable();
    let median = counts[counts.len() / 2];
    let max = *counts.last().expect("repos");
    assert!(
        median <= 2,
        "most repositories have few grants (median {median})"
    );
    assert!(max >= 20, "a few have many (max {max})");
}

#[test]
fn the_large_world_has_20k_repositories_and_5k_users() {
    let w = World::generate(&WorldSpec::large(1));
    assert_eq!(
        w.workspaces
            .values()
            .map(|x| x.repositories.len())
            .sum::<usize>(),
        20_000
    );
    assert_eq!(w.users.len(), 5_001);
}
