//! The Helm chart repository at `/charts/`: charts shipped inside drivers, packaged when
//! the driver is loaded and served with an `index.yaml`, so a cluster's Flux can install
//! them from the server like from any chart repository.

use serde_json::{Value, json};
use styrmin_bundle::Bundle;
use styrmin_bundle::chart::{self, PackagedChart};
use styrmin_core::ApplicationDriver;
use styrmin_core::driver::ChartSource;

use crate::error::{ApiError, ApiResult};
use crate::ids::{now_ms, rfc3339};
use crate::store::charts::{self, ChartRow};
use crate::store::{Conn, Db};

/// The chart a driver ships, packaged; `None` when its chart lives elsewhere.
pub fn package_bundled(
    bundle: &Bundle,
    driver: &ApplicationDriver,
) -> ApiResult<Option<PackagedChart>> {
    let main = &driver.spec.helm.main;
    let Some(ChartSource::Bundled(dir)) = main.source() else {
        return Ok(None);
    };
    let chart = chart::package(bundle, dir)
        .map_err(|e| ApiError::field("spec.helm.main.location", e.to_string()))?;
    if chart.version != main.version {
        return Err(ApiError::field(
            "spec.helm.main.version",
            format!(
                "is {} but {dir}/Chart.yaml says version {}: they must agree",
                main.version, chart.version
            ),
        ));
    }
    Ok(Some(chart))
}

/// Stores the chart unless the same archive is already there. A chart name and version
/// that already mean other content are refused: Helm and Flux cache by name and version,
/// so a changed chart needs a new version.
pub async fn store(c: &mut Conn, chart: &PackagedChart) -> ApiResult<()> {
    match charts::get(c, &chart.name, &chart.version).await? {
        Some(existing) if existing.digest == chart.digest => Ok(()),
        Some(_) => Err(ApiError::field(
            "spec.helm.main.version",
            format!(
                "chart {} {} is already served with other content: give the changed chart a new version",
                chart.name, chart.version
            ),
        )),
        None => {
            let row = ChartRow {
                name: chart.name.clone(),
                version: chart.version.clone(),
                digest: chart.digest.clone(),
                metadata: chart.metadata.clone(),
                created_at: now_ms(),
            };
            charts::insert(c, &row, &chart.archive).await?;
            Ok(())
        }
    }
}

/// The repository's `index.yaml`, with URLs relative to it.
pub async fn index_yaml(db: &Db) -> ApiResult<String> {
    let mut c = db.read().await?;
    let rows = charts::list(&mut c).await?;
    let mut entries = serde_json::Map::new();
    let mut newest = 0;
    for row in rows {
        newest = newest.max(row.created_at);
        let mut entry = match row.metadata {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        entry.insert("digest".into(), json!(row.digest));
        entry.insert(
            "urls".into(),
            json!([format!("{}-{}.tgz", row.name, row.version)]),
        );
        entry.insert("created".into(), json!(rfc3339(row.created_at)));
        entries
            .entry(row.name.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
            .expect("entries are lists")
            .push(Value::Object(entry));
    }
    let index = json!({
        "apiVersion": "v1",
        "entries": entries,
        "generated": rfc3339(if newest == 0 { now_ms() } else { newest }),
    });
    serde_yaml_ng::to_string(&index).map_err(|e| ApiError::Internal(e.into()))
}

/// The archive named `NAME-VERSION.tgz`.
pub async fn archive(db: &Db, file: &str) -> ApiResult<Vec<u8>> {
    let stem = file
        .strip_suffix(".tgz")
        .ok_or_else(|| ApiError::not_found("chart archive", file))?;
    let mut c = db.read().await?;
    // The version starts after the last `-` followed by a digit (names may hold dashes,
    // versions may hold `-rc.1`).
    for (i, _) in stem.match_indices('-') {
        let (name, version) = (&stem[..i], &stem[i + 1..]);
        if version.starts_with(|ch: char| ch.is_ascii_digit())
            && let Some(bytes) = charts::archive(&mut c, name, version).await?
        {
            return Ok(bytes);
        }
    }
    Err(ApiError::not_found("chart archive", file))
}
