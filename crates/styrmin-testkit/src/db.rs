//! Throwaway databases: a SQLite file in a temporary directory, or a database of its own on
//! the PostgreSQL server named by `STYRMIN_TEST_POSTGRES_URL`, dropped after the test.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::{AnyConnection, Connection as _, PgConnection};
use tempfile::TempDir;

/// The two databases the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A database that exists for one test and is removed after it, with the directory the
/// server keeps its files in.
pub struct TestDb {
    pub url: String,
    pub dir: TempDir,
    postgres: Option<(String, String)>,
}

/// The PostgreSQL server of the tests: `STYRMIN_TEST_POSTGRES_URL` (scripts/test.sh sets it
/// to a database of the run), else the default local server.
fn postgres_base_url() -> String {
    std::env::var("STYRMIN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database name no other test, in this process or another, uses at the same time.
fn unique_suffix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh, empty database of `kind`.
pub async fn database(kind: Kind) -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    match kind {
        Kind::Sqlite => TestDb {
            url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("styrmin.db").display()
            ),
            dir,
            postgres: None,
        },
        Kind::Postgres => {
            let base = postgres_base_url();
            let mut admin = PgConnection::connect(&base).await.unwrap_or_else(|e| {
                panic!(
                    "the PostgreSQL tests need a server: cannot connect to {base} ({e}); \
                     scripts/test.sh starts one and sets STYRMIN_TEST_POSTGRES_URL"
                )
            });
            let (prefix, run_db) = base.rsplit_once('/').expect("a database URL");
            let run_db = run_db.split('?').next().unwrap_or(run_db);
            let name = format!(
                "{}_t{}",
                if run_db == "postgres" {
                    "styrmin"
                } else {
                    run_db
                },
                unique_suffix()
            );
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut admin)
                .await
                .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
            TestDb {
                url: format!("{prefix}/{name}"),
                dir,
                postgres: Some((base, name)),
            }
        }
    }
}

impl TestDb {
    /// A connection of the test's own, to look at what the server stored.
    pub async fn connect(&self) -> AnyConnection {
        sqlx::any::install_default_drivers();
        AnyConnection::connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test database {}: {e}", self.url))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((base, name)) = self.postgres.take() {
            // Drop runs outside any runtime's async context: use a small one of its own.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(mut admin) = PgConnection::connect(&base).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await;
                    }
                });
            })
            .join();
        }
    }
}
