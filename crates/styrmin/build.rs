//! Packs the bundled drivers (`drivers/` of the repository) into the binary, so `styrmin
//! up` loads them from any directory and after `cargo install`. Writes
//! `$OUT_DIR/drivers.rs`: a `(relative path, bytes)` table of every file below `drivers/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let base = manifest.join("../../drivers");
    println!("cargo:rerun-if-changed={}", base.display());
    let mut files = Vec::new();
    collect(&base, &base, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no drivers in {}", base.display());
    let mut out = String::from("pub const DRIVERS: &[(&str, &[u8])] = &[\n");
    for (relative, path) in files {
        let absolute = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("cannot pack {}: {e}", path.display()));
        writeln!(
            out,
            "    ({relative:?}, include_bytes!({:?})),",
            absolute.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let target =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("drivers.rs");
    std::fs::write(&target, out).expect("cannot write drivers.rs");
}

/// Every file below `dir`, as (path relative to `base` joined with `/`, path).
fn collect(base: &Path, dir: &Path, files: &mut Vec<(String, PathBuf)>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect(base, &path, files);
        } else if path.is_file() {
            let relative = path
                .strip_prefix(base)
                .expect("below its base")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            files.push((relative, path));
        }
    }
}
