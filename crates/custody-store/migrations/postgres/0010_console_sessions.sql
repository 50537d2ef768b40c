-- Web console sessions: see the SQLite migration of the same name.
CREATE TABLE console_sessions (
    session_sha256 TEXT   NOT NULL PRIMARY KEY,
    principal_id   TEXT   NOT NULL,
    auth           TEXT   NOT NULL,
    csrf_secret    TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    last_seen_at   BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL
);

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
