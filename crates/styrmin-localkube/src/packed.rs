//! Files the binary carries from the repository (packed by build.rs), and writing such a
//! table out as a directory: the preparation scripts run under bash and simulated
//! containers run the image's commands, so both need real files.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use anyhow::{Context as _, Result};

mod tables {
    include!(concat!(env!("OUT_DIR"), "/packed.rs"));
}

/// `scripts/prepare-local.sh` and what it runs, by path below `scripts/`.
pub use tables::PREPARE_SCRIPTS;
/// `scripts/sim-image-bin/`: stand-ins for the example image's commands.
pub use tables::SIM_IMAGE_BIN;

/// A packed directory: (path relative to it, joined with `/`; contents).
pub type Files = [(&'static str, &'static [u8])];

/// Replaces the directory `target` with `files`: written beside it first, then swapped
/// in, so an interrupted unpack never leaves a half-written tree at `target`. Files whose
/// name ends in `.sh`, and every file when `executable`, get mode 0755.
pub fn unpack(files: &Files, target: &Path, executable: bool) -> Result<()> {
    let parent = target
        .parent()
        .with_context(|| format!("{} has no parent directory", target.display()))?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".{name}.unpacking-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    for (relative, bytes) in files {
        let path = staging.join(relative);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
        if executable || relative.ends_with(".sh") {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("cannot make {} executable", path.display()))?;
        }
    }
    if target.exists() {
        std::fs::remove_dir_all(target)
            .with_context(|| format!("cannot replace {}", target.display()))?;
    }
    std::fs::rename(&staging, target)
        .with_context(|| format!("cannot move {} to {}", staging.display(), target.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacking_replaces_the_old_tree_and_marks_commands_executable() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("bin");
        std::fs::create_dir_all(target.join("stale")).unwrap();
        unpack(SIM_IMAGE_BIN, &target, true).unwrap();
        assert!(!target.join("stale").exists());
        let mode = std::fs::metadata(target.join("my-app"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            std::fs::read(target.join("my-app")).unwrap(),
            SIM_IMAGE_BIN[0].1
        );
        let entries = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(entries, 1, "no staging directory is left");
    }
}
