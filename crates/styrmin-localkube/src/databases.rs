//! TEST DOUBLE — database-backed pods. A simulated container whose image is a PostgreSQL
//! (image name `postgres` or `postgresql`, whatever the registry, path or tag:
//! `docker.io/library/postgres:16`, `bitnami/postgresql`) or a MariaDB (`mariadb` or
//! `mysql`) is backed by a real database on this machine, when the cluster was given that
//! server ([`DatabaseServers`]):
//!
//! - when the pod starts, the node simulator creates one database for it (named by
//!   [`DatabaseServers::database_name`]: the prefix, a hash of the cluster, namespace and
//!   pod, then the namespace and pod, lower-case and cut to 63 characters); the pod becomes
//!   Running only once it exists;
//! - `exec` in that container gets the connection in its environment, over what the pod
//!   spec says: `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`, `PGDATABASE` for PostgreSQL,
//!   so `psql`, `pg_dump` and `pg_restore` reach it; for MariaDB `MYSQL_HOST`,
//!   `MYSQL_TCP_PORT`, `USER`, `MARIADB_USER`/`MYSQL_USER`, `MARIADB_PASSWORD`/
//!   `MYSQL_PASSWORD`, `MARIADB_DATABASE`/`MYSQL_DATABASE`, and `MYSQL_HOME` naming a
//!   directory whose `my.cnf` holds the connection (`[client]`) and the database
//!   (`[mysql]`), so a bare `mariadb` or `mariadb-dump DB` reaches it;
//! - when the pod goes away, the database is dropped. A database lives as long as its pod,
//!   as if the pod had no volume: a restarted pod starts empty.
//!
//! A temporary cluster drops the databases it still holds when it is dropped. Without a
//! server for an engine, such pods run as any other (no database).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt as _;

/// Which database a container is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Engine {
    Postgres,
    Mariadb,
}

/// The engine an image is, by its name: the last path segment without tag or digest.
pub fn engine_of_image(image: &str) -> Option<Engine> {
    let last = image.rsplit('/').next().unwrap_or(image);
    let name = last.split(['@', ':']).next().unwrap_or(last);
    match name {
        "postgres" | "postgresql" => Some(Engine::Postgres),
        "mariadb" | "mysql" => Some(Engine::Mariadb),
        _ => None,
    }
}

/// A database server reached over TCP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    /// The database the administrator connects to (PostgreSQL).
    pub database: String,
}

impl Server {
    /// Reads `scheme://user[:password]@host[:port][/database]` (percent-escapes in the
    /// password decoded); `default_port` when the URL names none.
    pub fn from_url(url: &str, default_port: u16) -> Result<Server> {
        let rest = url
            .split_once("://")
            .map(|(_, r)| r)
            .ok_or_else(|| anyhow!("`{url}` is not a URL (scheme://user@host:port)"))?;
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (credentials, address) = authority
            .rsplit_once('@')
            .ok_or_else(|| anyhow!("the database URL names no user"))?;
        let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse()
                    .with_context(|| format!("the database URL's port `{p}`"))?,
            ),
            None => (address, default_port),
        };
        let database = database.split('?').next().unwrap_or_default();
        Ok(Server {
            host: host.to_owned(),
            port,
            user: percent_decode(user),
            password: percent_decode(password),
            database: database.to_owned(),
        })
    }

    fn postgres_url(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{}",
            escape(&self.user),
            escape(&self.password),
            self.host,
            self.port,
            database
        )
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(b) = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The database servers behind database pods, and the databases made so far.
#[derive(Debug)]
pub struct DatabaseServers {
    pub postgres: Option<Server>,
    pub mariadb: Option<Server>,
    /// Every database name starts with it (a test run's prefix, so its clean-up finds them).
    pub prefix: String,
    /// Distinguishes clusters sharing a server (their directory).
    pub cluster: String,
    /// Where the MariaDB option files of pods go.
    pub work_dir: PathBuf,
    made: Mutex<BTreeSet<(Engine, String)>>,
}

impl DatabaseServers {
    pub fn new(
        postgres: Option<Server>,
        mariadb: Option<Server>,
        prefix: &str,
        cluster: &str,
        work_dir: &Path,
    ) -> DatabaseServers {
        DatabaseServers {
            postgres,
            mariadb,
            prefix: prefix.to_owned(),
            cluster: cluster.to_owned(),
            work_dir: work_dir.to_owned(),
            made: Mutex::new(BTreeSet::new()),
        }
    }

    fn server(&self, engine: Engine) -> Option<&Server> {
        match engine {
            Engine::Postgres => self.postgres.as_ref(),
            Engine::Mariadb => self.mariadb.as_ref(),
        }
    }

