//! Managed-account emails as the identity source `atlassian_org` (issue 16, item 2), against the
//! simulator, on SQLite and PostgreSQL: with `atlassian_admin` configured every synced person is
//! matched to the organization's email, hidden Jira profiles included, and `identities` and the
//! API show the source; an override wins over it; it wins over Jira and the disagreement is
//! recorded; without `atlassian_admin` nothing changes and the organization is not asked; an
//! Organizations API failure leaves the stored identities as they were and says so.

#[macro_use]
mod support_db;
mod api_support;
mod grants_support;
mod org_support;
mod sync_support;

use api_support::{Api, READER};
use bitbucket_access::cli::identities::{identity_rows, render_rows, setup};
use bitbucket_access::cli::output::Format;
use bitbucket_access::config::{AtlassianAdmin, Config, DatabaseUrl, DEFAULT_ORG_POLL_INTERVAL};
use bitbucket_access::domain::{AccountId, Conflict, Identity, IdentitySource};
use bitbucket_access::http::{Budget, Scrubber};
use bitbucket_access::identity::{self, RefreshReport, Sources};
use bitbucket_access::jira::{self, JiraSettings};
use bitbucket_access::org::{OrgClient, OrgSettings};
use bitbucket_access::store::Store;
use bitbucket_sim::{SimHandle, World, WorldSpec};
use chrono::{DateTime, TimeZone, Utc};
use org_support::org_client;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use sync_support::*;
use url::Url;

on_both_backends!(
    managed_account_emails_are_matched_and_shown_with_their_source,
    an_override_wins_over_the_organization,
    the_organization_wins_over_jira_and_the_disagreement_is_recorded,
    without_atlassian_admin_nothing_changes,
    an_organization_failure_leaves_identities_untouched_and_is_reported,
);

const USERS: &str = "/admin/v1/orgs/{org_id}/users";

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 4, minute, 0).unwrap()
}

/// The simulator's config for the store at `url`, with `atlassian_admin` when `org` is true.
fn config(sim: &SimHandle, url: &str, org: bool) -> Config {
    let mut config = Config::for_simulator(
        Url::parse(&sim.bitbucket_url()).expect("simulator url"),
        sim.admin_email(),
        SecretString::from(sim.admin_token()),
        None,
        DatabaseUrl::parse(url, Path::new(".")).expect("database url"),
    );
    if org {
        let settings = sim.org().settings();
        config.atlassian_admin = Some(AtlassianAdmin {
            org_id: settings.org_id,
            api_key: SecretString::from(settings.api_key),
            url: Url::parse(&sim.org_url()).expect("org url"),
            poll_interval: DEFAULT_ORG_POLL_INTERVAL,
        });
    }
    config
}

