//! The benches that start a local cluster find its tools as `styrmin up` does; a tool that
//! is not there stops them at once with what to do, instead of a cluster that waits for
//! ever.

use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn a_missing_tool_is_a_clear_error_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_styrmin-bench"))
        .args(["--dry-run", "agent", "--deployments", "1"])
        .env("STYRMIN_KUBE_BIN", dir.path().join("no-such-dir"))
        .env("STYRMIN_HELM", dir.path().join("no-helm"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("kube-apiserver") && stderr.contains("STYRMIN_KUBE_BIN"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // The control plane there, helm not: named as well.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_styrmin-bench"))
        .args(["--dry-run", "cluster-start", "--runs", "1"])
        .env(
            "STYRMIN_KUBE_BIN",
            std::env::var_os("STYRMIN_KUBE_BIN").expect("the suite sets STYRMIN_KUBE_BIN"),
        )
        .env("STYRMIN_HELM", dir.path().join("no-helm"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("helm is not at") && stderr.contains("no-helm"),
        "{stderr}"
    );
}
