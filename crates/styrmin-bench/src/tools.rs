//! The local cluster's tools for the benches that start one, found as `styrmin up` finds
//! them (STYRMIN_KUBE_BIN and STYRMIN_HELM, else the packed preparation script, which
//! builds what is missing): a missing tool stops the bench with what to do, instead of a
//! cluster without its Flux stand-in that waits for ever.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use styrmin_localkube::Options;
use styrmin_localkube::tools::{self, Tools};

/// `${STYRMIN_CACHE:-~/.cache/styrmin}`: the same cache as the test suite's.
fn shared_cache() -> Result<PathBuf> {
    if let Some(cache) = std::env::var_os("STYRMIN_CACHE").filter(|v| !v.is_empty()) {
        return Ok(cache.into());
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither STYRMIN_CACHE nor HOME is set: no place for the tools")?;
    Ok(PathBuf::from(home).join(".cache/styrmin"))
}

pub async fn find() -> Result<Tools> {
    let cache = shared_cache()?;
    tools::find_or_prepare(&cache.join("prepare"), &cache)
        .await
        .context("the local cluster's tools")
}

/// Cluster options with the tools found.
pub async fn options() -> Result<Options> {
    let mut options = Options::default();
    find().await?.apply(&mut options);
    Ok(options)
}
