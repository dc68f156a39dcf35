//! Application drivers and their immutable versions (spec, file bundle, digest, source).

use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::Conn;

#[derive(Debug, Clone)]
pub struct DriverRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// Where a driver version came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Local {
        path: String,
    },
    Git {
        url: String,
        branch: String,
        commit: String,
    },
}

#[derive(Debug, Clone)]
pub struct DriverVersionRow {
    pub id: String,
    pub driver_id: String,
    pub driver_name: String,
    pub version: String,
    pub digest: String,
    /// The parsed `driver.styrmin.yml` as JSON.
    pub spec: String,
    pub source: Source,
    pub loaded_at: i64,
}

fn driver_from_row(row: &AnyRow) -> Result<DriverRow, sqlx::Error> {
    Ok(DriverRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn version_from_row(row: &AnyRow) -> Result<DriverVersionRow, sqlx::Error> {
    let kind: String = row.try_get("source_kind")?;
    let source = if kind == "git" {
        Source::Git {
            url: row
                .try_get::<Option<String>, _>("source_url")?
                .unwrap_or_default(),
            branch: row
                .try_get::<Option<String>, _>("source_branch")?
                .unwrap_or_default(),
            commit: row
                .try_get::<Option<String>, _>("source_commit")?
                .unwrap_or_default(),
        }
    } else {
        Source::Local {
            path: row
                .try_get::<Option<String>, _>("source_path")?
                .unwrap_or_default(),
        }
    };
    Ok(DriverVersionRow {
        id: row.try_get("id")?,
        driver_id: row.try_get("driver_id")?,
        driver_name: row.try_get("driver_name")?,
        version: row.try_get("version")?,
        digest: row.try_get("digest")?,
        spec: row.try_get("spec")?,
        source,
        loaded_at: row.try_get("loaded_at")?,
    })
}

const VERSION_COLUMNS: &str = "v.id, v.driver_id, d.name AS driver_name, v.version, v.digest, v.spec, v.source_kind, v.source_path, v.source_url, v.source_branch, v.source_commit, v.loaded_at";

pub async fn find_driver(c: &mut Conn, reference: &str) -> Result<Option<DriverRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM drivers WHERE id = $1 OR name = $1 ORDER BY (id = $1) DESC LIMIT 1")
        .bind(reference)
        .fetch_optional(c)
        .await?
        .as_ref()
        .map(driver_from_row)
        .transpose()
}

pub async fn insert_driver(c: &mut Conn, row: &DriverRow) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO drivers (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&row.id)
        .bind(&row.name)
        .bind(row.created_at)
        .execute(c)
        .await?;
    Ok(())
}

pub async fn list_drivers(c: &mut Conn) -> Result<Vec<DriverRow>, sqlx::Error> {
    sqlx::query("SELECT * FROM drivers ORDER BY name")
        .fetch_all(c)
        .await?
        .iter()
        .map(driver_from_row)
        .collect()
}

pub async fn insert_version(
    c: &mut Conn,
    row: &DriverVersionRow,
    bundle: &[u8],
) -> Result<(), sqlx::Error> {
    let (kind, path, url, branch, commit) = match &row.source {
        Source::Local { path } => ("local", Some(path.as_str()), None, None, None),
        Source::Git {
            url,
            branch,
            commit,
        } => (
            "git",
            None,
            Some(url.as_str()),
            Some(branch.as_str()),
            Some(commit.as_str()),
        ),
    };
    sqlx::query(
        "INSERT INTO driver_versions (id, driver_id, version, digest, spec, bundle, source_kind, source_path, source_url, source_branch, source_commit, loaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(&row.id)
    .bind(&row.driver_id)
    .bind(&row.version)
    .bind(&row.digest)
    .bind(&row.spec)
    .bind(bundle)
    .bind(kind)
    .bind(path)
    .bind(url)
    .bind(branch)
    .bind(commit)
    .bind(row.loaded_at)
    .execute(c)
    .await?;
    Ok(())
}

/// Every version of one driver, newest load first.
pub async fn versions_of(
    c: &mut Conn,
    driver_id: &str,
) -> Result<Vec<DriverVersionRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM driver_versions v JOIN drivers d ON d.id = v.driver_id WHERE v.driver_id = $1 ORDER BY v.loaded_at DESC, v.id"
    )))
    .bind(driver_id)
    .fetch_all(c)
    .await?
    .iter()
    .map(version_from_row)
    .collect()
}

/// The driver versions with these ids (in no particular order).
pub async fn versions_by_ids(
    c: &mut Conn,
    ids: &[String],
) -> Result<Vec<DriverVersionRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {VERSION_COLUMNS} FROM driver_versions v JOIN drivers d ON d.id = v.driver_id WHERE v.id IN ({{ids}})"
    );
    super::by_ids(c, &sql, ids, version_from_row).await
}

pub async fn version(c: &mut Conn, id: &str) -> Result<Option<DriverVersionRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM driver_versions v JOIN drivers d ON d.id = v.driver_id WHERE v.id = $1"
    )))
    .bind(id)
    .fetch_optional(c)
    .await?
    .as_ref()
    .map(version_from_row)
    .transpose()
}

pub async fn version_by_digest(
    c: &mut Conn,
    driver_id: &str,
    digest: &str,
) -> Result<Option<DriverVersionRow>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {VERSION_COLUMNS} FROM driver_versions v JOIN drivers d ON d.id = v.driver_id WHERE v.driver_id = $1 AND v.digest = $2"
    )))
    .bind(driver_id)
    .bind(digest)
    .fetch_optional(c)
    .await?
    .as_ref()
    .map(version_from_row)
    .transpose()
}

/// The stored file bundle of a digest (identical content has one digest, whatever driver).
pub async fn bundle(c: &mut Conn, digest: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query("SELECT bundle FROM driver_versions WHERE digest = $1 LIMIT 1")
        .bind(digest)
        .fetch_optional(c)
        .await?
        .map(|row| row.try_get::<Vec<u8>, _>("bundle"))
        .transpose()
}

/// The values template and spec of a version, for rendering.
pub async fn bundle_of_version(c: &mut Conn, id: &str) -> Result<Vec<u8>, sqlx::Error> {
    sqlx::query("SELECT bundle FROM driver_versions WHERE id = $1")
        .bind(id)
        .fetch_one(c)
        .await?
        .try_get::<Vec<u8>, _>("bundle")
}
