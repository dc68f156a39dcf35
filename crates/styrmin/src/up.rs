//! `styrmin up`, as far as Styrmin is built: every bundled driver is loaded, validated and
//! listed, so a broken bundled driver stops here rather than at deploy time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use styrmin_bundle::Bundle;
use styrmin_core::driver::{self, SPEC_FILE};

pub fn run(drivers: &Path) -> Result<ExitCode> {
    let dirs = driver_dirs(drivers)?;
    println!(
        "Styrmin {} — bundled drivers in {}:",
        env!("CARGO_PKG_VERSION"),
        drivers.display()
    );
    let mut invalid = 0;
    for dir in &dirs {
        let bundle = Bundle::read_dir(dir)?;
        let loaded = driver::load(&bundle.driver_files()?);
        match &loaded.driver {
            Some(d) => {
                let spec = &d.spec.spec;
                let required: Vec<&str> = spec
                    .parameters
                    .iter()
                    .filter(|p| p.is_required())
                    .map(|p| p.name.as_str())
                    .collect();
                println!(
                    "  {:<10} driver version {:<3} apps {:<14} default {:<8} digest {}  required parameters: {}",
                    d.spec.name(),
                    spec.version,
                    spec.supported_versions.as_str(),
                    spec.default_version.as_deref().unwrap_or("-"),
                    &bundle.digest()[..12],
                    if required.is_empty() {
                        "none".to_owned()
                    } else {
                        required.join(", ")
                    }
                );
            }
            None => {
                invalid += 1;
                println!("  {} is invalid:", dir.display());
                for d in loaded.errors() {
                    println!("    {d}");
                }
            }
        }
    }
    println!(
        "\nThe server, the agent and the local cluster are not part of this build yet.\n\
         Work with drivers offline meanwhile:\n  \
         styrminctl drivers lint drivers/examples/my-app\n  \
         styrminctl drivers render drivers/examples/my-app -p admin_email=you@example.com"
    );
    Ok(if invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Every directory below `root` that holds a driver spec.
fn driver_dirs(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        if dir.join(SPEC_FILE).is_file() {
            found.push(dir);
            continue;
        }
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            if path.is_dir()
                && !path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                pending.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}
