//! The smoke form of `styrmin-bench scale`, so the scale bench cannot rot: 20 deployments
//! over 2 environments in the local cluster's scale mode, with the server and the agent as
//! their own `styrmin` processes. It proves that every deployment converges, that a
//! parameter change on all of them converges, that each figure of the final line is
//! measured (none missing), and that the agent sends the API server nothing while idle.

use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The `styrmin` binary of this build, built first if this run has not (`cargo test -p
/// styrmin-bench` builds only this package's binaries).
fn styrmin() -> PathBuf {
    let bench = Path::new(env!("CARGO_BIN_EXE_styrmin-bench"));
    let path = bench.with_file_name("styrmin");
    let mut cargo = std::process::Command::new(env!("CARGO"));
    // The workspace's feature set, as `cargo test --workspace` builds it.
    cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--workspace",
        "--bin",
        "styrmin",
    ]);
    if bench.parent().unwrap().ends_with("release") {
        cargo.arg("--release");
    }
    assert!(
        cargo.status().expect("cargo runs").success(),
        "cargo build --bin styrmin failed"
    );
    assert!(path.is_file(), "no {}", path.display());
    path
}

/// The number after `label` in the final line.
fn figure(line: &str, label: &str) -> f64 {
    let rest = line
        .split_once(label)
        .unwrap_or_else(|| panic!("no `{label}` in: {line}"))
        .1
        .trim_start();
    rest.split_whitespace()
        .next()
        .and_then(|n| n.trim_end_matches(',').parse().ok())
        .unwrap_or_else(|| panic!("no number after `{label}` in: {line}"))
}

#[test]
fn twenty_deployments_converge_change_and_then_cost_nothing() {
    let styrmin = styrmin();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_styrmin-bench"))
        .args([
            "--dry-run",
            "scale",
            "--deployments",
            "20",
            "--environments",
            "2",
            "--no-helm",
            "--idle-seconds",
            "5",
            "--timeout-seconds",
            "300",
            "--styrmin",
        ])
        .arg(&styrmin)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("scale: 20 deployments, converged in "))
        .unwrap_or_else(|| panic!("no final line in:\n{stdout}"));
    for label in [
        "converged in",
        "change converged in",
        "intent→applied p50",
        "ready→visible p50",
        "agent peak RSS",
        "server peak RSS",
    ] {
        let value = figure(line, label);
        assert!(
            value.is_finite() && value >= 0.0,
            "{label}: {value} in {line}"
        );
    }
    assert!(figure(line, "agent peak RSS") > 1.0, "{line}");
    assert!(
        stdout.contains("| idle: agent API-server requests | 0.00 per second"),
        "the idle agent sent the API server requests:\n{stdout}"
    );
}
