//! Planning backups and restores (SPEC §9): what the server asks of the agent, built from a
//! deployment's Instance (its Context) and its driver version, and how the states of an
//! environment backup's parts and a deployment's retention come together. Pure: the
//! server reads the rows, these functions decide.

use std::collections::BTreeMap;

use crate::ApplicationDriver;
use crate::backup::{
    BackupPayload, BackupState, ComponentPlan, DEFAULT_DEADLINE_SECONDS, LocationRef,
    RestorePayload, location_name, velero_backup_name, velero_restore_name,
};
use crate::context::GlobalContext;
use crate::naming::INSTANCE_LABEL;

/// A backup storage location as the agent of one environment addresses it: the Velero
/// object is named after the environment's namespace.
pub struct Location<'a> {
    pub id: &'a str,
    pub environment_namespace: &'a str,
    pub endpoint: &'a str,
    pub bucket: &'a str,
    pub region: &'a str,
}

pub fn location_ref(l: &Location<'_>) -> LocationRef {
    LocationRef {
        location_id: l.id.to_owned(),
        name: location_name(l.environment_namespace),
        endpoint: l.endpoint.to_owned(),
        bucket: l.bucket.to_owned(),
        region: l.region.to_owned(),
        path_style: true,
        checksum_algorithm: String::new(),
    }
}

/// One plan per component whose driver declares a `backup` block, in component order.
/// The selector is the component's labels as the Instance's Context has them (the
/// driver's identifier scoped to the release with [`INSTANCE_LABEL`]); a component the
/// Context lacks gets the same scoping here.
pub fn component_plans(driver: &ApplicationDriver, context: &GlobalContext) -> Vec<ComponentPlan> {
    driver
        .spec
        .components
        .iter()
        .filter_map(|(name, component)| {
            let backup = component.backup.as_ref()?;
            let selector = match context.components.get(name) {
                Some(c) => c.labels.clone(),
                None => {
                    let mut labels: BTreeMap<String, String> = component.identifier.label.clone();
                    labels
                        .entry(INSTANCE_LABEL.to_owned())
                        .or_insert_with(|| context.instance.release_name.clone());
                    labels
                }
            };
            Some(ComponentPlan {
                component: name.clone(),
                kind: backup.kind,
                selector,
                volumes: backup.volumes.clone(),
                action: backup.location.as_ref().map(ToString::to_string),
                restore_action: backup.restore_location.as_ref().map(ToString::to_string),
                overrides: BTreeMap::new(),
            })
        })
        .collect()
}

/// How long the agent waits for Velero: the deployment's merged config
/// `backup_deadline_seconds` (cluster ⊕ environment ⊕ deployment, checked when set), else
/// [`DEFAULT_DEADLINE_SECONDS`].
pub fn deadline_seconds(context: &GlobalContext) -> u64 {
    context
        .instance
        .config
        .get("backup_deadline_seconds")
        .and_then(serde_json::Value::as_u64)
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_DEADLINE_SECONDS)
}

/// The driver version a payload is planned from.
pub struct DriverRef<'a> {
    pub driver: &'a ApplicationDriver,
    pub digest: &'a str,
}

/// The `backup` run of one deployment, from its active Instance's Context.
pub fn backup_payload(
    backup_id: &str,
    context: &GlobalContext,
    driver: &DriverRef<'_>,
    location: LocationRef,
) -> BackupPayload {
    BackupPayload {
        backup_id: backup_id.to_owned(),
        velero_backup: velero_backup_name(backup_id),
        namespace: context.instance.namespace.clone(),
        release_name: context.instance.release_name.clone(),
        location,
        driver_digest: driver.digest.to_owned(),
        driver_name: driver.driver.name().to_owned(),
        components: component_plans(driver.driver, context),
        deadline_seconds: deadline_seconds(context),
    }
}

