//! The targeted refresh against the simulator, on SQLite and PostgreSQL: a repository created,
//! changed or deleted out of band is in the store (as drift) after one refresh costing at most
//! three requests; duplicate targets cost one read; a group's members cost one request; the
//! whole repositories listing keeps its freshness when one repository is merged into it.

#[macro_use]
mod support_db;
mod org_support;
mod sync_support;

use std::collections::BTreeSet;

use bitbucket_access::domain::{GroupSlug, RepoRef, RepoSlug};
use bitbucket_access::store::{AuditFilter, AuditKind, ListingKey, Store};
use bitbucket_access::sync::targeted::{self, Target, TargetedOptions, TargetedReport};
use bitbucket_sim::{Level, NewRepository, SimHandle};
use org_support::synced_world;
use sync_support::*;

on_both_backends!(
    a_new_repository_is_stored_after_one_refresh_of_three_requests,
    duplicate_targets_cost_one_read,
    a_deleted_repository_leaves_the_store_for_one_request,
    a_groups_members_cost_one_request,
);

fn repo(ws: &str, name: &str) -> RepoRef {
    RepoRef {
        workspace: slug(ws),
        slug: RepoSlug::parse(name.to_owned()).expect("repository slug"),
    }
}

async fn refresh(sim: &SimHandle, store: &dyn Store, targets: &[Target]) -> TargetedReport {
    let report = targeted::refresh(store, &client(sim, 4), targets, &TargetedOptions::default())
        .await
        .expect("targeted refresh");
    assert!(report.is_complete(), "{report:#?}");
    report
}

/// Drift subjects in the audit log.
async fn drift_subjects(store: &dyn Store) -> BTreeSet<String> {
    store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Drift],
            ..Default::default()
        })
        .await
        .expect("audit log")
        .into_iter()
        .map(|e| e.entry.subject)
        .collect()
}

async fn a_new_repository_is_stored_after_one_refresh_of_three_requests(url: String) {
    let (sim, store, ws) = synced_world(&url, 7101).await;
    let listing = ListingKey::Repositories(slug(&ws));
    let read_before = store
        .listing_freshness(&listing)
        .await
        .expect("freshness")
        .expect("the repositories were read");
    let member = sim.with_world(|w| {
        let project = w.workspaces[&ws]
            .projects
            .keys()
            .next()
            .cloned()
            .expect("a project");
        w.add_repository(
            &ws,
            NewRepository {
                slug: "made-out-of-band".into(),
                name: "Made out of band".into(),
                project_key: project,
                is_private: true,
            },
        )
        .expect("add a repository");
        let member = w.workspaces[&ws]
            .members
            .keys()
            .next()
            .cloned()
            .expect("a member");
        w.set_repo_user_permission(&ws, "made-out-of-band", &member, Some(Level::Write))
            .expect("grant on it");
        member
    });
    sim.reset_counters();

    let report = refresh(
        &sim,
        store.as_ref(),
        &[Target::Repository(repo(&ws, "made-out-of-band"))],
    )
    .await;
    assert!(
        report.requests_used <= 3,
        "a repository and its permissions cost at most three requests, used {}",
        report.requests_used
    );
    assert_eq!(
        sim.total_requests(),
        report.requests_used,
        "the report counts what was sent"
    );
    assert_eq!(
        report.drift, 2,
        "the repository and its grant are drift: {report:#?}"
    );
    let drift = drift_subjects(store.as_ref()).await;
    assert!(
        drift.contains(&format!("repository {ws} made-out-of-band")),
        "{drift:?}"
    );
    assert!(
        drift.contains(&format!(
            "repository_user_permission {ws}/made-out-of-band {member}"
        )),
        "{drift:?}"
    );
    // The store now agrees with the world, and the whole listing still shows its last read.
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
    let read_after = store
        .listing_freshness(&listing)
        .await
        .expect("freshness")
        .expect("still read");
    assert_eq!(
        read_after.read_at, read_before.read_at,
        "one repository read does not make the other repositories fresh"
    );
}

async fn duplicate_targets_cost_one_read(url: String) {
    let (sim, store, ws) = synced_world(&url, 7102).await;
    let (slug, group) = sim.with_world(|w| {
        let r = w.workspaces[&ws]
            .repositories
            .values()
            .find(|r| !r.group_permissions.is_empty())
            .expect("a repository with a group permission");
        let (group, level) = r.group_permissions.iter().next().expect("a group");
        let (slug, group) = (r.slug.clone(), group.clone());
        let new = if *level == Level::Admin {
            Level::Read
        } else {
            Level::Admin
        };
        w.set_repo_group_permission(&ws, &slug, &group, Some(new))
            .expect("change it");
        (slug, group)
    });
    sim.reset_counters();
    let target = Target::RepositoryGroups(repo(&ws, &slug));
    let report = refresh(
        &sim,
        store.as_ref(),
        &[target.clone(), target.clone(), target],
    )
    .await;
    assert_eq!((report.targets, report.reads), (3, 1), "{report:#?}");
    assert_eq!(report.requests_used, 1);
    assert_eq!(report.drift, 1);
    assert!(drift_subjects(store.as_ref())
        .await
        .contains(&format!("repository_group_permission {ws}/{slug} {group}")));
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

async fn a_deleted_repository_leaves_the_store_for_one_request(url: String) {
    let (sim, store, ws) = synced_world(&url, 7103).await;
    let gone = sim.with_world(|w| {
        let slug = w.workspaces[&ws]
            .repositories
            .keys()
            .next()
            .cloned()
            .expect("a repository");
        w.remove_repository(&ws, &slug).expect("delete it");
        slug
    });
    sim.reset_counters();
    let report = refresh(
        &sim,
        store.as_ref(),
        &[Target::Repository(repo(&ws, &gone))],
    )
    .await;
    assert_eq!(
        report.requests_used, 1,
        "a repository that is gone needs no permission reads: {report:#?}"
    );
    let stored = store.repositories(&slug(&ws)).await.expect("repositories");
    assert!(stored.iter().all(|r| r.slug.as_str() != gone));
    assert!(drift_subjects(store.as_ref())
        .await
        .contains(&format!("repository {ws} {gone}")));
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

async fn a_groups_members_cost_one_request(url: String) {
    let (sim, store, ws) = synced_world(&url, 7104).await;
    let (group, account) = sim.with_world(|w| {
        let space = &w.workspaces[&ws];
        let (group, g) = space.groups.iter().next().expect("a group");
        let account = space
            .members
            .keys()
            .find(|m| !g.members.contains(*m))
            .cloned()
            .expect("a member outside the group");
        let group = group.clone();
        w.add_group_member(&ws, &group, &account)
            .expect("add to the group");
        (group, account)
    });
    sim.reset_counters();
    let report = refresh(
        &sim,
        store.as_ref(),
        &[Target::GroupMembers {
            workspace: slug(&ws),
            group: GroupSlug::parse(group.clone()).expect("group slug"),
        }],
    )
    .await;
    assert_eq!(report.requests_used, 1, "{report:#?}");
    assert!(drift_subjects(store.as_ref())
        .await
        .contains(&format!("group_member {ws}/{group} {account}")));
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}
