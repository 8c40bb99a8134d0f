//! `grant`, `revoke`, `grants` and `expire` through the binary, on SQLite and PostgreSQL: policy
//! limits and preflight refusals name their reason and change nothing; `--dry-run` prints the
//! calls and changes nothing; a grant prints its JSON; the list shows it; a revoke restores; a
//! standing permission the connector did not create can be removed with its level recorded.

#[macro_use]
mod support_db;
mod grants_support;
mod sync_support;

use bitbucket_sim::{Level, SimHandle};
use grants_support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use sync_support::{run_cli, Run, REQUESTS_PER_HOUR};

on_both_backends!(
    refusals_name_their_reason_and_change_nothing,
    a_dry_run_a_grant_the_list_and_revokes,
);

fn write_config(sim: &SimHandle, dir: &Path, url: &str) -> PathBuf {
    let path = dir.join("bitbucket-access.json");
    let config = json!({
        "email": sim.admin_email(),
        "app_token": "${BB_TOKEN}",
        "database_url": url,
        "workspaces": [owned(sim)],
        "request_budget": {"requests_per_hour": REQUESTS_PER_HOUR, "reserve": 0, "max_in_flight": 4},
        "api": {"bitbucket_url": sim.bitbucket_url()},
        "grant_policy": {"max_duration": "7d", "allowed_levels": ["read", "write"]},
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

struct Cli<'a> {
    sim: &'a SimHandle,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Cli<'_> {
    async fn run(&self, args: &[&str]) -> Run {
        run_cli(self.sim, self.dir.path(), &self.config, args).await
    }
}

async fn setup<'a>(sim: &'a SimHandle, url: &str) -> Cli<'a> {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(sim, dir.path(), url);
    let cli = Cli { sim, dir, config };
    let migrated = cli.run(&["migrate"]).await;
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    cli
}

fn refused(run: &Run, reason: &str) {
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(reason),
        "{reason:?} not in {}",
        run.stderr
    );
}

