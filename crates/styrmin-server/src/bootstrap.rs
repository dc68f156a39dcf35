//! What `styrmin up` makes of a running server: the bundled drivers loaded, its cluster
//! and environment there (created the first time, found again after), a fresh token for
//! the cluster's agent, and the admin token to show. Run again on the same data, it
//! changes nothing but the agent's token.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde_json::json;
use styrmin_bundle::Bundle;

use crate::auth::{Principal, Role};
use crate::server::RunningServer;
use crate::services::{clusters, environments};
use crate::store::drivers::Source;
use crate::{driver_versions, resolve};

/// What to set up.
pub struct LocalSetup<'a> {
    /// The bundled drivers' directories (each holds a `driver.styrmin.yml`).
    pub drivers: &'a [PathBuf],
    /// The cluster's name.
    pub cluster: &'a str,
    /// The environment's name, on that cluster.
    pub environment: &'a str,
    /// Issue a new token for the cluster's agent (the caller runs that agent); the old
    /// one stops working.
    pub agent_token: bool,
}

/// The S3 store `up` runs beside the local cluster, registered as the backup location
/// `local` of its environment.
pub struct LocalStore<'a> {
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub region: &'a str,
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
}

/// The name of the backup location `up` registers for its local S3 store.
pub const LOCAL_LOCATION: &str = "local";

/// Registers `store` as the backup location `local` (moved to its endpoint if it was
/// elsewhere) and assigns it to the environment when that has none. Returns whether the
/// environment now uses it.
pub async fn local_location(
    server: &RunningServer,
    environment: &str,
    store: &LocalStore<'_>,
) -> anyhow::Result<bool> {
    let system = Principal {
        name: ACTOR.into(),
        role: Role::Admin,
        cluster_id: None,
    };
    let state = &server.state;
    let existing = {
        let mut c = state.db.read().await?;
        crate::store::locations::find(&mut c, LOCAL_LOCATION).await?
    };
    let location = match existing {
        Some(row) if row.endpoint == store.endpoint => row,
        Some(mut row) => {
            let mut tx = state.db.write().await?;
            crate::store::locations::set_endpoint(&mut tx, &row.id, store.endpoint).await?;
            tx.commit().await?;
            row.endpoint = store.endpoint.to_owned();
            row
        }
        None => crate::services::locations::create_location(
            state,
            &system,
            crate::services::locations::NewLocation {
                name: LOCAL_LOCATION,
                endpoint: store.endpoint,
                bucket: store.bucket,
                region: store.region,
                access_key_id: store.access_key_id,
                secret_access_key: store.secret_access_key,
            },
        )
        .await
        .context("registering the local backup location")?,
    };
    let env = {
        let mut c = state.db.read().await?;
        resolve::environment(&mut c, environment).await?
    };
    match env.bsl_id {
        Some(id) => Ok(id == location.id),
        None => {
            crate::services::locations::assign_location(state, &system, &env.id, &location.id)
                .await
                .context("assigning the local backup location")?;
            Ok(true)
        }
    }
}

/// A bundled driver as loaded.
pub struct BundledDriver {
    pub name: String,
    pub version: String,
    pub digest: String,
    /// False when the same content was loaded before.
    pub created: bool,
}

/// What [`bootstrap`] found or made.
pub struct Bootstrapped {
    pub drivers: Vec<BundledDriver>,
    pub cluster_id: String,
    pub cluster_name: String,
    pub environment_name: String,
    pub namespace: String,
    /// The agent's new token, when [`LocalSetup::agent_token`] asked for one.
    pub agent_token: Option<String>,
    /// The bootstrap admin's token, to show; `None` when the operator gave it
    /// ([`crate::ServerOptions::admin_token`]) and so knows it already.
    pub admin_token: Option<String>,
}

/// The audit log names the changes of `up` by this.
const ACTOR: &str = "styrmin-up";

/// Loads the bundled drivers and makes sure of the cluster and the environment; see
/// [`LocalSetup`] and [`Bootstrapped`].
pub async fn bootstrap(
    server: &RunningServer,
    setup: &LocalSetup<'_>,
) -> anyhow::Result<Bootstrapped> {
    let admin_token = remember_admin_token(server)?;
    let system = Principal {
        name: ACTOR.into(),
        role: Role::Admin,
        cluster_id: None,
    };
    let state = &server.state;
    let mut drivers = Vec::new();
    for dir in setup.drivers {
        let path = fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        let bundle = Bundle::read_dir(&path)?;
        let source = Source::Local {
            path: path.display().to_string(),
        };
        let outcome = driver_versions::load_bundle(state, &system, bundle, source)
            .await
            .with_context(|| format!("loading {}", dir.display()))?;
        let v = outcome.version;
        drivers.push(BundledDriver {
            name: v.driver_name,
            version: v.version,
            digest: v.digest,
            created: outcome.created,
        });
    }

    let found = {
        let mut c = state.db.read().await?;
        resolve::cluster(&mut c, setup.cluster).await.ok()
    };
    let cluster = match found {
        Some(cluster) => cluster,
        None => {
            clusters::create_cluster(state, &system, setup.cluster, json!({}))
                .await
                .with_context(|| format!("creating the cluster {}", setup.cluster))?
                .0
        }
    };
    let found = {
        let mut c = state.db.read().await?;
        let reference = format!("{}/{}", cluster.id, setup.environment);
        resolve::environment(&mut c, &reference).await.ok()
    };
    let environment = match found {
        Some(env) => env,
        None => environments::create_environment(
            state,
            &system,
            setup.environment,
            &cluster.id,
            json!({}),
        )
        .await
        .with_context(|| format!("creating the environment {}", setup.environment))?,
    };
    let agent_token = if setup.agent_token {
        let (_, token) = clusters::rotate_agent_token(state, &system, &cluster.id)
            .await
            .with_context(|| format!("issuing the agent token of {}", cluster.name))?;
        Some(token)
    } else {
        None
    };
    Ok(Bootstrapped {
        drivers,
        cluster_id: cluster.id,
        cluster_name: cluster.name,
        environment_name: environment.name,
        namespace: environment.namespace,
        agent_token,
        admin_token,
    })
}

