//! The tamper-evident history on SQLite and PostgreSQL: the audit log's hash chain and the
//! stored reports verify when intact, and `verify` names the first broken link when an attacker
//! (who first drops the append-only trigger) alters or removes an entry, alters a stored report
//! or alters a report file. Concurrent appends never fork the chain.

#[macro_use]
mod support_db;
mod sync_support;

use bitbucket_access::audit::verify::{verify, Broken, Verification};
use bitbucket_access::audit::{self, AuditSettings};
use bitbucket_access::cli::audit::{write_report, OutputFormat};
use bitbucket_access::clock::ManualClock;
use bitbucket_access::config::GrantPolicy;
use bitbucket_access::store::{open, AuditKind, NewAuditEntry, Store};
use chrono::{TimeZone, Utc};
use sqlx::Connection;
use std::sync::Arc;

on_both_backends!(
    an_intact_log_verifies_and_an_altered_entry_is_named,
    a_removed_entry_breaks_the_link_of_the_next,
    an_altered_report_row_or_file_is_named,
    concurrent_appends_never_fork_the_chain,
    entries_before_the_chain_are_counted_and_a_later_unchained_entry_is_refused,
);

fn entry(n: u32) -> NewAuditEntry {
    NewAuditEntry {
        at: Utc.with_ymd_and_hms(2026, 12, 2, 5, n % 60, 0).unwrap()
            + chrono::Duration::microseconds(i64::from(n) * 7),
        actor: "bitbucket".into(),
        kind: AuditKind::Drift,
        subject: format!("repository_user_permission acme/api-{n} 557058:{n}"),
        before: (n % 2 == 0).then(|| serde_json::json!({"level": "read"})),
        after: Some(serde_json::json!({"level": "admin", "z": [1, {"b": 2, "a": "é"}]})),
        details: serde_json::json!({"listing": format!("repo:{n}"), "entity": "x"}),
    }
}

async fn append(store: &dyn Store, count: u32) {
    for n in 1..=count {
        store.append_audit(&entry(n)).await.expect("append");
    }
}

async fn check(store: &dyn Store) -> Verification {
    let read = |path: &str| std::fs::read(path).ok();
    verify(store, &read).await.expect("verify runs")
}

/// Runs statements as an attacker with database access would: straight SQL, triggers dropped.
async fn tamper(url: &str, statements: &[&str]) {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
        for s in statements {
            sqlx::query(s).execute(&mut conn).await.expect(s);
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
        for s in statements {
            sqlx::query(s).execute(&mut conn).await.expect(s);
        }
    }
}

fn drop_log_triggers(url: &str) -> Vec<&'static str> {
    if url.starts_with("sqlite:") {
        vec![
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ]
    } else {
        vec!["DROP TRIGGER audit_log_no_change ON audit_log"]
    }
}

async fn an_intact_log_verifies_and_an_altered_entry_is_named(url: String) {
    let store = open(&url).await.expect("store");
    append(store.as_ref(), 6).await;
    let ok = check(store.as_ref()).await;
    assert!(ok.is_intact(), "{ok:?}");
    assert_eq!((ok.entries_checked, ok.entries_before_chain), (6, 0));
    assert_eq!(ok.chain_starts_at, Some(1));

    // The trigger still refuses a plain update.
    let refused = if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        sqlx::query("UPDATE audit_log SET subject = 'x' WHERE id = 3")
            .execute(&mut c)
            .await
            .is_err()
    } else {
        let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query("UPDATE audit_log SET subject = 'x' WHERE id = 3")
            .execute(&mut c)
            .await
            .is_err()
    };
    assert!(refused, "the append-only trigger must stay");

    let mut statements = drop_log_triggers(&url);
    statements.push("UPDATE audit_log SET after_value = '{\"level\":\"read\"}' WHERE id = 3");
    tamper(&url, &statements).await;
    let broken = check(store.as_ref()).await;
    assert_eq!(broken.entries_checked, 2);
    match broken.broken.as_slice() {
        [Broken::AuditEntry { id: 3, reason }] => assert!(reason.contains("altered"), "{reason}"),
        other => panic!("expected entry 3 to be named: {other:?}"),
    }
    assert!(broken.broken[0]
        .to_string()
        .starts_with("audit log entry 3:"));
}

async fn a_removed_entry_breaks_the_link_of_the_next(url: String) {
    let store = open(&url).await.expect("store");
    append(store.as_ref(), 4).await;
    let mut statements = drop_log_triggers(&url);
    statements.push("DELETE FROM audit_log WHERE id = 2");
    tamper(&url, &statements).await;
    let broken = check(store.as_ref()).await;
    match broken.broken.as_slice() {
        [Broken::AuditEntry { id: 3, reason }] => {
            assert!(reason.contains("does not follow entry 1"), "{reason}")
        }
        other => panic!("expected entry 3 to be named: {other:?}"),
    }
}

