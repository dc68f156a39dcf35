//! Backup storage locations: where archives go, and whether that place answers.

use super::*;

/// A location resolved: where to write and how to sign.
pub(super) struct Location {
    pub(super) target: S3Target,
    /// `bucket/prefix` without a trailing slash.
    pub(super) root: String,
}

pub(super) async fn resolve_location(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Location> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &resource("BackupStorageLocation"),
    );
    let bsl = api
        .get(name)
        .await
        .with_context(|| format!("BackupStorageLocation {namespace}/{name}"))?;
    let spec = &bsl.data["spec"];
    let bucket = spec["objectStorage"]["bucket"]
        .as_str()
        .ok_or_else(|| anyhow!("objectStorage.bucket is not set"))?;
    let prefix = spec["objectStorage"]["prefix"]
        .as_str()
        .unwrap_or_default()
        .trim_matches('/');
    let endpoint = spec["config"]["s3Url"]
        .as_str()
        .ok_or_else(|| anyhow!("config.s3Url is not set"))?;
    let region = spec["config"]["region"].as_str().unwrap_or("us-east-1");
    let secret_name = spec["credential"]["name"]
        .as_str()
        .unwrap_or("cloud-credentials");
    let secret_key = spec["credential"]["key"].as_str().unwrap_or("cloud");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get(secret_name)
        .await
        .with_context(|| format!("credentials Secret {namespace}/{secret_name}"))?;
    let file = secret
        .data
        .and_then(|d| {
            d.get(secret_key)
                .map(|b| String::from_utf8_lossy(&b.0).into_owned())
        })
        .ok_or_else(|| anyhow!("Secret {secret_name} has no key {secret_key}"))?;
    let field = |name: &str| {
        file.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == name)
            .map(|(_, v)| v.trim().to_owned())
            .ok_or_else(|| anyhow!("the credentials file has no {name}"))
    };
    Ok(Location {
        target: S3Target {
            endpoint: endpoint.to_owned(),
            region: region.to_owned(),
            access_key: field("aws_access_key_id")?,
            secret_key: field("aws_secret_access_key")?,
        },
        root: if prefix.is_empty() {
            bucket.to_owned()
        } else {
            format!("{bucket}/{prefix}")
        },
    })
}

pub(super) async fn reconcile_location(
    bsl: Arc<DynamicObject>,
    velero: Arc<Velero>,
) -> Result<Action, VeleroError> {
    let checked = async {
        let location = resolve_location(
            &velero.client,
            &bsl.namespace().unwrap_or_default(),
            &bsl.name_any(),
        )
        .await?;
        let bucket = location
            .root
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        location
            .target
            .run(
                &velero.rclone,
                &[
                    "lsf",
                    "--max-depth=1",
                    // An unreachable endpoint is reported in seconds, not after retries.
                    "--retries=1",
                    "--low-level-retries=1",
                    "--contimeout=5s",
                    "--timeout=10s",
                    &format!("s3:{bucket}"),
                ],
            )
            .await?;
        anyhow::Ok(())
    };
    let (phase, message) = match checked.await {
        Ok(()) => ("Available", String::new()),
        Err(e) => ("Unavailable", format!("{e:#}")),
    };
    set_status(
        &bsl,
        "BackupStorageLocation",
        &velero.client,
        json!({"phase": phase, "message": message, "lastValidationTime": now()}),
    )
    .await?;
    Ok(Action::requeue(Duration::from_secs(
        if phase == "Available" { 60 } else { 10 },
    )))
}
