//! `LocalCluster`: a real etcd + kube-apiserver + kube-controller-manager on loopback, in a
//! directory of its own, on free ports, so several run side by side. The simulated parts
//! (nodes, Flux, Velero) are started on top by their own modules.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use kube::Client;

use std::sync::Arc;

use crate::binaries;
use crate::charts;
use crate::databases::{DatabaseServers, Server};
use crate::flux::{self, Flux};
use crate::kubelet::{self, Kubelet};
use crate::nodes::{self, SimNode};
use crate::process::{Process, free_port, log_tail};
use crate::storage::{self, Storage};
use crate::velero::{self, Velero};

#[derive(Debug, Clone)]
pub struct Options {
    /// Where etcd, kube-apiserver and kube-controller-manager are.
    pub bin_dir: PathBuf,
    /// Run kube-controller-manager (ReplicaSets, Jobs, garbage collection, namespaces).
    pub controller_manager: bool,
    /// How many simulated nodes to register (0: no node or volume simulator).
    pub nodes: usize,
    /// The helm binary the Flux stand-in runs; without one there is no Flux stand-in.
    pub helm: Option<PathBuf>,
    /// The rclone binary the Velero stand-in talks S3 with; without one there is no
    /// Velero stand-in.
    pub rclone: Option<PathBuf>,
    /// How long start-up may take before it is an error.
    pub start_timeout: Duration,
    /// Directories searched first for the commands `exec` runs in simulated containers:
    /// stand-ins for an image's own programs (`STYRMIN_SIM_IMAGE_PATH`, `:`-separated).
    pub image_path: Vec<PathBuf>,
    /// Keep the cluster in this directory (etcd's data, certificates, keys, kubeconfig,
    /// the simulated pods' files): a cluster started again on it resumes with the same
    /// objects. `None`: a temporary directory, removed when the cluster is dropped.
    pub dir: Option<PathBuf>,
    /// How the Flux stand-in installs releases: with `helm --wait` (the default), or in
    /// scale mode with `helm template` and no wait (`styrmin-bench scale`).
    pub flux_mode: crate::flux::ReleaseMode,
    /// The PostgreSQL server behind "PostgreSQL" pods (an administrator's URL,
    /// `postgres://user:password@host:port/database`): each such pod gets a database of
    /// its own there ([`crate::databases`]). `None`: such pods have no database.
    pub postgres: Option<String>,
    /// The MariaDB server behind "MariaDB" pods (`mysql://user[:password]@host:port`).
    pub mariadb: Option<String>,
    /// The pods' database names start with this.
    pub database_prefix: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            bin_dir: binaries::default_dir(),
            controller_manager: true,
            nodes: 2,
            helm: std::env::var_os("STYRMIN_HELM").map(PathBuf::from),
            rclone: crate::s3::default_rclone(),
            start_timeout: Duration::from_secs(60),
            image_path: std::env::var_os("STYRMIN_SIM_IMAGE_PATH")
                .map(|p| std::env::split_paths(&p).collect())
                .unwrap_or_default(),
            dir: None,
            flux_mode: Default::default(),
            postgres: None,
            mariadb: None,
            database_prefix: "sim_".into(),
        }
    }
}

/// Where a cluster lives: a temporary directory, or one kept across starts (held under
/// an exclusive lock while the cluster runs, so two clusters never share it).
enum ClusterDir {
    Temporary(tempfile::TempDir),
    Kept { path: PathBuf, _lock: std::fs::File },
}

/// Takes the exclusive lock of a kept cluster directory (`DIR/lock`), held while the
/// returned file is open; fails when another process holds it.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    use std::os::fd::AsRawFd as _;
    let lock_path = dir.join("lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("cannot create {}", lock_path.display()))?;
    // SAFETY: flock on a file descriptor this function owns.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!(
            "the local cluster in {} is in use by another process (another `styrmin up` on \
             the same data directory?)",
            dir.display()
        );
    }
    Ok(lock)
}

impl ClusterDir {
    fn open(kept: Option<&Path>) -> Result<ClusterDir> {
        let Some(path) = kept else {
            let dir = tempfile::Builder::new()
                .prefix("styrmin-localkube-")
                .tempdir()
                .context("cannot create the cluster's directory")?;
            return Ok(ClusterDir::Temporary(dir));
        };
        std::fs::create_dir_all(path)
            .with_context(|| format!("cannot create the cluster's directory {}", path.display()))?;
        Ok(ClusterDir::Kept {
            path: path.to_owned(),
            _lock: lock_dir(path)?,
        })
    }

