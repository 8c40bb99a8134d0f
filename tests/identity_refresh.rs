//! Identity matching's remaining rules against the simulator, on SQLite and PostgreSQL: app
//! users are labelled apps from Bitbucket's own `type` (Jira not needed), override entries that
//! name no known account are reported, and the refresh after a sync reads the sync's clock.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::cli::identities::refresh_if_due;
use bitbucket_access::clock::{Clock, ManualClock};
use bitbucket_access::config::Config;
use bitbucket_access::domain::{AccountId, AccountKind, AccountType, IdentitySource};
use bitbucket_access::identity::{self, Sources};
use bitbucket_access::store::{open, Store};
use bitbucket_access::sync::{self, SyncOptions, SyncReport};
use bitbucket_sim::SimHandle;
use chrono::{Duration, TimeZone, Utc};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use sync_support::*;

on_both_backends!(
    app_users_are_apps_from_bitbucket_alone,
    overrides_naming_unknown_accounts_are_reported,
    the_refresh_after_a_sync_reads_the_syncs_clock,
);

async fn sync_with(store: &dyn Store, sim: &SimHandle, clock: Arc<dyn Clock>) -> SyncReport {
    let options = SyncOptions {
        workspaces: owned_workspaces(sim),
        cross_check_sample: 0,
        clock,
        ..SyncOptions::default()
    };
    sync::run(store, &client(sim, 4), &options)
        .await
        .expect("sync runs")
}

fn start() -> ManualClock {
    ManualClock::new(Utc.with_ymd_and_hms(2026, 1, 5, 10, 0, 0).unwrap())
}

/// The simulator's app users among the members of the synced workspaces.
fn app_members(sim: &SimHandle) -> Vec<bitbucket_sim::User> {
    let owned = owned_workspaces(sim);
    sim.with_world(|w| {
        w.users
            .values()
            .filter(|u| u.app_user)
            .filter(|u| {
                owned
                    .iter()
                    .any(|ws| w.workspaces[ws].members.contains_key(&u.account_id))
            })
            .cloned()
            .collect()
    })
}

async fn app_users_are_apps_from_bitbucket_alone(url: String) {
    let sim = start_sim(7301).await;
    let apps = app_members(&sim);
    assert!(!apps.is_empty(), "the simulator serves an app user");
    let bot = apps[0].clone();
    // The app user also sits in a group, whose 1.0 member listing carries no type: that must
    // neither forget the kind nor rewrite the account on every sync.
    let owned = owned_workspaces(&sim);
    sim.with_world(|w| {
        w.workspaces
            .values_mut()
            .find(|ws| owned.contains(&ws.slug) && ws.members.contains_key(&bot.account_id))
            .expect("the app user's workspace")
            .groups
            .values_mut()
            .next()
            .expect("a group")
            .members
            .insert(bot.account_id.clone());
    });
    let store = open(&url).await.expect("store opens");
    let clock: Arc<dyn Clock> = Arc::new(start());
    sync_with(store.as_ref(), &sim, clock.clone()).await;
    let second = sync_with(store.as_ref(), &sim, clock.clone()).await;
    let again = sync_with(store.as_ref(), &sim, clock).await;
    eprintln!(
        "second {} third {}",
        second.rows_written, again.rows_written
    );
    assert_eq!(again.rows_written, 0, "an unchanged world writes nothing");

    let kinds: BTreeMap<String, AccountKind> = store
        .accounts()
        .await
        .expect("accounts")
        .into_iter()
        .map(|a| (a.account_id.to_string(), a.kind))
        .collect();
    for app in &apps {
        assert_eq!(
            kinds[&app.account_id],
            AccountKind::AppUser,
            "{}",
            app.account_id
        );
    }
    assert_eq!(kinds[&sim.admin_account_id()], AccountKind::User);

    // No Jira, no overrides: only Bitbucket's type can say what the account is.
    let report = identity::refresh(store.as_ref(), Sources::default(), start().now())
        .await
        .expect("refresh");
    assert_eq!(
        report.by_source.get(&IdentitySource::App),
        Some(&apps.len())
    );
    let identities: BTreeMap<String, _> = store
        .identities()
        .await
        .expect("identities")
        .into_iter()
        .map(|i| (i.account_id.to_string(), i))
        .collect();
    for app in &apps {
        let got = &identities[&app.account_id];
        assert_eq!(
            (got.source, got.account_type, got.email.as_deref()),
            (IdentitySource::App, AccountType::App, None),
            "{} is an app, not an unmatched person",
            app.account_id
        );
    }
    let person = &identities[&sim.admin_account_id()];
    assert_eq!(person.source, IdentitySource::Unmatched);
    assert_ne!(person.account_type, AccountType::App);
}