    /// The engines of a pod's containers that this cluster backs with a database.
    pub fn engines(&self, pod: &Pod) -> BTreeSet<Engine> {
        pod.spec
            .iter()
            .flat_map(|s| &s.containers)
            .filter_map(|c| self.engine_of(c))
            .collect()
    }

    fn engine_of(&self, container: &Container) -> Option<Engine> {
        let engine = engine_of_image(container.image.as_deref().unwrap_or_default())?;
        self.server(engine).map(|_| engine)
    }

    /// `<prefix><8 hex of cluster/namespace/pod>_<namespace>_<pod>`, in `[a-z0-9_]`, at
    /// most 63 characters (PostgreSQL's limit; MariaDB's is 64).
    pub fn database_name(&self, namespace: &str, pod: &str) -> String {
        let key = format!("{}/{namespace}/{pod}", self.cluster);
        let hash = key
            .bytes()
            .fold(0x811c9dc5u32, |h, b| (h ^ b as u32).wrapping_mul(16777619));
        let name: String = format!("{}{hash:08x}_{namespace}_{pod}", self.prefix)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        name.chars().take(63).collect()
    }

    /// Creates the pod's databases (idempotent).
    pub async fn create_for(&self, pod: &Pod) -> Result<()> {
        let name = self.database_name(&pod.namespace().unwrap_or_default(), &pod.name_any());
        for engine in self.engines(pod) {
            let server = self.server(engine).expect("engines are configured");
            match engine {
                Engine::Postgres => {
                    let exists = psql(
                        server,
                        &format!("SELECT 1 FROM pg_database WHERE datname = '{name}'"),
                    )
                    .await?;
                    if exists.trim() != "1" {
                        psql(server, &format!("CREATE DATABASE {name}")).await?;
                    }
                }
                Engine::Mariadb => {
                    mariadb(server, &format!("CREATE DATABASE IF NOT EXISTS {name}")).await?;
                }
            }
            self.made
                .lock()
                .expect("not poisoned")
                .insert((engine, name.clone()));
        }
        Ok(())
    }

    /// Drops the pod's databases (idempotent).
    pub async fn drop_for(&self, pod: &Pod) -> Result<()> {
        let name = self.database_name(&pod.namespace().unwrap_or_default(), &pod.name_any());
        for engine in self.engines(pod) {
            self.drop_one(engine, &name).await?;
        }
        Ok(())
    }

    async fn drop_one(&self, engine: Engine, name: &str) -> Result<()> {
        let server = self.server(engine).expect("engines are configured");
        match engine {
            Engine::Postgres => {
                psql(
                    server,
                    &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                )
                .await?;
            }
            Engine::Mariadb => {
                mariadb(server, &format!("DROP DATABASE IF EXISTS {name}")).await?;
            }
        }
        self.made
            .lock()
            .expect("not poisoned")
            .remove(&(engine, name.to_owned()));
        Ok(())
    }

    /// Drops every database this cluster still holds (a temporary cluster going away).
    pub fn drop_all_blocking(&self) {
        let made: Vec<_> = std::mem::take(&mut *self.made.lock().expect("not poisoned"))
            .into_iter()
            .collect();
        for (engine, name) in made {
            let Some(server) = self.server(engine) else {
                continue;
            };
            let result = match engine {
                Engine::Postgres => std::process::Command::new("psql")
                    .arg(server.postgres_url(&server.database))
                    .args([
                        "-qAtc",
                        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                    ])
                    .env("PGCONNECT_TIMEOUT", "5")
                    .output(),
                Engine::Mariadb => mariadb_command_blocking(server)
                    .args(["-e", &format!("DROP DATABASE IF EXISTS {name}")])
                    .output(),
            };
            if let Err(error) = result {
                tracing::debug!(%error, name, "database simulator: cannot drop a database");
            }
        }
    }

