//! `identities` and `access user EMAIL` through the binary, on SQLite: a sync refreshes the
//! matches when due (Jira and the override file), `identities` prints the documented fields in
//! JSON and CSV, `--unmatched` keeps only accounts without an email, and `access user EMAIL`
//! says which source resolved the address and shows the email beside the account.

mod sync_support;

use bitbucket_sim::SimHandle;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use sync_support::*;

fn write_config(sim: &SimHandle, dir: &Path, override_id: &str) -> PathBuf {
    std::fs::write(
        dir.join("overrides.csv"),
        format!("account_id,email\n{override_id},named.by.override@example.com\n"),
    )
    .expect("write overrides");
    let (jira_user, _) = sim.jira_credentials();
    let path = dir.join("bitbucket-access.json");
    let config = json!({
        "email": sim.admin_email(),
        "app_token": "${BB_TOKEN}",
        "database_url": format!("sqlite://{}", dir.join("store.db").display()),
        "workspaces": owned_workspaces(sim),
        "request_budget": {"requests_per_hour": REQUESTS_PER_HOUR, "reserve": 0, "max_in_flight": 4},
        "api": {"bitbucket_url": sim.bitbucket_url()},
        "jira_credentials": {"url": sim.jira_url(), "user": jira_user, "key": "${JIRA_KEY}"},
        "identity": {"overrides_file": "overrides.csv", "refresh_interval": "12h"},
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_matches_identities_and_the_commands_show_them() {
    let sim = start_sim(7201).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let owned = owned_workspaces(&sim);
    let (visible, hidden) = sim.with_world(|w| {
        let members: Vec<_> = w
            .users
            .values()
            .filter(|u| {
                owned
                    .iter()
                    .any(|ws| w.workspaces[ws].members.contains_key(&u.account_id))
            })
            .cloned()
            .collect();
        let visible = members
            .iter()
            .find(|u| u.jira_account_type.is_some() && u.email_visible_in_jira)
            .cloned()
            .expect("a visible Jira user");
        let hidden = members
            .iter()
            .find(|u| u.jira_account_type.is_some() && !u.email_visible_in_jira)
            .cloned()
            .expect("a hidden Jira user");
        (visible, hidden)
    });
    let config = write_config(&sim, dir.path(), &hidden.account_id);

    let sync = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);
    assert!(
        sync.stderr.contains("identity matching:"),
        "a first sync refreshes the matches: {}",
        sync.stderr
    );

    let listed = run_cli(
        &sim,
        dir.path(),
        &config,
        &["identities", "--format", "json"],
    )
    .await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rows: Vec<Value> = serde_json::from_str(&listed.stdout).expect("JSON rows");
    let fields: Vec<&str> = rows[0]
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "account_id",
        "display_name",
        "email",
        "source",
        "matched_at",
        "active",
        "account_type",
        "conflicts",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    let row = |id: &str| {
        rows.iter()
            .find(|r| r["account_id"] == id)
            .unwrap_or_else(|| panic!("{id} listed"))
    };
    assert_eq!(row(&visible.account_id)["email"], visible.email.as_str());
    assert_eq!(row(&visible.account_id)["source"], "jira_users_search");
    assert_eq!(
        row(&hidden.account_id)["email"],
        "named.by.override@example.com"
    );
    assert_eq!(row(&hidden.account_id)["source"], "manual");

    let csv = run_cli(
        &sim,
        dir.path(),
        &config,
        &["identities", "--format", "csv"],
    )
    .await;
    assert!(
        csv.stdout.starts_with(
            "account_id,display_name,email,source,matched_at,active,account_type,conflicts\n"
        ),
        "{}",
        csv.stdout
    );
    let unmatched = run_cli(
        &sim,
        dir.path(),
        &config,
        &["identities", "--unmatched", "--format", "json"],
    )
    .await;
    let unmatched: Vec<Value> = serde_json::from_str(&unmatched.stdout).expect("JSON rows");
    assert!(unmatched.iter().all(|r| r["email"].is_null()));
    assert!(unmatched.len() < rows.len());

    // A second sync within the interval does not match again.
    let again = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert!(
        !again.stderr.contains("identity matching:"),
        "{}",
        again.stderr
    );

    let access = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "user", &visible.email.to_uppercase()],
    )
    .await;
    assert!(
        access.stderr.contains(&format!(
            "is account {} (source jira_users_search, found in store)",
            visible.account_id
        )),
        "{}",
        access.stderr
    );
    let header = access.stdout.lines().next().unwrap_or_default();
    assert!(header.contains("email"), "{header}");
    assert!(access.stdout.contains(&visible.email), "{}", access.stdout);
}
