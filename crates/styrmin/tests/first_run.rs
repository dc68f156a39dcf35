//! A new user's first run, through the binaries only: `styrmin up` started from an empty
//! temporary directory (no repository around it, no STYRMIN_KUBE_BIN or STYRMIN_HELM, a
//! temporary HOME) prepares its tools with the preparation script packed into the binary,
//! loads the drivers packed into it, runs the local cluster in its data directory and
//! saves styrminctl's `local` context. The README's walkthrough then runs literally, as a
//! user pastes it. A deployment made RUNNING is still RUNNING, with the very same pods,
//! after `up` is stopped and started again, and the second `up`'s agent reports it anew.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use serde_json::Value;
use styrmin_testkit::wait_until;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The README marks its walkthrough with this comment, just before the block.
const WALKTHROUGH_MARKER: &str =
    "<!-- walkthrough: run as written by crates/styrmin/tests/first_run.rs -->";

/// A user's machine: an empty working directory, a home, a data directory and the
/// configuration file, all temporary.
struct Machine {
    root: tempfile::TempDir,
    listen: String,
    /// The tools cache the suite's preparation filled (STYRMIN_CACHE), so the packed script
    /// finds everything built and returns at once.
    cache: PathBuf,
}

impl Machine {
    fn new() -> Machine {
        let root = tempfile::tempdir().unwrap();
        for dir in ["cwd", "home", "data"] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        Machine {
            root,
            listen: format!("127.0.0.1:{}", styrmin_testkit::free_port()),
            cache: tools_cache(),
        }
    }

    fn cwd(&self) -> PathBuf {
        self.root.path().join("cwd")
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.root.path().join("home/styrmin-config.yaml")
    }

    /// A command with this machine's environment and nothing of the suite's.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        for var in [
            "STYRMIN_KUBE_BIN",
            "STYRMIN_HELM",
            "STYRMIN_RCLONE",
            "STYRMIN_SIM_IMAGE_PATH",
            "STYRMIN_DRIVERS",
            "STYRMIN_ADMIN_TOKEN",
            "STYRMIN_DATABASE_URL",
            "STYRMIN_DATA_DIR",
            "STYRMIN_SERVER_ADDRESS",
            "STYRMIN_TOKEN",
            "STYRMIN_CONTEXT",
            "XDG_DATA_HOME",
            "XDG_CONFIG_HOME",
        ] {
            command.env_remove(var);
        }
        command
            .current_dir(self.cwd())
            .env("HOME", self.root.path().join("home"))
            .env("STYRMIN_DATA_DIR", self.data())
            .env("STYRMIN_CONFIG", self.config())
            .env("STYRMIN_CACHE", &self.cache)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Runs `styrmin up` until it says it is ready.
    async fn up(&self) -> Up {
        let mut child = self
            .command(Path::new(env!("CARGO_BIN_EXE_styrmin")))
            .args(["up", "--listen", &self.listen])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("styrmin starts");
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        let (err_lines, err_seen) = tokio::sync::watch::channel(Vec::<String>::new());
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                err_lines.send_modify(|l| l.push(line));
            }
        });
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut lines = Vec::new();
        let ready = async {
            while let Some(line) = stdout.next_line().await.unwrap() {
                let done = line.contains("Ctrl-C stops Styrmin");
                lines.push(line);
                if done {
                    return true;
                }
            }
            false
        };
        let ready = tokio::time::timeout(Duration::from_secs(180), ready).await;
        assert!(
            matches!(ready, Ok(true)),
            "`styrmin up` did not become ready:\nstdout: {lines:#?}\nstderr: {:#?}",
            err_seen.borrow()
        );
        Up {
            child,
            stdout: lines,
            stderr: err_seen,
        }
    }

    /// `styrminctl ARGS` as the user types it: no server or token but the saved context.
    async fn ctl(&self, args: &[&str]) -> Value {
        let out = self
            .command(&styrminctl())
            .args(args)
            .args(["-o", "json"])
            .output()
            .await
            .expect("styrminctl runs");
        assert!(
            out.status.success(),
            "styrminctl {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

    /// The kube client of the local cluster, from the kubeconfig `up` keeps in the data
    /// directory.
    async fn kube(&self) -> kube::Client {
        let path = self.data().join("local/cluster/kubeconfig");
        let config = kube::config::Kubeconfig::read_from(&path).expect("the kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(config, &Default::default())
            .await
            .expect("a usable kubeconfig");
        kube::Client::try_from(config).unwrap()
    }
}

struct Up {
    child: Child,
    stdout: Vec<String>,
    stderr: tokio::sync::watch::Receiver<Vec<String>>,
}

impl Up {
    fn said(&self, text: &str) -> bool {
        self.stdout.iter().any(|l| l.contains(text))
            || self.stderr.borrow().iter().any(|l| l.contains(text))
    }

    /// SIGTERM; `up` must stop cleanly.
    async fn stop(mut self) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("`up` stops within 30 s of SIGTERM")
            .unwrap();
        assert!(status.success(), "{status:?}: {:#?}", self.stderr.borrow());
    }
}

/// `${STYRMIN_CACHE}` of the suite's preparation: STYRMIN_KUBE_BIN is
/// `CACHE/kubernetes-VERSION/bin`, where scripts/kube-binaries.sh builds.
fn tools_cache() -> PathBuf {
    let bin = PathBuf::from(
        std::env::var_os("STYRMIN_KUBE_BIN").expect("the suite sets STYRMIN_KUBE_BIN"),
    );
    let cache = bin
        .parent()
        .and_then(Path::parent)
        .expect("STYRMIN_KUBE_BIN is CACHE/kubernetes-VERSION/bin")
        .to_owned();
    assert!(
        bin.ends_with(format!(
            "kubernetes-{}/bin",
            styrmin_localkube::binaries::KUBERNETES_VERSION
        )),
        "STYRMIN_KUBE_BIN ({}) is not where scripts/kube-binaries.sh builds",
        bin.display()
    );
    cache
}

/// The styrminctl binary of this build, built first if this run has not (`cargo test -p
/// styrmin` builds only this package's binaries).
fn styrminctl() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let styrmin = Path::new(env!("CARGO_BIN_EXE_styrmin"));
            let path = styrmin.with_file_name("styrminctl");
            let profile_dir = styrmin.parent().unwrap();
            // The cargo (and so the toolchain) that built this test.
            let mut cargo = std::process::Command::new(env!("CARGO"));
            // The workspace's feature set, as `cargo test --workspace` builds it.
            cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args([
                "build",
                "--quiet",
                "--workspace",
                "--bin",
                "styrminctl",
            ]);
            if profile_dir.ends_with("release") {
                cargo.arg("--release");
            }
            let status = cargo.status().expect("cargo runs");
            assert!(status.success(), "cargo build -p styrminctl failed");
            assert!(path.is_file(), "no {}", path.display());
            path
        })
        .clone()
}