async fn overrides_naming_unknown_accounts_are_reported(url: String) {
    let sim = start_sim(7302).await;
    let store = open(&url).await.expect("store opens");
    sync_with(store.as_ref(), &sim, Arc::new(start())).await;
    let known = AccountId::parse(sim.admin_account_id()).expect("id");
    let stranger = AccountId::parse("557058:nobody-by-this-id".to_owned()).expect("id");
    let overrides = BTreeMap::from([
        (known.clone(), "svc@override.example".to_owned()),
        (stranger.clone(), "ghost@override.example".to_owned()),
    ]);
    let report = identity::refresh(
        store.as_ref(),
        Sources {
            overrides: Some(&overrides),
            ..Sources::default()
        },
        start().now(),
    )
    .await
    .expect("refresh");
    assert_eq!(report.unknown_overrides, vec![stranger.clone()]);
    let warning = report.override_warning().expect("a warning");
    assert!(
        warning.contains(stranger.as_str()) && warning.contains("does not know"),
        "{warning}"
    );
    let identities = store.identities().await.expect("identities");
    assert!(
        identities.iter().all(|i| i.account_id != stranger),
        "an unknown account is not invented"
    );
    let svc = identities
        .iter()
        .find(|i| i.account_id == known)
        .expect("the known account");
    assert_eq!(svc.source, IdentitySource::Manual);

    // Every entry known: no warning.
    let overrides = BTreeMap::from([(known, "svc@override.example".to_owned())]);
    let report = identity::refresh(
        store.as_ref(),
        Sources {
            overrides: Some(&overrides),
            ..Sources::default()
        },
        start().now(),
    )
    .await
    .expect("refresh");
    assert!(report.override_warning().is_none());
}

fn config(sim: &SimHandle, url: &str) -> Config {
    let text = json!({
        "email": sim.admin_email(),
        "app_token": "${BB_TOKEN}",
        "database_url": url,
        "workspaces": owned_workspaces(sim),
        "api": {"bitbucket_url": sim.bitbucket_url()},
        "identity": {"refresh_interval": "12h"},
    })
    .to_string();
    let token = sim.admin_token();
    let env = move |name: &str| (name == "BB_TOKEN").then(|| token.clone());
    Config::from_json_str(&text, &env, std::path::Path::new(".")).expect("valid config")
}

async fn the_refresh_after_a_sync_reads_the_syncs_clock(url: String) {
    let sim = start_sim(7303).await;
    let store = open(&url).await.expect("store opens");
    let config = config(&sim, &url);
    // Far from the system's time, so a refresh reading the system clock would show.
    let clock = start();
    sync_with(store.as_ref(), &sim, Arc::new(clock.clone())).await;

    let first = refresh_if_due(&config, store.as_ref(), &clock).await;
    assert!(first.is_some(), "the first sync matches identities");
    let last = store
        .last_identity_refresh()
        .await
        .expect("read")
        .expect("a refresh recorded");
    assert_eq!(last.at, clock.now());
    let identities = store.identities().await.expect("identities");
    assert!(!identities.is_empty());
    assert!(identities.iter().all(|i| i.matched_at == clock.now()));

    // Six hours on the sync's clock: inside the 12-hour interval (the system clock is months
    // later, so it would call the refresh due).
    clock.advance(Duration::hours(6));
    assert!(refresh_if_due(&config, store.as_ref(), &clock)
        .await
        .is_none());
    clock.advance(Duration::hours(7));
    assert!(refresh_if_due(&config, store.as_ref(), &clock)
        .await
        .is_some());
    let last = store
        .last_identity_refresh()
        .await
        .expect("read")
        .expect("a refresh recorded");
    assert_eq!(last.at, clock.now());
}
