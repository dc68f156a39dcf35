//! The CRDs of the components Styrmin drives (Flux, Velero, Traefik), installed into every
//! local cluster and waited on until the API server serves them.

use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};

pub const CRDS: &[(&str, &str)] = &[
    (
        "helmreleases.helm.toolkit.fluxcd.io",
        include_str!("../crds/helmreleases.helm.toolkit.fluxcd.io.yaml"),
    ),
    (
        "helmrepositories.source.toolkit.fluxcd.io",
        include_str!("../crds/helmrepositories.source.toolkit.fluxcd.io.yaml"),
    ),
    (
        "backups.velero.io",
        include_str!("../crds/backups.velero.io.yaml"),
    ),
    (
        "restores.velero.io",
        include_str!("../crds/restores.velero.io.yaml"),
    ),
    (
        "backupstoragelocations.velero.io",
        include_str!("../crds/backupstoragelocations.velero.io.yaml"),
    ),
    (
        "deletebackuprequests.velero.io",
        include_str!("../crds/deletebackuprequests.velero.io.yaml"),
    ),
    (
        "middlewares.traefik.io",
        include_str!("../crds/middlewares.traefik.io.yaml"),
    ),
];

pub async fn install(client: &kube::Client, deadline: Instant) -> Result<()> {
    install_all(
        client,
        CRDS.iter().map(|(name, yaml)| (*name, *yaml)),
        deadline,
    )
    .await
}

/// Applies CRDs (server-side) and waits until each is established.
pub async fn install_all<'a>(
    client: &kube::Client,
    crds: impl Iterator<Item = (&'a str, &'a str)>,
    deadline: Instant,
) -> Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("styrmin-localkube").force();
    let mut names = Vec::new();
    for (name, yaml) in crds {
        let crd: CustomResourceDefinition = serde_yaml_ng::from_str(yaml)
            .with_context(|| format!("the CRD {name} does not parse"))?;
        api.patch(name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("cannot install the CRD {name}"))?;
        names.push(name);
    }
    for name in names {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(
            left,
            await_condition(api.clone(), name, conditions::is_crd_established()),
        )
        .await
        {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => bail!("waiting for the CRD {name}: {e}"),
            Err(_) => bail!("the CRD {name} was not established in time"),
        }
    }
    Ok(())
}