    fn path(&self) -> &Path {
        match self {
            ClusterDir::Temporary(dir) => dir.path(),
            ClusterDir::Kept { path, .. } => path,
        }
    }

    fn kept(&self) -> bool {
        matches!(self, ClusterDir::Kept { .. })
    }
}

/// A running local cluster. Its test doubles run as tasks on the caller's Tokio runtime,
/// so use a multi-thread runtime and never block it (run `kubectl` with
/// `tokio::process`): a blocked runtime thread stalls the simulated kubelets.
pub struct LocalCluster {
    /// etcd first; stopped in reverse order.
    processes: Vec<(Process, PathBuf)>,
    server: String,
    token: String,
    kubeconfig: PathBuf,
    client: Client,
    /// The test doubles' tasks, aborted when the cluster stops.
    simulators: Vec<tokio::task::JoinHandle<()>>,
    nodes: Vec<SimNode>,
    /// The databases of database pods; a temporary cluster drops them when dropped.
    databases: Option<Arc<DatabaseServers>>,
    /// Last, so it is dropped last: a temporary directory is removed, and a kept one's
    /// lock released, only once the processes are gone.
    dir: ClusterDir,
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for task in &self.simulators {
            task.abort();
        }
        if let Some(databases) = &self.databases
            && !self.dir.kept()
        {
            databases.drop_all_blocking();
        }
    }
}

