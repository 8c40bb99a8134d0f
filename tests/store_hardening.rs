//! The store against misuse: read-only opening, damaged and vanished SQLite files, concurrent
//! first starts, a database server that never answers, health, and the mass-change guard. The
//! scenarios that do not depend on SQLite's files run on both backends.

use std::time::{Duration, Instant};

use bitbucket_access::domain::{RepoRef, RepoSlug, WorkspaceSlug};
use bitbucket_access::store::{
    open, open_read_only, AuditFilter, AuditKind, Fact, ListingKey, MassChangeGuard,
    ReplaceListing, SqlStore, Store, StoreError,
};
use chrono::{TimeZone, Utc};
use sqlx::Connection;

#[macro_use]
mod support_db;

on_both_backends!(
    concurrent_first_opens_all_succeed,
    read_only_open_refuses_a_store_behind_the_schema,
    health_reports_a_sound_store,
    mass_removal_is_held_unless_accepted,
    access_answers_name_the_listings_never_read,
);

fn ws() -> WorkspaceSlug {
    WorkspaceSlug::parse("acme").expect("slug")
}

fn repos(n: usize) -> Vec<Fact> {
    (0..n)
        .map(|i| Fact::Repository {
            slug: RepoSlug::parse(format!("repo-{i:02}")).expect("slug"),
            uuid: None,
            name: format!("Repo {i}"),
            project: None,
            is_private: true,
        })
        .collect()
}

fn at(minute: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 9, minute, 0)
        .single()
        .expect("a valid time")
}

async fn seeded(url: &str) -> std::sync::Arc<dyn Store> {
    let store = open(url).await.expect("the store opens");
    store
        .replace_listing(ReplaceListing::new(
            ListingKey::Repositories(ws()),
            repos(3),
            at(0),
        ))
        .await
        .expect("replace");
    store
}

fn sqlite_path(url: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(url.strip_prefix("sqlite://").expect("an SQLite URL"))
}

async fn concurrent_first_opens_all_succeed(url: String) {
    let opens = (0..6).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { open(&url).await.map(|_| ()) })
    });
    for result in futures::future::join_all(opens).await {
        result
            .expect("the task runs")
            .expect("every concurrent open succeeds");
    }
    // The schema is whole: a replace works afterwards.
    seeded(&url).await;
}

async fn read_only_open_refuses_a_store_behind_the_schema(url: String) {
    // Connected but never migrated: a read-only command must not migrate it, and says how to.
    let bare = SqlStore::connect(&url).await.expect("connects");
    bare.close().await;
    let err = open_read_only(&url).await.expect_err("no schema yet");
    assert!(matches!(err, StoreError::NotMigrated { .. }), "{err:?}");
    assert!(
        err.to_string().contains("bitbucket-access migrate"),
        "{err}"
    );
    let err = open_read_only(&url).await.expect_err("still no schema");
    assert!(matches!(err, StoreError::NotMigrated { .. }), "{err:?}");

    seeded(&url).await;
    let ro = open_read_only(&url)
        .await
        .expect("a migrated store opens read-only");
    assert_eq!(ro.repositories(&ws()).await.expect("read").len(), 3);

    // A store migrated by an older program lacks the newest migration: refused, by version.
    let undo = [
        "DROP TABLE listing_failures",
        "DELETE FROM _sqlx_migrations WHERE version = 20261202000001",
    ];
    if url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("connect");
        for statement in undo {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect("undo");
        }
    } else {
        let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
        for statement in undo {
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect("undo");
        }
    }
    let err = open_read_only(&url)
        .await
        .expect_err("behind by one migration");
    assert!(err.to_string().contains("20261202000001"), "{err}");
    // `migrate` (a read-write open) brings it up to date.
    open(&url).await.expect("migrates");
    open_read_only(&url).await.expect("current again");
}

async fn health_reports_a_sound_store(url: String) {
    let store = seeded(&url).await;
    let health = store.health().await.expect("health");
    assert!(health.is_ok(), "{health:?}");
    let parsed =
        bitbucket_access::config::DatabaseUrl::parse(&url, std::path::Path::new("")).expect("url");
    let checked = bitbucket_access::store::check_health(&parsed).await;
    assert!(checked.is_ok(), "{checked:?}");
}

