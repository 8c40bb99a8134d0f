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

async fn identities_json(sim: &SimHandle, dir: &Path, config: &Path, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["identities"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--format", "json"]);
    let listed = run_cli(sim, dir, config, &all).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    serde_json::from_str(&listed.stdout).expect("JSON rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_of_200_people_resolves_in_batches_and_a_bad_file_stores_nothing() {
    let sim = start_sim(7202).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(&sim, dir.path(), &sim.admin_account_id());
    let sync = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);
    let before = identities_json(&sim, dir.path(), &config, &[]).await;

    // A malformed row names the file and its line; nothing is asked or stored.
    std::fs::write(
        dir.path().join("bad.csv"),
        "name,email,department\nAda,ada@x.example,R&D\nBo,,R&D\n",
    )
    .expect("write");
    sim.reset_counters();
    let bad = run_cli(
        &sim,
        dir.path(),
        &config,
        &["identities", "import", "bad.csv"],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("bad.csv (line 3)"), "{}", bad.stderr);
    assert_eq!(sim.total_requests(), 0, "nothing asked of Bitbucket");
    assert_eq!(
        identities_json(&sim, dir.path(), &config, &[]).await,
        before
    );
    // A file that is not UTF-8 (an old spreadsheet export) names its line too.
    std::fs::write(
        dir.path().join("latin1.csv"),
        b"email\nada@x.example\nren\xe9@x.example\n",
    )
    .expect("write");
    let latin1 = run_cli(
        &sim,
        dir.path(),
        &config,
        &["identities", "import", "latin1.csv"],
    )
    .await;
    assert_eq!(latin1.code, 2, "{}", latin1.stderr);
    assert!(
        latin1
            .stderr
            .contains("latin1.csv is not UTF-8 text (line 3)"),
        "{}",
        latin1.stderr
    );
    assert_eq!(sim.total_requests(), 0, "nothing asked of Bitbucket");

    // People who are members, without an email Jira shows, and strangers: 200 addresses.
    let people: Vec<bitbucket_sim::User> = member_users(&sim)
        .into_iter()
        .filter(|u| !u.email_visible_in_jira && u.account_id != sim.admin_account_id())
        .collect();
    assert!(!people.is_empty());
    let mut csv = String::from("name,email,department,manager\n");
    for u in &people {
        csv += &format!("\"{}\",{},Eng,\n", u.display_name, u.email);
    }
    for i in people.len()..200 {
        csv += &format!("Stranger {i},stranger{i}@elsewhere.example,Ops,boss@x.example\n");
    }
    std::fs::write(dir.path().join("people.csv"), csv).expect("write");
    sim.reset_counters();
    let import = run_cli(
        &sim,
        dir.path(),
        &config,
        &["identities", "import", "people.csv"],
    )
    .await;
    assert_eq!(import.code, 0, "{}\n{}", import.stdout, import.stderr);
    assert!(
        import.stdout.contains(&format!(
            "imported 200 address(es): {} resolved",
            people.len()
        )),
        "{}",
        import.stdout
    );
    for u in &people {
        assert!(
            import
                .stdout
                .contains(&format!("{} -> {}", u.email.to_lowercase(), u.account_id))
                || import
                    .stdout
                    .contains(&format!("{} -> {}", u.email, u.account_id)),
            "{} listed as resolved: {}",
            u.email,
            import.stdout
        );
    }
    // The simulator refuses a filter of more than 90 addresses; 200 need 3 per workspace.
    let requests = sim.request_count("GET", "/2.0/workspaces/{workspace}/members");
    let workspaces = owned_workspaces(&sim).len() as u64;
    assert!(
        (3..=3 * workspaces).contains(&requests),
        "{requests} member filter requests for 200 addresses"
    );
    let after = identities_json(&sim, dir.path(), &config, &[]).await;
    for u in &people {
        let row = after
            .iter()
            .find(|r| r["account_id"] == u.account_id.as_str())
            .expect("listed");
        if row["source"] != "manual" {
            assert_eq!(row["source"], "bitbucket_member_email", "{row}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_unknown_overrides_and_member_filter_answers_are_shown() {
    let sim = start_sim(7203).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(&sim, dir.path(), "557058:no-such-account");
    let sync = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert!(sync.code <= 1, "{}\n{}", sync.stdout, sync.stderr);
    assert!(
        sync.stderr
            .contains("warning: the override file names 1 account(s)")
            && sync.stderr.contains("557058:no-such-account"),
        "{}",
        sync.stderr
    );
    let refresh = run_cli(&sim, dir.path(), &config, &["identities", "refresh"]).await;
    assert!(
        refresh.stderr.contains("557058:no-such-account"),
        "{}",
        refresh.stderr
    );

    // Apps are labelled apps and not listed among the unmatched people.
    let members = member_users(&sim);
    let app = members.iter().find(|u| u.app_user).expect("an app user");
    let rows = identities_json(&sim, dir.path(), &config, &[]).await;
    let row = rows
        .iter()
        .find(|r| r["account_id"] == app.account_id.as_str())
        .expect("the app listed");
    assert_eq!(
        (&row["source"], &row["account_type"]),
        (&json!("app"), &json!("app"))
    );
    let unmatched = identities_json(&sim, dir.path(), &config, &["--unmatched"]).await;
    assert!(!unmatched.is_empty());
    assert!(
        unmatched.iter().all(|r| r["source"] == "unmatched"),
        "{unmatched:?}"
    );

    // A person Jira does not know: `access user` finds them through the member filter and
    // says so.
    let person = members
        .iter()
        .find(|u| u.jira_account_type.is_none() && !u.app_user)
        .expect("a person without Jira");
    let access = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "user", &person.email],
    )
    .await;
    assert!(
        access.stderr.contains(&format!(
            "is account {} (source bitbucket_member_email, found in Bitbucket's member email filter)",
            person.account_id
        )),
        "{}",
        access.stderr
    );
}