impl LocalCluster {
    pub async fn start(options: Options) -> Result<LocalCluster> {
        binaries::check(&options.bin_dir)?;
        let dir = ClusterDir::open(options.dir.as_deref())?;
        let root = dir.path().to_owned();
        let token = admin_token(&root)?;
        let keys = ServiceAccountKeys::load_or_write(&root)?;

        let deadline = Instant::now() + options.start_timeout;
        let mut cluster_processes = Vec::new();

        let (etcd_port, peer_port) = (free_port()?, free_port()?);
        let etcd_log = root.join("etcd.log");
        let etcd = Process::spawn(
            "etcd",
            &options.bin_dir.join("etcd"),
            &etcd_args(&root, etcd_port, peer_port, dir.kept()),
            &etcd_log,
        )?;
        cluster_processes.push((etcd, etcd_log));

        let api_port = free_port()?;
        let api_log = root.join("kube-apiserver.log");
        let apiserver = Process::spawn(
            "kube-apiserver",
            &options.bin_dir.join("kube-apiserver"),
            &apiserver_args(&root, etcd_port, api_port, &keys),
            &api_log,
        )?;
        cluster_processes.push((apiserver, api_log));

        let server = format!("https://127.0.0.1:{api_port}");
        let kubeconfig = root.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&server, &token))?;
        // Only its owner may read the admin token (helm warns otherwise, in every message).
        std::fs::set_permissions(&kubeconfig, std::fs::Permissions::from_mode(0o600))?;
        let client = client_for(&server, &token)?;

        let mut cluster = LocalCluster {
            dir,
            processes: cluster_processes,
            server,
            token,
            kubeconfig,
            client,
            simulators: Vec::new(),
            nodes: Vec::new(),
            databases: None,
        };
        cluster.wait_ready(api_port, deadline).await?;

        if options.controller_manager {
            let log = root.join("kube-controller-manager.log");
            let cm = Process::spawn(
                "kube-controller-manager",
                &options.bin_dir.join("kube-controller-manager"),
                &controller_manager_args(&cluster.kubeconfig, &keys, free_port()?),
                &log,
            )?;
            cluster.processes.push((cm, log));
        }
        crate::crds::install(&cluster.client, deadline).await?;
        if options.nodes > 0 {
            let nodes = (0..options.nodes)
                .map(|i| {
                    Ok(SimNode {
                        name: format!("sim-node-{i}"),
                        kubelet_port: free_port()?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let databases = if options.postgres.is_some() || options.mariadb.is_some() {
                let postgres = options
                    .postgres
                    .as_deref()
                    .map(|url| Server::from_url(url, 5432))
                    .transpose()
                    .context("Options::postgres")?;
                let mariadb = options
                    .mariadb
                    .as_deref()
                    .map(|url| Server::from_url(url, 3306))
                    .transpose()
                    .context("Options::mariadb")?;
                Some(Arc::new(DatabaseServers::new(
                    postgres,
                    mariadb,
                    &options.database_prefix,
                    &root.display().to_string(),
                    &root.join("databases"),
                )))
            } else {
                None
            };
            cluster.databases = databases.clone();
            let kubelet = Arc::new(Kubelet {
                client: cluster.client.clone(),
                pods_dir: cluster.pods_dir(),
                image_path: options.image_path.clone(),
                databases: databases.clone(),
            });
            for node in &nodes {
                cluster
                    .simulators
                    .push(kubelet::serve(kubelet.clone(), node.kubelet_port).await?);
            }
            let task = nodes::start(
                cluster.client.clone(),
                nodes.clone(),
                cluster.pods_dir(),
                databases,
            )
            .await?;
            cluster.simulators.push(task);
            cluster.nodes = nodes;
            let storage = Arc::new(Storage {
                client: cluster.client.clone(),
                volumes_dir: cluster.volumes_dir(),
            });
            cluster.simulators.push(storage::start(storage).await?);
        }
        if let Some(helm) = options.helm {
            let flux = Arc::new(Flux {
                client: cluster.client.clone(),
                mode: options.flux_mode,
                templates: Default::default(),
                helm,
                kubeconfig: cluster.kubeconfig.clone(),
                work_dir: root.join("flux"),
                failures: Default::default(),
            });
            cluster.simulators.extend(flux::start(flux).await?);
        }
        if let Some(rclone) = options.rclone {
            let velero = Arc::new(Velero {
                client: cluster.client.clone(),
                rclone,
                work_dir: root.join("velero"),
            });
            cluster.simulators.extend(velero::start(velero).await?);
        }
        Ok(cluster)
    }

    async fn wait_ready(&mut self, api_port: u16, deadline: Instant) -> Result<()> {
        loop {
            // Asked only once the port listens: the kube client logs every refused
            // connection as an error, which a user of `up` would read as a failure.
            let listening = tokio::net::TcpStream::connect(("127.0.0.1", api_port))
                .await
                .is_ok();
            let request = http::Request::get("/readyz").body(Vec::new())?;
            if listening
                && let Ok(body) = self.client.request_text(request).await
                && body.trim() == "ok"
            {
                return Ok(());
            }
            self.check_running()?;
            if Instant::now() > deadline {
                bail!(
                    "kube-apiserver did not become ready in time:\n{}",
                    self.logs_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails with the process's log when a control-plane process has exited.
    pub fn check_running(&mut self) -> Result<()> {
        for (process, log) in &mut self.processes {
            if let Some(status) = process.exited() {
                bail!(
                    "{} exited ({status}); the end of its log {}:\n{}",
                    process.name,
                    log.display(),
                    log_tail(log, 20)
                );
            }
        }
        Ok(())
    }

    fn logs_tail(&self) -> String {
        self.processes
            .iter()
            .map(|(p, log)| format!("--- {} ({})\n{}", p.name, log.display(), log_tail(log, 10)))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn server_url(&self) -> &str {
        &self.server
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    /// The cluster's own directory: logs, kubeconfig, etcd data.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where simulated pods keep their files: `<dir>/<namespace>/<pod>`; commands run by
    /// exec start there.
    pub fn pods_dir(&self) -> PathBuf {
        self.dir.path().join("pods")
    }

    /// Where simulated volumes keep their files: one directory per PersistentVolume.
    pub fn volumes_dir(&self) -> PathBuf {
        self.dir.path().join("volumes")
    }

    /// Serves a directory of packaged charts (with its `index.yaml`) as a Helm chart
    /// repository; returns its URL. It stops with the cluster.
    pub async fn serve_charts(&mut self, dir: PathBuf) -> Result<String> {
        let (url, task) = charts::serve(dir).await?;
        self.simulators.push(task);
        Ok(url)
    }

    /// The process ids of the control plane, etcd first.
    pub fn pids(&self) -> Vec<u32> {
        self.processes.iter().filter_map(|(p, _)| p.pid()).collect()
    }

    /// The simulated nodes.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// Stops every process, gently first. Dropping the cluster kills them at once.
    pub async fn stop(mut self) {
        for task in self.simulators.drain(..) {
            task.abort();
        }
        while let Some((mut process, _)) = self.processes.pop() {
            process.stop(Duration::from_secs(3)).await;
        }
    }
}

fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The admin's bearer token: the one of an earlier start in this directory, else a new
/// one, written to the API server's token file.
fn admin_token(root: &Path) -> Result<String> {
    let file = root.join("tokens.csv");
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Some(token) = text.split(',').next().filter(|t| t.len() >= 32)
    {
        return Ok(token.to_owned());
    }
    let token = random_hex(16)?;
    std::fs::write(&file, format!("{token},admin,admin,\"system:masters\"\n"))
        .with_context(|| format!("cannot write {}", file.display()))?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    Ok(token)
}

struct ServiceAccountKeys {
    private: PathBuf,
    public: PathBuf,
}

impl ServiceAccountKeys {
    /// An ECDSA P-256 key pair (Kubernetes signs service-account tokens with ES256): the
    /// one of an earlier start in this directory, else a new one.
    fn load_or_write(dir: &Path) -> Result<ServiceAccountKeys> {
        let keys = ServiceAccountKeys {
            private: dir.join("sa.key"),
            public: dir.join("sa.pub"),
        };
        if keys.private.is_file() && keys.public.is_file() {
            return Ok(keys);
        }
        let key = rcgen::KeyPair::generate().context("cannot generate the service-account key")?;
        std::fs::write(&keys.private, key.serialize_pem())?;
        std::fs::set_permissions(&keys.private, std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(&keys.public, key.public_key_pem())?;
        Ok(keys)
    }
}

fn etcd_args(dir: &Path, client: u16, peer: u16, kept: bool) -> Vec<String> {
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut args: Vec<String> = [
        "--name=local".into(),
        format!("--data-dir={}", dir.join("etcd").display()),
        format!("--listen-client-urls={client_url}"),
        format!("--advertise-client-urls={client_url}"),
        format!("--listen-peer-urls={peer_url}"),
        format!("--initial-advertise-peer-urls={peer_url}"),
        format!("--initial-cluster=local={peer_url}"),
        "--logger=zap".into(),
        "--log-level=warn".into(),
    ]
    .into();
    if !kept {
        // A temporary cluster's data is thrown away; fsync would only slow every write.
        args.push("--unsafe-no-fsync".into());
    }
    args
}

fn apiserver_args(dir: &Path, etcd: u16, port: u16, keys: &ServiceAccountKeys) -> Vec<String> {
    vec![
        format!("--etcd-servers=http://127.0.0.1:{etcd}"),
        "--bind-address=127.0.0.1".into(),
        "--advertise-address=127.0.0.1".into(),
        format!("--secure-port={port}"),
        format!("--cert-dir={}", dir.join("certs").display()),
        format!("--token-auth-file={}", dir.join("tokens.csv").display()),
        "--authorization-mode=RBAC".into(),
        "--service-account-issuer=https://kubernetes.default.svc".into(),
        format!("--service-account-key-file={}", keys.public.display()),
        format!(
            "--service-account-signing-key-file={}",
            keys.private.display()
        ),
        // Cluster IPs are only numbers here: nothing routes them.
        // Room for thousands of Services: 2,000 deployments of a driver with 3 are 6,000.
        "--service-cluster-ip-range=10.0.0.0/16".into(),
        // Pods need no token volume, and a namespace's first pod need not wait for its
        // default service account.
        "--disable-admission-plugins=ServiceAccount".into(),
        "--allow-privileged=true".into(),
        // The simulated kubelets listen on 127.0.0.1 with self-signed certificates.
        "--kubelet-preferred-address-types=InternalIP".into(),
        "--enable-priority-and-fairness=false".into(),
    ]
}

fn controller_manager_args(kubeconfig: &Path, keys: &ServiceAccountKeys, port: u16) -> Vec<String> {
    vec![
        format!("--kubeconfig={}", kubeconfig.display()),
        "--leader-elect=false".into(),
        "--bind-address=127.0.0.1".into(),
        "--port=0".into(),
        format!("--secure-port={port}"),
        format!(
            "--service-account-private-key-file={}",
            keys.private.display()
        ),
        // No cloud, no pod network: the controllers for those have nothing to do.
        "--controllers=*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service,-route".into(),
    ]
}

fn kubeconfig_yaml(server: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: styrmin-local\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\n\
         users:\n\
         - name: admin\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: styrmin-local\n  context:\n    cluster: styrmin-local\n    user: admin\n\
         current-context: styrmin-local\n"
    )
}

/// A kube-rs client for the cluster, as its admin.
pub fn client_for(server: &str, token: &str) -> Result<Client> {
    let mut config = kube::Config::new(server.parse().context("the API server URL")?);
    config.accept_invalid_certs = true;
    config.auth_info.token = Some(token.to_owned().into());
    Ok(Client::try_from(config)?)
}
