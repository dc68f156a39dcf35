//! Local cluster start-up: from nothing to a ready API server with CRDs installed and the
//! simulated nodes registered, as every agent and end-to-end test pays it.

use std::time::Instant;

use anyhow::Result;
use styrmin_localkube::LocalCluster;

use crate::report::median;

pub async fn measure(runs: usize) -> Result<String> {
    let options = crate::tools::options().await?;
    let mut seconds = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let cluster = LocalCluster::start(options.clone()).await?;
        seconds.push(started.elapsed().as_secs_f64());
        cluster.stop().await;
    }
    let max = seconds.iter().copied().fold(0.0, f64::max);
    let min = seconds.iter().copied().fold(f64::MAX, f64::min);
    Ok(format!(
        "## Local cluster start-up\n\n\
         Command: `cargo run --release -p styrmin-bench -- cluster-start --runs {runs}`\n\n\
         One cluster at a time, binaries cached: etcd, kube-apiserver and\n\
         kube-controller-manager started, `/readyz` ok, the Flux/Velero/Traefik CRDs\n\
         established, two simulated nodes registered. {runs} runs in one process.\n\n\
         | median | fastest | slowest | target |\n\
         |---|---|---|---|\n\
         | {:.2} s | {min:.2} s | {max:.2} s | < 10 s |\n",
        median(&mut seconds)
    ))
}