/// `up` is for one person on one machine: the bootstrap admin's token is kept in the data
/// directory (`admin.token`, mode 0600) so every `up` can show it. `styrmin server` never
/// does this; an operator who gave the token keeps it themselves.
fn remember_admin_token(server: &RunningServer) -> anyhow::Result<Option<String>> {
    if server.admin_token_given {
        return Ok(None);
    }
    let path = server.data_dir.join("admin.token");
    match &server.new_admin_token {
        Some(token) => {
            write_private(&path, token)?;
            Ok(Some(token.clone()))
        }
        None => Ok(fs::read_to_string(&path).ok().map(|t| t.trim().to_owned())),
    }
}

fn write_private(path: &Path, token: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{token}").with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::{ServerOptions, start};
    use crate::store::tokens;

    fn example_driver() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../drivers/examples/my-app")
    }

    /// The first bootstrap loads the drivers and creates the cluster and environment; a
    /// second one on the same server finds them all again and only replaces the agent's
    /// token. The admin token generated at the first start is kept in the data directory
    /// and shown by both.
    #[tokio::test]
    async fn a_second_bootstrap_finds_everything_and_only_rotates_the_agent_token() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServerOptions::new(dir.path().to_owned());
        options.listen = ([127, 0, 0, 1], 0).into();
        let server = start(options).await.unwrap();
        let drivers = [example_driver()];
        let setup = LocalSetup {
            drivers: &drivers,
            cluster: "local",
            environment: "dev",
            agent_token: true,
        };

        let first = bootstrap(&server, &setup).await.unwrap();
        let second = bootstrap(&server, &setup).await.unwrap();

        assert_eq!(first.drivers.len(), 1);
        assert_eq!(first.drivers[0].name, "my-app");
        assert!(first.drivers[0].created);
        assert!(!second.drivers[0].created);
        assert_eq!(second.drivers[0].digest, first.drivers[0].digest);
        assert_eq!(second.cluster_id, first.cluster_id);
        assert_eq!(
            (second.environment_name.as_str(), second.namespace.as_str()),
            ("dev", "styrmin-dev")
        );
        let admin = first.admin_token.expect("a generated admin token is shown");
        assert_eq!(server.new_admin_token.as_deref(), Some(admin.as_str()));
        assert_eq!(second.admin_token.as_deref(), Some(admin.as_str()));

        let (old, new) = (first.agent_token.unwrap(), second.agent_token.unwrap());
        assert_ne!(old, new);
        let mut c = server.state.db.read().await.unwrap();
        let hash = crate::crypto::token_hash;
        let old_row = tokens::by_hash(&mut c, &hash(&old)).await.unwrap();
        let new_row = tokens::by_hash(&mut c, &hash(&new)).await.unwrap();
        assert!(old_row.is_none(), "the old agent token is gone");
        assert_eq!(new_row.unwrap().cluster_id, Some(first.cluster_id));
        let (clusters,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM clusters")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        let (environments,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM environments")
            .fetch_one(&mut *c)
            .await
            .unwrap();
        drop(c);
        assert_eq!((clusters, environments), (1, 1));
        server.stop().await.unwrap();
    }

    /// An operator who gave the admin token is not shown it, and no token file is written.
    #[tokio::test]
    async fn a_given_admin_token_is_neither_shown_nor_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ServerOptions::new(dir.path().to_owned());
        options.listen = ([127, 0, 0, 1], 0).into();
        options.admin_token = Some("stm_given-admin-token".into());
        let server = start(options).await.unwrap();
        let setup = LocalSetup {
            drivers: &[],
            cluster: "local",
            environment: "dev",
            agent_token: false,
        };
        let done = bootstrap(&server, &setup).await.unwrap();
        assert_eq!(done.admin_token, None);
        assert_eq!(done.agent_token, None);
        assert!(!dir.path().join("admin.token").exists());
        server.stop().await.unwrap();
    }
}
