-- Backups, restores and backup deletions as flow runs (SPEC §9). Kept column-for-column
-- equal to ../sqlite/0006_backups.sql.

-- An environment backup is a row without a deployment whose parts (one per deployment)
-- name it as their parent; its state and size follow from theirs.
ALTER TABLE backups ADD COLUMN parent_id TEXT;
-- The run that takes the backup (its payload is the plan a restore reads).
ALTER TABLE backups ADD COLUMN flow_run_id TEXT;
-- The driver version backed up: a restore goes only into a deployment of the same driver.
ALTER TABLE backups ADD COLUMN driver_version_id TEXT;
-- Set while its delete_backup run is open; the row goes when that run completes.
ALTER TABLE backups ADD COLUMN deleting_at BIGINT;
CREATE INDEX backups_by_deployment ON backups (deployment_id, created_at);
CREATE INDEX backups_by_parent ON backups (parent_id);

ALTER TABLE restores ADD COLUMN flow_run_id TEXT;
ALTER TABLE restores ADD COLUMN components TEXT NOT NULL DEFAULT '[]';

-- Schedule and retention (environments update --backup-schedule --backup-keep): the next
-- due time is what servers race for with a conditional UPDATE, so exactly one acts.
ALTER TABLE environments ADD COLUMN backup_schedule TEXT;
ALTER TABLE environments ADD COLUMN backup_keep BIGINT;
ALTER TABLE environments ADD COLUMN backup_next_at BIGINT;
-- Velero's view of the environment's location, as the agent last reported it.
ALTER TABLE environments ADD COLUMN backup_location_phase TEXT;
ALTER TABLE environments ADD COLUMN backup_location_message TEXT;
ALTER TABLE environments ADD COLUMN backup_location_reported_at BIGINT;
