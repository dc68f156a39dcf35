-- Styrmin schema, version 1 (PostgreSQL). Kept column-for-column equal to
-- ../sqlite/0001_initial.sql: the store runs the same queries on both.
-- Times are milliseconds since the Unix epoch; JSON documents are TEXT.

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL,
    cluster_id   TEXT,
    hash         TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT
);

CREATE TABLE clusters (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    config          TEXT NOT NULL,
    agent_token_id  TEXT NOT NULL,
    agent_last_seen BIGINT,
    agent_version   TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE backup_storage_locations (
    id                    TEXT PRIMARY KEY,
    name                  TEXT NOT NULL UNIQUE,
    endpoint              TEXT NOT NULL,
    bucket                TEXT NOT NULL,
    region                TEXT NOT NULL,
    access_key_id         TEXT NOT NULL,
    secret_access_key_enc TEXT NOT NULL,
    created_at            BIGINT NOT NULL
);

CREATE TABLE environments (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    cluster_id TEXT NOT NULL REFERENCES clusters (id),
    config     TEXT NOT NULL,
    namespace  TEXT NOT NULL,
    bsl_id     TEXT REFERENCES backup_storage_locations (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (cluster_id, name),
    UNIQUE (cluster_id, namespace)
);

CREATE TABLE drivers (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE driver_versions (
    id            TEXT PRIMARY KEY,
    driver_id     TEXT NOT NULL REFERENCES drivers (id),
    version       TEXT NOT NULL,
    digest        TEXT NOT NULL,
    spec          TEXT NOT NULL,
    bundle        BYTEA NOT NULL,
    source_kind   TEXT NOT NULL,
    source_path   TEXT,
    source_url    TEXT,
    source_branch TEXT,
    source_commit TEXT,
    loaded_at     BIGINT NOT NULL,
    UNIQUE (driver_id, digest)
);
CREATE INDEX driver_versions_by_digest ON driver_versions (digest);

CREATE TABLE deployments (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    environment_id     TEXT NOT NULL REFERENCES environments (id),
    cluster_id         TEXT NOT NULL REFERENCES clusters (id),
    driver_version_id  TEXT NOT NULL REFERENCES driver_versions (id),
    app_version        TEXT NOT NULL,
    parameters         TEXT NOT NULL,
    config             TEXT NOT NULL,
    components         TEXT NOT NULL,
    phase              TEXT NOT NULL,
    active_instance_id TEXT,
    last_error         TEXT,
    next_position      BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    deleted_at         BIGINT
);
CREATE UNIQUE INDEX deployments_live_name ON deployments (environment_id, name) WHERE deleted_at IS NULL;

CREATE TABLE instances (
    id                TEXT PRIMARY KEY,
    deployment_id     TEXT NOT NULL REFERENCES deployments (id),
    seq               BIGINT NOT NULL,
    driver_version_id TEXT NOT NULL REFERENCES driver_versions (id),
    app_version       TEXT NOT NULL,
    context           TEXT NOT NULL,
    context_digest    TEXT NOT NULL,
    rendered_values   TEXT NOT NULL,
    state             TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX instances_by_deployment ON instances (deployment_id, seq);

CREATE TABLE flow_runs (
    id               TEXT PRIMARY KEY,
    deployment_id    TEXT REFERENCES deployments (id),
    cluster_id       TEXT NOT NULL REFERENCES clusters (id),
    position         BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    state            TEXT NOT NULL,
    attempt          BIGINT NOT NULL,
    max_attempts     BIGINT NOT NULL,
    instance_id      TEXT REFERENCES instances (id),
    payload          TEXT NOT NULL,
    result           TEXT,
    error            TEXT,
    lease_owner      TEXT,
    lease_expires_at BIGINT,
    created_at       BIGINT NOT NULL,
    started_at       BIGINT,
    finished_at      BIGINT,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX flow_runs_claimable ON flow_runs (cluster_id, state, created_at);
CREATE INDEX flow_runs_by_deployment ON flow_runs (deployment_id, position);

CREATE TABLE flow_run_logs (
    flow_run_id TEXT NOT NULL REFERENCES flow_runs (id),
    seq         BIGINT NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    level       TEXT NOT NULL,
    message     TEXT NOT NULL,
    PRIMARY KEY (flow_run_id, seq)
);

CREATE TABLE pod_statuses (
    cluster_id    TEXT NOT NULL REFERENCES clusters (id),
    namespace     TEXT NOT NULL,
    name          TEXT NOT NULL,
    deployment_id TEXT,
    component     TEXT,
    phase         TEXT NOT NULL,
    ready         BIGINT NOT NULL,
    restarts      BIGINT NOT NULL,
    node          TEXT,
    ip            TEXT,
    containers    TEXT NOT NULL,
    started_at    TEXT,
    reported_at   BIGINT NOT NULL,
    PRIMARY KEY (cluster_id, namespace, name)
);
CREATE INDEX pod_statuses_by_deployment ON pod_statuses (deployment_id);

CREATE TABLE deployment_statuses (
    deployment_id TEXT PRIMARY KEY REFERENCES deployments (id),
    cluster_id    TEXT NOT NULL REFERENCES clusters (id),
    status        TEXT NOT NULL,
    message       TEXT,
    instance_id   TEXT,
    components    TEXT NOT NULL,
    urls          TEXT NOT NULL,
    reported_at   BIGINT NOT NULL
);

CREATE TABLE backups (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id),
    deployment_id  TEXT REFERENCES deployments (id),
    bsl_id         TEXT NOT NULL REFERENCES backup_storage_locations (id),
    state          TEXT NOT NULL,
    size_bytes     BIGINT,
    components     TEXT NOT NULL,
    errors         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    finished_at    BIGINT
);

CREATE TABLE restores (
    id                   TEXT PRIMARY KEY,
    backup_id            TEXT NOT NULL REFERENCES backups (id),
    target_environment_id TEXT NOT NULL REFERENCES environments (id),
    target_deployment_id TEXT REFERENCES deployments (id),
    state                TEXT NOT NULL,
    errors               TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    finished_at          BIGINT
);

CREATE TABLE audit_log (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX audit_log_by_time ON audit_log (at);