async fn mass_removal_is_held_unless_accepted(url: String) {
    let store = open(&url).await.expect("opens");
    let key = ListingKey::Repositories(ws());
    let guarded = |facts: Vec<Fact>, minute: u32, accept: bool| {
        let mut request = ReplaceListing::new(key.clone(), facts, at(minute));
        request.guard = Some(MassChangeGuard {
            accept,
            ..MassChangeGuard::default()
        });
        request
    };
    store
        .replace_listing(guarded(repos(30), 0, false))
        .await
        .expect("baseline");
    let before = store.listing_freshness(&key).await.expect("freshness");

    // A complete but empty listing would delete all 30: held, facts and freshness intact.
    let outcome = store
        .replace_listing(guarded(vec![], 5, false))
        .await
        .expect("replace");
    let held = outcome.held.expect("the removal is held");
    assert_eq!((held.would_remove, held.stored), (30, 30));
    assert_eq!(outcome.deleted, 0);
    assert_eq!(store.repositories(&ws()).await.expect("read").len(), 30);
    assert_eq!(
        store.listing_freshness(&key).await.expect("freshness"),
        before
    );
    let audit = store
        .list_audit(&AuditFilter {
            kinds: vec![AuditKind::HeldChange],
            ..Default::default()
        })
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].entry.details["would_remove"], 30);

    // Removing 9 of 30 stays under both bounds and applies.
    let outcome = store
        .replace_listing(guarded(repos(21), 6, false))
        .await
        .expect("replace");
    assert!(outcome.held.is_none());
    assert_eq!(outcome.deleted, 9);

    // Accepted, the mass change applies.
    let outcome = store
        .replace_listing(guarded(vec![], 7, true))
        .await
        .expect("replace");
    assert!(outcome.held.is_none());
    assert_eq!(outcome.deleted, 21);
    assert!(store.repositories(&ws()).await.expect("read").is_empty());
}

#[tokio::test]
async fn a_read_only_sqlite_store_answers_without_writing() {
    let db = support_db::sqlite_db();
    let path = sqlite_path(&db.url);
    let missing = open_read_only(&db.url).await.expect_err("no file yet");
    assert!(matches!(missing, StoreError::Missing { .. }), "{missing:?}");
    let parsed = bitbucket_access::config::DatabaseUrl::parse(&db.url, std::path::Path::new(""))
        .expect("url");
    // A file the first sync will create is no problem, and the check creates nothing.
    let health = bitbucket_access::store::check_health(&parsed).await;
    assert!(health.is_ok(), "{health:?}");
    assert!(
        health
            .note
            .as_deref()
            .is_some_and(|n| n.contains("does not exist yet")),
        "{health:?}"
    );
    assert!(!path.exists(), "a read-only open must not create the file");

    let rw = seeded(&db.url).await;
    drop(rw);
    let ro = open_read_only(&db.url).await.expect("opens read-only");
    assert_eq!(ro.repositories(&ws()).await.expect("reads").len(), 3);
    // It really is read-only: a write is refused by SQLite, the facts stay.
    ro.replace_listing(ReplaceListing::new(
        ListingKey::Repositories(ws()),
        vec![],
        at(9),
    ))
    .await
    .expect_err("a read-only store takes no write");
    assert_eq!(ro.repositories(&ws()).await.expect("reads").len(), 3);
    let health = ro.health().await.expect("health");
    assert!(
        health.reachable && health.migrations_current && !health.writable,
        "{health:?}"
    );
}

#[tokio::test]
async fn a_damaged_sqlite_file_is_refused_by_name() {
    let db = support_db::sqlite_db();
    let path = sqlite_path(&db.url);
    let store = seeded(&db.url).await;
    store
        .replace_listing(ReplaceListing::new(
            ListingKey::Repositories(ws()),
            repos(200),
            at(1),
        ))
        .await
        .expect("replace");
    drop(store);
    // Let the pool's connections close so the WAL is folded back into the file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut bytes = std::fs::read(&path).expect("read the file");
    assert!(bytes.len() > 3 * 4096, "the file has several pages");
    for b in &mut bytes[4096..] {
        *b = 0x5a;
    }
    std::fs::write(&path, &bytes).expect("damage the file");
    let _ = std::fs::remove_file(path.with_extension("db-wal"));
    let _ = std::fs::remove_file(path.with_extension("db-shm"));

    for err in [
        open(&db.url).await.expect_err("damaged"),
        open_read_only(&db.url).await.expect_err("damaged"),
    ] {
        assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
    // A file that is not SQLite at all is named too.
    std::fs::write(&path, b"this is not a database, just text").expect("write");
    let err = open(&db.url).await.expect_err("not a database");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err:?}");
}

