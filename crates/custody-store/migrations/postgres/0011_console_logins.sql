-- Browser sign-ins in progress: see the SQLite migration of the same name.
CREATE TABLE console_logins (
    login_sha256 TEXT   NOT NULL PRIMARY KEY,
    pending      TEXT   NOT NULL,
    expires_at   BIGINT NOT NULL
);

CREATE INDEX console_logins_by_expiry ON console_logins (expires_at);
