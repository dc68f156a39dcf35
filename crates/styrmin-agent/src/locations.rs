//! Backup storage locations (SPEC §9): every environment of the cluster that has one gets
//! a Velero `BackupStorageLocation` and credentials Secret, and Velero's verdict on it
//! (`Available`/`Unavailable`) goes to the server, which shows it on the environment.
//!
//! One pass a minute asks the server which environments have a location and writes a
//! location only when it is new or changed (its settings or its credentials); its phase is
//! read from one listing of Velero's locations. A backup or restore run reports its own
//! location at once ([`report_one`]).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use kube::Client;
use kube::api::ListParams;
use styrmin_core::backup::{LocationRef, LocationStatusReport};

use crate::api::AgentApi;
use crate::backups::{self, Credentials, velero};

const EVERY: Duration = Duration::from_secs(60);

/// Runs until the task is dropped.
pub async fn run(api: AgentApi, client: Client) {
    let mut written: HashMap<String, String> = HashMap::new();
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        if let Err(e) = pass(&api, &client, &mut written).await {
            tracing::warn!(error = %format!("{e:#}"), "backup storage locations: pass failed");
        }
    }
}

/// What decides whether a location must be written again: its settings and credentials.
fn fingerprint(location: &LocationRef, credentials: &Credentials) -> String {
    format!(
        "{}\n{}",
        serde_json::to_string(location).unwrap_or_default(),
        velero::credentials_file(credentials)
    )
}

async fn pass(
    api: &AgentApi,
    client: &Client,
    written: &mut HashMap<String, String>,
) -> Result<()> {
    let environments = api.cluster_locations().await?;
    let mut reports = Vec::new();
    let listed = velero::api(client, "BackupStorageLocation")
        .list(&ListParams::default())
        .await;
    for environment in environments.iter().filter(|e| !e.deleting) {
        let location = &environment.location;
        let (access_key_id, secret_access_key) = api
            .location_credentials(&environment.environment_id, &location.location_id)
            .await?;
        let credentials = Credentials {
            access_key_id,
            secret_access_key,
        };
        let print = fingerprint(location, &credentials);
        let status = if written.get(&location.name) != Some(&print) {
            match backups::ensure_location(client, location, &credentials).await {
                Ok(status) => {
                    written.insert(location.name.clone(), print);
                    Some(status)
                }
                Err(e) => Some(backups::LocationStatus {
                    phase: "Unavailable".into(),
                    message: Some(format!("{e:#}")),
                }),
            }
        } else {
            listed.as_ref().ok().and_then(|list| {
                list.items
                    .iter()
                    .find(|o| o.metadata.name.as_deref() == Some(location.name.as_str()))
                    .map(|o| backups::LocationStatus {
                        phase: o.data["status"]["phase"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        message: o.data["status"]["message"]
                            .as_str()
                            .filter(|m| !m.is_empty())
                            .map(str::to_owned),
                    })
            })
        };
        if let Some(status) = status.filter(|s| !s.phase.is_empty()) {
            reports.push(LocationStatusReport {
                environment_id: environment.environment_id.clone(),
                phase: status.phase,
                message: status.message,
            });
        }
    }
    if !reports.is_empty() {
        api.report_locations(reports).await?;
    }
    Ok(())
}

/// Reports one environment's location as Velero sees it now (after a backup or restore
/// run wrote or used it).
pub async fn report_one(api: &AgentApi, client: &Client, environment_id: &str, name: &str) {
    let reported = async {
        if let Some(status) = velero::location_status(client, name).await?
            && !status.phase.is_empty()
        {
            api.report_locations(vec![LocationStatusReport {
                environment_id: environment_id.to_owned(),
                phase: status.phase,
                message: status.message,
            }])
            .await?;
        }
        anyhow::Ok(())
    };
    if let Err(e) = reported.await {
        tracing::debug!(error = %format!("{e:#}"), "cannot report the backup location's status");
    }
}
