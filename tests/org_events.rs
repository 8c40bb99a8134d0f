//! Event-driven refresh against the simulator's organization, on SQLite and PostgreSQL: an
//! out-of-band change is in the store and recorded as drift naming who made it after one pass,
//! for at most three Bitbucket requests; a restart resumes from the stored cursor (nothing
//! lost, nothing replayed); two instances do not both apply one event; an unknown action is
//! refreshed conservatively; the connector's own change is not drift; without Guard, or with
//! the workspace unlinked, no event arrives and the full sync works as before.

#[macro_use]
mod support_db;
mod org_support;
mod sync_support;

use std::collections::BTreeSet;

use bitbucket_access::bitbucket::{PermissionLevel, PermissionTarget};
use bitbucket_access::domain::{RepoRef, RepoSlug};
use bitbucket_access::store::{open, CursorAdvance};
use bitbucket_access::sync::targeted::Target;
use bitbucket_access::sync::{self, SyncOptions};
use org_support::*;
use sync_support::*;

on_both_backends!(
    an_out_of_band_change_is_drift_with_its_actor_for_three_requests,
    a_restart_resumes_from_the_stored_cursor,
    two_instances_do_not_both_apply_one_event,
    an_unknown_action_is_refreshed_conservatively,
    the_connectors_own_change_is_not_drift,
    without_guard_or_link_no_event_arrives_and_sync_works_as_before,
    events_on_one_listing_merge_and_each_change_names_its_own_actor,
);

