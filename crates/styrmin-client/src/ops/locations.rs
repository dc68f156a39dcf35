//! Backup storage locations: S3-compatible buckets Velero writes to.

use serde::{Deserialize, Serialize};

use crate::operation::{NoVariables, operations};

/// The fields of a location every location operation selects (never the secret key).
macro_rules! location_fields {
    () => {
        "id name endpoint bucket region accessKeyId createdAt"
    };
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupStorageLocation {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub created_at: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewLocation {
    pub name: String,
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    /// Stored encrypted; never returned.
    pub secret_access_key: String,
}

/// Names one location, by id or name.
#[derive(Debug, Default, Clone, Serialize)]
pub struct LocationId {
    pub id: String,
}

#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    pub environment_id: String,
    pub backup_storage_location_id: String,
}

/// An environment and the location it now backs up to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignedEnvironment {
    pub id: String,
    pub name: String,
    pub backup_storage_location: Option<super::environments::LocationRef>,
}

operations! {
    CreateBackupStorageLocation: "createBackupStorageLocation" (NewLocation) -> BackupStorageLocation = concat!(
        "mutation CreateBackupStorageLocation($name: String!, $endpoint: String!, $bucket: String!, $region: String!, $accessKeyId: String!, $secretAccessKey: String!) { createBackupStorageLocation(name: $name, endpoint: $endpoint, bucket: $bucket, region: $region, accessKeyId: $accessKeyId, secretAccessKey: $secretAccessKey) { ",
        location_fields!(),
        " } }"
    );
    ListBackupStorageLocations: "backupStorageLocations" (NoVariables) -> Vec<BackupStorageLocation> = concat!(
        "query ListBackupStorageLocations { backupStorageLocations { ",
        location_fields!(),
        " } }"
    );
    GetBackupStorageLocation: "backupStorageLocation" (LocationId) -> BackupStorageLocation = concat!(
        "query GetBackupStorageLocation($id: ID!) { backupStorageLocation(id: $id) { ",
        location_fields!(),
        " } }"
    );
    /// Makes an environment back up to a location.
    AssignBackupStorageLocation: "assignBackupStorageLocation" (Assignment) -> AssignedEnvironment =
        "mutation AssignBackupStorageLocation($environmentId: ID!, $backupStorageLocationId: ID!) { assignBackupStorageLocation(environmentId: $environmentId, backupStorageLocationId: $backupStorageLocationId) { id name backupStorageLocation { id name } } }";
    /// Deletes a location no environment uses.
    DeleteBackupStorageLocation: "deleteBackupStorageLocation" (LocationId) -> BackupStorageLocation = concat!(
        "mutation DeleteBackupStorageLocation($id: ID!) { deleteBackupStorageLocation(id: $id) { ",
        location_fields!(),
        " } }"
    );
}
