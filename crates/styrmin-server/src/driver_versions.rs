//! Loading Application Driver Versions (from a directory on the server or a git branch) and
//! reading them back for planning. A version is immutable; the same content loaded twice
//! (same digest) is the existing version, not a new one.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::json;
use styrmin_bundle::Bundle;
use styrmin_core::{ApplicationDriver, FieldError, Severity, Version};
use tokio::process::Command;

use crate::auth::Principal;
use crate::charts;
use crate::error::{ApiError, ApiResult};
use crate::ids::{new_id, now_ms};
use crate::resolve;
use crate::state::AppState;
use crate::store::drivers::{self, DriverRow, DriverVersionRow, Source};
use crate::store::{Conn, audit, to_json};

pub struct LoadOutcome {
    pub version: DriverVersionRow,
    /// False when the same content was already loaded.
    pub created: bool,
    pub warnings: Vec<String>,
}

/// A bundle as stored and served: `{path: base64(content)}`.
pub fn encode_bundle(bundle: &Bundle) -> Vec<u8> {
    let files: BTreeMap<&str, String> = bundle
        .files
        .iter()
        .map(|(path, content)| (path.as_str(), B64.encode(content)))
        .collect();
    serde_json::to_vec(&files).expect("maps of strings serialise")
}

pub fn decode_bundle(bytes: &[u8]) -> anyhow::Result<Bundle> {
    let files: BTreeMap<String, String> = serde_json::from_slice(bytes)?;
    let files = files
        .into_iter()
        .map(|(path, content)| Ok((path, B64.decode(content)?)))
        .collect::<anyhow::Result<_>>()?;
    Ok(Bundle { files })
}

/// The driver spec and values template of a stored version.
pub struct Parsed {
    pub spec: ApplicationDriver,
    pub values_template: Option<String>,
}

pub async fn parsed(c: &mut Conn, version: &DriverVersionRow) -> ApiResult<Parsed> {
    let spec: ApplicationDriver = serde_json::from_str(&version.spec).map_err(|e| {
        anyhow::anyhow!(
            "stored spec of driver version {} is unreadable: {e}",
            version.id
        )
    })?;
    let bundle = decode_bundle(&drivers::bundle_of_version(c, &version.id).await?)?;
    let values_template = bundle
        .files
        .get(styrmin_core::render::VALUES_FILE)
        .map(|b| String::from_utf8_lossy(b).into_owned());
    Ok(Parsed {
        spec,
        values_template,
    })
}

/// The version a driver resolves to: the highest `spec.version`, the latest load among
/// equal ones.
pub fn latest(mut versions: Vec<DriverVersionRow>) -> Option<DriverVersionRow> {
    versions.sort_by(|a, b| {
        let va = Version::parse(&a.version).ok();
        let vb = Version::parse(&b.version).ok();
        vb.cmp(&va).then(b.loaded_at.cmp(&a.loaded_at))
    });
    versions.into_iter().next()
}

/// A driver's version by its `spec.version`, id or digest; the latest when not given.
pub async fn resolve_version(
    c: &mut Conn,
    driver_ref: &str,
    version: Option<&str>,
) -> ApiResult<DriverVersionRow> {
    let driver = resolve::driver(c, driver_ref).await?;
    let versions = drivers::versions_of(c, &driver.id).await?;
    match version {
        None => latest(versions),
        Some(wanted) => latest(
            versions
                .into_iter()
                .filter(|v| v.version == wanted || v.id == wanted || v.digest.starts_with(wanted))
                .collect(),
        ),
    }
    .ok_or_else(|| match version {
        Some(v) => ApiError::not_found("driver version", format!("{}@{v}", driver.name)),
        None => ApiError::not_found("driver version", driver.name.clone()),
    })
}

