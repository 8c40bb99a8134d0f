//! Group membership grants through the 1.0 groups API (issue 12, item 7), on SQLite and
//! PostgreSQL: a user put into a group for a while is removed at the end; one who was a member
//! before stays; a workspace whose group writes Bitbucket refuses gets a clear error and a
//! failed grant, with nothing changed.

#[macro_use]
mod support_db;
mod grants_support;
mod sync_support;

use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::OnConflict;
use bitbucket_access::domain::{
    AccountId, GrantLevel, GrantState, GrantTarget, GroupSlug, Principal, WorkspaceSlug,
};
use bitbucket_access::grants::{GrantError, GrantPlan};
use bitbucket_access::store::{open, Store};
use bitbucket_sim::SimHandle;
use grants_support::*;
use std::sync::Arc;

on_both_backends!(
    a_membership_ends_with_removal_unless_it_stood_before,
    refused_group_writes_fail_the_grant_with_a_clear_error,
);

async fn store_at(url: &str) -> Arc<dyn Store> {
    open(url).await.expect("store opens")
}

/// The owned workspace's first group, and two plain members: one outside it, one inside.
fn group_and_members(sim: &SimHandle) -> (String, String, String, String) {
    let ws = owned(sim);
    let slot = slots(sim, 2);
    let group = sim.with_world(|w| {
        let group = w.workspaces[&ws]
            .groups
            .keys()
            .next()
            .cloned()
            .expect("a group");
        w.remove_group_member(&ws, &group, &slot[0].account)
            .expect("out");
        w.add_group_member(&ws, &group, &slot[1].account)
            .expect("in");
        group
    });
    (ws, group, slot[0].account.clone(), slot[1].account.clone())
}

fn is_member(sim: &SimHandle, ws: &str, group: &str, account: &str) -> bool {
    sim.with_world(|w| w.workspaces[ws].groups[group].members.contains(account))
}

fn plan(ws: &str, group: &str, account: &str, minutes: i64) -> GrantPlan {
    GrantPlan {
        principal: Principal::User {
            account_id: AccountId::parse(account.to_owned()).expect("id"),
        },
        target: GrantTarget::GroupMembership {
            workspace: WorkspaceSlug::parse(ws.to_owned()).expect("ws"),
            group: GroupSlug::parse(group.to_owned()).expect("group"),
        },
        level: GrantLevel::Member,
        expires_at: Some(at(minutes)),
        requested_by: "lead@acme.com".to_owned(),
        reason: None,
        ticket: None,
    }
}

async fn a_membership_ends_with_removal_unless_it_stood_before(url: String) {
    let sim = start_sim_with(world(1501, 4)).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let clock = ManualClock::new(at(0));
    let (ws, group, outside, inside) = group_and_members(&sim);
    let e = engine(&*store, &client, &clock, settings("w", OnConflict::Keep));

    let joined = e
        .grant(&plan(&ws, &group, &outside, 10))
        .await
        .expect("granted");
    assert_eq!(joined.state, GrantState::Active);
    assert!(is_member(&sim, &ws, &group, &outside));
    let already = e
        .grant(&plan(&ws, &group, &inside, 10))
        .await
        .expect("granted");
    assert_eq!(already.state, GrantState::Satisfied);

    clock.set(at(10));
    assert_eq!(e.expire_pass().await.expect("pass").ended, 2);
    assert!(!is_member(&sim, &ws, &group, &outside), "removed again");
    assert!(
        is_member(&sim, &ws, &group, &inside),
        "was a member before: stays"
    );
}

async fn refused_group_writes_fail_the_grant_with_a_clear_error(url: String) {
    let sim = start_sim_with(world(1502, 4)).await;
    let store = store_at(&url).await;
    let client = client(&sim, 4);
    let clock = ManualClock::new(at(0));
    let (ws, group, outside, _) = group_and_members(&sim);
    sim.with_world(|w| w.workspaces.get_mut(&ws).expect("ws").groups_admin_managed = true);
    let e = engine(&*store, &client, &clock, settings("w", OnConflict::Keep));
    let err = e
        .grant(&plan(&ws, &group, &outside, 10))
        .await
        .expect_err("refused");
    assert!(matches!(err, GrantError::Bitbucket(_)));
    let message = err.to_string();
    assert!(
        message.contains("refuses group membership changes") && message.contains("403"),
        "{message}"
    );
    assert!(!is_member(&sim, &ws, &group, &outside));
    let grants = store
        .list_grants(&Default::default())
        .await
        .expect("grants");
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].state, GrantState::Failed);
}