/// A matching pass with the sources `config` gives, as `identities refresh` runs it.
async fn refresh_as_configured(
    store: &dyn Store,
    config: &Config,
    now: DateTime<Utc>,
) -> RefreshReport {
    let setup = setup(config, true).await.expect("set-up");
    identity::refresh(store, setup.sources(), now)
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

/// The members of the synced workspaces who are people (managed accounts), with their emails.
fn people(sim: &SimHandle) -> BTreeMap<String, String> {
    member_users(sim)
        .into_iter()
        .filter(|u| !u.app_user)
        .map(|u| (u.account_id, u.email))
        .collect()
}

async fn managed_account_emails_are_matched_and_shown_with_their_source(url: String) {
    let api = Api::start(7401, &url).await;
    let sim = &api.sim;
    synced(&url, sim).await;
    let report = refresh_as_configured(api.store.as_ref(), &config(sim, &url, true), at(0)).await;
    assert!(report.org_read, "{:?}", report.org);
    assert!(
        report.summary().contains("organization: read"),
        "{}",
        report.summary()
    );
    let people = people(sim);
    assert!(!people.is_empty());
    let hidden = member_users(sim)
        .iter()
        .filter(|u| !u.app_user && !u.email_visible_in_jira)
        .count();
    assert!(hidden > 0, "the world hides some emails from Jira");
    let stored = by_account(api.store.as_ref()).await;
    for (id, email) in &people {
        let got = &stored[id];
        assert_eq!(got.source, IdentitySource::AtlassianOrg, "{id}");
        assert_eq!(got.email.as_deref(), Some(email.as_str()), "{id}");
        assert_eq!(got.matched_at, at(0));
        assert!(got.conflicts.is_empty(), "{id}: {:?}", got.conflicts);
    }
    assert_eq!(
        report.by_source[&IdentitySource::AtlassianOrg],
        people.len()
    );

    // `identities --format json` and the API show the source.
    let rows = identity_rows(api.store.as_ref()).await.expect("rows");
    let listed: Vec<serde_json::Value> =
        serde_json::from_str(&render_rows(Format::Json, &rows)).expect("JSON rows");
    let (id, email) = people.iter().next().expect("a person");
    let row = listed
        .iter()
        .find(|r| r["account_id"] == id.as_str())
        .expect("listed");
    assert_eq!(row["source"], "atlassian_org");
    assert_eq!(row["email"], email.as_str());
    let (status, answer) = api
        .call("GET", "/v1/identities", Some(READER), None, &[])
        .await;
    assert_eq!(status, 200, "{answer}");
    let served = answer["identities"]
        .as_array()
        .expect("identities")
        .iter()
        .find(|r| r["account_id"] == id.as_str())
        .expect("served")
        .clone();
    assert_eq!(served["source"], "atlassian_org");
    assert_eq!(served["email"], email.as_str());
}

async fn an_override_wins_over_the_organization(url: String) {
    let sim = start_sim(7402).await;
    let store = synced(&url, &sim).await;
    let (id, org_email) = people(&sim).into_iter().next().expect("a person");
    let overrides = BTreeMap::from([(
        AccountId::parse(id.clone()).expect("id"),
        "someone@override.example".to_owned(),
    )]);
    let org = org_client(&sim);
    let sources = Sources {
        org: Some(&org),
        overrides: Some(&overrides),
        ..Sources::default()
    };
    identity::refresh(store.as_ref(), sources, at(0))
        .await
        .expect("refresh");
    let got = &by_account(store.as_ref()).await[&id];
    assert_eq!(got.source, IdentitySource::Manual);
    assert_eq!(got.email.as_deref(), Some("someone@override.example"));
    assert_eq!(
        got.conflicts,
        vec![Conflict::OverrideDisagrees {
            source: IdentitySource::AtlassianOrg,
            email: org_email
        }]
    );
}

async fn the_organization_wins_over_jira_and_the_disagreement_is_recorded(url: String) {
    // Two simulators of one world: the first plays Bitbucket and the organization, the second
    // Jira, whose profile of one person shows another address than the organization holds.
    let spec = WorldSpec::tiny(7403);
    let sim = start_sim_with(World::generate(&spec)).await;
    let store = synced(&url, &sim).await;
    let people = people(&sim);
    let (id, org_email) = people
        .iter()
        .find(|(id, _)| sim.with_world(|w| w.users[id.as_str()].email_visible_in_jira))
        .map(|(id, e)| (id.clone(), e.clone()))
        .expect("a person Jira shows the email of");
    let mut jira_world = World::generate(&spec);
    let jira_email = "old-address@jira.example".to_owned();
    jira_world
        .users
        .get_mut(&id)
        .expect("the same person")
        .email = jira_email.clone();
    let jira_sim = start_sim_with(jira_world).await;
    let (user, key) = jira_sim.jira_credentials();
    let settings = JiraSettings::new(
        Url::parse(&jira_sim.jira_url()).expect("jira url"),
        user,
        SecretString::from(key),
    );
    let (jira, _) = jira::connect(
        settings.clone(),
        &Url::parse(&jira_sim.jira_url()).expect("gateway"),
        quick_retries(),
        Arc::new(Budget::new(settings.budget)),
        Scrubber::new(),
    )
    .await
    .expect("Jira connects");
    let org = org_client(&sim);
    let sources = Sources {
        jira: Some(&jira),
        org: Some(&org),
        ..Sources::default()
    };
    let report = identity::refresh(store.as_ref(), sources, at(0))
        .await
        .expect("refresh");
    assert!(report.jira_read && report.org_read, "{}", report.summary());
    let stored = by_account(store.as_ref()).await;
    let got = &stored[&id];
    assert_eq!(got.source, IdentitySource::AtlassianOrg);
    assert_eq!(got.email.as_deref(), Some(org_email.as_str()));
    assert_eq!(
        got.conflicts,
        vec![Conflict::OrgDisagrees {
            source: IdentitySource::JiraUsersSearch,
            email: jira_email
        }]
    );
    // Where Jira agrees, the organization's match stands without a conflict.
    for (other, email) in people.iter().filter(|(o, _)| **o != id) {
        let i = &stored[other];
        assert_eq!(i.source, IdentitySource::AtlassianOrg, "{other}");
        assert_eq!(i.email.as_deref(), Some(email.as_str()));
        assert!(i.conflicts.is_empty(), "{other}: {:?}", i.conflicts);
    }
    assert_eq!(report.with_conflicts, 1);
}

async fn without_atlassian_admin_nothing_changes(url: String) {
    let sim = start_sim(7404).await;
    let store = synced(&url, &sim).await;
    let report = refresh_as_configured(store.as_ref(), &config(&sim, &url, false), at(0)).await;
    assert_eq!(report.org, None);
    assert!(
        !report.summary().contains("organization"),
        "{}",
        report.summary()
    );
    assert_eq!(
        sim.request_count("GET", USERS),
        0,
        "the organization not asked"
    );
    let stored = by_account(store.as_ref()).await;
    assert!(stored
        .values()
        .all(|i| i.source != IdentitySource::AtlassianOrg));
    // No source configured: every person is unmatched, as before the organization existed.
    for id in people(&sim).keys() {
        assert_eq!(stored[id].source, IdentitySource::Unmatched, "{id}");
    }
}

async fn an_organization_failure_leaves_identities_untouched_and_is_reported(url: String) {
    let sim = start_sim(7405).await;
    let store = synced(&url, &sim).await;
    let org = org_client(&sim);
    let sources = Sources {
        org: Some(&org),
        ..Sources::default()
    };
    identity::refresh(store.as_ref(), sources, at(0))
        .await
        .expect("refresh");
    let before = store.identities().await.expect("identities");
    assert!(before
        .iter()
        .any(|i| i.source == IdentitySource::AtlassianOrg));

    // The organization answers 503 on every attempt, and later refuses the key.
    sim.org().fail_next(&[503, 503, 503, 503]);
    let report = identity::refresh(store.as_ref(), sources, at(5))
        .await
        .expect("the pass itself succeeds");
    assert!(!report.org_read);
    let words = report.org.clone().expect("the organization is reported");
    assert!(
        words.contains("not read, earlier matches kept") && words.contains("503"),
        "{words}"
    );
    assert!(report.summary().contains(&words), "{}", report.summary());
    assert_eq!(store.identities().await.expect("identities"), before);

    let mut wrong = sim.org().settings();
    wrong.api_key = "not-the-key".into();
    let refused = OrgClient::new(
        OrgSettings::new(
            Url::parse(&sim.org_url()).expect("org url"),
            wrong.org_id,
            SecretString::from(wrong.api_key),
        ),
        quick_retries(),
        Scrubber::new(),
    )
    .expect("client");
    let report = identity::refresh(
        store.as_ref(),
        Sources {
            org: Some(&refused),
            ..Sources::default()
        },
        at(9),
    )
    .await
    .expect("the pass itself succeeds");
    let words = report.org.expect("reported");
    assert!(words.contains("atlassian_admin.api_key"), "{words}");
    assert!(
        !words.contains("not-the-key"),
        "the key is not shown: {words}"
    );
    assert_eq!(store.identities().await.expect("identities"), before);
}