async fn an_altered_report_row_or_file_is_named(url: String) {
    let sim = sync_support::start_sim(7401).await;
    let store = open(&url).await.expect("store");
    let options = bitbucket_access::sync::SyncOptions {
        workspaces: sync_support::owned_workspaces(&sim),
        ..Default::default()
    };
    bitbucket_access::sync::run(store.as_ref(), &sync_support::client(&sim, 4), &options)
        .await
        .expect("sync");
    let dir = tempfile::tempdir().expect("dir");
    let clock = ManualClock::starting_now();
    let settings = AuditSettings {
        workspaces: Vec::new(),
        policy: bitbucket_access::config::Config::for_simulator(
            url::Url::parse(&sim.bitbucket_url()).expect("url"),
            sim.admin_email(),
            secrecy::SecretString::from(sim.admin_token()),
            None,
            bitbucket_access::config::DatabaseUrl::parse(&url, std::path::Path::new("."))
                .expect("url"),
        )
        .audit_policy,
        grant_policy: GrantPolicy::default(),
    };
    let mut files = Vec::new();
    for _ in 0..2 {
        clock.advance(chrono::Duration::minutes(1));
        let report = audit::build(store.as_ref(), &clock, &settings)
            .await
            .expect("audit");
        let written = write_report(&report, dir.path(), &[OutputFormat::Json, OutputFormat::Md])
            .expect("write");
        audit::record(store.as_ref(), &report, written.clone())
            .await
            .expect("record");
        files.extend(written);
    }
    let ok = check(store.as_ref()).await;
    assert!(ok.is_intact(), "{ok:?}");
    assert_eq!((ok.reports_checked, ok.files_checked), (2, 4));
    assert!(
        ok.entries_checked >= 2,
        "the reports' own entries are chained"
    );

    // An altered file is named; a missing one is only reported.
    let md = files
        .iter()
        .find(|f| f.path.ends_with(".md"))
        .expect("a Markdown file");
    let original = std::fs::read(&md.path).expect("read");
    std::fs::write(&md.path, b"# nothing to see\n").expect("alter");
    let broken = check(store.as_ref()).await;
    match broken.broken.as_slice() {
        [Broken::ReportFile {
            report: 1, path, ..
        }] => assert_eq!(path, &md.path),
        other => panic!("expected the file to be named: {other:?}"),
    }
    std::fs::write(&md.path, original).expect("restore");
    std::fs::remove_file(&files[0].path).expect("remove");
    let moved = check(store.as_ref()).await;
    assert!(moved.is_intact(), "{moved:?}");
    assert_eq!(moved.files_missing, vec![files[0].path.clone()]);

    // An altered stored report is named.
    let drop = if url.starts_with("sqlite:") {
        "DROP TRIGGER audit_runs_no_update"
    } else {
        "DROP TRIGGER audit_runs_no_change ON audit_runs"
    };
    tamper(
        &url,
        &[
            drop,
            "UPDATE audit_runs SET content = replace(content, '\"findings\":[', '\"findings\":[{\"id\":\"x\",\"kind\":\"drift\",\"severity\":\"info\",\"subjects\":[\"x\"],\"message\":\"\"},') WHERE id = 2",
        ],
    )
    .await;
    let broken = check(store.as_ref()).await;
    match broken.broken.as_slice() {
        [Broken::Report { id: 2, reason }] => assert!(reason.contains("altered"), "{reason}"),
        other => panic!("expected report 2 to be named: {other:?}"),
    }
}

async fn concurrent_appends_never_fork_the_chain(url: String) {
    // Two handles, as two processes would have.
    let a: Arc<dyn Store> = open(&url).await.expect("store");
    let b: Arc<dyn Store> = open(&url).await.expect("store");
    let mut tasks = Vec::new();
    for n in 0..40u32 {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            store.append_audit(&entry(n)).await.expect("append")
        }));
    }
    for t in tasks {
        t.await.expect("join");
    }
    let result = check(a.as_ref()).await;
    assert!(result.is_intact(), "{result:?}");
    assert_eq!(result.entries_checked, 40);
}

async fn entries_before_the_chain_are_counted_and_a_later_unchained_entry_is_refused(url: String) {
    let store = open(&url).await.expect("store");
    // Rows as they were before the chain's migration: no hash.
    let old = "INSERT INTO audit_log (occurred_at, actor, kind, subject, details) \
               VALUES ('2026-01-01T00:00:00Z', 'sync', 'sync', 'run 1', '{}')";
    let old_pg = "INSERT INTO audit_log (occurred_at, actor, kind, subject, details) \
                  VALUES (TIMESTAMPTZ '2026-01-01T00:00:00Z', 'sync', 'sync', 'run 1', '{}')";
    let insert = if url.starts_with("sqlite:") {
        old
    } else {
        old_pg
    };
    tamper(&url, &[insert, insert]).await;
    append(store.as_ref(), 3).await;
    let ok = check(store.as_ref()).await;
    assert!(ok.is_intact(), "{ok:?}");
    assert_eq!(
        (
            ok.entries_before_chain,
            ok.chain_starts_at,
            ok.entries_checked
        ),
        (2, Some(3), 3)
    );
    tamper(&url, &[insert]).await;
    let broken = check(store.as_ref()).await;
    match broken.broken.as_slice() {
        [Broken::AuditEntry { id: 6, reason }] => {
            assert!(reason.contains("no hash"), "{reason}")
        }
        other => panic!("expected entry 6 to be named: {other:?}"),
    }
}