/// The fenced block right after the README's walkthrough marker.
fn readme_walkthrough() -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let (_, after) = readme
        .split_once(WALKTHROUGH_MARKER)
        .expect("README.md marks its walkthrough");
    let after = after.trim_start();
    let body = after
        .strip_prefix("```bash\n")
        .expect("a ```bash block follows the marker");
    body.split_once("\n```")
        .expect("the block ends")
        .0
        .to_owned()
}

/// The pods of the deployment `name` in the `dev` environment: name → uid.
async fn pods_of(kube: &kube::Client, name: &str) -> BTreeMap<String, String> {
    let pods: Api<Pod> = Api::namespaced(kube.clone(), "styrmin-dev");
    let list = pods.list(&ListParams::default()).await.unwrap();
    list.items
        .into_iter()
        .filter(|p| {
            p.metadata.labels.as_ref().is_some_and(|l| {
                l.get("app.kubernetes.io/instance").map(String::as_str) == Some(name)
            }) && p.metadata.deletion_timestamp.is_none()
        })
        .map(|p| (p.metadata.name.unwrap(), p.metadata.uid.unwrap()))
        .collect()
}

async fn until_running(machine: &Machine, name: &str, reported_after: Option<&str>) -> Value {
    wait_until(
        &format!("{name} RUNNING"),
        Duration::from_secs(120),
        Duration::from_millis(250),
        || async {
            let d = machine.ctl(&["deployments", "show", name]).await;
            let reported = d["status"]["reportedAt"].as_str().unwrap_or_default();
            if d["status"]["status"] == "RUNNING"
                && reported_after.is_none_or(|after| reported > after)
            {
                Ok(d)
            } else {
                Err(d["status"].clone())
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_from_anywhere_the_readme_works_as_written_and_a_restart_keeps_the_pods() {
    let machine = Machine::new();
    let styrminctl_dir = styrminctl().parent().unwrap().to_owned();
    let first = machine.up().await;

    // Tools found by the packed preparation script, with progress a person can follow.
    assert!(
        first.said("Preparing the local cluster's tools"),
        "{:#?}",
        first.stdout
    );
    assert!(first.said("Tools ready in"), "{:#?}", first.stderr.borrow());
    assert!(first.said("Local cluster ready in"), "{:#?}", first.stdout);
    assert!(
        first.said("context `local` (current) saved in"),
        "{:#?}",
        first.stdout
    );
    // Everything it wrote is in the data directory, nothing in the working directory.
    let data = machine.data();
    for file in [
        "styrmin.db",
        "drivers/examples/my-app/driver.styrmin.yml",
        "local/prepare.log",
        "local/sim-image-bin/my-app",
        "local/cluster/kubeconfig",
        "local/cluster/etcd",
    ] {
        assert!(data.join(file).exists(), "no {file} in the data directory");
    }
    assert_eq!(std::fs::read_dir(machine.cwd()).unwrap().count(), 0);
    let mode = std::fs::metadata(machine.config()).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );

    // The README's walkthrough, literally, with styrminctl on the PATH.
    let path = format!(
        "{}:{}",
        styrminctl_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let walkthrough = machine
        .command(Path::new("bash"))
        .args(["-euo", "pipefail", "-c", &readme_walkthrough()])
        .env("PATH", &path)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&walkthrough.stdout).into_owned();
    assert!(
        walkthrough.status.success(),
        "the README walkthrough failed:\n{said}\n{}",
        String::from_utf8_lossy(&walkthrough.stderr)
    );
    assert!(
        said.contains("RUNNING") && said.contains("traefik"),
        "{said}"
    );

    // A deployment to keep across the restart.
    machine
        .ctl(&[
            "deployments",
            "create",
            "my-app",
            "2.3.1",
            "dev",
            "--name",
            "keep",
            "-p",
            "admin_email=keep@example.com",
        ])
        .await;
    let before = until_running(&machine, "keep", None).await;
    let kube = machine.kube().await;
    let pods = pods_of(&kube, "keep").await;
    assert!(!pods.is_empty(), "keep has pods");
    first.stop().await;

    let second = machine.up().await;
    assert!(
        second.said("Local cluster ready in"),
        "{:#?}",
        second.stdout
    );
    // RUNNING as reported by the second `up`'s agent, on the very same pods.
    let reported = before["status"]["reportedAt"].as_str().unwrap().to_owned();
    let after = until_running(&machine, "keep", Some(&reported)).await;
    assert_eq!(after["id"], before["id"]);
    assert_eq!(pods_of(&machine.kube().await, "keep").await, pods);
    second.stop().await;
}
