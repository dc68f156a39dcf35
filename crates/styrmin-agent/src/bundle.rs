//! Driver bundles in the cluster: one immutable ConfigMap per driver version,
//! `styrmin-driver-<name>-<digest12>`, written by the worker and read by the operator.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

const KEY: &str = "bundle.json";

/// Every file of a driver version, by `/`-separated path.
pub type Files = BTreeMap<String, Vec<u8>>;
/// What a ConfigMap can hold, with room for its metadata.
const MAX_BYTES: usize = 1000 * 1024;

pub fn configmap_name(driver: &str, digest: &str) -> String {
    format!(
        "styrmin-driver-{driver}-{}",
        &digest[..digest.len().min(12)]
    )
}

/// Writes the bundle unless it is there already (it never changes: the name holds the digest).
pub async fn ensure(
    client: &Client,
    namespace: &str,
    driver: &str,
    digest: &str,
    files: &BTreeMap<String, Vec<u8>>,
) -> Result<String> {
    let name = configmap_name(driver, digest);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    if api.get_opt(&name).await?.is_some() {
        return Ok(name);
    }
    let encoded: BTreeMap<&str, String> = files
        .iter()
        .map(|(path, content)| (path.as_str(), B64.encode(content)))
        .collect();
    let json = serde_json::to_vec(&encoded)?;
    if json.len() > MAX_BYTES {
        bail!(
            "driver {driver} is {} KiB, more than a ConfigMap holds (1 MiB)",
            json.len() / 1024
        );
    }
    let map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(
                [(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "styrmin".to_owned(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        immutable: Some(true),
        binary_data: Some([(KEY.to_owned(), ByteString(json))].into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &map).await {
        Ok(_) => Ok(name),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(name),
        Err(e) => Err(e).with_context(|| format!("cannot write the ConfigMap {namespace}/{name}")),
    }
}

pub async fn read(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = api
        .get(name)
        .await
        .with_context(|| format!("cannot read the driver bundle ConfigMap {namespace}/{name}"))?;
    let bytes = map
        .binary_data
        .and_then(|mut d| d.remove(KEY))
        .with_context(|| format!("ConfigMap {namespace}/{name} holds no {KEY}"))?;
    let encoded: BTreeMap<String, String> = serde_json::from_slice(&bytes.0)?;
    encoded
        .into_iter()
        .map(|(path, content)| Ok((path, B64.decode(content)?)))
        .collect()
}
