//! Driver versions as the agent uses them: fetched from the server by digest once, their
//! spec read once, and kept for the life of the process (a digest names immutable content).

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, Result, bail};
use tokio::sync::Mutex;

use crate::api::AgentApi;
use crate::bundle;

/// A driver version's files and its parsed spec.
pub struct DriverVersion {
    pub files: Arc<bundle::Files>,
    pub spec: styrmin_core::driver::DriverSpec,
}

/// The cache of driver versions by digest.
pub struct DriverVersions {
    api: AgentApi,
    cache: Mutex<BTreeMap<String, Arc<DriverVersion>>>,
}

impl DriverVersions {
    pub fn new(api: AgentApi) -> DriverVersions {
        DriverVersions {
            api,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// A driver version's files and spec, fetched and read once per digest.
    pub async fn get(&self, digest: &str) -> Result<Arc<DriverVersion>> {
        let mut cache = self.cache.lock().await;
        if let Some(version) = cache.get(digest) {
            return Ok(version.clone());
        }
        let files = self.api.bundle(digest).await?;
        let spec = driver_spec(&files)?;
        let version = Arc::new(DriverVersion {
            files: Arc::new(files),
            spec,
        });
        cache.insert(digest.to_owned(), version.clone());
        Ok(version)
    }
}

/// The driver version's spec, from its bundle.
fn driver_spec(files: &bundle::Files) -> Result<styrmin_core::driver::DriverSpec> {
    let text = |name: &str| {
        files
            .get(name)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let loaded = styrmin_core::driver::load(&styrmin_core::driver::DriverFiles {
        spec: text(styrmin_core::driver::SPEC_FILE)
            .context("the driver bundle has no driver.styrmin.yml")?,
        values_template: text(styrmin_core::render::VALUES_FILE),
        actions: text(styrmin_core::driver::ACTIONS_FILE),
        files: files.keys().cloned().collect(),
    });
    if let Some(error) = loaded.errors().next() {
        bail!("the driver bundle does not validate: {error}");
    }
    Ok(loaded
        .driver
        .context("the driver bundle has no driver")?
        .spec
        .spec)
}
