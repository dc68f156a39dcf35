//! Where the control-plane binaries are: built once by scripts/kube-binaries.sh into a
//! cache directory.

use std::path::{Path, PathBuf};

pub const KUBERNETES_VERSION: &str = "1.20.2";
pub const BINARIES: [&str; 3] = ["etcd", "kube-apiserver", "kube-controller-manager"];

#[derive(Debug, thiserror::Error)]
#[error(
    "the local cluster needs {missing} in {dir}; build them with scripts/kube-binaries.sh \
     (about 5 minutes the first time), or point STYRMIN_KUBE_BIN at a directory holding {all}"
)]
pub struct MissingBinaries {
    pub dir: PathBuf,
    pub missing: String,
    pub all: String,
}

/// `$STYRMIN_KUBE_BIN`, else `${STYRMIN_CACHE:-~/.cache/styrmin}/kubernetes-1.20.2/bin`.
pub fn default_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STYRMIN_KUBE_BIN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("STYRMIN_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/styrmin")))
        .unwrap_or_else(|| PathBuf::from("/tmp/styrmin-cache"));
    cache.join(format!("kubernetes-{KUBERNETES_VERSION}/bin"))
}

pub fn check(dir: &Path) -> Result<(), MissingBinaries> {
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .filter(|b| !dir.join(b).is_file())
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(MissingBinaries {
            dir: dir.to_owned(),
            missing: missing.join(", "),
            all: BINARIES.join(", "),
        })
    }
}
