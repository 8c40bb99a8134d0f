//! Identity matching against the simulator, on SQLite and PostgreSQL: each source recorded,
//! hidden emails left unmatched, overrides winning and reported, imports in batches of at most
//! 90 addresses, conflicts, Jira failures keeping earlier matches, scoped tokens through the
//! gateway, and Jira requests inside their budget.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::domain::{
    AccountId, AccountType, Conflict, Identity, IdentitySource, WorkspaceSlug,
};
use bitbucket_access::http::{Budget, BudgetSettings, Scrubber};
use bitbucket_access::identity::{self, Sources};
use bitbucket_access::jira::{self, JiraClient, JiraRoute, JiraSettings};
use bitbucket_access::store::{AuditFilter, AuditKind, Store};
use bitbucket_sim::SimHandle;
use chrono::{TimeZone, Utc};
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::sync::Arc;
use sync_support::*;
use url::Url;

on_both_backends!(
    jira_matches_record_their_source_and_hidden_emails_stay_unmatched,
    accounts_left_out_of_the_listing_are_found_by_bulk_lookup,
    overrides_win_and_disagreements_are_reported,
    an_import_of_200_emails_resolves_in_batches_of_at_most_90,
    conflicts_are_detected_and_recorded,
    jira_down_or_unauthorised_keeps_matches_and_says_why,
    a_scoped_token_works_through_the_gateway,
    jira_requests_stay_inside_their_budget,
    a_disappearing_email_is_recorded_as_a_change,
    an_email_resolves_through_the_store_then_the_member_filter,
);

fn at(minute: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 4, minute, 0).unwrap()
}

fn jira_settings(sim: &SimHandle, key: &str) -> JiraSettings {
    let (user, _) = sim.jira_credentials();
    JiraSettings::new(
        Url::parse(&sim.jira_url()).expect("jira url"),
        user,
        SecretString::from(key.to_owned()),
    )
}

async fn jira_client(sim: &SimHandle) -> JiraClient {
    let (_, key) = sim.jira_credentials();
    let (client, route) = connect(jira_settings(sim, &key), sim).await;
    assert!(matches!(route, JiraRoute::Site(_)), "{route}");
    client
}

async fn connect(settings: JiraSettings, sim: &SimHandle) -> (JiraClient, JiraRoute) {
    let budget = Arc::new(Budget::new(settings.budget));
    jira::connect(
        settings,
        &Url::parse(&sim.jira_url()).expect("gateway url"),
        quick_retries(),
        budget,
        Scrubber::new(),
    )
    .await
    .expect("Jira connects")
}

/// A matching pass with the simulator's Jira (classic token) and nothing else.
async fn refresh_with_jira(
    store: &dyn Store,
    sim: &SimHandle,
    now: chrono::DateTime<Utc>,
) -> identity::RefreshReport {
    let jira = jira_client(sim).await;
    let sources = Sources {
        jira: Some(&jira),
        ..Sources::default()
    };
    identity::refresh(store, sources, now)
        .await
        .expect("refresh")
}

async fn by_account(store: &dyn Store) -> BTreeMap<String, Identity> {
    store
        .identities()
        .await
        .expect("identities")
        .into_iter()
        .map(|i| (i.account_id.to_string(), i))
        .collect()
}

async fn jira_matches_record_their_source_and_hidden_emails_stay_unmatched(url: String) {
    let sim = start_sim(7101).await;
    let store = synced(&url, &sim).await;
    let report = refresh_with_jira(store.as_ref(), &sim, at(0)).await;
    assert!(report.jira_read, "{}", report.jira);
    let stored = by_account(store.as_ref()).await;
    let users = member_users(&sim);
    let (mut visible, mut hidden) = (0, 0);
    for u in &users {
        let got = &stored[&u.account_id];
        assert_eq!(got.matched_at, at(0));
        match (u.jira_account_type, u.email_visible_in_jira) {
            (Some(_), true) => {
                visible += 1;
                assert_eq!(
                    got.email.as_deref(),
                    Some(u.email.as_str()),
                    "{}",
                    u.account_id
                );
                assert_eq!(got.source, IdentitySource::JiraUsersSearch);
            }
            _ => {
                hidden += 1;
                // Never guessed from the display name or nickname.
                assert_eq!(got.email, None, "{} must stay unmatched", u.account_id);
                // An app has no person to match: labelled as such, not left unmatched.
                let want = if u.app_user {
                    IdentitySource::App
                } else {
                    IdentitySource::Unmatched
                };
                assert_eq!(got.source, want, "{}", u.account_id);
            }
        }
        if u.jira_account_type == Some(bitbucket_sim::JiraAccountType::App) {
            assert_eq!(got.account_type, AccountType::App);
        }
    }
    assert!(visible > 0 && hidden > 0, "the world has both kinds");
}