async fn refusals_name_their_reason_and_change_nothing(url: String) {
    let sim = start_sim_with(world(1401, 4)).await;
    let cli = setup(&sim, &url).await;
    let slot = slots(&sim, 1).remove(0);
    let repo = format!("{}/{}", slot.ws, slot.repo);
    let grant = |user: String, repo: String, extra: &'static [&'static str]| {
        let mut args = vec![
            "grant".to_owned(),
            "--user".to_owned(),
            user,
            "--repo".to_owned(),
            repo,
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let run = |args: Vec<String>| {
        let cli = &cli;
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            cli.run(&refs).await
        }
    };
    let too_long = run(grant(
        slot.account.clone(),
        repo.clone(),
        &["--level", "write", "--for", "30d"],
    ))
    .await;
    refused(&too_long, "longer than grant_policy.max_duration (7d)");
    let admin = run(grant(
        slot.account.clone(),
        repo.clone(),
        &["--level", "admin", "--for", "1h"],
    ))
    .await;
    refused(&admin, "not in grant_policy.allowed_levels");
    let owner = run(grant(
        sim.admin_account_id(),
        repo.clone(),
        &["--level", "write", "--for", "1h"],
    ))
    .await;
    refused(&owner, "is an owner of the workspace");
    let outsider = sim.with_world(|w| {
        w.users
            .keys()
            .find(|id| !w.workspaces[&slot.ws].members.contains_key(*id))
            .cloned()
            .expect("a user outside the workspace")
    });
    let not_member = run(grant(
        outsider,
        repo.clone(),
        &["--level", "write", "--for", "1h"],
    ))
    .await;
    refused(&not_member, "is not a member of the workspace");
    let missing = run(grant(
        slot.account.clone(),
        format!("{}/no-such-repo", slot.ws),
        &["--level", "write", "--for", "1h"],
    ))
    .await;
    refused(&missing, "does not exist");
    let bad = run(grant(
        slot.account.clone(),
        repo.clone(),
        &["--level", "write", "--for", "soon"],
    ))
    .await;
    assert_eq!(bad.code, 2, "bad usage: {}", bad.stderr);

    assert_eq!(writes(&sim), (0, 0), "nothing was changed in Bitbucket");
    let listed = cli.run(&["grants", "--all", "--format", "json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let grants: Value = serde_json::from_str(&listed.stdout).expect("json");
    assert_eq!(grants, json!([]), "nothing was recorded");
}

async fn a_dry_run_a_grant_the_list_and_revokes(url: String) {
    let sim = start_sim_with(world(1402, 4)).await;
    let cli = setup(&sim, &url).await;
    let mut two = slots(&sim, 2);
    let (slot, standing) = (two.remove(0), two.remove(0));
    let repo = format!("{}/{}", slot.ws, slot.repo);
    let args = [
        "grant",
        "--user",
        &slot.account,
        "--repo",
        &repo,
        "--level",
        "write",
        "--for",
        "8h",
        "--ticket",
        "SEC-9",
        "--reason",
        "on call",
    ];

    let mut dry: Vec<&str> = args.to_vec();
    dry.push("--dry-run");
    let planned = cli.run(&dry).await;
    assert_eq!(planned.code, 0, "{}", planned.stderr);
    let path = format!(
        "/2.0/repositories/{}/{}/permissions-config/users/{}",
        slot.ws, slot.repo, slot.account
    );
    assert_eq!(planned.stdout, format!("GET {path}\nPUT {path}\n"));
    assert_eq!(writes(&sim), (0, 0));

    let mut json_args: Vec<&str> = args.to_vec();
    json_args.extend(["--format", "json"]);
    let granted = cli.run(&json_args).await;
    assert_eq!(granted.code, 0, "{}", granted.stderr);
    let out: Value = serde_json::from_str(&granted.stdout).expect("json");
    let g = &out[0];
    assert_eq!(g["state"], "active");
    assert_eq!(g["level"], "write");
    assert_eq!(g["baseline"], Value::Null);
    assert!(g["ends_at"].is_string());
    assert_eq!(level_in_sim(&sim, &slot), Some(Level::Write));
    let id = g["id"].as_i64().expect("id").to_string();

    let active = cli.run(&["grants", "--active", "--format", "csv"]).await;
    assert_eq!(active.code, 0, "{}", active.stderr);
    assert_eq!(active.stdout.lines().count(), 2, "{}", active.stdout);
    assert!(active.stdout.contains("SEC-9"));

    let revoked = cli.run(&["revoke", &id]).await;
    assert_eq!(revoked.code, 0, "{}", revoked.stderr);
    assert_eq!(level_in_sim(&sim, &slot), None, "nothing stood before");
    let after = cli.run(&["grants", "--active", "--format", "json"]).await;
    assert_eq!(after.stdout.trim(), "[]");

    // A standing read the connector did not create.
    set_in_sim(&sim, &standing, Some(Level::Read));
    let standing_repo = format!("{}/{}", standing.ws, standing.repo);
    let removed = cli
        .run(&[
            "revoke",
            "--user",
            &standing.account,
            "--repo",
            &standing_repo,
        ])
        .await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert!(
        removed.stdout.contains("removed read"),
        "{}",
        removed.stdout
    );
    assert_eq!(level_in_sim(&sim, &standing), None);

    let store = bitbucket_access::store::open(&url).await.expect("store");
    let audit = store.list_audit(&Default::default()).await.expect("audit");
    assert!(
        audit
            .iter()
            .any(|e| e.entry.details["outcome"] == "standing_removed"
                && e.entry.details["removed"] == "read"),
        "the removed level is in the audit log"
    );

    let pass = cli.run(&["expire"]).await;
    assert_eq!(pass.code, 0, "{}", pass.stderr);
}
