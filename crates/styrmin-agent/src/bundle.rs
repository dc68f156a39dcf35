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

/// Why a bundle ConfigMap could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read the driver bundle ConfigMap {namespace}/{name}: {source}")]
    Get {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("ConfigMap {namespace}/{name} holds no {KEY}")]
    NoBundle { namespace: String, name: String },
    #[error("ConfigMap {namespace}/{name} does not hold a readable driver bundle: {message}")]
    Unreadable {
        namespace: String,
        name: String,
        message: String,
    },
}

pub async fn read(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<BTreeMap<String, Vec<u8>>, ReadError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let map = api.get(name).await.map_err(|source| ReadError::Get {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source,
    })?;
    let bytes = map
        .binary_data
        .and_then(|mut d| d.remove(KEY))
        .ok_or_else(|| ReadError::NoBundle {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
    let unreadable = |message: String| ReadError::Unreadable {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        message,
    };
    let encoded: BTreeMap<String, String> =
        serde_json::from_slice(&bytes.0).map_err(|e| unreadable(e.to_string()))?;
    encoded
        .into_iter()
        .map(|(path, content)| match B64.decode(content) {
            Ok(bytes) => Ok((path, bytes)),
            Err(e) => Err(unreadable(format!("{path}: {e}"))),
        })
        .collect()
}