async fn accounts_left_out_of_the_listing_are_found_by_bulk_lookup(url: String) {
    let sim = start_sim(7102).await;
    let store = synced(&url, &sim).await;
    let target = member_users(&sim)
        .into_iter()
        .find(|u| u.jira_account_type.is_some() && u.email_visible_in_jira)
        .expect("a visible Jira user");
    sim.hide_from_jira_listing(std::slice::from_ref(&target.account_id));
    refresh_with_jira(store.as_ref(), &sim, at(0)).await;
    let got = &by_account(store.as_ref()).await[&target.account_id];
    assert_eq!(got.source, IdentitySource::JiraUserBulk);
    assert_eq!(got.email.as_deref(), Some(target.email.as_str()));
    assert!(sim.request_count("GET", "/rest/api/3/user/bulk") >= 1);
}

async fn overrides_win_and_disagreements_are_reported(url: String) {
    let sim = start_sim(7103).await;
    let store = synced(&url, &sim).await;
    let users = member_users(&sim);
    let jira_user = users
        .iter()
        .find(|u| u.jira_account_type.is_some() && u.email_visible_in_jira)
        .expect("a visible Jira user");
    let hidden_user = users
        .iter()
        .find(|u| !u.email_visible_in_jira || u.jira_account_type.is_none())
        .expect("a hidden user");
    let overrides = BTreeMap::from([
        (
            AccountId::parse(jira_user.account_id.clone()).unwrap(),
            "someone.else@override.example".to_owned(),
        ),
        (
            AccountId::parse(hidden_user.account_id.clone()).unwrap(),
            "hidden.person@override.example".to_owned(),
        ),
    ]);
    let jira = jira_client(&sim).await;
    let sources = Sources {
        jira: Some(&jira),
        overrides: Some(&overrides),
        ..Sources::default()
    };
    identity::refresh(store.as_ref(), sources, at(0))
        .await
        .expect("refresh");
    let stored = by_account(store.as_ref()).await;
    let overridden = &stored[&jira_user.account_id];
    assert_eq!(
        overridden.email.as_deref(),
        Some("someone.else@override.example")
    );
    assert_eq!(overridden.source, IdentitySource::Manual);
    assert_eq!(
        overridden.conflicts,
        vec![Conflict::OverrideDisagrees {
            source: IdentitySource::JiraUsersSearch,
            email: jira_user.email.clone(),
        }]
    );
    let filled = &stored[&hidden_user.account_id];
    assert_eq!(
        filled.email.as_deref(),
        Some("hidden.person@override.example")
    );
    assert_eq!(filled.source, IdentitySource::Manual);
    assert!(filled.conflicts.is_empty(), "nothing disagrees with it");
}

async fn an_import_of_200_emails_resolves_in_batches_of_at_most_90(url: String) {
    let sim = start_sim(7104).await;
    let store = synced(&url, &sim).await;
    let owned = owned_workspaces(&sim);
    let ws: Vec<WorkspaceSlug> = owned.iter().map(|w| slug(w)).collect();
    let users = member_users(&sim);
    let mut emails: Vec<String> = users.iter().map(|u| u.email.clone()).collect();
    let known = emails.len();
    emails.extend((emails.len()..200).map(|i| format!("nobody{i}@elsewhere.example")));
    assert_eq!(emails.len(), 200);
    sim.reset_counters();
    let report = identity::import_people(
        store.as_ref(),
        &client(&sim, 4),
        &ws,
        &emails,
        Sources::default(),
        at(0),
    )
    .await
    .expect("import");
    assert_eq!(report.resolved, known);
    assert_eq!(report.not_found.len(), 200 - known);
    // The simulator refuses any filter with more than 90 addresses, so success alone proves
    // the batch size; the count proves nothing was sent one address at a time.
    let requests = sim.request_count("GET", "/2.0/workspaces/{workspace}/members");
    assert!(
        (3..=3 * ws.len() as u64).contains(&requests),
        "{requests} member filter requests for 200 addresses"
    );
    let stored = by_account(store.as_ref()).await;
    for u in &users {
        let got = &stored[&u.account_id];
        assert_eq!(got.source, IdentitySource::BitbucketMemberEmail);
        assert!(got
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(&u.email)));
    }
}

