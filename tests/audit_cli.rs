//! `audit` and `audit verify` as a user runs them: the real binary against a store synced from
//! the simulator. Every format is written with stable CSV headers, `--fail-on` sets the exit
//! code, an unknown kind or workspace is a usage error, and `audit verify` names an altered
//! report file.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::audit::FindingKind;
use bitbucket_sim::NewRepository;
use serde_json::json;
use std::path::{Path, PathBuf};
use sync_support::*;
use tempfile::TempDir;

fn write_config(sim: &bitbucket_sim::SimHandle, dir: &Path) -> PathBuf {
    let path = dir.join("bitbucket-access.json");
    let config = json!({
        "email": sim.admin_email(),
        "app_token": "${BB_TOKEN}",
        "database_url": format!("sqlite://{}", dir.join("store.db").display()),
        "request_budget": {"requests_per_hour": REQUESTS_PER_HOUR, "reserve": 0, "max_in_flight": 4},
        "api": {"bitbucket_url": sim.bitbucket_url()},
        "audit_policy": {"flag_direct_user_permissions": true, "report_dir": "reports"},
    });
    std::fs::write(&path, config.to_string()).expect("write config");
    path
}

/// The header line of every CSV section, as scripts and spreadsheets key on them.
const CSV_HEADERS: &[(&str, &str)] = &[
    ("report", "field,value"),
    ("findings", "id,kind,severity,subjects,message"),
    ("changes", "change,id,kind,severity,subjects"),
    (
        "access_matrix",
        "workspace,repository,account_id,display_name,email,level,sources",
    ),
    (
        "administrators",
        "scope,workspace,resource,account_id,display_name,email,via",
    ),
    (
        "drift",
        "audit_id,observed_at,subject,before,after,actor_account_id,actor_name,actor_api_token,event_id,event_time",
    ),
    (
        "grants",
        "category,id,state,principal,resource_kind,resource,level,baseline,requested_by,ticket,starts_at,expires_at,updated_at",
    ),
    ("freshness", "item,name,at,detail"),
];

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_writes_every_format_and_fail_on_sets_the_exit_code() {
    let sim = start_sim(7501).await;
    let ws = owned_workspaces(&sim).remove(0);
    sim.with_world(|w| {
        let project = w.workspaces[&ws]
            .projects
            .keys()
            .next()
            .cloned()
            .expect("a project");
        w.add_repository(
            &ws,
            NewRepository {
                slug: "open-docs".into(),
                name: "Open docs".into(),
                project_key: project,
                is_private: false,
            },
        )
    })
    .expect("a public repository");
    let dir = TempDir::new().expect("temp dir");
    let config = write_config(&sim, dir.path());
    let sync = run_cli(&sim, dir.path(), &config, &["sync"]).await;
    assert_eq!(sync.code, 0, "{}", sync.stderr);

    let out = dir.path().join("out");
    let args = [
        "audit", "--format", "json", "--format", "csv", "--format", "md", "--format", "html",
        "--output",
    ];
    let mut all = args.to_vec();
    let out_text = out.display().to_string();
    all.push(&out_text);
    let run = run_cli(&sim, dir.path(), &config, &all).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("findings of kind public_repository: "),
        "{}",
        run.stdout
    );
    let files = files_in(&out);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3 + CSV_HEADERS.len(), "{names:?}");
    for ext in [".json", ".md", ".html"] {
        assert!(names.iter().any(|n| n.ends_with(ext)), "{ext} in {names:?}");
    }
    for (section, header) in CSV_HEADERS {
        let file = files
            .iter()
            .find(|p| p.to_string_lossy().ends_with(&format!("-{section}.csv")))
            .unwrap_or_else(|| panic!("no {section} CSV in {names:?}"));
        let text = std::fs::read_to_string(file).expect("read");
        assert_eq!(text.lines().next(), Some(*header), "{section}");
    }
    let json_file = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("json");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json_file).expect("read")).expect("json");
    assert!(run
        .stdout
        .contains(report["sha256"].as_str().expect("sha256")));

    // --fail-on: exit 1 when present, 0 when absent, 2 (with the kinds listed) when unknown.
    let present = run_cli(
        &sim,
        dir.path(),
        &config,
        &["audit", "--fail-on", "public_repository"],
    )
    .await;
    assert_eq!(present.code, 1, "{}", present.stderr);
    assert!(
        present.stderr.contains("public_repository"),
        "{}",
        present.stderr
    );
    let absent = run_cli(
        &sim,
        dir.path(),
        &config,
        &["audit", "--fail-on", "grant_failed"],
    )
    .await;
    assert_eq!(absent.code, 0, "{}", absent.stderr);
    let unknown = run_cli(&sim, dir.path(), &config, &["audit", "--fail-on", "admins"]).await;
    assert_eq!(unknown.code, 2, "{}", unknown.stderr);
    for kind in FindingKind::ALL {
        assert!(unknown.stderr.contains(kind.as_str()), "{}", unknown.stderr);
    }
    let no_ws = run_cli(
        &sim,
        dir.path(),
        &config,
        &["audit", "--workspace", "nowhere"],
    )
    .await;
    assert_eq!(no_ws.code, 2, "{}", no_ws.stderr);
    assert!(no_ws.stderr.contains("nowhere"), "{}", no_ws.stderr);

    // Without --format and --output: the config's formats (json, markdown) in its report_dir.
    let defaults = files_in(&dir.path().join("reports"));
    assert_eq!(
        defaults.len(),
        4,
        "two audits, two formats each: {defaults:?}"
    );

    // The history verifies; an altered report file is named.
    let verify = run_cli(&sim, dir.path(), &config, &["audit", "verify"]).await;
    assert_eq!(verify.code, 0, "{}\n{}", verify.stdout, verify.stderr);
    assert!(verify.stdout.contains("intact"), "{}", verify.stdout);
    assert!(
        verify.stdout.contains("audit reports: 3 checked"),
        "{}",
        verify.stdout
    );
    std::fs::write(json_file, "{}").expect("alter the report file");
    let altered = run_cli(&sim, dir.path(), &config, &["audit", "verify"]).await;
    assert_eq!(altered.code, 1, "{}", altered.stdout);
    assert!(
        altered.stderr.contains(&json_file.display().to_string()),
        "{}",
        altered.stderr
    );
}

#[test]
fn demo_ends_with_an_audit_written_to_a_folder_it_names() {
    let dir = TempDir::new().expect("temp dir");
    let out = assert_cmd::Command::cargo_bin("bitbucket-access")
        .expect("binary")
        .env_remove("BITBUCKET_ACCESS_CONFIG")
        .env_remove("RUST_LOG")
        .arg("demo")
        .arg("--database")
        .arg(dir.path().join("demo.db"))
        .output()
        .expect("demo runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let folder = dir.path().join("audit");
    assert!(
        stdout.contains(&format!("the audit is in {}", folder.display())),
        "{stdout}"
    );
    let files = files_in(&folder);
    assert!(
        files
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "html")),
        "{files:?}"
    );
    assert_eq!(files.len(), 3 + CSV_HEADERS.len(), "{files:?}");
}
