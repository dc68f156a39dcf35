//! The database: one pool through sqlx's `Any` driver, so every query is written once for
//! SQLite and PostgreSQL (placeholders `$1…`, which both accept). The few places where the
//! two differ ask [`Db::backend`]. One module per group of tables, each a set of plain async
//! functions over a connection; the caller owns the transaction.

pub mod audit;
pub mod backups;
pub mod charts;
pub mod clusters;
pub mod deployments;
pub mod drivers;
pub mod environments;
pub mod flow_runs;
pub mod locations;
pub mod sessions;
pub mod statuses;
pub mod tokens;

use std::borrow::Cow;
use std::str::FromStr as _;

use anyhow::Context as _;
use serde::de::DeserializeOwned;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{Any, AnyConnection, AnyPool, Row, Transaction};

pub type Conn = AnyConnection;
pub type Tx = Transaction<'static, Any>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    url: String,
}

const SQLITE_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        2,
        "charts",
        include_str!("../../migrations/sqlite/0002_charts.sql"),
    ),
    (
        3,
        "agent protocol",
        include_str!("../../migrations/sqlite/0003_agent_protocol.sql"),
    ),
    (
        4,
        "ui sessions",
        include_str!("../../migrations/sqlite/0004_ui_sessions.sql"),
    ),
    (
        5,
        "secret parameters and environment deletion",
        include_str!("../../migrations/sqlite/0005_secret_parameters.sql"),
    ),
    (
        6,
        "backups, restores and schedules",
        include_str!("../../migrations/sqlite/0006_backups.sql"),
    ),
];
const POSTGRES_MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        2,
        "charts",
        include_str!("../../migrations/postgres/0002_charts.sql"),
    ),
    (
        3,
        "agent protocol",
        include_str!("../../migrations/postgres/0003_agent_protocol.sql"),
    ),
    (
        4,
        "ui sessions",
        include_str!("../../migrations/postgres/0004_ui_sessions.sql"),
    ),
    (
        5,
        "secret parameters and environment deletion",
        include_str!("../../migrations/postgres/0005_secret_parameters.sql"),
    ),
    (
        6,
        "backups, restores and schedules",
        include_str!("../../migrations/postgres/0006_backups.sql"),
    ),
];

impl Db {
    /// Connects and applies the migrations this build knows.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            let scheme = url.split_once(':').map_or(url, |(scheme, _)| scheme);
            anyhow::bail!(
                "unsupported database URL scheme `{scheme}` in `{}`: use sqlite://PATH (a file, created when missing) or postgres://USER:PASSWORD@HOST/DATABASE",
                redact(url)
            );
        };
        let connect_url = match backend {
            Backend::Sqlite => sqlite_file(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&connect_url)
            .with_context(|| format!("invalid database URL `{}`", redact(url)))?;
        let pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // WAL with NORMAL sync: readers never wait for the writer, and
                        // committed transactions survive a crash of the process; only an OS
                        // crash may lose the last ones. The usual server setting for SQLite.
                        // (The `Any` driver does not apply sqlx's SQLite defaults, so the
                        // journal mode is set here.)
                        sqlx::Executor::execute(&mut *conn, "PRAGMA journal_mode = WAL").await?;
                        sqlx::Executor::execute(&mut *conn, "PRAGMA synchronous = NORMAL").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to {}", redact(url)))?;
        let db = Db {
            pool,
            backend,
            url: url.to_owned(),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let list = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let migrations = list
            .iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sqlx::SqlSafeStr::into_sql_str(*sql),
                    false,
                )
            })
            .collect();
        Migrator::with_migrations(migrations)
            .run(&self.pool)
            .await
            .with_context(|| format!("cannot migrate the database {}", redact(&self.url)))
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A transaction that writes. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so two writers queue on the busy timeout instead of failing when a read
    /// transaction tries to become a write one.
    pub async fn write(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }

    pub async fn read(&self) -> Result<sqlx::pool::PoolConnection<Any>, sqlx::Error> {
        self.pool.acquire().await
    }
}

/// The URL to connect to a SQLite file: the file (and its directory) are created when
/// missing, the file readable by its owner only, as a server's database holds secrets.
/// In-memory databases are left as they are.
fn sqlite_file(url: &str) -> anyhow::Result<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == ":memory:" || query.contains("mode=memory") {
        return Ok(url.to_owned());
    }
    let file = std::path::Path::new(path);
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the directory {} for the database {}",
                dir.display(),
                redact(url)
            )
        })?;
    }
    if !file.exists() {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(file)
            .with_context(|| format!("cannot create the database file {}", file.display()))?;
    }
    let query = if query.contains("mode=") {
        query.to_owned()
    } else if query.is_empty() {
        "mode=rwc".to_owned()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Reads a JSON text column.
pub fn json_col<T: DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, sqlx::Error> {
    let text: String = row.try_get(column)?;
    serde_json::from_str(&text).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(e),
    })
}

pub fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("values of our own types serialise")
}

/// Page bounds every list takes.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: i64,
    pub offset: i64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            limit: 100,
            offset: 0,
        }
    }
}

pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            db.is_unique_violation() || db.message().contains("UNIQUE constraint failed")
        }
        _ => false,
    }
}

/// Rows whose `id` (or other key column, as `sql` says) is one of `ids`: `sql` holds
/// `{ids}` where the `$1, $2, …` list goes. One query for a whole page's lookups.
pub(crate) async fn by_ids<T>(
    c: &mut Conn,
    sql: &str,
    ids: &[String],
    from_row: fn(&AnyRow) -> Result<T, sqlx::Error>,
) -> Result<Vec<T>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let list = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = sql.replace("{ids}", &list);
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        query = query.bind(id);
    }
    query.fetch_all(c).await?.iter().map(from_row).collect()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    /// `--database sqlite://PATH` as `--help` documents it: a new file in a new directory
    /// is created readable by its owner only, in WAL mode, and migrated.
    #[tokio::test]
    async fn a_sqlite_database_is_created_private_and_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dir/styrmin.db");
        let db = super::Db::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
        let mut c = db.read().await.unwrap();
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        let tables: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clusters")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        assert_eq!(tables, 0);
    }

    /// A URL the server cannot use says which part is wrong.
    #[tokio::test]
    async fn an_unusable_url_names_its_scheme() {
        let Err(e) = super::Db::connect("mysql://root:secret@db/styrmin").await else {
            panic!("a MySQL URL was accepted");
        };
        let e = e.to_string();
        assert!(e.contains("scheme `mysql`") && !e.contains("secret"), "{e}");
    }

    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            super::redact("postgres://styrmin:hunter2@db:5432/styrmin"),
            "postgres://styrmin:***@db:5432/styrmin"
        );
        assert_eq!(super::redact("sqlite:///var/x.db"), "sqlite:///var/x.db");
    }
}
