-- Charts shipped inside drivers, served as a Helm chart repository at /charts/.
-- A chart name and version always mean the same archive (Helm and Flux cache by them).
CREATE TABLE charts (
    name       TEXT NOT NULL,
    version    TEXT NOT NULL,
    digest     TEXT NOT NULL,
    metadata   TEXT NOT NULL,
    archive    BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