/// Validates a bundle and stores it as a version of its driver (creating the driver the
/// first time its name is seen).
pub async fn load_bundle(
    s: &AppState,
    who: &Principal,
    bundle: Bundle,
    source: Source,
) -> ApiResult<LoadOutcome> {
    who.can_operate()?;
    let files = bundle
        .driver_files()
        .map_err(|e| ApiError::field("bundle", e.to_string()))?;
    let loaded = styrmin_core::load(&files);
    let errors: Vec<FieldError> = loaded
        .errors()
        .map(|d| FieldError::new(diagnostic_field(d), d.to_string()))
        .collect();
    let Some(driver) = loaded.driver.filter(|_| errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let warnings = loaded
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Warning)
        .map(ToString::to_string)
        .collect();
    let digest = bundle.digest();
    let name = driver.spec.name().to_owned();
    let chart = charts::package_bundled(&bundle, &driver.spec)?;

    let mut tx = s.db.write().await?;
    let driver_row = match drivers::find_driver(&mut tx, &name).await? {
        Some(row) => row,
        None => {
            let row = DriverRow {
                id: new_id(),
                name: name.clone(),
                created_at: now_ms(),
            };
            drivers::insert_driver(&mut tx, &row).await?;
            row
        }
    };
    // Stored (or checked) even for a version loaded before: servers older than the chart
    // repository did not keep its chart.
    if let Some(chart) = &chart {
        charts::store(&mut tx, chart).await?;
    }
    if let Some(existing) = drivers::version_by_digest(&mut tx, &driver_row.id, &digest).await? {
        tx.commit().await?;
        return Ok(LoadOutcome {
            version: existing,
            created: false,
            warnings,
        });
    }
    let version = DriverVersionRow {
        id: new_id(),
        driver_id: driver_row.id.clone(),
        driver_name: name.clone(),
        version: driver.spec.spec.version.clone(),
        digest: digest.clone(),
        spec: to_json(&driver.spec),
        source,
        loaded_at: now_ms(),
    };
    drivers::insert_version(&mut tx, &version, &encode_bundle(&bundle)).await?;
    audit::commit(
        tx,
        who,
        "loadApplicationDriverVersion",
        "driver_version",
        &version.id,
        json!({"driver": name, "version": version.version, "digest": digest}),
    )
    .await?;
    Ok(LoadOutcome {
        version,
        created: true,
        warnings,
    })
}

fn diagnostic_field(d: &styrmin_core::Diagnostic) -> String {
    if d.field.is_empty() {
        d.file.clone()
    } else {
        format!("{}:{}", d.file, d.field)
    }
}

/// Reads a driver directory off the async threads; problems are errors of `path`.
async fn read_bundle(dir: std::path::PathBuf) -> ApiResult<Bundle> {
    tokio::task::spawn_blocking(move || Bundle::read_dir(&dir))
        .await
        .map_err(anyhow::Error::new)?
        .map_err(|e| ApiError::field("path", e.to_string()))
}

/// `loadLocalApplicationDriverVersion`: a directory on the server's file system.
pub async fn load_local(s: &AppState, who: &Principal, path: &str) -> ApiResult<LoadOutcome> {
    who.can_operate()?;
    let dir = Path::new(path).to_owned();
    let canonical = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
    let bundle = read_bundle(dir).await?;
    load_bundle(
        s,
        who,
        bundle,
        Source::Local {
            path: canonical.display().to_string(),
        },
    )
    .await
}

/// `loadApplicationDriverVersion`: the tip of a git branch, pinned to its commit. A token
/// in `STYRMIN_DRIVER_TOKEN` is sent to private repositories over HTTPS.
pub async fn load_git(
    s: &AppState,
    who: &Principal,
    url: &str,
    branch: &str,
    subdir: Option<&str>,
) -> ApiResult<LoadOutcome> {
    who.can_operate()?;
    if url.trim().is_empty() {
        return Err(ApiError::field("repoUrl", "must not be empty"));
    }
    if branch.trim().is_empty() || branch.starts_with('-') {
        return Err(ApiError::field(
            "branch",
            format!("`{branch}` is not a branch name"),
        ));
    }
    let checkout = tempfile::tempdir().map_err(anyhow::Error::new)?;
    let mut clone = Command::new("git");
    clone.env("GIT_TERMINAL_PROMPT", "0");
    if let Ok(token) = std::env::var("STYRMIN_DRIVER_TOKEN")
        && !token.is_empty()
    {
        let basic = B64.encode(format!("x-access-token:{token}"));
        clone
            .arg("-c")
            .arg(format!("http.extraHeader=Authorization: Basic {basic}"));
    }
    clone
        .args([
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--single-branch",
            "--branch",
        ])
        .arg(branch)
        .arg("--")
        .arg(url)
        .arg(checkout.path());
    let out = clone
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(ApiError::field(
            "repoUrl",
            format!(
                "cannot clone branch `{branch}` of {url}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    let rev = Command::new("git")
        .arg("-C")
        .arg(checkout.path())
        .args(["rev-parse", "HEAD"])
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("cannot run git: {e}"))?;
    let commit = String::from_utf8_lossy(&rev.stdout).trim().to_owned();
    let dir = match subdir {
        Some(sub) if !sub.is_empty() => {
            if sub.split('/').any(|part| part == "..") {
                return Err(ApiError::field("path", "must stay inside the repository"));
            }
            checkout.path().join(sub)
        }
        _ => checkout.path().to_owned(),
    };
    let bundle = read_bundle(dir).await?;
    load_bundle(
        s,
        who,
        bundle,
        Source::Git {
            url: url.to_owned(),
            branch: branch.to_owned(),
            commit,
        },
    )
    .await
}
