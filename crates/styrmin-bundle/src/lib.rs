//! A driver bundle: every file of a driver directory, read once, with a content digest.
//! Loading the same content twice gives the same digest, which is how the server makes a
//! repeated load a no-op and how the agent fetches a bundle once.

pub mod chart;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use styrmin_core::driver::{ACTIONS_FILE, DriverFiles, SPEC_FILE};
use styrmin_core::render::VALUES_FILE;

/// A driver larger than this is refused: bundles travel to every cluster.
pub const MAX_BUNDLE_BYTES: u64 = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0} is not a directory")]
    NotADirectory(PathBuf),
    #[error(
        "{0} has no {SPEC_FILE}: a driver directory holds {SPEC_FILE}, and optionally {VALUES_FILE} and {ACTIONS_FILE}"
    )]
    NoSpec(PathBuf),
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} is not UTF-8 text")]
    NotText { path: PathBuf },
    #[error("the driver at {dir} is larger than {} MiB", MAX_BUNDLE_BYTES / 1024 / 1024)]
    TooLarge { dir: PathBuf },
}

/// Every file of a driver, by `/`-separated relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    /// Reads a driver directory, skipping hidden entries such as `.git`.
    pub fn read_dir(dir: &Path) -> Result<Bundle, BundleError> {
        if !dir.is_dir() {
            return Err(BundleError::NotADirectory(dir.to_owned()));
        }
        if !dir.join(SPEC_FILE).is_file() {
            return Err(BundleError::NoSpec(dir.to_owned()));
        }
        let mut files = BTreeMap::new();
        let mut total = 0;
        collect(dir, dir, "", &mut files, &mut total)?;
        Ok(Bundle { files })
    }

    /// sha256 over every path and content, in path order.
    pub fn digest(&self) -> String {
        let mut hash = Sha256::new();
        for (path, content) in &self.files {
            hash.update((path.len() as u64).to_le_bytes());
            hash.update(path.as_bytes());
            hash.update((content.len() as u64).to_le_bytes());
            hash.update(content);
        }
        let mut hex = String::with_capacity(64);
        for b in hash.finalize() {
            let _ = write!(hex, "{b:02x}");
        }
        hex
    }

    /// The files validation and rendering read, as text.
    pub fn driver_files(&self) -> Result<DriverFiles, BundleError> {
        let text = |name: &str| -> Result<Option<String>, BundleError> {
            self.files
                .get(name)
                .map(|bytes| {
                    String::from_utf8(bytes.clone())
                        .map_err(|_| BundleError::NotText { path: name.into() })
                })
                .transpose()
        };
        Ok(DriverFiles {
            spec: text(SPEC_FILE)?.unwrap_or_default(),
            values_template: text(VALUES_FILE)?,
            actions: text(ACTIONS_FILE)?,
            files: self.files.keys().cloned().collect::<BTreeSet<_>>(),
        })
    }
}

fn io(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |source| BundleError::Io {
        path: path.to_owned(),
        source,
    }
}

fn collect(
    root: &Path,
    dir: &Path,
    prefix: &str,
    files: &mut BTreeMap<String, Vec<u8>>,
    total: &mut u64,
) -> Result<(), BundleError> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(io(dir))?
        .collect::<Result<_, _>>()
        .map_err(io(dir))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let relative = format!("{prefix}{name}");
        let kind = entry.file_type().map_err(io(&path))?;
        if kind.is_dir() {
            collect(root, &path, &format!("{relative}/"), files, total)?;
        } else if kind.is_file() {
            // Read no more than what is left of the limit (and one byte to see it passed):
            // a huge file is refused without being read whole.
            let left = MAX_BUNDLE_BYTES.saturating_sub(*total);
            let mut content = Vec::new();
            fs::File::open(&path)
                .and_then(|f| io::Read::take(f, left + 1).read_to_end(&mut content))
                .map_err(io(&path))?;
            *total += content.len() as u64;
            if *total > MAX_BUNDLE_BYTES {
                return Err(BundleError::TooLarge {
                    dir: root.to_owned(),
                });
            }
            files.insert(relative, content);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("styrmin-bundle-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("chart/templates")).unwrap();
        fs::create_dir_all(dir.join(".git")).unwrap();
        fs::write(dir.join(SPEC_FILE), "spec").unwrap();
        fs::write(dir.join("chart/Chart.yaml"), "name: x").unwrap();
        fs::write(dir.join(".git/HEAD"), "ref").unwrap();
        dir
    }

    #[test]
    fn reads_every_file_but_hidden_ones_and_digests_content() {
        let dir = scratch("read");
        let bundle = Bundle::read_dir(&dir).unwrap();
        assert_eq!(
            bundle.files.keys().collect::<Vec<_>>(),
            vec!["chart/Chart.yaml", SPEC_FILE]
        );
        let digest = bundle.digest();
        assert_eq!(
            digest,
            Bundle::read_dir(&dir).unwrap().digest(),
            "same content, same digest"
        );
        fs::write(dir.join("chart/Chart.yaml"), "name: y").unwrap();
        assert_ne!(digest, Bundle::read_dir(&dir).unwrap().digest());
        let files = bundle.driver_files().unwrap();
        assert_eq!(files.spec, "spec");
        assert!(files.values_template.is_none());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_without_a_spec_is_refused_with_the_reason() {
        let dir = scratch("nospec");
        fs::remove_file(dir.join(SPEC_FILE)).unwrap();
        let err = Bundle::read_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("has no driver.styrmin.yml"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
