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

/// Where a git driver may come from. Remote transports only: a `file://` URL or a path
/// would read the server's own disk (allowed when [`Settings::allow_local_git`] is set, for
/// tests and local development).
///
/// [`Settings::allow_local_git`]: crate::state::Settings
fn check_repository_url(url: &str, allow_local: bool) -> ApiResult<()> {
    let url = url.trim();
    if url.is_empty() {
        return Err(ApiError::field("repoUrl", "must not be empty"));
    }
    let remote = ["https://", "http://", "ssh://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    });
    // `git@host:owner/repo`: ssh in scp form (no scheme, a user, a host and a colon).
    let scp_like = !url.contains("://")
        && url
            .split_once(':')
            .is_some_and(|(user_host, _)| user_host.contains('@') && !user_host.contains('/'));
    let local = url
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("file://"));
    if remote || scp_like || (local && allow_local) {
        return Ok(());
    }
    Err(ApiError::field(
        "repoUrl",
        format!(
            "`{url}` is not a remote git repository: use https://HOST/REPO (or ssh://, http://, git@HOST:REPO); files of the server are not loaded from git"
        ),
    ))
}

/// The host of an `https://` URL, lowercased, without user or port.
fn https_host(url: &str) -> Option<String> {
    let rest = url
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next()?,
        None => host.split(':').next()?,
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// The hosts `STYRMIN_DRIVER_TOKEN` may go to: `STYRMIN_DRIVER_TOKEN_HOSTS` (comma-separated),
/// `github.com` when it is not set.
fn token_hosts() -> Vec<String> {
    match std::env::var("STYRMIN_DRIVER_TOKEN_HOSTS") {
        Ok(list) => list
            .split(',')
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect(),
        Err(_) => vec!["github.com".to_owned()],
    }
}

/// The driver directory inside a checkout: a relative path that stays inside it.
fn subdirectory(checkout: &Path, subdir: Option<&str>) -> ApiResult<std::path::PathBuf> {
    let Some(sub) = subdir.filter(|s| !s.is_empty()) else {
        return Ok(checkout.to_owned());
    };
    let relative = Path::new(sub);
    let escapes = relative.components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if escapes || sub.contains('\0') {
        return Err(ApiError::field(
            "path",
            format!(
                "`{sub}` must be a relative path inside the repository (no `/` at the start, no `..`)"
            ),
        ));
    }
    Ok(checkout.join(relative))
}

/// Reads a driver from a checkout; errors name paths inside the repository, never the
/// server's directories, and a link out of the checkout is not followed.
async fn read_checkout(checkout: &Path, dir: std::path::PathBuf, sub: &str) -> ApiResult<Bundle> {
    let inside = std::fs::canonicalize(&dir)
        .ok()
        .zip(std::fs::canonicalize(checkout).ok())
        .is_some_and(|(dir, root)| dir.starts_with(root));
    let shown = if sub.is_empty() {
        "the repository's top directory".to_owned()
    } else {
        format!("`{sub}`")
    };
    if !inside || !dir.is_dir() {
        return Err(ApiError::field(
            "path",
            format!("{shown} is not a directory of the repository"),
        ));
    }
    let root = checkout.display().to_string();
    read_bundle(dir).await.map_err(|e| match e {
        ApiError::Validation(mut fields) => {
            for f in &mut fields {
                f.message = f.message.replace(&root, "<repository>");
            }
            ApiError::Validation(fields)
        }
        other => other,
    })
}

/// `loadApplicationDriverVersion`: the tip of a git branch, pinned to its commit. A token
/// in `STYRMIN_DRIVER_TOKEN` is sent over HTTPS to the hosts of
/// `STYRMIN_DRIVER_TOKEN_HOSTS` (`github.com` by default) only, and never on a redirect.
pub async fn load_git(
    s: &AppState,
    who: &Principal,
    url: &str,
    branch: &str,
    subdir: Option<&str>,
) -> ApiResult<LoadOutcome> {
    who.can_operate()?;
    check_repository_url(url, s.settings.allow_local_git)?;
    if branch.trim().is_empty() || branch.starts_with('-') {
        return Err(ApiError::field(
            "branch",
            format!("`{branch}` is not a branch name"),
        ));
    }
    let checkout = tempfile::tempdir().map_err(anyhow::Error::new)?;
    let dir = subdirectory(checkout.path(), subdir)?;
    let mut clone = Command::new("git");
    clone.env("GIT_TERMINAL_PROMPT", "0");
    // The transports git may use, submodules included.
    clone.env(
        "GIT_ALLOW_PROTOCOL",
        if s.settings.allow_local_git {
            "https:http:ssh:file"
        } else {
            "https:http:ssh"
        },
    );
    if let Ok(token) = std::env::var("STYRMIN_DRIVER_TOKEN")
        && !token.is_empty()
        && let Some(host) = https_host(url)
        && token_hosts().contains(&host)
    {
        let basic = B64.encode(format!("x-access-token:{token}"));
        clone
            .arg("-c")
            .arg("http.followRedirects=false")
            .arg("-c")
            .arg(format!(
                "http.https://{host}/.extraHeader=Authorization: Basic {basic}"
            ));
    }
    clone
        .args([
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--single-branch",
            "--no-recurse-submodules",
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
        let root = checkout.path().display().to_string();
        return Err(ApiError::field(
            "repoUrl",
            format!(
                "cannot clone branch `{branch}` of {url}: {}",
                String::from_utf8_lossy(&out.stderr)
                    .trim()
                    .replace(&root, "<checkout>")
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
    let bundle = read_checkout(checkout.path(), dir, subdir.unwrap_or_default()).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Only remote transports are loaded from; a local one only when the server allows it.
    #[test]
    fn git_urls_must_be_remote() {
        for url in [
            "https://github.com/a/b",
            "HTTPS://x/y",
            "ssh://git@h/r",
            "git@github.com:a/b.git",
            "http://h/r",
        ] {
            assert!(check_repository_url(url, false).is_ok(), "{url}");
        }
        for url in [
            "file:///etc",
            "/srv/repo",
            "../repo",
            "ext::sh -c id",
            "",
            "C:/x",
        ] {
            assert!(check_repository_url(url, false).is_err(), "{url}");
        }
        assert!(check_repository_url("file:///tmp/r", true).is_ok());
    }

    #[test]
    fn the_token_host_is_read_from_https_urls_only() {
        assert_eq!(
            https_host("https://GitHub.com/a/b").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            https_host("https://u:p@h.example:8443/r").as_deref(),
            Some("h.example")
        );
        assert_eq!(
            https_host("https://github.com.evil.test/r").as_deref(),
            Some("github.com.evil.test")
        );
        assert_eq!(https_host("http://github.com/a"), None);
        assert_eq!(https_host("ssh://github.com/a"), None);
    }

    #[test]
    fn a_subdirectory_stays_inside_the_checkout() {
        let root = Path::new("/tmp/checkout");
        assert_eq!(
            subdirectory(root, Some("drivers/app")).unwrap(),
            root.join("drivers/app")
        );
        assert_eq!(subdirectory(root, None).unwrap(), root);
        for bad in ["/etc", "../x", "a/../../b"] {
            assert!(subdirectory(root, Some(bad)).is_err(), "{bad}");
        }
    }
}