/// The `restore` run of a backup (as its `backup` run was planned) into a deployment of
/// the same driver, from that deployment's Instance's Context.
pub fn restore_payload(
    restore_id: &str,
    source: &BackupPayload,
    target: &GlobalContext,
    driver: &DriverRef<'_>,
) -> RestorePayload {
    RestorePayload {
        restore_id: restore_id.to_owned(),
        backup_id: source.backup_id.clone(),
        velero_backup: source.velero_backup.clone(),
        velero_restore: velero_restore_name(restore_id),
        source_namespace: source.namespace.clone(),
        source_release_name: source.release_name.clone(),
        namespace: target.instance.namespace.clone(),
        release_name: target.instance.release_name.clone(),
        location: source.location.clone(),
        driver_digest: driver.digest.to_owned(),
        driver_name: driver.driver.name().to_owned(),
        components: component_plans(driver.driver, target),
        deadline_seconds: deadline_seconds(target),
    }
}

/// The state of an environment backup from its deployments' backups: open while any part
/// is; then completed when every part completed, failed when every part failed, and
/// partially failed otherwise. No parts: completed.
pub fn group_state(parts: &[BackupState]) -> BackupState {
    let open = |s: &&BackupState| matches!(s, BackupState::Scheduled | BackupState::Running);
    if parts.iter().any(|s| open(&s)) {
        if parts.iter().all(|s| *s == BackupState::Scheduled) {
            BackupState::Scheduled
        } else {
            BackupState::Running
        }
    } else if parts.iter().all(|s| *s == BackupState::Completed) {
        BackupState::Completed
    } else if parts.iter().all(|s| *s == BackupState::Failed) {
        BackupState::Failed
    } else {
        BackupState::PartiallyFailed
    }
}