    /// What `exec` in `container` of `pod` adds to its environment: the connection to the
    /// pod's database, if the container is one.
    pub async fn exec_env(
        &self,
        namespace: &str,
        pod: &str,
        container: &Container,
    ) -> Result<BTreeMap<String, String>> {
        let mut env = BTreeMap::new();
        let Some(engine) = self.engine_of(container) else {
            return Ok(env);
        };
        let server = self.server(engine).expect("engines are configured");
        let name = self.database_name(namespace, pod);
        let mut set = |k: &str, v: &str| {
            env.insert(k.to_owned(), v.to_owned());
        };
        match engine {
            Engine::Postgres => {
                set("PGHOST", &server.host);
                set("PGPORT", &server.port.to_string());
                set("PGUSER", &server.user);
                set("PGPASSWORD", &server.password);
                set("PGDATABASE", &name);
            }
            Engine::Mariadb => {
                set("MYSQL_HOST", &server.host);
                set("MYSQL_TCP_PORT", &server.port.to_string());
                set("USER", &server.user);
                for prefix in ["MARIADB", "MYSQL"] {
                    set(&format!("{prefix}_USER"), &server.user);
                    set(&format!("{prefix}_PASSWORD"), &server.password);
                    set(&format!("{prefix}_DATABASE"), &name);
                }
                let home = self.work_dir.join("mariadb").join(&name);
                tokio::fs::create_dir_all(&home).await?;
                let mut options = format!(
                    "[client]\nuser={}\nhost={}\nport={}\n",
                    server.user, server.host, server.port
                );
                if !server.password.is_empty() {
                    options.push_str(&format!("password={}\n", server.password));
                }
                options.push_str(&format!("[mysql]\ndatabase={name}\n"));
                tokio::fs::write(home.join("my.cnf"), options).await?;
                set("MYSQL_HOME", &home.display().to_string());
            }
        }
        Ok(env)
    }
}

async fn psql(server: &Server, sql: &str) -> Result<String> {
    let output = tokio::process::Command::new("psql")
        .arg(server.postgres_url(&server.database))
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .env("PGCONNECT_TIMEOUT", "5")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("cannot run psql (the PostgreSQL client)")?;
    if !output.status.success() {
        bail!(
            "PostgreSQL on {}:{}: {sql}: {}",
            server.host,
            server.port,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn mariadb_command_blocking(server: &Server) -> std::process::Command {
    let mut command = std::process::Command::new("mariadb");
    command
        .arg("--no-defaults")
        .arg(format!("--host={}", server.host))
        .arg(format!("--port={}", server.port))
        .arg(format!("--user={}", server.user))
        .arg("--connect-timeout=5")
        .stdin(std::process::Stdio::null());
    if !server.password.is_empty() {
        command.env("MYSQL_PWD", &server.password);
    }
    command
}

async fn mariadb(server: &Server, sql: &str) -> Result<()> {
    let mut command = tokio::process::Command::from(mariadb_command_blocking(server));
    let output = command
        .args(["-e", sql])
        .output()
        .await
        .context("cannot run mariadb (the MariaDB client)")?;
    if !output.status.success() {
        bail!(
            "MariaDB on {}:{}: {sql}: {}",
            server.host,
            server.port,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Images are recognised by name, whatever the registry, path, tag or digest.
    #[test]
    fn images_are_databases_by_name() {
        assert_eq!(engine_of_image("postgres:16"), Some(Engine::Postgres));
        assert_eq!(
            engine_of_image("docker.io/bitnami/postgresql@sha256:ab"),
            Some(Engine::Postgres)
        );
        assert_eq!(
            engine_of_image("registry:5000/lib/mariadb:11"),
            Some(Engine::Mariadb)
        );
        assert_eq!(engine_of_image("mysql"), Some(Engine::Mariadb));
        assert_eq!(engine_of_image("postgres-exporter:1"), None);
        assert_eq!(engine_of_image("my-app:1.0"), None);
    }

    /// URLs read into their parts; escapes in the password are decoded.
    #[test]
    fn server_urls_read() {
        let s =
            Server::from_url("postgres://postgres:se%40cret@127.0.0.1:5432/run_1", 5432).unwrap();
        assert_eq!(
            (
                s.user.as_str(),
                s.password.as_str(),
                s.host.as_str(),
                s.port
            ),
            ("postgres", "se@cret", "127.0.0.1", 5432)
        );
        assert_eq!(s.database, "run_1");
        let m = Server::from_url("mysql://root@127.0.0.1", 3306).unwrap();
        assert_eq!((m.password.as_str(), m.port), ("", 3306));
        assert!(Server::from_url("127.0.0.1:3306", 3306).is_err());
    }

    /// Names are safe identifiers, distinct per cluster, namespace and pod, and short.
    #[test]
    fn database_names_are_safe_and_short() {
        let a = DatabaseServers::new(None, None, "run_1_sim_", "/tmp/a", Path::new("/tmp"));
        let b = DatabaseServers::new(None, None, "run_1_sim_", "/tmp/b", Path::new("/tmp"));
        let name = a.database_name("shop", "db-0");
        assert!(name.starts_with("run_1_sim_"));
        assert!(name.ends_with("_shop_db_0"), "{name}");
        assert_ne!(name, b.database_name("shop", "db-0"));
        assert_ne!(name, a.database_name("shop-copy", "db-0"));
        let long = a.database_name(&"n".repeat(63), &"p".repeat(253));
        assert_eq!(long.len(), 63);
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
