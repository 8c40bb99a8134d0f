//! The Organizations API client against the simulator: the organization and its linked
//! workspaces, managed accounts with their emails, and the events stream (an out-of-band
//! change becomes an event with its actor; the cursor neither loses nor replays events;
//! faults are retried; an action nobody knows is passed on as it is; without Guard no event).

mod sync_support;

use bitbucket_access::http::Scrubber;
use bitbucket_access::org::{OrgClient, OrgError, OrgSettings};
use bitbucket_sim::api::org::{ACTIONS, UNKNOWN_ACTION};
use bitbucket_sim::{Level, SimHandle};
use secrecy::SecretString;
use std::collections::BTreeSet;
use sync_support::*;
use url::Url;

fn org_client(sim: &SimHandle, key: &str) -> OrgClient {
    let settings = sim.org().settings();
    OrgClient::new(
        OrgSettings::new(
            Url::parse(&sim.org_url()).expect("org url"),
            settings.org_id,
            SecretString::from(key.to_owned()),
        ),
        quick_retries(),
        Scrubber::new(),
    )
    .expect("client")
}

fn client_for(sim: &SimHandle) -> OrgClient {
    org_client(sim, &sim.org().settings().api_key)
}

/// Changes one repository user permission out of band; returns the workspace and repository.
fn change_a_permission(sim: &SimHandle) -> (String, String) {
    let ws = owned_workspaces(sim).remove(0);
    sim.with_world(|w| {
        let space = &w.workspaces[&ws];
        let repo = space
            .repositories
            .keys()
            .next()
            .cloned()
            .expect("a repository");
        let member = space.members.keys().next().cloned().expect("a member");
        w.set_repo_user_permission(&ws, &repo, &member, Some(Level::Admin))
            .expect("grant");
        (ws.clone(), repo)
    })
}

#[tokio::test]
async fn the_organization_its_workspaces_and_managed_emails_are_read() {
    let sim = start_sim(7201).await;
    let client = client_for(&sim);
    let org = client.organization().await.expect("organization");
    assert_eq!(org.id, sim.org().settings().org_id);
    let linked: BTreeSet<String> = client
        .linked_workspaces()
        .await
        .expect("workspaces")
        .into_iter()
        .collect();
    let all: BTreeSet<String> = sim.with_world(|w| w.workspaces.keys().cloned().collect());
    assert_eq!(linked, all);
    let users = client.users().await.expect("users");
    let expected = sim.with_world(|w| w.users.values().filter(|u| !u.app_user).count());
    assert_eq!(users.len(), expected, "every page followed");
    let hidden = sim.with_world(|w| {
        w.users
            .values()
            .find(|u| !u.email_visible_in_jira && !u.app_user)
            .map(|u| (u.account_id.clone(), u.email.clone()))
    });
    if let Some((id, email)) = hidden {
        let user = users.iter().find(|u| u.account_id == id).expect("listed");
        assert_eq!(
            user.email.as_deref(),
            Some(email.as_str()),
            "managed emails ignore profile visibility"
        );
    }
    assert_eq!(sim.request_count("GET", "/rest/api/3/users/search"), 0);
}

#[tokio::test]
async fn a_bad_key_or_org_is_named_with_its_fix() {
    let sim = start_sim(7202).await;
    let err = org_client(&sim, "wrong-key")
        .organization()
        .await
        .unwrap_err();
    assert!(matches!(err, OrgError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("atlassian_admin.api_key"), "{err}");
    assert!(!err.to_string().contains("wrong-key"));
    let settings = sim.org().settings();
    let other = OrgClient::new(
        OrgSettings::new(
            Url::parse(&sim.org_url()).expect("url"),
            "not-this-org",
            SecretString::from(settings.api_key),
        ),
        quick_retries(),
        Scrubber::new(),
    )
    .expect("client");
    let err = other.organization().await.unwrap_err();
    assert!(matches!(err, OrgError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("atlassian_admin.org_id"), "{err}");
}

#[tokio::test]
async fn an_out_of_band_change_is_an_event_once_and_the_cursor_resumes_after_it() {
    let sim = start_sim(7203).await;
    let client = client_for(&sim);
    // The first poll sees the world as it is: nothing happened yet.
    let first = client.events(None, None, 100).await.expect("events");
    assert!(first.events.is_empty(), "{:?}", first.events);
    let (ws, repo) = change_a_permission(&sim);
    let page = client
        .events(first.cursor.as_deref(), None, 100)
        .await
        .expect("events");
    assert_eq!(page.events.len(), 1, "{:?}", page.events);
    let event = &page.events[0];
    assert!(
        ACTIONS.iter().any(|(_, a)| *a == event.action),
        "{}",
        event.action
    );
    assert_eq!(event.actor.account_id, sim.org().settings().actor.id);
    assert!(!event.actor.api_token);
    assert!(event
        .context
        .iter()
        .any(|c| c.kind == "repository" && c.id == format!("{ws}/{repo}")));
    // From the stored cursor: nothing again.
    let again = client
        .events(page.cursor.as_deref(), None, 100)
        .await
        .expect("events");
    assert!(again.events.is_empty(), "replayed {:?}", again.events);
}

#[tokio::test]
async fn a_delayed_event_appears_only_after_its_delay() {
    let sim = start_sim(7204).await;
    let client = client_for(&sim);
    let start = client.events(None, None, 100).await.expect("events");
    sim.org()
        .configure(|o| o.delay = std::time::Duration::from_millis(300));
    change_a_permission(&sim);
    let early = client
        .events(start.cursor.as_deref(), None, 100)
        .await
        .expect("events");
    assert!(early.events.is_empty());
    assert_eq!(
        early.cursor, start.cursor,
        "the cursor does not pass an event still to come"
    );
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let late = client
        .events(early.cursor.as_deref(), None, 100)
        .await
        .expect("events");
    assert_eq!(late.events.len(), 1);
}

#[tokio::test]
async fn faults_are_retried_and_unknown_actions_passed_on() {
    let sim = start_sim(7205).await;
    let client = client_for(&sim);
    let start = client.events(None, None, 100).await.expect("events");
    sim.org().fail_next(&[429]);
    sim.org().unknown_action_next(1);
    change_a_permission(&sim);
    let page = client
        .events(start.cursor.as_deref(), None, 100)
        .await
        .expect("retried after 429");
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.events[0].action, UNKNOWN_ACTION);
    assert_eq!(
        client.requests_used(),
        3,
        "the first poll, the 429 and its retry"
    );
}

#[tokio::test]
async fn without_guard_no_bitbucket_event_is_listed() {
    let sim = start_sim(7206).await;
    sim.org().configure(|o| o.guard = false);
    let client = client_for(&sim);
    let start = client.events(None, None, 100).await.expect("events");
    change_a_permission(&sim);
    let page = client
        .events(start.cursor.as_deref(), None, 100)
        .await
        .expect("events");
    assert!(page.events.is_empty());
}

#[test]
fn every_action_the_simulator_emits_is_one_the_connector_knows() {
    for (_, action) in ACTIONS {
        assert!(
            bitbucket_access::org::events::is_known(action),
            "{action} would be refreshed conservatively"
        );
    }
    assert!(!bitbucket_access::org::events::is_known(UNKNOWN_ACTION));
}
