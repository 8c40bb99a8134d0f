//! `sync`, `access repo`, `access user` and `demo` as a user runs them: the real binary, a config
//! file in a temporary folder pointing at an in-process simulator and an SQLite file.

#[macro_use]
mod support_db;
mod sync_support;

use assert_cmd::Command;
use bitbucket_sim::{Role, SimHandle};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use sync_support::*;
use tempfile::TempDir;

/// A config for the simulator's service account and an SQLite file, both in `dir`.
fn write_config(sim: &SimHandle, dir: &Path) -> PathBuf {
    let path = dir.join("bitbucket-access.json");
    let config = json!({
        "email": sim.admin_email(),
        "app_token": "${BB_TOKEN}",
        "database_url": format!("sqlite://{}", dir.join("store.db").display()),
        "request_budget": {
            "requests_per_hour": REQUESTS_PER_HOUR,
            "reserve": 0,
            "max_in_flight": 4
        },
        "api": {"bitbucket_url": sim.bitbucket_url()},
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

/// `repo account level` lines and `repo account source level` lines of a JSON answer.
fn parse_rows(stdout: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let answer: Value = serde_json::from_str(stdout).expect("JSON output");
    let mut levels = BTreeSet::new();
    let mut sources = BTreeSet::new();
    for row in answer["rows"].as_array().expect("an array of rows") {
        let repo = row["repository"].as_str().expect("repository");
        let account = row["account_id"].as_str().expect("account_id");
        levels.insert(format!(
            "{repo} {account} {}",
            row["level"].as_str().expect("level")
        ));
        for source in row["sources"].as_array().expect("sources") {
            // `group developers: write` becomes `group developers write`.
            let source = source.as_str().expect("source").replacen(": ", " ", 1);
            sources.insert(format!("{repo} {account} {source}"));
        }
    }
    (levels, sources)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_explains_a_repository_and_an_account_in_three_formats() {
    let sim = start_sim(5201).await;
    let dir = TempDir::new().expect("temp dir");
    let config = write_config(&sim, dir.path());
    let ws = owned_workspaces(&sim).remove(0);

    let sync = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert_eq!(sync.code, 0, "{}\n{}", sync.stdout, sync.stderr);
    assert!(sync.stdout.contains("Complete"), "{}", sync.stdout);
    assert!(sync.stdout.contains("0 disagreements"), "{}", sync.stdout);

    // A private repository with a direct permission, and its holder.
    let (repo, holder, holder_name) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let (repo, holder) = wsv
            .repositories
            .values()
            .filter(|r| r.is_private)
            .find_map(|r| {
                let u = r.user_permissions.keys().next()?;
                Some((r.slug.clone(), u.clone()))
            })
            .expect("a private repository with a direct permission");
        let name = w.user(&holder).expect("user").display_name.clone();
        (repo, holder, name)
    });
    let world = world_sources(&sim, &ws);
    let full = format!("{ws}/{repo}");

    // JSON: exactly the simulator's effective access, with every source.
    let json = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "repo", &full, "--format", "json"],
    )
    .await;
    assert_eq!(json.code, 0, "{}", json.stderr);
    let (levels, sources) = parse_rows(&json.stdout);
    let want_sources: BTreeSet<String> = world
        .iter()
        .filter(|l| l.starts_with(&format!("{repo} ")))
        .cloned()
        .collect();
    assert_eq!(sources, want_sources, "sources of {full}");
    let sim_levels: BTreeSet<String> = sim_effective_levels(&sim, &ws)
        .into_iter()
        .filter(|l| l.starts_with(&format!("{repo} ")))
        .collect();
    // A private repository: nothing comes from public visibility, so the levels are the
    // simulator's own.
    assert_eq!(levels, sim_levels, "levels on {full}");
    let answer: Value = serde_json::from_str(&json.stdout).expect("JSON");
    assert!(answer["completeness"]["never_read"]
        .as_array()
        .expect("the answer states its completeness")
        .is_empty());
    let holder_row = answer["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["account_id"] == holder.as_str())
        .expect("the holder is listed");
    assert_eq!(holder_row["display_name"], holder_name.as_str());
    assert_eq!(holder_row["workspace"], ws.as_str());

    // CSV: a header, then one row per account, the same accounts as JSON.
    let csv = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "repo", &full, "--format", "csv"],
    )
    .await;
    assert_eq!(csv.code, 0, "{}", csv.stderr);
    let mut lines = csv.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("repository,account,name,email,level,why")
    );
    let csv_accounts: BTreeSet<String> = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells[0], full, "{l}");
            cells[1].to_string()
        })
        .collect();
    let json_accounts: BTreeSet<String> = levels
        .iter()
        .map(|l| l.split(' ').nth(1).expect("account").to_string())
        .collect();
    assert_eq!(csv_accounts, json_accounts);

    // Table: a header and the holder's line with its direct source.
    let table = run_cli(&sim, dir.path(), &config, &["access", "repo", &full]).await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    let header = table.stdout.lines().next().expect("a header");
    for column in ["repository", "account", "name", "level", "why"] {
        assert!(header.contains(column), "{header}");
    }
    let line = table
        .stdout
        .lines()
        .find(|l| l.contains(&holder))
        .expect("the holder's line");
    assert!(line.contains("direct: "), "{line}");
    assert_eq!(table.stdout.lines().count(), json_accounts.len() + 1);

    // What the holder can reach, everywhere: the same as the world gives, public repositories
    // of the workspaces it belongs to included.
    let user = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "user", &holder, "--format", "json"],
    )
    .await;
    assert_eq!(user.code, 0, "{}", user.stderr);
    let (_, sources) = parse_rows(&user.stdout);
    let want: BTreeSet<String> = world
        .iter()
        .filter(|l| l.split(' ').nth(1) == Some(holder.as_str()))
        .cloned()
        .collect();
    assert_eq!(sources, want, "what {holder} can reach");
    let user_csv = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "user", &holder, "--format", "csv"],
    )
    .await;
    assert_eq!(user_csv.code, 0);
    assert_eq!(
        user_csv.stdout.lines().count(),
        serde_json::from_str::<Value>(&user.stdout).expect("JSON")["rows"]
            .as_array()
            .expect("rows")
            .len()
            + 1
    );
    let user_table = run_cli(&sim, dir.path(), &config, &["access", "user", &holder]).await;
    assert_eq!(user_table.code, 0);
    assert!(user_table.stdout.contains(&full), "{}", user_table.stdout);

    // Mistakes are explained, with exit 1.
    let unknown = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "repo", &format!("{ws}/no-such-repo")],
    )
    .await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("not in the store"),
        "{}",
        unknown.stderr
    );
    let bad = run_cli(&sim, dir.path(), &config, &["access", "repo", "no-slash"]).await;
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("WS/REPO"), "{}", bad.stderr);
    let nobody = run_cli(
        &sim,
        dir.path(),
        &config,
        &[
            "access",
            "user",
            "557058:00000000-0000-0000-0000-000000000000",
        ],
    )
    .await;
    assert_eq!(nobody.code, 1);
    assert!(
        nobody.stderr.contains("no stored account"),
        "{}",
        nobody.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_of_a_plain_member_lists_public_repositories() {
    let sim = start_sim(5202).await;
    let dir = TempDir::new().expect("temp dir");
    let config = write_config(&sim, dir.path());
    let ws = owned_workspaces(&sim).remove(0);
    // Whatever the seed gave, one repository is public.
    sim.with_world(|w| {
        let wsv = w.workspaces.get_mut(&ws).expect("workspace");
        let repo = wsv.repositories.values_mut().next().expect("a repository");
        repo.is_private = false;
    });
    let sync = run_cli(&sim, dir.path(), &config, &["sync", "--workspace", &ws]).await;
    assert_eq!(sync.code, 0, "{}\n{}", sync.stdout, sync.stderr);

    let (member, public) = sim.with_world(|w| {
        let wsv = &w.workspaces[&ws];
        let member = wsv
            .members
            .iter()
            .find(|(_, m)| m.role == Role::Member)
            .map(|(id, _)| id.clone())
            .expect("a plain member");
        let public: BTreeSet<String> = wsv
            .repositories
            .values()
            .filter(|r| !r.is_private)
            .map(|r| r.slug.clone())
            .collect();
        (member, public)
    });
    let out = run_cli(
        &sim,
        dir.path(),
        &config,
        &["access", "user", &member, "--format", "json"],
    )
    .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (_, sources) = parse_rows(&out.stdout);
    for repo in &public {
        assert!(
            sources.contains(&format!("{repo} {member} public repository read")),
            "{member} reads public {repo}: {sources:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_the_whole_loop_and_shows_the_drift() {
    let dir = TempDir::new().expect("temp dir");
    let mut cmd = Command::cargo_bin("bitbucket-access").expect("binary built");
    cmd.current_dir(dir.path())
        .env_remove("BITBUCKET_ACCESS_CONFIG")
        .env_remove("RUST_LOG")
        .arg("demo")
        .arg("--database")
        .arg(dir.path().join("demo.db"));
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    for step in 1..=9 {
        assert!(
            stdout.contains(&format!("== {step}. ")),
            "step {step}:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("is ended; Bitbucket holds read for"),
        "the demo's grant restores the read:\n{stdout}"
    );
    let drift: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("drift: "))
        .collect();
    assert_eq!(
        drift.len(),
        1,
        "one out-of-band change, one drift line:\n{stdout}"
    );
    assert!(
        drift[0].contains("repository_user_permission") && drift[0].contains("\"admin\""),
        "{}",
        drift[0]
    );
    assert!(drift[0].contains("before=none"), "{}", drift[0]);
    assert!(stdout.contains("0 disagreements"), "{stdout}");
    assert!(dir.path().join("demo.db").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_skips_a_workspace_another_live_run_holds_and_exits_0() {
    let sim = start_sim(5401).await;
    let dir = TempDir::new().expect("temp dir");
    let config = write_config(&sim, dir.path());
    // Another process is syncing the workspace and renewed its lease a moment ago.
    let store = bitbucket_access::store::open(&format!(
        "sqlite://{}",
        dir.path().join("store.db").display()
    ))
    .await
    .expect("store opens");
    let now = chrono::Utc::now();
    let workspaces: Vec<_> = owned_workspaces(&sim).iter().map(|w| slug(w)).collect();
    let other = store
        .claim_sync_run(&bitbucket_access::store::ClaimRequest {
            workspaces,
            owner: bitbucket_access::store::RunOwner::named("other-host/77/feed"),
            now,
            lease_until: now + chrono::Duration::minutes(10),
            resume_after: now,
        })
        .await
        .expect("claim");
    sim.reset_counters();

    let out = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let ws = owned_workspaces(&sim).remove(0);
    let line = format!(
        "{ws}: held by run {} (owner other-host/77/feed), skipped",
        other.run
    );
    assert!(out.stdout.contains(&line), "{}", out.stdout);
    // Only the discovery of the workspaces was requested; nothing of the held workspace.
    assert_eq!(
        sim.request_counts().keys().collect::<Vec<_>>(),
        vec!["GET /2.0/user/workspaces"],
        "{:?}",
        sim.request_counts()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_beyond_the_free_allowance_defers_the_rest_and_exits_1_at_once() {
    let sim = start_sim(5402).await;
    let dir = TempDir::new().expect("temp dir");
    let config = write_config(&sim, dir.path());
    // An hour of eight requests: the discovery, the five structural listings, the
    // group-privileges sweep (which stores the group listing of every repository), one more.
    let mut json: Value =
        serde_json::from_str(&std::fs::read_to_string(&config).expect("config")).expect("json");
    json["request_budget"]["requests_per_hour"] = json!(8);
    std::fs::write(&config, json.to_string()).expect("write config");
    sim.reset_counters();

    let started = std::time::Instant::now();
    let out = run_cli(&sim, dir.path(), &config, &["sync", "--cross-check", "0"]).await;

    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    let ws = owned_workspaces(&sim).remove(0);
    let (repos, listings) = sim.with_world(|w| {
        let repos = w.workspaces[&ws].repositories.len();
        (repos, 2 * (repos + w.workspaces[&ws].projects.len()))
    });
    let line = format!(
        "{} listings read, {} deferred",
        5 + repos + 1,
        listings - repos - 1
    );
    assert!(out.stdout.contains(&line), "{}", out.stdout);
    assert!(out.stdout.contains("`sync --wait`"), "{}", out.stdout);
    assert!(!out.stdout.contains("not read:"), "{}", out.stdout);
    // Nothing past the allowance was sent, and the run did not wait for the hour to pass.
    assert_eq!(sim.request_counts().values().sum::<u64>(), 8);
    assert!(started.elapsed() < std::time::Duration::from_secs(60));
}
