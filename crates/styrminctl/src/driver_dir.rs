//! Reads a driver directory into `DriverFiles`. The core validates; this only does the I/O.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use styrmin_core::driver::{ACTIONS_FILE, DriverFiles, SPEC_FILE};
use styrmin_core::render::VALUES_FILE;

pub fn read(dir: &Path) -> Result<DriverFiles> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let spec_path = dir.join(SPEC_FILE);
    if !spec_path.is_file() {
        bail!(
            "{} has no {SPEC_FILE}: a driver directory holds {SPEC_FILE}, and optionally {VALUES_FILE} and {ACTIONS_FILE}",
            dir.display()
        );
    }
    let spec = read_text(&spec_path)?;
    let values_template = read_optional(&dir.join(VALUES_FILE))?;
    let actions = read_optional(&dir.join(ACTIONS_FILE))?;
    let mut files = BTreeSet::new();
    list_files(dir, "", &mut files)?;
    Ok(DriverFiles {
        spec,
        values_template,
        actions,
        files,
    })
}

fn read_text(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    if path.is_file() {
        read_text(path).map(Some)
    } else {
        Ok(None)
    }
}

/// Every file below `dir`, skipping hidden entries such as `.git`.
fn list_files(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot list {}", dir.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let relative = format!("{prefix}{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            list_files(&entry.path(), &format!("{relative}/"), out)?;
        } else {
            out.insert(relative);
        }
    }
    Ok(())
}