async fn an_out_of_band_change_is_drift_with_its_actor_for_three_requests(url: String) {
    let (sim, store, ws) = synced_world(&url, 7301).await;
    // The first pass learns the connector's account and where the stream stands.
    let first = pass(&sim, store.as_ref(), &ws, "a").await;
    assert_eq!(first.events, 0, "{first:#?}");
    assert!(first.cursor_after.is_some(), "the cursor is stored");

    let actor = other_admin(&sim);
    let (repo, member) = repo_and_member(&sim, &ws, 0);
    grant_as(&sim, actor.clone(), &ws, &repo, &member);
    sim.reset_counters();
    let report = pass(&sim, store.as_ref(), &ws, "a").await;

    assert_eq!((report.events, report.applied), (1, 1), "{report:#?}");
    assert!(
        report.bitbucket_requests() <= 3,
        "a refresh costs at most three requests per event: {report:#?}"
    );
    assert_eq!(
        bitbucket_requests(&sim),
        report.bitbucket_requests(),
        "no other Bitbucket request was sent"
    );
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
    let drift = drift_of(store.as_ref(), &ws, &repo, &member).await;
    assert_eq!(drift.len(), 1, "one drift record");
    let by = &drift[0].entry.details["attribution"];
    assert_eq!(by["actor_account_id"], actor.id.as_str(), "{by}");
    assert_eq!(by["actor_name"], actor.name.as_str(), "{by}");
    assert_eq!(by["api_token"], true, "{by}");
    assert!(
        by["event_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{by}"
    );
    assert!(by["event_time"].as_str().is_some(), "{by}");
    assert!(report.cursor_moved, "{report:#?}");
}

async fn a_restart_resumes_from_the_stored_cursor(url: String) {
    let (sim, store, ws) = synced_world(&url, 7302).await;
    pass(&sim, store.as_ref(), &ws, "before").await;
    let actor = other_admin(&sim);
    let (repo_a, member_a) = repo_and_member(&sim, &ws, 0);
    grant_as(&sim, actor.clone(), &ws, &repo_a, &member_a);
    let applied = pass(&sim, store.as_ref(), &ws, "before").await;
    assert_eq!(applied.applied, 1, "{applied:#?}");
    let org_id = sim.org().settings().org_id;
    let stored = store
        .org_cursor(&org_id)
        .await
        .expect("cursor")
        .expect("a row");
    drop(store);

    // While the process is down another change happens; the restarted one (a new store
    // handle, a new instance name) starts from the stored cursor.
    let (repo_b, member_b) = repo_and_member(&sim, &ws, 1);
    grant_as(&sim, actor, &ws, &repo_b, &member_b);
    let store = open(&url).await.expect("store opens again");
    let resumed = pass(&sim, store.as_ref(), &ws, "after").await;
    assert_eq!(resumed.cursor_before, stored.cursor, "{resumed:#?}");
    assert_eq!(
        (resumed.events, resumed.applied),
        (1, 1),
        "only the change made while down: nothing lost, nothing replayed: {resumed:#?}"
    );
    assert_eq!(
        resumed.targets,
        vec![Target::RepositoryUsers(RepoRef {
            workspace: slug(&ws),
            slug: RepoSlug::parse(repo_b.clone()).expect("slug"),
        })]
    );
    assert_eq!(
        drift_of(store.as_ref(), &ws, &repo_a, &member_a)
            .await
            .len(),
        1
    );
    assert_eq!(
        drift_of(store.as_ref(), &ws, &repo_b, &member_b)
            .await
            .len(),
        1
    );
    let after = store
        .org_cursor(&org_id)
        .await
        .expect("cursor")
        .expect("a row");
    assert_eq!(after.events_applied, 2);
    assert_eq!(after.updated_by, "after");
}

async fn two_instances_do_not_both_apply_one_event(url: String) {
    let (sim, store, ws) = synced_world(&url, 7303).await;
    pass(&sim, store.as_ref(), &ws, "one").await;
    let (repo, member) = repo_and_member(&sim, &ws, 0);
    grant_as(&sim, other_admin(&sim), &ws, &repo, &member);
    let other = open(&url).await.expect("a second instance's store");
    let (a, b) = tokio::join!(
        pass(&sim, store.as_ref(), &ws, "one"),
        pass(&sim, other.as_ref(), &ws, "two"),
    );
    assert_eq!(
        a.applied + b.applied,
        1,
        "one instance applied the event: {a:#?} {b:#?}"
    );
    assert_eq!(drift_of(store.as_ref(), &ws, &repo, &member).await.len(), 1);

    // An instance whose lease lapsed cannot move the cursor over the other's.
    let org_id = sim.org().settings().org_id;
    let now = store
        .org_cursor(&org_id)
        .await
        .expect("cursor")
        .expect("row");
    let stale = CursorAdvance {
        org_id: org_id.clone(),
        expected: Some("not-the-stored-cursor".into()),
        cursor: "elsewhere".into(),
        applied: 1,
        at: chrono::Utc::now(),
        by: "late".into(),
    };
    assert!(!store.advance_org_cursor(&stale).await.expect("cas"));
    let kept = store
        .org_cursor(&org_id)
        .await
        .expect("cursor")
        .expect("row");
    assert_eq!(kept.cursor, now.cursor);
    assert_eq!(kept.events_applied, 1);
}

async fn an_unknown_action_is_refreshed_conservatively(url: String) {
    let (sim, store, ws) = synced_world(&url, 7304).await;
    pass(&sim, store.as_ref(), &ws, "a").await;
    sim.org().unknown_action_next(1);
    let (repo, member) = repo_and_member(&sim, &ws, 0);
    grant_as(&sim, other_admin(&sim), &ws, &repo, &member);
    let report = pass(&sim, store.as_ref(), &ws, "a").await;
    assert_eq!(report.unknown.len(), 1, "{report:#?}");
    let repository = RepoRef {
        workspace: slug(&ws),
        slug: RepoSlug::parse(repo.clone()).expect("slug"),
    };
    assert_eq!(
        report.unknown[0].targets,
        vec![Target::Repository(repository)],
        "the whole repository it names is read again"
    );
    assert!(report.bitbucket_requests() <= 3, "{report:#?}");
    assert_eq!(drift_of(store.as_ref(), &ws, &repo, &member).await.len(), 1);
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

async fn the_connectors_own_change_is_not_drift(url: String) {
    let (sim, store, ws) = synced_world(&url, 7305).await;
    pass(&sim, store.as_ref(), &ws, "a").await;
    let before = drift_entries(store.as_ref()).await.len();
    // The connector's own credentials change a permission the store does not know about yet
    // (as a grant's restore in flight would).
    let (repo, member) = repo_and_member(&sim, &ws, 0);
    client(&sim, 1)
        .permissions()
        .put_user(
            PermissionTarget::Repository {
                workspace: &ws,
                repo_slug: &repo,
            },
            &member,
            PermissionLevel::Write,
        )
        .await
        .expect("the connector's own change");
    // Someone else changes another repository in the same pass.
    let (other_repo, other_member) = repo_and_member(&sim, &ws, 1);
    grant_as(&sim, other_admin(&sim), &ws, &other_repo, &other_member);

    let report = pass(&sim, store.as_ref(), &ws, "a").await;
    assert_eq!((report.applied, report.own), (2, 1), "{report:#?}");
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
    assert!(
        drift_of(store.as_ref(), &ws, &repo, &member)
            .await
            .is_empty(),
        "the connector's own change is stored but is not drift"
    );
    assert_eq!(
        drift_of(store.as_ref(), &ws, &other_repo, &other_member)
            .await
            .len(),
        1
    );
    assert_eq!(drift_entries(store.as_ref()).await.len(), before + 1);
}

async fn without_guard_or_link_no_event_arrives_and_sync_works_as_before(url: String) {
    let (sim, store, ws) = synced_world(&url, 7306).await;
    pass(&sim, store.as_ref(), &ws, "a").await;
    sim.org().configure(|s| s.linked = Some(BTreeSet::new()));
    let (repo, member) = repo_and_member(&sim, &ws, 0);
    grant_as(&sim, other_admin(&sim), &ws, &repo, &member);
    let report = pass(&sim, store.as_ref(), &ws, "a").await;
    assert_eq!(report.events, 0, "an unlinked workspace: {report:#?}");

    sim.org().configure(|s| {
        s.linked = None;
        s.guard = false;
    });
    let (repo_b, member_b) = repo_and_member(&sim, &ws, 1);
    grant_as(&sim, other_admin(&sim), &ws, &repo_b, &member_b);
    let report = pass(&sim, store.as_ref(), &ws, "a").await;
    assert_eq!(report.events, 0, "without Guard: {report:#?}");
    assert!(drift_of(store.as_ref(), &ws, &repo, &member)
        .await
        .is_empty());
    assert!(drift_of(store.as_ref(), &ws, &repo_b, &member_b)
        .await
        .is_empty());

    // The full read still finds both changes, as drift without an actor.
    let full = sync::run(
        store.as_ref(),
        &client(&sim, 4),
        &SyncOptions {
            workspaces: vec![ws.clone()],
            ..SyncOptions::default()
        },
    )
    .await
    .expect("full sync");
    assert!(full.drift >= 2, "{full:#?}");
    let found = drift_of(store.as_ref(), &ws, &repo, &member).await;
    assert_eq!(found.len(), 1);
    assert!(found[0].entry.details.get("attribution").is_none());
    assert_eq!(
        drift_of(store.as_ref(), &ws, &repo_b, &member_b)
            .await
            .len(),
        1
    );
    assert_store_matches_world(store.as_ref(), &sim, &ws).await;
}

async fn events_on_one_listing_merge_and_each_change_names_its_own_actor(url: String) {
    let (sim, store, ws) = synced_world(&url, 7307).await;
    pass(&sim, store.as_ref(), &ws, "a").await;
    let (repo, first) = repo_and_member(&sim, &ws, 0);
    let first_actor = other_admin(&sim);
    grant_as(&sim, first_actor.clone(), &ws, &repo, &first);
    let second = sim.with_world(|w| {
        let space = &w.workspaces[&ws];
        space
            .members
            .iter()
            .find(|(m, membership)| {
                membership.role == bitbucket_sim::Role::Member
                    && !space.repositories[&repo].user_permissions.contains_key(*m)
            })
            .map(|(m, _)| m.clone())
            .expect("a second member")
    });
    let second_actor = bitbucket_sim::api::org::Actor {
        id: "557058:second-admin".into(),
        name: "Second Admin".into(),
        api_token: false,
    };
    grant_as(&sim, second_actor.clone(), &ws, &repo, &second);
    sim.reset_counters();
    let report = pass(&sim, store.as_ref(), &ws, "a").await;
    assert_eq!(report.applied, 2, "{report:#?}");
    assert_eq!(
        bitbucket_requests(&sim),
        1,
        "two events on one listing cost one read: {report:#?}"
    );
    for (member, actor) in [(&first, &first_actor), (&second, &second_actor)] {
        let drift = drift_of(store.as_ref(), &ws, &repo, member).await;
        assert_eq!(drift.len(), 1);
        let by = &drift[0].entry.details["attribution"];
        assert_eq!(by["actor_account_id"], actor.id.as_str(), "{by}");
        assert_eq!(by["api_token"], actor.api_token, "{by}");
    }
}
