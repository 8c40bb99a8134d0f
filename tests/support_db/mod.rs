//! Test databases shared by the storage and sync suites: a fresh SQLite file per test, or a
//! fresh PostgreSQL database per test when `TEST_POSTGRES_URL` is set (dropped afterwards), and
//! a failure, not a skip, when `REQUIRE_POSTGRES=1` and no server is reachable.
#![allow(dead_code, unused_macros)]

use futures::FutureExt;
use sqlx::Connection;
use std::future::Future;
use std::panic::AssertUnwindSafe;

enum Cleanup {
    None,
    DropPostgres { admin_url: String, name: String },
}

pub struct TestDb {
    /// The store URL.
    pub url: String,
    cleanup: Cleanup,
    _dir: Option<tempfile::TempDir>,
}

/// A new SQLite file in a folder that does not exist yet (the store must create it).
pub fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("a temporary folder");
    // A folder that does not exist yet: the store must create it with the file.
    let path = dir.path().join("nested").join("store.db");
    TestDb {
        url: format!("sqlite://{}", path.display()),
        cleanup: Cleanup::None,
        _dir: Some(dir),
    }
}

fn require_postgres() -> bool {
    std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// A fresh PostgreSQL database, or `None` when PostgreSQL is not configured and not required.
pub async fn postgres_db() -> Option<TestDb> {
    let Ok(admin_url) = std::env::var("TEST_POSTGRES_URL") else {
        assert!(
            !require_postgres(),
            "REQUIRE_POSTGRES=1 but TEST_POSTGRES_URL is not set: set it to a PostgreSQL URL \
             such as postgres://postgres@127.0.0.1:5432/postgres"
        );
        eprintln!("PostgreSQL half not run: TEST_POSTGRES_URL is not set");
        return None;
    };
    let mut admin = match sqlx::PgConnection::connect(&admin_url).await {
        Ok(conn) => conn,
        Err(e) => {
            let shown = bitbucket_access::store::redact_url(&admin_url);
            assert!(
                !require_postgres(),
                "REQUIRE_POSTGRES=1 but PostgreSQL at {shown} is not reachable ({e}); start it \
                 (for example `pg_ctlcluster 15 main start`) or unset REQUIRE_POSTGRES"
            );
            eprintln!("PostgreSQL half not run: {shown} is not reachable ({e})");
            return None;
        }
    };
    let name = format!("bba_test_{:016x}", rand::random::<u64>());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    let _ = admin.close().await;
    let mut url = url::Url::parse(&admin_url).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    Some(TestDb {
        url: url.to_string(),
        cleanup: Cleanup::DropPostgres { admin_url, name },
        _dir: None,
    })
}

impl TestDb {
    async fn drop_db(self) {
        if let Cleanup::DropPostgres { admin_url, name } = &self.cleanup {
            if let Ok(mut admin) = sqlx::PgConnection::connect(admin_url).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await;
                let _ = admin.close().await;
            }
        }
    }
}

/// Runs a scenario on a database and drops the database afterwards, even when it fails.
pub async fn run_on<F, Fut>(db: TestDb, scenario: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let result = AssertUnwindSafe(scenario(db.url.clone()))
        .catch_unwind()
        .await;
    db.drop_db().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// Declares, for each scenario `async fn name(url: String)`, a test `sqlite::name` and a test
/// `postgres::name` (which does nothing when PostgreSQL is neither configured nor required).
macro_rules! on_both_backends {
    ($($scenario:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    $crate::support_db::run_on($crate::support_db::sqlite_db(), super::$scenario).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(db) = $crate::support_db::postgres_db().await {
                        $crate::support_db::run_on(db, super::$scenario).await;
                    }
                }
            )+
        }
    };
}