/// Retention: of a deployment's completed backups, newest first, those past the `keep`
/// newest.
pub fn beyond_retention<T>(newest_first: &[T], keep: usize) -> &[T] {
    newest_first.get(keep..).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::BackupState::*;
    use crate::context::{ContextInput, Scope, build};
    use crate::driver::BackupKind;
    use serde_json::{Map, Value};

    const DRIVER: &str = r#"
apiVersion: styrmin.io/v1
kind: ApplicationDriver
metadata:
  name: shopware
spec:
  version: "1.0.0"
  supported_versions: ">=1.0"
  helm:
    main:
      location: https://charts.example.com/shop
      version: "1.0.0"
  components:
    web:
      identifier:
        label:
          app: web
    db:
      identifier:
        label:
          app: db
      backup:
        kind: postgres
    files:
      identifier:
        label:
          app: files
      backup:
        kind: disk
        volumes: [data]
"#;

    fn driver() -> ApplicationDriver {
        serde_yaml_ng::from_str(DRIVER).expect("the test driver parses")
    }

    fn context(driver: &ApplicationDriver, release: &str) -> GlobalContext {
        context_with(driver, release, &Map::new())
    }

    fn context_with(
        driver: &ApplicationDriver,
        release: &str,
        deployment_config: &Map<String, Value>,
    ) -> GlobalContext {
        let empty = Map::new();
        build(&ContextInput {
            cluster: Scope {
                id: "c1",
                name: "local",
                config: &empty,
            },
            environment: Scope {
                id: "e1",
                name: "prod",
                config: &{
                    let mut m = Map::new();
                    m.insert("namespace".into(), Value::String("styrmin-prod".into()));
                    m
                },
            },
            deployment: Scope {
                id: "d1",
                name: release,
                config: deployment_config,
            },
            instance_id: "i1",
            driver,
            app_version: "1.2.0",
            parameters: &BTreeMap::new(),
            components: &BTreeMap::new(),
        })
        .expect("the test context builds")
    }

    fn location() -> LocationRef {
        location_ref(&Location {
            id: "l1",
            environment_namespace: "styrmin-prod",
            endpoint: "http://127.0.0.1:9000",
            bucket: "backups",
            region: "us-east-1",
        })
    }

    /// Only components with a `backup` block are planned, each with its strategy and a
    /// selector scoped to the deployment's release, so a backup of one deployment never
    /// reaches another deployment's pods of the same driver.
    #[test]
    fn components_with_a_backup_block_are_planned_release_scoped() {
        let d = driver();
        let payload = backup_payload(
            "B1",
            &context(&d, "shop"),
            &DriverRef {
                driver: &d,
                digest: "abc",
            },
            location(),
        );
        assert_eq!(payload.velero_backup, "styrmin-b1");
        assert_eq!(payload.namespace, "styrmin-prod");
        assert_eq!(payload.release_name, "shop");
        assert_eq!(payload.driver_name, "shopware");
        assert_eq!(payload.location.name, "styrmin-prod");
        let names: Vec<_> = payload
            .components
            .iter()
            .map(|c| (c.component.as_str(), c.kind))
            .collect();
        assert_eq!(
            names,
            [("db", BackupKind::Postgres), ("files", BackupKind::Disk)]
        );
        let db = &payload.components[0];
        assert_eq!(db.selector["app"], "db");
        assert_eq!(db.selector[INSTANCE_LABEL], "shop");
        assert_eq!(payload.components[1].volumes, ["data"]);
    }

    /// A restore reads the source from the backup's plan and plans the target from its
    /// own Context: another release, another namespace, its own selectors.
    #[test]
    fn a_restore_maps_the_source_onto_the_target() {
        let d = driver();
        let driver = DriverRef {
            driver: &d,
            digest: "abc",
        };
        let source = backup_payload("B1", &context(&d, "shop"), &driver, location());
        let restore = restore_payload("R1", &source, &context(&d, "shop-copy"), &driver);
        assert_eq!(restore.velero_backup, "styrmin-b1");
        assert_eq!(restore.velero_restore, "styrmin-restore-r1");
        assert_eq!(restore.source_release_name, "shop");
        assert_eq!(restore.release_name, "shop-copy");
        assert_eq!(restore.components[0].selector[INSTANCE_LABEL], "shop-copy");
        assert_eq!(restore.location, source.location);
    }

    /// The agent's deadline comes from the merged config when it sets one.
    #[test]
    fn the_deadline_follows_the_config() {
        let d = driver();
        let driver = DriverRef {
            driver: &d,
            digest: "abc",
        };
        let plain = backup_payload("B1", &context(&d, "shop"), &driver, location());
        assert_eq!(plain.deadline_seconds, DEFAULT_DEADLINE_SECONDS);
        let mut config = Map::new();
        config.insert("backup_deadline_seconds".into(), Value::from(30));
        let short = context_with(&d, "shop", &config);
        assert_eq!(
            backup_payload("B1", &short, &driver, location()).deadline_seconds,
            30
        );
        assert_eq!(
            restore_payload("R1", &plain, &short, &driver).deadline_seconds,
            30
        );
    }

    /// An environment backup is open while a part is, and then as good as its parts.
    #[test]
    fn an_environment_backup_is_as_good_as_its_parts() {
        assert_eq!(group_state(&[Scheduled, Scheduled]), Scheduled);
        assert_eq!(group_state(&[Completed, Scheduled]), Running);
        assert_eq!(group_state(&[Running, Failed]), Running);
        assert_eq!(group_state(&[Completed, Completed]), Completed);
        assert_eq!(group_state(&[Failed, Failed]), Failed);
        assert_eq!(group_state(&[Completed, Failed]), PartiallyFailed);
        assert_eq!(group_state(&[PartiallyFailed]), PartiallyFailed);
        assert_eq!(group_state(&[]), Completed);
    }

    /// Retention keeps the newest N and hands back the rest.
    #[test]
    fn retention_keeps_the_newest() {
        assert_eq!(beyond_retention(&[5, 4, 3, 2], 2), &[3, 2]);
        assert!(beyond_retention(&[5, 4], 3).is_empty());
        assert_eq!(beyond_retention(&[5, 4], 0), &[5, 4]);
    }
}
