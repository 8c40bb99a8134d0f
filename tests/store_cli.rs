//! The store as a user meets it through the binary: `access` on a store with unread listings, on a
//! read-only file, and `migrate` on a damaged file.

use assert_cmd::Command;
use bitbucket_access::domain::{RepoSlug, WorkspaceSlug};
use bitbucket_access::store::{open, Fact, ListingKey, ReplaceListing};
use chrono::Utc;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn config(dir: &Path, db: &Path) -> PathBuf {
    let path = dir.join("bitbucket-access.json");
    let config = json!({
        "email": "svc@example.com",
        "app_token": "${BB_TOKEN}",
        "database_url": format!("sqlite://{}", db.display()),
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

fn run(dir: &Path, config: &Path, args: &[&str]) -> Run {
    let out = Command::cargo_bin("bitbucket-access")
        .expect("binary built")
        .current_dir(dir)
        .env_remove("BITBUCKET_ACCESS_CONFIG")
        .env_remove("RUST_LOG")
        .env("BB_TOKEN", "not-used-by-these-commands")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("binary runs");
    Run {
        code: out.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A store whose repositories listing was read, and nothing else.
async fn store_with_unread_listings(db: &Path) {
    let store = open(&format!("sqlite://{}", db.display()))
        .await
        .expect("opens");
    let ws = WorkspaceSlug::parse("acme").expect("slug");
    store
        .replace_listing(ReplaceListing::new(
            ListingKey::Repositories(ws),
            vec![Fact::Repository {
                slug: RepoSlug::parse("api").expect("slug"),
                uuid: None,
                name: "API".to_owned(),
                project: None,
                is_private: true,
            }],
            Utc::now(),
        ))
        .await
        .expect("replace");
}

#[tokio::test]
async fn access_on_unread_listings_says_so_and_exits_1() {
    let dir = TempDir::new().expect("temp dir");
    let db = dir.path().join("store.db");
    store_with_unread_listings(&db).await;
    let config = config(dir.path(), &db);

    let table = run(dir.path(), &config, &["access", "repo", "acme/api"]);
    assert_eq!(table.code, 1, "{}\n{}", table.stdout, table.stderr);
    assert!(table.stdout.starts_with("repository"), "{}", table.stdout);
    assert!(table.stderr.contains("never read"), "{}", table.stderr);
    assert!(
        table.stderr.contains("repo:acme/api:users"),
        "{}",
        table.stderr
    );
    assert!(
        table.stderr.contains("bitbucket-access sync"),
        "{}",
        table.stderr
    );

    let json = run(
        dir.path(),
        &config,
        &["access", "repo", "acme/api", "--format", "json"],
    );
    assert_eq!(json.code, 1, "{}", json.stderr);
    let answer: Value = serde_json::from_str(&json.stdout).expect("JSON");
    let unread = answer["completeness"]["never_read"]
        .as_array()
        .expect("never_read");
    assert!(
        unread.contains(&json!("workspace:acme:members")),
        "{unread:?}"
    );
    assert!(answer["completeness"]["oldest_read_at"].is_string());
}

#[tokio::test]
async fn access_reads_a_read_only_file_without_changing_it() {
    let dir = TempDir::new().expect("temp dir");
    let db = dir.path().join("store.db");
    store_with_unread_listings(&db).await;
    // Let the pool close so that the WAL is folded back into the file.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let config = config(dir.path(), &db);
    let mut permissions = std::fs::metadata(&db).expect("metadata").permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&db, permissions).expect("chmod 444");
    let before = std::fs::read(&db).expect("read");

    let out = run(dir.path(), &config, &["access", "repo", "acme/api"]);
    assert!(!out.stderr.contains("readonly database"), "{}", out.stderr);
    assert!(out.stderr.contains("never read"), "{}", out.stderr);
    assert_eq!(
        std::fs::read(&db).expect("read"),
        before,
        "the file is unchanged"
    );
}

#[test]
fn migrate_refuses_a_damaged_file_by_name() {
    let dir = TempDir::new().expect("temp dir");
    let db = dir.path().join("store.db");
    std::fs::write(&db, vec![0x5a_u8; 16_384]).expect("write a damaged file");
    let config = config(dir.path(), &db);
    let out = run(dir.path(), &config, &["migrate"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("migrations applied"), "{}", out.stdout);
    assert!(
        out.stderr.contains(&db.display().to_string()),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("damaged"), "{}", out.stderr);
}