async fn conflicts_are_detected_and_recorded(url: String) {
    let sim = start_sim(7105).await;
    let visible: Vec<String> = member_users(&sim)
        .into_iter()
        .filter(|u| u.jira_account_type.is_some() && u.email_visible_in_jira)
        .map(|u| u.account_id)
        .collect();
    let (a, b, c) = (&visible[0], &visible[1], &visible[2]);
    let shared = sim.with_world(|w| {
        let email = w.users[a].email.clone();
        w.users.get_mut(b).unwrap().email = email.to_uppercase();
        w.users.get_mut(c).unwrap().active = false;
        email
    });
    let store = synced(&url, &sim).await;
    let report = refresh_with_jira(store.as_ref(), &sim, at(0)).await;
    assert!(report.with_conflicts >= 3);
    let stored = by_account(store.as_ref()).await;
    assert_eq!(
        stored[a].conflicts,
        vec![Conflict::SharedEmail {
            email: shared,
            others: vec![b.clone()]
        }]
    );
    assert!(
        matches!(&stored[b].conflicts[..], [Conflict::SharedEmail { others, .. }] if others == std::slice::from_ref(a))
    );
    assert_eq!(stored[c].active, Some(false));
    assert!(stored[c].conflicts.contains(&Conflict::InactiveWithAccess));
}

async fn jira_down_or_unauthorised_keeps_matches_and_says_why(url: String) {
    let sim = start_sim(7106).await;
    let store = synced(&url, &sim).await;
    let jira = jira_client(&sim).await;
    let good = Sources {
        jira: Some(&jira),
        ..Sources::default()
    };
    identity::refresh(store.as_ref(), good, at(0))
        .await
        .expect("refresh");
    let before = store.identities().await.expect("identities");
    assert!(before.iter().any(|i| i.email.is_some()));

    // Unauthorised: the wrong key fails at connect; the pass is told why.
    let budget = Arc::new(Budget::new(BudgetSettings::default()));
    let refused = jira::connect(
        jira_settings(&sim, "not-the-key"),
        &Url::parse(&sim.jira_url()).unwrap(),
        quick_retries(),
        budget,
        Scrubber::new(),
    )
    .await
    .expect_err("a wrong key is refused");
    let why = refused.to_string();
    let unauthorised = Sources {
        jira_problem: Some(&why),
        ..Sources::default()
    };
    let report = identity::refresh(store.as_ref(), unauthorised, at(5))
        .await
        .expect("refresh");
    assert!(!report.jira_read);
    assert!(report.jira.contains("401"), "{}", report.jira);
    assert_eq!(store.identities().await.expect("identities"), before);

    // Down: nothing listens where Jira was.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        JiraClient::with_retry(
            JiraSettings::new(
                Url::parse(&format!("http://{addr}")).unwrap(),
                "svc@example.com",
                SecretString::from("k".to_owned()),
            ),
            quick_retries(),
        )
        .expect("client")
    };
    let down = Sources {
        jira: Some(&dead),
        ..Sources::default()
    };
    let report = identity::refresh(store.as_ref(), down, at(9))
        .await
        .expect("refresh");
    assert!(!report.jira_read);
    assert!(
        report.jira.contains("earlier matches kept"),
        "{}",
        report.jira
    );
    assert_eq!(store.identities().await.expect("identities"), before);
    let last = store
        .last_identity_refresh()
        .await
        .expect("read")
        .expect("recorded");
    assert!(!last.jira_read);
    assert_eq!(last.at, at(9));
    assert!(
        identity::is_due(
            store.as_ref(),
            std::time::Duration::from_secs(86_400),
            true,
            at(10)
        )
        .await
        .expect("due"),
        "a refresh that could not read Jira is due again"
    );
}

async fn a_scoped_token_works_through_the_gateway(url: String) {
    let sim = start_sim(7107).await;
    let store = synced(&url, &sim).await;
    let (client, route) = connect(jira_settings(&sim, &sim.jira_scoped_token()), &sim).await;
    match &route {
        JiraRoute::Gateway { base, cloud_id } => {
            assert_eq!(cloud_id, bitbucket_sim::api::jira::CLOUD_ID);
            assert!(base.path().starts_with("/ex/jira/"), "{base}");
        }
        other => panic!("expected the gateway, got {other}"),
    }
    let sources = Sources {
        jira: Some(&client),
        ..Sources::default()
    };
    let report = identity::refresh(store.as_ref(), sources, at(0))
        .await
        .expect("refresh");
    assert!(report.jira_read, "{}", report.jira);
    assert!(
        report
            .by_source
            .get(&IdentitySource::JiraUsersSearch)
            .copied()
            .unwrap_or(0)
            > 0
    );
    assert_eq!(sim.request_count("GET", "/_edge/tenant_info"), 1);
}