#[tokio::test]
async fn a_removed_or_replaced_sqlite_file_stops_the_writes() {
    let db = support_db::sqlite_db();
    let path = sqlite_path(&db.url);
    let store = seeded(&db.url).await;
    store.check_file().expect("the file is the one opened");

    // Replaced: another file now has the name.
    let aside = path.with_extension("moved");
    std::fs::rename(&path, &aside).expect("move the file away");
    std::fs::copy(&aside, &path).expect("put a copy in its place");
    let err = store.check_file().expect_err("replaced");
    assert!(err.to_string().contains("replaced"), "{err}");

    // Removed: no file has the name; a replace fails instead of writing into the void.
    std::fs::remove_file(&path).expect("remove");
    let err = store
        .replace_listing(ReplaceListing::new(
            ListingKey::Repositories(ws()),
            repos(2),
            at(3),
        ))
        .await
        .expect_err("the file is gone");
    assert!(matches!(err, StoreError::FileChanged { .. }), "{err:?}");
    assert!(err.to_string().contains("removed"), "{err}");
    let health = store.health().await.expect("health");
    assert!(!health.is_ok(), "{health:?}");
}

#[tokio::test]
async fn a_database_that_never_answers_fails_within_fifteen_seconds() {
    // Accepts connections and never says a word, like a wrong service on the port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let _silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let url = format!("postgres://app:hunter2-secret@127.0.0.1:{port}/access");
    let started = Instant::now();
    let err = open(&url).await.expect_err("the server never answers");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(err, StoreError::Timeout { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(shown.contains(&format!("127.0.0.1:{port}")), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
    let err = open_read_only(&url).await.expect_err("read-only too");
    assert!(matches!(err, StoreError::Timeout { .. }), "{err:?}");

    // `doctor`'s check reports it unreachable, in words that hold no password.
    let parsed =
        bitbucket_access::config::DatabaseUrl::parse(&url, std::path::Path::new("")).expect("url");
    let health = bitbucket_access::store::check_health(&parsed).await;
    assert!(!health.reachable && !health.is_ok(), "{health:?}");
    assert!(!format!("{health:?}").contains("hunter2"), "{health:?}");
}

async fn access_answers_name_the_listings_never_read(url: String) {
    let store = seeded(&url).await;
    let answer = bitbucket_access::access::for_repository(store.as_ref(), "acme/repo-00")
        .await
        .expect("the repository is stored");
    let c = &answer.completeness;
    assert!(!c.is_complete());
    assert_eq!(c.oldest_read_at, Some(at(0)));
    let unread: Vec<String> = c.never_read.iter().map(ToString::to_string).collect();
    assert!(
        unread.contains(&"repo:acme/repo-00:users".to_owned()),
        "{unread:?}"
    );
    assert!(
        unread.contains(&"workspace:acme:members".to_owned()),
        "{unread:?}"
    );
    // Another repository's permissions are not behind this answer.
    assert!(!unread.iter().any(|k| k.contains("repo-01")), "{unread:?}");

    // A failed read is named until a complete read of the listing settles it.
    let groups = ListingKey::RepositoryGroupPermissions(RepoRef {
        workspace: ws(),
        slug: RepoSlug::parse("repo-00").expect("slug"),
    });
    store
        .record_listing_failure(&groups, at(1), "HTTP 500 from Bitbucket")
        .await
        .expect("record");
    let failing = bitbucket_access::access::for_repository(store.as_ref(), "acme/repo-00")
        .await
        .expect("answer");
    let failed: Vec<&ListingKey> = failing.completeness.failed.iter().map(|f| &f.key).collect();
    assert_eq!(failed, vec![&groups]);
    assert_eq!(
        failing.completeness.failed[0].message,
        "HTTP 500 from Bitbucket"
    );

    // Once every listing behind it was read, the answer is complete.
    for key in c.never_read.clone() {
        store
            .replace_listing(ReplaceListing::new(key, vec![], at(2)))
            .await
            .expect("replace");
    }
    let answer = bitbucket_access::access::for_repository(store.as_ref(), "acme/repo-00")
        .await
        .expect("answer");
    assert!(
        answer.completeness.is_complete(),
        "{:?}",
        answer.completeness
    );
    assert!(
        answer.completeness.failed.is_empty(),
        "{:?}",
        answer.completeness
    );
    assert_eq!(answer.completeness.oldest_read_at, Some(at(0)));
}
