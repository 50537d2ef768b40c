-- Web console sessions (docs/console.md). The row is keyed by the SHA-256
-- of the session ID, so whoever reads the database cannot sign in with a
-- row: the ID itself lives only in the browser's cookie. `auth` is the
-- JSON of the actor's `AuthContext` (a token ID or an OIDC issuer and
-- subject, never a secret). Times are microseconds since the epoch. Unlike
-- the ledger, rows change (`last_seen_at`) and are deleted (sign-out,
-- expiry): a session is not a record of anything.
CREATE TABLE console_sessions (
    session_sha256 TEXT    NOT NULL PRIMARY KEY,
    principal_id   TEXT    NOT NULL,
    auth           TEXT    NOT NULL,
    csrf_secret    TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    last_seen_at   INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL
) STRICT;

CREATE INDEX console_sessions_by_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_by_last_seen ON console_sessions (last_seen_at);
