//! Packs the repository files the local cluster needs on a machine without the repository
//! (`styrmin up` from any directory, an installed binary): the preparation scripts that
//! install its tools and build its control plane, and the simulated image's commands.
//! Writes `$OUT_DIR/packed.rs`: `(relative path, bytes)` tables.

use std::fmt::Write as _;
use std::path::PathBuf;

/// (constant, directory from the repository root, files in it).
const TABLES: &[(&str, &str, &[&str])] = &[
    (
        "PREPARE_SCRIPTS",
        "scripts",
        &["prepare-local.sh", "kube-binaries.sh", "lib/tools.sh"],
    ),
    ("SIM_IMAGE_BIN", "scripts/sim-image-bin", &["my-app"]),
];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest.join("../..");
    let mut out = String::new();
    for (name, dir, files) in TABLES {
        writeln!(out, "pub const {name}: &[(&str, &[u8])] = &[").unwrap();
        for file in *files {
            let path = root.join(dir).join(file);
            println!("cargo:rerun-if-changed={}", path.display());
            let absolute = path
                .canonicalize()
                .unwrap_or_else(|e| panic!("cannot pack {}: {e}", path.display()));
            writeln!(
                out,
                "    ({file:?}, include_bytes!({:?})),",
                absolute.display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    // A new command in sim-image-bin must be listed above, or it would be left out.
    let sim = root.join("scripts/sim-image-bin");
    println!("cargo:rerun-if-changed={}", sim.display());
    let count = std::fs::read_dir(&sim).map(|d| d.count()).unwrap_or(0);
    assert_eq!(count, 1, "list every file of {} in build.rs", sim.display());
    let target =
        PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo")).join("packed.rs");
    std::fs::write(&target, out).expect("cannot write packed.rs");
}
