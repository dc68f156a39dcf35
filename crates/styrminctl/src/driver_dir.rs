//! Reads a driver directory for the offline commands.

use std::path::Path;

use anyhow::Result;
use styrmin_bundle::Bundle;
use styrmin_core::driver::DriverFiles;

pub fn read(dir: &Path) -> Result<DriverFiles> {
    Ok(Bundle::read_dir(dir)?.driver_files()?)
}
