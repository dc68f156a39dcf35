-- Web UI sessions: the browser's cookie holds a random session secret (stored hashed),
-- never the API token it signed in with. A session ends at its expiry, at sign-out, or
-- when its token is revoked.
CREATE TABLE ui_sessions (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    token_id    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX ui_sessions_token ON ui_sessions (token_id);