async fn jira_requests_stay_inside_their_budget(url: String) {
    let sim = start_sim(7108).await;
    let store = synced(&url, &sim).await;
    let jira = jira_client(&sim).await;
    let sources = Sources {
        jira: Some(&jira),
        ..Sources::default()
    };
    let spent_before = jira.budget().used_in_window();
    let report = identity::refresh(store.as_ref(), sources, at(0))
        .await
        .expect("refresh");
    // A tiny Jira: one users/search page and no bulk look-up (every account is listed or absent).
    let search = jira.request_counts();
    assert_eq!(
        report.jira_requests,
        search.values().sum::<u64>() - 1,
        "myself came first"
    );
    assert!(report.jira_requests <= 2, "{search:?}");
    assert_eq!(
        jira.budget().used_in_window() - spent_before,
        report.jira_requests
    );

    // A budget with no room left: the pass keeps the matches and says the budget stopped it.
    let tight = jira_client(&sim).await;
    tight.budget().cap_requests(Some(0));
    let before = store.identities().await.expect("identities");
    let sources = Sources {
        jira: Some(&tight),
        ..Sources::default()
    };
    let report = identity::refresh(store.as_ref(), sources, at(3))
        .await
        .expect("refresh");
    assert!(!report.jira_read);
    assert!(
        report.jira.to_lowercase().contains("budget"),
        "{}",
        report.jira
    );
    assert_eq!(store.identities().await.expect("identities"), before);
}

async fn a_disappearing_email_is_recorded_as_a_change(url: String) {
    let sim = start_sim(7109).await;
    let store = synced(&url, &sim).await;
    refresh_with_jira(store.as_ref(), &sim, at(0)).await;
    let person = member_users(&sim)
        .into_iter()
        .find(|u| u.jira_account_type.is_some() && u.email_visible_in_jira)
        .expect("a visible Jira user");
    sim.with_world(|w| {
        w.users
            .get_mut(&person.account_id)
            .unwrap()
            .email_visible_in_jira = false
    });
    let report = refresh_with_jira(store.as_ref(), &sim, at(30)).await;
    assert_eq!(report.changes.len(), 1);
    assert_eq!(report.changes[0].account_id.as_str(), person.account_id);
    let entries = store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::Identity],
            ..AuditFilter::default()
        })
        .await
        .expect("audit");
    assert_eq!(entries.len(), 1);
    let entry = &entries[0].entry;
    assert_eq!(entry.subject, format!("identity {}", person.account_id));
    assert_eq!(
        entry.before.as_ref().unwrap()["email"],
        person.email.as_str()
    );
    assert!(entry.after.as_ref().unwrap()["email"].is_null());
    let got = &by_account(store.as_ref()).await[&person.account_id];
    assert_eq!(got.source, IdentitySource::Unmatched);
}

async fn an_email_resolves_through_the_store_then_the_member_filter(url: String) {
    let sim = start_sim(7110).await;
    let store = synced(&url, &sim).await;
    let ws: Vec<WorkspaceSlug> = owned_workspaces(&sim).iter().map(|w| slug(w)).collect();
    let bb = client(&sim, 2);
    let person = member_users(&sim)
        .into_iter()
        .find(|u| !u.email_visible_in_jira || u.jira_account_type.is_none())
        .expect("a person Jira cannot name");
    // Nothing stored yet: Bitbucket's member filter answers.
    let found = identity::resolve_email(store.as_ref(), Some((&bb, &ws)), None, &person.email)
        .await
        .expect("resolve")
        .expect("found");
    assert_eq!(found.account_id.as_str(), person.account_id);
    assert_eq!(found.source, IdentitySource::BitbucketMemberEmail);
    // Once matched, the store answers without a request.
    refresh_with_jira(store.as_ref(), &sim, at(0)).await;
    let visible = member_users(&sim)
        .into_iter()
        .find(|u| u.jira_account_type.is_some() && u.email_visible_in_jira)
        .expect("a visible Jira user");
    sim.reset_counters();
    let found = identity::resolve_email(
        store.as_ref(),
        Some((&bb, &ws)),
        None,
        &visible.email.to_uppercase(),
    )
    .await
    .expect("resolve")
    .expect("found");
    assert_eq!(found.source, IdentitySource::JiraUsersSearch);
    assert_eq!(found.via, "store");
    assert_eq!(sim.total_requests(), 0);
}
