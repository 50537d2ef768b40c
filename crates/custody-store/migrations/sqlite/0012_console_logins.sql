-- Browser sign-ins with OpenID Connect in progress (docs/oidc.md): what the
-- console keeps between sending a browser to the issuer and its return
-- (the state, the nonce, the PKCE verifier, the path to go back to), as
-- JSON. The row is keyed by the SHA-256 of a random value held only in the
-- browser's cookie, so the return is bound to the browser that began; it
-- is deleted when the browser comes back, whatever the outcome (single
-- use), and expired rows are purged. Times are microseconds since the epoch.
CREATE TABLE console_logins (
    login_sha256 TEXT    NOT NULL PRIMARY KEY,
    pending      TEXT    NOT NULL,
    expires_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX console_logins_by_expiry ON console_logins (expires_at);
